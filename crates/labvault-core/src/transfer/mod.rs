//! Moving bytes in and out: import (files and directory trees), export (items and areas) and
//! verify. All streaming through blob format v1, constant memory whatever the file size.
//!
//! Crash-safety protocol for import: every blob is encrypted into a temp file in `tmp/`,
//! synced, renamed into `blobs/<xx>/` and that directory fsynced before the catalog transaction
//! that references it commits, and a file is reported as imported only after that commit.
//! Small files do this as a group: their blobs become the records of ONE pack file (see
//! `packs.rs`), with one sync, one rename, one directory fsync and one transaction for the
//! group (group commit, at most [`IMPORT_GROUP_FILES`] files); big files get a blob file each,
//! one at a time. Anything a crash leaves behind is unreferenced and removed at the next
//! unlock.
//!
//! The folder: `import.rs` (planning, big files, group commits), `pack_writer.rs` (small files
//! sealed by workers into one pack per group), `export.rs` (items and areas, group export),
//! `verify.rs` (the whole-vault check), `sql.rs` (the catalog rows they read and write) and
//! `phases.rs` (the import benchmark's time budget, compiled only with `bench-phases`).

mod export;
mod import;
mod pack_writer;
mod phases;
mod sql;
/// Inserting an item version, for the modules above that add one (a copy of a version).
pub(crate) use sql::insert_version;
mod verify;

pub(crate) use export::Versions;
pub use export::EXPORT_GROUP_FILES;
pub use import::IMPORT_GROUP_FILES;
#[cfg(feature = "bench-phases")]
pub use phases::take_import_phase_times;

use crate::error::{Error, ErrorCode, Result};
use crate::layout::TMP_DIR;
use crate::model::{Area, DataType};
use labvault_crypto::CryptoError;
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Progress and outcome notifications from [`Vault::import`].
#[derive(Debug)]
pub enum ImportEvent<'a> {
    /// Planning done: this much will be read.
    Started {
        /// Files to import.
        files_total: u64,
        /// Their total size.
        bytes_total: u64,
    },
    /// Bytes of one file encrypted so far.
    Progress {
        /// Logical path being imported.
        path: &'a str,
        /// Bytes of this file done.
        file_done: u64,
        /// Size of this file.
        file_total: u64,
        /// Bytes of the whole import done.
        overall_done: u64,
        /// Size of the whole import.
        overall_total: u64,
    },
    /// A file is committed: it survives any crash from now on.
    FileDone(&'a ImportedFile),
    /// A file was skipped; the import goes on with the others.
    FileFailed(&'a ImportFailure),
}

/// Progress of [`Vault::export_item`] / [`Vault::export_area`] / [`Vault::verify`].
#[derive(Debug, Clone)]
pub struct TransferProgress<'a> {
    /// The item's logical path.
    pub path: &'a str,
    /// Bytes of this item done.
    pub file_done: u64,
    /// Size of this item.
    pub file_total: u64,
    /// Bytes done overall.
    pub overall_done: u64,
    /// Total bytes overall.
    pub overall_total: u64,
}

/// Options for [`Vault::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Data type for every imported item; default by area.
    pub data_type: Option<DataType>,
    /// Logical directory inside the area to import under (e.g. `run-7`).
    pub dest_prefix: Option<String>,
    /// Set when an instrument folder watch imports: each file's journal row commits with it.
    pub watch: Option<crate::watches::WatchOrigin>,
}

/// A committed import of one file.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedFile {
    /// Where it came from.
    pub source: PathBuf,
    /// Item id.
    pub item_id: String,
    /// Logical path in the area.
    pub path: String,
    /// Version created (1 = new item, >1 = new version of an existing path).
    pub version: u32,
    /// Plaintext size.
    pub size: u64,
    /// Plaintext SHA-256, hex.
    pub sha256: String,
}

/// A file that was not imported, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ImportFailure {
    /// The source file. Serialized as text: a name that is not UTF-8 keeps every byte, the
    /// ones that are not valid UTF-8 written as `\xNN`, so JSON output stays valid.
    #[serde(serialize_with = "path_text")]
    pub source: PathBuf,
    /// Stable error code.
    pub code: ErrorCode,
    /// Human-readable reason naming the file.
    pub message: String,
}

