//! The blobs-unsettled marker: unlock sweeps `blobs/` for orphans exactly when an import or an
//! erasure may have left one (crashed, failed or cancelled), and skips the sweep otherwise.

mod common;

use common::*;
use labvault_core::vault::BLOBS_UNSETTLED;
use labvault_core::{Area, ErrorCode, ImportOptions, Vault};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// A blob file no catalog row references, as an import that died before its commit leaves it.
fn plant_orphan(dir: &Path) -> PathBuf {
    let p = dir.join("blobs/ab/abababababababababababababababab");
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, b"ciphertext of an import that never committed").unwrap();
    p
}

fn marker(dir: &Path) -> bool {
    dir.join(BLOBS_UNSETTLED).exists()
}

fn import_bytes(v: &mut Vault, t: &Path, name: &str) -> String {
    write(&t.join(name), &bytes(5000, 3));
    let rep = import(v, "P", Area::Uploads, &[t.join(name)]);
    rep.imported[0].item_id.clone()
}

#[test]
fn finished_import_and_erasure_leave_no_marker_and_unlock_skips_the_sweep() {
    let (t, dir, mut v, _) = new_vault();
    v.create_project("P").unwrap();
    let id = import_bytes(&mut v, t.path(), "a.csv");
    assert!(!marker(&dir), "a finished import removes the marker");
    import_bytes(&mut v, t.path(), "b.csv");
    v.purge(&id, "right to deletion").unwrap();
    assert!(!marker(&dir), "a finished erasure removes the marker");
    drop(v);

    // Without the marker nothing can have been left behind by us, so unlock does not walk the
    // blobs; a file put there by someone else stays for `verify` to report.
    let planted = plant_orphan(&dir);
    let v = unlock(&dir);
    assert!(planted.exists(), "no sweep without the marker");
    let rep = verify(&v);
    assert!(
        rep.problems.iter().any(|p| p.message.contains("orphan")),
        "{:?}",
        rep.problems
    );
}

#[test]
fn an_interrupted_operation_leaves_the_marker_and_the_next_unlock_sweeps() {
    let (_t, dir, v, _) = new_vault();
    drop(v);
    // What a crash between "blob renamed into blobs/" and "catalog commit" leaves.
    let planted = plant_orphan(&dir);
    fs::write(dir.join(BLOBS_UNSETTLED), b"").unwrap();
    let v = unlock(&dir);
    assert!(!planted.exists(), "the orphan is swept");
    assert!(!marker(&dir), "and the marker removed after the sweep");
    let rep = verify(&v);
    assert!(rep.is_ok(), "{:?}", rep.problems);
}

#[test]
fn a_failed_import_keeps_the_marker_even_after_later_successes() {
    let (t, dir, mut v, _) = new_vault();
    v.create_project("P").unwrap();
    write(&t.path().join("big.bin"), &bytes(3 * 1024 * 1024, 1));
    let e = import_cancelled_mid_way(&v, "P", &t.path().join("big.bin"));
    assert_eq!(e.code(), ErrorCode::Cancelled);
    assert!(marker(&dir), "a stopped import leaves the marker");
    import_bytes(&mut v, t.path(), "after.csv");
    assert!(
        marker(&dir),
        "a later success must not clear what the failure may have left"
    );
    drop(v);
    let planted = plant_orphan(&dir);
    let v = unlock(&dir);
    assert!(!planted.exists());
    assert!(!marker(&dir));
    drop(v);
}

#[test]
fn an_import_refused_before_it_starts_sets_no_marker() {
    let (t, dir, v, _) = new_vault();
    write(&t.path().join("a.csv"), b"x");
    let e = v
        .import(
            "no such project",
            Area::Uploads,
            &[t.path().join("a.csv")],
            &ImportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(!marker(&dir));
}

#[test]
fn a_vault_from_before_the_marker_gets_one_full_sweep() {
    let (_t, dir, v, _) = new_vault();
    drop(v);
    // Vaults created before the marker have no protocol flag in their catalog.
    let kf =
        labvault_crypto::KeyFile::from_bytes(&fs::read(dir.join("vault.key")).unwrap()).unwrap();
    let root = kf.unlock_with_passphrase(&pass()).unwrap();
    let c = labvault_core::catalog::open_raw(&dir.join("catalog.db"), &root.catalog_key()).unwrap();
    let n = c
        .execute("DELETE FROM meta WHERE key = 'blobs_unsettled_marker'", [])
        .unwrap();
    assert_eq!(n, 1, "a new vault records that it keeps the marker");
    drop(c);
    let planted = plant_orphan(&dir);
    drop(unlock(&dir));
    assert!(!planted.exists(), "the first unlock sweeps");
    let planted = plant_orphan(&dir);
    drop(unlock(&dir));
    assert!(
        planted.exists(),
        "and records that the vault now keeps the marker"
    );
}
