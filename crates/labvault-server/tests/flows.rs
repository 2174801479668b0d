//! End-to-end flows over TLS: sessions, MFA, step-up, lockout, trials, roles, access review,
//! API keys, audit and retention, deletion.

mod common;

use common::*;
use labvault_governance::audit::Outcome;
use labvault_server::secrets::Secret;
use labvault_server::{create_tenant, sweep_trials, Config, NewTenant};
use labvault_wire::PlanTier;
use serde_json::json;
use time::Duration;

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;

    let (s, r2) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(s, 200, "{r2}");
    let r2_token = r2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r2_token, u.refresh);

    // The response was "lost": a retry with the old token inside the grace window works.
    h.clock.advance(Duration::seconds(5));
    let (s, r3) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(s, 200, "retry within grace tolerated: {r3}");
    let r3_token = r3["refresh_token"].as_str().unwrap().to_string();
    let (s, _) = h
        .call(
            "GET",
            "/v1/me",
            Some(r3["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200);

    // The retired successor r2 presented later = reuse: the whole family is revoked.
    h.clock.advance(Duration::seconds(60));
    let (s, v) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r2_token})),
        )
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (401, "invalid_refresh_token"));
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r3_token})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_refresh_token", "family revoked");
    let (s, v) = h
        .call(
            "GET",
            "/v1/me",
            Some(r3["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), code_of(&v)),
        (401, "unauthorized"),
        "access tokens of the family die too"
    );
    assert!(h
        .audit("lab")
        .await
        .iter()
        .any(|e| e.action.as_str() == "auth.refresh_reuse" && e.result == Outcome::Denied));

    // Plain replay after the grace window.
    let u = h.login("lab", &email).await;
    let (_, n) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    h.clock.advance(Duration::seconds(31));
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_refresh_token");
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": n["refresh_token"]})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_refresh_token");
}

#[tokio::test]
async fn logout_revokes_refresh_and_access() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let (s, _) = h
        .call(
            "POST",
            "/v1/auth/logout",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_refresh_token");
    let (_, v) = h.call("GET", "/v1/me", Some(&u.access), None).await;
    assert_eq!(code_of(&v), "unauthorized");
}

#[tokio::test]
async fn mfa_two_step_login_replay_and_recovery_codes() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let (_, v) = h
        .call("POST", "/v1/me/mfa/enroll", Some(&u.access), None)
        .await;
    let secret =
        labvault_server::totp::base32_decode(v["secret_base32"].as_str().unwrap()).unwrap();
    assert!(v["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let (_, v) = h
        .call(
            "POST",
            "/v1/me/mfa/confirm",
            Some(&u.access),
            Some(json!({"code": "000001"})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_mfa_code");
    let (s, rc) = h
        .call(
            "POST",
            "/v1/me/mfa/confirm",
            Some(&u.access),
            Some(json!({"code": h.code(&secret)})),
        )
        .await;
    assert_eq!(s, 200);
    let recovery: Vec<String> = serde_json::from_value(rc["recovery_codes"].clone()).unwrap();
    // At rest the seed is sealed (AES-GCM) and recovery codes are hashed.
    let db = rusqlite::Connection::open(h.dir.path().join("labvault-server.db")).unwrap();
    let stored: Vec<u8> = db
        .query_row("SELECT totp_secret FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored[0], 1);
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
    let codes: Vec<String> = db
        .prepare("SELECT code_hash FROM recovery_codes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|x| x.unwrap())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(recovery.iter().all(|c| !codes.contains(c)));

    h.clock.advance(Duration::seconds(30));
    let login = || {
        h.call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "lab", "email": email, "password": PW})),
        )
    };
    let (_, v) = login().await;
    assert_eq!(v["status"], "mfa_required");
    assert!(
        v.get("access_token").is_none(),
        "no token before the second step"
    );
    let challenge = v["mfa_token"].clone();
    // The challenge is not an access token.
    let (_, me) = h
        .call("GET", "/v1/me", Some(challenge.as_str().unwrap()), None)
        .await;
    assert_eq!(code_of(&me), "unauthorized");
    let wrong = if h.code(&secret) == "123456" {
        "654321"
    } else {
        "123456"
    };
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": challenge, "code": wrong})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_mfa_code");
    let code = h.code(&secret);
    let (s, _) = h
        .call(
            "POST",
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": challenge, "code": code})),
        )
        .await;
    assert_eq!(s, 200);
    // Same code again in the same window: replay refused.
    let (_, v) = login().await;
    let (_, r) = h
        .call(
            "POST",
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": v["mfa_token"], "code": code})),
        )
        .await;
    assert_eq!(code_of(&r), "invalid_mfa_code");
    // A recovery code works exactly once.
    let (s, _) = h
        .call(
            "POST",
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": v["mfa_token"], "code": recovery[0]})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, r) = h
        .call(
            "POST",
            "/v1/auth/mfa",
            None,
            Some(json!({"mfa_token": v["mfa_token"], "code": recovery[0]})),
        )
        .await;
    assert_eq!(code_of(&r), "invalid_mfa_code");
}

#[tokio::test]
async fn admin_operations_need_recent_mfa_and_step_up_gives_it() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let body = json!({"rules": [{"data_type": "backup", "period": "120d"}]});
    let (s, v) = h
        .call("PUT", "/v1/retention", Some(&u.access), Some(body.clone()))
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (403, "mfa_required"));
    let u = h.enroll_and_relogin("lab", &u).await;
    let (s, _) = h
        .call("PUT", "/v1/retention", Some(&u.access), Some(body.clone()))
        .await;
    assert_eq!(s, 200, "fresh MFA login allows it");

    h.clock.advance(Duration::seconds(301));
    let (_, v) = h
        .call("PUT", "/v1/retention", Some(&u.access), Some(body.clone()))
        .await;
    assert_eq!(code_of(&v), "mfa_required", "MFA older than the window");
    let (_, v) = h
        .call(
            "POST",
            "/v1/api-keys",
            Some(&u.access),
            Some(json!({"name": "ci", "role": "viewer", "expires_in_days": 1})),
        )
        .await;
    assert_eq!(code_of(&v), "mfa_required");
    let secret = u.totp.clone().unwrap();
    let (s, t) = h
        .call(
            "POST",
            "/v1/auth/step-up",
            Some(&u.access),
            Some(json!({"code": h.code(&secret)})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let stepped = t["access_token"].as_str().unwrap();
    let (s, _) = h
        .call("PUT", "/v1/retention", Some(stepped), Some(body))
        .await;
    assert_eq!(s, 200);
    let denied = h
        .audit("lab")
        .await
        .iter()
        .filter(|e| e.action.as_str() == "retention.change" && e.result == Outcome::Denied)
        .count();
    assert_eq!(denied, 2, "denied attempts are audited");

    // Access tokens expire after ~10 minutes.
    h.clock.advance(Duration::seconds(700));
    let (s, v) = h.call("GET", "/v1/me", Some(stepped), None).await;
    assert_eq!((s.as_u16(), code_of(&v)), (401, "token_expired"));
}

#[tokio::test]
async fn failed_logins_lock_the_account_temporarily_and_are_audited() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    for _ in 0..5 {
        let (_, v) = h
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"tenant": "lab", "email": email, "password": "Wrong-horse-9"})),
            )
            .await;
        assert_eq!(code_of(&v), "invalid_credentials");
    }
    let (s, v) = h
        .call_raw(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "lab", "email": email, "password": PW})),
        )
        .await;
    assert_eq!(s.as_u16(), 429, "{v}");
    assert!(v.contains("rate_limited"));
    let events = h.audit("lab").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action.as_str() == "auth.lockout")
            .count(),
        1
    );
    assert!(
        events
            .iter()
            .filter(|e| e.action.as_str() == "auth.login" && e.result == Outcome::Failure)
            .count()
            >= 5
    );
    h.clock.advance(Duration::seconds(901));
    h.login("lab", &email).await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_address() {
    let h = harness_with(Config {
        login_attempts_per_ip_minute: 3,
        ..test_config()
    })
    .await;
    h.tenant("lab").await;
    for _ in 0..3 {
        let (_, v) = h
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"tenant": "nope", "email": "a@b.cc", "password": "x"})),
            )
            .await;
        assert_eq!(code_of(&v), "invalid_credentials");
    }
    let (s, v) = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "nope", "email": "a@b.cc", "password": "x"})),
        )
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (429, "rate_limited"));
}

