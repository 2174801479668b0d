//! Keys of shared projects (`docs/sharing.md`): a user's identity key pairs, sealed to each of
//! their devices ("identity boxes") so that sharing with a person does not depend on which of
//! their devices is online; project epoch keys sealed to members' identities ("member boxes");
//! epoch links (each new epoch key encrypts the previous one, so a new member can read
//! history); signed, hash-chained membership log entries; and safety numbers, which members
//! compare out of band to know that the identity the server lists is the person's own.
//!
//! Only formats live here; what a log may contain (who may sign what, when a rotation is owed)
//! is checked by the vault against these entries.

use sha2::{Digest, Sha256, Sha512};
use x25519_dalek::StaticSecret;

use crate::device::{put_field, verify_signed, DeviceKeys, DevicePublic, KeyPairs};
use crate::sealed::{open_raw, seal_fresh, seal_raw};
use crate::secret::{unwrap, wrap, ProjectKey, RootKey, WrappedKey};
use crate::CryptoError;

const PURPOSE_IDENTITY_X25519: &str = "identity-x25519";
const PURPOSE_IDENTITY_ED25519: &str = "identity-ed25519";
const PURPOSE_EPOCH_LINK: &str = "epoch-link";
const IDENTITY_BOX_LABEL: &[u8] = b"labvault/v1/identity-box";
const MEMBER_BOX_LABEL: &[u8] = b"labvault/v1/member-box";
const SAFETY_LABEL: &[u8] = b"labvault/v1/safety-number";
const ENTRY_LABEL: &[u8] = b"labvault/v1/membership-entry";
const ENTRY_HASH_LABEL: &[u8] = b"labvault/v1/membership-hash";
/// Signature kind of membership entries (see [`crate::DevicePublic::verify`] for the framing).
const ENTRY_SIG_KIND: &str = "membership-entry";

/// Membership entry format version.
pub const MEMBERSHIP_ENTRY_VERSION: u8 = 1;
/// Iterations of the safety number's hash: makes finding a second identity with the same
/// number (a 2^100 search for 30 digits) that much more expensive.
const SAFETY_ITERATIONS: usize = 5200;

/// The public halves of a user's identity, as the membership log records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityPublic {
    /// X25519 key that member boxes are sealed to.
    pub x25519: [u8; 32],
    /// Ed25519 key that checks the membership entries the user signs.
    pub ed25519: [u8; 32],
}

impl IdentityPublic {
    /// Checks a membership entry's signature.
    fn verify(&self, statement: &[u8], signature: &[u8; 64]) -> Result<(), CryptoError> {
        verify_signed(&self.ed25519, ENTRY_SIG_KIND, statement, signature)
    }

