import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { auditExport, auditPage, auditVerify, pickSavePath, tenantAuditExport, tenantAuditPage, tenantAuditVerify } from "../api";
import { ErrorBanner } from "../components/common";
import { useProgress } from "../components/progress";
import type { AppError } from "../errors";
import { auditExportName, emptyAuditForm, toAuditFilter, type AuditFilterForm } from "../lib/auditFilter";
import { formatDateTime } from "../lib/format";
import { newOpId } from "../lib/progress";
import type { AuditEvent, AuditFilter, AuditVerifyResult } from "../types";

const PAGE = 200;
const ROW_HEIGHT = 34;

type Verify = { state: "checking"; checked: number } | { state: "ok"; report: AuditVerifyResult } | { state: "broken"; report: AuditVerifyResult } | { state: "error"; error: AppError };

/** Whether the hash chain verifies, and if not, the first bad event. */
function VerifyBadge({ verify, onVerify }: { verify: Verify; onVerify: () => void }) {
  const state = verify.state === "error" ? "broken" : verify.state;
  return (
    <div className={`verify verify--${state}`} data-testid="audit-verify-badge" data-state={state} role="status">
      {verify.state === "checking" ? <span>Verifying the audit chain… {verify.checked > 0 ? `${verify.checked.toLocaleString()} events` : ""}</span> : null}
      {verify.state === "ok" ? (
        <span>
          <strong>Chain verified</strong> · {verify.report.eventsChecked.toLocaleString()} events, no gaps or changes
        </span>
      ) : null}
      {verify.state === "broken" ? (
        <span>
          <strong>Chain broken</strong>
          {verify.report.firstBadSeq != null ? (
            <>
              {" "}
              at event <span data-testid="audit-first-bad">#{verify.report.firstBadSeq}</span>
            </>
          ) : null}{" "}
          · {verify.report.message}
        </span>
      ) : null}
      {verify.state === "error" ? (
        <span>
          <strong>Could not verify</strong> · {verify.error.message}
        </span>
      ) : null}
      {verify.state !== "checking" ? (
        <button type="button" className="link-button" onClick={onVerify}>
          Verify again
        </button>
      ) : null}
    </div>
  );
}

/** Whose log is shown: this vault's, or the lab's (the tenant's, for Owners and Admins). */
export type AuditSource = "vault" | "lab";

/**
 * The audit log: filters, a virtualized table loaded page by page, export and chain
 * verification, for this vault or for the lab (the same filters; the lab's chain is re-verified
 * on this device).
 */
