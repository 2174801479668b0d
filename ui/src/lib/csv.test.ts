import { describe, expect, it } from "vitest";
import { delimiterFor, parseDelimited } from "./csv";

describe("parseDelimited", () => {
  it("parses plain rows and keeps empty fields", () => {
    expect(parseDelimited("a,b,c\n1,,3\n").rows).toEqual([
      ["a", "b", "c"],
      ["1", "", "3"],
    ]);
  });

  it("handles quoted fields with delimiters, doubled quotes and embedded newlines", () => {
    const text = 'name,note\n"Smith, J.","said ""hi""\nthen left"\nx,"multi\r\nline"\r\n';
    expect(parseDelimited(text).rows).toEqual([
      ["name", "note"],
      ["Smith, J.", 'said "hi"\nthen left'],
      ["x", "multi\r\nline"],
    ]);
  });

  it("accepts CRLF, CR and a missing final newline, and strips a BOM", () => {
    expect(parseDelimited("\ufeffa,b\r\nc,d\re,f").rows).toEqual([
      ["a", "b"],
      ["c", "d"],
      ["e", "f"],
    ]);
  });

  it("parses TSV with the tab delimiter and leaves commas alone", () => {
    expect(parseDelimited("t\tv\n1,5\t\"q\tx\"\n", { delimiter: "\t" }).rows).toEqual([
      ["t", "v"],
      ["1,5", "q\tx"],
    ]);
  });

  it("stops at maxRows and says there is more", () => {
    const text = Array.from({ length: 500 }, (_, i) => `${i},x`).join("\n");
    const result = parseDelimited(text, { maxRows: 101 });
    expect(result.rows).toHaveLength(101);
    expect(result.rows[100]).toEqual(["100", "x"]);
    expect(result.more).toBe(true);
  });

  it("drops a row cut by a Range request, including one inside an open quote", () => {
    expect(parseDelimited("a,b\n1,2\n3,", { truncated: true })).toEqual({
      rows: [
        ["a", "b"],
        ["1", "2"],
      ],
      more: true,
    });
    expect(parseDelimited('a\n"open\nquote', { truncated: true }).rows).toEqual([["a"]]);
  });

  it("returns nothing for empty text", () => {
    expect(parseDelimited("").rows).toEqual([]);
  });
});

describe("delimiterFor", () => {
  it("picks comma for CSV, tab for TSV, and null otherwise", () => {
    expect(delimiterFor("text/csv", "a.csv")).toBe(",");
    expect(delimiterFor("application/octet-stream", "data/RUN.TSV")).toBe("\t");
    expect(delimiterFor("text/plain", "notes.txt")).toBeNull();
  });
});
