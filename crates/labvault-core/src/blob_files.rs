//! The files under `blobs/` against the catalog: which ones committed rows reference, sweeping
//! the orphans an interrupted operation left, and erasing the records of erased items from
//! their packs.

use crate::error::{Error, Result};
use crate::layout::{blob_path, BLOBS_DIR, BLOBS_UNSETTLED, TMP_DIR};
use crate::packs;
use crate::vault::{WriteOp, MARKER_PROTOCOL_META};
use rusqlite::Connection;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Names of the files in `blobs/` that committed catalog rows reference: blobs of their own
/// and packs.
pub(crate) fn referenced(conn: &Connection) -> Result<HashSet<String>> {
    let mut st = conn.prepare(
        "SELECT blob_id FROM item_versions WHERE blob_id IS NOT NULL AND pack_id IS NULL
         UNION SELECT DISTINCT pack_id FROM item_versions WHERE pack_id IS NOT NULL",
    )?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every file under `blobs/` as (file name, path).
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let blobs = dir.join(BLOBS_DIR);
    let mut out = Vec::new();
    let rd = match fs::read_dir(&blobs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(&blobs).map_err(|e| Error::io_path("creating", &blobs, e))?;
            return Ok(out);
        }
        Err(e) => return Err(Error::io_path("listing", &blobs, e)),
    };
    for shard in rd {
        let shard = shard.map_err(|e| Error::io_path("listing", &blobs, e))?;
        if !shard.path().is_dir() {
            out.push((
                shard.file_name().to_string_lossy().into_owned(),
                shard.path(),
            ));
            continue;
        }
        for f in
            fs::read_dir(shard.path()).map_err(|e| Error::io_path("listing", &shard.path(), e))?
        {
            let f = f.map_err(|e| Error::io_path("listing", &shard.path(), e))?;
            out.push((f.file_name().to_string_lossy().into_owned(), f.path()));
        }
    }
    Ok(out)
}

/// Whether an operation that adds or removes blobs is running or did not finish (then files
/// no committed row references are expected, and the next unlock sweeps them).
pub(crate) fn unsettled(dir: &Path) -> bool {
    dir.join(BLOBS_UNSETTLED).exists()
}

/// Removes from a pack the bytes of every record no catalog row references any more
/// (erased items). False when no record of it is live (the caller removes the file).
pub(crate) fn erase_dead_records(conn: &Connection, dir: &Path, pack_id: &str) -> Result<bool> {
    let live = packs::live_records(conn, pack_id)?;
    if live.is_empty() {
        return Ok(false);
    }
    let path = blob_path(dir, pack_id);
    let size = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(Error::io_path("reading", &path, e)),
    };
    let dead = packs::gaps(&live, size);
    if !dead.is_empty() {
        packs::erase_ranges(&path, &dead)?;
    }
    Ok(true)
}

/// Removes what an interrupted operation can leave behind: every file in `tmp/` (nothing
/// committed ever points there), stray key-file temp files, and, when [`BLOBS_UNSETTLED`] says
/// an import or erasure did not finish cleanly (or the vault predates the marker), blobs that
/// no committed catalog row references (written by an import that died before its transaction
/// committed, or left by a purge that died after its commit). Runs as the vault's writer, so no
/// other process can be between writing a blob and committing it. Returns how many files were
/// removed.
pub(crate) fn sweep(w: &mut WriteOp<'_>) -> Result<u64> {
    let dir = w.vault.dir.clone();
    let mut removed = 0u64;
    let tmp = dir.join(TMP_DIR);
    if let Ok(rd) = fs::read_dir(&tmp) {
        for e in rd.flatten() {
            if fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
    } else {
        fs::create_dir_all(&tmp).map_err(|e| Error::io_path("creating", &tmp, e))?;
    }
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with('.') && n.ends_with(".tmp") && fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
    }
    let marker = dir.join(BLOBS_UNSETTLED);
    let legacy = crate::catalog::meta(w.conn(), MARKER_PROTOCOL_META)?.is_none();
    if legacy || marker.exists() {
        let referenced = referenced(w.conn())?;
        let mut dirs = std::collections::BTreeSet::new();
        for (blob_id, path) in list(&dir)? {
            if !referenced.contains(&blob_id) {
                fs::remove_file(&path).map_err(|e| Error::io_path("removing orphan", &path, e))?;
                removed += 1;
                dirs.extend(path.parent().map(Path::to_path_buf));
            }
        }
        // Records of erased items whose bytes a crash left in their pack.
        let packs: Vec<String> = {
            let mut st = w
                .conn()
                .prepare("SELECT DISTINCT pack_id FROM item_versions WHERE pack_id IS NOT NULL")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for p in packs {
            erase_dead_records(w.conn(), &dir, &p)?;
        }
        // The removals must be durable before the marker that would redo them goes.
        for d in dirs {
            crate::fsutil::fsync_dir(&d)?;
        }
        if legacy {
            w.tx(|tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, '1')",
                    [MARKER_PROTOCOL_META],
                )?;
                Ok(())
            })?;
        }
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_path("removing", &marker, e)),
        }
        w.blobs_settled();
    }
    if removed > 0 {
        tracing::info!(removed, "cleaned up files left by an interrupted operation");
    }
    Ok(removed)
}
