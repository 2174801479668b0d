//! Argument and result types of the IPC commands, as the webview sees them (camelCase JSON).
//!
//! They mirror core types instead of exposing them so the TypeScript contract is explicit,
//! generated (ts-rs) and drift-checked, and so nothing secret can be added to a result by
//! accident: none of these types has a field that could hold key material. Sizes and counts are
//! `number` in TypeScript (exact up to 2^53 bytes, far above any real file).

use labvault_core::governance::audit::Outcome;
use labvault_core::governance::retention::{PolicyOverride, RetentionPeriod, RetentionPolicy};
use labvault_core::retention::{HoldInfo, PolicySettings, RetentionRunReport};
/// Core types whose IPC form has the same name here.
use labvault_core::{audit as core_audit, governance::audit as gov_audit, retention as core_ret};
use labvault_core::{
    Area, DataType, ErrorCode, ImportReport, ItemInfo, ItemState, ProjectInfo, SortKey,
    VerifyReport,
};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use ts_rs::TS;

use crate::error::CommandError;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses an RFC 3339 instant from the UI.
pub fn parse_ts(s: &str, what: &str) -> Result<OffsetDateTime, CommandError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        CommandError::new(
            ErrorCode::InvalidArgument,
            format!("{what} must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z; got {s:?}"),
        )
    })
}

/// What the first screen and the settings page need to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct VaultStatus {
    /// True when a vault key file is present at `path`.
    pub exists: bool,
    /// The vault directory in use, shown so users know where their data lives.
    pub path: String,
    /// True when a vault is unlocked in this app.
    pub unlocked: bool,
    /// The user asked this device to remember the vault (OS keyring); a hint for Unlock.
    pub remembered_on_device: bool,
    /// A session bus is reachable, so the OS keyring (Secret Service) may be used.
    pub keyring_available: bool,
    /// True between creation and the recovery-key confirmation.
    pub recovery_confirmation_pending: bool,
    /// App version.
    pub app_version: String,
    /// Vault core version.
    pub core_version: String,
    /// Idle minutes before auto-lock.
    pub auto_lock_minutes: u32,
    /// Set when the unlocked vault could only be opened read-only (its disk is full): what
    /// still works and what to do, shown as a banner.
    pub read_only_reason: Option<String>,
}

/// Result of `vault_create`: the vault is created and unlocked; the recovery key was shown by
/// the native dialog and is NOT part of this result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CreateResult {
    /// The vault's status after creation.
    pub status: VaultStatus,
    /// True when "remember on this device" was asked for and succeeded.
    pub remembered: bool,
    /// Why remembering failed (e.g. `keyring_unavailable`); the vault works anyway.
    pub remember_error: Option<CommandError>,
}

/// Settings shown on the settings page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Idle minutes before auto-lock (1..=1440).
    pub auto_lock_minutes: u32,
    /// Vault directory in use.
    pub vault_dir: String,
    /// The default vault directory (when no custom one is set).
    pub default_vault_dir: Option<String>,
    /// The user asked this device to remember the vault.
    pub remembered_on_device: bool,
    /// Where the app writes its log files.
    pub log_dir: Option<String>,
    /// App version.
    pub app_version: String,
    /// Vault core version.
    pub core_version: String,
}

/// A project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Stable id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
}

impl From<ProjectInfo> for Project {
    fn from(p: ProjectInfo) -> Self {
        Project {
            id: p.id,
            name: p.name,
            created_at: ts(p.created_at),
            created_by: p.created_by,
        }
    }
}

/// One item of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ItemRow {
    /// Stable id (survives rename/move).
    pub id: String,
    /// Project name.
    pub project: String,
    /// Project id.
    pub project_id: String,
    /// Area.
    #[ts(type = "Area")]
    pub area: Area,
    /// Logical path in the area.
    pub path: String,
    /// Plaintext bytes of the current version.
    #[ts(type = "number")]
    pub size: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// Lifecycle state.
    #[ts(type = "ItemState")]
    pub state: ItemState,
    /// Media type (from the extension).
    pub media_type: String,
    /// Data type (drives retention).
    #[ts(type = "DataType")]
    pub data_type: DataType,
    /// Current version.
    pub version: u32,
    /// Who imported it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339, when soft-deleted.
    pub deleted_at: Option<String>,
    /// RFC 3339, when erased.
    pub erased_at: Option<String>,
    /// Why it was erased.
    pub erase_reason: Option<String>,
}

