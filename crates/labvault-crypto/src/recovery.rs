//! The recovery key: a second, full-entropy way to unwrap the root key, written down by
//! the user on paper at vault creation.
//!
//! Display form: 256 key bits as 52 Crockford base32 characters (the last one carries 4
//! zero padding bits) followed by 4 checksum characters (the first 20 bits of
//! SHA-256("labvault/v1/recovery-checksum" || key)), in 14 groups of 4 separated by `-`.
//! Parsing ignores case, spaces and dashes and maps the look-alikes `O→0`, `I/L→1`, so a
//! typo is reported as [`CryptoError::InvalidRecoveryKey`] (checksum) rather than as a wrong key.

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::secret::random_32;
use crate::CryptoError;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DATA_CHARS: usize = 52;
const CHECK_CHARS: usize = 4;
const CHECKSUM_LABEL: &[u8] = b"labvault/v1/recovery-checksum";

/// A 256-bit recovery key. Not `Clone`, redacted `Debug`, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RecoveryKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey([redacted])")
    }
}

fn checksum20(key: &[u8; 32]) -> u32 {
    let d = Sha256::new()
        .chain_update(CHECKSUM_LABEL)
        .chain_update(key)
        .finalize();
    (u32::from(d[0]) << 12) | (u32::from(d[1]) << 4) | (u32::from(d[2]) >> 4)
}

fn decode_char(c: u8) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    let c = match c {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

impl RecoveryKey {
    pub(crate) fn generate() -> RecoveryKey {
        RecoveryKey(random_32())
    }

    /// The one-time, human-writable form shown at vault creation.
    pub fn to_display_string(&self) -> Zeroizing<String> {
        let mut chars = Zeroizing::new(Vec::with_capacity(DATA_CHARS + CHECK_CHARS));
        // 256 bits + 4 zero padding bits = 52 * 5 bits.
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        for &b in self.0.iter() {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                chars.push(ALPHABET[((acc >> bits) & 31) as usize]);
            }
            acc &= (1 << bits) - 1;
        }
        chars.push(ALPHABET[((acc << (5 - bits)) & 31) as usize]);
        acc.zeroize();
        let c = checksum20(&self.0);
        for i in (0..CHECK_CHARS).rev() {
            chars.push(ALPHABET[((c >> (5 * i)) & 31) as usize]);
        }
        let mut out = Zeroizing::new(String::with_capacity(70));
        for (i, ch) in chars.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(*ch as char);
        }
        out
    }

    /// Parses what a user typed back in; any typo yields `InvalidRecoveryKey`.
    pub fn parse(s: &str) -> Result<RecoveryKey, CryptoError> {
        let mut vals = Zeroizing::new(Vec::with_capacity(DATA_CHARS + CHECK_CHARS));
        for &c in s.as_bytes() {
            if c == b'-' || c.is_ascii_whitespace() {
                continue;
            }
            vals.push(decode_char(c).ok_or(CryptoError::InvalidRecoveryKey)?);
        }
        if vals.len() != DATA_CHARS + CHECK_CHARS {
            return Err(CryptoError::InvalidRecoveryKey);
        }
        let mut key = [0u8; 32];
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut n = 0usize;
        for &v in &vals[..DATA_CHARS] {
            acc = (acc << 5) | u32::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                if n < 32 {
                    key[n] = (acc >> bits) as u8;
                    n += 1;
                }
                acc &= (1 << bits) - 1;
            }
        }
        // The 4 padding bits must be zero; otherwise two strings would map to one key.
        if bits != 4 || acc != 0 || n != 32 {
            key.zeroize();
            return Err(CryptoError::InvalidRecoveryKey);
        }
        let mut c = 0u32;
        for &v in &vals[DATA_CHARS..] {
            c = (c << 5) | u32::from(v);
        }
        let rk = RecoveryKey(key);
        key.zeroize();
        if c != checksum20(&rk.0) {
            return Err(CryptoError::InvalidRecoveryKey);
        }
        Ok(rk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_and_is_grouped() {
        for _ in 0..50 {
            let k = RecoveryKey::generate();
            let s = k.to_display_string();
            assert_eq!(s.len(), 56 + 13);
            assert!(s.split('-').all(|g| g.len() == 4));
            assert_eq!(RecoveryKey::parse(&s).unwrap().0, k.0);
        }
    }

    #[test]
    fn lenient_spelling_accepted() {
        let k = RecoveryKey([0xA5; 32]);
        let s = k.to_display_string();
        let relaxed = s.replace('-', " ").to_lowercase();
        assert_eq!(RecoveryKey::parse(&relaxed).unwrap().0, k.0);
        let squashed: String = s.chars().filter(|c| *c != '-').collect();
        assert_eq!(
            RecoveryKey::parse(&format!("  {squashed}\n")).unwrap().0,
            k.0
        );
        // Look-alikes: 0 written as O, 1 written as I or L.
        let k0 = RecoveryKey([0; 32]);
        let s0 = k0.to_display_string();
        assert!(s0.contains('0'));
        assert_eq!(RecoveryKey::parse(&s0.replace('0', "o")).unwrap().0, k0.0);
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let k = RecoveryKey([0x3C; 32]);
        let s: Vec<u8> = k
            .to_display_string()
            .bytes()
            .filter(|c| *c != b'-')
            .collect();
        for i in 0..s.len() {
            for &sub in ALPHABET.iter() {
                if sub == s[i] {
                    continue;
                }
                let mut t = s.clone();
                t[i] = sub;
                let r = RecoveryKey::parse(std::str::from_utf8(&t).unwrap());
                assert!(
                    matches!(r, Err(CryptoError::InvalidRecoveryKey)),
                    "typo at {i} not caught"
                );
            }
        }
    }

    #[test]
    fn bad_length_and_characters_rejected() {
        let s = RecoveryKey([1; 32]).to_display_string();
        assert!(RecoveryKey::parse(&s[..s.len() - 1]).is_err());
        assert!(RecoveryKey::parse(&format!("{}A", &*s)).is_err());
        assert!(
            RecoveryKey::parse(&s.replacen(|c: char| c.is_ascii_alphanumeric(), "U", 1)).is_err()
        );
        assert!(RecoveryKey::parse("").is_err());
        assert_eq!(
            RecoveryKey::parse("hello").unwrap_err().code(),
            "invalid_recovery_key"
        );
    }
}
