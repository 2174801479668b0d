//! Trust by pin: the client accepts exactly the server whose certificate carries the pinned
//! public key (SHA-256 of its SubjectPublicKeyInfo, the HPKP form `sha256/<base64>` that
//! `labvault-server pin` prints), over TLS 1.3 only. There is no fallback to the system's
//! certificate authorities: a wrong pin is an error, never a downgrade.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ClientError;

/// A server's public-key pin: SHA-256 over its certificate's SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin([u8; 32]);

impl Pin {
    /// Parses `sha256/<base64 of 32 bytes>`.
    pub fn parse(s: &str) -> Result<Pin, ClientError> {
        let bad = || ClientError::InvalidPin(s.chars().take(80).collect());
        let b64 = s.trim().strip_prefix("sha256/").ok_or_else(bad)?;
        let bytes = STANDARD.decode(b64).map_err(|_| bad())?;
        Ok(Pin(bytes.try_into().map_err(|_| bad())?))
    }

    /// The pin of a DER certificate (what the server would print for it).
    pub fn of_certificate(der: &[u8]) -> Result<Pin, ClientError> {
        let der = CertificateDer::from(der);
        let ee = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| ClientError::InvalidPin(format!("not an X.509 certificate: {e}")))?;
        let spki = ee.subject_public_key_info();
        Ok(Pin(Sha256::digest(spki.as_ref()).into()))
    }

    fn matches(&self, other: &[u8; 32]) -> bool {
        self.0.ct_eq(other).into()
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256/{}", STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// Accepts the server iff its leaf certificate's key has the pin and it proves possession of
/// that key in the TLS 1.3 handshake. Remembers the key a refused server showed, so the client
/// can say which key it met (`ClientError::PinMismatch`) without reading error messages.
#[derive(Debug)]
pub(crate) struct PinVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
    /// The pin of the last certificate refused.
    pub(crate) refused: RefusedPin,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let got: [u8; 32] = Sha256::digest(ee.subject_public_key_info().as_ref()).into();
        if self.pin.matches(&got) {
            return Ok(ServerCertVerified::assertion());
        }
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pin(got));
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Never reached: only TLS 1.3 is offered.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where the verifier leaves the pin of a certificate it refused.
pub(crate) type RefusedPin = Arc<Mutex<Option<Pin>>>;

/// A rustls client configuration: TLS 1.3 only, ring, the pin verifier, HTTP/2 or HTTP/1.1.
pub(crate) fn client_config(pin: Pin) -> Result<(rustls::ClientConfig, RefusedPin), ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let refused = Arc::new(Mutex::new(None));
    let verifier = PinVerifier {
        pin,
        provider: provider.clone(),
        refused: refused.clone(),
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((cfg, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_print_and_refuse_what_is_not_a_pin() {
        let s = format!("sha256/{}", STANDARD.encode([7u8; 32]));
        let p = Pin::parse(&s).unwrap();
        assert_eq!(p.to_string(), s);
        for bad in [
            "",
            "sha1/AAAA",
            "sha256/",
            "sha256/not base64!",
            &format!("sha256/{}", STANDARD.encode([7u8; 31])),
            &STANDARD.encode([7u8; 32]),
        ] {
            assert!(
                matches!(Pin::parse(bad), Err(ClientError::InvalidPin(_))),
                "{bad:?}"
            );
        }
    }
}
