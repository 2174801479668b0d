import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import {
  accessReviewExport,
  accessReviewSignOff,
  pickSavePath,
  teamRemoveMember,
  teamRemoveProjectAccess,
  teamInvite,
  teamResetMfa,
  teamRevokeInvitation,
  teamSetProjectRole,
  teamSetTenantRole,
  teamView,
  type Result,
} from "../api";
import { ErrorBanner, Field, Modal, Spinner } from "../components/common";
import { useStepUp } from "../components/StepUp";
import type { AppError } from "../errors";
import {
  PROJECT_ROLES,
  TENANT_ROLES,
  buildMatrix,
  cellOf,
  describeChange,
  filterRows,
  projectLabel,
  sourceLabel,
  type MatrixRow,
} from "../lib/accessMatrix";
import { formatDate, formatDateTime, humanize } from "../lib/format";
import { withStepUp } from "../lib/stepUp";
import type { InvitationSent, Team, TeamAccess, TeamMember, TeamProject } from "../types";

const ROW_HEIGHT = 40;
const STALE_CHOICES = [30, 60, 90, 180, 365];

type Dialog =
  | { kind: "cell"; row: MatrixRow; project: TeamProject; access: TeamAccess | undefined }
  | { kind: "member"; member: TeamMember }
  | { kind: "sign-off" }
  | { kind: "invite" }
  | { kind: "invited"; sent: InvitationSent };

/**
 * Team and access review: for Owners and Admins the matrix of members × projects with what
 * needs attention, changes made in place (with a step-up when the lab asks for one), CSV export
 * and the review's sign-off; for everyone else their own access.
 */
