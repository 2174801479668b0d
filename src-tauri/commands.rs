//! Tauri commands: each one a few lines that move its arguments onto a blocking thread and call
//! the matching function in [`crate::ops`] (which calls the core). JS passes arguments in
//! camelCase (`itemId`, `opId`, `onProgress`), Tauri's default; see `docs/ipc.md`.

use std::sync::Arc;

use labvault_core::{Area, ErrorCode};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};

use crate::dto::*;
use crate::error::CommandError;
use crate::ops::{self, Sink, UnlockWith};
use crate::state::{AppState, Shared};
use crate::tenant_dto::*;
use crate::tenant_ops;
use crate::watch_dto::*;
use crate::watch_ops;

pub use crate::dto::VaultStatus;

/// Runs `f` on the blocking pool: vault operations do file and database I/O (and the KDF).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| CommandError::new(ErrorCode::Internal, format!("command task failed: {e}")))?
}

fn shared(state: &State<'_, AppState>) -> Arc<Shared> {
    state.0.clone()
}

pub(crate) fn sink(ch: Channel<Progress>) -> Sink {
    Arc::new(move |p| {
        // A closed channel (window reloaded) must not fail the operation.
        let _ = ch.send(p);
    })
}

fn log_dir<R: Runtime>(app: &AppHandle<R>) -> Option<std::path::PathBuf> {
    app.path().app_log_dir().ok()
}

// ----- vault --------------------------------------------------------------------------------

/// Where the vault is, whether it exists and is unlocked.
#[tauri::command]
pub async fn vault_status(state: State<'_, AppState>) -> Result<VaultStatus, CommandError> {
    let s = shared(&state);
    blocking(move || ops::status(&s)).await
}

/// Shows the recovery key in a native dialog (never in the webview).
fn show_recovery_native<R: Runtime>(app: &AppHandle<R>, key: &str) -> Result<(), CommandError> {
    use tauri_plugin_dialog::{DialogExt, MessageDialogKind};
    let text = format!(
        "Write down this recovery key and keep it somewhere safe, away from this computer. \
         It is the only way into the vault if you forget the passphrase, and it will not be \
         shown again once you confirm.\n\n{key}"
    );
    app.dialog()
        .message(text)
        .title("LabVault recovery key")
        .kind(MessageDialogKind::Warning)
        .blocking_show();
    Ok(())
}

/// Creates the vault (unlocked) and shows its recovery key in a native dialog.
/// A passphrase under 8 characters is `invalid_argument`; an existing vault `already_exists`. The recovery key is never returned.
#[tauri::command]
pub async fn vault_create<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    passphrase: String,
    remember: bool,
) -> Result<CreateResult, CommandError> {
    let s = shared(&state);
    blocking(move || {
        ops::create(&s, passphrase, remember, &|key| {
            show_recovery_native(&app, key)
        })
    })
    .await
}

/// Shows the pending recovery key again (until it is confirmed).
/// `invalid_argument` when none is pending.
#[tauri::command]
pub async fn vault_show_recovery<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<(), CommandError> {
    let s = shared(&state);
    blocking(move || ops::show_recovery(&s, &|key| show_recovery_native(&app, key))).await
}

/// Checks the last group of the recovery key the user typed back.
/// Case and spaces do not matter; a wrong group is `invalid_recovery_key`.
#[tauri::command]
pub async fn vault_confirm_recovery(
    state: State<'_, AppState>,
    last_group: String,
) -> Result<(), CommandError> {
    let s = shared(&state);
    blocking(move || ops::confirm_recovery(&s, last_group)).await
}

/// Unlocks with the passphrase.
/// Wrong: `wrong_passphrase`; being created or upgraded by another process: `vault_busy`; already unlocked: `invalid_argument`.
#[tauri::command]
pub async fn vault_unlock(
    state: State<'_, AppState>,
    passphrase: String,
) -> Result<VaultStatus, CommandError> {
    let s = shared(&state);
    blocking(move || ops::unlock(&s, UnlockWith::Passphrase(passphrase))).await
}

/// Unlocks with the recovery key.
/// A typo (checksum) is `invalid_recovery_key`; another vault's key `wrong_recovery_key`.
#[tauri::command]
pub async fn vault_unlock_recovery(
    state: State<'_, AppState>,
    recovery_key: String,
) -> Result<VaultStatus, CommandError> {
    let s = shared(&state);
    blocking(move || ops::unlock(&s, UnlockWith::Recovery(recovery_key))).await
}

