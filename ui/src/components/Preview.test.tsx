import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { Preview, TEXT_PREVIEW_BYTES, prettyJson, previewKind } from "./Preview";
import { importSummary } from "../screens/Workspace";

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

function serve(body: string, status = 200, headers: Record<string, string> = {}) {
  const seen: { url: string; range: string | null }[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init?: RequestInit) => {
      const h = (init?.headers ?? {}) as Record<string, string>;
      seen.push({ url, range: h.Range ?? null });
      return new Response(body, { status, headers });
    }),
  );
  return seen;
}

function backend(calls: string[]) {
  mockIPC((cmd, args) => {
    calls.push(cmd);
    const id = (args as { itemId: string }).itemId;
    if (cmd === "preview_open") return { url: `lvpreview://localhost/item/${id}`, mediaType: "text/csv", size: 10 };
    return null;
  });
}

describe("previewKind", () => {
  it("routes media types to the right viewer", () => {
    expect(previewKind("image/svg+xml", "a.svg")).toBe("image");
    expect(previewKind("application/pdf", "a.pdf")).toBe("pdf");
    expect(previewKind("text/tab-separated-values", "a.tsv")).toBe("table");
    expect(previewKind("application/json", "a.json")).toBe("json");
    expect(previewKind("text/x-python", "a.py")).toBe("text");
    expect(previewKind("application/x-hdf5", "a.h5")).toBe("none");
  });

  it("pretty-prints complete JSON and leaves a cut document as is", () => {
    expect(prettyJson('{"a":[1,2]}', false)).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(prettyJson('{"a":[1,', true)).toBe('{"a":[1,');
  });
});

describe("Preview", () => {
  it("opens the preview, fetches only the first bytes with a Range, and shows a CSV as a table", async () => {
    const calls: string[] = [];
    backend(calls);
    const seen = serve('name,value\n"Smith, J.",1\nDoe,2\n', 206, { "Content-Range": "bytes 0-30/31" });
    render(<Preview itemId="i1" mediaType="text/csv" path="data/run.csv" size={31} />);
    const table = await screen.findByTestId("preview-table");
    expect(table.querySelectorAll("tbody tr")).toHaveLength(2);
    expect(table.textContent).toContain("Smith, J.");
    expect(seen[0]).toEqual({ url: "lvpreview://localhost/item/i1", range: `bytes=0-${TEXT_PREVIEW_BYTES - 1}` });
    expect(calls).toContain("preview_open");
    cleanup();
    await waitFor(() => expect(calls).toContain("preview_close"));
  });

  it("shows a refused preview by code (locked) instead of content", async () => {
    backend([]);
    serve("", 403);
    render(<Preview itemId="i2" mediaType="text/plain" path="notes.txt" size={5} />);
    await waitFor(() => expect(screen.getByTestId("item-preview").dataset.state).toBe("error"));
    expect(screen.getByTestId("item-preview").querySelector("[data-code]")?.getAttribute("data-code")).toBe("locked");
  });

  it("pretty-prints a JSON file in the text view", async () => {
    backend([]);
    serve('{"ok":true}');
    render(<Preview itemId="i3" mediaType="application/json" path="r.json" size={11} />);
    const pre = await screen.findByTestId("preview-text");
    expect(pre.textContent).toBe('{\n  "ok": true\n}');
  });
});

describe("importSummary", () => {
  it("counts imported and failed files", () => {
    const f = { source: "/x", itemId: "i", path: "x", version: 1, size: 1, sha256: "" };
    expect(importSummary({ imported: [f, f], failed: [{ source: "/y", code: "io", message: "m" }] })).toBe(
      "2 files imported, 1 failed.",
    );
  });
});

describe("Preview integrity failures", () => {
  it("shows tampered (HTTP 422 with the code as body) by code", async () => {
    backend([]);
    serve("tampered", 422);
    render(<Preview itemId="i4" mediaType="text/plain" path="n.txt" size={5} />);
    await waitFor(() => expect(screen.getByTestId("item-preview").dataset.state).toBe("error"));
    expect(screen.getByTestId("item-preview").querySelector("[data-code]")?.getAttribute("data-code")).toBe("tampered");
  });
});
