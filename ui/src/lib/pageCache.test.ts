import { describe, expect, it } from "vitest";
import { PageCache, type Page } from "./pageCache";

const TOTAL = 100_000;

function fakeSource(total = TOTAL) {
  const calls: [number, number][] = [];
  const fetcher = (offset: number, limit: number): Promise<Page<number>> => {
    calls.push([offset, limit]);
    const rows = [];
    for (let i = offset; i < Math.min(total, offset + limit); i += 1) rows.push(i);
    return Promise.resolve({ total, rows });
  };
  return { calls, fetcher };
}

describe("PageCache", () => {
  it("fetches only the pages around the viewport of a 100,000-row list", async () => {
    const src = fakeSource();
    const cache = new PageCache(src.fetcher, { pageSize: 200, overscanPages: 1 });
    await cache.ensureRange(0, 30);
    expect(src.calls).toEqual([
      [0, 200],
      [200, 200],
    ]);
    expect(cache.total).toBe(TOTAL);
    expect(cache.get(25)).toBe(25);
    expect(cache.get(450)).toBeUndefined();

    await cache.ensureRange(50_000, 50_030);
    expect(src.calls.slice(2)).toEqual([
      [49_800, 200],
      [50_000, 200],
      [50_200, 200],
    ]);
    expect(cache.get(50_010)).toBe(50_010);
  });

  it("does not request a cached or in-flight page twice", async () => {
    const src = fakeSource();
    const cache = new PageCache(src.fetcher, { pageSize: 200, overscanPages: 0 });
    const a = cache.ensureRange(0, 10);
    const b = cache.ensureRange(5, 15);
    await Promise.all([a, b]);
    await cache.ensureRange(100, 150);
    expect(src.calls).toHaveLength(1);
  });

  it("clamps to the last page once the total is known", async () => {
    const src = fakeSource(450);
    const cache = new PageCache(src.fetcher, { pageSize: 200, overscanPages: 2 });
    await cache.ensureRange(0, 10);
    await cache.ensureRange(400, 449);
    expect(src.calls.map(([o]) => o).sort((x, y) => x - y)).toEqual([0, 200, 400]);
  });

  it("evicts the pages furthest from the viewport beyond maxPages", async () => {
    const src = fakeSource();
    const cache = new PageCache(src.fetcher, { pageSize: 100, maxPages: 5, overscanPages: 0 });
    for (let p = 0; p < 20; p += 1) await cache.ensureRange(p * 100, p * 100 + 50);
    const pages = cache.cachedPages();
    expect(pages.length).toBeLessThanOrEqual(5);
    expect(pages).toContain(19);
    expect(pages).not.toContain(0);
  });

  it("ignores answers for a previous query after reset", async () => {
    let release: (p: Page<string>) => void = () => {};
    const cache = new PageCache<string>(
      () => new Promise((resolve) => (release = resolve)),
      { pageSize: 10, overscanPages: 0 },
    );
    const old = cache.ensureRange(0, 5);
    const oldRelease = release;
    cache.reset((offset) => Promise.resolve({ total: 1, rows: [`new-${offset}`] }));
    await cache.ensureRange(0, 5);
    oldRelease({ total: 99, rows: ["stale"] });
    await old;
    expect(cache.get(0)).toBe("new-0");
    expect(cache.total).toBe(1);
  });

  it("notifies subscribers and records errors without caching them", async () => {
    let fail = true;
    const cache = new PageCache<number>(
      (offset) => (fail ? Promise.reject(new Error("locked")) : Promise.resolve({ total: 1, rows: [offset] })),
      { pageSize: 10, overscanPages: 0 },
    );
    let notified = 0;
    const unsubscribe = cache.subscribe(() => (notified += 1));
    await cache.ensureRange(0, 1);
    expect(cache.error).toBeInstanceOf(Error);
    expect(cache.get(0)).toBeUndefined();
    fail = false;
    await cache.ensureRange(0, 1);
    expect(cache.get(0)).toBe(0);
    expect(cache.error).toBeNull();
    expect(notified).toBe(2);
    unsubscribe();
  });

  it("refresh re-fetches cached pages and drops pages past a smaller total", async () => {
    let total = 300;
    const cache = new PageCache<number>(
      (offset, limit) =>
        Promise.resolve({
          total,
          rows: Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, i) => offset + i),
        }),
      { pageSize: 100, overscanPages: 0 },
    );
    await cache.ensureRange(0, 10);
    await cache.ensureRange(250, 260);
    total = 150;
    await cache.refresh();
    expect(cache.total).toBe(150);
    expect(cache.cachedPages()).toEqual([0]);
    expect(cache.get(50)).toBe(50);
    expect(cache.get(250)).toBeUndefined();
  });
  it("asks for the visible page alone until the first answer, then for the overscan", async () => {
    const calls: number[] = [];
    const release: (() => void)[] = [];
    const cache = new PageCache<number>(
      (offset) => {
        calls.push(offset);
        return new Promise((resolve) => release.push(() => resolve({ total: TOTAL, rows: [offset] })));
      },
      { pageSize: 200, overscanPages: 1 },
    );
    const done = cache.ensureRange(0, 30);
    void cache.ensureRange(0, 30); // a second render before the answer adds nothing
    expect(calls).toEqual([0]);
    release.shift()!();
    await Promise.resolve();
    await Promise.resolve();
    expect(calls).toEqual([0, 200]);
    release.shift()!();
    await done;
    expect(cache.cachedPages()).toEqual([0, 1]);
  });

  it("does not retry in a loop when the first page fails", async () => {
    let calls = 0;
    const cache = new PageCache<number>(() => {
      calls += 1;
      return Promise.reject(new Error("locked"));
    });
    await cache.ensureRange(0, 30);
    expect(calls).toBe(1);
    expect(cache.error).toBeInstanceOf(Error);
    expect(cache.total).toBeNull();
  });
});
