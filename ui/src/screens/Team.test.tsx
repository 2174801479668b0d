import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { TeamScreen } from "./Team";

beforeEach(() => {
  vi.spyOn(Element.prototype, "clientHeight", "get").mockReturnValue(600);
  vi.spyOn(Element.prototype, "clientWidth", "get").mockReturnValue(900);
  vi.spyOn(HTMLElement.prototype, "offsetHeight", "get").mockReturnValue(600);
  vi.spyOn(HTMLElement.prototype, "offsetWidth", "get").mockReturnValue(900);
  Element.prototype.scrollTo = function scrollTo() {} as typeof Element.prototype.scrollTo;
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});

const member = (email: string, over: object = {}) => ({
  userId: email.split("@")[0],
  email,
  tenantRole: "editor",
  lastActiveAt: "2026-12-01T00:00:00Z",
  mfaEnrolled: true,
  stale: false,
  adminWithoutMfa: false,
  ...over,
});

function team(annRole: string) {
  return {
    me: member("pi@lab.test", { tenantRole: "owner" }),
    manages: true,
    staleDays: 90,
    generatedAt: "2026-12-07T00:00:00Z",
    members: [member("pi@lab.test", { tenantRole: "owner" }), member("ann@lab.test", { stale: true })],
    projects: [{ id: "p1", name: "plankton", shared: false, epoch: null }],
    access: [
      { userId: "pi", projectId: "p1", role: "owner", source: "tenant" },
      { userId: "ann", projectId: "p1", role: annRole, source: annRole === "editor" ? "tenant" : "project" },
    ],
    invitations: [],
  };
}

