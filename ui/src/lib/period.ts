/**
 * Retention periods as the governance crate writes them (`<n>h`, `<n>d`, `<n>y`), validated in the
 * form with the same rules the Rust side enforces, so users see the problem before saving.
 */
export type PeriodUnit = "h" | "d" | "y";
export interface Period {
  n: number;
  unit: PeriodUnit;
}

/** Longest period accepted (matches `MAX_YEARS`). */
export const MAX_YEARS = 200;
/** The audit log must be kept at least this many years. */
export const AUDIT_MIN_YEARS = 6;

export function parsePeriod(text: string): Period | null {
  const m = /^(\d{1,6})([hdy])$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]);
  if (!(n > 0)) return null;
  return { n, unit: m[2] as PeriodUnit };
}

function maxDays(p: Period): number {
  if (p.unit === "h") return Math.ceil(p.n / 24);
  if (p.unit === "d") return p.n;
  return p.n * 366;
}

/** Whether the period is at least `years` calendar years in every case (leap days included). */
export function coversYears(p: Period, years: number): boolean {
  const longestDays = years * 365 + Math.ceil(years / 4);
  if (p.unit === "y") return p.n >= years;
  if (p.unit === "d") return p.n >= longestDays;
  return p.n >= longestDays * 24;
}

/** A human-readable problem with the period for this field, or null when it is acceptable. */
export function periodProblem(field: string, text: string): string | null {
  if (text.trim() === "") return null;
  const p = parsePeriod(text);
  if (!p) return "Use a positive number followed by h, d or y (e.g. 90d, 7y).";
  if (maxDays(p) > MAX_YEARS * 366) return `At most ${MAX_YEARS} years.`;
  if (field === "auditLog" && !coversYears(p, AUDIT_MIN_YEARS)) {
    return "The audit log must be kept at least 6 years; it cannot be lowered.";
  }
  if (field === "grace" && maxDays(p) > 365) return "The grace period can be at most 365 days.";
  return null;
}

/** "7y" → "7 years". */
export function describePeriod(text: string): string {
  const p = parsePeriod(text);
  if (!p) return text;
  const word = { h: "hour", d: "day", y: "year" }[p.unit];
  return `${p.n} ${word}${p.n === 1 ? "" : "s"}`;
}
