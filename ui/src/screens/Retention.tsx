import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import {
  holdClear,
  holdSet,
  itemErase,
  projectsList,
  retentionItemsPage,
  retentionPolicies,
  retentionPolicySet,
  retentionRun,
  retentionSummary,
  retentionTimeline,
} from "../api";
import { ErrorBanner } from "../components/common";
import { EraseDialog, HoldDialog } from "../components/ItemDetails";
import { useProgress } from "../components/progress";
import type { AppError } from "../errors";
import { baseName, formatBytes, formatDate, humanize } from "../lib/format";
import { describePeriod, periodProblem } from "../lib/period";
import { usePageCache } from "../hooks/usePageCache";
import { FETCH_DELAY_MS } from "../components/ItemList";
import type {
  ItemRetention,
  PolicyField,
  PolicyPeriods,
  Project,
  ProjectRetentionSummary,
  RetentionPolicies,
  TimelineStep,
} from "../types";
import { fullPeriods } from "../types";

const ROW_HEIGHT = 36;

const POLICY_FIELDS: { field: PolicyField; label: string; hint: string }[] = [
  { field: "researchData", label: "Research data", hint: "Raw data from instruments and collaborators." },
  { field: "analysisResult", label: "Analysis results", hint: "Derived files, plots and exports." },
  { field: "backup", label: "Backups", hint: "" },
  { field: "auditLog", label: "Audit log", hint: "At least 6 years; it can only be raised." },
  { field: "sessionData", label: "Session data", hint: "Fixed by the plan unless the plan is enterprise." },
  { field: "grace", label: "Grace after deletion", hint: "How long deleted items stay restorable (at most 365 days)." },
];