impl From<ItemInfo> for ItemRow {
    fn from(i: ItemInfo) -> Self {
        ItemRow {
            id: i.id,
            project: i.project,
            project_id: i.project_id,
            area: i.area,
            path: i.path,
            size: i.size,
            sha256: i.sha256,
            state: i.state,
            media_type: i.media_type,
            data_type: i.data_type,
            version: i.version,
            created_by: i.created_by,
            created_at: ts(i.created_at),
            updated_at: ts(i.updated_at),
            deleted_at: i.deleted_at.map(ts),
            erased_at: i.erased_at.map(ts),
            erase_reason: i.erase_reason,
        }
    }
}

/// Sort order of an item page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ItemSort {
    /// Column.
    #[ts(type = "SortKey")]
    pub key: SortKey,
    /// Descending.
    #[serde(default)]
    pub desc: bool,
}

/// What `items_page` lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ItemQuery {
    /// Project name or id.
    pub project: String,
    /// Area; omitted = every area.
    #[ts(type = "Area | null", optional)]
    #[serde(default)]
    pub area: Option<Area>,
    /// Case-insensitive substring of the path.
    #[ts(optional)]
    #[serde(default)]
    pub text: Option<String>,
    /// Data type.
    #[ts(type = "DataType | null", optional)]
    #[serde(default)]
    pub data_type: Option<DataType>,
    /// Exact media type.
    #[ts(optional)]
    #[serde(default)]
    pub media_type: Option<String>,
    /// States to include; omitted or empty = active only.
    #[ts(type = "ItemState[] | null", optional)]
    #[serde(default)]
    pub states: Option<Vec<ItemState>>,
    /// Sort order; omitted = path ascending.
    #[ts(optional)]
    #[serde(default)]
    pub sort: Option<ItemSort>,
}

impl ItemQuery {
    /// The core query.
    pub fn to_core(&self) -> labvault_core::ItemQuery {
        let sort = self.sort.unwrap_or(ItemSort {
            key: SortKey::Path,
            desc: false,
        });
        labvault_core::ItemQuery {
            project: self.project.clone(),
            area: self.area,
            text: self.text.clone(),
            data_type: self.data_type,
            media_type: self.media_type.clone().filter(|m| !m.is_empty()),
            states: self.states.clone().unwrap_or_default(),
            sort: sort.key,
            desc: sort.desc,
        }
    }
}

/// One page of items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ItemPage {
    /// Items matching the query, all pages.
    #[ts(type = "number")]
    pub total: u64,
    /// This page.
    pub rows: Vec<ItemRow>,
}

/// Progress of a long operation, sent on its `onProgress` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The UI's id of the operation.
    pub op_id: String,
    /// `started`, `progress`, `file_done`, `file_failed`, `done`.
    pub phase: String,
    /// Logical path (import/export/verify) of the current file.
    pub path: Option<String>,
    /// Bytes (or events) of the current file done.
    #[ts(type = "number")]
    pub file_done: u64,
    /// Size of the current file.
    #[ts(type = "number")]
    pub file_total: u64,
    /// Bytes (or events) done overall.
    #[ts(type = "number")]
    pub overall_done: u64,
    /// Total overall (0 when unknown).
    #[ts(type = "number")]
    pub overall_total: u64,
    /// Files finished (imported, failed or exported).
    #[ts(type = "number")]
    pub files_done: u64,
    /// Files in the operation (0 when unknown or not file-based).
    #[ts(type = "number")]
    pub files_total: u64,
}

