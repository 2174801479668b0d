//! Test harness: the real server on 127.0.0.1:0 over TLS (generated certificate), a real
//! reqwest client that trusts exactly that certificate, and a manual clock.
#![allow(dead_code)]

use std::sync::Arc;

use labvault_server::clock::ManualClock;
use labvault_server::secrets::{KdfParams, Secret};
use labvault_server::server::self_signed;
use labvault_server::{
    create_tenant, open_state, start, Config, DataDir, NewTenant, RunningServer,
};
use labvault_wire::PlanTier;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

/// Password used for every test account (meets the policy).
pub const PW: &str = "Correct-Horse-9";

pub struct Harness {
    pub server: RunningServer,
    pub client: reqwest::Client,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

pub fn test_config() -> Config {
    Config {
        kdf: KdfParams::TEST,
        login_attempts_per_ip_minute: 10_000,
        sweep_interval_secs: 3600,
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
    let state = open_state(&data, cfg, clock.clone()).unwrap();
    let server = start(
        "127.0.0.1:0".parse().unwrap(),
        self_signed(&data).unwrap(),
        state,
    )
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", server.addr)
        .https_only(true)
        .user_agent("labvault-tests/1")
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", server.addr.port());
    Harness {
        server,
        client,
        base,
        clock,
        dir,
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

impl Harness {
    pub fn now(&self) -> i64 {
        labvault_server::clock::now_ts(self.clock.as_ref())
    }

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

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the server");
        let s = resp.status();
        (s, resp.text().await.unwrap())
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
        let (s, v) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"tenant": slug, "email": email, "password": PW})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "ok", "{v}");
        let access = v["access_token"].as_str().unwrap().to_string();
        let (_, me) = self.call("GET", "/v1/me", Some(&access), None).await;
        User {
            id: me["id"].as_str().unwrap().to_string(),
            email: email.into(),
            access,
            refresh: v["refresh_token"].as_str().unwrap().to_string(),
            totp: None,
        }
    }

    pub fn code(&self, secret: &[u8]) -> String {
        labvault_server::totp::code_at(secret, self.now(), 6)
    }

    /// Enrols TOTP for a logged-in user, then logs in again with MFA (fresh `mfa_at`).
    pub async fn enroll_and_relogin(&self, slug: &str, u: &User) -> User {
        let (s, v) = self
            .call("POST", "/v1/me/mfa/enroll", Some(&u.access), None)
            .await;
        assert_eq!(s, 200, "{v}");
        let secret =
            labvault_server::totp::base32_decode(v["secret_base32"].as_str().unwrap()).unwrap();
        let (s, v) = self
            .call(
                "POST",
                "/v1/me/mfa/confirm",
                Some(&u.access),
                Some(json!({"code": self.code(&secret)})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["recovery_codes"].as_array().unwrap().len(), 10);
        self.clock.advance(time::Duration::seconds(31));
        self.mfa_login(slug, &u.email, &secret).await
    }

    /// Two-step login; the clock must be at a TOTP step not used yet by this user.
    pub async fn mfa_login(&self, slug: &str, email: &str, secret: &[u8]) -> User {
        let (s, v) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"tenant": slug, "email": email, "password": PW})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "mfa_required", "{v}");
        let (s, t) = self
            .call(
                "POST",
                "/v1/auth/mfa",
                None,
                Some(json!({"mfa_token": v["mfa_token"], "code": self.code(secret)})),
            )
            .await;
        assert_eq!(s, 200, "{t}");
        let access = t["access_token"].as_str().unwrap().to_string();
        let (_, me) = self.call("GET", "/v1/me", Some(&access), None).await;
        User {
            id: me["id"].as_str().unwrap().to_string(),
            email: email.into(),
            access,
            refresh: t["refresh_token"].as_str().unwrap().to_string(),
            totp: Some(secret.to_vec()),
        }
    }

    /// A second MFA session for the same user, at the next TOTP step.
    pub async fn mfa_login_later(&self, slug: &str, email: &str, secret: &[u8]) -> User {
        self.clock.advance(time::Duration::seconds(30));
        self.mfa_login(slug, email, secret).await
    }

    /// Invites `email` with `role` (by `admin`) and accepts; returns the logged-in user.
    pub async fn add_member(&self, slug: &str, admin: &User, email: &str, role: &str) -> User {
        let (s, v) = self
            .call(
                "POST",
                "/v1/invitations",
                Some(&admin.access),
                Some(json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let (s, v) = self
            .call(
                "POST",
                "/v1/invitations/accept",
                None,
                Some(json!({"token": v["token"], "password": PW})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
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
