import { useEffect, useRef, useState } from "react";
import { fetchPreview, previewClose, previewOpen } from "../api";
import { errorText, type AppError } from "../errors";
import { delimiterFor, parseDelimited } from "../lib/csv";
import { formatBytes } from "../lib/format";
import { objectUrls } from "../lib/session";

/** Bytes fetched for text, JSON and table previews (a Range request; the rest is never decrypted). */
export const TEXT_PREVIEW_BYTES = 256 * 1024;
/** Rows shown in a CSV/TSV table preview. */
export const TABLE_PREVIEW_ROWS = 100;
/** Largest image or PDF previewed in full. */
export const FULL_PREVIEW_LIMIT = 64 * 1024 * 1024;

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/svg+xml", "image/gif", "image/webp"]);

export type PreviewKind = "image" | "table" | "json" | "text" | "pdf" | "none";

/** Which preview an item gets, from its media type and name. */
export function previewKind(mediaType: string, path: string): PreviewKind {
  if (IMAGE_TYPES.has(mediaType)) return "image";
  if (mediaType === "application/pdf") return "pdf";
  if (delimiterFor(mediaType, path)) return "table";
  if (mediaType === "application/json" || mediaType.endsWith("+json")) return "json";
  if (mediaType.startsWith("text/") || mediaType === "application/xml") return "text";
  return "none";
}

type State =
  | { kind: "loading" }
  | { kind: "error"; error: AppError }
  | { kind: "too-large" }
  | { kind: "none" }
  | { kind: "image"; url: string }
  | { kind: "table"; rows: string[][]; more: boolean }
  | { kind: "text"; text: string; truncated: boolean }
  | { kind: "pdf"; data: ArrayBuffer };