    /// The safety number of this identity for user `user_id`: 30 digits in 6 groups of 5.
    /// Two members compare it out of band (read aloud, side by side); a server that swapped
    /// the key shows another number. SHA-512 iterated over the keys and the user id.
    pub fn safety_number(&self, user_id: &str) -> String {
        let mut h: [u8; 64] = Sha512::new()
            .chain_update(SAFETY_LABEL)
            .chain_update((user_id.len() as u32).to_be_bytes())
            .chain_update(user_id.as_bytes())
            .chain_update(self.x25519)
            .chain_update(self.ed25519)
            .finalize()
            .into();
        for _ in 1..SAFETY_ITERATIONS {
            h = Sha512::new()
                .chain_update(h)
                .chain_update(self.ed25519)
                .finalize()
                .into();
        }
        // Six 5-byte chunks, each reduced mod 100,000 (as Signal does).
        h.chunks(5)
            .take(6)
            .map(|c| {
                let v = c.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
                format!("{:05}", v % 100_000)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A user's identity private keys. Not `Clone`, redacted `Debug`, zeroized on drop (by the
/// dalek types).
pub struct IdentityKeys(KeyPairs);

impl std::fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKeys([redacted])")
    }
}

impl IdentityKeys {
    /// Fresh key pairs from the OS CSPRNG.
    pub fn generate() -> IdentityKeys {
        IdentityKeys(KeyPairs::generate())
    }

    /// Only for committed test vectors, which need fixed keys.
    #[doc(hidden)]
    pub fn from_seeds_for_test_vectors(x25519: [u8; 32], ed25519: [u8; 32]) -> IdentityKeys {
        IdentityKeys(KeyPairs::from_seeds(x25519, ed25519))
    }

    /// The public halves.
    pub fn public(&self) -> IdentityPublic {
        let (x25519, ed25519) = self.0.public();
        IdentityPublic { x25519, ed25519 }
    }

    /// The private keys' bytes (X25519, Ed25519), only in test builds that enable
    /// `expose-keys-for-tests` (the blindness test looks for them on the tenant).
    #[cfg(feature = "expose-keys-for-tests")]
    #[doc(hidden)]
    pub fn expose_for_tests(&self) -> ([u8; 32], [u8; 32]) {
        let b = self.0.to_bytes();
        (
            b[..32].try_into().expect("32 bytes"),
            b[32..].try_into().expect("32 bytes"),
        )
    }

    /// Both private keys wrapped under the vault's root key, bound to the user id (for the
    /// catalog of a device that holds the identity).
    pub fn wrap(&self, root: &RootKey, user_id: &str) -> (WrappedKey, WrappedKey) {
        self.0.wrap(
            root,
            (PURPOSE_IDENTITY_X25519, PURPOSE_IDENTITY_ED25519),
            user_id.as_bytes(),
        )
    }

    /// Inverse of [`IdentityKeys::wrap`].
    pub fn unwrap(
        root: &RootKey,
        x25519: &WrappedKey,
        ed25519: &WrappedKey,
        user_id: &str,
    ) -> Result<IdentityKeys, CryptoError> {
        KeyPairs::unwrap(
            root,
            (x25519, ed25519),
            (PURPOSE_IDENTITY_X25519, PURPOSE_IDENTITY_ED25519),
            user_id.as_bytes(),
            "identity key",
        )
        .map(IdentityKeys)
    }

    /// Seals this identity to one of the user's devices (sealed-box format v1; the plaintext
    /// is the X25519 then the Ed25519 private key, bound to the user and the device).
    pub fn seal_to_device(&self, device: &DevicePublic, ctx: &IdentityBoxContext<'_>) -> Vec<u8> {
        seal_fresh(&device.x25519, &self.0.to_bytes()[..], &ctx.aad())
    }

    /// [`IdentityKeys::seal_to_device`] with fixed randomness, for committed test vectors only.
    #[doc(hidden)]
    pub fn seal_to_device_with_randomness(
        &self,
        device: &DevicePublic,
        ctx: &IdentityBoxContext<'_>,
        ephemeral: [u8; 32],
        nonce: [u8; 12],
    ) -> Vec<u8> {
        seal_raw(
            &device.x25519,
            StaticSecret::from(ephemeral),
            nonce,
            &self.0.to_bytes()[..],
            &ctx.aad(),
        )
    }

    /// Opens an identity box sealed to `device` by [`IdentityKeys::seal_to_device`], and
    /// checks that it holds the identity the log lists (`expected`): a box with other keys
    /// is refused like a tampered one.
    pub fn open_identity_box(
        device: &DeviceKeys,
        sealed: &[u8],
        ctx: &IdentityBoxContext<'_>,
        expected: &IdentityPublic,
    ) -> Result<IdentityKeys, CryptoError> {
        let pt = open_raw(device.x25519_secret(), sealed, &ctx.aad())
            .map_err(|_| CryptoError::KeyBoxInvalid)?;
        let seeds: &[u8; 64] = pt
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::KeyBoxInvalid)?;
        let (x, e) = seeds.split_at(32);
        let keys = IdentityKeys(KeyPairs::from_seeds(
            x.try_into().expect("32 bytes"),
            e.try_into().expect("32 bytes"),
        ));
        if keys.public() != *expected {
            return Err(CryptoError::KeyBoxInvalid);
        }
        Ok(keys)
    }

    /// Opens a member box sealed to this identity (see [`seal_member_box`]).
    pub fn open_member_box(
        &self,
        sealed: &[u8],
        ctx: &MemberBoxContext<'_>,
    ) -> Result<ProjectKey, CryptoError> {
        let pt =
            open_raw(&self.0.x25519, sealed, &ctx.aad()).map_err(|_| CryptoError::KeyBoxInvalid)?;
        let k: [u8; 32] = pt
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::KeyBoxInvalid)?;
        Ok(ProjectKey(k))
    }

