//! Small files are stored as records of one pack file per import group: each record is still a
//! blob of its own (own data key and file id, tamper-evident on its own), and erasing an item
//! removes its record's bytes from the pack.

mod common;

use common::*;
use labvault_core::vault::BLOBS_UNSETTLED;
use labvault_core::{Area, ErrorCode, ImportReport, Vault};
use std::fs;
use std::path::{Path, PathBuf};

/// Imports `n` small files `f00.dat`… (each a distinct, recognisable content) as one group.
fn import_small(v: &mut Vault, t: &Path, n: usize) -> (ImportReport, Vec<Vec<u8>>) {
    let src = t.join("src");
    let mut contents = Vec::new();
    for i in 0..n {
        let mut c = format!("PLAINTEXT-MARKER-{i:02}-").repeat(40).into_bytes();
        c.extend(bytes(1000 + 37 * i, i as u8));
        write(&src.join(format!("f{i:02}.dat")), &c);
        contents.push(c);
    }
    v.create_project("P").unwrap();
    let rep = import(v, "P", Area::Uploads, &[src]);
    assert_eq!(rep.imported.len(), n);
    (rep, contents)
}

/// The only pack (or blob) file of the vault.
fn the_pack(dir: &Path) -> PathBuf {
    let files = all_files(&dir.join("blobs"));
    assert_eq!(files.len(), 1, "one pack for the group: {files:?}");
    files[0].clone()
}

/// Byte ranges of the records in a pack, found by their blob headers' magic.
fn records(pack: &[u8]) -> Vec<(usize, usize)> {
    let m = labvault_crypto::MAGIC;
    let starts: Vec<usize> = (0..pack.len().saturating_sub(m.len() - 1))
        .filter(|&i| pack[i..i + m.len()] == m)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| (s, starts.get(k + 1).copied().unwrap_or(pack.len())))
        .collect()
}

#[test]
fn a_group_of_small_files_is_one_pack_of_independent_records() {
    let (t, dir, mut v, _) = new_vault();
    let (rep, contents) = import_small(&mut v, t.path(), 12);
    let pack = fs::read(the_pack(&dir)).unwrap();
    assert_eq!(
        records(&pack).len(),
        12,
        "one record per file, in import order"
    );
    for (f, c) in rep.imported.iter().zip(&contents) {
        let p = export_one(&v, &f.item_id, &t.path().join("out")).unwrap();
        assert_eq!(&fs::read(p).unwrap(), c);
    }
    assert!(verify(&v).is_ok());
}

#[test]
fn a_tampered_record_names_its_item_and_no_other() {
    let (t, dir, mut v, _) = new_vault();
    let (rep, contents) = import_small(&mut v, t.path(), 8);
    let path = the_pack(&dir);
    let mut pack = fs::read(&path).unwrap();
    let (s, e) = records(&pack)[5];
    pack[(s + e) / 2] ^= 0x01;
    fs::write(&path, &pack).unwrap();

    let report = verify(&v);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.code, ErrorCode::Tampered);
    assert_eq!(p.item_id.as_deref(), Some(rep.imported[5].item_id.as_str()));

    let out = t.path().join("out");
    let err = export_one(&v, &rep.imported[5].item_id, &out).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Tampered);
    assert!(err.to_string().contains("f05.dat"), "{err}");
    for k in [4, 6] {
        let p = export_one(&v, &rep.imported[k].item_id, &out).unwrap();
        assert_eq!(fs::read(p).unwrap(), contents[k]);
    }
}

#[test]
fn a_cut_pack_names_the_records_it_lost() {
    let (t, dir, mut v, _) = new_vault();
    let (rep, _) = import_small(&mut v, t.path(), 6);
    let path = the_pack(&dir);
    let pack = fs::read(&path).unwrap();
    let (s, e) = records(&pack)[4];
    fs::write(&path, &pack[..(s + e) / 2]).unwrap();

    let report = verify(&v);
    let mut named: Vec<&str> = report
        .problems
        .iter()
        .map(|p| p.item_id.as_deref().unwrap())
        .collect();
    named.sort_unstable();
    let mut lost = vec![
        rep.imported[4].item_id.as_str(),
        rep.imported[5].item_id.as_str(),
    ];
    lost.sort_unstable();
    assert_eq!(named, lost, "{:?}", report.problems);
    assert!(report
        .problems
        .iter()
        .all(|p| matches!(p.code, ErrorCode::Truncated | ErrorCode::Tampered)));
}