export function TeamScreen({ onOpenSync }: { onOpenSync: () => void }) {
  const [staleDays, setStaleDays] = useState(90);
  const [team, setTeam] = useState<Team | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [onlyAttention, setOnlyAttention] = useState(false);
  const [query, setQuery] = useState("");
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const [changes, setChanges] = useState<string[]>([]);
  const [reload, setReload] = useState(0);
  const { prompt, dialog: stepUpDialog } = useStepUp();

  useEffect(() => {
    let live = true;
    void teamView(staleDays).then((r) => {
      if (!live) return;
      if (r.ok) {
        setTeam(r.value);
        setError(null);
      } else setError(r.error);
    });
    return () => {
      live = false;
    };
  }, [staleDays, reload]);

  const rows = useMemo(() => (team ? buildMatrix(team) : []), [team]);
  const shown = useMemo(() => filterRows(rows, onlyAttention, query), [rows, onlyAttention, query]);

  /** Runs an admin action (stepping up when asked), records it for the sign-off, reloads. */
  const act = useCallback(
    async (action: () => Promise<Result<unknown>>, change: string): Promise<boolean> => {
      const r = await withStepUp(action, prompt);
      if (!r.ok) {
        setError(r.error);
        return false;
      }
      setChanges((c) => [...c, change]);
      setNotice(`Done: ${change}.`);
      setError(null);
      setReload((n) => n + 1);
      return true;
    },
    [prompt],
  );

  const [exportFormat, setExportFormat] = useState<"csv" | "xlsx" | "json">("csv");
  const exportReview = async () => {
    // The extension chooses the format on the Rust side (CSV, Excel or JSON).
    const path = await pickSavePath(`access-review-${new Date().toISOString().slice(0, 10)}.${exportFormat}`);
    if (!path.ok) return setError(path.error);
    if (!path.value) return;
    const r = await accessReviewExport(path.value, staleDays);
    if (r.ok) setNotice(`Access review written to ${path.value}.`);
    else setError(r.error);
  };

  const notSignedIn = error && (error.code === "not_signed_in" || error.code === "no_remote");
  return (
    <div className="page" data-testid="screen-team">
      <header className="page__header">
        <div>
          <h1 className="page__title">Team</h1>
          <p className="muted">Who has which role on which project, what needs a look, and changes to it.</p>
        </div>
        {team?.manages ? (
          <div className="toolbar">
            <label htmlFor="team-stale" className="small muted">
              Stale after
            </label>
            <select id="team-stale" data-testid="team-stale" value={staleDays} onChange={(e) => setStaleDays(Number(e.target.value))}>
              {STALE_CHOICES.map((d) => (
                <option key={d} value={d}>
                  {d} days
                </option>
              ))}
            </select>
            <label htmlFor="team-export-format" className="sr-only">
              Export format
            </label>
            <select id="team-export-format" data-testid="team-export-format" value={exportFormat} onChange={(e) => setExportFormat(e.target.value as "csv" | "xlsx" | "json")}>
              <option value="csv">CSV</option>
              <option value="xlsx">Excel</option>
              <option value="json">JSON</option>
            </select>
            <button type="button" className="button" data-testid="team-export" onClick={() => void exportReview()}>
              Export…
            </button>
            <button type="button" className="button button--primary" data-testid="team-sign-off" onClick={() => setDialog({ kind: "sign-off" })}>
              Sign off review{changes.length ? ` (${changes.length} change${changes.length === 1 ? "" : "s"})` : ""}…
            </button>
          </div>
        ) : null}
      </header>
      {notSignedIn ? (
        <section className="card" data-testid="team-signed-out">
          <p>{error.code === "no_remote" ? "This vault is not connected to your lab yet." : "You are not signed in to your lab."}</p>
          <div>
            <button type="button" className="button button--primary" onClick={onOpenSync}>
              Go to Sync to {error.code === "no_remote" ? "connect" : "sign in"}
            </button>
          </div>
        </section>
      ) : (
        <ErrorBanner error={error} onDismiss={() => setError(null)} />
      )}
      {notice ? (
        <p className="banner banner--ok" role="status" data-testid="team-notice">
          {notice}
        </p>
      ) : null}
      {!team && !error ? <Spinner label="Asking the lab server…" /> : null}
      {team && !team.manages ? <OwnAccess team={team} /> : null}
      {team?.manages ? (
        <>
          <ReviewSummary team={team} rows={rows} />
          <section className="card" aria-labelledby="team-matrix-title">
            <div className="card__head">
              <h2 id="team-matrix-title" className="card__title">
                Access review
              </h2>
              <div className="toolbar">
                <label className="check check--inline">
                  <input type="checkbox" data-testid="team-attention-only" checked={onlyAttention} onChange={(e) => setOnlyAttention(e.target.checked)} />
                  Needs attention only
                </label>
                <label htmlFor="team-search" className="sr-only">
                  Search members
                </label>
                <input id="team-search" type="search" placeholder="Search email or role" value={query} onChange={(e) => setQuery(e.target.value)} />
              </div>
            </div>
            <Matrix
              projects={team.projects}
              rows={shown}
              onCell={(row, project, access) => setDialog({ kind: "cell", row, project, access })}
              onMember={(member) => setDialog({ kind: "member", member })}
            />
            <p className="small muted">
              Computed by the lab server {formatDateTime(team.generatedAt)}. Project names come from this vault; the server only knows ids. Projects with
              signed membership change through signed entries, which every member's LabVault checks.
            </p>
          </section>
          <section className="card" aria-labelledby="team-invites">
            <div className="card__head">
              <h2 id="team-invites" className="card__title">
                Invitations
              </h2>
              <button type="button" className="button" data-testid="team-invite" onClick={() => setDialog({ kind: "invite" })}>
                Invite…
              </button>
            </div>
            {team.invitations.length ? (
              <table className="table" data-testid="team-invitations">
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col">Expires</th>
                    <th scope="col" />
                  </tr>
                </thead>
                <tbody>
                  {team.invitations.map((i) => (
                    <tr key={i.id} data-testid="team-invitation" data-email={i.email}>
                      <td>{i.email}</td>
                      <td>{humanize(i.role)}</td>
                      <td>{formatDateTime(i.expiresAt)}</td>
                      <td>
                        <button
                          type="button"
                          className="link-button link-button--danger"
                          data-testid="team-invitation-revoke"
                          onClick={() => void act(() => teamRevokeInvitation(i.id), `revoked the invitation of ${i.email}`)}
                        >
                          Revoke
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <p className="muted">No pending invitations.</p>
            )}
          </section>
        </>
      ) : null}

      {dialog?.kind === "cell" ? (
        <CellDialog
          dialog={dialog}
          onClose={() => setDialog(null)}
          onSetRole={async (role) => {
            const { row, project } = dialog;
            const ok = await act(
              () => teamSetProjectRole(project.id, row.member.userId, role),
              describeChange("role", row.member.email, projectLabel(project), role),
            );
            if (ok) setDialog(null);
          }}
          onRemove={async () => {
            const { row, project } = dialog;
            const ok = await act(
              () => teamRemoveProjectAccess(project.id, row.member.userId),
              describeChange("remove", row.member.email, projectLabel(project)),
            );
            if (ok) setDialog(null);
          }}
        />
      ) : null}
      {dialog?.kind === "member" ? (
        <MemberDialog
          member={dialog.member}
          isMe={dialog.member.userId === team?.me.userId}
          onClose={() => setDialog(null)}
          onSetRole={async (role) => {
            const m = dialog.member;
            if (await act(() => teamSetTenantRole(m.userId, role), describeChange("tenant-role", m.email, null, role))) setDialog(null);
          }}
          onResetMfa={async () => {
            const m = dialog.member;
            if (await act(() => teamResetMfa(m.userId), describeChange("reset-mfa", m.email, null))) setDialog(null);
          }}
          onRemove={async () => {
            const m = dialog.member;
            if (await act(() => teamRemoveMember(m.userId), describeChange("remove-member", m.email, null))) setDialog(null);
          }}
        />
      ) : null}
      {dialog?.kind === "sign-off" ? (
        <SignOffDialog
          changes={changes}
          staleDays={staleDays}
          onClose={() => setDialog(null)}
          onSubmit={async (note) => {
            const r = await accessReviewSignOff(staleDays, changes, note || null);
            if (!r.ok) return setError(r.error);
            setDialog(null);
            setChanges([]);
            setNotice("Review signed off: it is in the lab's audit trail with your name, the time and the changes.");
          }}
        />
      ) : null}
      {dialog?.kind === "invite" ? (
        <InviteDialog
          onClose={() => setDialog(null)}
          onSubmit={async (email, role, hours) => {
            const r = await withStepUp(() => teamInvite(email, role, hours), prompt);
            if (!r.ok) return setError(r.error);
            setChanges((c) => [...c, `invited ${r.value.email} as ${r.value.role}`]);
            setReload((n) => n + 1);
            setDialog({ kind: "invited", sent: r.value });
          }}
        />
      ) : null}
      {dialog?.kind === "invited" ? (
        <Modal title="Invitation created" onClose={() => setDialog(null)} testId="team-invited-dialog">
          <p>
            Give this one-time code to {dialog.sent.email} through a channel you trust (in person, your lab chat). It is shown only now and
            expires {formatDateTime(dialog.sent.expiresAt)}. They accept it when they create their LabVault account.
          </p>
          <p className="pairing-code" data-testid="team-invitation-token">
            {dialog.sent.token}
          </p>
          <div className="form__actions">
            <button type="button" className="button button--primary" onClick={() => setDialog(null)}>
              Done
            </button>
          </div>
        </Modal>
      ) : null}
      {stepUpDialog}
    </div>
  );
}

function InviteDialog({ onClose, onSubmit }: { onClose: () => void; onSubmit: (email: string, role: string, hours: number) => Promise<void> }) {
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("viewer");
  const [hours, setHours] = useState(72);
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Invite to the lab" onClose={onClose} testId="team-invite-dialog">
      <form
        className="form"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          setBusy(true);
          void onSubmit(email.trim(), role, hours).finally(() => setBusy(false));
        }}
      >
        <Field label="Email" htmlFor="team-invite-email">
          <input id="team-invite-email" data-testid="team-invite-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
        </Field>
        <Field label="Lab role" htmlFor="team-invite-role">
          <select id="team-invite-role" data-testid="team-invite-role" value={role} onChange={(e) => setRole(e.target.value)}>
            {TENANT_ROLES.filter((r) => r !== "owner").map((r) => (
              <option key={r} value={r}>
                {humanize(r)}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Valid for" htmlFor="team-invite-hours">
          <select id="team-invite-hours" value={hours} onChange={(e) => setHours(Number(e.target.value))}>
            <option value={24}>1 day</option>
            <option value={72}>3 days</option>
            <option value={168}>1 week</option>
            <option value={720}>30 days</option>
          </select>
        </Field>
        <div className="form__actions">
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="team-invite-submit" disabled={busy || !email.includes("@")}>
            Create invitation
          </button>
        </div>
      </form>
    </Modal>
  );
}

function ReviewSummary({ team, rows }: { team: Team; rows: MatrixRow[] }) {
  const attention = rows.filter((r) => r.attention.length > 0).length;
  const noMfa = team.members.filter((m) => m.adminWithoutMfa).length;
  const stale = team.members.filter((m) => m.stale).length;
  return (
    <dl className="team-stats" data-testid="team-stats">
      <div>
        <dt>Members</dt>
        <dd>{team.members.length.toLocaleString()}</dd>
      </div>
      <div>
        <dt>Projects</dt>
        <dd>{team.projects.length.toLocaleString()}</dd>
      </div>
      <div className={attention ? "team-stats--warn" : undefined}>
        <dt>Need attention</dt>
        <dd data-testid="team-attention-count">{attention.toLocaleString()}</dd>
      </div>
      <div className={stale ? "team-stats--warn" : undefined}>
        <dt>Stale ({team.staleDays} days)</dt>
        <dd>{stale.toLocaleString()}</dd>
      </div>
      <div className={noMfa ? "team-stats--warn" : undefined}>
        <dt>Admins without MFA</dt>
        <dd>{noMfa.toLocaleString()}</dd>
      </div>
    </dl>
  );
}

/** The matrix: rows virtualized (hundreds of members), columns scroll sideways. */
function Matrix({
  projects,
  rows,
  onCell,
  onMember,
}: {
  projects: TeamProject[];
  rows: MatrixRow[];
  onCell: (row: MatrixRow, project: TeamProject, access: TeamAccess | undefined) => void;
  onMember: (member: TeamMember) => void;
}) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 8,
    initialRect: { width: 900, height: 480 },
  });
  const columns = `minmax(300px, 340px) repeat(${projects.length}, 132px)`;
  return (
    <div ref={scrollRef} className="matrix" role="grid" aria-label="Members by project" aria-rowcount={rows.length + 1} data-testid="team-matrix" tabIndex={0}>
      <div className="matrix__row matrix__row--head" role="row" style={{ gridTemplateColumns: columns }}>
        <span role="columnheader" className="matrix__member">
          Member
        </span>
        {projects.map((p) => (
          <span role="columnheader" key={p.id} className="matrix__project" title={p.id} data-project-id={p.id}>
            {projectLabel(p)}
            {p.shared ? <span className="matrix__badge"> signed · key {p.epoch ?? 1}</span> : null}
          </span>
        ))}
      </div>
      {rows.length === 0 ? <p className="item-list__empty">Nobody matches.</p> : null}
      <div className="matrix__spacer" style={{ height: virtualizer.getTotalSize() }}>
        {virtualizer.getVirtualItems().map((v) => {
          const row = rows[v.index]!;
          const m = row.member;
          return (
            <div
              key={m.userId}
              className={`matrix__row${row.attention.length ? " matrix__row--attention" : ""}`}
              role="row"
              data-testid="team-row"
              data-email={m.email}
              style={{ gridTemplateColumns: columns, transform: `translateY(${v.start}px)` }}
            >
              <span role="rowheader" className="matrix__member">
                <button type="button" className="link-button" data-testid="team-member" onClick={() => onMember(m)}>
                  {m.email}
                </button>
                <span className="small muted matrix__meta">
                  {" "}
                  {humanize(m.tenantRole)} · {m.lastActiveAt ? `active ${formatDate(m.lastActiveAt)}` : "never active"}
                  {m.mfaEnrolled ? " · MFA" : ""}
                </span>
                {row.attention.map((a) => (
                  <span key={a} className="pill pill--failure matrix__flag">
                    {a}
                  </span>
                ))}
              </span>
              {projects.map((p) => {
                const a = cellOf(row, p);
                return (
                  <span role="gridcell" key={p.id} className="matrix__cell">
                    <button
                      type="button"
                      className={`matrix__role${a ? ` matrix__role--${a.role}` : " matrix__role--none"}`}
                      data-testid="team-cell"
                      data-project-id={p.id}
                      data-role={a?.role ?? "none"}
                      aria-label={`${m.email} on ${projectLabel(p)}: ${a ? `${a.role}, ${sourceLabel(a.source)}` : "no access"}`}
                      title={a ? sourceLabel(a.source) : "no access"}
                      onClick={() => onCell(row, p, a)}
                    >
                      {a ? humanize(a.role) : "—"}
                      {a?.source === "project" ? "*" : ""}
                    </button>
                  </span>
                );
              })}
            </div>
          );
        })}
      </div>
    </div>
  );
}

