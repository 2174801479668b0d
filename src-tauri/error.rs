//! The one error shape that crosses IPC.

use labvault_sync::{Code, SyncError};
use serde::Serialize;
use ts_rs::TS;

/// Error returned by every command. `code` is one of the core's stable [`ErrorCode`]s, which the
/// UI switches on; `message` is for people and may change wording at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct CommandError {
    /// Stable machine-readable code: the vault's (`wrong_passphrase`, `tampered`, ...) or the
    /// tenant's (`mfa_required`, `unreachable`, ...).
    #[ts(type = "ErrorCode")]
    pub code: Code,
    /// Human-readable explanation naming what is wrong (never secrets or file contents).
    pub message: String,
}

impl CommandError {
    /// Builds an error from a code and a message.
    pub fn new(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<labvault_core::Error> for CommandError {
    fn from(err: labvault_core::Error) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

impl From<SyncError> for CommandError {
    fn from(err: SyncError) -> Self {
        Self::new(err.stable_code(), err.to_string())
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CommandError {}
