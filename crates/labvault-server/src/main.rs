//! `labvault-server`: bootstrap and operations CLI of the reference tenant server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use labvault_server::clock::SystemClock;
use labvault_server::secrets::Secret;
use labvault_server::server::{load_pem, self_signed_with, spki_pin, TlsMaterial};
use labvault_server::{
    create_tenant, open_state_with, start, sweep_trials, Config, DataDir, KekChoice, NewTenant,
};
use labvault_wire::PlanTier;
use rustls::pki_types::pem::PemObject;

/// mimalloc instead of glibc malloc: the request path allocates many short-lived buffers
/// from two worker threads, where glibc's arena locks and fastbin consolidation cost about a
/// quarter of the server's CPU (measured with `perf`, see `bench/server-load.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults keep what the server frees: arenas committed up front (so a purge
/// only marks pages reusable, which still counts as resident) and purges delayed. Serving
/// 10,000 small blobs then left the server at 170-250 MB resident against a live heap of
/// 23 MB (heaptrack); with eager arena commit off and immediate purges it stays near 40 MB
/// (`bench/sync.sh`). Set from an ELF constructor because the first arena is reserved by
/// the first allocation, before `main`.
#[cfg(target_os = "linux")]
mod allocator_tuning {
    use std::ffi::{c_int, c_long};

    // `mi_option_t` values in mimalloc 2.x's `mimalloc.h`.
    const MI_OPTION_ARENA_EAGER_COMMIT: c_int = 4;
    const MI_OPTION_PURGE_DELAY: c_int = 15;

    extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }

    extern "C" fn tune() {
        // SAFETY: plain setters of mimalloc's option table, linked in through the `mimalloc`
        // crate; called once, before any other code of this program runs.
        unsafe {
            mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }

    #[used]
    #[link_section = ".init_array"]
    static TUNE: extern "C" fn() = tune;
}

#[derive(Parser)]
#[command(
    name = "labvault-server",
    version,
    about = "Reference LabVault tenant server (HTTPS, TLS 1.3)"
)]
struct Cli {
    /// Data directory (database, signing key, generated certificate).
    #[arg(
        long,
        global = true,
        env = "LABVAULT_SERVER_DATA",
        default_value = "labvault-server-data"
    )]
    data_dir: PathBuf,
    /// Log to this file instead of stderr, rotated by size (`.1`, `.2`, ...) and capped.
    #[arg(long, global = true, env = "LABVAULT_SERVER_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Size at which the log file rotates (MiB).
    #[arg(long, global = true, default_value_t = 64)]
    log_max_mib: u64,
    /// Rotated log files kept besides the current one.
    #[arg(long, global = true, default_value_t = 5)]
    log_keep: u32,
    #[command(flatten)]
    kek: KekArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a tenant with its plan tier and first Owner. The password is read from
    /// LABVAULT_OWNER_PASSWORD or, if unset, from the first line of stdin.
    Init {
        /// Login slug (a-z, 0-9, '-').
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// trial | starter | professional | enterprise.
        #[arg(long, default_value = "starter")]
        plan: String,
        /// First Owner's email.
        #[arg(long)]
        owner_email: String,
    },
    /// Serve the API over HTTPS.
    Serve {
        #[command(flatten)]
        net: NetArgs,
    },
    /// One command for a fresh user: creates a tenant "lab" with a generated Owner password
    /// if the data directory has none, prints the credentials and the pin, and serves.
    Quickstart {
        #[command(flatten)]
        net: NetArgs,
    },
    /// Print the SHA-256 SPKI pin of the certificate in use.
    Pin {
        /// Certificate PEM (default: the generated one in the data directory).
        #[arg(long)]
        cert: Option<PathBuf>,
    },
    /// Delete expired trial tenants now (the server also does this every minute).
    Sweep,
    /// List deleted (tombstoned) tenants whose audit chains are kept: id and deletion time.
    DeletedTenants,
    /// Export a tenant's audit chain as JSON Lines on stdout (also for deleted tenants, and
    /// `_system` for the server chain) after verifying it; exits non-zero if it is broken.
    AuditExport {
        /// Tenant id (see `deleted-tenants`), or `_system`.
        #[arg(long)]
        tenant: String,
    },
    /// Print the database's space per table (bytes, from SQLite's dbstat) and the number of
    /// audit events: what the audit trail costs on disk. Stop the server first for exact
    /// figures (its WAL is then folded in).
    DbUsage,
    /// Rotate the key-encryption key now: a new KEK version (in the HSM or the key file),
    /// every server key re-wrapped under it, the older versions destroyed; audited in the
    /// server chain. With --from-kek-file, moves the keys from that key file into the HSM
    /// given by the HSM options (the key file is then overwritten and removed).
    RotateKek {
        /// The key file the keys are wrapped with now (moving them into an HSM).
        #[arg(long)]
        from_kek_file: Option<PathBuf>,
        /// Destroy every earlier KEK version now (after a suspected compromise), instead of
        /// keeping them 90 days for the backups wrapped under them; older backups then no
        /// longer restore.
        #[arg(long)]
        destroy_retired: bool,
    },
    /// Back up the data directory (the server may be running): a consistent snapshot of the
    /// database, the wrapped keys, and the blob objects the repository lacks; snapshots older
    /// than --keep-days are removed. Audited in the server chain (failures too).
    Backup {
        /// Backup repository (a directory; created on first use).
        #[arg(long)]
        to: PathBuf,
        /// Days a snapshot is kept.
        #[arg(long, default_value_t = 90)]
        keep_days: u32,
    },
    /// Check a snapshot without restoring it (keys, manifest MAC, every file's SHA-256).
    VerifyBackup {
        /// Backup repository.
        #[arg(long)]
        from: PathBuf,
        /// Snapshot id (default: the newest).
        #[arg(long)]
        snapshot: Option<String>,
        /// Check every snapshot.
        #[arg(long, conflicts_with = "snapshot")]
        all: bool,
    },
    /// List the snapshots of a backup repository.
    Backups {
        /// Backup repository.
        #[arg(long)]
        from: PathBuf,
    },
    /// Restore a snapshot into an empty data directory (--data-dir; the KEK file, if the keys
    /// are wrapped by one, copied there first or given with --kek-file). Verified first.
    Restore {
        /// Backup repository.
        #[arg(long)]
        from: PathBuf,
        /// Snapshot id (default: the newest).
        #[arg(long)]
        snapshot: Option<String>,
    },
    /// Print the OpenAPI document.
    Openapi,
}

