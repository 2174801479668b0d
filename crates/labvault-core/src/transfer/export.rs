//! Export: items and whole areas out of the vault into plaintext files the user chose. Nothing
//! is written under its final name before every chunk authenticated and the SHA-256 matched.

use super::sql::{area_earlier_versions, area_versions, current_version, CurrentVersion};
use super::{
    blob_err, create_guarded, file_id_of, small_run_end, sync_files, ExportFailure, ExportOptions,
    ExportReport, SinkWriter, SourceReader, TempGuard, TransferProgress, WriteBehind,
    GROUP_FILE_MAX_BYTES, WRITE_BEHIND_BYTES,
};
use crate::error::{Error, Result};
use crate::fsutil::random_hex;
use crate::items::{self, label};
use crate::model::{Area, ItemInfo, ItemState};
use crate::packs::BlobLoc;
use crate::vault::Vault;
use crate::{fsutil, names};
use labvault_crypto::{decrypt_blob, DataKey, ProjectKey};
use labvault_governance::audit::{actions, resources};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// At most this many small items share one group export (one sync pass, one fsync per
/// destination directory).
pub const EXPORT_GROUP_FILES: usize = 256;

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

/// A worker's buffers for small items: the ciphertext record and the plaintext.
#[derive(Default)]
struct SmallBuffers {
    record: Vec<u8>,
    plain: Vec<u8>,
}

impl Drop for SmallBuffers {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.plain);
    }
}

/// [`decrypt_to_temp`] for a small item (at most [`GROUP_FILE_MAX_BYTES`]): the record is read
/// and decrypted in memory, in `bufs`, and the temp file is written only once every chunk
/// verified and the SHA-256 matched, in one write. Nothing is left behind on error.
fn decrypt_small(
    job: &ExportJob,
    opts: &ExportOptions,
    cancel: &AtomicBool,
    bufs: &mut SmallBuffers,
) -> Result<Decrypted> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let target = &job.target;
    let dir = target
        .parent()
        .ok_or_else(|| Error::InvalidArgument("export destination has no directory".into()))?;
    if !opts.overwrite && fs::symlink_metadata(target).is_ok() {
        return Err(Error::AlreadyExists(format!("{}", target.display())));
    }
    let what = &job.what;
    bufs.record.clear();
    bufs.plain.clear();
    job.loc
        .open(what)?
        .read_to_end(&mut bufs.record)
        .map_err(|e| Error::io(format!("reading the blob of {what}"), e))?;
    let summary = decrypt_blob(
        &job.dkey,
        &job.file_id,
        &bufs.record[..],
        &mut bufs.plain,
        &mut |_| {},
    )
    .map_err(|e| blob_err(e, what))?;
    if hex::encode(summary.sha256) != job.sha || summary.plaintext_len != job.size {
        return Err(Error::Tampered {
            what: what.clone(),
            detail: "decrypted content does not match the recorded SHA-256".into(),
        });
    }
    let tmp = dir.join(format!(".labvault-export-{}.part", random_hex(8)));
    let (mut out, guard) = create_guarded(&tmp)?;
    out.write_all(&bufs.plain)
        .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
    // The plaintext buffer is reused; its bytes are overwritten by the next item.
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
                // Reused for every item of this worker: fresh buffers per small file cost
                // more (allocation, page faults, zeroing) than decrypting it.
                let mut bufs = SmallBuffers::default();
                for job in jobs.iter().skip(w).step_by(workers) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = decrypt_small(job, opts, cancel, &mut bufs);
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
    // The new names durable: one `syncfs` commits every directory entry of the group at once
    // (a journal commit per directory otherwise).
    #[cfg(target_os = "linux")]
    if same_fs && rustix::fs::syncfs(&fs_handle).is_ok() {
        return (placed, err);
    }
    for dir in dirs {
        if let Err(e) = fsutil::fsync_dir(dir) {
            return (placed, Some(e));
        }
    }
    (placed, err)
}