/// A file that was imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ImportedFile {
    /// Source path on disk.
    pub source: String,
    /// Item id.
    pub item_id: String,
    /// Logical path in the area.
    pub path: String,
    /// Version created.
    pub version: u32,
    /// Bytes.
    #[ts(type = "number")]
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ImportFailure {
    /// Source path on disk.
    pub source: String,
    /// Stable code.
    #[ts(type = "ErrorCode")]
    pub code: ErrorCode,
    /// Why.
    pub message: String,
}

/// Outcome of `import_paths`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// Files imported.
    pub imported: Vec<ImportedFile>,
    /// Files skipped, with reasons.
    pub failed: Vec<ImportFailure>,
}

impl From<ImportReport> for ImportResult {
    fn from(r: ImportReport) -> Self {
        ImportResult {
            imported: r
                .imported
                .into_iter()
                .map(|f| ImportedFile {
                    source: f.source.display().to_string(),
                    item_id: f.item_id,
                    path: f.path,
                    version: f.version,
                    size: f.size,
                    sha256: f.sha256,
                })
                .collect(),
            failed: r
                .failed
                .into_iter()
                .map(|f| ImportFailure {
                    source: f.source.display().to_string(),
                    code: f.code,
                    message: f.message,
                })
                .collect(),
        }
    }
}

/// Outcome of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ExportResult {
    /// Files written.
    pub paths: Vec<String>,
    /// Items of an area export that could not be written (each left nothing), with why.
    pub failed: Vec<ExportFailureDto>,
}

/// How a project bundle is exported (the UI's options). Holds a passphrase: no `Debug`, no
/// `Clone`; the shell hands it to the core's `BundleSeal` at once.
#[derive(Deserialize, TS, Default)]
#[serde(rename_all = "camelCase")]
pub struct BundleRequest {
    /// Every earlier version still kept (conflict siblings are always included).
    #[serde(default)]
    pub all_versions: bool,
    /// Seal the `.tar.age` with a passphrase.
    #[serde(default)]
    #[ts(optional)]
    pub passphrase: Option<String>,
    /// Or seal it to age recipients (`age1…`).
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// What a project bundle export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct BundleResult {
    /// The bundle (directory, `.tar` or sealed `.tar.age`).
    pub path: String,
    /// Sealed with age.
    pub encrypted: bool,
    /// Files in it.
    #[ts(type = "number")]
    pub files: u64,
    /// Their bytes.
    #[ts(type = "number")]
    pub bytes: u64,
    /// Audit events of the project in it.
    #[ts(type = "number")]
    pub audit_events: u64,
    /// SHA-256 of its `bundle.json`, as recorded in the export's audit event.
    pub bundle_digest: String,
}

/// An item an area export could not write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ExportFailure")]
pub struct ExportFailureDto {
    /// Area and logical path.
    pub path: String,
    /// Stable error code.
    #[ts(type = "ErrorCode")]
    pub code: ErrorCode,
    /// Why, naming the file.
    pub message: String,
}

/// One problem found by `vault_verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct VerifyProblem {
    /// Stable code (`tampered`, `truncated`, `not_found`, ...).
    #[ts(type = "ErrorCode")]
    pub code: ErrorCode,
    /// Item concerned.
    pub item_id: Option<String>,
    /// Its project.
    pub project: Option<String>,
    /// Its area.
    #[ts(type = "Area | null")]
    pub area: Option<Area>,
    /// Its path.
    pub path: Option<String>,
    /// Its version.
    pub version: Option<u32>,
    /// What is wrong.
    pub message: String,
}

/// Outcome of `vault_verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    /// True when nothing is wrong.
    pub ok: bool,
    /// Blob versions checked.
    #[ts(type = "number")]
    pub blobs_checked: u64,
    /// Plaintext bytes checked.
    #[ts(type = "number")]
    pub bytes_checked: u64,
    /// Everything wrong.
    pub problems: Vec<VerifyProblem>,
}

