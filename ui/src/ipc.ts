/**
 * The plumbing under the generated command wrappers of api.ts (the only modules that talk to the
 * Rust side): every command goes through {@link call}, which turns rejections into
 * `{code, message}` and reports `locked` answers (auto-lock raced a command) so the app can show
 * the unlock screen; progress arrives on a channel; previews are read from the preview scheme.
 */
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { toAppError, type AppError } from "./errors";
import type { Progress } from "./bindings";

/** Result of a command: either its value or a normalised error, never a thrown exception. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: AppError };

let lockedHandler: (() => void) | null = null;

/** Called whenever a command answers `locked`: the vault was locked behind the UI's back. */
export function setLockedHandler(handler: (() => void) | null): void {
  lockedHandler = handler;
}

/** Invokes one command; the generated wrappers in api.ts are the only callers. */
export async function call<T>(command: string, args?: Record<string, unknown>): Promise<Result<T>> {
  try {
    return { ok: true, value: await invoke<T>(command, args) };
  } catch (reason) {
    const error = toAppError(reason);
    if (error.code === "locked" && lockedHandler) lockedHandler();
    return { ok: false, error };
  }
}

/** A channel delivering an operation's progress messages to `onProgress`. */
export function progressChannel(onProgress: (p: Progress) => void): Channel<Progress> {
  const channel = new Channel<Progress>();
  channel.onmessage = onProgress;
  return channel;
}

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
