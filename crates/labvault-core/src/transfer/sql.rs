//! The catalog rows transfers read and write: a version inserted by an import, and where the
//! current version of an item is with its wrapped key for export and previews.

use super::blob_err;
use crate::error::{Error, Result};
use crate::items::{item_from_row, label, ITEM_SELECT};
use crate::model::{guess_media_type, Area, DataType, ItemInfo};
use crate::packs::BlobLoc;
use labvault_crypto::WrappedKey;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Where an item's current version is, and what decrypts it.
pub(crate) struct CurrentVersion {
    /// Blob id (the blob format's file id in hex).
    pub(crate) blob_id: String,
    /// Its ciphertext.
    pub(crate) loc: BlobLoc,
    /// Its data key, wrapped by the project key.
    pub(crate) wrapped: WrappedKey,
    /// Recorded plaintext SHA-256 (hex).
    pub(crate) sha256: String,
}

/// Where a version's blob is and its wrapped key, from columns 17-21 of a row of
/// `ITEM_SELECT` extended with `blob_id, wrapped_data_key, pack_id, pack_offset, pack_len`, for
/// `item` as of that version. An active version without a blob is a damaged catalog.
fn version_at(r: &rusqlite::Row<'_>, dir: &Path, item: &ItemInfo) -> Result<CurrentVersion> {
    let (blob, wrapped): (Option<String>, Option<Vec<u8>>) = (r.get(17)?, r.get(18)?);
    let (Some(blob_id), Some(w)) = (blob, wrapped) else {
        return Err(Error::CorruptCatalog(format!(
            "{} is active but a version of it has no blob",
            label(item)
        )));
    };
    let wrapped = WrappedKey::from_bytes(w).map_err(|e| blob_err(e, &label(item)))?;
    let loc = BlobLoc::from_row(dir, &blob_id, r.get(19)?, r.get(20)?, r.get(21)?)?;
    Ok(CurrentVersion {
        blob_id,
        loc,
        wrapped,
        sha256: item.sha256.clone(),
    })
}

/// Every active item of `project_id`/`area` with its current version, in export order
/// (path), from one query.
pub(crate) fn area_versions(
    conn: &Connection,
    dir: &Path,
    project_id: &str,
    area: Area,
) -> Result<Vec<(ItemInfo, CurrentVersion)>> {
    let (cols, from) = ITEM_SELECT
        .split_once("FROM items i")
        .expect("ITEM_SELECT reads from items i");
    let sql = format!(
        "{cols}, v.blob_id, v.wrapped_data_key, v.pack_id, v.pack_offset, v.pack_len
         FROM items i {from}
         WHERE i.project_id = ?1 AND i.area = ?2 AND i.state = 'active'
         ORDER BY i.path, i.created_at"
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params![project_id, area.as_str()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let item = item_from_row(r)?;
        let v = version_at(r, dir, &item)?;
        out.push((item, v));
    }
    Ok(out)
}

/// The earlier versions of every active item of `project_id`/`area` whose content is still
/// kept (not erased): the unresolved conflict siblings, and with `all` every other earlier
/// version too. Each comes as the item as of that version (its size, SHA-256, number and
/// `updated_at` = when that version was written) with where its blob is and whether it is a
/// conflict sibling; ordered by path, then version.
pub(crate) fn area_earlier_versions(
    conn: &Connection,
    dir: &Path,
    project_id: &str,
    area: Area,
    all: bool,
) -> Result<Vec<(ItemInfo, CurrentVersion, bool)>> {
    let (cols, from) = ITEM_SELECT
        .split_once("FROM items i")
        .expect("ITEM_SELECT reads from items i");
    let sql = format!(
        "{cols}, o.blob_id, o.wrapped_data_key, o.pack_id, o.pack_offset, o.pack_len,
            o.version, o.size, o.sha256, o.created_at, o.conflict
         FROM items i {from}
         JOIN item_versions o ON o.item_id = i.id AND o.version <> i.current_version
         WHERE i.project_id = ?1 AND i.area = ?2 AND i.state = 'active'
           AND o.blob_id IS NOT NULL AND o.wrapped_data_key IS NOT NULL AND (?3 OR o.conflict = 1)
         ORDER BY i.path, o.version"
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params![project_id, area.as_str(), all])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut item = item_from_row(r)?;
        item.version = r.get(22)?;
        item.size = r.get::<_, i64>(23)? as u64;
        item.sha256 = r.get(24)?;
        item.updated_at = crate::vault::ms_to_ts(r.get(25)?);
        let conflict: bool = r.get(26)?;
        let v = version_at(r, dir, &item)?;
        out.push((item, v, conflict));
    }
    Ok(out)
}