/// Outcome of an import that ran to the end (fatal errors and cancellation are `Err`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Files imported.
    pub imported: Vec<ImportedFile>,
    /// Files skipped.
    pub failed: Vec<ImportFailure>,
}

/// Options for exports.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Replace existing files at the destination (default: refuse with `already_exists`).
    pub overwrite: bool,
}

/// What an area export did: the files written, and each item it could not export.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    /// Files written.
    pub exported: Vec<PathBuf>,
    /// Items not exported, with why (each left nothing at the destination).
    pub failed: Vec<ExportFailure>,
}

/// An item an export could not write.
#[derive(Debug, Clone, Serialize)]
pub struct ExportFailure {
    /// Its area and logical path.
    pub path: String,
    /// Stable error code.
    pub code: ErrorCode,
    /// Why, naming the file.
    pub message: String,
}

/// One problem found by [`Vault::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyProblem {
    /// Stable code (`tampered`, `truncated`, `not_found` for a missing blob, `corrupt_catalog`, ...).
    pub code: ErrorCode,
    /// The item concerned, if any.
    pub item_id: Option<String>,
    /// Its project.
    pub project: Option<String>,
    /// Its area.
    pub area: Option<Area>,
    /// Its path.
    pub path: Option<String>,
    /// Its version.
    pub version: Option<u32>,
    /// What is wrong, naming the item or file.
    pub message: String,
}

/// Outcome of [`Vault::verify`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Blob versions decrypted and hashed.
    pub blobs_checked: u64,
    /// Plaintext bytes checked.
    pub bytes_checked: u64,
    /// Everything wrong; empty means the vault is intact.
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Maps a blob-processing error to a vault error naming `what`.
pub(crate) fn blob_err(e: CryptoError, what: &str) -> Error {
    let what = what.to_string();
    match e {
        CryptoError::Tampered { chunk } => Error::Tampered {
            what,
            detail: format!("chunk {chunk} failed authentication"),
        },
        CryptoError::Truncated => Error::Truncated {
            what,
            detail: "its blob ends before the final chunk".into(),
        },
        CryptoError::TrailingData => Error::Tampered {
            what,
            detail: "data after the final chunk".into(),
        },
        CryptoError::NotABlob => Error::Tampered {
            what,
            detail: "its blob is not a LabVault blob".into(),
        },
        CryptoError::FileIdMismatch => Error::Tampered {
            what,
            detail: "its blob belongs to another file".into(),
        },
        CryptoError::InvalidHeader(m) => Error::Tampered {
            what,
            detail: format!("invalid blob header: {m}"),
        },
        CryptoError::UnsupportedVersion(v) => {
            Error::UnsupportedVersion(format!("{what}: blob format version {v}"))
        }
        CryptoError::KeyUnwrapFailed { .. } | CryptoError::InvalidWrappedKey(_) => {
            Error::Tampered {
                what,
                detail: "its wrapped data key failed authentication".into(),
            }
        }
        CryptoError::Io(io) => Error::io(what, io),
        other => Error::Internal(format!("{what}: {other}")),
    }
}

/// Reader wrapper: stops on cancellation and remembers its own errors, so a failure can be
/// attributed to the source (not the vault disk) and named.
pub(super) struct SourceReader<'a, R> {
    pub(super) inner: R,
    pub(super) cancel: &'a AtomicBool,
    pub(super) cancelled: bool,
    pub(super) error: Option<io::Error>,
}

