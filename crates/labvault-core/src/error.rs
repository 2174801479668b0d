//! The one error type of the vault and its stable, machine-readable codes.
//!
//! `ErrorCode` is the contract with every front end (CLI exit codes, the desktop app's IPC
//! `{code, message}` and its generated TypeScript enum), so it is a plain enum kept in this one
//! place; add variants at the end, never rename one.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Stable snake_case error codes: front ends branch on these, never on message text.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The passphrase does not unlock the key file (no other detail is given on purpose).
    WrongPassphrase,
    /// A well-formed recovery key that does not unlock this vault.
    WrongRecoveryKey,
    /// A recovery key with a typo / bad checksum / wrong length.
    InvalidRecoveryKey,
    /// The operation needs an unlocked vault.
    Locked,
    /// Stored data failed authentication (bad tag, reordered or spliced chunks, flipped bits).
    Tampered,
    /// Stored data is cut short (missing final chunk or cut mid-chunk).
    Truncated,
    /// No such vault, project or item.
    NotFound,
    /// A vault, project or active item already exists there.
    AlreadyExists,
    /// A file, path or project name that the vault refuses (`..`, `/`, NUL, too long, non-UTF-8).
    InvalidName,
    /// Any other argument that makes no sense (wrong state for the operation, ambiguous item, ...).
    InvalidArgument,
    /// A key file or catalog written by a newer LabVault.
    UnsupportedVersion,
    /// The key file is not a LabVault key file, is damaged, or has out-of-bounds KDF parameters.
    CorruptKeyFile,
    /// The catalog is not a database, is damaged, or is keyed with another vault's key.
    CorruptCatalog,
    /// No OS keyring (Secret Service) is reachable, or it has no entry for this vault.
    KeyringUnavailable,
    /// The destination (or the vault's disk) is full.
    NoSpace,
    /// An import source disappeared or changed while it was being read.
    SourceVanished,
    /// The caller cancelled the operation.
    Cancelled,
    /// Another process is changing the vault (or has it open while it must be upgraded); the
    /// message names the holder.
    VaultBusy,
    /// Any other I/O failure.
    Io,
    /// A bug or an unexpected database failure; the message has the details.
    Internal,
    /// The item's content was cryptographically erased; only its record is left.
    Erased,
    /// A legal hold forbids deleting, expiring or purging the item.
    OnHold,
    /// A retention policy change that breaks a rule (e.g. audit logs below 6 years).
    InvalidPolicy,
    /// Something the tenant sent was refused: a change or blob that fails authentication, a
    /// replayed op, a key epoch this device has no key for, an untrusted key box or approval.
    /// Nothing local was changed; the message names what.
    SyncRefused,
    /// The tenant's change feed no longer matches what this device applied (the server was
    /// restored from an older backup, or its feed was replaced): sync of that project stops
    /// instead of deleting anything.
    FeedDiverged,
    /// A shared project is locked on this device: it has not reached the tenant within the
    /// lab's offline lease (reconnect to unlock it), or its access was revoked.
    ProjectLocked,
}

