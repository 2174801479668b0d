//! The work behind each command, free of Tauri types so the tests drive exactly what the
//! commands run. Each function is a few lines around one core call; they all run on a blocking
//! thread (the commands use `spawn_blocking`).
//!
//! Logging rule: item ids, error codes and counts only; never names, paths or secrets.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use labvault_core::audit::MAX_PAGE;
use labvault_core::governance::export::ExportFormat;
use labvault_core::governance::retention::PlanTier;
use labvault_core::{
    bundle_seal::BundleSeal, Area, BundleOptions, ErrorCode, ExportOptions, ImportEvent,
    ImportOptions, ItemState, Passphrase, RecoveryKey, TransferProgress, Unlock, Vault,
};
use zeroize::Zeroizing;

use crate::dto::*;
use crate::error::CommandError;
use crate::state::{lock, OpGuard, PendingRecovery, Shared};

/// Where progress goes (the command's `onProgress` channel; a collector in tests).
pub type Sink = Arc<dyn Fn(Progress) + Send + Sync>;

fn err(code: ErrorCode, msg: impl Into<String>) -> CommandError {
    CommandError::new(code, msg)
}

/// Milliseconds since `t0`, for the debug-level step timings.
fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

/// Logs a failed command by code only (messages can name user files).
fn logged<T>(what: &str, r: Result<T, CommandError>) -> Result<T, CommandError> {
    if let Err(e) = &r {
        tracing::info!(command = what, code = e.code.as_str(), "command failed");
    }
    r
}

// ----- vault --------------------------------------------------------------------------------

/// `vault_status`.
pub fn status(s: &Shared) -> Result<VaultStatus, CommandError> {
    let dir = s.vault_dir()?;
    let settings = lock(&s.settings).clone();
    Ok(VaultStatus {
        exists: labvault_core::vault_exists(&dir),
        path: dir.display().to_string(),
        unlocked: s.is_unlocked(),
        remembered_on_device: settings.remembered_on_device,
        keyring_available: s.keyring_status(None).available,
        recovery_confirmation_pending: lock(&s.pending_recovery).is_some(),
        app_version: env!("CARGO_PKG_VERSION").to_string(),
        core_version: labvault_core::VERSION.to_string(),
        auto_lock_minutes: settings.auto_lock_minutes,
        read_only_reason: s.vault().ok().and_then(|v| v.read_only_reason()),
    })
}

/// The last group of a recovery key's display form (`XXXX-...-XXXX`).
fn last_group(display: &str) -> Zeroizing<String> {
    Zeroizing::new(display.rsplit('-').next().unwrap_or("").to_string())
}

/// `vault_create`: creates the vault, keeps it unlocked, hands the recovery key to `show`
/// (native dialog, or the e2e file) and never returns it.
pub fn create(
    s: &Shared,
    passphrase: String,
    remember: bool,
    show: &dyn Fn(&str) -> Result<(), CommandError>,
) -> Result<CreateResult, CommandError> {
    let mut passphrase = Zeroizing::new(passphrase);
    if s.is_unlocked() {
        return Err(err(
            ErrorCode::InvalidArgument,
            "A vault is already unlocked; lock it first.",
        ));
    }
    // Moves the buffer into the zeroizing secret type; the wrapper keeps an empty string.
    let passphrase = Passphrase::new(std::mem::take(&mut *passphrase));
    labvault_core::check_new_passphrase(&passphrase)?;
    let dir = s.vault_dir()?;
    let (vault, recovery) = Vault::create(&dir, &passphrase, s.vault_options())?;
    tracing::info!(vault_id = vault.vault_id(), "vault created");
    let (remembered, remember_error) = if remember {
        match vault.remember_on_device() {
            Ok(()) => (true, None),
            Err(e) => (false, Some(CommandError::from(e))),
        }
    } else {
        (false, None)
    };
    s.set_vault(vault);
    {
        let mut st = lock(&s.settings);
        st.remembered_on_device = remembered;
    }
    s.save_settings()?;
    *lock(&s.pending_recovery) = Some(PendingRecovery(recovery));
    show_recovery(s, show)?;
    s.touch();
    Ok(CreateResult {
        status: status(s)?,
        remembered,
        remember_error,
    })
}

