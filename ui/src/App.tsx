import { useCallback, useEffect, useMemo, useReducer, useState } from "react";
import { activityPing, onVaultLocked, setLockedHandler, vaultLock, vaultStatus } from "./api";
import { ErrorBanner, Spinner } from "./components/common";
import { ProgressPanel, ProgressProvider } from "./components/progress";
import { SyncStatusItem } from "./components/SyncStatusItem";
import { toAppError, type AppError } from "./errors";
import { createActivityPinger, lockCleanup, sessionReducer } from "./lib/session";
import { FirstRun, RecoveryConfirm, Unlock } from "./screens/Auth";
import { AuditScreen } from "./screens/Audit";
import { RetentionScreen } from "./screens/Retention";
import { SettingsScreen } from "./screens/Settings";
import { SyncScreen } from "./screens/Sync";
import { TeamScreen } from "./screens/Team";
import { WatchesScreen } from "./screens/Watches";
import { WorkspaceScreen } from "./screens/Workspace";
import type { VaultStatus } from "./types";

export type Screen = "workspace" | "watches" | "audit" | "retention" | "settings" | "team" | "sync";

const NAV: { id: Screen; label: string }[] = [
  { id: "workspace", label: "Workspace" },
  { id: "watches", label: "Instrument folders" },
  { id: "audit", label: "Audit log" },
  { id: "retention", label: "Retention" },
  { id: "settings", label: "Settings" },
];

const COLLAB: { id: Screen; label: string }[] = [
  { id: "team", label: "Team" },
  { id: "sync", label: "Sync" },
];

/** The unlocked app: navigation, the current screen and the operations panel. */
function MainShell({
  status,
  onLock,
  onStatusChanged,
}: {
  status: VaultStatus | null;
  onLock: () => void;
  onStatusChanged: () => void;
}) {
  const [screen, setScreen] = useState<Screen>("workspace");
  return (
    <ProgressProvider>
      <div className="app">
        <nav className="nav" aria-label="Main">
          <div className="nav__brand">
            <img src="/icon.png" alt="" width={28} height={28} />
            <span>LabVault</span>
          </div>
          <ul className="nav__list">
            {NAV.map((n) => (
              <li key={n.id}>
                <button
                  type="button"
                  className={`nav__item${screen === n.id ? " nav__item--active" : ""}`}
                  aria-current={screen === n.id ? "page" : undefined}
                  data-testid={`nav-${n.id}`}
                  onClick={() => setScreen(n.id)}
                >
                  {n.label}
                </button>
              </li>
            ))}
          </ul>
          <p className="nav__section">Collaboration</p>
          <ul className="nav__list">
            {COLLAB.map((n) => (
              <li key={n.id}>
                <button
                  type="button"
                  className={`nav__item${screen === n.id ? " nav__item--active" : ""}`}
                  aria-current={screen === n.id ? "page" : undefined}
                  data-testid={`nav-${n.id}`}
                  onClick={() => setScreen(n.id)}
                >
                  {n.label}
                </button>
              </li>
            ))}
          </ul>
          <div className="nav__footer">
            <SyncStatusItem onOpen={() => setScreen("sync")} />
            <button type="button" className="button nav__lock" data-testid="lock-button" onClick={onLock}>
              Lock vault
            </button>
            {status ? <p className="nav__version">v{status.appVersion}</p> : null}
          </div>
        </nav>
        <div className="app__main">
          {status?.readOnlyReason ? (
            <div className="banner banner--warn" role="alert" data-testid="read-only-banner">
              <div className="banner__body">
                <p className="banner__headline">The vault is read-only</p>
                <p className="banner__detail">{status.readOnlyReason}</p>
              </div>
            </div>
          ) : null}
          {screen === "workspace" ? <WorkspaceScreen /> : null}
          {screen === "watches" ? <WatchesScreen /> : null}
          {screen === "audit" ? <AuditScreen /> : null}
          {screen === "retention" ? <RetentionScreen /> : null}
          {screen === "settings" ? <SettingsScreen status={status} onStatusChanged={onStatusChanged} /> : null}
          {screen === "team" ? <TeamScreen onOpenSync={() => setScreen("sync")} /> : null}
          {screen === "sync" ? <SyncScreen /> : null}
          <ProgressPanel />
        </div>
      </div>
    </ProgressProvider>
  );
}

/** Top level: first run, unlock, or the unlocked app; every lock unmounts the unlocked tree. */
export default function App() {
  const [state, dispatch] = useReducer(sessionReducer, { phase: { kind: "loading" }, session: 0 });
  const [status, setStatus] = useState<VaultStatus | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [rememberError, setRememberError] = useState<AppError | null>(null);

  const refresh = useCallback(async (initial: boolean) => {
    const r = await vaultStatus();
    if (r.ok) {
      setStatus(r.value);
      setError(null);
      if (initial) {
        dispatch({
          type: "status",
          exists: r.value.exists,
          unlocked: r.value.unlocked,
          recoveryPending: r.value.recoveryConfirmationPending,
        });
      }
    } else if (initial) {
      setError(r.error);
    }
  }, []);

  useEffect(() => {
    void refresh(true);
  }, [refresh]);

  const locked = useCallback((reason: "user" | "idle" | "expired") => {
    lockCleanup();
    dispatch({ type: "locked", reason });
  }, []);

  useEffect(() => {
    setLockedHandler(() => locked("expired"));
    const unlisten = onVaultLocked(() => locked("idle"));
    return () => {
      setLockedHandler(null);
      void unlisten.then((f) => f());
    };
  }, [locked]);

  const unlocked = state.phase.kind === "unlocked";
  const pinger = useMemo(() => createActivityPinger(() => void activityPing()), []);
  useEffect(() => {
    if (!unlocked) return;
    const events = ["keydown", "pointerdown", "wheel"] as const;
    for (const e of events) window.addEventListener(e, pinger, { passive: true });
    return () => {
      for (const e of events) window.removeEventListener(e, pinger);
    };
  }, [unlocked, pinger]);

  const lockNow = useCallback(async () => {
    // Clear the UI first: even if the command fails, nothing sensitive stays on screen.
    locked("user");
    await vaultLock();
    void refresh(false);
  }, [locked, refresh]);

  const phase = state.phase;
  if (error && phase.kind === "loading") {
    return (
      <main className="auth" data-testid="screen-error">
        <div className="auth__card">
          <h1 className="auth__title">LabVault could not start</h1>
          <ErrorBanner error={error} />
          <button type="button" className="button" onClick={() => void refresh(true)}>
            Try again
          </button>
        </div>
      </main>
    );
  }
  switch (phase.kind) {
    case "loading":
      return (
        <main className="auth">
          <Spinner label="Looking for your vault…" />
        </main>
      );
    case "first-run":
      return (
        <FirstRun
          status={status}
          onCreated={(result) => {
            setStatus(result.status);
            setRememberError(result.rememberError ? toAppError(result.rememberError) : null);
            dispatch({ type: "created", remember: result.remembered });
          }}
        />
      );
    case "recovery":
      return (
        <RecoveryConfirm
          rememberError={rememberError}
          onConfirmed={() => {
            dispatch({ type: "recovery-confirmed" });
            void refresh(false);
          }}
        />
      );
    case "locked":
      return (
        <Unlock
          status={status}
          reason={phase.reason}
          onUnlocked={() => {
            dispatch({ type: "unlocked" });
            void refresh(false);
          }}
        />
      );
    case "unlocked":
      return (
        <MainShell key={phase.session} status={status} onLock={() => void lockNow()} onStatusChanged={() => void refresh(false)} />
      );
  }
}
