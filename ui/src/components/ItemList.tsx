import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState, type KeyboardEvent } from "react";
import { formatBytes, formatDateTime, humanize } from "../lib/format";
import type { PageCache } from "../lib/pageCache";
import type { ItemRow, ItemSort, SortKey } from "../types";

const ROW_HEIGHT = 36;
/** Wait this long for the scroll position to settle before fetching missing pages. */
export const FETCH_DELAY_MS = 40;

const COLUMNS: { key: SortKey; label: string; className: string }[] = [
  { key: "path", label: "Name", className: "col-path" },
  { key: "size", label: "Size", className: "col-size" },
  { key: "mediaType", label: "Media type", className: "col-media" },
  { key: "dataType", label: "Data type", className: "col-dtype" },
  { key: "modified", label: "Modified", className: "col-date" },
  { key: "created", label: "Created", className: "col-date" },
];

/**
 * The virtualized, sortable item list. Only the rows in view (plus a small overscan) exist in the
 * DOM; rows are read from the page cache, which fetches ~200-row pages around the viewport.
 * Keyboard: arrows/PageUp/PageDown/Home/End move the active row, Enter opens it.
 */
export function ItemList({
  cache,
  version,
  sort,
  onSort,
  selectedId,
  onOpen,
}: {
  cache: PageCache<ItemRow>;
  version: number;
  sort: ItemSort;
  onSort: (key: SortKey) => void;
  selectedId: string | null;
  onOpen: (row: ItemRow) => void;
}) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const [active, setActive] = useState(0);
  const total = cache.total ?? 0;
  const virtualizer = useVirtualizer({
    count: total,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    initialRect: { width: 800, height: 600 },
  });
  const virtualItems = virtualizer.getVirtualItems();
  const first = virtualItems[0]?.index ?? 0;
  const last = virtualItems[virtualItems.length - 1]?.index ?? 0;

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

  useEffect(() => {
    if (active >= total && total > 0) setActive(total - 1);
  }, [active, total]);

  const move = (to: number) => {
    if (total === 0) return;
    const next = Math.max(0, Math.min(total - 1, to));
    setActive(next);
    virtualizer.scrollToIndex(next, { align: "auto" });
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const page = Math.max(1, Math.floor((scrollRef.current?.clientHeight ?? 360) / ROW_HEIGHT) - 1);
    switch (e.key) {
      case "ArrowDown":
        move(active + 1);
        break;
      case "ArrowUp":
        move(active - 1);
        break;
      case "PageDown":
        move(active + page);
        break;
      case "PageUp":
        move(active - page);
        break;
      case "Home":
        move(0);
        break;
      case "End":
        move(total - 1);
        break;
      case "Enter":
      case " ": {
        const row = cache.get(active);
        if (row) onOpen(row);
        break;
      }
      default:
        return;
    }
    e.preventDefault();
  };

  const activeRow = cache.get(active);

  return (
    <div className="item-list">
      <div className="item-list__header" role="presentation">
        {COLUMNS.map((c) => {
          const sorted = sort.key === c.key;
          return (
            <button
              key={c.key}
              type="button"
              className={`item-list__sort ${c.className}${sorted ? " is-sorted" : ""}`}
              data-testid={`sort-${c.key}`}
              aria-label={`Sort by ${c.label}${sorted ? (sort.desc ? ", descending" : ", ascending") : ""}`}
              aria-pressed={sorted}
              onClick={() => onSort(c.key)}
            >
              {c.label}
              <span className="item-list__arrow" aria-hidden="true">
                {sorted ? (sort.desc ? "▼" : "▲") : ""}
              </span>
            </button>
          );
        })}
      </div>
      <div
        ref={scrollRef}
        className="item-list__scroll"
        role="grid"
        aria-label="Items"
        aria-rowcount={total}
        aria-activedescendant={activeRow ? `row-${activeRow.id}` : undefined}
        tabIndex={0}
        data-testid="item-list"
        data-total={cache.total ?? ""}
        onKeyDown={onKeyDown}
      >
        {cache.total === 0 ? <p className="item-list__empty">No items here yet. Import files or drop them onto the window.</p> : null}
        <div className="item-list__spacer" style={{ height: virtualizer.getTotalSize() }}>
          {virtualItems.map((v) => {
            const row = cache.get(v.index);
            const isActive = v.index === active;
            if (!row) {
              return (
                <div
                  key={v.key}
                  className="item-row item-row--loading"
                  role="row"
                  aria-rowindex={v.index + 1}
                  style={{ transform: `translateY(${v.start}px)`, height: ROW_HEIGHT }}
                >
                  <span className="col-path muted">Loading…</span>
                </div>
              );
            }
            const selected = row.id === selectedId;
            return (
              <div
                key={v.key}
                id={`row-${row.id}`}
                className={`item-row${selected ? " is-selected" : ""}${isActive ? " is-active" : ""}${row.state !== "active" ? " is-deleted" : ""}`}
                role="row"
                aria-rowindex={v.index + 1}
                aria-selected={selected}
                data-testid="item-row"
                data-item-id={row.id}
                data-path={row.path}
                data-state={row.state}
                style={{ transform: `translateY(${v.start}px)`, height: ROW_HEIGHT }}
                onClick={() => {
                  setActive(v.index);
                  onOpen(row);
                }}
              >
                <span className="col-path" role="gridcell" title={row.path}>
                  {row.path}
                  {row.state !== "active" ? <span className="pill pill--muted">{humanize(row.state)}</span> : null}
                </span>
                <span className="col-size" role="gridcell">
                  {formatBytes(row.size)}
                </span>
                <span className="col-media" role="gridcell" title={row.mediaType}>
                  {row.mediaType}
                </span>
                <span className="col-dtype" role="gridcell">
                  {humanize(row.dataType)}
                </span>
                <span className="col-date" role="gridcell">
                  {formatDateTime(row.updatedAt)}
                </span>
                <span className="col-date" role="gridcell">
                  {formatDateTime(row.createdAt)}
                </span>
              </div>
            );
          })}
        </div>
      </div>
      <p className="item-list__footer muted small" aria-live="polite">
        {cache.total === null ? "Loading…" : `${cache.total.toLocaleString()} item${cache.total === 1 ? "" : "s"}`}
      </p>
    </div>
  );
}