#[tokio::test]
async fn trial_tenants_expire_after_24_hours_and_their_data_is_deleted() {
    let h = harness().await;
    create_tenant(
        &h.server.state,
        NewTenant {
            slug: "trial-1".into(),
            name: "Trial".into(),
            plan: PlanTier::Trial,
            owner_email: "t@trial.test".into(),
            owner_password: Secret::new(PW.into()),
        },
    )
    .await
    .unwrap();
    let u = h.login("trial-1", "t@trial.test").await;
    let (_, t) = h.call("GET", "/v1/tenant", Some(&u.access), None).await;
    assert_eq!(t["plan"], "trial");
    assert!(t["expires_at"].is_string());
    h.clock.advance(Duration::hours(23));
    assert!(sweep_trials(&h.server.state).await.unwrap().is_empty());
    h.clock.advance(Duration::hours(1));
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "trial-1", "email": "t@trial.test", "password": PW})),
        )
        .await;
    assert_eq!(
        code_of(&v),
        "tenant_expired",
        "expired even before the sweeper runs"
    );
    assert_eq!(sweep_trials(&h.server.state).await.unwrap().len(), 1);
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "trial-1", "email": "t@trial.test", "password": PW})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_credentials");
    let sys = h
        .server
        .state
        .store
        .audit_chain(labvault_server::server::SYSTEM_CHAIN)
        .await
        .unwrap();
    assert!(sys
        .iter()
        .any(|e| e.action.as_str() == "tenant.trial_expire"));
    assert!(labvault_server::chain::verify(&sys).is_ok());
    // The expired trial's own chain is kept and records the expiry last.
    let store = &h.server.state.store;
    let (id, _) = store.deleted_tenants().await.unwrap().remove(0);
    let chain = store.audit_chain(&id).await.unwrap();
    assert!(labvault_server::chain::verify(&chain).is_ok());
    assert_eq!(chain.last().unwrap().action.as_str(), "tenant.trial_expire");
    assert!(store.list_users(&id).await.unwrap().is_empty());
    assert!(
        sweep_trials(&h.server.state).await.unwrap().is_empty(),
        "a tombstone never expires twice"
    );
}

