//! What changed on this device since it last pushed to the tenant.
//!
//! While a tenant is configured (`sync_remote`), every change of an item, or of a project's own
//! state (name, holds), marks it in `sync_dirty` in the transaction of the change: a local
//! change and its place in the outbox commit together, so a crash can lose neither alone. The
//! sync engine later turns the marks into sealed ops (`sync::outbox`). Without a tenant
//! nothing is marked (and `remote add` marks everything once).

use crate::error::Result;
use rusqlite::Connection;

/// Whether changes are being tracked (a tenant is configured).
pub(crate) fn tracking(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_remote)")?
        .query_row([], |r| r.get(0))?)
}

/// Marks `item_id` of `project_id` (the project itself when they are equal) as changed.
/// Callers that already know changes are tracked use this in loops.
pub(crate) fn mark(conn: &Connection, project_id: &str, item_id: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO sync_dirty(item_id, project_id) VALUES (?1, ?2)")?
        .execute([item_id, project_id])?;
    Ok(())
}

/// Marks `item_id` as changed if changes are tracked.
pub(crate) fn mark_if_tracking(conn: &Connection, project_id: &str, item_id: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO sync_dirty(item_id, project_id)
         SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM sync_remote)",
    )?
    .execute([item_id, project_id])?;
    Ok(())
}

/// Marks every item and project (a tenant was just configured, or a project is re-sent
/// from scratch).
pub(crate) fn mark_all(conn: &Connection, project_id: Option<&str>) -> Result<()> {
    match project_id {
        None => {
            conn.execute(
                "INSERT OR IGNORE INTO sync_dirty(item_id, project_id) SELECT id, id FROM projects",
                [],
            )?;
            conn.execute(
                "INSERT OR IGNORE INTO sync_dirty(item_id, project_id) SELECT id, project_id FROM items",
                [],
            )?;
        }
        Some(p) => {
            conn.execute(
                "INSERT OR IGNORE INTO sync_dirty(item_id, project_id) VALUES (?1, ?1)",
                [p],
            )?;
            conn.execute(
                "INSERT OR IGNORE INTO sync_dirty(item_id, project_id)
                 SELECT id, project_id FROM items WHERE project_id = ?1",
                [p],
            )?;
        }
    }
    Ok(())
}