    /// Signs a membership entry.
    pub fn sign_entry(&self, entry: UnsignedEntry) -> LogEntry {
        let signature = self.0.sign(ENTRY_SIG_KIND, &entry.statement());
        LogEntry { entry, signature }
    }
}

/// What an identity box is bound to: the user and the device it is sealed to.
#[derive(Debug, Clone, Copy)]
pub struct IdentityBoxContext<'a> {
    /// The user whose identity it holds.
    pub user_id: &'a str,
    /// The device it is sealed to.
    pub device_id: &'a str,
}

impl IdentityBoxContext<'_> {
    /// `"labvault/v1/identity-box" || field(user) || field(device)`.
    pub fn aad(&self) -> Vec<u8> {
        let mut a = IDENTITY_BOX_LABEL.to_vec();
        put_field(&mut a, self.user_id.as_bytes());
        put_field(&mut a, self.device_id.as_bytes());
        a
    }
}

/// What a member box is bound to: the project, the epoch and the member.
#[derive(Debug, Clone, Copy)]
pub struct MemberBoxContext<'a> {
    /// Project id.
    pub project_id: &'a str,
    /// Key epoch.
    pub epoch: u32,
    /// The member (user id) it is sealed to.
    pub user_id: &'a str,
}

impl MemberBoxContext<'_> {
    /// `"labvault/v1/member-box" || field(project) || epoch (u32 BE) || field(user)`.
    pub fn aad(&self) -> Vec<u8> {
        let mut a = MEMBER_BOX_LABEL.to_vec();
        put_field(&mut a, self.project_id.as_bytes());
        a.extend_from_slice(&self.epoch.to_be_bytes());
        put_field(&mut a, self.user_id.as_bytes());
        a
    }
}

/// Seals an epoch key to a member's identity (sealed-box format v1, the context as
/// associated data).
pub fn seal_member_box(
    to: &IdentityPublic,
    key: &ProjectKey,
    ctx: &MemberBoxContext<'_>,
) -> Vec<u8> {
    seal_fresh(&to.x25519, &key.0, &ctx.aad())
}

/// [`seal_member_box`] with fixed randomness, for committed test vectors only.
#[doc(hidden)]
pub fn seal_member_box_with_randomness(
    to: &IdentityPublic,
    key: &ProjectKey,
    ctx: &MemberBoxContext<'_>,
    ephemeral: [u8; 32],
    nonce: [u8; 12],
) -> Vec<u8> {
    seal_raw(
        &to.x25519,
        StaticSecret::from(ephemeral),
        nonce,
        &key.0,
        &ctx.aad(),
    )
}

fn epoch_link_context(project_id: &str, new_epoch: u32) -> Vec<u8> {
    let mut c = Vec::new();
    put_field(&mut c, project_id.as_bytes());
    c.extend_from_slice(&new_epoch.to_be_bytes());
    c
}

/// The previous epoch's key encrypted under the new one (key-wrap format of the key
/// hierarchy, purpose `epoch-link`, bound to the project and the new epoch): whoever holds an
/// epoch key can walk back to every earlier one, and nobody can walk forward.
pub fn link_epoch(
    new_key: &ProjectKey,
    previous: &ProjectKey,
    project_id: &str,
    new_epoch: u32,
) -> WrappedKey {
    wrap(
        &new_key.0,
        &previous.0,
        PURPOSE_EPOCH_LINK,
        &epoch_link_context(project_id, new_epoch),
    )
}

/// Inverse of [`link_epoch`]: the key of epoch `new_epoch - 1`.
pub fn open_epoch_link(
    new_key: &ProjectKey,
    link: &WrappedKey,
    project_id: &str,
    new_epoch: u32,
) -> Result<ProjectKey, CryptoError> {
    let k = unwrap(
        &new_key.0,
        link,
        PURPOSE_EPOCH_LINK,
        &epoch_link_context(project_id, new_epoch),
    )
    .map_err(|_| CryptoError::KeyUnwrapFailed {
        purpose: "epoch link",
    })?;
    Ok(ProjectKey(*k))
}

/// A member's role, as the membership log records it (the tenant's RBAC roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberRole {
    /// Everything, including other owners.
    Owner = 1,
    /// Manages members (not owners).
    Admin = 2,
    /// Reads and writes.
    Editor = 3,
    /// Reads.
    Viewer = 4,
}

