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

use crate::error::{Error, ErrorCode, Result};
use crate::fsutil::{self, random_hex};
use crate::items::label;
use crate::model::{guess_media_type, Area, DataType, ItemInfo, ItemState, ListFilter};
use crate::names;
use crate::packs::BlobLoc;
use crate::vault::{ts_to_ms, Vault, BLOBS_DIR, TMP_DIR};
use labvault_crypto::{
    decrypt_blob, encrypt_blob, encrypt_blob_buffer, CryptoError, DataKey, PlaintextBuffer,
    ProjectKey, WrappedKey, DEFAULT_CHUNK_SIZE,
};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Where import time goes, summed over threads: phase name and nanoseconds. The import
/// benchmark prints it as a per-file budget; the cost is one clock read per phase per file.
static PHASE_NS: [std::sync::atomic::AtomicU64; PHASES.len()] =
    [const { std::sync::atomic::AtomicU64::new(0) }; PHASES.len()];

/// Names of the timed import phases, in protocol order (index = position).
pub const PHASES: [&str; 12] = [
    "plan",
    "open+create",
    "encrypt (read, hash, seal, write)",
    "size check",
    "wait for encryption (not overlapped)",
    "sync data",
    "rename",
    "dir fsync",
    "wrap data keys",
    "catalog rows",
    "catalog total (rows + audit + commit)",
    "report",
];

