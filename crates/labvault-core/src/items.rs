//! Item queries and lifecycle operations: list/search, find, move, soft delete, restore, purge,
//! stats.

use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::model::{Area, DataType, ItemInfo, ItemState, ListFilter, StatRow};
use crate::vault::{ms_to_ts, ts_to_ms, Vault, WriteOp};
use crate::{blob_files, fsutil, names, projects};
use labvault_governance::audit::{actions, resources};
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::fs;
use std::path::Path;

pub(crate) const ITEM_SELECT: &str =
    "SELECT i.id, p.name, p.id, i.area, i.path, v.size, v.sha256, i.state,
        i.media_type, i.data_type, i.current_version, i.created_by, i.created_at, i.updated_at,
        i.deleted_at, i.erased_at, i.erase_reason
    FROM items i
    JOIN projects p ON p.id = i.project_id
    JOIN item_versions v ON v.item_id = i.id AND v.version = i.current_version";

fn parse_col<T: std::str::FromStr<Err = Error>>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    s.parse::<T>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn item_from_row(r: &Row<'_>) -> rusqlite::Result<ItemInfo> {
    Ok(ItemInfo {
        id: r.get(0)?,
        project: r.get(1)?,
        project_id: r.get(2)?,
        area: parse_col::<Area>(r, 3)?,
        path: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        sha256: r.get(6)?,
        state: parse_col::<ItemState>(r, 7)?,
        media_type: r.get(8)?,
        data_type: parse_col::<DataType>(r, 9)?,
        version: r.get(10)?,
        created_by: r.get(11)?,
        created_at: ms_to_ts(r.get(12)?),
        updated_at: ms_to_ts(r.get(13)?),
        deleted_at: r.get::<_, Option<i64>>(14)?.map(ms_to_ts),
        erased_at: r.get::<_, Option<i64>>(15)?.map(ms_to_ts),
        erase_reason: r.get(16)?,
    })
}

/// How error messages name an item: `project/area/path`.
pub(crate) fn label(item: &ItemInfo) -> String {
    format!("item {}/{}/{}", item.project, item.area, item.path)
}

/// One item by id, in any state, on `conn`.
pub(crate) fn get(conn: &Connection, id: &str) -> Result<ItemInfo> {
    conn.query_row(
        &format!("{ITEM_SELECT} WHERE i.id = ?1"),
        [id],
        item_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("item {id}")))
}

/// The audit resource of an item id (`item/<project>/<item>`), or `item/<id>` when it does not
/// exist (for the failure event).
pub(crate) fn resource_of(v: &Vault, item_id: &str) -> String {
    match v.item(item_id) {
        Ok(i) => resources::item(&i.project_id, &i.id),
        Err(_) => format!("item/{item_id}"),
    }
}

