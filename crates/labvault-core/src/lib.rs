//! The encrypted local vault: a directory holding a key file, a SQLCipher catalog and encrypted
//! blobs, and the operations on it (projects, import, export, lifecycle, verify).
//!
//! Headless on purpose (no Tauri, no network) so the CLI, the desktop app and the tests drive
//! exactly the same code. See `docs/vault-layout.md` for the on-disk layout and the protocols.
#![forbid(unsafe_code)]

pub mod audit;
mod audited_ops;
pub mod catalog;
mod catalog_upgrade;
pub mod error;
mod fsutil;
mod items;
mod journal;
mod keyring;
pub mod model;
pub mod names;
mod packs;
pub mod retention;
pub mod transfer;
pub mod vault;
pub mod view;

pub use error::{Error, ErrorCode, Result};
pub use labvault_crypto::{KdfParams, Passphrase, RecoveryKey};
/// The shared audit/retention model (event format, export, policies), for front ends.
pub use labvault_governance as governance;
pub use labvault_governance::{Clock, ManualClock, SystemClock};
pub use model::{
    guess_media_type, Area, DataType, ItemInfo, ItemState, ListFilter, ProjectInfo, StatRow,
};
pub use transfer::{
    ExportOptions, ImportEvent, ImportFailure, ImportOptions, ImportReport, ImportedFile,
    TransferProgress, VerifyProblem, VerifyReport, IMPORT_GROUP_FILES,
};
pub use vault::{default_vault_dir, os_user_name, vault_exists, Unlock, Vault, VaultOptions};
pub use view::{ItemPage, ItemQuery, SortKey, ViewHandle};
