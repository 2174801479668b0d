import type { AppError } from "../errors";
import type { Progress } from "../types";

/**
 * The progress model for long operations (import, export, verify, audit export): every Channel
 * message updates one operation; the panel shows per-file and overall progress and a cancel button.
 */
export type OpStatus = "running" | "done" | "failed" | "cancelled";

export interface OpState {
  opId: string;
  label: string;
  status: OpStatus;
  phase: string;
  path: string | null;
  fileDone: number;
  fileTotal: number;
  overallDone: number;
  overallTotal: number;
  filesDone: number;
  filesTotal: number;
  error: AppError | null;
  /** Short outcome shown when finished (e.g. "12 files imported, 1 failed"). */
  summary: string | null;
  cancelRequested: boolean;
  /** Bytes per second of the current phase (smoothed), once there is enough to measure. */
  rate: number | null;
  /** Where the rate was last measured from: phase, time (ms) and bytes done then. */
  rateSample: { phase: string; at: number; done: number } | null;
}

/** The rate is measured over at least this long, and smoothed with this weight for the new value. */
export const RATE_WINDOW_MS = 500;
const RATE_WEIGHT = 0.5;

/** The rate after `done` bytes at `at` ms in `phase`, from the previous sample (pure). */
export function nextRate(op: Pick<OpState, "rate" | "rateSample">, phase: string, at: number, done: number): Pick<OpState, "rate" | "rateSample"> {
  const s = op.rateSample;
  if (!s || s.phase !== phase || done < s.done) return { rate: null, rateSample: { phase, at, done } };
  const dt = at - s.at;
  if (dt < RATE_WINDOW_MS) return { rate: op.rate, rateSample: s };
  const r = ((done - s.done) * 1000) / dt;
  return { rate: op.rate == null ? r : op.rate * (1 - RATE_WEIGHT) + r * RATE_WEIGHT, rateSample: { phase, at, done } };
}

export type ProgressState = { order: string[]; ops: Record<string, OpState> };

export type ProgressAction =
  | { type: "start"; opId: string; label: string }
  | { type: "progress"; progress: Progress; at?: number }
  | { type: "cancel-requested"; opId: string }
  | { type: "finish"; opId: string; summary?: string }
  | { type: "fail"; opId: string; error: AppError }
  | { type: "dismiss"; opId: string }
  | { type: "clear" };

export const initialProgress: ProgressState = { order: [], ops: {} };

function update(state: ProgressState, opId: string, f: (op: OpState) => OpState): ProgressState {
  const op = state.ops[opId];
  if (!op) return state;
  return { ...state, ops: { ...state.ops, [opId]: f(op) } };
}

/** Pure reducer; messages for unknown or finished operations are ignored (late Channel messages). */
export function progressReducer(state: ProgressState, action: ProgressAction): ProgressState {
  switch (action.type) {
    case "start": {
      const op: OpState = {
        opId: action.opId,
        label: action.label,
        status: "running",
        phase: "starting",
        path: null,
        fileDone: 0,
        fileTotal: 0,
        overallDone: 0,
        overallTotal: 0,
        filesDone: 0,
        filesTotal: 0,
        error: null,
        summary: null,
        cancelRequested: false,
        rate: null,
        rateSample: null,
      };
      const order = state.order.includes(action.opId) ? state.order : [...state.order, action.opId];
      return { order, ops: { ...state.ops, [action.opId]: op } };
    }
    case "progress": {
      const p = action.progress;
      return update(state, p.opId, (op) =>
        op.status !== "running"
          ? op
          : {
              ...op,
              phase: p.phase,
              path: p.path ?? op.path,
              fileDone: p.fileDone,
              fileTotal: p.fileTotal,
              // Overall counters never go backwards, even if messages arrive out of order.
              overallDone: Math.max(op.overallDone, p.overallDone),
              overallTotal: p.overallTotal,
              filesDone: Math.max(op.filesDone, p.filesDone),
              filesTotal: p.filesTotal,
              ...(action.at === undefined ? {} : nextRate(op, p.phase, action.at, p.overallDone)),
            },
      );
    }
    case "cancel-requested":
      return update(state, action.opId, (op) => ({ ...op, cancelRequested: true }));
    case "finish":
      return update(state, action.opId, (op) => ({
        ...op,
        status: "done",
        phase: "done",
        overallDone: op.overallTotal > 0 ? op.overallTotal : op.overallDone,
        filesDone: op.filesTotal > 0 ? op.filesTotal : op.filesDone,
        summary: action.summary ?? null,
      }));
    case "fail":
      return update(state, action.opId, (op) => ({
        ...op,
        status: action.error.code === "cancelled" ? "cancelled" : "failed",
        error: action.error,
      }));
    case "dismiss": {
      if (!state.ops[action.opId]) return state;
      const ops = { ...state.ops };
      delete ops[action.opId];
      return { order: state.order.filter((id) => id !== action.opId), ops };
    }
    case "clear":
      return initialProgress;
  }
}

/** Fraction 0..1 of a done/total pair; 0 when the total is not known yet. */
export function fraction(done: number, total: number): number {
  if (!(total > 0)) return 0;
  return Math.min(1, Math.max(0, done / total));
}

/** The overall fraction of an operation (bytes when known, otherwise files). */
export function overallFraction(op: OpState): number {
  if (op.status === "done") return 1;
  if (op.overallTotal > 0) return fraction(op.overallDone, op.overallTotal);
  return fraction(op.filesDone, op.filesTotal);
}

let opCounter = 0;
/** A fresh operation id chosen by the UI (the shell uses it to route cancel). */
export function newOpId(kind: string): string {
  opCounter += 1;
  const rand = Math.random().toString(36).slice(2, 8);
  return `${kind}-${Date.now().toString(36)}-${opCounter}-${rand}`;
}
