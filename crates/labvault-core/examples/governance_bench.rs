//! Audit trail and retention benchmark (not a test). Builds a real vault with 1,000,000 audit
//! events and 100,000 items, then times: filtered pages of 100 events, whole-chain
//! verification, CSV and JSON Lines export, offline verification of the CSV, and the retention
//! status of all items.
//!
//! Run (release, once): `cargo run --release -p labvault-core --example governance_bench`
//! Options: `-- EVENTS ITEMS` (defaults 1000000 100000). Uses a temp dir under $TMPDIR, or
//! `$LABVAULT_BENCH_DIR` if set: the vault built there is kept, and a later run with the same
//! variable skips the (slow) setup and only times (for profiling).

use labvault_core::audit::AuditFilter;
use labvault_core::governance::audit::{actions, Action, Checkpoint, EventDraft, Outcome};
use labvault_core::governance::export::{verify_export, ExportFormat};
use labvault_core::governance::VerifyMode;
use labvault_core::{KdfParams, Passphrase, Unlock, Vault, VaultOptions};
use std::sync::Arc;
use std::time::Instant;
use time::Duration;

const PASS: &str = "benchmark passphrase";

fn opts() -> VaultOptions {
    VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        clock: Arc::new(labvault_core::SystemClock),
        actor: "bench".into(),
        user_agent: "labvault-bench/1".into(),
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// CPU time of this process (user + system) in ms, from /proc (Linux): on a machine shared with
/// other work, CPU time is the figure that does not depend on how busy the machine is.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state(0) ... utime(11) stime(12), in clock ticks of 10 ms.
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) * 10.0
}

/// Wall and CPU time since `start`.
fn done(start: (Instant, f64)) -> String {
    format!(
        "{:.0} ms wall, {:.0} ms CPU",
        ms(start.0),
        cpu_ms() - start.1
    )
}

/// CPU time of the calling thread in ms, with ns resolution (Linux `/proc/thread-self/schedstat`),
/// for the short single-threaded query timings.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ns| ns / 1e6)
        .unwrap_or(0.0)
}

/// Whether phase `name` runs (`$LABVAULT_BENCH_ONLY`: comma-separated subset of
/// `query,verify,export,status`; default all).
fn phase(name: &str) -> bool {
    std::env::var("LABVAULT_BENCH_ONLY").map_or(true, |o| o.split(',').any(|p| p == name))
}

