//! The work of the watches, one pass at a time: scan each active watch's folder, feed the
//! settler, import what is complete (the vault journals each file in the transaction that
//! commits it), delete verified sources when asked, and write what happened on the board.
//! No threads and no clock of its own: the runner (or a test) calls [`Passes::pass`] with the
//! time, so every step can be driven and checked exactly.

use crate::board::{ActivityKind, Board, WatchState};
use crate::scan::{scan, Found};
use crate::settle::{Settler, Verdict};
use labvault_core::watches::{JournalEntry, Stamp, WatchInfo, WatchOrigin};
use labvault_core::{Error, ErrorCode, ImportOptions, Vault};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// A folder is scanned at least this often even without file-system events (network shares
/// send none).
pub const RESCAN_MS: u64 = 10_000;
/// While files settle, their folder is scanned this often.
pub const SETTLING_SCAN_MS: u64 = 500;
/// A file that failed for a reason that may pass (permissions, a busy vault) is tried again
/// after this long; one whose name the vault refuses waits for the file to change.
pub const RETRY_FAILED_MS: u64 = 60_000;

/// What one watch remembers between passes.
struct PerWatch {
    settler: Settler,
    journal: Option<HashMap<(String, Stamp), JournalEntry>>,
    /// Files that failed, with their stamp, when, and whether a retry can help.
    failed: HashMap<String, (Stamp, u64, bool)>,
    /// Problems of the scan already reported (path + message).
    reported: HashSet<(String, String)>,
    /// Sources whose deletion was attempted in this run.
    delete_tried: HashSet<(String, Stamp)>,
    unavailable: Option<String>,
    device: Option<u64>,
    last_scan_ms: Option<u64>,
    dirty: bool,
}

impl PerWatch {
    fn new(settle_ms: u64) -> PerWatch {
        PerWatch {
            settler: Settler::new(settle_ms),
            journal: None,
            failed: HashMap::new(),
            reported: HashSet::new(),
            delete_tried: HashSet::new(),
            unavailable: None,
            device: None,
            last_scan_ms: None,
            dirty: true,
        }
    }
}

/// What a pass did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Files imported (`watch name`, path under the folder).
    pub imported: Vec<(String, String)>,
    /// Files that failed.
    pub failed: Vec<(String, String)>,
    /// Sources deleted after verification.
    pub deleted: Vec<(String, String)>,
    /// Files still waiting to be complete.
    pub waiting: usize,
}

/// The watches of one unlocked vault.
pub struct Passes {
    vault: Arc<Vault>,
    board: Arc<Mutex<Board>>,
    per: HashMap<String, PerWatch>,
    cancel: Arc<AtomicBool>,
    /// The active watches' folders at the last pass.
    active: Vec<(String, PathBuf)>,
}

fn lock(b: &Mutex<Board>) -> std::sync::MutexGuard<'_, Board> {
    b.lock().unwrap_or_else(|e| e.into_inner())
}

impl Passes {
    /// Watches of `vault`, reporting on `board`.
    pub fn new(vault: Arc<Vault>, board: Arc<Mutex<Board>>) -> Passes {
        Passes::with_cancel(vault, board, Arc::new(AtomicBool::new(false)))
    }

    /// Like [`Passes::new`]; setting `cancel` stops an import in progress (at a file boundary;
    /// files committed stay imported and journaled).
    pub fn with_cancel(
        vault: Arc<Vault>,
        board: Arc<Mutex<Board>>,
        cancel: Arc<AtomicBool>,
    ) -> Passes {
        Passes {
            vault,
            board,
            per: HashMap::new(),
            cancel,
            active: Vec::new(),
        }
    }

    /// The folders of the active watches as the last pass saw them (for the runner's
    /// file-system notifications; no second catalog query per tick).
    pub fn folders(&self) -> Vec<(String, PathBuf)> {
        self.active.clone()
    }

    /// Something changed under `path` (a file-system event): its watch scans at the next pass.
    /// `closed_after_write` says the file was closed after writing (complete, if it does not
    /// change again).
    pub fn touched(
        &mut self,
        watch_id: &str,
        folder: &Path,
        path: &Path,
        closed_after_write: bool,
        now_ms: u64,
    ) {
        let Some(per) = self.per.get_mut(watch_id) else {
            return;
        };
        per.dirty = true;
        if closed_after_write {
            if let (Ok(rel), Ok(meta)) = (
                labvault_core::watches::relative(folder, path),
                std::fs::symlink_metadata(path),
            ) {
                if meta.is_file() {
                    per.settler.closed(&rel, Stamp::of(&meta), now_ms);
                }
            }
        }
    }

