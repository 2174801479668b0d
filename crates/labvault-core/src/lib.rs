//! The encrypted local vault: a directory holding a key file, a SQLCipher catalog and encrypted
//! blobs, and the operations on it (projects, import, export, lifecycle, verify).
//!
//! Headless on purpose (no Tauri, no network) so the CLI, the desktop app and the tests drive
//! exactly the same code. See `docs/vault-layout.md` for the on-disk layout and the protocols.
//!
//! Modules in dependency order (a module only uses those above it; a test checks it):
//! * foundations: `error`, `names`, `model`, `layout`, `locks`, `fsutil`, `keyring`,
//!   `checkpoint` (a tenant-signed audit checkpoint and its signature check), `bundle_seal`
//!   (an encrypted bundle: age to a passphrase or recipients), `bundle`
//!   (the project bundle format and its offline verification, which needs no vault);
//! * storage: `catalog` (connections, schema, migrations), then `audit` (the hash chain on a
//!   connection), `journal_file` (the audit journal's sealed, linked
//!   lines), `packs`, `holds`, `changes` (what sync must push);
//! * the handle: `vault` (keys, readers, the one writer, how events are recorded);
//! * operations on it: `blob_files`, `journal`, `projects`, `items`, `retention`, `account`,
//!   `anchors`, `audit_log`, `transfer`, `view`, `copies` (a version copied into a new item),
//!   `watches` (instrument folder watches' settings and journal), `bundle_export` (a whole
//!   project written as a bundle), `evidence` (a project's compliance evidence pack);
//! * above them all: `sync` (the vault's half of file sync; no network).
#![forbid(unsafe_code)]

/// The core's version (the crate's own, which front ends report beside theirs).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

mod account;
mod anchors;
pub mod audit;
mod audit_log;
mod blob_files;
pub mod bundle;
mod bundle_export;
pub mod bundle_seal;
pub mod catalog;
mod changes;
mod checkpoint;
mod copies;
pub mod error;
pub mod evidence;
mod fsutil;
mod holds;
mod items;
mod journal;
mod journal_file;
mod keyfile_io;
mod keyring;
pub mod layout;
mod locks;
pub mod model;
pub mod names;
mod packs;
mod projects;
mod rekey;
pub mod retention;
mod rotation_state;
pub mod sync;
pub mod transfer;
pub mod vault;
pub mod view;
pub mod watches;

pub use account::{check_new_passphrase, KeyringStatus, MIN_PASSPHRASE_CHARS};
pub use bundle_export::{BundleOptions, BundleSummary};
pub use error::{Error, ErrorCode, Result};
pub use labvault_crypto::{KdfParams, Passphrase, RecoveryKey};
/// The shared audit/retention model (event format, export, policies), for front ends.
pub use labvault_governance as governance;
pub use labvault_governance::{Clock, ManualClock, SystemClock};
pub use model::{
    guess_media_type, Area, DataType, ItemInfo, ItemState, ListFilter, ProjectInfo, StatRow,
};
#[doc(hidden)]
pub use rekey::RekeyStop;
pub use transfer::{
    ExportFailure, ExportOptions, ExportReport, ImportEvent, ImportFailure, ImportOptions,
    ImportReport, ImportedFile, TransferProgress, VerifyProblem, VerifyReport, IMPORT_GROUP_FILES,
};
pub use vault::{default_vault_dir, os_user_name, vault_exists, Unlock, Vault, VaultOptions};
pub use view::{ItemDetails, ItemPage, ItemQuery, SortKey, ViewHandle};

#[cfg(test)]
mod layering;
