//! Three-way merge of an item changed here and on the tenant since both last agreed (the
//! base). Pure: the same inputs give the same state on every device, and nothing is ever
//! dropped.
//!
//! * Versions are a set keyed by blob id: both sides' versions are kept. An erasure is final
//!   for the versions it names.
//! * Concurrent edits (both sides moved the head): the later version (by creation time, then
//!   blob id) becomes the head, the other stays as a conflict sibling the user can pick.
//! * An edit beats a delete: a soft delete on one side and a new version (or a restore) on the
//!   other leave the item active; an erasure on one side and a new version on the other leave
//!   the item active with only the new version.
//! * Rename vs rename: the later change (by `updated_at`, then the larger path) wins.
//! * Holds are united; a release on either side releases.

use std::collections::BTreeMap;

use super::state::{HoldState, ItemBase, ItemPayload, ProjectPayload, VersionState};
use crate::model::ItemState;

/// The merged state and the blob ids of versions that lost a concurrent edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged state.
    pub state: ItemPayload,
    /// Versions newly flagged as conflict siblings.
    pub conflicts: Vec<String>,
}

/// `local` or `remote`, whichever changed from `base` (remote when both did, unless the
/// caller decides otherwise through `both`).
fn pick<T: PartialEq + Clone>(
    base: Option<&T>,
    local: &T,
    remote: &T,
    both: impl FnOnce() -> T,
) -> T {
    if local == remote {
        return local.clone();
    }
    match base {
        Some(b) if b == local => remote.clone(),
        Some(b) if b == remote => local.clone(),
        _ => both(),
    }
}

fn merge_holds(local: &[HoldState], remote: &[HoldState]) -> Vec<HoldState> {
    let mut by_id: BTreeMap<String, HoldState> = BTreeMap::new();
    for h in remote.iter().chain(local) {
        match by_id.get_mut(&h.id) {
            None => {
                by_id.insert(h.id.clone(), h.clone());
            }
            Some(have) => {
                if have.released_at.is_none() && h.released_at.is_some() {
                    have.released_at = h.released_at;
                    have.released_by = h.released_by.clone();
                }
            }
        }
    }
    let mut out: Vec<HoldState> = by_id.into_values().collect();
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    out
}

/// Which version is later: by creation time, then blob id.
fn later<'a>(a: &'a VersionState, b: &'a VersionState) -> &'a VersionState {
    if (a.created_at, &a.blob) >= (b.created_at, &b.blob) {
        a
    } else {
        b
    }
}

