import { useState, type FormEvent } from "react";
import type { BundleRequest } from "../bindings";
import { Field, Modal } from "./common";

type Seal = "none" | "passphrase" | "recipients";

/** The file name a bundle is saved under by default: `.tar`, or `.tar.age` when sealed. */
export function bundleFileName(project: string, sealed: boolean, today = new Date()): string {
  return `${project}-bundle-${today.toISOString().slice(0, 10)}.tar${sealed ? ".age" : ""}`;
}

/**
 * The options of a full project export: earlier versions, and sealing the bundle with age for an
 * archive (a passphrase typed twice, or the archive's `age1…` recipients). The passphrase goes to
 * the core with the export call and is not kept here after the dialog closes.
 */
export function ExportBundleDialog({ project, onClose, onSubmit }: { project: string; onClose: () => void; onSubmit: (options: BundleRequest) => void }) {
  const [allVersions, setAllVersions] = useState(false);
  const [seal, setSeal] = useState<Seal>("none");
  const [pass, setPass] = useState("");
  const [repeat, setRepeat] = useState("");
  const [recipients, setRecipients] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  // A change answers the problem shown: it goes until the next submit.
  const edit = (set: (v: string) => void) => (v: string) => {
    setProblem(null);
    set(v);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const options: BundleRequest = { allVersions, recipients: [] };
    if (seal === "passphrase") {
      if (pass.length < 8) return setProblem("Use a passphrase of at least 8 characters: the archive depends on it.");
      if (pass !== repeat) return setProblem("The two passphrases differ.");
      options.passphrase = pass;
    } else if (seal === "recipients") {
      const list = recipients
        .split(/[\s,]+/)
        .map((r) => r.trim())
        .filter((r) => r.length > 0);
      const bad = list.find((r) => !r.startsWith("age1"));
      if (list.length === 0) return setProblem("Give at least one age recipient (age1…).");
      if (bad) return setProblem(`${bad} is not an age recipient (they start with age1).`);
      options.recipients = list;
    }
    onSubmit(options);
  };
  return (
    <Modal title={`Export project: ${project}`} onClose={onClose} testId="bundle-dialog">
      <form className="form" onSubmit={submit}>
        <p className="muted">
          Every file under its name, a manifest with hashes, retention and holds, the project's audit trail and the lab's signed checkpoints, in one bundle that{" "}
          <code>labvault verify-bundle</code> checks anywhere. Unresolved conflict versions are always included.
        </p>
        <label className="check">
          <input type="checkbox" data-testid="bundle-all-versions" checked={allVersions} onChange={(e) => setAllVersions(e.target.checked)} />
          <span>
            Include earlier versions
            <span className="check__hint">Every version still kept, under versions/ in the bundle.</span>
          </span>
        </label>
        <fieldset className="form__group">
          <legend>Encryption</legend>
          {(
            [
              ["none", "None (a plain .tar)"],
              ["passphrase", "Passphrase (age, .tar.age)"],
              ["recipients", "Age recipients (.tar.age)"],
            ] as const
          ).map(([value, label]) => (
            <label className="check check--inline" key={value}>
              <input type="radio" name="bundle-seal" data-testid={`bundle-seal-${value}`} checked={seal === value} onChange={() => setSeal(value)} />
              {label}
            </label>
          ))}
        </fieldset>
        {seal === "passphrase" ? (
          <>
            <Field label="Passphrase" htmlFor="bundle-pass" hint="Anyone with it opens the bundle, with LabVault or with age -d.">
              <input id="bundle-pass" data-testid="bundle-pass" type="password" autoComplete="new-password" value={pass} onChange={(e) => edit(setPass)(e.target.value)} />
            </Field>
            <Field label="Repeat passphrase" htmlFor="bundle-pass2">
              <input id="bundle-pass2" data-testid="bundle-pass2" type="password" autoComplete="new-password" value={repeat} onChange={(e) => edit(setRepeat)(e.target.value)} />
            </Field>
          </>
        ) : null}
        {seal === "recipients" ? (
          <Field label="Recipients (age1…, one per line)" htmlFor="bundle-recipients" hint="The archive's public keys; only their identities open the bundle.">
            <textarea id="bundle-recipients" data-testid="bundle-recipients" rows={3} value={recipients} onChange={(e) => edit(setRecipients)(e.target.value)} />
          </Field>
        ) : null}
        {problem ? (
          <p className="banner banner--error" role="alert" data-testid="bundle-problem">
            {problem}
          </p>
        ) : null}
        <div className="form__actions">
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="bundle-submit">
            Choose where to save
          </button>
        </div>
      </form>
    </Modal>
  );
}