#[tokio::test]
async fn last_owner_is_protected_and_ownership_transfers() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let (s, v) = h
        .call(
            "PUT",
            &format!("/v1/members/{}/role", owner.id),
            Some(&owner.access),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (409, "conflict"));
    let (_, v) = h
        .call(
            "DELETE",
            &format!("/v1/members/{}", owner.id),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(code_of(&v), "conflict");
    let (_, v) = h
        .call(
            "DELETE",
            "/v1/me",
            Some(&owner.access),
            Some(json!({"password": PW})),
        )
        .await;
    assert_eq!(code_of(&v), "conflict");

    let admin = h.add_member("lab", &owner, "admin@lab.test", "admin").await;
    let admin = h.enroll_and_relogin("lab", &admin).await;
    // An Admin cannot touch the Owner.
    let (_, v) = h
        .call(
            "DELETE",
            &format!("/v1/members/{}", owner.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(code_of(&v), "forbidden");
    let (_, v) = h
        .call(
            "PUT",
            &format!("/v1/members/{}/role", admin.id),
            Some(&admin.access),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(code_of(&v), "forbidden");

    let (s, v) = h
        .call(
            "POST",
            "/v1/tenant/transfer-ownership",
            Some(&owner.access),
            Some(json!({"user_id": admin.id})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, me) = h.call("GET", "/v1/me", Some(&owner.access), None).await;
    assert_eq!(me["role"], "admin", "role changes apply to live tokens");
    let (_, me) = h.call("GET", "/v1/me", Some(&admin.access), None).await;
    assert_eq!(me["role"], "owner");
    let actions: Vec<String> = h
        .audit("lab")
        .await
        .into_iter()
        .map(|e| e.action.as_str().to_string())
        .collect();
    assert!(actions.contains(&"tenant.ownership_transfer".to_string()));
}

#[tokio::test]
async fn project_roles_override_and_access_review_reports_them() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let viewer = h
        .add_member("lab", &owner, "viewer@lab.test", "viewer")
        .await;
    let admin = h.add_member("lab", &owner, "admin@lab.test", "admin").await;
    let (_, p) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&owner.access),
            Some(json!({"name": "enc:abc"})),
        )
        .await;
    let pid = p["id"].as_str().unwrap();
    let (s, _) = h
        .call(
            "PUT",
            &format!("/v1/projects/{pid}/members/{}", viewer.id),
            Some(&owner.access),
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, got) = h
        .call(
            "GET",
            &format!("/v1/projects/{pid}"),
            Some(&viewer.access),
            None,
        )
        .await;
    assert_eq!(got["effective_role"], "editor");
    let (_, inv) = h
        .call(
            "POST",
            "/v1/invitations",
            Some(&owner.access),
            Some(json!({"email": "pending@lab.test", "role": "viewer"})),
        )
        .await;
    assert!(inv["token"].is_string());

    let (s, r) = h
        .call("GET", "/v1/access-review", Some(&owner.access), None)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["stale_days"], 90);
    let entries = r["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "3 members x 1 project");
    let v = entries
        .iter()
        .find(|e| e["user_id"] == viewer.id.as_str())
        .unwrap();
    assert_eq!(
        (v["effective_role"].as_str(), v["source"].as_str()),
        (Some("editor"), Some("project"))
    );
    let a = entries
        .iter()
        .find(|e| e["user_id"] == admin.id.as_str())
        .unwrap();
    assert_eq!(a["source"], "tenant");
    assert_eq!(a["admin_without_mfa"], true);
    let o = entries
        .iter()
        .find(|e| e["user_id"] == owner.id.as_str())
        .unwrap();
    assert_eq!(o["admin_without_mfa"], false);
    assert_eq!(r["pending_invitations"].as_array().unwrap().len(), 1);
    assert!(entries.iter().all(|e| e["stale"] == false));

    // 91 days later everyone who has not been active is stale (the reviewer is re-logged in).
    h.clock.advance(Duration::days(91));
    let owner = h
        .mfa_login("lab", &email, owner.totp.as_ref().unwrap())
        .await;
    let (_, r) = h
        .call(
            "GET",
            "/v1/access-review?stale_days=90",
            Some(&owner.access),
            None,
        )
        .await;
    let m = r["members"].as_array().unwrap();
    assert_eq!(m.iter().filter(|x| x["stale"] == true).count(), 2);
    let (s, csv) = h
        .call_raw("GET", "/v1/access-review/csv", Some(&owner.access), None)
        .await;
    assert_eq!(s, 200);
    assert!(csv.starts_with("kind,user_id,email,project_id,effective_role,source"));
    assert!(csv.contains(&format!(
        "access,{},viewer@lab.test,{pid},editor,project",
        viewer.id
    )));
    let (_, v) = h
        .call("GET", "/v1/access-review", Some(&viewer.access), None)
        .await;
    assert_eq!(code_of(&v), "token_expired");
}

#[tokio::test]
async fn api_keys_are_scoped_shown_once_revocable_and_expiring() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let (_, p) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&owner.access),
            Some(json!({"name": "p1"})),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let (_, p2) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&owner.access),
            Some(json!({"name": "p2"})),
        )
        .await;
    let (s, k) = h
        .call(
            "POST",
            "/v1/api-keys",
            Some(&owner.access),
            Some(json!({"name": "ci", "role": "viewer", "expires_in_days": 2})),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    let (_, list) = h
        .call("GET", "/v1/api-keys", Some(&owner.access), None)
        .await;
    assert!(
        !list.to_string().contains(&key[40..]),
        "secret never listed"
    );
    let (s, _) = h.call("GET", "/v1/projects", Some(&key), None).await;
    assert_eq!(s, 200);
    let (_, v) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&key),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(code_of(&v), "forbidden");
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/step-up",
            Some(&key),
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_eq!(code_of(&v), "forbidden", "keys cannot step up");
    let (_, v) = h
        .call(
            "POST",
            "/v1/api-keys",
            Some(&owner.access),
            Some(json!({"name": "x", "role": "owner", "expires_in_days": 1})),
        )
        .await;
    assert_eq!(code_of(&v), "forbidden");

    // Project-scoped editor key.
    let (_, pk) = h
        .call(
            "POST",
            "/v1/api-keys",
            Some(&owner.access),
            Some(json!({"name": "p", "role": "editor", "project_id": pid, "expires_in_days": 1})),
        )
        .await;
    let pkey = pk["key"].as_str().unwrap().to_string();
    let (s, _) = h
        .call("GET", &format!("/v1/projects/{pid}"), Some(&pkey), None)
        .await;
    assert_eq!(s, 200);
    let (_, v) = h
        .call(
            "GET",
            &format!("/v1/projects/{}", p2["id"].as_str().unwrap()),
            Some(&pkey),
            None,
        )
        .await;
    assert_eq!(code_of(&v), "not_found");
    let (_, v) = h.call("GET", "/v1/members", Some(&pkey), None).await;
    assert_eq!(code_of(&v), "forbidden");
    let (_, l) = h.call("GET", "/v1/projects", Some(&pkey), None).await;
    assert_eq!(l.as_array().unwrap().len(), 1);

    let kid = k["api_key"]["id"].as_str().unwrap();
    let (s, _) = h
        .call(
            "DELETE",
            &format!("/v1/api-keys/{kid}"),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = h.call("GET", "/v1/projects", Some(&key), None).await;
    assert_eq!(code_of(&v), "unauthorized");
    let (_, v) = h
        .call("GET", "/v1/projects", Some(&format!("{}x", &pkey)), None)
        .await;
    assert_eq!(code_of(&v), "unauthorized");
    h.clock.advance(Duration::days(2));
    let (_, v) = h.call("GET", "/v1/projects", Some(&pkey), None).await;
    assert_eq!(code_of(&v), "token_expired");
    let events = h.audit("lab").await;
    assert!(events.iter().any(|e| e.user.starts_with("apikey:")));
}

