//! Application state, configuration, authentication of requests and audit helpers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use labvault_governance::audit::actions;
use labvault_wire::{AuditResult, ErrorCode, Role};

use crate::clock::{now_ts, Clock};
use crate::error::{ApiError, ApiResult};
use crate::jwt::{Claims, JwtError, JwtKey, AUD_ACCESS, ISSUER};
use crate::secrets::{sha256_hex, KdfParams};
use crate::store::blobs::BlobStore;
use crate::store::sync::SyncStore;
use crate::store::{AuditDraft, Store, StoreError};

/// Tunables; defaults are production values, tests shorten some and use cheap KDF params.
#[derive(Debug, Clone)]
pub struct Config {
    /// Access-token lifetime (s).
    pub access_ttl: i64,
    /// Refresh-token lifetime (s).
    pub refresh_ttl: i64,
    /// Window in which a retried refresh with the previous token is tolerated (s).
    pub refresh_grace: i64,
    /// Lifetime of the token between password and MFA code (s).
    pub mfa_challenge_ttl: i64,
    /// How recent MFA must be for admin operations (s).
    pub step_up_window: i64,
    /// Failed logins before a lockout.
    pub max_failed_logins: i64,
    /// Lockout duration (s).
    pub lockout_secs: i64,
    /// Login attempts per client IP per minute.
    pub login_attempts_per_ip_minute: u32,
    /// Argon2id parameters for passwords.
    pub kdf: KdfParams,
    /// Maximum request body (bytes).
    pub body_limit: usize,
    /// Per-request timeout (s).
    pub request_timeout_secs: u64,
    /// Trial tenant lifetime (s).
    pub trial_ttl: i64,
    /// Default staleness threshold of the access review (days).
    pub stale_days: u32,
    /// How often the trial sweeper and the blob sweeper run (s).
    pub sweep_interval_secs: u64,
    /// Seconds between webhook delivery rounds of security alerts.
    pub alert_tick_secs: u64,
    /// Largest blob sent in one request, and largest pack of small blobs (bytes).
    pub max_blob_request: u64,
    /// Smallest and largest part size of a resumable upload (bytes).
    pub part_size_range: (u64, u64),
    /// An idle resumable upload is forgotten after this long (s).
    pub upload_ttl_secs: i64,
    /// Largest commit request (bytes of JSON).
    pub max_commit_body: usize,
    /// Timeout of requests that carry or return blob bytes (s).
    pub blob_timeout_secs: u64,
    /// An object no blob record names is removed once it is this old (s): a crash between
    /// storing bytes and recording them leaves one.
    pub orphan_object_age_secs: i64,
    /// A connection that sends nothing this long after its TLS handshake is closed (s).
    pub first_request_timeout_secs: u64,
    /// A connection that moves no byte this long is closed (s; above the longest long poll).
    pub idle_timeout_secs: u64,
    /// Connections one client address may hold at once.
    pub max_connections_per_ip: usize,
    /// Authenticated requests one caller (user or API key) may make per second, sustained;
    /// every such request is audited, so this bounds how fast one token can grow the audit
    /// trail. 0 turns the limit off (load benchmarks).
    pub requests_per_caller_second: f64,
    /// Requests a caller may make at once above the sustained rate (a burst of page loads).
    pub request_burst_per_caller: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            access_ttl: 600,
            refresh_ttl: 30 * 86400,
            refresh_grace: 30,
            mfa_challenge_ttl: 300,
            step_up_window: 300,
            max_failed_logins: 5,
            lockout_secs: 900,
            login_attempts_per_ip_minute: 30,
            kdf: KdfParams::DEFAULT,
            body_limit: 64 * 1024,
            request_timeout_secs: 30,
            trial_ttl: 86400,
            stale_days: 90,
            sweep_interval_secs: 60,
            alert_tick_secs: 5,
            max_blob_request: 32 << 20,
            part_size_range: (5 << 20, 64 << 20),
            upload_ttl_secs: 7 * 86400,
            max_commit_body: 16 << 20,
            blob_timeout_secs: 600,
            orphan_object_age_secs: 3600,
            first_request_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections_per_ip: 256,
            requests_per_caller_second: 100.0,
            request_burst_per_caller: 2000,
        }
    }
}

