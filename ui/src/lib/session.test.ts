import { afterEach, describe, expect, it, vi } from "vitest";
import { PageCache } from "./pageCache";
import { createActivityPinger, lockCleanup, objectUrls, onLockCleanup, sessionReducer } from "./session";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("lock clears vault state", () => {
  it("revokes every preview object URL and runs registered cleanups", async () => {
    let n = 0;
    const created: string[] = [];
    const revoked: string[] = [];
    vi.spyOn(URL, "createObjectURL").mockImplementation(() => {
      n += 1;
      const url = `blob:lv/${n}`;
      created.push(url);
      return url;
    });
    vi.spyOn(URL, "revokeObjectURL").mockImplementation((url: string) => void revoked.push(url));

    objectUrls.create(new Blob(["secret image"]));
    objectUrls.create(new Blob(["secret csv"]));
    const cache = new PageCache<string>((offset) => Promise.resolve({ total: 1, rows: [`row-${offset}`] }));
    await cache.ensureRange(0, 0);
    expect(cache.get(0)).toBe("row-0");
    const unregister = onLockCleanup(() => cache.reset());
    onLockCleanup(() => {
      throw new Error("a broken cleanup");
    });

    lockCleanup();

    expect(revoked.sort()).toEqual(created.sort());
    expect(objectUrls.size).toBe(0);
    expect(cache.get(0)).toBeUndefined();
    expect(cache.total).toBeNull();
    unregister();
  });
});

describe("sessionReducer", () => {
  const start = { phase: { kind: "loading" as const }, session: 0 };

  it("goes to first run without a vault and to unlock with a locked one", () => {
    expect(sessionReducer(start, { type: "status", exists: false, unlocked: false }).phase.kind).toBe("first-run");
    expect(sessionReducer(start, { type: "status", exists: true, unlocked: false }).phase).toEqual({
      kind: "locked",
      reason: "start",
    });
  });

  it("returns to the recovery confirmation when it was still pending at start", () => {
    expect(sessionReducer(start, { type: "status", exists: true, unlocked: true, recoveryPending: true }).phase.kind).toBe("recovery");
  });

  it("requires the recovery confirmation after creating, then unlocks", () => {
    let s = sessionReducer(start, { type: "status", exists: false, unlocked: false });
    s = sessionReducer(s, { type: "created", remember: true });
    expect(s.phase).toEqual({ kind: "recovery", remember: true });
    s = sessionReducer(s, { type: "recovery-confirmed" });
    expect(s.phase.kind).toBe("unlocked");
  });

  it("every lock leaves the unlocked tree and the next unlock is a fresh session", () => {
    let s = sessionReducer(start, { type: "status", exists: true, unlocked: false });
    s = sessionReducer(s, { type: "unlocked" });
    const first = s.session;
    s = sessionReducer(s, { type: "locked", reason: "idle" });
    expect(s.phase).toEqual({ kind: "locked", reason: "idle" });
    s = sessionReducer(s, { type: "unlocked" });
    expect(s.session).toBeGreaterThan(first);
  });
});

describe("createActivityPinger", () => {
  it("pings at most once per interval", () => {
    let t = 0;
    const ping = vi.fn();
    const activity = createActivityPinger(ping, 30_000, () => t);
    activity();
    t = 10_000;
    activity();
    t = 29_999;
    activity();
    expect(ping).toHaveBeenCalledTimes(1);
    t = 30_000;
    activity();
    expect(ping).toHaveBeenCalledTimes(2);
  });
});