#[tokio::test]
async fn audit_events_are_chained_queryable_exportable_and_tamper_evident() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let viewer = h
        .add_member("lab", &owner, "viewer@lab.test", "viewer")
        .await;
    // Each call (read, change, refusal) adds exactly one event.
    for (m, path, body) in [
        ("GET", "/v1/me", None),
        ("GET", "/v1/tenant", None),
        ("POST", "/v1/projects", Some(json!({"name": "p"}))),
        ("GET", "/v1/members", None),
        ("GET", "/v1/access-review", None),
    ] {
        let before = h.audit("lab").await.len();
        h.call(m, path, Some(&viewer.access), body).await;
        assert_eq!(h.audit("lab").await.len(), before + 1, "{m} {path}");
    }
    let (_, v) = h.call("GET", "/v1/audit", Some(&viewer.access), None).await;
    assert_eq!(code_of(&v), "forbidden");
    h.call("GET", "/v1/projects", Some(&viewer.access), None)
        .await;

    let (s, page) = h
        .call("GET", "/v1/audit?limit=2", Some(&owner.access), None)
        .await;
    assert_eq!(s, 200, "{page}");
    let ev = page["events"].as_array().unwrap();
    assert_eq!(ev.len(), 2);
    assert!(
        ev[0]["seq"].as_u64() > ev[1]["seq"].as_u64(),
        "newest first"
    );
    // The page (served without decoding the stored hashes) is exactly the chain's wire form.
    let chain = h.audit("lab").await;
    for e in ev {
        let seq = e["seq"].as_u64().unwrap();
        let stored = chain.iter().find(|c| c.seq == seq).unwrap();
        assert_eq!(*e, serde_json::to_value(stored).unwrap());
    }
    // A filtered page (served from the blocking pool) agrees with the filter.
    let (_, denied) = h
        .call(
            "GET",
            "/v1/audit?result=denied&limit=500",
            Some(&owner.access),
            None,
        )
        .await;
    let denied = denied["events"].as_array().unwrap();
    assert!(!denied.is_empty());
    assert!(denied.iter().all(|e| e["result"] == "denied"));
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = h
        .call(
            "GET",
            &format!("/v1/audit?limit=2&cursor={cursor}"),
            Some(&owner.access),
            None,
        )
        .await;
    assert!(next["events"][0]["seq"].as_u64() < ev[1]["seq"].as_u64());

    let (_, denied) = h
        .call(
            "GET",
            "/v1/audit?result=denied&action=audit.",
            Some(&owner.access),
            None,
        )
        .await;
    let d = &denied["events"][0];
    assert_eq!(
        (d["user"].as_str(), d["result"].as_str()),
        (Some("viewer@lab.test"), Some("denied"))
    );
    assert_eq!(d["ip_address"], "127.0.0.1");
    assert_eq!(d["user_agent"], "labvault-tests/1");
    let (_, v) = h
        .call(
            "GET",
            "/v1/audit?action=project.list&user=viewer@lab.test",
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    // LIKE metacharacters in a prefix filter match literally.
    let (_, v) = h
        .call("GET", "/v1/audit?action=%25", Some(&owner.access), None)
        .await;
    assert_eq!(v["events"].as_array().unwrap().len(), 0);

    let (s, csv) = h
        .call_raw(
            "GET",
            "/v1/audit/export?format=csv",
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(csv.starts_with(&labvault_governance::export::CSV_HEADER.join(",")));
    let (_, jsonl) = h
        .call_raw(
            "GET",
            "/v1/audit/export?format=jsonl",
            Some(&owner.access),
            None,
        )
        .await;
    let lines: Vec<labvault_wire::AuditEvent> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 5);
    assert!(lines
        .windows(2)
        .all(|w| w[1].prev_hash == w[0].hash && w[1].seq == w[0].seq + 1));
    // Both exports verify offline with the vault's verifier.
    use labvault_governance::audit::VerifyMode;
    for file in [&csv, &jsonl] {
        let rep = labvault_governance::export::verify_export(
            file.as_bytes(),
            VerifyMode::Complete,
            &[],
            |_| {},
        )
        .unwrap();
        assert_eq!(rep.devices.len(), 1);
        assert!(rep.devices[0].complete);
    }
    let tampered = jsonl.replacen("\"result\":\"denied\"", "\"result\":\"success\"", 1);
    assert!(labvault_governance::export::verify_export(
        tampered.as_bytes(),
        VerifyMode::Complete,
        &[],
        |_| {}
    )
    .is_err());
    let (_, rep) = h
        .call("GET", "/v1/audit/verify", Some(&owner.access), None)
        .await;
    assert_eq!(rep["ok"], true);

    // Append-only through the API.
    for m in ["PUT", "DELETE", "POST"] {
        let (s, _) = h
            .call(m, "/v1/audit", Some(&owner.access), Some(json!({})))
            .await;
        assert_eq!(s.as_u16(), 405, "{m} /v1/audit");
    }

    // Tampering in the database is detected.
    let db = rusqlite::Connection::open(h.dir.path().join("labvault-server.db")).unwrap();
    db.execute(
        "UPDATE audit_events SET result = 'success' WHERE result = 'denied'",
        [],
    )
    .unwrap();
    let (_, rep) = h
        .call("GET", "/v1/audit/verify", Some(&owner.access), None)
        .await;
    assert_eq!(rep["ok"], false);
    assert!(rep["first_bad_seq"].as_u64().is_some());
}

