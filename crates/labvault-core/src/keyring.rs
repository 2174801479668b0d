//! "Remember on this device": the root key in the OS keyring (Secret Service), by vault id.
//! Never a fallback to a file: without a reachable keyring the user gets `keyring_unavailable`
//! and the passphrase path keeps working.

use crate::error::{Error, Result};
use labvault_crypto::RootKey;

pub(crate) fn store_root_key(_vault_id: &str, _root: &RootKey) -> Result<()> {
    Err(Error::KeyringUnavailable("not built with keyring support yet".into()))
}

pub(crate) fn load_root_key(_vault_id: &str) -> Result<RootKey> {
    Err(Error::KeyringUnavailable("not built with keyring support yet".into()))
}

pub(crate) fn delete_root_key(_vault_id: &str) -> Result<()> {
    Err(Error::KeyringUnavailable("not built with keyring support yet".into()))
}
