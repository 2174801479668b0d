import { useEffect, useMemo, useState, type FormEvent } from "react";
import { settingsGet, settingsSet, vaultChangePassphrase, vaultSetRemember, vaultVerify } from "../api";
import { useProgress } from "../components/progress";
import { formatBytes } from "../lib/format";
import type { VerifyResult } from "../types";
import { ErrorBanner, Field, StrengthMeter } from "../components/common";
import type { AppError } from "../errors";
import { MIN_ACCEPTED_SCORE, estimateStrength } from "../lib/strength";
import type { Settings, VaultStatus } from "../types";

/** Validates the auto-lock minutes field: a whole number from 1 to 240. */
export function autoLockProblem(text: string): string | null {
  if (!/^\d+$/.test(text.trim())) return "Enter a whole number of minutes.";
  const n = Number(text);
  if (n < 1 || n > 240) return "Choose between 1 and 240 minutes.";
  return null;
}

/** Settings: passphrase, keyring, auto-lock, vault location, versions. */
export function SettingsScreen({ status, onStatusChanged }: { status: VaultStatus | null; onStatusChanged: () => void }) {
  const [settings, setSettings] = useState<Settings | null>(null);
  const [minutes, setMinutes] = useState("");
  const [vaultDir, setVaultDir] = useState("");
  const [error, setError] = useState<AppError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    void settingsGet().then((r) => {
      if (!r.ok) return setError(r.error);
      setSettings(r.value);
      setMinutes(String(r.value.autoLockMinutes));
      setVaultDir(r.value.vaultDir ?? "");
    });
  }, []);

  const minutesProblem = autoLockProblem(minutes);
  const saveGeneral = async (e: FormEvent) => {
    e.preventDefault();
    if (minutesProblem || !settings) return;
    const dirChanged = vaultDir.trim() !== (settings.vaultDir ?? "");
    const r = await settingsSet(Number(minutes), dirChanged ? vaultDir.trim() : null);
    if (!r.ok) return setError(r.error);
    if (r.value) setSettings(r.value);
    setError(null);
    setNotice(dirChanged ? "Saved. The new vault location is used the next time LabVault starts." : "Saved.");
    onStatusChanged();
  };

  const toggleRemember = async (remember: boolean) => {
    const r = await vaultSetRemember(remember);
    if (!r.ok) return setError(r.error);
    setError(null);
    setNotice(remember ? "This device now remembers the vault key in the system keyring." : "The vault key was removed from the system keyring.");
    onStatusChanged();
  };

  return (
    <div className="page" data-testid="screen-settings">
      <header className="page__header">
        <div>
          <h1 className="page__title">Settings</h1>
          <p className="muted">Security and storage of this vault on this device.</p>
        </div>
      </header>
      <ErrorBanner error={error} onDismiss={() => setError(null)} />
      {notice ? (
        <p className="banner banner--ok" role="status" data-testid="settings-notice">
          {notice}
        </p>
      ) : null}

      <div className="grid-2">
        <section className="card" aria-labelledby="set-general">
          <h2 id="set-general" className="card__title">
            Locking and storage
          </h2>
          <form className="form" onSubmit={saveGeneral}>
            <Field label="Lock automatically after (minutes of inactivity)" htmlFor="settings-auto-lock" error={minutes ? minutesProblem : null}>
              <input
                id="settings-auto-lock"
                data-testid="settings-auto-lock"
                type="number"
                min={1}
                max={240}
                inputMode="numeric"
                value={minutes}
                onChange={(e) => setMinutes(e.target.value)}
              />
            </Field>
            <Field label="Vault location" htmlFor="settings-vault-dir" hint="Moving the vault: close LabVault, move the folder, then set the new location here.">
              <input id="settings-vault-dir" data-testid="settings-vault-dir" value={vaultDir} onChange={(e) => setVaultDir(e.target.value)} spellCheck={false} />
            </Field>
            <div className="form__actions">
              <button type="submit" className="button button--primary" data-testid="settings-save" disabled={Boolean(minutesProblem) || !settings}>
                Save
              </button>
            </div>
          </form>
          <label className="check">
            <input
              type="checkbox"
              data-testid="settings-remember"
              checked={status?.rememberedOnDevice ?? false}
              disabled={!status || (!status.keyringAvailable && !status.rememberedOnDevice)}
              onChange={(e) => void toggleRemember(e.target.checked)}
            />
            <span>
              Remember on this device
              <span className="check__hint">
                {status && !status.keyringAvailable ? "The system keyring is not available." : "Unlock with the system keyring instead of typing the passphrase."}
              </span>
            </span>
          </label>
        </section>

        <ChangePassphrase onDone={() => setNotice("Passphrase changed. Use the new one from now on.")} />

        <VerifyCard />

        <section className="card" aria-labelledby="set-versions">
          <h2 id="set-versions" className="card__title">
            About
          </h2>
          <dl className="facts" data-testid="settings-versions">
            <dt>LabVault app</dt>
            <dd>{status?.appVersion ?? "–"}</dd>
            <dt>Vault core</dt>
            <dd>{status?.coreVersion ?? "–"}</dd>
            <dt>Vault</dt>
            <dd>
              <code>{status?.path ?? "–"}</code>
            </dd>
          </dl>
        </section>
      </div>
    </div>
  );
}

