//! Catalog cipher format v2 (HMAC-SHA256 pages): a vault made before it (the committed v1
//! fixture, made by the `labvault` CLI of the previous release) is upgraded at unlock and keeps
//! everything; an interrupted upgrade is redone; a catalog unreadable in both formats is refused
//! and left untouched.

use labvault_core::{
    ErrorCode, ExportOptions, KdfParams, ListFilter, ManualClock, Passphrase, Unlock, Vault,
    VaultOptions,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use time::macros::datetime;

const PASS: &str = "fixture passphrase v1";
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vault-v1");
/// Audit events in the fixture (see its README).
const FIXTURE_EVENTS: u64 = 20;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A private copy of the v1 fixture (opening upgrades it in place).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    copy_dir(Path::new(FIXTURE), &dir);
    (tmp, dir)
}

fn opts() -> VaultOptions {
    VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        // A day after the fixture was made: nothing is due for retention yet.
        clock: Arc::new(ManualClock::new(datetime!(2026-11-23 12:00 UTC))),
        actor: "tester".into(),
        user_agent: "labvault-test/1".into(),
    }
}

fn unlock(dir: &Path) -> labvault_core::Result<Vault> {
    Vault::unlock(
        dir,
        Unlock::Passphrase(&Passphrase::new(PASS.into())),
        opts(),
    )
}

/// The SQLCipher key pragma value of the fixture's catalog.
fn key_pragma(dir: &Path) -> String {
    let kf =
        labvault_crypto::KeyFile::from_bytes(&fs::read(dir.join("vault.key")).unwrap()).unwrap();
    let root = kf
        .unlock_with_passphrase(&Passphrase::new(PASS.into()))
        .unwrap();
    let v = root.catalog_key().sqlcipher_key_pragma_value();
    v.as_str().to_string()
}

/// Whether the catalog reads with the given extra cipher pragmas after the key (empty: the
/// SQLCipher 4 defaults, i.e. the v1 format).
fn reads_with(dir: &Path, cipher_pragmas: &str) -> bool {
    let c = rusqlite::Connection::open_with_flags(
        dir.join("catalog.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.execute_batch(&format!(
        "PRAGMA key = \"{}\"; {cipher_pragmas}",
        key_pragma(dir)
    ))
    .unwrap();
    c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .is_ok()
}

const V2_PRAGMAS: &str = "PRAGMA cipher_hmac_algorithm = HMAC_SHA256; \
                          PRAGMA cipher_kdf_algorithm = PBKDF2_HMAC_SHA256;";

/// Every file under `dir` with its bytes, for "nothing changed" checks (except the lock file
/// and the journal of failed unlock attempts, which a refused unlock appends to by design).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name() != "vault.lock" && e.file_name() != "audit-journal.jsonl" {
                out.push((e.path(), fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Exports every active item and checks its bytes against what the fixture was made from.
fn check_contents(v: &mut Vault, out: &Path) {
    let expected: [(&str, &str); 3] = [
        (
            "data/measurements.csv",
            "021e89250c6fb0e6ff7645df671bfb833d3651c1028ace03a32ad843dd7004c9",
        ),
        (
            "data/notes.txt",
            "65406ed4d28625527a35b5ae4a64c2b626c06869c5a998c3fcdc88c70b7f574a",
        ),
        (
            "data/raw.bin",
            "aa09d1c39ac01fd1b50f5087ee962fe904c4d0d7df82637094f0792e62edec35",
        ),
    ];
    let items = v.list(&ListFilter::default()).unwrap();
    assert_eq!(items.len(), 3, "active items: {items:?}");
    for (path, sha) in expected {
        let item = items.iter().find(|i| i.path == path).unwrap();
        let dest = out.join(sha);
        fs::create_dir_all(&dest).unwrap();
        let file = v
            .export_item(
                &item.id,
                &dest,
                &ExportOptions::default(),
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .unwrap();
        assert_eq!(sha_hex(&fs::read(file).unwrap()), sha, "{path}");
    }
    let all = v
        .list(&ListFilter {
            all_states: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 4, "the soft-deleted plots/notes.txt is kept");
    let report = v.verify(&mut |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.blobs_checked, 4);
}

fn upgrade_leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".upgrade"))
        .collect()
}

#[test]
fn v1_fixture_is_upgraded_at_unlock_and_keeps_items_exports_and_audit_trail() {
    let (tmp, dir) = fixture_copy();
    assert!(reads_with(&dir, ""), "the fixture is a v1 catalog");
    assert!(!reads_with(&dir, V2_PRAGMAS));

    let mut v = unlock(&dir).unwrap();
    // The old events are all there, the chain verifies across the upgrade, and new events
    // (this unlock, the exports, the verification) continue it.
    assert!(v.audit_count().unwrap() > FIXTURE_EVENTS);
    let chains = v.audit_verify(&mut |_, _| {}).unwrap();
    assert_eq!(chains.len(), 1);
    assert!(chains[0].complete);
    check_contents(&mut v, &tmp.path().join("out"));
    let projects = v.list_projects().unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].name, "Alpha");
    assert!(v.audit_verify(&mut |_, _| {}).unwrap()[0].complete);
    v.lock();

    // Now v2 on disk: readable with the v2 settings only.
    assert!(
        !reads_with(&dir, ""),
        "the legacy settings no longer read it"
    );
    assert!(reads_with(&dir, V2_PRAGMAS));
    assert!(upgrade_leftovers(&dir).is_empty());
    let c = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
    c.execute_batch(&format!(
        "PRAGMA key = \"{}\"; {V2_PRAGMAS}",
        key_pragma(&dir)
    ))
    .unwrap();
    let hmac: String = c
        .query_row("PRAGMA cipher_hmac_algorithm", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hmac, "HMAC_SHA256");
    let schema: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(schema, labvault_core::catalog::current_schema_version());
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(c);

    // A second unlock does not upgrade again (same file) and still works.
    #[cfg(unix)]
    let ino = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(dir.join("catalog.db")).unwrap().ino()
    };
    let v = unlock(&dir).unwrap();
    assert!(v.audit_verify(&mut |_, _| {}).unwrap()[0].complete);
    v.lock();
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(dir.join("catalog.db")).unwrap().ino(), ino);
    }
}