/// Progress of a backup, verification or restore on stderr, at most once a second.
struct StderrProgress {
    what: &'static str,
    last: std::time::Instant,
}

impl StderrProgress {
    fn new(what: &'static str) -> StderrProgress {
        StderrProgress {
            what,
            last: std::time::Instant::now(),
        }
    }
}

impl labvault_server::backup::Progress for StderrProgress {
    fn objects(&mut self, done: usize, total: usize, bytes: u64) {
        if done == total || self.last.elapsed() >= std::time::Duration::from_secs(1) {
            self.last = std::time::Instant::now();
            eprintln!(
                "{}: {done}/{total} objects, {:.1} MiB",
                self.what,
                bytes as f64 / (1 << 20) as f64
            );
        }
    }
}

/// Where the key-encryption key (KEK) that wraps the server's keys is held.
#[derive(clap::Args)]
struct KekArgs {
    /// The KEK's key file (embedded default: kek.key in the data directory). Keep it on
    /// another disk than the data directory, or use an HSM.
    #[arg(long, global = true, env = "LABVAULT_KEK_FILE")]
    kek_file: Option<PathBuf>,
    /// PKCS#11 module of the HSM holding the KEK (e.g. /usr/lib/softhsm/libsofthsm2.so);
    /// its user PIN is read from LABVAULT_HSM_PIN or --hsm-pin-file.
    #[arg(long, global = true, env = "LABVAULT_HSM_MODULE")]
    hsm_module: Option<PathBuf>,
    /// Label of the HSM token holding the KEK.
    #[arg(
        long,
        global = true,
        env = "LABVAULT_HSM_TOKEN",
        default_value = "labvault"
    )]
    hsm_token: String,
    /// File holding the token's user PIN (instead of LABVAULT_HSM_PIN).
    #[arg(long, global = true)]
    hsm_pin_file: Option<PathBuf>,
}

impl KekArgs {
    fn choice(&self, dir: &DataDir) -> Result<KekChoice> {
        let Some(module) = &self.hsm_module else {
            return Ok(match &self.kek_file {
                Some(p) => KekChoice::File(p.clone()),
                None => KekChoice::default_for(&dir.0),
            });
        };
        let pin = match (&self.hsm_pin_file, std::env::var("LABVAULT_HSM_PIN")) {
            (Some(f), _) => zeroize::Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading the HSM PIN from {}", f.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, Ok(p)) => zeroize::Zeroizing::new(p),
            (None, Err(_)) => {
                bail!("--hsm-module is set but no PIN: set LABVAULT_HSM_PIN or --hsm-pin-file")
            }
        };
        Ok(KekChoice::Hsm(labvault_server::keys::HsmConfig {
            module: module.clone(),
            token: self.hsm_token.clone(),
            pin,
        }))
    }
}

