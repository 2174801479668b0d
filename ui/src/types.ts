/**
 * The IPC types the screens use: the shell's generated bindings (`src/bindings/`, from the Rust
 * types via ts-rs), under the names the UI uses. Screens import from here only.
 */
import type { Area } from "./bindings/Area";
import type { PolicyPeriods } from "./bindings/PolicyPeriods";

export type { Area } from "./bindings/Area";
export type { AuditEventDto as AuditEvent } from "./bindings/AuditEventDto";
export type { AuditExportResult } from "./bindings/AuditExportResult";
export type { AuditFilterDto as AuditFilter } from "./bindings/AuditFilterDto";
export type { AuditPageDto as AuditPage } from "./bindings/AuditPageDto";
export type { AuditResult } from "./bindings/AuditResult";
export type { AuditVerifyResult as AuditVerifyReport } from "./bindings/AuditVerifyResult";
export type { CreateResult } from "./bindings/CreateResult";
export type { DataType } from "./bindings/DataType";
export type { ExportResult } from "./bindings/ExportResult";
export type { Hold } from "./bindings/Hold";
export type { HoldTargetDto as HoldTarget } from "./bindings/HoldTargetDto";
export type { ImportedFile } from "./bindings/ImportedFile";
export type { ImportFailure } from "./bindings/ImportFailure";
export type { ImportResult as ImportReport } from "./bindings/ImportResult";
export type { ItemDetails } from "./bindings/ItemDetails";
export type { ItemPage as ItemsPage } from "./bindings/ItemPage";
export type { ItemQuery } from "./bindings/ItemQuery";
export type { ItemRetentionDto as ItemRetentionInfo } from "./bindings/ItemRetentionDto";
export type { ItemRow } from "./bindings/ItemRow";
export type { ItemSort } from "./bindings/ItemSort";
export type { ItemState } from "./bindings/ItemState";
export type { Policies as RetentionPolicies } from "./bindings/Policies";
export type { PolicyPeriods } from "./bindings/PolicyPeriods";
export type { PreviewInfo } from "./bindings/PreviewInfo";
export type { Progress } from "./bindings/Progress";
export type { Project } from "./bindings/Project";
export type { ProjectRetention as ProjectRetentionSummary } from "./bindings/ProjectRetention";
export type { RetentionItemsPage } from "./bindings/RetentionItemsPage";
export type { RetentionRunResult } from "./bindings/RetentionRunResult";
export type { RetentionSummary } from "./bindings/RetentionSummary";
export type { RetentionTimeline } from "./bindings/RetentionTimeline";
export type { Settings } from "./bindings/Settings";
export type { SortKey } from "./bindings/SortKey";
export type { StateCountDto as StateCount } from "./bindings/StateCountDto";
export type { TimelineEntry as TimelineStep } from "./bindings/TimelineEntry";
export type { VaultStatus as VaultStatusFull } from "./bindings/VaultStatus";
export type { VerifyResult } from "./bindings/VerifyResult";

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
