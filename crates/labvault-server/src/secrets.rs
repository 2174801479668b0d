//! Passwords, random bearer secrets and their hashed storage.
//!
//! Passwords use Argon2id (parameters configurable so tests stay fast); high-entropy
//! secrets (refresh tokens, API keys, invitation and recovery codes) are random and stored
//! as SHA-256 digests, which is enough for 256-bit random values and keeps lookups indexable.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use labvault_wire::ErrorCode;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::error::ApiError;

/// A secret string (password, token) that is wiped on drop and never printed.
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// Borrows the secret for hashing/verification.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Argon2id cost parameters (memory KiB, iterations, lanes).
#[derive(Debug, Clone, Copy)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// Production default (OWASP: 19 MiB, 2 iterations, 1 lane).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    /// Cheap parameters for tests only.
    pub const TEST: KdfParams = KdfParams {
        m_kib: 256,
        t: 1,
        p: 1,
    };

    fn argon2(&self) -> Argon2<'static> {
        let params = Params::new(self.m_kib, self.t, self.p, None).expect("valid argon2 params");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Hashes a password into a PHC string (parameters embedded, so old hashes still verify).
pub fn hash_password(params: KdfParams, password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    params
        .argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

/// Checks a password against a stored PHC hash.
pub fn verify_password(params: KdfParams, password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => params
            .argon2()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A PHC hash of a random password, verified against when the user does not exist so
/// unknown emails take as long as wrong passwords.
pub fn dummy_hash(params: KdfParams) -> String {
    hash_password(params, "dummy-password-for-timing-Aa1!").unwrap_or_default()
}

/// The most common passwords (subset of public breach top lists); compared case-insensitively.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword1",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty123",
    "qwertyuiop",
    "1q2w3e4r",
    "1qaz2wsx",
    "iloveyou1",
    "sunshine1",
    "princess1",
    "football1",
    "baseball1",
    "welcome1",
    "welcome123",
    "admin123",
    "administrator",
    "letmein1",
    "monkey123",
    "dragon123",
    "abc12345",
    "abcd1234",
    "trustno1",
    "changeme",
    "changeme1",
    "secret123",
    "qwerty12",
    "zaq12wsx",
    "superman1",
    "starwars1",
    "computer1",
    "whatever1",
    "michael1",
    "shadow123",
    "master123",
    "qazwsx123",
    "987654321",
    "11111111",
    "00000000",
    "aa123456",
    "asdfghjkl",
    "asdf1234",
    "summer2024",
    "winter2024",
    "spring2025",
    "autumn2025",
    "labvault1",
    "research1",
    "letmein123",
    "password!",
    "password1!",
    "welcome1!",
    "p@ssw0rd1",
    "Passw0rd!",
];

/// Password policy: at least 8 characters, at least three of (lower, upper, digit, symbol),
/// not a common password, not the email. Returns `weak_password` naming the failed rule.
pub fn check_password_policy(password: &str, email: &str) -> Result<(), ApiError> {
    let weak = |m: &str| Err(ApiError::new(ErrorCode::WeakPassword, m));
    let len = password.chars().count();
    if len < 8 {
        return weak("password must be at least 8 characters");
    }
    if len > 256 {
        return weak("password must be at most 256 characters");
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if classes < 3 {
        return weak(
            "password must contain at least three of: lowercase, uppercase, digit, symbol",
        );
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.iter().any(|p| p.to_lowercase() == lower) {
        return weak("password is too common");
    }
    if !email.is_empty() && lower.contains(&email.to_lowercase()) {
        return weak("password must not contain the email address");
    }
    Ok(())
}

/// 32 random bytes, base64url: for refresh tokens, invitation tokens, API key secrets.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let s = URL_SAFE_NO_PAD.encode(b);
    b.zeroize();
    s
}

/// Random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Hex SHA-256 of a high-entropy secret, the form in which it is stored.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Recovery code like `abcd-efgh-jkmn` (unambiguous alphabet, ~60 bits).
pub fn recovery_code() -> String {
    const ALPHA: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes = random_bytes::<12>();
    let mut out = String::with_capacity(14);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(ALPHA[(*b as usize) % ALPHA.len()] as char);
    }
    out
}

/// Normalises an email for lookup and uniqueness.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@')
            .map(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
            })
            .unwrap_or(false)
        && !e.chars().any(|c| c.is_control() || c.is_whitespace());
    if valid {
        Ok(e)
    } else {
        Err(ApiError::invalid("email address is not valid"))
    }
}

