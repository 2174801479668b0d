import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import App from "./App";
import { objectUrls } from "./lib/session";

// jsdom has no layout: give scroll containers a real size so the virtualizer renders a viewport.
beforeEach(() => {
  vi.spyOn(HTMLElement.prototype, "getBoundingClientRect").mockReturnValue({
    x: 0, y: 0, top: 0, left: 0, bottom: 600, right: 800, width: 800, height: 600, toJSON: () => ({}),
  } as DOMRect);
  vi.spyOn(HTMLElement.prototype, "offsetHeight", "get").mockReturnValue(600);
  vi.spyOn(HTMLElement.prototype, "offsetWidth", "get").mockReturnValue(800);
  vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(600);
  vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(800);
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});

const status = (over: Record<string, unknown> = {}) => ({
  exists: true,
  path: "/home/ada/.local/share/labvault/vault",
  unlocked: false,
  rememberedOnDevice: false,
  keyringAvailable: true,
  recoveryConfirmationPending: false,
  appVersion: "0.1.0",
  coreVersion: "0.1.0",
  autoLockMinutes: 15,
  readOnlyReason: null,
  ...over,
});

const project = { id: "p1", name: "Alpha", createdAt: "2026-01-01T00:00:00Z", createdBy: "ada" };
const row = (i: number) => ({
  id: `item-${i}`,
  area: "uploads",
  path: `run-${String(i).padStart(6, "0")}.csv`,
  size: 1000 + i,
  mediaType: "text/csv",
  dataType: "research_data",
  state: "active",
  createdAt: "2026-01-01T00:00:00Z",
  updatedAt: "2026-01-02T00:00:00Z",
});

/** A backend with a locked vault holding 100,000 items, answering like the shell. */
function backend(calls: { cmd: string; args: Record<string, unknown> }[], unlockedStatus: Record<string, unknown> = {}) {
  let unlocked = false;
  return (cmd: string, payload?: unknown) => {
    const args = (payload ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args });
    switch (cmd) {
      case "vault_status":
        return status(unlocked ? { unlocked, ...unlockedStatus } : { unlocked });
      case "vault_unlock":
        if (args.passphrase !== "correct horse battery staple 42") {
          return Promise.reject({ code: "wrong_passphrase", message: "The passphrase is wrong." });
        }
        unlocked = true;
        return status({ unlocked: true, ...unlockedStatus });
      case "vault_lock":
        unlocked = false;
        return null;
      case "projects_list":
        return [project];
      case "items_page": {
        const { offset, limit } = args as { offset: number; limit: number };
        const rows = [];
        for (let i = offset; i < Math.min(100_000, offset + limit); i += 1) rows.push(row(i));
        return { total: 100_000, rows };
      }
      case "activity_ping":
        return null;
      default:
        return Promise.reject({ code: "not_found", message: `no mock for ${cmd}` });
    }
  };
}

describe("first run", () => {
  it("shows the create form when there is no vault and only accepts a strong, confirmed passphrase", async () => {
    const calls: { cmd: string; args: Record<string, unknown> }[] = [];
    mockIPC((cmd, payload) => {
      calls.push({ cmd, args: (payload ?? {}) as Record<string, unknown> });
      if (cmd === "vault_status") return status({ exists: false });
      if (cmd === "vault_create") return { status: status({ unlocked: true, recoveryConfirmationPending: true }), remembered: true, rememberError: null };
      if (cmd === "vault_confirm_recovery") {
        return (payload as { lastGroup: string }).lastGroup === "ABCD"
          ? null
          : Promise.reject({ code: "invalid_argument", message: "That is not the last group." });
      }
      // The new vault's workspace lists its (no) projects, as the shell answers.
      if (cmd === "projects_list") return [];
      return null;
    });
    render(<App />);
    await screen.findByTestId("screen-first-run");
    const submit = screen.getByTestId("create-submit") as HTMLButtonElement;
    fireEvent.change(screen.getByTestId("create-passphrase"), { target: { value: "password1" } });
    expect(submit.disabled).toBe(true);
    expect(screen.getByTestId("strength-meter").dataset.score).not.toBe("4");
    fireEvent.change(screen.getByTestId("create-passphrase"), { target: { value: "correct horse battery staple 42" } });
    fireEvent.change(screen.getByTestId("create-confirm"), { target: { value: "correct horse battery staple 4" } });
    expect(submit.disabled).toBe(true);
    fireEvent.change(screen.getByTestId("create-confirm"), { target: { value: "correct horse battery staple 42" } });
    fireEvent.click(screen.getByTestId("create-remember"));
    expect(submit.disabled).toBe(false);
    fireEvent.click(submit);
    await screen.findByTestId("recovery-last-group");
    expect(calls.find((c) => c.cmd === "vault_create")?.args).toEqual({
      passphrase: "correct horse battery staple 42",
      remember: true,
    });

    fireEvent.change(screen.getByTestId("recovery-last-group"), { target: { value: "WXYZ" } });
    fireEvent.click(screen.getByTestId("recovery-confirm"));
    expect((await screen.findByTestId("recovery-error")).dataset.code).toBe("invalid_argument");
    fireEvent.change(screen.getByTestId("recovery-last-group"), { target: { value: "ABCD" } });
    fireEvent.click(screen.getByTestId("recovery-confirm"));
    await screen.findByTestId("screen-workspace");
  });
});