    /// One pass over every watch at `now_ms` (monotonic). `Err` only when the vault is locked
    /// or its catalog cannot be read: the runner stops then.
    pub fn pass(&mut self, now_ms: u64) -> Result<PassReport, Error> {
        let watches = self.vault.watches()?;
        self.active = watches
            .iter()
            .filter(|w| !w.paused)
            .map(|w| (w.id.clone(), w.folder.clone()))
            .collect();
        let ids: HashSet<String> = watches.iter().map(|w| w.id.clone()).collect();
        self.per.retain(|id, _| ids.contains(id));
        lock(&self.board).retain(&ids);
        let mut report = PassReport::default();
        for w in &watches {
            let per = self
                .per
                .entry(w.id.clone())
                .or_insert_with(|| PerWatch::new(w.settle_ms));
            per.settler.set_settle_ms(w.settle_ms);
            if w.paused {
                per.settler.retain(|_| false);
                per.dirty = true;
                lock(&self.board).set_state(w, WatchState::Paused, None, 0);
                continue;
            }
            let since = per.last_scan_ms.map(|t| now_ms.saturating_sub(t));
            let due = per.dirty
                || since.is_none_or(|s| s >= RESCAN_MS)
                || (per.settler.waiting() > 0 && since.is_none_or(|s| s >= SETTLING_SCAN_MS))
                || per
                    .failed
                    .values()
                    .any(|f| f.2 && now_ms.saturating_sub(f.1) >= RETRY_FAILED_MS);
            if !due {
                report.waiting += per.settler.waiting();
                continue;
            }
            match one_watch(
                &self.vault,
                &self.board,
                w,
                per,
                now_ms,
                &self.cancel,
                &mut report,
            ) {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::Locked => return Err(e),
                Err(e) => {
                    lock(&self.board).note(
                        w,
                        ActivityKind::Failed,
                        None,
                        format!("the watch could not run: {e}"),
                    );
                }
            }
        }
        Ok(report)
    }
}

fn one_watch(
    vault: &Vault,
    board: &Mutex<Board>,
    w: &WatchInfo,
    per: &mut PerWatch,
    now_ms: u64,
    cancel: &AtomicBool,
    report: &mut PassReport,
) -> Result<(), Error> {
    per.dirty = false;
    per.last_scan_ms = Some(now_ms);
    let found = match scan(&w.folder) {
        Ok(s) => s,
        Err(reason) => {
            // Never read as "everything deleted": nothing is forgotten, nothing imported.
            if per.unavailable.as_deref() != Some(reason.as_str()) {
                lock(board).note(w, ActivityKind::Unavailable, None, reason.clone());
            }
            per.unavailable = Some(reason.clone());
            let waiting = per.settler.waiting();
            lock(board).set_state(w, WatchState::Unavailable, Some(reason), waiting);
            return Ok(());
        }
    };
    if per.unavailable.take().is_some() {
        lock(board).note(
            w,
            ActivityKind::Available,
            None,
            "the folder is back".into(),
        );
    }
    if per.device.is_some_and(|d| d != found.device) {
        lock(board).note(
            w,
            ActivityKind::Available,
            None,
            "the folder is now on another drive; files already imported are not imported again"
                .into(),
        );
    }
    per.device = Some(found.device);
    for (rel, msg) in &found.problems {
        if w.wants(rel) && per.reported.insert((rel.clone(), msg.clone())) {
            lock(board).note(w, ActivityKind::Skipped, Some(rel.clone()), msg.clone());
        }
    }
    if per.journal.is_none() {
        per.journal = Some(vault.watch_journal(&w.id)?);
    }
    let present: HashSet<&str> = found.files.iter().map(|f| f.rel.as_str()).collect();
    per.settler.retain(|rel| present.contains(rel));
    per.failed.retain(|rel, _| present.contains(rel.as_str()));
    let mut ready: Vec<(&Found, Stamp)> = Vec::new();
    let mut undeleted: Vec<JournalEntry> = Vec::new();
    for f in &found.files {
        if !w.wants(&f.rel) {
            continue;
        }
        let journal = per.journal.as_ref().expect("loaded above");
        if let Some(entry) = journal.get(&(f.rel.clone(), f.stamp)) {
            if w.delete_source
                && entry.source_deleted_at.is_none()
                && per.delete_tried.insert((f.rel.clone(), f.stamp))
            {
                undeleted.push(entry.clone());
            }
            continue;
        }
        if let Some(&(stamp, at, retry)) = per.failed.get(&f.rel) {
            if stamp == f.stamp && (!retry || now_ms.saturating_sub(at) < RETRY_FAILED_MS) {
                continue;
            }
        }
        match per.settler.observe(&f.rel, f.stamp, now_ms) {
            Verdict::Ready(stamp) => ready.push((f, stamp)),
            Verdict::Growing => {
                if per.reported.insert((f.rel.clone(), "growing".to_string())) {
                    lock(board).note(
                        w,
                        ActivityKind::Waiting,
                        Some(f.rel.clone()),
                        "still being written: imported once it stops changing".into(),
                    );
                }
            }
            Verdict::New | Verdict::Settling => {}
        }
    }
    import_ready(vault, board, w, per, &ready, now_ms, cancel, report)?;
    for entry in undeleted {
        delete_source(vault, board, w, per, &entry, report);
    }
    report.waiting += per.settler.waiting();
    let waiting = per.settler.waiting();
    lock(board).set_state(w, WatchState::Watching, None, waiting);
    Ok(())
}