function CellDialog({
  dialog,
  onClose,
  onSetRole,
  onRemove,
}: {
  dialog: Extract<Dialog, { kind: "cell" }>;
  onClose: () => void;
  onSetRole: (role: string) => Promise<void>;
  onRemove: () => Promise<void>;
}) {
  const { row, project, access } = dialog;
  const [role, setRole] = useState<string>(access && access.role !== "owner" ? access.role : "viewer");
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    await f();
    setBusy(false);
  };
  const removable = access && access.source !== "tenant" && access.role !== "owner";
  return (
    <Modal title={`${row.member.email} on ${projectLabel(project)}`} onClose={onClose} testId="team-cell-dialog">
      <form
        className="form"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void run(() => onSetRole(role));
        }}
      >
        <p className="muted">
          {access ? `${humanize(access.role)}, ${sourceLabel(access.source)}.` : "No access to this project."}
          {project.shared
            ? " This project's members are kept in its signed membership log: a change is signed by you and checked by every member; removing someone rotates the project key."
            : access?.source === "tenant"
              ? " A project role overrides their lab role here."
              : ""}
        </p>
        {access?.safetyNumber ? (
          <p className="small" data-testid="team-safety-number">
            Safety number of their identity: <code>{access.safetyNumber}</code>. Compare it with theirs (Settings on their device, or `labvault
            fingerprint`) in person or by phone: a match shows the server did not substitute a key.
          </p>
        ) : null}
        <Field label="Role on this project" htmlFor="team-cell-role">
          <select id="team-cell-role" data-testid="team-cell-role" value={role} onChange={(e) => setRole(e.target.value)}>
            {PROJECT_ROLES.map((r) => (
              <option key={r} value={r}>
                {humanize(r)}
              </option>
            ))}
          </select>
        </Field>
        <div className="form__actions">
          {removable ? (
            <button type="button" className="button button--danger" data-testid="team-cell-remove" disabled={busy} onClick={() => void run(onRemove)}>
              {project.shared ? "Remove from project" : "Back to lab role"}
            </button>
          ) : null}
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="team-cell-save" disabled={busy || role === access?.role}>
            {busy ? "Saving…" : "Save"}
          </button>
        </div>
      </form>
    </Modal>
  );
}

