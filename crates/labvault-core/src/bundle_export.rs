//! Writing a project bundle (format in [`crate::bundle`]): every live item (and the earlier
//! versions asked for) decrypted and verified against its SHA-256 as it is written, while a
//! second thread builds the manifest's files, the project's audit slice and spreadsheets; then
//! `bundle.json`, last.
//!
//! The bundle is built under a hidden name beside the destination and renamed into place only
//! when complete, so a bundle that fails or is cancelled half-way leaves nothing that looks like
//! one. A `.tar` destination gets the same tree as one archive, files first and `bundle.json`
//! closing it (verification reads it in one pass, in any order); sealed, it goes through age on
//! its way to the disk, and its data is synced behind the writer so the end does not wait.

use crate::bundle::{
    manifest_csv, verify_md, version_file, BundleAudit, BundleEntry, BundleFileDigest, BundleInfo,
    EntryRole, AUDIT_CSV, AUDIT_JSONL, AUDIT_XLSX, AUDIT_XLSX_MAX_EVENTS, BUNDLE_FILE,
    BUNDLE_FORMAT, CHECKPOINTS_JSON, FILES_DIR, MANIFEST_CSV, MANIFEST_JSON, MANIFEST_XLSX,
    VERIFY_MD,
};
use crate::bundle_seal::BundleSeal;
use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, rfc3339, Staging};
use crate::model::{Area, ItemInfo, ItemState, ListFilter};
use crate::names;
use crate::transfer::{TransferProgress, Versions};
use crate::vault::Vault;
use labvault_governance::audit::AuditEvent;
use labvault_governance::audit::{actions, resources};
use labvault_governance::export::{ExportFormat, ExportWriter};
use labvault_governance::retention::DisplayState;
use labvault_sheets::{Cell, Column, Kind, Sheet};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`Vault::export_project_bundle`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BundleSummary {
    /// The bundle (directory or `.tar`).
    pub path: PathBuf,
    /// Files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Audit events of the project in it.
    pub audit_events: u64,
    /// SHA-256 of its `bundle.json`, also recorded in the export's audit event.
    pub bundle_digest: String,
}

/// Writes a metadata file into a directory bundle, synced.
fn write_meta(dir: &Path, m: &Meta) -> Result<()> {
    let p = dir.join(m.name);
    let mut f = File::create(&p).map_err(|e| Error::io_path("writing", &p, e))?;
    f.write_all(&m.bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io_path("writing", &p, e))
}

/// The ustar/GNU header of a regular file (a GNU long-name entry first when the path is longer
/// than the header's 100 bytes), written straight to the archive.
fn write_tar_header(w: &mut dyn Write, path: &str, size: u64, mtime: i64) -> std::io::Result<()> {
    let bytes = path.as_bytes();
    if bytes.len() > 100 {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(bytes.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_cksum();
        w.write_all(h.as_bytes())?;
        w.write_all(bytes)?;
        w.write_all(&[0])?;
        write_tar_padding(w, bytes.len() as u64 + 1)?;
    }
    let mut h = tar::Header::new_gnu();
    let n = bytes.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&bytes[..n]);
    h.set_mode(0o644);
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h.set_size(size);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    w.write_all(h.as_bytes())
}

/// Zeros up to the next 512-byte block after `size` bytes of content.
fn write_tar_padding(w: &mut dyn Write, size: u64) -> std::io::Result<()> {
    let rem = (size % 512) as usize;
    if rem != 0 {
        w.write_all(&[0u8; 512][..512 - rem])?;
    }
    Ok(())
}

fn parse_time(s: &str) -> Cell {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(Cell::DateTime)
        .unwrap_or(Cell::Empty)
}

fn columns(spec: &[(&str, Kind)]) -> Vec<Column> {
    spec.iter().map(|(n, k)| Column::new(*n, *k)).collect()
}

/// The manifest as a spreadsheet (sizes as numbers, times as date-times, hashes as text).
fn manifest_sheet(entries: &[BundleEntry]) -> Sheet {
    use Kind::*;
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                Cell::Text(e.id.clone()),
                Cell::Text(e.area.clone()),
                Cell::Text(e.path.clone()),
                Cell::Text(e.file.clone()),
                Cell::Int(i64::try_from(e.size).unwrap_or(i64::MAX)),
                Cell::Text(e.sha256.clone()),
                Cell::Text(e.media_type.clone()),
                Cell::Text(e.data_type.clone()),
                Cell::Text(e.created_by.clone()),
                parse_time(&e.created_at),
                parse_time(&e.updated_at),
                Cell::Int(i64::from(e.version)),
                Cell::Text(e.retention_period.clone()),
                parse_time(&e.retention_expires_at),
                Cell::Bool(e.on_hold),
                Cell::Text(e.role.as_str().to_string()),
            ]
        })
        .collect();
    Sheet {
        name: "Manifest".into(),
        columns: columns(&[
            ("id", Code),
            ("area", Text),
            ("path", Text),
            ("file", Text),
            ("size", Integer),
            ("sha256", Code),
            ("media_type", Text),
            ("data_type", Text),
            ("created_by", Text),
            ("created_at", DateTime),
            ("updated_at", DateTime),
            ("version", Integer),
            ("retention_period", Text),
            ("retention_expires_at", DateTime),
            ("on_hold", Bool),
            ("role", Text),
        ]),
        rows,
    }
}