/// Merges an item changed on both sides since `base` (`None`: no common state known, e.g.
/// the same item created on both sides, or a resync from scratch). `held`: a legal hold
/// covers the item's project here; with it (or a hold in the remote state itself) versions
/// the tenant keeps live stay live even where this side erased them: the tenant refused the
/// erasure, and a hold outranks it.
pub fn merge_item(
    base: Option<&ItemBase>,
    local: &ItemPayload,
    remote: &ItemPayload,
    held: bool,
) -> Merged {
    let held = held || remote.holds.iter().any(|h| h.released_at.is_none());
    let mut conflicts = Vec::new();
    // Versions: the union; erased on either side is erased; conflict flags three-way.
    let mut versions: BTreeMap<String, VersionState> = BTreeMap::new();
    for v in &remote.versions {
        versions.insert(v.blob.clone(), v.clone());
    }
    let mut next_n = remote.versions.iter().map(|v| v.n).max().unwrap_or(0);
    let mut local_only: Vec<&VersionState> = Vec::new();
    for v in &local.versions {
        match versions.get_mut(&v.blob) {
            Some(r) => {
                if v.erased && !r.erased && !held {
                    r.erased = true;
                    r.key = None;
                }
                let base_flag = base.map(|b| b.conflicts.contains(&v.blob));
                r.conflict = pick(base_flag.as_ref(), &v.conflict, &r.conflict, || {
                    v.conflict || r.conflict
                });
            }
            None => local_only.push(v),
        }
    }
    local_only.sort_by(|a, b| (a.created_at, &a.blob).cmp(&(b.created_at, &b.blob)));
    for v in local_only {
        next_n += 1;
        let mut v = v.clone();
        v.n = next_n;
        versions.insert(v.blob.clone(), v);
    }
    for v in versions.values_mut() {
        if v.erased {
            v.conflict = false;
        }
    }

    // The head.
    let base_head = base.map(|b| b.current.clone());
    let mut current = if local.current == remote.current {
        local.current.clone()
    } else if base_head.as_ref() == Some(&local.current) {
        remote.current.clone()
    } else if base_head.as_ref() == Some(&remote.current) {
        local.current.clone()
    } else {
        // Both moved the head: the later version wins, the other is a conflict sibling.
        let (l, r) = (&versions[&local.current], &versions[&remote.current]);
        let win = later(l, r).blob.clone();
        let lose = if win == l.blob {
            r.blob.clone()
        } else {
            l.blob.clone()
        };
        if let Some(v) = versions.get_mut(&lose) {
            if !v.erased {
                v.conflict = true;
                conflicts.push(lose);
            }
        }
        win
    };
    if versions.get(&current).is_none_or(|v| v.erased) {
        // The head was erased: the newest live version takes its place.
        if let Some(v) = versions.values().filter(|v| !v.erased).max_by_key(|v| v.n) {
            current = v.blob.clone();
        }
    }
    if let Some(v) = versions.get_mut(&current) {
        // The head is never its own conflict sibling.
        if v.conflict {
            v.conflict = false;
            conflicts.retain(|c| *c != current);
        }
    }

    // What each side did since the base.
    let base_versions = base.map(|b| b.versions.clone()).unwrap_or_default();
    let edited = |s: &ItemPayload| {
        s.versions
            .iter()
            .any(|v| !v.erased && !base_versions.contains(&v.blob))
    };
    let (local_edited, remote_edited) = (edited(local), edited(remote));
    let all_erased = versions.values().all(|v| v.erased);
    let base_state = base.and_then(|b| b.state);
    let state = if all_erased {
        ItemState::Erased
    } else {
        let s = pick(base_state.as_ref(), &local.state, &remote.state, || {
            // Both changed the state differently: active wins (a restore or an edit beats a
            // delete).
            ItemState::Active
        });
        match s {
            ItemState::Active => ItemState::Active,
            // An edit beats a delete: the side that did not delete added content.
            ItemState::SoftDeleted | ItemState::Erased => {
                let deleted_here = local.state != ItemState::Active;
                let other_edited = if deleted_here {
                    remote_edited
                } else {
                    local_edited
                };
                if other_edited || s == ItemState::Erased {
                    ItemState::Active
                } else {
                    ItemState::SoftDeleted
                }
            }
        }
    };

    // Location: three-way on (area, path), the later change winning a tie.
    let base_loc = base.and_then(|b| b.area.map(|a| (a, b.path.clone())));
    let (area, path) = pick(
        base_loc.as_ref(),
        &(local.area, local.path.clone()),
        &(remote.area, remote.path.clone()),
        || {
            let l = (local.updated_at, local.area.as_str(), local.path.as_str());
            let r = (
                remote.updated_at,
                remote.area.as_str(),
                remote.path.as_str(),
            );
            if l > r {
                (local.area, local.path.clone())
            } else {
                (remote.area, remote.path.clone())
            }
        },
    );
    let media_type = if path == local.path {
        local.media_type.clone()
    } else {
        remote.media_type.clone()
    };
    let data_type = pick(
        base.and_then(|b| b.data_type).as_ref(),
        &local.data_type,
        &remote.data_type,
        || {
            if local.updated_at > remote.updated_at {
                local.data_type
            } else {
                remote.data_type
            }
        },
    );
    let (deleted_at, erased_at, erase_reason) = match state {
        ItemState::Active => (None, None, None),
        ItemState::SoftDeleted => (local.deleted_at.max(remote.deleted_at), None, None),
        ItemState::Erased => {
            let from = if remote.state == ItemState::Erased {
                remote
            } else {
                local
            };
            (from.deleted_at, from.erased_at, from.erase_reason.clone())
        }
    };
    let mut versions: Vec<VersionState> = versions.into_values().collect();
    versions.sort_by_key(|v| v.n);
    Merged {
        state: ItemPayload {
            v: remote.v,
            area,
            path,
            media_type,
            data_type,
            created_by: remote.created_by.clone(),
            created_at: remote.created_at.min(local.created_at),
            updated_at: remote.updated_at.max(local.updated_at),
            state,
            deleted_at,
            erased_at,
            erase_reason,
            current,
            versions,
            holds: merge_holds(&local.holds, &remote.holds),
        },
        conflicts,
    }
}