/** Retention: per-project summary, upcoming steps, per-item status with hold/erase, and policies. */
export function RetentionScreen() {
  const [projects, setProjects] = useState<Project[]>([]);
  const [project, setProject] = useState<string>("");
  const [summary, setSummary] = useState<ProjectRetentionSummary[] | null>(null);
  const [timeline, setTimeline] = useState<TimelineStep[] | null>(null);
  const [days, setDays] = useState(30);
  const [error, setError] = useState<AppError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [dialog, setDialog] = useState<{ kind: "hold" | "erase"; item: ItemRetention } | { kind: "hold-project" } | null>(null);
  const [reload, setReload] = useState(0);
  const progress = useProgress();
  const p = project || null;

  useEffect(() => {
    void projectsList().then((r) => (r.ok ? setProjects(r.value) : setError(r.error)));
  }, []);

  useEffect(() => {
    void retentionSummary(p).then((r) => (r.ok ? setSummary(r.value.projects) : setError(r.error)));
  }, [p, reload]);
  useEffect(() => {
    void retentionTimeline(p, days).then((r) => (r.ok ? setTimeline(r.value.entries) : setError(r.error)));
  }, [p, days, reload]);

  const fetcher = useCallback(
    async (offset: number, limit: number) => {
      const r = await retentionItemsPage(p, offset, limit);
      if (!r.ok) {
        setError(r.error);
        throw r.error;
      }
      return r.value;
    },
    [p],
  );
  const { cache, version } = usePageCache<ItemRetention>(fetcher, `${p}`);

  const changed = (msg: string) => {
    setNotice(msg);
    setError(null);
    setReload((n) => n + 1);
    void cache.refresh();
  };

  const run = async () => {
    const r = await progress.run("retention", "Applying retention policies", (opId, cb) => retentionRun(opId, cb), (o) =>
      `Checked ${o.checked}, expired ${o.expired}, erased ${o.erased}, held back ${o.held}${o.failed ? `, failed ${o.failed}` : ""}.`,
    );
    if (r.ok) changed("Retention run finished.");
    else if (r.error.code !== "cancelled") setError(r.error);
  };

  return (
    <div className="page" data-testid="screen-retention">
      <header className="page__header">
        <div>
          <h1 className="page__title">Retention</h1>
          <p className="muted">How long data is kept, what is due next, and legal holds.</p>
        </div>
        <div className="toolbar">
          <label htmlFor="retention-project" className="sr-only">
            Project
          </label>
          <select id="retention-project" data-testid="retention-project" value={project} onChange={(e) => setProject(e.target.value)}>
            <option value="">All projects</option>
            {projects.map((pr) => (
              <option key={pr.id} value={pr.name}>
                {pr.name}
              </option>
            ))}
          </select>
          {project ? (
            <button type="button" className="button" data-testid="project-hold" onClick={() => setDialog({ kind: "hold-project" })}>
              Hold project…
            </button>
          ) : null}
          <button type="button" className="button" data-testid="retention-run" onClick={() => void run()}>
            Apply policies now
          </button>
        </div>
      </header>
      <ErrorBanner error={error} onDismiss={() => setError(null)} />
      {notice ? (
        <p className="banner banner--ok" role="status">
          {notice}
        </p>
      ) : null}

      <section className="card" aria-labelledby="ret-summary">
        <h2 id="ret-summary" className="card__title">
          Summary
        </h2>
        <div className="table-wrap">
          <table className="table" data-testid="retention-summary">
            <thead>
              <tr>
                <th scope="col">Project</th>
                <th scope="col">Active</th>
                <th scope="col">On hold</th>
                <th scope="col">Deleted (grace)</th>
                <th scope="col">Erased</th>
                <th scope="col">Due in 7 days</th>
                <th scope="col">Due in 30 days</th>
              </tr>
            </thead>
            <tbody>
              {summary?.map((s) => (
                <tr key={s.projectId} data-project={s.project}>
                  <th scope="row">{s.project}</th>
                  <td>{countBytes(s.active)}</td>
                  <td>{countBytes(s.onHold)}</td>
                  <td>{countBytes(s.softDeleted)}</td>
                  <td>{s.erased.items.toLocaleString()}</td>
                  <td className={s.due7d > 0 ? "num-warn" : undefined}>{s.due7d.toLocaleString()}</td>
                  <td>{s.due30d.toLocaleString()}</td>
                </tr>
              ))}
              {summary && summary.length === 0 ? (
                <tr>
                  <td colSpan={7} className="muted">
                    No projects yet.
                  </td>
                </tr>
              ) : null}
            </tbody>
          </table>
        </div>
      </section>

      <div className="grid-2">
        <section className="card" aria-labelledby="ret-timeline">
          <div className="card__head">
            <h2 id="ret-timeline" className="card__title">
              Upcoming steps
            </h2>
            <label htmlFor="timeline-days" className="sr-only">
              Time window
            </label>
            <select id="timeline-days" value={days} onChange={(e) => setDays(Number(e.target.value))}>
              <option value={7}>Next 7 days</option>
              <option value={30}>Next 30 days</option>
              <option value={90}>Next 90 days</option>
              <option value={365}>Next year</option>
            </select>
          </div>
          <ol className="timeline" data-testid="retention-timeline">
            {timeline?.map((t, i) => (
              <li key={`${t.itemId}-${t.step}-${i}`} className="timeline__step" data-step={t.step}>
                <span className="timeline__date">{formatDate(t.at)}</span>
                <span className={`pill pill--${t.step}`}>{humanize(t.step)}</span>
                <span className="timeline__what" title={t.path}>
                  {t.project} / {t.path}
                </span>
              </li>
            ))}
            {timeline && timeline.length === 0 ? <li className="muted">Nothing due in this window.</li> : null}
          </ol>
        </section>
        <PoliciesCard projects={projects} onSaved={() => changed("Policy saved.")} onError={setError} />
      </div>

      <section className="card" aria-labelledby="ret-items">
        <h2 id="ret-items" className="card__title">
          Items
        </h2>
        <RetentionItems
          cache={cache}
          version={version}
          onHold={(item) => setDialog({ kind: "hold", item })}
          onClear={async (item) => {
            const r = await holdClear({ item: item.itemId });
            if (r.ok) changed(`Hold cleared on ${baseName(item.path)}.`);
            else setError(r.error);
          }}
          onErase={(item) => setDialog({ kind: "erase", item })}
        />
      </section>

      {dialog?.kind === "hold" ? (
        <HoldDialog
          subject={baseName(dialog.item.path)}
          onClose={() => setDialog(null)}
          onSubmit={async (reason) => {
            const r = await holdSet({ item: dialog.item.itemId }, reason);
            if (r.ok) {
              setDialog(null);
              changed("Legal hold set.");
            } else setError(r.error);
          }}
        />
      ) : null}
      {dialog?.kind === "hold-project" && project ? (
        <HoldDialog
          subject={`project ${project}`}
          onClose={() => setDialog(null)}
          onSubmit={async (reason) => {
            const r = await holdSet({ project }, reason);
            if (r.ok) {
              setDialog(null);
              changed(`Legal hold set on ${project}.`);
            } else setError(r.error);
          }}
        />
      ) : null}
      {dialog?.kind === "erase" ? (
        <EraseDialog
          name={baseName(dialog.item.path)}
          onClose={() => setDialog(null)}
          onSubmit={async (reason) => {
            const r = await itemErase(dialog.item.itemId, reason);
            if (r.ok) {
              setDialog(null);
              changed("Erased.");
            } else setError(r.error);
          }}
        />
      ) : null}
    </div>
  );
}