describe("unlock and lock", () => {
  it("shows wrong_passphrase by code, unlocks with the right one, and lists a 100,000-item workspace in pages", async () => {
    const calls: { cmd: string; args: Record<string, unknown> }[] = [];
    mockIPC(backend(calls));
    render(<App />);
    await screen.findByTestId("screen-unlock");
    fireEvent.change(screen.getByTestId("unlock-passphrase"), { target: { value: "wrong" } });
    fireEvent.click(screen.getByTestId("unlock-submit"));
    const err = await screen.findByTestId("unlock-error");
    expect(err.dataset.code).toBe("wrong_passphrase");
    expect(err.textContent).toMatch(/passphrase is not correct/);

    fireEvent.change(screen.getByTestId("unlock-passphrase"), { target: { value: "correct horse battery staple 42" } });
    fireEvent.click(screen.getByTestId("unlock-submit"));
    await screen.findByTestId("screen-workspace");
    await waitFor(() => expect(screen.getAllByTestId("item-row").length).toBeGreaterThan(5));
    const rendered = screen.getAllByTestId("item-row").length;
    expect(rendered).toBeLessThan(100);
    expect(screen.getByTestId("item-list").dataset.total).toBe("100000");
    expect(screen.queryByTestId("read-only-banner")).toBeNull();
    const pageCalls = calls.filter((c) => c.cmd === "items_page");
    expect(pageCalls.length).toBeGreaterThan(0);
    for (const c of pageCalls) {
      expect(c.args.limit).toBe(200);
      expect(c.args.query).toMatchObject({ project: "Alpha", area: "uploads", states: ["active"], sort: { key: "path", desc: false } });
    }
  });

  it("clears every piece of vault state when the shell emits vault-locked", async () => {
    const calls: { cmd: string; args: Record<string, unknown> }[] = [];
    mockIPC(backend(calls), { shouldMockEvents: true });
    vi.spyOn(URL, "createObjectURL").mockReturnValue("blob:lv/1");
    const revoke = vi.spyOn(URL, "revokeObjectURL").mockImplementation(() => {});
    render(<App />);
    await screen.findByTestId("screen-unlock");
    fireEvent.change(screen.getByTestId("unlock-passphrase"), { target: { value: "correct horse battery staple 42" } });
    fireEvent.click(screen.getByTestId("unlock-submit"));
    await waitFor(() => expect(screen.getAllByTestId("item-row").length).toBeGreaterThan(0));
    objectUrls.create(new Blob(["decrypted preview"]));

    await act(async () => {
      await emit("vault-locked");
    });
    await screen.findByTestId("screen-unlock");
    expect(screen.queryAllByTestId("item-row")).toHaveLength(0);
    expect(screen.queryByTestId("screen-workspace")).toBeNull();
    expect(objectUrls.size).toBe(0);
    expect(revoke).toHaveBeenCalledWith("blob:lv/1");
    expect(screen.getByText(/inactivity/)).toBeTruthy();
  });

  it("says so above every screen when the vault could only be opened read-only (full disk)", async () => {
    const reason = "the disk holding the vault at /v is full: the vault is open read-only (list, preview, verify and export to another disk work)";
    mockIPC(backend([], { readOnlyReason: reason }));
    render(<App />);
    await screen.findByTestId("screen-unlock");
    fireEvent.change(screen.getByTestId("unlock-passphrase"), { target: { value: "correct horse battery staple 42" } });
    fireEvent.click(screen.getByTestId("unlock-submit"));
    await screen.findByTestId("screen-workspace");
    const banner = await screen.findByTestId("read-only-banner");
    expect(banner.getAttribute("role")).toBe("alert");
    expect(banner.textContent).toContain("read-only");
    expect(banner.textContent).toContain(reason);
    fireEvent.click(screen.getByTestId("nav-audit"));
    expect(screen.getByTestId("read-only-banner")).toBeTruthy();
  });

  it("locks from the lock button", async () => {
    const calls: { cmd: string; args: Record<string, unknown> }[] = [];
    mockIPC(backend(calls));
    render(<App />);
    await screen.findByTestId("screen-unlock");
    fireEvent.change(screen.getByTestId("unlock-passphrase"), { target: { value: "correct horse battery staple 42" } });
    fireEvent.click(screen.getByTestId("unlock-submit"));
    await screen.findByTestId("screen-workspace");
    fireEvent.click(screen.getByTestId("lock-button"));
    await screen.findByTestId("screen-unlock");
    expect(calls.some((c) => c.cmd === "vault_lock")).toBe(true);
  });
});
