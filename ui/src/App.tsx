import { useCallback, useEffect, useState } from "react";
import { vaultStatus } from "./api";
import type { VaultStatus } from "./bindings/VaultStatus";
import type { AppError } from "./errors";

/** What the status panel is showing; exactly one of these at a time. */
export type StatusView =
  | { kind: "loading" }
  | { kind: "ready"; status: VaultStatus }
  | { kind: "error"; error: AppError };

/** Pure rendering of the vault status, so it can be tested without IPC. */
export function VaultStatusPanel({ view, onRefresh }: { view: StatusView; onRefresh: () => void }) {
  if (view.kind === "loading") {
    return (
      <p className="status status--muted" role="status" data-testid="vault-status">
        Looking for your vault…
      </p>
    );
  }
  if (view.kind === "error") {
    return (
      <div className="status status--error" role="alert" data-testid="vault-status">
        <p className="status__headline">The vault location could not be checked.</p>
        <p className="status__detail">{view.error.message}</p>
        <p className="status__code">
          Error code: <code>{view.error.code}</code>
        </p>
        <button type="button" className="button" onClick={onRefresh}>
          Try again
        </button>
      </div>
    );
  }
  const { exists, path } = view.status;
  return (
    <div
      className={exists ? "status status--found" : "status status--missing"}
      role="status"
      data-testid="vault-status"
      data-vault-exists={String(exists)}
    >
      <p className="status__headline">{exists ? "Vault found" : "No vault yet"}</p>
      <p className="status__detail">
        {exists ? "Vault found at " : "No vault yet at "}
        <code className="status__path" data-testid="vault-path">
          {path}
        </code>
      </p>
      <p className="status__hint">
        {exists
          ? "Your encrypted vault is in place. Unlocking and browsing it arrive in the next release."
          : "Create one with the command line for now: labvault init"}
      </p>
      <button type="button" className="button button--quiet" onClick={onRefresh}>
        Check again
      </button>
    </div>
  );
}

/** The first screen: product title and whether a vault exists at the default location. */
export default function App() {
  const [view, setView] = useState<StatusView>({ kind: "loading" });

  const refresh = useCallback(async () => {
    setView({ kind: "loading" });
    const result = await vaultStatus();
    setView(result.ok ? { kind: "ready", status: result.value } : { kind: "error", error: result.error });
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  return (
    <div className="shell">
      <header className="topbar">
        <img className="topbar__logo" src="/icon.png" alt="" width={32} height={32} />
        <h1 className="topbar__title">LabVault</h1>
        <span className="topbar__tagline">Secure workspace for research data</span>
      </header>
      <main className="content">
        <section className="panel" aria-labelledby="vault-heading">
          <h2 id="vault-heading" className="panel__title">
            Local vault
          </h2>
          <VaultStatusPanel view={view} onRefresh={() => void refresh()} />
        </section>
      </main>
    </div>
  );
}
