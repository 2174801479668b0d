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