fn phase_add(i: usize, since: Instant) {
    PHASE_NS[i].fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Import time per phase since the last call (and resets the counters): for benchmarks that
/// want the per-file budget of the import protocol.
#[doc(hidden)]
pub fn take_import_phase_times() -> Vec<(&'static str, std::time::Duration)> {
    PHASES
        .iter()
        .zip(&PHASE_NS)
        .map(|(n, a)| {
            (
                *n,
                std::time::Duration::from_nanos(a.swap(0, Ordering::Relaxed)),
            )
        })
        .collect()
}

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
    /// The source file (lossy display for non-UTF-8 names).
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
struct SourceReader<'a, R> {
    inner: R,
    cancel: &'a AtomicBool,
    cancelled: bool,
    error: Option<io::Error>,
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
struct SinkWriter<'a, W> {
    inner: W,
    cancel: &'a AtomicBool,
    cancelled: bool,
    error: Option<io::Error>,
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

/// One planned file of an import.
struct Planned {
    source: PathBuf,
    path: String,
    size: u64,
}

fn fail(source: &Path, e: Error) -> ImportFailure {
    ImportFailure {
        source: source.to_path_buf(),
        code: e.code(),
        message: format!("{}: {e}", source.display()),
    }
}

/// Removes a temp file on drop unless disarmed: nothing half-written survives an error path.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(&mut self) {
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

impl Vault {
    /// Imports files and whole directory trees into `project`/`area`. Each file is committed
    /// on its own (and reported with [`ImportEvent::FileDone`]); a file that cannot be imported
    /// (invalid or non-UTF-8 name, vanished source, symlink) is reported and skipped. Running out
    /// of space, a vault I/O failure or `cancel` stop the import with an error; files committed
    /// before stay imported. Re-importing an existing path adds a new version.
    pub(crate) fn import_unaudited(
        &mut self,
        project: &str,
        area: Area,
        sources: &[PathBuf],
        opts: &ImportOptions,
        progress: &mut dyn FnMut(&ImportEvent<'_>),
        cancel: &AtomicBool,
    ) -> Result<ImportReport> {
        self.settling_blobs(|v| v.import_inner(project, area, sources, opts, progress, cancel))
    }

    /// [`Vault::import_unaudited`] under [`Vault::settling_blobs`].
    fn import_inner(
        &mut self,
        project: &str,
        area: Area,
        sources: &[PathBuf],
        opts: &ImportOptions,
        progress: &mut dyn FnMut(&ImportEvent<'_>),
        cancel: &AtomicBool,
    ) -> Result<ImportReport> {
        let project = self.project(project)?;
        let prefix = match &opts.dest_prefix {
            Some(p) if !p.is_empty() => Some(names::validate_logical_path(p)?),
            _ => None,
        };
        let data_type = opts.data_type.unwrap_or(area.default_data_type());
        let mut report = ImportReport::default();
        let mut plan = Vec::new();
        let t = Instant::now();
        for src in sources {
            plan_source(src, prefix.as_deref(), &mut plan, &mut report.failed);
        }
        phase_add(0, t);
        for f in &report.failed {
            progress(&ImportEvent::FileFailed(f));
        }
        let failed_at_plan = report.failed.len();
        let overall_total: u64 = plan.iter().map(|p| p.size).sum();
        progress(&ImportEvent::Started {
            files_total: plan.len() as u64,
            bytes_total: overall_total,
        });
        let pkey = self.project_key(&project.id)?;
        let units = plan_units(&plan);
        let dir = self.dir.clone();
        let abort = AtomicBool::new(false);
        let mut overall_done = 0u64;
        if !units.is_empty() {
            self.mark_blobs_unsettled()?;
        }
        // Pipelining: while this thread commits group k to the catalog, group k+1 is already
        // encrypted, made durable and renamed into `blobs/` by other threads. Its blobs are not
        // referenced before its own commit, so each group's protocol is unchanged (a crash
        // leaves them as orphans); if anything stops the import, `abort` stops that staging
        // and its files are removed.
        std::thread::scope(|s| -> Result<()> {
            let stage = |range: &std::ops::Range<usize>| {
                let (dir, abort, group) = (&dir, &abort, &plan[range.clone()]);
                s.spawn(move || stage_group(dir, group, cancel, abort))
            };
            // Groups being staged, in unit order, and the next unit to consider staging.
            let mut inflight = std::collections::VecDeque::new();
            let mut next_stage = 0usize;
            let res = (|| -> Result<()> {
                for (u, unit) in units.iter().enumerate() {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::Cancelled);
                    }
                    let range = match unit {
                        Unit::Group(range) => range,
                        Unit::Big(i) => {
                            let p = &plan[*i];
                            let path = p.path.as_str();
                            let base = overall_done;
                            let res = prepare_blob(&dir, &pkey, p, cancel, &mut |done| {
                                progress(&ImportEvent::Progress {
                                    path,
                                    file_done: done,
                                    file_total: p.size,
                                    overall_done: base + done.min(p.size),
                                    overall_total,
                                })
                            })
                            .and_then(|prep| {
                                self.commit_blob(&project.id, area, data_type, p, prep)
                            });
                            settle(p, res, &mut report, progress)?;
                            overall_done += p.size;
                            continue;
                        }
                    };
                    // Keep this group and the ones right after it (up to a big file, which
                    // is imported on this thread) staging: one seals while another syncs.
                    next_stage = next_stage.max(u);
                    let mut refill = |inflight: &mut std::collections::VecDeque<_>| {
                        while inflight.len() < STAGE_AHEAD {
                            let Some(Unit::Group(r)) = units.get(next_stage) else {
                                break;
                            };
                            inflight.push_back(stage(r));
                            next_stage += 1;
                        }
                    };
                    refill(&mut inflight);
                    let t = Instant::now();
                    let staged = inflight
                        .pop_front()
                        .expect("the current group is staging")
                        .join()
                        .unwrap_or_else(|_| {
                            Err(Error::Internal("an import worker panicked".into()))
                        })?;
                    phase_add(4, t);
                    refill(&mut inflight);
                    self.commit_group(
                        &project.id,
                        &pkey,
                        area,
                        data_type,
                        &plan[range.clone()],
                        staged,
                        (&mut overall_done, overall_total),
                        progress,
                        &mut report,
                    )?;
                }
                Ok(())
            })();
            if res.is_err() {
                abort.store(true, Ordering::Relaxed);
            }
            res
        })?;
        debug_assert!(report.failed.len() >= failed_at_plan);
        Ok(report)
    }

    /// Steps 4-5 for a group of consecutive small files stored by [`stage_group`] (group
    /// commit): ONE catalog transaction inserts every file's rows and audit event; only after
    /// it committed is each file reported. A file that failed on its own (vanished source,
    /// unreadable) is left out and reported; a fatal error before the commit discards the whole
    /// group (nothing of it was reported) and removes its blobs (after a crash, the next unlock
    /// removes them as orphans).
    #[allow(clippy::too_many_arguments)]
    fn commit_group(
        &mut self,
        project_id: &str,
        pkey: &ProjectKey,
        area: Area,
        data_type: DataType,
        group: &[Planned],
        staged: StagedGroup,
        (overall_done, overall_total): (&mut u64, u64),
        progress: &mut dyn FnMut(&ImportEvent<'_>),
        report: &mut ImportReport,
    ) -> Result<()> {
        let mut done = *overall_done;
        for p in group {
            done += p.size;
            progress(&ImportEvent::Progress {
                path: &p.path,
                file_done: p.size,
                file_total: p.size,
                overall_done: done,
                overall_total,
            });
        }
        // Step 4: one transaction for the whole group, one audit event per file.
        let StagedGroup { files, pack } = staged;
        let ok: Vec<(&Planned, &Record)> = group
            .iter()
            .zip(&files)
            .filter_map(|(p, r)| r.as_ref().ok().map(|s| (p, s)))
            .collect();
        let now = ts_to_ms(self.now());
        let actor = self.actor.clone();
        let t = Instant::now();
        let wrapped: Vec<WrappedKey> = ok
            .iter()
            .map(|(_, s)| pkey.wrap_data_key(&s.dkey, &s.file_id))
            .collect();
        phase_add(8, t);
        let t = Instant::now();
        let rows = match &pack {
            Some((pack_id, _)) if !ok.is_empty() => {
                let insert = |tx: &rusqlite::Transaction<'_>, k: usize| {
                    let (p, s) = ok[k];
                    let t = Instant::now();
                    let r = insert_version(
                        tx,
                        project_id,
                        area,
                        data_type,
                        &p.path,
                        &s.blob_id,
                        Some((pack_id, s.offset, s.len)),
                        &wrapped[k],
                        s.plaintext_len,
                        &s.sha,
                        now,
                        &actor,
                    );
                    phase_add(9, t);
                    r
                };
                // Each file's audit event names its item version.
                let subject = |(item_id, version): &(String, u32)| {
                    Some((
                        labvault_governance::audit::resources::item(project_id, item_id),
                        Some(format!("version={version}")),
                    ))
                };
                self.catalog.write_each(ok.len(), insert, subject)?
            }
            _ => Vec::new(),
        };
        phase_add(10, t);
        if let Some((_, mut guard)) = pack {
            guard.disarm();
        }
        // Step 5: committed; report every file of the group in plan order.
        let t = Instant::now();
        let mut rows = rows.into_iter();
        for (p, r) in group.iter().zip(files) {
            let res = r.map(|mut st| {
                let (item_id, version) = rows.next().expect("one row per stored record");
                ImportedFile {
                    source: p.source.clone(),
                    item_id,
                    path: p.path.clone(),
                    version,
                    size: st.plaintext_len,
                    sha256: std::mem::take(&mut st.sha),
                }
            });
            settle(p, res, report, progress)?;
        }
        phase_add(11, t);
        *overall_done = done;
        Ok(())
    }

    /// Commits a stored blob as a new item, or a new version of the active item at its path.
    /// On failure the blob is removed again.
    fn commit_blob(
        &mut self,
        project_id: &str,
        area: Area,
        data_type: DataType,
        p: &Planned,
        prep: Prepared,
    ) -> Result<ImportedFile> {
        let mut guard = TempGuard(Some(prep.final_path.clone()));
        let Prepared {
            blob_id,
            wrapped,
            plaintext_len,
            sha,
            ..
        } = prep;
        let now = ts_to_ms(self.now());
        let actor = self.actor.clone();
        let (item_id, version) = self.catalog.write(|tx| {
            insert_version(
                tx,
                project_id,
                area,
                data_type,
                &p.path,
                &blob_id,
                None,
                &wrapped,
                plaintext_len,
                &sha,
                now,
                &actor,
            )
        })?;
        guard.disarm();
        Ok(ImportedFile {
            source: p.source.clone(),
            item_id,
            path: p.path.clone(),
            version,
            size: plaintext_len,
            sha256: sha,
        })
    }

    /// Exports one active item into directory `dest_dir` under its file name. The plaintext is
    /// written to a temp file beside the final one and renamed into place only after the final
    /// chunk verified and the SHA-256 matched; on any failure no output file is left.
    pub(crate) fn export_item_unaudited(
        &mut self,
        item_id: &str,
        dest_dir: &Path,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<PathBuf> {
        let item = self.item(item_id)?;
        if item.state != ItemState::Active {
            return Err(crate::items::wrong_state(&item, &[ItemState::Active]));
        }
        let name = item
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&item.path)
            .to_string();
        names::validate_component(&name)?;
        let total = item.size;
        self.export_to(
            &item,
            &dest_dir.join(name),
            opts,
            0,
            total,
            progress,
            cancel,
        )
    }

    /// Exports every active item of `project`/`area` under `dest_dir`, recreating the logical
    /// directory structure. Stops at the first failure: the files before it (in listing order)
    /// are exported and stay, the one that failed and every later one leave nothing.
    ///
    /// Small items go in groups (group export, the mirror of the import's group commit): worker
    /// threads decrypt and verify each into its own temp file beside its target, then the
    /// group's data is made durable at once, then the temp files are renamed into place and
    /// each destination directory is fsynced once. A temp file is renamed only after its final
    /// chunk verified and its SHA-256 matched, as for a single item.
    pub(crate) fn export_area_unaudited(
        &mut self,
        project: &str,
        area: Area,
        dest_dir: &Path,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<Vec<PathBuf>> {
        let items = self.list(&ListFilter {
            project: Some(project.to_string()),
            area: Some(area),
            ..Default::default()
        })?;
        let total: u64 = items.iter().map(|i| i.size).sum();
        let mut done = 0u64;
        let mut out = Vec::new();
        let mut pkeys: std::collections::HashMap<String, ProjectKey> = Default::default();
        let mut made_dirs = std::collections::HashSet::new();
        let mut i = 0;
        while i < items.len() {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let item = &items[i];
            if item.size > GROUP_FILE_MAX_BYTES {
                let rel = names::validate_logical_path(&item.path)?;
                let target = dest_dir.join(&rel);
                out.push(self.export_to(item, &target, opts, done, total, progress, cancel)?);
                done += item.size;
                i += 1;
                continue;
            }
            let end = small_run_end(items.len(), i, EXPORT_GROUP_FILES, |k| items[k].size);
            // Catalog reads and key unwrapping here (the connection stays on this thread); a
            // failure cuts the group before that item.
            let mut jobs = Vec::with_capacity(end - i);
            let mut first_err = None;
            for item in &items[i..end] {
                let job = (|| -> Result<ExportJob> {
                    let rel = names::validate_logical_path(&item.path)?;
                    let target = dest_dir.join(&rel);
                    let dir = target.parent().ok_or_else(|| {
                        Error::InvalidArgument("export destination has no directory".into())
                    })?;
                    if !made_dirs.contains(dir) {
                        fs::create_dir_all(dir).map_err(|e| Error::io_path("creating", dir, e))?;
                        made_dirs.insert(dir.to_path_buf());
                    }
                    if !pkeys.contains_key(&item.project_id) {
                        let k = self.project_key(&item.project_id)?;
                        pkeys.insert(item.project_id.clone(), k);
                    }
                    self.export_job(item, target, &pkeys[&item.project_id])
                })();
                match job {
                    Ok(j) => jobs.push(j),
                    Err(e) => {
                        first_err = Some(e);
                        break;
                    }
                }
            }
            let (paths, err) = export_group(&jobs, opts, dest_dir, cancel, &mut |k| {
                let it = &items[i + k];
                done += it.size;
                progress(&TransferProgress {
                    path: &it.path,
                    file_done: it.size,
                    file_total: it.size,
                    overall_done: done,
                    overall_total: total,
                })
            });
            out.extend(paths);
            if let Some(e) = err.or(first_err) {
                return Err(e);
            }
            i = end;
        }
        Ok(out)
    }

    /// What a worker needs to decrypt one item to `target`: read from the catalog and
    /// unwrapped here, on the thread that owns the connection.
    fn export_job(&self, item: &ItemInfo, target: PathBuf, pkey: &ProjectKey) -> Result<ExportJob> {
        let what = label(item);
        let (blob_id, loc, wrapped, sha) = self.version_key(item)?;
        let file_id = file_id_of(&blob_id)?;
        let dkey = pkey
            .unwrap_data_key(&wrapped, &file_id)
            .map_err(|e| blob_err(e, &what))?;
        Ok(ExportJob {
            what,
            size: item.size,
            loc,
            file_id,
            dkey,
            sha,
            target,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn export_to(
        &mut self,
        item: &ItemInfo,
        target: &Path,
        opts: &ExportOptions,
        overall_done: u64,
        overall_total: u64,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<PathBuf> {
        let dir = target
            .parent()
            .ok_or_else(|| Error::InvalidArgument("export destination has no directory".into()))?;
        if !opts.overwrite && fs::symlink_metadata(target).is_ok() {
            return Err(Error::AlreadyExists(format!("{}", target.display())));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io_path("creating", dir, e))?;
        let pkey = self.project_key(&item.project_id)?;
        let job = self.export_job(item, target.to_path_buf(), &pkey)?;
        let mut dec = decrypt_to_temp(&job, opts, cancel, true, &mut |done| {
            progress(&TransferProgress {
                path: &item.path,
                file_done: done,
                file_total: item.size,
                overall_done: overall_done + done.min(item.size),
                overall_total,
            })
        })?;
        let out = dec.file.take().expect("a decrypted temp file is open");
        out.sync_all()
            .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
        drop(out);
        dec.place(&job.target, opts)?;
        fsutil::fsync_dir(dir)?;
        Ok(target.to_path_buf())
    }

    /// Blob id, location, wrapped data key and SHA-256 of an item's current version.
    fn version_key(&self, item: &ItemInfo) -> Result<(String, BlobLoc, WrappedKey, String)> {
        type Row = (
            Option<String>,
            Option<Vec<u8>>,
            String,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let row: Option<Row> = self
            .catalog
            .conn()
            .query_row(
                "SELECT blob_id, wrapped_data_key, sha256, pack_id, pack_offset, pack_len
                 FROM item_versions WHERE item_id = ?1 AND version = ?2",
                params![item.id, item.version],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        match row {
            Some((Some(b), Some(w), sha, pack, off, len)) => {
                let w = WrappedKey::from_bytes(w).map_err(|e| blob_err(e, &label(item)))?;
                let loc = BlobLoc::from_row(&self.dir, &b, pack, off, len)?;
                Ok((b, loc, w, sha))
            }
            Some(_) => Err(Error::Erased(label(item))),
            None => Err(Error::CorruptCatalog(format!(
                "{} has no version {}",
                label(item),
                item.version
            ))),
        }
    }

    /// Checks the whole vault: catalog integrity, every live blob version decrypts and matches
    /// its SHA-256, no row points at a missing blob, no blob is orphaned. Changes nothing;
    /// problems are reported (each naming its item), not fixed.
    pub(crate) fn verify_unaudited(
        &mut self,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let check: String = self
            .catalog
            .conn()
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            report.problems.push(VerifyProblem {
                code: ErrorCode::CorruptCatalog,
                item_id: None,
                project: None,
                area: None,
                path: None,
                version: None,
                message: format!("catalog integrity check failed: {check}"),
            });
        }
        struct V {
            item: ItemInfo,
            version: u32,
            blob_id: String,
            pack: (Option<String>, Option<i64>, Option<i64>),
            wrapped: Vec<u8>,
            size: u64,
            sha: String,
        }
        let items: std::collections::HashMap<String, ItemInfo> = self
            .list(&ListFilter {
                all_states: true,
                ..Default::default()
            })?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let mut versions = Vec::new();
        {
            let mut st = self.catalog.conn().prepare(
                "SELECT item_id, version, blob_id, wrapped_data_key, size, sha256,
                        pack_id, pack_offset, pack_len
                 FROM item_versions WHERE blob_id IS NOT NULL ORDER BY item_id, version",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let item_id: String = r.get(0)?;
                let Some(item) = items.get(&item_id) else {
                    continue;
                };
                let wrapped: Option<Vec<u8>> = r.get(3)?;
                versions.push(V {
                    item: item.clone(),
                    version: r.get(1)?,
                    blob_id: r.get(2)?,
                    pack: (r.get(6)?, r.get(7)?, r.get(8)?),
                    wrapped: wrapped.unwrap_or_default(),
                    size: r.get::<_, i64>(4)? as u64,
                    sha: r.get(5)?,
                });
            }
        }
        let total: u64 = versions.iter().map(|v| v.size).sum();
        let mut done = 0u64;
        let mut pkeys = std::collections::HashMap::new();
        for v in &versions {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let what = format!("{} (version {})", label(&v.item), v.version);
            let problem = |e: Error| VerifyProblem {
                code: e.code(),
                item_id: Some(v.item.id.clone()),
                project: Some(v.item.project.clone()),
                area: Some(v.item.area),
                path: Some(v.item.path.clone()),
                version: Some(v.version),
                message: e.to_string(),
            };
            if !pkeys.contains_key(&v.item.project_id) {
                let k = self.project_key(&v.item.project_id)?;
                pkeys.insert(v.item.project_id.clone(), k);
            }
            let pkey = &pkeys[&v.item.project_id];
            let res = (|| -> Result<()> {
                let file_id = file_id_of(&v.blob_id)?;
                let wrapped =
                    WrappedKey::from_bytes(v.wrapped.clone()).map_err(|e| blob_err(e, &what))?;
                let dkey = pkey
                    .unwrap_data_key(&wrapped, &file_id)
                    .map_err(|e| blob_err(e, &what))?;
                let (pack, off, len) = v.pack.clone();
                let f = BlobLoc::from_row(&self.dir, &v.blob_id, pack, off, len)?.open(&what)?;
                let path = v.item.path.as_str();
                let mut sink = SinkWriter {
                    inner: io::sink(),
                    cancel,
                    cancelled: false,
                    error: None,
                };
                let s = decrypt_blob(
                    &dkey,
                    &file_id,
                    io::BufReader::with_capacity(1 << 20, f),
                    &mut sink,
                    &mut |d| {
                        progress(&TransferProgress {
                            path,
                            file_done: d,
                            file_total: v.size,
                            overall_done: done + d.min(v.size),
                            overall_total: total,
                        })
                    },
                )
                .map_err(|e| {
                    if sink.cancelled {
                        Error::Cancelled
                    } else {
                        blob_err(e, &what)
                    }
                })?;
                if hex::encode(s.sha256) != v.sha || s.plaintext_len != v.size {
                    return Err(Error::Tampered {
                        what: what.clone(),
                        detail: "content does not match the recorded SHA-256".into(),
                    });
                }
                Ok(())
            })();
            match res {
                Ok(()) => {
                    report.blobs_checked += 1;
                    report.bytes_checked += v.size;
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => report.problems.push(problem(e)),
            }
            done += v.size;
        }
        // Items whose current version row is missing would not even be listed.
        let dangling: i64 = self.catalog.conn().query_row(
            "SELECT count(*) FROM items i WHERE NOT EXISTS
               (SELECT 1 FROM item_versions v WHERE v.item_id = i.id AND v.version = i.current_version)",
            [],
            |r| r.get(0),
        )?;
        if dangling > 0 {
            report.problems.push(VerifyProblem {
                code: ErrorCode::CorruptCatalog,
                item_id: None,
                project: None,
                area: None,
                path: None,
                version: None,
                message: format!("{dangling} item(s) have no current version row"),
            });
        }
        let referenced = self.referenced_blobs()?;
        for (name, path) in self.blob_files()? {
            if !referenced.contains(&name) {
                report.problems.push(VerifyProblem {
                    code: ErrorCode::CorruptCatalog,
                    item_id: None,
                    project: None,
                    area: None,
                    path: None,
                    version: None,
                    message: format!(
                        "orphan blob {} is referenced by no catalog row",
                        path.display()
                    ),
                });
            }
        }
        Ok(report)
    }
}

/// Files up to this size are imported in groups with one durable commit per group (for small
/// files the fsyncs and the commit, not the CPU, set the pace). Bigger files go one at a time
/// (each already uses every core) with fine-grained progress.
const GROUP_FILE_MAX_BYTES: u64 = 1 << 20;

/// Groups of an import being staged at once (sealed into their packs, synced) while this
/// thread commits an earlier one: one can seal while another waits for its sync.
const STAGE_AHEAD: usize = 2;

/// At most this many files share one group commit (and one pack): in the first group of an
/// import, the second, and every later one. The first commit waits until its whole group is
/// sealed, so it is small; later groups are big so that commits (a WAL fsync each) are few.
pub const IMPORT_GROUP_FILES: [usize; 3] = [64, 256, 1024];

/// At most this many plaintext bytes share one group commit (bounds the work a crash or a
/// cancellation throws away).
const GROUP_MAX_BYTES: u64 = 64 << 20;

/// Inserts one imported version: a new item, or a new version of the active item at `path`.
/// Returns (item id, version).
#[allow(clippy::too_many_arguments)]
fn insert_version(
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
        Some((id, v)) => {
            tx.prepare_cached(
                "UPDATE items SET current_version = ?1, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![v + 1, now, id])?;
            (id, v + 1)
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
    Ok((item_id, version))
}

/// A blob written (not yet synced) into `tmp/`, or after [`Staged::store`] renamed into
/// `blobs/`; its guard removes whichever file it is until the catalog references it.
struct Staged {
    file: Option<File>,
    file_id: [u8; 16],
    blob_id: String,
    dkey: DataKey,
    plaintext_len: u64,
    sha: String,
    tmp_path: PathBuf,
    guard: TempGuard,
}

impl Staged {
    /// Renames the (already synced) temp file to its blob path; the caller fsyncs the shard.
    fn store(&mut self, dir: &Path) -> Result<()> {
        let final_path = fsutil::blob_path(dir, &self.blob_id);
        fs::rename(&self.tmp_path, &final_path)
            .map_err(|e| Error::io_path("storing blob", &final_path, e))?;
        self.guard.0 = Some(final_path);
        Ok(())
    }
}

/// Makes the data of `files` durable, then closes them. On Linux, with `fs_handle` (a
/// descriptor on the files' file system opened before they were written), ONE `syncfs`: the
/// kernel writes back all dirty data of the file system and commits its journal once, instead
/// of one journal commit and cache flush per file, and reports any writeback error since
/// `fs_handle` was opened (Linux >= 5.8). Elsewhere, without a handle, or if `syncfs` is
/// refused: fdatasync every file, a few at a time in parallel so the file system can fold them
/// into few journal commits.
fn sync_files(files: Vec<(File, &Path)>, fs_handle: Option<&File>, dir: &Path) -> Result<()> {
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
const SYNC_THREADS: usize = 16;

/// At most this many small items share one group export (one sync pass, one fsync per
/// destination directory).
pub const EXPORT_GROUP_FILES: usize = 256;

/// Write-behind: a big file's writer asks a helper thread to `fdatasync` what it has written
/// every this many bytes, so the disk writes while the cores still encrypt or decrypt, and the
/// final fsync (which stays: nothing is renamed before it) finds little left to flush.
const WRITE_BEHIND_BYTES: u64 = 32 << 20;

/// A file writer with optional write-behind (see [`WRITE_BEHIND_BYTES`]). [`WriteBehind::finish`]
/// returns the file and any error of the helper's syncs (a failed writeback is never ignored).
struct WriteBehind {
    file: File,
    since: u64,
    flusher: Option<(
        std::sync::mpsc::SyncSender<()>,
        std::thread::JoinHandle<io::Result<()>>,
    )>,
}

impl WriteBehind {
    /// `enabled` for files big enough to benefit; small files get no thread.
    fn new(file: File, enabled: bool) -> WriteBehind {
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

    fn finish(mut self) -> io::Result<File> {
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

/// One item of an export, ready for a worker thread (no catalog access needed).
struct ExportJob {
    what: String,
    size: u64,
    loc: BlobLoc,
    file_id: [u8; 16],
    dkey: DataKey,
    sha: String,
    target: PathBuf,
}

/// An item decrypted and verified into its temp file beside its target; the guard removes the
/// temp file unless it is placed.
struct Decrypted {
    file: Option<File>,
    tmp: PathBuf,
    guard: TempGuard,
}

impl Decrypted {
    /// Moves the (synced) temp file to `target`; the caller fsyncs the directory.
    fn place(&mut self, target: &Path, opts: &ExportOptions) -> Result<()> {
        if opts.overwrite {
            fs::rename(&self.tmp, target).map_err(|e| Error::io_path("writing", target, e))?;
        } else {
            // One atomic rename that refuses to clobber a file that appeared meanwhile
            // (renameat2 NOREPLACE); where the file system lacks it, link-then-unlink.
            #[cfg(target_os = "linux")]
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &self.tmp,
                rustix::fs::CWD,
                target,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.guard.disarm();
                    return Ok(());
                }
                Err(rustix::io::Errno::EXIST) => {
                    return Err(Error::AlreadyExists(format!("{}", target.display())))
                }
                Err(_) => {}
            }
            match fs::hard_link(&self.tmp, target) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(Error::AlreadyExists(format!("{}", target.display())))
                }
                Err(_) => fs::rename(&self.tmp, target)
                    .map_err(|e| Error::io_path("writing", target, e))?,
            }
        }
        self.guard.disarm();
        Ok(())
    }
}

/// Decrypts `job` into a temp file in its target's directory (created by the caller) and
/// verifies the final chunk, the length and the SHA-256; the file is not synced. Nothing is
/// left behind on error.
fn decrypt_to_temp(
    job: &ExportJob,
    opts: &ExportOptions,
    cancel: &AtomicBool,
    write_behind: bool,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Decrypted> {
    let target = &job.target;
    let dir = target
        .parent()
        .ok_or_else(|| Error::InvalidArgument("export destination has no directory".into()))?;
    if !opts.overwrite && fs::symlink_metadata(target).is_ok() {
        return Err(Error::AlreadyExists(format!("{}", target.display())));
    }
    let what = &job.what;
    let blob = job.loc.open(what)?;
    let tmp = dir.join(format!(".labvault-export-{}.part", random_hex(8)));
    let (out, guard) = create_guarded(&tmp)?;
    // Small items get small buffers: a 1 MiB one per file would cost more than the file.
    let buf = usize::try_from(job.size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 << 10)
        .min(1 << 20);
    let never = AtomicBool::new(false);
    let mut reader = SourceReader {
        inner: io::BufReader::with_capacity(buf, blob),
        cancel: &never,
        cancelled: false,
        error: None,
    };
    let mut writer = SinkWriter {
        inner: BufWriter::with_capacity(
            buf,
            WriteBehind::new(out, write_behind && job.size >= 2 * WRITE_BEHIND_BYTES),
        ),
        cancel,
        cancelled: false,
        error: None,
    };
    let res = decrypt_blob(
        &job.dkey,
        &job.file_id,
        &mut reader,
        &mut writer,
        on_progress,
    );
    let summary = match res {
        Ok(s) => s,
        Err(e) => {
            if writer.cancelled {
                return Err(Error::Cancelled);
            }
            if let Some(we) = writer.error.take() {
                return Err(Error::io(format!("writing {}", target.display()), we));
            }
            if let Some(re) = reader.error.take() {
                return Err(Error::io(format!("reading the blob of {what}"), re));
            }
            return Err(blob_err(e, what));
        }
    };
    if hex::encode(summary.sha256) != job.sha || summary.plaintext_len != job.size {
        return Err(Error::Tampered {
            what: what.clone(),
            detail: "decrypted content does not match the recorded SHA-256".into(),
        });
    }
    let out = writer
        .inner
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(WriteBehind::finish)
        .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
    Ok(Decrypted {
        file: Some(out),
        tmp,
        guard,
    })
}

/// Group export of `jobs` (small items, directories already created): workers decrypt and
/// verify every item into its temp file (calling `on_done(k)` in order as item k is verified),
/// one sync pass makes them durable, then they are placed in order and every destination
/// directory is fsynced once. At the first failure (item k), items before k are still placed
/// and returned, items from k on leave nothing; the error is returned beside them.
fn export_group(
    jobs: &[ExportJob],
    opts: &ExportOptions,
    dest_root: &Path,
    cancel: &AtomicBool,
    on_done: &mut dyn FnMut(usize),
) -> (Vec<PathBuf>, Option<Error>) {
    if jobs.is_empty() {
        return (Vec::new(), None);
    }
    // Opened before anything is written, so `syncfs` reports any writeback error since.
    let fs_handle = match File::open(dest_root) {
        Ok(f) => f,
        Err(e) => return (Vec::new(), Some(Error::io_path("opening", dest_root, e))),
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
        .min(jobs.len());
    let stop = AtomicBool::new(false);
    let mut decrypted: Vec<Decrypted> = Vec::with_capacity(jobs.len());
    let mut err = None;
    std::thread::scope(|s| {
        let mut rxs = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Decrypted>>(4);
            rxs.push(rx);
            let stop = &stop;
            s.spawn(move || {
                for job in jobs.iter().skip(w).step_by(workers) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = decrypt_to_temp(job, opts, cancel, false, &mut |_| {});
                    // A refused send drops `r`, whose guard removes its temp file.
                    if tx.send(r).is_err() {
                        break;
                    }
                }
            });
        }
        for k in 0..jobs.len() {
            match rxs[k % workers]
                .recv()
                .unwrap_or_else(|_| Err(Error::Internal("an export worker stopped".into())))
            {
                Ok(d) => {
                    decrypted.push(d);
                    on_done(k);
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if err.is_some() {
            stop.store(true, Ordering::Relaxed);
            for rx in &rxs {
                while rx.recv().is_ok() {}
            }
        }
    });
    // Durable data first (only then may a name point at it), for the verified prefix.
    let same_fs = same_file_system(dest_root, jobs[..decrypted.len()].iter().map(|j| &j.target));
    let files: Vec<(File, &Path)> = decrypted
        .iter_mut()
        .filter_map(|d| d.file.take().map(|f| (f, d.tmp.as_path())))
        .collect();
    if let Err(e) = sync_files(files, same_fs.then_some(&fs_handle), dest_root) {
        return (Vec::new(), Some(e));
    }
    let mut placed = Vec::with_capacity(decrypted.len());
    let mut dirs: Vec<&Path> = Vec::new();
    for (d, job) in decrypted.iter_mut().zip(jobs) {
        if let Err(e) = d.place(&job.target, opts) {
            err = Some(e);
            break;
        }
        let dir = job.target.parent().expect("checked by decrypt_to_temp");
        if dirs.last() != Some(&dir) && !dirs.contains(&dir) {
            dirs.push(dir);
        }
        placed.push(job.target.clone());
    }
    for dir in dirs {
        if let Err(e) = fsutil::fsync_dir(dir) {
            return (placed, Some(e));
        }
    }
    (placed, err)
}

/// True when every target's directory is on the file system of `root`, so one `syncfs` on
/// `root` covers them all (a mount point inside the destination would not be).
fn same_file_system<'a>(root: &Path, targets: impl Iterator<Item = &'a PathBuf>) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(dev) = fs::metadata(root).map(|m| m.dev()) else {
            return false;
        };
        let mut seen: Vec<&Path> = Vec::new();
        for t in targets {
            let Some(dir) = t.parent() else {
                return false;
            };
            if seen.contains(&dir) {
                continue;
            }
            if fs::metadata(dir).map(|m| m.dev()).ok() != Some(dev) {
                return false;
            }
            seen.push(dir);
        }
        true
    }
    #[cfg(not(unix))]
    {
        let _ = (root, targets);
        false
    }
}

/// A blob written, fsynced and renamed into `blobs/`, not yet referenced by the catalog.
struct Prepared {
    blob_id: String,
    wrapped: WrappedKey,
    plaintext_len: u64,
    sha: String,
    final_path: PathBuf,
}

/// Steps 1-3 of the import protocol for one (big) file: encrypt into `tmp/`, fsync, check the
/// source did not change, rename into `blobs/`, fsync the directory. Nothing is left behind on
/// error.
fn prepare_blob(
    dir: &Path,
    pkey: &ProjectKey,
    p: &Planned,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Prepared> {
    let mut st = stage_blob(dir, p, rand::random::<u8>(), cancel, on_progress)?;
    let t = Instant::now();
    let out = st.file.take().expect("a staged file is open");
    out.sync_all()
        .map_err(|e| Error::io_path("syncing", &st.tmp_path, e))?;
    drop(out);
    phase_add(5, t);
    let t = Instant::now();
    let final_path = fsutil::blob_path(dir, &st.blob_id);
    let shard = final_path.parent().expect("blob path has a shard dir");
    if !shard.exists() {
        fs::create_dir_all(shard).map_err(|e| Error::io_path("creating", shard, e))?;
        fsutil::fsync_dir(&dir.join(BLOBS_DIR))?;
    }
    st.store(dir)?;
    fsutil::fsync_dir(shard)?;
    phase_add(7, t);
    st.guard.disarm();
    Ok(Prepared {
        wrapped: pkey.wrap_data_key(&st.dkey, &st.file_id),
        blob_id: std::mem::take(&mut st.blob_id),
        plaintext_len: st.plaintext_len,
        sha: std::mem::take(&mut st.sha),
        final_path,
    })
}

/// Step 1 and 2 of the import protocol: encrypt `p` into `tmp/<id>.tmp` (not synced) with a
/// fresh data key and a random file id whose first byte is `shard_byte` (so a group's blobs
/// share one shard directory), and check the source still has its planned size. Nothing is
/// left behind on error.
fn stage_blob(
    dir: &Path,
    p: &Planned,
    shard_byte: u8,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Staged> {
    let src_name = p.source.display().to_string();
    let t = Instant::now();
    let src = open_source(&p.source, &src_name)?;
    let mut file_id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut file_id);
    file_id[0] = shard_byte;
    let blob_id = hex::encode(file_id);
    let (out, tmp_path, guard) = create_temp(dir, &blob_id)?;
    phase_add(1, t);
    let t = Instant::now();
    let dkey = DataKey::generate();
    let mut reader = SourceReader {
        inner: src,
        cancel,
        cancelled: false,
        error: None,
    };
    // Small files get a small buffer: a 1 MiB one per file would cost more than the file.
    let buf = usize::try_from(p.size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 << 10)
        .min(1 << 20);
    let mut writer = SinkWriter {
        inner: BufWriter::with_capacity(
            buf,
            WriteBehind::new(out, p.size >= 2 * WRITE_BEHIND_BYTES),
        ),
        cancel,
        cancelled: false,
        error: None,
    };
    let res = encrypt_blob(
        &dkey,
        &file_id,
        DEFAULT_CHUNK_SIZE,
        &mut reader,
        &mut writer,
        on_progress,
    );
    let summary = match res {
        Ok(s) => s,
        Err(e) => {
            if reader.cancelled || writer.cancelled {
                return Err(Error::Cancelled);
            }
            if let Some(re) = reader.error.take() {
                return Err(Error::io(format!("reading source {src_name}"), re));
            }
            if let Some(we) = writer.error.take() {
                return Err(Error::io_path("writing", &tmp_path, we));
            }
            return Err(blob_err(e, &src_name));
        }
    };
    let out = writer
        .inner
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(WriteBehind::finish)
        .map_err(|e| Error::io_path("writing", &tmp_path, e))?;
    phase_add(2, t);
    let t = Instant::now();
    check_source_unchanged(p, summary.plaintext_len, &src_name)?;
    phase_add(3, t);
    Ok(Staged {
        file: Some(out),
        file_id,
        blob_id,
        dkey,
        plaintext_len: summary.plaintext_len,
        sha: hex::encode(summary.sha256),
        tmp_path,
        guard,
    })
}

/// Creates `tmp/<id>.tmp` for a blob or pack being written, with the guard that removes it.
fn create_temp(dir: &Path, id: &str) -> Result<(File, PathBuf, TempGuard)> {
    let tmp_path = dir.join(TMP_DIR).join(format!("{id}.tmp"));
    let (out, guard) = create_guarded(&tmp_path)?;
    Ok((out, tmp_path, guard))
}

/// Creates the new file `path` (never opens an existing one), with the guard that removes it
/// unless disarmed: every temp file of an import or export.
fn create_guarded(path: &Path) -> Result<(File, TempGuard)> {
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io_path("creating", path, e))?;
    // Guarded only once created: a name that already existed is never ours to remove.
    Ok((out, TempGuard(Some(path.to_path_buf()))))
}

/// Opens an import source; one that vanished since planning is `source_vanished`.
fn open_source(source: &Path, src_name: &str) -> Result<File> {
    match File::open(source) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::SourceVanished {
            path: src_name.to_string(),
            detail: "it no longer exists".into(),
        }),
        Err(e) => Err(Error::io(format!("reading source {src_name}"), e)),
    }
}

/// The source must be what we planned to read, and still be there: a file that shrank, grew
/// or vanished under us is not imported half-way.
fn check_source_unchanged(p: &Planned, read: u64, src_name: &str) -> Result<()> {
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

/// One unit of an import: a group of consecutive small files (committed together) or one
/// big file (committed on its own).
enum Unit {
    Group(std::ops::Range<usize>),
    Big(usize),
}

/// End (exclusive) of the run of small files that starts at `start` (whose file is small):
/// at most `max_files` files and [`GROUP_MAX_BYTES`] bytes, ending before the first file bigger
/// than [`GROUP_FILE_MAX_BYTES`]. Import and export group the same way, so one group's worth of
/// temp files shares one sync pass in both directions.
fn small_run_end(
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

/// Cuts the plan into units: each file bigger than [`GROUP_FILE_MAX_BYTES`] on its own, runs
/// of smaller ones into groups of at most [`IMPORT_GROUP_FILES`] files and [`GROUP_MAX_BYTES`].
fn plan_units(plan: &[Planned]) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut i = 0;
    while i < plan.len() {
        if plan[i].size > GROUP_FILE_MAX_BYTES {
            units.push(Unit::Big(i));
            i += 1;
            continue;
        }
        let groups = units.iter().filter(|u| matches!(u, Unit::Group(_))).count();
        let max = IMPORT_GROUP_FILES[groups.min(IMPORT_GROUP_FILES.len() - 1)];
        let end = small_run_end(plan.len(), i, max, |k| plan[k].size);
        units.push(Unit::Group(i..end));
        i = end;
    }
    units
}

/// A group stored durably in `blobs/` (steps 1-3), waiting for its catalog commit.
struct StagedGroup {
    /// One entry per file of the group, in plan order (per-file failures included).
    files: Vec<Result<Record>>,
    /// The group's pack id (none if no file of the group could be read); its guard removes
    /// the pack until the commit that references it.
    pack: Option<(String, TempGuard)>,
}

/// One small file sealed (blob format v1, fresh data key and file id) into memory by a worker.
struct Sealed {
    file_id: [u8; 16],
    dkey: DataKey,
    plaintext_len: u64,
    sha: String,
    bytes: Vec<u8>,
}

/// A sealed file written into its group's pack at `offset`.
struct Record {
    file_id: [u8; 16],
    blob_id: String,
    dkey: DataKey,
    plaintext_len: u64,
    sha: String,
    offset: u64,
    len: u64,
}

/// Step 1 for one small file: read, hash and encrypt it into memory, and check the source
/// still has its planned size.
fn seal_small(p: &Planned, cancel: &AtomicBool) -> Result<Sealed> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let src_name = p.source.display().to_string();
    let t = Instant::now();
    let src = open_source(&p.source, &src_name)?;
    phase_add(1, t);
    let t = Instant::now();
    // Read straight into the buffer the blob is sealed in (no copy); one byte more than
    // planned, so that a file that grew is noticed.
    let mut plain = PlaintextBuffer::with_capacity(usize::try_from(p.size).unwrap_or(0));
    plain
        .read_from(src.take(p.size.saturating_add(1)))
        .map_err(|e| Error::io(format!("reading source {src_name}"), e))?;
    // Unique, and time-ordered so that a group's rows append to the catalog's blob id index.
    let file_id = uuid::Uuid::now_v7().into_bytes();
    let dkey = DataKey::generate();
    let (summary, bytes) = encrypt_blob_buffer(&dkey, &file_id, DEFAULT_CHUNK_SIZE, plain)
        .map_err(|e| blob_err(e, &src_name))?;
    phase_add(2, t);
    let t = Instant::now();
    check_source_unchanged(p, summary.plaintext_len, &src_name)?;
    phase_add(3, t);
    Ok(Sealed {
        file_id,
        dkey,
        plaintext_len: summary.plaintext_len,
        sha: hex::encode(summary.sha256),
        bytes,
    })
}

/// Steps 1-3 for a group of small files: worker threads seal every file into memory
/// ([`seal_small`]); this thread appends each, in plan order, as one record to ONE new pack
/// file in `tmp/`; then the pack is synced, renamed to `blobs/<xx>/<pack id>` and that
/// directory fsynced. A file failing on its own is recorded in its slot; any other error (or
/// `cancel`/`abort`) stops and is returned, and the pack is removed.
fn stage_group(
    dir: &Path,
    group: &[Planned],
    cancel: &AtomicBool,
    abort: &AtomicBool,
) -> Result<StagedGroup> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
        .min(group.len().max(1));
    let stop = AtomicBool::new(false);
    let mut files: Vec<Result<Record>> = Vec::with_capacity(group.len());
    let mut pack: Option<PackWriter> = None;
    std::thread::scope(|s| -> Result<()> {
        let mut rxs = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Sealed>>(4);
            rxs.push(rx);
            let stop = &stop;
            s.spawn(move || {
                for p in group.iter().skip(w).step_by(workers) {
                    if stop.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
                        break;
                    }
                    if tx.send(seal_small(p, cancel)).is_err() {
                        break;
                    }
                }
            });
        }
        let mut outcome = Ok(());
        for k in 0..group.len() {
            let r = rxs[k % workers]
                .recv()
                .unwrap_or_else(|_| Err(Error::Internal("an import worker stopped".into())));
            let r = match r {
                Ok(sealed) => {
                    let t = Instant::now();
                    let res = match &mut pack {
                        Some(w) => Ok(w),
                        None => PackWriter::create(dir).map(|w| pack.insert(w)),
                    }
                    .and_then(|w| w.append(sealed));
                    phase_add(2, t);
                    res
                }
                Err(e) => Err(e),
            };
            match r {
                Err(e) if !is_per_file_error(&e) => {
                    outcome = Err(e);
                    break;
                }
                r => files.push(r),
            }
        }
        if outcome.is_err() {
            stop.store(true, Ordering::Relaxed);
            for rx in &rxs {
                while rx.recv().is_ok() {}
            }
        }
        outcome
    })?;
    let Some(pack) = pack else {
        return Ok(StagedGroup { files, pack: None });
    };
    if cancel.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let (id, guard) = pack.store(dir)?;
    Ok(StagedGroup {
        files,
        pack: Some((id, guard)),
    })
}

/// A pack being written in `tmp/`: records appended back to back, written a batch at a time
/// straight from the workers' buffers (one vectored write, no copy into a buffer).
struct PackWriter {
    id: String,
    tmp_path: PathBuf,
    out: File,
    len: u64,
    pending: Vec<Vec<u8>>,
    pending_len: usize,
    guard: TempGuard,
}

/// Sealed records are written to a pack once this many bytes are waiting.
const PACK_WRITE_BATCH: usize = 1 << 20;

impl PackWriter {
    fn create(dir: &Path) -> Result<PackWriter> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let (out, tmp_path, guard) = create_temp(dir, &id)?;
        Ok(PackWriter {
            id,
            tmp_path,
            out,
            len: 0,
            pending: Vec::new(),
            pending_len: 0,
            guard,
        })
    }

    fn append(&mut self, s: Sealed) -> Result<Record> {
        let offset = self.len;
        let len = s.bytes.len() as u64;
        self.len += len;
        self.pending_len += s.bytes.len();
        self.pending.push(s.bytes);
        if self.pending_len >= PACK_WRITE_BATCH {
            self.write_pending()?;
        }
        Ok(Record {
            file_id: s.file_id,
            blob_id: hex::encode(s.file_id),
            dkey: s.dkey,
            plaintext_len: s.plaintext_len,
            sha: s.sha,
            offset,
            len,
        })
    }

    fn write_pending(&mut self) -> Result<()> {
        let mut slices: Vec<io::IoSlice<'_>> =
            self.pending.iter().map(|b| io::IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.out.write_vectored(rest) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "short write");
                    return Err(Error::io_path("writing", &self.tmp_path, e));
                }
                Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io_path("writing", &self.tmp_path, e)),
            }
        }
        self.pending.clear();
        self.pending_len = 0;
        Ok(())
    }

    /// Steps 2-3: sync the pack, rename it into `blobs/<xx>/`, fsync that directory. Returns
    /// the pack id and the guard that removes it until the catalog references it.
    fn store(mut self, dir: &Path) -> Result<(String, TempGuard)> {
        self.write_pending()?;
        let PackWriter {
            id,
            tmp_path,
            out: file,
            mut guard,
            ..
        } = self;
        let t = Instant::now();
        file.sync_data()
            .map_err(|e| Error::io_path("syncing", &tmp_path, e))?;
        drop(file);
        phase_add(5, t);
        let t = Instant::now();
        let final_path = fsutil::blob_path(dir, &id);
        let shard = final_path
            .parent()
            .expect("blob path has a shard dir")
            .to_path_buf();
        if !shard.exists() {
            fs::create_dir_all(&shard).map_err(|e| Error::io_path("creating", &shard, e))?;
            fsutil::fsync_dir(&dir.join(BLOBS_DIR))?;
        }
        fs::rename(&tmp_path, &final_path)
            .map_err(|e| Error::io_path("storing pack", &final_path, e))?;
        guard.0 = Some(final_path);
        phase_add(6, t);
        let t = Instant::now();
        fsutil::fsync_dir(&shard)?;
        phase_add(7, t);
        Ok((id, guard))
    }
}

