import { describe, expect, it } from "vitest";
import { parsePatterns, watchStateText } from "./watches";

describe("parsePatterns", () => {
  it("splits lines and commas, trims, drops blanks and duplicates", () => {
    expect(parsePatterns(" *.raw \n\n run-*/*.csv, *.raw ,")).toEqual(["*.raw", "run-*/*.csv"]);
    expect(parsePatterns("")).toEqual([]);
  });
});

describe("watchStateText", () => {
  it("says what a watch is doing", () => {
    expect(watchStateText({ state: "watching", waiting: 0, paused: false })).toBe("Watching");
    expect(watchStateText({ state: "watching", waiting: 2, paused: false })).toBe("Watching · 2 file(s) being written");
    expect(watchStateText({ state: "unavailable", waiting: 0, paused: false })).toBe("Folder unavailable");
    expect(watchStateText({ state: "starting", waiting: 0, paused: true })).toBe("Paused");
  });
});
