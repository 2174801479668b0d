import { describe, expect, it } from "vitest";
import { MIN_ACCEPTED_SCORE, estimateStrength } from "./strength";

describe("estimateStrength", () => {
  it("rates empty and common passwords very weak with advice", () => {
    expect(estimateStrength("").score).toBe(0);
    const weak = estimateStrength("password1");
    expect(weak.score).toBeLessThanOrEqual(1);
    expect(weak.feedback.join(" ")).toMatch(/common/);
  });

  it("does not let repeats and runs count as length", () => {
    expect(estimateStrength("aaaaaaaaaaaaaaaaaaaa").score).toBe(0);
    expect(estimateStrength("abcdefghijklmnop").score).toBeLessThan(MIN_ACCEPTED_SCORE);
    expect(estimateStrength("12345678901234").score).toBeLessThan(MIN_ACCEPTED_SCORE);
  });

  it("caps short passphrases below strong even with every character class", () => {
    const s = estimateStrength("Xq7!pZ2#");
    expect(s.score).toBeLessThanOrEqual(2);
    expect(s.feedback.join(" ")).toMatch(/12 characters/);
  });

  it("accepts a multi-word passphrase", () => {
    const s = estimateStrength("correct horse battery staple 42");
    expect(s.score).toBeGreaterThanOrEqual(MIN_ACCEPTED_SCORE);
    expect(s.label).toMatch(/strong/i);
  });

  it("increases with length", () => {
    const a = estimateStrength("river lamp").bits;
    const b = estimateStrength("river lamp quietly orbit").bits;
    expect(b).toBeGreaterThan(a);
  });
});
