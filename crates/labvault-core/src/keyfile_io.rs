//! Reading the vault's key file (`vault.key`) and naming what is wrong with it.

use std::fs;
use std::path::Path;

use labvault_crypto::{CryptoError, KeyFile};

use crate::error::{Error, Result};
use crate::layout::KEY_FILE;

/// The vault error for a key-file or unlock failure of the crypto crate.
pub(crate) fn key_err(e: CryptoError) -> Error {
    match e {
        CryptoError::WrongPassphrase => Error::WrongPassphrase,
        CryptoError::WrongRecoveryKey => Error::WrongRecoveryKey,
        CryptoError::InvalidRecoveryKey => Error::InvalidRecoveryKey(e.to_string()),
        CryptoError::UnsupportedVersion(v) => Error::UnsupportedVersion(format!(
            "the key file has format version {v}; update LabVault"
        )),
        CryptoError::CorruptKeyFile(m) => Error::CorruptKeyFile(m),
        CryptoError::KdfOutOfBounds(m) => Error::CorruptKeyFile(m),
        CryptoError::KeyringSecretInvalid => Error::KeyringUnavailable(e.to_string()),
        CryptoError::Io(io) => Error::io("key file", io),
        other => Error::CorruptKeyFile(other.to_string()),
    }
}

/// Reads and parses the key file of the vault in `dir`.
pub(crate) fn read_key_file(dir: &Path) -> Result<KeyFile> {
    let path = dir.join(KEY_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(format!("a vault at {}", dir.display())))
        }
        Err(e) => return Err(Error::io_path("reading", &path, e)),
    };
    // A real key file is well under 4 KiB; refuse to parse anything absurd.
    if bytes.len() > 64 * 1024 {
        return Err(Error::CorruptKeyFile(format!(
            "{} is {} bytes, far larger than any key file",
            path.display(),
            bytes.len()
        )));
    }
    KeyFile::from_bytes(&bytes).map_err(key_err)
}
