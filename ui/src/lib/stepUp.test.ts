import { describe, expect, it, vi } from "vitest";
import type { Result } from "../ipc";
import { withStepUp } from "./stepUp";

const mfa: Result<number> = { ok: false, error: { code: "mfa_required", message: "step up" } };
const done: Result<number> = { ok: true, value: 7 };

describe("withStepUp", () => {
  it("asks for a code once and repeats the same action", async () => {
    const action = vi.fn<() => Promise<Result<number>>>().mockResolvedValueOnce(mfa).mockResolvedValueOnce(done);
    const prompt = vi.fn().mockResolvedValue(true);
    expect(await withStepUp(action, prompt)).toEqual(done);
    expect(prompt).toHaveBeenCalledTimes(1);
    expect(action).toHaveBeenCalledTimes(2);
  });

  it("does not ask when the action needs no step-up, and passes other errors through", async () => {
    const forbidden: Result<number> = { ok: false, error: { code: "forbidden", message: "no" } };
    const prompt = vi.fn().mockResolvedValue(true);
    expect(await withStepUp(() => Promise.resolve(done), prompt)).toEqual(done);
    expect(await withStepUp(() => Promise.resolve(forbidden), prompt)).toEqual(forbidden);
    expect(prompt).not.toHaveBeenCalled();
  });

  it("a cancelled prompt does not repeat the action and says why", async () => {
    const action = vi.fn<() => Promise<Result<number>>>().mockResolvedValue(mfa);
    const r = await withStepUp(action, () => Promise.resolve(false));
    expect(action).toHaveBeenCalledTimes(1);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("cancelled");
  });

  it("stops after two step-ups the tenant did not accept", async () => {
    const action = vi.fn<() => Promise<Result<number>>>().mockResolvedValue(mfa);
    const prompt = vi.fn().mockResolvedValue(true);
    const r = await withStepUp(action, prompt);
    expect(prompt).toHaveBeenCalledTimes(2);
    expect(action).toHaveBeenCalledTimes(3);
    expect(r).toEqual(mfa);
  });
});
