import { afterEach, describe, expect, it } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { ProgressPanel, ProgressProvider } from "../components/progress";
import { WorkspaceScreen } from "./Workspace";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("WorkspaceScreen", () => {
  it("exports the selected project as a bundle at the path the user chose, and says how to check it", async () => {
    const calls: { cmd: string; args: any }[] = [];
    mockIPC((cmd, args: any) => {
      calls.push({ cmd, args });
      switch (cmd) {
        case "projects_list":
          return [{ id: "p1", name: "plankton", createdAt: "2026-12-01T00:00:00Z", createdBy: "ann", items: 2, bytes: 10 }];
        case "items_page":
          return { total: 0, rows: [] };
        case "pick_save_path":
          return "/home/ann/plankton-bundle.tar";
        case "project_export_bundle":
          return { path: args.dest, files: 2, bytes: 10, auditEvents: 7, bundleDigest: "ab".repeat(32) };
        default:
          return null;
      }
    });
    render(
      <ProgressProvider>
        <WorkspaceScreen />
        <ProgressPanel />
      </ProgressProvider>,
    );
    fireEvent.click(await screen.findByTestId("export-project"));
    await waitFor(() => expect(screen.getByTestId("progress-panel").textContent).toContain("labvault verify-bundle"));
    const call = calls.find((c) => c.cmd === "project_export_bundle")!;
    expect(call.args.project).toBe("plankton");
    expect(call.args.dest).toBe("/home/ann/plankton-bundle.tar");
    expect(calls.find((c) => c.cmd === "pick_save_path")!.args.defaultName).toMatch(/^plankton-bundle-\d{4}-\d{2}-\d{2}\.tar$/);
    expect(screen.getByTestId("progress-panel").textContent).toContain("2 files and 7 audit events in /home/ann/plankton-bundle.tar");
  });

  it("generates an evidence pack with the purposes typed and says what it found, failing chain included", async () => {
    const calls: { cmd: string; args: any }[] = [];
    mockIPC((cmd, args: any) => {
      calls.push({ cmd, args });
      switch (cmd) {
        case "projects_list":
          return [{ id: "p1", name: "plankton", createdAt: "2026-12-01T00:00:00Z", createdBy: "ann", items: 2, bytes: 10 }];
        case "items_page":
          return { total: 0, rows: [] };
        case "pick_export_dir":
          return "/home/ann/audits/";
        case "project_evidence_pack":
          return { path: args.dest, files: ["index.html"], auditOk: false, controls: { covered: 5, partly: 6, "not covered": 3, failing: 2 }, withTenant: false };
        default:
          return null;
      }
    });
    render(
      <ProgressProvider>
        <WorkspaceScreen />
      </ProgressProvider>,
    );
    fireEvent.click(await screen.findByTestId("evidence-pack"));
    fireEvent.change(await screen.findByTestId("evidence-purposes"), { target: { value: "Plankton survey\n\nEU grant reporting" } });
    fireEvent.click(screen.getByTestId("evidence-submit"));
    const notice = await screen.findByTestId("workspace-notice");
    const call = calls.find((c) => c.cmd === "project_evidence_pack")!;
    expect(call.args.project).toBe("plankton");
    expect(call.args.dest).toMatch(/^\/home\/ann\/audits\/plankton-evidence-\d{4}-\d{2}-\d{2}$/);
    expect(call.args.purposes).toContain("EU grant reporting");
    expect(notice.textContent).toContain("the audit chain does NOT verify");
    expect(notice.textContent).toContain("2 failing");
    expect(screen.queryByTestId("evidence-dialog")).toBeNull();
  });
});
