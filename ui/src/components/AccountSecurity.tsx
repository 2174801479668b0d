import { useEffect, useState, type FormEvent } from "react";
import { accountChangePassword, accountInfo, accountMfaConfirm, accountMfaStart } from "../api";
import type { AppError } from "../errors";
import type { AccountInfo, MfaEnrollment } from "../types";
import { ErrorBanner, Field, Modal } from "./common";

/** Lab passwords follow the server's policy; this only catches the obvious before a round trip. */
export const MIN_LAB_PASSWORD = 8;

/**
 * The lab account's security, under the signed-in account: two-factor authentication (turned
 * on with a QR code and recovery codes, each shown once and dropped from memory when the
 * dialog closes) and a password change.
 */
export function AccountSecurity({ onNotice }: { onNotice: (msg: string) => void }) {
  const [info, setInfo] = useState<AccountInfo | null>(null);
  const [offline, setOffline] = useState<AppError | null>(null);
  const [dialog, setDialog] = useState<"mfa" | "password" | null>(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    void accountInfo().then((r) => {
      if (r.ok) {
        setInfo(r.value);
        setOffline(null);
      } else setOffline(r.error);
    });
  }, [reload]);
  return (
    <div className="account-security" data-testid="account-security">
      <dl className="facts">
        <dt>Two-factor authentication</dt>
        <dd data-testid="account-mfa">
          {info ? (info.mfaEnrolled ? "On" : "Off: anyone with your password can sign in") : offline ? "Unknown while the lab's server cannot be reached" : "…"}
        </dd>
      </dl>
      <div className="toolbar">
        {info && !info.mfaEnrolled ? (
          <button type="button" className="button button--primary" data-testid="account-mfa-start" onClick={() => setDialog("mfa")}>
            Turn on two-factor authentication…
          </button>
        ) : null}
        <button type="button" className="button" data-testid="account-password" onClick={() => setDialog("password")}>
          Change lab password…
        </button>
      </div>
      {dialog === "mfa" ? (
        <MfaDialog
          onClose={(done) => {
            setDialog(null);
            if (done) {
              onNotice("Two-factor authentication is on. Signing in now asks for a code from your authenticator app.");
              setReload((n) => n + 1);
            }
          }}
        />
      ) : null}
      {dialog === "password" ? (
        <PasswordDialog
          onClose={(revoked) => {
            setDialog(null);
            if (revoked !== null)
              onNotice(
                revoked > 0
                  ? `Password changed. ${revoked} other session(s) of your account were signed out.`
                  : "Password changed. This device stays signed in.",
              );
          }}
        />
      ) : null}
    </div>
  );
}

function MfaDialog({ onClose }: { onClose: (done: boolean) => void }) {
  const [enrollment, setEnrollment] = useState<MfaEnrollment | null>(null);
  const [code, setCode] = useState("");
  const [codes, setCodes] = useState<string[] | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    void accountMfaStart().then((r) => (r.ok ? setEnrollment(r.value) : setError(r.error)));
  }, []);
  const confirm = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const r = await accountMfaConfirm(code.trim());
    setBusy(false);
    if (!r.ok) {
      setCode("");
      return setError(r.error);
    }
    setEnrollment(null);
    setCodes(r.value);
  };
  if (codes) {
    return (
      <Modal title="Save your recovery codes" onClose={() => onClose(true)} testId="account-mfa-codes-dialog">
        <p>
          Each code signs you in once if you lose your authenticator. They are shown only now: write them down or print them, and keep them apart from your
          computer.
        </p>
        <ol className="recovery-codes mono" data-testid="account-mfa-codes">
          {codes.map((c) => (
            <li key={c}>{c}</li>
          ))}
        </ol>
        <div className="form__actions">
          <button type="button" className="button button--primary" data-testid="account-mfa-done" onClick={() => onClose(true)}>
            I have saved them
          </button>
        </div>
      </Modal>
    );
  }
  return (
    <Modal title="Turn on two-factor authentication" onClose={() => onClose(false)} testId="account-mfa-dialog">
      <form className="form" onSubmit={(e) => void confirm(e)}>
        <ErrorBanner error={error} onDismiss={() => setError(null)} testId="account-mfa-error" />
        {enrollment ? (
          <>
            <p>Scan this code with an authenticator app (on your phone, for example), or type the key in.</p>
            <img className="qr-code" src={enrollment.qrCode} alt="QR code of the authenticator key" width={200} height={200} data-testid="account-mfa-qr" />
            <p className="mono small" data-testid="account-mfa-secret">
              {enrollment.secret.replace(/(.{4})/g, "$1 ").trim()}
            </p>
            <Field label="Code from the app" htmlFor="account-mfa-code" hint="The 6 digits it shows now; two-factor authentication is on once it matches.">
              <input
                id="account-mfa-code"
                data-testid="account-mfa-code"
                autoComplete="one-time-code"
                inputMode="numeric"
                value={code}
                onChange={(e) => setCode(e.target.value)}
                required
                pattern="[0-9 ]{6,7}"
              />
            </Field>
          </>
        ) : error ? null : (
          <p className="muted">Asking the lab's server for a key…</p>
        )}
        <div className="form__actions">
          <button type="button" className="button" onClick={() => onClose(false)}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="account-mfa-confirm" disabled={busy || !enrollment}>
            {busy ? "Checking…" : "Turn on"}
          </button>
        </div>
      </form>
    </Modal>
  );
}

function PasswordDialog({ onClose }: { onClose: (revoked: number | null) => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [error, setError] = useState<AppError | null>(null);
  const [busy, setBusy] = useState(false);
  const mismatch = again.length > 0 && again !== next;
  const short = next.length > 0 && next.length < MIN_LAB_PASSWORD;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (mismatch || short) return;
    setBusy(true);
    const r = await accountChangePassword(current, next);
    setBusy(false);
    if (!r.ok) {
      setCurrent("");
      return setError(r.error);
    }
    onClose(r.value);
  };
  return (
    <Modal title="Change lab password" onClose={() => onClose(null)} testId="account-password-dialog">
      <form className="form" onSubmit={(e) => void submit(e)}>
        <ErrorBanner error={error} onDismiss={() => setError(null)} testId="account-password-error" />
        <p className="small muted">This is your password for the lab's server, not your vault passphrase. Your other sessions are signed out.</p>
        <Field label="Current password" htmlFor="account-current">
          <input id="account-current" data-testid="account-current" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required />
        </Field>
        <Field label="New password" htmlFor="account-new" hint={`At least ${MIN_LAB_PASSWORD} characters; the lab's server checks its own rules too.`} error={short ? `At least ${MIN_LAB_PASSWORD} characters.` : undefined}>
          <input id="account-new" data-testid="account-new" type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} required />
        </Field>
        <Field label="New password again" htmlFor="account-again" error={mismatch ? "The two new passwords differ." : undefined}>
          <input id="account-again" data-testid="account-again" type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} required />
        </Field>
        <div className="form__actions">
          <button type="button" className="button" onClick={() => onClose(null)}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="account-password-submit" disabled={busy || mismatch || short}>
            {busy ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
