import { describe, expect, it } from "vitest";
import { initialProgress, newOpId, overallFraction, progressReducer, type ProgressState } from "./progress";

const msg = (over: Partial<Parameters<typeof progressReducer>[1] & object> & Record<string, unknown>) => ({
  type: "progress" as const,
  progress: {
    opId: "op1",
    phase: "import",
    path: "a.csv",
    fileDone: 0,
    fileTotal: 100,
    overallDone: 0,
    overallTotal: 1000,
    filesDone: 0,
    filesTotal: 3,
    ...over,
  },
});

function started(): ProgressState {
  return progressReducer(initialProgress, { type: "start", opId: "op1", label: "Importing 3 files" });
}

describe("progressReducer", () => {
  it("tracks per-file and overall progress from channel messages", () => {
    let s = started();
    s = progressReducer(s, msg({ fileDone: 50, overallDone: 50 }));
    const op = s.ops.op1!;
    expect(op.status).toBe("running");
    expect(op.path).toBe("a.csv");
    expect(op.fileDone / op.fileTotal).toBe(0.5);
    expect(overallFraction(op)).toBeCloseTo(0.05);
  });

  it("never moves overall progress backwards on out-of-order messages", () => {
    let s = started();
    s = progressReducer(s, msg({ overallDone: 600, filesDone: 2 }));
    s = progressReducer(s, msg({ overallDone: 400, filesDone: 1 }));
    expect(s.ops.op1!.overallDone).toBe(600);
    expect(s.ops.op1!.filesDone).toBe(2);
  });

  it("completes to 100% on finish and ignores late messages", () => {
    let s = started();
    s = progressReducer(s, msg({ overallDone: 900 }));
    s = progressReducer(s, { type: "finish", opId: "op1", summary: "3 files imported" });
    s = progressReducer(s, msg({ overallDone: 10 }));
    expect(s.ops.op1!.status).toBe("done");
    expect(overallFraction(s.ops.op1!)).toBe(1);
    expect(s.ops.op1!.summary).toBe("3 files imported");
  });

  it("marks a cancelled error code as cancelled, other errors as failed", () => {
    let s = started();
    s = progressReducer(s, { type: "cancel-requested", opId: "op1" });
    expect(s.ops.op1!.cancelRequested).toBe(true);
    const c = progressReducer(s, { type: "fail", opId: "op1", error: { code: "cancelled", message: "x" } });
    expect(c.ops.op1!.status).toBe("cancelled");
    const f = progressReducer(s, { type: "fail", opId: "op1", error: { code: "no_space", message: "x" } });
    expect(f.ops.op1!.status).toBe("failed");
    expect(f.ops.op1!.error?.code).toBe("no_space");
  });

  it("ignores messages for unknown operations and can dismiss and clear", () => {
    let s = progressReducer(started(), msg({ opId: "other", overallDone: 5 }));
    expect(Object.keys(s.ops)).toEqual(["op1"]);
    s = progressReducer(s, { type: "dismiss", opId: "op1" });
    expect(s).toEqual(initialProgress);
    expect(progressReducer(started(), { type: "clear" })).toEqual(initialProgress);
  });

  it("falls back to file counts when the byte total is unknown", () => {
    let s = started();
    s = progressReducer(s, msg({ overallTotal: 0, overallDone: 0, filesDone: 1, filesTotal: 4 }));
    expect(overallFraction(s.ops.op1!)).toBe(0.25);
  });

  it("makes unique operation ids", () => {
    expect(newOpId("import")).not.toBe(newOpId("import"));
  });
});

describe("transfer rate", () => {
  it("measures bytes per second per phase over a window, smoothed, and starts over on a new phase", async () => {
    const { nextRate } = await import("./progress");
    let op = { rate: null as number | null, rateSample: null as { phase: string; at: number; done: number } | null };
    op = nextRate(op, "upload", 0, 0);
    expect(op.rate).toBeNull();
    op = nextRate(op, "upload", 100, 1_000_000);
    expect(op.rate).toBeNull(); // under the window: not measured yet
    op = nextRate(op, "upload", 1000, 2_000_000);
    expect(op.rate).toBe(2_000_000);
    op = nextRate(op, "upload", 2000, 3_000_000);
    expect(op.rate).toBe(1_500_000); // smoothed: half the old, half the new
    op = nextRate(op, "download", 2100, 10);
    expect(op.rate).toBeNull();
  });
});