fn timer() -> (Instant, f64) {
    (Instant::now(), cpu_ms())
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_events = args.first().copied().unwrap_or(1_000_000);
    let n_items = args.get(1).copied().unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let keep = std::env::var_os("LABVAULT_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &keep {
        Some(k) => k.join("vault"),
        None => tmp.path().join("vault"),
    };
    if dir.join("vault.key").exists() {
        println!("reusing the vault in {}", dir.display());
        run(&dir, tmp.path(), n_items);
        return;
    }
    let (v, _) = Vault::create(&dir, &Passphrase::new(PASS.into()), opts()).expect("create");
    let device = v.device_id().to_string();
    v.lock();

    // Fill the catalog directly (one transaction), continuing the real chain.
    let t = Instant::now();
    let kf = labvault_crypto::KeyFile::from_bytes(&std::fs::read(dir.join("vault.key")).unwrap())
        .unwrap();
    let root = kf
        .unlock_with_passphrase(&Passphrase::new(PASS.into()))
        .unwrap();
    let mut c =
        labvault_core::catalog::open_raw(&dir.join("catalog.db"), &root.catalog_key()).unwrap();
    drop(root);
    // One big transaction: give it a page cache large enough that pages are not spilled to the
    // WAL over and over.
    c.execute_batch("PRAGMA cache_size = -1000000;").unwrap();
    let tx = c.transaction().unwrap();
    let (seq, hash): (i64, Vec<u8>) = tx
        .query_row(
            "SELECT seq, hash FROM audit_events WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1",
            [&device],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut head = Checkpoint {
        device_id: device.clone(),
        seq: seq as u64,
        head_hash: hash.try_into().unwrap(),
    };
    let start = time::OffsetDateTime::now_utc() - Duration::days(365 * 3);
    let acts: Vec<Action> = actions::VAULT_ACTIONS
        .iter()
        .map(|a| Action::new(*a).unwrap())
        .collect();
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    {
        let mut st = tx
            .prepare(
                "INSERT INTO audit_events(device_id, seq, ts, user, action, resource, ip_address, user_agent,
                    result, detail, v, prev_hash, hash) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
            )
            .unwrap();
        for i in 0..n_events {
            let r = next();
            let result = match r % 100 {
                0..=1 => Outcome::Denied,
                2..=9 => Outcome::Failure,
                _ => Outcome::Success,
            };
            let ev = head.append(
                EventDraft::new(
                    start + Duration::milliseconds(i as i64 * 90),
                    format!("user{:02}@lab.example", (r >> 8) % 20),
                    acts[((r >> 16) % acts.len() as u64) as usize].clone(),
                    format!(
                        "project/p{:02}/item/i{:05}",
                        (r >> 24) % 10,
                        (r >> 32) % 1000
                    ),
                    result,
                )
                .user_agent("labvault-cli/0.1.0 (linux; device bench)"),
            );
            st.execute(rusqlite::params![
                ev.device_id,
                ev.seq as i64,
                labvault_core::governance::audit::unix_micros(ev.timestamp),
                ev.user,
                ev.action.as_str(),
                ev.resource,
                ev.ip_address,
                ev.user_agent,
                ev.result.as_str(),
                ev.detail,
                ev.v,
                &ev.prev_hash[..],
                &ev.hash[..]
            ])
            .unwrap();
        }
        tx.execute(
            "INSERT INTO projects(id, name, wrapped_key, created_at, created_by) VALUES ('bench-p', 'bench', x'00', 0, 'bench')",
            [],
        )
        .unwrap();
        let mut it = tx
            .prepare(
                "INSERT INTO items(id, project_id, area, path, media_type, data_type, created_by, created_at,
                    updated_at, state, deleted_at, current_version)
                 VALUES (?1, 'bench-p', 'uploads', ?2, 'text/csv', ?3, 'bench', ?4, ?4, ?5, ?6, 1)",
            )
            .unwrap();
        let mut vt = tx
            .prepare(
                "INSERT INTO item_versions(item_id, version, blob_id, wrapped_data_key, size, sha256, created_at, created_by)
                 VALUES (?1, 1, NULL, NULL, ?2, '00', ?3, 'bench')",
            )
            .unwrap();
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        for i in 0..n_items {
            let r = next();
            let id = format!("item-{i:06}");
            let created = now_ms - ((r % (6 * 365)) as i64) * 86_400_000;
            let dt = ["research_data", "analysis_result", "backup", "session_data"]
                [((r >> 12) % 4) as usize];
            // Backups and session data older than their period would be due; keep them recent
            // so the unlock-time run has nothing to do and the status is pure evaluation.
            let created = if dt == "backup" || dt == "session_data" {
                now_ms - 3_600_000
            } else {
                created
            };
            let (state, deleted) = if r % 10 == 0 {
                ("soft_deleted", Some(now_ms - 86_400_000))
            } else {
                ("active", None)
            };
            it.execute(rusqlite::params![
                id,
                format!("f{i}.csv"),
                dt,
                created,
                state,
                deleted
            ])
            .unwrap();
            vt.execute(rusqlite::params![id, (r % 1_000_000) as i64, created])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    c.execute_batch("ANALYZE;").unwrap();
    drop(c);
    println!(
        "setup: {n_events} events + {n_items} items inserted in {:.0} ms",
        ms(t)
    );
    run(&dir, tmp.path(), n_items);
}

/// The timed part.
fn run(dir: &std::path::Path, out_dir: &std::path::Path, n_items: u64) {
    let start = time::OffsetDateTime::now_utc() - Duration::days(365 * 3);

    let t = timer();
    let v = Vault::unlock(
        dir,
        Unlock::Passphrase(&Passphrase::new(PASS.into())),
        opts(),
    )
    .expect("unlock");
    // The first unlock of a vault made before catalog format v2 includes its upgrade.
    println!(
        "unlock (KDF floor + catalog upgrade if any + retention run over {n_items} items): {}",
        done(t)
    );

    let n_events = v.audit_count().unwrap();
    let mid = start + Duration::milliseconds(n_events as i64 * 45);
    let filters: Vec<(&str, AuditFilter)> = vec![
        ("no filter", AuditFilter::default()),
        (
            "action prefix data.",
            AuditFilter {
                action_prefix: Some("data.".into()),
                ..Default::default()
            },
        ),
        (
            "action data.export + result denied",
            AuditFilter {
                action_prefix: Some("data.export".into()),
                result: Some(Outcome::Denied),
                ..Default::default()
            },
        ),
        (
            "user",
            AuditFilter {
                user: Some("user07@lab.example".into()),
                ..Default::default()
            },
        ),
        (
            "result failure",
            AuditFilter {
                result: Some(Outcome::Failure),
                ..Default::default()
            },
        ),
        (
            "resource prefix (one item)",
            AuditFilter {
                resource_prefix: Some("project/p03/item/i00042".into()),
                ..Default::default()
            },
        ),
        (
            "time window + user",
            AuditFilter {
                to: Some(mid),
                from: Some(mid - Duration::days(30)),
                user: Some("user03@lab.example".into()),
                ..Default::default()
            },
        ),
        (
            "time window ending mid-log",
            AuditFilter {
                to: Some(mid),
                ..Default::default()
            },
        ),
    ];
    for (name, f) in filters.iter().filter(|_| phase("query")) {
        let t = Instant::now();
        let c = thread_cpu_ms();
        let p1 = v.audit_query(f, 100, None).unwrap();
        let first = ms(t);
        let first_cpu = thread_cpu_ms() - c;
        let t = Instant::now();
        let c = thread_cpu_ms();
        let mut cursor = p1.next_cursor.clone();
        for _ in 0..9 {
            match cursor {
                Some(c) => cursor = v.audit_query(f, 100, Some(&c)).unwrap().next_cursor,
                None => break,
            }
        }
        println!(
            "query page of 100 [{name}]: first page {first:.1} ms wall, {first_cpu:.1} ms CPU ({} events); next 9 pages {:.1} ms wall, {:.1} ms CPU avg",
            p1.events.len(),
            ms(t) / 9.0,
            (thread_cpu_ms() - c) / 9.0
        );
    }

    if phase("verify") {
        let t = timer();
        let reports = v.audit_verify(&mut |_, _| {}).unwrap();
        println!(
            "verify whole chain ({} events): {}",
            reports[0].events,
            done(t)
        );
    }

    let formats = [(ExportFormat::Csv, "csv"), (ExportFormat::Jsonl, "jsonl")];
    for (format, name) in formats.into_iter().filter(|_| phase("export")) {
        let out = out_dir.join(format!("audit.{name}"));
        let t = timer();
        let s = v
            .audit_export(&AuditFilter::default(), format, &out, &mut |_, _| {})
            .unwrap();
        let size = std::fs::metadata(&out).unwrap().len();
        println!(
            "export {name} ({} events, {} MiB): {}",
            s.events,
            size >> 20,
            done(t)
        );
        let t = timer();
        let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&out).unwrap());
        let r = verify_export(f, VerifyMode::Complete, &[], |_| {}).unwrap();
        println!(
            "offline verify of the {name} export ({} events): {}",
            r.events,
            done(t)
        );
    }

    if !phase("status") {
        return;
    }
    let t = timer();
    let st = v.retention_status(None).unwrap();
    println!(
        "retention status ({} items, {} projects): {}",
        st.items.len(),
        st.projects.len(),
        done(t)
    );
    let t = timer();
    let r = v.run_retention(&mut |_, _| {}).unwrap();
    println!(
        "retention run ({} items checked, {} steps): {}",
        r.checked,
        r.expired + r.erased,
        done(t)
    );
}