#[tokio::test]
async fn retention_defaults_overrides_and_audit_log_minimum() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let viewer = h.add_member("lab", &owner, "v@lab.test", "viewer").await;
    let (s, r) = h
        .call("GET", "/v1/retention", Some(&viewer.access), None)
        .await;
    assert_eq!(s, 200, "{r}");
    let period = |r: &serde_json::Value, t: &str| {
        r["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["data_type"] == t)
            .unwrap()["period"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(period(&r["tenant"], "research_data"), "7y");
    assert_eq!(period(&r["tenant"], "analysis_result"), "7y");
    assert_eq!(period(&r["tenant"], "audit_log"), "6y");
    assert_eq!(period(&r["tenant"], "backup"), "90d");
    assert_eq!(
        period(&r["tenant"], "session_data"),
        "90d",
        "professional tier"
    );
    for (t, p) in [
        ("audit_log", "5y"),
        ("audit_log", "2000d"),
        ("backup", "0d"),
        ("backup", "ten days"),
        ("session_data", "10d"),
    ] {
        let (_, v) = h
            .call(
                "PUT",
                "/v1/retention",
                Some(&owner.access),
                Some(json!({"rules": [{"data_type": t, "period": p}]})),
            )
            .await;
        assert_eq!(code_of(&v), "invalid_input", "{t}={p}");
    }
    let (_, v) = h
        .call(
            "PUT",
            "/v1/retention",
            Some(&viewer.access),
            Some(json!({"rules": [{"data_type": "backup", "period": "30d"}]})),
        )
        .await;
    assert_eq!(code_of(&v), "forbidden");
    let (s, _) = h
        .call(
            "PUT",
            "/v1/retention",
            Some(&owner.access),
            Some(json!({"rules": [{"data_type": "audit_log", "period": "10y"}]})),
        )
        .await;
    assert_eq!(s, 200, "raising audit retention is fine");
    let (_, p) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&owner.access),
            Some(json!({"name": "p"})),
        )
        .await;
    let pid = p["id"].as_str().unwrap();
    let (s, pol) = h
        .call(
            "PUT",
            &format!("/v1/projects/{pid}/retention"),
            Some(&owner.access),
            Some(json!({"rules": [{"data_type": "research_data", "period": "10y"}]})),
        )
        .await;
    assert_eq!(s, 200, "{pol}");
    assert_eq!(period(&pol, "research_data"), "10y");
    assert_eq!(
        period(&pol, "audit_log"),
        "10y",
        "inherits the tenant override"
    );
    let (_, r) = h
        .call("GET", "/v1/retention", Some(&viewer.access), None)
        .await;
    assert_eq!(
        period(&r["tenant"], "research_data"),
        "7y",
        "override is per project"
    );
    assert_eq!(r["projects"][0]["project_id"], pid);
    let (s, t) = h
        .call(
            "PUT",
            "/v1/tenant/plan",
            Some(&owner.access),
            Some(json!({"plan": "starter"})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (_, r) = h
        .call("GET", "/v1/retention", Some(&viewer.access), None)
        .await;
    assert_eq!(period(&r["tenant"], "session_data"), "30d");
    assert!(h
        .audit("lab")
        .await
        .iter()
        .any(|e| e.action.as_str() == "tenant.plan_change"));
}

#[tokio::test]
async fn account_and_tenant_deletion_are_irreversible_and_audited() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let member = h.add_member("lab", &owner, "m@lab.test", "editor").await;
    let (_, v) = h
        .call(
            "DELETE",
            "/v1/me",
            Some(&member.access),
            Some(json!({"password": "Wrong-horse-9"})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_credentials");
    let (s, _) = h
        .call(
            "DELETE",
            "/v1/me",
            Some(&member.access),
            Some(json!({"password": PW})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = h.call("GET", "/v1/me", Some(&member.access), None).await;
    assert_eq!(code_of(&v), "unauthorized");
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "lab", "email": "m@lab.test", "password": PW})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_credentials");
    assert!(h
        .audit("lab")
        .await
        .iter()
        .any(|e| e.action.as_str() == "account.delete"));

    let (_, v) = h
        .call(
            "DELETE",
            "/v1/tenant",
            Some(&owner.access),
            Some(json!({"confirm_slug": "nope"})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_input");
    let (s, _) = h
        .call(
            "DELETE",
            "/v1/tenant",
            Some(&owner.access),
            Some(json!({"confirm_slug": "lab"})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = h.call("GET", "/v1/me", Some(&owner.access), None).await;
    assert_eq!(code_of(&v), "unauthorized");
    assert!(h.server.state.store.tenant_by_slug("lab").await.is_err());
    let sys = h
        .server
        .state
        .store
        .audit_chain(labvault_server::server::SYSTEM_CHAIN)
        .await
        .unwrap();
    assert!(sys
        .iter()
        .any(|e| e.action.as_str() == "tenant.delete" && e.user == email));
    // Audit logs outlive the tenant: its chain is kept, intact, ending with the deletion.
    let store = &h.server.state.store;
    let tombstones = store.deleted_tenants().await.unwrap();
    assert_eq!(tombstones.len(), 1);
    let chain = store.audit_chain(&tombstones[0].0).await.unwrap();
    assert!(labvault_server::chain::verify(&chain).is_ok());
    assert!(chain.iter().any(|e| e.action.as_str() == "account.delete"));
    let last = chain.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.user.as_str()),
        ("tenant.delete", email.as_str())
    );
    // ...while its data is gone and the slug is free for a new, unrelated tenant.
    assert!(store.list_users(&tombstones[0].0).await.unwrap().is_empty());
    assert!(store
        .list_projects(&tombstones[0].0)
        .await
        .unwrap()
        .is_empty());
    assert!(store.get_tenant(&tombstones[0].0).await.is_err());
    h.tenant("lab").await;
    let fresh = store.tenant_by_slug("lab").await.unwrap();
    assert_ne!(fresh.id, tombstones[0].0);
    assert_eq!(
        h.audit("lab").await.len(),
        1,
        "the new tenant has its own chain"
    );
    assert_eq!(
        store.audit_chain(&tombstones[0].0).await.unwrap().len(),
        chain.len()
    );
}

#[tokio::test]
async fn tenant_can_require_mfa_for_all_members() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let member = h.add_member("lab", &owner, "m@lab.test", "editor").await;
    let (s, _) = h
        .call(
            "PUT",
            "/v1/tenant/settings",
            Some(&owner.access),
            Some(json!({"require_mfa": true})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = h
        .call("GET", "/v1/projects", Some(&member.access), None)
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (403, "mfa_enrollment_required"));
    let member = h.enroll_and_relogin("lab", &member).await;
    let (s, _) = h
        .call("GET", "/v1/projects", Some(&member.access), None)
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn responses_carry_security_headers_and_tls_below_1_3_is_refused() {
    let h = harness().await;
    let resp = h
        .client
        .get(format!("{}/v1/health", h.base))
        .send()
        .await
        .unwrap();
    let hd = resp.headers();
    assert_eq!(hd["x-content-type-options"], "nosniff");
    assert_eq!(hd["cache-control"], "no-store");
    assert_eq!(hd["x-frame-options"], "DENY");
    assert!(hd["strict-transport-security"]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
    let old = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(h.server.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", h.server.addr)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(old
        .get(format!("{}/v1/health", h.base))
        .send()
        .await
        .is_err());
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!(
            "http://127.0.0.1:{}/v1/health",
            h.server.addr.port()
        ))
        .send()
        .await;
    assert!(r.is_err() || !r.unwrap().status().is_success());
    assert!(h.server.pin.starts_with("sha256/"));
}

#[tokio::test]
async fn invitations_are_single_use_expire_and_can_be_revoked() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let invite = |email: &'static str, role: &'static str| {
        h.call(
            "POST",
            "/v1/invitations",
            Some(&owner.access),
            Some(json!({"email": email, "role": role})),
        )
    };
    let (_, inv) = invite("new@lab.test", "editor").await;
    let token = inv["token"].clone();
    let (_, v) = h
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token, "password": "password1"})),
        )
        .await;
    assert_eq!(code_of(&v), "weak_password");
    let (s, m) = h
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token, "password": PW})),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["role"], "editor");
    let (_, v) = h
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token, "password": PW})),
        )
        .await;
    assert_eq!(code_of(&v), "not_found", "single use");
    h.login("lab", "new@lab.test").await;

    let (_, dup) = invite("new@lab.test", "viewer").await;
    let (_, v) = h
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": dup["token"], "password": PW})),
        )
        .await;
    assert_eq!(code_of(&v), "conflict", "already a member");

    let (_, revoked) = invite("r@lab.test", "viewer").await;
    let id = revoked["invitation"]["id"].as_str().unwrap();
    let (s, _) = h
        .call(
            "DELETE",
            &format!("/v1/invitations/{id}"),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = h
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": revoked["token"], "password": PW})),
        )
        .await;
    assert_eq!(code_of(&v), "not_found");

    let (_, late) = h
        .call(
            "POST",
            "/v1/invitations",
            Some(&owner.access),
            Some(json!({"email": "late@lab.test", "role": "viewer", "expires_in_hours": 1})),
        )
        .await;
    h.clock.advance(Duration::minutes(61));
    let (_, v) = h
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": late["token"], "password": PW})),
        )
        .await;
    assert_eq!(code_of(&v), "not_found", "expired");
    let actions: Vec<String> = h
        .audit("lab")
        .await
        .into_iter()
        .map(|e| e.action.as_str().to_string())
        .collect();
    for a in [
        "invitation.create",
        "invitation.accept",
        "invitation.revoke",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} audited");
    }
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_logs_out_other_sessions() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let a = h.login("lab", &email).await;
    let b = h.login("lab", &email).await;
    const NEW: &str = "Battery-Staple-42";
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let (s, v) = h
        .call(
            "POST",
            "/v1/me/password",
            Some(&a.access),
            Some(change("Wrong-pass-1", NEW)),
        )
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (401, "invalid_credentials"));
    let (_, v) = h
        .call(
            "POST",
            "/v1/me/password",
            Some(&a.access),
            Some(change(PW, "short")),
        )
        .await;
    assert_eq!(code_of(&v), "weak_password");
    let (_, v) = h
        .call(
            "POST",
            "/v1/me/password",
            Some(&a.access),
            Some(change(PW, PW)),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_input");
    // Nothing changed so far: B still works and the old password still logs in.
    let (s, _) = h.call("GET", "/v1/me", Some(&b.access), None).await;
    assert_eq!(s, 200);
    let c = h.login("lab", &email).await;

    let (s, v) = h
        .call(
            "POST",
            "/v1/me/password",
            Some(&a.access),
            Some(change(PW, NEW)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sessions_revoked"], 2, "B and C, not the caller's own");
    let (s, _) = h.call("GET", "/v1/me", Some(&a.access), None).await;
    assert_eq!(s, 200, "the caller stays logged in");
    for other in [&b, &c] {
        let (_, v) = h.call("GET", "/v1/me", Some(&other.access), None).await;
        assert_eq!(code_of(&v), "unauthorized");
        let (_, v) = h
            .call(
                "POST",
                "/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": other.refresh})),
            )
            .await;
        assert_eq!(code_of(&v), "invalid_refresh_token");
    }
    let login = |pw: &str| json!({"tenant": "lab", "email": email, "password": pw});
    let (_, v) = h
        .call("POST", "/v1/auth/login", None, Some(login(PW)))
        .await;
    assert_eq!(code_of(&v), "invalid_credentials", "old password refused");
    let (s, v) = h
        .call("POST", "/v1/auth/login", None, Some(login(NEW)))
        .await;
    assert_eq!((s.as_u16(), v["status"].as_str()), (200, Some("ok")));

    let audit = h.audit("lab").await;
    let changes: Vec<_> = audit
        .iter()
        .filter(|e| e.action.as_str() == "account.password_change")
        .map(|e| (e.result, e.detail.as_str()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (Outcome::Failure, "invalid_credentials"),
            (Outcome::Failure, "weak_password"),
            (Outcome::Failure, "invalid_input"),
            (Outcome::Success, ""),
        ]
    );
}

