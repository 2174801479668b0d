//! `labvault audit ls | export | verify`: query, export and re-verify the vault's hash-chained
//! audit trail. `verify --file` checks an exported file offline, without the vault.

use crate::ctx::Ctx;
use crate::exit::Outcome as ExitOutcome;
use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use labvault_core::audit::AuditFilter;
use labvault_core::governance::audit::{ts_micros, Checkpoint, Outcome};
use labvault_core::governance::export::{verify_export, ExportError, ExportFormat};
use labvault_core::governance::VerifyMode;
use labvault_core::ErrorCode;
use std::io::Write;
use std::path::PathBuf;

/// `labvault audit ...`
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// List audit events, newest first.
    Ls(LsArgs),
    /// Export audit events (the whole log, or a filter) with their chain hashes.
    Export(ExportArgs),
    /// Re-verify the hash chain of the vault, or of an exported file (--file).
    Verify(VerifyArgs),
}

/// Filters shared by `ls` and `export`.
#[derive(Args, Debug, Default)]
pub struct FilterArgs {
    /// Events at or after this time (RFC 3339, e.g. 2026-01-29T00:00:00Z).
    #[arg(long)]
    from: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Exact user.
    #[arg(long)]
    user: Option<String>,
    /// Action prefix, e.g. `data.` or `auth.unlock`.
    #[arg(long)]
    action: Option<String>,
    /// Resource prefix, e.g. `project/<id>`.
    #[arg(long)]
    resource: Option<String>,
    /// success, failure or denied.
    #[arg(long)]
    result: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<AuditFilter> {
        let ts = |s: &Option<String>| -> Result<_> {
            s.as_deref()
                .map(|t| {
                    ts_micros::parse(t)
                        .map_err(|e| anyhow!(labvault_core::Error::InvalidArgument(e.to_string())))
                })
                .transpose()
        };
        let result = self
            .result
            .as_deref()
            .map(|r| r.parse::<Outcome>())
            .transpose()
            .map_err(|e| anyhow!(labvault_core::Error::InvalidArgument(e.to_string())))?;
        Ok(AuditFilter {
            from: ts(&self.from)?,
            to: ts(&self.to)?,
            user: self.user.clone(),
            action_prefix: self.action.clone(),
            resource_prefix: self.resource.clone(),
            result,
        })
    }
}

/// `audit ls`
#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Events per page (1..10000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Continue after a previous page (the cursor it printed).
    #[arg(long)]
    cursor: Option<String>,
    /// Print JSON: {"events": [...], "next_cursor": ...}.
    #[arg(long)]
    json: bool,
}

/// `audit export`
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// csv or jsonl.
    #[arg(long)]
    format: String,
    /// Output file (written atomically).
    #[arg(long)]
    out: PathBuf,
}

/// `audit verify`
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Verify this exported file (CSV or JSON Lines) instead of the vault; needs no passphrase.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The file is a filtered export: allow gaps (each event's own hash and the links between
    /// consecutive events are checked).
    #[arg(long)]
    filtered: bool,
    /// A trusted chain head `DEVICE:SEQ:HASH` the file must reach and match (detects truncation
    /// and rewriting). Repeatable.
    #[arg(long = "expect-head")]
    expect_head: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `labvault audit ...`.
pub fn run(ctx: &Ctx, cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Ls(a) => ls(ctx, a),
        AuditCmd::Export(a) => export(ctx, a),
        AuditCmd::Verify(a) => verify(ctx, a),
    }
}

fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let filter = a.filter.filter()?;
    let vault = ctx.unlock()?;
    let page = vault.audit_query(&filter, a.limit, a.cursor.as_deref())?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &page)?;
        writeln!(out)?;
        return Ok(());
    }
    for e in &page.events {
        writeln!(
            out,
            "{}  {:<8} {:<18} {:<7} {}  {}{}",
            ts_micros::format(e.timestamp),
            e.user,
            e.action,
            e.result,
            e.resource,
            e.detail,
            if e.detail.is_empty() { "" } else { " " }
        )?;
    }
    if let Some(c) = &page.next_cursor {
        writeln!(out, "-- more: --cursor {c}")?;
    }
    Ok(())
}