function ChangePassphrase({ onDone }: { onDone: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const strength = useMemo(() => estimateStrength(next), [next]);
  const mismatch = confirm.length > 0 && confirm !== next;
  const ok = current.length > 0 && strength.score >= MIN_ACCEPTED_SCORE && next === confirm && next !== current;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!ok) return;
    setBusy(true);
    const r = await vaultChangePassphrase(current, next);
    setBusy(false);
    if (!r.ok) return setError(r.error);
    setError(null);
    setCurrent("");
    setNext("");
    setConfirm("");
    onDone();
  };

  return (
    <section className="card" aria-labelledby="set-pass">
      <h2 id="set-pass" className="card__title">
        Change passphrase
      </h2>
      <form className="form" onSubmit={submit} data-testid="settings-change-passphrase">
        <Field label="Current passphrase" htmlFor="settings-current-passphrase">
          <input id="settings-current-passphrase" data-testid="settings-current-passphrase" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} />
        </Field>
        <Field label="New passphrase" htmlFor="settings-new-passphrase">
          <input id="settings-new-passphrase" data-testid="settings-new-passphrase" type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} />
        </Field>
        {next ? <StrengthMeter strength={strength} /> : null}
        <Field label="Confirm new passphrase" htmlFor="settings-confirm-passphrase" error={mismatch ? "The passphrases do not match." : null}>
          <input id="settings-confirm-passphrase" data-testid="settings-confirm-passphrase" type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
        </Field>
        <ErrorBanner error={error} onDismiss={() => setError(null)} testId="change-passphrase-error" />
        <div className="form__actions">
          <button type="submit" className="button button--primary" data-testid="settings-change-submit" disabled={busy || !ok}>
            {busy ? "Changing…" : "Change passphrase"}
          </button>
        </div>
      </form>
    </section>
  );
}

/** Re-reads and authenticates every stored blob, with progress; lists what is damaged. */
function VerifyCard() {
  const progress = useProgress();
  const [result, setResult] = useState<VerifyResult | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [running, setRunning] = useState(false);
  const run = async () => {
    setRunning(true);
    setError(null);
    const r = await progress.run(
      "verify",
      "Verifying the vault",
      (opId, cb) => vaultVerify(opId, cb),
      (v) => (v.ok ? `${v.blobsChecked.toLocaleString()} blobs verified, no problems.` : `${v.problems.length} problem(s) found.`),
    );
    setRunning(false);
    if (r.ok) setResult(r.value);
    else if (r.error.code !== "cancelled") setError(r.error);
  };
  return (
    <section className="card" aria-labelledby="set-verify">
      <h2 id="set-verify" className="card__title">
        Integrity
      </h2>
      <p className="muted small">Decrypts and authenticates every stored file version. Nothing is written.</p>
      <div className="form__actions">
        <button type="button" className="button" data-testid="settings-verify" disabled={running} onClick={() => void run()}>
          {running ? "Verifying…" : "Verify vault"}
        </button>
      </div>
      <ErrorBanner error={error} onDismiss={() => setError(null)} />
      {result ? (
        result.ok ? (
          <p className="banner banner--ok" role="status" data-testid="verify-result" data-ok="true">
            {result.blobsChecked.toLocaleString()} blobs ({formatBytes(result.bytesChecked)}) verified: no problems.
          </p>
        ) : (
          <div className="banner banner--error" role="alert" data-testid="verify-result" data-ok="false">
            <div className="banner__body">
              <p className="banner__headline">{result.problems.length} problem(s) found</p>
              <ul>
                {result.problems.slice(0, 50).map((p, i) => (
                  <li key={i} data-code={p.code}>
                    {p.project ? `${p.project} / ` : ""}
                    {p.path ?? p.itemId ?? "vault"}: {p.message}
                  </li>
                ))}
              </ul>
            </div>
          </div>
        )
      ) : null}
    </section>
  );
}
