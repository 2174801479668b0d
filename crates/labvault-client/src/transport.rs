//! How a request reaches the tenant: the [`Transport`] seam. Production uses
//! [`HttpsTransport`] (reqwest over the pinned TLS 1.3 configuration); a deterministic
//! simulation substitutes one that calls the server's handlers in process, drops requests,
//! loses answers after the server acted, and so on. Bodies are whole in memory: every
//! request and answer of this API is bounded (JSON, upload parts, packs and blob ranges of a
//! few MiB), which also bounds the client's memory whatever a file's size.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::ClientError;
use crate::tls::{self, Pin, RefusedPin};
use crate::ClientOptions;

/// Sends one HTTP request and returns the answer (any status). Failures to get an answer at
/// all are [`ClientError::Unreachable`] or [`ClientError::PinMismatch`].
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// One exchange. The request URI is absolute (`https://host/v1/...`).
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>, ClientError>;
}

/// HTTPS with TLS 1.3 only, trusting exactly the pinned key (see `tls.rs`); HTTP/2 when the
/// server offers it, so parallel transfers share one connection.
pub struct HttpsTransport {
    http: reqwest::Client,
    pin: Pin,
    refused: RefusedPin,
}

impl HttpsTransport {
    /// A connection pool trusting `pin` only.
    pub fn new(pin: Pin, opts: ClientOptions) -> Result<HttpsTransport, ClientError> {
        let (tls, refused) = tls::client_config(pin)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .user_agent(opts.user_agent)
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(HttpsTransport { http, pin, refused })
    }

    /// A transport failure, telling a refused pin from everything else.
    fn failure(&self, url: &str, e: reqwest::Error) -> ClientError {
        if let Some(presented) = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return ClientError::PinMismatch {
                url: url.to_string(),
                pinned: self.pin.to_string(),
                presented: presented.to_string(),
            };
        }
        // The chain of causes, for people (never parsed).
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            src = s.source();
        }
        ClientError::Unreachable {
            url: url.to_string(),
            reason,
            timeout: e.is_timeout(),
        }
    }
}

#[async_trait]
impl Transport for HttpsTransport {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>, ClientError> {
        let (parts, body) = req.into_parts();
        let url = parts.uri.to_string();
        let resp = self
            .http
            .request(parts.method, &url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.failure(&url, e))?;
        let mut out = http::Response::builder().status(resp.status());
        if let Some(h) = out.headers_mut() {
            *h = resp.headers().clone();
        }
        let bytes = resp.bytes().await.map_err(|e| self.failure(&url, e))?;
        out.body(bytes).map_err(|e| ClientError::Malformed {
            url,
            status: 0,
            detail: e.to_string(),
        })
    }
}