/// What the state is built from: storage, clock and keys.
pub struct StateParts {
    /// Identity and governance storage.
    pub store: Arc<dyn Store>,
    /// Metadata of file sync (the same database by default).
    pub sync: Arc<dyn SyncStore>,
    /// Security alerts (the same database by default).
    pub alerts: Arc<dyn crate::store::alerts::AlertStore>,
    /// Blob bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Token signing key.
    pub jwt: JwtKey,
    /// Encryption of TOTP seeds at rest.
    pub sealer: crate::secrets::SecretBox,
    /// Signs audit anchors.
    pub anchor_key: ed25519_dalek::SigningKey,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Token signing key.
    pub jwt: JwtKey,
    /// Encryption of TOTP seeds at rest.
    pub sealer: crate::secrets::SecretBox,
    /// Tunables.
    pub cfg: Config,
    /// Last activity written per user, to write at most once a minute.
    activity: Mutex<HashMap<String, i64>>,
    /// Login attempts per IP: (minute, count).
    ip_attempts: Mutex<HashMap<IpAddr, (i64, u32)>>,
    /// Verified against when an email is unknown, so timing does not reveal members.
    pub dummy_hash: String,
    /// Last access-review JSON per tenant (see [`ReviewBody`]).
    pub review_cache: Mutex<HashMap<String, ReviewBody>>,
    /// Metadata of file sync.
    pub sync: Arc<dyn SyncStore>,
    /// Security alerts.
    pub alerts: Arc<dyn crate::store::alerts::AlertStore>,
    /// Blob bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Signs audit anchors.
    pub anchor_key: ed25519_dalek::SigningKey,
    /// Wakes long-polling feed readers when a project's feed grows.
    pub feeds: FeedWatch,
    /// Last `last_seen_at` written per device, to write at most once a minute.
    device_seen: Mutex<HashMap<String, i64>>,
    /// Request budget per caller (tenant, actor).
    budgets: Mutex<HashMap<(String, String), Budget>>,
}

/// A caller's token bucket, and its refusals not yet in the audit trail.
struct Budget {
    tokens: f64,
    at: std::time::Instant,
    refused_unreported: u64,
    reported_minute: i64,
}

/// A request refused by [`AppState::spend_request`].
pub struct Refusal {
    /// Seconds until the caller has budget again.
    pub retry_after: u64,
    /// Refusals to record now (this one included), or 0: at most one event a minute per caller.
    pub to_report: u64,
}

/// Per-project notification of new ops, for long polls: a reader subscribes before it reads,
/// so a commit between its read and its wait still wakes it.
#[derive(Default)]
pub struct FeedWatch {
    senders: Mutex<HashMap<(String, String), tokio::sync::watch::Sender<u64>>>,
}

impl FeedWatch {
    /// A receiver that changes when the project's feed head moves.
    pub fn subscribe(&self, tenant: &str, project: &str) -> tokio::sync::watch::Receiver<u64> {
        let mut m = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 10_000 {
            m.retain(|_, s| s.receiver_count() > 0);
        }
        m.entry((tenant.to_string(), project.to_string()))
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
    }

    /// Announces a new head.
    pub fn publish(&self, tenant: &str, project: &str, head: u64) {
        let m = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get(&(tenant.to_string(), project.to_string())) {
            s.send_replace(head);
        }
    }
}

