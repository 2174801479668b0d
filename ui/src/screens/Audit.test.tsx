import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { ProgressProvider } from "../components/progress";
import { AuditScreen } from "./Audit";

beforeEach(() => {
  vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(600);
  vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(900);
  vi.spyOn(HTMLElement.prototype, "offsetHeight", "get").mockReturnValue(600);
  vi.spyOn(HTMLElement.prototype, "offsetWidth", "get").mockReturnValue(900);
  Element.prototype.scrollTo = function scrollTo() {} as typeof Element.prototype.scrollTo;
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});

const ev = (seq: number, action: string, result = "success") => ({
  timestamp: "2026-11-22T10:00:00Z",
  user: "ada",
  action,
  resource: "project/p1",
  userAgent: "x",
  result,
  detail: "",
  deviceId: "d",
  seq,
  hash: "h",
});

function backend(calls: { cmd: string; args: any }[], verify: object) {
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    if (cmd === "audit_page") {
      const a = args as { filter: { actionPrefix?: string } };
      const all = [ev(3, "data.import"), ev(2, "vault.unlock", "failure"), ev(1, "data.import")];
      return { events: all.filter((e) => !a.filter.actionPrefix || e.action.startsWith(a.filter.actionPrefix)), nextCursor: null };
    }
    if (cmd === "audit_verify") return verify;
    return null;
  });
}

describe("AuditScreen", () => {
  it("lists events, applies the action filter as a prefix, and shows a verified chain", async () => {
    const calls: { cmd: string; args: any }[] = [];
    backend(calls, { ok: true, eventsChecked: 3, firstBadSeq: null, deviceId: null, message: "ok" });
    render(
      <ProgressProvider>
        <AuditScreen />
      </ProgressProvider>,
    );
    await waitFor(() => expect(screen.getAllByTestId("audit-row")).toHaveLength(3));
    await waitFor(() => expect(screen.getByTestId("audit-verify-badge").dataset.state).toBe("ok"));

    fireEvent.change(screen.getByTestId("audit-filter-action"), { target: { value: "data.import" } });
    fireEvent.change(screen.getByTestId("audit-filter-result"), { target: { value: "success" } });
    fireEvent.click(screen.getByTestId("audit-apply"));
    await waitFor(() => expect(screen.getAllByTestId("audit-row")).toHaveLength(2));
    const last = calls.filter((c) => c.cmd === "audit_page").pop()!;
    expect(last.args.filter).toEqual({ actionPrefix: "data.import", result: "success" });
    expect(last.args.cursor).toBeNull();
    for (const row of screen.getAllByTestId("audit-row")) expect(row.dataset.action).toBe("data.import");
  });

  it("shows a broken chain with its first bad event, and refuses a malformed date without querying", async () => {
    const calls: { cmd: string; args: any }[] = [];
    backend(calls, { ok: false, eventsChecked: 2, firstBadSeq: 2, deviceId: "d", message: "hash mismatch at seq 2" });
    render(
      <ProgressProvider>
        <AuditScreen />
      </ProgressProvider>,
    );
    await waitFor(() => expect(screen.getByTestId("audit-verify-badge").dataset.state).toBe("broken"));
    expect(screen.getByTestId("audit-first-bad").textContent).toBe("#2");
    const before = calls.filter((c) => c.cmd === "audit_page").length;
    fireEvent.change(screen.getByTestId("audit-filter-from"), { target: { value: "22.11.2026" } });
    fireEvent.click(screen.getByTestId("audit-apply"));
    expect(await screen.findByText(/YYYY-MM-DD/)).toBeTruthy();
    expect(calls.filter((c) => c.cmd === "audit_page").length).toBe(before);
  });

  it("switches to the lab's log with the same filters, verifies it here, and names a refusal", async () => {
    const calls: { cmd: string; args: any }[] = [];
    let forbidden = false;
    mockIPC((cmd, args: any) => {
      calls.push({ cmd, args });
      if (cmd === "audit_page") return { events: [ev(1, "data.import")], nextCursor: null };
      if (cmd === "audit_verify") return { ok: true, eventsChecked: 1, firstBadSeq: null, deviceId: null, message: "ok" };
      if (cmd === "tenant_audit_page") {
        if (forbidden) throw { code: "forbidden", message: "needs the Admin role" };
        return { events: [ev(9, "access_review.sign_off"), ev(8, "auth.login")], nextCursor: null };
      }
      if (cmd === "tenant_audit_verify") return { ok: false, eventsChecked: 0, firstBadSeq: 8, deviceId: null, message: "the lab's audit chain breaks at event 8" };
      if (cmd === "pick_save_path") return "/tmp/lab.csv";
      if (cmd === "tenant_audit_export") return { path: "/tmp/lab.csv", events: 2, filtered: true };
      return null;
    });
    render(
      <ProgressProvider>
        <AuditScreen />
      </ProgressProvider>,
    );
    await waitFor(() => expect(screen.getAllByTestId("audit-row")).toHaveLength(1));
    fireEvent.change(screen.getByTestId("audit-filter-action"), { target: { value: "access_review." } });
    fireEvent.click(screen.getByTestId("audit-apply"));
    fireEvent.click(screen.getByTestId("audit-source-lab"));
    await waitFor(() => expect(screen.getAllByTestId("audit-row").map((r) => r.dataset.seq)).toEqual(["9", "8"]));
    const q = calls.filter((c) => c.cmd === "tenant_audit_page").pop()!;
    expect(q.args.filter).toEqual({ actionPrefix: "access_review." });
    // The lab's chain as this device found it: broken at event 8, which is marked.
    await waitFor(() => expect(screen.getByTestId("audit-first-bad").textContent).toBe("#8"));
    expect(screen.getByTestId("audit-source-lab").getAttribute("aria-pressed")).toBe("true");

    fireEvent.click(screen.getByTestId("audit-export-csv"));
    await waitFor(() => expect(screen.getByTestId("audit-notice").textContent).toContain("2 events of the lab's log"));
    expect(calls.find((c) => c.cmd === "tenant_audit_export")!.args).toEqual({ filter: { actionPrefix: "access_review." }, format: "csv", destPath: "/tmp/lab.csv" });

    // Back to the vault, then a member who may not read the lab's log is told so.
    fireEvent.click(screen.getByTestId("audit-source-vault"));
    await waitFor(() => expect(calls.filter((c) => c.cmd === "audit_page").length).toBeGreaterThan(1));
    forbidden = true;
    fireEvent.click(screen.getByTestId("audit-source-lab"));
    await waitFor(() => expect(screen.getByTestId("error-banner").dataset.code).toBe("forbidden"));
  });
});
