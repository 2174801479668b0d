//! The wrapped-key format: a server key sealed under one version of the key-encryption key
//! (KEK), identical whether the KEK is a key file or an HSM object, so either can read what
//! the other wrote during a move between them and test vectors pin the bytes.
//!
//! Format v1 (`docs/server-keys.md`):
//! ```text
//! "LVWK" | 0x01 | kek_version: u32 BE | nonce: 12 bytes | AES-256-GCM(key) with 16-byte tag
//! associated data: "labvault/server/wrapped-key/v1" 0x00 purpose 0x00 header (the first 9 bytes)
//! ```
//! The purpose in the associated data binds a wrapped key to its role: the database key
//! cannot be swapped in as the token-signing key, and the KEK version in the header cannot
//! be altered to make the server try another key.

use zeroize::Zeroizing;

/// First bytes of every wrapped key.
pub const MAGIC: &[u8; 4] = b"LVWK";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Magic, version and KEK version.
pub const HEADER_LEN: usize = 9;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a wrapped key cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// Not a wrapped key at all (too short, wrong magic).
    #[error("not a LabVault wrapped key")]
    NotWrapped,
    /// A format version this build does not know.
    #[error("wrapped-key format version {0} is not supported (this server reads 1)")]
    UnknownVersion(u8),
    /// The KEK (or its version) did not seal this key, or the bytes were changed.
    #[error("the {purpose} key does not unwrap under key-encryption key version {kek_version}: a different KEK, or the wrapped key was altered")]
    Unauthentic {
        /// Role of the key.
        purpose: String,
        /// KEK version named in the header.
        kek_version: u32,
    },
}

/// The parsed parts of a wrapped key.
pub struct Parts<'a> {
    /// Which KEK version sealed it.
    pub kek_version: u32,
    /// The header, authenticated as associated data.
    pub header: &'a [u8],
    /// GCM nonce.
    pub nonce: &'a [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub sealed: &'a [u8],
}

/// The header for a key sealed under `kek_version`.
pub fn header(kek_version: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = VERSION;
    h[5..].copy_from_slice(&kek_version.to_be_bytes());
    h
}

/// The associated data of a key with this role and header.
pub fn aad(purpose: &str, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(40 + purpose.len() + header.len());
    a.extend_from_slice(b"labvault/server/wrapped-key/v1\0");
    a.extend_from_slice(purpose.as_bytes());
    a.push(0);
    a.extend_from_slice(header);
    a
}

/// Splits a wrapped key, checking magic, version and length.
pub fn parse(blob: &[u8]) -> Result<Parts<'_>, WrapError> {
    if blob.len() < HEADER_LEN || &blob[..4] != MAGIC {
        return Err(WrapError::NotWrapped);
    }
    if blob[4] != VERSION {
        return Err(WrapError::UnknownVersion(blob[4]));
    }
    if blob.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
        return Err(WrapError::NotWrapped);
    }
    let kek_version = u32::from_be_bytes(blob[5..9].try_into().expect("4 bytes"));
    Ok(Parts {
        kek_version,
        header: &blob[..HEADER_LEN],
        nonce: blob[HEADER_LEN..HEADER_LEN + NONCE_LEN]
            .try_into()
            .expect("12 bytes"),
        sealed: &blob[HEADER_LEN + NONCE_LEN..],
    })
}

/// Assembles header, nonce and sealed bytes.
pub fn assemble(kek_version: u32, nonce: &[u8; NONCE_LEN], sealed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
    out.extend_from_slice(&header(kek_version));
    out.extend_from_slice(nonce);
    out.extend_from_slice(sealed);
    out
}

/// Seals `key` with a software AES-256-GCM KEK (the key-file backend, and the reference the
/// HSM backend's output is checked against).
pub fn seal_with(
    kek: &[u8; 32],
    kek_version: u32,
    purpose: &str,
    nonce: &[u8; NONCE_LEN],
    key: &[u8],
) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(kek).expect("32-byte key");
    let h = header(kek_version);
    let sealed = cipher
        .encrypt(
            &aes_gcm::Nonce::from(*nonce),
            Payload {
                msg: key,
                aad: &aad(purpose, &h),
            },
        )
        .expect("AES-GCM of a small buffer cannot fail");
    assemble(kek_version, nonce, &sealed)
}

/// Opens a key sealed by [`seal_with`].
pub fn open_with(
    kek: &[u8; 32],
    purpose: &str,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, WrapError> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let p = parse(blob)?;
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(kek).expect("32-byte key");
    cipher
        .decrypt(
            &aes_gcm::Nonce::from(*p.nonce),
            Payload {
                msg: p.sealed,
                aad: &aad(purpose, p.header),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| WrapError::Unauthentic {
            purpose: purpose.to_string(),
            kek_version: p.kek_version,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEK: [u8; 32] = [0x42; 32];
    const NONCE: [u8; 12] = [7; 12];
    const KEY: [u8; 32] = [0xA5; 32];
    /// Test vector: `KEY` wrapped for purpose "db" under KEK `KEK` version 3 with `NONCE`
    /// (also in docs/server-keys.md). Checked against an independent AES-GCM implementation
    /// (Python `cryptography`) when it was written.
    const VECTOR: &str = "4c56574b0100000003070707070707070707070707dd47f8091054d75e86f1499578fe83d950ffaa985870ede0c5d19af6bf88bdd132d845efac9c3e27e068f5a4ecbcc03f";

    #[test]
    fn the_format_matches_its_test_vector() {
        let blob = seal_with(&KEK, 3, "db", &NONCE, &KEY);
        assert_eq!(hex::encode(&blob), VECTOR);
        assert_eq!(&open_with(&KEK, "db", &blob).unwrap()[..], &KEY);
    }

    #[test]
    fn negative_vectors_are_refused_with_their_reason() {
        let blob = hex::decode(VECTOR).unwrap();
        // Another role: the database key cannot pose as the token-signing key.
        assert!(matches!(
            open_with(&KEK, "jwt", &blob),
            Err(WrapError::Unauthentic { kek_version: 3, .. })
        ));
        // Another KEK.
        assert!(open_with(&[0x43; 32], "db", &blob).is_err());
        // The KEK version in the header is authenticated.
        let mut v = blob.clone();
        v[8] = 4;
        assert!(matches!(
            open_with(&KEK, "db", &v),
            Err(WrapError::Unauthentic { kek_version: 4, .. })
        ));
        // Every single-bit flip of the sealed part is detected.
        for i in HEADER_LEN..blob.len() {
            let mut t = blob.clone();
            t[i] ^= 1;
            assert!(open_with(&KEK, "db", &t).is_err(), "flip at {i}");
        }
        // Unknown format version, wrong magic, truncation.
        let mut v2 = blob.clone();
        v2[4] = 2;
        assert_eq!(
            open_with(&KEK, "db", &v2).unwrap_err(),
            WrapError::UnknownVersion(2)
        );
        assert_eq!(
            open_with(&KEK, "db", b"LVWX\x01\0\0\0\x03").unwrap_err(),
            WrapError::NotWrapped
        );
        assert_eq!(
            open_with(&KEK, "db", &blob[..HEADER_LEN + 12 + 15]).unwrap_err(),
            WrapError::NotWrapped
        );
        assert!(open_with(&KEK, "db", &blob[..blob.len() - 1]).is_err());
    }
}