/// Imports the complete files, one import per folder (a file's folder under the watched one
/// becomes its folder in the area).
#[allow(clippy::too_many_arguments)]
fn import_ready(
    vault: &Vault,
    board: &Mutex<Board>,
    w: &WatchInfo,
    per: &mut PerWatch,
    ready: &[(&Found, Stamp)],
    now_ms: u64,
    cancel: &AtomicBool,
    report: &mut PassReport,
) -> Result<(), Error> {
    let mut by_dir: BTreeMap<String, Vec<(&Found, Stamp)>> = BTreeMap::new();
    for &(f, stamp) in ready {
        let dir = f.rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        by_dir.entry(dir.to_string()).or_default().push((f, stamp));
    }
    for (dir, files) in by_dir {
        let origin = WatchOrigin {
            watch_id: w.id.clone(),
            watch_name: w.name.clone(),
            folder: w.folder.clone(),
            stamps: files.iter().map(|(f, s)| (f.abs.clone(), *s)).collect(),
        };
        let opts = ImportOptions {
            data_type: Some(w.data_type),
            dest_prefix: (!dir.is_empty()).then(|| dir.clone()),
            watch: Some(origin),
        };
        let sources: Vec<PathBuf> = files.iter().map(|(f, _)| f.abs.clone()).collect();
        let res = vault.import(&w.project_id, w.area, &sources, &opts, &mut |_| {}, cancel);
        let rep = match res {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::Locked => return Err(e),
            Err(e) => {
                // The vault could not take them now (busy, full disk): they stay complete and
                // are tried at the next pass; files committed before the error are journaled.
                let msg = match e.code() {
                    ErrorCode::VaultBusy => format!("waiting: {e}"),
                    _ => format!("not imported yet, tried again shortly: {e}"),
                };
                lock(board).note(w, ActivityKind::Failed, None, msg);
                for (f, stamp) in &files {
                    per.settler.closed(&f.rel, *stamp, now_ms);
                }
                per.journal = None;
                continue;
            }
        };
        let rel_of = |p: &Path| {
            files
                .iter()
                .find(|(f, _)| f.abs == p)
                .map(|(f, s)| (f.rel.clone(), *s))
        };
        let mut journal_add = Vec::new();
        for imp in &rep.imported {
            let Some((rel, stamp)) = rel_of(&imp.source) else {
                continue;
            };
            lock(board).note(
                w,
                ActivityKind::Imported,
                Some(rel.clone()),
                format!("imported as {} (version {})", imp.path, imp.version),
            );
            report.imported.push((w.name.clone(), rel.clone()));
            per.failed.remove(&rel);
            journal_add.push(JournalEntry {
                source: rel,
                stamp,
                item_id: imp.item_id.clone(),
                version: imp.version,
                imported_at: vault.now(),
                source_deleted_at: None,
            });
        }
        for fail in &rep.failed {
            let Some((rel, stamp)) = rel_of(&fail.source) else {
                continue;
            };
            // A name the vault refuses stays refused until the file changes; anything else
            // (a file removed mid-read, a permission error) is tried again later.
            let retry = !matches!(fail.code, ErrorCode::InvalidName | ErrorCode::AlreadyExists);
            let first = per.failed.get(&rel).is_none_or(|(s, _, _)| *s != stamp);
            per.failed.insert(rel.clone(), (stamp, now_ms, retry));
            if first {
                let then = if retry {
                    "tried again in a minute"
                } else {
                    "rename the file to import it"
                };
                lock(board).note(
                    w,
                    ActivityKind::Failed,
                    Some(rel.clone()),
                    format!("{} ({then})", fail.message),
                );
            }
            report.failed.push((w.name.clone(), rel));
        }
        for entry in journal_add {
            if let Some(j) = per.journal.as_mut() {
                j.insert((entry.source.clone(), entry.stamp), entry.clone());
            }
            if w.delete_source {
                per.delete_tried.insert((entry.source.clone(), entry.stamp));
                delete_source(vault, board, w, per, &entry, report);
            }
        }
    }
    Ok(())
}

fn delete_source(
    vault: &Vault,
    board: &Mutex<Board>,
    w: &WatchInfo,
    per: &mut PerWatch,
    entry: &JournalEntry,
    report: &mut PassReport,
) {
    match vault.watch_delete_source(w, entry) {
        Ok(()) => {
            if let Some(j) = per.journal.as_mut() {
                if let Some(e) = j.get_mut(&(entry.source.clone(), entry.stamp)) {
                    e.source_deleted_at = Some(vault.now());
                }
            }
            lock(board).note(
                w,
                ActivityKind::SourceDeleted,
                Some(entry.source.clone()),
                "deleted from the folder after its import was verified".into(),
            );
            report.deleted.push((w.name.clone(), entry.source.clone()));
        }
        Err(e) => lock(board).note(
            w,
            ActivityKind::SourceKept,
            Some(entry.source.clone()),
            format!("kept in the folder: {e}"),
        ),
    }
}