/// The current version of `item`; `erased` once its key is gone.
pub(crate) fn current_version(
    conn: &Connection,
    dir: &Path,
    item: &ItemInfo,
) -> Result<CurrentVersion> {
    type Row = (
        Option<String>,
        Option<Vec<u8>>,
        String,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT blob_id, wrapped_data_key, sha256, pack_id, pack_offset, pack_len
             FROM item_versions WHERE item_id = ?1 AND version = ?2",
        )?
        .query_row(params![item.id, item.version], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    match row {
        Some((Some(b), Some(w), sha256, pack, off, len)) => {
            let wrapped = WrappedKey::from_bytes(w).map_err(|e| blob_err(e, &label(item)))?;
            let loc = BlobLoc::from_row(dir, &b, pack, off, len)?;
            Ok(CurrentVersion {
                blob_id: b,
                loc,
                wrapped,
                sha256,
            })
        }
        Some(_) => Err(Error::Erased(label(item))),
        None => Err(Error::CorruptCatalog(format!(
            "{} has no version {}",
            label(item),
            item.version
        ))),
    }
}

/// Inserts one imported version: a new item, or a new version of the active item at `path`,
/// marked for sync when `track` (a tenant is configured). Returns (item id, version).
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_version(
    tx: &rusqlite::Transaction<'_>,
    project_id: &str,
    area: Area,
    data_type: DataType,
    path: &str,
    blob_id: &str,
    pack: Option<(&str, u64, u64)>,
    wrapped: &WrappedKey,
    plaintext_len: u64,
    sha: &str,
    now: i64,
    actor: &str,
    track: bool,
) -> Result<(String, u32)> {
    // A SELECT then an INSERT or UPDATE: measured cheaper than one upsert with RETURNING,
    // whose ephemeral result table costs more allocations (import_bench --catalog, UPSERT=1).
    let existing: Option<(String, u32)> = tx
        .prepare_cached(
            "SELECT id, current_version FROM items
             WHERE project_id = ?1 AND area = ?2 AND path = ?3 AND state = 'active'",
        )?
        .query_row(params![project_id, area.as_str(), path], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (item_id, version) = match existing {
        Some((id, _)) => {
            // After the head (a synced item's head need not be its highest version: a conflict
            // sibling or a version picked back can sit above it).
            let top: u32 = tx
                .prepare_cached("SELECT max(version) FROM item_versions WHERE item_id = ?1")?
                .query_row([&id], |r| r.get(0))?;
            tx.prepare_cached(
                "UPDATE items SET current_version = ?1, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![top + 1, now, id])?;
            (id, top + 1)
        }
        None => {
            // Time-ordered: a group's new rows land at the right edge of the id indexes (items,
            // versions, audit resources) instead of dirtying pages all over them.
            let id = uuid::Uuid::now_v7().to_string();
            tx.prepare_cached(
                "INSERT INTO items(id, project_id, area, path, media_type, data_type, created_by,
                    created_at, updated_at, state, current_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 'active', 1)",
            )?
            .execute(params![
                id,
                project_id,
                area.as_str(),
                path,
                guess_media_type(path),
                data_type.as_str(),
                actor,
                now
            ])?;
            (id, 1)
        }
    };
    tx.prepare_cached(
        "INSERT INTO item_versions(item_id, version, blob_id, wrapped_data_key, size, sha256,
            created_at, created_by, pack_id, pack_offset, pack_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        item_id,
        version,
        blob_id,
        wrapped.as_bytes(),
        plaintext_len as i64,
        sha,
        now,
        actor,
        pack.map(|p| p.0),
        pack.map(|p| p.1 as i64),
        pack.map(|p| p.2 as i64),
    ])?;
    if track {
        crate::changes::mark(tx, project_id, &item_id)?;
    }
    Ok((item_id, version))
}
