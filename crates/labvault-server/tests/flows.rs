//! End-to-end flows over TLS through the typed client: sessions, MFA, step-up, lockout, trials,
//! roles, access review, API keys, audit and retention, deletion.

mod common;
mod flows_sync;

use common::*;
use labvault_client::ClientError;
use labvault_governance::audit::Outcome;
use labvault_server::secrets::Secret;
use labvault_server::{create_tenant, sweep_trials, Config, NewTenant};
use labvault_wire::*;
use time::Duration;

fn rules(data_type: DataType, period: &str) -> RetentionRequest {
    RetentionRequest {
        rules: vec![RetentionRule {
            data_type,
            period: period.into(),
        }],
    }
}

fn period(p: &RetentionPolicy, t: DataType) -> String {
    p.rules
        .iter()
        .find(|r| r.data_type == t)
        .unwrap()
        .period
        .clone()
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;

    let r2 = h.api.refresh(&u.refresh).await.unwrap();
    assert_ne!(r2.refresh_token, u.refresh);

    // The response was "lost": a retry with the old token inside the grace window works.
    h.clock.advance(Duration::seconds(5));
    let r3 = h.api.refresh(&u.refresh).await.unwrap();
    h.api.me(&r3.access_token).await.unwrap();

    // The retired successor r2 presented later = reuse: the whole family is revoked.
    h.clock.advance(Duration::seconds(60));
    assert_eq!(
        api_err(h.api.refresh(&r2.refresh_token).await),
        (401, ErrorCode::InvalidRefreshToken)
    );
    assert_eq!(
        code(h.api.refresh(&r3.refresh_token).await),
        ErrorCode::InvalidRefreshToken,
        "family revoked"
    );
    assert_eq!(
        api_err(h.api.me(&r3.access_token).await),
        (401, ErrorCode::Unauthorized),
        "access tokens of the family die too"
    );
    assert!(h
        .audit("lab")
        .await
        .iter()
        .any(|e| e.action.as_str() == "auth.refresh_reuse" && e.result == Outcome::Denied));

    // Plain replay after the grace window.
    let u = h.login("lab", &email).await;
    let n = h.api.refresh(&u.refresh).await.unwrap();
    h.clock.advance(Duration::seconds(31));
    assert_eq!(
        code(h.api.refresh(&u.refresh).await),
        ErrorCode::InvalidRefreshToken
    );
    assert_eq!(
        code(h.api.refresh(&n.refresh_token).await),
        ErrorCode::InvalidRefreshToken
    );
}

#[tokio::test]
async fn logout_revokes_refresh_and_access() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    h.api.logout(&u.refresh).await.unwrap();
    assert_eq!(
        code(h.api.refresh(&u.refresh).await),
        ErrorCode::InvalidRefreshToken
    );
    assert_eq!(code(h.api.me(&u.access).await), ErrorCode::Unauthorized);
}

#[tokio::test]
async fn mfa_two_step_login_replay_and_recovery_codes() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let e = h.api.mfa_enroll(&u.access).await.unwrap();
    let secret = labvault_server::totp::base32_decode(&e.secret_base32).unwrap();
    assert!(e.otpauth_uri.starts_with("otpauth://totp/"));
    assert_eq!(
        code(h.api.mfa_confirm(&u.access, "000001").await),
        ErrorCode::InvalidMfaCode
    );
    let recovery = h
        .api
        .mfa_confirm(&u.access, &h.code(&secret))
        .await
        .unwrap()
        .recovery_codes;
    // At rest the seed is sealed (AES-GCM) and recovery codes are hashed.
    let db =
        labvault_server::server::open_db_raw(&labvault_server::DataDir(h.dir.path().to_path_buf()))
            .unwrap();
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
    // Keyed under the server's secret: not the plain SHA-256 a leaked database could be
    // searched with offline.
    use sha2::Digest;
    assert!(recovery
        .iter()
        .all(|c| !codes.contains(&hex::encode(sha2::Sha256::digest(c.as_bytes())))));

    h.clock.advance(Duration::seconds(30));
    // No token before the second step; the challenge is not an access token.
    let challenge = h.mfa_challenge("lab", &email).await;
    assert_eq!(code(h.api.me(&challenge).await), ErrorCode::Unauthorized);
    let wrong = if h.code(&secret) == "123456" {
        "654321"
    } else {
        "123456"
    };
    let second = |mfa_token: &str, code: &str| MfaLoginRequest {
        mfa_token: mfa_token.into(),
        code: code.into(),
    };
    assert_eq!(
        code(h.api.login_mfa(&second(&challenge, wrong)).await),
        ErrorCode::InvalidMfaCode
    );
    let totp = h.code(&secret);
    h.api.login_mfa(&second(&challenge, &totp)).await.unwrap();
    // Same code again in the same window: replay refused.
    let challenge = h.mfa_challenge("lab", &email).await;
    assert_eq!(
        code(h.api.login_mfa(&second(&challenge, &totp)).await),
        ErrorCode::InvalidMfaCode
    );
    // A recovery code works exactly once.
    h.api
        .login_mfa(&second(&challenge, &recovery[0]))
        .await
        .unwrap();
    assert_eq!(
        code(h.api.login_mfa(&second(&challenge, &recovery[0])).await),
        ErrorCode::InvalidMfaCode
    );
    // A code stored before codes were keyed (plain SHA-256) still works, once.
    let legacy = "abcd-efgh-jkmn";
    db.execute(
        "INSERT INTO recovery_codes (tenant_id, user_id, code_hash) SELECT tenant_id, id, ?1 FROM users",
        [hex::encode(sha2::Sha256::digest(legacy.as_bytes()))],
    )
    .unwrap();
    let challenge = h.mfa_challenge("lab", &email).await;
    h.api.login_mfa(&second(&challenge, legacy)).await.unwrap();
    assert_eq!(
        code(h.api.login_mfa(&second(&challenge, legacy)).await),
        ErrorCode::InvalidMfaCode
    );
}

