//! Where the refresh token lives: the OS keyring (Secret Service), never a file. The access
//! token lives only in memory. A simulation uses [`MemoryTokens`].

use std::collections::HashMap;
use std::sync::Mutex;

use labvault_keyring::DeviceKeyring;
use zeroize::Zeroizing;

use crate::{Result, SyncError};

/// Stores the refresh token of a vault's session.
pub trait TokenStore: Send + Sync {
    /// The stored refresh token.
    fn load(&self, vault_id: &str) -> Result<Option<Zeroizing<String>>>;
    /// Stores (replaces) it; called after every rotation.
    fn store(&self, vault_id: &str, token: &str) -> Result<()>;
    /// Removes it (logout).
    fn delete(&self, vault_id: &str) -> Result<()>;
}

/// The OS keyring, under service `org.labvault.sync` (or `$LABVAULT_KEYRING_SERVICE.sync`,
/// so tests never touch real entries), one entry per vault.
pub struct KeyringTokens {
    ring: DeviceKeyring,
}

impl Default for KeyringTokens {
    fn default() -> Self {
        let service = match std::env::var("LABVAULT_KEYRING_SERVICE") {
            Ok(s) if !s.is_empty() => format!("{s}.sync"),
            _ => "org.labvault.sync".to_string(),
        };
        KeyringTokens {
            ring: DeviceKeyring::with_service(&service),
        }
    }
}

impl KeyringTokens {
    /// Entries under `service` (tests keep to their own).
    pub fn with_service(service: &str) -> KeyringTokens {
        KeyringTokens {
            ring: DeviceKeyring::with_service(service),
        }
    }
}

fn kr(e: labvault_keyring::KeyringError) -> SyncError {
    SyncError::Keyring(format!(
        "{e}: the sign-in token is kept only in the OS keyring (never in a file)"
    ))
}

impl TokenStore for KeyringTokens {
    fn load(&self, vault_id: &str) -> Result<Option<Zeroizing<String>>> {
        match self.ring.load(vault_id).map_err(kr)? {
            Some(b) => Ok(Some(Zeroizing::new(
                String::from_utf8(b.to_vec()).map_err(|_| {
                    SyncError::Keyring("the stored sign-in token is not text".into())
                })?,
            ))),
            None => Ok(None),
        }
    }

    fn store(&self, vault_id: &str, token: &str) -> Result<()> {
        self.ring.store(vault_id, token.as_bytes()).map_err(kr)
    }

    fn delete(&self, vault_id: &str) -> Result<()> {
        self.ring.delete(vault_id).map_err(kr).map(|_| ())
    }
}

/// Tokens in memory (simulations and tests that run without a keyring).
#[derive(Default)]
pub struct MemoryTokens {
    map: Mutex<HashMap<String, Zeroizing<String>>>,
}

impl TokenStore for MemoryTokens {
    fn load(&self, vault_id: &str) -> Result<Option<Zeroizing<String>>> {
        Ok(self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(vault_id)
            .cloned())
    }

    fn store(&self, vault_id: &str, token: &str) -> Result<()> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(vault_id.to_string(), Zeroizing::new(token.to_string()));
        Ok(())
    }

    fn delete(&self, vault_id: &str) -> Result<()> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(vault_id);
        Ok(())
    }
}
