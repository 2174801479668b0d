//! One error type for all of labvault-crypto, with stable snake_case codes.

/// Everything that can go wrong in key handling and blob processing.
///
/// Callers map these to user-facing messages; [`CryptoError::code`] is the stable
/// machine-readable identifier (used in CLI exit JSON and tests), so it never changes
/// once published. Marked `#[non_exhaustive]` so new failure modes can be added
/// without breaking downstream `match`es.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The passphrase did not unlock the key file. Deliberately carries no detail.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A well-formed recovery key that does not belong to this vault.
    #[error("wrong recovery key: it is well-formed but does not unlock this vault")]
    WrongRecoveryKey,
    /// A recovery key with a typo: bad length, bad character or checksum mismatch.
    #[error("invalid recovery key: wrong length, a character that is not in the recovery alphabet, or a checksum mismatch (check for a typo)")]
    InvalidRecoveryKey,
    /// A blob chunk failed authentication (modified, reordered, spliced from another
    /// blob, or decrypted with the wrong key).
    #[error("blob failed authentication at chunk {chunk}: it was modified, reordered, spliced from another file, or the key is wrong")]
    Tampered {
        /// Zero-based index of the first chunk that failed.
        chunk: u64,
    },
    /// The blob ends before its final chunk (cut at a chunk boundary or inside a chunk).
    #[error("blob is truncated: it ends before its final chunk")]
    Truncated,
    /// Bytes follow the authenticated final chunk (e.g. a repeated final chunk).
    #[error("blob has data after its final chunk")]
    TrailingData,
    /// The input does not start with the blob magic bytes.
    #[error("not a LabVault blob (bad magic bytes)")]
    NotABlob,
    /// A blob or key file written by a newer LabVault.
    #[error("unsupported format version {0}: written by a newer LabVault")]
    UnsupportedVersion(u32),
    /// The blob header names another file id than the catalog expects.
    #[error("blob belongs to another file (file id in its header does not match)")]
    FileIdMismatch,
    /// A blob header field is out of range (unknown algorithm, chunk size outside limits).
    #[error("invalid blob header: {0}")]
    InvalidHeader(String),
    /// The key file is not valid JSON, not a LabVault key file, or has malformed fields.
    #[error("corrupt or foreign key file: {0}")]
    CorruptKeyFile(String),
    /// The key file asks for Argon2id parameters outside the accepted floor/ceiling.
    #[error("key file KDF parameters out of bounds: {0}")]
    KdfOutOfBounds(String),
    /// A wrapped key has the wrong length or an unknown wrapping version.
    #[error("invalid wrapped key: {0}")]
    InvalidWrappedKey(&'static str),
    /// A wrapped key failed authentication: it was modified, or it belongs to another
    /// project/file (the context id is bound as associated data).
    #[error("wrapped {purpose} failed authentication: modified, or it belongs to another context")]
    KeyUnwrapFailed {
        /// What kind of key it was ("project key", "data key").
        purpose: &'static str,
    },
    /// A sealed box (journal entry) failed to open: modified, truncated, sealed to another
    /// key, or bound to other associated data.
    #[error("sealed box failed authentication: modified, truncated, or sealed to another key")]
    SealedBoxInvalid,
    /// A sealed op payload of file sync failed authentication: modified, sealed under another
    /// key epoch, or moved to another op, item, project or revision.
    #[error("sync payload failed authentication: modified, under another key, or moved to another op or item")]
    PayloadInvalid,
    /// A key box failed to open: modified, sealed to another device, or for another project
    /// or epoch.
    #[error(
        "key box failed authentication: modified, or sealed to another device, project or epoch"
    )]
    KeyBoxInvalid,
    /// A signature (of a key box, a device approval, an anchor) does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A membership log entry that does not parse (names what is wrong).
    #[error("invalid membership entry: {0}")]
    MembershipEntryInvalid(&'static str),
    /// A pairing code with a typo (length, character).
    #[error("invalid pairing code: expected 20 characters (XXXXX-XXXXX-XXXXX-XXXXX) from the new device's screen")]
    InvalidPairingCode,
    /// The secret read from the OS keyring is not a LabVault root key.
    #[error("the secret stored in the OS keyring is not a valid LabVault root key")]
    KeyringSecretInvalid,
    /// I/O error of the caller's input or output stream (kept intact so ENOSPC etc. can be mapped).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl CryptoError {
    /// Stable snake_case code for scripts, logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::WrongPassphrase => "wrong_passphrase",
            CryptoError::WrongRecoveryKey => "wrong_recovery_key",
            CryptoError::InvalidRecoveryKey => "invalid_recovery_key",
            CryptoError::Tampered { .. } => "tampered",
            CryptoError::Truncated => "truncated",
            CryptoError::TrailingData => "trailing_data",
            CryptoError::NotABlob => "not_a_blob",
            CryptoError::UnsupportedVersion(_) => "unsupported_version",
            CryptoError::FileIdMismatch => "file_id_mismatch",
            CryptoError::InvalidHeader(_) => "invalid_header",
            CryptoError::CorruptKeyFile(_) => "corrupt_key_file",
            CryptoError::KdfOutOfBounds(_) => "kdf_out_of_bounds",
            CryptoError::InvalidWrappedKey(_) => "invalid_wrapped_key",
            CryptoError::KeyUnwrapFailed { .. } => "key_unwrap_failed",
            CryptoError::KeyringSecretInvalid => "keyring_secret_invalid",
            CryptoError::SealedBoxInvalid => "sealed_box_invalid",
            CryptoError::PayloadInvalid => "payload_invalid",
            CryptoError::KeyBoxInvalid => "key_box_invalid",
            CryptoError::BadSignature => "bad_signature",
            CryptoError::InvalidPairingCode => "invalid_pairing_code",
            CryptoError::MembershipEntryInvalid(_) => "membership_entry_invalid",
            CryptoError::Io(_) => "io",
        }
    }
}