/// A serialized access review and what it was computed from. The review is a pure function
/// of (snapshot, now in seconds, stale_days); the store hands out the same `Arc` snapshot
/// until a write changes it, so an identical key means an identical body, and under load
/// the review is built and serialized about once a second instead of once per request.
pub struct ReviewBody {
    /// Snapshot it was built from (compared by pointer).
    pub snap: Arc<crate::store::AccessSnapshot>,
    /// `now` it was built at.
    pub now: i64,
    /// Staleness threshold it was built with.
    pub stale_days: u32,
    /// The JSON.
    pub body: axum::body::Bytes,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(parts: StateParts, cfg: Config) -> Self {
        let dummy_hash = crate::secrets::dummy_hash(cfg.kdf);
        AppState(Arc::new(Inner {
            store: parts.store,
            clock: parts.clock,
            jwt: parts.jwt,
            sealer: parts.sealer,
            cfg,
            activity: Mutex::new(HashMap::new()),
            ip_attempts: Mutex::new(HashMap::new()),
            dummy_hash,
            review_cache: Mutex::new(HashMap::new()),
            sync: parts.sync,
            alerts: parts.alerts,
            blobs: parts.blobs,
            anchor_key: parts.anchor_key,
            feeds: FeedWatch::default(),
            device_seen: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether a device's `last_seen_at` is due to be written (at most once a minute).
    pub fn device_seen_due(&self, device: &str) -> bool {
        let now = self.now();
        let mut m = self.device_seen.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            m.clear();
        }
        match m.get(device) {
            Some(t) if now - *t < 60 && now >= *t => false,
            _ => {
                m.insert(device.to_string(), now);
                true
            }
        }
    }

    /// Spends one request of `actor`'s budget in `tenant` (a token bucket: the sustained rate
    /// and the burst of [`Config`]); `Err` when it is spent.
    pub fn spend_request(&self, tenant: &str, actor: &str) -> Result<(), Refusal> {
        let rate = self.cfg.requests_per_caller_second;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = f64::from(self.cfg.request_burst_per_caller.max(1));
        let now = std::time::Instant::now();
        let mut m = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            // Full buckets carry no state worth keeping.
            m.retain(|_, b| {
                b.refused_unreported > 0
                    || b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let b = m
            .entry((tenant.to_string(), actor.to_string()))
            .or_insert(Budget {
                tokens: burst,
                at: now,
                refused_unreported: 0,
                reported_minute: i64::MIN,
            });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        b.refused_unreported += 1;
        let minute = self.now() / 60;
        let to_report = if b.reported_minute != minute {
            b.reported_minute = minute;
            std::mem::take(&mut b.refused_unreported)
        } else {
            0
        };
        Err(Refusal {
            retry_after: ((1.0 - b.tokens) / rate).ceil().max(1.0) as u64,
            to_report,
        })
    }

    /// Now, Unix seconds.
    pub fn now(&self) -> i64 {
        now_ts(self.clock.as_ref())
    }

    /// Builds an audit event for this request.
    pub fn draft(&self, actor: &str, meta: &ReqMeta, action: &str, resource: String) -> AuditDraft {
        AuditDraft {
            timestamp: self.clock.now(),
            user: actor.to_string(),
            action: action.to_string(),
            resource,
            ip_address: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            result: AuditResult::Success,
            detail: String::new(),
        }
    }

    /// Runs one audited operation of an authenticated caller: the event (`action` on
    /// `resource`, the caller's IP and user agent) is drafted here and handed to `f`, and
    /// recorded exactly once: by the store in the change's own transaction
    /// ([`AuditedBy::Store`], success only), or here afterwards ([`AuditedBy::Handler`]), and
    /// always here as a failure or denial when `f` fails.
    pub async fn audited<T>(
        &self,
        p: &Principal,
        meta: &ReqMeta,
        action: &str,
        resource: String,
        by: AuditedBy,
        f: impl AsyncFnOnce(&AuditDraft) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let draft = self.draft(&p.actor, meta, action, resource);
        let r = f(&draft).await;
        self.finish(&p.tenant_id, draft, r, by == AuditedBy::Store)
            .await
    }

    /// Records the outcome of an audited operation. `recorded` = the store already wrote
    /// the success event in the same transaction as the change.
    pub async fn finish<T>(
        &self,
        tenant: &str,
        mut draft: AuditDraft,
        r: ApiResult<T>,
        recorded: bool,
    ) -> ApiResult<T> {
        if recorded && r.is_ok() {
            return r;
        }
        let result = match &r {
            Ok(_) => AuditResult::Success,
            Err(e) if e.is_denial() => AuditResult::Denied,
            Err(_) => AuditResult::Failure,
        };
        draft.result = result;
        if let Err(e) = &r {
            draft.detail = e.code.as_str().to_string();
        }
        if let Err(e) = self.store.append_audit(tenant, draft).await {
            // Never answer success for an operation whose audit record could not be written.
            return Err(ApiError::internal(e));
        }
        r
    }

    /// Counts a login attempt from `ip`; refuses beyond the per-minute budget.
    pub fn check_ip_budget(&self, ip: IpAddr) -> ApiResult<()> {
        let minute = self.now() / 60;
        let mut m = self.ip_attempts.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, (min, _)| *min == minute);
        }
        let e = m.entry(ip).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        if e.1 > self.cfg.login_attempts_per_ip_minute {
            let mut err = ApiError::new(
                ErrorCode::RateLimited,
                "too many login attempts from this address; try again later",
            );
            err.retry_after = Some(60 - self.now() % 60);
            return Err(err);
        }
        Ok(())
    }

    /// Issues an access token for a session.
    pub fn access_token(
        &self,
        tenant: &str,
        user: &str,
        session: &str,
        mfa_at: Option<i64>,
    ) -> String {
        let now = self.now();
        self.jwt.sign(&Claims {
            iss: ISSUER.into(),
            aud: AUD_ACCESS.into(),
            sub: user.into(),
            tid: tenant.into(),
            sid: session.into(),
            iat: now,
            nbf: now,
            exp: now + self.cfg.access_ttl,
            mfa_at,
            jti: uuid::Uuid::new_v4().to_string(),
        })
    }

    async fn touch(&self, tenant: &str, user: &str) {
        let now = self.now();
        {
            let mut m = self.activity.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(user) {
                Some(t) if now - *t < 60 && now >= *t => return,
                _ => {
                    m.insert(user.to_string(), now);
                }
            }
        }
        if let Err(e) = self.store.touch_activity(tenant, user, now).await {
            tracing::warn!(error = %e, "could not record activity");
        }
    }
}

/// Who records the success event of an operation (see [`AppState::audited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditedBy {
    /// The store, in the same transaction as the change (every state-changing call).
    Store,
    /// The handler, after the operation (reads).
    Handler,
}

/// Connection and client metadata recorded in audit events.
#[derive(Debug, Clone)]
pub struct ReqMeta {
    /// Peer IP from the TCP connection (not from headers, which clients control).
    pub ip: String,
    /// Parsed peer IP.
    pub ip_addr: IpAddr,
    /// Sanitised User-Agent (control characters removed, at most 256 chars).
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ReqMeta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let user_agent: String = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect();
        Ok(ReqMeta {
            ip: ip_addr.to_string(),
            ip_addr,
            user_agent,
        })
    }
}

/// An authenticated caller: a user with an access token, or an API key.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Tenant.
    pub tenant_id: String,
    /// User id (for API keys: the creator).
    pub user_id: String,
    /// Audit actor: email, or `apikey:<id>`.
    pub actor: String,
    /// Tenant role (API keys: the key's role).
    pub role: Role,
    /// Last MFA verification (never for API keys).
    pub mfa_at: Option<i64>,
    /// Session family (empty for API keys).
    pub session: String,
    /// Set when authenticated by an API key.
    pub api_key: Option<String>,
    /// API key project restriction.
    pub key_project: Option<String>,
    /// TOTP enrolled.
    pub mfa_enrolled: bool,
}