impl From<VerifyReport> for VerifyResult {
    fn from(r: VerifyReport) -> Self {
        VerifyResult {
            ok: r.is_ok(),
            blobs_checked: r.blobs_checked,
            bytes_checked: r.bytes_checked,
            problems: r
                .problems
                .into_iter()
                .map(|p| VerifyProblem {
                    code: p.code,
                    item_id: p.item_id,
                    project: p.project,
                    area: p.area,
                    path: p.path,
                    version: p.version,
                    message: p.message,
                })
                .collect(),
        }
    }
}

/// Counts and bytes per project, area and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct StatRow {
    /// Project name.
    pub project: String,
    /// Area.
    #[ts(type = "Area")]
    pub area: Area,
    /// State.
    #[ts(type = "ItemState")]
    pub state: ItemState,
    /// Items.
    #[ts(type = "number")]
    pub items: u64,
    /// Plaintext bytes.
    #[ts(type = "number")]
    pub bytes: u64,
}

impl From<labvault_core::StatRow> for StatRow {
    fn from(s: labvault_core::StatRow) -> Self {
        StatRow {
            project: s.project,
            area: s.area,
            state: s.state,
            items: s.items,
            bytes: s.bytes,
        }
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// RFC 3339 (microseconds).
    pub timestamp: String,
    /// Who.
    pub user: String,
    /// What, e.g. `data.import`.
    pub action: String,
    /// On what, e.g. `project/<id>/item/<id>`.
    pub resource: String,
    /// Client software.
    pub user_agent: String,
    /// `success`, `failure` or `denied`.
    #[ts(type = "AuditResult")]
    pub result: Outcome,
    /// Error code, reason or counts.
    pub detail: String,
    /// The device chain.
    pub device_id: String,
    /// Position in the chain, from 1.
    #[ts(type = "number")]
    pub seq: u64,
    /// Chain hash, hex.
    pub hash: String,
}

impl From<gov_audit::AuditEvent> for AuditEvent {
    fn from(e: gov_audit::AuditEvent) -> Self {
        AuditEvent {
            timestamp: ts(e.timestamp),
            user: e.user,
            action: e.action.as_str().to_string(),
            resource: e.resource,
            user_agent: e.user_agent,
            result: e.result,
            detail: e.detail,
            device_id: e.device_id,
            seq: e.seq,
            hash: hex_lower(&e.hash),
        }
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Audit filters; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditFilter {
    /// RFC 3339: events at or after.
    #[ts(optional)]
    pub from: Option<String>,
    /// RFC 3339: events strictly before.
    #[ts(optional)]
    pub to: Option<String>,
    /// Exact user.
    #[ts(optional)]
    pub user: Option<String>,
    /// Action prefix, e.g. `data.` or `data.export`.
    #[ts(optional)]
    pub action_prefix: Option<String>,
    /// Resource prefix, e.g. `project/<id>`.
    #[ts(optional)]
    pub resource_prefix: Option<String>,
    /// Result.
    #[ts(type = "AuditResult | null", optional)]
    pub result: Option<Outcome>,
}

impl AuditFilter {
    /// The core filter (empty strings mean "no filter").
    pub fn to_core(&self) -> Result<labvault_core::audit::AuditFilter, CommandError> {
        let s = |o: &Option<String>| o.clone().filter(|x| !x.trim().is_empty());
        Ok(labvault_core::audit::AuditFilter {
            from: s(&self.from).map(|f| parse_ts(&f, "from")).transpose()?,
            to: s(&self.to).map(|f| parse_ts(&f, "to")).transpose()?,
            user: s(&self.user),
            action_prefix: s(&self.action_prefix),
            resource_prefix: s(&self.resource_prefix),
            result: self.result,
        })
    }
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Events.
    pub events: Vec<AuditEvent>,
    /// Pass back as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

impl From<core_audit::AuditPage> for AuditPage {
    fn from(p: core_audit::AuditPage) -> Self {
        AuditPage {
            events: p.events.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// Outcome of `audit_verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerifyResult {
    /// True when every device chain verifies from genesis.
    pub ok: bool,
    /// Events checked.
    #[ts(type = "number")]
    pub events_checked: u64,
    /// First event that breaks the chain, when not ok.
    #[ts(type = "number | null")]
    pub first_bad_seq: Option<u64>,
    /// The device whose chain breaks, when not ok.
    pub device_id: Option<String>,
    /// Summary for people.
    pub message: String,
}

/// Audit export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum AuditExportFormat {
    /// RFC 4180 CSV.
    Csv,
    /// JSON Lines.
    Jsonl,
}

/// Outcome of `audit_export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AuditExportResult {
    /// File written.
    pub path: String,
    /// Events written.
    #[ts(type = "number")]
    pub events: u64,
    /// A filter was applied.
    pub filtered: bool,
}

/// Counts and bytes in one retention state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct StateCount {
    /// Items.
    #[ts(type = "number")]
    pub items: u64,
    /// Plaintext bytes.
    #[ts(type = "number")]
    pub bytes: u64,
}

impl From<core_ret::StateCount> for StateCount {
    fn from(s: core_ret::StateCount) -> Self {
        StateCount {
            items: s.items,
            bytes: s.bytes,
        }
    }
}

/// Retention summary of one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRetentionSummary {
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// Active, not held.
    pub active: StateCount,
    /// Under legal hold.
    pub on_hold: StateCount,
    /// Soft-deleted, not held.
    pub soft_deleted: StateCount,
    /// Erased.
    pub erased: StateCount,
    /// Next step due within 7 days (overdue included, held excluded).
    #[ts(type = "number")]
    pub due7d: u64,
    /// Within 30 days.
    #[ts(type = "number")]
    pub due30d: u64,
}

impl From<core_ret::ProjectRetentionSummary> for ProjectRetentionSummary {
    fn from(s: core_ret::ProjectRetentionSummary) -> Self {
        ProjectRetentionSummary {
            project_id: s.project_id,
            project: s.project,
            active: s.active.into(),
            on_hold: s.on_hold.into(),
            soft_deleted: s.soft_deleted.into(),
            erased: s.erased.into(),
            due7d: s.due_7d,
            due30d: s.due_30d,
        }
    }
}

/// `retention_summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSummary {
    /// Evaluated at (RFC 3339).
    pub now: String,
    /// Per project.
    pub projects: Vec<ProjectRetentionSummary>,
}

/// Retention facts of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ItemRetention {
    /// Item id.
    pub item_id: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// Area.
    pub area: String,
    /// Logical path.
    pub path: String,
    /// Retention data type.
    pub data_type: String,
    /// Retention period, e.g. `7y`.
    pub period: String,
    /// Bytes (0 once erased).
    #[ts(type = "number")]
    pub size: u64,
    /// RFC 3339.
    pub created_at: String,
    /// End of retention, RFC 3339.
    pub expires_at: String,
    /// `active`, `on_hold`, `soft_deleted`, `erased`.
    pub state: String,
    /// `expire` or `erase`.
    pub next_step: Option<String>,
    /// When, RFC 3339.
    pub next_step_at: Option<String>,
}

