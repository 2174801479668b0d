//! Sync with the lab's tenant: `remote`, `login`/`logout`, `sync` (and `sync status`),
//! `conflicts`, `device`. Every secret comes from a prompt, stdin or an environment variable;
//! the sign-in token goes to the OS keyring only.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use labvault_client::{ClientOptions, Pin, TenantClient};
use labvault_core::{Error as CoreError, Vault};
use labvault_sync::{
    account, keys, EngineConfig, KeyringTokens, PassReport, Progress, ProgressPhase, Session,
    SyncEngine, SyncError, TokenStore,
};

use crate::ctx::Ctx;
use crate::progress::bytes_bar;

/// `labvault remote ...`
#[derive(Subcommand, Debug)]
pub enum RemoteCmd {
    /// Configure the tenant this vault syncs with (its key must have the pin).
    Add(RemoteAddArgs),
    /// Show the configured tenant.
    Show(JsonFlag),
}

/// `labvault remote add`
#[derive(Args, Debug)]
pub struct RemoteAddArgs {
    /// `https://host[:port]`.
    pub url: String,
    /// The server key's pin as `labvault-server pin` prints it: `sha256/<base64>`.
    #[arg(long)]
    pub pin: String,
    /// The tenant (lab) to sign in to, e.g. `smith-lab`.
    #[arg(long, env = "LABVAULT_TENANT")]
    pub tenant: Option<String>,
}

/// `--json`
#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `labvault login`
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Account email.
    #[arg(long)]
    pub email: String,
    /// Tenant slug (default: the one given to `remote add`).
    #[arg(long, env = "LABVAULT_TENANT")]
    pub tenant: Option<String>,
    /// Read the password from stdin (after the vault passphrase, if that is read too).
    #[arg(long)]
    pub password_stdin: bool,
    /// The current TOTP code, when the account has two-factor authentication.
    #[arg(long)]
    pub totp: Option<String>,
}

/// `labvault sync`
#[derive(Args, Debug)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub sub: Option<SyncSub>,
    /// Only this project (name or id).
    #[arg(long)]
    pub project: Option<String>,
    /// Keep syncing: wait for changes here and on the tenant, until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Send the deletions held back as a mass delete (of --project, or every project).
    #[arg(long)]
    pub confirm_deletes: bool,
    /// Start a project's sync over from scratch (after a restored server): every item is
    /// merged with the tenant's again; nothing is deleted.
    #[arg(long, value_name = "PROJECT")]
    pub resync: Option<String>,
    /// Try a stopped project again (after fixing what stopped it).
    #[arg(long, value_name = "PROJECT")]
    pub retry: Option<String>,
    /// Limit the bandwidth of uploads and downloads together, in bytes per second with an
    /// optional K, M or G suffix (powers of 1024): `--limit-rate 2M`.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,
    /// Machine-readable report.
    #[arg(long)]
    pub json: bool,
}

/// `500K`, `2M`, `1G` or plain bytes per second.
fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate such as 500K, 2M or 1G (bytes per second)"))?;
    let bytes = n * mult as f64;
    if !(bytes.is_finite() && bytes >= labvault_sync::limiter::MIN_BYTES_PER_SEC as f64) {
        return Err(format!(
            "{s:?}: the limit is at least {} KiB/s",
            labvault_sync::limiter::MIN_BYTES_PER_SEC / 1024
        ));
    }
    Ok(bytes as u64)
}

/// `labvault sync status`
#[derive(Subcommand, Debug)]
pub enum SyncSub {
    /// Per project: pending ops and bytes, last sync, conflicts, parked errors.
    Status(JsonFlag),
}

/// `labvault conflicts ...`
#[derive(Subcommand, Debug)]
pub enum ConflictsCmd {
    /// Items with conflict siblings (versions that lost a concurrent edit).
    Ls(JsonFlag),
    /// Pick the version to keep as the head (the others stay in the history).
    Resolve(ResolveArgs),
}

/// `labvault conflicts resolve`
#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// Item id (or path with --project).
    pub item: String,
    /// Project of the item (name or id).
    #[arg(long)]
    pub project: Option<String>,
    /// The version number to keep as the head.
    #[arg(long)]
    pub keep: u32,
}

/// `labvault device ...`
#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// This user's devices: state, trust, last seen.
    Ls(JsonFlag),
    /// Show this device's pairing code (enter it on a device that syncs already).
    Pair(PairArgs),
    /// Approve a new device of yours with the code it shows; its project keys are sealed to it.
    Approve(ApproveArgs),
    /// Revoke a device of yours; it is refused from then on.
    Revoke(RevokeArgs),
}

