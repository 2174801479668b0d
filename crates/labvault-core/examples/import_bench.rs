//! Small-file import benchmark (issue 2: many small files).
//!
//! `cargo run --release -p labvault-core --example import_bench -- SRC_DIR VAULT_DIR`
//! `cargo run --release -p labvault-core --example import_bench -- --catalog WORK_DIR`
//! (the second form times the catalog rows of a 10,000-file import alone, in groups of 256
//! per transaction, keyed like the vault's catalog (cipher format v2), with SQLCipher's
//! `cipher_memory_security` off (as the vault) or, with a third argument `ON`, on: one setting
//! per process, as SQLCipher can only switch it on, process-wide).
//!
//! Creates a fresh vault at VAULT_DIR (must not exist; floor KDF), imports SRC_DIR (a tree of
//! files, e.g. made by `bench/` scripts or `python3` one-liners) into project `bench`/`uploads`
//! and prints files/s and MB/s of the import alone (vault creation excluded), then the
//! per-file time budget of each import phase (open, encrypt, sync, rename, dir fsync,
//! catalog, report).

use labvault_core::{Area, ImportEvent, ImportOptions, KdfParams, Passphrase, Vault, VaultOptions};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 3 && args[1] == "--catalog" {
        catalog_bench(
            PathBuf::from(&args[2]),
            args.get(3).map_or("OFF", |s| s.as_str()),
        );
        return;
    }
    if args.len() != 3 {
        eprintln!("usage: import_bench SRC_DIR VAULT_DIR");
        std::process::exit(2);
    }
    let (src, dir) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let opts = || VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        ..VaultOptions::default()
    };
    let pass = Passphrase::new("benchmark passphrase".to_string());
    let (mut v, _rk) = Vault::create(&dir, &pass, opts()).expect("create vault");
    v.create_project("bench").expect("create project");
    if std::env::var_os("UNLOCK").is_some() {
        // As the CLI does: a fresh process unlocks an existing vault.
        drop(v);
        v = Vault::unlock(&dir, labvault_core::Unlock::Passphrase(&pass), opts()).expect("unlock");
    }
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
    // Per-file budget of the import protocol (summed over threads for the per-file phases).
    println!("per-file budget (µs per file; worker phases are summed over threads):");
    for (name, d) in labvault_core::transfer::take_import_phase_times() {
        println!(
            "  {name:<40} {:8.1}",
            d.as_secs_f64() * 1e6 / files.max(1) as f64
        );
    }
}

/// Catalog cost per imported file, outside the vault: the same schema, pragmas and row shapes
/// as an import (items + item_versions + one audit row per file, 256 per transaction).
fn catalog_bench(work: PathBuf, memsec: &str) {
    use rusqlite::params;
    // UPSERT=1: the item row as the vault writes it (one upsert with RETURNING); else a
    // SELECT of the active path plus an INSERT.
    let upsert = std::env::var_os("UPSERT").is_some();
    std::fs::create_dir_all(&work).expect("work dir");
    {
        let path = work.join(format!("catalog-{memsec}.db"));
        let _ = std::fs::remove_file(&path);
        // Keyed and set up as the vault's catalog (cipher format v2, memory security off).
        let root = labvault_crypto::RootKey::generate();
        let conn = labvault_core::catalog::open_raw(&path, &root.catalog_key()).expect("open");
        if memsec.eq_ignore_ascii_case("ON") {
            conn.execute_batch("PRAGMA cipher_memory_security = ON;")
                .expect("memory security");
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
        )
        .expect("pragmas");
        if let Ok(kib) = std::env::var("CACHE_KIB") {
            conn.execute_batch(&format!("PRAGMA cache_size = -{kib};"))
                .expect("cache_size");
        }
        for m in labvault_core::catalog::MIGRATIONS {
            conn.execute_batch(m).expect("migration");
        }
        conn.execute(
            "INSERT INTO projects(id, name, wrapped_key, created_at, created_by) VALUES ('p', 'bench', x'00', 0, 'u')",
            [],
        )
        .expect("project");
        let mut conn = conn;
        let t0 = Instant::now();
        let mut block = Instant::now();
        let mut line = String::new();
        for g in 0..40 {
            let tx = conn.transaction().expect("tx");
            for k in 0..250 {
                let n = g * 250 + k;
                let path = format!("d{:03}/f{n:05}.dat", n / 100);
                let id = if upsert {
                    tx.prepare_cached(
                        "INSERT INTO items(id, project_id, area, path, media_type, data_type, created_by, created_at, updated_at, state, current_version)
                         VALUES (?1, 'p', 'uploads', ?2, 'application/octet-stream', 'research_data', 'user', 1, 1, 'active', 1)
                         ON CONFLICT(project_id, area, path) WHERE state = 'active'
                         DO UPDATE SET current_version = current_version + 1 RETURNING id, current_version",
                    )
                    .unwrap()
                    .query_row(params![uuid::Uuid::new_v4().to_string(), path], |r| {
                        r.get::<_, String>(0)
                    })
                    .unwrap()
                } else {
                    let _: Option<String> = tx
                        .prepare_cached("SELECT id FROM items WHERE project_id = ?1 AND area = 'uploads' AND path = ?2 AND state = 'active'")
                        .unwrap()
                        .query_row(params!["p", path], |r| r.get(0))
                        .ok();
                    let id = uuid::Uuid::new_v4().to_string();
                    tx.prepare_cached("INSERT INTO items(id, project_id, area, path, media_type, data_type, created_by, created_at, updated_at, state, current_version) VALUES (?1, 'p', 'uploads', ?2, 'application/octet-stream', 'research_data', 'user', 1, 1, 'active', 1)")
                        .unwrap()
                        .execute(params![id, path])
                        .unwrap();
                    id
                };
                tx.prepare_cached("INSERT INTO item_versions(item_id, version, blob_id, wrapped_data_key, size, sha256, created_at, created_by) VALUES (?1, 1, ?2, ?3, 1000, ?4, 1, 'user')")
                    .unwrap()
                    .execute(params![id, uuid::Uuid::new_v4().simple().to_string(), vec![7u8; 61], "ab".repeat(32)])
                    .unwrap();
                let seq: i64 = tx
                    .prepare_cached(
                        "SELECT coalesce(max(seq), 0) FROM audit_events WHERE device_id = 'dev'",
                    )
                    .unwrap()
                    .query_row([], |r| r.get(0))
                    .unwrap();
                tx.prepare_cached("INSERT INTO audit_events(device_id, seq, ts, user, action, resource, ip_address, user_agent, result, detail, v, prev_hash, hash) VALUES ('dev', ?1, ?2, 'user', 'data.import', ?3, '', 'bench', 'success', 'area=uploads version=1', 1, ?4, ?4)")
                    .unwrap()
                    .execute(params![seq + 1, n as i64, format!("item:p/{id}"), vec![1u8; 32]])
                    .unwrap();
            }
            tx.commit().expect("commit");
            if g % 8 == 7 {
                line += &format!(" {:.0}", block.elapsed().as_secs_f64() * 1e6 / 2000.0);
                block = Instant::now();
            }
        }
        println!(
            "catalog rows, cipher_memory_security = {memsec}, upsert = {upsert}: {:.0} µs per file overall; per 2,000-file block:{line}",
            t0.elapsed().as_secs_f64() * 1e6 / 10_000.0
        );
    }
}
