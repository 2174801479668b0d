//! Coordination between processes that open the same vault directory.
//!
//! * Every open vault handle holds a **shared** lock on `vault.lock`. Creating a vault, upgrading
//!   the catalog's cipher format and running schema migrations rewrite what the others read, so
//!   they need it **exclusively**: no other process may have the vault open then.
//! * A process that changes the vault (import, delete, retention, ...) holds the **writer** lock,
//!   an exclusive lock on `vault.writer`, for the length of that one operation, and writes a note
//!   naming itself into the file, so a second writer is refused with a `vault_busy` error that
//!   says who holds the vault and since when, instead of waiting or corrupting anything.
//!
//! Reading (listing, previews, export, verify) needs neither: the catalog is in WAL mode and
//! blobs are immutable once committed. The kernel drops `flock` locks with the process, so a
//! crashed holder never leaves a stale lock.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Lock file every open handle holds (shared) and creation/upgrades hold exclusively.
pub const OPEN_LOCK_FILE: &str = "vault.lock";
/// Lock file of the one writer; holds a note naming it.
pub const WRITER_LOCK_FILE: &str = "vault.writer";

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io_path("opening lock file", path, e))
}

/// The shared (or, briefly, exclusive) lock of an open vault handle.
#[derive(Debug)]
pub(crate) struct OpenLock {
    file: File,
    path: PathBuf,
}

impl Drop for OpenLock {
    /// Unlocks explicitly, for the reason given at [`WriterLock`]'s `drop`.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl OpenLock {
    /// Takes the shared lock: refused only while another process creates or upgrades the vault.
    pub(crate) fn shared(dir: &Path) -> Result<OpenLock> {
        let path = dir.join(OPEN_LOCK_FILE);
        let file = open_lock_file(&path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(OpenLock { file, path }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::VaultBusy(format!(
                "another LabVault process is creating or upgrading the vault at {}, or has it open read-only because its disk is full; try again in a moment",
                dir.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(Error::io_path("locking", &path, e)),
        }
    }

    /// Takes the lock exclusively (vault creation).
    pub(crate) fn exclusive(dir: &Path) -> Result<OpenLock> {
        let path = dir.join(OPEN_LOCK_FILE);
        let file = open_lock_file(&path)?;
        let lock = OpenLock { file, path };
        lock.make_exclusive(dir)?;
        Ok(lock)
    }

    /// Turns this lock exclusive: fails with `vault_busy` while any other process has the
    /// vault open. Call [`OpenLock::make_shared`] when the exclusive work is done.
    pub(crate) fn make_exclusive(&self, dir: &Path) -> Result<()> {
        match self.file.try_lock() {
            Ok(()) => Ok(()),
            Err(fs::TryLockError::WouldBlock) => Err(Error::VaultBusy(format!(
                "the vault at {} is open in another LabVault process; close it there first \
                 (creating a vault or upgrading its catalog needs it to yourself)",
                dir.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(Error::io_path("locking", &self.path, e)),
        }
    }

    /// Back to a shared lock after exclusive work.
    pub(crate) fn make_shared(&self) -> Result<()> {
        self.file
            .lock_shared()
            .map_err(|e| Error::io_path("locking", &self.path, e))
    }
}

/// Who holds the writer lock, as written into `vault.writer` for whoever is refused.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct WriterNote {
    /// Process id.
    pub pid: u32,
    /// Program and version (the vault handle's user agent).
    pub program: String,
    /// The operation (an audit action such as `data.import`).
    pub operation: String,
    /// When it started (RFC 3339).
    pub since: String,
}

impl WriterNote {
    fn describe(&self) -> String {
        format!(
            "{} (process {}) is running {} since {}",
            self.program, self.pid, self.operation, self.since
        )
    }
}

/// The writer lock, held for one changing operation. Released when dropped.
#[derive(Debug)]
pub(crate) struct WriterLock {
    file: File,
}

impl WriterLock {
    /// Takes the writer lock without waiting; `vault_busy` naming the holder if another process
    /// has it.
    pub(crate) fn try_acquire(dir: &Path, note: &WriterNote) -> Result<WriterLock> {
        let path = dir.join(WRITER_LOCK_FILE);
        let mut file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<WriterNote>(text.trim())
                    .map(|n| n.describe())
                    .unwrap_or_else(|_| "another LabVault process is changing it".into());
                return Err(Error::VaultBusy(format!(
                    "the vault at {} is busy: {holder}; try again when it has finished",
                    dir.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io_path("locking", &path, e)),
        }
        // The note is advice for error messages only: failing to write it changes nothing.
        let json = serde_json::to_string(note).unwrap_or_default();
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(json.as_bytes()));
        Ok(WriterLock { file })
    }
}

impl Drop for WriterLock {
    /// Unlocks explicitly rather than by closing: a child process forked by another thread
    /// (any `Command` in this process) holds a copy of the descriptor until it execs, and a
    /// `flock` lives as long as any copy. Closing alone would leave the vault "busy" for that
    /// moment; `LOCK_UN` releases it for every copy at once.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> WriterNote {
        WriterNote {
            pid: std::process::id(),
            program: "test".into(),
            operation: "data.import".into(),
            since: "2026-12-07T00:00:00Z".into(),
        }
    }

    /// A copy of the descriptor (what a child forked by another thread holds until it execs)
    /// must not keep the vault busy once the writer is done.
    #[test]
    fn a_released_writer_lock_is_free_even_while_a_copy_of_its_descriptor_lives() {
        let tmp = tempfile::tempdir().unwrap();
        let first = WriterLock::try_acquire(tmp.path(), &note()).unwrap();
        let inherited = first.file.try_clone().unwrap();
        let e = WriterLock::try_acquire(tmp.path(), &note()).unwrap_err();
        assert!(e.to_string().contains("process"), "{e}");
        drop(first);
        WriterLock::try_acquire(tmp.path(), &note()).expect("the writer lock is free again");
        drop(inherited);
    }

    #[test]
    fn a_closed_handle_does_not_block_creation_while_a_copy_of_its_descriptor_lives() {
        let tmp = tempfile::tempdir().unwrap();
        let open = OpenLock::shared(tmp.path()).unwrap();
        let inherited = open.file.try_clone().unwrap();
        drop(open);
        OpenLock::exclusive(tmp.path()).expect("no handle has the vault open");
        drop(inherited);
    }
}