/// Shows the pending recovery key again (the user closed the dialog before writing it down).
pub fn show_recovery(
    s: &Shared,
    show: &dyn Fn(&str) -> Result<(), CommandError>,
) -> Result<(), CommandError> {
    let guard = lock(&s.pending_recovery);
    let Some(pending) = guard.as_ref() else {
        return Err(err(
            ErrorCode::InvalidArgument,
            "There is no recovery key waiting for confirmation.",
        ));
    };
    let key = Zeroizing::new(pending.0.to_string());
    drop(guard);
    if let Some(out) = &s.recovery_out {
        // e2e-hooks builds only: the test reads the key from this file.
        std::fs::write(out, key.as_bytes()).map_err(|e| {
            err(
                ErrorCode::Io,
                format!("writing the recovery key for the test: {e}"),
            )
        })?;
        return Ok(());
    }
    show(&key)
}

/// `vault_confirm_recovery`: the user typed the last group of the recovery key back.
pub fn confirm_recovery(s: &Shared, typed: String) -> Result<(), CommandError> {
    let typed = Zeroizing::new(typed);
    let mut guard = lock(&s.pending_recovery);
    let Some(pending) = guard.as_ref() else {
        return Err(err(
            ErrorCode::InvalidArgument,
            "There is no recovery key waiting for confirmation.",
        ));
    };
    let want = last_group(&pending.0);
    let norm = |x: &str| -> Zeroizing<String> {
        Zeroizing::new(
            x.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .flat_map(|c| c.to_uppercase())
                .collect(),
        )
    };
    let (a, b) = (norm(&typed), norm(&want));
    let same = a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0;
    if !same {
        return Err(err(
            ErrorCode::InvalidRecoveryKey,
            "That is not the last group of the recovery key shown. Look at the key you saved.",
        ));
    }
    *guard = None;
    Ok(())
}

/// How `unlock` opens the vault.
pub enum UnlockWith {
    /// Passphrase.
    Passphrase(String),
    /// Recovery key as typed.
    Recovery(String),
    /// OS keyring.
    Keyring,
}

/// `vault_unlock`, `vault_unlock_recovery`, `vault_unlock_keyring`.
pub fn unlock(s: &Shared, how: UnlockWith) -> Result<VaultStatus, CommandError> {
    if s.is_unlocked() {
        return Err(err(
            ErrorCode::InvalidArgument,
            "The vault is already unlocked.",
        ));
    }
    let t0 = Instant::now();
    let dir = s.vault_dir()?;
    let opts = s.vault_options();
    let r = match how {
        UnlockWith::Passphrase(p) => {
            let p = Passphrase::new(p);
            Vault::unlock(&dir, Unlock::Passphrase(&p), opts)
        }
        UnlockWith::Recovery(r) => {
            let r = Zeroizing::new(r);
            let key = RecoveryKey::parse(&r).map_err(|e| {
                CommandError::new(
                    ErrorCode::InvalidRecoveryKey,
                    format!("invalid recovery key: {e}"),
                )
            })?;
            Vault::unlock(&dir, Unlock::RecoveryKey(&key), opts)
        }
        UnlockWith::Keyring => Vault::unlock(&dir, Unlock::Keyring, opts),
    };
    let vault = logged("vault_unlock", r.map_err(CommandError::from))?;
    tracing::info!(
        vault_id = vault.vault_id(),
        ms = ms_since(t0),
        "vault unlocked"
    );
    s.set_vault(vault);
    s.touch();
    status(s)
}

/// `vault_lock`.
pub fn lock_vault(s: &Shared) -> Result<(), CommandError> {
    if s.lock_vault() {
        tracing::info!("vault locked");
    }
    Ok(())
}

