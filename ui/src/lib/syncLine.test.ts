import { describe, expect, it } from "vitest";
import type { SyncState } from "../bindings";
import { syncLine } from "./syncLine";

const base: SyncState = {
  connected: true,
  signedIn: true,
  active: true,
  paused: false,
  running: false,
  online: true,
  lastPassAt: "2026-12-07T10:00:00Z",
  error: null,
  nextTryAt: null,
  pending: 0,
  bandwidthLimitKib: null,
};
const now = new Date("2026-12-07T10:05:00Z");

describe("syncLine", () => {
  it("says when it last synced and what waits", () => {
    expect(syncLine(base, now)).toEqual({ text: "Synced 5 min ago", tone: "ok" });
    expect(syncLine({ ...base, pending: 3 }, now).text).toBe("Synced 5 min ago · 3 waiting");
  });
  it("puts offline, paused and problems before the time", () => {
    expect(syncLine({ ...base, online: false, pending: 2 }, now)).toEqual({ text: "Offline · 2 waiting", tone: "error" });
    expect(syncLine({ ...base, paused: true }, now).tone).toBe("warn");
    expect(syncLine({ ...base, error: { code: "device_revoked", message: "revoked" } }, now).text).toBe("Sync problem");
    expect(syncLine({ ...base, running: true }, now).text).toBe("Syncing…");
  });
  it("explains a vault that is not connected or signed in", () => {
    expect(syncLine(null).text).toBe("Not connected");
    expect(syncLine({ ...base, connected: false }).text).toBe("Not connected");
    expect(syncLine({ ...base, signedIn: false }).text).toBe("Signed out");
    expect(syncLine({ ...base, active: false }).text).toBe("Waiting for approval");
  });
});
