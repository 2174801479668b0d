//! `labvault export-project` and `labvault verify-bundle`: a whole project as a self-describing
//! bundle, and its offline check (no vault, no key needed).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use labvault_core::{ErrorCode, TransferProgress};

use crate::commands::{human, print_json};
use crate::ctx::Ctx;
use crate::exit::{printable, Outcome};
use crate::progress::bytes_bar;

/// `labvault export-project`
#[derive(Args, Debug)]
pub struct ExportProjectArgs {
    /// Project name or id.
    pub project: String,
    /// The bundle to create: a new directory, or a file ending in `.tar`.
    pub out: PathBuf,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
}

/// `labvault verify-bundle`
#[derive(Args, Debug)]
pub struct VerifyBundleArgs {
    /// The bundle: its directory or its `.tar`.
    pub bundle: PathBuf,
    /// Machine-readable report.
    #[arg(long)]
    pub json: bool,
}

pub fn export_project(ctx: &Ctx, a: ExportProjectArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let bar = bytes_bar("bundle");
    let cancel = AtomicBool::new(false);
    let s = vault.export_project_bundle(
        &a.project,
        &a.out,
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

pub fn verify_bundle(a: VerifyBundleArgs) -> Result<()> {
    let bar = bytes_bar("verify");
    let r = labvault_core::bundle::verify_bundle(&a.bundle, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
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
