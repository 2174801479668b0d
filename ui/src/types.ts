/**
 * The IPC types the screens use. Until the shell's generated bindings cover every command these are
 * written from the contract (docs/ipc.md); screens import from here only, so moving to the generated
 * types is a change in this file.
 */
export type Area = "uploads" | "workspace" | "plots" | "exports";
export const AREAS: readonly Area[] = ["uploads", "workspace", "plots", "exports"];

export type ItemState = "active" | "soft_deleted" | "erased";
export type SortKey = "path" | "size" | "created" | "modified" | "mediaType" | "dataType";

export interface ItemSort {
  key: SortKey;
  desc: boolean;
}

export interface ItemQuery {
  project: string;
  area: Area;
  text?: string | null;
  dataType?: string | null;
  mediaType?: string | null;
  states?: ItemState[] | null;
  sort: ItemSort;
}

export interface ItemRow {
  id: string;
  area: Area;
  path: string;
  size: number;
  mediaType: string;
  dataType: string;
  state: ItemState;
  createdAt: string;
  updatedAt: string;
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
  appVersion: string;
  coreVersion: string;
  autoLockMinutes: number;
}

export interface Settings {
  autoLockMinutes: number;
  vaultDir: string;
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
  path?: string | null;
  fileDone: number;
  fileTotal: number;
  overallDone: number;
  overallTotal: number;
  filesDone: number;
  filesTotal: number;
}

export interface ImportFailure {
  path: string;
  code: string;
  message: string;
}

export interface ImportReport {
  imported: number;
  bytes: number;
  failures: ImportFailure[];
}

export type AuditResult = "success" | "failure" | "denied";

export interface AuditFilter {
  from?: string | null;
  to?: string | null;
  user?: string | null;
  actionPrefix?: string | null;
  resourcePrefix?: string | null;
  result?: AuditResult | null;
}

export interface AuditEvent {
  timestamp: string;
  user: string;
  action: string;
  resource: string;
  ipAddress?: string;
  userAgent?: string;
  result: string;
  detail: string;
  deviceId?: string;
  seq: number;
}

export interface AuditPage {
  events: AuditEvent[];
  nextCursor: string | null;
}

export interface AuditVerifyReport {
  ok: boolean;
  eventsChecked: number;
  firstBadSeq?: number | null;
  message: string;
}

export interface HoldInfo {
  id: string;
  targetKind: string;
  targetId: string;
  reason: string;
  createdAt: string;
  createdBy: string;
}

export interface ItemRetentionInfo {
  itemId: string;
  project: string;
  area: string;
  path: string;
  dataType: string;
  period: string;
  size: number;
  createdAt: string;
  expiresAt: string;
  state: string;
  nextStep?: string | null;
  nextStepAt?: string | null;
}

export interface ItemDetails {
  item: ItemRow & { sha256: string; version: number; createdBy: string; deletedAt?: string | null };
  retention: ItemRetentionInfo | null;
  hold: HoldInfo | null;
  history: AuditEvent[];
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

export interface TimelineStep {
  itemId: string;
  project: string;
  path: string;
  step: string;
  at: string;
}

export interface RetentionItemsPage {
  total: number;
  rows: ItemRetentionInfo[];
}

/** Retention periods keyed by data type, as `<n>h`, `<n>d` or `<n>y`. */
export type PolicyPeriods = Partial<Record<PolicyField, string>>;
export type PolicyField =
  | "research_data"
  | "analysis_result"
  | "backup"
  | "audit_log"
  | "session_data"
  | "grace";

export interface RetentionPolicies {
  plan: string;
  vault: PolicyPeriods;
  effective: PolicyPeriods;
  projects: { projectId: string; project: string; overrides: PolicyPeriods; effective: PolicyPeriods }[];
}

export type HoldTarget = { item: string } | { project: string };
