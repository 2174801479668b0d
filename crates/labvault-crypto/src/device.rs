//! Device keys of file sync: each vault (device) has an X25519 key pair, to which project keys
//! are sealed ("key boxes"), and an Ed25519 key pair, with which it signs what other devices
//! must trust (key boxes it seals, devices it approves). The private halves exist only wrapped
//! by the vault's root key; the public halves are registered with the tenant.
//!
//! Pairing: a new device shows a code made of its key fingerprint (50 bits) and a fresh
//! random secret (50 bits). Typed into an existing device, the fingerprint proves that the
//! keys the server lists for the new device are the ones on its screen (a substituted key
//! shows another code), and the secret, which the server never sees, keys a MAC with which
//! the existing device authenticates its approval to the new one. Formats and test vectors:
//! `docs/sync-protocol.md`.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::sealed::{open_raw, seal_fresh, seal_raw};
use crate::secret::{hkdf_32, unwrap, wrap, ProjectKey, RootKey, WrappedKey};
use crate::CryptoError;

const PURPOSE_DEVICE_X25519: &str = "device-x25519";
const PURPOSE_DEVICE_ED25519: &str = "device-ed25519";
const FINGERPRINT_LABEL: &[u8] = b"labvault/v1/device-fingerprint";
const PAIRING_MAC_INFO: &[u8] = b"labvault/v1/pairing-mac";
const SIGNATURE_PREFIX: &[u8] = b"labvault/v1/sig/";
const KEY_BOX_LABEL: &[u8] = b"labvault/v1/key-box";

/// Crockford base32, as the recovery key uses.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of each half of a pairing code (10 x 5 = 50 bits).
const HALF_CHARS: usize = 10;

/// Appends `field` with its length (u32, big endian), so concatenated fields never run into
/// one another.
pub(crate) fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// The public keys of a device, as registered with the tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevicePublic {
    /// X25519 key that key boxes are sealed to.
    pub x25519: [u8; 32],
    /// Ed25519 key that checks what the device signs.
    pub ed25519: [u8; 32],
}

impl DevicePublic {
    /// SHA-256 over both keys: the device's identity in pairing codes.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(self.x25519)
            .chain_update(self.ed25519)
            .finalize()
            .into()
    }

    /// Checks `signature` over a statement of kind `kind` (see [`DeviceKeys::sign`]).
    pub fn verify(
        &self,
        kind: &str,
        statement: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        verify_signed(&self.ed25519, kind, statement, signature)
    }

    /// The 50-bit fingerprint half of a pairing code, as 10 characters.
    pub fn code_half(&self) -> String {
        encode50(&self.fingerprint())
    }
}

/// Checks an Ed25519 `signature` by `ed25519` over a statement of kind `kind`.
pub(crate) fn verify_signed(
    ed25519: &[u8; 32],
    kind: &str,
    statement: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    let key = VerifyingKey::from_bytes(ed25519).map_err(|_| CryptoError::BadSignature)?;
    let sig: [u8; 64] = signature
        .try_into()
        .map_err(|_| CryptoError::BadSignature)?;
    key.verify_strict(
        &signed_message(kind, statement),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| CryptoError::BadSignature)
}

/// `"labvault/v1/sig/" || kind || 0x00 || statement`: a signature made for one kind of
/// statement never verifies as another.
pub(crate) fn signed_message(kind: &str, statement: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_PREFIX.len() + kind.len() + 1 + statement.len());
    m.extend_from_slice(SIGNATURE_PREFIX);
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(statement);
    m
}

/// An X25519 and an Ed25519 private key: a device's, or a user's identity
/// (`crate::sharing`). Not `Clone`, zeroized on drop (by the dalek types).
pub(crate) struct KeyPairs {
    pub(crate) x25519: StaticSecret,
    ed25519: SigningKey,
}