/// Unlocks with the key remembered in the OS keyring.
/// No keyring or no entry: `keyring_unavailable`.
#[tauri::command]
pub async fn vault_unlock_keyring(state: State<'_, AppState>) -> Result<VaultStatus, CommandError> {
    let s = shared(&state);
    blocking(move || ops::unlock(&s, UnlockWith::Keyring)).await
}

/// Locks: cancels running operations, drops every key and open preview.
#[tauri::command]
pub async fn vault_lock(state: State<'_, AppState>) -> Result<(), CommandError> {
    let s = shared(&state);
    blocking(move || ops::lock_vault(&s)).await
}

/// Changes the passphrase after checking the current one.
/// A wrong current passphrase is `wrong_passphrase` (and audited as a failed `auth.passwd`).
#[tauri::command]
pub async fn vault_change_passphrase(
    state: State<'_, AppState>,
    current: String,
    new_passphrase: String,
) -> Result<(), CommandError> {
    let s = shared(&state);
    blocking(move || ops::change_passphrase(&s, current, new_passphrase)).await
}

/// Remembers (needs unlocked) or forgets the vault key in the OS keyring.
/// `true` needs the vault unlocked; `keyring_unavailable` without a keyring.
#[tauri::command]
pub async fn vault_set_remember(
    state: State<'_, AppState>,
    remember: bool,
) -> Result<VaultStatus, CommandError> {
    let s = shared(&state);
    blocking(move || ops::set_remember(&s, remember)).await
}

/// Counts and bytes per project, area and state.
#[tauri::command]
pub async fn vault_stats(state: State<'_, AppState>) -> Result<Vec<StatRow>, CommandError> {
    let s = shared(&state);
    blocking(move || ops::stats(&s)).await
}

/// Marks user activity (the UI calls it at most every 30 s on input) for auto-lock.
#[tauri::command]
pub fn activity_ping(state: State<'_, AppState>) -> Result<(), CommandError> {
    state.0.touch();
    Ok(())
}

/// Settings.
#[tauri::command]
pub async fn settings_get<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<Settings, CommandError> {
    let s = shared(&state);
    let dir = log_dir(&app);
    blocking(move || ops::settings_get(&s, dir.as_deref())).await
}

/// Changes settings; `vaultDir` (absolute; empty = default) only while locked.
/// 1..=1440 minutes.
#[tauri::command]
pub async fn settings_set<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    auto_lock_minutes: u32,
    vault_dir: Option<String>,
) -> Result<Settings, CommandError> {
    let s = shared(&state);
    let dir = log_dir(&app);
    blocking(move || ops::settings_set(&s, auto_lock_minutes, vault_dir, dir.as_deref())).await
}

// ----- projects and items -------------------------------------------------------------------

/// Projects, by name.
#[tauri::command]
pub async fn projects_list(state: State<'_, AppState>) -> Result<Vec<Project>, CommandError> {
    let s = shared(&state);
    blocking(move || ops::projects_list(&s)).await
}

/// Creates a project.
/// `already_exists` for a taken name, `invalid_name` for a refused one.
#[tauri::command]
pub async fn project_create(
    state: State<'_, AppState>,
    name: String,
) -> Result<Project, CommandError> {
    let s = shared(&state);
    blocking(move || ops::project_create(&s, &name)).await
}

/// One page of a sorted, filtered item list.
/// `states` empty = active only; `limit` at most 5000; sorted and paged in SQL.
#[tauri::command]
pub async fn items_page(
    state: State<'_, AppState>,
    query: ItemQuery,
    offset: u64,
    limit: u64,
) -> Result<ItemPage, CommandError> {
    let s = shared(&state);
    blocking(move || ops::items_page(&s, &query, offset, limit)).await
}

/// An item with its retention status, hold and audit history.
/// History newest first, at most 200 events.
#[tauri::command]
pub async fn item_details(
    state: State<'_, AppState>,
    item_id: String,
) -> Result<ItemDetails, CommandError> {
    let s = shared(&state);
    blocking(move || ops::item_details(&s, &item_id)).await
}

