//! Small-file import benchmark (issue 2: many small files).
//!
//! `cargo run --release -p labvault-core --example import_bench -- SRC_DIR VAULT_DIR`
//!
//! Creates a fresh vault at VAULT_DIR (must not exist; floor KDF), imports SRC_DIR (a tree of
//! files, e.g. made by `bench/` scripts or `python3` one-liners) into project `bench`/`uploads`
//! and prints files/s and MB/s of the import alone (vault creation excluded).

use labvault_core::{Area, ImportEvent, ImportOptions, KdfParams, Passphrase, Vault, VaultOptions};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: import_bench SRC_DIR VAULT_DIR");
        std::process::exit(2);
    }
    let (src, dir) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let opts = VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        ..VaultOptions::default()
    };
    let pass = Passphrase::new("benchmark passphrase".to_string());
    let (mut v, _rk) = Vault::create(&dir, &pass, opts).expect("create vault");
    v.create_project("bench").expect("create project");
    let (mut files, mut bytes) = (0u64, 0u64);
    let t = Instant::now();
    let rep = v
        .import(
            "bench",
            Area::Uploads,
            &[src],
            &ImportOptions::default(),
            &mut |e| {
                if let ImportEvent::FileDone(f) = e {
                    files += 1;
                    bytes += f.size;
                }
            },
            &AtomicBool::new(false),
        )
        .expect("import");
    let s = t.elapsed().as_secs_f64();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    println!(
        "labvault import: {files} files, {:.1} MB in {s:.2} s = {:.0} files/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        files as f64 / s,
        bytes as f64 / 1e6 / s
    );
}