impl MemberRole {
    fn from_byte(b: u8) -> Option<MemberRole> {
        Some(match b {
            1 => MemberRole::Owner,
            2 => MemberRole::Admin,
            3 => MemberRole::Editor,
            4 => MemberRole::Viewer,
            _ => return None,
        })
    }
}

/// What a membership entry changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryBody {
    /// A member joins with a role and their identity (the first entry adds the creator as
    /// Owner, signed by themselves).
    Add {
        /// User id.
        user_id: String,
        /// Role.
        role: MemberRole,
        /// Their identity's public keys.
        identity: IdentityPublic,
    },
    /// A member leaves.
    Remove {
        /// User id.
        user_id: String,
    },
    /// A member's role changes.
    SetRole {
        /// User id.
        user_id: String,
        /// New role.
        role: MemberRole,
    },
    /// The project moves to a new key epoch.
    Rotate {
        /// The new epoch (the previous one + 1).
        epoch: u32,
    },
    /// One of a member's devices is revoked.
    DeviceRevoked {
        /// User id.
        user_id: String,
        /// The device's fingerprint ([`DevicePublic::fingerprint`]).
        device_fingerprint: [u8; 32],
    },
}

/// A membership entry before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedEntry {
    /// Project id.
    pub project_id: String,
    /// Position in the project's log, from 0.
    pub seq: u64,
    /// [`LogEntry::hash`] of the entry before (zeros for entry 0).
    pub prev_hash: [u8; 32],
    /// When it was signed (ms since the Unix epoch; informative, order comes from `seq`).
    pub at_ms: i64,
    /// The user who signs it.
    pub signer: String,
    /// The change.
    pub body: EntryBody,
}

impl UnsignedEntry {
    /// The canonical bytes that are signed: `"labvault/v1/membership-entry" || version ||
    /// field(project) || seq (u64 BE) || prev_hash || at_ms (i64 BE) || field(signer) || kind
    /// || body` (`docs/sharing.md` lists the bodies).
    pub fn statement(&self) -> Vec<u8> {
        let mut s = ENTRY_LABEL.to_vec();
        s.push(MEMBERSHIP_ENTRY_VERSION);
        put_field(&mut s, self.project_id.as_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.prev_hash);
        s.extend_from_slice(&self.at_ms.to_be_bytes());
        put_field(&mut s, self.signer.as_bytes());
        match &self.body {
            EntryBody::Add {
                user_id,
                role,
                identity,
            } => {
                s.push(1);
                put_field(&mut s, user_id.as_bytes());
                s.push(*role as u8);
                s.extend_from_slice(&identity.x25519);
                s.extend_from_slice(&identity.ed25519);
            }
            EntryBody::Remove { user_id } => {
                s.push(2);
                put_field(&mut s, user_id.as_bytes());
            }
            EntryBody::SetRole { user_id, role } => {
                s.push(3);
                put_field(&mut s, user_id.as_bytes());
                s.push(*role as u8);
            }
            EntryBody::Rotate { epoch } => {
                s.push(4);
                s.extend_from_slice(&epoch.to_be_bytes());
            }
            EntryBody::DeviceRevoked {
                user_id,
                device_fingerprint,
            } => {
                s.push(5);
                put_field(&mut s, user_id.as_bytes());
                s.extend_from_slice(device_fingerprint);
            }
        }
        s
    }
}

/// A signed membership entry. On the wire: its statement then the 64-byte signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// What was signed.
    pub entry: UnsignedEntry,
    /// Ed25519 signature of the signer's identity over the statement.
    pub signature: [u8; 64],
}

impl LogEntry {
    /// Checks the signature under the signer's identity (as the log recorded it).
    pub fn verify(&self, signer: &IdentityPublic) -> Result<(), CryptoError> {
        signer.verify(&self.entry.statement(), &self.signature)
    }

