/**
 * The IPC types the screens use: the shell's generated bindings (`src/bindings/`, from the Rust
 * types via ts-rs) under their Rust names, plus a few UI helpers. Screens import from here.
 */
import type { Area, PolicyPeriods } from "./bindings";

export type * from "./bindings";
export { ERROR_CODES } from "./bindings";

/** The four areas, in tab order. */
export const AREAS: readonly Area[] = ["uploads", "workspace", "plots", "exports"];

/** A retention policy field (data type or grace). */
export type PolicyField = keyof PolicyPeriods;

/** Policy periods with every field present and unset ones null, as the shell expects. */
export function fullPeriods(p: Partial<PolicyPeriods>): PolicyPeriods {
  return {
    researchData: p.researchData ?? null,
    analysisResult: p.analysisResult ?? null,
    backup: p.backup ?? null,
    auditLog: p.auditLog ?? null,
    sessionData: p.sessionData ?? null,
    grace: p.grace ?? null,
  };
}