function countBytes(c: { items: number; bytes: number }): string {
  return `${c.items.toLocaleString()} · ${formatBytes(c.bytes)}`;
}

function RetentionItems({
  cache,
  version,
  onHold,
  onClear,
  onErase,
}: {
  cache: ReturnType<typeof usePageCache<ItemRetention>>["cache"];
  version: number;
  onHold: (item: ItemRetention) => void;
  onClear: (item: ItemRetention) => void;
  onErase: (item: ItemRetention) => void;
}) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: cache.total ?? 0,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    initialRect: { width: 800, height: 400 },
  });
  const items = virtualizer.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? 0;
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
  return (
    <div className="ret-items">
      <div className="ret-row ret-row--header" role="presentation">
        <span>Item</span>
        <span>Data type</span>
        <span>Period</span>
        <span>Retained until</span>
        <span>State</span>
        <span>Next step</span>
        <span>Actions</span>
      </div>
      <div ref={scrollRef} className="ret-items__scroll" role="table" aria-label="Retention status per item" aria-rowcount={cache.total ?? -1} data-testid="retention-items" tabIndex={0}>
        {cache.total === 0 ? <p className="item-list__empty">No items.</p> : null}
        <div className="item-list__spacer" style={{ height: virtualizer.getTotalSize() }}>
          {items.map((v) => {
            const it = cache.get(v.index);
            if (!it) {
              return (
                <div key={v.key} className="ret-row" style={{ transform: `translateY(${v.start}px)` }}>
                  <span className="muted">Loading…</span>
                </div>
              );
            }
            const held = it.state === "on_hold";
            return (
              <div key={v.key} className="ret-row" role="row" data-testid="retention-item" data-item-id={it.itemId} data-state={it.state} style={{ transform: `translateY(${v.start}px)` }}>
                <span role="cell" title={`${it.project} / ${it.area} / ${it.path}`}>
                  <span className="muted">{it.project} /</span> {it.path}
                </span>
                <span role="cell">{humanize(it.dataType)}</span>
                <span role="cell" title={describePeriod(it.period)}>{it.period}</span>
                <span role="cell">{formatDate(it.expiresAt)}</span>
                <span role="cell">
                  <span className={`pill pill--${it.state}`}>{humanize(it.state)}</span>
                </span>
                <span role="cell">{it.nextStep ? `${humanize(it.nextStep)} ${formatDate(it.nextStepAt)}` : "–"}</span>
                <span role="cell" className="ret-row__actions">
                  {it.state !== "erased" ? (
                    held ? (
                      <button type="button" className="link-button" onClick={() => onClear(it)}>
                        Clear hold
                      </button>
                    ) : (
                      <>
                        <button type="button" className="link-button" onClick={() => onHold(it)}>
                          Hold…
                        </button>
                        <button type="button" className="link-button link-button--danger" onClick={() => onErase(it)}>
                          Erase…
                        </button>
                      </>
                    )
                  ) : null}
                </span>
              </div>
            );
          })}
        </div>
      </div>
      <p className="item-list__footer muted small">{cache.total === null ? "Loading…" : `${cache.total.toLocaleString()} items`}</p>
    </div>
  );
}