fn export(ctx: &Ctx, a: ExportArgs) -> Result<()> {
    let format: ExportFormat = a
        .format
        .parse()
        .map_err(|e: ExportError| anyhow!(labvault_core::Error::InvalidArgument(e.to_string())))?;
    let filter = a.filter.filter()?;
    let vault = ctx.unlock()?;
    let bar = crate::progress::bytes_bar("export");
    let s = vault.audit_export(&filter, format, &a.out, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "{} event(s) written to {}{}",
        s.events,
        s.path.display(),
        if s.filtered {
            " (filtered: verify with `labvault audit verify --filtered --file ...`)"
        } else {
            ""
        }
    );
    Ok(())
}

fn parse_head(s: &str) -> Result<Checkpoint> {
    let bad = || {
        anyhow!(labvault_core::Error::InvalidArgument(format!(
            "--expect-head {s:?}: expected DEVICE:SEQ:HASH"
        )))
    };
    let mut parts = s.rsplitn(3, ':');
    let hash = parts.next().ok_or_else(bad)?;
    let seq = parts
        .next()
        .ok_or_else(bad)?
        .parse::<u64>()
        .map_err(|_| bad())?;
    let device = parts.next().ok_or_else(bad)?;
    let head_hash = labvault_core::governance::audit::hex32::parse(hash).map_err(|_| bad())?;
    Ok(Checkpoint {
        device_id: device.to_string(),
        seq,
        head_hash,
    })
}

fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<()> {
    let Some(file) = a.file else {
        let vault = ctx.unlock()?;
        let reports = vault.audit_verify(&mut |_, _| {})?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else {
            for r in &reports {
                let head = r.head.as_ref().map(|h| h.head_string()).unwrap_or_default();
                println!(
                    "device {}: {} event(s), chain intact; head {}:{}",
                    r.device_id, r.events, r.device_id, head
                );
            }
        }
        return Ok(());
    };
    let expected = a
        .expect_head
        .iter()
        .map(|s| parse_head(s))
        .collect::<Result<Vec<_>>>()?;
    let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let mode = if a.filtered {
        VerifyMode::Segments
    } else {
        VerifyMode::Complete
    };
    match verify_export(
        std::io::BufReader::with_capacity(1 << 20, f),
        mode,
        &expected,
        |_| {},
    ) {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for d in &r.devices {
                    let head = d.head.as_ref().map(|h| h.head_string()).unwrap_or_default();
                    println!(
                        "device {}: {} event(s) verified{}; last {}:{}{}",
                        d.device_id,
                        d.events,
                        if d.complete {
                            ", complete from genesis"
                        } else {
                            ""
                        },
                        d.device_id,
                        head,
                        if d.gaps > 0 {
                            format!(
                                "; {} gap(s), {} event(s) not in this file",
                                d.gaps, d.omitted
                            )
                        } else {
                            String::new()
                        }
                    );
                }
            }
            Ok(())
        }
        Err(ExportError::Chain(e)) => Err(anyhow!(ExitOutcome {
            code: ErrorCode::Tampered,
            exit: crate::exit::exit_code(ErrorCode::Tampered),
            message: format!("{}: {e}", file.display()),
        })),
        Err(ExportError::Malformed { line, message }) => Err(anyhow!(ExitOutcome {
            code: ErrorCode::InvalidArgument,
            exit: crate::exit::exit_code(ErrorCode::InvalidArgument),
            message: format!(
                "{} line {line}: not a valid audit export: {message}",
                file.display()
            ),
        })),
        Err(ExportError::Io(e)) => Err(anyhow!(e).context(format!("reading {}", file.display()))),
    }
}
