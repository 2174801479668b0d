import { useCallback, useEffect, useState, type FormEvent } from "react";
import {
  conflictKeepBoth,
  conflictResolve,
  deviceApprove,
  devicePairing,
  deviceRevoke,
  devicesList,
  projectSharing,
  syncConflicts,
  syncPause,
  syncSetBandwidth,
  syncState,
  syncRun,
  syncStatus,
  tenantConnect,
  tenantSignIn,
  tenantSignOut,
  tenantStatus,
} from "../api";
import { AccountSecurity } from "../components/AccountSecurity";
import { ErrorBanner, Field, Modal } from "../components/common";
import { Preview } from "../components/Preview";
import { useProgress } from "../components/progress";
import type { AppError } from "../errors";
import { formatBytes, formatDateTime, humanize } from "../lib/format";
import type { ProjectSharing, ProjectSync, SyncConflict, SyncState, TenantStatus, UserDevice } from "../types";

/** Whether the last attempt to reach the lab server worked. */
type Reach = "unknown" | "online" | "offline";

/**
 * Sync: connect this vault to the lab's server, sign in, see what waits to sync per project,
 * sync now (with progress, cancellable), resolve conflicts and manage this user's devices.
 * Everything here except the connect/sign-in/sync actions works offline.
 */
export function SyncScreen({ onChanged }: { onChanged?: () => void }) {
  const [status, setStatus] = useState<TenantStatus | null>(null);
  const [projects, setProjects] = useState<ProjectSync[]>([]);
  const [conflicts, setConflicts] = useState<SyncConflict[]>([]);
  const [error, setError] = useState<AppError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [reach, setReach] = useState<Reach>("unknown");
  const [reload, setReload] = useState(0);
  const [background, setBackground] = useState<SyncState | null>(null);
  const progress = useProgress();

  useEffect(() => {
    void syncState().then((r) => {
      if (!r.ok) return;
      setBackground(r.value);
      if (r.value.online === false) setReach("offline");
      else if (r.value.online === true) setReach((x) => (x === "unknown" ? "online" : x));
    });
  }, [reload]);

  const setBandwidth = async (kib: number | null) => {
    const r = await syncSetBandwidth(kib);
    if (!r.ok) return setError(r.error);
    setNotice(r.value ? `Sync now uses at most ${formatBytes(r.value * 1024)}/s.` : "Sync uses the full bandwidth.");
    refresh();
  };

  const togglePause = async () => {
    const r = await syncPause(!background?.paused);
    if (!r.ok) return setError(r.error);
    setNotice(background?.paused ? "Background sync resumed." : "Background sync paused: changes wait here until you resume or press Sync now.");
    refresh();
  };

  useEffect(() => {
    void tenantStatus().then((r) => (r.ok ? setStatus(r.value) : setError(r.error)));
    void syncStatus().then((r) => (r.ok ? setProjects(r.value) : setError(r.error)));
    void syncConflicts().then((r) => (r.ok ? setConflicts(r.value) : setError(r.error)));
  }, [reload]);

  const refresh = useCallback(() => {
    setReload((n) => n + 1);
    onChanged?.();
  }, [onChanged]);

  const failed = (e: AppError) => {
    if (e.code === "unreachable") setReach("offline");
    setError(e);
  };

  const syncNow = async () => {
    const r = await progress.run("sync", "Syncing with the lab", (opId, cb) => syncRun(opId, cb), (v) =>
      `Sent ${v.pushed.toLocaleString()} and received ${v.pulled.toLocaleString()} change(s); ${formatBytes(v.bytesUp)} up, ${formatBytes(v.bytesDown)} down.`,
    );
    if (r.ok) {
      setReach("online");
      setError(null);
      const problems = r.value.errors.length;
      setNotice(
        problems
          ? `Synced with ${problems} problem(s): see the projects below.`
          : r.value.conflicts
            ? `Synced. ${r.value.conflicts} concurrent edit(s) were kept as conflicts: choose below which version to keep.`
            : "Synced.",
      );
    } else if (r.error.code !== "cancelled") failed(r.error);
    refresh();
  };

  const signedIn = status?.signedIn ?? false;
  return (
    <div className="page" data-testid="screen-sync">
      <header className="page__header">
        <div>
          <h1 className="page__title">Sync</h1>
          <p className="muted">Your vault works offline; it syncs with your lab's server when you are connected. The server only ever sees encrypted data.</p>
        </div>
        <div className="toolbar">
          <span className={`pill ${reach === "offline" ? "pill--failure" : reach === "online" ? "pill--success" : ""}`} data-testid="sync-reach">
            {reach === "offline" ? "Offline" : reach === "online" ? "Online" : signedIn ? "Not checked yet" : "Not connected"}
          </span>
          {signedIn ? (
            <label className="inline-field">
              <span>Bandwidth</span>
              <select
                data-testid="sync-bandwidth"
                value={String(background?.bandwidthLimitKib ?? "")}
                onChange={(e) => void setBandwidth(e.target.value ? Number(e.target.value) : null)}
              >
                {bandwidthChoices(background?.bandwidthLimitKib ?? null).map((k) => (
                  <option key={k ?? "none"} value={k ?? ""}>
                    {k ? `${formatBytes(k * 1024)}/s` : "Unlimited"}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
          {background?.active ? (
            <button type="button" className="button" data-testid="sync-pause" aria-pressed={background.paused} onClick={() => void togglePause()}>
              {background.paused ? "Resume background sync" : "Pause background sync"}
            </button>
          ) : null}
          {signedIn ? (
            <button type="button" className="button button--primary" data-testid="sync-now" onClick={() => void syncNow()}>
              Sync now
            </button>
          ) : null}
        </div>
      </header>
      <ErrorBanner error={error} onDismiss={() => setError(null)} />
      {notice ? (
        <p className="banner banner--ok" role="status" data-testid="sync-notice">
          {notice}
        </p>
      ) : null}
      {status ? (
        <Account
          status={status}
          onChanged={(msg) => {
            setNotice(msg);
            setError(null);
            setReach("online");
            refresh();
          }}
          onError={failed}
        />
      ) : null}
      {status?.connected ? <Projects projects={projects} onError={setError} /> : null}
      {conflicts.length ? (
        <Conflicts
          conflicts={conflicts}
          onResolved={(msg) => {
            setNotice(msg);
            refresh();
          }}
          onError={setError}
        />
      ) : null}
      {signedIn ? <Devices status={status!} onError={failed} onNotice={setNotice} /> : null}
    </div>
  );
}

/** Bandwidth limits offered (KiB/s), with the current one when it is not among them. */
export function bandwidthChoices(current: number | null): (number | null)[] {
  const presets = [null, 256, 1024, 5 * 1024, 20 * 1024, 100 * 1024];
  return current && !presets.includes(current) ? [...presets, current].sort((a, b) => (a ?? 0) - (b ?? 0)) : presets;
}

/** Connect, sign in (with a TOTP step when the account has MFA), or the signed-in account. */
function Account({ status, onChanged, onError }: { status: TenantStatus; onChanged: (msg: string) => void; onError: (e: AppError) => void }) {
  const [url, setUrl] = useState(status.url ?? "https://");
  const [pin, setPin] = useState(status.pin ?? "");
  const [tenant, setTenant] = useState(status.tenant ?? "");
  const [email, setEmail] = useState(status.email ?? "");
  const [password, setPassword] = useState("");
  const [totp, setTotp] = useState("");
  const [needTotp, setNeedTotp] = useState(false);
  const [busy, setBusy] = useState(false);

  const connect = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const r = await tenantConnect(url.trim(), pin.trim(), tenant.trim() || null);
    setBusy(false);
    if (r.ok) onChanged(`Connected to ${r.value.url}. The server's certificate matches the pin.`);
    else onError(r.error);
  };
  const signIn = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const r = await tenantSignIn(email.trim(), password, needTotp ? totp.trim() : null);
    setBusy(false);
    if (!r.ok) {
      if (r.error.code === "invalid_mfa_code") setTotp("");
      return onError(r.error);
    }
    if (!r.value.signedIn) {
      setNeedTotp(true);
      return;
    }
    setPassword("");
    setTotp("");
    setNeedTotp(false);
    onChanged(
      r.value.approved
        ? `Signed in. This device (${r.value.deviceName ?? "this device"}) syncs.`
        : `Signed in. This device (${r.value.deviceName ?? "this device"}) waits for approval: on a device of yours that already syncs, open Sync → Devices and enter its pairing code.`,
    );
  };
  const signOut = async () => {
    const r = await tenantSignOut();
    if (r.ok) onChanged("Signed out. The sign-in token was removed from this device's keyring; your vault stays as it is.");
    else onError(r.error);
  };

  if (!status.connected) {
    return (
      <section className="card" aria-labelledby="sync-connect">
        <h2 id="sync-connect" className="card__title">
          Connect to your lab
        </h2>
        <form className="form" onSubmit={(e) => void connect(e)} data-testid="sync-connect-form">
          <Field label="Server address" htmlFor="sync-url" hint="From your lab's administrator, e.g. https://labvault.example.org">
            <input id="sync-url" data-testid="sync-url" value={url} onChange={(e) => setUrl(e.target.value)} required />
          </Field>
          <Field
            label="Certificate pin"
            htmlFor="sync-pin"
            hint="sha256/… as `labvault-server pin` prints it on the server: compare it with your administrator through another channel."
          >
            <input id="sync-pin" data-testid="sync-pin" value={pin} onChange={(e) => setPin(e.target.value)} required spellCheck={false} />
          </Field>
          <Field label="Lab (tenant) name" htmlFor="sync-tenant">
            <input id="sync-tenant" data-testid="sync-tenant" value={tenant} onChange={(e) => setTenant(e.target.value)} />
          </Field>
          <div className="form__actions">
            <button type="submit" className="button button--primary" data-testid="sync-connect" disabled={busy}>
              {busy ? "Checking the server…" : "Connect"}
            </button>
          </div>
        </form>
      </section>
    );
  }
  if (!status.signedIn) {
    return (
      <section className="card" aria-labelledby="sync-sign-in">
        <h2 id="sync-sign-in" className="card__title">
          Sign in to {status.tenant ?? "your lab"}
        </h2>
        <p className="small muted">
          {status.url} · pin {status.pin}
        </p>
        <form className="form" onSubmit={(e) => void signIn(e)} data-testid="sync-sign-in-form">
          <Field label="Email" htmlFor="sync-email">
            <input id="sync-email" data-testid="sync-email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
          </Field>
          <Field label="Password" htmlFor="sync-password">
            <input
              id="sync-password"
              data-testid="sync-password"
              type="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
            />
          </Field>
          {needTotp ? (
            <Field label="Authenticator code" htmlFor="sync-totp" hint="Your account uses two-factor authentication.">
              <input
                id="sync-totp"
                data-testid="sync-totp"
                autoComplete="one-time-code"
                inputMode="numeric"
                value={totp}
                onChange={(e) => setTotp(e.target.value)}
                required
                autoFocus
              />
            </Field>
          ) : null}
          <div className="form__actions">
            <button type="submit" className="button button--primary" data-testid="sync-sign-in" disabled={busy}>
              {busy ? "Signing in…" : "Sign in"}
            </button>
          </div>
        </form>
      </section>
    );
  }
  return (
    <section className="card" aria-labelledby="sync-account" data-testid="sync-account">
      <div className="card__head">
        <h2 id="sync-account" className="card__title">
          Account
        </h2>
        <button type="button" className="button" data-testid="sync-sign-out" onClick={() => void signOut()}>
          Sign out
        </button>
      </div>
      <dl className="facts">
        <dt>Lab</dt>
        <dd>
          {status.tenant} · {status.url}
        </dd>
        <dt>Signed in as</dt>
        <dd data-testid="sync-email-shown">{status.email}</dd>
        <dt>This device</dt>
        <dd data-testid="sync-device-state">
          {status.device === "pending"
            ? "Waits for approval by another device of yours."
            : status.device === "revoked"
              ? "Revoked: it no longer syncs."
              : humanize(status.device ?? "unregistered")}
        </dd>
      </dl>
      <AccountSecurity onNotice={onChanged} />
      {status.device === "pending" || status.device === "unregistered" ? <Pairing onApproved={() => onChanged("This device is approved: it syncs now.")} onError={onError} /> : null}
    </section>
  );
}

/** A waiting device: its pairing code to enter on an approved device, and a check for the approval. */
function Pairing({ onApproved, onError }: { onApproved: () => void; onError: (e: AppError) => void }) {
  const [code, setCode] = useState<string | null>(null);
  const check = useCallback(async () => {
    const r = await devicePairing();
    if (!r.ok) return onError(r.error);
    if (r.value.approved) onApproved();
    else setCode(r.value.code);
  }, [onApproved, onError]);
  useEffect(() => {
    void check();
  }, []);
  return (
    <div className="banner banner--warn" data-testid="sync-pairing">
      <div className="banner__body">
        <p className="banner__headline">Approve this device from one of yours that already syncs</p>
        <p className="banner__detail">
          There: Sync → Devices → enter this pairing code. Check that both screens show the same code.
        </p>
        {code ? (
          <p className="pairing-code" data-testid="sync-pairing-code">
            {code}
          </p>
        ) : null}
      </div>
      <button type="button" className="button button--small" onClick={() => void check()}>
        Check again
      </button>
    </div>
  );
}

function Projects({ projects, onError }: { projects: ProjectSync[]; onError: (e: AppError) => void }) {
  const [open, setOpen] = useState<string | null>(null);
  return (
    <section className="card" aria-labelledby="sync-projects">
      <h2 id="sync-projects" className="card__title">
        Projects
      </h2>
      <div className="table-wrap">
        <table className="table" data-testid="sync-projects">
          <thead>
            <tr>
              <th scope="col">Project</th>
              <th scope="col">Last synced</th>
              <th scope="col">Waiting to send</th>
              <th scope="col">Conflicts</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="sr-only">Sharing</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {projects.map((p) => (
              <tr key={p.projectId} data-project={p.name} data-pending={p.pendingOps + p.changedItems}>
                <th scope="row">{p.name}</th>
                <td>{p.lastSyncAt ? formatDateTime(p.lastSyncAt) : "Never"}</td>
                <td>
                  {(p.pendingOps + p.changedItems).toLocaleString()} change(s){p.pendingBytes ? ` · ${formatBytes(p.pendingBytes)}` : ""}
                </td>
                <td className={p.conflicts ? "num-warn" : undefined}>{p.conflicts.toLocaleString()}</td>
                <td>
                  {p.stopped ? (
                    <span className="pill pill--failure" title={p.stopped}>
                      Stopped: {p.stopped}
                    </span>
                  ) : p.parked.length ? (
                    <span className="pill pill--failure" title={p.parked.map((x) => `${x.what}: ${x.error}`).join("\n")}>
                      {p.parked.length} refused
                    </span>
                  ) : p.awaitingConfirmation ? (
                    <span className="pill pill--hold">{p.awaitingConfirmation} deletion(s) held back</span>
                  ) : p.remote ? (
                    <span className="pill pill--success">On the server</span>
                  ) : (
                    <span className="pill">Not sent yet</span>
                  )}
                </td>
                <td>
                  <button
                    type="button"
                    className="button button--small"
                    data-testid={`sync-sharing-${p.name}`}
                    aria-expanded={open === p.projectId}
                    onClick={() => setOpen(open === p.projectId ? null : p.projectId)}
                  >
                    Members
                  </button>
                </td>
              </tr>
            ))}
            {projects.length === 0 ? (
              <tr>
                <td colSpan={6} className="muted">
                  No projects yet.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      {open ? <Sharing projectId={open} onError={onError} /> : null}
    </section>
  );
}

/** Who a project is shared with, its key epoch and lease, and why it is locked here if it is. */
function Sharing({ projectId, onError }: { projectId: string; onError: (e: AppError) => void }) {
  const [sh, setSh] = useState<ProjectSharing | null>(null);
  useEffect(() => {
    void projectSharing(projectId).then((r) => (r.ok ? setSh(r.value) : onError(r.error)));
  }, [projectId, onError]);
  if (!sh) return null;
  return (
    <div className="sharing" data-testid="sync-sharing">
      {sh.locked ? (
        <div className="banner banner--error" role="alert" data-testid="sync-locked">
          <div className="banner__body">
            <p className="banner__headline">This project is locked on this device</p>
            <p className="banner__detail">{sh.locked}</p>
            <p className="banner__detail">Its files stay encrypted here until this device reaches your lab's server again: connect to the network and press Sync now.</p>
          </div>
        </div>
      ) : null}
      {!sh.shared ? (
        <p className="small muted" data-testid="sync-not-shared">
          Not shared: only your own devices hold this project. An Owner or Admin shares it with lab members (`labvault project share`).
        </p>
      ) : (
        <>
          <dl className="facts">
            <dt>Key epoch</dt>
            <dd data-testid="sync-epoch">
              {sh.epoch}
              {sh.lastRotationAt ? ` · rotated ${formatDateTime(sh.lastRotationAt)}` : ""}
              {sh.rotationDays ? ` · the lab rotates every ${sh.rotationDays} days` : ""}
            </dd>
            {sh.rotationOwed ? (
              <>
                <dt>Rotation</dt>
                <dd>Owed: a member left or a device was revoked; the next Owner or Admin online rotates the key.</dd>
              </>
            ) : null}
            <dt>Offline lease</dt>
            <dd>
              {sh.leaseDays ? `${sh.leaseDays} days without reaching the server` : "None"}
              {sh.lastContactAt ? ` · last contact ${formatDateTime(sh.lastContactAt)}` : ""}
            </dd>
            <dt>Membership log</dt>
            <dd>{sh.logLength} signed entries, verified on this device</dd>
          </dl>
          <table className="table" data-testid="sync-members">
            <thead>
              <tr>
                <th scope="col">Member</th>
                <th scope="col">Role</th>
                <th scope="col">Safety number</th>
              </tr>
            </thead>
            <tbody>
              {sh.members.map((m) => (
                <tr key={m.userId}>
                  <td className={m.email ? undefined : "mono small"} title={m.userId}>
                    {m.email ?? m.userId}
                    {m.you ? <strong> (you)</strong> : null}
                  </td>
                  <td>{humanize(m.role)}</td>
                  <td className="mono small">{m.safetyNumber}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="small muted">Compare a safety number with its owner in person or by phone: if they differ, someone is in the middle.</p>
        </>
      )}
    </div>
  );
}

/** A free-looking name for the other side of a conflict: `counts (ann@lab.test 2026-12-07).csv`. */
export function keepBothName(path: string, createdBy: string, createdAt: string): string {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const name = path.slice(slash + 1);
  const dot = name.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""];
  const who = createdBy.replace(/[/\\\u0000-\u001f]/g, "-") || "other device";
  const day = createdAt.slice(0, 10);
  return `${dir}${stem} (${who}${day ? ` ${day}` : ""})${ext}`;
}

function Conflicts({ conflicts, onResolved, onError }: { conflicts: SyncConflict[]; onResolved: (msg: string) => void; onError: (e: AppError) => void }) {
  const [compare, setCompare] = useState<{ c: SyncConflict; version: number } | null>(null);
  const [both, setBoth] = useState<{ c: SyncConflict; version: number; name: string; error: AppError | null } | null>(null);
  const keep = async (c: SyncConflict, version: number) => {
    const r = await conflictResolve(c.itemId, version);
    if (r.ok) {
      setCompare(null);
      onResolved(`${c.path}: version ${version} is now the current one; the other versions stay in its history.`);
    } else onError(r.error);
  };
  const keepBoth = async (e: FormEvent) => {
    e.preventDefault();
    if (!both) return;
    const r = await conflictKeepBoth(both.c.itemId, both.c.head, both.version, both.name.trim());
    if (!r.ok) return setBoth({ ...both, error: r.error });
    setBoth(null);
    setCompare(null);
    onResolved(`${both.c.path} keeps version ${both.c.head}; the other version is now ${r.value}.`);
  };
  return (
    <section className="card" aria-labelledby="sync-conflicts" data-testid="sync-conflicts">
      <h2 id="sync-conflicts" className="card__title">
        Conflicts
      </h2>
      <p className="muted">The same file was changed on two devices. Nothing was lost: compare them, then keep one, or keep both as two files.</p>
      <ul className="conflicts">
        {conflicts.map((c) => (
          <li key={c.itemId} data-testid="sync-conflict" data-path={c.path}>
            <strong>
              {c.area}/{c.path}
            </strong>
            <div className="toolbar">
              <button type="button" className="button button--small" data-testid="sync-keep-head" onClick={() => void keep(c, c.head)}>
                Keep current (v{c.head})
              </button>
              {c.siblings.map((s) => (
                <span key={s.version} className="toolbar">
                  <button
                    type="button"
                    className="button button--small"
                    data-testid="sync-keep-sibling"
                    onClick={() => void keep(c, s.version)}
                    title={`${formatBytes(s.size)}, by ${s.createdBy} at ${formatDateTime(s.createdAt)}`}
                  >
                    Keep v{s.version} ({s.createdBy}, {formatDateTime(s.createdAt)})
                  </button>
                  <button type="button" className="button button--small" data-testid="sync-compare" onClick={() => setCompare({ c, version: s.version })}>
                    Compare
                  </button>
                  <button
                    type="button"
                    className="button button--small"
                    data-testid="sync-keep-both"
                    onClick={() => setBoth({ c, version: s.version, name: keepBothName(c.path, s.createdBy, s.createdAt), error: null })}
                  >
                    Keep both…
                  </button>
                </span>
              ))}
            </div>
          </li>
        ))}
      </ul>
      {compare ? (
        <Modal title={`${compare.c.path}: the two versions`} onClose={() => setCompare(null)} testId="sync-compare-dialog" wide>
          <div className="compare">
            <div className="compare__side" data-testid="sync-compare-head">
              <h3 className="card__subtitle">Current (v{compare.c.head})</h3>
              <Preview itemId={compare.c.itemId} version={compare.c.head} mediaType={compare.c.mediaType} path={compare.c.path} size={compare.c.headSize} />
            </div>
            <div className="compare__side" data-testid="sync-compare-other">
              {(() => {
                const s = compare.c.siblings.find((x) => x.version === compare.version)!;
                return (
                  <>
                    <h3 className="card__subtitle">
                      v{s.version} · {s.createdBy}, {formatDateTime(s.createdAt)}
                    </h3>
                    <Preview itemId={compare.c.itemId} version={s.version} mediaType={compare.c.mediaType} path={compare.c.path} size={s.size} />
                  </>
                );
              })()}
            </div>
          </div>
          <div className="form__actions">
            <button type="button" className="button" onClick={() => void keep(compare.c, compare.c.head)}>
              Keep current
            </button>
            <button type="button" className="button" onClick={() => void keep(compare.c, compare.version)}>
              Keep v{compare.version}
            </button>
          </div>
        </Modal>
      ) : null}
      {both ? (
        <Modal title="Keep both versions" onClose={() => setBoth(null)} testId="sync-keep-both-dialog">
          <form className="form" onSubmit={(e) => void keepBoth(e)}>
            <ErrorBanner error={both.error} onDismiss={() => setBoth({ ...both, error: null })} testId="sync-keep-both-error" />
            <p>
              {both.c.path} keeps version {both.c.head}. Version {both.version} becomes a file of its own, in the same folder:
            </p>
            <Field label="Name of the other version" htmlFor="sync-keep-both-name">
              <input id="sync-keep-both-name" data-testid="sync-keep-both-name" value={both.name} onChange={(e) => setBoth({ ...both, name: e.target.value })} required />
            </Field>
            <div className="form__actions">
              <button type="button" className="button" onClick={() => setBoth(null)}>
                Cancel
              </button>
              <button type="submit" className="button button--primary" data-testid="sync-keep-both-submit" disabled={!both.name.trim()}>
                Keep both
              </button>
            </div>
          </form>
        </Modal>
      ) : null}
    </section>
  );
}

function Devices({ status, onError, onNotice }: { status: TenantStatus; onError: (e: AppError) => void; onNotice: (msg: string) => void }) {
  const [devices, setDevices] = useState<UserDevice[] | null>(null);
  const [code, setCode] = useState("");
  const [reload, setReload] = useState(0);
  useEffect(() => {
    void devicesList().then((r) => (r.ok ? setDevices(r.value) : onError(r.error)));
  }, [reload]);
  const approve = async (e: FormEvent) => {
    e.preventDefault();
    const r = await deviceApprove(code.trim());
    if (!r.ok) return onError(r.error);
    setCode("");
    onNotice(`Approved ${r.value}: it can sync now.`);
    setReload((n) => n + 1);
  };
  const revoke = async (d: UserDevice) => {
    const r = await deviceRevoke(d.deviceId);
    if (!r.ok) return onError(r.error);
    onNotice(`Revoked ${d.name}: it no longer syncs, and erases what it synced the next time it connects.`);
    setReload((n) => n + 1);
  };
  return (
    <section className="card" aria-labelledby="sync-devices" data-testid="sync-devices">
      <h2 id="sync-devices" className="card__title">
        Devices
      </h2>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">State</th>
            <th scope="col">Last seen</th>
            <th scope="col" />
          </tr>
        </thead>
        <tbody>
          {devices?.map((d) => (
            <tr key={d.deviceId} data-device={d.deviceId}>
              <td>
                {d.name}
                {d.thisDevice ? <span className="muted"> (this device)</span> : null}
              </td>
              <td>{humanize(d.state)}</td>
              <td>{d.lastSeenAt ? formatDateTime(d.lastSeenAt) : "–"}</td>
              <td>
                {!d.thisDevice && d.state !== "revoked" && status.device === "approved" ? (
                  <button type="button" className="link-button link-button--danger" onClick={() => void revoke(d)}>
                    Revoke
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {status.device === "approved" ? (
        <form className="form form--inline" onSubmit={(e) => void approve(e)}>
          <Field label="Approve a new device: its pairing code" htmlFor="sync-pair-code" hint="The new device shows this code after you sign in there. Compare it on both screens.">
            <input id="sync-pair-code" data-testid="sync-pair-code" value={code} onChange={(e) => setCode(e.target.value)} spellCheck={false} />
          </Field>
          <div className="form__actions">
            <button type="submit" className="button" data-testid="sync-pair-approve" disabled={!code.trim()}>
              Approve
            </button>
          </div>
        </form>
      ) : null}
    </section>
  );
}