/// Files that fail on their own are reported and skipped; anything else stops the import.
fn is_per_file_error(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SourceVanished | ErrorCode::InvalidName | ErrorCode::AlreadyExists
    ) || matches!(e, Error::Io { context, .. } if context.starts_with("reading source"))
}

/// Reports one file's outcome; returns the error if it must stop the import.
fn settle(
    p: &Planned,
    res: Result<ImportedFile>,
    report: &mut ImportReport,
    progress: &mut dyn FnMut(&ImportEvent<'_>),
) -> Result<()> {
    match res {
        Ok(done) => {
            progress(&ImportEvent::FileDone(&done));
            report.imported.push(done);
            Ok(())
        }
        Err(e) if is_per_file_error(&e) => {
            let f = fail(&p.source, e);
            progress(&ImportEvent::FileFailed(&f));
            report.failed.push(f);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The blob format's file id is the blob id's 16 random bytes.
fn file_id_of(blob_id: &str) -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    hex::decode_to_slice(blob_id, &mut id)
        .map_err(|_| Error::CorruptCatalog(format!("malformed blob id {blob_id:?}")))?;
    Ok(id)
}

/// Expands one import source into planned files (recursing into directories in name order),
/// collecting per-file refusals instead of stopping.
fn plan_source(
    src: &Path,
    prefix: Option<&str>,
    plan: &mut Vec<Planned>,
    failed: &mut Vec<ImportFailure>,
) {
    let meta = match fs::metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            failed.push(fail(
                src,
                Error::SourceVanished {
                    path: src.display().to_string(),
                    detail: "it does not exist".into(),
                },
            ));
            return;
        }
        Err(e) => {
            failed.push(fail(src, Error::io_path("reading source", src, e)));
            return;
        }
    };
    let name = match src.file_name() {
        Some(n) => match names::component_from_os(n) {
            Ok(n) => n,
            Err(e) => {
                failed.push(fail(src, e));
                return;
            }
        },
        None => {
            // `.` or `/`: import the directory's contents without a name of its own.
            String::new()
        }
    };
    let base = match (prefix, name.is_empty()) {
        (Some(p), false) => format!("{p}/{name}"),
        (Some(p), true) => p.to_string(),
        (None, _) => name,
    };
    if meta.is_file() {
        if base.is_empty() {
            failed.push(fail(
                src,
                Error::InvalidName {
                    name: src.display().to_string(),
                    reason: "no file name".into(),
                },
            ));
            return;
        }
        match names::validate_logical_path(&base) {
            Ok(path) => plan.push(Planned {
                source: src.to_path_buf(),
                path,
                size: meta.len(),
            }),
            Err(e) => failed.push(fail(src, e)),
        }
    } else if meta.is_dir() {
        walk_dir(src, &base, plan, failed);
    } else {
        failed.push(fail(
            src,
            Error::InvalidArgument(format!(
                "{} is not a regular file or directory",
                src.display()
            )),
        ));
    }
}

fn walk_dir(dir: &Path, base: &str, plan: &mut Vec<Planned>, failed: &mut Vec<ImportFailure>) {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            failed.push(fail(dir, Error::io_path("reading source", dir, e)));
            return;
        }
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = match names::component_from_os(&e.file_name()) {
            Ok(n) => n,
            Err(err) => {
                failed.push(fail(&p, err));
                continue;
            }
        };
        let logical = if base.is_empty() {
            name
        } else {
            format!("{base}/{name}")
        };
        let ft = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(err) => {
                failed.push(fail(&p, Error::io_path("reading source", &p, err)));
                continue;
            }
        };
        if ft.file_type().is_symlink() {
            failed.push(fail(
                &p,
                Error::InvalidArgument(format!(
                    "{} is a symbolic link; links inside directories are not followed",
                    p.display()
                )),
            ));
        } else if ft.is_dir() {
            walk_dir(&p, &logical, plan, failed);
        } else if ft.is_file() {
            match names::validate_logical_path(&logical) {
                Ok(path) => plan.push(Planned {
                    source: p,
                    path,
                    size: ft.len(),
                }),
                Err(err) => failed.push(fail(&p, err)),
            }
        } else {
            failed.push(fail(
                &p,
                Error::InvalidArgument(format!("{} is not a regular file", p.display())),
            ));
        }
    }
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
