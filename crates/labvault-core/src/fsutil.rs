//! Durable file-system primitives: atomic replace, directory fsync, the vault lock, random ids.

use crate::error::{Error, Result};
use rand::RngCore;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// An exclusive advisory lock on `<vault>/vault.lock`, held for as long as a vault handle is
/// open, so two processes never write one vault at once. Released when dropped (or when the
/// process dies: the kernel drops flock locks with the file descriptor).
#[derive(Debug)]
pub(crate) struct VaultLock {
    _file: File,
}

impl VaultLock {
    pub(crate) fn acquire(dir: &Path) -> Result<VaultLock> {
        let path = dir.join(crate::vault::LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io_path("opening lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(VaultLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::VaultBusy(dir.display().to_string())),
            Err(fs::TryLockError::Error(e)) => Err(Error::io_path("locking", &path, e)),
        }
    }
}

/// Where a blob with this id lives: `blobs/<first 2 hex>/<id>`.
pub(crate) fn blob_path(dir: &Path, blob_id: &str) -> PathBuf {
    dir.join(crate::vault::BLOBS_DIR)
        .join(&blob_id[..2])
        .join(blob_id)
}