/** Pretty-prints JSON when the whole document is there; otherwise shows the text as is. */
export function prettyJson(text: string, truncated: boolean): string {
  if (truncated) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** The preview of one item, decrypted in memory by the `lvpreview` scheme; freed on unmount or lock. */
export function Preview({ itemId, version, mediaType, path, size }: { itemId: string; version?: number; mediaType: string; path: string; size: number }) {
  const kind = previewKind(mediaType, path);
  const [state, setState] = useState<State>({ kind: "loading" });

  useEffect(() => {
    const abort = new AbortController();
    let url: string | null = null;
    setState({ kind: "loading" });
    const load = async () => {
      if (kind === "none") return setState({ kind: "none" });
      if ((kind === "image" || kind === "pdf") && size > FULL_PREVIEW_LIMIT) return setState({ kind: "too-large" });
      const partial = kind === "table" || kind === "json" || kind === "text";
      const opened = await previewOpen(itemId, version ?? null);
      if (abort.signal.aborted) return;
      if (!opened.ok) return setState({ kind: "error", error: opened.error });
      const r = await fetchPreview(opened.value.url, partial ? TEXT_PREVIEW_BYTES : undefined, abort.signal);
      if (abort.signal.aborted) return;
      if (!r.ok) return setState({ kind: "error", error: r.error });
      const { blob } = r.value;
      const truncated = r.value.truncated || (partial && size > TEXT_PREVIEW_BYTES);
      if (kind === "image") {
        url = objectUrls.create(new Blob([blob], { type: mediaType }));
        return setState({ kind: "image", url });
      }
      if (kind === "pdf") return setState({ kind: "pdf", data: await blob.arrayBuffer() });
      const text = new TextDecoder("utf-8", { fatal: false }).decode(await blob.arrayBuffer());
      if (abort.signal.aborted) return;
      if (kind === "table") {
        const parsed = parseDelimited(text, {
          delimiter: delimiterFor(mediaType, path) ?? ",",
          maxRows: TABLE_PREVIEW_ROWS + 1,
          truncated,
        });
        return setState({ kind: "table", rows: parsed.rows, more: parsed.more });
      }
      // A cut may split a multi-byte character at the end: drop the replacement char it leaves.
      const clean = truncated ? text.replace(/\uFFFD$/, "") : text;
      setState({ kind: "text", text: kind === "json" ? prettyJson(clean, truncated) : clean, truncated });
    };
    void load();
    return () => {
      abort.abort();
      if (url) objectUrls.revoke(url);
      // Drop the decrypted view on the Rust side too (no-op when it was never opened).
      if (kind !== "none") void previewClose(itemId, version ?? null);
    };
  }, [itemId, version, kind, mediaType, path, size]);

  return (
    <section className="preview" data-testid="item-preview" data-kind={kind} data-state={state.kind} aria-label="Preview">
      {state.kind === "loading" ? <p className="muted">Decrypting preview…</p> : null}
      {state.kind === "error" ? (
        <p className="preview__message" data-code={state.error.code}>
          {errorText(state.error.code)}
        </p>
      ) : null}
      {state.kind === "none" ? <p className="preview__message muted">No preview for {mediaType} files. Export the item to open it.</p> : null}
      {state.kind === "too-large" ? (
        <p className="preview__message muted">This file is too large to preview ({formatBytes(size)}). Export it to open it.</p>
      ) : null}
      {state.kind === "image" ? <img className="preview__image" src={state.url} alt={`Preview of ${path}`} data-testid="preview-image" /> : null}
      {state.kind === "table" ? <PreviewTable rows={state.rows} more={state.more} /> : null}
      {state.kind === "text" ? (
        <>
          <pre className="preview__text" data-testid="preview-text" tabIndex={0}>
            {state.text}
          </pre>
          {state.truncated ? <p className="muted small">Showing the first {formatBytes(TEXT_PREVIEW_BYTES)}.</p> : null}
        </>
      ) : null}
      {state.kind === "pdf" ? <PdfPreview data={state.data} /> : null}
    </section>
  );
}

function PreviewTable({ rows, more }: { rows: string[][]; more: boolean }) {
  const [header, ...body] = rows;
  const shown = body.slice(0, TABLE_PREVIEW_ROWS - 1);
  const width = Math.max(0, ...rows.map((r) => r.length));
  return (
    <div className="preview__table-wrap" tabIndex={0} role="region" aria-label="Table preview">
      <table className="preview__table" data-testid="preview-table">
        {header ? (
          <thead>
            <tr>
              {Array.from({ length: width }, (_, i) => (
                <th key={i} scope="col">
                  {header[i] ?? ""}
                </th>
              ))}
            </tr>
          </thead>
        ) : null}
        <tbody>
          {shown.map((r, ri) => (
            <tr key={ri}>
              {Array.from({ length: width }, (_, i) => (
                <td key={i}>{r[i] ?? ""}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small">
        {more || body.length > shown.length ? `Showing the first ${shown.length} rows.` : `${shown.length} rows.`}
      </p>
    </div>
  );
}

/** Renders the first pages of a PDF with pdf.js (bundled, worker served from the app itself). */
function PdfPreview({ data }: { data: ArrayBuffer }) {
  const ref = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [pages, setPages] = useState<number | null>(null);
  useEffect(() => {
    let cancelled = false;
    let destroy: (() => void) | null = null;
    (async () => {
      try {
        const pdfjs = await import("pdfjs-dist");
        const worker = await import("pdfjs-dist/build/pdf.worker.min.mjs?url");
        pdfjs.GlobalWorkerOptions.workerSrc = worker.default;
        const task = pdfjs.getDocument({ data: new Uint8Array(data.slice(0)), isEvalSupported: false, enableXfa: false });
        destroy = () => void task.destroy();
        const doc = await task.promise;
        if (cancelled) return;
        setPages(doc.numPages);
        const container = ref.current;
        if (!container) return;
        container.replaceChildren();
        for (let n = 1; n <= Math.min(doc.numPages, 3); n += 1) {
          const page = await doc.getPage(n);
          if (cancelled) return;
          const base = page.getViewport({ scale: 1 });
          const scale = Math.min(2, (container.clientWidth || 560) / base.width);
          const viewport = page.getViewport({ scale: scale * (window.devicePixelRatio || 1) });
          const canvas = document.createElement("canvas");
          canvas.width = viewport.width;
          canvas.height = viewport.height;
          canvas.className = "preview__pdf-page";
          canvas.setAttribute("aria-label", `Page ${n}`);
          container.appendChild(canvas);
          await page.render({ canvas, viewport }).promise;
        }
      } catch (e) {
        if (!cancelled) setError(e instanceof Error ? e.message : "The PDF could not be rendered.");
      }
    })();
    return () => {
      cancelled = true;
      destroy?.();
      ref.current?.replaceChildren();
    };
  }, [data]);
  return (
    <div className="preview__pdf" data-testid="preview-pdf" data-pages={pages ?? ""}>
      {error ? <p className="preview__message">The PDF could not be rendered: {error}</p> : null}
      <div ref={ref} className="preview__pdf-pages" />
      {pages !== null && pages > 3 ? <p className="muted small">Showing 3 of {pages} pages.</p> : null}
    </div>
  );
}
