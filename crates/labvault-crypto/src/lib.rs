//! LabVault's cryptography: the key hierarchy (`docs/key-hierarchy.md`), the key file,
//! and blob format v1 (`docs/blob-format-v1.md`).
//!
//! Pure crypto: no file system, no network; streams go through `Read`/`Write` so the
//! vault decides where bytes live.
#![forbid(unsafe_code)]

mod blob;
mod error;
mod keyfile;
mod recovery;
mod sealed;
mod secret;

pub use blob::{
    decrypt_blob, decrypt_range, encrypt_blob, encrypt_blob_buffer, random_file_id, DecryptSummary,
    EncryptSummary, PlaintextBuffer, ALG_AES256GCM_HKDF_SHA256, BLOB_VERSION, DEFAULT_CHUNK_SIZE,
    HEADER_LEN, MAGIC, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
#[doc(hidden)]
pub use blob::{encrypt_blob_buffer_with_header_randomness, encrypt_blob_with_header_randomness};
pub use error::CryptoError;
pub use keyfile::{KdfParams, KeyFile, KEY_FILE_VERSION};
pub use recovery::RecoveryKey;
pub use sealed::{seal, JournalPublicKey, JournalSecretKey, SEALED_VERSION};
pub use secret::{
    CatalogKey, DataKey, Passphrase, ProjectKey, RootKey, WrappedKey, WRAPPED_KEY_LEN,
};
