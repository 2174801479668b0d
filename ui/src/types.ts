/**
 * The IPC types the screens use, written to match the shell's generated bindings
 * (`src/bindings/*.ts`, from the Rust DTOs via ts-rs) field for field. Screens import from here
 * only, so switching to re-exports of the generated files is a change in this file alone.
 */
import type { CommandError } from "./bindings/CommandError";
import type { ErrorCode } from "./bindings/ErrorCode";

export type Area = "uploads" | "workspace" | "plots" | "exports";
export const AREAS: readonly Area[] = ["uploads", "workspace", "plots", "exports"];

export type ItemState = "active" | "soft_deleted" | "erased";
export type DataType = "research_data" | "analysis_result" | "backup" | "session_data";
export type SortKey = "path" | "size" | "created" | "modified" | "mediaType" | "dataType";

export interface ItemSort {
  key: SortKey;
  desc: boolean;
}

export interface ItemQuery {
  project: string;
  area?: Area | null;
  text?: string;
  dataType?: DataType | null;
  mediaType?: string;
  states?: ItemState[] | null;
  sort?: ItemSort;
}

export interface ItemRow {
  id: string;
  project: string;
  projectId: string;
  area: Area;
  path: string;
  size: number;
  sha256: string;
  state: ItemState;
  mediaType: string;
  dataType: DataType;
  version: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  erasedAt: string | null;
  eraseReason: string | null;
}

export interface ItemsPage {
  total: number;
  rows: ItemRow[];
}

export interface VaultStatusFull {
  exists: boolean;
  path: string;
  unlocked: boolean;
  rememberedOnDevice: boolean;
  keyringAvailable: boolean;
  recoveryConfirmationPending: boolean;
  appVersion: string;
  coreVersion: string;
  autoLockMinutes: number;
}

export interface CreateResult {
  status: VaultStatusFull;
  remembered: boolean;
  rememberError: CommandError | null;
}

export interface Settings {
  autoLockMinutes: number;
  vaultDir: string;
  defaultVaultDir: string | null;
  rememberedOnDevice: boolean;
  logDir: string | null;
  appVersion: string;
  coreVersion: string;
}

export interface Project {
  id: string;
  name: string;
  createdAt: string;
  createdBy: string;
}

export interface Progress {
  opId: string;
  phase: string;
  path: string | null;
  fileDone: number;
  fileTotal: number;
  overallDone: number;
  overallTotal: number;
  filesDone: number;
  filesTotal: number;
}

export interface ImportedFile {
  source: string;
  itemId: string;
  path: string;
  version: number;
  size: number;
  sha256: string;
}

export interface ImportFailure {
  source: string;
  code: ErrorCode;
  message: string;
}

export interface ImportReport {
  imported: ImportedFile[];
  failed: ImportFailure[];
}

export interface ExportResult {
  paths: string[];
}

export type AuditResult = "success" | "failure" | "denied";

export interface AuditFilter {
  from?: string;
  to?: string;
  user?: string;
  actionPrefix?: string;
  resourcePrefix?: string;
  result?: AuditResult | null;
}

export interface AuditEvent {
  timestamp: string;
  user: string;
  action: string;
  resource: string;
  userAgent: string;
  result: AuditResult;
  detail: string;
  deviceId: string;
  seq: number;
  hash: string;
}

export interface AuditPage {
  events: AuditEvent[];
  nextCursor: string | null;
}

export interface AuditVerifyReport {
  ok: boolean;
  eventsChecked: number;
  firstBadSeq: number | null;
  deviceId: string | null;
  message: string;
}

export interface AuditExportResult {
  path: string;
  events: number;
  filtered: boolean;
}

export interface Hold {
  id: string;
  targetKind: string;
  targetId: string;
  reason: string;
  createdAt: string;
  createdBy: string;
}

export interface ItemRetentionInfo {
  itemId: string;
  projectId: string;
  project: string;
  area: string;
  path: string;
  dataType: string;
  period: string;
  size: number;
  createdAt: string;
  expiresAt: string;
  state: string;
  nextStep: string | null;
  nextStepAt: string | null;
}

export interface ItemDetails {
  item: ItemRow;
  retention: ItemRetentionInfo | null;
  holdReason: string | null;
  history: AuditEvent[];
}

export interface PreviewInfo {
  url: string;
  mediaType: string;
  size: number;
}

export interface StateCount {
  items: number;
  bytes: number;
}

export interface ProjectRetentionSummary {
  projectId: string;
  project: string;
  active: StateCount;
  onHold: StateCount;
  softDeleted: StateCount;
  erased: StateCount;
  due7d: number;
  due30d: number;
}

export interface RetentionSummary {
  now: string;
  projects: ProjectRetentionSummary[];
}

export interface TimelineStep {
  at: string;
  step: string;
  itemId: string;
  project: string;
  area: string;
  path: string;
  size: number;
}

export interface RetentionTimeline {
  now: string;
  entries: TimelineStep[];
  total: number;
}

export interface RetentionRunResult {
  checked: number;
  expired: number;
  erased: number;
  held: number;
  failed: number;
}

export interface RetentionItemsPage {
  total: number;
  rows: ItemRetentionInfo[];
}

/** Retention periods keyed by data type, as `<n>h`, `<n>d` or `<n>y`. */
export type PolicyPeriods = Record<PolicyField, string | null>;
export type PolicyField = "researchData" | "analysisResult" | "backup" | "auditLog" | "sessionData" | "grace";

export interface RetentionPolicies {
  plan: string;
  vault: PolicyPeriods;
  effective: PolicyPeriods;
  projects: { projectId: string; project: string; overrides: PolicyPeriods; effective: PolicyPeriods }[];
}

export type HoldTarget = { item: string } | { project: string };

export interface VerifyProblem {
  code: ErrorCode;
  itemId: string | null;
  project: string | null;
  area: Area | null;
  path: string | null;
  version: number | null;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  blobsChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
}

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