/// The audit log's columns as a spreadsheet.
fn audit_columns() -> Vec<Column> {
    use Kind::*;
    columns(&[
        ("timestamp", DateTime),
        ("user", Text),
        ("action", Text),
        ("resource", Text),
        ("ip_address", Text),
        ("user_agent", Text),
        ("result", Text),
        ("detail", Text),
        ("device_id", Code),
        ("seq", Integer),
        ("prev_hash", Code),
        ("hash", Code),
    ])
}

fn audit_row(ev: &AuditEvent) -> Vec<Cell> {
    vec![
        Cell::DateTime(ev.timestamp),
        Cell::Text(ev.user.clone()),
        Cell::Text(ev.action.as_str().to_string()),
        Cell::Text(ev.resource.clone()),
        Cell::Text(ev.ip_address.clone()),
        Cell::Text(ev.user_agent.clone()),
        Cell::Text(ev.result.as_str().to_string()),
        Cell::Text(ev.detail.clone()),
        Cell::Text(ev.device_id.clone()),
        Cell::Int(i64::try_from(ev.seq).unwrap_or(i64::MAX)),
        Cell::Text(hex::encode(ev.prev_hash)),
        Cell::Text(hex::encode(ev.hash)),
    ]
}

fn xlsx(sheet: Sheet) -> Result<Vec<u8>> {
    labvault_sheets::workbook(&[sheet]).map_err(|e| Error::Internal(format!("spreadsheet: {e}")))
}

/// How [`Vault::export_project_bundle`] writes a bundle.
#[derive(Default)]
pub struct BundleOptions {
    /// Every earlier version still kept, not only unresolved conflict siblings (which a bundle
    /// always holds: they are data no device has chosen to drop).
    pub all_versions: bool,
    /// Seal the `.tar` with age (the destination must end in `.tar.age`).
    pub seal: Option<BundleSeal>,
}

/// Where a bundle goes, from its destination's name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Dir,
    Tar,
    SealedTar,
}

fn shape_of(dest: &Path, sealed: bool) -> Result<Shape> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match (name.ends_with(".tar.age"), name.ends_with(".tar"), sealed) {
        (true, _, true) => Ok(Shape::SealedTar),
        (true, _, false) => Err(Error::InvalidArgument(format!(
            "{} names an encrypted bundle: give a passphrase or a recipient to seal it with",
            dest.display()
        ))),
        (false, _, true) => Err(Error::InvalidArgument(format!(
            "an encrypted bundle is one file: name it NAME.tar.age, not {}",
            dest.display()
        ))),
        (false, true, false) => Ok(Shape::Tar),
        (false, false, false) => Ok(Shape::Dir),
    }
}

/// The file a `.tar` bundle is written to: plain, or through the age stream (whose last chunk
/// `finish` writes), with its data sent to the disk while the export goes on.
struct TarSink {
    out: TarOut,
    behind: WriteBehind,
}

enum TarOut {
    Plain(File),
    Sealed(age::stream::StreamWriter<File>),
}

impl TarSink {
    fn new(f: File, seal: Option<&BundleSeal>) -> std::io::Result<Self> {
        let behind = WriteBehind::new(&f)?;
        let out = match seal {
            Some(seal) => TarOut::Sealed(seal.wrap(f)?),
            None => TarOut::Plain(f),
        };
        Ok(Self { out, behind })
    }

    fn finish(self) -> std::io::Result<File> {
        let f = match self.out {
            TarOut::Plain(f) => f,
            TarOut::Sealed(s) => s.finish()?,
        };
        self.behind.finish()?;
        Ok(f)
    }
}

impl Write for TarSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.out {
            TarOut::Plain(f) => f.write(buf)?,
            TarOut::Sealed(s) => s.write(buf)?,
        };
        self.behind.wrote(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            TarOut::Plain(f) => f.flush(),
            TarOut::Sealed(s) => s.flush(),
        }
    }
}

/// The `.tar` being written, inside the staging directory (removed with it on failure).
const TAR_TMP: &str = ".bundle.tar";

/// Bytes written between two early syncs of a `.tar` bundle.
const WRITE_BEHIND_BYTES: u64 = 64 << 20;

/// Starts the disk early: every [`WRITE_BEHIND_BYTES`] written, a helper thread syncs the
/// file's data so far, so the disk writes while the cipher works and the final sync waits only
/// for the tail (one sync at the end left the disk idle for most of the export).
struct WriteBehind {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    pending: u64,
}