#[tokio::test]
async fn wrong_current_passwords_count_towards_the_lockout() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let a = h.login("lab", &email).await;
    let body = json!({"current_password": "Wrong-pass-1", "new_password": "Battery-Staple-42"});
    for _ in 0..h.server.state.cfg.max_failed_logins {
        let (_, v) = h
            .call(
                "POST",
                "/v1/me/password",
                Some(&a.access),
                Some(body.clone()),
            )
            .await;
        assert_eq!(code_of(&v), "invalid_credentials");
    }
    let good = json!({"current_password": PW, "new_password": "Battery-Staple-42"});
    let (s, v) = h
        .call("POST", "/v1/me/password", Some(&a.access), Some(good))
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (429, "rate_limited"));
    assert!(h
        .audit("lab")
        .await
        .iter()
        .any(|e| e.action.as_str() == "auth.lockout"));
}

#[tokio::test]
async fn own_mfa_can_be_disabled_with_password_and_code_only() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let u = h.enroll_and_relogin("lab", &u).await;
    let other = h
        .mfa_login_later("lab", &email, u.totp.as_deref().unwrap())
        .await;
    let secret = u.totp.clone().unwrap();
    h.clock.advance(Duration::seconds(30));
    let disable = |pw: &str, code: &str| json!({"password": pw, "code": code});

    let (_, v) = h
        .call(
            "DELETE",
            "/v1/me/mfa",
            Some(&u.access),
            Some(disable("Wrong-pass-1", &h.code(&secret))),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_credentials");
    let (_, v) = h
        .call(
            "DELETE",
            "/v1/me/mfa",
            Some(&u.access),
            Some(disable(PW, "000000")),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_mfa_code");
    let (_, me) = h.call("GET", "/v1/me", Some(&u.access), None).await;
    assert_eq!(me["mfa_enrolled"], true, "failed attempts changed nothing");

    let code = h.code(&secret);
    let (s, v) = h
        .call(
            "DELETE",
            "/v1/me/mfa",
            Some(&u.access),
            Some(disable(PW, &code)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["sessions_revoked"], 2,
        "the pre-MFA session and the other one"
    );
    let (_, me) = h.call("GET", "/v1/me", Some(&u.access), None).await;
    assert_eq!(me["mfa_enrolled"], false);
    let (_, v) = h.call("GET", "/v1/me", Some(&other.access), None).await;
    assert_eq!(code_of(&v), "unauthorized", "other sessions revoked");
    // The kept session lost its step-up: admin operations need MFA again.
    let (_, v) = h
        .call(
            "PUT",
            "/v1/tenant/settings",
            Some(&u.access),
            Some(json!({"require_mfa": false})),
        )
        .await;
    assert_eq!(code_of(&v), "mfa_required");
    let (_, v) = h
        .call(
            "DELETE",
            "/v1/me/mfa",
            Some(&u.access),
            Some(disable(PW, &code)),
        )
        .await;
    assert_eq!(code_of(&v), "conflict", "nothing left to disable");
    // Login is one step again.
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "lab", "email": email, "password": PW})),
        )
        .await;
    assert_eq!(v["status"], "ok");
    let results: Vec<_> = h
        .audit("lab")
        .await
        .iter()
        .filter(|e| e.action.as_str() == "account.mfa_disable")
        .map(|e| (e.result, e.detail.clone()))
        .collect();
    assert_eq!(
        results,
        vec![
            (Outcome::Failure, "invalid_credentials".to_string()),
            (Outcome::Failure, "invalid_mfa_code".to_string()),
            (Outcome::Success, String::new()),
            (Outcome::Failure, "conflict".to_string()),
        ]
    );
}