impl KeyPairs {
    pub(crate) fn generate() -> KeyPairs {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *seed);
        KeyPairs {
            x25519: StaticSecret::random_from_rng(rand::rngs::OsRng),
            ed25519: SigningKey::from_bytes(&seed),
        }
    }

    pub(crate) fn from_seeds(x25519: [u8; 32], ed25519: [u8; 32]) -> KeyPairs {
        KeyPairs {
            x25519: StaticSecret::from(x25519),
            ed25519: SigningKey::from_bytes(&ed25519),
        }
    }

    /// The public halves, X25519 then Ed25519.
    pub(crate) fn public(&self) -> ([u8; 32], [u8; 32]) {
        (
            PublicKey::from(&self.x25519).to_bytes(),
            self.ed25519.verifying_key().to_bytes(),
        )
    }

    /// Both private keys wrapped under the root key with their purposes, bound to `context`.
    pub(crate) fn wrap(
        &self,
        root: &RootKey,
        (px, pe): (&str, &str),
        context: &[u8],
    ) -> (WrappedKey, WrappedKey) {
        let x = Zeroizing::new(self.x25519.to_bytes());
        let e = Zeroizing::new(self.ed25519.to_bytes());
        (
            wrap(&root.0, &x, px, context),
            wrap(&root.0, &e, pe, context),
        )
    }

    /// Inverse of [`KeyPairs::wrap`]; `what` names the keys in the error.
    pub(crate) fn unwrap(
        root: &RootKey,
        (x25519, ed25519): (&WrappedKey, &WrappedKey),
        (px, pe): (&str, &str),
        context: &[u8],
        what: &'static str,
    ) -> Result<KeyPairs, CryptoError> {
        let err = |_| CryptoError::KeyUnwrapFailed { purpose: what };
        let x = unwrap(&root.0, x25519, px, context).map_err(err)?;
        let e = unwrap(&root.0, ed25519, pe, context).map_err(err)?;
        Ok(KeyPairs::from_seeds(*x, *e))
    }

    /// The private keys' bytes, X25519 then Ed25519.
    pub(crate) fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut b = Zeroizing::new([0u8; 64]);
        b[..32].copy_from_slice(&self.x25519.to_bytes());
        b[32..].copy_from_slice(&self.ed25519.to_bytes());
        b
    }

    /// Ed25519 over `"labvault/v1/sig/" || kind || 0x00 || statement`.
    pub(crate) fn sign(&self, kind: &str, statement: &[u8]) -> [u8; 64] {
        self.ed25519
            .sign(&signed_message(kind, statement))
            .to_bytes()
    }
}

/// The private keys of this device. Not `Clone`, redacted `Debug`, zeroized on drop.
pub struct DeviceKeys(KeyPairs);

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKeys([redacted])")
    }
}

impl DeviceKeys {
    /// Fresh key pairs from the OS CSPRNG.
    pub fn generate() -> DeviceKeys {
        DeviceKeys(KeyPairs::generate())
    }

    /// Only for committed test vectors, which need fixed keys.
    #[doc(hidden)]
    pub fn from_seeds_for_test_vectors(x25519: [u8; 32], ed25519: [u8; 32]) -> DeviceKeys {
        DeviceKeys(KeyPairs::from_seeds(x25519, ed25519))
    }

    /// The X25519 private key, for opening boxes sealed to this device within the crate.
    pub(crate) fn x25519_secret(&self) -> &StaticSecret {
        &self.0.x25519
    }

    /// The public halves.
    pub fn public(&self) -> DevicePublic {
        let (x25519, ed25519) = self.0.public();
        DevicePublic { x25519, ed25519 }
    }

    /// Both private keys wrapped under the root key, bound to the device id (for the catalog).
    pub fn wrap(&self, root: &RootKey, device_id: &str) -> (WrappedKey, WrappedKey) {
        self.0.wrap(
            root,
            (PURPOSE_DEVICE_X25519, PURPOSE_DEVICE_ED25519),
            device_id.as_bytes(),
        )
    }

    /// Inverse of [`DeviceKeys::wrap`]; fails unless both were wrapped for this device under
    /// this root key.
    pub fn unwrap(
        root: &RootKey,
        x25519: &WrappedKey,
        ed25519: &WrappedKey,
        device_id: &str,
    ) -> Result<DeviceKeys, CryptoError> {
        KeyPairs::unwrap(
            root,
            (x25519, ed25519),
            (PURPOSE_DEVICE_X25519, PURPOSE_DEVICE_ED25519),
            device_id.as_bytes(),
            "device key",
        )
        .map(DeviceKeys)
    }

