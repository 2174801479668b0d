import { describe, expect, it } from "vitest";
import { describePeriod, parsePeriod, periodProblem } from "./period";

describe("retention periods", () => {
  it("parses h/d/y and refuses zero or junk", () => {
    expect(parsePeriod("90d")).toEqual({ n: 90, unit: "d" });
    expect(parsePeriod("0y")).toBeNull();
    expect(parsePeriod("7 years")).toBeNull();
  });

  it("enforces the 6-year audit-log minimum in every unit", () => {
    expect(periodProblem("auditLog", "5y")).toMatch(/6 years/);
    expect(periodProblem("auditLog", "2190d")).toMatch(/6 years/);
    expect(periodProblem("auditLog", "2192d")).toBeNull();
    expect(periodProblem("auditLog", "6y")).toBeNull();
    expect(periodProblem("researchData", "5y")).toBeNull();
  });

  it("caps periods and the grace period", () => {
    expect(periodProblem("backup", "201y")).toMatch(/200/);
    expect(periodProblem("grace", "400d")).toMatch(/365/);
    expect(periodProblem("grace", "")).toBeNull();
  });

  it("describes periods for people", () => {
    expect(describePeriod("1y")).toBe("1 year");
    expect(describePeriod("30d")).toBe("30 days");
  });
});
