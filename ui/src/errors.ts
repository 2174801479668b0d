import type { CommandError } from "./bindings/CommandError";

/**
 * The one error shape the UI handles. Commands reject with `{code, message}` (generated from the
 * Rust `CommandError`); the UI switches on `code` and only ever displays `message`.
 */
export type AppError = CommandError;

/** Codes produced by the UI itself when the IPC layer fails before a command could answer. */
export const UI_ERROR_CODES = {
  /** Tauri refused or could not deliver the call (e.g. a capability does not grant it). */
  ipc: "ipc",
  /** Something rejected with a value that is not a LabVault error. */
  unknown: "unknown",
} as const;

function isCommandError(value: unknown): value is CommandError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Record<string, unknown>).code === "string" &&
    typeof (value as Record<string, unknown>).message === "string"
  );
}

/** Normalises whatever an `invoke` rejected with into an {@link AppError}. */
export function toAppError(reason: unknown): AppError {
  if (isCommandError(reason)) {
    return { code: reason.code, message: reason.message };
  }
  if (typeof reason === "string") {
    return { code: UI_ERROR_CODES.ipc, message: reason };
  }
  if (reason instanceof Error) {
    return { code: UI_ERROR_CODES.unknown, message: reason.message };
  }
  return { code: UI_ERROR_CODES.unknown, message: "An unexpected error occurred." };
}
