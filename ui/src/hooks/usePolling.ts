import { useEffect, useRef } from "react";
import type { AppError } from "../errors";
import type { Result } from "../ipc";

/**
 * Calls `load` now and every `ms` while mounted (and again when `deps` change), handing each
 * result to `onValue` or `onError`; answers that arrive after unmount are dropped.
 */
export function usePolling<T>(load: () => Promise<Result<T>>, ms: number, onValue: (v: T) => void, onError: (e: AppError) => void, deps: unknown[]) {
  const handlers = useRef({ onValue, onError });
  handlers.current = { onValue, onError };
  useEffect(() => {
    let live = true;
    const tick = () =>
      void load().then((r) => {
        if (!live) return;
        if (r.ok) handlers.current.onValue(r.value);
        else handlers.current.onError(r.error);
      });
    tick();
    const t = setInterval(tick, ms);
    return () => {
      live = false;
      clearInterval(t);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}
