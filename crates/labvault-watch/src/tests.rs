//! Instrument folder watches against a real vault and real folders. Passes are driven with an
//! explicit clock (settling is decided by time, not by sleeping); the last tests run the real
//! thread with inotify.

use crate::{ActivityKind, Board, Passes, Runner, WatchState};
use labvault_core::audit::AuditFilter;
use labvault_core::watches::{WatchInfo, WatchSpec};
use labvault_core::{Area, ErrorCode, KdfParams, Passphrase, Unlock, Vault, VaultOptions};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASS: &str = "correct horse battery staple";

fn options() -> VaultOptions {
    VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        actor: "scientist".into(),
        user_agent: "labvault-watch-tests".into(),
        ..VaultOptions::default()
    }
}

struct Lab {
    dir: tempfile::TempDir,
    vault: Arc<Vault>,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::create(
            &dir.path().join("vault"),
            &Passphrase::new(PASS.into()),
            options(),
        )
        .unwrap();
        vault.create_project("plankton").unwrap();
        fs::create_dir(dir.path().join("instrument")).unwrap();
        Lab {
            dir,
            vault: Arc::new(vault),
        }
    }

    fn folder(&self) -> PathBuf {
        self.dir.path().join("instrument")
    }

    fn spec(&self, name: &str) -> WatchSpec {
        WatchSpec {
            name: name.into(),
            folder: self.folder(),
            project: "plankton".into(),
            area: Area::Uploads,
            data_type: None,
            include: vec![],
            exclude: vec!["*.tmp".into(), ".*".into()],
            delete_source: false,
            settle_ms: 1000,
        }
    }

    /// Locks the vault and unlocks it again (a restart of the app).
    fn reopen(&mut self) {
        self.vault.shutdown();
        let v = Vault::unlock(
            &self.dir.path().join("vault"),
            Unlock::Passphrase(&Passphrase::new(PASS.into())),
            options(),
        )
        .unwrap();
        self.vault = Arc::new(v);
    }

    fn passes(&self) -> (Passes, Arc<Mutex<Board>>) {
        let board = Arc::new(Mutex::new(Board::default()));
        (Passes::new(self.vault.clone(), board.clone()), board)
    }

    /// Active items of the uploads area: path, version, content.
    fn items(&self) -> Vec<(String, u32, Vec<u8>)> {
        let mut out: Vec<_> = self
            .vault
            .list(&Default::default())
            .unwrap()
            .into_iter()
            .map(|i| {
                let view = self.vault.view_open(&i.id).unwrap();
                let bytes = self.vault.view_read(&view, 0, 1 << 30).unwrap();
                (i.path, i.version, bytes)
            })
            .collect();
        out.sort();
        out
    }

    fn audit(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        self.vault
            .audit_for_each(&AuditFilter::default(), |e| {
                out.push((e.action.to_string(), e.resource.clone(), e.detail.clone()));
                Ok(())
            })
            .unwrap();
        out
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    // A new modification time even on file systems with coarse timestamps.
    let t = fs::metadata(path).unwrap().modified().unwrap() + Duration::from_secs(1);
    f.set_modified(t).unwrap();
}

fn kinds(board: &Mutex<Board>, w: &WatchInfo) -> Vec<(ActivityKind, Option<String>)> {
    let b = board.lock().unwrap();
    b.status(&w.id)
        .activity
        .into_iter()
        .rev()
        .map(|a| (a.kind, a.source))
        .collect()
}

