import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { ProgressProvider } from "../components/progress";
import { SyncScreen } from "./Sync";

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});

const idle = {
  connected: false,
  signedIn: false,
  active: false,
  paused: false,
  running: false,
  online: null,
  lastPassAt: null,
  error: null,
  nextTryAt: null,
  pending: 0,
  bandwidthLimitKib: null,
};
const base = { url: null, pin: null, tenant: null, email: null, device: null, deviceId: "dev1" };

describe("SyncScreen", () => {
  it("connects, signs in with a TOTP step, syncs with progress and resolves a conflict", async () => {
    const calls: { cmd: string; args: any }[] = [];
    let status: any = { ...base, connected: false, signedIn: false };
    let paused = false;
    let limit: number | null = null;
    let conflicts = [
      {
        itemId: "i1",
        project: "p1",
        area: "uploads",
        path: "counts.csv",
        head: 2,
        siblings: [{ version: 3, size: 10, createdAt: "2026-12-07T09:00:00Z", createdBy: "ann@lab.test" }],
      },
    ];
    mockIPC((cmd, args: any) => {
      calls.push({ cmd, args });
      switch (cmd) {
        case "tenant_status":
          return status;
        case "sync_status":
          return [
            {
              projectId: "p1",
              name: "plankton",
              remote: true,
              changedItems: 0,
              pendingOps: 2,
              pendingBytes: 2048,
              conflicts: conflicts.length,
              parked: [],
              awaitingConfirmation: 0,
              lastSyncAt: null,
              stopped: null,
            },
          ];
        case "sync_conflicts":
          return conflicts;
        case "tenant_connect":
          if (args.pin === "sha256/wrong") throw { code: "pin_mismatch", message: "the server presented another key" };
          status = { ...base, connected: true, signedIn: false, url: args.url, pin: args.pin, tenant: args.tenant };
          return status;
        case "tenant_sign_in":
          if (!args.totp) return { signedIn: false, role: null, mfaEnrolled: true, deviceName: null, approved: false };
          status = { ...status, signedIn: true, email: args.email, device: "approved" };
          return { signedIn: true, role: "owner", mfaEnrolled: true, deviceName: "bench-1", approved: true };
        case "devices_list":
          return [{ deviceId: "dev1", name: "bench-1", state: "approved", thisDevice: true, createdAt: "2026-12-07T00:00:00Z", lastSeenAt: null }];
        case "sync_run":
          return { pulled: 1, pushed: 2, conflicts: 0, bytesUp: 2048, bytesDown: 10, pending: 0, errors: [], wiped: [], elapsedMs: 40 };
        case "conflict_resolve":
          conflicts = [];
          return 3;
        case "sync_state":
          return { ...idle, connected: status.connected, signedIn: status.signedIn, active: status.signedIn, paused, bandwidthLimitKib: limit };
        case "sync_set_bandwidth":
          limit = args.kibPerSec;
          return limit;
        case "sync_pause":
          paused = args.paused;
          return { ...idle, connected: true, signedIn: true, active: true, paused };
        default:
          return null;
      }
    });
    render(
      <ProgressProvider>
        <SyncScreen />
      </ProgressProvider>,
    );
    fireEvent.change(await screen.findByTestId("sync-url"), { target: { value: "https://127.0.0.1:8443" } });
    fireEvent.change(screen.getByTestId("sync-pin"), { target: { value: "sha256/wrong" } });
    fireEvent.change(screen.getByTestId("sync-tenant"), { target: { value: "lab" } });
    fireEvent.click(screen.getByTestId("sync-connect"));
    await waitFor(() => expect(screen.getByTestId("error-banner").dataset.code).toBe("pin_mismatch"));
    fireEvent.change(screen.getByTestId("sync-pin"), { target: { value: "sha256/right" } });
    fireEvent.click(screen.getByTestId("sync-connect"));

    fireEvent.change(await screen.findByTestId("sync-email"), { target: { value: "pi@lab.test" } });
    fireEvent.change(screen.getByTestId("sync-password"), { target: { value: "Correct-Horse-9" } });
    fireEvent.click(screen.getByTestId("sync-sign-in"));
    fireEvent.change(await screen.findByTestId("sync-totp"), { target: { value: "123456" } });
    fireEvent.click(screen.getByTestId("sync-sign-in"));
    await waitFor(() => expect(screen.getByTestId("sync-email-shown").textContent).toBe("pi@lab.test"));
    const signIns = calls.filter((c) => c.cmd === "tenant_sign_in").map((c) => c.args);
    expect(signIns).toEqual([
      { email: "pi@lab.test", password: "Correct-Horse-9", totp: null },
      { email: "pi@lab.test", password: "Correct-Horse-9", totp: "123456" },
    ]);
    // The password does not stay in the form once signed in.
    expect(screen.queryByTestId("sync-password")).toBeNull();

    expect(screen.getByText("2 change(s) · 2.0 KiB")).toBeTruthy();
    fireEvent.click(screen.getByTestId("sync-now"));
    await waitFor(() => expect(screen.getByTestId("sync-reach").textContent).toBe("Online"));
    expect(calls.some((c) => c.cmd === "sync_run" && typeof c.args.opId === "string")).toBe(true);

    fireEvent.click(await screen.findByTestId("sync-keep-sibling"));
    await waitFor(() => expect(screen.queryByTestId("sync-conflicts")).toBeNull());
    expect(calls.find((c) => c.cmd === "conflict_resolve")!.args).toEqual({ itemId: "i1", keep: 3 });

    // A bandwidth limit is chosen and shown; "Unlimited" lifts it.
    fireEvent.change(screen.getByTestId("sync-bandwidth"), { target: { value: "1024" } });
    await waitFor(() => expect(screen.getByTestId("sync-notice").textContent).toContain("1.0 MiB/s"));
    await waitFor(() => expect((screen.getByTestId("sync-bandwidth") as HTMLSelectElement).value).toBe("1024"));
    fireEvent.change(screen.getByTestId("sync-bandwidth"), { target: { value: "" } });
    await waitFor(() => expect(screen.getByTestId("sync-notice").textContent).toContain("full bandwidth"));
    expect(calls.filter((c) => c.cmd === "sync_set_bandwidth").map((c) => c.args)).toEqual([{ kibPerSec: 1024 }, { kibPerSec: null }]);

    // Background sync pauses and resumes from the same button.
    fireEvent.click(await screen.findByText("Pause background sync"));
    await waitFor(() => expect(screen.getByTestId("sync-pause").textContent).toBe("Resume background sync"));
    expect(paused).toBe(true);
    fireEvent.click(screen.getByTestId("sync-pause"));
    await waitFor(() => expect(screen.getByTestId("sync-pause").textContent).toBe("Pause background sync"));
    expect(calls.filter((c) => c.cmd === "sync_pause").map((c) => c.args)).toEqual([{ paused: true }, { paused: false }]);
  });

  it("shows offline when the lab server cannot be reached, and keeps the local status", async () => {
    mockIPC((cmd) => {
      if (cmd === "tenant_status") return { ...base, connected: true, signedIn: true, url: "https://lab", tenant: "lab", email: "a@lab", device: "approved" };
      if (cmd === "sync_status") return [];
      if (cmd === "sync_conflicts") return [];
      if (cmd === "devices_list") throw { code: "unreachable", message: "cannot reach the tenant at https://lab: refused" };
      if (cmd === "sync_run") throw { code: "unreachable", message: "cannot reach the tenant at https://lab: refused" };
      if (cmd === "sync_state") return { ...idle, connected: true, signedIn: true, active: true, online: false, error: { code: "unreachable", message: "refused" } };
      return null;
    });
    render(
      <ProgressProvider>
        <SyncScreen />
      </ProgressProvider>,
    );
    fireEvent.click(await screen.findByTestId("sync-now"));
    await waitFor(() => expect(screen.getByTestId("sync-reach").textContent).toBe("Offline"));
    expect(screen.getByTestId("error-banner").dataset.code).toBe("unreachable");
  });

  it("shows a shared project's members, key epoch and why it is locked here", async () => {
    const row = {
      projectId: "p1",
      name: "plankton",
      remote: true,
      changedItems: 0,
      pendingOps: 0,
      pendingBytes: 0,
      conflicts: 0,
      parked: [],
      awaitingConfirmation: 0,
      lastSyncAt: null,
      stopped: null,
    };
    const asked: string[] = [];
    mockIPC((cmd, args: any) => {
      if (cmd === "tenant_status") return { ...base, connected: true, signedIn: true, url: "https://lab", tenant: "lab", email: "a@lab", device: "approved" };
      if (cmd === "sync_status") return [row];
      if (cmd === "sync_conflicts" || cmd === "devices_list") return [];
      if (cmd === "sync_state") return { ...idle, connected: true, signedIn: true };
      if (cmd === "project_sharing") {
        asked.push(args.project);
        return {
          projectId: "p1",
          shared: true,
          epoch: 3,
          members: [
            { userId: "u-pi", email: "pi@lab.test", role: "owner", safetyNumber: "11111 22222 33333 44444 55555 66666", you: true },
            { userId: "u-ann", email: null, role: "editor", safetyNumber: "77777 88888 99999 00000 12345 67890", you: false },
          ],
          rotationOwed: true,
          logLength: 5,
          lastRotationAt: "2026-12-01T00:00:00Z",
          leaseDays: 14,
          rotationDays: 90,
          lastContactAt: "2026-11-01T00:00:00Z",
          locked: "project p1 is shared and this device has not reached the tenant for 36 days; the lab allows 14: reconnect and sync to unlock it",
        };
      }
      return null;
    });
    render(
      <ProgressProvider>
        <SyncScreen />
      </ProgressProvider>,
    );
    fireEvent.click(await screen.findByTestId("sync-sharing-plankton"));
    const panel = await screen.findByTestId("sync-sharing");
    expect(asked).toEqual(["p1"]);
    expect(screen.getByTestId("sync-locked").textContent).toContain("36 days");
    expect(screen.getByTestId("sync-locked").textContent).toContain("press Sync now");
    expect(screen.getByTestId("sync-epoch").textContent).toContain("3");
    expect(panel.textContent).toContain("Owed");
    const members = screen.getByTestId("sync-members");
    // Named by email when the tenant answered; by account id otherwise.
    expect(members.textContent).toContain("pi@lab.test (you)");
    expect(members.textContent).toContain("u-ann");
    expect(members.textContent).toContain("77777 88888");
  });

  it("compares both sides of a conflict and keeps both under a new name", async () => {
    const calls: { cmd: string; args: any }[] = [];
    let conflicts: any[] = [
      {
        itemId: "i1",
        project: "p1",
        area: "uploads",
        path: "run/counts.csv",
        head: 2,
        headSize: 20,
        mediaType: "text/csv",
        siblings: [{ version: 3, size: 10, createdAt: "2026-12-07T09:00:00Z", createdBy: "ann@lab.test" }],
      },
    ];
    mockIPC((cmd, args: any) => {
      calls.push({ cmd, args });
      if (cmd === "tenant_status") return { ...base, connected: true, signedIn: true, url: "https://lab", tenant: "lab", email: "a@lab", device: "approved" };
      if (cmd === "sync_status" || cmd === "devices_list") return [];
      if (cmd === "sync_conflicts") return conflicts;
      if (cmd === "sync_state") return { ...idle, connected: true, signedIn: true };
      if (cmd === "preview_open") return { url: `lvpreview://localhost/item/${args.itemId}.v${args.version}`, mediaType: "text/csv", size: 10 };
      if (cmd === "conflict_keep_both") {
        if (args.newPath === "run/other.csv") throw { code: "already_exists", message: "an item at uploads/run/other.csv already exists" };
        conflicts = [];
        return args.newPath;
      }
      return null;
    });
    vi.spyOn(globalThis, "fetch").mockResolvedValue(new Response("a,b\n1,2\n", { status: 200, headers: { "Content-Type": "text/csv" } }));
    render(
      <ProgressProvider>
        <SyncScreen />
      </ProgressProvider>,
    );
    fireEvent.click(await screen.findByTestId("sync-compare"));
    await screen.findByTestId("sync-compare-dialog");
    await waitFor(() =>
      expect(calls.filter((c) => c.cmd === "preview_open").map((c) => c.args)).toEqual([
        { itemId: "i1", version: 2 },
        { itemId: "i1", version: 3 },
      ]),
    );
    fireEvent.keyDown(screen.getByTestId("sync-compare-dialog"), { key: "Escape" });
    await waitFor(() => expect(screen.queryByTestId("sync-compare-dialog")).toBeNull());
    // Closing the comparison drops both decrypted views.
    await waitFor(() => expect(calls.filter((c) => c.cmd === "preview_close").map((c) => c.args.version).sort()).toEqual([2, 3]));

    fireEvent.click(screen.getByTestId("sync-keep-both"));
    const name = (await screen.findByTestId("sync-keep-both-name")) as HTMLInputElement;
    expect(name.value).toBe("run/counts (ann@lab.test 2026-12-07).csv");
    fireEvent.change(name, { target: { value: "run/other.csv" } });
    fireEvent.click(screen.getByTestId("sync-keep-both-submit"));
    await waitFor(() => expect(screen.getByTestId("sync-keep-both-error").dataset.code).toBe("already_exists"));
    fireEvent.change(name, { target: { value: "run/counts-ann.csv" } });
    fireEvent.click(screen.getByTestId("sync-keep-both-submit"));
    await waitFor(() => expect(screen.getByTestId("sync-notice").textContent).toContain("run/counts-ann.csv"));
    expect(calls.filter((c) => c.cmd === "conflict_keep_both").pop()!.args).toEqual({ itemId: "i1", keep: 2, other: 3, newPath: "run/counts-ann.csv" });
    await waitFor(() => expect(screen.queryByTestId("sync-conflicts")).toBeNull());
  });
});
