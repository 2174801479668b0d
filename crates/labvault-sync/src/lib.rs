//! The sync engine between a LabVault vault and the lab's tenant.
//!
//! Headless (no Tauri), so the CLI, the desktop app and the tests run the same engine. The
//! division of labour:
//!
//! * `labvault-core` seals and opens everything (op payloads, key boxes, blobs) and keeps the
//!   outbox, the cursors and the merge; keys never leave it.
//! * `labvault-client` talks HTTPS to the tenant (TLS 1.3, pinned key) through a
//!   `Transport` a simulation can replace.
//! * This crate signs in ([`session`]), keeps devices and project keys in step ([`keys`],
//!   and for shared projects [`sharing`]),
//!   decides what to do next ([`planner`], pure: a seeded simulation drives it through every
//!   fault) and moves the bytes ([`transfer`], [`engine`]).
#![forbid(unsafe_code)]

pub mod account;
pub mod background;
pub mod codes;
pub mod engine;
pub mod keys;
pub mod limiter;
pub mod planner;
pub mod session;
pub mod sharing;
pub mod team;
pub mod tenant_audit;
pub mod tokens;
pub mod transfer;

pub use codes::{Code, TenantCode};
pub use engine::{EngineConfig, PassReport, Progress, ProgressPhase, SyncEngine};
pub use session::{LoginOutcome, Session};
pub use tokens::{KeyringTokens, MemoryTokens, TokenStore};

use labvault_client::ClientError;

/// What can stop a sync call. Every message names what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No tenant configured.
    #[error("no tenant is configured for this vault: `labvault remote add URL --pin sha256/...`")]
    NoRemote,
    /// Not signed in (no refresh token in the keyring), or the tenant ended the session.
    #[error("not signed in to {0}: `labvault login --email ...`")]
    NotSignedIn(String),
    /// The account has MFA: a TOTP code is needed.
    #[error("this account uses two-factor authentication: give the current code with --totp")]
    MfaCodeNeeded,
    /// This device waits for approval by another device of the user.
    #[error("this device is not approved yet: on a device of yours that syncs already, run `labvault device approve {0}`")]
    NotApproved(String),
    /// The tenant revoked this device.
    #[error("this device was revoked: it no longer syncs, and what it had synced (project copies, keys, your identity) was erased from it")]
    Revoked,
    /// Another process is syncing this vault.
    #[error("{0}")]
    Busy(String),
    /// The tenant or the network.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The vault.
    #[error(transparent)]
    Vault(#[from] labvault_core::Error),
    /// The OS keyring (tokens).
    #[error("OS keyring: {0}")]
    Keyring(String),
}

impl SyncError {
    /// A stable snake_case code (CLI exit codes, JSON output); see [`codes`].
    pub fn code(&self) -> &'static str {
        self.stable_code().as_str()
    }
}

/// Result alias.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;