/// `vault_change_passphrase`: the core checks `current` (a wrong one is audited), then re-wraps.
pub fn change_passphrase(s: &Shared, current: String, new: String) -> Result<(), CommandError> {
    let current = Passphrase::new(current);
    let new = Passphrase::new(new);
    logged(
        "vault_change_passphrase",
        s.with_vault(|v| match v.change_passphrase(&current, &new) {
            Err(labvault_core::Error::WrongPassphrase) => Err(err(
                ErrorCode::WrongPassphrase,
                "The current passphrase is wrong.",
            )),
            r => Ok(r?),
        }),
    )
}

/// `vault_set_remember`.
pub fn set_remember(s: &Shared, remember: bool) -> Result<VaultStatus, CommandError> {
    if remember {
        s.with_vault(|v| Ok(v.remember_on_device()?))?;
    } else {
        Vault::forget_on_device(&s.vault_dir()?, &s.vault_options())?;
    }
    lock(&s.settings).remembered_on_device = remember;
    s.save_settings()?;
    status(s)
}

/// `settings_get`.
pub fn settings_get(s: &Shared, log_dir: Option<&Path>) -> Result<Settings, CommandError> {
    let st = lock(&s.settings).clone();
    Ok(Settings {
        auto_lock_minutes: st.auto_lock_minutes,
        vault_dir: s.vault_dir()?.display().to_string(),
        default_vault_dir: labvault_core::default_vault_dir().map(|d| d.display().to_string()),
        remembered_on_device: st.remembered_on_device,
        log_dir: log_dir.map(|d| d.display().to_string()),
        app_version: env!("CARGO_PKG_VERSION").to_string(),
        core_version: labvault_core::VERSION.to_string(),
    })
}

/// `settings_set`: the vault location can only change while locked.
pub fn settings_set(
    s: &Shared,
    auto_lock_minutes: u32,
    vault_dir: Option<String>,
    log_dir: Option<&Path>,
) -> Result<Settings, CommandError> {
    if !(1..=1440).contains(&auto_lock_minutes) {
        return Err(err(
            ErrorCode::InvalidArgument,
            "Auto-lock must be between 1 and 1440 minutes.",
        ));
    }
    let new_dir = match vault_dir.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(d) => {
            let p = PathBuf::from(d);
            if !p.is_absolute() {
                return Err(err(
                    ErrorCode::InvalidArgument,
                    "The vault location must be an absolute path.",
                ));
            }
            Some(Some(p))
        }
    };
    if let Some(d) = &new_dir {
        let current = lock(&s.settings).vault_dir.clone();
        if *d != current && s.is_unlocked() {
            return Err(err(
                ErrorCode::InvalidArgument,
                "Lock the vault before changing its location.",
            ));
        }
    }
    {
        let mut st = lock(&s.settings);
        st.auto_lock_minutes = auto_lock_minutes;
        if let Some(d) = new_dir {
            st.vault_dir = d;
        }
    }
    s.save_settings()?;
    s.touch();
    settings_get(s, log_dir)
}

// ----- projects and items -------------------------------------------------------------------

/// `projects_list`.
pub fn projects_list(s: &Shared) -> Result<Vec<Project>, CommandError> {
    s.with_vault(|v| Ok(v.list_projects()?.into_iter().map(Into::into).collect()))
}

/// `project_create`.
pub fn project_create(s: &Shared, name: &str) -> Result<Project, CommandError> {
    logged(
        "project_create",
        s.with_vault(|v| Ok(v.create_project(name)?.into())),
    )
}

/// `items_page`.
pub fn items_page(
    s: &Shared,
    query: &ItemQuery,
    offset: u64,
    limit: u64,
) -> Result<ItemPage, CommandError> {
    let t0 = Instant::now();
    let r = s.with_vault(|v| {
        let page = v.items_page(&query.to_core(), offset, limit)?;
        Ok(ItemPage {
            total: page.total,
            rows: page.rows.into_iter().map(Into::into).collect(),
        })
    });
    tracing::debug!(offset, limit, ms = ms_since(t0), "items_page");
    r
}