impl<R: Read> Read for SourceReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            self.cancelled = true;
            return Err(io::Error::other("cancelled"));
        }
        self.inner.read(buf).inspect_err(|e| {
            self.error = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Writer wrapper, same idea on the output side (ENOSPC at the destination).
pub(super) struct SinkWriter<'a, W> {
    pub(super) inner: W,
    pub(super) cancel: &'a AtomicBool,
    pub(super) cancelled: bool,
    pub(super) error: Option<io::Error>,
}

impl<W: Write> Write for SinkWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            self.cancelled = true;
            return Err(io::Error::other("cancelled"));
        }
        self.inner.write(buf).inspect_err(|e| {
            self.error = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.error = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Removes a temp file on drop unless disarmed: nothing half-written survives an error path.
pub(crate) struct TempGuard(pub(crate) Option<PathBuf>);

impl TempGuard {
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Files up to this size are imported in groups with one durable commit per group (for small
/// files the fsyncs and the commit, not the CPU, set the pace). Bigger files go one at a time
/// (each already uses every core) with fine-grained progress.
pub(super) const GROUP_FILE_MAX_BYTES: u64 = 1 << 20;

/// At most this many plaintext bytes share one group commit (bounds the work a crash or a
/// cancellation throws away).
pub(super) const GROUP_MAX_BYTES: u64 = 64 << 20;

/// Makes the data of `files` durable, then closes them. On Linux, with `fs_handle` (a
/// descriptor on the files' file system opened before they were written), ONE `syncfs`: the
/// kernel writes back all dirty data of the file system and commits its journal once, instead
/// of one journal commit and cache flush per file, and reports any writeback error since
/// `fs_handle` was opened (Linux >= 5.8). Elsewhere, without a handle, or if `syncfs` is
/// refused: fdatasync every file, a few at a time in parallel so the file system can fold them
/// into few journal commits.
pub(super) fn sync_files(
    files: Vec<(File, &Path)>,
    fs_handle: Option<&File>,
    dir: &Path,
) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    if let Some(h) = fs_handle {
        match rustix::fs::syncfs(h) {
            Ok(()) => return Ok(()),
            // Not supported here (ENOSYS in some sandboxes): fall back to per-file syncs.
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => {}
            Err(e) => return Err(Error::io_path("syncing", dir, e.into())),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (fs_handle, dir);
    let threads = files.len().min(SYNC_THREADS);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((f, path)) = files.get(k) else {
                    break;
                };
                if let Err(e) = f.sync_data() {
                    let mut slot = errors.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(Error::io_path("syncing", path, e));
                }
            });
        }
    });
    match errors.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Concurrent fdatasyncs per group.
pub(super) const SYNC_THREADS: usize = 16;

/// Write-behind: a big file's writer asks a helper thread to `fdatasync` what it has written
/// every this many bytes, so the disk writes while the cores still encrypt or decrypt, and the
/// final fsync (which stays: nothing is renamed before it) finds little left to flush.
pub(super) const WRITE_BEHIND_BYTES: u64 = 32 << 20;

/// A file writer with optional write-behind (see [`WRITE_BEHIND_BYTES`]). [`WriteBehind::finish`]
/// returns the file and any error of the helper's syncs (a failed writeback is never ignored).
pub(super) struct WriteBehind {
    file: File,
    since: u64,
    flusher: Option<(
        std::sync::mpsc::SyncSender<()>,
        std::thread::JoinHandle<io::Result<()>>,
    )>,
}

impl WriteBehind {
    /// `enabled` for files big enough to benefit; small files get no thread.
    pub(super) fn new(file: File, enabled: bool) -> WriteBehind {
        let flusher = if enabled {
            file.try_clone().ok().map(|f| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
                let h = std::thread::spawn(move || {
                    for () in rx {
                        f.sync_data()?;
                    }
                    Ok(())
                });
                (tx, h)
            })
        } else {
            None
        };
        WriteBehind {
            file,
            since: 0,
            flusher,
        }
    }

    pub(super) fn finish(mut self) -> io::Result<File> {
        if let Some((tx, h)) = self.flusher.take() {
            drop(tx);
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("the write-behind thread panicked")))?;
        }
        Ok(self.file)
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= WRITE_BEHIND_BYTES {
            if let Some((tx, _)) = &self.flusher {
                // Busy (the previous sync still runs): try again after the next write. Gone
                // (its sync failed): `finish` reports the error.
                if !matches!(tx.try_send(()), Err(std::sync::mpsc::TrySendError::Full(_))) {
                    self.since = 0;
                }
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Creates the new file `path` (never opens an existing one), with the guard that removes it
/// unless disarmed: every temp file of an import or export.
pub(super) fn create_guarded(path: &Path) -> Result<(File, TempGuard)> {
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io_path("creating", path, e))?;
    // Guarded only once created: a name that already existed is never ours to remove.
    Ok((out, TempGuard(Some(path.to_path_buf()))))
}

/// End (exclusive) of the run of small files that starts at `start` (whose file is small):
/// at most `max_files` files and [`GROUP_MAX_BYTES`] bytes, ending before the first file bigger
/// than [`GROUP_FILE_MAX_BYTES`]. Import and export group the same way, so one group's worth of
/// temp files shares one sync pass in both directions.
pub(super) fn small_run_end(
    len: usize,
    start: usize,
    max_files: usize,
    size_of: impl Fn(usize) -> u64,
) -> usize {
    let mut end = start;
    let mut bytes = 0u64;
    while end < len
        && size_of(end) <= GROUP_FILE_MAX_BYTES
        && end - start < max_files
        && (end == start || bytes + size_of(end) <= GROUP_MAX_BYTES)
    {
        bytes += size_of(end);
        end += 1;
    }
    end
}

/// The blob format's file id is the blob id's 16 random bytes.
pub(super) fn file_id_of(blob_id: &str) -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    hex::decode_to_slice(blob_id, &mut id)
        .map_err(|_| Error::CorruptCatalog(format!("malformed blob id {blob_id:?}")))?;
    Ok(id)
}

