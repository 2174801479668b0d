//! Import: planning sources into files, big files one blob each, small files in group commits
//! (their packs staged by `pack_writer.rs` while the previous group commits).

use super::pack_writer::{stage_group, Record, StagedGroup};
use super::phases::{self, Phase};
use super::sql::insert_version;
use super::{
    blob_err, check_source_unchanged, create_temp, is_per_file_error, open_source, small_run_end,
    ImportEvent, ImportFailure, ImportOptions, ImportReport, ImportedFile, Planned, SinkWriter,
    SourceReader, TempGuard, WriteBehind, GROUP_FILE_MAX_BYTES, WRITE_BEHIND_BYTES,
};
use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout::BLOBS_DIR;
use crate::model::{Area, DataType};
use crate::names;
use crate::vault::{ts_to_ms, Vault, WriteOp};
use crate::watches::WatchOrigin;
use labvault_crypto::{encrypt_blob, DataKey, ProjectKey, WrappedKey, DEFAULT_CHUNK_SIZE};
use labvault_governance::audit::{actions, resources, Outcome};
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A file refused on its own, as the report lists it.
fn fail(source: &Path, e: Error) -> ImportFailure {
    ImportFailure {
        source: source.to_path_buf(),
        code: e.code(),
        message: format!("{}: {e}", source.display()),
    }
}

/// Groups of an import being staged at once (sealed into their packs, synced) while this
/// thread commits an earlier one: one can seal while another waits for its sync.
const STAGE_AHEAD: usize = 2;

/// At most this many files share one group commit (and one pack): in the first group of an
/// import, the second, and every later one. The first commit waits until its whole group is
/// sealed, so it is small; later groups are big so that commits (a WAL fsync each) are few.
pub const IMPORT_GROUP_FILES: [usize; 3] = [64, 256, 1024];

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
        let final_path = crate::layout::blob_path(dir, &self.blob_id);
        fs::rename(&self.tmp_path, &final_path)
            .map_err(|e| Error::io_path("storing blob", &final_path, e))?;
        self.guard.0 = Some(final_path);
        Ok(())
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
    let t = phases::start();
    let out = st.file.take().expect("a staged file is open");
    out.sync_all()
        .map_err(|e| Error::io_path("syncing", &st.tmp_path, e))?;
    drop(out);
    t.stop(Phase::SyncData);
    let t = phases::start();
    let final_path = crate::layout::blob_path(dir, &st.blob_id);
    let shard = final_path.parent().expect("blob path has a shard dir");
    if !shard.exists() {
        fs::create_dir_all(shard).map_err(|e| Error::io_path("creating", shard, e))?;
        fsutil::fsync_dir(&dir.join(BLOBS_DIR))?;
    }
    st.store(dir)?;
    fsutil::fsync_dir(shard)?;
    t.stop(Phase::DirFsync);
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
    let t = phases::start();
    let src = open_source(&p.source, &src_name)?;
    let mut file_id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut file_id);
    file_id[0] = shard_byte;
    let blob_id = hex::encode(file_id);
    let (out, tmp_path, guard) = create_temp(dir, &blob_id)?;
    t.stop(Phase::OpenCreate);
    let t = phases::start();
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
    t.stop(Phase::Encrypt);
    let t = phases::start();
    check_source_unchanged(p, summary.plaintext_len, &src_name)?;
    t.stop(Phase::SizeCheck);
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