fn json_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

impl From<core_ret::ItemRetention> for ItemRetention {
    fn from(r: core_ret::ItemRetention) -> Self {
        ItemRetention {
            item_id: r.item_id,
            project_id: r.project_id,
            project: r.project,
            area: r.area,
            path: r.path,
            data_type: r.data_type.as_str().to_string(),
            period: r.period,
            size: r.size,
            created_at: ts(r.created_at),
            expires_at: ts(r.expires_at),
            state: json_str(&r.state),
            next_step: r.next_step.map(|s| json_str(&s)),
            next_step_at: r.next_step_at.map(ts),
        }
    }
}

/// A page of per-item retention status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RetentionItemsPage {
    /// Items, all pages.
    #[ts(type = "number")]
    pub total: u64,
    /// This page (sorted by project, area, path).
    pub rows: Vec<ItemRetention>,
}

impl From<core_ret::RetentionItemsPage> for RetentionItemsPage {
    fn from(p: core_ret::RetentionItemsPage) -> Self {
        RetentionItemsPage {
            total: p.total,
            rows: p.rows.into_iter().map(Into::into).collect(),
        }
    }
}

/// One upcoming lifecycle step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TimelineStep {
    /// When (RFC 3339); may be in the past (overdue, done at the next run).
    pub at: String,
    /// `expire` or `erase`.
    pub step: String,
    /// Item id.
    pub item_id: String,
    /// Project name.
    pub project: String,
    /// Area.
    pub area: String,
    /// Logical path.
    pub path: String,
    /// Bytes.
    #[ts(type = "number")]
    pub size: u64,
}

