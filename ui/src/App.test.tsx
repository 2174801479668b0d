import { afterEach, describe, expect, it } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import App from "./App";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("first screen", () => {
  it("says there is no vault yet, and where it looked", async () => {
    mockIPC((cmd) => {
      if (cmd === "vault_status") return { exists: false, path: "/home/ada/.local/share/labvault/vault" };
      throw new Error(`unexpected command ${cmd}`);
    });
    render(<App />);
    const status = await screen.findByText(/No vault yet at/);
    expect(status.textContent).toContain("/home/ada/.local/share/labvault/vault");
    expect(screen.getByTestId("vault-status").dataset.vaultExists).toBe("false");
  });

  it("reports a vault found at the default location", async () => {
    mockIPC(() => ({ exists: true, path: "/data/labvault/vault" }));
    render(<App />);
    const status = await screen.findByText(/Vault found at/);
    expect(status.textContent).toContain("/data/labvault/vault");
    expect(screen.queryByText(/No vault yet/)).toBeNull();
  });

  it("shows the error message and its code when the command fails, and retries", async () => {
    let calls = 0;
    mockIPC(() => {
      calls += 1;
      if (calls === 1) {
        return Promise.reject({ code: "not_found", message: "HOME is not set." });
      }
      return { exists: false, path: "/tmp/x/labvault/vault" };
    });
    render(<App />);
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("HOME is not set.");
    expect(alert.textContent).toContain("not_found");

    fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    await screen.findByText(/No vault yet at/);
    expect(calls).toBe(2);
  });
});