impl Vault {
    /// Lists items matching `filter`, ordered by project, area, path.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<ItemInfo>> {
        let mut sql = format!("{ITEM_SELECT} WHERE 1=1");
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let conn = self.reader()?;
        if let Some(p) = &filter.project {
            let p = projects::find(&conn, p)?;
            args.push(Box::new(p.id));
            sql += &format!(" AND i.project_id = ?{}", args.len());
        }
        if let Some(a) = filter.area {
            args.push(Box::new(a.as_str()));
            sql += &format!(" AND i.area = ?{}", args.len());
        }
        if let Some(pre) = &filter.path_prefix {
            args.push(Box::new(pre.clone()));
            sql += &format!(
                " AND substr(i.path, 1, length(?{n})) = ?{n}",
                n = args.len()
            );
        }
        if let Some(sub) = &filter.path_contains {
            args.push(Box::new(sub.to_lowercase()));
            sql += &format!(" AND instr(lower(i.path), ?{}) > 0", args.len());
        }
        if !filter.all_states {
            args.push(Box::new(filter.state.unwrap_or(ItemState::Active).as_str()));
            sql += &format!(" AND i.state = ?{}", args.len());
        }
        if let Some(d) = filter.data_type {
            args.push(Box::new(d.as_str()));
            sql += &format!(" AND i.data_type = ?{}", args.len());
        }
        if let Some(m) = &filter.media_type {
            args.push(Box::new(m.clone()));
            sql += &format!(" AND i.media_type = ?{}", args.len());
        }
        sql += " ORDER BY p.name, i.area, i.path, i.created_at";
        let mut st = conn.prepare(&sql)?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let rows = st.query_map(refs.as_slice(), item_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One item by id, in any state.
    pub fn item(&self, id: &str) -> Result<ItemInfo> {
        get(&*self.reader()?, id)
    }

    /// Resolves what a user typed (an item id, or a logical path, optionally prefixed with its
    /// area as `area/path`) to one item in one of `states`. With several matches (soft-deleted
    /// copies of one path), the most recently changed wins; a path in several areas is
    /// ambiguous and refused.
    pub fn find_item(
        &self,
        project: Option<&str>,
        area: Option<Area>,
        spec: &str,
        states: &[ItemState],
    ) -> Result<ItemInfo> {
        if let Ok(item) = self.item(spec) {
            if project.is_none_or(|p| p == item.project || p == item.project_id) {
                if states.contains(&item.state) {
                    return Ok(item);
                }
                return Err(wrong_state(&item, states));
            }
        }
        let Some(project) = project else {
            return Err(Error::InvalidArgument(format!(
                "{spec:?} is not an item id; give the project to find it by path"
            )));
        };
        let mut candidates: Vec<(Option<Area>, String)> = vec![(area, spec.to_string())];
        if area.is_none() {
            if let Some((first, rest)) = spec.split_once('/') {
                if let Ok(a) = first.parse::<Area>() {
                    candidates.push((Some(a), rest.to_string()));
                }
            }
        }
        for (a, path) in candidates {
            let filter = ListFilter {
                project: Some(project.to_string()),
                area: a,
                all_states: true,
                ..Default::default()
            };
            let mut matches: Vec<ItemInfo> = self
                .list(&filter)?
                .into_iter()
                .filter(|i| i.path == path)
                .collect();
            if matches.is_empty() {
                continue;
            }
            let any = matches[0].clone();
            matches.retain(|i| states.contains(&i.state));
            if matches.is_empty() {
                return Err(wrong_state(&any, states));
            }
            let areas: std::collections::BTreeSet<Area> = matches.iter().map(|i| i.area).collect();
            if areas.len() > 1 {
                return Err(Error::InvalidArgument(format!(
                    "{path:?} exists in several areas ({}); say which with --area or area/path",
                    areas
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            matches.sort_by_key(|i| {
                std::cmp::Reverse(i.deleted_at.or(i.erased_at).unwrap_or(i.updated_at))
            });
            return Ok(matches.swap_remove(0));
        }
        Err(Error::NotFound(format!(
            "item {spec:?} in project {project:?}"
        )))
    }

    /// Renames and/or moves an item to another area of its project (`data.rename`). The item
    /// keeps its id, versions and blobs; only catalog rows change.
    pub fn move_item(
        &self,
        item_id: &str,
        new_area: Option<Area>,
        new_path: Option<&str>,
    ) -> Result<ItemInfo> {
        self.write_op(
            actions::DATA_RENAME,
            || resource_of(self, item_id),
            |w| {
                let now = ts_to_ms(w.vault.now());
                w.commit(actions::DATA_RENAME, |tx| {
                    let item = get(tx, item_id)?;
                    if item.state != ItemState::Active {
                        return Err(wrong_state(&item, &[ItemState::Active]));
                    }
                    let area = new_area.unwrap_or(item.area);
                    let path = match new_path {
                        Some(p) => names::validate_logical_path(p)?,
                        None => item.path.clone(),
                    };
                    let clash: Option<String> = tx
                        .query_row(
                            "SELECT id FROM items WHERE project_id = ?1 AND area = ?2 AND path = ?3 AND state = 'active' AND id != ?4",
                            params![item.project_id, area.as_str(), path, item.id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if clash.is_some() {
                        return Err(Error::AlreadyExists(format!(
                            "an active item at {}/{}/{}",
                            item.project, area, path
                        )));
                    }
                    tx.execute(
                        "UPDATE items SET area = ?1, path = ?2, media_type = ?3, updated_at = ?4 WHERE id = ?5",
                        params![area.as_str(), path, crate::model::guess_media_type(&path), now, item.id],
                    )?;
                    crate::changes::mark_if_tracking(tx, &item.project_id, &item.id)?;
                    let moved = get(tx, item_id)?;
                    Ok((moved, Subject::on(resources::item(&item.project_id, &item.id))))
                })
            },
        )
    }

    /// Soft-deletes an item (`data.delete`): hidden from listings, restorable until purged.
    /// Refused with `on_hold` (recorded as denied) under a legal hold.
    pub fn soft_delete(&self, item_id: &str) -> Result<ItemInfo> {
        self.write_op(
            actions::DATA_DELETE,
            || resource_of(self, item_id),
            |w| {
                let now = ts_to_ms(w.vault.now());
                w.commit(actions::DATA_DELETE, |tx| {
                    let item = get(tx, item_id)?;
                    crate::holds::ensure_not_held(tx, &item)?;
                    if item.state != ItemState::Active {
                        return Err(wrong_state(&item, &[ItemState::Active]));
                    }
                    tx.execute(
                        "UPDATE items SET state = 'soft_deleted', deleted_at = ?1 WHERE id = ?2",
                        params![now, item.id],
                    )?;
                    crate::changes::mark_if_tracking(tx, &item.project_id, &item.id)?;
                    let out = get(tx, item_id)?;
                    Ok((
                        out,
                        Subject::on(resources::item(&item.project_id, &item.id)),
                    ))
                })
            },
        )
    }

    /// Restores a soft-deleted item (`data.restore`), refusing if another active item took
    /// its path meanwhile.
    pub fn restore(&self, item_id: &str) -> Result<ItemInfo> {
        self.write_op(
            actions::DATA_RESTORE,
            || resource_of(self, item_id),
            |w| {
                w.commit(actions::DATA_RESTORE, |tx| {
                    let item = get(tx, item_id)?;
                    if item.state != ItemState::SoftDeleted {
                        return Err(wrong_state(&item, &[ItemState::SoftDeleted]));
                    }
                    let clash: Option<String> = tx
                        .query_row(
                            "SELECT id FROM items WHERE project_id = ?1 AND area = ?2 AND path = ?3 AND state = 'active'",
                            params![item.project_id, item.area.as_str(), item.path],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if clash.is_some() {
                        return Err(Error::AlreadyExists(format!(
                            "an active item at {}/{}/{} (move it away first)",
                            item.project, item.area, item.path
                        )));
                    }
                    tx.execute(
                        "UPDATE items SET state = 'active', deleted_at = NULL WHERE id = ?1",
                        params![item.id],
                    )?;
                    crate::changes::mark_if_tracking(tx, &item.project_id, &item.id)?;
                    let out = get(tx, item_id)?;
                    Ok((out, Subject::on(resources::item(&item.project_id, &item.id))))
                })
            },
        )
    }

    /// Immediate cryptographic erasure on request (right to deletion; skips the grace period):
    /// `data.purge` with the reason as detail, refused with `on_hold` under a legal hold.
    pub fn purge(&self, item_id: &str, reason: &str) -> Result<ItemInfo> {
        self.write_op(
            actions::DATA_PURGE,
            || resource_of(self, item_id),
            |w| erase_in(w, item_id, reason, actions::DATA_PURGE, reason),
        )
    }

    /// Counts and plaintext bytes per project, area and state.
    pub fn stats(&self) -> Result<Vec<StatRow>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT p.name, i.area, i.state, count(*),
                    coalesce(sum(CASE WHEN i.state = 'erased' THEN 0 ELSE v.size END), 0)
             FROM items i
             JOIN projects p ON p.id = i.project_id
             JOIN item_versions v ON v.item_id = i.id AND v.version = i.current_version
             GROUP BY p.name, i.area, i.state
             ORDER BY p.name, i.area, i.state",
        )?;
        let rows = st.query_map([], |r| {
            Ok(StatRow {
                project: r.get(0)?,
                area: parse_col::<Area>(r, 1)?,
                state: parse_col::<ItemState>(r, 2)?,
                items: r.get::<_, i64>(3)? as u64,
                bytes: r.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

/// Cryptographically erases an item (all its versions) as part of write op `w`, recording
/// `action` with `detail`: the wrapped data keys are overwritten then deleted with
/// `secure_delete` on, the WAL is checkpointed and truncated, and only then are the blobs
/// removed. The item row stays, marked `erased` with when and why (`reason`). A copy of an old
/// blob is undecryptable afterwards because its data key exists nowhere any more. Refused with
/// `on_hold` under a legal hold.
pub(crate) fn erase_in(
    w: &mut WriteOp<'_>,
    item_id: &str,
    reason: &str,
    action: &str,
    detail: &str,
) -> Result<ItemInfo> {
    {
        let item = get(w.conn(), item_id)?;
        crate::holds::ensure_not_held(w.conn(), &item)?;
        if item.state == ItemState::Erased {
            return Err(Error::Erased(label(&item)));
        }
    }
    let now = ts_to_ms(w.vault.now());
    w.mark_blobs_unsettled()?;
    let (blob_ids, packs) = w.commit(action, |tx| {
        let item = get(tx, item_id)?;
        if item.state == ItemState::Erased {
            return Err(Error::Erased(label(&item)));
        }
        let mut st = tx.prepare(
            "SELECT blob_id, pack_id FROM item_versions WHERE item_id = ?1 AND blob_id IS NOT NULL",
        )?;
        let mut own = Vec::new();
        let mut packs = std::collections::BTreeSet::new();
        for row in st.query_map([&item.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })? {
            match row? {
                (_, Some(pack)) => packs.insert(pack),
                (blob, None) => {
                    own.push(blob);
                    false
                }
            };
        }
        drop(st);
        // Overwrite in place first so no page keeps the old bytes, then drop them.
        tx.execute(
            "UPDATE item_versions SET wrapped_data_key = zeroblob(length(wrapped_data_key))
             WHERE item_id = ?1 AND wrapped_data_key IS NOT NULL",
            [&item.id],
        )?;
        tx.execute(
            "UPDATE item_versions SET sync_blob = coalesce(sync_blob, blob_id),
                wrapped_data_key = NULL, blob_id = NULL, pack_id = NULL,
                pack_offset = NULL, pack_len = NULL, conflict = 0 WHERE item_id = ?1",
            [&item.id],
        )?;
        tx.execute(
            "UPDATE items SET state = 'erased', erased_at = ?1, erase_reason = ?2 WHERE id = ?3",
            params![now, reason, item.id],
        )?;
        crate::changes::mark_if_tracking(tx, &item.project_id, &item.id)?;
        let subject = Subject::new(resources::item(&item.project_id, &item.id), detail);
        Ok(((own, packs), subject))
    })?;
    w.checkpoint_truncate()?;
    remove_erased_blobs(w, &blob_ids, &packs)?;
    get(w.conn(), item_id)
}

/// After an erasure committed (and the WAL was truncated): removes the erased versions' blob
/// files and their records' bytes from packs (a pack with no live record left is deleted). A
/// crash here leaves orphan blobs and erased records in packs (with no key anywhere), which
/// the next unlock removes (the caller set the unsettled marker before committing).
pub(crate) fn remove_erased_blobs(
    w: &mut WriteOp<'_>,
    blob_ids: &[String],
    packs: &std::collections::BTreeSet<String>,
) -> Result<()> {
    let dir = w.vault.dir.clone();
    let mut shards = std::collections::BTreeSet::new();
    for id in blob_ids {
        let p = crate::layout::blob_path(&dir, id);
        remove_blob_file(&p)?;
        shards.extend(p.parent().map(Path::to_path_buf));
    }
    for pack in packs {
        let p = crate::layout::blob_path(&dir, pack);
        if !blob_files::erase_dead_records(w.conn(), &dir, pack)? {
            remove_blob_file(&p)?;
            shards.extend(p.parent().map(Path::to_path_buf));
        }
    }
    for s in shards {
        fsutil::fsync_dir(&s)?;
    }
    Ok(())
}

/// Removes a blob or pack file; one already gone is fine.
fn remove_blob_file(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io_path("removing blob", p, e)),
    }
}

/// The error for an operation on an item in the wrong lifecycle state.
pub(crate) fn wrong_state(item: &ItemInfo, wanted: &[ItemState]) -> Error {
    if item.state == ItemState::Erased {
        return Error::Erased(label(item));
    }
    Error::InvalidArgument(format!(
        "{} is {}, this needs it to be {}",
        label(item),
        item.state,
        wanted
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}
