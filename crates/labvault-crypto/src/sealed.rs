//! Sealed boxes to the vault's journal key: anyone holding the (public) journal key can seal a
//! small message that only the unlocked vault can open. Used for what happens while the vault
//! is locked (failed unlock attempts, "forget on this device"), when no secret is available.
//!
//! Format v1 (ECIES): `0x01 || ephemeral X25519 public key (32) || nonce (12) || AES-256-GCM
//! ciphertext + tag`, with key = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt =
//! ephemeral public || recipient public, info = "labvault/v1/sealed-box") and the caller's
//! associated data bound by the tag. A fresh ephemeral key per message means every message has
//! its own key; the random nonce is belt and braces.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::secret::{hkdf_32, unwrap, wrap, RootKey, WrappedKey, PURPOSE_JOURNAL};
use crate::CryptoError;

/// Sealed-box format version.
pub const SEALED_VERSION: u8 = 1;
const SEALED_INFO: &[u8] = b"labvault/v1/sealed-box";
const OVERHEAD: usize = 1 + 32 + 12 + 16;

/// The public half of the journal key, stored in clear in the key file so that a process that
/// cannot unlock the vault can still seal to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalPublicKey(pub(crate) [u8; 32]);

impl JournalPublicKey {
    /// Raw bytes (key file field).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// From raw bytes (key file field).
    pub fn from_bytes(b: [u8; 32]) -> JournalPublicKey {
        JournalPublicKey(b)
    }
}

/// The private half of the journal key: kept only wrapped by the root key, unwrapped while the
/// vault is unlocked to open the journal. Not `Clone`, redacted `Debug`, zeroized on drop (by
/// `x25519_dalek::StaticSecret`).
pub struct JournalSecretKey(StaticSecret);

impl std::fmt::Debug for JournalSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalSecretKey([redacted])")
    }
}

impl JournalSecretKey {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> JournalSecretKey {
        JournalSecretKey(StaticSecret::random_from_rng(rand::rngs::OsRng))
    }

    /// The matching public key.
    pub fn public_key(&self) -> JournalPublicKey {
        JournalPublicKey(PublicKey::from(&self.0).to_bytes())
    }

    /// Wraps the private key under the root key, bound to the vault id.
    pub fn wrap(&self, root: &RootKey, vault_id: &str) -> WrappedKey {
        let b = Zeroizing::new(self.0.to_bytes());
        wrap(&root.0, &b, PURPOSE_JOURNAL, vault_id.as_bytes())
    }

    /// Unwraps a private key wrapped by [`JournalSecretKey::wrap`] for this vault.
    pub fn unwrap(
        root: &RootKey,
        wrapped: &WrappedKey,
        vault_id: &str,
    ) -> Result<JournalSecretKey, CryptoError> {
        let k = unwrap(&root.0, wrapped, PURPOSE_JOURNAL, vault_id.as_bytes()).map_err(|_| {
            CryptoError::KeyUnwrapFailed {
                purpose: "journal key",
            }
        })?;
        Ok(JournalSecretKey(StaticSecret::from(*k)))
    }

    /// Opens a sealed box. Any failure (wrong key, modified bytes, other associated data) is
    /// [`CryptoError::SealedBoxInvalid`]; nothing of the plaintext is released before the tag
    /// is checked.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open_raw(&self.0, sealed, aad).map_err(|_| CryptoError::SealedBoxInvalid)
    }
}

