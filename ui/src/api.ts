import { invoke } from "@tauri-apps/api/core";
import type { VaultStatus } from "./bindings/VaultStatus";
import { toAppError, type AppError } from "./errors";

/** Result of a command: either its value or a normalised error, never a thrown exception. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: AppError };

async function call<T>(command: string, args?: Record<string, unknown>): Promise<Result<T>> {
  try {
    return { ok: true, value: await invoke<T>(command, args) };
  } catch (reason) {
    return { ok: false, error: toAppError(reason) };
  }
}

/** Whether a vault exists at the default location, and where that is. */
export function vaultStatus(): Promise<Result<VaultStatus>> {
  return call<VaultStatus>("vault_status");
}