    /// The entry's hash, which the next entry names: SHA-256 over a label, the statement and
    /// the signature.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::new()
            .chain_update(ENTRY_HASH_LABEL)
            .chain_update(self.entry.statement())
            .chain_update(self.signature)
            .finalize()
            .into()
    }

    /// Wire bytes: statement || signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.entry.statement();
        b.extend_from_slice(&self.signature);
        b
    }

    /// Parses wire bytes strictly (label, version, every field, nothing left over). The
    /// signature is not checked here: see [`LogEntry::verify`].
    pub fn from_bytes(b: &[u8]) -> Result<LogEntry, CryptoError> {
        let bad = |why: &'static str| CryptoError::MembershipEntryInvalid(why);
        let mut r = Reader(b);
        if r.take(ENTRY_LABEL.len()).ok_or(bad("truncated"))? != ENTRY_LABEL {
            return Err(bad("not a membership entry"));
        }
        let version = r.byte().ok_or(bad("truncated"))?;
        if version != MEMBERSHIP_ENTRY_VERSION {
            return Err(CryptoError::UnsupportedVersion(u32::from(version)));
        }
        let project_id = r.string().ok_or(bad("bad project id"))?;
        let seq = u64::from_be_bytes(r.array().ok_or(bad("truncated"))?);
        let prev_hash = r.array().ok_or(bad("truncated"))?;
        let at_ms = i64::from_be_bytes(r.array().ok_or(bad("truncated"))?);
        let signer = r.string().ok_or(bad("bad signer"))?;
        let role = |r: &mut Reader<'_>| {
            r.byte()
                .and_then(MemberRole::from_byte)
                .ok_or(bad("unknown role"))
        };
        let body = match r.byte().ok_or(bad("truncated"))? {
            1 => EntryBody::Add {
                user_id: r.string().ok_or(bad("bad user id"))?,
                role: role(&mut r)?,
                identity: IdentityPublic {
                    x25519: r.array().ok_or(bad("truncated"))?,
                    ed25519: r.array().ok_or(bad("truncated"))?,
                },
            },
            2 => EntryBody::Remove {
                user_id: r.string().ok_or(bad("bad user id"))?,
            },
            3 => EntryBody::SetRole {
                user_id: r.string().ok_or(bad("bad user id"))?,
                role: role(&mut r)?,
            },
            4 => EntryBody::Rotate {
                epoch: u32::from_be_bytes(r.array().ok_or(bad("truncated"))?),
            },
            5 => EntryBody::DeviceRevoked {
                user_id: r.string().ok_or(bad("bad user id"))?,
                device_fingerprint: r.array().ok_or(bad("truncated"))?,
            },
            _ => return Err(bad("unknown kind of entry")),
        };
        let signature = r.array().ok_or(bad("truncated"))?;
        if !r.0.is_empty() {
            return Err(CryptoError::TrailingData);
        }
        Ok(LogEntry {
            entry: UnsignedEntry {
                project_id,
                seq,
                prev_hash,
                at_ms,
                signer,
                body,
            },
            signature,
        })
    }
}

