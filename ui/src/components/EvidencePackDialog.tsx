import { useState, type FormEvent } from "react";
import { pickExportDir, projectEvidencePack } from "../api";
import type { AppError } from "../errors";
import type { EvidenceResult } from "../bindings";
import { ErrorBanner, Field, Modal } from "./common";

/** What a pack holds, in one line: files, the chain, and the controls by status. */
export function evidenceSummary(r: EvidenceResult): string {
  const order = ["covered", "partly", "not covered", "failing"];
  const controls = order
    .filter((k) => (r.controls[k] ?? 0) > 0)
    .map((k) => `${r.controls[k]} ${k}`)
    .join(", ");
  const chain = r.auditOk ? "the audit chain verifies" : "the audit chain does NOT verify";
  const tenant = r.withTenant ? "with the lab's access review" : "without the lab's access review (not signed in)";
  return `${r.files.length} files in ${r.path}: ${chain}; controls ${controls}; ${tenant}.`;
}

/**
 * The compliance evidence pack of a project: the user enters the purposes of the processing (the
 * one thing the pack cannot know) and chooses a folder; everything else is generated.
 */
export function EvidencePackDialog({ project, onClose, onDone }: { project: string; onClose: () => void; onDone: (summary: string) => void }) {
  const [purposes, setPurposes] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<AppError | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const dir = await pickExportDir();
    if (!dir.ok) return setError(dir.error);
    if (!dir.value) return;
    setBusy(true);
    const dest = `${dir.value.replace(/\/+$/, "")}/${project}-evidence-${new Date().toISOString().slice(0, 10)}`;
    const r = await projectEvidencePack(project, dest, purposes.split("\n"));
    setBusy(false);
    if (!r.ok) return setError(r.error);
    onDone(evidenceSummary(r.value));
  };
  return (
    <Modal title={`Evidence pack: ${project}`} onClose={onClose} testId="evidence-dialog">
      <form className="form" onSubmit={(e) => void submit(e)}>
        <ErrorBanner error={error} onDismiss={() => setError(null)} testId="evidence-error" />
        <p className="muted">
          A folder for a data protection officer or an auditor: the record of processing, audit, retention and access evidence, and a 21 CFR Part 11 / HIPAA controls
          matrix, every file with its SHA-256. It is generated from the vault (and the lab, when you are signed in); only the purposes come from you.
        </p>
        <Field label="Purposes of the processing (one per line)" htmlFor="evidence-purposes">
          <textarea id="evidence-purposes" data-testid="evidence-purposes" rows={3} value={purposes} onChange={(e) => setPurposes(e.target.value)} />
        </Field>
        <div className="form__actions">
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="evidence-submit" disabled={busy}>
            {busy ? "Generating…" : "Choose folder and generate"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
