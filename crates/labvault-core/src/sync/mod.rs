//! The vault's half of file sync with the lab's tenant: everything but the network.
//!
//! The sync engine (`labvault-sync`) moves bytes; this module decides what they mean, and
//! keeps every key inside the vault:
//!
//! * `outbox`: local changes (marked in `sync_dirty` by the change's own transaction) become
//!   ops whose payload is the item's state sealed under the project key; the tenant's answers
//!   update the merge base and the op states.
//! * `pull`: a page of the tenant's feed is opened (each payload authenticated against its
//!   project, item, op, epoch and revision; replays refused), the blobs it needs are received
//!   and verified (decrypted and hashed) before anything is applied, and the page is applied
//!   in one transaction with the cursor, merging with local changes (`merge`).
//! * `devices`: this device's key pairs, pairing and approval, trusted devices and the key
//!   boxes that carry project keys between them.
//! * `membership`: the signed, hash-chained membership log of a shared project, verified
//!   entry by entry (formats in `docs/sharing.md`).
//! * `sharing`: this user's identity, each shared project's verified log and epoch keys, the
//!   offline lease and the wipe of projects this device lost.
//! * the tenant's signed checkpoints of this device's audit chain live in `crate::anchors`,
//!   beside the audit verification that checks them.
//!
//! Formats, test vectors and what the tenant can see: `docs/sync-protocol.md`.

pub mod devices;
pub mod membership;
pub mod merge;
pub mod outbox;
pub mod pull;
pub mod sharing;
pub mod state;

pub use crate::anchors::{AnchorCheck, StoredAnchor};
pub use devices::{DeviceIdentity, DeviceState, RemoteConfig, TrustedDevice};
pub use labvault_crypto::{DevicePublic, EntryBody, IdentityPublic, MemberRole};
pub use outbox::{AckReport, LocalBlob, OpAck, OpState, OutgoingOp, ProjectStatus};
pub use pull::{ApplyReport, BlobNeed, FeedInfo, IncomingChange, PartialDownload, PulledPage};
pub use sharing::{
    parse_role, IdentityInfo, MemberInfo, MembershipOutcome, MembershipView, PreparedRotation,
    RemoteMembership, WipeReport,
};

use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::vault::{ms_to_ts, Vault};

/// A project as sync sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncProject {
    /// Project id (the same on the tenant and every device).
    pub project_id: String,
    /// Its name here.
    pub name: String,
    /// The tenant has it.
    pub remote: bool,
    /// Last feed position applied.
    pub cursor: u64,
    /// Op id at `cursor` (to detect a feed that was rewritten).
    pub cursor_op: Option<String>,
    /// The feed's identity when last read.
    pub generation: Option<String>,
    /// Key epoch.
    pub epoch: u32,
    /// Why sync of this project is stopped, if it is.
    pub stopped: Option<String>,
    /// Last successful pass (ms).
    pub last_sync_at: Option<i64>,
}

/// What the catalog says about one item, without keys: for comparing devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// Project name.
    pub project: String,
    /// Item id.
    pub item_id: String,
    /// Area.
    pub area: crate::Area,
    /// Path.
    pub path: String,
    /// State.
    pub state: crate::ItemState,
    /// Head version number.
    pub head: u32,
    /// Versions: (number, plaintext SHA-256 (empty once erased), size, conflict, erased).
    pub versions: Vec<(u32, String, u64, bool, bool)>,
    /// Active holds (reasons).
    pub holds: Vec<String>,
}

/// A conflict: an item with versions that lost a concurrent edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictInfo {
    /// The item.
    pub item: crate::ItemInfo,
    /// Its head version number.
    pub head: u32,
    /// The conflict siblings: (version number, size, created at, created by).
    pub siblings: Vec<(u32, u64, String, String)>,
}

