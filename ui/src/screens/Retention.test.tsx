import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { ProgressProvider } from "../components/progress";
import { RetentionScreen } from "./Retention";

beforeEach(() => {
  vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(400);
  vi.spyOn(HTMLElement.prototype, "offsetHeight", "get").mockReturnValue(400);
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});

const periods = { researchData: "7y", analysisResult: "7y", backup: "90d", auditLog: "6y", sessionData: "90d", grace: "30d" };
const none = { researchData: null, analysisResult: null, backup: null, auditLog: null, sessionData: null, grace: null };

function backend(calls: { cmd: string; args: any }[]) {
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "projects_list":
        return [{ id: "p1", name: "Alpha", createdAt: "", createdBy: "ada" }];
      case "retention_summary":
        return {
          now: "",
          projects: [
            { projectId: "p1", project: "Alpha", active: { items: 3, bytes: 30 }, onHold: { items: 1, bytes: 5 }, softDeleted: { items: 0, bytes: 0 }, erased: { items: 0, bytes: 0 }, due7d: 1, due30d: 2 },
          ],
        };
      case "retention_timeline":
        return { now: "", total: 1, entries: [{ at: "2026-12-01T00:00:00Z", step: "erase", itemId: "i1", project: "Alpha", area: "uploads", path: "old.csv", size: 1 }] };
      case "retention_items_page":
        return { total: 0, rows: [] };
      case "retention_policies":
        return { plan: "professional", vault: none, effective: periods, projects: [] };
      case "retention_policy_set":
        return periods;
      default:
        return null;
    }
  });
}

describe("RetentionScreen", () => {
  it("shows the per-project summary and upcoming steps", async () => {
    backend([]);
    render(
      <ProgressProvider>
        <RetentionScreen />
      </ProgressProvider>,
    );
    const summary = await screen.findByTestId("retention-summary");
    await waitFor(() => expect(summary.textContent).toContain("Alpha"));
    expect(summary.querySelector('[data-project="Alpha"]')?.textContent).toContain("1 · 5 B");
    await waitFor(() => expect(screen.getByTestId("retention-timeline").textContent).toContain("old.csv"));
  });

  it("enforces the 6-year audit-log minimum in the form and sends only the changed periods", async () => {
    const calls: { cmd: string; args: any }[] = [];
    backend(calls);
    render(
      <ProgressProvider>
        <RetentionScreen />
      </ProgressProvider>,
    );
    const audit = (await screen.findByTestId("policy-auditLog")) as HTMLInputElement;
    const save = screen.getByTestId("policy-save") as HTMLButtonElement;
    fireEvent.change(audit, { target: { value: "5y" } });
    expect(save.disabled).toBe(true);
    expect(screen.getByText(/at least 6 years; it cannot be lowered/)).toBeTruthy();
    expect((screen.getByTestId("policy-sessionData") as HTMLInputElement).disabled).toBe(true);

    fireEvent.change(audit, { target: { value: "10y" } });
    expect(save.disabled).toBe(false);
    fireEvent.click(save);
    await waitFor(() => expect(calls.some((c) => c.cmd === "retention_policy_set")).toBe(true));
    const set = calls.find((c) => c.cmd === "retention_policy_set")!;
    expect(set.args).toEqual({ project: null, plan: null, changes: { ...none, auditLog: "10y" } });
  });
});