impl WriteBehind {
    fn new(f: &File) -> std::io::Result<Self> {
        let file = f.try_clone()?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("bundle-write-behind".into())
            .spawn(move || {
                for () in rx {
                    file.sync_data()?;
                }
                Ok(())
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            pending: 0,
        })
    }

    fn wrote(&mut self, n: usize) {
        self.pending += n as u64;
        if self.pending >= WRITE_BEHIND_BYTES {
            // Busy with the last one: try again after the next write.
            if let Some(Ok(())) = self.tx.as_ref().map(|tx| tx.try_send(())) {
                self.pending = 0;
            }
        }
    }

    /// Waits for the helper; its error (a full disk, say) is the export's.
    fn finish(mut self) -> std::io::Result<()> {
        drop(self.tx.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the write-behind thread panicked")),
            None => Ok(()),
        }
    }
}

/// Where a bundle's files go.
enum Out<'a> {
    /// Into the archive.
    Tar(BufWriter<TarSink>),
    /// Into the staging tree (renamed into place as a whole), with the directories made and
    /// a handle on its file system for the one final `syncfs`.
    Dir {
        root: &'a Path,
        made: HashSet<PathBuf>,
        fs_handle: File,
    },
}

/// Makes a directory bundle durable before it is renamed into place: on Linux ONE `syncfs`
/// (`handle`, opened before the files were written, reports any writeback error since) instead
/// of a sync per file; elsewhere, or if refused, every file and directory synced.
fn sync_tree(handle: &File, root: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    match rustix::fs::syncfs(handle) {
        Ok(()) => return Ok(()),
        Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => {}
        Err(e) => return Err(Error::io_path("syncing", root, e.into())),
    }
    #[cfg(not(target_os = "linux"))]
    let _ = handle;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for ent in fs::read_dir(&dir).map_err(|e| Error::io_path("reading", &dir, e))? {
            let ent = ent.map_err(|e| Error::io_path("reading", &dir, e))?;
            let p = ent.path();
            if ent.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                File::open(&p)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io_path("syncing", &p, e))?;
            }
        }
        fsync_dir(&dir)?;
    }
    Ok(())
}

/// A metadata file, built in memory (a sealed bundle writes no plaintext beside itself).
struct Meta {
    name: &'static str,
    bytes: Vec<u8>,
}

impl Meta {
    fn digest(&self) -> BundleFileDigest {
        BundleFileDigest {
            name: self.name.to_string(),
            size: self.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&self.bytes)),
        }
    }
}

