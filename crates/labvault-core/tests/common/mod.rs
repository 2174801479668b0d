//! Shared helpers for the vault integration tests.
#![allow(dead_code)]

use labvault_core::{
    Area, ImportEvent, ImportOptions, ImportReport, KdfParams, Passphrase, Unlock, Vault,
    VaultOptions, VerifyReport,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub const PASS: &str = "correct horse battery staple";

pub fn opts() -> VaultOptions {
    VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        actor: "tester".into(),
        user_agent: "labvault-core-tests".into(),
        ..VaultOptions::default()
    }
}

pub fn pass() -> Passphrase {
    Passphrase::new(PASS.to_string())
}

/// A fresh vault in a temp dir: (tempdir guard, vault dir, vault, recovery key display).
pub fn new_vault() -> (tempfile::TempDir, PathBuf, Vault, String) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("vault");
    let (v, rk) = Vault::create(&dir, &pass(), opts()).unwrap();
    (t, dir, v, rk.to_string())
}

pub fn unlock(dir: &Path) -> Vault {
    Vault::unlock(dir, Unlock::Passphrase(&pass()), opts()).unwrap()
}

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// Pseudo-random but deterministic bytes.
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

pub fn import(v: &Vault, project: &str, area: Area, paths: &[PathBuf]) -> ImportReport {
    v.import(
        project,
        area,
        paths,
        &ImportOptions::default(),
        &mut |_: &ImportEvent<'_>| {},
        &AtomicBool::new(false),
    )
    .unwrap()
}

/// Imports `path` into `project`/uploads and cancels at its first progress report (a file of a
/// few MiB reports progress mid-way); returns the import's error.
pub fn import_cancelled_mid_way(v: &Vault, project: &str, path: &Path) -> labvault_core::Error {
    let cancel = AtomicBool::new(false);
    v.import(
        project,
        Area::Uploads,
        &[path.to_path_buf()],
        &ImportOptions::default(),
        &mut |e| {
            if let ImportEvent::Progress { .. } = e {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap_err()
}

/// Exports one item into `dest` (default options, no progress, no cancel).
pub fn export_one(v: &Vault, id: &str, dest: &Path) -> labvault_core::Result<PathBuf> {
    v.export_item(
        id,
        dest,
        &labvault_core::ExportOptions::default(),
        &mut no_progress(),
        &AtomicBool::new(false),
    )
}

/// Runs `verify` to the end (no progress, no cancel).
pub fn verify(v: &Vault) -> VerifyReport {
    v.verify(&mut no_progress(), &AtomicBool::new(false))
        .unwrap()
}

pub fn no_progress() -> impl FnMut(&labvault_core::TransferProgress<'_>) {
    |_| {}
}

/// Every regular file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files in `dir/tmp` plus blob files (to check nothing is left behind).
pub fn blob_count(dir: &Path) -> usize {
    all_files(&dir.join("blobs")).len()
}

pub fn tmp_count(dir: &Path) -> usize {
    all_files(&dir.join("tmp")).len()
}
