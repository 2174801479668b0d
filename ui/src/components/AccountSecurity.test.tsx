import { afterEach, describe, expect, it } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { AccountSecurity } from "./AccountSecurity";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("AccountSecurity", () => {
  it("turns on two-factor authentication with a QR code, refuses a wrong code, shows the recovery codes once", async () => {
    let enrolled = false;
    const notices: string[] = [];
    mockIPC((cmd, args: any) => {
      switch (cmd) {
        case "account_info":
          return { email: "ann@lab.test", role: "editor", mfaEnrolled: enrolled };
        case "account_mfa_start":
          return { secret: "JBSWY3DPEHPK3PXPJBSWY3DP", qrCode: "data:image/svg+xml;base64,PHN2Zy8+" };
        case "account_mfa_confirm":
          if (args.code !== "123456") throw { code: "invalid_mfa_code", message: "MFA code wrong" };
          enrolled = true;
          return ["aaaa-bbbb", "cccc-dddd"];
        default:
          return null;
      }
    });
    render(<AccountSecurity onNotice={(m) => notices.push(m)} />);
    await waitFor(() => expect(screen.getByTestId("account-mfa").textContent).toContain("Off"));
    fireEvent.click(screen.getByTestId("account-mfa-start"));
    expect(((await screen.findByTestId("account-mfa-qr")) as HTMLImageElement).src).toContain("data:image/svg+xml");
    expect(screen.getByTestId("account-mfa-secret").textContent).toBe("JBSW Y3DP EHPK 3PXP JBSW Y3DP");

    fireEvent.change(screen.getByTestId("account-mfa-code"), { target: { value: "654321" } });
    fireEvent.click(screen.getByTestId("account-mfa-confirm"));
    await waitFor(() => expect(screen.getByTestId("account-mfa-error").dataset.code).toBe("invalid_mfa_code"));
    expect((screen.getByTestId("account-mfa-code") as HTMLInputElement).value).toBe("");

    fireEvent.change(screen.getByTestId("account-mfa-code"), { target: { value: "123456" } });
    fireEvent.click(screen.getByTestId("account-mfa-confirm"));
    const list = await screen.findByTestId("account-mfa-codes");
    expect(list.textContent).toContain("aaaa-bbbb");
    expect(screen.queryByTestId("account-mfa-secret")).toBeNull();
    fireEvent.click(screen.getByTestId("account-mfa-done"));
    // Closed: the codes are gone from the page, and the account says MFA is on.
    await waitFor(() => expect(screen.getByTestId("account-mfa").textContent).toBe("On"));
    expect(screen.queryByTestId("account-mfa-codes")).toBeNull();
    expect(screen.queryByTestId("account-mfa-start")).toBeNull();
    expect(notices[0]).toContain("Two-factor authentication is on");
  });

  it("changes the password: a mismatch blocks, a wrong current password is named, success counts sessions", async () => {
    const calls: any[] = [];
    const notices: string[] = [];
    mockIPC((cmd, args: any) => {
      if (cmd === "account_info") return { email: "ann@lab.test", role: "editor", mfaEnrolled: true };
      if (cmd === "account_change_password") {
        calls.push(args);
        if (args.currentPassword !== "Correct-Horse-9") throw { code: "invalid_credentials", message: "wrong password" };
        return 2;
      }
      return null;
    });
    render(<AccountSecurity onNotice={(m) => notices.push(m)} />);
    fireEvent.click(await screen.findByTestId("account-password"));
    fireEvent.change(screen.getByTestId("account-current"), { target: { value: "nope" } });
    fireEvent.change(screen.getByTestId("account-new"), { target: { value: "Newer-Horse-10" } });
    fireEvent.change(screen.getByTestId("account-again"), { target: { value: "Newer-Horse-1" } });
    expect((screen.getByTestId("account-password-submit") as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(screen.getByTestId("account-again"), { target: { value: "Newer-Horse-10" } });
    fireEvent.click(screen.getByTestId("account-password-submit"));
    await waitFor(() => expect(screen.getByTestId("account-password-error").dataset.code).toBe("invalid_credentials"));
    expect((screen.getByTestId("account-current") as HTMLInputElement).value).toBe("");
    fireEvent.change(screen.getByTestId("account-current"), { target: { value: "Correct-Horse-9" } });
    fireEvent.click(screen.getByTestId("account-password-submit"));
    await waitFor(() => expect(screen.queryByTestId("account-password-dialog")).toBeNull());
    expect(calls.at(-1)).toEqual({ currentPassword: "Correct-Horse-9", newPassword: "Newer-Horse-10" });
    expect(notices[0]).toContain("2 other session(s)");
  });
});