#[derive(clap::Args)]
struct NetArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:8443")]
    bind: SocketAddr,
    /// Certificate chain PEM (instead of the generated self-signed one).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key PEM.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Authenticated requests one caller (user or API key) may make per second, sustained
    /// (each is audited; 0 = no limit, for load benchmarks).
    #[arg(long, default_value_t = Config::default().requests_per_caller_second)]
    requests_per_caller_second: f64,
    /// Requests a caller may make at once above that rate.
    #[arg(long, default_value_t = Config::default().request_burst_per_caller)]
    request_burst_per_caller: u32,
    /// Rotate the key-encryption key when its keys were wrapped this many days ago
    /// (checked at start and every 6 hours; 0 = only on demand with `rotate-kek`).
    #[arg(long, default_value_t = 90)]
    kek_rotation_days: u32,
}

fn tls(dir: &DataDir, kek: &KekChoice, net: &NetArgs) -> Result<TlsMaterial> {
    Ok(match (&net.cert, &net.key) {
        (Some(c), Some(k)) => load_pem(c, k)?,
        _ => self_signed_with(dir, kek)?,
    })
}

fn read_password() -> Result<Secret> {
    if let Ok(p) = std::env::var("LABVAULT_OWNER_PASSWORD") {
        return Ok(Secret::new(p));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    line.clear();
    if p.is_empty() {
        bail!("no password: set LABVAULT_OWNER_PASSWORD or pipe it on stdin");
    }
    Ok(Secret::new(p))
}

async fn serve(dir: DataDir, kek: KekChoice, net: NetArgs, quickstart: bool) -> Result<()> {
    let cfg = Config {
        requests_per_caller_second: net.requests_per_caller_second,
        request_burst_per_caller: net.request_burst_per_caller,
        ..Config::default()
    };
    let state = open_state_with(&dir, cfg, Arc::new(SystemClock), &kek)?;
    let tls_material = tls(&dir, &kek, &net)?;
    if net.kek_rotation_days > 0 {
        tokio::spawn(scheduled_rotation(
            state.clone(),
            dir.clone(),
            kek,
            net.kek_rotation_days,
        ));
    }
    if quickstart && state.store.list_tenants().await?.is_empty() {
        let password = format!("{}-Lv9", &labvault_server::secrets::random_token()[..20]);
        let email = "owner@lab.local".to_string();
        create_tenant(
            &state,
            NewTenant {
                slug: "lab".into(),
                name: "My lab".into(),
                plan: PlanTier::Professional,
                owner_email: email.clone(),
                owner_password: Secret::new(password.clone()),
            },
        )
        .await?;
        println!("Created tenant 'lab' (professional).");
        println!("  Owner email:    {email}");
        println!("  Owner password: {password}");
        println!("  (shown once; enrol MFA after the first login)");
    }
    let running = start(net.bind, tls_material, state).await?;
    println!("labvault-server listening on https://{}", running.addr);
    println!("certificate pin: {}", running.pin);
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}

/// Rotates the KEK when due (see [`labvault_server::server::rotate_kek_if_due`]): checked
/// now and every 6 hours. A failed rotation is logged and retried at the next check; the
/// keys in use stay valid.
async fn scheduled_rotation(
    state: labvault_server::AppState,
    dir: DataDir,
    kek: KekChoice,
    days: u32,
) {
    loop {
        if let Err(e) = labvault_server::server::rotate_kek_if_due(&state, &dir, &kek, days).await {
            tracing::error!(error = %e, "scheduled KEK rotation failed (retried in 6 hours)");
        }
        tokio::time::sleep(std::time::Duration::from_secs(6 * 3600)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,tower_http=info".into())
    };
    match &cli.log_file {
        Some(path) => {
            let log = labvault_server::log_file::RotatingLog::open(
                path,
                cli.log_max_mib.max(1) << 20,
                cli.log_keep,
            )
            .with_context(|| format!("opening the log file {}", path.display()))?;
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_ansi(false)
                .with_writer(log)
                .init();
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
    }
    if let Cmd::Openapi = cli.cmd {
        print!("{}", labvault_server::api::openapi_json());
        return Ok(());
    }
    let dir = DataDir::create(&cli.data_dir)?;
    let kek = cli.kek.choice(&dir)?;
    match cli.cmd {
        Cmd::Init {
            slug,
            name,
            plan,
            owner_email,
        } => {
            let plan = plan.parse::<PlanTier>().ok().with_context(|| {
                format!("unknown plan '{plan}' (trial, starter, professional, enterprise)")
            })?;
            let password = read_password()?;
            let state = open_state_with(&dir, Config::default(), Arc::new(SystemClock), &kek)?;
            let t = create_tenant(
                &state,
                NewTenant {
                    name: name.unwrap_or_else(|| slug.clone()),
                    slug,
                    plan,
                    owner_email,
                    owner_password: password,
                },
            )
            .await?;
            println!(
                "created tenant '{}' ({}), id {}",
                t.slug,
                plan.as_str(),
                t.id
            );
            if let Some(exp) = t.expires_at {
                println!("trial expires at {}", labvault_server::clock::rfc3339(exp));
            }
        }
        Cmd::Serve { net } => serve(dir, kek, net, false).await?,
        Cmd::Quickstart { net } => serve(dir, kek, net, true).await?,
        Cmd::Pin { cert } => {
            let m = match cert {
                Some(c) => {
                    let pem = std::fs::read(&c)?;
                    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem)
                        .with_context(|| format!("{}: no certificate", c.display()))?;
                    println!("{}", spki_pin(&der)?);
                    return Ok(());
                }
                None => self_signed_with(&dir, &kek)?,
            };
            println!("{}", spki_pin(&m.certs[0])?);
        }
        Cmd::Sweep => {
            let state = open_state_with(&dir, Config::default(), Arc::new(SystemClock), &kek)?;
            let gone = sweep_trials(&state).await?;
            println!("deleted {} expired trial tenant(s)", gone.len());
        }
        Cmd::DbUsage => {
            let c = labvault_server::server::open_db_raw_with(&dir, &kek)?;
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            let mut s = c.prepare(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC",
            )?;
            let rows = s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for r in rows {
                let (name, bytes) = r?;
                println!("{bytes}\t{name}");
            }
            let events: i64 = c.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))?;
            println!("{events}\taudit events");
        }
        Cmd::DeletedTenants => {
            let state = open_state_with(&dir, Config::default(), Arc::new(SystemClock), &kek)?;
            for (id, at) in state.store.deleted_tenants().await? {
                println!("{id}\t{}", labvault_server::clock::rfc3339(at));
            }
        }
        Cmd::AuditExport { tenant } => {
            use labvault_governance::export::{ExportFormat, ExportWriter};
            let state = open_state_with(&dir, Config::default(), Arc::new(SystemClock), &kek)?;
            let chain = state.store.audit_chain(&tenant).await?;
            if chain.is_empty() {
                bail!("no audit chain for tenant '{tenant}'");
            }
            if let Err(e) = labvault_server::chain::verify(&chain) {
                bail!(
                    "audit chain of '{tenant}' is broken at seq {} ({})",
                    e.first_bad_seq,
                    e.kind.as_str()
                );
            }
            let mut w = ExportWriter::new(std::io::stdout().lock(), ExportFormat::Jsonl)?;
            for ev in &chain {
                w.write(ev)?;
            }
            let mut out = w.finish()?;
            std::io::Write::flush(&mut out)?;
            eprintln!("{} events, chain verified", chain.len());
        }
        Cmd::RotateKek {
            from_kek_file,
            destroy_retired,
        } => {
            let from = from_kek_file.map(KekChoice::File);
            if from.is_some() && !matches!(kek, KekChoice::Hsm(_)) {
                bail!(
                    "--from-kek-file moves the keys into an HSM: give --hsm-module (and the PIN)"
                );
            }
            let state = match &from {
                Some(f) => open_state_with(&dir, Config::default(), Arc::new(SystemClock), f)?,
                None => open_state_with(&dir, Config::default(), Arc::new(SystemClock), &kek)?,
            };
            let now = state.now();
            let destroy_before = if destroy_retired {
                now
            } else {
                now - labvault_server::server::RETIRED_KEK_DAYS * 86_400
            };
            let r = labvault_server::server::rotate_kek(
                &state,
                &dir,
                &kek,
                from.as_ref(),
                destroy_before,
                "operator",
            )
            .await?;
            println!(
                "key-encryption key rotated: {} version {} -> {} version {} ({} keys re-wrapped)",
                r.from.0, r.from.1, r.to.0, r.to.1, r.keys
            );
            if !r.destroyed.is_empty() {
                println!("destroyed KEK versions {:?}", r.destroyed);
            }
            if !r.retained.is_empty() {
                println!(
                    "kept retired KEK versions {:?} for backups taken before (destroyed after {} days)",
                    r.retained,
                    labvault_server::server::RETIRED_KEK_DAYS
                );
            }
        }
        Cmd::Backup { to, keep_days } => {
            use labvault_server::backup;
            let state = open_state_with(&dir, Config::default(), Arc::new(SystemClock), &kek)?;
            let now = state.now();
            let r = {
                let (dir, to) = (dir.clone(), to.clone());
                tokio::task::spawn_blocking(move || {
                    backup::create(
                        &dir,
                        &kek,
                        &to,
                        now,
                        keep_days,
                        &mut StderrProgress::new("backup"),
                    )
                })
                .await?
            };
            let resource = to.display().to_string();
            match r {
                Ok(r) => {
                    labvault_server::server::audit_server_event(
                        &state,
                        "operator",
                        labvault_governance::audit::actions::SERVER_BACKUP,
                        &resource,
                        labvault_wire::AuditResult::Success,
                        format!(
                            "snapshot={} objects={} copied={} bytes={} pruned={}",
                            r.id,
                            r.objects,
                            r.copied,
                            r.bytes_copied,
                            r.pruned_snapshots.len()
                        ),
                    )
                    .await?;
                    println!(
                        "snapshot {}: {} objects ({} copied now), {:.1} MiB written",
                        r.id,
                        r.objects,
                        r.copied,
                        r.bytes_copied as f64 / (1 << 20) as f64
                    );
                    if !r.pruned_snapshots.is_empty() {
                        println!(
                            "removed {} snapshot(s) older than {keep_days} days and {} object(s) only they held",
                            r.pruned_snapshots.len(),
                            r.pruned_objects
                        );
                    }
                }
                Err(e) => {
                    if let Err(a) =
                        labvault_server::alerts::backup_failed(&state, &e.to_string()).await
                    {
                        eprintln!("could not raise the backup alert: {}", a.message);
                    }
                    let _ = labvault_server::server::audit_server_event(
                        &state,
                        "operator",
                        labvault_governance::audit::actions::SERVER_BACKUP,
                        &resource,
                        labvault_wire::AuditResult::Failure,
                        e.to_string(),
                    )
                    .await;
                    bail!("backup failed: {e}");
                }
            }
        }
        Cmd::VerifyBackup {
            from,
            snapshot,
            all,
        } => {
            let repo = labvault_server::backup::Repo::new(&from);
            let ids = if all {
                repo.snapshots()?
            } else {
                vec![snapshot.clone().unwrap_or_default()]
            };
            for id in ids {
                let pick = (!id.is_empty()).then_some(id.as_str());
                let m = repo
                    .verify(pick, &kek, &mut StderrProgress::new("verify"))
                    .with_context(|| format!("{} does not verify", from.display()))?;
                println!(
                    "snapshot {} verified: database, keys and {} objects intact",
                    m.id,
                    m.objects.len()
                );
            }
        }
        Cmd::Backups { from } => {
            let repo = labvault_server::backup::Repo::new(&from);
            for id in repo.snapshots()? {
                let m = repo.manifest(&id)?;
                let bytes: u64 = m.objects.iter().map(|o| o.size).sum::<u64>() + m.db.size;
                println!(
                    "{id}\t{}\t{} objects\t{:.1} MiB",
                    labvault_server::clock::rfc3339(m.created_at),
                    m.objects.len(),
                    bytes as f64 / (1 << 20) as f64
                );
            }
        }
        Cmd::Restore { from, snapshot } => {
            let m = labvault_server::backup::restore(
                &from,
                snapshot.as_deref(),
                &dir,
                &kek,
                &mut StderrProgress::new("restore"),
            )?;
            let state = open_state_with(&dir, Config::default(), Arc::new(SystemClock), &kek)?;
            labvault_server::server::audit_server_event(
                &state,
                "operator",
                labvault_governance::audit::actions::SERVER_RESTORE,
                &from.display().to_string(),
                labvault_wire::AuditResult::Success,
                format!("snapshot={} objects={}", m.id, m.objects.len()),
            )
            .await?;
            println!(
                "restored snapshot {} ({} objects) into {}",
                m.id,
                m.objects.len(),
                dir.0.display()
            );
        }
        Cmd::Openapi => unreachable!(),
    }
    Ok(())
}