/// One unit of an import: a group of consecutive small files (committed together) or one
/// big file (committed on its own).
enum Unit {
    Group(std::ops::Range<usize>),
    Big(usize),
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

/// A file and a folder cannot share a name in an area (`conf` beside `conf/y`): no file system
/// could hold both on export. A planned file whose path is an item's folder, or under an item
/// (or under another planned file), is refused with `already_exists`, naming the clash.
fn refuse_file_folder_clashes(
    conn: &rusqlite::Connection,
    project_id: &str,
    area: Area,
    plan: &mut Vec<Planned>,
    failed: &mut Vec<ImportFailure>,
) -> Result<()> {
    use rusqlite::OptionalExtension;
    use std::collections::{HashMap, HashSet};
    let planned: HashSet<String> = plan.iter().map(|p| p.path.clone()).collect();
    let mut is_item: HashMap<String, bool> = HashMap::new();
    let mut item_at = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM items WHERE project_id = ?1 AND area = ?2 AND path = ?3
             AND state = 'active')",
    )?;
    // Items under `p/`: paths between `p/` and `p0` ('0' follows '/').
    let mut under = conn.prepare_cached(
        "SELECT path FROM items WHERE project_id = ?1 AND area = ?2 AND state = 'active'
             AND path > ?3 AND path < ?4 LIMIT 1",
    )?;
    // Paths of active items under each planned file's folder, one range read per folder
    // (a read per file cost a few percent of a small-file import).
    let mut under_dir: HashMap<String, std::collections::BTreeSet<String>> = HashMap::new();
    let mut items_under = conn.prepare_cached(
        "SELECT path FROM items WHERE project_id = ?1 AND area = ?2 AND state = 'active'
             AND path > ?3 AND path < ?4",
    )?;
    let mut keep = Vec::with_capacity(plan.len());
    for p in plan.drain(..) {
        let mut clash: Option<String> = None;
        for (i, _) in p.path.match_indices('/') {
            let dir = &p.path[..i];
            let file_there = match is_item.get(dir) {
                Some(b) => *b,
                None => {
                    let b: bool = item_at
                        .query_row(rusqlite::params![project_id, area.as_str(), dir], |r| {
                            r.get(0)
                        })?;
                    is_item.insert(dir.to_string(), b);
                    b
                }
            };
            if file_there || planned.contains(dir) {
                clash = Some(format!(
                    "{dir} is a file in {area}, so it cannot also be a folder"
                ));
                break;
            }
        }
        if clash.is_none() {
            let below: Option<String> = match p.path.rsplit_once('/') {
                Some((dir, _)) => {
                    if !under_dir.contains_key(dir) {
                        let rows = items_under
                            .query_map(
                                rusqlite::params![
                                    project_id,
                                    area.as_str(),
                                    format!("{dir}/"),
                                    format!("{dir}0")
                                ],
                                |r| r.get::<_, String>(0),
                            )?
                            .collect::<rusqlite::Result<_>>()?;
                        under_dir.insert(dir.to_string(), rows);
                    }
                    let lo = format!("{}/", p.path);
                    under_dir[dir]
                        .range(lo.clone()..)
                        .next()
                        .filter(|b| b.starts_with(&lo))
                        .cloned()
                }
                None => under
                    .query_row(
                        rusqlite::params![
                            project_id,
                            area.as_str(),
                            format!("{}/", p.path),
                            format!("{}0", p.path)
                        ],
                        |r| r.get(0),
                    )
                    .optional()?,
            };
            if let Some(b) = below {
                clash = Some(format!(
                    "{} is a folder in {area} (it holds {b}), so it cannot also be a file",
                    p.path
                ));
            }
        }
        match clash {
            Some(why) => failed.push(fail(
                &p.source,
                Error::AlreadyExists(format!("{}: {why}", p.path)),
            )),
            None => keep.push(p),
        }
    }
    *plan = keep;
    Ok(())
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