#[tokio::test]
async fn admin_operations_need_recent_mfa_and_step_up_gives_it() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let body = rules(DataType::Backup, "120d");
    assert_eq!(
        api_err(h.api.set_retention(&u.access, &body).await),
        (403, ErrorCode::MfaRequired)
    );
    let u = h.enroll_and_relogin("lab", &u).await;
    h.api.set_retention(&u.access, &body).await.unwrap();

    h.clock.advance(Duration::seconds(301));
    assert_eq!(
        code(h.api.set_retention(&u.access, &body).await),
        ErrorCode::MfaRequired,
        "MFA older than the window"
    );
    let key = ApiKeyRequest {
        name: "ci".into(),
        role: Role::Viewer,
        project_id: None,
        expires_in_days: 1,
    };
    assert_eq!(
        code(h.api.create_api_key(&u.access, &key).await),
        ErrorCode::MfaRequired
    );
    let secret = u.totp.clone().unwrap();
    let stepped = h
        .api
        .step_up(&u.access, &h.code(&secret))
        .await
        .unwrap()
        .access_token;
    h.api.set_retention(&stepped, &body).await.unwrap();
    let denied = h
        .audit("lab")
        .await
        .iter()
        .filter(|e| e.action.as_str() == "retention.change" && e.result == Outcome::Denied)
        .count();
    assert_eq!(denied, 2, "denied attempts are audited");

    // Access tokens expire after ~10 minutes.
    h.clock.advance(Duration::seconds(700));
    assert_eq!(
        api_err(h.api.me(&stepped).await),
        (401, ErrorCode::TokenExpired)
    );
}

#[tokio::test]
async fn failed_logins_lock_the_account_temporarily_and_are_audited() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    for _ in 0..5 {
        assert_eq!(
            code(
                h.api
                    .login(&login_req("lab", &email, "Wrong-horse-9"))
                    .await
            ),
            ErrorCode::InvalidCredentials
        );
    }
    match h.api.login(&login_req("lab", &email, PW)).await {
        Err(ClientError::Api {
            status: 429,
            code: ErrorCode::RateLimited,
            retry_after,
            ..
        }) => assert!(retry_after.is_some_and(|s| s > 0), "Retry-After is given"),
        Err(other) => panic!("expected a lockout, got {other:?}"),
        Ok(_) => panic!("expected a lockout, the login succeeded"),
    }
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
    let req = login_req("nope", "a@b.cc", "x");
    for _ in 0..3 {
        assert_eq!(code(h.api.login(&req).await), ErrorCode::InvalidCredentials);
    }
    assert_eq!(
        api_err(h.api.login(&req).await),
        (429, ErrorCode::RateLimited)
    );
}

