import { describe, expect, it } from "vitest";
import { auditExportName, emptyAuditForm, parseLocalDate, toAuditFilter } from "./auditFilter";

describe("toAuditFilter", () => {
  it("leaves blank fields out entirely", () => {
    expect(toAuditFilter(emptyAuditForm)).toEqual({ ok: true, filter: {} });
    expect(toAuditFilter({ ...emptyAuditForm, user: "   " })).toEqual({ ok: true, filter: {} });
  });

  it("maps action and resource to prefixes, trims, and keeps user and result exact", () => {
    const r = toAuditFilter({
      ...emptyAuditForm,
      user: " ada ",
      action: "data.",
      resource: "project/p1",
      result: "denied",
    });
    expect(r).toEqual({
      ok: true,
      filter: { user: "ada", actionPrefix: "data.", resourcePrefix: "project/p1", result: "denied" },
    });
  });

  it("turns a date range into instants, with the end date inclusive of its whole day", () => {
    const r = toAuditFilter({ ...emptyAuditForm, from: "2026-03-01", to: "2026-03-01" });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const from = new Date(r.filter.from!);
    const to = new Date(r.filter.to!);
    expect(from.getHours()).toBe(0);
    expect(to.getTime() - from.getTime()).toBe(24 * 3600 * 1000);
  });

  it("accepts a time and makes the end minute inclusive", () => {
    const r = toAuditFilter({ ...emptyAuditForm, from: "2026-03-01 10:00", to: "2026-03-01 10:30" });
    if (!r.ok) throw new Error("expected ok");
    expect(new Date(r.filter.to!).getTime() - new Date(r.filter.from!).getTime()).toBe(31 * 60 * 1000);
  });

  it("rejects malformed dates and reversed ranges, naming the field", () => {
    expect(toAuditFilter({ ...emptyAuditForm, from: "01/03/2026" })).toMatchObject({ ok: false, field: "from" });
    expect(toAuditFilter({ ...emptyAuditForm, to: "2026-02-30" })).toMatchObject({ ok: false, field: "to" });
    expect(toAuditFilter({ ...emptyAuditForm, from: "2026-03-02", to: "2026-03-01" })).toMatchObject({
      ok: false,
      field: "to",
    });
  });
});

describe("helpers", () => {
  it("parses local dates and refuses impossible ones", () => {
    expect(parseLocalDate("2026-13-01", false)).toBeNull();
    expect(parseLocalDate("2026-01-05T07:08", false)?.getMinutes()).toBe(8);
  });

  it("names exports by format and date", () => {
    expect(auditExportName("jsonl", new Date("2026-05-04T12:00:00Z"))).toBe("labvault-audit-2026-05-04.jsonl");
  });
});
