//! Sealed op payloads of file sync: the state of an item (names, folders, metadata, wrapped
//! data keys, plaintext hashes) as the server stores it, which it cannot read.
//!
//! Format v1: `0x01 || nonce (12, random) || AES-256-GCM(payload key, plaintext) || tag (16)`,
//! payload key = HKDF-SHA256(ikm = project key of the epoch, info = "labvault/v1/sync-payload"),
//! associated data = [`PayloadContext::aad`]: the project, item, op id, key epoch and base
//! revision the op was made for. A payload moved to another op, item, project, epoch or
//! revision (a server replaying or splicing ops) fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::device::put_field;
use crate::secret::{hkdf_32, ProjectKey};
use crate::CryptoError;

/// Payload format version.
pub const PAYLOAD_VERSION: u8 = 1;
const PAYLOAD_INFO: &[u8] = b"labvault/v1/sync-payload";
const PAYLOAD_LABEL: &[u8] = b"labvault/v1/op";
const OVERHEAD: usize = 1 + 12 + 16;

/// What a payload is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadContext<'a> {
    /// Project id.
    pub project_id: &'a str,
    /// Item id.
    pub item_id: &'a str,
    /// Op id.
    pub op_id: &'a str,
    /// Key epoch the payload is sealed under.
    pub epoch: u32,
    /// Item revision the op was based on.
    pub base_rev: u64,
}

impl PayloadContext<'_> {
    /// `"labvault/v1/op" || field(project) || field(item) || field(op) || epoch (u32 BE) ||
    /// base_rev (u64 BE)`, each field prefixed with its length (u32 BE).
    pub fn aad(&self) -> Vec<u8> {
        let mut a = PAYLOAD_LABEL.to_vec();
        put_field(&mut a, self.project_id.as_bytes());
        put_field(&mut a, self.item_id.as_bytes());
        put_field(&mut a, self.op_id.as_bytes());
        a.extend_from_slice(&self.epoch.to_be_bytes());
        a.extend_from_slice(&self.base_rev.to_be_bytes());
        a
    }
}

/// The key that seals payloads of one project epoch. Not `Clone`, redacted `Debug`, zeroized.
pub struct PayloadKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for PayloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PayloadKey([redacted])")
    }
}

impl PayloadKey {
    /// Derives the payload key of a project epoch key.
    pub fn derive(project_key: &ProjectKey) -> PayloadKey {
        PayloadKey(hkdf_32(&project_key.0, None, &[PAYLOAD_INFO]))
    }

    /// Seals `plaintext` for `ctx` with a fresh random nonce.
    pub fn seal(&self, ctx: &PayloadContext<'_>, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.seal_with_nonce(ctx, plaintext, nonce)
    }

    /// [`PayloadKey::seal`] with a fixed nonce, for committed test vectors only.
    #[doc(hidden)]
    pub fn seal_with_nonce(
        &self,
        ctx: &PayloadContext<'_>,
        plaintext: &[u8],
        nonce: [u8; 12],
    ) -> Vec<u8> {
        let ct = Aes256Gcm::new((&*self.0).into())
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &ctx.aad(),
                },
            )
            .expect("AES-GCM encryption of an in-memory payload cannot fail");
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.push(PAYLOAD_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a payload sealed for exactly `ctx` under this key. A newer format version is
    /// `UnsupportedVersion`; anything else that does not authenticate is `PayloadInvalid`.
    pub fn open(
        &self,
        ctx: &PayloadContext<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.is_empty() {
            return Err(CryptoError::PayloadInvalid);
        }
        if sealed[0] > PAYLOAD_VERSION {
            return Err(CryptoError::UnsupportedVersion(u32::from(sealed[0])));
        }
        if sealed[0] != PAYLOAD_VERSION || sealed.len() < OVERHEAD {
            return Err(CryptoError::PayloadInvalid);
        }
        Aes256Gcm::new((&*self.0).into())
            .decrypt(
                &Nonce::try_from(&sealed[1..13]).expect("12-byte nonce slice"),
                Payload {
                    msg: &sealed[13..],
                    aad: &ctx.aad(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::PayloadInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PayloadContext<'static> {
        PayloadContext {
            project_id: "p",
            item_id: "i",
            op_id: "o",
            epoch: 1,
            base_rev: 0,
        }
    }

    #[test]
    fn payloads_open_only_in_their_context_and_under_their_key() {
        let pk = ProjectKey::generate();
        let k = PayloadKey::derive(&pk);
        let b = k.seal(&ctx(), b"{\"path\":\"secret.csv\"}");
        assert_eq!(&*k.open(&ctx(), &b).unwrap(), b"{\"path\":\"secret.csv\"}");
        assert!(!b.windows(6).any(|w| w == b"secret"));
        let c = ctx();
        for other in [
            PayloadContext {
                project_id: "q",
                ..c
            },
            PayloadContext { item_id: "j", ..c },
            PayloadContext { op_id: "x", ..c },
            PayloadContext { epoch: 2, ..c },
            PayloadContext { base_rev: 1, ..c },
        ] {
            assert!(matches!(
                k.open(&other, &b),
                Err(CryptoError::PayloadInvalid)
            ));
        }
        let other_key = PayloadKey::derive(&ProjectKey::generate());
        assert!(other_key.open(&ctx(), &b).is_err());
        for i in 0..b.len() {
            let mut m = b.clone();
            m[i] ^= 1;
            assert!(k.open(&ctx(), &m).is_err(), "byte {i}");
        }
        let mut newer = b.clone();
        newer[0] = 2;
        assert!(matches!(
            k.open(&ctx(), &newer),
            Err(CryptoError::UnsupportedVersion(2))
        ));
        assert!(k.open(&ctx(), &b[..12]).is_err());
        // Field boundaries are unambiguous: ("ab","c") and ("a","bc") differ.
        let x = PayloadContext {
            project_id: "ab",
            item_id: "c",
            ..c
        };
        let y = PayloadContext {
            project_id: "a",
            item_id: "bc",
            ..c
        };
        assert_ne!(x.aad(), y.aad());
    }
}