    /// The private keys' bytes, X25519 then Ed25519 (only in test builds that enable
    /// `expose-keys-for-tests`).
    #[cfg(feature = "expose-keys-for-tests")]
    #[doc(hidden)]
    pub fn expose_for_tests(&self) -> ([u8; 32], [u8; 32]) {
        let b = self.0.to_bytes();
        (b[..32].try_into().unwrap(), b[32..].try_into().unwrap())
    }

    /// Signs a statement of kind `kind` (e.g. `key-box`, `device-approval`): Ed25519 over
    /// `"labvault/v1/sig/" || kind || 0x00 || statement`.
    pub fn sign(&self, kind: &str, statement: &[u8]) -> [u8; 64] {
        self.0.sign(kind, statement)
    }

    /// Opens a key box sealed to this device (see [`seal_key_box`]).
    pub fn open_key_box(
        &self,
        sealed: &[u8],
        ctx: &KeyBoxContext<'_>,
    ) -> Result<ProjectKey, CryptoError> {
        let pt =
            open_raw(&self.0.x25519, sealed, &ctx.aad()).map_err(|_| CryptoError::KeyBoxInvalid)?;
        let k: [u8; 32] = pt
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::KeyBoxInvalid)?;
        Ok(ProjectKey(k))
    }
}

/// What a key box is bound to: the project, the key epoch and the device it is sealed to.
#[derive(Debug, Clone, Copy)]
pub struct KeyBoxContext<'a> {
    /// Project id.
    pub project_id: &'a str,
    /// Key epoch.
    pub epoch: u32,
    /// Recipient device id.
    pub device_id: &'a str,
}

impl KeyBoxContext<'_> {
    /// `"labvault/v1/key-box" || field(project) || epoch (u32 BE) || field(device)`.
    pub fn aad(&self) -> Vec<u8> {
        let mut a = KEY_BOX_LABEL.to_vec();
        put_field(&mut a, self.project_id.as_bytes());
        a.extend_from_slice(&self.epoch.to_be_bytes());
        put_field(&mut a, self.device_id.as_bytes());
        a
    }

    /// What the sealing device signs for a box: the context and the sealed bytes.
    pub fn statement(&self, sealed: &[u8]) -> Vec<u8> {
        let mut s = self.aad();
        put_field(&mut s, sealed);
        s
    }
}

/// Seals a project (epoch) key to a device's X25519 key (sealed-box format v1, with the
/// context as associated data).
pub fn seal_key_box(to: &DevicePublic, key: &ProjectKey, ctx: &KeyBoxContext<'_>) -> Vec<u8> {
    seal_fresh(&to.x25519, &key.0, &ctx.aad())
}

/// [`seal_key_box`] with fixed randomness, for committed test vectors only.
#[doc(hidden)]
pub fn seal_key_box_with_randomness(
    to: &DevicePublic,
    key: &ProjectKey,
    ctx: &KeyBoxContext<'_>,
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

/// The secret half of a pairing code, made by the new device and shown only on its screen.
/// Not `Clone`, redacted `Debug`, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PairingSecret([u8; 7]);

impl std::fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingSecret([redacted])")
    }
}

/// A pairing code as typed: the fingerprint half and the secret.
#[derive(Debug)]
pub struct PairingCode {
    /// 10 characters: the first 50 bits of the new device's fingerprint.
    pub fingerprint_half: String,
    /// The other 50 bits.
    pub secret: PairingSecret,
}

impl PairingSecret {
    /// 50 fresh random bits.
    pub fn generate() -> PairingSecret {
        let mut b = [0u8; 7];
        rand::rngs::OsRng.fill_bytes(&mut b);
        b[6] &= 0xC0;
        PairingSecret(b)
    }