impl Principal {
    /// Requires at least `min` as tenant role (project-scoped API keys never pass).
    pub fn require(&self, min: Role) -> ApiResult<()> {
        if self.key_project.is_some() {
            return Err(ApiError::forbidden(
                "this API key is restricted to one project",
            ));
        }
        if self.role < min {
            return Err(ApiError::forbidden(format!(
                "this operation requires the {} role or higher",
                min.as_str()
            )));
        }
        Ok(())
    }

    /// Requires a user session (not an API key).
    pub fn require_user(&self) -> ApiResult<()> {
        if self.api_key.is_some() {
            return Err(ApiError::forbidden(
                "API keys cannot perform this operation",
            ));
        }
        Ok(())
    }

    /// Requires MFA verified within the step-up window.
    pub fn require_recent_mfa(&self, st: &AppState) -> ApiResult<()> {
        self.require_user()?;
        // A step-up only counts while MFA is still enrolled (it may have been turned off or
        // reset since the token was issued).
        let fresh = self.mfa_enrolled
            && self
                .mfa_at
                .is_some_and(|t| st.now() - t <= st.cfg.step_up_window && t <= st.now() + 5);
        if fresh {
            return Ok(());
        }
        let msg = if self.mfa_enrolled {
            "this operation needs a recent MFA verification: POST /v1/auth/step-up with a TOTP code"
        } else {
            "this operation needs MFA: enrol TOTP (POST /v1/me/mfa/enroll) and step up"
        };
        Err(ApiError::new(ErrorCode::MfaRequired, msg))
    }

