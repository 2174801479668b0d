import { useCallback, useEffect, useState, type FormEvent } from "react";
import {
  exportItem,
  holdClear,
  holdSet,
  itemDelete,
  itemDetails,
  itemErase,
  itemMove,
  itemRestore,
  pickExportDir,
} from "../api";
import type { AppError } from "../errors";
import { baseName, formatBytes, formatDateTime, humanize } from "../lib/format";
import { AREAS, type Area, type ItemDetails as Details } from "../types";
import { ErrorBanner, Field, Modal } from "./common";
import { Preview } from "./Preview";
import { useProgress } from "./progress";

/**
 * The details panel of one item: metadata, retention status, the item's own audit history, the
 * preview, and every action (export, rename/move, delete/restore, hold, erase).
 */
export function ItemDetailsPanel({
  itemId,
  onChanged,
  onClose,
}: {
  itemId: string;
  onChanged: () => void;
  onClose: () => void;
}) {
  const [details, setDetails] = useState<Details | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [dialog, setDialog] = useState<"rename" | "hold" | "erase" | null>(null);
  const [busy, setBusy] = useState(false);
  const [overwrite, setOverwrite] = useState<string | null>(null);
  const progress = useProgress();

  const load = useCallback(async () => {
    const r = await itemDetails(itemId);
    if (r.ok) setDetails(r.value);
    else setError(r.error);
  }, [itemId]);

  useEffect(() => {
    setDetails(null);
    setError(null);
    setNotice(null);
    setDialog(null);
    void load();
  }, [load]);

  const act = async (f: () => Promise<{ ok: boolean; error?: AppError }>, done: string) => {
    setBusy(true);
    setError(null);
    setNotice(null);
    const r = await f();
    setBusy(false);
    if (r.ok) {
      setNotice(done);
      onChanged();
      await load();
      return true;
    }
    if ("error" in r && r.error) setError(r.error);
    return false;
  };

  const doExport = async () => {
    if (!details) return;
    setError(null);
    const dir = await pickExportDir();
    if (!dir.ok) return setError(dir.error);
    if (!dir.value) return;
    await runExport(dir.value, false);
  };

  const runExport = async (dest: string, overwrite: boolean) => {
    if (!details) return;
    setOverwrite(null);
    const name = baseName(details.item.path);
    const r = await progress.run(
      "export",
      `Exporting ${name}`,
      (opId, cb) => exportItem(itemId, dest, overwrite, opId, cb),
      () => `Exported ${name} to ${dest}`,
    );
    if (r.ok) return;
    if (r.error.code === "already_exists" && !overwrite) setOverwrite(dest);
    else if (r.error.code !== "cancelled") setError(r.error);
  };

  if (!details) {
    return (
      <aside className="details" data-testid="item-details" aria-label="Item details">
        <ErrorBanner error={error} />
        {!error ? <p className="muted">Loading details…</p> : null}
      </aside>
    );
  }

  const { item, retention, holdReason: hold, history } = details;
  const deleted = item.state === "soft_deleted";
  const erased = item.state === "erased";
  const name = baseName(item.path);

  return (
    <aside
      className="details"
      data-testid="item-details"
      data-item-id={item.id}
      data-state={item.state}
      aria-label={`Details of ${name}`}
      onKeyDown={(e) => {
        if (e.key === "Escape" && !dialog) {
          e.stopPropagation();
          onClose();
        }
      }}
    >
      <div className="details__head">
        <h2 className="details__title" title={item.path}>
          {name}
        </h2>
        <button type="button" className="button button--quiet button--small" onClick={onClose} aria-label="Close details">
          Close
        </button>
      </div>
      <p className="details__path muted small">{item.path}</p>
      <div className="details__badges">
        <span className={`pill pill--${item.state}`} data-testid="item-state">
          {humanize(item.state)}
        </span>
        {hold ? (
          <span className="pill pill--hold" data-testid="item-on-hold" title={hold}>
            Legal hold
          </span>
        ) : null}
      </div>

      <div className="details__actions" role="toolbar" aria-label="Item actions">
        {!deleted && !erased ? (
          <>
            <button type="button" className="button button--small button--primary" data-testid="item-export" disabled={busy} onClick={() => void doExport()}>
              Export…
            </button>
            <button type="button" className="button button--small" data-testid="item-rename" disabled={busy} onClick={() => setDialog("rename")}>
              Rename / move…
            </button>
            <button
              type="button"
              className="button button--small"
              data-testid="item-delete"
              disabled={busy}
              onClick={() => void act(() => itemDelete(itemId), "Moved to deleted items. It can be restored during the grace period.")}
            >
              Delete
            </button>
          </>
        ) : null}
        {deleted ? (
          <button type="button" className="button button--small button--primary" data-testid="item-restore" disabled={busy} onClick={() => void act(() => itemRestore(itemId), "Restored.")}>
            Restore
          </button>
        ) : null}
        {!erased ? (
          hold ? (
            <button type="button" className="button button--small" data-testid="item-hold-clear" disabled={busy} onClick={() => void act(() => holdClear({ item: itemId }), "Legal hold cleared.")}>
              Clear hold
            </button>
          ) : (
            <button type="button" className="button button--small" data-testid="item-hold" disabled={busy} onClick={() => setDialog("hold")}>
              Legal hold…
            </button>
          )
        ) : null}
        {!erased ? (
          <button type="button" className="button button--small button--danger" data-testid="item-erase" disabled={busy || Boolean(hold)} onClick={() => setDialog("erase")} title={hold ? "A legal hold protects this item" : undefined}>
            Erase now…
          </button>
        ) : null}
      </div>

      <ErrorBanner error={error} onDismiss={() => setError(null)} />
      {overwrite ? (
        <div className="banner banner--warn" role="alert" data-testid="export-overwrite">
          <div className="banner__body">
            <p className="banner__headline">
              {name} already exists in {overwrite}.
            </p>
            <div className="form__actions">
              <button type="button" className="button button--small" data-testid="export-overwrite-confirm" onClick={() => void runExport(overwrite, true)}>
                Replace it
              </button>
              <button type="button" className="button button--quiet button--small" onClick={() => setOverwrite(null)}>
                Keep the existing file
              </button>
            </div>
          </div>
        </div>
      ) : null}
      {notice ? (
        <p className="banner banner--ok" role="status" data-testid="item-notice">
          {notice}
        </p>
      ) : null}

      <dl className="facts">
        <dt>Size</dt>
        <dd data-testid="item-size">{formatBytes(item.size)} ({item.size.toLocaleString()} bytes)</dd>
        <dt>SHA-256</dt>
        <dd>
          <code className="hash" data-testid="item-sha256">
            {item.sha256}
          </code>
        </dd>
        <dt>Media type</dt>
        <dd>{item.mediaType}</dd>
        <dt>Data type</dt>
        <dd>{humanize(item.dataType)}</dd>
        <dt>Version</dt>
        <dd>{item.version}</dd>
        <dt>Created</dt>
        <dd>
          {formatDateTime(item.createdAt)} by {item.createdBy}
        </dd>
        <dt>Modified</dt>
        <dd>{formatDateTime(item.updatedAt)}</dd>
        {item.deletedAt ? (
          <>
            <dt>Deleted</dt>
            <dd>{formatDateTime(item.deletedAt)}</dd>
          </>
        ) : null}
      </dl>

      <h3 className="details__section">Retention</h3>
      {retention ? (
        <dl className="facts" data-testid="item-retention">
          <dt>Status</dt>
          <dd>{humanize(retention.state)}</dd>
          <dt>Period</dt>
          <dd>{retention.period}</dd>
          <dt>Retained until</dt>
          <dd>{formatDateTime(retention.expiresAt)}</dd>
          <dt>Next step</dt>
          <dd>{retention.nextStep ? `${humanize(retention.nextStep)} on ${formatDateTime(retention.nextStepAt)}` : "None scheduled"}</dd>
          {hold ? (
            <>
              <dt>Hold</dt>
              <dd>
                {hold}
              </dd>
            </>
          ) : null}
        </dl>
      ) : (
        <p className="muted small">No retention information.</p>
      )}

      {!erased ? (
        <>
          <h3 className="details__section">Preview</h3>
          {deleted ? (
            <p className="muted small">Restore the item to preview it.</p>
          ) : (
            <Preview itemId={item.id} mediaType={item.mediaType} path={item.path} size={item.size} />
          )}
        </>
      ) : null}

      <h3 className="details__section">History</h3>
      {history.length === 0 ? (
        <p className="muted small">No events.</p>
      ) : (
        <ol className="history" data-testid="item-history">
          {history.map((ev) => (
            <li key={`${ev.deviceId ?? ""}-${ev.seq}`} className="history__event" data-action={ev.action} data-result={ev.result}>
              <span className="history__action">{ev.action}</span>
              <span className={`pill pill--${ev.result}`}>{ev.result}</span>
              <span className="muted small">
                {formatDateTime(ev.timestamp)} · {ev.user}
              </span>
              {ev.detail ? <span className="muted small history__detail">{ev.detail}</span> : null}
            </li>
          ))}
        </ol>
      )}

      {dialog === "rename" ? (
        <RenameDialog
          path={item.path}
          area={item.area as Area}
          onClose={() => setDialog(null)}
          onSubmit={async (area, path) => {
            const ok = await act(() => itemMove(itemId, area === item.area ? null : area, path === item.path ? null : path), "Renamed.");
            if (ok) setDialog(null);
          }}
        />
      ) : null}
      {dialog === "hold" ? (
        <HoldDialog
          subject={name}
          onClose={() => setDialog(null)}
          onSubmit={async (reason) => {
            const ok = await act(() => holdSet({ item: itemId }, reason), "Legal hold set.");
            if (ok) setDialog(null);
          }}
        />
      ) : null}
      {dialog === "erase" ? (
        <EraseDialog
          name={name}
          onClose={() => setDialog(null)}
          onSubmit={async (reason) => {
            const ok = await act(() => itemErase(itemId, reason), "Erased. The content can no longer be recovered.");
            if (ok) setDialog(null);
          }}
        />
      ) : null}
    </aside>
  );
}