#[tokio::test]
async fn admin_mfa_reset_needs_step_up_and_spares_owners() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let admin = h.add_member("lab", &owner, "a@lab.test", "admin").await;
    let admin = h.enroll_and_relogin("lab", &admin).await;
    let member = h.add_member("lab", &owner, "m@lab.test", "editor").await;
    let member = h.enroll_and_relogin("lab", &member).await;
    let reset = |id: &str| format!("/v1/members/{id}/mfa/reset");

    let (_, v) = h
        .call("POST", &reset(&owner.id), Some(&admin.access), None)
        .await;
    assert_eq!(code_of(&v), "forbidden", "an Admin cannot reset an Owner");
    let (_, v) = h
        .call("POST", &reset(&owner.id), Some(&owner.access), None)
        .await;
    assert_eq!(
        code_of(&v),
        "invalid_input",
        "own MFA goes through /v1/me/mfa"
    );
    h.clock
        .advance(Duration::seconds(h.server.state.cfg.step_up_window + 1));
    let (_, v) = h
        .call("POST", &reset(&member.id), Some(&owner.access), None)
        .await;
    assert_eq!(code_of(&v), "mfa_required", "stale MFA");
    let (_, me) = h.call("GET", "/v1/me", Some(&member.access), None).await;
    assert_eq!(me["mfa_enrolled"], true, "refusals changed nothing");

    let secret = owner.totp.clone().unwrap();
    let (s, v) = h
        .call(
            "POST",
            "/v1/auth/step-up",
            Some(&owner.access),
            Some(json!({"code": h.code(&secret)})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let stepped = v["access_token"].as_str().unwrap().to_string();
    let (s, v) = h
        .call("POST", &reset(&member.id), Some(&stepped), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["sessions_revoked"].as_u64().unwrap() >= 1);
    let (_, v) = h.call("GET", "/v1/me", Some(&member.access), None).await;
    assert_eq!(
        code_of(&v),
        "unauthorized",
        "every session of the member is revoked"
    );
    let again = h.login("lab", "m@lab.test").await;
    let (_, me) = h.call("GET", "/v1/me", Some(&again.access), None).await;
    assert_eq!(
        me["mfa_enrolled"], false,
        "password-only login, then enrol again"
    );
    let (_, v) = h
        .call("POST", &reset(&member.id), Some(&stepped), None)
        .await;
    assert_eq!(code_of(&v), "conflict", "nothing to reset");

    let ev: Vec<_> = h
        .audit("lab")
        .await
        .into_iter()
        .filter(|e| e.action.as_str() == "member.mfa_reset")
        .collect();
    let summary: Vec<_> = ev
        .iter()
        .map(|e| (e.user.as_str(), e.result, e.detail.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a@lab.test", Outcome::Denied, "forbidden"),
            (email.as_str(), Outcome::Failure, "invalid_input"),
            (email.as_str(), Outcome::Denied, "mfa_required"),
            (email.as_str(), Outcome::Success, ""),
            (email.as_str(), Outcome::Failure, "conflict"),
        ]
    );
    assert_eq!(ev[3].resource, format!("member/{}", member.id));
}

/// 200 authorized reads at once: every one is answered only after its audit event is
/// committed (group commit), and they form one gap-free chain that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_reads_are_all_audited_in_one_unbroken_chain() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let before = h.audit("lab").await.len();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let req = h
            .client
            .get(format!("{}/v1/access-review", h.base))
            .bearer_auth(&owner.access);
        set.spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().expect("request reaches the server"), 200);
    }
    let chain = h.audit("lab").await;
    assert_eq!(chain.len(), before + 200);
    assert!(chain.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
    let views: Vec<_> = chain[before..]
        .iter()
        .filter(|e| e.action.as_str() == "access_review.view" && e.result == Outcome::Success)
        .collect();
    assert_eq!(views.len(), 200);
    let (s, v) = h
        .call("GET", "/v1/audit/verify", Some(&owner.access), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], before as u64 + 200);
}

