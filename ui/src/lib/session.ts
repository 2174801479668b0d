/**
 * Everything the UI must forget when the vault locks. Screens register what they hold outside React
 * state (page caches, preview object URLs); {@link lockCleanup} runs it all. React state itself is
 * dropped by unmounting the unlocked tree (it is keyed by the session number).
 */

/** Object URLs for decrypted previews: each must be revoked so the bytes can be freed. */
export class ObjectUrlRegistry {
  private urls = new Set<string>();

  create(blob: Blob): string {
    const url = URL.createObjectURL(blob);
    this.urls.add(url);
    return url;
  }

  revoke(url: string): void {
    if (this.urls.delete(url)) URL.revokeObjectURL(url);
  }

  revokeAll(): void {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls.clear();
  }

  get size(): number {
    return this.urls.size;
  }
}

export const objectUrls = new ObjectUrlRegistry();

const cleanups = new Set<() => void>();

/** Registers something to clear on lock; returns the unregister function. */
export function onLockCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Clears every piece of vault data the UI holds outside React state. */
export function lockCleanup(): void {
  for (const fn of [...cleanups]) {
    try {
      fn();
    } catch {
      // One failing cleanup must not keep the others from running.
    }
  }
  objectUrls.revokeAll();
}

/** The app's top-level phase. */
export type SessionPhase =
  | { kind: "loading" }
  | { kind: "first-run" }
  | { kind: "recovery"; remember: boolean }
  | { kind: "locked"; reason: "start" | "user" | "idle" | "expired" }
  | { kind: "unlocked"; session: number };

export type SessionAction =
  | { type: "status"; exists: boolean; unlocked: boolean; recoveryPending?: boolean }
  | { type: "created"; remember: boolean }
  | { type: "recovery-confirmed" }
  | { type: "unlocked" }
  | { type: "locked"; reason: "user" | "idle" | "expired" };

/**
 * Phase transitions. Every lock leaves the unlocked phase, which unmounts the screens holding vault
 * data; the session number increases so a later unlock mounts a fresh tree.
 */
export function sessionReducer(
  state: { phase: SessionPhase; session: number },
  action: SessionAction,
): { phase: SessionPhase; session: number } {
  switch (action.type) {
    case "status":
      if (!action.exists) return { ...state, phase: { kind: "first-run" } };
      // Created but the recovery key was never confirmed (the app was closed in between).
      if (action.unlocked && action.recoveryPending) return { ...state, phase: { kind: "recovery", remember: false } };
      if (action.unlocked) return { session: state.session + 1, phase: { kind: "unlocked", session: state.session + 1 } };
      return { ...state, phase: { kind: "locked", reason: "start" } };
    case "created":
      return { ...state, phase: { kind: "recovery", remember: action.remember } };
    case "recovery-confirmed":
    case "unlocked":
      return { session: state.session + 1, phase: { kind: "unlocked", session: state.session + 1 } };
    case "locked":
      if (state.phase.kind === "first-run" || state.phase.kind === "loading") return state;
      return { ...state, phase: { kind: "locked", reason: action.reason } };
  }
}

/**
 * Tells the shell about user activity at most once per `intervalMs`, so the Rust idle timer (the one
 * that really locks) knows the user is still there without an IPC call per keystroke.
 */
export function createActivityPinger(ping: () => void, intervalMs = 30_000, now: () => number = Date.now) {
  let last = Number.NEGATIVE_INFINITY;
  return () => {
    const t = now();
    if (t - last >= intervalMs) {
      last = t;
      ping();
    }
  };
}