describe("TeamScreen", () => {
  it("exports the review in the chosen format (the extension tells the Rust side which)", async () => {
    const calls: { cmd: string; args: any }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === "team_view") return team("editor");
      if (cmd === "pick_save_path") return `/home/pi/${(args as { defaultName: string }).defaultName}`;
      if (cmd === "access_review_export") return 2048;
      return null;
    });
    render(<TeamScreen onOpenSync={() => {}} />);
    fireEvent.change(await screen.findByTestId("team-export-format"), { target: { value: "xlsx" } });
    fireEvent.click(screen.getByTestId("team-export"));
    await waitFor(() => expect(calls.some((c) => c.cmd === "access_review_export")).toBe(true));
    const call = calls.find((c) => c.cmd === "access_review_export")!;
    expect(call.args.destPath).toMatch(/^\/home\/pi\/access-review-\d{4}-\d{2}-\d{2}\.xlsx$/);
    expect(call.args.staleDays).toBe(90);
  });

  it("asks for a step-up in place, repeats the same change, and signs the review off with it", async () => {
    const calls: { cmd: string; args: any }[] = [];
    let stepped = false;
    let annRole = "editor";
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === "team_view") return team(annRole);
      if (cmd === "team_set_project_role") {
        if (!stepped) throw { code: "mfa_required", message: "a recent MFA verification is required" };
        annRole = (args as { role: string }).role;
        return null;
      }
      if (cmd === "tenant_step_up") {
        if ((args as { code: string }).code !== "123456") throw { code: "invalid_mfa_code", message: "wrong code" };
        stepped = true;
        return null;
      }
      if (cmd === "access_review_sign_off") return null;
      return null;
    });
    render(<TeamScreen onOpenSync={() => {}} />);
    await waitFor(() => expect(screen.getAllByTestId("team-row")).toHaveLength(2));
    // Ann is stale: first row, counted as needing attention.
    expect(screen.getAllByTestId("team-row")[0]!.dataset.email).toBe("ann@lab.test");
    expect(screen.getByTestId("team-attention-count").textContent).toBe("1");

    const annCell = within(screen.getAllByTestId("team-row")[0]!).getByTestId("team-cell");
    expect(annCell.dataset.role).toBe("editor");
    fireEvent.click(annCell);
    fireEvent.change(await screen.findByTestId("team-cell-role"), { target: { value: "viewer" } });
    fireEvent.click(screen.getByTestId("team-cell-save"));

    // The tenant wants a step-up: a wrong code is shown in the prompt, the right one goes on.
    fireEvent.change(await screen.findByTestId("step-up-code"), { target: { value: "000000" } });
    fireEvent.click(screen.getByTestId("step-up-submit"));
    await waitFor(() => expect(screen.getByTestId("step-up-error").dataset.code).toBe("invalid_mfa_code"));
    fireEvent.change(screen.getByTestId("step-up-code"), { target: { value: "123456" } });
    fireEvent.click(screen.getByTestId("step-up-submit"));

    await waitFor(() => expect(screen.getByTestId("team-notice").textContent).toContain("set ann@lab.test on plankton to viewer"));
    const changes = calls.filter((c) => c.cmd === "team_set_project_role");
    expect(changes).toHaveLength(2);
    expect(changes[1]!.args).toEqual(changes[0]!.args);
    expect(changes[0]!.args).toMatchObject({ projectId: "p1", userId: "ann", role: "viewer" });
    await waitFor(() =>
      expect(within(screen.getAllByTestId("team-row")[0]!).getByTestId("team-cell").dataset.role).toBe("viewer"),
    );

    // "Needs attention" keeps only Ann.
    fireEvent.click(screen.getByTestId("team-attention-only"));
    expect(screen.getAllByTestId("team-row").map((r) => r.dataset.email)).toEqual(["ann@lab.test"]);

    fireEvent.click(screen.getByTestId("team-sign-off"));
    expect((await screen.findByTestId("team-sign-off-changes")).textContent).toContain("set ann@lab.test on plankton to viewer");
    fireEvent.change(screen.getByTestId("team-sign-off-note"), { target: { value: "Q4" } });
    fireEvent.click(screen.getByTestId("team-sign-off-submit"));
    await waitFor(() => expect(screen.getByTestId("team-notice").textContent).toContain("signed off"));
    const signOff = calls.find((c) => c.cmd === "access_review_sign_off")!;
    expect(signOff.args).toEqual({ staleDays: 90, changes: ["set ann@lab.test on plankton to viewer"], note: "Q4" });
  });

  it("a cancelled step-up changes nothing and says so", async () => {
    const calls: string[] = [];
    mockIPC((cmd) => {
      calls.push(cmd);
      if (cmd === "team_view") return team("editor");
      if (cmd === "team_set_tenant_role") throw { code: "mfa_required", message: "step up" };
      return null;
    });
    render(<TeamScreen onOpenSync={() => {}} />);
    await waitFor(() => expect(screen.getAllByTestId("team-row")).toHaveLength(2));
    fireEvent.click(within(screen.getAllByTestId("team-row")[0]!).getByTestId("team-member"));
    fireEvent.change(await screen.findByTestId("team-member-role"), { target: { value: "viewer" } });
    fireEvent.click(screen.getByTestId("team-member-save"));
    await screen.findByTestId("step-up-code");
    fireEvent.click(within(screen.getByTestId("step-up-dialog")).getByText("Cancel"));
    await waitFor(() => expect(screen.getByTestId("error-banner").dataset.code).toBe("cancelled"));
    expect(calls.filter((c) => c === "team_set_tenant_role")).toHaveLength(1);
    expect(calls).not.toContain("tenant_step_up");
  });

  it("invites with a role, shows the one-time token, and revokes a pending invitation", async () => {
    const calls: { cmd: string; args: any }[] = [];
    let invitations: any[] = [];
    mockIPC((cmd, args: any) => {
      calls.push({ cmd, args });
      if (cmd === "team_view") return { ...team("editor"), invitations };
      if (cmd === "team_invite") {
        invitations = [{ id: "inv1", email: args.email, role: args.role, expiresAt: "2026-12-10T00:00:00Z" }];
        return { id: "inv1", email: args.email, role: args.role, expiresAt: "2026-12-10T00:00:00Z", token: "lvi_secret_token" };
      }
      if (cmd === "team_revoke_invitation") {
        invitations = [];
        return null;
      }
      return null;
    });
    render(<TeamScreen onOpenSync={() => {}} />);
    fireEvent.click(await screen.findByTestId("team-invite"));
    fireEvent.change(await screen.findByTestId("team-invite-email"), { target: { value: "new@lab.test" } });
    fireEvent.change(screen.getByTestId("team-invite-role"), { target: { value: "editor" } });
    fireEvent.click(screen.getByTestId("team-invite-submit"));
    expect((await screen.findByTestId("team-invitation-token")).textContent).toBe("lvi_secret_token");
    expect(calls.find((c) => c.cmd === "team_invite")!.args).toEqual({ email: "new@lab.test", role: "editor", expiresInHours: 72 });
    fireEvent.click(within(screen.getByTestId("team-invited-dialog")).getByText("Done"));
    // The token is gone from the page once the dialog closes.
    await waitFor(() => expect(document.body.textContent).not.toContain("lvi_secret_token"));
    fireEvent.click(await screen.findByTestId("team-invitation-revoke"));
    await waitFor(() => expect(screen.queryByTestId("team-invitation")).toBeNull());
    expect(calls.find((c) => c.cmd === "team_revoke_invitation")!.args).toEqual({ id: "inv1" });
  });

  it("sends a signed-out person to Sync", async () => {
    mockIPC((cmd) => {
      if (cmd === "team_view") throw { code: "not_signed_in", message: "not signed in to https://lab" };
      return null;
    });
    const open = vi.fn();
    render(<TeamScreen onOpenSync={open} />);
    fireEvent.click(await screen.findByText(/Go to Sync to sign in/));
    expect(open).toHaveBeenCalled();
  });
});
