import { describe, expect, it } from "vitest";
import { toAppError } from "./errors";

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

  it("never trusts a malformed object as a command error", () => {
    expect(toAppError({ code: 42, message: "x" }).code).toBe("unknown");
    expect(toAppError(null).code).toBe("unknown");
    expect(toAppError(new Error("boom"))).toEqual({ code: "unknown", message: "boom" });
  });
});
