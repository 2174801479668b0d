import { useEffect, useId, useRef, type ReactNode } from "react";
import { errorText, type AppError } from "../errors";
import type { Strength } from "../lib/strength";

/** An error shown by code: the human text for the code, then the specifics from Rust. */
export function ErrorBanner({
  error,
  onDismiss,
  testId = "error-banner",
}: {
  error: AppError | null;
  onDismiss?: () => void;
  testId?: string;
}) {
  if (!error) return null;
  const text = errorText(error.code);
  return (
    <div className="banner banner--error" role="alert" data-testid={testId} data-code={error.code}>
      <div className="banner__body">
        <p className="banner__headline">{text}</p>
        {error.message && error.message !== text ? <p className="banner__detail">{error.message}</p> : null}
      </div>
      {onDismiss ? (
        <button type="button" className="button button--quiet button--small" onClick={onDismiss} aria-label="Dismiss error">
          Dismiss
        </button>
      ) : null}
    </div>
  );
}

/**
 * A modal dialog on the native `<dialog>` element: focus stays inside, Escape closes, and the first
 * field gets focus. Forms inside submit with Enter.
 */
export function Modal({
  title,
  onClose,
  children,
  testId,
  wide = false,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  testId?: string;
  /** For side-by-side content (comparing two versions). */
  wide?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (typeof dialog.showModal === "function" && !dialog.open) dialog.showModal();
    else dialog.setAttribute("open", "");
    const first = dialog.querySelector<HTMLElement>("input, select, textarea, button:not(.modal__close)");
    first?.focus();
    return () => {
      if (typeof dialog.close === "function" && dialog.open) dialog.close();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      className={wide ? "modal modal--wide" : "modal"}
      aria-labelledby={titleId}
      data-testid={testId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          onClose();
        }
      }}
    >
      <div className="modal__header">
        <h2 id={titleId} className="modal__title">
          {title}
        </h2>
        <button type="button" className="modal__close" aria-label="Close dialog" onClick={onClose}>
          ×
        </button>
      </div>
      <div className="modal__body">{children}</div>
    </dialog>
  );
}

/** Passphrase strength as a five-step meter with the estimator's advice. */
export function StrengthMeter({ strength, id }: { strength: Strength; id?: string }) {
  return (
    <div className="strength" id={id} aria-live="polite" data-testid="strength-meter" data-score={strength.score}>
      <div className="strength__bar" role="meter" aria-label="Passphrase strength" aria-valuemin={0} aria-valuemax={4} aria-valuenow={strength.score} aria-valuetext={strength.label}>
        {[0, 1, 2, 3].map((i) => (
          <span key={i} className={`strength__seg${strength.score > i ? ` strength__seg--on strength__seg--s${strength.score}` : ""}`} />
        ))}
      </div>
      <p className="strength__label">{strength.label}</p>
      {strength.feedback.length > 0 ? (
        <ul className="strength__feedback">
          {strength.feedback.map((f) => (
            <li key={f}>{f}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Spinner({ label }: { label: string }) {
  return (
    <p className="muted spinner" role="status">
      <span className="spinner__dot" aria-hidden="true" /> {label}
    </p>
  );
}

/** A labelled field: label above, control, optional hint or error below. */
export function Field({
  label,
  htmlFor,
  hint,
  error,
  children,
}: {
  label: string;
  htmlFor: string;
  hint?: ReactNode;
  error?: string | null;
  children: ReactNode;
}) {
  return (
    <div className={`field${error ? " field--invalid" : ""}`}>
      <label className="field__label" htmlFor={htmlFor}>
        {label}
      </label>
      {children}
      {error ? (
        <p className="field__error" id={`${htmlFor}-error`}>
          {error}
        </p>
      ) : hint ? (
        <p className="field__hint" id={`${htmlFor}-hint`}>
          {hint}
        </p>
      ) : null}
    </div>
  );
}
