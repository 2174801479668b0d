//! Integration tests of the vault: keys, catalog, projects, import/export, lifecycle, verify.

mod common;

use common::*;
use labvault_core::catalog::Catalog;
use labvault_core::{
    Area, DataType, ErrorCode, ExportOptions, ImportEvent, ImportOptions, ItemState, ListFilter,
    Passphrase, RecoveryKey, Unlock, Vault,
};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn create_unlock_wrong_passphrase_recovery_and_passwd() {
    let (_t, dir, v, rk) = new_vault();
    let vault_id = v.vault_id().to_string();
    v.lock();
    // Lock released: a second handle can open it; the catalog key checks out.
    let v = unlock(&dir);
    assert_eq!(v.vault_id(), vault_id);
    drop(v);

    let e = Vault::unlock(
        &dir,
        Unlock::Passphrase(&Passphrase::new("nope".into())),
        opts(),
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::WrongPassphrase);
    assert_eq!(e.to_string(), "wrong passphrase", "no other detail");

    let key = RecoveryKey::parse(&rk).unwrap();
    let v = Vault::unlock(&dir, Unlock::RecoveryKey(&key), opts()).unwrap();
    v.reset_passphrase(&Passphrase::new("new passphrase here".into()))
        .unwrap();
    drop(v);
    let e = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::WrongPassphrase,
        "old passphrase no longer works"
    );
    Vault::unlock(
        &dir,
        Unlock::Passphrase(&Passphrase::new("new passphrase here".into())),
        opts(),
    )
    .unwrap();

    // A typo in the recovery key is caught by its checksum.
    let mut typo = rk.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'A' { 'B' } else { 'A' });
    assert!(RecoveryKey::parse(&typo).is_err());
}

#[test]
fn create_over_existing_vault_is_refused() {
    let (_t, dir, v, _) = new_vault();
    drop(v);
    let before = fs::read(dir.join("vault.key")).unwrap();
    let e = Vault::create(&dir, &pass(), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists);
    assert_eq!(fs::read(dir.join("vault.key")).unwrap(), before);
}

#[test]
fn missing_vault_is_not_found() {
    let t = tempfile::tempdir().unwrap();
    let e = Vault::unlock(&t.path().join("none"), Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
}

#[test]
fn corrupt_and_foreign_key_files_are_refused() {
    let (_t, dir, v, _) = new_vault();
    drop(v);
    let good = fs::read(dir.join("vault.key")).unwrap();
    fs::write(dir.join("vault.key"), b"{\"not\": \"a key file\"}").unwrap();
    let e = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptKeyFile, "{e}");
    fs::write(dir.join("vault.key"), &good[..good.len() / 2]).unwrap();
    let e = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptKeyFile, "{e}");

    // Key file of another vault with the same passphrase: it unlocks, but its root key does
    // not open this catalog.
    let (_t2, dir2, v2, _) = new_vault();
    drop(v2);
    fs::copy(dir2.join("vault.key"), dir.join("vault.key")).unwrap();
    let e = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog, "{e}");
    fs::write(dir.join("vault.key"), &good).unwrap();
    unlock(&dir);
}

#[test]
fn catalog_newer_version_garbage_and_wrong_key() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("catalog.db");
    let key = labvault_crypto::RootKey::generate().catalog_key();
    {
        let cat = Catalog::open(&path, &key, true, &mut || Ok(())).unwrap();
        cat.conn().pragma_update(None, "user_version", 999).unwrap();
        cat.conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let before = fs::read(&path).unwrap();
    let e = Catalog::open(&path, &key, false, &mut || Ok(())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedVersion, "{e}");
    assert_eq!(fs::read(&path).unwrap(), before, "nothing changed");

    let other = labvault_crypto::RootKey::generate().catalog_key();
    let e = Catalog::open(&path, &other, false, &mut || Ok(())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog, "{e}");

    let junk = t.path().join("junk.db");
    fs::write(&junk, bytes(8192, 3)).unwrap();
    let e = Catalog::open(&junk, &key, false, &mut || Ok(())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog, "{e}");
}

#[test]
fn vault_with_damaged_catalog_is_corrupt_catalog() {
    let (_t, dir, v, _) = new_vault();
    drop(v);
    fs::write(dir.join("catalog.db"), bytes(16384, 9)).unwrap();
    let _ = fs::remove_file(dir.join("catalog.db-wal"));
    let e = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog, "{e}");
}

#[test]
fn projects_create_list_duplicate_and_bad_names() {
    let (_t, _dir, v, _) = new_vault();
    let p = v.create_project("Cell imaging").unwrap();
    v.create_project("Assays").unwrap();
    let names: Vec<_> = v
        .list_projects()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Assays", "Cell imaging"]);
    assert_eq!(v.project(&p.id).unwrap().name, "Cell imaging");
    assert_eq!(
        v.create_project("Cell imaging").unwrap_err().code(),
        ErrorCode::AlreadyExists
    );
    for bad in ["", "..", "a/b", "nul\0", &"x".repeat(256)] {
        assert_eq!(
            v.create_project(bad).unwrap_err().code(),
            ErrorCode::InvalidName,
            "{bad:?}"
        );
    }
    assert_eq!(
        v.list_projects().unwrap().len(),
        2,
        "bad input changed nothing"
    );
}