impl Vault {
    /// Imports files and whole directory trees into `project`/`area` (`data.import`: one event
    /// per file committed, in the transaction that commits it, a group commit for small files;
    /// one `failure` event per file refused; `files=0` when there was nothing to import). Each
    /// file is committed on its own (and reported with [`ImportEvent::FileDone`]); a file that
    /// cannot be imported (invalid or non-UTF-8 name, vanished source, symlink) is reported and
    /// skipped. Running out of space, a vault I/O failure or `cancel` stop the import with an
    /// error; files committed before stay imported. Re-importing an existing path adds a new
    /// version. Runs as the vault's one writer; readers carry on meanwhile.
    pub fn import(
        &self,
        project: &str,
        area: Area,
        sources: &[PathBuf],
        opts: &ImportOptions,
        progress: &mut dyn FnMut(&ImportEvent<'_>),
        cancel: &AtomicBool,
    ) -> Result<ImportReport> {
        let resource = || match self.project(project) {
            Ok(p) => resources::project(&p.id),
            Err(_) => resources::VAULT.to_string(),
        };
        self.write_op(actions::DATA_IMPORT, resource, |w| {
            let report = import_in(w, project, area, sources, opts, progress, cancel)?;
            let res = resource();
            if report.imported.is_empty() && report.failed.is_empty() {
                w.commit(actions::DATA_IMPORT, |_| {
                    Ok(((), Subject::new(res.clone(), "files=0")))
                })?;
            }
            for f in &report.failed {
                w.record(
                    actions::DATA_IMPORT,
                    Subject::new(res.clone(), f.code.as_str()),
                    Outcome::Failure,
                )?;
            }
            Ok(report)
        })
    }
}
/// The import itself, as part of write op `w` (see [`Vault::import`]).
fn import_in(
    w: &mut WriteOp<'_>,
    project: &str,
    area: Area,
    sources: &[PathBuf],
    opts: &ImportOptions,
    progress: &mut dyn FnMut(&ImportEvent<'_>),
    cancel: &AtomicBool,
) -> Result<ImportReport> {
    let project = w.vault.project(project)?;
    let prefix = match &opts.dest_prefix {
        Some(p) if !p.is_empty() => Some(names::validate_logical_path(p)?),
        _ => None,
    };
    let data_type = opts.data_type.unwrap_or(area.default_data_type());
    let watch = opts.watch.as_ref();
    let mut report = ImportReport::default();
    let mut plan = Vec::new();
    let t = phases::start();
    for src in sources {
        plan_source(src, prefix.as_deref(), &mut plan, &mut report.failed);
    }
    refuse_file_folder_clashes(w.conn(), &project.id, area, &mut plan, &mut report.failed)?;
    t.stop(Phase::Plan);
    for f in &report.failed {
        progress(&ImportEvent::FileFailed(f));
    }
    let failed_at_plan = report.failed.len();
    let overall_total: u64 = plan.iter().map(|p| p.size).sum();
    progress(&ImportEvent::Started {
        files_total: plan.len() as u64,
        bytes_total: overall_total,
    });
    let pkey = w.vault.project_key(&project.id)?;
    let units = plan_units(&plan);
    let dir = w.vault.dir.clone();
    let abort = AtomicBool::new(false);
    let mut overall_done = 0u64;
    if !units.is_empty() {
        w.mark_blobs_unsettled()?;
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
                            commit_blob(w, &project.id, area, data_type, p, prep, watch)
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
                let t = phases::start();
                let staged = inflight
                    .pop_front()
                    .expect("the current group is staging")
                    .join()
                    .unwrap_or_else(|_| Err(Error::Internal("an import worker panicked".into())))?;
                t.stop(Phase::WaitEncryption);
                refill(&mut inflight);
                commit_group(
                    w,
                    &project.id,
                    &pkey,
                    area,
                    data_type,
                    &plan[range.clone()],
                    staged,
                    (&mut overall_done, overall_total),
                    progress,
                    &mut report,
                    watch,
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
    w: &mut WriteOp<'_>,
    project_id: &str,
    pkey: &ProjectKey,
    area: Area,
    data_type: DataType,
    group: &[Planned],
    staged: StagedGroup,
    (overall_done, overall_total): (&mut u64, u64),
    progress: &mut dyn FnMut(&ImportEvent<'_>),
    report: &mut ImportReport,
    watch: Option<&WatchOrigin>,
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
    let now = ts_to_ms(w.vault.now());
    let actor = w.vault.actor.clone();
    let t = phases::start();
    let wrapped: Vec<WrappedKey> = ok
        .iter()
        .map(|(_, s)| pkey.wrap_data_key(&s.dkey, &s.file_id))
        .collect();
    t.stop(Phase::WrapKeys);
    let t = phases::start();
    let track = crate::changes::tracking(w.conn())?;
    let rows = match &pack {
        Some((pack_id, _)) if !ok.is_empty() => {
            let insert = |tx: &rusqlite::Transaction<'_>, k: usize| {
                let (p, s) = ok[k];
                let t = phases::start();
                let (item_id, version) = insert_version(
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
                    track,
                )?;
                t.stop(Phase::CatalogRows);
                WatchOrigin::journal(watch, tx, &p.source, &item_id, version, now)?;
                // Each file's audit event names its item version (and the watch it came by).
                let subject = Subject::new(
                    resources::item(project_id, &item_id),
                    WatchOrigin::detail(watch, format!("area={area} version={version}")),
                );
                Ok(((item_id, version), subject))
            };
            w.commit_each(actions::DATA_IMPORT, ok.len(), insert)?
        }
        _ => Vec::new(),
    };
    t.stop(Phase::CatalogTotal);
    if let Some((_, mut guard)) = pack {
        guard.disarm();
    }
    // Step 5: committed; report every file of the group in plan order.
    let t = phases::start();
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
    t.stop(Phase::Report);
    *overall_done = done;
    Ok(())
}

/// Commits a stored blob as a new item, or a new version of the active item at its path.
/// On failure the blob is removed again.
fn commit_blob(
    w: &mut WriteOp<'_>,
    project_id: &str,
    area: Area,
    data_type: DataType,
    p: &Planned,
    prep: Prepared,
    watch: Option<&WatchOrigin>,
) -> Result<ImportedFile> {
    let mut guard = TempGuard(Some(prep.final_path.clone()));
    let Prepared {
        blob_id,
        wrapped,
        plaintext_len,
        sha,
        ..
    } = prep;
    let now = ts_to_ms(w.vault.now());
    let actor = w.vault.actor.clone();
    let track = crate::changes::tracking(w.conn())?;
    let (item_id, version) = w.commit(actions::DATA_IMPORT, |tx| {
        let (item_id, version) = insert_version(
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
            track,
        )?;
        WatchOrigin::journal(watch, tx, &p.source, &item_id, version, now)?;
        let subject = Subject::new(
            resources::item(project_id, &item_id),
            WatchOrigin::detail(watch, format!("area={area} version={version}")),
        );
        Ok(((item_id, version), subject))
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
