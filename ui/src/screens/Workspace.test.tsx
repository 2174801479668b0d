import { afterEach, describe, expect, it } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { ProgressPanel, ProgressProvider } from "../components/progress";
import { WorkspaceScreen } from "./Workspace";

afterEach(() => {
  cleanup();
  clearMocks();
});

type Call = { cmd: string; args: any };

/**
 * The workspace of one project ("plankton", empty) with the progress panel, answering `extra`
 * commands as given and anything else with null; returns every call made.
 */
function renderWorkspace(extra: Record<string, (args: any) => unknown>): Call[] {
  const calls: Call[] = [];
  mockIPC((cmd, args: any) => {
    calls.push({ cmd, args });
    if (cmd === "projects_list") return [{ id: "p1", name: "plankton", createdAt: "2026-12-01T00:00:00Z", createdBy: "ann", items: 2, bytes: 10 }];
    if (cmd === "items_page") return { total: 0, rows: [] };
    return extra[cmd] ? extra[cmd](args) : null;
  });
  render(
    <ProgressProvider>
      <WorkspaceScreen />
      <ProgressPanel />
    </ProgressProvider>,
  );
  return calls;
}

describe("WorkspaceScreen", () => {
  it("exports the selected project as a bundle at the path the user chose, and says how to check it", async () => {
    const calls = renderWorkspace({
      pick_save_path: () => "/home/ann/plankton-bundle.tar",
      project_export_bundle: (args) => ({ path: args.dest, files: 2, bytes: 10, auditEvents: 7, bundleDigest: "ab".repeat(32) }),
    });
    fireEvent.click(await screen.findByTestId("export-project"));
    fireEvent.click(await screen.findByTestId("bundle-submit"));
    await waitFor(() => expect(screen.getByTestId("progress-panel").textContent).toContain("labvault verify-bundle"));
    const call = calls.find((c) => c.cmd === "project_export_bundle")!;
    expect(call.args.project).toBe("plankton");
    expect(call.args.dest).toBe("/home/ann/plankton-bundle.tar");
    expect(call.args.options).toEqual({ allVersions: false, recipients: [] });
    expect(calls.find((c) => c.cmd === "pick_save_path")!.args.defaultName).toMatch(/^plankton-bundle-\d{4}-\d{2}-\d{2}\.tar$/);
    expect(screen.getByTestId("progress-panel").textContent).toContain("2 files and 7 audit events in /home/ann/plankton-bundle.tar");
  });

  it("seals a bundle with a passphrase typed twice, with earlier versions, under a .tar.age name", async () => {
    const calls = renderWorkspace({
      pick_save_path: () => "/archive/plankton.tar.age",
      project_export_bundle: (args) => ({ path: args.dest, encrypted: true, files: 3, bytes: 10, auditEvents: 7, bundleDigest: "ab".repeat(32) }),
    });
    fireEvent.click(await screen.findByTestId("export-project"));
    fireEvent.click(screen.getByTestId("bundle-all-versions"));
    fireEvent.click(screen.getByTestId("bundle-seal-passphrase"));
    fireEvent.change(screen.getByTestId("bundle-pass"), { target: { value: "for the archive" } });
    fireEvent.change(screen.getByTestId("bundle-pass2"), { target: { value: "for the archivE" } });
    fireEvent.click(screen.getByTestId("bundle-submit"));
    expect(screen.getByTestId("bundle-problem").textContent).toContain("differ");
    expect(calls.some((c) => c.cmd === "pick_save_path")).toBe(false);
    fireEvent.change(screen.getByTestId("bundle-pass2"), { target: { value: "for the archive" } });
    expect(screen.queryByTestId("bundle-problem")).toBeNull();
    fireEvent.click(screen.getByTestId("bundle-submit"));
    await waitFor(() => expect(screen.getByTestId("progress-panel").textContent).toContain("encrypted with age"));
    expect(calls.find((c) => c.cmd === "pick_save_path")!.args.defaultName).toMatch(/^plankton-bundle-\d{4}-\d{2}-\d{2}\.tar\.age$/);
    const call = calls.find((c) => c.cmd === "project_export_bundle")!;
    expect(call.args.options).toEqual({ allVersions: true, passphrase: "for the archive", recipients: [] });
    expect(screen.queryByTestId("bundle-dialog")).toBeNull();
  });

  it("refuses recipients that are not age keys before asking where to save", async () => {
    const calls = renderWorkspace({}).map((c) => c.cmd);
    fireEvent.click(await screen.findByTestId("export-project"));
    fireEvent.click(screen.getByTestId("bundle-seal-recipients"));
    fireEvent.change(screen.getByTestId("bundle-recipients"), { target: { value: "age1abc\nssh-ed25519 AAAA" } });
    fireEvent.click(screen.getByTestId("bundle-submit"));
    expect(screen.getByTestId("bundle-problem").textContent).toContain("ssh-ed25519 is not an age recipient");
    expect(calls).not.toContain("pick_save_path");
  });

  it("generates an evidence pack with the purposes typed and says what it found, failing chain included", async () => {
    const calls = renderWorkspace({
      pick_export_dir: () => "/home/ann/audits/",
      project_evidence_pack: (args) => ({ path: args.dest, files: ["index.html"], auditOk: false, controls: { covered: 5, partly: 6, "not covered": 3, failing: 2 }, withTenant: false }),
    });
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
