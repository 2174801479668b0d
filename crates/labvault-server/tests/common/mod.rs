//! Test harness: the real server on 127.0.0.1:0 over TLS (generated certificate), the typed
//! tenant client (`labvault-client`, TLS 1.3, pinned to that certificate's key) and a manual
//! clock. Client, server and wire types are exercised together; the raw helpers exist only for
//! the tests of the API's edges (every route, hostile input), which must send what no typed
//! client would.
#![allow(dead_code)]

use std::sync::Arc;

use labvault_client::{ClientError, ClientOptions, Pin, TenantClient};
use labvault_server::clock::ManualClock;
use labvault_server::secrets::{KdfParams, Secret};
use labvault_server::server::self_signed;
use labvault_server::{
    create_tenant, open_state, start, Config, DataDir, NewTenant, RunningServer,
};
use labvault_wire::{
    AcceptInvitationRequest, ErrorCode, InvitationRequest, LoginRequest, LoginResponse,
    MfaLoginRequest, PlanTier, Role,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::macros::datetime;

/// Password used for every test account (meets the policy).
pub const PW: &str = "Correct-Horse-9";

/// User agent of the typed client (asserted in audit events).
pub const UA: &str = "labvault-tests/1";

pub struct Harness {
    pub server: RunningServer,
    /// The typed client, pinned to the server's key.
    pub api: TenantClient,
    /// A plain HTTPS client trusting the server's certificate, for raw bodies and headers.
    pub http: reqwest::Client,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub cfg: Config,
}

pub fn test_config() -> Config {
    Config {
        kdf: KdfParams::TEST,
        login_attempts_per_ip_minute: 10_000,
        sweep_interval_secs: 3600,
        // Webhook deliveries only when a test asks (`alerts::deliver_due`).
        alert_tick_secs: 3600,
        // Small parts, so resumable uploads are tested with kilobytes.
        part_size_range: (1024, 64 << 20),
        ..Config::default()
    }
}

pub async fn harness() -> Harness {
    harness_with(test_config()).await
}

pub async fn harness_with(cfg: Config) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::create(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-01 09:00 UTC)));
    let state = open_state(&data, cfg.clone(), clock.clone()).unwrap();
    let server = start(
        "127.0.0.1:0".parse().unwrap(),
        self_signed(&data).unwrap(),
        state,
    )
    .await
    .unwrap();
    let base = format!("https://localhost:{}", server.addr.port());
    let api = TenantClient::new(
        &format!("https://127.0.0.1:{}", server.addr.port()),
        Pin::parse(&server.pin).unwrap(),
        ClientOptions {
            user_agent: UA.into(),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", server.addr)
        .https_only(true)
        .user_agent(UA)
        .build()
        .unwrap();
    Harness {
        server,
        api,
        http,
        base,
        clock,
        dir,
        cfg,
    }
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
    pub totp: Option<Vec<u8>>,
}

/// The HTTP status and API code of a call that must fail.
#[track_caller]
pub fn api_err<T>(r: Result<T, ClientError>) -> (u16, ErrorCode) {
    match r {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        Err(other) => panic!("expected an API error, got {other:?}"),
        Ok(_) => panic!("expected an API error, the call succeeded"),
    }
}

/// The API code of a call that must fail.
#[track_caller]
pub fn code<T>(r: Result<T, ClientError>) -> ErrorCode {
    api_err(r).1
}

pub fn login_req(slug: &str, email: &str, password: &str) -> LoginRequest {
    LoginRequest {
        tenant: slug.into(),
        email: email.into(),
        password: password.into(),
    }
}

impl Harness {
    /// Stops the server and starts it again on the same address and data directory (a
    /// restart of the tenant: everything not durable is gone).
    pub async fn restart(&mut self) {
        let addr = self.server.addr;
        let placeholder = start(
            "127.0.0.1:0".parse().unwrap(),
            self_signed(&DataDir(self.dir.path().to_path_buf())).unwrap(),
            self.server.state.clone(),
        )
        .await
        .unwrap();
        let old = std::mem::replace(&mut self.server, placeholder);
        let old_state = old.state.clone();
        old.stop().await;
        drop(old_state);
        let data = DataDir(self.dir.path().to_path_buf());
        let state = open_state(&data, self.cfg.clone(), self.clock.clone()).unwrap();
        let tmp = std::mem::replace(
            &mut self.server,
            start(addr, self_signed(&data).unwrap(), state)
                .await
                .unwrap(),
        );
        tmp.stop().await;
    }

    pub fn now(&self) -> i64 {
        labvault_server::clock::now_ts(self.clock.as_ref())
    }

    /// A raw request through the typed client's TLS (pin, TLS 1.3): status and JSON (or the
    /// text as a JSON string). For route and hostile-input tests only.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, text) = self.call_raw(method, path, token, body).await;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (s, v)
    }

    /// Like [`Harness::call`], with the answer as text.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        self.call_raw_with(method, path, token, body, &[]).await
    }

    /// Like [`Harness::call`], with extra headers (a device id for sync routes).
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let (s, text) = self.call_raw_with(method, path, token, body, headers).await;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (s, v)
    }

    pub async fn call_raw_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let _ = Method::from_bytes(method.as_bytes()).unwrap();
        let (s, text) = self
            .api
            .raw(method, path, token, body.as_ref(), headers)
            .await
            .expect("request reaches the server");
        (StatusCode::from_u16(s).unwrap(), text)
    }

    /// Registers a fresh device for `u` (approved if it is the user's first) and returns its id.
    pub async fn device(&self, u: &User) -> String {
        use base64::Engine;
        let id = uuid::Uuid::new_v4().to_string();
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        self.api
            .register_device(
                &u.access,
                &labvault_wire::DeviceRegistration {
                    device_id: id.clone(),
                    name: "test device".into(),
                    x25519: key.clone(),
                    ed25519: key,
                },
            )
            .await
            .unwrap();
        id
    }

    /// Creates a tenant directly (like `labvault-server init`); returns the Owner's email.
    pub async fn tenant(&self, slug: &str) -> String {
        let email = format!("owner@{slug}.test");
        create_tenant(
            &self.server.state,
            NewTenant {
                slug: slug.into(),
                name: format!("Lab {slug}"),
                plan: PlanTier::Professional,
                owner_email: email.clone(),
                owner_password: Secret::new(PW.into()),
            },
        )
        .await
        .unwrap();
        email
    }

    /// Password login of a user without MFA.
    pub async fn login(&self, slug: &str, email: &str) -> User {
        match self.api.login(&login_req(slug, email, PW)).await.unwrap() {
            LoginResponse::Ok(t) => {
                let me = self.api.me(&t.access_token).await.unwrap();
                User {
                    id: me.id,
                    email: email.into(),
                    access: t.access_token,
                    refresh: t.refresh_token,
                    totp: None,
                }
            }
            LoginResponse::MfaRequired { .. } => panic!("{email} has MFA"),
        }
    }

    pub fn code(&self, secret: &[u8]) -> String {
        labvault_server::totp::code_at(secret, self.now(), 6)
    }

    /// Enrols TOTP for a logged-in user, then logs in again with MFA (fresh `mfa_at`).
    pub async fn enroll_and_relogin(&self, slug: &str, u: &User) -> User {
        let e = self.api.mfa_enroll(&u.access).await.unwrap();
        let secret = labvault_server::totp::base32_decode(&e.secret_base32).unwrap();
        let rc = self
            .api
            .mfa_confirm(&u.access, &self.code(&secret))
            .await
            .unwrap();
        assert_eq!(rc.recovery_codes.len(), 10);
        self.clock.advance(time::Duration::seconds(31));
        self.mfa_login(slug, &u.email, &secret).await
    }

    /// The challenge of the first login step of a user with MFA.
    pub async fn mfa_challenge(&self, slug: &str, email: &str) -> String {
        match self.api.login(&login_req(slug, email, PW)).await.unwrap() {
            LoginResponse::MfaRequired { mfa_token } => mfa_token,
            LoginResponse::Ok(_) => panic!("{email} has no MFA"),
        }
    }

    /// Two-step login; the clock must be at a TOTP step not used yet by this user.
    pub async fn mfa_login(&self, slug: &str, email: &str, secret: &[u8]) -> User {
        let mfa_token = self.mfa_challenge(slug, email).await;
        let t = self
            .api
            .login_mfa(&MfaLoginRequest {
                mfa_token,
                code: self.code(secret),
            })
            .await
            .unwrap();
        let me = self.api.me(&t.access_token).await.unwrap();
        User {
            id: me.id,
            email: email.into(),
            access: t.access_token,
            refresh: t.refresh_token,
            totp: Some(secret.to_vec()),
        }
    }

    /// A second MFA session for the same user, at the next TOTP step.
    pub async fn mfa_login_later(&self, slug: &str, email: &str, secret: &[u8]) -> User {
        self.clock.advance(time::Duration::seconds(30));
        self.mfa_login(slug, email, secret).await
    }

    /// Invites `email` with `role` (by `admin`) and accepts; returns the logged-in user.
    pub async fn add_member(&self, slug: &str, admin: &User, email: &str, role: Role) -> User {
        let inv = self
            .api
            .create_invitation(
                &admin.access,
                &InvitationRequest {
                    email: email.into(),
                    role,
                    expires_in_hours: None,
                },
            )
            .await
            .unwrap();
        self.api
            .accept_invitation(&AcceptInvitationRequest {
                token: inv.token,
                password: PW.into(),
            })
            .await
            .unwrap();
        self.login(slug, email).await
    }

    /// Audit events of a tenant straight from the store (oldest first).
    pub async fn audit(&self, tenant_slug: &str) -> Vec<labvault_server::store::AuditRow> {
        let t = self
            .server
            .state
            .store
            .tenant_by_slug(tenant_slug)
            .await
            .unwrap();
        self.server.state.store.audit_chain(&t.id).await.unwrap()
    }
}

pub fn code_of(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("<no code>")
}
