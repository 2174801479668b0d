//! Typed client of the LabVault tenant API (`labvault-server`), over the `labvault-wire` types.
//!
//! Every connection is HTTPS with TLS 1.3 only, trusting exactly one server key, the pinned
//! one (see `tls.rs`): there are no certificate authorities to fall back on. Every call returns
//! the wire type of its answer or a [`ClientError`] the caller branches on (an API error code,
//! a pin mismatch, an unreachable server, a malformed answer); nothing is parsed out of
//! messages. Headless and Tauri-free, so the CLI, the sync engine and the tests share it.
//!
//! Requests go through a [`Transport`]: [`HttpsTransport`] in production; a deterministic
//! simulation plugs in one that calls the server's handlers in process and injects faults.
#![forbid(unsafe_code)]

mod error;
mod sharing;
mod sync;
mod tls;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
pub use error::ClientError;
use http::{header, HeaderValue, Method, StatusCode};
use labvault_wire::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
pub use sync::{frame, unframe};
pub use tls::Pin;
pub use transport::{HttpsTransport, Transport};
use url::Url;

/// Options of a [`TenantClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `User-Agent` of every request (recorded in the tenant's audit trail).
    pub user_agent: String,
    /// Time to establish a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time for a whole request and its answer.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            user_agent: format!("labvault-client/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// A client of one tenant server. Cheap to clone (shares the transport and its connections).
#[derive(Clone)]
pub struct TenantClient {
    transport: Arc<dyn Transport>,
    base: Url,
    /// Sent as `x-labvault-device` on every request when set (sync calls need it).
    device: Option<HeaderValue>,
}

impl std::fmt::Debug for TenantClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantClient")
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// An answer body, decoded by kind.
enum Body {
    /// JSON of the expected type.
    Json,
    /// Nothing (204).
    Empty,
    /// Text (CSV, JSON Lines).
    Text,
}

