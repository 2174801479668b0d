/**
 * Development only: the UI against an in-memory fake backend (100,000 items, audit events,
 * retention data), for looking at layouts in a plain browser with `npx vite --port 1499` and
 * opening /dev/mock.html. Never part of the production build (index.html does not load it).
 */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { mockIPC } from "@tauri-apps/api/mocks";
import App from "../src/App";
import "../src/styles.css";

const params = new URLSearchParams(location.search);
let unlocked = params.has("unlocked");
const TOTAL = 100_000;
const types = ["text/csv", "image/png", "application/json", "text/plain", "application/pdf", "image/svg+xml"];
const ext: Record<string, string> = {
  "text/csv": "csv",
  "image/png": "png",
  "application/json": "json",
  "text/plain": "txt",
  "application/pdf": "pdf",
  "image/svg+xml": "svg",
};
const row = (i: number, area = "uploads") => {
  const mediaType = area === "plots" ? "image/svg+xml" : types[i % types.length]!;
  return {
    id: `item-${area}-${i}`,
    project: "Microscopy 2026",
    projectId: "p1",
    area,
    path: `${area === "plots" ? "figures" : "runs/plate-" + Math.floor(i / 96)}/sample-${String(i).padStart(6, "0")}.${ext[mediaType]}`,
    size: 1024 * ((i * 7919) % 50000),
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    state: i % 50 === 3 ? "soft_deleted" : "active",
    mediaType,
    dataType: area === "uploads" ? "research_data" : "analysis_result",
    version: 1,
    createdBy: "ada",
    createdAt: new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString(),
    updatedAt: new Date(Date.UTC(2026, 2, 1) + i * 60_000).toISOString(),
    deletedAt: null,
    erasedAt: null,
    eraseReason: null,
  };
};
const event = (seq: number) => ({
  timestamp: new Date(Date.UTC(2026, 10, 22, 16) - seq * 90_000).toISOString(),
  user: seq % 3 ? "ada" : "grace",
  action: ["data.import", "data.view", "data.export", "vault.unlock", "retention.hold_set"][seq % 5]!,
  resource: `project/p1/item/${seq}`,
  userAgent: "labvault-desktop/0.1.0",
  result: seq % 17 === 0 ? "denied" : seq % 11 === 0 ? "failure" : "success",
  detail: seq % 17 === 0 ? "on_hold" : "",
  deviceId: "dev-1",
  seq: 5000 - seq,
  hash: "ab",
});
const periods = { researchData: "7y", analysisResult: "7y", backup: "90d", auditLog: "6y", sessionData: "90d", grace: "30d" };