#[test]
fn a_growing_file_is_imported_once_complete_exactly_once_across_restarts() {
    let mut lab = Lab::new();
    let w = lab.vault.watch_add(&lab.spec("spectro-1")).unwrap();
    let run = lab.folder().join("run-7/counts.csv");
    write(&run, b"t,count\n0,1\n");
    let (mut passes, board) = lab.passes();

    let r = passes.pass(0).unwrap();
    assert!(r.imported.is_empty());
    assert_eq!(r.waiting, 1);
    append(&run, b"1,4\n");
    assert!(passes.pass(600).unwrap().imported.is_empty());
    assert!(kinds(&board, &w).contains(&(ActivityKind::Waiting, Some("run-7/counts.csv".into()))));
    // Unchanged for 1000 ms after its last change (at 600): complete at the next scan.
    assert!(passes.pass(1500).unwrap().imported.is_empty());
    let r = passes.pass(2000).unwrap();
    assert_eq!(
        r.imported,
        vec![("spectro-1".to_string(), "run-7/counts.csv".to_string())]
    );
    assert_eq!(
        lab.items(),
        vec![(
            "run-7/counts.csv".to_string(),
            1,
            b"t,count\n0,1\n1,4\n".to_vec()
        )]
    );
    // Its audit event names the watch.
    let audit = lab.audit();
    let import = audit.iter().find(|(a, _, _)| a == "data.import").unwrap();
    assert!(import.2.ends_with("watch=spectro-1"), "{import:?}");
    assert!(audit
        .iter()
        .any(|(a, r, _)| a == "watch.add" && r == &format!("watch/{}", w.id)));

    // Later passes, a new runner, and a restart of the vault import nothing again.
    assert!(passes.pass(60_000).unwrap().imported.is_empty());
    let (mut again, _) = lab.passes();
    assert!(again.pass(0).unwrap().imported.is_empty());
    assert!(again.pass(5_000).unwrap().imported.is_empty());
    lab.reopen();
    let (mut after, _) = lab.passes();
    assert!(after.pass(0).unwrap().imported.is_empty());
    assert!(after.pass(5_000).unwrap().imported.is_empty());
    assert_eq!(lab.items().len(), 1);
    let watch = lab.vault.watch("spectro-1").unwrap();
    assert_eq!(watch.imported, 1);

    // The instrument rewrites the file: a new version, once.
    append(&run, b"2,9\n");
    after.pass(10_000).unwrap();
    let r = after.pass(11_000).unwrap();
    assert_eq!(r.imported.len(), 1);
    assert_eq!(lab.items()[0].1, 2);
    assert!(after.pass(30_000).unwrap().imported.is_empty());
}

#[test]
fn a_file_closed_after_writing_is_imported_without_waiting_for_the_settle_time() {
    let lab = Lab::new();
    let mut spec = lab.spec("slow");
    spec.settle_ms = 3_600_000;
    let w = lab.vault.watch_add(&spec).unwrap();
    let f = lab.folder().join("a.raw");
    write(&f, b"frame");
    let (mut passes, _) = lab.passes();
    assert!(passes.pass(0).unwrap().imported.is_empty());
    passes.touched(&w.id, &w.folder, &f, true, 10);
    assert_eq!(passes.pass(20).unwrap().imported.len(), 1);
}

#[test]
fn patterns_choose_the_files_and_problems_are_reported_once() {
    let lab = Lab::new();
    let mut spec = lab.spec("filtered");
    spec.include = vec!["*.raw".into(), "logs/*.txt".into()];
    let w = lab.vault.watch_add(&spec).unwrap();
    write(&lab.folder().join("a.raw"), b"a");
    write(&lab.folder().join("b.csv"), b"b");
    write(&lab.folder().join("c.raw.tmp"), b"c");
    write(&lab.folder().join(".d.raw"), b"d");
    write(&lab.folder().join("logs/run.txt"), b"e");
    write(&lab.folder().join("deep/logs/run.txt"), b"f");
    // Names the vault cannot store: a backslash, a control character.
    write(&lab.folder().join("bad\\name.raw"), b"g");
    write(&lab.folder().join("bell\x07.raw"), b"h");
    std::os::unix::fs::symlink("/etc/passwd", lab.folder().join("link.raw")).unwrap();
    let (mut passes, board) = lab.passes();
    passes.pass(0).unwrap();
    let r = passes.pass(1000).unwrap();
    let mut got: Vec<_> = r.imported.iter().map(|(_, p)| p.as_str()).collect();
    got.sort();
    assert_eq!(got, vec!["a.raw", "logs/run.txt"]);
    let mut failed: Vec<_> = r.failed.iter().map(|(_, p)| p.as_str()).collect();
    failed.sort();
    assert_eq!(failed, vec!["bad\\name.raw", "bell\x07.raw"]);
    // Reported once: later passes neither retry nor repeat them until the file changes.
    for t in [2000, 20_000, 120_000] {
        let r = passes.pass(t).unwrap();
        assert!(r.imported.is_empty() && r.failed.is_empty(), "{r:?}");
    }
    let k = kinds(&board, &w);
    let count = |kind, src: &str| {
        k.iter()
            .filter(|(a, s)| *a == kind && s.as_deref() == Some(src))
            .count()
    };
    assert_eq!(count(ActivityKind::Failed, "bad\\name.raw"), 1);
    assert_eq!(count(ActivityKind::Skipped, "link.raw"), 1);
    let status = board.lock().unwrap().status(&w.id);
    let msg = &status
        .activity
        .iter()
        .find(|a| a.source.as_deref() == Some("bad\\name.raw"))
        .unwrap()
        .message;
    assert!(msg.contains("rename the file"), "{msg}");
    // Nothing but the wanted files reached the vault.
    let paths: Vec<String> = lab.items().into_iter().map(|i| i.0).collect();
    assert_eq!(paths, vec!["a.raw", "logs/run.txt"]);
}