/// `item_details`.
pub fn item_details(s: &Shared, item_id: &str) -> Result<ItemDetails, CommandError> {
    s.with_vault(|v| Ok(v.item_details(item_id, 200)?.into()))
}

/// `item_move`.
pub fn item_move(
    s: &Shared,
    item_id: &str,
    area: Option<Area>,
    path: Option<&str>,
) -> Result<ItemRow, CommandError> {
    logged(
        "item_move",
        s.with_vault(|v| {
            lock(&s.views).remove(item_id);
            Ok(v.move_item(item_id, area, path)?.into())
        }),
    )
}

/// `item_delete` (soft delete; refused with `on_hold` under a legal hold).
pub fn item_delete(s: &Shared, item_id: &str) -> Result<ItemRow, CommandError> {
    logged(
        "item_delete",
        s.with_vault(|v| {
            let r = v.soft_delete(item_id)?;
            lock(&s.views).remove(item_id);
            Ok(r.into())
        }),
    )
}

/// `item_restore`.
pub fn item_restore(s: &Shared, item_id: &str) -> Result<ItemRow, CommandError> {
    logged(
        "item_restore",
        s.with_vault(|v| Ok(v.restore(item_id)?.into())),
    )
}

/// `item_erase`: immediate cryptographic erasure.
pub fn item_erase(s: &Shared, item_id: &str, reason: &str) -> Result<ItemRow, CommandError> {
    if reason.trim().is_empty() {
        return Err(err(
            ErrorCode::InvalidArgument,
            "Give a reason for the erasure (it is recorded in the audit log).",
        ));
    }
    logged(
        "item_erase",
        s.with_vault(|v| {
            let r = v.purge(item_id, reason)?;
            lock(&s.views).remove(item_id);
            Ok(r.into())
        }),
    )
}

/// `vault_stats`.
pub fn stats(s: &Shared) -> Result<Vec<StatRow>, CommandError> {
    s.with_vault(|v| Ok(v.stats()?.into_iter().map(Into::into).collect()))
}

// ----- progress -----------------------------------------------------------------------------

/// Shortest gap between two `progress` messages of one operation (5 per second is smooth
/// enough for a progress bar; measured: at 20 per second an app import of 256 MiB ran at
/// 0.4-0.7 of the CLI's throughput under load).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// Turns core callbacks into [`Progress`] messages, at most one `progress` message every
/// [`PROGRESS_INTERVAL`] (phase changes always go out) so a fast import does not flood the
/// webview: every message re-renders the progress panel, and on a 2-core machine that
/// rendering competes with the import's own encryption threads.
struct Reporter {
    sink: Sink,
    shared: Arc<Shared>,
    last: Mutex<Option<Instant>>,
    state: Mutex<Progress>,
}

impl Reporter {
    fn new(shared: &Arc<Shared>, op: &OpGuard, sink: Sink) -> Reporter {
        Reporter {
            sink,
            shared: shared.clone(),
            last: Mutex::new(None),
            state: Mutex::new(Progress {
                op_id: op.id().to_string(),
                phase: "started".into(),
                path: None,
                file_done: 0,
                file_total: 0,
                overall_done: 0,
                overall_total: 0,
                files_done: 0,
                files_total: 0,
            }),
        }
    }

