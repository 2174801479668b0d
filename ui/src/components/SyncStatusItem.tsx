import { useEffect, useState } from "react";
import { syncState } from "../api";
import { syncLine } from "../lib/syncLine";
import type { SyncState } from "../types";

const POLL_MS = 4000;

/**
 * The status line's sync item: last sync, what waits, offline or paused. Asking for the state
 * also starts background sync once this device is signed in and approved. Click: the Sync screen.
 */
export function SyncStatusItem({ onOpen }: { onOpen: () => void }) {
  const [state, setState] = useState<SyncState | null>(null);
  useEffect(() => {
    let live = true;
    const poll = async () => {
      const r = await syncState();
      if (live && r.ok) setState(r.value);
    };
    void poll();
    const t = setInterval(() => void poll(), POLL_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, []);
  const line = syncLine(state);
  return (
    <button
      type="button"
      className={`sync-item sync-item--${line.tone}`}
      data-testid="sync-status-item"
      data-tone={line.tone}
      title={state?.error ? state.error.message : line.text}
      onClick={onOpen}
    >
      <span className="sync-item__dot" aria-hidden="true" />
      {line.text}
    </button>
  );
}