/// Every authenticated request is audited, so one token flooding the server would flood the
/// audit trail: each caller has a request budget. Past it: 429 `rate_limited` with a
/// Retry-After, no event per refused request, one `auth.rate_limited` event a minute per caller
/// counting them; other callers of the same tenant are not affected.
#[tokio::test]
async fn one_token_cannot_flood_the_audit_trail() {
    let h = harness_with(Config {
        requests_per_caller_second: 0.001,
        request_burst_per_caller: 8,
        ..test_config()
    })
    .await;
    let owner_email = h.tenant("lab").await;
    let owner = h.login("lab", &owner_email).await; // one request (`me`)
    let viewer = h
        .add_member("lab", &owner, "v@lab.test", Role::Viewer)
        .await;
    let base = h.audit("lab").await.len();
    let spent_by_viewer_login = 1;
    let mut ok = 0;
    let mut refused = 0;
    for _ in 0..40 {
        match h.api.me(&viewer.access).await {
            Ok(_) => ok += 1,
            Err(ClientError::Api {
                status,
                code,
                retry_after,
                ..
            }) => {
                assert_eq!((status, code), (429, ErrorCode::RateLimited));
                assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 8 - spent_by_viewer_login);
    assert_eq!(refused, 40 - ok);
    let evs = h.audit("lab").await;
    let new = &evs[base..];
    assert_eq!(
        new.iter()
            .filter(|e| e.action.as_str() == "account.view" && e.user == "v@lab.test")
            .count(),
        ok as usize
    );
    let limited: Vec<_> = new
        .iter()
        .filter(|e| e.action.as_str() == "auth.rate_limited")
        .collect();
    assert_eq!(
        limited.len(),
        1,
        "one event for the first refusal of the minute"
    );
    assert_eq!(limited[0].user, "v@lab.test");
    assert_eq!(limited[0].result, Outcome::Denied);
    assert_eq!(limited[0].detail, "refused=1");
    assert_eq!(new.len(), ok as usize + 1, "nothing else was recorded");

    // Another caller of the tenant still has its own budget.
    h.api.me(&owner.access).await.unwrap();

    // A minute later the next refusal reports how many went unrecorded in between.
    h.clock.advance(Duration::seconds(61));
    assert_eq!(code(h.api.me(&viewer.access).await), ErrorCode::RateLimited);
    let evs = h.audit("lab").await;
    let last = evs.last().unwrap();
    assert_eq!(last.action.as_str(), "auth.rate_limited");
    assert_eq!(last.detail, format!("refused={}", refused));
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
    let t = h.api.tenant(&u.access).await.unwrap();
    assert_eq!(t.plan, PlanTier::Trial);
    assert!(t.expires_at.is_some());
    h.clock.advance(Duration::hours(23));
    assert!(sweep_trials(&h.server.state).await.unwrap().is_empty());
    h.clock.advance(Duration::hours(1));
    let req = login_req("trial-1", "t@trial.test", PW);
    assert_eq!(
        code(h.api.login(&req).await),
        ErrorCode::TenantExpired,
        "expired even before the sweeper runs"
    );
    assert_eq!(sweep_trials(&h.server.state).await.unwrap().len(), 1);
    assert_eq!(code(h.api.login(&req).await), ErrorCode::InvalidCredentials);
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
    assert_eq!(
        api_err(
            h.api
                .set_member_role(&owner.access, &owner.id, Role::Admin)
                .await
        ),
        (409, ErrorCode::Conflict)
    );
    assert_eq!(
        code(h.api.remove_member(&owner.access, &owner.id).await),
        ErrorCode::Conflict
    );
    let del = DeleteAccountRequest {
        password: PW.into(),
    };
    assert_eq!(
        code(h.api.delete_me(&owner.access, &del).await),
        ErrorCode::Conflict
    );

    let admin = h
        .add_member("lab", &owner, "admin@lab.test", Role::Admin)
        .await;
    let admin = h.enroll_and_relogin("lab", &admin).await;
    // An Admin cannot touch the Owner.
    assert_eq!(
        code(h.api.remove_member(&admin.access, &owner.id).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            h.api
                .set_member_role(&admin.access, &admin.id, Role::Owner)
                .await
        ),
        ErrorCode::Forbidden
    );

    h.api
        .transfer_ownership(&owner.access, &admin.id)
        .await
        .unwrap();
    assert_eq!(
        h.api.me(&owner.access).await.unwrap().role,
        Role::Admin,
        "role changes apply to live tokens"
    );
    assert_eq!(h.api.me(&admin.access).await.unwrap().role, Role::Owner);
    assert!(h
        .audit("lab")
        .await
        .iter()
        .any(|e| e.action.as_str() == "tenant.ownership_transfer"));
}

#[tokio::test]
async fn project_roles_override_and_access_review_reports_them() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let viewer = h
        .add_member("lab", &owner, "viewer@lab.test", Role::Viewer)
        .await;
    let admin = h
        .add_member("lab", &owner, "admin@lab.test", Role::Admin)
        .await;
    let pid = h
        .api
        .create_project(&owner.access, "enc:abc")
        .await
        .unwrap()
        .id;
    h.api
        .set_project_role(&owner.access, &pid, &viewer.id, Role::Editor)
        .await
        .unwrap();
    let got = h.api.project(&viewer.access, &pid).await.unwrap();
    assert_eq!(got.effective_role, Role::Editor);
    let inv = h
        .api
        .create_invitation(
            &owner.access,
            &InvitationRequest {
                email: "pending@lab.test".into(),
                role: Role::Viewer,
                expires_in_hours: None,
            },
        )
        .await
        .unwrap();
    assert!(!inv.token.is_empty());

    let r = h
        .api
        .access_review(&owner.access, &ReviewQuery::default())
        .await
        .unwrap();
    assert_eq!(r.stale_days, 90);
    assert_eq!(r.entries.len(), 3, "3 members x 1 project");
    let v = r.entries.iter().find(|e| e.user_id == viewer.id).unwrap();
    assert_eq!(
        (v.effective_role, v.source),
        (Role::Editor, RoleSource::Project)
    );
    let a = r.entries.iter().find(|e| e.user_id == admin.id).unwrap();
    assert_eq!(a.source, RoleSource::Tenant);
    assert!(a.admin_without_mfa);
    let o = r.entries.iter().find(|e| e.user_id == owner.id).unwrap();
    assert!(!o.admin_without_mfa);
    assert_eq!(r.pending_invitations.len(), 1);
    assert!(r.entries.iter().all(|e| !e.stale));

    // 91 days later everyone who has not been active is stale (the reviewer is re-logged in).
    h.clock.advance(Duration::days(91));
    let owner = h
        .mfa_login("lab", &email, owner.totp.as_ref().unwrap())
        .await;
    let q = ReviewQuery {
        stale_days: Some(90),
    };
    let r = h.api.access_review(&owner.access, &q).await.unwrap();
    assert_eq!(r.members.iter().filter(|x| x.stale).count(), 2);
    let csv = h
        .api
        .access_review_csv(&owner.access, &ReviewQuery::default())
        .await
        .unwrap();
    assert!(csv.starts_with("kind,user_id,email,project_id,effective_role,source"));
    assert!(csv.contains(&format!(
        "access,{},viewer@lab.test,{pid},editor,project",
        viewer.id
    )));
    assert_eq!(
        code(
            h.api
                .access_review(&viewer.access, &ReviewQuery::default())
                .await
        ),
        ErrorCode::TokenExpired
    );
}

#[tokio::test]
async fn api_keys_are_scoped_shown_once_revocable_and_expiring() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let pid = h.api.create_project(&owner.access, "p1").await.unwrap().id;
    let p2 = h.api.create_project(&owner.access, "p2").await.unwrap().id;
    let req = |name: &str, role: Role, project_id: Option<&str>, days: u32| ApiKeyRequest {
        name: name.into(),
        role,
        project_id: project_id.map(str::to_string),
        expires_in_days: days,
    };
    let k = h
        .api
        .create_api_key(&owner.access, &req("ci", Role::Viewer, None, 2))
        .await
        .unwrap();
    let key = k.key.clone();
    let list = h.api.api_keys(&owner.access).await.unwrap();
    assert!(
        !format!("{list:?}").contains(&key[40..]),
        "secret never listed"
    );
    h.api.projects(&key).await.unwrap();
    assert_eq!(
        code(h.api.create_project(&key, "x").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(h.api.step_up(&key, "123456").await),
        ErrorCode::Forbidden,
        "keys cannot step up"
    );
    assert_eq!(
        code(
            h.api
                .create_api_key(&owner.access, &req("x", Role::Owner, None, 1))
                .await
        ),
        ErrorCode::Forbidden
    );

    // Project-scoped editor key.
    let pkey = h
        .api
        .create_api_key(&owner.access, &req("p", Role::Editor, Some(&pid), 1))
        .await
        .unwrap()
        .key;
    h.api.project(&pkey, &pid).await.unwrap();
    assert_eq!(code(h.api.project(&pkey, &p2).await), ErrorCode::NotFound);
    assert_eq!(code(h.api.members(&pkey).await), ErrorCode::Forbidden);
    assert_eq!(h.api.projects(&pkey).await.unwrap().len(), 1);

    h.api
        .revoke_api_key(&owner.access, &k.api_key.id)
        .await
        .unwrap();
    assert_eq!(code(h.api.projects(&key).await), ErrorCode::Unauthorized);
    assert_eq!(
        code(h.api.projects(&format!("{pkey}x")).await),
        ErrorCode::Unauthorized
    );
    h.clock.advance(Duration::days(2));
    assert_eq!(code(h.api.projects(&pkey).await), ErrorCode::TokenExpired);
    let events = h.audit("lab").await;
    assert!(events.iter().any(|e| e.user.starts_with("apikey:")));
}

#[tokio::test]
async fn audit_events_are_chained_queryable_exportable_and_tamper_evident() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let viewer = h
        .add_member("lab", &owner, "viewer@lab.test", Role::Viewer)
        .await;
    // Each call (read, change, refusal) adds exactly one event.
    let v = viewer.access.as_str();
    for step in 0..5 {
        let before = h.audit("lab").await.len();
        match step {
            0 => drop(h.api.me(v).await),
            1 => drop(h.api.tenant(v).await),
            2 => drop(h.api.create_project(v, "p").await),
            3 => drop(h.api.members(v).await),
            _ => drop(h.api.access_review(v, &ReviewQuery::default()).await),
        }
        assert_eq!(h.audit("lab").await.len(), before + 1, "call {step}");
    }
    assert_eq!(
        code(h.api.audit(v, &AuditQuery::default()).await),
        ErrorCode::Forbidden
    );
    h.api.projects(v).await.unwrap();

    let q = |f: fn(&mut AuditQuery)| {
        let mut a = AuditQuery::default();
        f(&mut a);
        a
    };
    let page = h
        .api
        .audit(&owner.access, &q(|a| a.limit = Some(2)))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
    assert!(page.events[0].seq > page.events[1].seq, "newest first");
    // The page (served without decoding the stored hashes) is exactly the stored chain.
    let chain = h.audit("lab").await;
    for e in &page.events {
        assert_eq!(chain.iter().find(|c| c.seq == e.seq).unwrap(), e);
    }
    // A filtered page (served from the blocking pool) agrees with the filter.
    let denied = h
        .api
        .audit(
            &owner.access,
            &q(|a| {
                a.result = Some("denied".into());
                a.limit = Some(500)
            }),
        )
        .await
        .unwrap();
    assert!(!denied.events.is_empty());
    assert!(denied.events.iter().all(|e| e.result == Outcome::Denied));
    let cursor = page.next_cursor.clone().unwrap();
    let mut next_q = q(|a| a.limit = Some(2));
    next_q.cursor = Some(cursor);
    let next = h.api.audit(&owner.access, &next_q).await.unwrap();
    assert!(next.events[0].seq < page.events[1].seq);

    let denied = h
        .api
        .audit(
            &owner.access,
            &q(|a| {
                a.result = Some("denied".into());
                a.action = Some("audit.".into())
            }),
        )
        .await
        .unwrap();
    let d = &denied.events[0];
    assert_eq!(
        (d.user.as_str(), d.result),
        ("viewer@lab.test", Outcome::Denied)
    );
    assert_eq!(d.ip_address, "127.0.0.1");
    assert_eq!(d.user_agent, UA);
    let one = h
        .api
        .audit(
            &owner.access,
            &q(|a| {
                a.action = Some("project.list".into());
                a.user = Some("viewer@lab.test".into())
            }),
        )
        .await
        .unwrap();
    assert_eq!(one.events.len(), 1);
    // LIKE metacharacters in a prefix filter match literally.
    let none = h
        .api
        .audit(&owner.access, &q(|a| a.action = Some("%".into())))
        .await
        .unwrap();
    assert!(none.events.is_empty());

    let csv = h
        .api
        .audit_export(&owner.access, &q(|a| a.format = Some("csv".into())))
        .await
        .unwrap();
    assert!(csv.starts_with(&labvault_governance::export::CSV_HEADER.join(",")));
    let jsonl = h
        .api
        .audit_export(&owner.access, &q(|a| a.format = Some("jsonl".into())))
        .await
        .unwrap();
    let lines: Vec<AuditEvent> = jsonl
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
    assert!(h.api.audit_verify(&owner.access).await.unwrap().ok);

    // Append-only through the API: no route changes events.
    for m in ["PUT", "DELETE", "POST"] {
        let (s, _) = h
            .call(
                m,
                "/v1/audit",
                Some(&owner.access),
                Some(serde_json::json!({})),
            )
            .await;
        assert_eq!(s.as_u16(), 405, "{m} /v1/audit");
    }

    // Tampering in the database is detected.
    let db =
        labvault_server::server::open_db_raw(&labvault_server::DataDir(h.dir.path().to_path_buf()))
            .unwrap();
    db.execute("UPDATE audit_log SET result = 0 WHERE result = 2", [])
        .unwrap();
    let rep = h.api.audit_verify(&owner.access).await.unwrap();
    assert!(!rep.ok);
    assert!(rep.first_bad_seq.is_some());
}

