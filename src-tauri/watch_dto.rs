//! IPC types of instrument folder watches, as the webview sees them (mirrors of
//! `labvault_core::watches` and `labvault_watch`, so the TypeScript contract is generated).

use labvault_core::watches::{JournalEntry, WatchInfo};
use labvault_watch::{Activity, WatchStatus};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use ts_rs::TS;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A new watch, as the form sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct NewWatch {
    /// Short name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// The folder the instrument writes into.
    pub folder: String,
    /// Target project (name or id).
    pub project: String,
    /// Target area (`uploads`, ...).
    pub area: String,
    /// Data type (default by area).
    pub data_type: Option<String>,
    /// Include patterns (none = every file).
    pub include: Vec<String>,
    /// Exclude patterns.
    pub exclude: Vec<String>,
    /// Delete each source after its import was verified.
    pub delete_source: bool,
    /// Seconds a file must stay unchanged.
    pub settle_secs: u32,
}

/// A watch with its live state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    /// Stable id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The watched folder.
    pub folder: String,
    /// Target project id.
    pub project_id: String,
    /// Target project name.
    pub project_name: String,
    /// Target area.
    pub area: String,
    /// Data type of imported items.
    pub data_type: String,
    /// Include patterns.
    pub include: Vec<String>,
    /// Exclude patterns.
    pub exclude: Vec<String>,
    /// Sources are deleted after a verified import.
    pub delete_source: bool,
    /// Settle time in seconds (fractions rounded up).
    pub settle_secs: u32,
    /// Paused by the person.
    pub paused: bool,
    /// Files imported so far.
    pub imported: u32,
    /// Last import (RFC 3339).
    pub last_import_at: Option<String>,
    /// `starting`, `watching`, `paused`, `unavailable` or `stopped`.
    pub state: String,
    /// Why it is unavailable or stopped.
    pub reason: Option<String>,
    /// Files waiting to be complete.
    pub waiting: u32,
}

impl Watch {
    /// `w` in the state `st` (the runner's; `stopped` when none runs).
    pub fn new(w: WatchInfo, st: &WatchStatus) -> Watch {
        let state = serde_json::to_value(st.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Watch {
            id: w.id,
            name: w.name,
            folder: w.folder.display().to_string(),
            project_id: w.project_id,
            project_name: w.project_name,
            area: w.area.as_str().into(),
            data_type: w.data_type.as_str().into(),
            include: w.include,
            exclude: w.exclude,
            delete_source: w.delete_source,
            settle_secs: w.settle_ms.div_ceil(1000) as u32,
            paused: w.paused,
            imported: w.imported.min(u32::MAX as u64) as u32,
            last_import_at: w.last_import_at.map(ts),
            state,
            reason: st.reason.clone(),
            waiting: st.waiting.min(u32::MAX as usize) as u32,
        }
    }
}

/// One line of a watch's activity list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct WatchActivity {
    /// When (RFC 3339).
    pub at: String,
    /// `imported`, `waiting`, `failed`, `skipped`, `unavailable`, `available`,
    /// `source_deleted`, `source_kept`.
    pub kind: String,
    /// The file (path under the folder).
    pub source: Option<String>,
    /// What happened.
    pub message: String,
}

impl From<&Activity> for WatchActivity {
    fn from(a: &Activity) -> Self {
        WatchActivity {
            at: ts(a.at),
            kind: serde_json::to_value(a.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            source: a.source.clone(),
            message: a.message.clone(),
        }
    }
}

/// One file a watch imported (from the vault's journal: survives restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct WatchImport {
    /// Path under the folder.
    pub source: String,
    /// Size in bytes.
    #[ts(type = "number")]
    pub size: u64,
    /// The item it became.
    pub item_id: String,
    /// Its version.
    pub version: u32,
    /// When (RFC 3339).
    pub imported_at: String,
    /// The source was deleted after verification.
    pub source_deleted: bool,
}

impl From<JournalEntry> for WatchImport {
    fn from(e: JournalEntry) -> Self {
        WatchImport {
            source: e.source,
            size: e.stamp.size,
            item_id: e.item_id,
            version: e.version,
            imported_at: ts(e.imported_at),
            source_deleted: e.source_deleted_at.is_some(),
        }
    }
}

/// A watch with its activity (since the vault was unlocked) and its latest imports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct WatchDetails {
    /// The watch.
    pub watch: Watch,
    /// Activity, newest first.
    pub activity: Vec<WatchActivity>,
    /// Latest imports, newest first.
    pub recent: Vec<WatchImport>,
}