/// Merges a project's own record.
pub fn merge_project(
    base: Option<&ItemBase>,
    local: &ProjectPayload,
    remote: &ProjectPayload,
) -> ProjectPayload {
    let name = pick(base.map(|b| &b.name), &local.name, &remote.name, || {
        remote.name.clone()
    });
    ProjectPayload {
        v: remote.v,
        name,
        created_at: remote.created_at,
        created_by: remote.created_by.clone(),
        holds: merge_holds(&local.holds, &remote.holds),
    }
}

/// The name an item (or project) takes when another one already has its name: the last
/// eight hex digits of its id (the random part; the first ones of a UUIDv7 are a time) in a
/// suffix before the extension (`data (conflict 3fa94c1e).csv`); `attempt` takes four more
/// digits each time, should that name be taken too. The same on every device, since it depends
/// only on the id.
pub fn clash_name(name: &str, id: &str, attempt: usize) -> String {
    let hex: Vec<char> = id.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let n = (8 + 4 * attempt).min(hex.len());
    let tag: String = hex[hex.len() - n..].iter().collect();
    let (dir, file) = match name.rfind('/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => ("", name),
    };
    match file.rfind('.') {
        Some(i) if i > 0 => format!("{dir}{} (conflict {tag}){}", &file[..i], &file[i..]),
        _ => format!("{dir}{file} (conflict {tag})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Area, DataType};

    fn v(blob: &str, n: u32, at: i64) -> VersionState {
        VersionState {
            blob: blob.repeat(32 / blob.len()),
            n,
            key: Some("a2V5".into()),
            key_epoch: 1,
            blob_size: 100,
            size: 10,
            sha256: "0".repeat(64),
            created_at: at,
            created_by: "u".into(),
            conflict: false,
            erased: false,
        }
    }

    fn item(versions: Vec<VersionState>, current: &str) -> ItemPayload {
        ItemPayload {
            v: 1,
            area: Area::Uploads,
            path: "a/data.csv".into(),
            media_type: "text/csv".into(),
            data_type: DataType::ResearchData,
            created_by: "u".into(),
            created_at: 1,
            updated_at: 1,
            state: ItemState::Active,
            deleted_at: None,
            erased_at: None,
            erase_reason: None,
            current: current.repeat(32 / current.len()),
            versions,
            holds: vec![],
        }
    }

    fn b(s: &str) -> String {
        s.repeat(32 / s.len())
    }

    #[test]
    fn concurrent_edits_keep_both_the_later_one_head() {
        let base = item(vec![v("1", 1, 10)], "1");
        let mut local = base.clone();
        local.versions.push(v("2", 2, 20));
        local.current = b("2");
        let mut remote = base.clone();
        remote.versions.push(v("3", 2, 30));
        remote.current = b("3");
        let m = merge_item(Some(&base.base()), &local, &remote, false);
        assert_eq!(m.state.current, b("3"), "the later version is the head");
        assert_eq!(m.conflicts, vec![b("2")]);
        let nums: Vec<(String, u32, bool)> = m
            .state
            .versions
            .iter()
            .map(|v| (v.blob.clone(), v.n, v.conflict))
            .collect();
        assert_eq!(
            nums,
            vec![(b("1"), 1, false), (b("3"), 2, false), (b("2"), 3, true)]
        );
        // The same from the other side gives the same head and the same sibling.
        let m2 = merge_item(Some(&base.base()), &remote, &local, false);
        assert_eq!(m2.state.current, b("3"));
        assert!(m2
            .state
            .versions
            .iter()
            .any(|v| v.blob == b("2") && v.conflict));
        m.state.check().unwrap();
    }

    #[test]
    fn one_sided_changes_win_without_conflict() {
        let base = item(vec![v("1", 1, 10)], "1");
        let mut local = base.clone();
        local.path = "b/renamed.csv".into();
        let mut remote = base.clone();
        remote.versions.push(v("2", 2, 20));
        remote.current = b("2");
        let m = merge_item(Some(&base.base()), &local, &remote, false);
        assert!(m.conflicts.is_empty());
        assert_eq!(
            (m.state.path.as_str(), m.state.current.clone()),
            ("b/renamed.csv", b("2"))
        );
    }

    #[test]
    fn edit_beats_delete_both_ways_and_erasure_is_final_for_what_it_names() {
        let base = item(vec![v("1", 1, 10)], "1");
        let mut deleted = base.clone();
        deleted.state = ItemState::SoftDeleted;
        deleted.deleted_at = Some(50);
        let mut edited = base.clone();
        edited.versions.push(v("2", 2, 20));
        edited.current = b("2");
        for (l, r) in [(&deleted, &edited), (&edited, &deleted)] {
            let m = merge_item(Some(&base.base()), l, r, false);
            assert_eq!(m.state.state, ItemState::Active);
            assert_eq!(m.state.deleted_at, None);
            assert_eq!(m.state.current, b("2"));
        }
        // A delete against an unchanged item stays a delete.
        let m = merge_item(Some(&base.base()), &deleted, &base, false);
        assert_eq!(m.state.state, ItemState::SoftDeleted);
        // Erased on one side, edited on the other: active with only the new version live.
        let mut erased = base.clone();
        erased.state = ItemState::Erased;
        erased.erased_at = Some(60);
        erased.versions[0].erased = true;
        erased.versions[0].key = None;
        let m = merge_item(Some(&base.base()), &edited, &erased, false);
        assert_eq!(m.state.state, ItemState::Active);
        assert!(
            m.state
                .versions
                .iter()
                .find(|v| v.blob == b("1"))
                .unwrap()
                .erased
        );
        assert_eq!(m.state.current, b("2"));
        m.state.check().unwrap();
        // Erased against unchanged: erased.
        let m = merge_item(Some(&base.base()), &base, &erased, false);
        assert_eq!(m.state.state, ItemState::Erased);
        m.state.check().unwrap();
        // Erased here while the tenant holds the item: the hold wins, nothing is erased.
        let mut held = base.clone();
        held.holds.push(HoldState {
            id: "h".into(),
            reason: "litigation".into(),
            created_at: 5,
            created_by: "pi".into(),
            released_at: None,
            released_by: None,
        });
        let m = merge_item(Some(&base.base()), &erased, &held, false);
        assert_eq!(m.state.state, ItemState::Active);
        assert!(m
            .state
            .versions
            .iter()
            .all(|v| !v.erased && v.key.is_some()));
        let m = merge_item(Some(&base.base()), &erased, &base, true);
        assert_eq!(m.state.state, ItemState::Active, "a project hold here too");
        // Held here but erased on the tenant first: the erasure stands.
        let m = merge_item(Some(&base.base()), &held, &erased, false);
        assert_eq!(m.state.state, ItemState::Erased);
    }

    #[test]
    fn rename_against_rename_is_decided_by_the_later_change_everywhere() {
        let base = item(vec![v("1", 1, 10)], "1");
        let mut l = base.clone();
        l.path = "x.csv".into();
        l.updated_at = 5;
        let mut r = base.clone();
        r.path = "y.csv".into();
        r.updated_at = 7;
        assert_eq!(
            merge_item(Some(&base.base()), &l, &r, false).state.path,
            "y.csv"
        );
        assert_eq!(
            merge_item(Some(&base.base()), &r, &l, false).state.path,
            "y.csv"
        );
        r.updated_at = 5;
        assert_eq!(
            merge_item(Some(&base.base()), &l, &r, false).state.path,
            "y.csv"
        );
        assert_eq!(
            merge_item(Some(&base.base()), &r, &l, false).state.path,
            "y.csv"
        );
    }

    #[test]
    fn holds_unite_and_a_release_releases() {
        let h = |id: &str, rel: Option<i64>| HoldState {
            id: id.into(),
            reason: "audit".into(),
            created_at: 1,
            created_by: "u".into(),
            released_at: rel,
            released_by: rel.map(|_| "u".into()),
        };
        let merged = merge_holds(
            &[h("a", None), h("b", Some(5))],
            &[h("a", Some(9)), h("c", None)],
        );
        let got: Vec<(String, bool)> = merged
            .iter()
            .map(|h| (h.id.clone(), h.released_at.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![("a".into(), true), ("b".into(), true), ("c".into(), false)]
        );
    }

    #[test]
    fn clash_names_are_deterministic_and_keep_the_extension() {
        let id = "0192ab34-5678-7abc-8def-001122334455";
        assert_eq!(
            clash_name("a/data.csv", id, 0),
            "a/data (conflict 22334455).csv"
        );
        assert_eq!(clash_name("README", id, 0), "README (conflict 22334455)");
        assert_eq!(
            clash_name(".hidden", id, 1),
            ".hidden (conflict 001122334455)"
        );
    }
}
