/**
 * A small passphrase-strength estimator (no dictionary download, no network): it estimates guessing
 * entropy from length and character variety, then discounts the patterns attackers try first
 * (common passwords, repeats, keyboard and alphabet runs, digits-only). Good enough to steer people
 * to long passphrases; the real protection is Argon2id on the Rust side.
 */
export type StrengthScore = 0 | 1 | 2 | 3 | 4;

/** Score 0 (very weak) to 4 (very strong), an entropy estimate and advice to show. */
export interface Strength {
  score: StrengthScore;
  bits: number;
  label: string;
  feedback: string[];
}

/** Minimum score the create and change-passphrase forms accept. */
export const MIN_ACCEPTED_SCORE: StrengthScore = 3;

const COMMON = [
  "password", "passw0rd", "123456", "qwerty", "letmein", "welcome", "admin", "iloveyou",
  "monkey", "dragon", "abc123", "111111", "sunshine", "princess", "football", "baseball",
  "master", "shadow", "secret", "labvault", "research", "laboratory", "changeme", "trustno1",
];

const SEQUENCES = ["abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiopasdfghjklzxcvbnm"];

const LABELS = ["Very weak", "Weak", "Fair", "Strong", "Very strong"] as const;

function charsetSize(p: string): number {
  let size = 0;
  if (/[a-z]/.test(p)) size += 26;
  if (/[A-Z]/.test(p)) size += 26;
  if (/[0-9]/.test(p)) size += 10;
  if (/[ ]/.test(p)) size += 1;
  if (/[^a-zA-Z0-9 ]/.test(p)) size += 33;
  return Math.max(size, 1);
}

/** Length of characters that continue a run (aaa, abc, 321, qwe), which add almost nothing. */
function patternChars(p: string): number {
  const lower = p.toLowerCase();
  let wasted = 0;
  for (let i = 2; i < lower.length; i += 1) {
    const a = lower[i - 2]!;
    const b = lower[i - 1]!;
    const c = lower[i]!;
    if (a === b && b === c) {
      wasted += 1;
      continue;
    }
    const tri = a + b + c;
    const rev = c + b + a;
    if (SEQUENCES.some((s) => s.includes(tri) || s.includes(rev))) wasted += 1;
  }
  return wasted;
}

/** Estimates the strength of a passphrase. */
export function estimateStrength(passphrase: string): Strength {
  const feedback: string[] = [];
  if (passphrase.length === 0) {
    return { score: 0, bits: 0, label: LABELS[0], feedback: ["Enter a passphrase."] };
  }
  const chars = Array.from(passphrase);
  const unique = new Set(chars).size;
  const effectiveLength = Math.max(1, chars.length - patternChars(passphrase));
  let bits = effectiveLength * Math.log2(charsetSize(passphrase));

  const lower = passphrase.toLowerCase();
  const common = COMMON.find((w) => lower.includes(w));
  if (common) {
    // A known password inside costs the attacker roughly one guess per entry, not per character.
    bits -= Math.max(0, common.length * Math.log2(charsetSize(common)) - 10);
    feedback.push("Avoid common passwords and the app's name.");
  }
  if (unique <= 3) {
    bits = Math.min(bits, 10);
    feedback.push("Use more different characters.");
  }
  if (/^[0-9]+$/.test(passphrase)) {
    bits = Math.min(bits, chars.length * 3.32);
    feedback.push("Digits alone are quick to guess; use words.");
  }
  if (patternChars(passphrase) >= 3) {
    feedback.push("Avoid repeated characters and runs like abc or 123.");
  }
  const words = passphrase.trim().split(/[\s\-_.]+/).filter((w) => w.length > 0);
  if (chars.length < 12) {
    feedback.push("Use at least 12 characters; a few unrelated words work well.");
  } else if (words.length < 3 && bits < 80) {
    feedback.push("Add another unrelated word.");
  }
  bits = Math.max(0, Math.round(bits));

  let score: StrengthScore;
  if (bits < 28) score = 0;
  else if (bits < 45) score = 1;
  else if (bits < 60) score = 2;
  else if (bits < 80) score = 3;
  else score = 4;
  // Short passphrases never reach "strong", whatever their character mix.
  if (chars.length < 12 && score > 2) score = 2;
  if (common && score > 2) score = 2;
  if (score >= 3 && feedback.length === 0) feedback.push("Good: this would take a very long time to guess.");
  return { score, bits, label: LABELS[score], feedback };
}
