import { afterEach, describe, expect, it } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { WatchesScreen } from "./Watches";

afterEach(() => {
  cleanup();
  clearMocks();
});

const watch = (over: Record<string, unknown> = {}) => ({
  id: "w1",
  name: "spectro-1",
  folder: "/data/spectro",
  projectId: "p1",
  projectName: "plankton",
  area: "uploads",
  dataType: "research_data",
  include: ["*.raw"],
  exclude: [".*", "*.tmp"],
  deleteSource: false,
  settleSecs: 5,
  paused: false,
  imported: 1,
  lastImportAt: "2026-12-07T09:00:00Z",
  state: "watching",
  reason: null,
  waiting: 0,
  ...over,
});

describe("WatchesScreen", () => {
  it("adds a watch from a chosen folder, shows its activity, pauses and removes it", async () => {
    const calls: { cmd: string; args: any }[] = [];
    let list: any[] = [];
    mockIPC((cmd, args: any) => {
      calls.push({ cmd, args });
      switch (cmd) {
        case "projects_list":
          return [{ id: "p1", name: "plankton", createdAt: "2026-12-01T00:00:00Z", createdBy: "ann", items: 0, bytes: 0 }];
        case "watch_list":
          return list;
        case "pick_import_folder":
          return "/data/spectro 1";
        case "watch_add":
          if (args.watch.folder.includes("vault")) throw { code: "invalid_argument", message: "/home/ann/vault overlaps the vault" };
          list = [watch({ name: args.watch.name, imported: 0, lastImportAt: null })];
          return list[0];
        case "watch_details":
          return {
            watch: list[0],
            activity: [
              { at: "2026-12-07T09:00:02Z", kind: "failed", source: "bad\\name.raw", message: "invalid name (rename the file to import it)" },
              { at: "2026-12-07T09:00:01Z", kind: "imported", source: "run-7/a.raw", message: "imported as run-7/a.raw (version 1)" },
            ],
            recent: [{ source: "run-7/a.raw", size: 2048, itemId: "i1", version: 1, importedAt: "2026-12-07T09:00:01Z", sourceDeleted: false }],
          };
        case "watch_pause":
          list = [{ ...list[0], paused: args.paused, state: args.paused ? "paused" : "watching" }];
          return list[0];
        case "watch_remove":
          list = [];
          return null;
        default:
          return null;
      }
    });
    render(<WatchesScreen />);
    expect(await screen.findByTestId("watch-empty")).toBeTruthy();

    fireEvent.click(screen.getByTestId("watch-new"));
    const dialog = await screen.findByTestId("watch-add-dialog");
    // A folder inside the vault is refused with the reason, and the form keeps what was typed.
    fireEvent.change(within(dialog).getByTestId("watch-folder"), { target: { value: "/home/ann/vault/x" } });
    fireEvent.change(within(dialog).getByTestId("watch-name"), { target: { value: "inside" } });
    fireEvent.click(within(dialog).getByTestId("watch-add"));
    await waitFor(() => expect(screen.getByTestId("watch-add-error").dataset.code).toBe("invalid_argument"));
    expect((within(dialog).getByTestId("watch-name") as HTMLInputElement).value).toBe("inside");

    fireEvent.change(within(dialog).getByTestId("watch-name"), { target: { value: "" } });
    fireEvent.click(within(dialog).getByTestId("watch-choose"));
    // The name is suggested from the folder, made valid.
    await waitFor(() => expect((within(dialog).getByTestId("watch-name") as HTMLInputElement).value).toBe("spectro-1"));
    fireEvent.change(within(dialog).getByTestId("watch-include"), { target: { value: "*.raw\n\n run-*/*.csv " } });
    fireEvent.change(within(dialog).getByTestId("watch-settle"), { target: { value: "30" } });
    fireEvent.click(within(dialog).getByTestId("watch-delete-source"));
    fireEvent.click(within(dialog).getByTestId("watch-add"));
    await waitFor(() => expect(screen.queryByTestId("watch-add-dialog")).toBeNull());
    const add = calls.filter((c) => c.cmd === "watch_add").pop()!.args.watch;
    expect(add).toEqual({
      name: "spectro-1",
      folder: "/data/spectro 1",
      project: "plankton",
      area: "uploads",
      dataType: null,
      include: ["*.raw", "run-*/*.csv"],
      exclude: [".*", "*.tmp", "*.part", "~$*"],
      deleteSource: true,
      settleSecs: 30,
    });

    // The new watch opens with its activity: the failure says what to do.
    const panel = await screen.findByTestId("watch-panel");
    await waitFor(() => expect(within(panel).getByTestId("watch-activity").textContent).toContain("rename the file"));
    expect(within(panel).getByTestId("watch-recent").textContent).toContain("run-7/a.raw");
    expect(screen.getByTestId("watch-state-spectro-1").textContent).toBe("Watching");

    fireEvent.click(screen.getByTestId("watch-pause-spectro-1"));
    await waitFor(() => expect(screen.getByTestId("watch-state-spectro-1").textContent).toBe("Paused"));
    expect(calls.find((c) => c.cmd === "watch_pause")!.args).toEqual({ id: "w1", paused: true });

    fireEvent.click(within(panel).getByTestId("watch-remove"));
    fireEvent.click(await screen.findByTestId("watch-remove-confirm"));
    await waitFor(() => expect(screen.getByTestId("watch-empty")).toBeTruthy());
    expect(screen.getByTestId("watch-notice").textContent).toContain("stay in the vault");
  });

  it("shows an unavailable folder with its reason", async () => {
    mockIPC((cmd) => {
      if (cmd === "watch_list") return [watch({ state: "unavailable", reason: "the folder is not there (a drive not mounted, or moved)" })];
      if (cmd === "projects_list") return [];
      return null;
    });
    render(<WatchesScreen />);
    const row = await screen.findByTestId("watch-row-spectro-1");
    expect(within(row).getByTestId("watch-state-spectro-1").textContent).toBe("Folder unavailable");
    expect(row.textContent).toContain("drive not mounted");
  });
});
