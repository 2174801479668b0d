//! Legal holds as the catalog stores them: what is held and why. Setting and releasing holds
//! are retention operations (`retention.rs`); deleting operations ask here first.

use crate::error::{Error, Result};
use crate::model::ItemInfo;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;

/// The reason of an active hold on the item or its project, if any.
pub(crate) fn hold_reason(conn: &Connection, item: &ItemInfo) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT reason FROM holds WHERE released_at IS NULL AND target_id IN (?1, ?2)
             ORDER BY created_at LIMIT 1",
            params![item.id, item.project_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// `Err(on_hold)` when the item may not be deleted, expired or purged.
pub(crate) fn ensure_not_held(conn: &Connection, item: &ItemInfo) -> Result<()> {
    match hold_reason(conn, item)? {
        Some(reason) => Err(Error::OnHold(format!(
            "{}/{}/{} (hold: {reason})",
            item.project, item.area, item.path
        ))),
        None => Ok(()),
    }
}

/// Ids of every item and project under an active hold.
pub(crate) fn held_ids(conn: &Connection) -> Result<HashSet<String>> {
    let mut st = conn.prepare("SELECT target_id FROM holds WHERE released_at IS NULL")?;
    let r = st.query_map([], |r| r.get::<_, String>(0))?;
    Ok(r.collect::<rusqlite::Result<_>>()?)
}
