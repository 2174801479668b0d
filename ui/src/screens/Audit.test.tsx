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
});
