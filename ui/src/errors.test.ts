import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "./bindings/ErrorCode";
import { ERROR_TEXT, errorText, toAppError } from "./errors";

describe("toAppError", () => {
  it("keeps a command error's code and message", () => {
    expect(toAppError({ code: "wrong_passphrase", message: "Wrong passphrase." })).toEqual({
      code: "wrong_passphrase",
      message: "Wrong passphrase.",
    });
  });

  it("drops extra fields so nothing unexpected reaches the UI", () => {
    const err = toAppError({ code: "tampered", message: "Item x is damaged.", secret: "k" });
    expect(Object.keys(err).sort()).toEqual(["code", "message"]);
  });

  it("maps IPC-level string rejections (e.g. a denied capability) to code ipc", () => {
    expect(toAppError("vault_status not allowed by ACL")).toEqual({
      code: "ipc",
      message: "vault_status not allowed by ACL",
    });
  });

  it("treats a code this UI does not know as unknown but keeps the message", () => {
    expect(toAppError({ code: "from_the_future", message: "New failure." })).toEqual({
      code: "unknown",
      message: "New failure.",
    });
  });

  it("never trusts a malformed value as a command error", () => {
    expect(toAppError({ code: 42, message: "x" }).code).toBe("unknown");
    expect(toAppError(null).code).toBe("unknown");
    expect(toAppError(new Error("boom"))).toEqual({ code: "unknown", message: "boom" });
  });

  it("knows the core's codes the UI reacts to", () => {
    for (const code of ["wrong_passphrase", "tampered", "locked", "not_found"]) {
      expect(ERROR_CODES).toContain(code);
    }
  });
});

describe("errorText", () => {
  it("has a human text for every generated error code", () => {
    for (const code of ERROR_CODES) {
      expect(ERROR_TEXT[code], code).toBeTruthy();
    }
  });

  it("explains the codes the unlock screen reacts to", () => {
    expect(errorText("wrong_passphrase")).toMatch(/passphrase is not correct/);
    expect(errorText("keyring_unavailable")).toMatch(/keyring is not available/);
    expect(errorText("keyring_locked")).toMatch(/keyring is locked/);
    expect(errorText("on_hold")).toMatch(/legal hold/);
  });

  it("falls back to the generic text for unknown codes", () => {
    expect(errorText("from_the_future")).toBe(ERROR_TEXT.unknown);
  });
});