#[test]
fn a_missing_folder_is_unavailable_never_everything_deleted() {
    let lab = Lab::new();
    let w = lab.vault.watch_add(&lab.spec("usb")).unwrap();
    write(&lab.folder().join("a.raw"), b"one");
    let (mut passes, board) = lab.passes();
    passes.pass(0).unwrap();
    assert_eq!(passes.pass(1000).unwrap().imported.len(), 1);

    // The drive is unplugged.
    let away = lab.dir.path().join("unplugged");
    fs::rename(lab.folder(), &away).unwrap();
    passes.touched(&w.id, &w.folder, &w.folder, false, 1100);
    passes.pass(1200).unwrap();
    let st = board.lock().unwrap().status(&w.id);
    assert_eq!(st.state, WatchState::Unavailable);
    assert!(st.reason.unwrap().contains("not there"));
    assert_eq!(lab.items().len(), 1, "the imported file stays");
    passes.pass(30_000).unwrap();
    assert_eq!(
        kinds(&board, &w)
            .iter()
            .filter(|k| k.0 == ActivityKind::Unavailable)
            .count(),
        1,
        "said once"
    );

    // Plugged in again, with one new file: only that one is imported.
    fs::rename(&away, lab.folder()).unwrap();
    write(&lab.folder().join("b.raw"), b"two");
    passes.pass(40_000).unwrap();
    let r = passes.pass(41_000).unwrap();
    assert_eq!(r.imported, vec![("usb".to_string(), "b.raw".to_string())]);
    assert_eq!(
        board.lock().unwrap().status(&w.id).state,
        WatchState::Watching
    );
    assert!(kinds(&board, &w)
        .iter()
        .any(|k| k.0 == ActivityKind::Available));
    assert_eq!(lab.items().len(), 2);
}