    /// Effective role on a project: a project assignment overrides the tenant role, except
    /// that Owners keep full control everywhere. API keys use their own role and scope.
    pub async fn project_role(&self, st: &AppState, project: &str) -> ApiResult<Role> {
        if let Some(p) = &self.key_project {
            if p != project {
                return Err(ApiError::not_found("project"));
            }
            return Ok(self.role);
        }
        if self.api_key.is_some() || self.role == Role::Owner {
            return Ok(self.role);
        }
        let roles = st.store.project_roles(&self.tenant_id).await?;
        Ok(roles
            .iter()
            .find(|r| r.project_id == project && r.user_id == self.user_id)
            .map(|r| r.role)
            .unwrap_or(self.role))
    }

    /// Requires at least `min` on a project.
    pub async fn require_project(
        &self,
        st: &AppState,
        project: &str,
        min: Role,
    ) -> ApiResult<Role> {
        let r = self.project_role(st, project).await?;
        if r < min {
            return Err(ApiError::forbidden(format!(
                "this operation requires the {} role or higher on the project",
                min.as_str()
            )));
        }
        Ok(r)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl<S> FromRequestParts<S> for Principal
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let st = AppState::from_ref(s);
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)")
        })?;
        let now = st.now();
        let p = if let Some(rest) = token.strip_prefix("lvk_") {
            api_key_principal(&st, rest, now).await?
        } else {
            let claims = st.jwt.verify(token, AUD_ACCESS, now).map_err(|e| match e {
                JwtError::Expired => {
                    ApiError::new(ErrorCode::TokenExpired, "access token expired; refresh it")
                }
                other => ApiError::unauthorized(format!("invalid access token: {other}")),
            })?;
            let row = match st
                .store
                .auth_lookup(&claims.tid, &claims.sub, &claims.sid)
                .await
            {
                Ok(r) => r,
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::unauthorized("the account no longer exists"))
                }
                Err(e) => return Err(e.into()),
            };
            if row.session_revoked {
                return Err(ApiError::unauthorized("session revoked; log in again"));
            }
            if row.tenant.expires_at.is_some_and(|t| t <= now) {
                return Err(ApiError::new(
                    ErrorCode::TenantExpired,
                    "trial tenant expired",
                ));
            }
            if row.tenant.require_mfa
                && !row.user.mfa_enrolled()
                && !parts.uri.path().starts_with("/v1/me")
            {
                return Err(ApiError::new(
                    ErrorCode::MfaEnrollmentRequired,
                    "this tenant requires MFA: enrol TOTP at /v1/me/mfa/enroll first",
                ));
            }
            Principal {
                tenant_id: claims.tid,
                user_id: claims.sub,
                actor: row.user.email.clone(),
                role: row.user.role,
                mfa_at: claims.mfa_at,
                session: claims.sid,
                api_key: None,
                key_project: None,
                mfa_enrolled: row.user.mfa_enrolled(),
            }
        };
        if let Err(refusal) = st.spend_request(&p.tenant_id, &p.actor) {
            if refusal.to_report > 0 {
                let meta = ReqMeta::from_request_parts(parts, s).await?;
                let mut d = st.draft(
                    &p.actor,
                    &meta,
                    actions::AUTH_RATE_LIMITED,
                    parts.uri.path().chars().take(256).collect(),
                );
                d.result = AuditResult::Denied;
                d.detail = format!("refused={}", refusal.to_report);
                st.store
                    .append_audit(&p.tenant_id, d)
                    .await
                    .map_err(ApiError::internal)?;
            }
            let mut err = ApiError::new(
                ErrorCode::RateLimited,
                "too many requests from this account; slow down and retry after the delay given",
            );
            err.retry_after = Some(refusal.retry_after as i64);
            return Err(err);
        }
        if p.api_key.is_none() {
            st.touch(&p.tenant_id, &p.user_id).await;
        }
        Ok(p)
    }
}