// One planned file of an import.
pub(super) struct Planned {
    pub(super) source: PathBuf,
    pub(super) path: String,
    pub(super) size: u64,
}

/// Creates `tmp/<id>.tmp` for a blob or pack being written, with the guard that removes it.
pub(crate) fn create_temp(dir: &Path, id: &str) -> Result<(File, PathBuf, TempGuard)> {
    let tmp_path = dir.join(TMP_DIR).join(format!("{id}.tmp"));
    let (out, guard) = create_guarded(&tmp_path)?;
    Ok((out, tmp_path, guard))
}

/// Opens an import source without following a symbolic link and without blocking, then
/// checks that what was opened is a regular file: a file swapped for a link after planning
/// (which would import whatever it points to, `/etc/passwd` under the file's name) or for a
/// pipe or device (which would hang the import while it holds the vault) is refused as
/// `source_vanished`, as is one that no longer exists.
pub(super) fn open_source(source: &Path, src_name: &str) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let replaced = |what: &str| Error::SourceVanished {
        path: src_name.to_string(),
        detail: format!("it was replaced by {what} since the import was planned; not read"),
    };
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits();
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags as i32)
        .open(source)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::SourceVanished {
                path: src_name.to_string(),
                detail: "it no longer exists".into(),
            })
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(replaced("a symbolic link"))
        }
        Err(e) => return Err(Error::io(format!("reading source {src_name}"), e)),
    };
    let meta = f
        .metadata()
        .map_err(|e| Error::io(format!("reading source {src_name}"), e))?;
    if !meta.is_file() {
        return Err(replaced(
            "something that is not a regular file (a pipe, socket or device)",
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod open_source_tests {
    use super::open_source;

    #[test]
    fn a_link_or_a_pipe_in_place_of_a_planned_file_is_refused_at_once() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real.txt");
        std::fs::write(&real, b"data").unwrap();
        open_source(&real, "real.txt").unwrap();
        let link = t.path().join("data.csv");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let e = open_source(&link, "data.csv").unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::SourceVanished, "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let fifo = t.path().join("fifo.csv");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Without a writer on the other end, a blocking open would never return.
        let e = open_source(&fifo, "fifo.csv").unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::SourceVanished, "{e}");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let gone = open_source(&t.path().join("gone"), "gone").unwrap_err();
        assert_eq!(gone.code(), crate::ErrorCode::SourceVanished);
    }
}

/// The source must be what we planned to read, and still be there: a file that shrank, grew
/// or vanished under us is not imported half-way.
pub(super) fn check_source_unchanged(p: &Planned, read: u64, src_name: &str) -> Result<()> {
    let now_len = fs::metadata(&p.source).map(|m| m.len());
    if read == p.size && now_len.as_ref().ok() == Some(&p.size) {
        return Ok(());
    }
    Err(Error::SourceVanished {
        path: src_name.to_string(),
        detail: match now_len {
            Err(_) => "it was removed while being read".into(),
            Ok(n) => format!(
                "its size changed while being read (expected {} bytes, read {read}, now {n})",
                p.size
            ),
        },
    })
}

/// Files that fail on their own are reported and skipped; anything else stops the import.
pub(super) fn is_per_file_error(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SourceVanished | ErrorCode::InvalidName | ErrorCode::AlreadyExists
    ) || matches!(e, Error::Io { context, .. } if context.starts_with("reading source"))
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Groups stop at the file count, at the byte budget (a lone file always fits) and before a
    /// big file, so neither a huge group nor a big file ever waits in a sync pass.
    #[test]
    fn small_runs_respect_count_bytes_and_big_files() {
        let kib = 1u64 << 10;
        let sizes = vec![kib; 600];
        assert_eq!(small_run_end(sizes.len(), 0, 256, |k| sizes[k]), 256);
        assert_eq!(small_run_end(sizes.len(), 512, 256, |k| sizes[k]), 600);
        let big = GROUP_FILE_MAX_BYTES + 1;
        let mixed = [kib, kib, big, kib];
        assert_eq!(small_run_end(mixed.len(), 0, 256, |k| mixed[k]), 2);
        let mib = GROUP_FILE_MAX_BYTES;
        let full = vec![mib; 100];
        assert_eq!(
            small_run_end(full.len(), 0, 256, |k| full[k]),
            (GROUP_MAX_BYTES / mib) as usize
        );
        let empty = [0u64; 3];
        assert_eq!(small_run_end(empty.len(), 0, 2, |k| empty[k]), 2);
    }

    /// Write-behind must not change what lands in the file, must run its syncs while the
    /// writer goes on (more than one window here), and `finish` must hand back the file.
    #[test]
    fn write_behind_keeps_every_byte_and_finishes() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("f");
        let f = File::create(&path).unwrap();
        let mut w = WriteBehind::new(f, true);
        assert!(w.flusher.is_some(), "enabled: a sync thread runs");
        let block: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let windows = 2 * WRITE_BEHIND_BYTES as usize / block.len() + 3;
        for _ in 0..windows {
            w.write_all(&block).unwrap();
        }
        let f = w.finish().unwrap();
        f.sync_all().unwrap();
        let got = fs::read(&path).unwrap();
        assert_eq!(got.len(), windows * block.len());
        assert!(got.chunks(block.len()).all(|c| c == &block[..]));
    }

    /// Disabled (small files): no thread; dropping an unfinished writer (an error path) does
    /// not hang or panic.
    #[test]
    fn write_behind_disabled_and_dropped_unfinished() {
        let t = tempfile::tempdir().unwrap();
        let w = WriteBehind::new(File::create(t.path().join("a")).unwrap(), false);
        assert!(w.flusher.is_none());
        let mut w = WriteBehind::new(File::create(t.path().join("b")).unwrap(), true);
        w.write_all(&[1u8; 4096]).unwrap();
        drop(w);
    }
}

/// A path as text that loses nothing: valid UTF-8 as it is, every other byte as `\xNN` (and
/// a backslash before such an escape doubled, so the text reads back unambiguously).
pub fn path_text_of(p: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = p.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::new();
            for chunk in bytes.utf8_chunks() {
                out.push_str(&chunk.valid().replace('\\', "\\\\"));
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

fn path_text<S: serde::Serializer>(
    p: &std::path::Path,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&path_text_of(p))
}

#[cfg(test)]
mod path_text_tests {
    #[test]
    fn non_utf8_names_serialize_as_valid_json_keeping_every_byte() {
        use std::os::unix::ffi::OsStrExt;
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(b"dir/bad\xff\xfe.csv"));
        assert_eq!(super::path_text_of(p), "dir/bad\\xff\\xfe.csv");
        let f = super::ImportFailure {
            source: p.to_path_buf(),
            code: crate::ErrorCode::InvalidName,
            message: "m".into(),
        };
        let j = serde_json::to_string(&f).unwrap();
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["source"], "dir/bad\\xff\\xfe.csv");
        assert_eq!(
            super::path_text_of(std::path::Path::new("ok/é.csv")),
            "ok/é.csv"
        );
    }
}
