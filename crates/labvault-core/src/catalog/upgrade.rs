//! One-time upgrade of a catalog from cipher format v1 (SQLCipher 4 defaults, HMAC-SHA512 page
//! MAC) to v2 (HMAC-SHA256), run by [`super::Catalog::open`] when a catalog does not
//! read in the current format but does in the legacy one.
//!
//! Crash safety: the v2 copy is built in a temp file next to the catalog (`catalog.db.upgrade`,
//! encrypted with the same key: no plaintext on disk), checked, made durable, and only then
//! renamed over the old catalog (one atomic rename, directory fsynced before and after). At every
//! moment exactly one valid catalog sits at `catalog.db`; a temp file left by a crash is deleted at
//! the next open and the upgrade is redone from the old catalog.

use super::{current_schema_version, key_and_probe, key_connection, CipherFormat};
use crate::error::{Error, Result};
use crate::fsutil;
use labvault_crypto::CatalogKey;
use rusqlite::{params, Connection, OpenFlags};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Suffix of the upgrade's temp file (`catalog.db` + this).
pub(crate) const UPGRADE_SUFFIX: &str = ".upgrade";

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(crate) fn remove_if_present(p: &Path) -> Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io_path("removing", p, e)),
    }
}

/// Whether an interrupted upgrade of the catalog at `path` left files behind.
pub(crate) fn has_leftovers(path: &Path) -> bool {
    let tmp = with_suffix(path, UPGRADE_SUFFIX);
    ["", "-journal", "-wal", "-shm"]
        .iter()
        .any(|suffix| with_suffix(&tmp, suffix).exists())
}

/// Deletes what an interrupted upgrade of the catalog at `path` left behind (the temp copy and
/// its journal files). The old catalog is untouched: until the final rename it is the valid one.
pub(crate) fn remove_leftovers(path: &Path) -> Result<()> {
    let tmp = with_suffix(path, UPGRADE_SUFFIX);
    let mut removed = false;
    for suffix in ["", "-journal", "-wal", "-shm"] {
        removed |= remove_if_present(&with_suffix(&tmp, suffix))?;
    }
    if removed {
        tracing::warn!(
            "removed the temp file of an interrupted catalog upgrade; it will be redone"
        );
        fsutil::fsync_dir(&parent(path))?;
    }
    Ok(())
}

/// Row count of every table (including `sqlite_sequence`), by name: what the copy must match.
pub(crate) fn table_counts(c: &Connection) -> Result<Vec<(String, i64)>> {
    let names: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_stat%'
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    names
        .into_iter()
        .map(|n| {
            let q = format!("SELECT count(*) FROM \"{}\"", n.replace('"', "\"\""));
            let count: i64 = c.query_row(&q, [], |r| r.get(0))?;
            Ok((n, count))
        })
        .collect()
}

/// Upgrades the catalog at `path` from cipher format v1 to v2 in place (see the module doc).
/// Fails with `corrupt_catalog`, changing nothing, if the catalog does not read in v1 either;
/// with `unsupported_version` if its schema is newer than this build.
pub(crate) fn upgrade_v1_to_v2(path: &Path, key: &CatalogKey) -> Result<()> {
    let started = Instant::now();
    let dir = parent(path);
    let tmp = with_suffix(path, UPGRADE_SUFFIX);
    let old = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    if key_and_probe(&old, key, CipherFormat::V1).is_err() {
        return Err(Error::CorruptCatalog(
            "the catalog cannot be read with this vault's key in any known format (damaged, or from another vault)"
                .into(),
        ));
    }
    let version: u32 = old.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > current_schema_version() {
        return Err(Error::UnsupportedVersion(format!(
            "the catalog has schema version {version}, this LabVault understands up to {}; update LabVault",
            current_schema_version()
        )));
    }
    old.busy_timeout(std::time::Duration::from_secs(5))?;
    // Everything from the WAL into the main file, so the old catalog is complete on its own
    // and no WAL of the old file can ever be replayed onto the new one.
    let busy: i64 = old.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(Error::VaultBusy(
            "catalog (checkpoint before upgrade)".into(),
        ));
    }
    let counts = table_counts(&old)?;
    let events = counts
        .iter()
        .find(|(n, _)| n == "audit_events")
        .map_or(0, |c| c.1);
    tracing::info!(
        audit_events = events,
        "upgrading the catalog to cipher format v2 (HMAC-SHA256 pages); a large audit trail takes a few seconds"
    );

    // The old connection's checkpointed WAL and shm files go away with it.
    old.close().map_err(|(_, e)| Error::from(e))?;
    let checked =
        copy_into(path, &tmp, key, version).and_then(|()| check_copy(&tmp, key, version, &counts));
    if let Err(e) = checked {
        let _ = remove_leftovers(path);
        return Err(e);
    }
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io_path("syncing", &tmp, e))?;
    fsutil::fsync_dir(&dir)?;
    // Every connection to the old catalog is closed, so its (checkpointed, truncated) WAL and
    // shm files are gone or empty. A non-empty WAL now would be replayed onto the new file: refuse.
    let wal = with_suffix(path, "-wal");
    if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        let _ = remove_leftovers(path);
        return Err(Error::Internal(
            "the catalog's WAL is not empty after a checkpoint; not upgrading".into(),
        ));
    }
    remove_if_present(&wal)?;
    remove_if_present(&with_suffix(path, "-shm"))?;
    fs::rename(&tmp, path).map_err(|e| Error::io_path("replacing", path, e))?;
    fsutil::fsync_dir(&dir)?;
    tracing::info!(
        audit_events = events,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "catalog upgraded to cipher format v2"
    );
    Ok(())
}

