import type { CommandError } from "./bindings/CommandError";
import { ERROR_CODES, type ErrorCode } from "./bindings/ErrorCode";

/** Codes the UI produces itself when the IPC layer fails before a command could answer. */
export type UiErrorCode =
  /** Tauri refused or could not deliver the call (e.g. a capability does not grant it). */
  | "ipc"
  /** A rejection that is not a LabVault error, or a code this UI version does not know. */
  | "unknown";

/**
 * The one error shape the UI handles. Commands reject with `{code, message}` (generated from the
 * Rust `CommandError`); the UI switches on `code` and only ever displays `message`.
 */
export type AppError = { code: ErrorCode | UiErrorCode; message: string };

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

function isCommandError(value: unknown): value is CommandError {
  if (typeof value !== "object" || value === null) return false;
  const { code, message } = value as Record<string, unknown>;
  return typeof code === "string" && KNOWN_CODES.has(code) && typeof message === "string";
}

/** Normalises whatever an `invoke` rejected with into an {@link AppError}. */
export function toAppError(reason: unknown): AppError {
  if (isCommandError(reason)) {
    return { code: reason.code, message: reason.message };
  }
  if (typeof reason === "string") {
    return { code: "ipc", message: reason };
  }
  if (reason instanceof Error) {
    return { code: "unknown", message: reason.message };
  }
  if (typeof reason === "object" && reason !== null) {
    const message = (reason as Record<string, unknown>).message;
    if (typeof message === "string") return { code: "unknown", message };
  }
  return { code: "unknown", message: "An unexpected error occurred." };
}

/**
 * What each code means for the person using the app, written for them (the Rust message adds the
 * specifics, e.g. which file). Keyed by code only: the UI never looks at message text. Codes the
 * shell may add later (e.g. `keyring_locked`) are listed ahead of time; a test checks that every
 * generated code has an entry.
 */
export const ERROR_TEXT: Readonly<Record<string, string>> = {
  wrong_passphrase: "That passphrase is not correct. Check Caps Lock and try again.",
  wrong_recovery_key: "That recovery key does not belong to this vault.",
  invalid_recovery_key: "That is not a valid recovery key. It is the grouped code shown when the vault was created.",
  locked: "The vault is locked. Unlock it to continue.",
  tampered: "Stored data failed its integrity check: it was changed outside LabVault.",
  truncated: "Stored data is incomplete (truncated).",
  not_found: "It no longer exists. Someone may have moved or removed it.",
  already_exists: "Something with that name already exists here.",
  invalid_name: "That name is not allowed. Avoid slashes at the ends, '..' and control characters.",
  invalid_argument: "The request was not valid.",
  unsupported_version: "This vault was written by a newer LabVault. Update the app to open it.",
  corrupt_key_file: "The vault's key file is damaged.",
  corrupt_catalog: "The vault's catalog is damaged.",
  keyring_unavailable: "The system keyring is not available on this device. Unlock with your passphrase.",
  keyring_locked: "The system keyring is locked. Unlock your desktop keyring, or use your passphrase.",
  no_space: "There is not enough free disk space.",
  source_vanished: "A file changed or disappeared while it was being read.",
  cancelled: "The operation was cancelled.",
  vault_busy: "The vault is in use by another LabVault process. Close it and try again.",
  io: "A file could not be read or written.",
  internal: "Something went wrong inside LabVault.",
  erased: "This item was erased; its content no longer exists.",
  on_hold: "A legal hold protects this item: it cannot be deleted or erased until the hold is cleared.",
  invalid_policy: "That retention policy is not allowed.",
  sync_refused: "Something the lab's server sent failed its checks and was refused; nothing here was changed.",
  feed_diverged: "The lab's server no longer has changes this device already applied (it may have been restored from a backup). Sync of that project stopped; nothing was deleted.",
  project_locked: "This shared project is locked on this device: it has not reached the lab's server within the lab's offline period, or access to it was revoked. Connect and sync to unlock it.",
  not_unlocked: "The vault is locked. Unlock it to continue.",
  no_remote: "This vault is not connected to a lab server yet. Connect it under Sync.",
  not_signed_in: "You are not signed in to the lab server (or your session ended). Sign in under Sync.",
  mfa_required: "This needs a current code from your authenticator app.",
  invalid_mfa_code: "That authenticator code is not correct or has expired. Try the current one.",
  invalid_credentials: "Email or password is not correct.",
  device_not_approved: "This device waits for approval: approve it from a device of yours that already syncs (Sync → Devices).",
  device_revoked: "This device was revoked: it no longer syncs, and what it had synced was erased from it.",
  sync_busy: "Another LabVault process is syncing this vault right now. Try again when it finishes.",
  pin_mismatch: "The server's certificate does not match the pin. Check the pin with the lab's administrator: someone may be in between.",
  unreachable: "The lab server cannot be reached. You can keep working offline; changes sync when it is back.",
  forbidden: "Your role does not allow this.",
  conflict: "The lab server refused this because something changed meanwhile or a rule forbids it.",
  rate_limited: "The lab server asked to slow down. Try again in a moment.",
  invalid_input: "The lab server refused the request as invalid.",
  weak_password: "That password is too weak for the lab server's policy.",
  mfa_enrollment_required: "Your lab requires two-factor authentication: enrol an authenticator app first.",
  tenant_expired: "The lab's subscription has expired. Ask its owner to renew it.",
  quota_exceeded: "The lab's storage quota is used up.",
  tenant_error: "The lab server had a problem answering. Try again later.",
  ipc: "The app could not run this action.",
  unknown: "An unexpected error occurred.",
};

/** The human text for a code (falls back to the generic text for codes this UI does not know). */
export function errorText(code: string): string {
  return ERROR_TEXT[code] ?? ERROR_TEXT.unknown!;
}
