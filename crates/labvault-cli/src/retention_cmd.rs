//! `labvault retention status | policy ls | policy set | run` and `labvault hold set | clear | ls`.

use crate::ctx::Ctx;
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use labvault_core::governance::retention::{DataType, PlanTier, PolicyOverride, RetentionPeriod};
use labvault_core::retention::HoldTarget;
use std::io::Write;

/// `labvault retention ...`
#[derive(Subcommand, Debug)]
pub enum RetentionCmd {
    /// Retention state of every item and a summary per project.
    Status(StatusArgs),
    /// Show or change retention policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Apply the lifecycle now (also done at every unlock).
    Run,
}

/// `labvault retention policy ...`
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Show the plan, overrides and effective policy of the vault and of each project.
    Ls(JsonFlag),
    /// Change the vault policy (or a project's with --project).
    Set(SetArgs),
}

/// `--json`
#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `retention status`
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only this project (name or id).
    #[arg(long)]
    project: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `retention policy set`
#[derive(Args, Debug)]
pub struct SetArgs {
    /// Apply to this project (name or id) instead of the whole vault.
    #[arg(long)]
    project: Option<String>,
    /// Plan tier (vault only): trial, starter, professional, enterprise.
    #[arg(long)]
    plan: Option<String>,
    /// Periods as DATA_TYPE=PERIOD (research_data=10y, backup=90d, audit_log=7y,
    /// session_data=24h for enterprise); repeatable.
    #[arg(long = "set", value_name = "TYPE=PERIOD")]
    set: Vec<String>,
    /// Grace period between soft delete and erasure (e.g. 30d).
    #[arg(long)]
    grace: Option<String>,
}

/// `labvault hold ...`
#[derive(Subcommand, Debug)]
pub enum HoldCmd {
    /// Put an item (id) or a whole project on legal hold.
    Set(HoldSetArgs),
    /// Release the holds on an item or project.
    Clear(HoldTargetArgs),
    /// List active holds.
    Ls(JsonFlag),
}

/// Target of a hold.
#[derive(Args, Debug)]
pub struct HoldTargetArgs {
    /// Item id.
    #[arg(long, conflicts_with = "project", required_unless_present = "project")]
    item: Option<String>,
    /// Project name or id.
    #[arg(long)]
    project: Option<String>,
}

/// `hold set`
#[derive(Args, Debug)]
pub struct HoldSetArgs {
    #[command(flatten)]
    target: HoldTargetArgs,
    /// Why (e.g. a case or request number); recorded in the audit trail.
    #[arg(long)]
    reason: String,
}

fn invalid(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(labvault_core::Error::InvalidPolicy(e.to_string()))
}

impl HoldTargetArgs {
    fn target(&self) -> HoldTarget {
        match (&self.item, &self.project) {
            (Some(i), _) => HoldTarget::Item(i.clone()),
            (None, Some(p)) => HoldTarget::Project(p.clone()),
            (None, None) => HoldTarget::Item(String::new()),
        }
    }
}

fn date(t: labvault_core::governance::time::OffsetDateTime) -> String {
    labvault_core::governance::audit::ts_micros::format(t)[..10].to_string()
}

/// Runs `labvault retention ...`.
pub fn run(ctx: &Ctx, cmd: RetentionCmd) -> Result<()> {
    match cmd {
        RetentionCmd::Status(a) => status(ctx, a),
        RetentionCmd::Policy(PolicyCmd::Ls(a)) => {
            let v = ctx.unlock()?;
            let s = v.retention_policies()?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            let line = |p: &labvault_core::governance::RetentionPolicy| {
                DataType::ALL
                    .iter()
                    .map(|d| format!("{d}={}", p.period(*d)))
                    .chain(std::iter::once(format!("grace={}", p.grace)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!("plan: {}", s.plan.as_str());
            println!("vault: {}", line(&s.effective));
            for p in &s.projects {
                println!("project {}: {}", p.project, line(&p.effective));
            }
            Ok(())
        }
        RetentionCmd::Policy(PolicyCmd::Set(a)) => {
            let mut ov = PolicyOverride::default();
            for kv in &a.set {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| invalid(format!("{kv:?}: expected TYPE=PERIOD")))?;
                let dt: DataType = k.parse().map_err(invalid)?;
                let p: RetentionPeriod = v.parse().map_err(invalid)?;
                ov.set(dt, p);
            }
            if let Some(g) = &a.grace {
                ov.grace = Some(if g == "0d" {
                    RetentionPeriod::Days(0)
                } else {
                    g.parse().map_err(invalid)?
                });
            }
            let plan = a
                .plan
                .as_deref()
                .map(str::parse::<PlanTier>)
                .transpose()
                .map_err(invalid)?;
            let v = ctx.unlock()?;
            let eff = v.set_retention_policy(a.project.as_deref(), plan, &ov)?;
            println!("{}", serde_json::to_string_pretty(&eff)?);
            Ok(())
        }
        RetentionCmd::Run => {
            let v = ctx.unlock()?;
            let r = v.run_retention(&mut |_, _| {})?;
            println!(
                "checked {} item(s): {} expired, {} erased, {} held, {} failed",
                r.checked, r.expired, r.erased, r.held, r.failed
            );
            Ok(())
        }
    }
}

fn status(ctx: &Ctx, a: StatusArgs) -> Result<()> {
    let v = ctx.unlock()?;
    let s = v.retention_status(a.project.as_deref())?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
        return Ok(());
    }
    for i in &s.items {
        let next = match (i.next_step, i.next_step_at) {
            (Some(step), Some(at)) => format!("{:?} {}", step, date(at)).to_lowercase(),
            _ => "-".into(),
        };
        let state = serde_json::to_value(i.state)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        writeln!(
            out,
            "{:<36} {}/{}/{}  {} {} created {} expires {}  {}  next: {}",
            i.item_id,
            i.project,
            i.area,
            i.path,
            i.data_type,
            i.period,
            date(i.created_at),
            date(i.expires_at),
            state,
            next
        )?;
    }
    for p in &s.projects {
        writeln!(
            out,
            "project {}: active {} ({} B), on hold {} ({} B), soft-deleted {} ({} B), erased {}; due in 7 days: {}, in 30 days: {}",
            p.project, p.active.items, p.active.bytes, p.on_hold.items, p.on_hold.bytes, p.soft_deleted.items, p.soft_deleted.bytes, p.erased.items, p.due_7d, p.due_30d
        )?;
    }
    Ok(())
}

/// Runs `labvault hold ...`.
pub fn run_hold(ctx: &Ctx, cmd: HoldCmd) -> Result<()> {
    match cmd {
        HoldCmd::Set(a) => {
            let v = ctx.unlock()?;
            let h = v.hold_set(&a.target.target(), &a.reason)?;
            println!("hold {} set on {} {}", h.id, h.target_kind, h.target_id);
            Ok(())
        }
        HoldCmd::Clear(a) => {
            let v = ctx.unlock()?;
            let n = v.hold_clear(&a.target())?;
            println!("{n} hold(s) released");
            Ok(())
        }
        HoldCmd::Ls(a) => {
            let v = ctx.unlock()?;
            let holds = v.holds()?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&holds)?);
            } else {
                for h in holds {
                    println!(
                        "{} {} {} since {} by {}: {}",
                        h.id,
                        h.target_kind,
                        h.target_id,
                        date(h.created_at),
                        h.created_by,
                        h.reason
                    );
                }
            }
            Ok(())
        }
    }
}