    /// The stored form (the catalog keeps it until the pairing completes).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_vec())
    }

    /// From the stored form.
    pub fn from_bytes(b: &[u8]) -> Result<PairingSecret, CryptoError> {
        let a: [u8; 7] = b.try_into().map_err(|_| CryptoError::InvalidPairingCode)?;
        if a[6] & 0x3F != 0 {
            return Err(CryptoError::InvalidPairingCode);
        }
        Ok(PairingSecret(a))
    }

    /// The code the new device shows: `XXXXX-XXXXX-XXXXX-XXXXX` (fingerprint half, then
    /// the secret half).
    pub fn code(&self, device: &DevicePublic) -> Zeroizing<String> {
        let mut padded = [0u8; 32];
        padded[..7].copy_from_slice(&self.0);
        let s = Zeroizing::new(encode50(&padded));
        padded.zeroize();
        let all = Zeroizing::new(format!("{}{}", device.code_half(), &*s));
        let mut out = Zeroizing::new(String::with_capacity(23));
        for (i, c) in all.chars().enumerate() {
            if i > 0 && i % 5 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    /// The MAC an approving device puts on its approval (`statement`), keyed by this secret
    /// and the new device's fingerprint; the server, not knowing the secret, cannot make one.
    pub fn mac(&self, new_device: &DevicePublic, statement: &[u8]) -> [u8; 32] {
        let key = hkdf_32(
            &self.0,
            Some(&new_device.fingerprint()),
            &[PAIRING_MAC_INFO],
        );
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&*key).expect("any key length");
        m.update(statement);
        m.finalize().into_bytes().into()
    }

    /// Checks a MAC made by [`PairingSecret::mac`] in constant time.
    pub fn check_mac(
        &self,
        new_device: &DevicePublic,
        statement: &[u8],
        mac: &[u8],
    ) -> Result<(), CryptoError> {
        let key = hkdf_32(
            &self.0,
            Some(&new_device.fingerprint()),
            &[PAIRING_MAC_INFO],
        );
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&*key).expect("any key length");
        m.update(statement);
        m.verify_slice(mac).map_err(|_| CryptoError::BadSignature)
    }
}

impl PairingCode {
    /// Parses a typed code (case, spaces and dashes ignored; `O`→0, `I`/`L`→1).
    pub fn parse(s: &str) -> Result<PairingCode, CryptoError> {
        let mut chars = Zeroizing::new(String::new());
        for c in s.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(CryptoError::InvalidPairingCode);
            }
            chars.push(c);
        }
        if chars.len() != 2 * HALF_CHARS {
            return Err(CryptoError::InvalidPairingCode);
        }
        let secret = decode50(&chars[HALF_CHARS..])?;
        Ok(PairingCode {
            fingerprint_half: chars[..HALF_CHARS].to_string(),
            secret: PairingSecret(secret),
        })
    }

    /// Whether the code was made for a device with these keys.
    pub fn matches(&self, device: &DevicePublic) -> bool {
        self.fingerprint_half == device.code_half()
    }
}

/// The first 50 bits of `b` as 10 base32 characters.
fn encode50(b: &[u8]) -> String {
    let mut v: u64 = 0;
    for &x in &b[..7] {
        v = (v << 8) | u64::from(x);
    }
    v >>= 6; // 56 -> 50 bits
    let mut out = String::with_capacity(HALF_CHARS);
    for i in (0..HALF_CHARS).rev() {
        out.push(ALPHABET[((v >> (5 * i)) & 31) as usize] as char);
    }
    v.zeroize();
    out
}

fn decode50(s: &str) -> Result<[u8; 7], CryptoError> {
    let mut v: u64 = 0;
    for c in s.bytes() {
        let d = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(CryptoError::InvalidPairingCode)?;
        v = (v << 5) | d as u64;
    }
    v <<= 6;
    let mut out = [0u8; 7];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (v >> (8 * (6 - i))) as u8;
    }
    v.zeroize();
    Ok(out)
}