/// The auth and access-review caches never serve a row older than an acknowledged change.
#[tokio::test]
async fn cached_reads_see_every_change_at_once() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let member = h
        .add_member("lab", &owner, "member@lab.test", "viewer")
        .await;
    async fn review(h: &Harness, owner: &User) -> serde_json::Value {
        let (s, v) = h
            .call("GET", "/v1/access-review", Some(&owner.access), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }
    let v = review(&h, &owner).await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 0);
    let (s, _) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&owner.access),
            Some(json!({"name": "enc:p"})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        review(&h, &owner).await["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (s, inv) = h
        .call(
            "POST",
            "/v1/invitations",
            Some(&owner.access),
            Some(json!({"email": "later@lab.test", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        review(&h, &owner).await["pending_invitations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (s, _) = h
        .call(
            "DELETE",
            &format!(
                "/v1/invitations/{}",
                inv["invitation"]["id"].as_str().unwrap()
            ),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert!(review(&h, &owner).await["pending_invitations"]
        .as_array()
        .unwrap()
        .is_empty());
    let (s, _) = h
        .call(
            "PUT",
            &format!("/v1/members/{}/role", member.id),
            Some(&owner.access),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(s, 200);
    let v = review(&h, &owner).await;
    let m = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == member.id.as_str())
        .unwrap();
    assert_eq!(m["tenant_role"], "admin");
    assert_eq!(m["admin_without_mfa"], true);
    // The member's auth row is cached (login read /v1/me); removal refuses the token at once.
    let (s, _) = h.call("GET", "/v1/me", Some(&member.access), None).await;
    assert_eq!(s, 200);
    let (s, _) = h
        .call(
            "DELETE",
            &format!("/v1/members/{}", member.id),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = h.call("GET", "/v1/me", Some(&member.access), None).await;
    assert_eq!(code_of(&v), "unauthorized");
    // Logout of a session whose auth row is cached.
    let (s, _) = h
        .call(
            "POST",
            "/v1/auth/logout",
            None,
            Some(json!({"refresh_token": owner.refresh})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = h
        .call("GET", "/v1/access-review", Some(&owner.access), None)
        .await;
    assert_eq!(code_of(&v), "unauthorized");
}