#[test]
fn erasing_a_packed_item_removes_its_record_bytes_and_keeps_its_neighbours() {
    let (t, dir, mut v, _) = new_vault();
    let (rep, contents) = import_small(&mut v, t.path(), 10);
    let path = the_pack(&dir);
    let before = fs::read(&path).unwrap();
    let recs = records(&before);

    v.purge(&rep.imported[3].item_id, "right to deletion")
        .unwrap();
    let after = fs::read(&path).unwrap();
    let (s, e) = recs[3];
    assert!(
        after[s..e].iter().all(|&b| b == 0),
        "the erased record's bytes are gone from the pack"
    );
    assert_eq!(after[..s], before[..s]);
    assert_eq!(after[e..], before[e..]);
    for k in [2, 4, 9] {
        let p = export_one(&v, &rep.imported[k].item_id, &t.path().join("out")).unwrap();
        assert_eq!(fs::read(p).unwrap(), contents[k]);
    }
    assert!(verify(&v).is_ok());

    // Putting the old bytes back does not bring the erased item back: its key is gone.
    fs::write(&path, &before).unwrap();
    let err = export_one(&v, &rep.imported[3].item_id, &t.path().join("out2")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Erased);

    for (k, f) in rep.imported.iter().enumerate() {
        if k != 3 {
            v.purge(&f.item_id, "right to deletion").unwrap();
        }
    }
    assert_eq!(blob_count(&dir), 0, "the pack goes with its last record");
    assert!(verify(&v).is_ok());
}

#[test]
fn erased_record_bytes_a_crash_left_in_a_pack_are_removed_at_the_next_unlock() {
    let (t, dir, mut v, _) = new_vault();
    let (rep, contents) = import_small(&mut v, t.path(), 5);
    let path = the_pack(&dir);
    let before = fs::read(&path).unwrap();
    let (s, e) = records(&before)[1];
    v.purge(&rep.imported[1].item_id, "right to deletion")
        .unwrap();
    drop(v);
    // What a crash between the erasure's commit and the removal of the bytes leaves: the old
    // pack content, and the marker that the erasure set before its commit.
    fs::write(&path, &before).unwrap();
    fs::write(dir.join(BLOBS_UNSETTLED), b"").unwrap();

    let v = unlock(&dir);
    let after = fs::read(&path).unwrap();
    assert!(after[s..e].iter().all(|&b| b == 0), "swept at unlock");
    assert!(!dir.join(BLOBS_UNSETTLED).exists());
    let p = export_one(&v, &rep.imported[2].item_id, &t.path().join("out")).unwrap();
    assert_eq!(fs::read(p).unwrap(), contents[2]);
    assert!(verify(&v).is_ok());
}

#[test]
fn no_plaintext_of_packed_files_is_in_the_vault() {
    let (t, dir, mut v, _) = new_vault();
    import_small(&mut v, t.path(), 10);
    for f in all_files(&dir) {
        let b = fs::read(&f).unwrap();
        assert!(
            !b.windows(16).any(|w| w == b"PLAINTEXT-MARKER"),
            "plaintext in {}",
            f.display()
        );
    }
}

#[test]
fn a_packed_item_can_be_previewed_by_range_and_a_tampered_record_is_refused() {
    let (t, dir, mut v, _) = new_vault();
    let (rep, contents) = import_small(&mut v, t.path(), 4);
    let h = v.view_open(&rep.imported[2].item_id).unwrap();
    assert_eq!(h.size(), contents[2].len() as u64);
    for (off, len) in [
        (0u64, 10u64),
        (100, 500),
        (contents[2].len() as u64 - 7, 100),
    ] {
        let got = v.view_read(&h, off, len).unwrap();
        let end = (off + len).min(contents[2].len() as u64) as usize;
        assert_eq!(got, contents[2][off as usize..end]);
    }
    let path = the_pack(&dir);
    let mut pack = fs::read(&path).unwrap();
    let (_, e) = records(&pack)[2];
    pack[e - 3] ^= 0x80; // inside the final tag of record 2
    fs::write(&path, &pack).unwrap();
    assert_eq!(
        v.view_read(&h, 0, 10).unwrap_err().code(),
        ErrorCode::Tampered
    );
    let other = v.view_open(&rep.imported[1].item_id).unwrap();
    assert_eq!(v.view_read(&other, 0, 16).unwrap(), contents[1][..16]);
}