/// Renames and/or moves an item to another area.
#[tauri::command]
pub async fn item_move(
    state: State<'_, AppState>,
    item_id: String,
    area: Option<Area>,
    path: Option<String>,
) -> Result<ItemRow, CommandError> {
    let s = shared(&state);
    blocking(move || ops::item_move(&s, &item_id, area, path.as_deref())).await
}

/// Soft-deletes an item (`on_hold` under a legal hold).
/// Under a legal hold: `on_hold`.
#[tauri::command]
pub async fn item_delete(
    state: State<'_, AppState>,
    item_id: String,
) -> Result<ItemRow, CommandError> {
    let s = shared(&state);
    blocking(move || ops::item_delete(&s, &item_id)).await
}

/// Restores a soft-deleted item.
#[tauri::command]
pub async fn item_restore(
    state: State<'_, AppState>,
    item_id: String,
) -> Result<ItemRow, CommandError> {
    let s = shared(&state);
    blocking(move || ops::item_restore(&s, &item_id)).await
}

/// Erases an item cryptographically, now (`on_hold` under a legal hold).
/// Under a legal hold: `on_hold`; an empty reason: `invalid_argument`.
#[tauri::command]
pub async fn item_erase(
    state: State<'_, AppState>,
    item_id: String,
    reason: String,
) -> Result<ItemRow, CommandError> {
    let s = shared(&state);
    blocking(move || ops::item_erase(&s, &item_id, &reason)).await
}

/// Opens a preview of an item (or of one of its versions: the sides of a conflict) and
/// returns its URL. Records one `data.view`; an erased item is `erased`.
#[tauri::command]
pub async fn preview_open(
    state: State<'_, AppState>,
    item_id: String,
    version: Option<u32>,
) -> Result<PreviewInfo, CommandError> {
    let s = shared(&state);
    blocking(move || ops::preview_open(&s, &item_id, version)).await
}

/// Closes a preview; the next load of its URL is a new, audited view.
#[tauri::command]
pub fn preview_close(
    state: State<'_, AppState>,
    item_id: String,
    version: Option<u32>,
) -> Result<(), CommandError> {
    ops::preview_close(&state.0, &item_id, version)
}

// ----- transfers ----------------------------------------------------------------------------

/// Imports files and folders with progress; per-file failures are listed in the result.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn import_paths(
    state: State<'_, AppState>,
    project: String,
    area: Area,
    paths: Vec<String>,
    dest_prefix: Option<String>,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<ImportResult, CommandError> {
    let s = shared(&state);
    blocking(move || {
        ops::import_paths(
            &s,
            &project,
            area,
            paths,
            dest_prefix,
            &op_id,
            sink(on_progress),
        )
    })
    .await
}