function MemberDialog({
  member,
  isMe,
  onClose,
  onSetRole,
  onResetMfa,
  onRemove,
}: {
  member: TeamMember;
  isMe: boolean;
  onClose: () => void;
  onSetRole: (role: string) => Promise<void>;
  onResetMfa: () => Promise<void>;
  onRemove: () => Promise<void>;
}) {
  const [role, setRole] = useState(member.tenantRole);
  const [confirmRemove, setConfirmRemove] = useState(false);
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    await f();
    setBusy(false);
  };
  return (
    <Modal title={member.email} onClose={onClose} testId="team-member-dialog">
      <dl className="facts">
        <dt>Lab role</dt>
        <dd>{humanize(member.tenantRole)}</dd>
        <dt>Last active</dt>
        <dd>{member.lastActiveAt ? formatDateTime(member.lastActiveAt) : "Never"}</dd>
        <dt>Two-factor</dt>
        <dd>{member.mfaEnrolled ? "Enrolled" : "Not enrolled"}</dd>
      </dl>
      {isMe ? <p className="muted">This is you: your own role and membership are changed by another Owner.</p> : null}
      <form
        className="form"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void run(() => onSetRole(role));
        }}
      >
        <Field label="Lab role" htmlFor="team-member-role">
          <select id="team-member-role" data-testid="team-member-role" value={role} disabled={isMe} onChange={(e) => setRole(e.target.value)}>
            {TENANT_ROLES.map((r) => (
              <option key={r} value={r}>
                {humanize(r)}
              </option>
            ))}
          </select>
        </Field>
        <div className="form__actions">
          <button type="submit" className="button button--primary" data-testid="team-member-save" disabled={busy || isMe || role === member.tenantRole}>
            Save role
          </button>
        </div>
      </form>
      {!isMe ? (
        <div className="form__actions">
          {member.mfaEnrolled ? (
            <button type="button" className="button" data-testid="team-member-reset-mfa" disabled={busy} onClick={() => void run(onResetMfa)}>
              Reset two-factor
            </button>
          ) : null}
          {confirmRemove ? (
            <button type="button" className="button button--danger button--primary" data-testid="team-member-remove-confirm" disabled={busy} onClick={() => void run(onRemove)}>
              Remove {member.email} now
            </button>
          ) : (
            <button type="button" className="button button--danger" data-testid="team-member-remove" onClick={() => setConfirmRemove(true)}>
              Remove from lab…
            </button>
          )}
        </div>
      ) : null}
    </Modal>
  );
}