/// Builds the v2 copy at `tmp` (created here, exclusively) from the v1 catalog at `path`: the
/// copy is the main database of a new connection and the old catalog is attached in the v1
/// format (only read), so the schema's own SQL runs unchanged. Tables and indexes first, then
/// the rows table by table, then triggers and views, in one transaction. (Indexes before rows,
/// in a 128 MiB page cache, measured 2x less CPU than building them afterwards with SQLite's
/// sorter on a 1,000,000-event catalog.) The copy has no journal and no sync: a failure or
/// crash discards it whole. `temp_store = MEMORY` (set on every catalog connection) keeps any
/// sorter spill, which would hold plaintext keys, off the disk.
fn copy_into(path: &Path, tmp: &Path, key: &CatalogKey, version: u32) -> Result<()> {
    let old_name = path.to_str().ok_or_else(|| {
        Error::Internal(format!(
            "the vault path {} is not UTF-8; cannot upgrade its catalog",
            path.display()
        ))
    })?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| Error::io_path("creating", tmp, e))?;
    let new = Connection::open_with_flags(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    key_connection(&new, key, CipherFormat::V2)?;
    new.execute_batch(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         PRAGMA cache_size = -131072;",
    )?;
    let key_value = key.sqlcipher_key_pragma_value();
    new.execute(
        "ATTACH DATABASE ?1 AS old KEY ?2",
        params![old_name, key_value.as_str()],
    )?;
    drop(key_value);
    new.execute_batch(&CipherFormat::V1.pragmas("old"))?;
    let schema: Vec<(String, String, String)> = new
        .prepare(
            "SELECT type, name, sql FROM old.sqlite_master
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    new.execute_batch("BEGIN")?;
    let quoted = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    for (ty, _, sql) in &schema {
        if ty == "table" || ty == "index" {
            new.execute_batch(sql)?;
        }
    }
    for (ty, name, _) in &schema {
        if ty == "table" {
            new.execute_batch(&format!(
                "INSERT INTO main.{0} SELECT * FROM old.{0};",
                quoted(name)
            ))?;
        }
    }
    for (ty, _, sql) in &schema {
        if ty != "table" && ty != "index" {
            new.execute_batch(sql)?;
        }
    }
    let has = |name: &str| -> Result<bool> {
        Ok(new.query_row(
            "SELECT count(*) > 0 FROM old.sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )?)
    };
    if has("sqlite_sequence")? {
        new.execute_batch(
            "DELETE FROM main.sqlite_sequence;
             INSERT INTO main.sqlite_sequence SELECT * FROM old.sqlite_sequence;",
        )?;
    }
    // Planner statistics, if the catalog was ever analysed (`ANALYZE sqlite_schema` only
    // creates the table).
    if has("sqlite_stat1")? {
        new.execute_batch(
            "ANALYZE main.sqlite_schema;
             DELETE FROM main.sqlite_stat1;
             INSERT INTO main.sqlite_stat1 SELECT * FROM old.sqlite_stat1;",
        )?;
    }
    new.execute_batch(&format!(
        "PRAGMA main.user_version = {version}; COMMIT; DETACH DATABASE old;"
    ))?;
    new.close().map_err(|(_, e)| Error::from(e))?;
    Ok(())
}

/// Opens the copy in the v2 format and checks it before it may replace the old catalog:
/// SQLite's integrity check, the schema version and every table's row count.
pub(crate) fn check_copy(
    tmp: &Path,
    key: &CatalogKey,
    version: u32,
    counts: &[(String, i64)],
) -> Result<()> {
    let new = Connection::open_with_flags(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    key_and_probe(&new, key, CipherFormat::V2)?;
    let check: String = new.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    let new_version: u32 = new.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let new_counts = table_counts(&new)?;
    if check != "ok" || new_version != version || new_counts != counts {
        return Err(Error::Internal(format!(
            "the upgraded catalog copy does not match the original (check: {check}; schema {new_version} vs {version}; tables {new_counts:?} vs {counts:?}); the original is kept"
        )));
    }
    Ok(())
}
