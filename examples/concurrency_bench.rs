//! How the desktop app answers while it imports: the latency of the calls a user keeps making
//! (`items_page`, a preview range read of another item, `audit_page`, `vault_status`) on an
//! idle vault, then while a large file is imported, through the same code the Tauri commands
//! run (`ops`, `preview::handle`, the shared state), without a window. Also times the import
//! alone and under those readers. Run through `bench/concurrency.sh`; not a test.
//!
//! Env: `IMPORT_MIB` (default 4096) size of the imported file, `WORK` work directory,
//! `SMALL_N` (default 5000) items listed, `PREVIEW_MIB` (default 64) the previewed item.

mod common;

use common::{env_u64, make_file, one_round, print_table, Samples};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use labvault_app::dto::ItemQuery;
use labvault_app::ops;
use labvault_app::state::{lock, Shared};
use labvault_core::Area;

fn import(s: &Arc<Shared>, project: &str, path: &Path, op: &str) -> Duration {
    let t = Instant::now();
    let r = ops::import_paths(
        s,
        project,
        Area::Uploads,
        vec![path.display().to_string()],
        None,
        op,
        Arc::new(|_| {}),
    )
    .unwrap();
    assert_eq!(r.imported.len(), 1);
    t.elapsed()
}

fn main() {
    let import_mib = env_u64("IMPORT_MIB", 4096);
    let small_n = env_u64("SMALL_N", 5000);
    let preview_mib = env_u64("PREVIEW_MIB", 64);
    let work =
        PathBuf::from(std::env::var("WORK").unwrap_or_else(|_| "target/concurrency-bench".into()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("src/small")).unwrap();

    eprintln!("[bench] making {import_mib} MiB to import, {small_n} small files, a {preview_mib} MiB preview item");
    let big = work.join("src/big.bin");
    make_file(&big, import_mib);
    let preview = work.join("src/preview.bin");
    make_file(&preview, preview_mib);
    for i in 0..small_n {
        let d = work.join(format!("src/small/d{:03}", i / 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("f{i:05}.txt")),
            format!("item {i}\n").repeat(20),
        )
        .unwrap();
    }

    let mut shared = Shared::new(None);
    shared.kdf = Some(labvault_core::KdfParams::FLOOR);
    lock(&shared.settings).vault_dir = Some(work.join("vault"));
    let s = Arc::new(shared);
    ops::create(
        &s,
        "concurrency bench passphrase".into(),
        false,
        &|_| Ok(()),
    )
    .unwrap();
    for p in ["listed", "imports", "alone"] {
        ops::project_create(&s, p).unwrap();
    }
    let small: Vec<String> = vec![work.join("src/small").display().to_string()];
    ops::import_paths(
        &s,
        "listed",
        Area::Uploads,
        small,
        None,
        "small",
        Arc::new(|_| {}),
    )
    .unwrap();
    import(&s, "listed", &preview, "preview");
    let page = ops::items_page(
        &s,
        &ItemQuery {
            project: "listed".into(),
            area: None,
            text: Some("preview.bin".into()),
            data_type: None,
            media_type: None,
            states: None,
            sort: None,
        },
        0,
        1,
    )
    .unwrap();
    let preview_item = page.rows[0].id.clone();
    let preview_size = preview_mib << 20;
    // Warm the page cache for the source of both imports alike.
    std::io::copy(
        &mut std::fs::File::open(&big).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();

    // 1. The import alone.
    let alone = import(&s, "alone", &big, "alone");
    eprintln!("[bench] import alone: {:.2} s", alone.as_secs_f64());

    // 2. Idle vault.
    let mut idle = Samples::default();
    for n in 0..300 {
        one_round(&s, &preview_item, preview_size, n, &mut idle);
    }

    // 3. The same calls while the import runs (as fast as they come back, like a busy UI).
    let mut busy = Samples::default();
    let done = Arc::new(AtomicBool::new(false));
    let (s2, big2, done2) = (s.clone(), big.clone(), done.clone());
    let importer = std::thread::spawn(move || {
        let d = import(&s2, "imports", &big2, "busy");
        done2.store(true, Ordering::Release);
        d
    });
    let mut n = 0;
    while !done.load(Ordering::Acquire) {
        one_round(&s, &preview_item, preview_size, n, &mut busy);
        n += 1;
        // A user does not click 1,000 times a second: one round of calls every 20 ms.
        std::thread::sleep(Duration::from_millis(20));
    }
    let under_load = importer.join().unwrap();
    eprintln!(
        "[bench] import with readers: {:.2} s, {} rounds of calls meanwhile",
        under_load.as_secs_f64(),
        busy.items_page.len()
    );

    println!(
        "Import of {import_mib} MiB: alone {:.2} s ({:.0} MB/s), with the readers below {:.2} s ({:.0} MB/s), {:+.1} %",
        alone.as_secs_f64(),
        (import_mib << 20) as f64 / alone.as_secs_f64() / 1e6,
        under_load.as_secs_f64(),
        (import_mib << 20) as f64 / under_load.as_secs_f64() / 1e6,
        (under_load.as_secs_f64() / alone.as_secs_f64() - 1.0) * 100.0
    );
    print_table("import", idle, busy);
    ops::lock_vault(&s).unwrap();
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
}
