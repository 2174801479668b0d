import { describe, expect, it } from "vitest";
import type { Team, TeamMember } from "../bindings";
import { buildMatrix, cellOf, describeChange, filterRows, projectLabel } from "./accessMatrix";

function member(email: string, over: Partial<TeamMember> = {}): TeamMember {
  return {
    userId: email.split("@")[0]!,
    email,
    tenantRole: "editor",
    lastActiveAt: null,
    mfaEnrolled: true,
    stale: false,
    adminWithoutMfa: false,
    ...over,
  };
}

const team: Team = {
  me: member("pi@lab.test", { tenantRole: "owner" }),
  manages: true,
  staleDays: 90,
  generatedAt: "2026-12-07T00:00:00Z",
  members: [
    member("pi@lab.test", { tenantRole: "owner" }),
    member("zoe@lab.test", { stale: true }),
    member("adam@lab.test", { tenantRole: "admin", mfaEnrolled: false, adminWithoutMfa: true }),
    member("old@lab.test", { tenantRole: "viewer", stale: true }),
  ],
  projects: [
    { id: "p1", name: "plankton", shared: true, epoch: 2 },
    { id: "0123456789abcdef", name: null, shared: false, epoch: null },
  ],
  access: [
    { userId: "pi", projectId: "p1", role: "owner", source: "membership_log", safetyNumber: "12345 67890 12345 67890 12345 67890" },
    { userId: "zoe", projectId: "p1", role: "editor", source: "membership_log", safetyNumber: "12345 67890 12345 67890 12345 67890" },
    { userId: "adam", projectId: "0123456789abcdef", role: "admin", source: "tenant", safetyNumber: null },
  ],
  invitations: [],
};

describe("access matrix", () => {
  it("puts members that need attention first and says why", () => {
    const rows = buildMatrix(team);
    expect(rows.map((r) => r.member.email)).toEqual(["adam@lab.test", "old@lab.test", "zoe@lab.test", "pi@lab.test"]);
    expect(rows[0]!.attention).toEqual(["admin without MFA"]);
    // Stale, and the lab role still opens the project without a membership log.
    expect(rows[1]!.attention).toEqual(["stale"]);
    expect(rows[2]!.attention).toEqual(["stale"]);
    expect(rows[2]!.cells.get("p1")?.role).toBe("editor");
  });

  it("a stale member who reaches no project needs no attention", () => {
    const onlySigned = { ...team, projects: [team.projects[0]!] };
    const old = buildMatrix(onlySigned).find((r) => r.member.email === "old@lab.test")!;
    expect(old.attention).toEqual([]);
  });

  it("fills cells from the lab role only where no membership log rules", () => {
    const rows = buildMatrix(team);
    const zoe = rows.find((r) => r.member.email === "zoe@lab.test")!;
    const [signed, open] = team.projects as [(typeof team.projects)[0], (typeof team.projects)[0]];
    expect(cellOf(zoe, signed)).toMatchObject({ role: "editor", source: "membership_log" });
    expect(cellOf(zoe, open)).toMatchObject({ role: "editor", source: "tenant" });
    const old = rows.find((r) => r.member.email === "old@lab.test")!;
    expect(cellOf(old, signed)).toBeUndefined();
    expect(cellOf(old, open)).toMatchObject({ role: "viewer", source: "tenant" });
  });

  it("filters to what needs attention and by text", () => {
    const rows = buildMatrix(team);
    expect(filterRows(rows, true, "").map((r) => r.member.email)).toEqual(["adam@lab.test", "old@lab.test", "zoe@lab.test"]);
    expect(filterRows(rows, false, "ZOE").map((r) => r.member.email)).toEqual(["zoe@lab.test"]);
    expect(filterRows(rows, false, "owner").map((r) => r.member.email)).toEqual(["pi@lab.test"]);
  });

  it("labels projects this vault does not have by a short id", () => {
    expect(projectLabel(team.projects[0]!)).toBe("plankton");
    expect(projectLabel(team.projects[1]!)).toBe("Project 01234567…");
  });

  it("describes changes for the sign-off record", () => {
    expect(describeChange("role", "zoe@lab.test", "plankton", "viewer")).toBe("set zoe@lab.test on plankton to viewer");
    expect(describeChange("remove-member", "old@lab.test", null)).toBe("removed old@lab.test from the lab");
  });
});