function SignOffDialog({
  changes,
  staleDays,
  onClose,
  onSubmit,
}: {
  changes: string[];
  staleDays: number;
  onClose: () => void;
  onSubmit: (note: string) => Promise<void>;
}) {
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Sign off this access review" onClose={onClose} testId="team-sign-off-dialog">
      <form
        className="form"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          setBusy(true);
          void onSubmit(note).finally(() => setBusy(false));
        }}
      >
        <p className="muted">
          Records in the lab's audit trail that you reviewed access today (stale after {staleDays} days), with the changes below.
        </p>
        {changes.length ? (
          <ul className="team-changes" data-testid="team-sign-off-changes">
            {changes.map((c, i) => (
              <li key={i}>{c}</li>
            ))}
          </ul>
        ) : (
          <p>No changes: everyone's access was found right.</p>
        )}
        <Field label="Note (optional)" htmlFor="team-sign-off-note">
          <textarea id="team-sign-off-note" data-testid="team-sign-off-note" rows={3} maxLength={2000} value={note} onChange={(e) => setNote(e.target.value)} />
        </Field>
        <div className="form__actions">
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button--primary" data-testid="team-sign-off-submit" disabled={busy}>
            Sign off
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** A member's own access, for people who do not manage the lab. */
function OwnAccess({ team }: { team: Team }) {
  const row = buildMatrix(team).find((r) => r.member.userId === team.me.userId);
  return (
    <section className="card" aria-labelledby="team-own" data-testid="team-own-access">
      <h2 id="team-own" className="card__title">
        Your access
      </h2>
      <p className="muted">
        {team.me.email}: {humanize(team.me.tenantRole)} in the lab. Owners and Admins review everyone's access.
      </p>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Project</th>
            <th scope="col">Role</th>
            <th scope="col">From</th>
          </tr>
        </thead>
        <tbody>
          {team.projects.map((p) => {
            const a = row ? cellOf(row, p) : undefined;
            return a ? (
              <tr key={p.id}>
                <td>{projectLabel(p)}</td>
                <td>{humanize(a.role)}</td>
                <td>{sourceLabel(a.source)}</td>
              </tr>
            ) : null;
          })}
        </tbody>
      </table>
    </section>
  );
}