mockIPC(
  (cmd, a) => {
    const args = (a ?? {}) as Record<string, any>;
    switch (cmd) {
      case "vault_status":
        return {
          exists: !params.has("new"),
          path: "/home/ada/.local/share/labvault/vault",
          unlocked,
          rememberedOnDevice: true,
          keyringAvailable: true,
          recoveryConfirmationPending: false,
          appVersion: "0.1.0",
          coreVersion: "0.1.0",
          autoLockMinutes: 15,
        };
      case "vault_unlock":
        if (args.passphrase !== "correct horse battery staple 42") {
          return Promise.reject({ code: "wrong_passphrase", message: "The passphrase does not open this vault." });
        }
        unlocked = true;
        return null;
      case "vault_lock":
        unlocked = false;
        return null;
      case "projects_list":
        return [
          { id: "p1", name: "Microscopy 2026", createdAt: "2026-01-01T00:00:00Z", createdBy: "ada" },
          { id: "p2", name: "Proteomics", createdAt: "2026-02-01T00:00:00Z", createdBy: "ada" },
        ];
      case "items_page": {
        const { offset, limit, query } = args;
        const total = query.area === "exports" ? 0 : query.area === "plots" ? 240 : TOTAL;
        const rows = [];
        for (let i = offset; i < Math.min(total, offset + limit); i += 1) rows.push(row(i, query.area));
        return new Promise((r) => setTimeout(() => r({ total, rows }), 60));
      }
      case "item_details": {
        const i = Number(String(args.itemId).split("-").pop());
        return {
          item: row(i, String(args.itemId).split("-")[1]),
          retention: {
            itemId: args.itemId, projectId: "p1", project: "Microscopy 2026", area: "uploads", path: "x", dataType: "research_data",
            period: "7y", size: 1, createdAt: "2026-01-01T00:00:00Z", expiresAt: "2033-01-01T00:00:00Z", state: "active",
            nextStep: "expire", nextStepAt: "2033-01-01T00:00:00Z",
          },
          holdReason: i % 2 ? null : "Case 2026-114 (records request)",
          history: [event(1), event(2), event(3)],
        };
      }
      case "preview_open":
        return { url: `lvpreview://localhost/item/${args.itemId}`, mediaType: "text/csv", size: 100 };
      case "audit_page": {
        const start = args.cursor ? Number(args.cursor) : 0;
        const events = [];
        for (let i = start; i < Math.min(5000, start + args.limit); i += 1) events.push(event(i));
        return { events, nextCursor: start + args.limit < 5000 ? String(start + args.limit) : null };
      }
      case "audit_verify":
        return new Promise((r) => setTimeout(() => r({ ok: !params.has("broken"), eventsChecked: 5000, firstBadSeq: params.has("broken") ? 4211 : null, deviceId: "dev-1", message: params.has("broken") ? "hash mismatch" : "ok" }), 400));
      case "retention_summary":
        return {
          now: new Date().toISOString(),
          projects: [
            { projectId: "p1", project: "Microscopy 2026", active: { items: 99_812, bytes: 4.2e11 }, onHold: { items: 120, bytes: 3e9 }, softDeleted: { items: 68, bytes: 1e8 }, erased: { items: 4, bytes: 0 }, due7d: 3, due30d: 68 },
            { projectId: "p2", project: "Proteomics", active: { items: 1_204, bytes: 8e9 }, onHold: { items: 0, bytes: 0 }, softDeleted: { items: 2, bytes: 1e6 }, erased: { items: 0, bytes: 0 }, due7d: 0, due30d: 2 },
          ],
        };
      case "retention_timeline":
        return {
          now: "",
          total: 5,
          entries: [1, 2, 3, 4, 5].map((d) => ({ at: new Date(Date.now() + d * 4 * 86_400_000).toISOString(), step: d % 2 ? "erase" : "expire", itemId: `i${d}`, project: "Microscopy 2026", area: "uploads", path: `runs/old-${d}.csv`, size: 1 })),
        };
      case "retention_items_page": {
        const rows = [];
        for (let i = args.offset; i < Math.min(1000, args.offset + args.limit); i += 1) {
          rows.push({ itemId: `r${i}`, projectId: "p1", project: "Microscopy 2026", area: "uploads", path: `runs/sample-${i}.csv`, dataType: "research_data", period: "7y", size: 1, createdAt: "2026-01-01T00:00:00Z", expiresAt: "2033-01-01T00:00:00Z", state: i % 9 === 0 ? "on_hold" : i % 13 === 0 ? "soft_deleted" : "active", nextStep: "expire", nextStepAt: "2033-01-01T00:00:00Z" });
        }
        return { total: 1000, rows };
      }
      case "retention_policies":
        return { plan: "professional", vault: {}, effective: periods, projects: [{ projectId: "p1", project: "Microscopy 2026", overrides: { researchData: "10y" }, effective: { ...periods, researchData: "10y" } }] };
      case "settings_get":
        return { autoLockMinutes: 15, vaultDir: "/home/ada/.local/share/labvault/vault", defaultVaultDir: null, rememberedOnDevice: true, logDir: null, appVersion: "0.1.0", coreVersion: "0.1.0" };
      case "import_paths": {
        const ch = args.onProgress;
        let n = 0;
        return new Promise((resolve) => {
          const t = setInterval(() => {
            n += 1;
            window.__TAURI_INTERNALS__.runCallback(ch.id, { message: { opId: args.opId, phase: "import", path: `/data/file-${n}.csv`, fileDone: 50, fileTotal: 100, overallDone: n * 10, overallTotal: 1000, filesDone: n, filesTotal: 100 }, index: n - 1 });
            if (n >= 40 && !params.has("hold")) {
              clearInterval(t);
              resolve({ imported: [], failed: [] });
            }
          }, 100);
        });
      }
      case "pick_import_files":
        return ["/data/a.csv"];
      default:
        return null;
    }
  },
  { shouldMockEvents: true },
);

// The lvpreview scheme does not exist in a browser: answer with generated content.
const realFetch = window.fetch.bind(window);
window.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
  const url = String(input);
  if (!url.startsWith("lvpreview:")) return realFetch(input, init);
  const i = Number(url.split("-").pop());
  const kind = types[i % types.length];
  if (url.includes("plots") || kind === "image/svg+xml" || kind === "image/png") {
    const hue = (i * 47) % 360;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200"><rect width="320" height="200" fill="white"/><polyline fill="none" stroke="hsl(${hue},60%,40%)" stroke-width="3" points="${Array.from({ length: 16 }, (_, k) => `${k * 20},${100 + 60 * Math.sin((k + i) / 2)}`).join(" ")}"/></svg>`;
    return new Response(svg, { headers: { "Content-Type": "image/svg+xml" } });
  }
  if (kind === "application/json") return new Response('{"sample":42,"ok":true,"values":[1,2,3]}');
  return new Response('well,od600,note\nA1,0.512,"clean, no bubbles"\nA2,0.498,\nA3,0.733,"multi\nline"\n', { headers: { "Content-Type": "text/csv" } });
};

declare global {
  interface Window {
    __TAURI_INTERNALS__: { runCallback: (id: number, data: unknown) => void };
  }
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