/// `retention_timeline`: steps due up to `now + days`, soonest first (at most 1,000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RetentionTimeline {
    /// Evaluated at (RFC 3339).
    pub now: String,
    /// Steps, soonest first.
    pub entries: Vec<TimelineStep>,
    /// Steps in the window (may exceed `entries.length`).
    #[ts(type = "number")]
    pub total: u64,
}

impl From<core_ret::RetentionTimeline> for RetentionTimeline {
    fn from(t: core_ret::RetentionTimeline) -> Self {
        RetentionTimeline {
            now: ts(t.now),
            total: t.total,
            entries: t
                .steps
                .into_iter()
                .map(|st| TimelineStep {
                    at: ts(st.at),
                    step: json_str(&st.step),
                    item_id: st.item.item_id,
                    project: st.item.project,
                    area: st.item.area,
                    path: st.item.path,
                    size: st.item.size,
                })
                .collect(),
        }
    }
}

/// Retention periods per data type (`24h`, `90d`, `7y`); in overrides a null keeps the
/// inherited value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyPeriods {
    /// Research data.
    pub research_data: Option<String>,
    /// Analysis results.
    pub analysis_result: Option<String>,
    /// Backups.
    pub backup: Option<String>,
    /// The audit log (never below 6y).
    pub audit_log: Option<String>,
    /// Session data (enterprise plan only).
    pub session_data: Option<String>,
    /// Soft-delete grace before erasure.
    pub grace: Option<String>,
}

impl From<&PolicyOverride> for PolicyPeriods {
    fn from(o: &PolicyOverride) -> Self {
        let s = |p: Option<RetentionPeriod>| p.map(|p| p.to_string());
        PolicyPeriods {
            research_data: s(o.research_data),
            analysis_result: s(o.analysis_result),
            backup: s(o.backup),
            audit_log: s(o.audit_log),
            session_data: s(o.session_data),
            grace: s(o.grace),
        }
    }
}

impl From<&RetentionPolicy> for PolicyPeriods {
    fn from(p: &RetentionPolicy) -> Self {
        PolicyPeriods {
            research_data: Some(p.research_data.to_string()),
            analysis_result: Some(p.analysis_result.to_string()),
            backup: Some(p.backup.to_string()),
            audit_log: Some(p.audit_log.to_string()),
            session_data: Some(p.session_data.to_string()),
            grace: Some(p.grace.to_string()),
        }
    }
}

impl PolicyPeriods {
    /// The core override; a malformed period is `invalid_policy`.
    pub fn to_override(&self) -> Result<PolicyOverride, CommandError> {
        let p = |v: &Option<String>, what: &str| -> Result<Option<RetentionPeriod>, CommandError> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => RetentionPeriod::parse(s).map(Some).map_err(|e| {
                    CommandError::new(ErrorCode::InvalidPolicy, format!("{what}: {e}"))
                }),
            }
        };
        Ok(PolicyOverride {
            research_data: p(&self.research_data, "researchData")?,
            analysis_result: p(&self.analysis_result, "analysisResult")?,
            backup: p(&self.backup, "backup")?,
            audit_log: p(&self.audit_log, "auditLog")?,
            session_data: p(&self.session_data, "sessionData")?,
            grace: p(&self.grace, "grace")?,
        })
    }
}

/// One project's retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPolicy {
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// Its overrides (nulls inherit from the vault).
    pub overrides: PolicyPeriods,
    /// In effect for its items.
    pub effective: PolicyPeriods,
}