#[tokio::test]
async fn retention_defaults_overrides_and_audit_log_minimum() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let viewer = h
        .add_member("lab", &owner, "v@lab.test", Role::Viewer)
        .await;
    let r = h.api.retention(&viewer.access).await.unwrap();
    assert_eq!(period(&r.tenant, DataType::ResearchData), "7y");
    assert_eq!(period(&r.tenant, DataType::AnalysisResult), "7y");
    assert_eq!(period(&r.tenant, DataType::AuditLog), "6y");
    assert_eq!(period(&r.tenant, DataType::Backup), "90d");
    assert_eq!(
        period(&r.tenant, DataType::SessionData),
        "90d",
        "professional tier"
    );
    for (t, p) in [
        (DataType::AuditLog, "5y"),
        (DataType::AuditLog, "2000d"),
        (DataType::Backup, "0d"),
        (DataType::Backup, "ten days"),
        (DataType::SessionData, "10d"),
    ] {
        assert_eq!(
            code(h.api.set_retention(&owner.access, &rules(t, p)).await),
            ErrorCode::InvalidInput,
            "{t}={p}"
        );
    }
    assert_eq!(
        code(
            h.api
                .set_retention(&viewer.access, &rules(DataType::Backup, "30d"))
                .await
        ),
        ErrorCode::Forbidden
    );
    h.api
        .set_retention(&owner.access, &rules(DataType::AuditLog, "10y"))
        .await
        .expect("raising audit retention is fine");
    let pid = h.api.create_project(&owner.access, "p").await.unwrap().id;
    let pol = h
        .api
        .set_project_retention(&owner.access, &pid, &rules(DataType::ResearchData, "10y"))
        .await
        .unwrap();
    assert_eq!(period(&pol, DataType::ResearchData), "10y");
    assert_eq!(
        period(&pol, DataType::AuditLog),
        "10y",
        "inherits the tenant override"
    );
    let r = h.api.retention(&viewer.access).await.unwrap();
    assert_eq!(
        period(&r.tenant, DataType::ResearchData),
        "7y",
        "override is per project"
    );
    assert_eq!(r.projects[0].project_id, pid);
    h.api
        .set_plan(&owner.access, PlanTier::Starter)
        .await
        .unwrap();
    let r = h.api.retention(&viewer.access).await.unwrap();
    assert_eq!(period(&r.tenant, DataType::SessionData), "30d");
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
    let member = h
        .add_member("lab", &owner, "m@lab.test", Role::Editor)
        .await;
    let del = |pw: &str| DeleteAccountRequest {
        password: pw.into(),
    };
    assert_eq!(
        code(h.api.delete_me(&member.access, &del("Wrong-horse-9")).await),
        ErrorCode::InvalidCredentials
    );
    h.api.delete_me(&member.access, &del(PW)).await.unwrap();
    assert_eq!(
        code(h.api.me(&member.access).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        code(h.api.login(&login_req("lab", "m@lab.test", PW)).await),
        ErrorCode::InvalidCredentials
    );
    assert!(h
        .audit("lab")
        .await
        .iter()
        .any(|e| e.action.as_str() == "account.delete"));

    assert_eq!(
        code(h.api.delete_tenant(&owner.access, "nope").await),
        ErrorCode::InvalidInput
    );
    h.api.delete_tenant(&owner.access, "lab").await.unwrap();
    assert_eq!(code(h.api.me(&owner.access).await), ErrorCode::Unauthorized);
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
    let member = h
        .add_member("lab", &owner, "m@lab.test", Role::Editor)
        .await;
    h.api
        .set_settings(&owner.access, &TenantSettingsRequest { require_mfa: true })
        .await
        .unwrap();
    assert_eq!(
        api_err(h.api.projects(&member.access).await),
        (403, ErrorCode::MfaEnrollmentRequired)
    );
    let member = h.enroll_and_relogin("lab", &member).await;
    h.api.projects(&member.access).await.unwrap();
}

