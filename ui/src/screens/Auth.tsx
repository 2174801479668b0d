import { useMemo, useState, type FormEvent } from "react";
import {
  vaultConfirmRecovery,
  vaultCreate,
  vaultShowRecovery,
  vaultUnlock,
  vaultUnlockKeyring,
  vaultUnlockRecovery,
} from "../api";
import { ErrorBanner, Field, StrengthMeter } from "../components/common";
import { errorText, type AppError } from "../errors";
import { MIN_ACCEPTED_SCORE, estimateStrength } from "../lib/strength";
import type { CreateResult, VaultStatus } from "../types";

function AuthCard({ testId, title, intro, children }: { testId: string; title: string; intro: string; children: React.ReactNode }) {
  return (
    <main className="auth" data-testid={testId}>
      <div className="auth__card">
        <div className="auth__brand">
          <img src="/icon.png" alt="" width={40} height={40} />
          <span>LabVault</span>
        </div>
        <h1 className="auth__title">{title}</h1>
        <p className="auth__intro">{intro}</p>
        {children}
      </div>
    </main>
  );
}

/** First run: choose a passphrase (with strength feedback), opt in to the keyring, create. */
export function FirstRun({ status, onCreated }: { status: VaultStatus | null; onCreated: (result: CreateResult) => void }) {
  const [passphrase, setPassphrase] = useState("");
  const [confirm, setConfirm] = useState("");
  const [remember, setRemember] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const strength = useMemo(() => estimateStrength(passphrase), [passphrase]);
  const mismatch = confirm.length > 0 && confirm !== passphrase;
  const canSubmit = strength.score >= MIN_ACCEPTED_SCORE && passphrase === confirm && !busy;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!canSubmit) return;
    setBusy(true);
    setError(null);
    const r = await vaultCreate(passphrase, remember);
    setBusy(false);
    if (r.ok) {
      setPassphrase("");
      setConfirm("");
      onCreated(r.value);
    } else setError(r.error);
  };

  return (
    <AuthCard
      testId="screen-first-run"
      title="Create your vault"
      intro="Your research data is encrypted with a key protected by this passphrase. Nobody, including LabVault, can recover it without the passphrase or the recovery key."
    >
      <form className="form" onSubmit={submit} noValidate>
        <Field label="Passphrase" htmlFor="create-passphrase">
          <input
            id="create-passphrase"
            data-testid="create-passphrase"
            type="password"
            autoComplete="new-password"
            value={passphrase}
            onChange={(e) => setPassphrase(e.target.value)}
            aria-describedby="create-strength"
            autoFocus
          />
        </Field>
        <StrengthMeter strength={strength} id="create-strength" />
        <Field label="Confirm passphrase" htmlFor="create-confirm" error={mismatch ? "The passphrases do not match." : null}>
          <input
            id="create-confirm"
            data-testid="create-confirm"
            type="password"
            autoComplete="new-password"
            value={confirm}
            onChange={(e) => setConfirm(e.target.value)}
            aria-invalid={mismatch}
          />
        </Field>
        <label className="check">
          <input
            type="checkbox"
            data-testid="create-remember"
            checked={remember}
            disabled={status ? !status.keyringAvailable : false}
            onChange={(e) => setRemember(e.target.checked)}
          />
          <span>
            Remember on this device
            <span className="check__hint">
              {status && !status.keyringAvailable
                ? "The system keyring is not available, so this device cannot remember the vault."
                : "Stores the vault key in the system keyring so you can unlock without typing the passphrase."}
            </span>
          </span>
        </label>
        <ErrorBanner error={error} testId="create-error" />
        <div className="form__actions">
          <button type="submit" className="button button--primary" data-testid="create-submit" disabled={!canSubmit}>
            {busy ? "Creating vault…" : "Create vault"}
          </button>
        </div>
        {strength.score < MIN_ACCEPTED_SCORE && passphrase.length > 0 ? (
          <p className="muted small">The passphrase needs to be rated at least “Strong”.</p>
        ) : null}
      </form>
    </AuthCard>
  );
}

/**
 * After creation the recovery key is shown once, in a native dialog owned by the Rust side (it never
 * enters the webview). Here the user proves they saved it by typing its last group back.
 */
