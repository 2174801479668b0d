//! `labvault export-project` and `labvault verify-bundle`: a whole project as a self-describing
//! bundle (optionally sealed with age for an archive), and its offline check (no vault needed;
//! a sealed bundle needs its passphrase or identity).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use labvault_core::bundle_seal::{BundleKey, BundleSeal};
use labvault_core::{BundleOptions, ErrorCode, TransferProgress};
use zeroize::Zeroizing;

use crate::commands::{human, print_json};
use crate::ctx::Ctx;
use crate::exit::{printable, Outcome};
use crate::progress::bytes_bar;

/// `labvault export-project`
#[derive(Args, Debug)]
pub struct ExportProjectArgs {
    /// Project name or id.
    pub project: String,
    /// The bundle to create: a new directory, a file ending in `.tar`, or (sealed) `.tar.age`.
    pub out: PathBuf,
    /// Every earlier version still kept, under versions/ (unresolved conflict siblings are
    /// always included).
    #[arg(long)]
    pub all_versions: bool,
    /// Seal the bundle with a passphrase (age, scrypt): asked twice, or from
    /// LABVAULT_BUNDLE_PASSPHRASE, or the next line of --passphrase-stdin.
    #[arg(long, conflicts_with_all = ["recipient", "recipients_file"])]
    pub encrypt: bool,
    /// Seal the bundle to this age recipient (`age1…`; repeatable).
    #[arg(long)]
    pub recipient: Vec<String>,
    /// Seal the bundle to the age recipients in this file (one per line, `#` comments).
    #[arg(long)]
    pub recipients_file: Option<PathBuf>,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
}

/// `labvault verify-bundle`
#[derive(Args, Debug)]
pub struct VerifyBundleArgs {
    /// The bundle: its directory, its `.tar` or its sealed `.tar.age`; `-` reads a `.tar` (or
    /// `.tar.age`) from stdin, e.g. `age -d … | labvault verify-bundle -`.
    pub bundle: PathBuf,
    /// An age identity file that opens a sealed bundle (else its passphrase is asked for, or
    /// read from LABVAULT_BUNDLE_PASSPHRASE or --passphrase-stdin).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Machine-readable report.
    #[arg(long)]
    pub json: bool,
}

/// The env variable a script gives a bundle's passphrase in.
const BUNDLE_PASSPHRASE_ENV: &str = "LABVAULT_BUNDLE_PASSPHRASE";

/// A bundle's passphrase: the next line of --passphrase-stdin, LABVAULT_BUNDLE_PASSPHRASE, or
/// asked (twice for a new one).
fn bundle_passphrase(ctx: &Ctx, new: bool) -> Result<Zeroizing<String>> {
    if ctx.global.passphrase_stdin {
        return ctx.stdin_line("bundle passphrase");
    }
    if let Ok(p) = std::env::var(BUNDLE_PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(p));
    }
    let ask = |prompt: &str| ctx.prompt(prompt, "bundle passphrase", BUNDLE_PASSPHRASE_ENV);
    let one = ask("Bundle passphrase: ")?;
    if new && *one != *ask("Repeat bundle passphrase: ")? {
        return Err(labvault_core::Error::InvalidArgument(
            "the two bundle passphrases differ".into(),
        )
        .into());
    }
    Ok(one)
}

/// What seals the bundle, from the options (the passphrase is asked for after the vault's).
fn seal_of(ctx: &Ctx, a: &ExportProjectArgs) -> Result<Option<BundleSeal>> {
    let mut recipients = a.recipient.clone();
    if let Some(f) = &a.recipients_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
        recipients.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if !recipients.is_empty() {
        return Ok(Some(BundleSeal::recipients(&recipients)?));
    }
    if !a.encrypt {
        return Ok(None);
    }
    let p = bundle_passphrase(ctx, true)?;
    Ok(Some(BundleSeal::passphrase(p.to_string())?))
}

pub fn export_project(ctx: &Ctx, a: ExportProjectArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let opts = BundleOptions {
        all_versions: a.all_versions,
        seal: seal_of(ctx, &a)?,
    };
    let bar = bytes_bar("bundle");
    let cancel = AtomicBool::new(false);
    let s = vault.export_project_bundle(
        &a.project,
        &a.out,
        &opts,
        &mut |p: &TransferProgress<'_>| {
            bar.set_length(p.overall_total);
            bar.set_position(p.overall_done);
            bar.set_message(p.path.to_string());
        },
        &cancel,
    )?;
    bar.finish_and_clear();
    if a.json {
        return print_json(&s);
    }
    println!(
        "bundle {}: {} file(s), {}, {} audit event(s)",
        printable(&s.path.display().to_string()),
        s.files,
        human(s.bytes),
        s.audit_events
    );
    println!(
        "bundle digest (SHA-256 of bundle.json, in the audit log): {}",
        s.bundle_digest
    );
    println!(
        "check it anywhere with: labvault verify-bundle {}",
        printable(&s.path.display().to_string())
    );
    Ok(())
}

