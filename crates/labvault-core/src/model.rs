//! Public data model: areas, data types, item states and the records returned by queries.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The stable snake_case form stored in the catalog and shown to users.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.pad(self.as_str()) }
        }
        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(Error::InvalidArgument(format!(
                        concat!("unknown ", stringify!($name), " {:?}; expected one of: {}"),
                        s,
                        [$($s),+].join(", ")
                    ))),
                }
            }
        }
    };
}

str_enum!(
    /// The workspace area an item lives in: it separates raw uploads from derived results.
    Area {
        /// Raw data as it came from the instrument or collaborator.
        Uploads = "uploads",
        /// Working copies and intermediate analysis files.
        Workspace = "workspace",
        /// Figures.
        Plots = "plots",
        /// Results prepared for handing out.
        Exports = "exports",
    }
);

str_enum!(
    /// What kind of data an item is; retention policies are keyed on it.
    DataType {
        /// Primary research data (default for `uploads`).
        ResearchData = "research_data",
        /// Derived results (default for the other areas).
        AnalysisResult = "analysis_result",
        /// Backups.
        Backup = "backup",
        /// Session data with plan-tier retention.
        SessionData = "session_data",
    }
);

str_enum!(
    /// Lifecycle state of an item.
    ItemState {
        /// Visible and exportable.
        Active = "active",
        /// Hidden, restorable until purged.
        SoftDeleted = "soft_deleted",
        /// Cryptographically erased: only the record of the erasure is left.
        Erased = "erased",
    }
);

impl Area {
    /// The data type an import gets when the caller does not say.
    pub fn default_data_type(self) -> DataType {
        match self {
            Area::Uploads => DataType::ResearchData,
            _ => DataType::AnalysisResult,
        }
    }
}

/// Guesses a media type from the file extension (content is never sniffed: it is encrypted
/// before we would look at it, and guessing from bytes is a classic source of confusion).
pub fn guess_media_type(path: &str) -> &'static str {
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "json" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "tif" | "tiff" => "image/tiff",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "h5" | "hdf5" => "application/x-hdf5",
        "nc" => "application/x-netcdf",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "ipynb" => "application/x-ipynb+json",
        "py" => "text/x-python",
        "r" => "text/x-r",
        "fasta" | "fa" | "fastq" | "fq" => "text/x-fasta",
        "parquet" => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

/// A project as listed (its key stays inside the vault).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProjectInfo {
    /// Stable id (UUID).
    pub id: String,
    /// Display name, unique in the vault.
    pub name: String,
    /// Creation time (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
}

/// An item as listed: what a user or script needs to find and check it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ItemInfo {
    /// Stable id (UUID); survives rename/move.
    pub id: String,
    /// Project name.
    pub project: String,
    /// Project id.
    pub project_id: String,
    /// Area.
    pub area: Area,
    /// Logical path inside the area.
    pub path: String,
    /// Plaintext size of the current version in bytes.
    pub size: u64,
    /// SHA-256 of the current version's plaintext, lowercase hex.
    pub sha256: String,
    /// Lifecycle state.
    pub state: ItemState,
    /// Media type guessed from the extension.
    pub media_type: String,
    /// Data type (drives retention).
    pub data_type: DataType,
    /// Current version number (1 for a first import).
    pub version: u32,
    /// Who imported the first version.
    pub created_by: String,
    /// When the first version was imported.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the current version was imported.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it was soft-deleted, if it is.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// When it was erased, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub erased_at: Option<OffsetDateTime>,
    /// Why it was erased.
    pub erase_reason: Option<String>,
}

/// Filters for [`crate::Vault::list`]; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Project name or id.
    pub project: Option<String>,
    /// Area.
    pub area: Option<Area>,
    /// Logical path starts with this.
    pub path_prefix: Option<String>,
    /// Logical path contains this (case-insensitive).
    pub path_contains: Option<String>,
    /// State; `None` means active only.
    pub state: Option<ItemState>,
    /// Include every state (overrides `state`).
    pub all_states: bool,
    /// Data type.
    pub data_type: Option<DataType>,
    /// Media type (exact).
    pub media_type: Option<String>,
}

/// One row of [`crate::Vault::stats`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StatRow {
    /// Project name.
    pub project: String,
    /// Area.
    pub area: Area,
    /// State.
    pub state: ItemState,
    /// Number of items.
    pub items: u64,
    /// Plaintext bytes of their current versions (0 for erased items).
    pub bytes: u64,
}
