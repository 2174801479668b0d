//! The core vault subcommands.

use crate::ctx::{Ctx, Session};
use crate::exit::{Outcome, EXIT_PARTIAL};
use crate::progress::{bytes_bar, BatchedLines};
use anyhow::Result;
use clap::{Args, Subcommand};
use labvault_core::{
    Area, DataType, Error as CoreError, ErrorCode, ExportOptions, ImportEvent, ImportOptions,
    ItemInfo, ItemState, ListFilter, TransferProgress, Unlock, Vault,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// `--json` for listing commands.
#[derive(Args, Debug)]
pub struct JsonArg {
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Print the recovery key only (for scripts); it is still shown only this once.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ProjectCmd {
    /// Create a project.
    Create {
        /// Project name (unique; no `/`, NUL, at most 255 bytes).
        name: String,
    },
    /// List projects.
    Ls(JsonArg),
    /// Share a project with a member of the lab's tenant (or change their role).
    Share(crate::share_cmd::ShareArgs),
    /// The members of a shared project, their roles and safety numbers.
    Members(crate::share_cmd::MembersArgs),
    /// Remove a member from a shared project; its key rotates.
    Unshare(crate::share_cmd::UnshareArgs),
    /// Rotate a shared project's key for new data.
    Rotate(crate::share_cmd::RotateArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Project name or id.
    #[arg(long, short)]
    pub project: String,
    /// Area: uploads, workspace, plots, exports.
    #[arg(long, short, default_value = "uploads")]
    pub area: Area,
    /// Logical directory inside the area to import under.
    #[arg(long)]
    pub into: Option<String>,
    /// Data type (default by area: uploads → research_data, others → analysis_result).
    #[arg(long)]
    pub data_type: Option<DataType>,
    /// Print the import report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Files and directories to import.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Project name or id.
    #[arg(long, short)]
    pub project: Option<String>,
    /// Area.
    #[arg(long, short)]
    pub area: Option<Area>,
    /// Only paths starting with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only paths containing this (case-insensitive).
    #[arg(long, short = 's')]
    pub contains: Option<String>,
    /// Only items in this state [default: active].
    #[arg(long)]
    pub state: Option<ItemState>,
    /// Items in every state.
    #[arg(long, conflicts_with = "state")]
    pub all: bool,
    /// Only this data type.
    #[arg(long)]
    pub data_type: Option<DataType>,
    /// Only this media type (e.g. text/csv).
    #[arg(long)]
    pub media_type: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Project name or id.
    #[arg(long, short)]
    pub project: String,
    /// Area of the item (or the area to export whole when no ITEM is given).
    #[arg(long, short)]
    pub area: Option<Area>,
    /// Replace existing files at the destination.
    #[arg(long)]
    pub overwrite: bool,
    /// `ITEM DEST` (item id or path) or just `DEST` with --area to export a whole area.
    #[arg(required = true, num_args = 1..=2, value_name = "[ITEM] DEST")]
    pub targets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct MvArgs {
    /// Project name or id.
    #[arg(long, short)]
    pub project: Option<String>,
    /// Area the item is in.
    #[arg(long, short)]
    pub area: Option<Area>,
    /// Move to this area.
    #[arg(long)]
    pub to_area: Option<Area>,
    /// Item id or path.
    pub item: String,
    /// New logical path (default: keep).
    pub new_path: Option<String>,
}

#[derive(Args, Debug)]
pub struct ItemsArgs {
    /// Project name or id (needed when items are given by path).
    #[arg(long, short)]
    pub project: Option<String>,
    /// Area of the items.
    #[arg(long, short)]
    pub area: Option<Area>,
    /// Item ids or paths.
    #[arg(required = true)]
    pub items: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub items: ItemsArgs,
    /// Why (kept in the item's record).
    #[arg(long, default_value = "user request")]
    pub reason: String,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) fn human(bytes: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

pub fn init(ctx: &Ctx, a: InitArgs) -> Result<()> {
    let dir = ctx.vault_dir()?;
    let p = ctx.initial_passphrase()?;
    let (vault, recovery) = Vault::create(&dir, &p, ctx.vault_options())?;
    let vault = Session::new(vault);
    if a.json {
        print_json(&serde_json::json!({
            "vault": dir,
            "vault_id": vault.vault_id(),
            "recovery_key": recovery.as_str(),
        }))?;
    } else {
        println!("Created vault at {}", dir.display());
        println!();
        println!("Recovery key (shown only this once):");
        println!();
        println!("    {}", recovery.as_str());
        println!();
        println!("Write it down and keep it somewhere safe, away from this computer.");
        println!("It is the only way back in if you forget your passphrase.");
    }
    Ok(())
}

/// `labvault rekey`: rotates the vault's root key.
pub fn rekey(ctx: &Ctx, a: JsonArg) -> Result<()> {
    let dir = ctx.vault_dir()?;
    let p = ctx.passphrase()?;
    let (vault, recovery) = Vault::rotate_root_key_at(&dir, &p, ctx.vault_options())?;
    let vault = Session::new(vault);
    if a.json {
        print_json(&serde_json::json!({
            "vault_id": vault.vault_id(),
            "recovery_key": recovery.as_str(),
        }))?;
    } else {
        println!("The vault's root key was rotated: every key it wrapped was re-wrapped and the");
        println!("catalog re-keyed; no file was re-encrypted. Your passphrase stays the same.");
        println!();
        println!("New recovery key (shown only this once; the old one no longer works):");
        println!();
        println!("    {}", recovery.as_str());
        println!();
        println!("Write it down and keep it somewhere safe, away from this computer.");
    }
    Ok(())
}

pub fn passwd(ctx: &Ctx) -> Result<()> {
    let dir = ctx.vault_dir()?;
    let old = ctx.passphrase()?;
    let new = ctx.new_passphrase()?;
    // Checks the current passphrase and records `auth.passwd` exactly as the app does.
    let _vault = Session::new(Vault::change_passphrase_at(
        &dir,
        &old,
        &new,
        ctx.vault_options(),
    )?);
    eprintln!("Passphrase changed.");
    Ok(())
}

pub fn recover(ctx: &Ctx) -> Result<()> {
    let dir = ctx.vault_dir()?;
    let rk = ctx.recovery_key()?;
    let vault = Session::new(Vault::unlock(
        &dir,
        Unlock::RecoveryKey(&rk),
        ctx.vault_options(),
    )?);
    let new = ctx.new_passphrase()?;
    vault.reset_passphrase(&new)?;
    eprintln!("Vault recovered; the new passphrase is set.");
    Ok(())
}

pub fn remember(ctx: &Ctx) -> Result<()> {
    let dir = ctx.vault_dir()?;
    let p = ctx.passphrase()?;
    let vault = Session::new(Vault::unlock(
        &dir,
        Unlock::Passphrase(&p),
        ctx.vault_options(),
    )?);
    vault.remember_on_device()?;
    eprintln!("This device now remembers the vault key in the OS keyring.");
    Ok(())
}

pub fn forget(ctx: &Ctx) -> Result<()> {
    let dir = ctx.vault_dir()?;
    if Vault::forget_on_device(&dir, &ctx.vault_options())? {
        eprintln!("The vault key was removed from the OS keyring on this device.");
    } else {
        eprintln!("This device did not remember the vault; nothing to forget.");
    }
    Ok(())
}

pub fn project(ctx: &Ctx, c: ProjectCmd) -> Result<()> {
    match c {
        ProjectCmd::Share(a) => return crate::share_cmd::share(ctx, a),
        ProjectCmd::Members(a) => return crate::share_cmd::members(ctx, a),
        ProjectCmd::Unshare(a) => return crate::share_cmd::unshare(ctx, a),
        ProjectCmd::Rotate(a) => return crate::share_cmd::rotate(ctx, a),
        _ => {}
    }
    let vault = ctx.unlock()?;
    match c {
        ProjectCmd::Create { name } => {
            let p = vault.create_project(&name)?;
            println!("{}", p.id);
        }
        ProjectCmd::Ls(j) => {
            let ps = vault.list_projects()?;
            if j.json {
                print_json(&ps)?;
            } else {
                for p in ps {
                    println!("{}  {}", p.id, p.name);
                }
            }
        }
        ProjectCmd::Share(_)
        | ProjectCmd::Members(_)
        | ProjectCmd::Unshare(_)
        | ProjectCmd::Rotate(_) => unreachable!("handled above"),
    }
    Ok(())
}

pub fn import(ctx: &Ctx, a: ImportArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let bar = bytes_bar("import");
    let cancel = AtomicBool::new(false);
    let opts = ImportOptions {
        data_type: a.data_type,
        dest_prefix: a.into.clone(),
        watch: None,
    };
    let json = a.json;
    let area = a.area;
    let show_path = !bar.is_hidden();
    let mut lines = BatchedLines::new(&bar);
    let report = vault.import(
        &a.project,
        a.area,
        &a.paths,
        &opts,
        &mut |ev| match ev {
            ImportEvent::Started { bytes_total, .. } => bar.set_length(*bytes_total),
            ImportEvent::Progress {
                path, overall_done, ..
            } => {
                bar.set_position(*overall_done);
                if show_path {
                    bar.set_message(crate::exit::printable(path).into_owned());
                }
            }
            // Sent only after the commit: a line here means durable.
            ImportEvent::FileDone(f) if !json => lines.line(format_args!(
                "imported {area}/{} (v{}, {})",
                f.path,
                f.version,
                human(f.size)
            )),
            ImportEvent::FileDone(_) => {}
            ImportEvent::FileFailed(f) => {
                lines.flush();
                bar.suspend(|| {
                    eprintln!(
                        "skipped[{}]: {}",
                        f.code,
                        crate::exit::printable(&f.message)
                    )
                });
            }
        },
        &cancel,
    );
    drop(lines);
    let report = report?;
    bar.finish_and_clear();
    if json {
        print_json(&report)?;
    }
    if !report.failed.is_empty() {
        return Err(Outcome {
            code: report.failed[0].code,
            exit: EXIT_PARTIAL,
            message: format!(
                "{} file(s) imported, {} skipped (see above)",
                report.imported.len(),
                report.failed.len()
            ),
        }
        .into());
    }
    if !json {
        eprintln!("{} file(s) imported", report.imported.len());
    }
    Ok(())
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let items = vault.list(&ListFilter {
        project: a.project,
        area: a.area,
        path_prefix: a.prefix,
        path_contains: a.contains,
        state: a.state,
        all_states: a.all,
        data_type: a.data_type,
        media_type: a.media_type,
    })?;
    if a.json {
        return print_json(&items);
    }
    let mut out = std::io::stdout().lock();
    for i in &items {
        writeln!(
            out,
            "{}  {:<12} {:<9} {:>10}  {}/{}",
            i.id,
            i.state,
            i.area,
            human(i.size),
            i.project,
            i.path
        )?;
    }
    Ok(())
}

fn resolve(
    vault: &Vault,
    project: Option<&str>,
    area: Option<Area>,
    spec: &str,
    states: &[ItemState],
) -> Result<ItemInfo> {
    Ok(vault.find_item(project, area, spec, states)?)
}

pub fn export(ctx: &Ctx, a: ExportArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let bar = bytes_bar("export");
    let cancel = AtomicBool::new(false);
    let opts = ExportOptions {
        overwrite: a.overwrite,
    };
    let mut cb = |p: &TransferProgress<'_>| {
        bar.set_length(p.overall_total);
        bar.set_position(p.overall_done);
        bar.set_message(p.path.to_string());
    };
    let (written, failed) = if a.targets.len() == 2 {
        let item = resolve(
            &vault,
            Some(&a.project),
            a.area,
            &a.targets[0],
            &[ItemState::Active],
        )?;
        let one = vault.export_item(
            &item.id,
            PathBuf::from(&a.targets[1]).as_path(),
            &opts,
            &mut cb,
            &cancel,
        )?;
        (vec![one], Vec::new())
    } else {
        let Some(area) = a.area else {
            return Err(CoreError::InvalidArgument(
                "give an ITEM to export, or --area to export a whole area".into(),
            )
            .into());
        };
        let r = vault.export_area(
            &a.project,
            area,
            PathBuf::from(&a.targets[0]).as_path(),
            &opts,
            &mut cb,
            &cancel,
        )?;
        (r.exported, r.failed)
    };
    bar.finish_and_clear();
    for w in &written {
        println!(
            "exported {}",
            crate::exit::printable(&w.display().to_string())
        );
    }
    for f in &failed {
        eprintln!(
            "not exported[{}]: {}",
            f.code,
            crate::exit::printable(&f.message)
        );
    }
    if let Some(first) = failed.first() {
        return Err(Outcome {
            code: first.code,
            exit: EXIT_PARTIAL,
            message: format!(
                "{} file(s) exported, {} could not be (see above)",
                written.len(),
                failed.len()
            ),
        }
        .into());
    }
    Ok(())
}

pub fn mv(ctx: &Ctx, a: MvArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let item = resolve(
        &vault,
        a.project.as_deref(),
        a.area,
        &a.item,
        &[ItemState::Active],
    )?;
    if a.to_area.is_none() && a.new_path.is_none() {
        return Err(CoreError::InvalidArgument("give a NEW_PATH and/or --to-area".into()).into());
    }
    let moved = vault.move_item(&item.id, a.to_area, a.new_path.as_deref())?;
    println!(
        "moved {}/{} -> {}/{}",
        item.area, item.path, moved.area, moved.path
    );
    Ok(())
}

pub fn rm(ctx: &Ctx, a: ItemsArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    for spec in &a.items {
        let item = resolve(
            &vault,
            a.project.as_deref(),
            a.area,
            spec,
            &[ItemState::Active],
        )?;
        vault.soft_delete(&item.id)?;
        println!("deleted {}/{} (restorable)", item.area, item.path);
    }
    Ok(())
}

pub fn restore(ctx: &Ctx, a: ItemsArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    for spec in &a.items {
        let item = resolve(
            &vault,
            a.project.as_deref(),
            a.area,
            spec,
            &[ItemState::SoftDeleted],
        )?;
        vault.restore(&item.id)?;
        println!("restored {}/{}", item.area, item.path);
    }
    Ok(())
}

pub fn purge(ctx: &Ctx, a: PurgeArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let mut targets = Vec::new();
    for spec in &a.items.items {
        targets.push(resolve(
            &vault,
            a.items.project.as_deref(),
            a.items.area,
            spec,
            &[ItemState::SoftDeleted, ItemState::Active],
        )?);
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() || ctx.global.passphrase_stdin {
            return Err(CoreError::InvalidArgument(
                "purge erases content for good; confirm with --yes".into(),
            )
            .into());
        }
        eprint!(
            "Erase {} item(s) for good? This cannot be undone. Type 'erase' to confirm: ",
            targets.len()
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() != "erase" {
            return Err(CoreError::Cancelled.into());
        }
    }
    for item in targets {
        vault.purge(&item.id, &a.reason)?;
        println!("erased {}/{}", item.area, item.path);
    }
    Ok(())
}

pub fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let bar = bytes_bar("verify");
    let cancel = AtomicBool::new(false);
    let report = vault.verify(
        &mut |p| {
            bar.set_length(p.overall_total);
            bar.set_position(p.overall_done);
            bar.set_message(p.path.to_string());
        },
        &cancel,
    )?;
    bar.finish_and_clear();
    if a.json {
        print_json(&report)?;
    } else {
        for p in &report.problems {
            println!("problem[{}]: {}", p.code, p.message);
        }
        println!(
            "{} blob(s), {} checked; {} problem(s)",
            report.blobs_checked,
            human(report.bytes_checked),
            report.problems.len()
        );
    }
    if let Some(first) = report.problems.first() {
        let code = if report
            .problems
            .iter()
            .any(|p| matches!(p.code, ErrorCode::Tampered | ErrorCode::Truncated))
        {
            ErrorCode::Tampered
        } else {
            first.code
        };
        return Err(Outcome {
            code,
            exit: crate::exit::exit_code(code),
            message: format!(
                "verify found {} problem(s); first: {}",
                report.problems.len(),
                first.message
            ),
        }
        .into());
    }
    Ok(())
}

pub fn stats(ctx: &Ctx, a: JsonArg) -> Result<()> {
    let vault = ctx.unlock()?;
    let rows = vault.stats()?;
    if a.json {
        return print_json(&rows);
    }
    for r in rows {
        println!(
            "{:<24} {:<9} {:<12} {:>6} items {:>10}",
            r.project,
            r.area,
            r.state,
            r.items,
            human(r.bytes)
        );
    }
    Ok(())
}
