//! What can go wrong talking to a tenant, as values a caller branches on.

use labvault_wire::ErrorCode;

/// Every failure of a tenant call. Messages name what is wrong; no field holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The text given as a pin is not `sha256/<base64 of 32 bytes>`.
    #[error("invalid certificate pin {0:?}: expected sha256/<base64 of 32 bytes> as `labvault-server pin` prints it")]
    InvalidPin(String),
    /// The server URL is not an `https://` URL.
    #[error("invalid tenant URL {0:?}: expected https://host[:port]")]
    InvalidUrl(String),
    /// The server's key is not the pinned one: a wrong pin, a wrong address, or someone in
    /// between. Nothing was sent.
    #[error("the server at {url} presented key {presented}, not the pinned {pinned}; check the pin (`labvault-server pin` on the server) and the address")]
    PinMismatch {
        /// The URL contacted.
        url: String,
        /// The pin configured.
        pinned: String,
        /// The pin of the key the server presented.
        presented: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    /// The server could not be reached, or the connection broke (refused, reset, timed out,
    /// TLS failure other than the pin). Retrying later may work.
    #[error("cannot reach the tenant at {url}: {reason}")]
    Unreachable {
        /// The URL contacted.
        url: String,
        /// What happened.
        reason: String,
        /// Whether it was a timeout.
        timeout: bool,
    },
    /// The server answered with an error of the API contract.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
        /// Seconds to wait before retrying, when the server said so (`Retry-After`).
        retry_after: Option<u64>,
    },
    /// The server answered with something that is not the API's (wrong body, unknown code).
    #[error("the tenant at {url} answered HTTP {status} with a body that is not a LabVault API answer: {detail}")]
    Malformed {
        /// The URL contacted.
        url: String,
        /// HTTP status.
        status: u16,
        /// What did not parse.
        detail: String,
    },
}

impl ClientError {
    /// The API error code, if the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (the network, rate limits, server errors).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { status, code, .. } => {
                *code == ErrorCode::RateLimited || *status >= 500 || *status == 408
            }
            ClientError::Malformed { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