/// The statement an approving device signs (and MACs with the pairing secret): who approves
/// whom, with which keys, for which user, and which other devices (with their keys) the
/// approver vouches for, so the new device trusts the user's whole set of devices.
pub fn approval_statement(
    user_id: &str,
    approver_id: &str,
    approver: &DevicePublic,
    device_id: &str,
    device: &DevicePublic,
    vouched: &[(String, DevicePublic)],
) -> Vec<u8> {
    let mut s = b"labvault/v1/device-approval".to_vec();
    put_field(&mut s, user_id.as_bytes());
    put_field(&mut s, approver_id.as_bytes());
    s.extend_from_slice(&approver.x25519);
    s.extend_from_slice(&approver.ed25519);
    put_field(&mut s, device_id.as_bytes());
    s.extend_from_slice(&device.x25519);
    s.extend_from_slice(&device.ed25519);
    s.extend_from_slice(&(vouched.len() as u32).to_be_bytes());
    for (id, k) in vouched {
        put_field(&mut s, id.as_bytes());
        s.extend_from_slice(&k.x25519);
        s.extend_from_slice(&k.ed25519);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_wrap_under_the_root_bound_to_the_device() {
        let root = RootKey::generate();
        let k = DeviceKeys::generate();
        let (x, e) = k.wrap(&root, "dev-1");
        let back = DeviceKeys::unwrap(&root, &x, &e, "dev-1").unwrap();
        assert_eq!(back.public(), k.public());
        assert!(DeviceKeys::unwrap(&root, &x, &e, "dev-2").is_err());
        // The two halves cannot be swapped.
        assert!(DeviceKeys::unwrap(&root, &e, &x, "dev-1").is_err());
        assert_eq!(format!("{k:?}"), "DeviceKeys([redacted])");
    }

    #[test]
    fn signatures_bind_kind_statement_and_key() {
        let k = DeviceKeys::generate();
        let p = k.public();
        let sig = k.sign("key-box", b"abc");
        p.verify("key-box", b"abc", &sig).unwrap();
        assert!(p.verify("device-approval", b"abc", &sig).is_err());
        assert!(p.verify("key-box", b"abd", &sig).is_err());
        assert!(DeviceKeys::generate()
            .public()
            .verify("key-box", b"abc", &sig)
            .is_err());
        assert!(p.verify("key-box", b"abc", &sig[..63]).is_err());
    }

    #[test]
    fn key_boxes_open_only_for_their_device_and_context() {
        let d = DeviceKeys::generate();
        let pk = ProjectKey::generate();
        let ctx = KeyBoxContext {
            project_id: "p1",
            epoch: 1,
            device_id: "d1",
        };
        let b = seal_key_box(&d.public(), &pk, &ctx);
        assert_eq!(d.open_key_box(&b, &ctx).unwrap().0, pk.0);
        for other in [
            KeyBoxContext {
                project_id: "p2",
                ..ctx
            },
            KeyBoxContext { epoch: 2, ..ctx },
            KeyBoxContext {
                device_id: "d2",
                ..ctx
            },
        ] {
            assert!(matches!(
                d.open_key_box(&b, &other),
                Err(CryptoError::KeyBoxInvalid)
            ));
        }
        assert!(DeviceKeys::generate().open_key_box(&b, &ctx).is_err());
    }

    #[test]
    fn pairing_codes_round_trip_and_bind_keys_and_secret() {
        let d = DeviceKeys::generate().public();
        let s = PairingSecret::generate();
        let code = s.code(&d);
        assert_eq!(code.len(), 23);
        let parsed = PairingCode::parse(&code.to_lowercase()).unwrap();
        assert!(parsed.matches(&d));
        assert!(!parsed.matches(&DeviceKeys::generate().public()));
        assert_eq!(parsed.secret.0, s.0);
        let mac = s.mac(&d, b"approval");
        parsed.secret.check_mac(&d, b"approval", &mac).unwrap();
        assert!(parsed.secret.check_mac(&d, b"approvaL", &mac).is_err());
        assert!(PairingSecret::generate()
            .check_mac(&d, b"approval", &mac)
            .is_err());
        for bad in [
            "",
            "ABCDE-FGHJK",
            "ABCDE-FGHJK-MNPQR-STVWU",
            "ABCDE-FGHJK-MNPQR-STVWXY",
        ] {
            assert!(PairingCode::parse(bad).is_err(), "{bad}");
        }
    }
}