/// `labvault device pair`
#[derive(Args, Debug)]
pub struct PairArgs {
    /// Wait for the approval (then sync).
    #[arg(long)]
    pub wait: bool,
}

/// `labvault device approve`
#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The code the new device shows (`XXXXX-XXXXX-XXXXX-XXXXX`).
    pub code: String,
}

/// `labvault device revoke`
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Device id (see `labvault device ls`).
    pub device: String,
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub(crate) fn client_for(vault: &Vault) -> Result<TenantClient> {
    Ok(account::client(
        vault,
        &format!("labvault-cli/{}", env!("CARGO_PKG_VERSION")),
    )?)
}

pub(crate) fn tokens() -> Arc<dyn TokenStore> {
    Arc::new(KeyringTokens::default())
}

fn engine(vault: Arc<Vault>, limit_rate: Option<u64>) -> Result<SyncEngine> {
    let session = Session::resume(client_for(&vault)?, vault.vault_id(), tokens())?;
    let cfg = EngineConfig {
        rate_limit: labvault_sync::limiter::RateLimit::new(limit_rate),
        ..EngineConfig::default()
    };
    Ok(SyncEngine::new(vault, session, cfg)?)
}

fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// `labvault remote`
pub fn remote(ctx: &Ctx, cmd: RemoteCmd) -> Result<()> {
    let vault = ctx.unlock()?;
    match cmd {
        RemoteCmd::Add(a) => {
            let pin = Pin::parse(&a.pin)?;
            let client = TenantClient::new(&a.url, pin, ClientOptions::default())?;
            // A wrong pin (or address) is found now, not at the first sync.
            let health = runtime()?.block_on(client.health())?;
            let r = vault.set_sync_remote(client.base_url(), &a.pin, a.tenant.as_deref())?;
            println!(
                "remote {} (API {}), pin {}{}",
                r.url,
                health.api_version,
                r.pin,
                r.tenant
                    .map(|t| format!(", tenant {t}"))
                    .unwrap_or_default()
            );
            println!("next: labvault login --email you@lab");
        }
        RemoteCmd::Show(j) => match vault.sync_remote()? {
            None => return Err(SyncError::NoRemote.into()),
            Some(r) if j.json => println!("{}", serde_json::to_string_pretty(&r)?),
            Some(r) => {
                println!("url     {}", r.url);
                println!("pin     {}", r.pin);
                println!("tenant  {}", r.tenant.unwrap_or_else(|| "-".into()));
                println!(
                    "account {}",
                    r.email.unwrap_or_else(|| "(not signed in)".into())
                );
            }
        },
    }
    Ok(())
}