async fn api_key_principal(st: &AppState, rest: &str, now: i64) -> ApiResult<Principal> {
    let bad = || ApiError::unauthorized("invalid API key");
    let (id, secret) = rest.split_once('_').ok_or_else(bad)?;
    let key = match st.store.api_key(id).await {
        Ok(k) => k,
        Err(StoreError::NotFound(_)) => return Err(bad()),
        Err(e) => return Err(e.into()),
    };
    let ok: bool =
        subtle::ConstantTimeEq::ct_eq(sha256_hex(secret).as_bytes(), key.secret_hash.as_bytes())
            .into();
    if !ok || key.revoked_at.is_some() {
        return Err(bad());
    }
    if key.expires_at <= now {
        return Err(ApiError::new(ErrorCode::TokenExpired, "API key expired"));
    }
    // The creator must still be a member; the key never exceeds the creator's current role.
    let creator = match st
        .store
        .auth_lookup(&key.tenant_id, &key.created_by, "")
        .await
    {
        Ok(r) => r,
        Err(StoreError::NotFound(_)) => return Err(bad()),
        Err(e) => return Err(e.into()),
    };
    if creator.tenant.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::new(
            ErrorCode::TenantExpired,
            "trial tenant expired",
        ));
    }
    Ok(Principal {
        tenant_id: key.tenant_id,
        user_id: key.created_by,
        actor: format!("apikey:{}", key.id),
        role: key.role.min(creator.user.role),
        mfa_at: None,
        session: String::new(),
        api_key: Some(key.id),
        key_project: key.project_id,
        mfa_enrolled: false,
    })
}

/// Rejects strings with control characters or outside a length range (names, labels).
pub fn check_text(field: &str, v: &str, max: usize) -> ApiResult<()> {
    let n = v.chars().count();
    if n == 0 || n > max {
        return Err(ApiError::invalid(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// Validates an id from a path: anything that is not a UUID cannot exist.
pub fn check_id(what: &str, id: &str) -> ApiResult<()> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found(what));
    }
    Ok(())
}

/// A client-supplied string made safe for an audit resource path (no control characters,
/// bounded length).
pub fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}