/// Authenticated encryption of small server-side secrets at rest (TOTP seeds), so a copy of
/// the database alone does not reveal them. Format v1: `0x01 || nonce[12] || AES-256-GCM
/// ciphertext+tag`, with the owning tenant and user as associated data (a sealed seed cannot
/// be moved to another account).
pub struct SecretBox(zeroize::Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([redacted])")
    }
}

impl SecretBox {
    const VERSION: u8 = 1;

    /// Uses a 256-bit key.
    pub fn new(key: [u8; 32]) -> Self {
        SecretBox(zeroize::Zeroizing::new(key))
    }

    /// Encrypts `plaintext` bound to `aad`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(&self.0[..]).expect("32-byte key");
        let nonce = random_bytes::<12>();
        let ct = cipher
            .encrypt(
                &aes_gcm::Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a small buffer cannot fail");
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(Self::VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// A keyed hash (HMAC-SHA256 under this secret, domain-separated by `label`), hex: what
    /// the database keeps of a secret the server must recognise but never read back (recovery
    /// codes). Without the server's secret, a leaked database cannot be searched offline.
    pub fn keyed_hash(&self, label: &str, parts: &[&str]) -> String {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(b"labvault/server/keyed-hash/");
        mac.update(label.as_bytes());
        for p in parts {
            mac.update(&[0]);
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Decrypts; `None` if the blob is malformed, of another version, or was tampered with.
    pub fn open(&self, aad: &str, blob: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        if blob.len() < 1 + 12 + 16 || blob[0] != Self::VERSION {
            return None;
        }
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(&self.0[..]).ok()?;
        cipher
            .decrypt(
                &aes_gcm::Nonce::try_from(&blob[1..13]).expect("12-byte nonce slice"),
                Payload {
                    msg: &blob[13..],
                    aad: aad.as_bytes(),
                },
            )
            .ok()
            .map(zeroize::Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy_refuses_short_simple_and_common_passwords() {
        assert_eq!(
            check_password_policy("Ab1!", "a@b.c").unwrap_err().code,
            ErrorCode::WeakPassword
        );
        assert!(check_password_policy("alllowercase", "a@b.c").is_err());
        assert!(check_password_policy("Password123", "a@b.c").is_err());
        assert!(check_password_policy("P@ssw0rd1", "a@b.c").is_err());
        assert!(check_password_policy("Correct-Horse-9", "a@b.c").is_ok());
    }

    #[test]
    fn argon2id_hash_verifies_only_the_right_password() {
        let h = hash_password(KdfParams::TEST, "Correct-Horse-9").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(KdfParams::TEST, "Correct-Horse-9", &h));
        assert!(!verify_password(KdfParams::TEST, "Correct-Horse-8", &h));
        assert!(!verify_password(KdfParams::TEST, "x", "not-a-phc"));
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_owner() {
        let b = SecretBox::new([3; 32]);
        let blob = b.seal("t/u", b"seed-bytes");
        assert_eq!(&b.open("t/u", &blob).unwrap()[..], b"seed-bytes");
        assert!(b.open("t/other", &blob).is_none(), "bound to its owner");
        assert!(
            SecretBox::new([4; 32]).open("t/u", &blob).is_none(),
            "wrong key"
        );
        let mut flipped = blob.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(b.open("t/u", &flipped).is_none(), "tampered");
        assert!(b.open("t/u", &blob[..10]).is_none(), "truncated");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "[redacted]");
    }
}
