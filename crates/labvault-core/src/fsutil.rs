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

/// A new directory built under a hidden name beside its destination and renamed into place only
/// when complete ([`Staging::commit`]); dropped before that, it is removed with what it holds, so
/// a failed or cancelled export never leaves something that looks finished.
pub(crate) struct Staging {
    path: Option<std::path::PathBuf>,
    parent: std::path::PathBuf,
}

impl Staging {
    /// Creates the hidden directory beside `dest`; refuses an existing `dest` (`what` names it
    /// in the error, e.g. "bundle").
    pub(crate) fn beside(dest: &Path, what: &str) -> Result<Staging> {
        if fs::symlink_metadata(dest).is_ok() {
            return Err(Error::AlreadyExists(format!(
                "{} exists: choose a new name for the {what}",
                dest.display()
            )));
        }
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let base = dest
            .file_name()
            .ok_or_else(|| Error::InvalidArgument(format!("the {what} needs a name")))?
            .to_string_lossy()
            .into_owned();
        let path = parent.join(format!(".{base}.labvault-partial-{}", random_hex(6)));
        fs::create_dir(&path).map_err(|e| Error::io_path("creating", &path, e))?;
        Ok(Staging {
            path: Some(path),
            parent,
        })
    }

    /// The hidden directory.
    pub(crate) fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("a staging directory until committed")
    }

    /// The directory it lives in (and `dest` will).
    pub(crate) fn parent(&self) -> &Path {
        &self.parent
    }

    /// Makes it durable and renames it to `dest`.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<()> {
        let path = self.path.take().expect("committed once");
        let done = fsync_dir(&path)
            .and_then(|_| fs::rename(&path, dest).map_err(|e| Error::io_path("writing", dest, e)))
            .and_then(|_| fsync_dir(&self.parent));
        if done.is_err() {
            let _ = fs::remove_dir_all(&path);
        }
        done
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(&p);
        }
    }
}

/// RFC 3339 of `t` (empty if it cannot be written, which a valid time always can).
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