#[tokio::test]
async fn responses_carry_security_headers_and_tls_below_1_3_is_refused() {
    let h = harness().await;
    let resp = h
        .http
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
    assert_eq!(h.api.health().await.unwrap().api_version, "v1");
}

#[tokio::test]
async fn invitations_are_single_use_expire_and_can_be_revoked() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let invite = async |email: &'static str, role: Role, hours: Option<u32>| {
        h.api
            .create_invitation(
                &owner.access,
                &InvitationRequest {
                    email: email.into(),
                    role,
                    expires_in_hours: hours,
                },
            )
            .await
    };
    let accept = async |token: &str, password: &str| {
        h.api
            .accept_invitation(&AcceptInvitationRequest {
                token: token.into(),
                password: password.into(),
            })
            .await
    };
    let inv = invite("new@lab.test", Role::Editor, None).await.unwrap();
    assert_eq!(
        code(accept(&inv.token, "password1").await),
        ErrorCode::WeakPassword
    );
    let m = accept(&inv.token, PW).await.unwrap();
    assert_eq!(m.role, Role::Editor);
    assert_eq!(
        code(accept(&inv.token, PW).await),
        ErrorCode::NotFound,
        "single use"
    );
    h.login("lab", "new@lab.test").await;

    let dup = invite("new@lab.test", Role::Viewer, None).await.unwrap();
    assert_eq!(
        code(accept(&dup.token, PW).await),
        ErrorCode::Conflict,
        "already a member"
    );

    let revoked = invite("r@lab.test", Role::Viewer, None).await.unwrap();
    h.api
        .revoke_invitation(&owner.access, &revoked.invitation.id)
        .await
        .unwrap();
    assert_eq!(code(accept(&revoked.token, PW).await), ErrorCode::NotFound);

    let late = invite("late@lab.test", Role::Viewer, Some(1))
        .await
        .unwrap();
    h.clock.advance(Duration::minutes(61));
    assert_eq!(
        code(accept(&late.token, PW).await),
        ErrorCode::NotFound,
        "expired"
    );
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
    let change = |current: &str, new: &str| ChangePasswordRequest {
        current_password: current.into(),
        new_password: new.into(),
    };
    assert_eq!(
        api_err(
            h.api
                .change_password(&a.access, &change("Wrong-pass-1", NEW))
                .await
        ),
        (401, ErrorCode::InvalidCredentials)
    );
    assert_eq!(
        code(h.api.change_password(&a.access, &change(PW, "short")).await),
        ErrorCode::WeakPassword
    );
    assert_eq!(
        code(h.api.change_password(&a.access, &change(PW, PW)).await),
        ErrorCode::InvalidInput
    );
    // Nothing changed so far: B still works and the old password still logs in.
    h.api.me(&b.access).await.unwrap();
    let c = h.login("lab", &email).await;

    let r = h
        .api
        .change_password(&a.access, &change(PW, NEW))
        .await
        .unwrap();
    assert_eq!(r.sessions_revoked, 2, "B and C, not the caller's own");
    h.api
        .me(&a.access)
        .await
        .expect("the caller stays logged in");
    for other in [&b, &c] {
        assert_eq!(code(h.api.me(&other.access).await), ErrorCode::Unauthorized);
        assert_eq!(
            code(h.api.refresh(&other.refresh).await),
            ErrorCode::InvalidRefreshToken
        );
    }
    assert_eq!(
        code(h.api.login(&login_req("lab", &email, PW)).await),
        ErrorCode::InvalidCredentials,
        "old password refused"
    );
    assert!(matches!(
        h.api.login(&login_req("lab", &email, NEW)).await.unwrap(),
        LoginResponse::Ok(_)
    ));

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
    let wrong = ChangePasswordRequest {
        current_password: "Wrong-pass-1".into(),
        new_password: "Battery-Staple-42".into(),
    };
    for _ in 0..h.server.state.cfg.max_failed_logins {
        assert_eq!(
            code(h.api.change_password(&a.access, &wrong).await),
            ErrorCode::InvalidCredentials
        );
    }
    let good = ChangePasswordRequest {
        current_password: PW.into(),
        new_password: "Battery-Staple-42".into(),
    };
    assert_eq!(
        api_err(h.api.change_password(&a.access, &good).await),
        (429, ErrorCode::RateLimited)
    );
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
    let disable = |pw: &str, code: &str| DisableMfaRequest {
        password: pw.into(),
        code: code.into(),
    };

    assert_eq!(
        code(
            h.api
                .mfa_disable(&u.access, &disable("Wrong-pass-1", &h.code(&secret)))
                .await
        ),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        code(h.api.mfa_disable(&u.access, &disable(PW, "000000")).await),
        ErrorCode::InvalidMfaCode
    );
    assert!(
        h.api.me(&u.access).await.unwrap().mfa_enrolled,
        "failed attempts changed nothing"
    );

    let totp = h.code(&secret);
    let r = h
        .api
        .mfa_disable(&u.access, &disable(PW, &totp))
        .await
        .unwrap();
    assert_eq!(
        r.sessions_revoked, 2,
        "the pre-MFA session and the other one"
    );
    assert!(!h.api.me(&u.access).await.unwrap().mfa_enrolled);
    assert_eq!(
        code(h.api.me(&other.access).await),
        ErrorCode::Unauthorized,
        "other sessions revoked"
    );
    // The kept session lost its step-up: admin operations need MFA again.
    assert_eq!(
        code(
            h.api
                .set_settings(&u.access, &TenantSettingsRequest { require_mfa: false })
                .await
        ),
        ErrorCode::MfaRequired
    );
    assert_eq!(
        code(h.api.mfa_disable(&u.access, &disable(PW, &totp)).await),
        ErrorCode::Conflict,
        "nothing left to disable"
    );
    // Login is one step again.
    assert!(matches!(
        h.api.login(&login_req("lab", &email, PW)).await.unwrap(),
        LoginResponse::Ok(_)
    ));
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
    let admin = h.add_member("lab", &owner, "a@lab.test", Role::Admin).await;
    let admin = h.enroll_and_relogin("lab", &admin).await;
    let member = h
        .add_member("lab", &owner, "m@lab.test", Role::Editor)
        .await;
    let member = h.enroll_and_relogin("lab", &member).await;

    assert_eq!(
        code(h.api.reset_member_mfa(&admin.access, &owner.id).await),
        ErrorCode::Forbidden,
        "an Admin cannot reset an Owner"
    );
    assert_eq!(
        code(h.api.reset_member_mfa(&owner.access, &owner.id).await),
        ErrorCode::InvalidInput,
        "own MFA goes through /v1/me/mfa"
    );
    h.clock
        .advance(Duration::seconds(h.server.state.cfg.step_up_window + 1));
    assert_eq!(
        code(h.api.reset_member_mfa(&owner.access, &member.id).await),
        ErrorCode::MfaRequired,
        "stale MFA"
    );
    assert!(
        h.api.me(&member.access).await.unwrap().mfa_enrolled,
        "refusals changed nothing"
    );

    let secret = owner.totp.clone().unwrap();
    let stepped = h
        .api
        .step_up(&owner.access, &h.code(&secret))
        .await
        .unwrap()
        .access_token;
    let r = h.api.reset_member_mfa(&stepped, &member.id).await.unwrap();
    assert!(r.sessions_revoked >= 1);
    assert_eq!(
        code(h.api.me(&member.access).await),
        ErrorCode::Unauthorized,
        "every session of the member is revoked"
    );
    let again = h.login("lab", "m@lab.test").await;
    assert!(
        !h.api.me(&again.access).await.unwrap().mfa_enrolled,
        "password-only login, then enrol again"
    );
    assert_eq!(
        code(h.api.reset_member_mfa(&stepped, &member.id).await),
        ErrorCode::Conflict,
        "nothing to reset"
    );

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
        let api = h.api.clone();
        let token = owner.access.clone();
        set.spawn(async move { api.access_review(&token, &ReviewQuery::default()).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().expect("every review is answered");
    }
    let chain = h.audit("lab").await;
    assert_eq!(chain.len(), before + 200);
    assert!(chain.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
    let views: Vec<_> = chain[before..]
        .iter()
        .filter(|e| e.action.as_str() == "access_review.view" && e.result == Outcome::Success)
        .collect();
    assert_eq!(views.len(), 200);
    let v = h.api.audit_verify(&owner.access).await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.events, before as u64 + 200);
}

