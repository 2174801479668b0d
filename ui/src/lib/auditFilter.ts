import type { AuditFilter, AuditResult } from "../types";

/** What the audit filter form holds: strings as typed by the user. */
export interface AuditFilterForm {
  from: string;
  to: string;
  user: string;
  action: string;
  resource: string;
  result: "" | AuditResult;
}

export const emptyAuditForm: AuditFilterForm = { from: "", to: "", user: "", action: "", resource: "", result: "" };

export type AuditFilterResult = { ok: true; filter: AuditFilter } | { ok: false; field: keyof AuditFilterForm; message: string };

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}))?$/;

/**
 * Parses `YYYY-MM-DD` or `YYYY-MM-DD HH:MM` in the user's local time zone. A bare date used as the
 * end of a range means "through that day", so it becomes the next midnight (the filter's `to` is
 * exclusive).
 */
export function parseLocalDate(text: string, endOfRange: boolean): Date | null {
  const m = DATE_RE.exec(text.trim());
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const hasTime = m[4] !== undefined;
  const h = hasTime ? Number(m[4]) : 0;
  const mi = hasTime ? Number(m[5]) : 0;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59) return null;
  const date = new Date(y, mo - 1, d, h, mi, 0, 0);
  if (date.getFullYear() !== y || date.getMonth() !== mo - 1 || date.getDate() !== d) return null;
  if (endOfRange) {
    if (hasTime) date.setMinutes(date.getMinutes() + 1);
    else date.setDate(date.getDate() + 1);
  }
  return date;
}

/** Turns the form into the `audit_page`/`audit_export` filter: blank fields are left out. */
export function toAuditFilter(form: AuditFilterForm): AuditFilterResult {
  const filter: AuditFilter = {};
  let from: Date | null = null;
  if (form.from.trim() !== "") {
    from = parseLocalDate(form.from, false);
    if (!from) return { ok: false, field: "from", message: "Use the form YYYY-MM-DD or YYYY-MM-DD HH:MM." };
    filter.from = from.toISOString();
  }
  if (form.to.trim() !== "") {
    const to = parseLocalDate(form.to, true);
    if (!to) return { ok: false, field: "to", message: "Use the form YYYY-MM-DD or YYYY-MM-DD HH:MM." };
    if (from && to <= from) return { ok: false, field: "to", message: "The end must be after the start." };
    filter.to = to.toISOString();
  }
  const user = form.user.trim();
  if (user) filter.user = user;
  const action = form.action.trim();
  if (action) filter.actionPrefix = action;
  const resource = form.resource.trim();
  if (resource) filter.resourcePrefix = resource;
  if (form.result) filter.result = form.result;
  return { ok: true, filter };
}

/** Default file name for an audit export. */
export function auditExportName(format: "csv" | "jsonl", now = new Date()): string {
  const stamp = now.toISOString().slice(0, 10);
  return `labvault-audit-${stamp}.${format}`;
}