/// A cursor over wire bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().expect("length checked"))
    }
    /// A length-prefixed UTF-8 field of 1 to 256 bytes.
    fn string(&mut self) -> Option<String> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        if n == 0 || n > 256 {
            return None;
        }
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(signer: &str, seq: u64, prev: [u8; 32], body: EntryBody) -> UnsignedEntry {
        UnsignedEntry {
            project_id: "p-1".into(),
            seq,
            prev_hash: prev,
            at_ms: 1_760_000_000_000,
            signer: signer.into(),
            body,
        }
    }

    #[test]
    fn an_entry_round_trips_verifies_and_chains() {
        let ada = IdentityKeys::generate();
        let e0 = ada.sign_entry(entry(
            "ada",
            0,
            [0; 32],
            EntryBody::Add {
                user_id: "ada".into(),
                role: MemberRole::Owner,
                identity: ada.public(),
            },
        ));
        e0.verify(&ada.public()).unwrap();
        assert_eq!(LogEntry::from_bytes(&e0.to_bytes()).unwrap(), e0);
        let e1 = ada.sign_entry(entry("ada", 1, e0.hash(), EntryBody::Rotate { epoch: 2 }));
        assert_eq!(e1.entry.prev_hash, e0.hash());
        assert_ne!(e1.hash(), e0.hash());
        // Another identity's key does not verify it; nor does a changed field.
        assert!(matches!(
            e0.verify(&IdentityKeys::generate().public()),
            Err(CryptoError::BadSignature)
        ));
        let mut forged = e1.clone();
        forged.entry.body = EntryBody::Rotate { epoch: 3 };
        assert!(forged.verify(&ada.public()).is_err());
    }

    #[test]
    fn malformed_entries_are_refused_by_name() {
        let ada = IdentityKeys::generate();
        let e = ada.sign_entry(entry(
            "ada",
            0,
            [0; 32],
            EntryBody::Remove {
                user_id: "bob".into(),
            },
        ));
        let b = e.to_bytes();
        for cut in [0, 10, ENTRY_LABEL.len() + 1, b.len() - 1] {
            assert!(LogEntry::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(matches!(
            LogEntry::from_bytes(&extra),
            Err(CryptoError::TrailingData)
        ));
        let mut v2 = b.clone();
        v2[ENTRY_LABEL.len()] = 2;
        assert!(matches!(
            LogEntry::from_bytes(&v2),
            Err(CryptoError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn epoch_links_walk_back_never_forward_and_are_bound_to_project_and_epoch() {
        let (k1, k2) = (ProjectKey::generate(), ProjectKey::generate());
        let link = link_epoch(&k2, &k1, "p-1", 2);
        let back = open_epoch_link(&k2, &link, "p-1", 2).unwrap();
        assert!(crate::project_keys_equal(&back, &k1));
        assert!(open_epoch_link(&k1, &link, "p-1", 2).is_err());
        assert!(open_epoch_link(&k2, &link, "p-2", 2).is_err());
        assert!(open_epoch_link(&k2, &link, "p-1", 3).is_err());
    }

    #[test]
    fn identity_boxes_open_only_on_their_device_and_only_with_the_listed_identity() {
        let id = IdentityKeys::generate();
        let (laptop, other) = (DeviceKeys::generate(), DeviceKeys::generate());
        let ctx = IdentityBoxContext {
            user_id: "ada",
            device_id: "laptop",
        };
        let sealed = id.seal_to_device(&laptop.public(), &ctx);
        let opened = IdentityKeys::open_identity_box(&laptop, &sealed, &ctx, &id.public()).unwrap();
        assert_eq!(opened.public(), id.public());
        assert!(IdentityKeys::open_identity_box(&other, &sealed, &ctx, &id.public()).is_err());
        let moved = IdentityBoxContext {
            user_id: "ada",
            device_id: "phone",
        };
        assert!(IdentityKeys::open_identity_box(&laptop, &sealed, &moved, &id.public()).is_err());
        // A box holding another identity than the log lists: refused.
        let impostor = IdentityKeys::generate().seal_to_device(&laptop.public(), &ctx);
        assert!(matches!(
            IdentityKeys::open_identity_box(&laptop, &impostor, &ctx, &id.public()),
            Err(CryptoError::KeyBoxInvalid)
        ));
    }

    #[test]
    fn member_boxes_are_bound_to_project_epoch_and_member() {
        let bob = IdentityKeys::generate();
        let key = ProjectKey::generate();
        let ctx = MemberBoxContext {
            project_id: "p-1",
            epoch: 3,
            user_id: "bob",
        };
        let sealed = seal_member_box(&bob.public(), &key, &ctx);
        assert!(crate::project_keys_equal(
            &bob.open_member_box(&sealed, &ctx).unwrap(),
            &key
        ));
        for other in [
            MemberBoxContext { epoch: 2, ..ctx },
            MemberBoxContext {
                project_id: "p-2",
                ..ctx
            },
            MemberBoxContext {
                user_id: "eve",
                ..ctx
            },
        ] {
            assert!(bob.open_member_box(&sealed, &other).is_err());
        }
        assert!(IdentityKeys::generate()
            .open_member_box(&sealed, &ctx)
            .is_err());
    }

    #[test]
    fn safety_numbers_differ_when_a_key_or_the_user_differs() {
        let a = IdentityKeys::generate().public();
        let n = a.safety_number("ada");
        assert_eq!(n.len(), 35, "{n}");
        assert!(n
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit())));
        assert_eq!(n, a.safety_number("ada"));
        assert_ne!(n, a.safety_number("bob"));
        let mut swapped = a;
        swapped.x25519[0] ^= 1;
        assert_ne!(n, swapped.safety_number("ada"));
    }
}