/// Exports one item into a directory.
/// An existing file without `overwrite`: `already_exists`.
#[tauri::command]
pub async fn export_item(
    state: State<'_, AppState>,
    item_id: String,
    dest_dir: String,
    overwrite: bool,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<ExportResult, CommandError> {
    let s = shared(&state);
    blocking(move || {
        ops::export_item(
            &s,
            &item_id,
            &dest_dir,
            overwrite,
            &op_id,
            sink(on_progress),
        )
    })
    .await
}

/// Exports a whole project as a self-describing bundle (a new directory, a `.tar`, or a
/// `.tar.age` sealed with age): every file (and earlier versions when asked), its manifest with
/// hashes and retention, the project's audit trail and the tenant's signed checkpoints.
/// A sealed bundle whose name does not end in `.tar.age`, or a bad recipient: `invalid_argument`.
#[tauri::command]
pub async fn project_export_bundle(
    state: State<'_, AppState>,
    project: String,
    dest: String,
    options: BundleRequest,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<BundleResult, CommandError> {
    let s = shared(&state);
    blocking(move || ops::export_bundle(&s, &project, &dest, options, &op_id, sink(on_progress)))
        .await
}

/// Exports a whole area into a directory (logical folders recreated).
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn export_area(
    state: State<'_, AppState>,
    project: String,
    area: Area,
    dest_dir: String,
    overwrite: Option<bool>,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<ExportResult, CommandError> {
    let s = shared(&state);
    blocking(move || {
        ops::export_area(
            &s,
            &project,
            area,
            &dest_dir,
            overwrite.unwrap_or(false),
            &op_id,
            sink(on_progress),
        )
    })
    .await
}

/// Decrypts and checks every blob.
#[tauri::command]
pub async fn vault_verify(
    state: State<'_, AppState>,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<VerifyResult, CommandError> {
    let s = shared(&state);
    blocking(move || ops::verify(&s, &op_id, sink(on_progress))).await
}

/// Cancels a running operation; false when none has that id.
/// False when no operation with that id is running.
#[tauri::command]
pub fn operation_cancel(state: State<'_, AppState>, op_id: String) -> Result<bool, CommandError> {
    Ok(ops::cancel(&state.0, &op_id))
}

// ----- audit --------------------------------------------------------------------------------

/// A page of audit events, newest first.
/// Newest first; empty filter strings mean no filter; a malformed date is `invalid_argument`.
#[tauri::command]
pub async fn audit_page(
    state: State<'_, AppState>,
    filter: AuditFilter,
    cursor: Option<String>,
    limit: u32,
) -> Result<AuditPage, CommandError> {
    let s = shared(&state);
    blocking(move || ops::audit_page(&s, &filter, cursor.as_deref(), limit)).await
}

/// Verifies the hash chains of the audit log.
/// A broken chain is `ok: false` with the device and first bad seq, not an error.
#[tauri::command]
pub async fn audit_verify(
    state: State<'_, AppState>,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<AuditVerifyResult, CommandError> {
    let s = shared(&state);
    blocking(move || ops::audit_verify(&s, &op_id, sink(on_progress))).await
}

/// Exports filtered audit events to CSV or JSON Lines.
#[tauri::command]
pub async fn audit_export(
    state: State<'_, AppState>,
    filter: AuditFilter,
    format: AuditExportFormat,
    dest_path: String,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<AuditExportResult, CommandError> {
    let s = shared(&state);
    blocking(move || ops::audit_export(&s, &filter, format, &dest_path, &op_id, sink(on_progress)))
        .await
}

// ----- retention ----------------------------------------------------------------------------

/// Per-project counts, bytes and due steps.
#[tauri::command]
pub async fn retention_summary(
    state: State<'_, AppState>,
    project: Option<String>,
) -> Result<RetentionSummary, CommandError> {
    let s = shared(&state);
    blocking(move || ops::retention_summary(&s, project.as_deref())).await
}

/// Upcoming lifecycle steps within `days`, soonest first.
/// Soonest first, at most 1000; held items never step, so they are left out.
#[tauri::command]
pub async fn retention_timeline(
    state: State<'_, AppState>,
    project: Option<String>,
    days: u32,
) -> Result<RetentionTimeline, CommandError> {
    let s = shared(&state);
    blocking(move || ops::retention_timeline(&s, project.as_deref(), days)).await
}

/// A page of per-item retention status.
#[tauri::command]
pub async fn retention_items_page(
    state: State<'_, AppState>,
    project: Option<String>,
    offset: u64,
    limit: u64,
) -> Result<RetentionItemsPage, CommandError> {
    let s = shared(&state);
    blocking(move || ops::retention_items_page(&s, project.as_deref(), offset, limit)).await
}

/// Stored policies and what is in effect.
#[tauri::command]
pub async fn retention_policies(
    state: State<'_, AppState>,
) -> Result<RetentionPolicies, CommandError> {
    let s = shared(&state);
    blocking(move || ops::retention_policies(&s)).await
}

/// Changes the vault's (no `project`) or a project's policy; `invalid_policy` when a rule
/// forbids it.
/// Periods like `24h`, `90d`, `7y`; null keeps the inherited value; breaking a rule (audit log under 6 years, ...) is `invalid_policy`.
#[tauri::command]
pub async fn retention_policy_set(
    state: State<'_, AppState>,
    project: Option<String>,
    plan: Option<String>,
    changes: PolicyPeriods,
) -> Result<PolicyPeriods, CommandError> {
    let s = shared(&state);
    blocking(move || ops::retention_policy_set(&s, project.as_deref(), plan.as_deref(), &changes))
        .await
}

/// Puts an item or project on legal hold.
#[tauri::command]
pub async fn hold_set(
    state: State<'_, AppState>,
    target: HoldTarget,
    reason: String,
) -> Result<Hold, CommandError> {
    let s = shared(&state);
    blocking(move || ops::hold_set(&s, &target, &reason)).await
}

/// Releases the holds on an item or project; returns how many.
/// `not_found` when there was none.
#[tauri::command]
pub async fn hold_clear(
    state: State<'_, AppState>,
    target: HoldTarget,
) -> Result<u64, CommandError> {
    let s = shared(&state);
    blocking(move || ops::hold_clear(&s, &target)).await
}

/// Active legal holds.
#[tauri::command]
pub async fn holds_list(state: State<'_, AppState>) -> Result<Vec<Hold>, CommandError> {
    let s = shared(&state);
    blocking(move || ops::holds_list(&s)).await
}

/// Applies the retention lifecycle now.
#[tauri::command]
pub async fn retention_run(
    state: State<'_, AppState>,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<RetentionRunResult, CommandError> {
    let s = shared(&state);
    blocking(move || ops::retention_run(&s, &op_id, sink(on_progress))).await
}

// ----- file dialogs -------------------------------------------------------------------------

/// e2e-hooks builds: the path(s) a test put in `var` instead of a native dialog.
fn e2e_paths(var: &str) -> Option<Vec<String>> {
    if !cfg!(feature = "e2e-hooks") {
        return None;
    }
    let v = std::env::var(var).ok()?;
    Some(
        v.split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn path_string(p: tauri_plugin_dialog::FilePath) -> Option<String> {
    p.into_path().ok().map(|p| p.display().to_string())
}

/// Native "open files" dialog for import.
/// Empty when the dialog was cancelled.
#[tauri::command]
pub async fn pick_import_files<R: Runtime>(app: AppHandle<R>) -> Result<Vec<String>, CommandError> {
    if let Some(p) = e2e_paths("LABVAULT_E2E_PICK_IMPORT") {
        return Ok(p);
    }
    blocking(move || {
        use tauri_plugin_dialog::DialogExt;
        Ok(app
            .dialog()
            .file()
            .set_title("Import files")
            .blocking_pick_files()
            .unwrap_or_default()
            .into_iter()
            .filter_map(path_string)
            .collect())
    })
    .await
}

/// Native "choose folder" dialog for import.
#[tauri::command]
pub async fn pick_import_folder<R: Runtime>(
    app: AppHandle<R>,
) -> Result<Option<String>, CommandError> {
    if let Some(p) = e2e_paths("LABVAULT_E2E_PICK_IMPORT") {
        return Ok(p.into_iter().next());
    }
    blocking(move || {
        use tauri_plugin_dialog::DialogExt;
        Ok(app
            .dialog()
            .file()
            .set_title("Import a folder")
            .blocking_pick_folder()
            .and_then(path_string))
    })
    .await
}

/// Native "choose folder" dialog for export destinations.
#[tauri::command]
pub async fn pick_export_dir<R: Runtime>(
    app: AppHandle<R>,
) -> Result<Option<String>, CommandError> {
    if let Some(p) = e2e_paths("LABVAULT_E2E_PICK_DIR") {
        return Ok(p.into_iter().next());
    }
    blocking(move || {
        use tauri_plugin_dialog::DialogExt;
        Ok(app
            .dialog()
            .file()
            .set_title("Export to folder")
            .blocking_pick_folder()
            .and_then(path_string))
    })
    .await
}

/// Native "save as" dialog (audit exports).
#[tauri::command]
pub async fn pick_save_path<R: Runtime>(
    app: AppHandle<R>,
    default_name: Option<String>,
) -> Result<Option<String>, CommandError> {
    if let Some(p) = e2e_paths("LABVAULT_E2E_SAVE_PATH") {
        // The hooked answer is the listed path with the suggested name's extension (`.csv`,
        // `.tar.age`, ...), else the first.
        let ext = default_name
            .as_deref()
            .and_then(|n| n.split_once('.'))
            .map(|(_, e)| format!(".{e}"));
        let pick = ext
            .and_then(|e| p.iter().find(|c| c.ends_with(&e)).cloned())
            .or_else(|| p.into_iter().next());
        return Ok(pick);
    }
    blocking(move || {
        use tauri_plugin_dialog::DialogExt;
        let mut d = app.dialog().file().set_title("Save as");
        if let Some(n) = default_name.filter(|n| !n.is_empty()) {
            d = d.set_file_name(n);
        }
        Ok(d.blocking_save_file().and_then(path_string))
    })
    .await
}

// ----- tenant: sign-in ----------------------------------------------------------------------

/// Where this vault stands with its lab's tenant (local; no network).
#[tauri::command]
pub async fn tenant_status(state: State<'_, AppState>) -> Result<TenantStatus, CommandError> {
    let s = shared(&state);
    blocking(move || tenant_ops::status(&s)).await
}

/// Connects the vault to a tenant: the address and pin are checked by a call first.
/// A wrong pin is `pin_mismatch`; an address that does not answer is `unreachable`.
#[tauri::command]
pub async fn tenant_connect(
    state: State<'_, AppState>,
    url: String,
    pin: String,
    tenant: Option<String>,
) -> Result<TenantStatus, CommandError> {
    tenant_ops::connect(&state.0, &url, &pin, tenant.as_deref()).await
}

/// Signs in; `signedIn: false` means a TOTP code is needed (call again with `totp`).
#[tauri::command]
pub async fn tenant_sign_in(
    state: State<'_, AppState>,
    email: String,
    password: String,
    totp: Option<String>,
) -> Result<SignInResult, CommandError> {
    let password = zeroize::Zeroizing::new(password);
    tenant_ops::sign_in(&state.0, &email, &password, totp.as_deref()).await
}

/// Signs out: the session ends on the tenant and its token leaves the OS keyring.
#[tauri::command]
pub async fn tenant_sign_out(state: State<'_, AppState>) -> Result<(), CommandError> {
    tenant_ops::sign_out(&state.0).await
}

/// Steps up with a TOTP code before an admin action the tenant answered with `mfa_required`.
#[tauri::command]
pub async fn tenant_step_up(state: State<'_, AppState>, code: String) -> Result<(), CommandError> {
    tenant_ops::step_up(&state.0, &code).await
}

/// The user's devices on the tenant.
#[tauri::command]
pub async fn devices_list(state: State<'_, AppState>) -> Result<Vec<UserDevice>, CommandError> {
    tenant_ops::devices(&state.0).await
}

/// Approves a waiting device of the user from the pairing code it shows; returns its name.
#[tauri::command]
pub async fn device_approve(
    state: State<'_, AppState>,
    code: String,
) -> Result<String, CommandError> {
    tenant_ops::approve_device(&state.0, &code).await
}

/// Revokes one of the user's other devices.
#[tauri::command]
pub async fn device_revoke(
    state: State<'_, AppState>,
    device_id: String,
) -> Result<(), CommandError> {
    tenant_ops::revoke_device(&state.0, &device_id).await
}

// ----- tenant: sync -------------------------------------------------------------------------

/// Per-project sync state (local; no network).
#[tauri::command]
pub async fn sync_status(state: State<'_, AppState>) -> Result<Vec<ProjectSync>, CommandError> {
    let s = shared(&state);
    blocking(move || tenant_ops::sync_status(&s)).await
}

/// One sync pass with progress; cancellable with `operation_cancel`.
#[tauri::command]
pub async fn sync_run(
    state: State<'_, AppState>,
    op_id: String,
    on_progress: Channel<Progress>,
) -> Result<SyncReport, CommandError> {
    let s = shared(&state);
    tenant_ops::sync_run(&s, &op_id, sink(on_progress)).await
}

/// Items with conflicting versions.
#[tauri::command]
pub async fn sync_conflicts(state: State<'_, AppState>) -> Result<Vec<SyncConflict>, CommandError> {
    let s = shared(&state);
    blocking(move || tenant_ops::conflicts(&s)).await
}

/// Keeps one version of a conflicted item as its head; returns the new head version.
#[tauri::command]
pub async fn conflict_resolve(
    state: State<'_, AppState>,
    item_id: String,
    keep: u32,
) -> Result<u32, CommandError> {
    let s = shared(&state);
    blocking(move || tenant_ops::resolve_conflict(&s, &item_id, keep)).await
}

// ----- tenant: team -------------------------------------------------------------------------

/// The team and the access matrix (Owners/Admins); the caller's own access otherwise.
#[tauri::command]
pub async fn team_view(
    state: State<'_, AppState>,
    stale_days: Option<u32>,
) -> Result<Team, CommandError> {
    tenant_ops::team_view(&state.0, stale_days).await
}

/// Sets a member's role on one project (may answer `mfa_required`).
#[tauri::command]
pub async fn team_set_project_role(
    state: State<'_, AppState>,
    project_id: String,
    user_id: String,
    role: String,
) -> Result<(), CommandError> {
    tenant_ops::set_project_role(&state.0, &project_id, &user_id, &role).await
}

/// Ends a member's own access to one project; the new key epoch when a shared project rotated.
#[tauri::command]
pub async fn team_remove_project_access(
    state: State<'_, AppState>,
    project_id: String,
    user_id: String,
) -> Result<Option<u32>, CommandError> {
    tenant_ops::remove_project_access(&state.0, &project_id, &user_id).await
}

/// Changes a member's tenant role (may answer `mfa_required`).
#[tauri::command]
pub async fn team_set_tenant_role(
    state: State<'_, AppState>,
    user_id: String,
    role: String,
) -> Result<(), CommandError> {
    tenant_ops::set_tenant_role(&state.0, &user_id, &role).await
}

/// Removes a member from the tenant (may answer `mfa_required`).
#[tauri::command]
pub async fn team_remove_member(
    state: State<'_, AppState>,
    user_id: String,
) -> Result<(), CommandError> {
    tenant_ops::remove_member(&state.0, &user_id).await
}

/// Resets a member's MFA (may answer `mfa_required`).
#[tauri::command]
pub async fn team_reset_mfa(
    state: State<'_, AppState>,
    user_id: String,
) -> Result<(), CommandError> {
    tenant_ops::reset_mfa(&state.0, &user_id).await
}

/// Writes the compliance evidence pack of a project into a new folder: processing record,
/// audit, retention and access evidence, the Part 11 / HIPAA controls matrix, every file hashed.
#[tauri::command]
pub async fn project_evidence_pack(
    state: State<'_, AppState>,
    project: String,
    dest: String,
    purposes: Vec<String>,
) -> Result<EvidenceResult, CommandError> {
    tenant_ops::evidence_pack(&state.0, &project, &dest, purposes).await
}

/// Writes the access review to a path from `pick_save_path` as CSV, JSON or Excel (`.xlsx`), by
/// its extension; returns bytes written.
#[tauri::command]
pub async fn access_review_export(
    state: State<'_, AppState>,
    dest_path: String,
    stale_days: Option<u32>,
) -> Result<u64, CommandError> {
    tenant_ops::access_review_export(&state.0, &dest_path, stale_days).await
}

/// Records the review as done in the tenant's audit trail, with what it changed.
#[tauri::command]
pub async fn access_review_sign_off(
    state: State<'_, AppState>,
    stale_days: u32,
    changes: Vec<String>,
    note: Option<String>,
) -> Result<(), CommandError> {
    tenant_ops::access_review_sign_off(&state.0, stale_days, changes, note).await
}

/// On a device waiting for approval: whether it is approved now, else its pairing code.
#[tauri::command]
pub async fn device_pairing(state: State<'_, AppState>) -> Result<PairingState, CommandError> {
    tenant_ops::pairing(&state.0).await
}

/// Where sync stands (status line); starts background sync when signed in and approved.
#[tauri::command]
pub async fn sync_state(state: State<'_, AppState>) -> Result<SyncState, CommandError> {
    tenant_ops::sync_state(&state.0).await
}

/// Pauses (`true`) or resumes (`false`, and syncs now) background sync.
#[tauri::command]
pub fn sync_pause(state: State<'_, AppState>, paused: bool) -> Result<(), CommandError> {
    tenant_ops::sync_pause(&state.0, paused)
}

/// Invites someone to the lab; the result's token is for the invitee (shown once).
#[tauri::command]
pub async fn team_invite(
    state: State<'_, AppState>,
    email: String,
    role: String,
    expires_in_hours: Option<u32>,
) -> Result<InvitationSent, CommandError> {
    tenant_ops::invite(&state.0, &email, &role, expires_in_hours).await
}

/// Revokes a pending invitation.
#[tauri::command]
pub async fn team_revoke_invitation(
    state: State<'_, AppState>,
    id: String,
) -> Result<(), CommandError> {
    tenant_ops::revoke_invitation(&state.0, &id).await
}

/// Instrument folder watches with their state.
#[tauri::command]
pub fn watch_list(state: State<'_, AppState>) -> Result<Vec<Watch>, CommandError> {
    state.0.touch();
    watch_ops::list(&state.0)
}

/// Adds an instrument folder watch; it starts at once.
#[tauri::command]
pub fn watch_add(state: State<'_, AppState>, watch: NewWatch) -> Result<Watch, CommandError> {
    state.0.touch();
    watch_ops::add(&state.0, watch)
}

/// Removes a watch (what it imported stays in the vault).
#[tauri::command]
pub fn watch_remove(state: State<'_, AppState>, id: String) -> Result<(), CommandError> {
    state.0.touch();
    watch_ops::remove(&state.0, &id)
}

/// Pauses (`true`) or resumes (`false`) a watch.
#[tauri::command]
pub fn watch_pause(
    state: State<'_, AppState>,
    id: String,
    paused: bool,
) -> Result<Watch, CommandError> {
    state.0.touch();
    watch_ops::pause(&state.0, &id, paused)
}

/// A watch with its activity list and latest imports.
#[tauri::command]
pub fn watch_details(state: State<'_, AppState>, id: String) -> Result<WatchDetails, CommandError> {
    watch_ops::details(&state.0, &id)
}

/// The signed-in account as the lab's server sees it (role, MFA on or off).
#[tauri::command]
pub async fn account_info(state: State<'_, AppState>) -> Result<AccountInfo, CommandError> {
    tenant_ops::account_info(&state.0).await
}

/// Starts turning on two-factor authentication: the secret and its QR code, shown once.
#[tauri::command]
pub async fn account_mfa_start(state: State<'_, AppState>) -> Result<MfaEnrollment, CommandError> {
    tenant_ops::mfa_start(&state.0).await
}

/// Finishes it with a first code from the authenticator; the recovery codes, shown once.
#[tauri::command]
pub async fn account_mfa_confirm(
    state: State<'_, AppState>,
    code: String,
) -> Result<Vec<String>, CommandError> {
    tenant_ops::mfa_confirm(&state.0, &code).await
}

/// Changes the lab password (the current one is checked); other sessions are logged out.
#[tauri::command]
pub async fn account_change_password(
    state: State<'_, AppState>,
    current_password: String,
    new_password: String,
) -> Result<u32, CommandError> {
    tenant_ops::change_password(&state.0, current_password.into(), new_password.into()).await
}

/// How a project is shared: members and roles from the verified membership log, the key
/// epoch, the offline lease, and why it is locked here if it is; members' emails when the
/// tenant answers within 3 s.
#[tauri::command]
pub async fn project_sharing(
    state: State<'_, AppState>,
    project: String,
) -> Result<ProjectSharing, CommandError> {
    tenant_ops::project_sharing(&state.0, &project).await
}

/// A page of the lab's own audit log, newest first (Owners and Admins; same filters as the
/// vault's log).
#[tauri::command]
pub async fn tenant_audit_page(
    state: State<'_, AppState>,
    filter: AuditFilter,
    cursor: Option<String>,
    limit: u32,
) -> Result<AuditPage, CommandError> {
    tenant_ops::tenant_audit_page(&state.0, &filter, cursor, limit).await
}

/// Re-verifies the lab's whole audit chain on this device (a broken chain is a result).
#[tauri::command]
pub async fn tenant_audit_verify(
    state: State<'_, AppState>,
) -> Result<AuditVerifyResult, CommandError> {
    tenant_ops::tenant_audit_verify(&state.0).await
}

/// Writes the lab's audit log (filtered) to `destPath` as CSV or JSON Lines.
#[tauri::command]
pub async fn tenant_audit_export(
    state: State<'_, AppState>,
    filter: AuditFilter,
    format: AuditExportFormat,
    dest_path: String,
) -> Result<AuditExportResult, CommandError> {
    tenant_ops::tenant_audit_export(&state.0, &filter, format, &dest_path).await
}

/// Sets sync's bandwidth limit in KiB/s (null: none); saved, and applied to a running sync.
#[tauri::command]
pub fn sync_set_bandwidth(
    state: State<'_, AppState>,
    kib_per_sec: Option<u32>,
) -> Result<Option<u32>, CommandError> {
    tenant_ops::set_bandwidth(&state.0, kib_per_sec)
}

/// Keeps both sides of a conflict: version `other` becomes a file of its own at `newPath`
/// (same project and area), the item keeps version `keep`. Gives the new file's path.
#[tauri::command]
pub async fn conflict_keep_both(
    state: State<'_, AppState>,
    item_id: String,
    keep: u32,
    other: u32,
    new_path: String,
) -> Result<String, CommandError> {
    let s = shared(&state);
    blocking(move || tenant_ops::keep_both(&s, &item_id, keep, other, &new_path)).await
}