impl Vault {
    /// Exports every live item of `project` with its manifest, audit slice and the tenant's
    /// checkpoints into a bundle at `dest`: a new directory, one `.tar` file when `dest` ends in
    /// `.tar`, or one age-sealed `.tar.age` with `opts.seal`. Refuses an existing destination;
    /// leaves nothing at `dest` unless the whole bundle was written. Records `data.export` on
    /// the project with the bundle's digest.
    pub fn export_project_bundle(
        &self,
        project: &str,
        dest: &Path,
        opts: &BundleOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<BundleSummary> {
        let shape = shape_of(dest, opts.seal.is_some())?;
        let p = self.project(project)?;
        self.read_op(actions::DATA_EXPORT, resources::project(&p.id), || {
            let s = self.write_bundle(&p.id, &p.name, dest, shape, opts, progress, cancel)?;
            let detail = format!(
                "bundle files={} bytes={} audit_events={} encrypted={} bundle_digest={}",
                s.files,
                s.bytes,
                s.audit_events,
                shape == Shape::SealedTar,
                s.bundle_digest
            );
            Ok((s, detail))
        })
    }

    /// The manifest rows of the project: current versions, then the earlier ones asked for.
    fn bundle_entries(&self, project_id: &str, all_versions: bool) -> Result<Vec<BundleEntry>> {
        let items = self.list(&ListFilter {
            project: Some(project_id.to_string()),
            ..Default::default()
        })?;
        debug_assert!(items.iter().all(|i| i.state == ItemState::Active));
        let mut retention = HashMap::new();
        let mut offset = 0;
        loop {
            let page = self.retention_items_page(Some(project_id), offset, 5_000)?;
            let n = page.rows.len() as u64;
            for r in page.rows {
                retention.insert(r.item_id.clone(), r);
            }
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
        }
        let earlier = self.earlier_versions(project_id, all_versions)?;
        let mut entries = Vec::with_capacity(items.len() + earlier.len());
        let current = items.iter().map(|i| (i, EntryRole::Current));
        let older = earlier.iter().map(|(i, conflict)| {
            let role = if *conflict {
                EntryRole::Conflict
            } else {
                EntryRole::Version
            };
            (i, role)
        });
        for (i, role) in current.chain(older) {
            let r = retention.get(&i.id);
            let file = match role {
                EntryRole::Current => format!("{FILES_DIR}/{}/{}", i.area, i.path),
                _ => version_file(i.area.as_str(), &i.path, i.version),
            };
            entries.push(BundleEntry {
                id: i.id.clone(),
                area: i.area.to_string(),
                path: i.path.clone(),
                file,
                size: i.size,
                sha256: i.sha256.clone(),
                media_type: i.media_type.clone(),
                data_type: i.data_type.to_string(),
                created_by: i.created_by.clone(),
                created_at: rfc3339(i.created_at),
                updated_at: rfc3339(i.updated_at),
                version: i.version,
                retention_period: r.map(|r| r.period.clone()).unwrap_or_default(),
                retention_expires_at: r.map(|r| rfc3339(r.expires_at)).unwrap_or_default(),
                on_hold: r.is_some_and(|r| r.state == DisplayState::OnHold),
                role,
            });
        }
        Ok(entries)
    }

    /// Every metadata file but `bundle.json`, in memory: manifest (JSON, CSV, sheet), the audit
    /// slice (JSON Lines, CSV, sheet), the tenant's checkpoints and `VERIFY.md`; with the audit
    /// summary and notes for `bundle.json`.
    fn bundle_metadata(
        &self,
        project_id: &str,
        project_name: &str,
        entries: &[BundleEntry],
        stopped: &(dyn Fn() -> bool + Sync),
    ) -> Result<(Vec<Meta>, BundleAudit, Vec<String>)> {
        let wrap = |e: labvault_governance::export::ExportError| {
            Error::Internal(format!("writing the audit slice: {e}"))
        };
        let mut jsonl = ExportWriter::new(Vec::new(), ExportFormat::Jsonl).map_err(wrap)?;
        let mut csv = ExportWriter::new(Vec::new(), ExportFormat::Csv).map_err(wrap)?;
        let filter = crate::audit::AuditFilter {
            resource_prefix: Some(resources::project(project_id)),
            ..Default::default()
        };
        let mut audit_rows = Vec::new();
        let events = self.audit_for_each(&filter, |ev| {
            if stopped() {
                return Err(Error::Cancelled);
            }
            if (audit_rows.len() as u64) < AUDIT_XLSX_MAX_EVENTS {
                audit_rows.push(audit_row(&ev));
            }
            jsonl.write(&ev).map_err(wrap)?;
            csv.write(&ev).map_err(wrap)
        })?;
        let head = self
            .audit_query(&Default::default(), 1, None)?
            .events
            .first()
            .map(|e| format!("{} {} {}", e.device_id, e.seq, hex::encode(e.hash)));
        let manifest = serde_json::to_vec_pretty(entries)
            .map_err(|e| Error::Internal(format!("manifest: {e}")))?;
        let checkpoints = serde_json::to_vec_pretty(&self.sync_anchors()?)
            .map_err(|e| Error::Internal(format!("checkpoints: {e}")))?;
        let mut meta = vec![
            Meta {
                name: MANIFEST_JSON,
                bytes: manifest,
            },
            Meta {
                name: MANIFEST_CSV,
                bytes: manifest_csv(entries).into_bytes(),
            },
            Meta {
                name: MANIFEST_XLSX,
                bytes: xlsx(manifest_sheet(entries))?,
            },
            Meta {
                name: AUDIT_JSONL,
                bytes: jsonl.finish().map_err(wrap)?,
            },
            Meta {
                name: AUDIT_CSV,
                bytes: csv.finish().map_err(wrap)?,
            },
        ];
        let mut notes = Vec::new();
        if events <= AUDIT_XLSX_MAX_EVENTS {
            let sheet = Sheet {
                name: "Audit".into(),
                columns: audit_columns(),
                rows: audit_rows,
            };
            meta.push(Meta {
                name: AUDIT_XLSX,
                bytes: xlsx(sheet)?,
            });
        } else {
            notes.push(format!(
                "{AUDIT_XLSX} is left out: {events} audit events are more than a spreadsheet of \
                 this bundle holds ({AUDIT_XLSX_MAX_EVENTS}); {AUDIT_CSV} and {AUDIT_JSONL} hold them all"
            ));
        }
        meta.push(Meta {
            name: CHECKPOINTS_JSON,
            bytes: checkpoints,
        });
        meta.push(Meta {
            name: VERIFY_MD,
            bytes: verify_md(project_name).into_bytes(),
        });
        let audit = BundleAudit {
            events,
            chain_head: head,
        };
        Ok((meta, audit, notes))
    }

    #[allow(clippy::too_many_arguments)]
    fn write_bundle(
        &self,
        project_id: &str,
        project_name: &str,
        dest: &Path,
        shape: Shape,
        opts: &BundleOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<BundleSummary> {
        let staging = Staging::beside(dest, "bundle")?;
        let staging_dir = staging.path().to_path_buf();
        let parent = staging.parent().to_path_buf();
        let entries = self.bundle_entries(project_id, opts.all_versions)?;
        let total_all: u64 = entries.iter().map(|e| e.size).sum();
        // What the stream must deliver: exactly the manifest's rows (an import or a resolved
        // conflict meanwhile would differ).
        let expected: HashSet<String> = entries.iter().map(|e| e.file.clone()).collect();
        let mut streamed: HashSet<String> = HashSet::new();
        let changed =
            || Error::InvalidArgument("the project changed during the export; export again".into());
        let failed = AtomicBool::new(false);
        let stopped = || cancel.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed);

        // The metadata (audit slice, spreadsheets) is built on a second thread while the files
        // are written: it needs only the manifest rows, and the files never wait for it.
        std::thread::scope(|scope| -> Result<BundleSummary> {
            let meta_job =
                scope.spawn(|| self.bundle_metadata(project_id, project_name, &entries, &stopped));
            let mut files = || -> Result<Option<BufWriter<TarSink>>> {
                let mut out = if shape == Shape::Dir {
                    Out::Dir {
                        root: &staging_dir,
                        made: HashSet::new(),
                        // Opened before anything is written, so `syncfs` reports any writeback
                        // error since.
                        fs_handle: File::open(&staging_dir)
                            .map_err(|e| Error::io_path("opening", &staging_dir, e))?,
                    }
                } else {
                    let tmp = staging_dir.join(TAR_TMP);
                    let f = File::create(&tmp).map_err(|e| Error::io_path("writing", &tmp, e))?;
                    let seal = opts.seal.as_ref().filter(|_| shape == Shape::SealedTar);
                    let sink =
                        TarSink::new(f, seal).map_err(|e| Error::io_path("writing", dest, e))?;
                    Out::Tar(BufWriter::with_capacity(1 << 20, sink))
                };
                self.stream_bundle_files(
                    &mut out,
                    dest,
                    project_id,
                    opts.all_versions,
                    total_all,
                    &mut streamed,
                    progress,
                    cancel,
                )?;
                match out {
                    Out::Tar(w) => Ok(Some(w)),
                    Out::Dir { fs_handle, .. } => {
                        sync_tree(&fs_handle, &staging_dir).map(|()| None)
                    }
                }
            };
            let files = files();
            if files.is_err() {
                // The metadata thread stops at its next event instead of finishing for nothing.
                failed.store(true, Ordering::Relaxed);
            }
            let meta = meta_job
                .join()
                .map_err(|_| Error::Internal("building the bundle's metadata failed".into()));
            let tar = files?;
            let (mut meta, audit, notes) = meta??;
            if streamed != expected {
                return Err(changed());
            }
            let events = audit.events;
            let info = BundleInfo {
                format: BUNDLE_FORMAT.into(),
                project_id: project_id.into(),
                project: project_name.into(),
                exported_at: rfc3339(self.now()),
                exported_by: self.actor().to_string(),
                exported_with: format!("labvault-core/{}", crate::VERSION),
                files: entries.len() as u64,
                bytes: total_all,
                audit,
                metadata: meta.iter().map(Meta::digest).collect(),
                notes,
            };
            let info_bytes = serde_json::to_vec_pretty(&info)
                .map_err(|e| Error::Internal(format!("bundle.json: {e}")))?;
            let digest = hex::encode(Sha256::digest(&info_bytes));
            // Last: in a `.tar`, the file that describes all the others closes it.
            meta.push(Meta {
                name: BUNDLE_FILE,
                bytes: info_bytes,
            });
            match tar {
                None => {
                    for m in &meta {
                        write_meta(&staging_dir, m)?;
                    }
                    fsync_dir(&staging_dir)?;
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::Cancelled);
                    }
                    staging.commit(dest)?;
                }
                Some(mut w) => {
                    let io = |e: std::io::Error| Error::io_path("writing", dest, e);
                    let mtime = self.now().unix_timestamp();
                    for m in &meta {
                        write_tar_header(&mut w, m.name, m.bytes.len() as u64, mtime)
                            .map_err(io)?;
                        w.write_all(&m.bytes).map_err(io)?;
                        write_tar_padding(&mut w, m.bytes.len() as u64).map_err(io)?;
                    }
                    // The end of the archive: two zero blocks.
                    w.write_all(&[0u8; 1024]).map_err(io)?;
                    let sink = w.into_inner().map_err(|e| io(e.into_error()))?;
                    let f = sink.finish().map_err(io)?;
                    f.sync_all().map_err(io)?;
                    drop(f);
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::Cancelled);
                    }
                    if fs::symlink_metadata(dest).is_ok() {
                        return Err(Error::AlreadyExists(format!("{}", dest.display())));
                    }
                    fs::rename(staging_dir.join(TAR_TMP), dest).map_err(io)?;
                    fsync_dir(&parent)?;
                    // `staging` (now empty) is removed on drop.
                }
            }
            Ok(BundleSummary {
                path: dest.to_path_buf(),
                files: entries.len() as u64,
                bytes: total_all,
                audit_events: events,
                bundle_digest: digest,
            })
        })
    }

    /// Every file of a bundle, decrypted straight into the archive or the staging tree (each
    /// checked against its SHA-256 as it streams): current versions, then the earlier ones
    /// asked for.
    #[allow(clippy::too_many_arguments)]
    fn stream_bundle_files(
        &self,
        out: &mut Out<'_>,
        dest: &Path,
        project_id: &str,
        all_versions: bool,
        total_all: u64,
        streamed: &mut HashSet<String>,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<()> {
        let io = |e: std::io::Error| Error::io_path("writing", dest, e);
        let mut done = 0u64;
        for which in [Versions::Current, Versions::Earlier { all: all_versions }] {
            for area in Area::ALL {
                self.for_each_plaintext(
                    project_id,
                    *area,
                    which,
                    cancel,
                    &mut |item, _conflict, decrypt| {
                        let path = names::validate_logical_path(&item.path)?;
                        let name = match which {
                            Versions::Current => format!("{FILES_DIR}/{}/{path}", item.area),
                            Versions::Earlier { .. } => {
                                version_file(item.area.as_str(), &path, item.version)
                            }
                        };
                        match out {
                            Out::Tar(w) => {
                                let mtime = item.updated_at.unix_timestamp();
                                write_tar_header(w, &name, item.size, mtime).map_err(io)?;
                                decrypt(w)?;
                                write_tar_padding(w, item.size).map_err(io)?;
                            }
                            Out::Dir { root, made, .. } => {
                                let target = root.join(&name);
                                let dir = target.parent().unwrap_or(root);
                                if !made.contains(dir) {
                                    fs::create_dir_all(dir)
                                        .map_err(|e| Error::io_path("creating", dir, e))?;
                                    made.insert(dir.to_path_buf());
                                }
                                let mut f = File::create(&target)
                                    .map_err(|e| Error::io_path("writing", &target, e))?;
                                decrypt(&mut f)?;
                            }
                        }
                        streamed.insert(name);
                        done += item.size;
                        progress(&TransferProgress {
                            path: &item.path,
                            file_done: item.size,
                            file_total: item.size,
                            overall_done: done,
                            overall_total: total_all,
                        });
                        Ok(())
                    },
                )?;
            }
        }
        Ok(())
    }

    /// The earlier versions a bundle holds, as items as of that version, with whether each is
    /// a conflict sibling.
    fn earlier_versions(&self, project_id: &str, all: bool) -> Result<Vec<(ItemInfo, bool)>> {
        let mut out = Vec::new();
        for area in Area::ALL {
            self.earlier_version_rows(project_id, *area, all, &mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{verify_bundle, BundleVerification, EntryRole, VERSIONS_DIR};
    use crate::bundle_seal::BundleKey;
    use crate::checkpoint::StoredAnchor;
    use crate::{ErrorCode, ImportOptions, KdfParams, Passphrase, VaultOptions};
    use std::str::FromStr;

    fn vault(dir: &Path) -> Vault {
        let opts = VaultOptions {
            kdf: Some(KdfParams::FLOOR),
            ..Default::default()
        };
        Vault::create(dir, &Passphrase::new("bundle test passphrase".into()), opts)
            .unwrap()
            .0
    }

    /// Imports `content` as `uploads/<name>` (a new version when it exists).
    fn put(v: &Vault, dir: &Path, name: &str, content: &[u8]) {
        let src = dir.join("src").join(name);
        fs::create_dir_all(src.parent().unwrap()).unwrap();
        fs::write(&src, content).unwrap();
        let r = v
            .import(
                "p",
                Area::Uploads,
                &[src],
                &ImportOptions::default(),
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .unwrap();
        assert_eq!(r.imported.len(), 1);
    }

    fn export(v: &Vault, dest: &Path, opts: &BundleOptions) -> Result<BundleSummary> {
        v.export_project_bundle("p", dest, opts, &mut |_| {}, &AtomicBool::new(false))
    }

    fn verify(p: &Path, key: Option<&BundleKey>) -> Result<BundleVerification> {
        verify_bundle(p, key, &mut |_, _| {})
    }

    fn manifest(dir: &Path) -> Vec<BundleEntry> {
        serde_json::from_slice(&fs::read(dir.join(MANIFEST_JSON)).unwrap()).unwrap()
    }

    const SECRET: &[u8] = b"plate 7: sample ids and results, never in the clear outside";

    /// A sealed bundle opens with its passphrase or identity only, names damage and a cut, and
    /// leaves no plaintext beside itself.
    #[test]
    fn sealed_bundles_open_only_with_their_key_and_damage_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(&tmp.path().join("v"));
        v.create_project("p").unwrap();
        put(&v, tmp.path(), "plate-7.csv", SECRET);
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();

        // Passphrase.
        let sealed = out.join("p.tar.age");
        let seal = BundleSeal::passphrase("archive passphrase 2026".into()).unwrap();
        let s = export(
            &v,
            &sealed,
            &BundleOptions {
                seal: Some(seal),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.files, 1);
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("p.tar.age")],
            "nothing else is left"
        );
        let bytes = fs::read(&sealed).unwrap();
        assert!(bytes.starts_with(crate::bundle_seal::AGE_MAGIC));
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET)
                && !bytes.windows(11).any(|w| w == b"plate-7.csv"),
            "neither content nor names are in the clear"
        );
        let right = BundleKey::passphrase("archive passphrase 2026".into());
        let r = verify(&sealed, Some(&right)).unwrap();
        assert!(
            r.is_ok() && r.encrypted && r.files_checked == 1,
            "{:?}",
            r.problems
        );
        assert_eq!(r.bundle_digest, s.bundle_digest);
        let wrong = BundleKey::passphrase("archive passphrase 2025".into());
        assert_eq!(
            verify(&sealed, Some(&wrong)).unwrap_err().code(),
            ErrorCode::WrongPassphrase
        );
        let e = verify(&sealed, None).unwrap_err();
        assert!(e.to_string().contains("encrypted bundle"), "{e}");

        // A flipped byte inside the content, and a cut file, are named.
        let mut flipped = bytes.clone();
        let at = bytes.len() / 2;
        flipped[at] ^= 0x20;
        let damaged = out.join("flipped.tar.age");
        fs::write(&damaged, &flipped).unwrap();
        let e = verify(&damaged, Some(&right)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Tampered, "{e}");
        let cut = out.join("cut.tar.age");
        fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let e = verify(&cut, Some(&right)).unwrap_err();
        assert!(
            matches!(e.code(), ErrorCode::Truncated | ErrorCode::Tampered),
            "{e}"
        );

        // Recipients: the identity opens it, another does not, a passphrase is told it is not one.
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let to_id = out.join("to-id.tar.age");
        let seal = BundleSeal::recipients(&[id.to_public().to_string()]).unwrap();
        export(
            &v,
            &to_id,
            &BundleOptions {
                seal: Some(seal),
                ..Default::default()
            },
        )
        .unwrap();
        let key = |i: &age::x25519::Identity| {
            use age::secrecy::ExposeSecret;
            BundleKey::Identities(vec![age::x25519::Identity::from_str(
                i.to_string().expose_secret(),
            )
            .unwrap()])
        };
        assert!(verify(&to_id, Some(&key(&id))).unwrap().is_ok());
        let e = verify(&to_id, Some(&key(&other))).unwrap_err();
        assert!(e.to_string().contains("none of the identities"), "{e}");
        let e = verify(&to_id, Some(&right)).unwrap_err();
        assert!(e.to_string().contains("not to a passphrase"), "{e}");

        // Names that cannot work are refused before anything is written.
        let e = export(&v, &out.join("x.tar.age"), &BundleOptions::default()).unwrap_err();
        assert!(e.to_string().contains("give a passphrase"), "{e}");
        let seal = BundleSeal::passphrase("x".into()).unwrap();
        let e = export(
            &v,
            &out.join("x.tar"),
            &BundleOptions {
                seal: Some(seal),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains(".tar.age"), "{e}");
        assert!(BundleSeal::recipients(&["age1nope".into()]).is_err());
    }

    /// Earlier versions go under versions/ when asked for; unresolved conflict siblings always.
    #[test]
    fn earlier_versions_and_conflict_siblings_are_in_the_bundle() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(&tmp.path().join("v"));
        v.create_project("p").unwrap();
        put(&v, tmp.path(), "run.csv", b"version one");
        put(&v, tmp.path(), "run.csv", b"version two, the current one");
        put(&v, tmp.path(), "README", b"no extension");
        put(&v, tmp.path(), "README", b"no extension, v2");

        let plain = tmp.path().join("plain");
        export(&v, &plain, &BundleOptions::default()).unwrap();
        assert!(!plain.join(VERSIONS_DIR).exists());
        assert_eq!(manifest(&plain).len(), 2);

        for dest in [tmp.path().join("all"), tmp.path().join("all.tar")] {
            let opts = BundleOptions {
                all_versions: true,
                ..Default::default()
            };
            let s = export(&v, &dest, &opts).unwrap();
            assert_eq!(s.files, 4);
            let r = verify(&dest, None).unwrap();
            assert!(r.is_ok() && r.files_checked == 4, "{:?}", r.problems);
        }
        let all = tmp.path().join("all");
        assert_eq!(
            fs::read(all.join("versions/uploads/run.csv/v1.csv")).unwrap(),
            b"version one"
        );
        assert_eq!(
            fs::read(all.join("versions/uploads/README/v1")).unwrap(),
            b"no extension"
        );
        assert_eq!(
            fs::read(all.join("files/uploads/run.csv")).unwrap(),
            b"version two, the current one"
        );
        let m = manifest(&all);
        let old = m.iter().find(|e| e.file.ends_with("v1.csv")).unwrap();
        assert_eq!(
            (old.role, old.version, old.size),
            (EntryRole::Version, 1, 11)
        );

        // Another device's version left as a conflict sibling is exported even without
        // --all-versions: no device has chosen to drop it.
        let conn = v.raw_connection_for_tests().unwrap();
        conn.execute(
            "UPDATE item_versions SET conflict = 1 WHERE version = 1 AND item_id =
                (SELECT id FROM items WHERE path = 'run.csv')",
            [],
        )
        .unwrap();
        drop(conn);
        let with_conflict = tmp.path().join("conflict");
        export(&v, &with_conflict, &BundleOptions::default()).unwrap();
        let m = manifest(&with_conflict);
        assert_eq!(m.len(), 3);
        let c = m.iter().find(|e| e.role == EntryRole::Conflict).unwrap();
        assert_eq!(c.file, "versions/uploads/run.csv/v1.csv");
        assert_eq!(
            fs::read(with_conflict.join(&c.file)).unwrap(),
            b"version one"
        );
        let csv = fs::read_to_string(with_conflict.join(MANIFEST_CSV)).unwrap();
        assert!(csv.lines().next().unwrap().ends_with(",role"));
        assert!(csv.contains(",conflict\r\n"), "{csv}");
        assert!(verify(&with_conflict, None).unwrap().is_ok());
    }

    /// Rewrites `audit.jsonl` of a directory bundle with `edit` and re-records its digest in
    /// `bundle.json`, as someone covering their tracks would.
    fn rewrite(bundle: &Path, name: &str, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) {
        let bytes = edit(fs::read(bundle.join(name)).unwrap());
        fs::write(bundle.join(name), &bytes).unwrap();
        let mut info: BundleInfo =
            serde_json::from_slice(&fs::read(bundle.join(BUNDLE_FILE)).unwrap()).unwrap();
        let m = info.metadata.iter_mut().find(|m| m.name == name).unwrap();
        m.size = bytes.len() as u64;
        m.sha256 = hex::encode(Sha256::digest(&bytes));
        fs::write(bundle.join(BUNDLE_FILE), serde_json::to_vec(&info).unwrap()).unwrap();
    }

    /// The tenant's signed checkpoints travel with the bundle: a rewritten audit line whose
    /// hashes were all recomputed still fails against them, and a forged signature is named.
    #[test]
    fn checkpoints_catch_a_history_rewritten_with_fresh_hashes() {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(&tmp.path().join("v"));
        v.create_project("p").unwrap();
        put(&v, tmp.path(), "a.csv", b"1,2,3");
        // The tenant anchors the chain's head (the import event, which is in the project's slice).
        let (chain, seq, head) = v.audit_head().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut anchor = StoredAnchor {
            kind: "device".into(),
            tenant_id: "lab".into(),
            chain_id: chain.clone(),
            seq,
            head_hash: head,
            signed_at: "2026-12-07T10:00:00Z".into(),
            server_key: b64.encode(key.verifying_key().to_bytes()),
            signature: String::new(),
        };
        let msg = crate::checkpoint::signed_bytes(&anchor).unwrap();
        anchor.signature = b64.encode(key.sign(&msg).to_bytes());
        v.sync_store_anchors(std::slice::from_ref(&anchor)).unwrap();

        let b = tmp.path().join("b");
        export(&v, &b, &BundleOptions::default()).unwrap();
        let r = verify(&b, None).unwrap();
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!((r.checkpoints, r.checkpoints_matched), (1, 1));
        assert_eq!(r.tenant_key.as_deref(), Some(anchor.server_key.as_str()));

        // The anchored event rewritten, its hash recomputed (no later event of the slice links
        // to it), bundle.json updated: only the checkpoint can tell.
        let forged = tmp.path().join("forged");
        export(&v, &forged, &BundleOptions::default()).unwrap();
        rewrite(&forged, AUDIT_JSONL, |bytes| {
            let text = String::from_utf8(bytes).unwrap();
            let mut out = String::new();
            for line in text.lines() {
                let mut ev: AuditEvent = serde_json::from_str(line).unwrap();
                if ev.device_id == chain && ev.seq == seq {
                    ev.user = "someone-else".into();
                    ev.hash = ev.compute_hash();
                }
                out.push_str(&serde_json::to_string(&ev).unwrap());
                out.push('\n');
            }
            out.into_bytes()
        });
        let r = verify(&forged, None).unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(r.problems[0].kind, "audit");
        assert!(
            r.problems[0].detail.contains("tenant signed"),
            "{:?}",
            r.problems
        );

        // A signature that does not hold is named too.
        let bad_sig = tmp.path().join("bad-sig");
        export(&v, &bad_sig, &BundleOptions::default()).unwrap();
        rewrite(&bad_sig, CHECKPOINTS_JSON, |bytes| {
            let mut a: Vec<StoredAnchor> = serde_json::from_slice(&bytes).unwrap();
            a[0].signed_at = "2026-12-08T10:00:00Z".into();
            serde_json::to_vec(&a).unwrap()
        });
        let r = verify(&bad_sig, None).unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.kind == "checkpoint" && p.detail.contains("not signed by the tenant")),
            "{:?}",
            r.problems
        );
    }
}