/** Policy editor: vault-wide or per-project overrides, validated with the governance rules. */
function PoliciesCard({ projects, onSaved, onError }: { projects: Project[]; onSaved: () => void; onError: (e: AppError) => void }) {
  const [policies, setPolicies] = useState<RetentionPolicies | null>(null);
  const [scope, setScope] = useState<string>("");
  const [draft, setDraft] = useState<PolicyPeriods>(fullPeriods({}));
  const [busy, setBusy] = useState(false);
  const [saveError, setSaveError] = useState<AppError | null>(null);

  const load = useCallback(async () => {
    const r = await retentionPolicies();
    if (r.ok) setPolicies(r.value);
    else onError(r.error);
  }, [onError]);
  useEffect(() => {
    void load();
  }, [load]);

  const current = useMemo(() => {
    if (!policies) return null;
    if (!scope) return { overrides: policies.vault, effective: policies.effective };
    const pp = policies.projects.find((x) => x.project === scope);
    return pp ? { overrides: pp.overrides, effective: pp.effective } : { overrides: fullPeriods({}), effective: policies.effective };
  }, [policies, scope]);

  // Reset the form while rendering (not in an effect) when the stored policy or scope changes, so
  // an edit made right after loading can never be overwritten by a late reset.
  const [draftSource, setDraftSource] = useState(current);
  if (draftSource !== current) {
    setDraftSource(current);
    setDraft(fullPeriods(current ? current.overrides : {}));
    setSaveError(null);
  }

  const enterprise = policies?.plan === "enterprise";
  const problems = Object.fromEntries(POLICY_FIELDS.map(({ field }) => [field, periodProblem(field, draft[field] ?? "")]));
  const invalid = Object.values(problems).some(Boolean);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    if (invalid) return;
    setBusy(true);
    // Changes are layered over the stored policy: an empty field leaves that period as it is.
    const overrides = fullPeriods({});
    for (const { field } of POLICY_FIELDS) {
      const v = (draft[field] ?? "").trim();
      if (v) overrides[field] = v;
    }
    const r = await retentionPolicySet(scope || null, null, overrides);
    setBusy(false);
    if (r.ok) {
      setSaveError(null);
      await load();
      onSaved();
    } else setSaveError(r.error);
  };

  return (
    <section className="card" aria-labelledby="ret-policies" data-testid="retention-policies">
      <div className="card__head">
        <h2 id="ret-policies" className="card__title">
          Policies
        </h2>
        <label htmlFor="policy-scope" className="sr-only">
          Policy scope
        </label>
        <select id="policy-scope" value={scope} onChange={(e) => setScope(e.target.value)}>
          <option value="">Whole vault</option>
          {projects.map((pr) => (
            <option key={pr.id} value={pr.name}>
              Project {pr.name}
            </option>
          ))}
        </select>
      </div>
      {policies ? <p className="muted small">Plan: {humanize(policies.plan)}. Empty fields keep their current setting.</p> : <p className="muted">Loading…</p>}
      {current ? (
        <form className="policy-form" onSubmit={save}>
          {POLICY_FIELDS.map(({ field, label, hint }) => {
            const disabled = field === "sessionData" && !enterprise;
            const id = `policy-${field}`;
            const problem = problems[field];
            return (
              <div key={field} className={`policy-row${problem ? " field--invalid" : ""}`}>
                <label htmlFor={id} className="policy-row__label">
                  {label}
                  {hint ? <span className="muted small">{hint}</span> : null}
                </label>
                <span className="policy-row__effective muted small" title="In effect now">
                  {current.effective[field] ? describePeriod(current.effective[field]) : "–"}
                </span>
                <input
                  id={id}
                  data-testid={id}
                  className="policy-row__input"
                  placeholder={current.effective[field] ?? ""}
                  value={draft[field] ?? ""}
                  disabled={disabled}
                  aria-invalid={Boolean(problem)}
                  aria-describedby={problem ? `${id}-error` : undefined}
                  onChange={(e) => setDraft((d) => ({ ...d, [field]: e.target.value }))}
                />
                {problem ? (
                  <p className="field__error policy-row__error" id={`${id}-error`}>
                    {problem}
                  </p>
                ) : null}
              </div>
            );
          })}
          <ErrorBanner error={saveError} onDismiss={() => setSaveError(null)} testId="policy-error" />
          <div className="form__actions">
            <button type="submit" className="button button--primary" data-testid="policy-save" disabled={busy || invalid}>
              Save policy
            </button>
          </div>
        </form>
      ) : null}
    </section>
  );
}