impl From<&core_ret::ProjectPolicy> for ProjectPolicy {
    fn from(p: &core_ret::ProjectPolicy) -> Self {
        ProjectPolicy {
            project_id: p.project_id.clone(),
            project: p.project.clone(),
            overrides: (&p.overrides).into(),
            effective: (&p.effective).into(),
        }
    }
}

/// `retention_policies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicies {
    /// `trial`, `starter`, `professional`, `enterprise`.
    pub plan: String,
    /// Vault-wide overrides of the plan defaults.
    pub vault: PolicyPeriods,
    /// Vault-wide policy in effect.
    pub effective: PolicyPeriods,
    /// Per project.
    pub projects: Vec<ProjectPolicy>,
}

impl From<&PolicySettings> for RetentionPolicies {
    fn from(s: &PolicySettings) -> Self {
        RetentionPolicies {
            plan: s.plan.as_str().to_string(),
            vault: (&s.vault).into(),
            effective: (&s.effective).into(),
            projects: s.projects.iter().map(Into::into).collect(),
        }
    }
}

/// What a legal hold is on: `{ item: "<id>" }` or `{ project: "<name or id>" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum HoldTarget {
    /// One item, by id.
    Item(String),
    /// A whole project, by name or id.
    Project(String),
}

impl HoldTarget {
    /// The core target.
    pub fn to_core(&self) -> core_ret::HoldTarget {
        match self {
            HoldTarget::Item(i) => core_ret::HoldTarget::Item(i.clone()),
            HoldTarget::Project(p) => core_ret::HoldTarget::Project(p.clone()),
        }
    }
}

/// An active legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// Hold id.
    pub id: String,
    /// `item` or `project`.
    pub target_kind: String,
    /// Item or project id.
    pub target_id: String,
    /// Why.
    pub reason: String,
    /// RFC 3339.
    pub created_at: String,
    /// Who set it.
    pub created_by: String,
}

impl From<HoldInfo> for Hold {
    fn from(h: HoldInfo) -> Self {
        Hold {
            id: h.id,
            target_kind: h.target_kind,
            target_id: h.target_id,
            reason: h.reason,
            created_at: ts(h.created_at),
            created_by: h.created_by,
        }
    }
}

/// Outcome of `retention_run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRunResult {
    /// Items checked.
    #[ts(type = "number")]
    pub checked: u64,
    /// Soft-deleted because they expired.
    #[ts(type = "number")]
    pub expired: u64,
    /// Erased because their grace ended.
    #[ts(type = "number")]
    pub erased: u64,
    /// Steps refused by a legal hold.
    #[ts(type = "number")]
    pub held: u64,
    /// Steps that failed (retried next run).
    #[ts(type = "number")]
    pub failed: u64,
}

impl From<RetentionRunReport> for RetentionRunResult {
    fn from(r: RetentionRunReport) -> Self {
        RetentionRunResult {
            checked: r.checked,
            expired: r.expired,
            erased: r.erased,
            held: r.held,
            failed: r.failed,
        }
    }
}

/// `item_details`: the item, its retention status and hold, and its audit history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ItemDetails {
    /// The item.
    pub item: ItemRow,
    /// Its retention status.
    pub retention: Option<ItemRetention>,
    /// Reason of the legal hold on it (or its project), if any.
    pub hold_reason: Option<String>,
    /// Its audit events, newest first (at most 200).
    pub history: Vec<AuditEvent>,
}

impl From<labvault_core::ItemDetails> for ItemDetails {
    fn from(d: labvault_core::ItemDetails) -> Self {
        ItemDetails {
            item: d.item.into(),
            retention: Some(d.retention.into()),
            hold_reason: d.hold_reason,
            history: d.history.into_iter().map(Into::into).collect(),
        }
    }
}

/// The URL the webview loads a preview from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PreviewInfo {
    /// `lvpreview://localhost/item/<id>` (Linux/macOS) or `http://lvpreview.localhost/item/<id>`
    /// (Windows).
    pub url: String,
    /// Media type served.
    pub media_type: String,
    /// Bytes.
    #[ts(type = "number")]
    pub size: u64,
}