/// What opens the bundle, when it is sealed.
fn key_of(ctx: &Ctx, a: &VerifyBundleArgs) -> Result<Option<BundleKey>> {
    if let Some(f) = &a.identity {
        return Ok(Some(BundleKey::identity_file(f)?));
    }
    if a.bundle.as_os_str() == "-" {
        // stdin carries the bundle: a passphrase can only come from the environment.
        return Ok(std::env::var(BUNDLE_PASSPHRASE_ENV)
            .ok()
            .map(BundleKey::passphrase));
    }
    if std::fs::metadata(&a.bundle).is_ok_and(|m| m.is_dir())
        || !labvault_core::bundle_seal::is_sealed(&a.bundle)?
    {
        return Ok(None);
    }
    let p = bundle_passphrase(ctx, false)?;
    Ok(Some(BundleKey::passphrase(p.to_string())))
}

pub fn verify_bundle(ctx: &Ctx, a: VerifyBundleArgs) -> Result<()> {
    let key = key_of(ctx, &a)?;
    let bar = bytes_bar("verify");
    let r = if a.bundle.as_os_str() == "-" {
        let stdin = std::io::stdin().lock();
        labvault_core::bundle::verify_bundle_stream(
            stdin,
            std::path::Path::new("the bundle on stdin"),
            key.as_ref(),
            &mut |done| bar.set_position(done),
        )?
    } else {
        labvault_core::bundle::verify_bundle(&a.bundle, key.as_ref(), &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })?
    };
    bar.finish_and_clear();
    if a.json {
        print_json(&r)?;
    } else {
        for p in &r.problems {
            println!(
                "{}: {} ({})",
                p.kind,
                printable(&p.path),
                printable(&p.detail)
            );
        }
        println!(
            "project {} exported {}: {} file(s), {} re-hashed, {} audit event(s) re-checked; {} problem(s)",
            printable(&r.project),
            r.exported_at,
            r.files_checked,
            human(r.bytes_checked),
            r.audit_events,
            r.problems.len()
        );
        if r.checkpoints > 0 {
            println!(
                "{} tenant-signed checkpoint(s) checked, {} matching an event of the slice; signing key {}",
                r.checkpoints,
                r.checkpoints_matched,
                r.tenant_key.as_deref().unwrap_or("-")
            );
        }
        println!("bundle digest: {}", r.bundle_digest);
    }
    if let Some(first) = r.problems.first() {
        return Err(Outcome {
            code: ErrorCode::Tampered,
            exit: crate::exit::exit_code(ErrorCode::Tampered),
            message: format!(
                "the bundle does not match its manifest: {} problem(s); first: {} {}",
                r.problems.len(),
                first.kind,
                printable(&first.path)
            ),
        }
        .into());
    }
    Ok(())
}

/// `labvault evidence-pack`
#[derive(Args, Debug)]
pub struct EvidencePackArgs {
    /// Project name or id.
    pub project: String,
    /// The folder to create.
    pub out: PathBuf,
    /// A purpose of the processing, for the record of processing activities (repeatable).
    #[arg(long = "purpose")]
    pub purposes: Vec<String>,
    /// Leave out the lab's access review even when signed in to the tenant.
    #[arg(long)]
    pub offline: bool,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
}

/// The lab's access evidence, when this vault is signed in to its tenant and the account may
/// read it; `None` otherwise, with the reason on stderr.
fn tenant_access(vault: &std::sync::Arc<labvault_core::Vault>) -> Option<serde_json::Value> {
    use crate::sync_cmd::{client_for, runtime, tokens};
    let rt = runtime().ok()?;
    let client = client_for(vault).ok()?;
    let session = labvault_sync::Session::resume(client, vault.vault_id(), tokens()).ok()?;
    match rt.block_on(labvault_sync::team::access_evidence(&session)) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("note: the lab's access review is not in the pack: {e}");
            None
        }
    }
}

pub fn evidence_pack(ctx: &Ctx, a: EvidencePackArgs) -> Result<()> {
    let unlocked = ctx.unlock()?;
    let vault = unlocked.shared();
    let tenant = if a.offline || vault.sync_remote().ok().flatten().is_none() {
        None
    } else {
        tenant_access(&vault)
    };
    let s = vault.evidence_pack(
        &a.project,
        &a.out,
        &labvault_core::evidence::EvidenceOptions {
            purposes: a.purposes,
            tenant_access: tenant,
        },
    )?;
    if a.json {
        return print_json(&s);
    }
    println!(
        "evidence pack {}: {} file(s); audit chain {}",
        printable(&s.path.display().to_string()),
        s.files.len(),
        if s.audit_ok {
            "verified"
        } else {
            "DOES NOT VERIFY"
        }
    );
    for (status, n) in &s.controls {
        println!("  {n} control(s) {status}");
    }
    println!(
        "open {}/index.html",
        printable(&s.path.display().to_string())
    );
    Ok(())
}
