//! `labvault`: the command-line front end of the encrypted LabVault vault.
//!
//! Adding a subcommand group: write `src/<name>_cmd.rs` with a clap `Subcommand`/`Args` type and a
//! `pub fn run(ctx: &Ctx, cmd: ...) -> anyhow::Result<()>`, then add `mod <name>_cmd;`, one
//! variant to [`Command`] and one arm to [`dispatch`].

mod audit_cmd;
mod bundle_cmd;
mod commands;
mod ctx;
mod exit;
mod progress;
mod retention_cmd;
mod share_cmd;
mod sync_cmd;
mod watch_cmd;

use clap::{Parser, Subcommand};
use ctx::{Ctx, GlobalOpts};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "labvault",
    version,
    about = "LabVault: an encrypted local workspace for research data",
    after_help = exit::EXIT_CODES_HELP
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new vault and show its recovery key (once).
    Init(commands::InitArgs),
    /// Change the vault passphrase (re-wraps keys; no file is re-encrypted).
    Passwd,
    /// Set a new passphrase using the recovery key.
    Recover,
    /// Rotate the vault's root key (keys re-wrapped, catalog re-keyed, a new recovery key;
    /// no file re-encrypted). Needs the vault closed everywhere else.
    Rekey(commands::JsonArg),
    /// Remember the vault key in the OS keyring on this device.
    Remember,
    /// Remove the vault key from the OS keyring on this device.
    Forget,
    /// Create and list projects.
    #[command(subcommand)]
    Project(commands::ProjectCmd),
    /// Import files and directories into a project area.
    Import(commands::ImportArgs),
    /// List and search items.
    Ls(commands::LsArgs),
    /// Export an item (or a whole area) to a directory.
    Export(commands::ExportArgs),
    /// Export a whole project as a self-describing bundle (directory or .tar): every file, a
    /// manifest with hashes and retention, and the project's audit trail.
    ExportProject(bundle_cmd::ExportProjectArgs),
    /// Check a bundle offline (no vault needed): every file's hash and the audit chain.
    VerifyBundle(bundle_cmd::VerifyBundleArgs),
    /// A project's compliance evidence pack (GDPR Art. 30 record, audit, retention and access
    /// evidence, Part 11 / HIPAA controls matrix), each file hashed.
    EvidencePack(bundle_cmd::EvidencePackArgs),
    /// Rename an item or move it to another area.
    Mv(commands::MvArgs),
    /// Soft-delete items (restorable).
    Rm(commands::ItemsArgs),
    /// Restore soft-deleted items.
    Restore(commands::ItemsArgs),
    /// Erase items for good (cryptographic erasure).
    Purge(commands::PurgeArgs),
    /// Check every blob and the catalog.
    Verify(commands::VerifyArgs),
    /// Counts and sizes per project, area and state.
    Stats(commands::JsonArg),
    /// Query, export and verify the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCmd),
    /// Retention policies, lifecycle status and enforcement.
    #[command(subcommand)]
    Retention(retention_cmd::RetentionCmd),
    /// Legal holds on items and projects.
    #[command(subcommand)]
    Hold(retention_cmd::HoldCmd),
    /// The lab's tenant this vault syncs with.
    #[command(subcommand)]
    Remote(sync_cmd::RemoteCmd),
    /// Sign in to the tenant (the token is kept in the OS keyring).
    Login(sync_cmd::LoginArgs),
    /// Sign out (the session is revoked, the token removed).
    Logout,
    /// Sync with the tenant (end-to-end encrypted); `sync status` shows what waits.
    Sync(sync_cmd::SyncArgs),
    /// Items whose concurrent edits were both kept.
    #[command(subcommand)]
    Conflicts(sync_cmd::ConflictsCmd),
    /// This user's devices: pair, approve, revoke.
    #[command(subcommand)]
    Device(sync_cmd::DeviceCmd),
    /// Safety numbers: yours, or a member's, to compare out of band.
    Fingerprint(share_cmd::FingerprintArgs),
    /// Instrument folders: import what instruments write, once complete, exactly once.
    #[command(subcommand)]
    Watch(watch_cmd::WatchCmd),
}

fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(a) => commands::init(ctx, a),
        Command::Passwd => commands::passwd(ctx),
        Command::Recover => commands::recover(ctx),
        Command::Rekey(a) => commands::rekey(ctx, a),
        Command::Remember => commands::remember(ctx),
        Command::Forget => commands::forget(ctx),
        Command::Project(c) => commands::project(ctx, c),
        Command::Import(a) => commands::import(ctx, a),
        Command::Ls(a) => commands::ls(ctx, a),
        Command::Export(a) => commands::export(ctx, a),
        Command::ExportProject(a) => bundle_cmd::export_project(ctx, a),
        Command::VerifyBundle(a) => bundle_cmd::verify_bundle(ctx, a),
        Command::EvidencePack(a) => bundle_cmd::evidence_pack(ctx, a),
        Command::Mv(a) => commands::mv(ctx, a),
        Command::Rm(a) => commands::rm(ctx, a),
        Command::Restore(a) => commands::restore(ctx, a),
        Command::Purge(a) => commands::purge(ctx, a),
        Command::Verify(a) => commands::verify(ctx, a),
        Command::Stats(a) => commands::stats(ctx, a),
        Command::Audit(c) => audit_cmd::run(ctx, c),
        Command::Retention(c) => retention_cmd::run(ctx, c),
        Command::Hold(c) => retention_cmd::run_hold(ctx, c),
        Command::Remote(c) => sync_cmd::remote(ctx, c),
        Command::Login(a) => sync_cmd::login(ctx, a),
        Command::Logout => sync_cmd::logout(ctx),
        Command::Sync(a) => sync_cmd::sync(ctx, a),
        Command::Conflicts(c) => sync_cmd::conflicts(ctx, c),
        Command::Device(c) => sync_cmd::device(ctx, c),
        Command::Fingerprint(a) => share_cmd::fingerprint(ctx, a),
        Command::Watch(c) => watch_cmd::run(ctx, c),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LABVAULT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let ctx = Ctx::new(cli.global);
    match dispatch(&ctx, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report(&e),
    }
}
