//! LabVault's cryptography: the key hierarchy (`docs/key-hierarchy.md`), the key file,
//! blob format v1 (`docs/blob-format-v1.md`), and the device keys, key boxes and sealed op
//! payloads of file sync (`docs/sync-protocol.md`), and the identity keys, member boxes, epoch
//! links and membership log entries of shared projects (`docs/sharing.md`).
//!
//! Pure crypto: no file system, no network; streams go through `Read`/`Write` so the
//! vault decides where bytes live.
#![forbid(unsafe_code)]

mod blob;
mod device;
mod error;
mod keyfile;
mod payload;
mod recovery;
mod sealed;
mod secret;
mod sharing;

pub use blob::{
    decrypt_blob, decrypt_range, encrypt_blob, encrypt_blob_buffer, random_file_id, DecryptSummary,
    EncryptSummary, PlaintextBuffer, ALG_AES256GCM_HKDF_SHA256, BLOB_VERSION, DEFAULT_CHUNK_SIZE,
    HEADER_LEN, MAGIC, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
#[doc(hidden)]
pub use blob::{encrypt_blob_buffer_with_header_randomness, encrypt_blob_with_header_randomness};
#[doc(hidden)]
pub use device::seal_key_box_with_randomness;
pub use device::{
    approval_statement, seal_key_box, DeviceKeys, DevicePublic, KeyBoxContext, PairingCode,
    PairingSecret,
};
pub use error::CryptoError;
pub use keyfile::{KdfParams, KeyFile, KEY_FILE_VERSION};
pub use payload::{PayloadContext, PayloadKey, PAYLOAD_VERSION};
pub use recovery::RecoveryKey;
pub use sealed::{seal, JournalPublicKey, JournalSecretKey, SEALED_VERSION};
pub use secret::{
    project_keys_equal, CatalogKey, DataKey, Passphrase, ProjectKey, RootKey, WrappedKey,
    WRAPPED_KEY_LEN,
};
#[doc(hidden)]
pub use sharing::seal_member_box_with_randomness;
pub use sharing::{
    link_epoch, open_epoch_link, seal_member_box, EntryBody, IdentityBoxContext, IdentityKeys,
    IdentityPublic, LogEntry, MemberBoxContext, MemberRole, UnsignedEntry,
    MEMBERSHIP_ENTRY_VERSION,
};
