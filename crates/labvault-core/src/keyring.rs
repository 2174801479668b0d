//! "Remember on this device": the root key in the OS keyring (Secret Service), by vault id.
//! Never a fallback to a file: without a reachable keyring the user gets `keyring_unavailable`
//! and the passphrase path keeps working.

use crate::error::{Error, Result};
use labvault_crypto::RootKey;
use labvault_keyring::{DeviceKeyring, KeyringError};

/// The keyring namespace: `LABVAULT_KEYRING_SERVICE` overrides it so tests never touch the
/// real entries of the person running them.
fn keyring() -> DeviceKeyring {
    match std::env::var("LABVAULT_KEYRING_SERVICE") {
        Ok(s) if !s.is_empty() => DeviceKeyring::with_service(&s),
        _ => DeviceKeyring::new(),
    }
}

fn map(e: KeyringError) -> Error {
    Error::KeyringUnavailable(e.to_string())
}

pub(crate) fn store_root_key(vault_id: &str, root: &RootKey) -> Result<()> {
    keyring()
        .store(vault_id, &root.to_keyring_secret())
        .map_err(map)
}

pub(crate) fn load_root_key(vault_id: &str) -> Result<RootKey> {
    match keyring().load(vault_id).map_err(map)? {
        Some(secret) => RootKey::from_keyring_secret(&secret).map_err(|_| {
            Error::KeyringUnavailable(
                "the OS keyring entry for this vault is not a valid key; run `labvault forget`"
                    .into(),
            )
        }),
        None => Err(Error::KeyringUnavailable(
            "this device does not remember the vault (use `labvault remember`)".into(),
        )),
    }
}

pub(crate) fn delete_root_key(vault_id: &str) -> Result<bool> {
    keyring().delete(vault_id).map_err(map)
}

/// Asks the keyring itself whether it answers, and whether it holds `vault_id`'s entry. An
/// unreachable or locked Secret Service is an error naming why.
pub(crate) fn probe(vault_id: Option<&str>) -> Result<bool> {
    // An id no vault has: the lookup still makes the keyring answer (or fail).
    let id = vault_id.unwrap_or("labvault-availability-probe");
    let found = keyring().load(id).map_err(map)?.is_some();
    Ok(vault_id.is_some() && found)
}
