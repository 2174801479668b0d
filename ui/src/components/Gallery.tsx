import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState } from "react";
import { fetchPreview, previewClose, previewOpen } from "../api";
import { baseName } from "../lib/format";
import type { PageCache } from "../lib/pageCache";
import { FETCH_DELAY_MS } from "./ItemList";
import { objectUrls } from "../lib/session";
import type { ItemRow } from "../types";
import { FULL_PREVIEW_LIMIT, previewKind } from "./Preview";

const TILE = 176;
const GAP = 12;

/** The plots area as a grid of thumbnails, virtualized by rows; each image loads only when visible. */
export function Gallery({
  cache,
  version,
  selectedId,
  onOpen,
}: {
  cache: PageCache<ItemRow>;
  version: number;
  selectedId: string | null;
  onOpen: (row: ItemRow) => void;
}) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const [columns, setColumns] = useState(4);
  useEffect(() => {
    const el = scrollRef.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => setColumns(Math.max(1, Math.floor((el.clientWidth - GAP) / (TILE + GAP)))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const total = cache.total ?? 0;
  const rowCount = Math.ceil(total / columns);
  const virtualizer = useVirtualizer({
    count: rowCount,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => TILE + GAP,
    overscan: 2,
    initialRect: { width: 800, height: 600 },
  });
  const rows = virtualizer.getVirtualItems();
  const first = (rows[0]?.index ?? 0) * columns;
  const last = ((rows[rows.length - 1]?.index ?? 0) + 1) * columns - 1;
  useEffect(() => {
    // Always ask for the first page, so the total (and the empty state) becomes known. A short
    // delay means dragging the scrollbar across 100,000 rows fetches only where it stops; the first
    // request goes at once (nothing is on screen yet).
    const t = setTimeout(
      () => void cache.ensureRange(first, Math.max(first, last)),
      cache.total === null ? 0 : FETCH_DELAY_MS,
    );
    return () => clearTimeout(t);
  }, [cache, first, last, version]);

  return (
    <div ref={scrollRef} className="gallery" data-testid="gallery" data-total={cache.total ?? ""} role="list" aria-label="Plots">
      {cache.total === 0 ? <p className="item-list__empty">No plots yet. Import figures into this area.</p> : null}
      <div className="gallery__spacer" style={{ height: virtualizer.getTotalSize() }}>
        {rows.map((r) => (
          <div key={r.key} className="gallery__row" style={{ transform: `translateY(${r.start}px)` }}>
            {Array.from({ length: columns }, (_, c) => {
              const index = r.index * columns + c;
              if (index >= total) return null;
              const row = cache.get(index);
              if (!row) return <div key={c} className="tile tile--loading" />;
              return <Tile key={row.id} row={row} selected={row.id === selectedId} onOpen={onOpen} />;
            })}
          </div>
        ))}
      </div>
    </div>
  );
}

function Tile({ row, selected, onOpen }: { row: ItemRow; selected: boolean; onOpen: (row: ItemRow) => void }) {
  const [url, setUrl] = useState<string | null>(null);
  const isImage = previewKind(row.mediaType, row.path) === "image" && row.size <= FULL_PREVIEW_LIMIT && row.state === "active";
  useEffect(() => {
    if (!isImage) return;
    const abort = new AbortController();
    let created: string | null = null;
    // Small delay: fast scrolling past a tile does not decrypt it.
    const t = setTimeout(async () => {
      const opened = await previewOpen(row.id, null);
      if (abort.signal.aborted || !opened.ok) return;
      const r = await fetchPreview(opened.value.url, undefined, abort.signal);
      void previewClose(row.id, null);
      if (abort.signal.aborted || !r.ok) return;
      created = objectUrls.create(new Blob([r.value.blob], { type: row.mediaType }));
      setUrl(created);
    }, 120);
    return () => {
      clearTimeout(t);
      abort.abort();
      if (created) objectUrls.revoke(created);
    };
  }, [row.id, row.mediaType, isImage]);
  return (
    <button
      type="button"
      role="listitem"
      className={`tile${selected ? " is-selected" : ""}${row.state !== "active" ? " is-deleted" : ""}`}
      data-testid="item-row"
      data-item-id={row.id}
      data-path={row.path}
      data-state={row.state}
      onClick={() => onOpen(row)}
      title={row.path}
    >
      <span className="tile__thumb">
        {url ? <img src={url} alt="" /> : <span className="tile__type">{row.mediaType.split("/")[1] ?? row.mediaType}</span>}
      </span>
      <span className="tile__name">{baseName(row.path)}</span>
    </button>
  );
}
