import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { exportArea, importPaths, itemsPage, onFileDrop, pickExportDir, pickImportFiles, pickImportFolder, pickSavePath, projectCreate, projectExportBundle, projectsList } from "../api";
import { ErrorBanner } from "../components/common";
import { EvidencePackDialog } from "../components/EvidencePackDialog";
import { bundleFileName, ExportBundleDialog } from "../components/ExportBundleDialog";
import type { BundleRequest } from "../bindings";
import { Gallery } from "../components/Gallery";
import { ItemDetailsPanel } from "../components/ItemDetails";
import { ItemList } from "../components/ItemList";
import { useProgress } from "../components/progress";
import { errorText, type AppError } from "../errors";
import { humanize } from "../lib/format";
import { useDebounced, usePageCache } from "../hooks/usePageCache";
import { AREAS, type Area, type ImportResult, type ItemQuery, type ItemRow, type ItemSort, type Project, type SortKey } from "../types";

/** "3 files imported, 1 failed." from an import result. */
export function importSummary(report: ImportResult): string {
  const n = report.imported.length;
  const parts = [`${n} file${n === 1 ? "" : "s"} imported`];
  if (report.failed.length > 0) parts.push(`${report.failed.length} failed`);
  return `${parts.join(", ")}.`;
}

/** Projects sidebar, area tabs, the item list (or plots gallery), details, import and drop. */
export function WorkspaceScreen() {
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [project, setProject] = useState<string | null>(null);
  const [area, setArea] = useState<Area>("uploads");
  const [text, setText] = useState("");
  const [showDeleted, setShowDeleted] = useState(false);
  const [sort, setSort] = useState<ItemSort>({ key: "path", desc: false });
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [importFailures, setImportFailures] = useState<{ path: string; message: string }[]>([]);
  const [dragging, setDragging] = useState(false);
  const [creating, setCreating] = useState(false);
  const [newName, setNewName] = useState("");
  const [evidenceFor, setEvidenceFor] = useState<string | null>(null);
  const [bundleFor, setBundleFor] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const progress = useProgress();
  const filter = useDebounced(text, 250);

  const loadProjects = useCallback(async (select?: string) => {
    const r = await projectsList();
    if (!r.ok) return setError(r.error);
    setProjects(r.value);
    setProject((cur) => select ?? (cur && r.value.some((p) => p.name === cur) ? cur : (r.value[0]?.name ?? null)));
  }, []);
  useEffect(() => {
    void loadProjects();
  }, [loadProjects]);

  const query = useMemo<ItemQuery | null>(
    () =>
      project
        ? {
            project,
            area,
            text: filter.trim() || undefined,
            states: showDeleted ? ["active", "soft_deleted"] : ["active"],
            sort,
          }
        : null,
    [project, area, filter, showDeleted, sort],
  );
  const queryKey = JSON.stringify(query);
  const fetcher = useCallback(
    async (offset: number, limit: number) => {
      if (!query) return { total: 0, rows: [] as ItemRow[] };
      const r = await itemsPage(query, offset, limit);
      if (!r.ok) {
        setError(r.error);
        throw r.error;
      }
      return r.value;
    },
    [query],
  );
  const { cache, version } = usePageCache<ItemRow>(fetcher, queryKey);

  const refreshList = useCallback(() => void cache.refresh(), [cache]);

  const runImport = useCallback(
    async (paths: string[]) => {
      if (!project || paths.length === 0) return;
      setError(null);
      setImportFailures([]);
      const label = paths.length === 1 ? `Importing ${paths[0]!.split("/").pop()}` : `Importing ${paths.length} items`;
      const target = project;
      const r = await progress.run("import", label, (opId, cb) => importPaths(target, area, paths, null, opId, cb), importSummary);
      if (r.ok) setImportFailures(r.value.failed.map((f) => ({ path: f.source, message: `${errorText(f.code)} ${f.message}` })));
      else if (r.error.code !== "cancelled") setError(r.error);
      refreshList();
    },
    [project, area, progress, refreshList],
  );

  const pick = async (folder: boolean) => {
    const r = folder ? await pickImportFolder() : await pickImportFiles();
    if (!r.ok) return setError(r.error);
    const v: string[] | string | null = r.value;
    const paths = Array.isArray(v) ? v : v ? [v] : [];
    await runImport(paths);
  };

  const doExportArea = async () => {
    if (!project) return;
    const dir = await pickExportDir();
    if (!dir.ok) return setError(dir.error);
    if (!dir.value) return;
    const dest = dir.value;
    const target = project;
    const r = await progress.run(
      "export",
      `Exporting ${target} / ${humanize(area)}`,
      (opId, cb) => exportArea(target, area, dest, false, opId, cb),
      (v) => {
        const done = `${v.paths.length} file${v.paths.length === 1 ? "" : "s"} exported to ${dest}`;
        const first = v.failed[0];
        if (!first) return done;
        const more = v.failed.length > 1 ? ` (and ${v.failed.length - 1} more)` : "";
        return `${done}; ${v.failed.length} could not be exported: ${first.path}: ${first.message}${more}`;
      },
    );
    if (!r.ok && r.error.code !== "cancelled") setError(r.error);
  };

  const doExportProject = async (target: string, options: BundleRequest) => {
    setBundleFor(null);
    const sealed = options.passphrase !== undefined || options.recipients.length > 0;
    const path = await pickSavePath(bundleFileName(target, sealed));
    if (!path.ok) return setError(path.error);
    if (!path.value) return;
    const dest = path.value;
    const r = await progress.run(
      "export",
      `Exporting project ${target} as a${sealed ? "n encrypted" : ""} bundle`,
      (opId, cb) => projectExportBundle(target, dest, options, opId, cb),
      (v) =>
        `${v.files} file${v.files === 1 ? "" : "s"} and ${v.auditEvents} audit events in ${v.path}${v.encrypted ? " (encrypted with age)" : ""}; check it anywhere with labvault verify-bundle`,
    );
    if (!r.ok && r.error.code !== "cancelled") setError(r.error);
  };

  useEffect(() => {
    const unlisten = onFileDrop((e) => {
      if (e.type === "over") setDragging(true);
      else if (e.type === "leave") setDragging(false);
      else {
        setDragging(false);
        void runImport(e.paths);
      }
    });
    return () => void unlisten.then((f) => f());
  }, [runImport]);

  const createProject = async (e: FormEvent) => {
    e.preventDefault();
    const name = newName.trim();
    if (!name) return;
    const r = await projectCreate(name);
    if (!r.ok) return setError(r.error);
    setCreating(false);
    setNewName("");
    await loadProjects(name);
  };

  const onSort = (key: SortKey) => setSort((s) => (s.key === key ? { key, desc: !s.desc } : { key, desc: key === "size" || key === "modified" || key === "created" }));
  const open = (row: ItemRow) => setSelected(row.id);

  return (
    <div className="workspace" data-testid="screen-workspace">
      <aside className="projects" aria-label="Projects">
        <div className="projects__head">
          <h2 className="projects__title">Projects</h2>
          <button type="button" className="button button--small" data-testid="new-project" aria-expanded={creating} onClick={() => setCreating((c) => !c)}>
            New
          </button>
        </div>
        {creating ? (
          <form className="projects__new" onSubmit={createProject}>
            <label htmlFor="new-project-name" className="sr-only">
              New project name
            </label>
            <input
              id="new-project-name"
              data-testid="new-project-name"
              placeholder="Project name"
              value={newName}
              onChange={(e) => setNewName(e.target.value)}
              onKeyDown={(e) => e.key === "Escape" && setCreating(false)}
              autoFocus
            />
            <button type="submit" className="button button--small button--primary" data-testid="new-project-submit" disabled={!newName.trim()}>
              Create
            </button>
          </form>
        ) : null}
        <ul className="projects__list" data-testid="project-list">
          {projects?.map((p) => (
            <li key={p.id}>
              <button
                type="button"
                className={`projects__item${p.name === project ? " is-active" : ""}`}
                aria-current={p.name === project ? "true" : undefined}
                data-testid={`project-${p.name}`}
                onClick={() => {
                  setProject(p.name);
                  setSelected(null);
                }}
              >
                {p.name}
              </button>
            </li>
          ))}
        </ul>
        {projects && projects.length === 0 ? <p className="muted small projects__empty">No projects yet. Create one to start importing data.</p> : null}
      </aside>

      <section className="workspace__main" data-testid="drop-zone" data-active={dragging} aria-label="Items">
        {project ? (
          <>
            <div className="workspace__top">
              <div role="tablist" aria-label="Areas" className="tabs">
                {AREAS.map((a) => (
                  <button
                    key={a}
                    type="button"
                    role="tab"
                    aria-selected={area === a}
                    tabIndex={area === a ? 0 : -1}
                    className={`tabs__tab${area === a ? " is-active" : ""}`}
                    data-testid={`area-tab-${a}`}
                    onClick={() => {
                      setArea(a);
                      setSelected(null);
                    }}
                    onKeyDown={(e) => {
                      const i = AREAS.indexOf(a);
                      const next = e.key === "ArrowRight" ? AREAS[(i + 1) % 4] : e.key === "ArrowLeft" ? AREAS[(i + 3) % 4] : null;
                      if (next) {
                        e.preventDefault();
                        setArea(next);
                        setSelected(null);
                        document.querySelector<HTMLElement>(`[data-testid="area-tab-${next}"]`)?.focus();
                      }
                    }}
                  >
                    {humanize(a)}
                  </button>
                ))}
              </div>
              <div className="toolbar">
                <label htmlFor="filter-text" className="sr-only">
                  Filter by name
                </label>
                <input
                  id="filter-text"
                  type="search"
                  data-testid="filter-text"
                  placeholder="Filter by name…"
                  value={text}
                  onChange={(e) => setText(e.target.value)}
                />
                <label className="check check--inline">
                  <input type="checkbox" data-testid="show-deleted" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} />
                  <span>Show deleted</span>
                </label>
                <span className="toolbar__spacer" />
                <button type="button" className="button" data-testid="import-files" onClick={() => void pick(false)}>
                  Import files…
                </button>
                <button type="button" className="button" data-testid="import-folder" onClick={() => void pick(true)}>
                  Import folder…
                </button>
                <button type="button" className="button button--quiet" data-testid="export-area" onClick={() => void doExportArea()}>
                  Export area…
                </button>
                <button
                  type="button"
                  className="button button--quiet"
                  data-testid="export-project"
                  title="Every file with its manifest, hashes, retention and the project's audit trail, in one bundle (.tar, .tar.age encrypted, or a folder without the extension)"
                  onClick={() => setBundleFor(project)}
                >
                  Export project…
                </button>
                <button type="button" className="button button--quiet" data-testid="evidence-pack" onClick={() => setEvidenceFor(project)}>
                  Evidence pack…
                </button>
              </div>
            </div>
            <ErrorBanner error={error} onDismiss={() => setError(null)} />
            {notice ? (
              <p className="banner banner--ok" role="status" data-testid="workspace-notice">
                {notice}
              </p>
            ) : null}
            {bundleFor ? <ExportBundleDialog project={bundleFor} onClose={() => setBundleFor(null)} onSubmit={(o) => void doExportProject(bundleFor, o)} /> : null}
            {evidenceFor ? (
              <EvidencePackDialog
                project={evidenceFor}
                onClose={() => setEvidenceFor(null)}
                onDone={(summary) => {
                  setEvidenceFor(null);
                  setNotice(`Evidence pack written: ${summary}`);
                }}
              />
            ) : null}
            {importFailures.length > 0 ? (
              <div className="banner banner--warn" role="alert" data-testid="import-failures">
                <div className="banner__body">
                  <p className="banner__headline">Some files were not imported:</p>
                  <ul>
                    {importFailures.slice(0, 20).map((f) => (
                      <li key={f.path}>
                        <code>{f.path}</code>: {f.message}
                      </li>
                    ))}
                  </ul>
                </div>
                <button type="button" className="button button--quiet button--small" onClick={() => setImportFailures([])}>
                  Dismiss
                </button>
              </div>
            ) : null}
            <div className={`workspace__body${selected ? " has-details" : ""}`}>
              {area === "plots" ? (
                <Gallery key={queryKey} cache={cache} version={version} selectedId={selected} onOpen={open} />
              ) : (
                <ItemList key={queryKey} cache={cache} version={version} sort={sort} onSort={onSort} selectedId={selected} onOpen={open} />
              )}
              {selected ? <ItemDetailsPanel key={selected} itemId={selected} onChanged={refreshList} onClose={() => setSelected(null)} /> : null}
            </div>
            {dragging ? (
              <div className="drop-overlay" aria-hidden="true">
                Drop files or folders to import them into {project} / {humanize(area)}
              </div>
            ) : null}
          </>
        ) : (
          <div className="empty-state">
            <ErrorBanner error={error} onDismiss={() => setError(null)} />
            <h2>Welcome to LabVault</h2>
            <p className="muted">Create a project to start importing research data. Everything is encrypted in your local vault.</p>
            <button type="button" className="button button--primary" onClick={() => setCreating(true)}>
              Create a project
            </button>
          </div>
        )}
      </section>
    </div>
  );
}
