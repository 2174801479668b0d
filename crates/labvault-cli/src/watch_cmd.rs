//! `labvault watch add | ls | rm | pause | resume | log | run`: instrument folder watches.
//! `run` keeps them running in the foreground (a lab PC without the desktop app, or a
//! service); `run --once` imports what is complete now and exits.

use crate::ctx::Ctx;
use anyhow::Result;
use clap::{Args, Subcommand};
use labvault_core::watches::WatchSpec;
use labvault_core::{Area, DataType, Error as CoreError};
use labvault_watch::{Activity, Board, Passes, Runner};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `labvault watch ...`
#[derive(Subcommand, Debug)]
pub enum WatchCmd {
    /// Watch a folder an instrument writes into.
    Add(AddArgs),
    /// List watches.
    Ls(JsonFlag),
    /// Stop watching a folder (what it imported stays).
    Rm(NameArg),
    /// Pause a watch.
    Pause(NameArg),
    /// Resume a paused watch.
    Resume(NameArg),
    /// The files a watch imported, newest first.
    Log(LogArgs),
    /// Run the watches in the foreground until interrupted (Ctrl-C).
    Run(RunArgs),
}

/// `--json`
#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A watch by name or id.
#[derive(Args, Debug)]
pub struct NameArg {
    /// Watch name or id.
    name: String,
}

/// `watch add`
#[derive(Args, Debug)]
pub struct AddArgs {
    /// Name of the watch (letters, digits, '.', '_', '-'); it names the watch in the audit log.
    name: String,
    /// The folder the instrument writes into.
    folder: PathBuf,
    /// Target project (name or id).
    #[arg(long)]
    project: String,
    /// Target area.
    #[arg(long, default_value = "uploads")]
    area: Area,
    /// Data type of imported items (default by area).
    #[arg(long)]
    data_type: Option<DataType>,
    /// Only files matching this glob (`*.raw`, `run-*/*.csv`); repeatable.
    #[arg(long = "include")]
    include: Vec<String>,
    /// Never files matching this glob; repeatable (default: `.*`, `*.tmp`, `*.part`, `~$*`).
    #[arg(long = "exclude")]
    exclude: Vec<String>,
    /// Seconds a file must stay unchanged to be complete.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Delete each source from the folder once its stored copy is verified.
    #[arg(long)]
    delete_source: bool,
}

/// `watch log`
#[derive(Args, Debug)]
pub struct LogArgs {
    /// Watch name or id.
    name: String,
    /// How many files.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `watch run`
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Import what is complete now (waiting for files being written) and exit.
    #[arg(long)]
    once: bool,
}

/// Excluded when no `--exclude` is given: what instruments and editors leave while writing.
const DEFAULT_EXCLUDE: [&str; 4] = [".*", "*.tmp", "*.part", "~$*"];

/// Runs a `watch` subcommand.
pub fn run(ctx: &Ctx, cmd: WatchCmd) -> Result<()> {
    match cmd {
        WatchCmd::Add(a) => add(ctx, a),
        WatchCmd::Ls(a) => ls(ctx, a.json),
        WatchCmd::Rm(a) => {
            ctx.unlock()?.watch_remove(&a.name)?;
            eprintln!(
                "Stopped watching; what {} imported stays in the vault.",
                a.name
            );
            Ok(())
        }
        WatchCmd::Pause(a) => {
            ctx.unlock()?.watch_set_paused(&a.name, true)?;
            eprintln!("Paused {}.", a.name);
            Ok(())
        }
        WatchCmd::Resume(a) => {
            ctx.unlock()?.watch_set_paused(&a.name, false)?;
            eprintln!("Resumed {}.", a.name);
            Ok(())
        }
        WatchCmd::Log(a) => log(ctx, a),
        WatchCmd::Run(a) => run_watches(ctx, a),
    }
}

fn add(ctx: &Ctx, a: AddArgs) -> Result<()> {
    if !(a.settle.is_finite() && a.settle >= 0.0) {
        return Err(
            CoreError::InvalidArgument("--settle must be a number of seconds".into()).into(),
        );
    }
    let folder = if a.folder.is_absolute() {
        a.folder
    } else {
        std::env::current_dir()?.join(a.folder)
    };
    let exclude = if a.exclude.is_empty() {
        DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect()
    } else {
        a.exclude
    };
    let v = ctx.unlock()?;
    let w = v.watch_add(&WatchSpec {
        name: a.name,
        folder,
        project: a.project,
        area: a.area,
        data_type: a.data_type,
        include: a.include,
        exclude,
        delete_source: a.delete_source,
        settle_ms: (a.settle * 1000.0).round() as u64,
    })?;
    eprintln!(
        "Watching {} into {}/{} as {:?}. Run `labvault watch run` (or keep the app unlocked).",
        w.folder.display(),
        w.project_name,
        w.area,
        w.name
    );
    Ok(())
}

fn ls(ctx: &Ctx, json: bool) -> Result<()> {
    let v = ctx.unlock()?;
    let watches = v.watches()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&watches)?);
        return Ok(());
    }
    if watches.is_empty() {
        eprintln!("No folder is watched (add one with `labvault watch add`).");
    }
    for w in watches {
        println!(
            "{:<20} {:<8} {}/{} <- {}  ({} imported{})",
            w.name,
            if w.paused { "paused" } else { "active" },
            w.project_name,
            w.area,
            w.folder.display(),
            w.imported,
            if w.delete_source {
                ", sources deleted after verification"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn log(ctx: &Ctx, a: LogArgs) -> Result<()> {
    let v = ctx.unlock()?;
    let w = v.watch(&a.name)?;
    let recent = v.watch_recent(&w.id, a.limit.clamp(1, 10_000))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&recent)?);
        return Ok(());
    }
    for e in recent {
        println!(
            "{}  {}  v{}  {} bytes{}",
            e.imported_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            e.source,
            e.version,
            e.stamp.size,
            if e.source_deleted_at.is_some() {
                "  (source deleted)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Prints each activity entry as it happens (one line each, on stdout).
fn printer() -> Board {
    Board::with_sink(Box::new(|name: &str, a: &Activity| {
        let kind = serde_json::to_value(a.kind).unwrap_or_default();
        println!(
            "{name}: {} {}{}",
            kind.as_str().unwrap_or(""),
            a.source
                .as_deref()
                .map(|s| format!("{s}: "))
                .unwrap_or_default(),
            a.message
        );
    }))
}

fn run_watches(ctx: &Ctx, a: RunArgs) -> Result<()> {
    let v = ctx.unlock()?;
    let watches = v.watches()?;
    if watches.is_empty() {
        eprintln!("No folder is watched (add one with `labvault watch add`).");
        return Ok(());
    }
    if a.once {
        // Passes until nothing is left settling, on this thread.
        let board = Arc::new(Mutex::new(printer()));
        let mut passes = Passes::new(v.shared(), board);
        let started = Instant::now();
        loop {
            let r = passes.pass(started.elapsed().as_millis() as u64)?;
            if r.waiting == 0 && started.elapsed() > Duration::from_millis(50) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        return Ok(());
    }
    let mut runner = Runner::start_on(v.shared(), printer());
    eprintln!(
        "Watching {} folder(s); Ctrl-C stops (an import in progress stops at its next file).",
        watches.len()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let interrupted = rt.block_on(async {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return true,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if !runner.is_running() {
                        return false;
                    }
                }
            }
        }
    });
    runner.stop();
    if interrupted {
        eprintln!("Stopped.");
    }
    Ok(())
}