#[test]
fn sources_are_deleted_only_after_a_verified_import() {
    let lab = Lab::new();
    let mut spec = lab.spec("move");
    spec.delete_source = true;
    let w = lab.vault.watch_add(&spec).unwrap();
    let f = lab.folder().join("x/a.raw");
    write(&f, b"precious frame");
    let (mut passes, _) = lab.passes();
    passes.pass(0).unwrap();
    let r = passes.pass(1000).unwrap();
    assert_eq!(r.deleted, vec![("move".to_string(), "x/a.raw".to_string())]);
    assert!(!f.exists());
    assert_eq!(lab.items()[0].2, b"precious frame");
    let entry = lab.vault.watch_recent(&w.id, 10).unwrap().remove(0);
    assert!(entry.source_deleted_at.is_some());
    assert!(lab
        .audit()
        .iter()
        .any(|(a, _, d)| a == "watch.delete_source" && d.contains("watch=move")));

    // A source changed after its import is kept.
    let g = lab.folder().join("b.raw");
    write(&g, b"second");
    let keep = lab.vault.watch_add(&WatchSpec {
        delete_source: false,
        name: "keep".into(),
        ..spec.clone()
    });
    keep.unwrap();
    let (mut p2, _) = lab.passes();
    lab.vault.watch_set_paused("move", true).unwrap();
    p2.pass(0).unwrap();
    let r = p2.pass(1000).unwrap();
    assert_eq!(r.imported.len(), 1, "{r:?}");
    let keep = lab.vault.watch("keep").unwrap();
    let entry = lab.vault.watch_recent(&keep.id, 1).unwrap().remove(0);
    let mut as_move = lab.vault.watch("move").unwrap();
    as_move.id = keep.id.clone();
    append(&g, b"!");
    let e = lab.vault.watch_delete_source(&as_move, &entry).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SourceVanished);
    assert!(g.exists());

    // A stored copy that does not decrypt to the source keeps the source.
    let h = lab.folder().join("c.raw");
    write(&h, b"third frame");
    // No file-system event here: the periodic rescan finds it.
    p2.pass(20_000).unwrap();
    assert_eq!(
        p2.pass(21_000).unwrap().imported.len(),
        2,
        "b.raw changed, c.raw is new"
    );
    let entry = lab
        .vault
        .watch_recent(&keep.id, 10)
        .unwrap()
        .into_iter()
        .find(|e| e.source == "c.raw")
        .unwrap();
    for blob in walk(&lab.dir.path().join("vault/blobs")) {
        let mut bytes = fs::read(&blob).unwrap();
        // Every record of every pack: flip a byte in each 32-byte stretch past the first.
        for i in (40..bytes.len()).step_by(32) {
            bytes[i] ^= 1;
        }
        fs::write(&blob, bytes).unwrap();
    }
    let e = lab.vault.watch_delete_source(&as_move, &entry).unwrap_err();
    assert!(
        matches!(e.code(), ErrorCode::Tampered | ErrorCode::Truncated),
        "{e}"
    );
    assert!(h.exists());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn watches_are_checked_paused_and_removed() {
    let lab = Lab::new();
    let mut bad = lab.spec("Bad name!");
    assert_eq!(
        lab.vault.watch_add(&bad).unwrap_err().code(),
        ErrorCode::InvalidName
    );
    bad.name = "inside".into();
    bad.folder = lab.dir.path().join("vault/tmp");
    let e = lab.vault.watch_add(&bad).unwrap_err();
    assert!(e.to_string().contains("overlaps the vault"), "{e}");
    bad.folder = lab.dir.path().to_path_buf();
    assert!(lab
        .vault
        .watch_add(&bad)
        .unwrap_err()
        .to_string()
        .contains("overlaps the vault"));
    bad.folder = "relative/path".into();
    assert_eq!(
        lab.vault.watch_add(&bad).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    bad.folder = lab.folder();
    bad.settle_ms = 10;
    assert_eq!(
        lab.vault.watch_add(&bad).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    bad.settle_ms = 1000;
    bad.project = "no-such".into();
    assert_eq!(
        lab.vault.watch_add(&bad).unwrap_err().code(),
        ErrorCode::NotFound
    );

    let w = lab.vault.watch_add(&lab.spec("p")).unwrap();
    assert_eq!(
        lab.vault.watch_add(&lab.spec("p")).unwrap_err().code(),
        ErrorCode::AlreadyExists
    );
    lab.vault.watch_set_paused("p", true).unwrap();
    write(&lab.folder().join("a.raw"), b"a");
    let (mut passes, board) = lab.passes();
    passes.pass(0).unwrap();
    assert!(passes.pass(5000).unwrap().imported.is_empty());
    assert_eq!(
        board.lock().unwrap().status(&w.id).state,
        WatchState::Paused
    );
    lab.vault.watch_set_paused("p", false).unwrap();
    passes.pass(6000).unwrap();
    assert_eq!(passes.pass(7000).unwrap().imported.len(), 1);
    lab.vault.watch_remove("p").unwrap();
    assert!(lab.vault.watches().unwrap().is_empty());
    assert_eq!(lab.items().len(), 1, "what it imported stays");
    let actions: Vec<String> = lab
        .audit()
        .into_iter()
        .map(|a| a.0)
        .filter(|a| a.starts_with("watch."))
        .collect();
    // The refused duplicate is recorded too, as a failure naming why.
    assert_eq!(
        actions,
        vec![
            "watch.add",
            "watch.add",
            "watch.pause",
            "watch.pause",
            "watch.remove"
        ]
    );
    assert!(lab
        .audit()
        .iter()
        .any(|(a, _, d)| a == "watch.add" && d == "already_exists"));
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_runner_imports_on_file_events_and_stops_when_the_vault_locks() {
    let lab = Lab::new();
    let mut spec = lab.spec("live");
    spec.settle_ms = 500;
    let w = lab.vault.watch_add(&spec).unwrap();
    let runner = Runner::start(lab.vault.clone());
    let board = runner.board();
    wait_for("the watch to start", || {
        board.lock().unwrap().status(&w.id).state == WatchState::Watching
    });
    write(&lab.folder().join("live.raw"), b"frame 1");
    wait_for("the import", || {
        lab.vault.watch("live").unwrap().imported == 1
    });
    assert_eq!(lab.items()[0].2, b"frame 1");
    lab.vault.shutdown();
    wait_for("the runner to stop", || !runner.is_running());
    let st = board.lock().unwrap().status(&w.id);
    assert_eq!(st.state, WatchState::Stopped);
    assert_eq!(st.reason.as_deref(), Some("the vault is locked"));
}