/// Whether an export failure concerns one item only (the export goes on without it) rather
/// than the whole export (cancelled, a full disk, a locked vault, an I/O failure).
fn is_per_item(e: &Error) -> bool {
    use crate::error::ErrorCode as C;
    match e.code() {
        C::AlreadyExists
        | C::InvalidName
        | C::InvalidArgument
        | C::Tampered
        | C::Truncated
        | C::Erased
        | C::NotFound => true,
        C::Io => matches!(
            e,
            Error::Io { source, .. } if matches!(source.raw_os_error(), Some(20 | 21 | 36))
        ),
        _ => false,
    }
}

/// Creates `dir` (inside the destination `root` the user chose) without following a symbolic
/// link below `root`: a link there (to `/etc`, to another user's folder) would make the export
/// write plaintext outside the folder the user chose, so it is refused, naming it. `root`
/// itself is the user's choice and is created if missing.
fn make_dirs_no_links(root: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(root).map_err(|e| Error::io_path("creating", root, e))?;
    let Ok(rel) = dir.strip_prefix(root) else {
        return Err(Error::Internal(format!(
            "export directory {} is outside the destination {}",
            dir.display(),
            root.display()
        )));
    };
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        loop {
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::InvalidArgument(format!(
                        "{} inside the export destination is a symbolic link: LabVault does not export through links (the files could land outside the folder you chose); remove it or choose another destination",
                        cur.display()
                    )))
                }
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(Error::AlreadyExists(format!(
                        "{} (a file where the export needs a folder)",
                        cur.display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&cur) {
                    Ok(()) => break,
                    // Made meanwhile: checked again above.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(Error::io_path("creating", &cur, e)),
                },
                Err(e) => return Err(Error::io_path("checking", &cur, e)),
            }
        }
    }
    Ok(())
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

/// An export job from an item's current version: its data key unwrapped here, so workers need
/// neither the catalog nor the project key.
fn job_of(
    item: &ItemInfo,
    v: CurrentVersion,
    target: PathBuf,
    pkey: &ProjectKey,
) -> Result<ExportJob> {
    let what = label(item);
    let file_id = file_id_of(&v.blob_id)?;
    let dkey = pkey
        .unwrap_data_key(&v.wrapped, &file_id)
        .map_err(|e| blob_err(e, &what))?;
    Ok(ExportJob {
        what,
        size: item.size,
        loc: v.loc,
        file_id,
        dkey,
        sha: v.sha256,
        target,
    })
}

