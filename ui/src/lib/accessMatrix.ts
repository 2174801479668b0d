import type { Team, TeamAccess, TeamMember, TeamProject } from "../bindings";

/** One row of the access review: a member and their explicit access per project (by id). */
export interface MatrixRow {
  member: TeamMember;
  /** Per-project roles and signed memberships; see {@link cellOf} for the full cell. */
  cells: Map<string, TeamAccess>;
  /** Why this row needs the reviewer's attention (empty when it does not). */
  attention: string[];
}

/**
 * A member's access to a project: explicit (a per-project role, a signed membership) or, for a
 * project without a membership log, their lab role (the shell sends only explicit cells).
 */
export function cellOf(row: MatrixRow, project: TeamProject): TeamAccess | undefined {
  const explicit = row.cells.get(project.id);
  if (explicit || project.shared) return explicit;
  return { userId: row.member.userId, projectId: project.id, role: row.member.tenantRole, source: "tenant", safetyNumber: null };
}

/** The label of a project column: its name in this vault, else a short form of its id. */
export function projectLabel(p: TeamProject): string {
  return p.name ?? `Project ${p.id.slice(0, 8)}…`;
}

/** Why a member needs attention: stale access that still reaches data, an admin without MFA. */
export function attentionOf(member: TeamMember, accessCount: number): string[] {
  const out: string[] = [];
  if (member.stale && (accessCount > 0 || member.tenantRole !== "viewer")) out.push("stale");
  if (member.adminWithoutMfa) out.push("admin without MFA");
  return out;
}

/** The matrix rows: members sorted by attention first, then email. */
export function buildMatrix(team: Team): MatrixRow[] {
  const byUser = new Map<string, Map<string, TeamAccess>>();
  for (const a of team.access) {
    let m = byUser.get(a.userId);
    if (!m) byUser.set(a.userId, (m = new Map()));
    m.set(a.projectId, a);
  }
  const byLabRole = team.projects.filter((p) => !p.shared).length;
  const rows = team.members.map((member) => {
    const cells = byUser.get(member.userId) ?? new Map<string, TeamAccess>();
    return { member, cells, attention: attentionOf(member, cells.size + byLabRole) };
  });
  rows.sort((a, b) => Number(b.attention.length > 0) - Number(a.attention.length > 0) || a.member.email.localeCompare(b.member.email));
  return rows;
}

/** Rows after the "needs attention" filter and a text search over email and role. */
export function filterRows(rows: MatrixRow[], onlyAttention: boolean, query: string): MatrixRow[] {
  const q = query.trim().toLowerCase();
  return rows.filter(
    (r) => (!onlyAttention || r.attention.length > 0) && (!q || r.member.email.toLowerCase().includes(q) || r.member.tenantRole.includes(q)),
  );
}

/** Where a cell's role comes from, for people. */
export function sourceLabel(source: string): string {
  switch (source) {
    case "tenant":
      return "from their lab role";
    case "project":
      return "set for this project";
    case "membership_log":
      return "signed project membership";
    default:
      return source;
  }
}

/** Roles a project cell can be set to (Owner is a lab role, not a project role). */
export const PROJECT_ROLES = ["viewer", "editor", "admin"] as const;
/** Roles of the lab (tenant). */
export const TENANT_ROLES = ["viewer", "editor", "admin", "owner"] as const;

/** One line of the review's sign-off record, as the audit trail will show it. */
export function describeChange(kind: "role" | "remove" | "tenant-role" | "remove-member" | "reset-mfa", email: string, where: string | null, role?: string): string {
  const at = where ? ` on ${where}` : "";
  switch (kind) {
    case "role":
      return `set ${email}${at} to ${role}`;
    case "remove":
      return `removed ${email}'s own access${at}`;
    case "tenant-role":
      return `changed ${email}'s lab role to ${role}`;
    case "remove-member":
      return `removed ${email} from the lab`;
    case "reset-mfa":
      return `reset ${email}'s two-factor authentication`;
  }
}
