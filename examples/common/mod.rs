//! What the app benchmarks share: test data, the calls a user keeps making while the app
//! works (timed through the code the Tauri commands run), and percentiles.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use labvault_app::dto::{AuditFilter, ItemQuery};
use labvault_app::ops;
use labvault_app::state::Shared;
use labvault_server::secrets::{KdfParams, Secret};
use labvault_server::server::{self_signed, RunningServer};
use labvault_server::{create_tenant, open_state, start, Config, DataDir, NewTenant};
use labvault_wire::PlanTier;

/// The Owner's password on the benchmark tenants.
pub const PW: &str = "Correct-Horse-9";

/// A tenant server in this process (data under `dir`, TLS on 127.0.0.1), with the tenant
/// `lab` whose Owner is `pi@lab.test`; gives the server and its URL.
pub async fn start_lab(dir: &Path) -> (RunningServer, String) {
    let data = DataDir::create(dir).unwrap();
    let cfg = Config {
        kdf: KdfParams::TEST,
        login_attempts_per_ip_minute: 1_000_000,
        ..Config::default()
    };
    let state = open_state(
        &data,
        cfg,
        std::sync::Arc::new(labvault_server::clock::SystemClock),
    )
    .unwrap();
    let server = start(
        "127.0.0.1:0".parse().unwrap(),
        self_signed(&data).unwrap(),
        state,
    )
    .await
    .unwrap();
    create_tenant(
        &server.state,
        NewTenant {
            slug: "lab".into(),
            name: "Bench lab".into(),
            plan: PlanTier::Enterprise,
            owner_email: "pi@lab.test".into(),
            owner_password: Secret::new(PW.into()),
        },
    )
    .await
    .unwrap();
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    (server, url)
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `mib` MiB of pseudo-random bytes (incompressible, cheap to make).
pub fn make_file(path: &Path, mib: u64) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for w in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

#[derive(Default)]
pub struct Samples {
    pub items_page: Vec<Duration>,
    pub preview: Vec<Duration>,
    pub audit_page: Vec<Duration>,
    pub vault_status: Vec<Duration>,
}

pub fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let k = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[k].as_secs_f64() * 1e3
}

/// One round of the four calls, each timed.
pub fn one_round(s: &Shared, preview_item: &str, preview_size: u64, n: u64, out: &mut Samples) {
    let q = ItemQuery {
        project: "listed".into(),
        area: None,
        text: None,
        data_type: None,
        media_type: None,
        states: None,
        sort: None,
    };
    let offset = (n * 97) % 4000;
    let t = Instant::now();
    ops::items_page(s, &q, offset, 100).unwrap();
    out.items_page.push(t.elapsed());

    let start = (n * 7_919_993) % (preview_size - (256 << 10));
    let req = tauri::http::Request::builder()
        .uri(format!("lvpreview://localhost/item/{preview_item}"))
        .header(
            "Range",
            format!("bytes={}-{}", start, start + (256 << 10) - 1),
        )
        .body(Vec::new())
        .unwrap();
    let t = Instant::now();
    let resp = labvault_app::preview::handle(s, "main", &req);
    out.preview.push(t.elapsed());
    assert_eq!(resp.status(), 206, "range read answered");

    let t = Instant::now();
    ops::audit_page(s, &AuditFilter::default(), None, 50).unwrap();
    out.audit_page.push(t.elapsed());

    let t = Instant::now();
    ops::status(s).unwrap();
    out.vault_status.push(t.elapsed());
}

/// Prints the latency table of `idle` against `busy` (during `what`); returns the worst p99.
pub fn print_table(what: &str, idle: Samples, busy: Samples) -> f64 {
    println!(
        "Latency in ms (idle: {} rounds; during the {what}: {} rounds)",
        idle.items_page.len(),
        busy.items_page.len()
    );
    println!(
        "{:<28}{:>10}{:>10}{:>12}{:>12}{:>12}",
        "call", "idle p50", "idle p99", "busy p50", "busy p99", "busy max"
    );
    let mut rows = [
        ("items_page (100 rows)", idle.items_page, busy.items_page),
        ("preview range (256 KiB)", idle.preview, busy.preview),
        ("audit_page (50 events)", idle.audit_page, busy.audit_page),
        ("vault_status", idle.vault_status, busy.vault_status),
    ];
    let mut worst = 0f64;
    for (name, i, b) in rows.iter_mut() {
        let p99 = pct(b, 0.99);
        worst = worst.max(p99);
        println!(
            "{:<28}{:>10.2}{:>10.2}{:>12.2}{:>12.2}{:>12.2}",
            name,
            pct(i, 0.5),
            pct(i, 0.99),
            pct(b, 0.5),
            p99,
            pct(b, 1.0)
        );
    }
    println!("worst p99 during the {what}: {worst:.1} ms (target < 100 ms)");
    worst
}