export function AuditScreen() {
  const [source, setSource] = useState<AuditSource>("vault");
  const [notice, setNotice] = useState<string | null>(null);
  const [form, setForm] = useState<AuditFilterForm>(emptyAuditForm);
  const [formError, setFormError] = useState<{ field: string; message: string } | null>(null);
  const [filter, setFilter] = useState<AuditFilter>({});
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const [verify, setVerify] = useState<Verify>({ state: "checking", checked: 0 });
  const generation = useRef(0);
  const scrollRef = useRef<HTMLDivElement>(null);
  const progress = useProgress();

  const loadMore = useCallback(
    async (reset: boolean, f: AuditFilter, from: string | null) => {
      const gen = reset ? ++generation.current : generation.current;
      setLoading(true);
      const r = source === "lab" ? await tenantAuditPage(f, reset ? null : from, PAGE) : await auditPage(f, reset ? null : from, PAGE);
      if (gen !== generation.current) return;
      setLoading(false);
      if (!r.ok) return setError(r.error);
      setError(null);
      setEvents((prev) => (reset ? r.value.events : [...prev, ...r.value.events]));
      setCursor(r.value.nextCursor);
      setDone(r.value.nextCursor === null);
    },
    [source],
  );

  useEffect(() => {
    void loadMore(true, filter, null);
  }, [filter, loadMore]);

  const runVerify = useCallback(async () => {
    setVerify({ state: "checking", checked: 0 });
    const r =
      source === "lab" ? await tenantAuditVerify() : await auditVerify(newOpId("audit-verify"), (p) => setVerify({ state: "checking", checked: p.overallDone }));
    if (!r.ok) setVerify({ state: "error", error: r.error });
    else setVerify(r.value.ok ? { state: "ok", report: r.value } : { state: "broken", report: r.value });
  }, [source]);
  useEffect(() => {
    void runVerify();
  }, [runVerify]);

  const count = events.length + (done ? 0 : 1);
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    initialRect: { width: 800, height: 600 },
  });
  const items = virtualizer.getVirtualItems();
  const lastIndex = items[items.length - 1]?.index ?? 0;
  useEffect(() => {
    if (!done && !loading && cursor && lastIndex >= events.length - 40) void loadMore(false, filter, cursor);
  }, [lastIndex, events.length, done, loading, cursor, filter, loadMore]);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const r = toAuditFilter(form);
    if (!r.ok) return setFormError({ field: r.field, message: r.message });
    setFormError(null);
    setFilter(r.filter);
    scrollRef.current?.scrollTo({ top: 0 });
  };

  const doExport = async (format: "csv" | "jsonl") => {
    const path = await pickSavePath(auditExportName(format));
    if (!path.ok) return setError(path.error);
    if (!path.value) return;
    const dest = path.value;
    if (source === "lab") {
      const r = await tenantAuditExport(filter, format, dest);
      if (!r.ok) return setError(r.error);
      setNotice(`${r.value.events.toLocaleString()} events of the lab's log written to ${r.value.path}`);
      return;
    }
    const r = await progress.run(
      "audit-export",
      `Exporting audit log (${format.toUpperCase()})`,
      (opId, cb) => auditExport(filter, format, dest, opId, cb),
      (v) => `${typeof v?.events === "number" ? v.events.toLocaleString() + " events " : ""}written to ${dest}`,
    );
    if (!r.ok && r.error.code !== "cancelled") setError(r.error);
  };

  const set = (k: keyof AuditFilterForm) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const fieldErr = (k: string) => (formError?.field === k ? formError.message : undefined);

  return (
    <div className="page" data-testid="screen-audit">
      <header className="page__header">
        <div>
          <h1 className="page__title">Audit log</h1>
          <p className="muted">
            {source === "lab"
              ? "Every action on your lab's server: sign-ins, roles, sharing, reviews. Its hash chain is re-checked on this device."
              : "Every action on the vault, in a tamper-evident hash chain."}
          </p>
          <div className="segmented" role="group" aria-label="Whose audit log">
            <button
              type="button"
              className={`segmented__item${source === "vault" ? " segmented__item--active" : ""}`}
              aria-pressed={source === "vault"}
              data-testid="audit-source-vault"
              onClick={() => {
                setSource("vault");
                setNotice(null);
              }}
            >
              This vault
            </button>
            <button
              type="button"
              className={`segmented__item${source === "lab" ? " segmented__item--active" : ""}`}
              aria-pressed={source === "lab"}
              data-testid="audit-source-lab"
              onClick={() => {
                setSource("lab");
                setNotice(null);
              }}
            >
              The lab
            </button>
          </div>
        </div>
        <VerifyBadge verify={verify} onVerify={() => void runVerify()} />
      </header>

      <form className="filters" onSubmit={apply} aria-label="Audit filters">
        <div className="filters__field">
          <label htmlFor="audit-from">From</label>
          <input id="audit-from" data-testid="audit-filter-from" placeholder="YYYY-MM-DD" value={form.from} onChange={set("from")} aria-invalid={Boolean(fieldErr("from"))} />
        </div>
        <div className="filters__field">
          <label htmlFor="audit-to">To</label>
          <input id="audit-to" data-testid="audit-filter-to" placeholder="YYYY-MM-DD" value={form.to} onChange={set("to")} aria-invalid={Boolean(fieldErr("to"))} />
        </div>
        <div className="filters__field">
          <label htmlFor="audit-user">User</label>
          <input id="audit-user" data-testid="audit-filter-user" value={form.user} onChange={set("user")} />
        </div>
        <div className="filters__field">
          <label htmlFor="audit-action">Action starts with</label>
          <input id="audit-action" data-testid="audit-filter-action" placeholder="data." value={form.action} onChange={set("action")} />
        </div>
        <div className="filters__field">
          <label htmlFor="audit-resource">Resource starts with</label>
          <input id="audit-resource" data-testid="audit-filter-resource" placeholder="project/" value={form.resource} onChange={set("resource")} />
        </div>
        <div className="filters__field">
          <label htmlFor="audit-result">Result</label>
          <select id="audit-result" data-testid="audit-filter-result" value={form.result} onChange={set("result")}>
            <option value="">Any</option>
            <option value="success">Success</option>
            <option value="failure">Failure</option>
            <option value="denied">Denied</option>
          </select>
        </div>
        <div className="filters__actions">
          <button type="submit" className="button button--primary" data-testid="audit-apply">
            Apply
          </button>
          <button
            type="button"
            className="button button--quiet"
            onClick={() => {
              setForm(emptyAuditForm);
              setFormError(null);
              setFilter({});
            }}
          >
            Reset
          </button>
          <span className="toolbar__spacer" />
          <button type="button" className="button" data-testid="audit-export-csv" onClick={() => void doExport("csv")}>
            Export CSV…
          </button>
          <button type="button" className="button" data-testid="audit-export-jsonl" onClick={() => void doExport("jsonl")}>
            Export JSON Lines…
          </button>
        </div>
        {formError ? (
          <p className="field__error" role="alert">
            {formError.field === "from" ? "From: " : formError.field === "to" ? "To: " : ""}
            {formError.message}
          </p>
        ) : null}
      </form>
      <ErrorBanner error={error} onDismiss={() => setError(null)} />
      {notice ? (
        <p className="banner banner--ok" role="status" data-testid="audit-notice">
          {notice}
        </p>
      ) : null}

      <div className="audit-table">
        <div className="audit-table__header" role="presentation">
          <span className="acol-seq">#</span>
          <span className="acol-time">Time</span>
          <span className="acol-user">User</span>
          <span className="acol-action">Action</span>
          <span className="acol-resource">Resource</span>
          <span className="acol-result">Result</span>
          <span className="acol-detail">Detail</span>
        </div>
        <div ref={scrollRef} className="audit-table__scroll" role="table" aria-label="Audit events" aria-rowcount={done ? events.length : -1} data-testid="audit-table" data-count={events.length} tabIndex={0}>
          {done && events.length === 0 ? <p className="item-list__empty">No events match these filters.</p> : null}
          <div className="item-list__spacer" style={{ height: virtualizer.getTotalSize() }}>
            {items.map((v) => {
              const ev = events[v.index];
              if (!ev) {
                return (
                  <div key={v.key} className="audit-row audit-row--loading" style={{ transform: `translateY(${v.start}px)` }}>
                    <span className="muted">Loading…</span>
                  </div>
                );
              }
              return (
                <div
                  key={v.key}
                  className={`audit-row audit-row--${ev.result}${verify.state === "broken" && verify.report.firstBadSeq === ev.seq ? " is-bad" : ""}`}
                  role="row"
                  data-testid="audit-row"
                  data-seq={ev.seq}
                  data-action={ev.action}
                  data-result={ev.result}
                  style={{ transform: `translateY(${v.start}px)` }}
                >
                  <span className="acol-seq" role="cell">{ev.seq}</span>
                  <span className="acol-time" role="cell">{formatDateTime(ev.timestamp)}</span>
                  <span className="acol-user" role="cell" title={ev.user}>{ev.user}</span>
                  <span className="acol-action" role="cell">{ev.action}</span>
                  <span className="acol-resource" role="cell" title={ev.resource}>{ev.resource}</span>
                  <span className="acol-result" role="cell">
                    <span className={`pill pill--${ev.result}`}>{ev.result}</span>
                  </span>
                  <span className="acol-detail" role="cell" title={ev.detail}>{ev.detail}</span>
                </div>
              );
            })}
          </div>
        </div>
        <p className="item-list__footer muted small">
          {events.length.toLocaleString()} event{events.length === 1 ? "" : "s"}
          {done ? "" : " loaded, scroll for more"}
        </p>
      </div>
    </div>
  );
}