function RenameDialog({
  path,
  area,
  onClose,
  onSubmit,
}: {
  path: string;
  area: Area;
  onClose: () => void;
  onSubmit: (area: Area, path: string) => Promise<void>;
}) {
  const [newPath, setNewPath] = useState(path);
  const [newArea, setNewArea] = useState<Area>(area);
  const [busy, setBusy] = useState(false);
  const unchanged = newPath.trim() === path && newArea === area;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (unchanged || !newPath.trim()) return;
    setBusy(true);
    await onSubmit(newArea, newPath.trim());
    setBusy(false);
  };
  return (
    <Modal title="Rename or move" onClose={onClose} testId="rename-dialog">
      <form className="form" onSubmit={submit}>
        <Field label="Path" htmlFor="rename-path" hint="Use / to place it in a folder.">
          <input id="rename-path" data-testid="rename-path" value={newPath} onChange={(e) => setNewPath(e.target.value)} spellCheck={false} />
        </Field>
        <Field label="Area" htmlFor="rename-area">
          <select id="rename-area" data-testid="rename-area" value={newArea} onChange={(e) => setNewArea(e.target.value as Area)}>
            {AREAS.map((a) => (
              <option key={a} value={a}>
                {humanize(a)}
              </option>
            ))}
          </select>
        </Field>
        <div className="form__actions">
          <button type="submit" className="button button--primary" data-testid="rename-submit" disabled={busy || unchanged || !newPath.trim()}>
            Save
          </button>
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** Asks for the reason of a legal hold (case number, request). */
export function HoldDialog({
  subject,
  onClose,
  onSubmit,
}: {
  subject: string;
  onClose: () => void;
  onSubmit: (reason: string) => Promise<void>;
}) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!reason.trim()) return;
    setBusy(true);
    await onSubmit(reason.trim());
    setBusy(false);
  };
  return (
    <Modal title={`Legal hold on ${subject}`} onClose={onClose} testId="hold-dialog">
      <form className="form" onSubmit={submit}>
        <p className="muted small">While the hold is set, nothing can delete, expire or erase it.</p>
        <Field label="Reason" htmlFor="hold-reason" hint="For example a case number or the request that requires it.">
          <input id="hold-reason" data-testid="hold-reason" value={reason} onChange={(e) => setReason(e.target.value)} />
        </Field>
        <div className="form__actions">
          <button type="submit" className="button button--primary" data-testid="hold-submit" disabled={busy || !reason.trim()}>
            Set hold
          </button>
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** Immediate cryptographic erasure: the user must type the item's name to confirm. */
export function EraseDialog({
  name,
  onClose,
  onSubmit,
}: {
  name: string;
  onClose: () => void;
  onSubmit: (reason: string) => Promise<void>;
}) {
  const [typed, setTyped] = useState("");
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const matches = typed === name;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!matches || !reason.trim()) return;
    setBusy(true);
    await onSubmit(reason.trim());
    setBusy(false);
  };
  return (
    <Modal title="Erase permanently" onClose={onClose} testId="erase-dialog">
      <form className="form" onSubmit={submit}>
        <p className="banner banner--warn">
          Erasing destroys the item's key: its content can never be recovered, not even from backups. Only the record that it was erased remains.
        </p>
        <Field label="Reason" htmlFor="erase-reason">
          <input id="erase-reason" data-testid="erase-reason" value={reason} onChange={(e) => setReason(e.target.value)} />
        </Field>
        <Field label={`Type ${name} to confirm`} htmlFor="erase-confirm">
          <input id="erase-confirm" data-testid="erase-confirm" value={typed} onChange={(e) => setTyped(e.target.value)} spellCheck={false} autoComplete="off" />
        </Field>
        <div className="form__actions">
          <button type="submit" className="button button--danger" data-testid="erase-submit" disabled={busy || !matches || !reason.trim()}>
            Erase permanently
          </button>
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Modal>
  );
}
