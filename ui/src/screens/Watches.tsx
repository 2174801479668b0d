import { useCallback, useEffect, useState, type FormEvent } from "react";
import { pickImportFolder, projectsList, watchAdd, watchDetails, watchList, watchPause, watchRemove } from "../api";
import { ErrorBanner, Field, Modal } from "../components/common";
import type { AppError } from "../errors";
import { usePolling } from "../hooks/usePolling";
import { formatBytes, formatDateTime, humanize } from "../lib/format";
import { parsePatterns, watchStateText } from "../lib/watches";
import type { Project, Watch, WatchDetails } from "../types";

/** How often the list refreshes while the screen is open (the watches run in Rust). */
export const WATCH_POLL_MS = 2000;

const AREAS = ["uploads", "workspace", "plots", "exports"];
/** What instruments and editors leave behind while writing: excluded unless the person changes it. */
const DEFAULT_EXCLUDE = ".*\n*.tmp\n*.part\n~$*";

/**
 * Instrument folders: folders an instrument writes into, imported into the vault as files
 * complete (exactly once, even across restarts), with what happened to each file.
 */
export function WatchesScreen() {
  const [watches, setWatches] = useState<Watch[]>([]);
  const [projects, setProjects] = useState<Project[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [adding, setAdding] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [reload, setReload] = useState(0);
  const refresh = useCallback(() => setReload((n) => n + 1), []);

  useEffect(() => {
    void projectsList().then((r) => (r.ok ? setProjects(r.value) : setError(r.error)));
  }, []);
  usePolling(watchList, WATCH_POLL_MS, setWatches, setError, [reload]);

  const togglePause = async (w: Watch) => {
    const r = await watchPause(w.id, !w.paused);
    if (!r.ok) return setError(r.error);
    setNotice(w.paused ? `${w.name} watches its folder again.` : `${w.name} is paused: new files wait in the folder until you resume it.`);
    refresh();
  };
  const remove = async (w: Watch) => {
    const r = await watchRemove(w.id);
    if (!r.ok) return setError(r.error);
    setOpen(null);
    setNotice(`${w.name} removed. The ${w.imported} file(s) it imported stay in the vault.`);
    refresh();
  };

  return (
    <div className="page" data-testid="screen-watches">
      <header className="page__header">
        <div>
          <h1 className="page__title">Instrument folders</h1>
          <p className="muted">
            Files your instruments write into these folders are imported once complete, each exactly once, and sync with your lab later. Watches run while the vault is
            unlocked; closing the window keeps them running in the tray (Quit from the tray icon stops them).
          </p>
        </div>
        <div className="toolbar">
          <button type="button" className="button button--primary" data-testid="watch-new" onClick={() => setAdding(true)}>
            Watch a folder…
          </button>
        </div>
      </header>
      <ErrorBanner error={error} onDismiss={() => setError(null)} />
      {notice ? (
        <p className="banner banner--ok" role="status" data-testid="watch-notice">
          {notice}
        </p>
      ) : null}
      {watches.length === 0 ? (
        <section className="card empty-state" data-testid="watch-empty">
          <p>No folder is watched yet.</p>
          <p className="small muted">Choose the folder an instrument saves into, and the project and area its files belong to.</p>
        </section>
      ) : (
        <section className="card" aria-labelledby="watch-list">
          <h2 id="watch-list" className="card__title">
            Watched folders
          </h2>
          <div className="table-wrap">
            <table className="table" data-testid="watch-table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Folder</th>
                  <th scope="col">Into</th>
                  <th scope="col">State</th>
                  <th scope="col">Imported</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {watches.map((w) => (
                  <tr key={w.id} data-testid={`watch-row-${w.name}`}>
                    <td>
                      <button type="button" className="link-button" data-testid={`watch-open-${w.name}`} onClick={() => setOpen(w.id)}>
                        {w.name}
                      </button>
                    </td>
                    <td className="mono small wrap">{w.folder}</td>
                    <td>
                      {w.projectName} / {w.area}
                    </td>
                    <td>
                      <span className={`pill ${w.state === "unavailable" ? "pill--failure" : w.state === "watching" ? "pill--success" : ""}`} data-testid={`watch-state-${w.name}`}>
                        {watchStateText(w)}
                      </span>
                      {w.reason ? <p className="small muted">{w.reason}</p> : null}
                    </td>
                    <td data-testid={`watch-imported-${w.name}`}>
                      {w.imported}
                      {w.lastImportAt ? <p className="small muted">last {formatDateTime(w.lastImportAt)}</p> : null}
                    </td>
                    <td>
                      <button type="button" className="button button--small" data-testid={`watch-pause-${w.name}`} onClick={() => void togglePause(w)}>
                        {w.paused ? "Resume" : "Pause"}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
      {open ? <WatchPanel id={open} onRemove={(w) => void remove(w)} onError={setError} reload={reload} /> : null}
      {adding ? (
        <AddWatch
          projects={projects}
          onClose={() => setAdding(false)}
          onAdded={(w) => {
            setAdding(false);
            setNotice(`${w.name} watches ${w.folder}.`);
            setOpen(w.id);
            refresh();
          }}
        />
      ) : null}
    </div>
  );
}

/** One watch: its settings, what happened to its files, and its latest imports. */
function WatchPanel({ id, reload, onRemove, onError }: { id: string; reload: number; onRemove: (w: Watch) => void; onError: (e: AppError) => void }) {
  const [d, setD] = useState<WatchDetails | null>(null);
  const [confirm, setConfirm] = useState(false);
  usePolling(() => watchDetails(id), WATCH_POLL_MS, setD, onError, [id, reload]);
  if (!d) return null;
  const w = d.watch;
  return (
    <section className="card" aria-labelledby="watch-panel" data-testid="watch-panel">
      <div className="card__head">
        <h2 id="watch-panel" className="card__title">
          {w.name}
        </h2>
        <button type="button" className="button button--danger button--small" data-testid="watch-remove" onClick={() => setConfirm(true)}>
          Remove watch…
        </button>
      </div>
      <dl className="facts">
        <dt>Folder</dt>
        <dd className="mono">{w.folder}</dd>
        <dt>Into</dt>
        <dd>
          {w.projectName} / {w.area} as {humanize(w.dataType)}
        </dd>
        <dt>Files</dt>
        <dd>
          {w.include.length ? `Only ${w.include.join(", ")}` : "Every file"}
          {w.exclude.length ? `; never ${w.exclude.join(", ")}` : ""}
        </dd>
        <dt>Complete when</dt>
        <dd>unchanged for {w.settleSecs} s, or closed after writing</dd>
        <dt>Afterwards</dt>
        <dd>{w.deleteSource ? "The source is deleted once its stored copy was verified" : "The source stays in the folder"}</dd>
      </dl>
      <h3 className="card__subtitle">Activity</h3>
      {d.activity.length === 0 ? (
        <p className="small muted">Nothing yet since the vault was unlocked.</p>
      ) : (
        <ul className="activity" data-testid="watch-activity">
          {d.activity.map((a, i) => (
            <li key={`${a.at}-${i}`} className={`activity__item activity__item--${a.kind}`} data-kind={a.kind}>
              <span className="small muted">{formatDateTime(a.at)}</span> <strong>{humanize(a.kind)}</strong>
              {a.source ? <span className="mono"> {a.source}</span> : null}
              <span>: {a.message}</span>
            </li>
          ))}
        </ul>
      )}
      <h3 className="card__subtitle">Latest imports</h3>
      {d.recent.length === 0 ? (
        <p className="small muted">No file imported yet.</p>
      ) : (
        <div className="table-wrap">
          <table className="table" data-testid="watch-recent">
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">Size</th>
                <th scope="col">Version</th>
                <th scope="col">Imported</th>
                <th scope="col">Source</th>
              </tr>
            </thead>
            <tbody>
              {d.recent.map((r) => (
                <tr key={`${r.source}-${r.importedAt}-${r.version}`}>
                  <td className="mono wrap">{r.source}</td>
                  <td>{formatBytes(r.size)}</td>
                  <td>{r.version}</td>
                  <td>{formatDateTime(r.importedAt)}</td>
                  <td>{r.sourceDeleted ? "deleted after verification" : "kept"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {confirm ? (
        <Modal title={`Remove ${w.name}?`} onClose={() => setConfirm(false)} testId="watch-remove-dialog">
          <p>The folder is no longer watched. The {w.imported} file(s) it imported stay in the vault, and nothing in the folder is touched.</p>
          <div className="form__actions">
            <button type="button" className="button" onClick={() => setConfirm(false)}>
              Keep it
            </button>
            <button type="button" className="button button--danger" data-testid="watch-remove-confirm" onClick={() => onRemove(w)}>
              Remove watch
            </button>
          </div>
        </Modal>
      ) : null}
    </section>
  );
}

function AddWatch({ projects, onClose, onAdded }: { projects: Project[]; onClose: () => void; onAdded: (w: Watch) => void }) {
  const [name, setName] = useState("");
  const [folder, setFolder] = useState("");
  const [project, setProject] = useState(projects[0]?.name ?? "");
  const [area, setArea] = useState("uploads");
  const [include, setInclude] = useState("");
  const [exclude, setExclude] = useState(DEFAULT_EXCLUDE);
  const [settle, setSettle] = useState(5);
  const [deleteSource, setDeleteSource] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const [busy, setBusy] = useState(false);

  const choose = async () => {
    const r = await pickImportFolder();
    if (!r.ok) return setError(r.error);
    if (r.value) {
      setFolder(r.value);
      if (!name) setName(r.value.split("/").filter(Boolean).pop()?.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64) ?? "");
    }
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const r = await watchAdd({
      name: name.trim(),
      folder,
      project,
      area,
      dataType: null,
      include: parsePatterns(include),
      exclude: parsePatterns(exclude),
      deleteSource,
      settleSecs: settle,
    });
    setBusy(false);
    if (r.ok) onAdded(r.value);
    else setError(r.error);
  };
  return (
    <Modal title="Watch an instrument folder" onClose={onClose} testId="watch-add-dialog">
      <form className="form" onSubmit={(e) => void submit(e)}>
        <ErrorBanner error={error} onDismiss={() => setError(null)} testId="watch-add-error" />
        <Field label="Folder" htmlFor="watch-folder" hint="Where the instrument saves its files. A folder inside the vault is refused.">
          <div className="input-row">
            <input id="watch-folder" data-testid="watch-folder" value={folder} onChange={(e) => setFolder(e.target.value)} required spellCheck={false} />
            <button type="button" className="button" data-testid="watch-choose" onClick={() => void choose()}>
              Choose…
            </button>
          </div>
        </Field>
        <Field label="Name" htmlFor="watch-name" hint="Letters, digits, '.', '_' or '-'; it names the watch in the audit log.">
          <input id="watch-name" data-testid="watch-name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={64} pattern="[A-Za-z0-9._\-]+" />
        </Field>
        <Field label="Project" htmlFor="watch-project">
          <select id="watch-project" data-testid="watch-project" value={project} onChange={(e) => setProject(e.target.value)} required>
            {projects.map((p) => (
              <option key={p.id} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Area" htmlFor="watch-area">
          <select id="watch-area" data-testid="watch-area" value={area} onChange={(e) => setArea(e.target.value)}>
            {AREAS.map((a) => (
              <option key={a} value={a}>
                {humanize(a)}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Only these files" htmlFor="watch-include" hint="One pattern per line, e.g. *.raw or run-*/*.csv; empty = every file.">
          <textarea id="watch-include" data-testid="watch-include" rows={2} value={include} onChange={(e) => setInclude(e.target.value)} spellCheck={false} />
        </Field>
        <Field label="Never these files" htmlFor="watch-exclude" hint="Temporary and hidden files instruments leave while writing.">
          <textarea id="watch-exclude" data-testid="watch-exclude" rows={3} value={exclude} onChange={(e) => setExclude(e.target.value)} spellCheck={false} />
        </Field>
        <Field label="Complete after (seconds unchanged)" htmlFor="watch-settle" hint="A file closed after writing is taken at once.">
          <input id="watch-settle" data-testid="watch-settle" type="number" min={1} max={3600} value={settle} onChange={(e) => setSettle(Number(e.target.value))} />
        </Field>
        <label className="check">
          <input type="checkbox" data-testid="watch-delete-source" checked={deleteSource} onChange={(e) => setDeleteSource(e.target.checked)} /> Delete each file from the
          folder once its stored copy is verified
        </label>
        <div className="form__actions">
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="watch-add" disabled={busy || !folder || !project}>
            {busy ? "Adding…" : "Watch folder"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