impl ErrorCode {
    /// The snake_case string form (same as serde), for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::WrongPassphrase => "wrong_passphrase",
            ErrorCode::WrongRecoveryKey => "wrong_recovery_key",
            ErrorCode::InvalidRecoveryKey => "invalid_recovery_key",
            ErrorCode::Locked => "locked",
            ErrorCode::Tampered => "tampered",
            ErrorCode::Truncated => "truncated",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::CorruptKeyFile => "corrupt_key_file",
            ErrorCode::CorruptCatalog => "corrupt_catalog",
            ErrorCode::KeyringUnavailable => "keyring_unavailable",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::SourceVanished => "source_vanished",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::VaultBusy => "vault_busy",
            ErrorCode::Io => "io",
            ErrorCode::Internal => "internal",
            ErrorCode::Erased => "erased",
            ErrorCode::OnHold => "on_hold",
            ErrorCode::InvalidPolicy => "invalid_policy",
            ErrorCode::SyncRefused => "sync_refused",
            ErrorCode::FeedDiverged => "feed_diverged",
            ErrorCode::ProjectLocked => "project_locked",
        }
    }

    /// Every code, for exhaustive tables (CLI exit codes, TypeScript generation).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::WrongPassphrase,
        ErrorCode::WrongRecoveryKey,
        ErrorCode::InvalidRecoveryKey,
        ErrorCode::Locked,
        ErrorCode::Tampered,
        ErrorCode::Truncated,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::InvalidName,
        ErrorCode::InvalidArgument,
        ErrorCode::UnsupportedVersion,
        ErrorCode::CorruptKeyFile,
        ErrorCode::CorruptCatalog,
        ErrorCode::KeyringUnavailable,
        ErrorCode::NoSpace,
        ErrorCode::SourceVanished,
        ErrorCode::Cancelled,
        ErrorCode::VaultBusy,
        ErrorCode::Io,
        ErrorCode::Internal,
        ErrorCode::Erased,
        ErrorCode::OnHold,
        ErrorCode::InvalidPolicy,
        ErrorCode::SyncRefused,
        ErrorCode::FeedDiverged,
        ErrorCode::ProjectLocked,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Everything that can go wrong in the vault. Messages name the thing that is wrong (item, file,
/// path) but never contain key material or file contents.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// See [`ErrorCode::WrongPassphrase`].
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// See [`ErrorCode::WrongRecoveryKey`].
    #[error("wrong recovery key: it does not unlock this vault")]
    WrongRecoveryKey,
    /// See [`ErrorCode::InvalidRecoveryKey`].
    #[error("invalid recovery key: {0}")]
    InvalidRecoveryKey(String),
    /// See [`ErrorCode::Locked`].
    #[error("the vault is locked")]
    Locked,
    /// See [`ErrorCode::Tampered`]; `what` names the item (project + path) or file.
    #[error("{what} has been tampered with or is damaged ({detail})")]
    Tampered {
        /// The item or file concerned.
        what: String,
        /// What the check found.
        detail: String,
    },
    /// See [`ErrorCode::Truncated`].
    #[error("{what} is truncated ({detail})")]
    Truncated {
        /// The item or file concerned.
        what: String,
        /// What the check found.
        detail: String,
    },
    /// See [`ErrorCode::NotFound`].
    #[error("{0} not found")]
    NotFound(String),
    /// See [`ErrorCode::AlreadyExists`].
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// See [`ErrorCode::InvalidName`].
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The offending name (lossy if it was not UTF-8).
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// See [`ErrorCode::InvalidArgument`].
    #[error("{0}")]
    InvalidArgument(String),
    /// See [`ErrorCode::UnsupportedVersion`].
    #[error("unsupported version: {0}")]
    UnsupportedVersion(String),
    /// See [`ErrorCode::CorruptKeyFile`].
    #[error("corrupt key file: {0}")]
    CorruptKeyFile(String),
    /// See [`ErrorCode::CorruptCatalog`].
    #[error("corrupt catalog: {0}")]
    CorruptCatalog(String),
    /// See [`ErrorCode::KeyringUnavailable`].
    #[error("OS keyring unavailable: {0}")]
    KeyringUnavailable(String),
    /// See [`ErrorCode::NoSpace`].
    #[error("no space left on device while writing {0}")]
    NoSpace(String),
    /// See [`ErrorCode::SourceVanished`].
    #[error("import source {path} vanished or changed while being read: {detail}")]
    SourceVanished {
        /// The source file (lossy display form).
        path: String,
        /// What happened.
        detail: String,
    },
    /// See [`ErrorCode::Cancelled`].
    #[error("cancelled")]
    Cancelled,
    /// See [`ErrorCode::VaultBusy`]; the message names who holds the vault.
    #[error("{0}")]
    VaultBusy(String),
    /// See [`ErrorCode::Io`].
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, naming the file.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// See [`ErrorCode::Internal`].
    #[error("internal error: {0}")]
    Internal(String),
    /// See [`ErrorCode::Erased`].
    #[error("{0} was erased; its content cannot be recovered")]
    Erased(String),
    /// See [`ErrorCode::OnHold`].
    #[error("{0} is under legal hold; it cannot be deleted, expired or purged until the hold is cleared")]
    OnHold(String),
    /// See [`ErrorCode::InvalidPolicy`].
    #[error("retention policy refused: {0}")]
    InvalidPolicy(String),
    /// An audit chain does not verify ([`ErrorCode::Tampered`]): which device's chain, the
    /// first sequence number that cannot be trusted and what was found, as values.
    #[error(
        "the audit trail of device {} is broken: first bad event seq {} ({})",
        .0.device_id, .0.first_bad_seq, .0.kind.as_str()
    )]
    ChainBroken(labvault_governance::ChainError),
    /// See [`ErrorCode::SyncRefused`].
    #[error("refused from the tenant: {0}")]
    SyncRefused(String),
    /// See [`ErrorCode::FeedDiverged`].
    #[error("{0}")]
    FeedDiverged(String),
    /// See [`ErrorCode::ProjectLocked`].
    #[error("{0}")]
    ProjectLocked(String),
}

