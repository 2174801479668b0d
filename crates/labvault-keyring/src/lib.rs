//! "Remember on this device": keeps a vault's root-key secret in the OS keyring so the
//! vault can be unlocked without typing the passphrase.
//!
//! On Linux/BSD this is the freedesktop Secret Service (GNOME Keyring, KWallet) over
//! D-Bus. There is deliberately **no fallback**: when no Secret Service is reachable the
//! caller gets [`KeyringError::Unavailable`] and must use the passphrase; a secret is
//! never written to a file. On other platforms this crate currently always reports
//! `Unavailable` (native stores can be added later without an API change).
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

/// Service name under which LabVault entries are stored; one entry per vault id.
pub const DEFAULT_SERVICE: &str = "org.labvault.vault";

/// What can go wrong talking to the OS keyring. Each variant has a stable [`code`](KeyringError::code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// No Secret Service can be reached (no D-Bus session, or no provider on it).
    #[error("no OS keyring (Secret Service) is reachable; unlock with your passphrase")]
    Unavailable(String),
    /// The keyring is reachable but locked, or the user dismissed the unlock prompt.
    #[error("the OS keyring is locked or access was denied; unlock it, or use your passphrase")]
    Locked(String),
    /// The vault id cannot be used as a keyring entry name.
    #[error("invalid vault id for the OS keyring: {0}")]
    InvalidVaultId(&'static str),
    /// Any other keyring failure (the detail names the platform error, never the secret).
    #[error("OS keyring error: {0}")]
    Failed(String),
}

impl KeyringError {
    /// Stable snake_case code for CLI/UI mapping.
    pub fn code(&self) -> &'static str {
        match self {
            KeyringError::Unavailable(_) => "keyring_unavailable",
            KeyringError::Locked(_) => "keyring_locked",
            KeyringError::InvalidVaultId(_) => "invalid_vault_id",
            KeyringError::Failed(_) => "keyring_failed",
        }
    }
}

/// Handle on the device's keyring. Cheap to create; every call talks to the keyring anew
/// so a keyring that appears or disappears at runtime is noticed.
#[derive(Clone, Debug)]
pub struct DeviceKeyring {
    service: String,
}

impl Default for DeviceKeyring {
    fn default() -> Self {
        DeviceKeyring::new()
    }
}

impl DeviceKeyring {
    /// The keyring as LabVault uses it in production ([`DEFAULT_SERVICE`]).
    pub fn new() -> DeviceKeyring {
        DeviceKeyring::with_service(DEFAULT_SERVICE)
    }

    /// A separate namespace, so tests (or several app flavours) never touch real entries.
    pub fn with_service(service: &str) -> DeviceKeyring {
        DeviceKeyring {
            service: service.to_owned(),
        }
    }

    /// Stores (or replaces) the secret for `vault_id`; called by `remember`.
    pub fn store(&self, vault_id: &str, secret: &[u8]) -> Result<(), KeyringError> {
        check_vault_id(vault_id)?;
        imp::entry(&self.service, vault_id)?
            .set_secret(secret)
            .map_err(imp::classify)
    }

    /// The stored secret, or `None` if this vault is not remembered on this device.
    pub fn load(&self, vault_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        check_vault_id(vault_id)?;
        match imp::entry(&self.service, vault_id)?.get_secret() {
            Ok(s) => Ok(Some(Zeroizing::new(s))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(imp::classify(e)),
        }
    }

    /// Removes the entry (`forget`); returns whether there was one, so "forget" is idempotent.
    pub fn delete(&self, vault_id: &str) -> Result<bool, KeyringError> {
        check_vault_id(vault_id)?;
        match imp::entry(&self.service, vault_id)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(imp::classify(e)),
        }
    }
}

/// Vault ids are generated hex strings; anything else is refused rather than escaped.
fn check_vault_id(id: &str) -> Result<(), KeyringError> {
    if id.is_empty() {
        return Err(KeyringError::InvalidVaultId("empty"));
    }
    if id.len() > 128 {
        return Err(KeyringError::InvalidVaultId("longer than 128 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(KeyringError::InvalidVaultId(
            "only ASCII letters, digits, '-' and '_' are allowed",
        ));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod imp {
    use super::KeyringError;
    use keyring::secret_service::SsCredential;
    use keyring::Entry;

    /// Always the Secret Service store, never keyring's process-global default builder
    /// (which could be a mock or a non-persistent store).
    pub(crate) fn entry(service: &str, vault_id: &str) -> Result<Entry, KeyringError> {
        let cred = SsCredential::new_with_target(None, service, vault_id).map_err(classify)?;
        Ok(Entry::new_with_credential(Box::new(cred)))
    }

    /// D-Bus transport failures (no session bus, nobody owns org.freedesktop.secrets)
    /// mean "no keyring here"; Secret Service level refusals mean "locked".
    pub(crate) fn classify(e: keyring::Error) -> KeyringError {
        match e {
            keyring::Error::NoStorageAccess(inner) => KeyringError::Locked(inner.to_string()),
            keyring::Error::PlatformFailure(inner) => {
                let text = inner.to_string();
                match inner.downcast_ref::<dbus_secret_service::Error>() {
                    Some(dbus_secret_service::Error::Unavailable) => {
                        KeyringError::Unavailable(text)
                    }
                    Some(dbus_secret_service::Error::Dbus(d)) if is_transport(d) => {
                        KeyringError::Unavailable(text)
                    }
                    Some(dbus_secret_service::Error::Dbus(d)) if is_refusal(d) => {
                        KeyringError::Locked(text)
                    }
                    Some(
                        dbus_secret_service::Error::Locked | dbus_secret_service::Error::Prompt,
                    ) => KeyringError::Locked(text),
                    _ => KeyringError::Failed(text),
                }
            }
            other => KeyringError::Failed(other.to_string()),
        }
    }

    /// Bus-level failures: nothing (usable) is listening.
    fn is_transport(d: &dbus::Error) -> bool {
        match d.name() {
            None => true,
            Some(n) => {
                n.starts_with("org.freedesktop.DBus.Error.")
                    && !is_refusal(d)
                    && !n.ends_with(".UnknownMethod")
                    && !n.ends_with(".InvalidArgs")
            }
        }
    }

    /// The keyring is there but refuses: locked collection, denied access.
    fn is_refusal(d: &dbus::Error) -> bool {
        matches!(
            d.name(),
            Some("org.freedesktop.Secret.Error.IsLocked")
                | Some("org.freedesktop.DBus.Error.AccessDenied")
        )
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
mod imp {
    use super::KeyringError;

    /// No native store wired up yet on this platform: report it, never store elsewhere.
    pub(crate) fn entry(_: &str, _: &str) -> Result<keyring::Entry, KeyringError> {
        Err(KeyringError::Unavailable(
            "no supported OS keyring on this platform".into(),
        ))
    }

    pub(crate) fn classify(e: keyring::Error) -> KeyringError {
        KeyringError::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_ids_are_validated_before_touching_the_keyring() {
        let k = DeviceKeyring::with_service("org.labvault.test");
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(129)] {
            let e = k.store(bad, b"s").unwrap_err();
            assert_eq!(e.code(), "invalid_vault_id", "{bad:?}");
            assert!(k.load(bad).is_err());
            assert!(k.delete(bad).is_err());
        }
    }

    #[test]
    fn unavailable_message_points_to_passphrase() {
        let e = KeyringError::Unavailable("x".into());
        assert_eq!(e.code(), "keyring_unavailable");
        assert_eq!(
            e.to_string(),
            "no OS keyring (Secret Service) is reachable; unlock with your passphrase"
        );
    }
}
