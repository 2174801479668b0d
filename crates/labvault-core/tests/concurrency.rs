//! One vault, many callers: readers carry on while the writer works, a second writer is refused
//! with a message naming the holder, and locking drops every connection and key. Each test holds
//! the writer open mid-import on a rendezvous (the import's own progress callback blocks until
//! the test releases it), so nothing here depends on timing.

mod common;

use common::*;
use labvault_core::audit::AuditFilter;
use labvault_core::{
    Area, ErrorCode, ExportOptions, ImportEvent, ImportOptions, ItemQuery, ItemState, Vault,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;

/// `n` small files in `dir`.
fn small_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("f{i:04}.txt"));
            write(&p, format!("file {i}").as_bytes());
            p
        })
        .collect()
}

/// An import of `sources` running on its own thread, parked inside its first group commit's
/// report (the first file is committed, the rest are not), holding the vault's writer until
/// [`Parked::release`].
struct Parked {
    release: mpsc::Sender<()>,
    done: std::thread::JoinHandle<labvault_core::Result<labvault_core::ImportReport>>,
}

impl Parked {
    fn start(v: &Arc<Vault>, sources: Vec<PathBuf>) -> Parked {
        let (committed_tx, committed_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let v = v.clone();
        let done = std::thread::spawn(move || {
            let mut parked = false;
            v.import(
                "p",
                Area::Uploads,
                &sources,
                &ImportOptions::default(),
                &mut |e| {
                    if let ImportEvent::FileDone(_) = e {
                        if !parked {
                            parked = true;
                            committed_tx.send(()).unwrap();
                            release_rx.recv().unwrap();
                        }
                    }
                },
                &AtomicBool::new(false),
            )
        });
        committed_rx
            .recv()
            .expect("the import commits its first group");
        Parked {
            release: release_tx,
            done,
        }
    }

    fn release(self) -> labvault_core::ImportReport {
        self.release.send(()).unwrap();
        self.done.join().unwrap().unwrap()
    }
}

#[test]
fn every_read_completes_while_an_import_holds_the_writer() {
    let (t, _dir, v, _) = new_vault();
    let v = Arc::new(v);
    v.create_project("p").unwrap();
    let src = t.path().join("src");
    let big = src.join("big.bin");
    write(&big, &bytes(3 << 20, 7));
    import(&v, "p", Area::Uploads, &[big]);
    let item = v
        .find_item(Some("p"), None, "big.bin", &[ItemState::Active])
        .unwrap();

    let parked = Parked::start(&v, small_files(&src.join("batch"), 300));

    // The import is inside its writer now. Every read of the front ends completes.
    let page = v
        .items_page(
            &ItemQuery {
                project: "p".into(),
                ..Default::default()
            },
            0,
            1000,
        )
        .unwrap();
    assert!(
        page.total >= 2 && page.total < 301,
        "the committed group is visible, the rest not yet: {}",
        page.total
    );
    let view = v.view_open(&item.id).unwrap();
    assert_eq!(
        v.view_read(&view, 1 << 20, 16).unwrap(),
        bytes(3 << 20, 7)[1 << 20..(1 << 20) + 16]
    );
    let audit = v.audit_query(&AuditFilter::default(), 50, None).unwrap();
    assert!(!audit.events.is_empty());
    v.retention_status(Some("p")).unwrap();
    v.retention_items_page(Some("p"), 0, 10).unwrap();
    v.item_details(&item.id, 20).unwrap();
    v.stats().unwrap();
    v.list_projects().unwrap();
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let exported = v
        .export_item(
            &item.id,
            &out,
            &ExportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(std::fs::read(exported).unwrap(), bytes(3 << 20, 7));
    // Verification sees the running import's uncommitted packs and does not call them damage.
    let rep = v.verify(&mut |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(rep.is_ok(), "{:?}", rep.problems);

    let report = parked.release();
    assert_eq!(report.imported.len(), 300);
    assert!(v
        .verify(&mut |_| {}, &AtomicBool::new(false))
        .unwrap()
        .is_ok());
}

#[test]
fn another_handle_reads_while_one_writes_and_a_second_writer_is_told_who_holds_the_vault() {
    let (t, dir, v, _) = new_vault();
    let v = Arc::new(v);
    v.create_project("p").unwrap();
    let src = t.path().join("src");
    let parked = Parked::start(&v, small_files(&src, 200));

    // A second handle stands for another process (the CLI while the app imports): it has its
    // own locks and connections. It opens, reads and exports; its unlock says that the
    // maintenance an unlock does as writer waits for later.
    let other = unlock(&dir);
    let listed = other
        .list(&labvault_core::ListFilter {
            project: Some("p".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(!listed.is_empty() && listed.len() < 200);
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    other
        .export_item(
            &listed[0].id,
            &out,
            &ExportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(other
        .verify(&mut |_| {}, &AtomicBool::new(false))
        .unwrap()
        .is_ok());
    let unlocks = other
        .audit_query(
            &AuditFilter {
                action_prefix: Some("auth.unlock".into()),
                ..Default::default()
            },
            1,
            None,
        )
        .unwrap();
    assert!(
        unlocks.events[0].detail.contains("maintenance=deferred"),
        "{:?}",
        unlocks.events[0]
    );

    // A write from the other handle is refused at once, naming the holder and its operation.
    let e = other.create_project("q").unwrap_err();
    assert_eq!(e.code(), ErrorCode::VaultBusy);
    let msg = e.to_string();
    assert!(msg.contains("data.import"), "{msg}");
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    assert!(msg.contains("labvault-core-tests"), "{msg}");
    // ... and the refusal is itself on the record.
    let refused = other
        .audit_query(
            &AuditFilter {
                action_prefix: Some("project.create".into()),
                ..Default::default()
            },
            1,
            None,
        )
        .unwrap();
    assert_eq!(refused.events[0].detail, "vault_busy");

    assert_eq!(parked.release().imported.len(), 200);
    // Once the writer is gone, the other handle writes.
    other.create_project("q").unwrap();
    other.lock();
}

/// Open file descriptors of this process on `file`.
/// Writers of one handle (the sync engine's parallel transfers recording what they did) take
/// turns: none is ever told that the vault is busy with its own process.
#[test]
fn writers_of_one_handle_wait_for_each_other_and_never_see_the_vault_busy() {
    let (_t, _dir, v, _) = new_vault();
    let v = Arc::new(v);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let v = v.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    v.create_project(&format!("p{t}-{i}")).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(v.list_projects().unwrap().len(), 600);
}

fn open_fds_on(file: &Path) -> usize {
    let want = std::fs::canonicalize(file).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|p| p == want))
        .count()
}

#[test]
fn locking_drops_every_connection_and_key_including_the_readers() {
    let (t, dir, v, _) = new_vault();
    let v = Arc::new(v);
    v.create_project("p").unwrap();
    let src = t.path().join("f.txt");
    write(&src, b"hello");
    import(&v, "p", Area::Uploads, &[src]);
    let item = v
        .find_item(Some("p"), None, "f.txt", &[ItemState::Active])
        .unwrap();
    let view = v.view_open(&item.id).unwrap();
    // Readers on two threads at once, so the pool holds more than one connection.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| v.stats().unwrap());
        }
    });
    let catalog = dir.join("catalog.db");
    assert!(open_fds_on(&catalog) >= 2, "writer and readers are open");

    v.close();
    assert_eq!(open_fds_on(&catalog), 0, "no connection survives locking");
    assert_eq!(v.stats().unwrap_err().code(), ErrorCode::Locked);
    assert_eq!(
        v.view_read(&view, 0, 5).unwrap_err().code(),
        ErrorCode::Locked
    );
    assert_eq!(v.create_project("q").unwrap_err().code(), ErrorCode::Locked);
    // The lock itself was recorded, and the vault opens again.
    let again = unlock(&dir);
    let last_lock = again
        .audit_query(
            &AuditFilter {
                action_prefix: Some("auth.lock".into()),
                ..Default::default()
            },
            1,
            None,
        )
        .unwrap();
    assert_eq!(last_lock.events.len(), 1);
}
