import { createContext, useCallback, useContext, useMemo, useReducer, useRef, type ReactNode } from "react";
import { operationCancel, type Result } from "../api";
import { errorText } from "../errors";
import { formatBytes } from "../lib/format";
import {
  fraction,
  initialProgress,
  newOpId,
  overallFraction,
  progressReducer,
  type OpState,
} from "../lib/progress";
import type { Progress } from "../types";

type Runner = <T>(
  kind: string,
  label: string,
  start: (opId: string, onProgress: (p: Progress) => void) => Promise<Result<T>>,
  summarize?: (value: T) => string,
) => Promise<Result<T>>;

/** What screens use: stable for the whole session, so a progress tick never re-renders them. */
interface ProgressActions {
  run: Runner;
  cancel: (opId: string) => void;
  dismiss: (opId: string) => void;
}

// Two contexts: the operations change on every progress tick, and only the panel shows them.
// With one context, every screen re-rendered on each tick (with a 100,000-item workspace that
// was 0.3 s of WebKit CPU during a 1 GiB import, taken from the import on 2 cores).
const ActionsContext = createContext<ProgressActions | null>(null);
const OpsContext = createContext<OpState[] | null>(null);

/** Holds every long operation of the session; unmounted (and so forgotten) on lock. */
export function ProgressProvider({ children }: { children: ReactNode }) {
  const [state, dispatch] = useReducer(progressReducer, initialProgress);
  // Channel messages can arrive at a high rate: batch them to one state update per frame.
  const pending = useRef(new Map<string, Progress>());
  const scheduled = useRef(false);

  const onProgress = useCallback((p: Progress) => {
    pending.current.set(p.opId, p);
    if (scheduled.current) return;
    scheduled.current = true;
    const flush = () => {
      scheduled.current = false;
      const batch = [...pending.current.values()];
      pending.current.clear();
      const at = Date.now();
      for (const progress of batch) dispatch({ type: "progress", progress, at });
    };
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(flush);
    else setTimeout(flush, 16);
  }, []);

  const run = useCallback<Runner>(
    async (kind, label, start, summarize) => {
      const opId = newOpId(kind);
      dispatch({ type: "start", opId, label });
      const result = await start(opId, onProgress);
      // Apply the last progress message before the final state.
      const last = pending.current.get(opId);
      if (last) {
        pending.current.delete(opId);
        dispatch({ type: "progress", progress: last, at: Date.now() });
      }
      if (result.ok) dispatch({ type: "finish", opId, summary: summarize ? summarize(result.value) : undefined });
      else dispatch({ type: "fail", opId, error: result.error });
      return result;
    },
    [onProgress],
  );

  const cancel = useCallback((opId: string) => {
    dispatch({ type: "cancel-requested", opId });
    void operationCancel(opId);
  }, []);
  const dismiss = useCallback((opId: string) => dispatch({ type: "dismiss", opId }), []);

  const actions = useMemo<ProgressActions>(() => ({ run, cancel, dismiss }), [run, cancel, dismiss]);
  const ops = useMemo(() => state.order.map((id) => state.ops[id]!).filter(Boolean), [state]);
  return (
    <ActionsContext.Provider value={actions}>
      <OpsContext.Provider value={ops}>{children}</OpsContext.Provider>
    </ActionsContext.Provider>
  );
}

export function useProgress(): ProgressActions {
  const api = useContext(ActionsContext);
  if (!api) throw new Error("useProgress outside ProgressProvider");
  return api;
}

function useProgressOps(): OpState[] {
  const ops = useContext(OpsContext);
  if (!ops) throw new Error("useProgressOps outside ProgressProvider");
  return ops;
}

const STATUS_TEXT = { running: "In progress", done: "Done", failed: "Failed", cancelled: "Cancelled" } as const;

/**
 * The operations panel: the newest operation in full (file and overall progress, cancel) with the
 * e2e test ids, older ones as one line each.
 */
export function ProgressPanel() {
  const { cancel, dismiss } = useProgress();
  const ops = useProgressOps();
  if (ops.length === 0) return null;
  const current = ops[ops.length - 1]!;
  const older = ops.slice(0, -1).reverse();
  const pct = Math.round(overallFraction(current) * 100);
  const filePct = Math.round(fraction(current.fileDone, current.fileTotal) * 100);
  return (
    <section className="progress-panel" aria-label="Operations" data-testid="progress-panel" data-state={current.status} data-op-id={current.opId}>
      <div className="progress-panel__head">
        <strong className="progress-panel__label">{current.label}</strong>
        <span className={`pill pill--${current.status}`}>{STATUS_TEXT[current.status]}</span>
        <span className="progress-panel__spacer" />
        {current.status === "running" ? (
          <button
            type="button"
            className="button button--small"
            data-testid="progress-cancel"
            disabled={current.cancelRequested}
            onClick={() => cancel(current.opId)}
          >
            {current.cancelRequested ? "Cancelling…" : "Cancel"}
          </button>
        ) : (
          <button type="button" className="button button--quiet button--small" onClick={() => dismiss(current.opId)}>
            Dismiss
          </button>
        )}
      </div>
      <div className="progress-row">
        <label className="progress-row__label" htmlFor={`overall-${current.opId}`}>
          Overall
        </label>
        <progress
          id={`overall-${current.opId}`}
          data-testid="progress-overall"
          max={100}
          value={pct}
          aria-valuenow={pct}
          aria-valuemin={0}
          aria-valuemax={100}
        />
        <span className="progress-row__num">
          {pct}%
          {current.filesTotal > 0 ? ` · ${current.filesDone}/${current.filesTotal} files` : ""}
          {current.overallTotal > 0 ? ` · ${formatBytes(current.overallDone)} of ${formatBytes(current.overallTotal)}` : ""}
          {current.status === "running" && current.rate != null && current.overallTotal > 0 ? (
            <span data-testid="progress-rate"> · {formatBytes(Math.round(current.rate))}/s</span>
          ) : null}
        </span>
      </div>
      {current.status === "running" && current.path ? (
        <div className="progress-row">
          <label className="progress-row__label" htmlFor={`file-${current.opId}`}>
            File
          </label>
          <progress id={`file-${current.opId}`} max={100} value={filePct} data-testid="progress-file" />
          <span className="progress-row__num progress-row__path" title={current.path}>
            {current.path}
          </span>
        </div>
      ) : null}
      {current.summary ? <p className="progress-panel__summary">{current.summary}</p> : null}
      {current.error && current.status === "failed" ? (
        <p className="progress-panel__error" data-code={current.error.code}>
          {errorText(current.error.code)} {current.error.message}
        </p>
      ) : null}
      {older.length > 0 ? (
        <ul className="progress-panel__older">
          {older.slice(0, 4).map((op) => (
            <li key={op.opId}>
              <span>{op.label}</span> <span className={`pill pill--${op.status}`}>{STATUS_TEXT[op.status]}</span>{" "}
              {op.status === "running" ? (
                <>
                  {Math.round(overallFraction(op) * 100)}%{" "}
                  <button type="button" className="link-button" onClick={() => cancel(op.opId)}>
                    Cancel
                  </button>
                </>
              ) : (
                <button type="button" className="link-button" onClick={() => dismiss(op.opId)}>
                  Dismiss
                </button>
              )}
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}
