import { useCallback, useRef, useState, type FormEvent, type ReactNode } from "react";
import { tenantStepUp } from "../api";
import type { AppError } from "../errors";
import type { StepUpPrompt } from "../lib/stepUp";
import { ErrorBanner, Field, Modal } from "./common";

/**
 * The in-place step-up prompt: `prompt()` opens a dialog asking for the authenticator code,
 * verifies it with the tenant and resolves true, or false when the person cancels. Render
 * `dialog` once in the screen; the screen's own forms stay as they are underneath.
 */
export function useStepUp(): { prompt: StepUpPrompt; dialog: ReactNode } {
  const [open, setOpen] = useState(false);
  const resolver = useRef<((stepped: boolean) => void) | null>(null);
  const prompt = useCallback<StepUpPrompt>(
    () =>
      new Promise<boolean>((resolve) => {
        resolver.current?.(false);
        resolver.current = resolve;
        setOpen(true);
      }),
    [],
  );
  const finish = (stepped: boolean) => {
    setOpen(false);
    const r = resolver.current;
    resolver.current = null;
    r?.(stepped);
  };
  const dialog = open ? <StepUpDialog onDone={() => finish(true)} onCancel={() => finish(false)} /> : null;
  return { prompt, dialog };
}

function StepUpDialog({ onDone, onCancel }: { onDone: () => void; onCancel: () => void }) {
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!code.trim()) return;
    setBusy(true);
    const r = await tenantStepUp(code.trim());
    setBusy(false);
    if (r.ok) return onDone();
    setCode("");
    setError(r.error);
  };
  return (
    <Modal title="Confirm it is you" onClose={onCancel} testId="step-up-dialog">
      <form className="form" onSubmit={(e) => void submit(e)}>
        <p className="muted">
          Changing access needs a current code from your authenticator app. Your changes are kept; they are applied as soon as the code is
          accepted.
        </p>
        <ErrorBanner error={error} testId="step-up-error" />
        <Field label="Authenticator code (or a recovery code)" htmlFor="step-up-code">
          <input
            id="step-up-code"
            data-testid="step-up-code"
            autoComplete="one-time-code"
            inputMode="numeric"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            required
          />
        </Field>
        <div className="form__actions">
          <button type="button" className="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="step-up-submit" disabled={busy || !code.trim()}>
            {busy ? "Checking…" : "Confirm"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
