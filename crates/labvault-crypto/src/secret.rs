//! Secret newtypes of the key hierarchy and key wrapping.
//!
//! Every secret type here is deliberately *not* `Clone`, not `Serialize`, has a `Debug`
//! that prints `[redacted]`, and zeroizes its bytes on drop, so key material cannot be
//! copied around, logged or persisted by accident.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::CryptoError;

macro_rules! redacted_debug {
    ($t:ty) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), "([redacted])"))
            }
        }
    };
}

/// Fills a fresh 32-byte key from the OS CSPRNG.
pub(crate) fn random_32() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// HKDF-SHA256 expand of 32 bytes; the single derivation primitive of the hierarchy.
pub(crate) fn hkdf_32(ikm: &[u8], salt: Option<&[u8]>, info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand_multi_info(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// A user passphrase. Held in a zeroizing string so it leaves no copy in freed memory.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(String);
redacted_debug!(Passphrase);

impl Passphrase {
    /// Takes ownership so the only copy is the one that is zeroized on drop.
    pub fn new(p: String) -> Passphrase {
        Passphrase(p)
    }
    /// Lets callers reject empty passphrases without reading the secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Its length in characters, for a length policy, without handing the secret out.
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
    /// How many character classes it uses (lowercase, uppercase, digit, other), for a
    /// complexity policy, without handing the secret out.
    pub fn class_count(&self) -> usize {
        [
            self.0.chars().any(|c| c.is_lowercase()),
            self.0.chars().any(|c| c.is_uppercase()),
            self.0.chars().any(|c| c.is_ascii_digit()),
            self.0.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The vault's random 256-bit root key: everything else is derived from or wrapped by it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RootKey(pub(crate) [u8; 32]);
redacted_debug!(RootKey);

/// A random per-project key, stored in the catalog wrapped by the root key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ProjectKey(pub(crate) [u8; 32]);
redacted_debug!(ProjectKey);

/// A random per-file-version key, stored wrapped by its project key; destroying the
/// wrapped copy is what makes a purge a cryptographic erasure.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey(pub(crate) [u8; 32]);
redacted_debug!(DataKey);

/// The SQLCipher catalog key, derived (not stored) from the root key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CatalogKey(pub(crate) [u8; 32]);
redacted_debug!(CatalogKey);

/// Domain-separation labels; part of the on-disk format, never change them.
pub(crate) const CATALOG_INFO: &[u8] = b"labvault/v1/catalog";
const WRAP_AAD_PREFIX: &[u8] = b"labvault/v1/wrap";
pub(crate) const PURPOSE_PROJECT: &str = "project-key";
pub(crate) const PURPOSE_DATA: &str = "data-key";
pub(crate) const PURPOSE_ROOT_PASSPHRASE: &str = "root-key/passphrase";
pub(crate) const PURPOSE_ROOT_RECOVERY: &str = "root-key/recovery";
pub(crate) const PURPOSE_JOURNAL: &str = "journal-key";
const KEYRING_SECRET_VERSION: u8 = 1;

impl CatalogKey {
    /// SQLCipher raw-key syntax, so the catalog key bypasses SQLCipher's own PBKDF
    /// (the root key is already full-entropy). Use as `PRAGMA key = "<value>"`.
    pub fn sqlcipher_key_pragma_value(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(67));
        s.push_str("x'");
        let hexed = Zeroizing::new(hex::encode(self.0));
        s.push_str(&hexed);
        s.push('\'');
        s
    }
}

impl RootKey {
    /// A fresh vault root key from the OS CSPRNG.
    pub fn generate() -> RootKey {
        RootKey(random_32())
    }

    /// The catalog key is derived so it needs no storage and changes never.
    pub fn catalog_key(&self) -> CatalogKey {
        CatalogKey(*hkdf_32(&self.0, None, &[CATALOG_INFO]))
    }

    /// Wraps a project key, bound to `project_id` so it cannot be swapped between projects.
    pub fn wrap_project_key(&self, key: &ProjectKey, project_id: &str) -> WrappedKey {
        wrap(&self.0, &key.0, PURPOSE_PROJECT, project_id.as_bytes())
    }

    /// Unwraps a project key; fails unless it was wrapped for this `project_id` under this root.
    pub fn unwrap_project_key(
        &self,
        wrapped: &WrappedKey,
        project_id: &str,
    ) -> Result<ProjectKey, CryptoError> {
        unwrap(&self.0, wrapped, PURPOSE_PROJECT, project_id.as_bytes())
            .map(|k| ProjectKey(*k))
            .map_err(|_| CryptoError::KeyUnwrapFailed {
                purpose: "project key",
            })
    }

    /// Opaque, versioned export for the OS keyring ("remember on this device").
    pub fn to_keyring_secret(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(33));
        v.push(KEYRING_SECRET_VERSION);
        v.extend_from_slice(&self.0);
        v
    }

    /// Inverse of [`RootKey::to_keyring_secret`]; rejects anything else stored under our name.
    pub fn from_keyring_secret(b: &[u8]) -> Result<RootKey, CryptoError> {
        if b.len() != 33 || b[0] != KEYRING_SECRET_VERSION {
            return Err(CryptoError::KeyringSecretInvalid);
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&b[1..]);
        Ok(RootKey(k))
    }
}

impl ProjectKey {
    /// A fresh project key from the OS CSPRNG.
    pub fn generate() -> ProjectKey {
        ProjectKey(random_32())
    }

    /// Only for committed test vectors, which need a fixed key.
    #[doc(hidden)]
    pub fn from_bytes_for_test_vectors(b: [u8; 32]) -> ProjectKey {
        ProjectKey(b)
    }

    /// Wraps a data key, bound to `file_id` so a wrapped key cannot be moved to another file.
    pub fn wrap_data_key(&self, key: &DataKey, file_id: &[u8; 16]) -> WrappedKey {
        wrap(&self.0, &key.0, PURPOSE_DATA, file_id)
    }

    /// Unwraps a data key; fails unless it was wrapped for this `file_id` under this project key.
    pub fn unwrap_data_key(
        &self,
        wrapped: &WrappedKey,
        file_id: &[u8; 16],
    ) -> Result<DataKey, CryptoError> {
        unwrap(&self.0, wrapped, PURPOSE_DATA, file_id)
            .map(|k| DataKey(*k))
            .map_err(|_| CryptoError::KeyUnwrapFailed {
                purpose: "data key",
            })
    }
}

#[cfg(feature = "expose-keys-for-tests")]
impl RootKey {
    /// The key's bytes (only in test builds that enable `expose-keys-for-tests`).
    #[doc(hidden)]
    pub fn expose_for_tests(&self) -> [u8; 32] {
        self.0
    }
}

#[cfg(feature = "expose-keys-for-tests")]
impl ProjectKey {
    /// The key's bytes (only in test builds that enable `expose-keys-for-tests`).
    #[doc(hidden)]
    pub fn expose_for_tests(&self) -> [u8; 32] {
        self.0
    }
}

#[cfg(feature = "expose-keys-for-tests")]
impl DataKey {
    /// The key's bytes (only in test builds that enable `expose-keys-for-tests`).
    #[doc(hidden)]
    pub fn expose_for_tests(&self) -> [u8; 32] {
        self.0
    }
}

/// Whether two project keys are the same key (constant time): a key box must not replace a
/// project's key.
pub fn project_keys_equal(a: &ProjectKey, b: &ProjectKey) -> bool {
    a.0.iter()
        .zip(b.0.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl DataKey {
    /// A fresh data key for one file version.
    pub fn generate() -> DataKey {
        DataKey(random_32())
    }

    /// Only for committed test vectors, which need a fixed key.
    #[doc(hidden)]
    pub fn from_bytes_for_test_vectors(b: [u8; 32]) -> DataKey {
        DataKey(b)
    }
}

/// A key encrypted under another key: `version (1) || nonce (12) || AES-256-GCM(key) (32+16)`,
/// with associated data binding the purpose and the context id (project id, file id, vault id).
/// Not secret (it is ciphertext), so it may be cloned and stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

/// Wrapping format version 1: AES-256-GCM, random 96-bit nonce.
pub(crate) const WRAP_VERSION: u8 = 1;
/// Length of a v1 wrapped 256-bit key.
pub const WRAPPED_KEY_LEN: usize = 1 + 12 + 32 + 16;

impl WrappedKey {
    /// The bytes to store (catalog column, key file).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses stored bytes, checking version and length so garbage fails early and clearly.
    pub fn from_bytes(b: Vec<u8>) -> Result<WrappedKey, CryptoError> {
        if b.is_empty() {
            return Err(CryptoError::InvalidWrappedKey("empty"));
        }
        if b[0] != WRAP_VERSION {
            return Err(CryptoError::InvalidWrappedKey("unknown wrapping version"));
        }
        if b.len() != WRAPPED_KEY_LEN {
            return Err(CryptoError::InvalidWrappedKey("wrong length"));
        }
        Ok(WrappedKey(b))
    }
}

/// AAD = "labvault/v1/wrap" || 0 || purpose || 0 || context. Purposes never contain NUL, so
/// the encoding is unambiguous.
fn wrap_aad(purpose: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_PREFIX.len() + purpose.len() + context.len() + 2);
    aad.extend_from_slice(WRAP_AAD_PREFIX);
    aad.push(0);
    aad.extend_from_slice(purpose.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context);
    aad
}

pub(crate) fn wrap(kek: &[u8; 32], key: &[u8; 32], purpose: &str, context: &[u8]) -> WrappedKey {
    let cipher = Aes256Gcm::new(kek.into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = wrap_aad(purpose, context);
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: key,
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    WrappedKey(out)
}

/// Returns `Err(())` on authentication failure; callers turn it into a specific error.
#[allow(clippy::result_unit_err)]
pub(crate) fn unwrap(
    kek: &[u8; 32],
    wrapped: &WrappedKey,
    purpose: &str,
    context: &[u8],
) -> Result<Zeroizing<[u8; 32]>, ()> {
    let b = &wrapped.0;
    if b.len() != WRAPPED_KEY_LEN || b[0] != WRAP_VERSION {
        return Err(());
    }
    let cipher = Aes256Gcm::new(kek.into());
    let aad = wrap_aad(purpose, context);
    let pt = Zeroizing::new(
        cipher
            .decrypt(
                &Nonce::try_from(&b[1..13]).expect("12-byte nonce slice"),
                Payload {
                    msg: &b[13..],
                    aad: &aad,
                },
            )
            .map_err(|_| ())?,
    );
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&pt);
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_key_round_trip_and_context_binding() {
        let root = RootKey::generate();
        let pk = ProjectKey::generate();
        let w = root.wrap_project_key(&pk, "project-a");
        let back = root.unwrap_project_key(&w, "project-a").unwrap();
        assert_eq!(back.0, pk.0);
        let e = root.unwrap_project_key(&w, "project-b").unwrap_err();
        assert_eq!(e.code(), "key_unwrap_failed");
        let other_root = RootKey::generate();
        assert!(other_root.unwrap_project_key(&w, "project-a").is_err());
    }

    #[test]
    fn data_key_bound_to_file_id_and_purpose() {
        let pk = ProjectKey::generate();
        let dk = DataKey::generate();
        let w = pk.wrap_data_key(&dk, &[1; 16]);
        assert_eq!(pk.unwrap_data_key(&w, &[1; 16]).unwrap().0, dk.0);
        assert_eq!(
            pk.unwrap_data_key(&w, &[2; 16]).unwrap_err().code(),
            "key_unwrap_failed"
        );
        // A data key wrapped under a project key must not unwrap as a project key even if
        // the kek and context bytes coincide: the purpose is bound too.
        let root = RootKey(pk.0);
        let ctx = std::str::from_utf8(&[b'a'; 16]).unwrap().to_owned();
        let w2 = pk.wrap_data_key(&dk, &[b'a'; 16]);
        assert!(root.unwrap_project_key(&w2, &ctx).is_err());
    }

    #[test]
    fn tampered_wrapped_key_fails() {
        let root = RootKey::generate();
        let w = root.wrap_project_key(&ProjectKey::generate(), "p");
        for i in 1..WRAPPED_KEY_LEN {
            let mut b = w.as_bytes().to_vec();
            b[i] ^= 0x01;
            let w2 = WrappedKey::from_bytes(b).unwrap();
            assert!(root.unwrap_project_key(&w2, "p").is_err(), "byte {i}");
        }
    }

    #[test]
    fn wrapped_key_from_bytes_validates() {
        assert_eq!(
            WrappedKey::from_bytes(vec![]).unwrap_err().code(),
            "invalid_wrapped_key"
        );
        assert!(WrappedKey::from_bytes(vec![2; WRAPPED_KEY_LEN]).is_err());
        assert!(WrappedKey::from_bytes(vec![1; WRAPPED_KEY_LEN - 1]).is_err());
        assert!(WrappedKey::from_bytes(vec![1; WRAPPED_KEY_LEN]).is_ok());
    }

    #[test]
    fn keyring_secret_round_trip() {
        let root = RootKey::generate();
        let s = root.to_keyring_secret();
        let back = RootKey::from_keyring_secret(&s).unwrap();
        assert_eq!(back.0, root.0);
        assert_eq!(
            RootKey::from_keyring_secret(&s[1..]).unwrap_err().code(),
            "keyring_secret_invalid"
        );
        let mut bad = s.to_vec();
        bad[0] = 9;
        assert!(RootKey::from_keyring_secret(&bad).is_err());
    }

    #[test]
    fn catalog_key_is_deterministic_and_formatted() {
        let root = RootKey([7; 32]);
        let a = root.catalog_key().sqlcipher_key_pragma_value();
        let b = root.catalog_key().sqlcipher_key_pragma_value();
        assert_eq!(*a, *b);
        assert!(a.starts_with("x'") && a.ends_with('\'') && a.len() == 67);
        assert_ne!(
            *a,
            *RootKey([8; 32]).catalog_key().sqlcipher_key_pragma_value()
        );
    }

    #[test]
    fn debug_is_redacted() {
        let r = RootKey([0x41; 32]);
        let s = format!("{r:?} {:?}", Passphrase::new("hunter2".into()));
        assert!(!s.contains("hunter2") && !s.contains("65") && s.contains("redacted"));
    }
}