/// The auth and access-review caches never serve a row older than an acknowledged change.
#[tokio::test]
async fn cached_reads_see_every_change_at_once() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let member = h
        .add_member("lab", &owner, "member@lab.test", Role::Viewer)
        .await;
    let review = async || {
        h.api
            .access_review(&owner.access, &ReviewQuery::default())
            .await
    };
    assert!(review().await.unwrap().entries.is_empty());
    h.api.create_project(&owner.access, "enc:p").await.unwrap();
    assert_eq!(review().await.unwrap().entries.len(), 2);
    let inv = h
        .api
        .create_invitation(
            &owner.access,
            &InvitationRequest {
                email: "later@lab.test".into(),
                role: Role::Viewer,
                expires_in_hours: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(review().await.unwrap().pending_invitations.len(), 1);
    h.api
        .revoke_invitation(&owner.access, &inv.invitation.id)
        .await
        .unwrap();
    assert!(review().await.unwrap().pending_invitations.is_empty());
    h.api
        .set_member_role(&owner.access, &member.id, Role::Admin)
        .await
        .unwrap();
    let v = review().await.unwrap();
    let m = v.members.iter().find(|m| m.user_id == member.id).unwrap();
    assert_eq!(m.tenant_role, Role::Admin);
    assert!(m.admin_without_mfa);
    // The member's auth row is cached (login read /v1/me); removal refuses the token at once.
    h.api.me(&member.access).await.unwrap();
    h.api
        .remove_member(&owner.access, &member.id)
        .await
        .unwrap();
    assert_eq!(
        code(h.api.me(&member.access).await),
        ErrorCode::Unauthorized
    );
    // Logout of a session whose auth row is cached.
    h.api.logout(&owner.refresh).await.unwrap();
    assert_eq!(code(review().await), ErrorCode::Unauthorized);
}

/// The tenant's alerts of the last 24 hours, in one state or all.
async fn alert_list(h: &Harness, token: String, state: Option<&str>) -> Vec<Alert> {
    let q = AlertQuery {
        state: state.map(String::from),
        hours: None,
    };
    h.api.alerts(&token, &q).await.unwrap().alerts
}

/// A webhook receiver on 127.0.0.1 (plain HTTP, as a relay on the server would be): it keeps
/// what it receives and answers 500 until told to accept.
struct Receiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    accept: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn webhook_receiver() -> Receiver {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let accept = Arc::new(AtomicBool::new(false));
    let (g, a) = (got.clone(), accept.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (g, a) = (g.clone(), a.clone());
            async move {
                let sig = headers
                    .get("x-labvault-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if a.load(Ordering::SeqCst) {
                    g.lock().unwrap().push((sig, body));
                    axum::http::StatusCode::NO_CONTENT
                } else {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/hook", l.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(l, app).await });
    Receiver { url, got, accept }
}

/// Every alert rule fires on its scenario (and a normal day of traffic raises none): the
/// Owner sees each in `GET /v1/alerts`, each is a `security.alert` event in the tenant's audit
/// trail, and each reaches the tenant's webhook signed with its secret, retried until the
/// receiver accepts; acknowledging and resolving are audited.
#[tokio::test]
async fn security_alerts_fire_on_their_scenarios_and_reach_the_webhook() {
    use labvault_server::alerts;
    let h = harness().await;
    let email = h.tenant("alab").await;
    let owner = h.login("alab", &email).await;
    let owner = h.enroll_and_relogin("alab", &owner).await;
    let tenant = h
        .server
        .state
        .store
        .tenant_by_slug("alab")
        .await
        .unwrap()
        .id;
    let list = |state: Option<&'static str>| alert_list(&h, owner.access.clone(), state);
    // Detection runs behind the requests: wait (bounded) for what must appear.
    let wait_for = |rules: Vec<AlertRule>| {
        let list = &list;
        async move {
            for _ in 0..100 {
                let got: Vec<AlertRule> = list(None).await.iter().map(|a| a.rule).collect();
                if rules.iter().all(|r| got.contains(r)) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("alerts {rules:?} not raised; have {:?}", list(None).await);
        }
    };

    // A normal day: sign-ins, reads, projects, reviews, a member added, a few deletions.
    let editor = h
        .add_member("alab", &owner, "ed@alab.test", Role::Editor)
        .await;
    for _ in 0..3 {
        h.login("alab", "ed@alab.test").await;
    }
    let mut projects = Vec::new();
    for i in 0..5 {
        projects.push(
            h.api
                .create_project(&owner.access, &format!("P{i}"))
                .await
                .unwrap()
                .id,
        );
    }
    for _ in 0..20 {
        h.api.me(&editor.access).await.unwrap();
        h.api
            .audit(&owner.access, &AuditQuery::default())
            .await
            .unwrap();
    }
    h.api
        .access_review(&owner.access, &ReviewQuery::default())
        .await
        .unwrap();
    h.api
        .delete_project(&owner.access, &projects[0])
        .await
        .unwrap();
    let bad = h
        .api
        .login(&login_req("alab", "ed@alab.test", "Wrong-pass-1"))
        .await;
    assert!(bad.is_err());
    // Let the detector see all of it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(list(None).await, [], "a normal day raises no alert");

    // The webhook, and thresholds low enough to reach here.
    let hook = webhook_receiver().await;
    let saved = h
        .api
        .set_alert_settings(
            &owner.access,
            &AlertSettings {
                webhook_url: Some(hook.url.clone()),
                downloads_per_hour: 5,
                deletions_per_hour: 3,
            },
        )
        .await
        .unwrap();
    let secret = saved.webhook_secret.expect("a new webhook's secret, once");
    let refused = h
        .api
        .set_alert_settings(
            &owner.access,
            &AlertSettings {
                webhook_url: Some("http://hooks.example.org/x".into()),
                ..saved.settings.clone()
            },
        )
        .await;
    assert_eq!(
        code(refused),
        ErrorCode::InvalidInput,
        "plain HTTP off the host"
    );

    // Scenarios.
    // A sign-in from another program: a device this account never used.
    let other = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(h.server.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", h.server.addr)
        .user_agent("curl/8.5")
        .build()
        .unwrap();
    let r = other
        .post(format!("{}/v1/auth/login", h.base))
        .json(&login_req("alab", "ed@alab.test", PW))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // Guessing: the editor's account locks, and the tenant sees a burst of failures.
    for _ in 0..5 {
        let _ = h
            .api
            .login(&login_req("alab", "ed@alab.test", "Wrong-pass-1"))
            .await;
    }
    for i in 0..5 {
        let _ = h
            .api
            .login(&login_req(
                "alab",
                &format!("nobody{i}@alab.test"),
                "Wrong-pass-1",
            ))
            .await;
    }
    h.api
        .set_member_role(&owner.access, &editor.id, Role::Admin)
        .await
        .unwrap();
    h.api
        .create_api_key(
            &owner.access,
            &ApiKeyRequest {
                name: "ci".into(),
                role: Role::Viewer,
                project_id: None,
                expires_in_days: 30,
            },
        )
        .await
        .unwrap();
    for p in &projects[1..4] {
        h.api.delete_project(&owner.access, p).await.unwrap();
    }
    wait_for(vec![
        AlertRule::NewLoginLocation,
        AlertRule::AccountLocked,
        AlertRule::FailedLogins,
        AlertRule::AdminGranted,
        AlertRule::ApiKeyCreated,
        AlertRule::MassDeletion,
    ])
    .await;
    // Two-factor authentication turned off.
    let secret_totp = owner.totp.clone().unwrap();
    h.clock.advance(Duration::seconds(31));
    h.api
        .mfa_disable(
            &owner.access,
            &DisableMfaRequest {
                password: PW.into(),
                code: h.code(&secret_totp),
            },
        )
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(1));
    let owner = h.login("alab", &email).await;
    let list = |state: Option<&'static str>| alert_list(&h, owner.access.clone(), state);
    for _ in 0..100 {
        if list(None)
            .await
            .iter()
            .any(|a| a.rule == AlertRule::MfaDisabled)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A failed backup, and an audit chain altered behind the server's back.
    alerts::backup_failed(&h.server.state, "the backup disk is full")
        .await
        .unwrap();
    {
        let db = labvault_server::server::open_db_raw(&labvault_server::DataDir(
            h.dir.path().to_path_buf(),
        ))
        .unwrap();
        db.execute(
            "UPDATE audit_log SET result = 1 \
             WHERE tenant = (SELECT id FROM audit_strings WHERE s = ?1) AND seq = 2",
            [&tenant],
        )
        .unwrap();
    }
    assert_eq!(alerts::check_chains(&h.server.state).await.unwrap(), 1);

    let all = list(None).await;
    let mut rules: Vec<AlertRule> = all.iter().map(|a| a.rule).collect();
    rules.sort_by_key(|r| r.as_str());
    rules.dedup();
    let mut expected: Vec<AlertRule> = AlertRule::ALL
        .into_iter()
        .filter(|r| *r != AlertRule::MassDownload)
        .collect();
    expected.sort_by_key(|r| r.as_str());
    assert_eq!(rules, expected, "{all:#?}");
    let locked = all
        .iter()
        .find(|a| a.rule == AlertRule::AccountLocked)
        .unwrap();
    assert_eq!(locked.subject, "ed@alab.test");
    assert_eq!(locked.severity, "high");

    // Each is a security event in the tenant's audit trail.
    let trail = h.audit("alab").await;
    for a in &all {
        assert!(
            trail.iter().any(|e| e.action.as_str() == "security.alert"
                && e.resource == format!("alert/{}", a.id)),
            "no security event for {:?}",
            a.rule
        );
    }

    // Webhooks: refused at first (nothing lost), retried after a minute, then accepted.
    let http = alerts::webhook_client();
    assert_eq!(
        alerts::deliver_due(&h.server.state, &http).await.unwrap(),
        0
    );
    assert_eq!(
        alerts::deliver_due(&h.server.state, &http).await.unwrap(),
        0,
        "not due again yet"
    );
    hook.accept.store(true, std::sync::atomic::Ordering::SeqCst);
    h.clock.advance(Duration::seconds(61));
    let n = alerts::deliver_due(&h.server.state, &http).await.unwrap();
    assert_eq!(n, all.len());
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), all.len());
    for (sig, body) in &got {
        let t: i64 = sig
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        // What a receiver computes: HMAC-SHA256(secret, "<t>.<body>").
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(format!("{t}.{body}").as_bytes());
        assert_eq!(
            sig,
            &format!("t={t},v1={}", hex::encode(m.finalize().into_bytes())),
            "signed with the secret"
        );
        let notice: AlertNotice = serde_json::from_str(body).unwrap();
        assert_eq!(notice.tenant, "alab");
    }
    assert_eq!(
        alerts::deliver_due(&h.server.state, &http).await.unwrap(),
        0,
        "each once"
    );

    // Acknowledge, then resolve: audited, and visible in the list.
    let id = &locked.id;
    let a = h.api.acknowledge_alert(&owner.access, id).await.unwrap();
    assert_eq!(
        (a.state, a.state_by.as_deref()),
        (AlertState::Acknowledged, Some(email.as_str()))
    );
    let a = h.api.resolve_alert(&owner.access, id).await.unwrap();
    assert_eq!(a.state, AlertState::Resolved);
    assert!(list(Some("open")).await.iter().all(|x| &x.id != id));
    assert_eq!(list(Some("resolved")).await.len(), 1);
    let trail = h.audit("alab").await;
    for action in ["alert.acknowledge", "alert.resolve"] {
        assert!(trail
            .iter()
            .any(|e| e.action.as_str() == action && e.resource == format!("alert/{id}")));
    }
    assert_eq!(
        code(
            h.api
                .acknowledge_alert(&owner.access, &uuid::Uuid::new_v4().to_string())
                .await
        ),
        ErrorCode::NotFound
    );
    // The 24-hour view: two days later the list is empty unless asked for more.
    h.clock.advance(Duration::days(2));
    let owner = h.login("alab", &email).await;
    let q = |hours| AlertQuery { state: None, hours };
    assert_eq!(
        h.api.alerts(&owner.access, &q(None)).await.unwrap().alerts,
        []
    );
    assert_eq!(
        h.api
            .alerts(&owner.access, &q(Some(72)))
            .await
            .unwrap()
            .alerts
            .len(),
        all.len()
    );
}
