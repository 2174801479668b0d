//! TOTP (RFC 6238, HMAC-SHA1, 30 s steps, 6 digits) with replay protection: a code is
//! accepted only for a time step later than the last accepted one.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Step length in seconds.
pub const STEP: i64 = 30;
/// Accepted clock drift in steps either side.
pub const SKEW: i64 = 1;

/// HOTP value (RFC 4226) for a counter.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("hmac accepts any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = ((u32::from(h[off]) & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    bin % 10u32.pow(digits)
}

/// TOTP code string for Unix time `now`.
pub fn code_at(secret: &[u8], now: i64, digits: u32) -> String {
    let step = now.div_euclid(STEP) as u64;
    format!(
        "{:0width$}",
        hotp(secret, step, digits),
        width = digits as usize
    )
}

/// Checks a 6-digit code; returns the matched time step if it is newer than `last_step`.
pub fn verify(secret: &[u8], code: &str, now: i64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now.div_euclid(STEP);
    for step in (current - SKEW)..=(current + SKEW) {
        if step < 0 || last_step.is_some_and(|l| step <= l) {
            continue;
        }
        let expect = format!("{:06}", hotp(secret, step as u64, 6));
        if bool::from(expect.as_bytes().ct_eq(code.as_bytes())) {
            return Some(step);
        }
    }
    None
}

/// RFC 4648 base32 without padding, for authenticator apps.
pub fn base32(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes RFC 4648 base32 (no padding, case-insensitive); `None` on invalid input.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(secret, t, 8), want, "t={t}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let secret = b"12345678901234567890";
        let want = [755224, 287082, 359152, 969429, 338314];
        for (c, w) in want.iter().enumerate() {
            assert_eq!(hotp(secret, c as u64, 6), *w);
        }
    }

    #[test]
    fn replay_in_same_window_and_wrong_codes_are_refused() {
        let secret = b"abcdefghijabcdefghij";
        let now = 1_700_000_000;
        let code = code_at(secret, now, 6);
        let step = verify(secret, &code, now, None).expect("fresh code accepted");
        assert_eq!(
            verify(secret, &code, now, Some(step)),
            None,
            "replay refused"
        );
        assert_eq!(
            verify(secret, "000000", now, None).is_some(),
            code == "000000"
        );
        assert_eq!(verify(secret, "12345", now, None), None);
        // A code from 2 steps ago is outside the skew.
        let old = code_at(secret, now - 2 * STEP, 6);
        if old != code
            && old != code_at(secret, now - STEP, 6)
            && old != code_at(secret, now + STEP, 6)
        {
            assert_eq!(verify(secret, &old, now, None), None);
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32_decode("MZXW6YTBOI").unwrap(), b"foobar");
    }
}
