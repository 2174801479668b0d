import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { PageCache } from "../lib/pageCache";
import type { ItemRow } from "../types";
import { ItemList } from "./ItemList";

beforeEach(() => {
  vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(360);
  vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(800);
  vi.spyOn(HTMLElement.prototype, "offsetHeight", "get").mockReturnValue(360);
  vi.spyOn(HTMLElement.prototype, "offsetWidth", "get").mockReturnValue(800);
  Element.prototype.scrollTo = function scrollTo() {} as typeof Element.prototype.scrollTo;
});

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

const row = (i: number): ItemRow => ({
  id: `id-${i}`,
  project: "P",
  projectId: "p",
  area: "uploads",
  path: `f-${i}.csv`,
  size: i,
  sha256: "",
  state: "active",
  mediaType: "text/csv",
  dataType: "research_data",
  version: 1,
  createdBy: "ada",
  createdAt: "2026-01-01T00:00:00Z",
  updatedAt: "2026-01-01T00:00:00Z",
  deletedAt: null,
  erasedAt: null,
  eraseReason: null,
});

async function setup(total = 100_000) {
  const fetched: number[] = [];
  const cache = new PageCache<ItemRow>(
    (offset, limit) => {
      fetched.push(offset);
      return Promise.resolve({ total, rows: Array.from({ length: Math.min(limit, total - offset) }, (_, k) => row(offset + k)) });
    },
    { pageSize: 200 },
  );
  await cache.ensureRange(0, 0);
  const onOpen = vi.fn();
  const onSort = vi.fn();
  const view = render(
    <ItemList cache={cache} version={cache.version} sort={{ key: "path", desc: false }} onSort={onSort} selectedId={null} onOpen={onOpen} />,
  );
  return { cache, fetched, onOpen, onSort, view };
}

describe("ItemList", () => {
  it("renders only a window of rows out of 100,000", async () => {
    await setup();
    const rows = screen.getAllByTestId("item-row");
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(60);
    expect(rows[0]!.dataset.path).toBe("f-0.csv");
    expect(screen.getByTestId("item-list").getAttribute("aria-rowcount")).toBe("100000");
  });

  it("moves the active row with the arrow keys and opens it with Enter", async () => {
    const { onOpen } = await setup();
    const grid = screen.getByTestId("item-list");
    grid.focus();
    fireEvent.keyDown(grid, { key: "ArrowDown" });
    fireEvent.keyDown(grid, { key: "ArrowDown" });
    fireEvent.keyDown(grid, { key: "ArrowUp" });
    expect(grid.getAttribute("aria-activedescendant")).toBe("row-id-1");
    fireEvent.keyDown(grid, { key: "Enter" });
    expect(onOpen).toHaveBeenCalledWith(expect.objectContaining({ id: "id-1" }));
    fireEvent.keyDown(grid, { key: "Home" });
    expect(grid.getAttribute("aria-activedescendant")).toBe("row-id-0");
  });

  it("opens a row on click and asks to sort by a column", async () => {
    const { onOpen, onSort } = await setup(3);
    fireEvent.click(screen.getAllByTestId("item-row")[2]!);
    expect(onOpen).toHaveBeenCalledWith(expect.objectContaining({ id: "id-2" }));
    fireEvent.click(screen.getByTestId("sort-size"));
    expect(onSort).toHaveBeenCalledWith("size");
    expect(screen.getByTestId("sort-path").getAttribute("aria-pressed")).toBe("true");
  });

  it("shows the empty state when the query has no items", async () => {
    await setup(0);
    await act(async () => {});
    expect(screen.queryAllByTestId("item-row")).toHaveLength(0);
    expect(screen.getByText(/No items here yet/)).toBeTruthy();
  });
});
