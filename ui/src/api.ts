/**
 * The only module that talks to the Rust side. Every command goes through {@link call}, which turns
 * rejections into `{code, message}` and reports `locked` answers (auto-lock raced a command) so the
 * app can show the unlock screen. Argument names are the JS (camelCase) names from docs/ipc.md.
 */
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { toAppError, type AppError } from "./errors";
import type {
  Area,
  AuditFilter,
  AuditPage,
  AuditExportResult,
  AuditVerifyReport,
  CreateResult,
  ExportResult,
  Hold,
  HoldTarget,
  ImportReport,
  ItemDetails,
  ItemQuery,
  ItemRow,
  ItemsPage,
  PolicyPeriods,
  PreviewInfo,
  Progress,
  Project,
  RetentionItemsPage,
  RetentionPolicies,
  RetentionRunResult,
  RetentionSummary,
  RetentionTimeline,
  Settings,
  VaultStatusFull,
  VerifyResult,
} from "./types";

/** Result of a command: either its value or a normalised error, never a thrown exception. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: AppError };

let lockedHandler: (() => void) | null = null;

/** Called whenever a command answers `locked`: the vault was locked behind the UI's back. */
export function setLockedHandler(handler: (() => void) | null): void {
  lockedHandler = handler;
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<Result<T>> {
  try {
    return { ok: true, value: await invoke<T>(command, args) };
  } catch (reason) {
    const error = toAppError(reason);
    if (error.code === "locked" && lockedHandler) lockedHandler();
    return { ok: false, error };
  }
}

function progressChannel(onProgress: (p: Progress) => void): Channel<Progress> {
  const channel = new Channel<Progress>();
  channel.onmessage = onProgress;
  return channel;
}

// ----- vault ---------------------------------------------------------------------------------

export const vaultStatus = () => call<VaultStatusFull>("vault_status");
export const vaultCreate = (passphrase: string, remember: boolean) =>
  call<CreateResult>("vault_create", { passphrase, remember });
export const vaultShowRecovery = () => call<null>("vault_show_recovery");
export const vaultConfirmRecovery = (lastGroup: string) => call<null>("vault_confirm_recovery", { lastGroup });
export const vaultUnlock = (passphrase: string) => call<VaultStatusFull>("vault_unlock", { passphrase });
export const vaultUnlockRecovery = (recoveryKey: string) => call<VaultStatusFull>("vault_unlock_recovery", { recoveryKey });
export const vaultUnlockKeyring = () => call<VaultStatusFull>("vault_unlock_keyring");
export const vaultLock = () => call<null>("vault_lock");
export const vaultChangePassphrase = (current: string, next: string) =>
  call<null>("vault_change_passphrase", { current, new: next });
export const vaultSetRemember = (remember: boolean) => call<VaultStatusFull>("vault_set_remember", { remember });
export const settingsGet = () => call<Settings>("settings_get");
export const settingsSet = (autoLockMinutes: number, vaultDir?: string | null) =>
  call<Settings>("settings_set", { autoLockMinutes, vaultDir: vaultDir ?? null });
export const activityPing = () => call<null>("activity_ping");

// ----- projects and items --------------------------------------------------------------------

export const projectsList = () => call<Project[]>("projects_list");
export const projectCreate = (name: string) => call<Project>("project_create", { name });
export const itemsPage = (query: ItemQuery, offset: number, limit: number) =>
  call<ItemsPage>("items_page", { query, offset, limit });
export const itemDetails = (itemId: string) => call<ItemDetails>("item_details", { itemId });
export const itemMove = (itemId: string, area: Area | null, path: string | null) =>
  call<ItemRow>("item_move", { itemId, area, path });
export const itemDelete = (itemId: string) => call<ItemRow>("item_delete", { itemId });
export const itemRestore = (itemId: string) => call<ItemRow>("item_restore", { itemId });
export const itemErase = (itemId: string, reason: string) => call<ItemRow>("item_erase", { itemId, reason });
/** Opens a preview (audited once as `data.view`) and returns the URL to read it from. */
export const previewOpen = (itemId: string) => call<PreviewInfo>("preview_open", { itemId });
/** Closes a preview so its decrypted view is dropped; the next open is audited again. */
export const previewClose = (itemId: string) => call<null>("preview_close", { itemId });

// ----- transfers -----------------------------------------------------------------------------

export const pickImportFiles = () => call<string[]>("pick_import_files");
export const pickImportFolder = () => call<string | null>("pick_import_folder");
export const pickExportDir = () => call<string | null>("pick_export_dir");
export const pickSavePath = (defaultName: string) => call<string | null>("pick_save_path", { defaultName });

export const importPaths = (
  project: string,
  area: Area,
  paths: string[],
  opId: string,
  onProgress: (p: Progress) => void,
  destPrefix?: string,
) =>
  call<ImportReport>("import_paths", {
    project,
    area,
    paths,
    destPrefix: destPrefix ?? null,
    opId,
    onProgress: progressChannel(onProgress),
  });

export const exportItem = (
  itemId: string,
  destDir: string,
  overwrite: boolean,
  opId: string,
  onProgress: (p: Progress) => void,
) => call<ExportResult>("export_item", { itemId, destDir, overwrite, opId, onProgress: progressChannel(onProgress) });

export const exportArea = (
  project: string,
  area: Area,
  destDir: string,
  opId: string,
  onProgress: (p: Progress) => void,
) => call<ExportResult>("export_area", { project, area, destDir, overwrite: false, opId, onProgress: progressChannel(onProgress) });

export const vaultVerify = (opId: string, onProgress: (p: Progress) => void) =>
  call<VerifyResult>("vault_verify", { opId, onProgress: progressChannel(onProgress) });

export const operationCancel = (opId: string) => call<null>("operation_cancel", { opId });

// ----- audit ---------------------------------------------------------------------------------

export const auditPage = (filter: AuditFilter, cursor: string | null, limit: number) =>
  call<AuditPage>("audit_page", { filter, cursor, limit });
export const auditVerify = (opId: string, onProgress: (p: Progress) => void) =>
  call<AuditVerifyReport>("audit_verify", { opId, onProgress: progressChannel(onProgress) });
export const auditExport = (
  filter: AuditFilter,
  format: "csv" | "jsonl",
  destPath: string,
  opId: string,
  onProgress: (p: Progress) => void,
) => call<AuditExportResult>("audit_export", { filter, format, destPath, opId, onProgress: progressChannel(onProgress) });

// ----- retention -----------------------------------------------------------------------------

export const retentionSummary = (project?: string | null) =>
  call<RetentionSummary>("retention_summary", { project: project ?? null });
export const retentionTimeline = (project: string | null, days: number) =>
  call<RetentionTimeline>("retention_timeline", { project, days });
export const retentionItemsPage = (project: string | null, offset: number, limit: number) =>
  call<RetentionItemsPage>("retention_items_page", { project, offset, limit });
export const retentionPolicies = () => call<RetentionPolicies>("retention_policies");
export const retentionPolicySet = (project: string | null, plan: string | null, changes: PolicyPeriods) =>
  call<PolicyPeriods>("retention_policy_set", { project, plan, changes });
export const retentionRun = (opId: string, onProgress: (p: Progress) => void) =>
  call<RetentionRunResult>("retention_run", { opId, onProgress: progressChannel(onProgress) });
export const holdSet = (target: HoldTarget, reason: string) => call<Hold>("hold_set", { target, reason });
export const holdClear = (target: HoldTarget) => call<number>("hold_clear", { target });

// ----- previews ------------------------------------------------------------------------------

/** Fetches a preview URL's bytes (optionally only the first `maxBytes`) from the preview scheme. */
export async function fetchPreview(
  url: string,
  maxBytes?: number,
  signal?: AbortSignal,
): Promise<Result<{ blob: Blob; truncated: boolean; contentType: string }>> {
  try {
    const headers: Record<string, string> = {};
    if (maxBytes !== undefined) headers.Range = `bytes=0-${maxBytes - 1}`;
    const res = await fetch(url, { headers, signal });
    if (res.status === 403) {
      lockedHandler?.();
      return { ok: false, error: { code: "locked", message: "The vault is locked." } };
    }
    if (res.status === 404) return { ok: false, error: { code: "not_found", message: "The item has no content to show." } };
    if (res.status === 422) {
      // Integrity failure: the body is the error code (tampered, truncated); never content.
      const code = (await res.text()).trim();
      return { ok: false, error: toAppError({ code, message: `The stored data of this item failed its check (${code}).` }) };
    }
    if (res.status === 413) return { ok: false, error: { code: "invalid_argument", message: "The file is too large to preview in one piece." } };
    if (!res.ok) return { ok: false, error: { code: "io", message: `Preview failed (HTTP ${res.status}).` } };
    const blob = await res.blob();
    let truncated = false;
    if (res.status === 206) {
      const range = res.headers.get("Content-Range");
      const total = range ? Number(range.split("/")[1]) : NaN;
      truncated = Number.isFinite(total) ? blob.size < total : blob.size >= (maxBytes ?? Infinity);
    }
    return { ok: true, value: { blob, truncated, contentType: res.headers.get("Content-Type") ?? "" } };
  } catch (reason) {
    if (reason instanceof DOMException && reason.name === "AbortError") {
      return { ok: false, error: { code: "cancelled", message: "Preview cancelled." } };
    }
    return { ok: false, error: toAppError(reason) };
  }
}

// ----- events --------------------------------------------------------------------------------

/** Subscribes to the shell's auto-lock event. */
export function onVaultLocked(handler: () => void): Promise<UnlistenFn> {
  return listen("vault-locked", () => handler()).then(safeUnlisten, () => () => {});
}

/** Unsubscribing must never throw from a React cleanup (e.g. while the window is closing). */
function safeUnlisten(unlisten: UnlistenFn): UnlistenFn {
  return () => {
    try {
      const r = unlisten() as unknown;
      if (r instanceof Promise) r.catch(() => {});
    } catch {
      // Already gone.
    }
  };
}

/** Subscribes to files and folders dropped onto the window (paths, never contents). */
export async function onFileDrop(handler: (event: { type: "over" | "drop" | "leave"; paths: string[] }) => void): Promise<UnlistenFn> {
  try {
    const { getCurrentWebview } = await import("@tauri-apps/api/webview");
    const unlisten = await getCurrentWebview().onDragDropEvent((event) => {
      const p = event.payload;
      if (p.type === "drop") handler({ type: "drop", paths: p.paths });
      else if (p.type === "leave") handler({ type: "leave", paths: [] });
      else handler({ type: "over", paths: [] });
    });
    return safeUnlisten(unlisten);
  } catch {
    return () => {};
  }
}