/// `labvault login`
pub fn login(ctx: &Ctx, a: LoginArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let remote = vault.sync_remote()?.ok_or(SyncError::NoRemote)?;
    let tenant = a.tenant.or(remote.tenant).ok_or_else(|| {
        CoreError::InvalidArgument(
            "which tenant? give --tenant SLUG (or `remote add --tenant`)".into(),
        )
    })?;
    let password = if a.password_stdin {
        ctx.stdin_line("password")?
    } else if let Ok(p) = std::env::var("LABVAULT_TENANT_PASSWORD") {
        zeroize::Zeroizing::new(p)
    } else {
        ctx.prompt(
            &format!("Password for {}: ", a.email),
            "password",
            "LABVAULT_TENANT_PASSWORD",
        )?
    };
    let client = client_for(&vault)?;
    let rt = runtime()?;
    let shared = vault.shared();
    rt.block_on(async move {
        let out = account::sign_in(&shared, client, tokens(), Some(&tenant), &a.email, &password, a.totp.as_deref()).await?;
        let (device_name, approved) = match out {
            account::SignIn::Done { device_name, approved, .. } => (device_name, approved),
            account::SignIn::MfaNeeded => return Err(SyncError::MfaCodeNeeded.into()),
        };
        println!("signed in to {tenant} as {}", a.email);
        if approved {
            println!("this device ({device_name}) syncs: run `labvault sync`");
        } else {
            println!(
                "this device ({device_name}) waits for approval: run `labvault device pair` and enter its code on a device of yours that syncs"
            );
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// `labvault logout`
pub fn logout(ctx: &Ctx) -> Result<()> {
    let vault = ctx.unlock()?;
    let client = client_for(&vault)?;
    match Session::resume(client, vault.vault_id(), tokens()) {
        Ok(s) => runtime()?.block_on(s.logout())?,
        Err(SyncError::NotSignedIn(_)) => {}
        Err(e) => return Err(e.into()),
    }
    vault.sync_signed_out()?;
    println!("signed out; the sign-in token was removed from the OS keyring");
    Ok(())
}

/// Progress bars for uploads and downloads (hidden when stderr is not a terminal).
struct Bars {
    up: ProgressBar,
    down: ProgressBar,
}

fn progress_sink(bars: &Arc<Bars>) -> impl Fn(Progress) + Send + Sync + 'static {
    let bars = bars.clone();
    // Per (project, phase): the latest (done, total); the bars show the sums.
    let seen: Mutex<BTreeMap<(String, bool), (u64, u64)>> = Mutex::new(BTreeMap::new());
    move |p: Progress| {
        let up = match p.phase {
            ProgressPhase::Upload => true,
            ProgressPhase::Download => false,
            _ => return,
        };
        let mut m = seen.lock().unwrap_or_else(|e| e.into_inner());
        m.insert((p.project.clone(), up), (p.done, p.total.max(p.done)));
        let (done, total) = m
            .iter()
            .filter(|((_, u), _)| *u == up)
            .fold((0, 0), |(d, t), (_, (dd, tt))| (d + dd, t + tt));
        let bar = if up { &bars.up } else { &bars.down };
        bar.set_length(total);
        bar.set_position(done);
    }
}

fn print_report(r: &PassReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "pulled {} change(s), pushed {}, {} conflict(s) kept as siblings; up {}, down {}{}",
        r.pulled,
        r.pushed,
        r.conflicts,
        human(r.bytes_up),
        human(r.bytes_down),
        if r.pending > 0 {
            format!("; {} op(s) still waiting", r.pending)
        } else {
            String::new()
        }
    );
    for w in &r.wiped {
        println!(
            "project {}: you were removed from it; its copy on this device was erased ({} item(s){})",
            w.project_id,
            w.items,
            if w.unsent > 0 {
                format!(", {} local change(s) that never reached the tenant", w.unsent)
            } else {
                String::new()
            }
        );
    }
    if r.rotated > 0 {
        println!(
            "rotated the key of {} shared project(s): nothing written from now on can be decrypted by former members",
            r.rotated
        );
    }
    for (p, e) in &r.errors {
        eprintln!("project {p}: {e}");
    }
    Ok(())
}

/// `labvault sync`
pub fn sync(ctx: &Ctx, a: SyncArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    if let Some(SyncSub::Status(j)) = a.sub {
        return status(&vault, j.json);
    }
    // A project not here yet (a new device) is asked of the tenant by name.
    let project = match &a.project {
        Some(p) => match vault.project(p) {
            Ok(found) => Some(found.id),
            Err(e) if e.code() == labvault_core::ErrorCode::NotFound => Some(p.clone()),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if let Some(p) = &a.resync {
        let id = vault.project(p)?.id;
        vault.sync_resync_project(&id)?;
        println!("project {p}: starting over from the tenant's feed (nothing is deleted)");
    }
    if let Some(p) = &a.retry {
        let id = vault.project(p)?.id;
        vault.sync_set_stopped(&id, None)?;
    }
    if a.confirm_deletes {
        for p in vault.sync_projects()? {
            if project.as_ref().is_none_or(|o| *o == p.project_id) {
                let n = vault.sync_confirm_deletes(&p.project_id)?;
                if n > 0 {
                    println!("project {}: {n} deletion(s) will be sent", p.name);
                }
            }
        }
    }
    // Asked for now: what waits out a back-off of earlier failures is tried now.
    vault.sync_retry_now(project.as_deref())?;
    let shared = vault.shared();
    let rt = runtime()?;
    let bars = Arc::new(Bars {
        up: bytes_bar("up"),
        down: bytes_bar("down"),
    });
    let e = engine(shared.clone(), a.limit_rate)?.with_progress(progress_sink(&bars));
    let result = rt.block_on(async {
        loop {
            let r = e.pass(project.as_deref()).await;
            bars.up.finish_and_clear();
            bars.down.finish_and_clear();
            let r = r?;
            print_report(&r, a.json)?;
            if !a.watch {
                let stopped = !r.errors.is_empty();
                return Ok::<bool, anyhow::Error>(stopped);
            }
            wait_for_work(&e, &shared, project.as_deref(), r.retry_at).await?;
        }
    });
    if let (Ok(_), Some(p)) = (&result, &a.project) {
        // Not here before the pass: a project's name travels encrypted in its feed, so a device
        // that never pulled it knows it by id only.
        if vault.project(p).is_err() {
            return Err(crate::exit::Outcome {
                code: labvault_core::ErrorCode::NotFound,
                exit: crate::exit::exit_code(labvault_core::ErrorCode::NotFound),
                message: format!(
                    "project {p:?} is not on this device (nor, by that id, on the tenant for this user): \
                     `labvault sync` fetches every project shared with this device; \
                     `--project <id>` fetches one"
                ),
            }
            .into());
        }
    }
    match result {
        Ok(false) => Ok(()),
        Ok(true) => Err(crate::exit::Outcome {
            code: labvault_core::ErrorCode::SyncRefused,
            exit: crate::exit::EXIT_SYNC_INCOMPLETE,
            message: "some projects did not sync completely (see above); `labvault sync status` lists what waits".into(),
        }
        .into()),
        Err(e) => Err(e),
    }
}

/// Waits for a change on the tenant (long poll), a change here (checked every 2 s), or the
/// time a backed-off op may be retried.
async fn wait_for_work(
    e: &SyncEngine,
    vault: &Arc<Vault>,
    only: Option<&str>,
    retry_at: Option<i64>,
) -> Result<()> {
    let projects: Vec<String> = vault
        .sync_projects()?
        .into_iter()
        .filter(|p| p.remote && p.stopped.is_none() && only.is_none_or(|o| o == p.project_id))
        .map(|p| p.project_id)
        .collect();
    let remote = async {
        if projects.is_empty() {
            std::future::pending::<()>().await;
        }
        let polls: Vec<_> = projects
            .iter()
            .map(|p| Box::pin(e.wait_for_changes(p)))
            .collect();
        let _ = futures_util::future::select_all(polls).await;
    };
    let local = async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let dirty: u64 = vault
                .sync_status()
                .map(|s| s.iter().map(|p| p.changed_items).sum())
                .unwrap_or(0);
            if dirty > 0 {
                return;
            }
        }
    };
    let retry = async {
        match retry_at {
            Some(at) => {
                let now = (vault.now().unix_timestamp_nanos() / 1_000_000) as i64;
                tokio::time::sleep(Duration::from_millis((at - now).max(0) as u64)).await
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = remote => {}
        _ = local => {}
        _ = retry => {}
        _ = tokio::signal::ctrl_c() => return Err(CoreError::Cancelled.into()),
    }
    Ok(())
}

fn status(vault: &Vault, json: bool) -> Result<()> {
    let s = vault.sync_status()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    if let Some(r) = vault.sync_remote()? {
        println!(
            "tenant {} ({}), device {} {:?}",
            r.url,
            r.email.unwrap_or_else(|| "not signed in".into()),
            vault.device_id(),
            vault.sync_device()?.state
        );
    }
    for p in s {
        println!(
            "{:<24} {} pending op(s), {} to upload, {} changed, {} conflict(s), last sync {}{}",
            p.name,
            p.pending_ops,
            human(p.pending_bytes),
            p.changed_items,
            p.conflicts,
            p.last_sync_at.unwrap_or_else(|| "never".into()),
            if p.remote {
                ""
            } else {
                " (not on the tenant yet)"
            }
        );
        if let Some(why) = p.stopped {
            println!("  stopped: {why}");
        }
        if p.awaiting_confirmation > 0 {
            println!(
                "  {} deletion(s) held back: `labvault sync --confirm-deletes`",
                p.awaiting_confirmation
            );
        }
        for (what, err) in p.parked {
            println!("  parked {what}: {err}");
        }
    }
    Ok(())
}

/// `labvault conflicts`
pub fn conflicts(ctx: &Ctx, cmd: ConflictsCmd) -> Result<()> {
    let vault = ctx.unlock()?;
    match cmd {
        ConflictsCmd::Ls(j) => {
            let c = vault.sync_conflicts()?;
            if j.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else if c.is_empty() {
                println!("no conflicts");
            } else {
                for x in c {
                    println!(
                        "{} {}/{}/{}: head v{}",
                        x.item.id, x.item.project, x.item.area, x.item.path, x.head
                    );
                    for (n, size, at, by) in x.siblings {
                        println!("  sibling v{n}: {} by {by} at {at}", human(size));
                    }
                }
            }
        }
        ConflictsCmd::Resolve(r) => {
            let item = vault.find_item(
                r.project.as_deref(),
                None,
                &r.item,
                &[labvault_core::ItemState::Active],
            )?;
            let out = vault.sync_resolve_conflict(&item.id, r.keep)?;
            println!(
                "{}/{}/{}: head is now v{}",
                out.project, out.area, out.path, out.version
            );
        }
    }
    Ok(())
}

/// `labvault device`
pub fn device(ctx: &Ctx, cmd: DeviceCmd) -> Result<()> {
    let vault = ctx.unlock()?;
    let shared = vault.shared();
    let rt = runtime()?;
    let session = || -> Result<Session> {
        Ok(
            Session::resume(client_for(&shared)?, shared.vault_id(), tokens())?
                .bind_device(shared.device_id())?,
        )
    };
    match cmd {
        DeviceCmd::Ls(j) => {
            let s = session()?;
            let list = rt.block_on(keys::devices(&s))?;
            let trusted = vault.sync_trusted_devices()?;
            if j.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            for d in list {
                let mine = if d.device_id == vault.device_id() {
                    " (this device)"
                } else {
                    ""
                };
                let trust = if trusted.iter().any(|t| t.device_id == d.device_id) {
                    "trusted"
                } else {
                    "not trusted here"
                };
                println!(
                    "{} {:<20} {:?} {trust}, last seen {}{mine}",
                    d.device_id,
                    d.name,
                    d.state,
                    d.last_seen_at.unwrap_or_else(|| "never".into())
                );
            }
        }
        DeviceCmd::Pair(p) => {
            let s = session()?;
            rt.block_on(async {
                keys::register(&shared, &s).await?;
                if keys::complete_pairing(&shared, &s).await? {
                    println!("this device is approved already");
                    return Ok::<_, anyhow::Error>(());
                }
                let code = shared.sync_pairing_code()?;
                println!("pairing code: {}", &*code);
                println!(
                    "on a device of yours that syncs: labvault device approve {}",
                    &*code
                );
                if p.wait {
                    let tty = std::io::stderr().is_terminal();
                    loop {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if keys::complete_pairing(&shared, &s).await? {
                            break;
                        }
                        if tty {
                            eprint!(".");
                        }
                    }
                    println!("approved");
                }
                Ok(())
            })?;
            if p.wait {
                drop(s);
                let e = engine(shared.clone(), None)?;
                let r = rt.block_on(e.pass(None))?;
                print_report(&r, false)?;
            }
        }
        DeviceCmd::Approve(a) => {
            let s = session()?;
            let d = rt.block_on(keys::approve(&shared, &s, &a.code))?;
            println!(
                "approved {} ({}); its project keys were sealed to it",
                d.name, d.device_id
            );
        }
        DeviceCmd::Revoke(r) => {
            let s = session()?;
            rt.block_on(keys::revoke(&shared, &s, &r.device))?;
            println!("revoked {}", r.device);
        }
    }
    Ok(())
}

/// A `labvault_sync` error's code and exit status.
pub fn sync_error(e: &SyncError) -> (String, u8) {
    let code = e.code().to_string();
    let exit = match e {
        SyncError::Vault(v) => crate::exit::exit_code(v.code()),
        SyncError::Client(labvault_client::ClientError::PinMismatch { .. }) => {
            crate::exit::EXIT_SYNC_REFUSED
        }
        SyncError::Client(c) if c.is_transient() => crate::exit::EXIT_SYNC_UNREACHABLE,
        SyncError::Client(_) => crate::exit::EXIT_SYNC_ACCOUNT,
        SyncError::NoRemote
        | SyncError::NotSignedIn(_)
        | SyncError::MfaCodeNeeded
        | SyncError::NotApproved(_)
        | SyncError::Revoked => crate::exit::EXIT_SYNC_ACCOUNT,
        SyncError::Busy(_) => 11,
        SyncError::Keyring(_) => 17,
    };
    (code, exit)
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_take_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert_eq!(parse_rate("512k"), Ok(512 << 10));
        assert_eq!(parse_rate("1.5G"), Ok(3 << 29));
        assert_eq!(parse_rate("100000"), Ok(100_000));
        assert!(parse_rate("10K").unwrap_err().contains("at least 64 KiB/s"));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-1M").is_err());
        assert!(parse_rate("").is_err());
    }
}
