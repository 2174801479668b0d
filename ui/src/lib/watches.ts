import type { Watch } from "../types";

/** Patterns typed one per line (or comma-separated): trimmed, blanks dropped, duplicates once. */
export function parsePatterns(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/[\n,]/)) {
    const p = raw.trim();
    if (p && !out.includes(p)) out.push(p);
  }
  return out;
}

/** A watch's state in words, with the files still being written when there are any. */
export function watchStateText(w: Pick<Watch, "state" | "waiting" | "paused">): string {
  switch (w.state) {
    case "watching":
      return w.waiting ? `Watching · ${w.waiting} file(s) being written` : "Watching";
    case "paused":
      return "Paused";
    case "unavailable":
      return "Folder unavailable";
    case "stopped":
      return "Stopped";
    default:
      return w.paused ? "Paused" : "Starting";
  }
}
