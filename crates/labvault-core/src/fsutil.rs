//! Durable file-system primitives: atomic replace, directory fsync, random ids.

use crate::error::{Error, Result};
use rand::RngCore;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Random lowercase hex string of `n` bytes of entropy; used for blob and temp file names so
/// nothing on disk is derived from a user-chosen name.
pub(crate) fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// fsyncs a directory so a rename/create inside it survives a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_path("syncing directory", dir, e))
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal("atomic_write without a parent directory".into()))?;
    let tmp = dir.join(format!(".{}.tmp", random_hex(8)));
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io_path("writing", path, e));
    }
    fsync_dir(dir)
}