#[test]
fn import_dir_list_filters_versions_and_export_roundtrip() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("run-7");
    let big = bytes(3 * 1024 * 1024 + 17, 1);
    write(&src.join("raw/big.bin"), &big);
    write(&src.join("notes.txt"), b"hello");
    write(&src.join("table.csv"), b"a,b\n1,2\n");
    write(&src.join("empty.dat"), b"");
    let mut events = (0u64, 0u64, 0u64);
    let rep = v
        .import(
            "P",
            Area::Uploads,
            std::slice::from_ref(&src),
            &ImportOptions::default(),
            &mut |e| match e {
                ImportEvent::Started { bytes_total, .. } => events.0 = *bytes_total,
                ImportEvent::Progress { overall_done, .. } => events.1 = *overall_done,
                ImportEvent::FileDone(_) => events.2 += 1,
                ImportEvent::FileFailed(_) => {}
            },
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    assert_eq!(rep.imported.len(), 4);
    assert_eq!(events.0, big.len() as u64 + 5 + 8);
    assert_eq!(events.1, events.0, "progress reaches the total");
    assert_eq!(events.2, 4);

    let all = v.list(&ListFilter::default()).unwrap();
    let paths: Vec<_> = all.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "run-7/empty.dat",
            "run-7/notes.txt",
            "run-7/raw/big.bin",
            "run-7/table.csv"
        ]
    );
    let csv = all.iter().find(|i| i.path.ends_with(".csv")).unwrap();
    assert_eq!(csv.media_type, "text/csv");
    assert_eq!(csv.data_type, DataType::ResearchData);
    assert_eq!(csv.created_by, "tester");
    assert_eq!(
        csv.sha256,
        "492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470"
    );
    assert_eq!(csv.size, 8);
    let f = |flt: ListFilter| v.list(&flt).unwrap().len();
    assert_eq!(
        f(ListFilter {
            path_prefix: Some("run-7/raw/".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        f(ListFilter {
            path_contains: Some("NOTES".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        f(ListFilter {
            media_type: Some("text/plain".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        f(ListFilter {
            area: Some(Area::Plots),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        f(ListFilter {
            project: Some("P".into()),
            ..Default::default()
        }),
        4
    );
    assert_eq!(
        v.list(&ListFilter {
            project: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err()
        .code(),
        ErrorCode::NotFound
    );

    // Re-import of the same path is a new version of the same item.
    write(&src.join("notes.txt"), b"hello again");
    let rep = import(&v, "P", Area::Uploads, &[src.join("notes.txt")]);
    assert_eq!(
        rep.imported[0].path, "notes.txt",
        "single file goes to the area root"
    );
    let rep = v
        .import(
            "P",
            Area::Uploads,
            &[src.join("notes.txt")],
            &ImportOptions {
                dest_prefix: Some("run-7".into()),
                data_type: None,
                watch: None,
            },
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(rep.imported[0].version, 2);
    let notes = v
        .find_item(
            Some("P"),
            None,
            "uploads/run-7/notes.txt",
            &[ItemState::Active],
        )
        .unwrap();
    assert_eq!(notes.version, 2);
    assert_eq!(notes.size, 11);

    // Export: byte-identical, including the multi-chunk and the empty file.
    let out = t.path().join("out");
    let big_item = v
        .find_item(
            Some("P"),
            Some(Area::Uploads),
            "run-7/raw/big.bin",
            &[ItemState::Active],
        )
        .unwrap();
    let p = export_one(&v, &big_item.id, &out).unwrap();
    assert_eq!(p, out.join("big.bin"));
    assert_eq!(fs::read(&p).unwrap(), big);
    let p = export_one(&v, &notes.id, &out).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"hello again");
    // No overwrite by default; the existing file is untouched.
    fs::write(out.join("notes.txt"), b"mine").unwrap();
    assert_eq!(
        export_one(&v, &notes.id, &out).unwrap_err().code(),
        ErrorCode::AlreadyExists
    );
    assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"mine");

    // Whole area, structure recreated.
    let area_out = t.path().join("area");
    let files = v
        .export_area(
            "P",
            Area::Uploads,
            &area_out,
            &ExportOptions::default(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(files.exported.len(), 5);
    assert_eq!(fs::read(area_out.join("run-7/raw/big.bin")).unwrap(), big);
    assert_eq!(fs::read(area_out.join("run-7/empty.dat")).unwrap(), b"");
    assert_eq!(
        fs::read(area_out.join("run-7/table.csv")).unwrap(),
        b"a,b\n1,2\n"
    );
    // Nothing but the exported files in the destination (no temp files).
    assert_eq!(all_files(&area_out).len(), 5);
}

#[test]
fn no_plaintext_marker_anywhere_under_the_vault() {
    let (t, dir, v, _) = new_vault();
    let marker = "ZEBRAFISH-MARKER-4711";
    v.create_project(&format!("project {marker}")).unwrap();
    let mut content = bytes(2 * 1024 * 1024, 5);
    content.extend_from_slice(marker.as_bytes());
    content.extend_from_slice(&bytes(1000, 6));
    let src = t.path().join(format!("dir {marker}"));
    write(&src.join(format!("file {marker}.csv")), &content);
    write(&src.join("small.txt"), format!("a {marker} b").as_bytes());
    let rep = import(&v, &format!("project {marker}"), Area::Uploads, &[src]);
    assert_eq!(rep.imported.len(), 2);
    let item = &rep.imported[0];
    v.move_item(&item.item_id, None, Some(&format!("moved {marker}/x.csv")))
        .unwrap();
    drop(v);
    let files = all_files(&dir);
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let data = fs::read(&f).unwrap();
        let name = f.to_string_lossy();
        assert!(!name.contains(marker), "marker in a file name: {name}");
        assert!(
            !data.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "plaintext marker found in {}",
            f.display()
        );
        // Also not as UTF-16 or lowercase.
        let lower = marker.to_lowercase();
        assert!(!data.windows(lower.len()).any(|w| w == lower.as_bytes()));
    }
}

#[test]
fn rename_move_soft_delete_restore_and_clashes() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    write(&t.path().join("a.csv"), b"A");
    write(&t.path().join("b.csv"), b"B");
    let rep = import(
        &v,
        "P",
        Area::Workspace,
        &[t.path().join("a.csv"), t.path().join("b.csv")],
    );
    let a = rep.imported[0].item_id.clone();
    let b = rep.imported[1].item_id.clone();
    let item = v.item(&a).unwrap();
    assert_eq!(
        item.data_type,
        DataType::AnalysisResult,
        "workspace default"
    );

    assert_eq!(
        v.move_item(&a, None, Some("b.csv")).unwrap_err().code(),
        ErrorCode::AlreadyExists
    );
    assert_eq!(
        v.move_item(&a, None, Some("../x")).unwrap_err().code(),
        ErrorCode::InvalidName
    );
    let moved = v
        .move_item(&a, Some(Area::Plots), Some("fig/a.png"))
        .unwrap();
    assert_eq!(
        (moved.area, moved.path.as_str(), moved.media_type.as_str()),
        (Area::Plots, "fig/a.png", "image/png")
    );
    assert_eq!(moved.id, a);

    let del = v.soft_delete(&b).unwrap();
    assert_eq!(del.state, ItemState::SoftDeleted);
    assert!(del.deleted_at.is_some());
    assert!(
        v.list(&ListFilter::default())
            .unwrap()
            .iter()
            .all(|i| i.id != b),
        "hidden"
    );
    assert_eq!(
        v.soft_delete(&b).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    let out = t.path().join("out");
    assert_eq!(
        export_one(&v, &b, &out).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );

    // Path reused while deleted: restore must refuse rather than create two active copies.
    write(&t.path().join("b.csv"), b"B2");
    import(&v, "P", Area::Workspace, &[t.path().join("b.csv")]);
    assert_eq!(v.restore(&b).unwrap_err().code(), ErrorCode::AlreadyExists);
    let newer = v
        .find_item(
            Some("P"),
            Some(Area::Workspace),
            "b.csv",
            &[ItemState::Active],
        )
        .unwrap();
    v.move_item(&newer.id, None, Some("b2.csv")).unwrap();
    let r = v.restore(&b).unwrap();
    assert_eq!(r.state, ItemState::Active);
    assert_eq!(fs::read(export_one(&v, &b, &out).unwrap()).unwrap(), b"B");

    let stats = v.stats().unwrap();
    let total: u64 = stats.iter().map(|s| s.items).sum();
    assert_eq!(total, 3);
    assert!(stats
        .iter()
        .any(|s| s.area == Area::Plots && s.items == 1 && s.bytes == 1));
}

#[test]
fn purge_erases_keys_and_an_old_blob_copy_stays_undecryptable() {
    let (t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let secret = bytes(100_000, 8);
    write(&t.path().join("s.bin"), &secret);
    let rep = import(&v, "P", Area::Uploads, &[t.path().join("s.bin")]);
    let id = rep.imported[0].item_id.clone();
    // Keep a copy of the blob as an attacker with an old backup would.
    let blobs_before = all_files(&dir.join("blobs"));
    assert_eq!(blobs_before.len(), 1);
    let old_blob = fs::read(&blobs_before[0]).unwrap();

    let erased = v.purge(&id, "right to deletion").unwrap();
    assert_eq!(erased.state, ItemState::Erased);
    assert_eq!(erased.erase_reason.as_deref(), Some("right to deletion"));
    assert!(erased.erased_at.is_some());
    assert_eq!(blob_count(&dir), 0, "blob removed");
    let wal = dir.join("catalog.db-wal");
    assert!(
        !wal.exists() || fs::metadata(&wal).unwrap().len() == 0,
        "WAL truncated after purge"
    );
    assert_eq!(v.purge(&id, "again").unwrap_err().code(), ErrorCode::Erased);
    assert_eq!(v.restore(&id).unwrap_err().code(), ErrorCode::Erased);
    let out = t.path().join("out");
    assert_eq!(
        export_one(&v, &id, &out).unwrap_err().code(),
        ErrorCode::Erased
    );
    drop(v);

    // Put the old blob back: nothing in the catalog can decrypt it any more, so it is just an
    // orphan, which `verify` names, and the item stays erased.
    fs::create_dir_all(blobs_before[0].parent().unwrap()).unwrap();
    fs::write(&blobs_before[0], &old_blob).unwrap();
    let v = unlock(&dir);
    assert_eq!(
        export_one(&v, &id, &out).unwrap_err().code(),
        ErrorCode::Erased
    );
    let rep = verify(&v);
    assert!(
        rep.problems.iter().any(|p| p.message.contains("orphan")),
        "{:?}",
        rep.problems
    );
    drop(v);

    // Look inside the catalog with the real keys: no wrapped data key survives.
    let kf =
        labvault_crypto::KeyFile::from_bytes(&fs::read(dir.join("vault.key")).unwrap()).unwrap();
    let root = kf.unlock_with_passphrase(&pass()).unwrap();
    let cat = Catalog::open(
        &dir.join("catalog.db"),
        &root.catalog_key(),
        false,
        &mut || Ok(()),
    )
    .unwrap();
    let (keys, blobs): (i64, i64) = cat
        .conn()
        .query_row(
            "SELECT count(wrapped_data_key), count(blob_id) FROM item_versions WHERE item_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((keys, blobs), (0, 0));
    assert_eq!(
        fs::read(out.join("s.bin")).map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}

fn corrupt_blob(dir: &std::path::Path, f: impl FnOnce(&mut Vec<u8>)) {
    let blobs = all_files(&dir.join("blobs"));
    let mut b = fs::read(&blobs[0]).unwrap();
    f(&mut b);
    fs::write(&blobs[0], b).unwrap();
}

#[test]
fn verify_names_tampered_truncated_missing_and_orphans_and_export_leaves_nothing() {
    let (t, dir, v, _) = new_vault();
    v.create_project("Lab").unwrap();
    let data = bytes(2 * 1024 * 1024 + 5, 2);
    write(&t.path().join("d/results.bin"), &data);
    import(&v, "Lab", Area::Uploads, &[t.path().join("d")]);
    let id = v.list(&ListFilter::default()).unwrap()[0].id.clone();
    let rep = verify(&v);
    assert!(rep.is_ok());
    assert_eq!(
        (rep.blobs_checked, rep.bytes_checked),
        (1, data.len() as u64)
    );

    // Flip one bit in the middle of the second chunk.
    corrupt_blob(&dir, |b| b[1024 * 1024 + 500] ^= 1);
    let rep = verify(&v);
    assert_eq!(rep.problems.len(), 1);
    let p = &rep.problems[0];
    assert_eq!(p.code, ErrorCode::Tampered);
    assert_eq!(p.item_id.as_deref(), Some(id.as_str()));
    assert!(
        p.message.contains("Lab/uploads/d/results.bin"),
        "{}",
        p.message
    );
    let out = t.path().join("out");
    let e = export_one(&v, &id, &out).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Tampered);
    assert!(e.to_string().contains("Lab/uploads/d/results.bin"), "{e}");
    assert!(
        all_files(&out).is_empty(),
        "no output (or temp) file after a failed export"
    );

    // Truncated (cut at a chunk boundary region).
    corrupt_blob(&dir, |b| b[1024 * 1024 + 500] ^= 1);
    corrupt_blob(&dir, |b| b.truncate(b.len() - 100));
    let rep = verify(&v);
    assert!(
        matches!(
            rep.problems[0].code,
            ErrorCode::Truncated | ErrorCode::Tampered
        ),
        "{:?}",
        rep.problems
    );
    let e = export_one(&v, &id, &out).unwrap_err();
    assert!(matches!(
        e.code(),
        ErrorCode::Truncated | ErrorCode::Tampered
    ));
    assert!(all_files(&out).is_empty());

    // Missing blob, and an orphan blob.
    let blob = all_files(&dir.join("blobs"))[0].clone();
    let orphan = dir.join("blobs/ab/abababababababababababababababab");
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::rename(&blob, &orphan).unwrap();
    let rep = verify(&v);
    let codes: Vec<_> = rep.problems.iter().map(|p| p.code).collect();
    assert!(codes.contains(&ErrorCode::NotFound), "{:?}", rep.problems);
    assert!(
        rep.problems.iter().any(|p| p.message.contains("orphan")),
        "{:?}",
        rep.problems
    );
}

#[test]
fn bad_names_are_skipped_and_reported_the_rest_is_imported() {
    use std::os::unix::ffi::OsStrExt;
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("src");
    write(&src.join("good.txt"), b"ok");
    write(&src.join("back\\slash.txt"), b"x");
    let bad = src.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt"));
    fs::write(&bad, b"x").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    let rep = import(
        &v,
        "P",
        Area::Uploads,
        &[src.clone(), t.path().join("missing.txt")],
    );
    assert_eq!(rep.imported.len(), 1);
    assert_eq!(rep.imported[0].path, "src/good.txt");
    let codes: Vec<_> = rep.failed.iter().map(|f| f.code).collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == ErrorCode::InvalidName)
            .count(),
        2,
        "{:?}",
        rep.failed
    );
    assert!(codes.contains(&ErrorCode::SourceVanished));
    assert!(
        codes.contains(&ErrorCode::InvalidArgument),
        "symlink refused"
    );
    assert!(
        rep.failed.iter().any(|f| f.message.contains("latin1-")),
        "names the file"
    );
    // Unknown project: nothing happens.
    let e = v
        .import(
            "nope",
            Area::Uploads,
            &[src],
            &ImportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert_eq!(v.list(&ListFilter::default()).unwrap().len(), 1);
}

#[test]
fn source_shrinking_mid_read_is_source_vanished_and_nothing_half_imported() {
    let (t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("growing.bin");
    write(&src, &bytes(4 * 1024 * 1024, 4));
    let mut truncated = false;
    let src2 = src.clone();
    let rep = v
        .import(
            "P",
            Area::Uploads,
            std::slice::from_ref(&src),
            &ImportOptions::default(),
            &mut |e| {
                if let ImportEvent::Progress { .. } = e {
                    if !truncated {
                        truncated = true;
                        let f = fs::OpenOptions::new().write(true).open(&src2).unwrap();
                        f.set_len(1024 * 1024 + 3).unwrap();
                    }
                }
            },
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(truncated);
    assert!(rep.imported.is_empty());
    assert_eq!(rep.failed.len(), 1);
    assert_eq!(rep.failed[0].code, ErrorCode::SourceVanished);
    assert!(rep.failed[0].message.contains("growing.bin"));
    assert!(v
        .list(&ListFilter {
            all_states: true,
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    assert_eq!(
        (blob_count(&dir), tmp_count(&dir)),
        (0, 0),
        "no blob or temp left"
    );
}

#[test]
fn cancel_stops_import_and_leaves_nothing() {
    let (t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    write(&t.path().join("a.bin"), &bytes(3 * 1024 * 1024, 1));
    let e = import_cancelled_mid_way(&v, "P", &t.path().join("a.bin"));
    assert_eq!(e.code(), ErrorCode::Cancelled);
    assert!(v.list(&ListFilter::default()).unwrap().is_empty());
    assert_eq!((blob_count(&dir), tmp_count(&dir)), (0, 0));
}

#[test]
fn cancel_between_groups_keeps_committed_groups_and_removes_the_one_in_flight() {
    // Three groups of small files: while the first commits, the second is already encrypted,
    // synced and renamed into `blobs/` (pipelining). Cancelling when the first group is
    // reported must keep exactly that group and remove every blob of the second.
    let (t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let g = labvault_core::IMPORT_GROUP_FILES[0];
    let src = t.path().join("many");
    for i in 0..3 * g {
        write(
            &src.join(format!("f{i:04}.txt")),
            &bytes(1 + i % 300, i as u8),
        );
    }
    let cancel = AtomicBool::new(false);
    let mut done = 0;
    let e = v
        .import(
            "P",
            Area::Uploads,
            &[src],
            &ImportOptions::default(),
            &mut |e| {
                if let ImportEvent::FileDone(_) = e {
                    done += 1;
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Cancelled);
    assert_eq!(done, g, "exactly the first group was reported");
    let items = v.list(&ListFilter::default()).unwrap();
    assert_eq!(items.len(), g, "the first group stays committed");
    assert_eq!(
        (blob_count(&dir), tmp_count(&dir)),
        (1, 0),
        "the first group's pack stays; no pack or temp file of the cancelled groups is left"
    );
    let rep = verify(&v);
    assert!(rep.is_ok(), "{:?}", rep.problems);
}

#[test]
fn export_to_a_full_disk_is_no_space_and_leaves_no_file() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    write(&t.path().join("big.bin"), &bytes(3 * 1024 * 1024, 7));
    let rep = import(&v, "P", Area::Uploads, &[t.path().join("big.bin")]);
    let mnt = t.path().join("tiny");
    fs::create_dir_all(&mnt).unwrap();
    if !small_disk(&mnt, "1m") {
        return;
    }
    let res = export_one(&v, &rep.imported[0].item_id, &mnt);
    let left = all_files(&mnt);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    let e = res.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoSpace, "{e}");
    assert!(e.to_string().contains("big.bin"), "{e}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn find_item_by_id_path_area_prefix_and_ambiguity() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    v.create_project("Q").unwrap();
    write(&t.path().join("x.csv"), b"1");
    let up = import(&v, "P", Area::Uploads, &[t.path().join("x.csv")]);
    let ws = import(&v, "P", Area::Workspace, &[t.path().join("x.csv")]);
    let active = [ItemState::Active];
    // By id, with or without the project; an id from another project is not found there.
    let id = &up.imported[0].item_id;
    assert_eq!(
        v.find_item(None, None, id, &active).unwrap().area,
        Area::Uploads
    );
    assert_eq!(v.find_item(Some("P"), None, id, &active).unwrap().id, *id);
    assert_eq!(
        v.find_item(Some("Q"), None, id, &active)
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    // A path present in two areas is ambiguous unless the area is given.
    assert_eq!(
        v.find_item(Some("P"), None, "x.csv", &active)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    let w = v
        .find_item(Some("P"), Some(Area::Workspace), "x.csv", &active)
        .unwrap();
    assert_eq!(w.id, ws.imported[0].item_id);
    assert_eq!(
        v.find_item(Some("P"), None, "workspace/x.csv", &active)
            .unwrap()
            .id,
        w.id
    );
    // A path without a project cannot be resolved.
    assert_eq!(
        v.find_item(None, None, "x.csv", &active)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    // Wrong state: soft-deleted item asked for as active.
    v.soft_delete(&w.id).unwrap();
    assert_eq!(
        v.find_item(Some("P"), Some(Area::Workspace), "x.csv", &active)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        v.find_item(
            Some("P"),
            Some(Area::Workspace),
            "x.csv",
            &[ItemState::SoftDeleted]
        )
        .unwrap()
        .id,
        w.id
    );
    // A bad import prefix changes nothing.
    let e = v
        .import(
            "P",
            Area::Plots,
            &[t.path().join("x.csv")],
            &ImportOptions {
                dest_prefix: Some("../escape".into()),
                data_type: Some(DataType::Backup),
                watch: None,
            },
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidName);
    assert!(v
        .list(&ListFilter {
            area: Some(Area::Plots),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    // Explicit data type is kept.
    let rep = v
        .import(
            "Q",
            Area::Exports,
            &[t.path().join("x.csv")],
            &ImportOptions {
                dest_prefix: None,
                data_type: Some(DataType::Backup),
                watch: None,
            },
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(
        v.item(&rep.imported[0].item_id).unwrap().data_type,
        DataType::Backup
    );
}

#[test]
fn import_into_a_full_vault_disk_is_no_space_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small-disk");
    fs::create_dir_all(&mnt).unwrap();
    if !small_disk(&mnt, "2m") {
        return;
    }
    let res = std::panic::catch_unwind(|| {
        let dir = mnt.join("vault");
        let (v, _) = Vault::create(&dir, &pass(), opts()).unwrap();
        v.create_project("P").unwrap();
        write(&t.path().join("small.txt"), b"fits");
        write(&t.path().join("huge.bin"), &bytes(4 * 1024 * 1024, 3));
        let e = v
            .import(
                "P",
                Area::Uploads,
                &[t.path().join("small.txt"), t.path().join("huge.bin")],
                &ImportOptions::default(),
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::NoSpace, "{e}");
        // The file committed before the disk filled up is intact; nothing half-imported.
        let items = v.list(&ListFilter::default()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].path, "small.txt");
        assert_eq!(tmp_count(&dir), 0, "partial blob removed");
        assert_eq!(blob_count(&dir), 1);
        let rep = verify(&v);
        assert!(rep.is_ok(), "{:?}", rep.problems);
    });
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

/// Fills the filesystem holding `fill` to the last byte.
fn fill_disk(fill: &std::path::Path) {
    let mut f = fs::File::create(fill).unwrap();
    for block in [64 << 10, 4 << 10, 512, 1] {
        let b = vec![0u8; block];
        while std::io::Write::write_all(&mut f, &b).is_ok() {}
    }
    f.sync_all().ok();
}

/// A vault on a disk that filled up while it was locked opens **read-only**: never reported as
/// damaged or from another vault, nothing of the catalog rewritten; listing, verifying and
/// exporting to another disk (the way out) work; a change is refused as `no_space` naming the
/// full disk. The reads' audit events go to the journal (when even that has no room, they wait
/// in memory) and into the chain at the next unlock with space, under the reader's own name.
#[test]
fn a_full_disk_opens_the_vault_read_only_and_its_reads_stay_audited() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small-disk");
    fs::create_dir_all(&mnt).unwrap();
    if !small_disk(&mnt, "4m") {
        return;
    }
    let res = std::panic::catch_unwind(|| {
        let dir = mnt.join("vault");
        let (v, _) = Vault::create(&dir, &pass(), opts()).unwrap();
        v.create_project("P").unwrap();
        write(&t.path().join("a.txt"), b"kept rows");
        import(&v, "P", Area::Uploads, &[t.path().join("a.txt")]);
        v.lock();
        let cat = dir.join("catalog.db");
        let before = fs::read(&cat).unwrap();
        let fill = mnt.join("fill");
        fill_disk(&fill);

        // Not one byte free: still readable.
        let v = unlock(&dir);
        let why = v.read_only_reason().expect("opened read-only");
        assert!(why.contains("full") && why.contains("read-only"), "{why}");
        assert_eq!(v.list(&ListFilter::default()).unwrap().len(), 1);
        v.lock();

        // A few KiB free: room for journal lines, not for the catalog's shared-memory index.
        let len = fs::metadata(&fill).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&fill)
            .unwrap()
            .set_len(len - (12 << 10))
            .unwrap();
        let v = unlock(&dir);
        assert!(v.read_only_reason().is_some());
        let items = v.list(&ListFilter::default()).unwrap();
        assert_eq!(items.len(), 1);
        assert!(verify(&v).is_ok());
        let out = t.path().join("rescued");
        fs::create_dir_all(&out).unwrap();
        let exported = export_one(&v, &items[0].id, &out).unwrap();
        assert_eq!(fs::read(&exported).unwrap(), b"kept rows");
        write(&t.path().join("b.txt"), b"new");
        let e = v
            .import(
                "P",
                Area::Uploads,
                &[t.path().join("b.txt")],
                &ImportOptions::default(),
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::NoSpace, "{e}");
        assert!(e.to_string().contains("read-only"), "{e}");
        assert_eq!(
            v.create_project("Q").unwrap_err().code(),
            ErrorCode::NoSpace
        );
        v.lock();
        assert_eq!(
            fs::read(&cat).unwrap(),
            before,
            "the catalog was not rewritten"
        );

        // Space freed: a normal unlock, the data intact, the reads in the audit chain.
        fs::remove_file(&fill).unwrap();
        let v = unlock(&dir);
        assert!(v.read_only_reason().is_none());
        assert_eq!(v.list(&ListFilter::default()).unwrap().len(), 1);
        let rep = verify(&v);
        assert!(rep.is_ok(), "{:?}", rep.problems);
        let evs = v
            .audit_query(&labvault_core::audit::AuditFilter::default(), 10_000, None)
            .unwrap()
            .events;
        let journaled: Vec<_> = evs
            .iter()
            .filter(|e| e.detail.contains("read_only=disk_full"))
            .collect();
        let actions: Vec<&str> = journaled.iter().map(|e| e.action.as_str()).collect();
        for a in ["auth.unlock", "data.verify", "data.export", "auth.lock"] {
            assert!(actions.contains(&a), "{a} missing from {actions:?}");
        }
        let export = journaled
            .iter()
            .find(|e| e.action.as_str() == "data.export")
            .unwrap();
        assert_eq!(export.user, opts().actor);
        assert!(
            export.resource.contains(&items[0].id),
            "{}",
            export.resource
        );
        let chains = v.audit_verify(&mut |_, _| {}).unwrap();
        assert!(chains.iter().all(|c| c.complete), "{chains:?}");
    });
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn interrupted_create_is_redone_and_verify_can_be_cancelled() {
    // A creation that died before writing the key file (its commit point) left a catalog
    // nobody can open: creating again starts clean.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("vault");
    fs::create_dir_all(dir.join("blobs")).unwrap();
    fs::write(dir.join("catalog.db"), bytes(4096, 1)).unwrap();
    fs::write(dir.join(labvault_core::layout::CREATING_MARKER), b"").unwrap();
    let (v, _) = Vault::create(&dir, &pass(), opts()).unwrap();
    assert!(!dir.join(labvault_core::layout::CREATING_MARKER).exists());
    v.create_project("P").unwrap();
    // Larger than one parallel batch (~8 MiB), so cancellation lands mid-blob.
    write(&t.path().join("a.bin"), &vec![0x5a; 9 * 1024 * 1024 + 1]);
    import(&v, "P", Area::Uploads, &[t.path().join("a.bin")]);
    let cancel = AtomicBool::new(false);
    let e = v
        .verify(&mut |_| cancel.store(true, Ordering::Relaxed), &cancel)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Cancelled);
    drop(v);
    let v = unlock(&dir);
    assert!(verify(&v).is_ok());
}

#[test]
fn many_small_files_commit_in_order_and_round_trip() {
    let (t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("many");
    for i in 0..40u8 {
        write(
            &src.join(format!("f{i:02}.txt")),
            &bytes(100 + i as usize * 37, i),
        );
    }
    // A big file in the middle splits the small ones into two groups.
    write(&src.join("f20-big.bin"), &bytes(1024 * 1024 + 1, 99));
    let mut done = Vec::new();
    let mut last_overall = 0;
    let rep = v
        .import(
            "P",
            Area::Uploads,
            std::slice::from_ref(&src),
            &ImportOptions::default(),
            &mut |e| match e {
                ImportEvent::FileDone(f) => done.push(f.path.clone()),
                ImportEvent::Progress { overall_done, .. } => {
                    assert!(*overall_done >= last_overall, "progress never goes back");
                    last_overall = *overall_done;
                }
                _ => {}
            },
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(rep.imported.len(), 41);
    let mut sorted = done.clone();
    sorted.sort();
    assert_eq!(
        done, sorted,
        "files are committed and reported in plan order"
    );
    assert_eq!(
        blob_count(&dir),
        3,
        "a pack for each of the two groups of small files, a blob for the big one"
    );
    assert_eq!(tmp_count(&dir), 0);
    let area_out = t.path().join("out");
    v.export_area(
        "P",
        Area::Uploads,
        &area_out,
        &ExportOptions::default(),
        &mut no_progress(),
        &AtomicBool::new(false),
    )
    .unwrap();
    for i in 0..40u8 {
        let name = format!("f{i:02}.txt");
        assert_eq!(
            fs::read(area_out.join("many").join(&name)).unwrap(),
            bytes(100 + i as usize * 37, i),
            "{name}"
        );
    }
}

#[test]
fn group_commit_records_one_audit_event_per_file_and_keeps_the_chain_valid() {
    use labvault_core::audit::AuditFilter;
    use labvault_core::governance::audit::Outcome;
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("g");
    // Three groups (two full ones and a partial one) plus a file refused on its own.
    let g = labvault_core::IMPORT_GROUP_FILES;
    let n = g[0] + g[1] + 44;
    for i in 0..n {
        write(
            &src.join(format!("f{i:04}.txt")),
            &bytes(1 + i * 13, i as u8),
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"f0100-\xff.txt");
        write(&src.join(bad), b"non-utf8 name");
    }
    let rep = import(&v, "P", Area::Uploads, std::slice::from_ref(&src));
    assert_eq!(rep.imported.len(), n);
    let evs = v
        .audit_query(
            &AuditFilter {
                action_prefix: Some("data.import".into()),
                ..Default::default()
            },
            10_000,
            None,
        )
        .unwrap()
        .events;
    let ok: Vec<_> = evs
        .iter()
        .filter(|e| e.result == Outcome::Success)
        .collect();
    assert_eq!(ok.len(), n, "exactly one success event per imported file");
    let mut resources: Vec<&str> = ok.iter().map(|e| e.resource.as_str()).collect();
    resources.sort_unstable();
    resources.dedup();
    assert_eq!(resources.len(), n, "each event names its own item");
    for f in &rep.imported {
        assert!(
            resources
                .iter()
                .any(|r| r.ends_with(&format!("/item/{}", f.item_id))),
            "no event for {}",
            f.path
        );
    }
    #[cfg(unix)]
    assert_eq!(
        evs.iter().filter(|e| e.result == Outcome::Failure).count(),
        rep.failed.len()
    );
    let chains = v.audit_verify(&mut |_, _| {}).unwrap();
    assert!(chains.iter().all(|c| c.complete), "{chains:?}");
}

/// Small files of an area export go in groups (decrypt all, one sync, renames, one fsync per
/// directory): a multi-group export with a big file in between round-trips byte for byte,
/// reports progress up to the total, and leaves no temp file.
#[test]
fn area_export_in_groups_round_trips_and_leaves_no_temp_file() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("G").unwrap();
    let src = t.path().join("src");
    let n = 260; // more than one export group (256 files)
    for i in 0..n {
        // Sizes 0..600 bytes, spread over a few directories.
        write(
            &src.join(format!("d{}/f{i:04}.dat", i % 3)),
            &bytes(i * 13 % 600, i as u8),
        );
    }
    let big = bytes(1024 * 1024 + 7, 9);
    write(&src.join("d1/m-big.bin"), &big);
    let rep = import(&v, "G", Area::Uploads, std::slice::from_ref(&src));
    assert_eq!(rep.imported.len(), n + 1);
    let out = t.path().join("out");
    let mut last = (0u64, 0u64);
    let files = v
        .export_area(
            "G",
            Area::Uploads,
            &out,
            &ExportOptions::default(),
            &mut |p: &labvault_core::TransferProgress<'_>| {
                assert!(p.overall_done >= last.0, "progress never goes back");
                last = (p.overall_done, p.overall_total);
            },
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(files.exported.len(), n + 1);
    assert_eq!(last.0, last.1, "progress reaches the total");
    for i in 0..n {
        let rel = format!("src/d{}/f{i:04}.dat", i % 3);
        assert_eq!(
            fs::read(out.join(&rel)).unwrap(),
            fs::read(src.join(&rel[4..])).unwrap()
        );
    }
    assert_eq!(fs::read(out.join("src/d1/m-big.bin")).unwrap(), big);
    assert_eq!(all_files(&out).len(), n + 1, "no temp file left");
}

/// Imports `names` (in order) from `src/d`, one import per file, and returns each file's blob
/// path, so a test can damage one particular item.
fn import_one_by_one(
    v: &mut Vault,
    src: &std::path::Path,
    vault_dir: &std::path::Path,
    names: &[String],
) -> Vec<PathBuf> {
    let mut blobs = Vec::new();
    for name in names {
        let before = all_files(&vault_dir.join("blobs"));
        v.import(
            "G",
            Area::Uploads,
            &[src.join(name)],
            &ImportOptions {
                dest_prefix: Some("d".into()),
                ..Default::default()
            },
            &mut |_: &ImportEvent<'_>| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        let new: Vec<_> = all_files(&vault_dir.join("blobs"))
            .into_iter()
            .filter(|b| !before.contains(b))
            .collect();
        assert_eq!(new.len(), 1);
        blobs.push(new[0].clone());
    }
    blobs
}

/// A tampered item in the middle of an export group: it is reported (naming it) and leaves
/// no output file and no temp file; every other item is exported intact.
#[test]
fn area_export_group_skips_a_tampered_item_and_exports_the_rest() {
    let (t, dir, mut v, _) = new_vault();
    v.create_project("G").unwrap();
    let src = t.path().join("src");
    let names: Vec<String> = (0..10).map(|i| format!("f{i:02}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        write(&src.join(n), format!("content of file {i}").as_bytes());
    }
    let blobs = import_one_by_one(&mut v, &src, &dir, &names);
    // Flip a bit in the ciphertext of f05.
    let mut b = fs::read(&blobs[5]).unwrap();
    let last = b.len() - 20;
    b[last] ^= 1;
    fs::write(&blobs[5], b).unwrap();

    let out = t.path().join("out");
    let r = v
        .export_area(
            "G",
            Area::Uploads,
            &out,
            &ExportOptions::default(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(r.failed.len(), 1, "{:?}", r.failed);
    assert_eq!(r.failed[0].code, ErrorCode::Tampered);
    assert_eq!(r.failed[0].path, "uploads/d/f05.txt");
    assert!(
        r.failed[0].message.contains("G/uploads/d/f05.txt"),
        "{:?}",
        r.failed[0]
    );
    assert_eq!(r.exported.len(), 9);
    let mut left: Vec<String> = all_files(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want = names.clone();
    want.remove(5);
    assert_eq!(left, want, "every item but the bad one, no temp file");
    for (i, n) in names.iter().enumerate().filter(|(i, _)| *i != 5) {
        assert_eq!(
            fs::read(out.join("d").join(n)).unwrap(),
            format!("content of file {i}").as_bytes()
        );
    }
}

/// A missing blob, an existing destination file and a file where a folder is needed each fail
/// their own item only (reported with the reason), everything else is exported; a retry after
/// fixing the cause completes the export.
#[test]
fn area_export_reports_each_item_it_cannot_write_and_exports_the_rest() {
    let (t, dir, mut v, _) = new_vault();
    v.create_project("G").unwrap();
    let src = t.path().join("src");
    let names: Vec<String> = (0..6).map(|i| format!("f{i:02}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        write(&src.join(n), format!("file {i}").as_bytes());
    }
    let blobs = import_one_by_one(&mut v, &src, &dir, &names);

    // An existing file at f03: not clobbered, reported; the five others exported.
    let out = t.path().join("out");
    write(&out.join("d/f03.txt"), b"user's own file");
    let export = |v: &mut Vault, out: &std::path::Path| {
        v.export_area(
            "G",
            Area::Uploads,
            out,
            &ExportOptions::default(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
    };
    let r = export(&mut v, &out).unwrap();
    assert_eq!(
        r.failed
            .iter()
            .map(|f| (f.path.as_str(), f.code))
            .collect::<Vec<_>>(),
        vec![("uploads/d/f03.txt", ErrorCode::AlreadyExists)]
    );
    assert_eq!(r.exported.len(), 5);
    assert_eq!(fs::read(out.join("d/f03.txt")).unwrap(), b"user's own file");
    assert_eq!(
        all_files(&out).len(),
        6,
        "five exported plus the user's file, no temp file"
    );

    // A missing blob at f04 (fresh destination): reported, the five others exported.
    fs::remove_file(&blobs[4]).unwrap();
    let out2 = t.path().join("out2");
    let r = export(&mut v, &out2).unwrap();
    assert_eq!(
        r.failed
            .iter()
            .map(|f| (f.path.as_str(), f.code))
            .collect::<Vec<_>>(),
        vec![("uploads/d/f04.txt", ErrorCode::NotFound)]
    );
    assert_eq!(all_files(&out2).len(), 5);

    // A file where the export needs the folder `d`: every item under it is reported.
    let out3 = t.path().join("out3");
    write(&out3.join("d"), b"a file named d");
    let r = export(&mut v, &out3).unwrap();
    assert!(r.exported.is_empty());
    assert_eq!(r.failed.len(), 6, "{:?}", r.failed);
    assert!(r
        .failed
        .iter()
        .all(|f| f.code == ErrorCode::AlreadyExists || f.code == ErrorCode::NotFound));
}

/// Cancelling an area export in the middle of a group stops it with `cancelled`: what was
/// exported is intact, and no temp file is left behind.
#[test]
fn cancelled_area_export_leaves_no_temp_file() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("G").unwrap();
    let src = t.path().join("src");
    for i in 0..40 {
        write(&src.join(format!("f{i:02}")), &bytes(5000, i));
    }
    import(&v, "G", Area::Uploads, std::slice::from_ref(&src));
    let out = t.path().join("out");
    let cancel = AtomicBool::new(false);
    let e = v
        .export_area(
            "G",
            Area::Uploads,
            &out,
            &ExportOptions::default(),
            &mut |_: &labvault_core::TransferProgress<'_>| cancel.store(true, Ordering::Relaxed),
            &cancel,
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Cancelled);
    let left = all_files(&out);
    assert!(left.len() < 40, "stopped early");
    for p in &left {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".labvault-export-"),
            "temp file {name} left"
        );
        assert_eq!(fs::read(p).unwrap(), fs::read(src.join(&name)).unwrap());
    }
}

/// Every file under `blobs/` with its bytes' SHA-256, to show a rotation re-encrypts none.
fn blob_files(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
    use sha2::{Digest, Sha256};
    let mut v: Vec<_> = all_files(&dir.join("blobs"))
        .into_iter()
        .map(|p| {
            let h = hex::encode(Sha256::digest(fs::read(&p).unwrap()));
            (p, h)
        })
        .collect();
    v.sort();
    v
}

fn a_vault_with_content() -> (tempfile::TempDir, PathBuf, String, Vec<(String, Vec<u8>)>) {
    let (t, dir, v, rk) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("src");
    let files = vec![
        ("small.txt".to_string(), b"small readings".to_vec()),
        ("big.bin".to_string(), bytes(3 << 20, 7)),
    ];
    for (n, b) in &files {
        write(&src.join(n), b);
    }
    import(
        &v,
        "P",
        Area::Uploads,
        &files.iter().map(|(n, _)| src.join(n)).collect::<Vec<_>>(),
    );
    v.sync_device().unwrap();
    v.sync_make_identity("user-1").unwrap();
    drop(v);
    (t, dir, rk, files)
}

fn contents(v: &Vault) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = v
        .list(&ListFilter::default())
        .unwrap()
        .into_iter()
        .map(|i| {
            let h = v.view_open(&i.id).unwrap();
            (i.path.clone(), v.view_read(&h, 0, i.size).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn root_key_rotation_rewraps_keys_rekeys_the_catalog_and_reencrypts_no_file() {
    let (_t, dir, old_rk, mut files) = a_vault_with_content();
    files.sort();
    let v = unlock(&dir);
    let device = v.sync_device().unwrap();
    let identity = v.sync_identity().unwrap().unwrap();
    let blobs = blob_files(&dir);
    let kf =
        labvault_crypto::KeyFile::from_bytes(&fs::read(dir.join("vault.key")).unwrap()).unwrap();
    let old_catalog_key = kf.unlock_with_passphrase(&pass()).unwrap().catalog_key();

    // Refused while the vault is open (here by this very handle), and with a wrong passphrase.
    let e = Vault::rotate_root_key_at(&dir, &pass(), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::VaultBusy, "{e}");
    drop(v);
    let e = Vault::rotate_root_key_at(&dir, &Passphrase::new("nope".into()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::WrongPassphrase);

    let (v, new_rk) = Vault::rotate_root_key_at(&dir, &pass(), opts()).unwrap();
    assert_ne!(new_rk.as_str(), old_rk, "a new recovery key");
    assert_eq!(contents(&v), files, "every file reads as before");
    assert!(verify(&v).is_ok());
    assert_eq!(
        blob_files(&dir),
        blobs,
        "no blob file was re-encrypted or moved"
    );
    // The device's and the user's key pairs are the same keys, re-wrapped.
    assert_eq!(v.sync_device().unwrap().keys, device.keys);
    assert_eq!(v.sync_identity().unwrap().unwrap(), identity);
    let sig = v.sync_sign("rekey-test", b"statement").unwrap();
    device
        .keys
        .verify("rekey-test", b"statement", &sig)
        .expect("the device key still signs");
    // Recorded, and the audit chain still verifies across the rotation.
    let mut actions = Vec::new();
    v.audit_for_each(&Default::default(), |e| {
        actions.push((e.action.to_string(), e.detail.clone()));
        Ok(())
    })
    .unwrap();
    let rekey = actions
        .iter()
        .find(|(a, _)| a == "auth.rekey")
        .expect("auth.rekey");
    assert!(rekey.1.contains("files_reencrypted=0"), "{rekey:?}");
    v.audit_verify(&mut |_, _| {}).unwrap();
    drop(v);
    // The old root key is gone: its catalog key no longer opens the catalog, the old recovery
    // key no longer unlocks; the new one and the passphrase do.
    let stale = labvault_core::catalog::open_raw(&dir.join("catalog.db"), &old_catalog_key)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        });
    assert!(stale.is_err(), "the catalog is re-keyed");
    let e = Vault::unlock(
        &dir,
        Unlock::RecoveryKey(&RecoveryKey::parse(&old_rk).unwrap()),
        opts(),
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::WrongRecoveryKey);
    let v = Vault::unlock(
        &dir,
        Unlock::RecoveryKey(&RecoveryKey::parse(&new_rk).unwrap()),
        opts(),
    )
    .unwrap();
    assert_eq!(contents(&v), files);
    assert!(!dir.join("vault.key.next").exists() && !dir.join("catalog.db.rekey").exists());
}

#[test]
fn an_interrupted_root_key_rotation_is_rolled_back_or_finished_at_the_next_unlock() {
    use labvault_core::RekeyStop;
    for stop in [
        RekeyStop::AfterCopy,
        RekeyStop::AfterNextKeyFile,
        RekeyStop::AfterCatalog,
    ] {
        let (_t, dir, old_rk, mut files) = a_vault_with_content();
        files.sort();
        let e = Vault::rotate_root_key_stopping(&dir, &pass(), opts(), stop).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Cancelled, "{stop:?}");
        let old = RecoveryKey::parse(&old_rk).unwrap();
        if stop == RekeyStop::AfterCatalog {
            // Past the point of no return: only the passphrase can finish it, and says so.
            let e = Vault::unlock(&dir, Unlock::RecoveryKey(&old), opts()).unwrap_err();
            assert!(e.to_string().contains("interrupted"), "{e}");
        }
        let v = unlock(&dir);
        assert_eq!(contents(&v), files, "{stop:?}: nothing lost");
        assert!(verify(&v).is_ok(), "{stop:?}");
        v.audit_verify(&mut |_, _| {}).unwrap();
        drop(v);
        assert!(
            !dir.join("vault.key.next").exists() && !dir.join("catalog.db.rekey").exists(),
            "{stop:?}: no leftovers"
        );
        let with_old = Vault::unlock(&dir, Unlock::RecoveryKey(&old), opts());
        if stop == RekeyStop::AfterCatalog {
            assert_eq!(
                with_old.unwrap_err().code(),
                ErrorCode::WrongRecoveryKey,
                "finished: the old recovery key is retired"
            );
        } else {
            with_old.expect("rolled back: the old keys stay");
        }
    }
}

#[test]
fn a_lost_key_file_is_named_and_init_refuses_to_destroy_the_vault() {
    let (t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("src/a.txt");
    write(&src, b"keep me");
    import(&v, "P", Area::Uploads, &[src]);
    drop(v);
    let key = dir.join("vault.key");
    let backup = t.path().join("vault.key.backup");
    fs::copy(&key, &backup).unwrap();
    fs::remove_file(&key).unwrap();
    let catalog = fs::read(dir.join("catalog.db")).unwrap();

    let e = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptKeyFile, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("lost its key file vault.key") && msg.contains("backup"),
        "{msg}"
    );
    assert!(msg.contains("recovery key cannot open"), "{msg}");
    // Creating a vault there is refused: the old catalog and blobs stay as they were.
    let e = Vault::create(&dir, &pass(), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptKeyFile, "{e}");
    assert_eq!(fs::read(dir.join("catalog.db")).unwrap(), catalog);
    assert!(!key.exists());
    // The key file restored from a backup opens everything again.
    fs::copy(&backup, &key).unwrap();
    let v = unlock(&dir);
    assert_eq!(v.list(&ListFilter::default()).unwrap().len(), 1);
    assert!(verify(&v).is_ok());
}

#[test]
fn a_truncated_catalog_is_named_and_never_replaced() {
    let (_t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    drop(v);
    let cat = dir.join("catalog.db");
    for side in ["catalog.db-wal", "catalog.db-shm"] {
        let _ = fs::remove_file(dir.join(side));
    }
    fs::write(&cat, b"").unwrap();
    let e = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog);
    assert!(e.to_string().contains("is empty (0 bytes)"), "{e}");
    assert!(!e.to_string().contains("another vault"), "{e}");
    assert_eq!(fs::metadata(&cat).unwrap().len(), 0, "nothing was written");
    let again = Vault::unlock(&dir, Unlock::Passphrase(&pass()), opts()).unwrap_err();
    assert_eq!(again.code(), ErrorCode::CorruptCatalog);
}

/// Mounts a tmpfs of `size` at `mnt` (a small disk to fill). Without the privilege to mount,
/// the test is skipped with a banner, except under CI or README's test command
/// (`LABVAULT_STRICT_TESTS`), where it fails: it must not pass without running.
fn small_disk(mnt: &std::path::Path, size: &str) -> bool {
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let strict = ["CI", "LABVAULT_STRICT_TESTS"]
            .iter()
            .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"));
        assert!(
            !strict,
            "cannot mount a tmpfs at {} (run as root): this full-disk test must run",
            mnt.display()
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
    }
    ok
}

#[test]
fn export_never_writes_through_a_symlinked_folder_inside_the_destination() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let src = t.path().join("src");
    write(&src.join("sub/data.csv"), b"secret rows");
    import(&v, "P", Area::Uploads, std::slice::from_ref(&src));
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let dest = t.path().join("dest");
    fs::create_dir_all(dest.join("src")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("src/sub")).unwrap();
    let r = v
        .export_area(
            "P",
            Area::Uploads,
            &dest,
            &ExportOptions::default(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(r.failed.len(), 1, "{:?}", r.failed);
    assert_eq!(r.failed[0].code, ErrorCode::InvalidArgument);
    assert!(
        r.failed[0].message.contains("symbolic link"),
        "{:?}",
        r.failed[0]
    );
    assert!(
        all_files(&outside).is_empty(),
        "nothing written outside: {:?}",
        all_files(&outside)
    );
}

#[test]
fn import_refuses_a_file_and_a_folder_of_the_same_name() {
    let (t, _dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    let a = t.path().join("a");
    write(&a.join("conf"), b"a file named conf");
    import(
        &v,
        "P",
        Area::Uploads,
        std::slice::from_ref(&a.join("conf")),
    );
    // `conf/y` under the file `conf`: refused, naming the clash; `other` still imported.
    let b = t.path().join("b");
    write(&b.join("conf/y"), b"y");
    write(&b.join("other.txt"), b"fine");
    let rep = v
        .import(
            "P",
            Area::Uploads,
            &[b.join("conf"), b.join("other.txt")],
            &ImportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(rep.imported.len(), 1);
    assert_eq!(rep.failed.len(), 1, "{:?}", rep.failed);
    assert_eq!(rep.failed[0].code, ErrorCode::AlreadyExists);
    assert!(
        rep.failed[0].message.contains("conf is a file"),
        "{:?}",
        rep.failed[0]
    );
    // The other way round: a file `deep` where `deep/x` is already an item (a folder).
    write(&t.path().join("c/deep/x"), b"x");
    import(
        &v,
        "P",
        Area::Uploads,
        std::slice::from_ref(&t.path().join("c/deep")),
    );
    write(&t.path().join("d/deep"), b"a file named deep");
    let rep = v
        .import(
            "P",
            Area::Uploads,
            &[t.path().join("d/deep")],
            &ImportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(rep.imported.len(), 0);
    assert!(
        rep.failed[0].message.contains("deep is a folder"),
        "{:?}",
        rep.failed[0]
    );
    // So an area export writes everything.
    let r = v
        .export_area(
            "P",
            Area::Uploads,
            &t.path().join("out"),
            &ExportOptions::default(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.exported.len(), 3);
}