impl Vault {
    /// Exports one active item into directory `dest_dir` under its file name. The plaintext is
    /// written to a temp file beside the final one and renamed into place only after the final
    /// chunk verified and the SHA-256 matched; on any failure no output file is left.
    pub fn export_item(
        &self,
        item_id: &str,
        dest_dir: &Path,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<PathBuf> {
        self.read_op(
            actions::DATA_EXPORT,
            items::resource_of(self, item_id),
            || {
                let out = self.export_item_to(item_id, dest_dir, opts, progress, cancel)?;
                Ok((out, String::new()))
            },
        )
    }

    fn export_item_to(
        &self,
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
            dest_dir,
            &dest_dir.join(name),
            opts,
            0,
            total,
            progress,
            cancel,
        )
    }
    /// Exports every active item of `project`/`area` under `dest_dir`, recreating the logical
    /// directory structure, as many as it can: an item that cannot be exported (a file already
    /// there, a name the destination cannot hold, a file where a folder is needed, a link in the
    /// way, a damaged blob) leaves nothing and is reported with its reason in
    /// [`ExportReport::failed`]; the others are exported. What stops the whole export (cancel,
    /// a full disk, a locked vault) is an error; the files before it stay.
    ///
    /// Small items go in groups (group export, the mirror of the import's group commit): worker
    /// threads decrypt and verify each into its own temp file beside its target, then the
    /// group's data is made durable at once, then the temp files are renamed into place and
    /// each destination directory is fsynced once. A temp file is renamed only after its final
    /// chunk verified and its SHA-256 matched, as for a single item.
    #[allow(clippy::too_many_arguments)]
    pub fn export_area(
        &self,
        project: &str,
        area: Area,
        dest_dir: &Path,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<ExportReport> {
        let resource = match self.project(project) {
            Ok(p) => resources::project(&p.id),
            Err(_) => "project/unknown".to_string(),
        };
        self.read_op(actions::DATA_EXPORT, resource, || {
            let out = self.export_area_to(project, area, dest_dir, opts, progress, cancel)?;
            let detail = format!(
                "area={area} exported={} failed={}",
                out.exported.len(),
                out.failed.len()
            );
            Ok((out, detail))
        })
    }

    pub(crate) fn export_area_to(
        &self,
        project: &str,
        area: Area,
        dest_dir: &Path,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<ExportReport> {
        // Every item with where its current version is, in one read (a query per item cost
        // more than decrypting a small one).
        let (items, mut versions): (Vec<ItemInfo>, Vec<Option<CurrentVersion>>) = {
            let conn = self.reader()?;
            let project = crate::projects::find(&conn, project)?;
            area_versions(&conn, &self.dir, &project.id, area)?
                .into_iter()
                .map(|(i, v)| (i, Some(v)))
                .unzip()
        };
        let total: u64 = items.iter().map(|i| i.size).sum();
        let mut done = 0u64;
        let mut out = Vec::new();
        let mut failed: Vec<ExportFailure> = Vec::new();
        let mut skip = |item: &ItemInfo, e: Error| -> Result<()> {
            if !is_per_item(&e) {
                return Err(e);
            }
            failed.push(ExportFailure {
                path: format!("{}/{}", item.area, item.path),
                code: e.code(),
                message: e.to_string(),
            });
            Ok(())
        };
        let mut pkeys: std::collections::HashMap<String, ProjectKey> = Default::default();
        let mut made_dirs = std::collections::HashSet::new();
        let mut i = 0;
        while i < items.len() {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let item = &items[i];
            if item.size > GROUP_FILE_MAX_BYTES {
                let r = names::validate_logical_path(&item.path).and_then(|rel| {
                    let target = dest_dir.join(&rel);
                    self.export_to(item, dest_dir, &target, opts, done, total, progress, cancel)
                });
                match r {
                    Ok(p) => out.push(p),
                    Err(e) => skip(item, e)?,
                }
                done += item.size;
                i += 1;
                continue;
            }
            let end = small_run_end(items.len(), i, EXPORT_GROUP_FILES, |k| items[k].size);
            // Catalog reads and key unwrapping here (the connection stays on this thread); a
            // failure cuts the group before that item.
            let mut jobs = Vec::with_capacity(end - i);
            let mut first_err = None;
            for (item, version) in items[i..end].iter().zip(&mut versions[i..end]) {
                let job = (|| -> Result<ExportJob> {
                    let rel = names::validate_logical_path(&item.path)?;
                    let target = dest_dir.join(&rel);
                    let dir = target.parent().ok_or_else(|| {
                        Error::InvalidArgument("export destination has no directory".into())
                    })?;
                    if !made_dirs.contains(dir) {
                        make_dirs_no_links(dest_dir, dir)?;
                        made_dirs.insert(dir.to_path_buf());
                    }
                    if !pkeys.contains_key(&item.project_id) {
                        let k = self.project_key(&item.project_id)?;
                        pkeys.insert(item.project_id.clone(), k);
                    }
                    let version = version.take().expect("each version is used once");
                    job_of(item, version, target, &pkeys[&item.project_id])
                })();
                match job {
                    Ok(j) => jobs.push(j),
                    Err(e) => {
                        first_err = Some(e);
                        break;
                    }
                }
            }
            // The group's jobs; an item that fails leaves nothing and the rest go on (its
            // version was consumed by its job, so the remaining jobs are exported as they are).
            let mut from = 0;
            while from < jobs.len() {
                let base = i + from;
                let (paths, err) = export_group(&jobs[from..], opts, dest_dir, cancel, &mut |k| {
                    let it = &items[base + k];
                    done += it.size;
                    progress(&TransferProgress {
                        path: &it.path,
                        file_done: it.size,
                        file_total: it.size,
                        overall_done: done,
                        overall_total: total,
                    })
                });
                let placed = paths.len();
                out.extend(paths);
                match err {
                    Some(e) => {
                        let item = &items[base + placed];
                        done += item.size;
                        skip(item, e)?;
                        from += placed + 1;
                    }
                    None => from = jobs.len(),
                }
            }
            match first_err {
                // The item after the last job could not even be prepared; go on after it.
                Some(e) => {
                    let item = &items[i + jobs.len()];
                    done += item.size;
                    skip(item, e)?;
                    i += jobs.len() + 1;
                }
                None => i = end,
            }
        }
        Ok(ExportReport {
            exported: out,
            failed,
        })
    }
    /// What a worker needs to decrypt one item to `target`, read from the catalog.
    fn export_job(&self, item: &ItemInfo, target: PathBuf, pkey: &ProjectKey) -> Result<ExportJob> {
        let v = current_version(&*self.reader()?, &self.dir, item)?;
        job_of(item, v, target, pkey)
    }
    #[allow(clippy::too_many_arguments)]
    fn export_to(
        &self,
        item: &ItemInfo,
        root: &Path,
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
        make_dirs_no_links(root, dir)?;
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
}

/// Decrypts one item version into a writer (see [`Vault::for_each_plaintext`]).
pub(crate) type Decryptor<'a> = dyn FnMut(&mut dyn Write) -> Result<()> + 'a;

/// Items up to this size are decrypted ahead into memory by [`Vault::for_each_plaintext`].
const AHEAD_ITEM_MAX_BYTES: u64 = 1 << 20;
/// How many items may wait decrypted per thread (at most this many MiB held by each).
const AHEAD_ITEMS: usize = 16;
/// Threads decrypting ahead.
const AHEAD_THREADS: usize = 2;

/// An item as the decrypt-ahead thread hands it over.
enum Ahead {
    /// Decrypted and checked: the plaintext, and how errors name the item.
    Ready(Vec<u8>, String),
    /// Too big to hold: streamed by the consumer.
    Stream(ExportJob),
}

/// Decrypts `job` into `out`, checking length and SHA-256 at the end (on a mismatch `out`
/// has received bytes that must be discarded, and the error says so).
fn decrypt_checked(job: &ExportJob, out: &mut dyn Write, cancel: &AtomicBool) -> Result<()> {
    let blob = job.loc.open(&job.what)?;
    let mut sink = SinkWriter {
        inner: out,
        cancel,
        cancelled: false,
        error: None,
    };
    let summary = match decrypt_blob(&job.dkey, &job.file_id, blob, &mut sink, &mut |_| {}) {
        Ok(s) => s,
        Err(e) => {
            if sink.cancelled {
                return Err(Error::Cancelled);
            }
            if let Some(we) = sink.error.take() {
                return Err(Error::io(format!("writing {}", job.what), we));
            }
            return Err(blob_err(e, &job.what));
        }
    };
    if hex::encode(summary.sha256) != job.sha || summary.plaintext_len != job.size {
        return Err(Error::Tampered {
            what: job.what.clone(),
            detail: "decrypted content does not match the recorded SHA-256".into(),
        });
    }
    Ok(())
}

/// Which versions [`Vault::for_each_plaintext`] streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Versions {
    /// Each item's current version.
    Current,
    /// The earlier versions still kept: unresolved conflict siblings, and every other one
    /// with `all`.
    Earlier {
        /// Every earlier version, not only conflict siblings.
        all: bool,
    },
}

impl Vault {
    /// Appends the earlier versions of `project_id`/`area` a bundle holds (see
    /// [`Versions::Earlier`]) to `out`, as items as of that version, with whether each is an
    /// unresolved conflict sibling.
    pub(crate) fn earlier_version_rows(
        &self,
        project_id: &str,
        area: Area,
        all: bool,
        out: &mut Vec<(ItemInfo, bool)>,
    ) -> Result<()> {
        let rows = area_earlier_versions(&*self.reader()?, &self.dir, project_id, area, all)?;
        out.extend(rows.into_iter().map(|(i, _, c)| (i, c)));
        Ok(())
    }

    /// Streams versions of every active item of `project_id` in `area` (ordered by path, then
    /// version): `f(item, conflict, decrypt)` is called once per version with the item as of
    /// that version and whether it is an unresolved conflict sibling, and calls `decrypt(out)`
    /// to have the plaintext written to `out`, checked against its length and SHA-256 at the end
    /// (on a mismatch `out` has received bytes that must be discarded, and the error says so).
    /// For writers of one stream (a bundle): no temp file, nothing held in memory.
    pub(crate) fn for_each_plaintext(
        &self,
        project_id: &str,
        area: Area,
        which: Versions,
        cancel: &AtomicBool,
        f: &mut dyn FnMut(&ItemInfo, bool, &mut Decryptor<'_>) -> Result<()>,
    ) -> Result<()> {
        let rows: Vec<(ItemInfo, CurrentVersion, bool)> = {
            let conn = self.reader()?;
            match which {
                Versions::Current => area_versions(&conn, &self.dir, project_id, area)?
                    .into_iter()
                    .map(|(i, v)| (i, v, false))
                    .collect(),
                Versions::Earlier { all } => {
                    area_earlier_versions(&conn, &self.dir, project_id, area, all)?
                }
            }
        };
        if rows.is_empty() {
            return Ok(());
        }
        let pkey = self.project_key(project_id)?;
        // Two threads decrypt (and check) small items ahead into memory, taking turns in item
        // order, while this one hands the previous ones to `f`: for many small files the cipher
        // then keeps both cores busy and the writer never waits for it. Big items are streamed
        // here, never held in memory.
        type Handed = (Result<Ahead>, ItemInfo, bool);
        let mut rows_of: [Vec<(ItemInfo, CurrentVersion, bool)>; AHEAD_THREADS] =
            Default::default();
        let n = rows.len();
        for (k, row) in rows.into_iter().enumerate() {
            rows_of[k % AHEAD_THREADS].push(row);
        }
        std::thread::scope(|scope| -> Result<()> {
            let pkey = &pkey;
            let mut rxs = Vec::with_capacity(AHEAD_THREADS);
            for rows in rows_of {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Handed>(AHEAD_ITEMS);
                rxs.push(rx);
                scope.spawn(move || {
                    for (item, version, conflict) in rows {
                        if cancel.load(Ordering::Relaxed) {
                            let _ = tx.send((Err(Error::Cancelled), item, conflict));
                            return;
                        }
                        let ahead = job_of(&item, version, PathBuf::new(), pkey).and_then(|job| {
                            if job.size > AHEAD_ITEM_MAX_BYTES {
                                return Ok(Ahead::Stream(job));
                            }
                            let mut buf = Vec::with_capacity(job.size as usize);
                            decrypt_checked(&job, &mut buf, cancel)?;
                            Ok(Ahead::Ready(buf, job.what))
                        });
                        let failed = ahead.is_err();
                        if tx.send((ahead, item, conflict)).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            // The receivers are moved in and dropped on an early return, which stops the
            // threads' `send`.
            let rxs = rxs;
            for k in 0..n {
                let Ok((ahead, item, conflict)) = rxs[k % AHEAD_THREADS].recv() else {
                    return Err(Error::Internal("a decrypting thread stopped early".into()));
                };
                let mut ahead = Some(ahead?);
                let mut decrypt = |out: &mut dyn Write| -> Result<()> {
                    match ahead.take() {
                        Some(Ahead::Ready(buf, what)) => {
                            if cancel.load(Ordering::Relaxed) {
                                return Err(Error::Cancelled);
                            }
                            out.write_all(&buf)
                                .map_err(|e| Error::io(format!("writing {what}"), e))
                        }
                        Some(Ahead::Stream(job)) => decrypt_checked(&job, out, cancel),
                        None => Err(Error::Internal("an item was decrypted twice".into())),
                    }
                };
                f(&item, conflict, &mut decrypt)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}