/// A request body.
pub(crate) enum Payload<'a, B: ?Sized> {
    /// None.
    None,
    /// JSON.
    Json(&'a B),
    /// Raw bytes with a content type and extra headers.
    Bytes(Bytes, Vec<(&'static str, String)>),
}

impl TenantClient {
    /// A client for the server at `base_url` (`https://host[:port]`) whose key has `pin`.
    pub fn new(base_url: &str, pin: Pin, opts: ClientOptions) -> Result<TenantClient, ClientError> {
        let base = Self::parse_base(base_url)?;
        Ok(TenantClient {
            transport: Arc::new(HttpsTransport::new(pin, opts)?),
            base,
            device: None,
        })
    }

    /// A client that sends its requests through `transport` (a simulation's, in tests).
    pub fn with_transport(
        base_url: &str,
        transport: Arc<dyn Transport>,
    ) -> Result<TenantClient, ClientError> {
        Ok(TenantClient {
            transport,
            base: Self::parse_base(base_url)?,
            device: None,
        })
    }

    fn parse_base(base_url: &str) -> Result<Url, ClientError> {
        Url::parse(base_url.trim_end_matches('/'))
            .ok()
            .filter(|u| u.scheme() == "https" && u.host().is_some() && u.query().is_none())
            .ok_or_else(|| ClientError::InvalidUrl(base_url.chars().take(200).collect()))
    }

    /// The same client, naming `device_id` on every request (`x-labvault-device`).
    pub fn for_device(&self, device_id: &str) -> Result<TenantClient, ClientError> {
        let v = HeaderValue::from_str(device_id)
            .map_err(|_| ClientError::InvalidUrl(format!("device id {device_id:?}")))?;
        Ok(TenantClient {
            device: Some(v),
            ..self.clone()
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `base/v1/<segments...>`, each segment percent-encoded (an id cannot add a path step).
    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        {
            let mut p = u.path_segments_mut().expect("an https URL has a path");
            p.pop_if_empty().push("v1");
            for s in segments {
                p.push(s);
            }
        }
        u
    }

    /// Builds and sends one request; a non-2xx answer becomes [`ClientError::Api`] (or
    /// `Malformed` when it is not an error body).
    pub(crate) async fn exchange<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&str>,
        query: Option<&Q>,
        body: Payload<'_, B>,
        extra: &[(header::HeaderName, String)],
    ) -> Result<http::Response<Bytes>, ClientError> {
        let mut url = self.url(segments);
        if let Some(q) = query {
            let qs = serde_urlencoded::to_string(q)
                .map_err(|e| ClientError::InvalidUrl(format!("query: {e}")))?;
            if !qs.is_empty() {
                url.set_query(Some(&qs));
            }
        }
        let mut req = http::Request::builder().method(method).uri(url.as_str());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(d) = &self.device {
            req = req.header(DEVICE_HEADER, d.clone());
        }
        for (k, v) in extra {
            req = req.header(k, v);
        }
        let bytes = match body {
            Payload::None => Bytes::new(),
            Payload::Json(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(
                    serde_json::to_vec(b)
                        .map_err(|e| ClientError::InvalidUrl(format!("body: {e}")))?,
                )
            }
            Payload::Bytes(b, headers) => {
                req = req.header(header::CONTENT_TYPE, "application/octet-stream");
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                b
            }
        };
        let req = req
            .body(bytes)
            .map_err(|e| ClientError::InvalidUrl(format!("request: {e}")))?;
        let resp = self.transport.send(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match serde_json::from_slice::<ErrorBody>(resp.body()) {
            Ok(b) => Err(ClientError::Api {
                status: status.as_u16(),
                code: b.code,
                message: b.message,
                retry_after,
            }),
            Err(e) => Err(ClientError::Malformed {
                url: url.to_string(),
                status: status.as_u16(),
                detail: format!("not an error body ({e})"),
            }),
        }
    }

    async fn send<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&str>,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<(Url, http::Response<Bytes>), ClientError> {
        let payload = match body {
            Some(b) => Payload::Json(b),
            None => Payload::None,
        };
        let resp = self
            .exchange(method, segments, token, query, payload, &[])
            .await?;
        Ok((self.url(segments), resp))
    }

    fn decode<R: DeserializeOwned>(
        url: &Url,
        resp: http::Response<Bytes>,
        kind: Body,
    ) -> Result<R, ClientError> {
        let status = resp.status();
        let bytes = resp.into_body();
        let malformed = |detail: String| ClientError::Malformed {
            url: url.to_string(),
            status: status.as_u16(),
            detail,
        };
        match kind {
            Body::Json => serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string())),
            Body::Empty => {
                if status != StatusCode::NO_CONTENT && !bytes.is_empty() {
                    return Err(malformed("expected no content".into()));
                }
                serde_json::from_value(serde_json::Value::Null)
                    .map_err(|e| malformed(e.to_string()))
            }
            Body::Text => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| malformed("text that is not UTF-8".into()))?;
                serde_json::from_value(serde_json::Value::String(text))
                    .map_err(|e| malformed(e.to_string()))
            }
        }
    }

    pub(crate) async fn get<R: DeserializeOwned>(
        &self,
        segments: &[&str],
        token: Option<&str>,
    ) -> Result<R, ClientError> {
        let (url, r) = self
            .send::<(), ()>(Method::GET, segments, token, None, None)
            .await?;
        Self::decode(&url, r, Body::Json)
    }

    pub(crate) async fn get_query<Q: Serialize, R: DeserializeOwned>(
        &self,
        segments: &[&str],
        token: &str,
        query: &Q,
        kind: Body,
    ) -> Result<R, ClientError> {
        let (url, r) = self
            .send::<Q, ()>(Method::GET, segments, Some(token), Some(query), None)
            .await?;
        Self::decode(&url, r, kind)
    }

    pub(crate) async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let (url, r) = self
            .send::<(), B>(method, segments, token, None, body)
            .await?;
        Self::decode(&url, r, Body::Json)
    }

    pub(crate) async fn call_empty<B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let (url, r) = self
            .send::<(), B>(method, segments, token, None, body)
            .await?;
        Self::decode(&url, r, Body::Empty)
    }

    // ----- meta --------------------------------------------------------------------------

    /// Liveness and API version (no credentials).
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get(&["health"], None).await
    }

    // ----- auth --------------------------------------------------------------------------

    /// First login step: tokens, or an MFA challenge.
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse, ClientError> {
        self.call(Method::POST, &["auth", "login"], None, Some(req))
            .await
    }

    /// Second login step with a TOTP or recovery code.
    pub async fn login_mfa(&self, req: &MfaLoginRequest) -> Result<TokenPair, ClientError> {
        self.call(Method::POST, &["auth", "mfa"], None, Some(req))
            .await
    }

    /// Rotates the refresh token (single use) for a new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ClientError> {
        let req = RefreshRequest {
            refresh_token: refresh_token.to_string(),
        };
        self.call(Method::POST, &["auth", "refresh"], None, Some(&req))
            .await
    }

    /// Revokes the session of a refresh token.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), ClientError> {
        let req = RefreshRequest {
            refresh_token: refresh_token.to_string(),
        };
        self.call_empty(Method::POST, &["auth", "logout"], None, Some(&req))
            .await
    }

    /// Re-verifies MFA for admin operations; a fresh access token.
    pub async fn step_up(&self, token: &str, code: &str) -> Result<AccessToken, ClientError> {
        let req = MfaCodeRequest {
            code: code.to_string(),
        };
        self.call(Method::POST, &["auth", "step-up"], Some(token), Some(&req))
            .await
    }

    // ----- account -----------------------------------------------------------------------

    /// The caller.
    pub async fn me(&self, token: &str) -> Result<Me, ClientError> {
        self.get(&["me"], Some(token)).await
    }

    /// Deletes the caller's account (right to deletion).
    pub async fn delete_me(
        &self,
        token: &str,
        req: &DeleteAccountRequest,
    ) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &["me"], Some(token), Some(req))
            .await
    }

    /// Starts TOTP enrolment.
    pub async fn mfa_enroll(&self, token: &str) -> Result<MfaEnrollResponse, ClientError> {
        self.call::<(), _>(Method::POST, &["me", "mfa", "enroll"], Some(token), None)
            .await
    }

    /// Confirms TOTP enrolment; the recovery codes, once.
    pub async fn mfa_confirm(&self, token: &str, code: &str) -> Result<RecoveryCodes, ClientError> {
        let req = MfaCodeRequest {
            code: code.to_string(),
        };
        self.call(
            Method::POST,
            &["me", "mfa", "confirm"],
            Some(token),
            Some(&req),
        )
        .await
    }

    /// Turns MFA off (password and a code).
    pub async fn mfa_disable(
        &self,
        token: &str,
        req: &DisableMfaRequest,
    ) -> Result<SessionsRevoked, ClientError> {
        self.call(Method::DELETE, &["me", "mfa"], Some(token), Some(req))
            .await
    }

    /// Changes the password; the caller's other sessions are revoked.
    pub async fn change_password(
        &self,
        token: &str,
        req: &ChangePasswordRequest,
    ) -> Result<SessionsRevoked, ClientError> {
        self.call(Method::POST, &["me", "password"], Some(token), Some(req))
            .await
    }

    // ----- tenant ------------------------------------------------------------------------

    /// The caller's tenant.
    pub async fn tenant(&self, token: &str) -> Result<TenantInfo, ClientError> {
        self.get(&["tenant"], Some(token)).await
    }

    /// Deletes the tenant (Owner, step-up); `confirm_slug` must be its slug.
    pub async fn delete_tenant(&self, token: &str, confirm_slug: &str) -> Result<(), ClientError> {
        let req = DeleteTenantRequest {
            confirm_slug: confirm_slug.to_string(),
        };
        self.call_empty(Method::DELETE, &["tenant"], Some(token), Some(&req))
            .await
    }

    /// Changes the plan tier (Owner, step-up).
    pub async fn set_plan(&self, token: &str, plan: PlanTier) -> Result<TenantInfo, ClientError> {
        self.call(
            Method::PUT,
            &["tenant", "plan"],
            Some(token),
            Some(&PlanRequest { plan }),
        )
        .await
    }

    /// Changes tenant settings (Admin, step-up).
    pub async fn set_settings(
        &self,
        token: &str,
        req: &TenantSettingsRequest,
    ) -> Result<TenantInfo, ClientError> {
        self.call(Method::PUT, &["tenant", "settings"], Some(token), Some(req))
            .await
    }

    /// Makes another member the Owner (Owner, step-up).
    pub async fn transfer_ownership(&self, token: &str, user_id: &str) -> Result<(), ClientError> {
        let req = TransferOwnershipRequest {
            user_id: user_id.to_string(),
        };
        self.call_empty(
            Method::POST,
            &["tenant", "transfer-ownership"],
            Some(token),
            Some(&req),
        )
        .await
    }

    // ----- members -----------------------------------------------------------------------

    /// Members of the tenant.
    pub async fn members(&self, token: &str) -> Result<Vec<Member>, ClientError> {
        self.get(&["members"], Some(token)).await
    }

    /// Changes a member's tenant role (Admin, step-up).
    pub async fn set_member_role(
        &self,
        token: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Member, ClientError> {
        self.call(
            Method::PUT,
            &["members", user_id, "role"],
            Some(token),
            Some(&RoleRequest { role }),
        )
        .await
    }

    /// Removes a member (Admin, step-up).
    pub async fn remove_member(&self, token: &str, user_id: &str) -> Result<(), ClientError> {
        self.call_empty::<()>(Method::DELETE, &["members", user_id], Some(token), None)
            .await
    }

    /// Resets a member's MFA (Admin, step-up).
    pub async fn reset_member_mfa(
        &self,
        token: &str,
        user_id: &str,
    ) -> Result<SessionsRevoked, ClientError> {
        self.call::<(), _>(
            Method::POST,
            &["members", user_id, "mfa", "reset"],
            Some(token),
            None,
        )
        .await
    }

    // ----- invitations -------------------------------------------------------------------

    /// Open invitations (Admin).
    pub async fn invitations(&self, token: &str) -> Result<Vec<Invitation>, ClientError> {
        self.get(&["invitations"], Some(token)).await
    }

    /// Invites someone (Admin); the token is returned once.
    pub async fn create_invitation(
        &self,
        token: &str,
        req: &InvitationRequest,
    ) -> Result<InvitationCreated, ClientError> {
        self.call(Method::POST, &["invitations"], Some(token), Some(req))
            .await
    }

    /// Revokes an open invitation (Admin).
    pub async fn revoke_invitation(&self, token: &str, id: &str) -> Result<(), ClientError> {
        self.call_empty::<()>(Method::DELETE, &["invitations", id], Some(token), None)
            .await
    }

    /// Accepts an invitation (the invitation token is the credential).
    pub async fn accept_invitation(
        &self,
        req: &AcceptInvitationRequest,
    ) -> Result<Member, ClientError> {
        self.call(Method::POST, &["invitations", "accept"], None, Some(req))
            .await
    }

    // ----- API keys ----------------------------------------------------------------------

    /// API keys (Admin).
    pub async fn api_keys(&self, token: &str) -> Result<Vec<ApiKey>, ClientError> {
        self.get(&["api-keys"], Some(token)).await
    }

    /// Creates an API key (Admin, step-up); the secret is returned once.
    pub async fn create_api_key(
        &self,
        token: &str,
        req: &ApiKeyRequest,
    ) -> Result<ApiKeyCreated, ClientError> {
        self.call(Method::POST, &["api-keys"], Some(token), Some(req))
            .await
    }

    /// Revokes an API key (Admin).
    pub async fn revoke_api_key(&self, token: &str, id: &str) -> Result<(), ClientError> {
        self.call_empty::<()>(Method::DELETE, &["api-keys", id], Some(token), None)
            .await
    }

    // ----- projects ----------------------------------------------------------------------

    /// Projects visible to the caller, with the caller's role on each.
    pub async fn projects(&self, token: &str) -> Result<Vec<Project>, ClientError> {
        self.get(&["projects"], Some(token)).await
    }

    /// Creates a project (Editor); `name` is an opaque label (the desktop never sends a
    /// project's real name).
    pub async fn create_project(&self, token: &str, name: &str) -> Result<Project, ClientError> {
        let req = ProjectRequest {
            name: name.to_string(),
            id: None,
        };
        self.call(Method::POST, &["projects"], Some(token), Some(&req))
            .await
    }

    /// Creates a project with an id chosen by the client (a vault's own project id).
    pub async fn create_project_with_id(
        &self,
        token: &str,
        name: &str,
        id: &str,
    ) -> Result<Project, ClientError> {
        let req = ProjectRequest {
            name: name.to_string(),
            id: Some(id.to_string()),
        };
        self.call(Method::POST, &["projects"], Some(token), Some(&req))
            .await
    }

    /// One project.
    pub async fn project(&self, token: &str, id: &str) -> Result<Project, ClientError> {
        self.get(&["projects", id], Some(token)).await
    }

    /// Deletes a project (Admin on it).
    pub async fn delete_project(&self, token: &str, id: &str) -> Result<(), ClientError> {
        self.call_empty::<()>(Method::DELETE, &["projects", id], Some(token), None)
            .await
    }

    /// Assigns a per-project role (Admin, step-up).
    pub async fn set_project_role(
        &self,
        token: &str,
        project_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<(), ClientError> {
        self.call_empty(
            Method::PUT,
            &["projects", project_id, "members", user_id],
            Some(token),
            Some(&RoleRequest { role }),
        )
        .await
    }

    /// Removes a per-project role (Admin, step-up).
    pub async fn remove_project_role(
        &self,
        token: &str,
        project_id: &str,
        user_id: &str,
    ) -> Result<(), ClientError> {
        self.call_empty::<()>(
            Method::DELETE,
            &["projects", project_id, "members", user_id],
            Some(token),
            None,
        )
        .await
    }

    /// Sets a project's retention overrides (Admin, step-up).
    pub async fn set_project_retention(
        &self,
        token: &str,
        project_id: &str,
        req: &RetentionRequest,
    ) -> Result<RetentionPolicy, ClientError> {
        self.call(
            Method::PUT,
            &["projects", project_id, "retention"],
            Some(token),
            Some(req),
        )
        .await
    }

    // ----- retention ---------------------------------------------------------------------

    /// Retention policies in force.
    pub async fn retention(&self, token: &str) -> Result<RetentionOverview, ClientError> {
        self.get(&["retention"], Some(token)).await
    }

    /// Changes tenant-wide retention (Admin, step-up).
    pub async fn set_retention(
        &self,
        token: &str,
        req: &RetentionRequest,
    ) -> Result<RetentionPolicy, ClientError> {
        self.call(Method::PUT, &["retention"], Some(token), Some(req))
            .await
    }

    // ----- audit and access review -------------------------------------------------------

    /// A page of the tenant's audit log, newest first (Admin).
    pub async fn audit(&self, token: &str, q: &AuditQuery) -> Result<AuditPage, ClientError> {
        self.get_query(&["audit"], token, q, Body::Json).await
    }

    /// The audit log as CSV or JSON Lines text (`q.format`), verified by the server first.
    pub async fn audit_export(&self, token: &str, q: &AuditQuery) -> Result<String, ClientError> {
        self.get_query(&["audit", "export"], token, q, Body::Text)
            .await
    }

    /// Verifies the tenant's chain on the server.
    pub async fn audit_verify(&self, token: &str) -> Result<AuditVerifyReport, ClientError> {
        self.get(&["audit", "verify"], Some(token)).await
    }

    /// The tenant's security alerts (Admin).
    pub async fn alerts(&self, token: &str, q: &AlertQuery) -> Result<AlertList, ClientError> {
        self.get_query(&["alerts"], token, q, Body::Json).await
    }

    /// Acknowledges an alert (Admin).
    pub async fn acknowledge_alert(&self, token: &str, id: &str) -> Result<Alert, ClientError> {
        self.call::<(), _>(
            Method::POST,
            &["alerts", id, "acknowledge"],
            Some(token),
            None,
        )
        .await
    }

    /// Resolves an alert (Admin).
    pub async fn resolve_alert(&self, token: &str, id: &str) -> Result<Alert, ClientError> {
        self.call::<(), _>(Method::POST, &["alerts", id, "resolve"], Some(token), None)
            .await
    }

    /// The tenant's alert settings (Admin).
    pub async fn alert_settings(&self, token: &str) -> Result<AlertSettings, ClientError> {
        self.get(&["tenant", "alerts"], Some(token)).await
    }

    /// Sets the webhook and thresholds (Admin, step-up); a new webhook's secret, once.
    pub async fn set_alert_settings(
        &self,
        token: &str,
        req: &AlertSettings,
    ) -> Result<AlertSettingsSaved, ClientError> {
        self.call(Method::PUT, &["tenant", "alerts"], Some(token), Some(req))
            .await
    }

    /// The access review (Admin).
    pub async fn access_review(
        &self,
        token: &str,
        q: &ReviewQuery,
    ) -> Result<AccessReview, ClientError> {
        self.get_query(&["access-review"], token, q, Body::Json)
            .await
    }

    /// The access review as CSV (Admin).
    pub async fn access_review_csv(
        &self,
        token: &str,
        q: &ReviewQuery,
    ) -> Result<String, ClientError> {
        self.get_query(&["access-review", "csv"], token, q, Body::Text)
            .await
    }

    /// Signs an access review off as done (Admin).
    pub async fn access_review_sign_off(
        &self,
        token: &str,
        req: &AccessReviewSignOff,
    ) -> Result<(), ClientError> {
        self.call_empty(
            Method::POST,
            &["access-review", "sign-off"],
            Some(token),
            Some(req),
        )
        .await
    }

    // ----- raw ---------------------------------------------------------------------------

    /// Any request with a JSON body or none, answered as status and text: for tests of the
    /// API's own edges (routes, hostile input), never for product code, which uses the typed
    /// calls above. TLS and the pin apply as for every call; `headers` are added as given.
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), ClientError> {
        let mut url = self.base.clone();
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        url.set_path(path);
        url.set_query(query);
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::InvalidUrl(format!("method {method:?}")))?;
        let mut req = http::Request::builder().method(method).uri(url.as_str());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b).expect("a JSON value serializes"))
            }
            None => Bytes::new(),
        };
        let req = req
            .body(bytes)
            .map_err(|e| ClientError::InvalidUrl(format!("request: {e}")))?;
        let resp = self.transport.send(req).await?;
        let status = resp.status().as_u16();
        let text = String::from_utf8_lossy(resp.body()).into_owned();
        Ok((status, text))
    }
}