    fn update(&self, phase: &str, f: impl FnOnce(&mut Progress)) {
        let msg = {
            let mut st = lock(&self.state);
            st.phase = phase.to_string();
            f(&mut st);
            st.clone()
        };
        if phase == "progress" {
            let mut last = lock(&self.last);
            let now = Instant::now();
            let finished = msg.overall_total > 0 && msg.overall_done >= msg.overall_total;
            if !finished && last.is_some_and(|l| now - l < PROGRESS_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        // A long operation is activity: auto-lock must not fire in the middle of it.
        self.shared.touch();
        (self.sink)(msg);
    }

    fn transfer(&self, p: &TransferProgress<'_>) {
        self.update("progress", |st| {
            if st.path.as_deref() != Some(p.path) {
                if st.path.is_some() {
                    st.files_done += 1;
                }
                st.path = Some(p.path.to_string());
            }
            st.file_done = p.file_done;
            st.file_total = p.file_total;
            st.overall_done = p.overall_done;
            st.overall_total = p.overall_total;
        });
    }

    fn counter(&self, done: u64, total: u64) {
        self.update("progress", |st| {
            st.overall_done = done;
            st.overall_total = total;
        });
    }

    /// Final message: `done` (100%), `cancelled` or `failed`.
    fn finish<T>(&self, r: &Result<T, CommandError>, files_done: Option<u64>) {
        let phase = match r {
            Ok(_) => "done",
            Err(e) if e.code == ErrorCode::Cancelled => "cancelled",
            Err(_) => "failed",
        };
        self.update(phase, |st| {
            if r.is_ok() {
                st.overall_done = st.overall_total;
                st.file_done = st.file_total;
                st.files_done = files_done.unwrap_or(st.files_total.max(st.files_done));
            }
        });
    }
}

// ----- transfers ----------------------------------------------------------------------------

/// `import_paths`.
#[allow(clippy::too_many_arguments)]
pub fn import_paths(
    s: &Arc<Shared>,
    project: &str,
    area: Area,
    paths: Vec<String>,
    dest_prefix: Option<String>,
    op_id: &str,
    sink: Sink,
) -> Result<ImportResult, CommandError> {
    let t0 = Instant::now();
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    let sources: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    let opts = ImportOptions {
        dest_prefix: dest_prefix.filter(|p| !p.trim().is_empty()),
        ..Default::default()
    };
    let r = s.with_vault(|v| {
        let report = v.import(
            project,
            area,
            &sources,
            &opts,
            &mut |ev| match ev {
                ImportEvent::Started {
                    files_total,
                    bytes_total,
                } => rep.update("started", |st| {
                    st.files_total = *files_total;
                    st.overall_total = *bytes_total;
                }),
                ImportEvent::Progress {
                    path,
                    file_done,
                    file_total,
                    overall_done,
                    overall_total,
                } => rep.update("progress", |st| {
                    st.path = Some(path.to_string());
                    st.file_done = *file_done;
                    st.file_total = *file_total;
                    st.overall_done = *overall_done;
                    st.overall_total = *overall_total;
                }),
                ImportEvent::FileDone(f) => rep.update("file_done", |st| {
                    st.path = Some(f.path.clone());
                    st.files_done += 1;
                }),
                ImportEvent::FileFailed(f) => rep.update("file_failed", |st| {
                    st.path = Some(f.source.display().to_string());
                    st.files_done += 1;
                }),
            },
            &op.cancel,
        )?;
        Ok(ImportResult::from(report))
    });
    let import_ms = ms_since(t0);
    rep.finish(&r, None);
    if let Ok(rep) = &r {
        tracing::info!(
            imported = rep.imported.len(),
            failed = rep.failed.len(),
            import_ms,
            "import finished"
        );
    }
    logged("import_paths", r)
}

/// `export_item`.
pub fn export_item(
    s: &Arc<Shared>,
    item_id: &str,
    dest_dir: &str,
    overwrite: bool,
    op_id: &str,
    sink: Sink,
) -> Result<ExportResult, CommandError> {
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    rep.update("started", |st| st.files_total = 1);
    let r = s.with_vault(|v| {
        let p = v.export_item(
            item_id,
            Path::new(dest_dir),
            &ExportOptions { overwrite },
            &mut |p| rep.transfer(p),
            &op.cancel,
        )?;
        Ok(ExportResult {
            paths: vec![p.display().to_string()],
            failed: Vec::new(),
        })
    });
    rep.finish(&r, Some(1));
    tracing::info!(item = item_id, ok = r.is_ok(), "export item");
    logged("export_item", r)
}

/// `export_area`.
#[allow(clippy::too_many_arguments)]
pub fn export_area(
    s: &Arc<Shared>,
    project: &str,
    area: Area,
    dest_dir: &str,
    overwrite: bool,
    op_id: &str,
    sink: Sink,
) -> Result<ExportResult, CommandError> {
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    let r = s.with_vault(|v| {
        let r = v.export_area(
            project,
            area,
            Path::new(dest_dir),
            &ExportOptions { overwrite },
            &mut |p| rep.transfer(p),
            &op.cancel,
        )?;
        Ok(ExportResult {
            paths: r.exported.iter().map(|p| p.display().to_string()).collect(),
            failed: r
                .failed
                .iter()
                .map(|f| ExportFailureDto {
                    path: f.path.clone(),
                    code: f.code,
                    message: f.message.clone(),
                })
                .collect(),
        })
    });
    let n = r.as_ref().map(|x| x.paths.len() as u64).ok();
    rep.finish(&r, n);
    logged("export_area", r)
}

/// `project_export_bundle`: the whole project as a bundle at `dest` (a new directory, a `.tar`
/// file, or a `.tar.age` sealed to a passphrase or recipients), with progress; cancelling
/// leaves nothing at `dest`.
pub fn export_bundle(
    s: &Arc<Shared>,
    project: &str,
    dest: &str,
    req: BundleRequest,
    op_id: &str,
    sink: Sink,
) -> Result<BundleResult, CommandError> {
    let BundleRequest {
        all_versions,
        passphrase,
        recipients,
    } = req;
    let passphrase = passphrase.map(Zeroizing::new);
    let seal = match (passphrase, recipients.is_empty()) {
        (Some(_), false) => {
            return Err(err(
                ErrorCode::InvalidArgument,
                "Seal the bundle with a passphrase or with recipients, not both.",
            ))
        }
        (Some(p), true) => Some(BundleSeal::passphrase(p.to_string())?),
        (None, false) => Some(BundleSeal::recipients(&recipients)?),
        (None, true) => None,
    };
    let encrypted = seal.is_some();
    let opts = BundleOptions { all_versions, seal };
    let dest = Path::new(dest.trim());
    if !dest.is_absolute() {
        return Err(err(
            ErrorCode::InvalidArgument,
            "The bundle needs an absolute path.",
        ));
    }
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    let r = s.with_vault(|v| {
        let b =
            v.export_project_bundle(project, dest, &opts, &mut |p| rep.transfer(p), &op.cancel)?;
        Ok(BundleResult {
            path: b.path.display().to_string(),
            encrypted,
            files: b.files,
            bytes: b.bytes,
            audit_events: b.audit_events,
            bundle_digest: b.bundle_digest,
        })
    });
    let n = r.as_ref().map(|x| x.files).ok();
    rep.finish(&r, n);
    logged("project_export_bundle", r)
}

/// `vault_verify`.
pub fn verify(s: &Arc<Shared>, op_id: &str, sink: Sink) -> Result<VerifyResult, CommandError> {
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    let r = s.with_vault(|v| Ok(v.verify(&mut |p| rep.transfer(p), &op.cancel)?.into()));
    rep.finish(&r, None);
    logged("vault_verify", r)
}

/// `operation_cancel`: true when an operation with that id was running.
pub fn cancel(s: &Shared, op_id: &str) -> bool {
    s.cancel_op(op_id)
}

// ----- audit --------------------------------------------------------------------------------

/// `audit_page`.
pub fn audit_page(
    s: &Shared,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<AuditPage, CommandError> {
    let f = filter.to_core()?;
    s.with_vault(|v| {
        Ok(
            v.audit_query(&f, (limit as usize).clamp(1, MAX_PAGE), cursor)?
                .into(),
        )
    })
}

/// `audit_verify`: a broken chain is a result (`ok: false` with the first bad event), not an
/// error, so the badge can show it.
pub fn audit_verify(
    s: &Arc<Shared>,
    op_id: &str,
    sink: Sink,
) -> Result<AuditVerifyResult, CommandError> {
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    let checked = std::sync::atomic::AtomicU64::new(0);
    let r = s.with_vault(|v| {
        let out = v.audit_verify(&mut |done, total| {
            checked.store(done, Ordering::Relaxed);
            rep.counter(done, total)
        });
        match out {
            Ok(reports) => {
                let n: u64 = reports.iter().map(|r| r.events).sum();
                Ok(AuditVerifyResult {
                    ok: true,
                    events_checked: n,
                    first_bad_seq: None,
                    device_id: None,
                    message: format!(
                        "{n} events in {} device chain(s) verify from genesis.",
                        reports.len()
                    ),
                })
            }
            Err(e @ labvault_core::Error::ChainBroken(_)) => {
                let labvault_core::Error::ChainBroken(b) = &e else {
                    unreachable!("matched above")
                };
                Ok(AuditVerifyResult {
                    ok: false,
                    events_checked: checked.load(Ordering::Relaxed),
                    first_bad_seq: Some(b.first_bad_seq),
                    device_id: Some(b.device_id.clone()),
                    message: e.to_string(),
                })
            }
            Err(e) => Err(e.into()),
        }
    });
    rep.finish(&r, None);
    logged("audit_verify", r)
}

/// `audit_export`.
pub fn audit_export(
    s: &Arc<Shared>,
    filter: &AuditFilter,
    format: AuditExportFormat,
    dest_path: &str,
    op_id: &str,
    sink: Sink,
) -> Result<AuditExportResult, CommandError> {
    let f = filter.to_core()?;
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    let format = match format {
        AuditExportFormat::Csv => ExportFormat::Csv,
        AuditExportFormat::Jsonl => ExportFormat::Jsonl,
    };
    let r = s.with_vault(|v| {
        let sum = v.audit_export(&f, format, Path::new(dest_path), &mut |d, t| {
            rep.counter(d, t)
        })?;
        Ok(AuditExportResult {
            path: sum.path.display().to_string(),
            events: sum.events,
            filtered: sum.filtered,
        })
    });
    rep.finish(&r, None);
    logged("audit_export", r)
}

// ----- retention ----------------------------------------------------------------------------

/// `retention_summary`.
pub fn retention_summary(
    s: &Shared,
    project: Option<&str>,
) -> Result<RetentionSummary, CommandError> {
    s.with_vault(|v| {
        let st = v.retention_status(project)?;
        Ok(RetentionSummary {
            now: st
                .now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            projects: st.projects.into_iter().map(Into::into).collect(),
        })
    })
}

/// Largest number of timeline entries returned.
pub const MAX_TIMELINE: usize = 1_000;

/// `retention_timeline`: steps due within `days`, soonest first (held items never step).
pub fn retention_timeline(
    s: &Shared,
    project: Option<&str>,
    days: u32,
) -> Result<RetentionTimeline, CommandError> {
    s.with_vault(|v| Ok(v.retention_timeline(project, days, MAX_TIMELINE)?.into()))
}

/// `retention_items_page`.
pub fn retention_items_page(
    s: &Shared,
    project: Option<&str>,
    offset: u64,
    limit: u64,
) -> Result<RetentionItemsPage, CommandError> {
    s.with_vault(|v| Ok(v.retention_items_page(project, offset, limit)?.into()))
}

/// `retention_policies`.
pub fn retention_policies(s: &Shared) -> Result<RetentionPolicies, CommandError> {
    s.with_vault(|v| Ok((&v.retention_policies()?).into()))
}

/// `retention_policy_set`: returns the policy now in effect at that scope.
pub fn retention_policy_set(
    s: &Shared,
    project: Option<&str>,
    plan: Option<&str>,
    changes: &PolicyPeriods,
) -> Result<PolicyPeriods, CommandError> {
    let ov = changes.to_override()?;
    let plan = plan
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<PlanTier>()
                .map_err(|e| err(ErrorCode::InvalidPolicy, e.to_string()))
        })
        .transpose()?;
    logged(
        "retention_policy_set",
        s.with_vault(|v| Ok((&v.set_retention_policy(project, plan, &ov)?).into())),
    )
}

/// `hold_set`.
pub fn hold_set(s: &Shared, target: &HoldTarget, reason: &str) -> Result<Hold, CommandError> {
    if reason.trim().is_empty() {
        return Err(err(
            ErrorCode::InvalidArgument,
            "Give a reason for the legal hold (case number, request).",
        ));
    }
    logged(
        "hold_set",
        s.with_vault(|v| Ok(v.hold_set(&target.to_core(), reason)?.into())),
    )
}

/// `hold_clear`: number of holds released.
pub fn hold_clear(s: &Shared, target: &HoldTarget) -> Result<u64, CommandError> {
    logged(
        "hold_clear",
        s.with_vault(|v| Ok(v.hold_clear(&target.to_core())?)),
    )
}

/// `holds_list`: active legal holds.
pub fn holds_list(s: &Shared) -> Result<Vec<Hold>, CommandError> {
    s.with_vault(|v| Ok(v.holds()?.into_iter().map(Into::into).collect()))
}

/// `retention_run`.
pub fn retention_run(
    s: &Arc<Shared>,
    op_id: &str,
    sink: Sink,
) -> Result<RetentionRunResult, CommandError> {
    let op = s.start_op(op_id)?;
    let rep = Reporter::new(s, &op, sink);
    let r = s.with_vault(|v| Ok(v.run_retention(&mut |d, t| rep.counter(d, t))?.into()));
    rep.finish(&r, None);
    logged("retention_run", r)
}

// ----- previews -----------------------------------------------------------------------------

/// The preview URL of an item, in the form this platform's webview uses for custom schemes.
pub fn preview_url(item_id: &str) -> String {
    if cfg!(windows) || cfg!(target_os = "android") {
        format!("http://{}.localhost/item/{item_id}", crate::preview::SCHEME)
    } else {
        format!("{}://localhost/item/{item_id}", crate::preview::SCHEME)
    }
}

/// `preview_open`: opens (and audits, as `data.view`) a view of the item, replacing any earlier
/// view of it, and returns where the webview loads it from.
pub fn preview_open(
    s: &Shared,
    item_id: &str,
    version: Option<u32>,
) -> Result<PreviewInfo, CommandError> {
    let h = logged(
        "preview_open",
        s.with_vault(|v| {
            Ok(match version {
                None => v.view_open(item_id)?,
                Some(n) => v.view_open_version(item_id, n)?,
            })
        }),
    )?;
    let key = crate::preview::view_key(item_id, version);
    let info = PreviewInfo {
        url: preview_url(&key),
        media_type: crate::preview::served_media_type(h.media_type()).to_string(),
        size: h.size(),
    };
    lock(&s.views).insert(key, Arc::new(h));
    Ok(info)
}

/// `preview_close`: the next request for this item (or version) opens (and audits) a new view.
pub fn preview_close(s: &Shared, item_id: &str, version: Option<u32>) -> Result<(), CommandError> {
    lock(&s.views).remove(&crate::preview::view_key(item_id, version));
    Ok(())
}

/// Accepts the states `items_page` takes from strings (used by tests and docs).
pub fn parse_states(states: &[&str]) -> Result<Vec<ItemState>, CommandError> {
    states
        .iter()
        .map(|x| x.parse::<ItemState>().map_err(CommandError::from))
        .collect()
}