impl Vault {
    /// Every project with its sync state.
    pub fn sync_projects(&self) -> Result<Vec<SyncProject>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT p.id, p.name, coalesce(s.remote, 0), coalesce(s.cursor, 0), s.cursor_op,
                    s.generation, coalesce(s.epoch, 1), s.stopped, s.last_sync_at
             FROM projects p LEFT JOIN sync_projects s ON s.project_id = p.id ORDER BY p.name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(SyncProject {
                project_id: r.get(0)?,
                name: r.get(1)?,
                remote: r.get(2)?,
                cursor: r.get::<_, i64>(3)? as u64,
                cursor_op: r.get(4)?,
                generation: r.get(5)?,
                epoch: r.get::<_, i64>(6)? as u32,
                stopped: r.get(7)?,
                last_sync_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records that the tenant has the project.
    pub fn sync_project_is_remote(&self, project_id: &str) -> Result<()> {
        self.sync_bookkeeping(|tx| {
            tx.execute(
                "INSERT INTO sync_projects(project_id, remote) VALUES (?1, 1)
                 ON CONFLICT(project_id) DO UPDATE SET remote = 1",
                [project_id],
            )?;
            Ok(())
        })
    }

    /// Stops sync of a project with a reason the user sees (or clears it with `None`).
    pub fn sync_set_stopped(&self, project_id: &str, reason: Option<&str>) -> Result<()> {
        self.sync_bookkeeping(|tx| {
            tx.execute(
                "INSERT INTO sync_projects(project_id, stopped) VALUES (?1, ?2)
                 ON CONFLICT(project_id) DO UPDATE SET stopped = excluded.stopped",
                rusqlite::params![project_id, reason],
            )?;
            Ok(())
        })
    }

    /// Starts a project's sync over from scratch: the cursor goes back to the start and every
    /// item is merged again with what the tenant has, and pushed where it differs (nothing is
    /// deleted: items the tenant lacks are sent, items it has are merged).
    pub fn sync_resync_project(&self, project_id: &str) -> Result<()> {
        self.sync_bookkeeping(|tx| {
            tx.execute(
                "UPDATE sync_projects SET cursor = 0, cursor_op = NULL, generation = NULL,
                    stopped = NULL WHERE project_id = ?1",
                [project_id],
            )?;
            tx.execute("DELETE FROM sync_items WHERE project_id = ?1", [project_id])?;
            tx.execute(
                "DELETE FROM sync_outbox WHERE project_id = ?1 AND state <> 'sent'",
                [project_id],
            )?;
            crate::changes::mark_all(tx, Some(project_id))?;
            Ok(())
        })
    }

    /// Every item of every project as the catalog describes it (no keys), by project name and
    /// item id: two devices in step give the same list.
    pub fn sync_catalog(&self) -> Result<Vec<CatalogEntry>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT p.name, i.id, i.area, i.path, i.state, i.current_version FROM items i
             JOIN projects p ON p.id = i.project_id ORDER BY p.name, i.id",
        )?;
        let rows: Vec<(String, String, String, String, String, u32)> = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (project, item_id, area, path, state, head) in rows {
            let versions = conn
                .prepare_cached(
                    "SELECT version, sha256, size, conflict, blob_id IS NULL FROM item_versions
                     WHERE item_id = ?1 ORDER BY version",
                )?
                .query_map([&item_id], |r| {
                    let erased: bool = r.get(4)?;
                    Ok((
                        r.get(0)?,
                        if erased { String::new() } else { r.get(1)? },
                        r.get::<_, i64>(2)? as u64,
                        r.get(3)?,
                        erased,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let holds = conn
                .prepare_cached(
                    "SELECT reason FROM holds WHERE target_id = ?1 AND released_at IS NULL ORDER BY id",
                )?
                .query_map([&item_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            out.push(CatalogEntry {
                project,
                item_id,
                area: area.parse()?,
                path,
                state: state.parse()?,
                head,
                versions,
                holds,
            });
        }
        Ok(out)
    }

    /// Items with conflict siblings, by project and path.
    pub fn sync_conflicts(&self) -> Result<Vec<ConflictInfo>> {
        let conn = self.reader()?;
        let ids: Vec<String> = conn
            .prepare(
                "SELECT DISTINCT i.id FROM items i JOIN item_versions v ON v.item_id = i.id
                 JOIN projects p ON p.id = i.project_id
                 WHERE v.conflict = 1 AND v.blob_id IS NOT NULL ORDER BY p.name, i.path",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for id in ids {
            let item = crate::items::get(&conn, &id)?;
            let siblings = conn
                .prepare(
                    "SELECT version, size, created_at, created_by FROM item_versions
                     WHERE item_id = ?1 AND conflict = 1 AND blob_id IS NOT NULL ORDER BY version",
                )?
                .query_map([&id], |r| {
                    let at: i64 = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        r.get::<_, i64>(1)? as u64,
                        ms_to_ts(at)
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default(),
                        r.get(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            out.push(ConflictInfo {
                head: item.version,
                item,
                siblings,
            });
        }
        Ok(out)
    }

    /// Keeps both sides of a conflict: version `other` becomes a new item at `new_path` (same
    /// project and area, re-encrypted; `already_exists` when the path is taken), then the
    /// conflict is resolved with `keep` as the item's head. Nothing is deleted; if the second
    /// step fails the copy stays and the conflict remains to resolve.
    pub fn sync_keep_both(
        &self,
        item_id: &str,
        keep: u32,
        other: u32,
        new_path: &str,
    ) -> Result<crate::ItemInfo> {
        if keep == other {
            return Err(Error::InvalidArgument(
                "keep both needs two different versions".into(),
            ));
        }
        let copy = self.copy_version(item_id, other, new_path)?;
        self.sync_resolve_conflict(item_id, keep)?;
        Ok(copy)
    }

    /// Resolves a conflict by picking `keep` (a version number) as the head: the conflict
    /// flags of the item's versions are cleared (every version stays in its history) and the
    /// choice syncs (`sync.resolve`).
    pub fn sync_resolve_conflict(&self, item_id: &str, keep: u32) -> Result<crate::ItemInfo> {
        use labvault_governance::audit::{actions, resources};
        self.write_op(
            actions::SYNC_RESOLVE,
            || crate::items::resource_of(self, item_id),
            |w| {
                let now = crate::vault::ts_to_ms(w.vault.now());
                w.commit(actions::SYNC_RESOLVE, |tx| {
                    let item = crate::items::get(tx, item_id)?;
                    let live: Option<Option<String>> = tx
                        .query_row(
                            "SELECT blob_id FROM item_versions WHERE item_id = ?1 AND version = ?2",
                            rusqlite::params![item.id, keep],
                            |r| r.get(0),
                        )
                        .optional()?;
                    match live {
                        None => {
                            return Err(Error::NotFound(format!(
                                "version {keep} of item {item_id}"
                            )))
                        }
                        Some(None) => {
                            return Err(Error::Erased(format!(
                                "version {keep} of {}",
                                crate::items::label(&item)
                            )))
                        }
                        Some(Some(_)) => {}
                    }
                    tx.execute(
                        "UPDATE item_versions SET conflict = 0 WHERE item_id = ?1",
                        [&item.id],
                    )?;
                    tx.execute(
                        "UPDATE items SET current_version = ?1, updated_at = ?2 WHERE id = ?3",
                        rusqlite::params![keep, now, item.id],
                    )?;
                    crate::changes::mark_if_tracking(tx, &item.project_id, &item.id)?;
                    let out = crate::items::get(tx, item_id)?;
                    Ok((
                        out,
                        crate::audit::Subject::new(
                            resources::item(&item.project_id, &item.id),
                            format!("head={keep}"),
                        ),
                    ))
                })
            },
        )
    }

    /// A bookkeeping transaction of sync (cursor, op states, flags): no audit event of its own.
    pub(crate) fn sync_bookkeeping<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        use labvault_governance::audit::{actions, resources};
        self.write_op(actions::SYNC_PUSH, || resources::VAULT.into(), |w| w.tx(f))
    }
}