#[test]
fn leftover_half_written_upgrade_is_discarded_and_the_upgrade_redone() {
    // A real, interrupted upgrade: the first half of a v2 copy of this catalog.
    let (_t1, done) = fixture_copy();
    unlock(&done).unwrap().lock();
    let v2 = fs::read(done.join("catalog.db")).unwrap();

    let (tmp, dir) = fixture_copy();
    fs::write(dir.join("catalog.db.upgrade"), &v2[..v2.len() / 2]).unwrap();
    fs::write(dir.join("catalog.db.upgrade-journal"), b"stale journal").unwrap();
    let mut v = unlock(&dir).unwrap();
    assert!(upgrade_leftovers(&dir).is_empty());
    assert!(v.audit_verify(&mut |_, _| {}).unwrap()[0].complete);
    check_contents(&mut v, &tmp.path().join("out"));
    v.lock();
    assert!(reads_with(&dir, V2_PRAGMAS));
}

#[test]
fn v1_catalog_with_uncheckpointed_wal_and_statistics_loses_nothing_in_the_upgrade() {
    // A v1 vault whose last commit is still only in the WAL (as after a crash): copy the
    // catalog and its WAL while a writer that disabled checkpoints holds them.
    let (_t1, src) = fixture_copy();
    let (tmp, dir) = fixture_copy();
    {
        let c = rusqlite::Connection::open(src.join("catalog.db")).unwrap();
        c.execute_batch(&format!(
            "PRAGMA key = \"{}\"; PRAGMA wal_autocheckpoint = 0; ANALYZE;
             INSERT INTO meta(key, value) VALUES ('wal_marker', 'only in the WAL');",
            key_pragma(&src)
        ))
        .unwrap();
        let wal = fs::read(src.join("catalog.db-wal")).unwrap();
        assert!(!wal.is_empty());
        fs::copy(src.join("catalog.db"), dir.join("catalog.db")).unwrap();
        fs::write(dir.join("catalog.db-wal"), wal).unwrap();
    }
    let mut v = unlock(&dir).unwrap();
    check_contents(&mut v, &tmp.path().join("out"));
    v.lock();
    let c = labvault_core::catalog::open_raw(
        &dir.join("catalog.db"),
        &labvault_crypto::KeyFile::from_bytes(&fs::read(dir.join("vault.key")).unwrap())
            .unwrap()
            .unlock_with_passphrase(&Passphrase::new(PASS.into()))
            .unwrap()
            .catalog_key(),
    )
    .unwrap();
    let marker: String = c
        .query_row("SELECT value FROM meta WHERE key = 'wal_marker'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(marker, "only in the WAL");
    // Planner statistics come along too.
    let stats: i64 = c
        .query_row("SELECT count(*) FROM sqlite_stat1", [], |r| r.get(0))
        .unwrap();
    assert!(stats > 0);
}

#[test]
fn catalog_unreadable_in_both_formats_is_corrupt_and_nothing_changes() {
    // 1. Garbage of the same size.
    let (_t, dir) = fixture_copy();
    let len = fs::metadata(dir.join("catalog.db")).unwrap().len() as usize;
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 13) as u8).collect();
    fs::write(dir.join("catalog.db"), &garbage).unwrap();
    let before = snapshot(&dir);
    let e = unlock(&dir).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog, "{e}");
    assert_eq!(snapshot(&dir), before);
    assert!(upgrade_leftovers(&dir).is_empty());

    // 2. A v1 catalog with one flipped byte in its first page: the page MAC fails under both
    //    formats; the damaged file is kept as it is (for recovery), not "upgraded".
    let (_t2, dir) = fixture_copy();
    let mut cat = fs::read(dir.join("catalog.db")).unwrap();
    cat[100] ^= 0x40;
    fs::write(dir.join("catalog.db"), &cat).unwrap();
    let before = snapshot(&dir);
    let e = unlock(&dir).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog, "{e}");
    assert_eq!(snapshot(&dir), before);

    // 3. Another vault's catalog next to this key file.
    let (_t3, dir) = fixture_copy();
    let (_t4, other) = {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("other");
        Vault::create(&d, &Passphrase::new(PASS.into()), opts())
            .unwrap()
            .0
            .lock();
        (tmp, d)
    };
    fs::copy(other.join("catalog.db"), dir.join("catalog.db")).unwrap();
    let before = snapshot(&dir);
    assert_eq!(unlock(&dir).unwrap_err().code(), ErrorCode::CorruptCatalog);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn v1_catalog_from_a_newer_schema_is_refused_before_any_upgrade() {
    let (_t, dir) = fixture_copy();
    {
        let c = rusqlite::Connection::open(dir.join("catalog.db")).unwrap();
        c.execute_batch(&format!(
            "PRAGMA key = \"{}\"; PRAGMA user_version = 999;",
            key_pragma(&dir)
        ))
        .unwrap();
    }
    let before = snapshot(&dir);
    let e = unlock(&dir).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedVersion, "{e}");
    assert_eq!(snapshot(&dir), before);
    assert!(reads_with(&dir, ""), "still the untouched v1 catalog");
}
