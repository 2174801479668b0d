//! Typed client of the LabVault tenant API (`labvault-server`), over the `labvault-wire` types.
//!
//! Every connection is HTTPS with TLS 1.3 only, trusting exactly one server key, the pinned
//! one (see `tls.rs`): there are no certificate authorities to fall back on. Every call returns
//! the wire type of its answer or a [`ClientError`] the caller branches on (an API error code,
//! a pin mismatch, an unreachable server, a malformed answer); nothing is parsed out of
//! messages. Headless and Tauri-free, so the CLI, the sync engine and the tests share it.
#![forbid(unsafe_code)]

mod error;
mod tls;

use std::time::Duration;

pub use error::ClientError;
use labvault_wire::*;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
pub use tls::Pin;

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
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A connection pool to one tenant server. Cheap to clone (shares the pool).
#[derive(Clone)]
pub struct TenantClient {
    http: reqwest::Client,
    base: Url,
    pin: Pin,
    refused: tls::RefusedPin,
}

impl std::fmt::Debug for TenantClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantClient")
            .field("base", &self.base.as_str())
            .field("pin", &self.pin)
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

impl TenantClient {
    /// A client for the server at `base_url` (`https://host[:port]`) whose key has `pin`.
    pub fn new(base_url: &str, pin: Pin, opts: ClientOptions) -> Result<TenantClient, ClientError> {
        let base = Url::parse(base_url.trim_end_matches('/'))
            .ok()
            .filter(|u| u.scheme() == "https" && u.host().is_some() && u.query().is_none())
            .ok_or_else(|| ClientError::InvalidUrl(base_url.chars().take(200).collect()))?;
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
        Ok(TenantClient {
            http,
            base,
            pin,
            refused,
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The pinned key.
    pub fn pin(&self) -> Pin {
        self.pin
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

    /// One request; `query` is appended as URL parameters, `body` sent as JSON.
    async fn send<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&str>,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(segments);
        let mut req = self.http.request(method, url.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(q) = query {
            req = req.query(q);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport(&url, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp.bytes().await.map_err(|e| self.transport(&url, e))?;
        match serde_json::from_slice::<ErrorBody>(&bytes) {
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

    /// A transport failure, telling a refused pin from everything else.
    fn transport(&self, url: &Url, e: reqwest::Error) -> ClientError {
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

    async fn decode<R: DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        kind: Body,
    ) -> Result<R, ClientError> {
        let url = resp.url().clone();
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(&url, e))?;
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

    async fn get<R: DeserializeOwned>(
        &self,
        segments: &[&str],
        token: Option<&str>,
    ) -> Result<R, ClientError> {
        let r = self
            .send::<(), ()>(Method::GET, segments, token, None, None)
            .await?;
        self.decode(r, Body::Json).await
    }

    async fn get_query<Q: Serialize, R: DeserializeOwned>(
        &self,
        segments: &[&str],
        token: &str,
        query: &Q,
        kind: Body,
    ) -> Result<R, ClientError> {
        let r = self
            .send::<Q, ()>(Method::GET, segments, Some(token), Some(query), None)
            .await?;
        self.decode(r, kind).await
    }

    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let r = self
            .send::<(), B>(method, segments, token, None, body)
            .await?;
        self.decode(r, Body::Json).await
    }

    async fn call_empty<B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let r = self
            .send::<(), B>(method, segments, token, None, body)
            .await?;
        self.decode(r, Body::Empty).await
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

    /// Creates a project (Editor); `name` is an opaque label (the desktop sends it encrypted).
    pub async fn create_project(&self, token: &str, name: &str) -> Result<Project, ClientError> {
        let req = ProjectRequest {
            name: name.to_string(),
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

    // ----- raw ---------------------------------------------------------------------------

    /// Any request with a JSON body or none, answered as status and text: for tests of the
    /// API's own edges (routes, hostile input), never for product code, which uses the typed
    /// calls above. TLS and the pin apply as for every call.
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
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
        let mut req = self.http.request(method, url.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport(&url, e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.transport(&url, e))?;
        Ok((status, text))
    }
}