impl Error {
    /// The stable code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::WrongPassphrase => ErrorCode::WrongPassphrase,
            Error::WrongRecoveryKey => ErrorCode::WrongRecoveryKey,
            Error::InvalidRecoveryKey(_) => ErrorCode::InvalidRecoveryKey,
            Error::Locked => ErrorCode::Locked,
            Error::Tampered { .. } => ErrorCode::Tampered,
            Error::Truncated { .. } => ErrorCode::Truncated,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::InvalidName { .. } => ErrorCode::InvalidName,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            Error::CorruptKeyFile(_) => ErrorCode::CorruptKeyFile,
            Error::CorruptCatalog(_) => ErrorCode::CorruptCatalog,
            Error::KeyringUnavailable(_) => ErrorCode::KeyringUnavailable,
            Error::NoSpace(_) => ErrorCode::NoSpace,
            Error::SourceVanished { .. } => ErrorCode::SourceVanished,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::VaultBusy(_) => ErrorCode::VaultBusy,
            Error::Io { source, .. } if is_no_space(source) => ErrorCode::NoSpace,
            Error::Io { .. } => ErrorCode::Io,
            Error::Internal(_) => ErrorCode::Internal,
            Error::Erased(_) => ErrorCode::Erased,
            Error::OnHold(_) => ErrorCode::OnHold,
            Error::InvalidPolicy(_) => ErrorCode::InvalidPolicy,
            Error::ChainBroken(_) => ErrorCode::Tampered,
            Error::SyncRefused(_) => ErrorCode::SyncRefused,
            Error::FeedDiverged(_) => ErrorCode::FeedDiverged,
            Error::ProjectLocked(_) => ErrorCode::ProjectLocked,
        }
    }

    /// An I/O error with context naming the file; ENOSPC becomes [`Error::NoSpace`].
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        let context = context.into();
        if is_no_space(&source) {
            Error::NoSpace(context)
        } else {
            Error::Io { context, source }
        }
    }

    /// Shorthand for an I/O error on a path.
    pub(crate) fn io_path(what: &str, path: &Path, source: std::io::Error) -> Error {
        Error::io(format!("{what} {}", path.display()), source)
    }
}

/// ENOSPC (and EDQUOT) as a portable check.
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(28)
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode as C;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::NotADatabase => Error::CorruptCatalog(
                    "the catalog cannot be read with this vault's key (damaged, or from another vault)"
                        .into(),
                ),
                C::DatabaseCorrupt => Error::CorruptCatalog(e.to_string()),
                C::DiskFull => Error::NoSpace("the catalog".into()),
                // SQLITE_IOERR_SHMSIZE: the catalog's shared-memory index (`catalog.db-shm`)
                // could not be given its size, which on Linux means the disk is full.
                C::SystemIoFailure if f.extended_code == 4874 => Error::NoSpace(
                    "the catalog's shared index (catalog.db-shm): the disk holding the vault is full; free some space to open it"
                        .into(),
                ),
                C::SystemIoFailure => Error::Io {
                    context: format!("catalog I/O (SQLite extended code {})", f.extended_code),
                    source: std::io::Error::other(e.to_string()),
                },
                C::DatabaseBusy | C::DatabaseLocked => Error::VaultBusy(
                    "the catalog stayed locked by another LabVault process for 5 s; try again".into(),
                ),
                _ => Error::Internal(format!("catalog: {e}")),
            },
            _ => Error::Internal(format!("catalog: {e}")),
        }
    }
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_serialize_as_their_string() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
            let back: ErrorCode = serde_json::from_str(&format!("\"{}\"", c.as_str())).unwrap();
            assert_eq!(back, *c);
        }
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(Error::io("writing x", enospc).code(), ErrorCode::NoSpace);
    }
}
