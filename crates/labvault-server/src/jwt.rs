//! Minimal HS256 JWT: the only accepted header algorithm is `HS256`, so `alg: none` and
//! algorithm-confusion tokens are refused before any claim is read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Audience of API access tokens.
pub const AUD_ACCESS: &str = "labvault-api";
/// Audience of the short-lived token between password and MFA code.
pub const AUD_MFA: &str = "labvault-mfa-challenge";
/// Issuer.
pub const ISSUER: &str = "labvault-server";

/// Claims of every token this server signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    /// Session (refresh-token family) id.
    pub sid: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Last MFA verification time, if any (drives step-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_at: Option<i64>,
    /// Unique token id.
    pub jti: String,
}

/// Why a token was refused; mapped to `token_expired` or `unauthorized`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Structure, header or encoding wrong.
    #[error("malformed token")]
    Malformed,
    /// Header algorithm other than HS256.
    #[error("unsupported token algorithm")]
    Algorithm,
    /// Signature mismatch.
    #[error("bad token signature")]
    Signature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`/`iat`.
    #[error("token not yet valid")]
    NotYetValid,
    /// Wrong audience or issuer.
    #[error("token audience mismatch")]
    Audience,
}

/// The HMAC key, wiped on drop.
pub struct JwtKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey([redacted])")
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

/// Allowed clock skew for `nbf`/`exp` in seconds.
const LEEWAY: i64 = 5;

impl JwtKey {
    /// Uses raw key bytes (at least 32).
    pub fn new(bytes: Vec<u8>) -> Self {
        assert!(bytes.len() >= 32, "JWT key must be at least 256 bits");
        JwtKey(Zeroizing::new(bytes))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac accepts any key length")
    }

    /// Signs claims.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Verifies signature, algorithm, audience, issuer and time window.
    pub fn verify(&self, token: &str, aud: &str, now: i64) -> Result<Claims, JwtError> {
        if token.len() > 4096 {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (h, p, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(p), Some(s), None) => (h, p, s),
            _ => return Err(JwtError::Malformed),
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if header.alg != "HS256" {
            return Err(JwtError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| JwtError::Signature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if claims.aud != aud || claims.iss != ISSUER {
            return Err(JwtError::Audience);
        }
        if now > claims.exp + LEEWAY {
            return Err(JwtError::Expired);
        }
        if now + LEEWAY < claims.nbf || now + LEEWAY < claims.iat {
            return Err(JwtError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            aud: AUD_ACCESS.into(),
            sub: "u".into(),
            tid: "t".into(),
            sid: "s".into(),
            iat: now,
            nbf: now,
            exp: now + 600,
            mfa_at: None,
            jti: "j".into(),
        }
    }

    #[test]
    fn roundtrip_and_rejections() {
        let k = JwtKey::new(vec![7; 32]);
        let now = 1_700_000_000;
        let t = k.sign(&claims(now));
        assert_eq!(k.verify(&t, AUD_ACCESS, now).unwrap(), claims(now));
        assert_eq!(k.verify(&t, AUD_MFA, now), Err(JwtError::Audience));
        assert_eq!(k.verify(&t, AUD_ACCESS, now + 700), Err(JwtError::Expired));
        assert_eq!(
            k.verify(&t, AUD_ACCESS, now - 100),
            Err(JwtError::NotYetValid)
        );
        let other = JwtKey::new(vec![8; 32]);
        assert_eq!(other.verify(&t, AUD_ACCESS, now), Err(JwtError::Signature));
        // alg none with the same payload and an empty signature.
        let p = t.split('.').nth(1).unwrap();
        let none = format!("{}.{p}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#));
        assert_eq!(k.verify(&none, AUD_ACCESS, now), Err(JwtError::Algorithm));
        assert_eq!(k.verify("a.b", AUD_ACCESS, now), Err(JwtError::Malformed));
    }
}