export function RecoveryConfirm({ onConfirmed, rememberError }: { onConfirmed: () => void; rememberError?: AppError | null }) {
  const [group, setGroup] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!group.trim()) return;
    setBusy(true);
    setError(null);
    const r = await vaultConfirmRecovery(group.trim());
    setBusy(false);
    if (r.ok) onConfirmed();
    else setError(r.error);
  };
  return (
    <AuthCard
      testId="screen-first-run"
      title="Save your recovery key"
      intro="Your recovery key was shown in a separate window. Write it down or store it in a password manager: it is the only way back in if you forget the passphrase. It will not be shown again."
    >
      <form className="form" onSubmit={submit}>
        <Field label="Type the last group of the recovery key" htmlFor="recovery-last-group" hint="The characters after the last dash, to confirm you saved it.">
          <input
            id="recovery-last-group"
            data-testid="recovery-last-group"
            type="text"
            autoComplete="off"
            spellCheck={false}
            value={group}
            onChange={(e) => setGroup(e.target.value)}
            autoFocus
          />
        </Field>
        <ErrorBanner error={error} testId="recovery-error" />
        {rememberError ? (
          <div className="banner banner--warn" role="status" data-code={rememberError.code}>
            This device could not remember the vault ({errorText(rememberError.code)}). You can turn it on later in Settings.
          </div>
        ) : null}
        <div className="form__actions">
          <button type="submit" className="button button--primary" data-testid="recovery-confirm" disabled={busy || !group.trim()}>
            {busy ? "Checking…" : "I saved it — continue"}
          </button>
          <button
            type="button"
            className="button"
            data-testid="recovery-show-again"
            disabled={busy}
            onClick={() => void vaultShowRecovery().then((r) => (r.ok ? undefined : setError(r.error)))}
          >
            Show the key again
          </button>
        </div>
      </form>
    </AuthCard>
  );
}

const LOCK_REASON: Record<string, string> = {
  start: "Enter your passphrase to open the vault.",
  user: "The vault is locked.",
  idle: "The vault locked itself after a period of inactivity.",
  expired: "The vault was locked. Unlock it to continue.",
};

/** Unlock with the passphrase, the OS keyring or the recovery key; errors shown by code. */
export function Unlock({
  status,
  reason,
  onUnlocked,
}: {
  status: VaultStatus | null;
  reason: string;
  onUnlocked: () => void;
}) {
  const [mode, setMode] = useState<"passphrase" | "recovery">("passphrase");
  const [secret, setSecret] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<AppError | null>(null);

  const finish = (r: Awaited<ReturnType<typeof vaultUnlock>>) => {
    setBusy(false);
    if (r.ok) {
      setSecret("");
      onUnlocked();
    } else {
      setError(r.error);
      // Start the next attempt from an empty field: nothing half-typed lingers in the DOM.
      if (["wrong_passphrase", "wrong_recovery_key", "invalid_recovery_key"].includes(r.error.code)) setSecret("");
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!secret || busy) return;
    setBusy(true);
    setError(null);
    finish(mode === "passphrase" ? await vaultUnlock(secret) : await vaultUnlockRecovery(secret.trim()));
  };

  const keyring = async () => {
    setBusy(true);
    setError(null);
    finish(await vaultUnlockKeyring());
  };

  const showKeyring = status ? status.rememberedOnDevice : false;

  return (
    <AuthCard testId="screen-unlock" title="Unlock LabVault" intro={LOCK_REASON[reason] ?? LOCK_REASON.start!}>
      <form className="form" onSubmit={submit}>
        {mode === "passphrase" ? (
          <Field label="Passphrase" htmlFor="unlock-passphrase">
            <input
              id="unlock-passphrase"
              data-testid="unlock-passphrase"
              type="password"
              autoComplete="current-password"
              value={secret}
              onChange={(e) => setSecret(e.target.value)}
              aria-invalid={error?.code === "wrong_passphrase"}
              autoFocus
            />
          </Field>
        ) : (
          <Field label="Recovery key" htmlFor="unlock-recovery-key" hint="The grouped code you saved when the vault was created.">
            <input
              id="unlock-recovery-key"
              data-testid="unlock-recovery-key"
              type="password"
              autoComplete="off"
              spellCheck={false}
              value={secret}
              onChange={(e) => setSecret(e.target.value)}
              autoFocus
            />
          </Field>
        )}
        <ErrorBanner error={error} testId="unlock-error" />
        <div className="form__actions">
          <button type="submit" className="button button--primary" data-testid="unlock-submit" disabled={busy || !secret}>
            {busy ? "Unlocking…" : "Unlock"}
          </button>
          {showKeyring ? (
            <button type="button" className="button" data-testid="unlock-keyring" disabled={busy} onClick={() => void keyring()}>
              Unlock with system keyring
            </button>
          ) : null}
        </div>
        <button
          type="button"
          className="link-button"
          data-testid="unlock-recovery-toggle"
          onClick={() => {
            setMode(mode === "passphrase" ? "recovery" : "passphrase");
            setSecret("");
            setError(null);
          }}
        >
          {mode === "passphrase" ? "Forgot the passphrase? Use the recovery key" : "Use the passphrase instead"}
        </button>
        {status ? (
          <p className="muted small">
            Vault: <code>{status.path}</code>
          </p>
        ) : null}
      </form>
    </AuthCard>
  );
}
