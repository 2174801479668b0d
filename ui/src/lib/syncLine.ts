import type { SyncState } from "../bindings";

/** The status line's words and tone for a sync state (`now` for "n minutes ago"). */
export function syncLine(s: SyncState | null, now: Date = new Date()): { text: string; tone: "ok" | "warn" | "error" | "muted" } {
  if (!s || !s.connected) return { text: "Not connected", tone: "muted" };
  if (!s.signedIn) return { text: "Signed out", tone: "muted" };
  if (!s.active) return { text: "Waiting for approval", tone: "warn" };
  const waiting = s.pending > 0 ? ` · ${s.pending.toLocaleString()} waiting` : "";
  if (s.paused) return { text: `Sync paused${waiting}`, tone: "warn" };
  if (s.running) return { text: `Syncing…${waiting}`, tone: "ok" };
  if (s.online === false) return { text: `Offline${waiting}`, tone: "error" };
  if (s.error) return { text: `Sync problem${waiting}`, tone: "error" };
  if (!s.lastPassAt) return { text: "Connecting…", tone: "muted" };
  return { text: `Synced ${ago(s.lastPassAt, now)}${waiting}`, tone: "ok" };
}

function ago(iso: string, now: Date): string {
  const secs = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (secs < 60) return "just now";
  const mins = Math.round(secs / 60);
  if (mins < 60) return `${mins} min ago`;
  const hours = Math.round(mins / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}
