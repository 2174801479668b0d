//! How the desktop app answers during a large sync: the calls a user keeps making
//! (`items_page`, a preview range read, `audit_page`, `vault_status`) on an idle vault, then
//! while "Sync now" uploads a large project to a real tenant server (in-process, TLS on
//! loopback), through the code the Tauri commands run, without a window. Run through
//! `bench/sync-busy.sh`; not a test.
//!
//! Env: `BIG_MIB` (default 2048) one large file and `SMALL_N` (default 10000) small files in
//! the synced project; `LISTED_N` (default 5000) items in the listed project; `WORK`.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env_u64, make_file, one_round, print_table, start_lab, Samples, PW};
use labvault_app::dto::ItemQuery;
use labvault_app::state::{lock, Shared};
use labvault_app::{ops, tenant_ops};
use labvault_core::Area;
use labvault_sync::MemoryTokens;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let big_mib = env_u64("BIG_MIB", 2048);
    let small_n = env_u64("SMALL_N", 10_000);
    let listed_n = env_u64("LISTED_N", 5000);
    let work =
        PathBuf::from(std::env::var("WORK").unwrap_or_else(|_| "target/sync-busy-bench".into()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("src/sync")).unwrap();

    eprintln!(
        "[bench] making {big_mib} MiB + {small_n} small files to sync, {listed_n} listed items"
    );
    make_file(&work.join("src/sync/big.bin"), big_mib);
    for (dir, n) in [("sync/small", small_n), ("listed", listed_n)] {
        for i in 0..n {
            let d = work.join(format!("src/{dir}/d{:03}", i / 100));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join(format!("f{i:05}.txt")),
                format!("item {i}\n").repeat(200),
            )
            .unwrap();
        }
    }
    make_file(&work.join("src/preview.bin"), 64);

    // The tenant.
    let (server, url) = start_lab(&work.join("server")).await;

    // The app: a vault with a listed project (and the previewed item) and the project to sync.
    let mut s = Shared::new(None);
    s.kdf = Some(labvault_core::KdfParams::FLOOR);
    s.tokens = Arc::new(MemoryTokens::default());
    lock(&s.settings).vault_dir = Some(work.join("vault"));
    let s = Arc::new(s);
    ops::create(&s, "sync busy bench passphrase".into(), false, &|_| Ok(())).unwrap();
    for p in ["listed", "synced"] {
        ops::project_create(&s, p).unwrap();
    }
    let import = |project: &str, paths: Vec<PathBuf>| {
        let paths = paths.into_iter().map(|p| p.display().to_string()).collect();
        ops::import_paths(
            &s,
            project,
            Area::Uploads,
            paths,
            None,
            "setup",
            Arc::new(|_| {}),
        )
        .unwrap();
    };
    import(
        "listed",
        vec![work.join("src/listed"), work.join("src/preview.bin")],
    );
    import("synced", vec![work.join("src/sync")]);
    let q = ItemQuery {
        project: "listed".into(),
        area: None,
        text: Some("preview.bin".into()),
        data_type: None,
        media_type: None,
        states: None,
        sort: None,
    };
    let preview_item = ops::items_page(&s, &q, 0, 1).unwrap().rows[0].id.clone();
    let preview_size = 64u64 << 20;
    tenant_ops::connect(&s, &url, &server.pin, Some("lab"))
        .await
        .unwrap();
    assert!(
        tenant_ops::sign_in(&s, "pi@lab.test", PW, None)
            .await
            .unwrap()
            .signed_in
    );

    // Idle.
    let mut idle = Samples::default();
    for n in 0..300 {
        tokio::task::block_in_place(|| one_round(&s, &preview_item, preview_size, n, &mut idle));
    }

    // During "Sync now" (the first sync of everything: both projects go up).
    let done = Arc::new(AtomicBool::new(false));
    let (s2, done2) = (s.clone(), done.clone());
    let t0 = Instant::now();
    let syncing = tokio::spawn(async move {
        let r = tenant_ops::sync_run(&s2, "bench-sync", Arc::new(|_| {})).await;
        done2.store(true, Ordering::Release);
        r
    });
    let mut busy = Samples::default();
    let mut n = 0;
    while !done.load(Ordering::Acquire) {
        tokio::task::block_in_place(|| one_round(&s, &preview_item, preview_size, n, &mut busy));
        n += 1;
        // A user does not click 1,000 times a second: one round of calls every 20 ms.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = syncing.await.unwrap().unwrap();
    let took = t0.elapsed();
    let up = report.bytes_up;
    println!(
        "Sync of {big_mib} MiB + {small_n} small files + {listed_n} listed items: {:.1} s, {:.0} MB/s up, {} errors",
        took.as_secs_f64(),
        up as f64 / took.as_secs_f64() / 1e6,
        report.errors.len()
    );
    print_table("sync", idle, busy);
    ops::lock_vault(&s).unwrap();
    server.stop().await;
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
}