/// Opens a sealed box (format v1) with the recipient's private key. `Err(())` on any failure.
#[allow(clippy::result_unit_err)]
pub(crate) fn open_raw(
    sk: &StaticSecret,
    sealed: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ()> {
    if sealed.len() < OVERHEAD || sealed[0] != SEALED_VERSION {
        return Err(());
    }
    let epk: [u8; 32] = sealed[1..33].try_into().expect("checked length");
    let shared = sk.diffie_hellman(&PublicKey::from(epk));
    if !shared.was_contributory() {
        return Err(());
    }
    let key = box_key(shared.as_bytes(), &epk, PublicKey::from(sk).as_bytes());
    let cipher = Aes256Gcm::new((&*key).into());
    cipher
        .decrypt(
            &Nonce::try_from(&sealed[33..45]).expect("12-byte nonce slice"),
            Payload {
                msg: &sealed[45..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| ())
}

fn box_key(shared: &[u8; 32], epk: &[u8; 32], rpk: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(epk);
    salt[32..].copy_from_slice(rpk);
    hkdf_32(shared, Some(&salt), &[SEALED_INFO])
}

/// Seals `plaintext` (with associated data `aad`, authenticated but not stored) to `to`.
pub fn seal(to: &JournalPublicKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    seal_fresh(&to.0, plaintext, aad)
}

/// Sealed box v1 to the X25519 key `to`, with a fresh ephemeral key and nonce.
pub(crate) fn seal_fresh(to: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let eph = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal_raw(to, eph, nonce, plaintext, aad)
}

/// Sealed box v1 to the X25519 key `to` with the given ephemeral key and nonce (fresh random
/// ones in every caller but the committed test vectors).
pub(crate) fn seal_raw(
    to: &[u8; 32],
    eph: StaticSecret,
    nonce: [u8; 12],
    plaintext: &[u8],
    aad: &[u8],
) -> Vec<u8> {
    let epk = PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&PublicKey::from(*to));
    let key = box_key(shared.as_bytes(), &epk, to);
    let ct = Aes256Gcm::new((&*key).into())
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of a small message cannot fail");
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(SEALED_VERSION);
    out.extend_from_slice(&epk);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_binds_aad_and_recipient() {
        let sk = JournalSecretKey::generate();
        let pk = sk.public_key();
        let b = seal(&pk, b"failed unlock", b"vault-1");
        assert_eq!(&*sk.open(&b, b"vault-1").unwrap(), b"failed unlock");
        // Other associated data, other recipient: refused.
        assert!(matches!(
            sk.open(&b, b"vault-2"),
            Err(CryptoError::SealedBoxInvalid)
        ));
        let other = JournalSecretKey::generate();
        assert!(other.open(&b, b"vault-1").is_err());
        // Two seals of the same message differ (fresh ephemeral key).
        assert_ne!(b, seal(&pk, b"failed unlock", b"vault-1"));
        // The plaintext does not appear in the box.
        assert!(!b.windows(6).any(|w| w == b"failed"));
    }

    #[test]
    fn every_modified_byte_truncation_and_low_order_key_is_refused() {
        let sk = JournalSecretKey::generate();
        let b = seal(&sk.public_key(), b"x", b"");
        for i in 0..b.len() {
            let mut m = b.clone();
            m[i] ^= 0x01;
            assert!(sk.open(&m, b"").is_err(), "byte {i}");
        }
        assert!(sk.open(&b[..b.len() - 1], b"").is_err());
        assert!(sk.open(&[], b"").is_err());
        // An all-zero (low-order) ephemeral key gives a non-contributory secret.
        let mut z = b.clone();
        z[1..33].fill(0);
        assert!(matches!(
            sk.open(&z, b""),
            Err(CryptoError::SealedBoxInvalid)
        ));
    }

    #[test]
    fn private_key_wraps_under_the_root_key_bound_to_the_vault() {
        let root = RootKey::generate();
        let sk = JournalSecretKey::generate();
        let w = sk.wrap(&root, "vault-a");
        let back = JournalSecretKey::unwrap(&root, &w, "vault-a").unwrap();
        assert_eq!(back.public_key(), sk.public_key());
        assert!(JournalSecretKey::unwrap(&root, &w, "vault-b").is_err());
        assert!(JournalSecretKey::unwrap(&RootKey::generate(), &w, "vault-a").is_err());
        assert_eq!(format!("{sk:?}"), "JournalSecretKey([redacted])");
    }
}
