//! Hostile input: forged and mistimed tokens, other tenants' ids, malformed and oversized
//! bodies, SQL metacharacters and control characters, wrong and replayed TOTP codes. Each
//! gets the right code and changes nothing.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use labvault_server::jwt::{Claims, JwtKey, AUD_ACCESS, AUD_MFA, ISSUER};
use serde_json::json;

fn claims(h: &Harness, user: &User, tenant: &str) -> Claims {
    let now = h.now();
    Claims {
        iss: ISSUER.into(),
        aud: AUD_ACCESS.into(),
        sub: user.id.clone(),
        tid: tenant.into(),
        sid: "whatever".into(),
        iat: now,
        nbf: now,
        exp: now + 600,
        mfa_at: Some(now),
        jti: "x".into(),
    }
}

#[tokio::test]
async fn forged_and_mistimed_tokens_are_refused() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let tid = h.server.state.store.tenant_by_slug("lab").await.unwrap().id;
    let real_claims = {
        let payload = u.access.split('.').nth(1).unwrap();
        serde_json::from_slice::<Claims>(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&real_claims).unwrap());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!(
                "{}.{body}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
            ),
            "unauthorized",
        ),
        (
            "alg HS512 header",
            format!(
                "{}.{body}.{}",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512"}"#),
                u.access.split('.').nth(2).unwrap()
            ),
            "unauthorized",
        ),
        (
            "wrong key",
            JwtKey::new(vec![9; 32]).sign(&real_claims),
            "unauthorized",
        ),
        (
            "payload swapped",
            {
                let mut c = real_claims.clone();
                c.sub = "someone-else".into();
                let parts: Vec<&str> = u.access.split('.').collect();
                format!(
                    "{}.{}.{}",
                    parts[0],
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap()),
                    parts[2]
                )
            },
            "unauthorized",
        ),
        (
            "expired",
            h.server.state.jwt.sign(&Claims {
                exp: h.now() - 60,
                iat: h.now() - 700,
                nbf: h.now() - 700,
                ..claims(&h, &u, &tid)
            }),
            "token_expired",
        ),
        (
            "not yet valid",
            h.server.state.jwt.sign(&Claims {
                nbf: h.now() + 3600,
                ..claims(&h, &u, &tid)
            }),
            "unauthorized",
        ),
        (
            "wrong audience",
            h.server.state.jwt.sign(&Claims {
                aud: AUD_MFA.into(),
                ..claims(&h, &u, &tid)
            }),
            "unauthorized",
        ),
        (
            "unknown session",
            h.server.state.jwt.sign(&claims(&h, &u, &tid)),
            "unauthorized",
        ),
        ("garbage", "not.a.jwt.at.all".into(), "unauthorized"),
        ("api key garbage", "lvk_abc_def".into(), "unauthorized"),
    ];
    for (name, token, want) in cases {
        let (s, v) = h.call("GET", "/v1/me", Some(&token), None).await;
        assert_eq!(code_of(&v), want, "{name}: {s} {v}");
        assert_eq!(s.as_u16(), 401, "{name}");
    }
    let (s, v) = h.call_raw("GET", "/v1/me", None, None).await;
    assert_eq!(s.as_u16(), 401, "{v}");
    // The real token still works: nothing above changed state.
    let (s, _) = h.call("GET", "/v1/me", Some(&u.access), None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn other_tenants_ids_behave_exactly_like_missing_ids() {
    let h = harness().await;
    let ea = h.tenant("alpha").await;
    let eb = h.tenant("beta").await;
    let a = h.login("alpha", &ea).await;
    let a = h.enroll_and_relogin("alpha", &a).await;
    let b = h.login("beta", &eb).await;
    let b = h.enroll_and_relogin("beta", &b).await;
    let a_member = h
        .add_member("alpha", &a, "m@alpha.test", labvault_wire::Role::Editor)
        .await;
    let (_, p) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&a.access),
            Some(json!({"name": "secret"})),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let (_, inv) = h
        .call(
            "POST",
            "/v1/invitations",
            Some(&a.access),
            Some(json!({"email": "x@alpha.test", "role": "viewer"})),
        )
        .await;
    let inv_id = inv["invitation"]["id"].as_str().unwrap().to_string();
    let (_, k) = h
        .call(
            "POST",
            "/v1/api-keys",
            Some(&a.access),
            Some(json!({"name": "k", "role": "viewer", "expires_in_days": 1})),
        )
        .await;
    let key_id = k["api_key"]["id"].as_str().unwrap().to_string();
    let missing = uuid::Uuid::new_v4().to_string();
    let missing_key = uuid::Uuid::new_v4().simple().to_string();

    let probes: Vec<(&str, String, String, Option<serde_json::Value>)> = vec![
        (
            "GET",
            format!("/v1/projects/{pid}"),
            format!("/v1/projects/{missing}"),
            None,
        ),
        (
            "DELETE",
            format!("/v1/projects/{pid}"),
            format!("/v1/projects/{missing}"),
            None,
        ),
        (
            "PUT",
            format!("/v1/projects/{pid}/retention"),
            format!("/v1/projects/{missing}/retention"),
            Some(json!({"rules": [{"data_type": "backup", "period": "10d"}]})),
        ),
        (
            "PUT",
            format!("/v1/members/{}/role", a_member.id),
            format!("/v1/members/{missing}/role"),
            Some(json!({"role": "viewer"})),
        ),
        (
            "DELETE",
            format!("/v1/members/{}", a_member.id),
            format!("/v1/members/{missing}"),
            None,
        ),
        (
            "DELETE",
            format!("/v1/invitations/{inv_id}"),
            format!("/v1/invitations/{missing}"),
            None,
        ),
        (
            "DELETE",
            format!("/v1/api-keys/{key_id}"),
            format!("/v1/api-keys/{missing_key}"),
            None,
        ),
    ];
    for (m, foreign, nonexistent, body) in probes {
        let (s1, v1) = h.call(m, &foreign, Some(&b.access), body.clone()).await;
        let (s2, v2) = h.call(m, &nonexistent, Some(&b.access), body).await;
        assert_eq!(
            (s1, &v1),
            (s2, &v2),
            "{m} {foreign} differs from a missing id"
        );
        assert_eq!(code_of(&v1), "not_found", "{m} {foreign}");
    }
    let (_, v) = h
        .call(
            "POST",
            "/v1/tenant/transfer-ownership",
            Some(&b.access),
            Some(json!({"user_id": a_member.id})),
        )
        .await;
    assert_eq!(code_of(&v), "not_found");
    let (_, v) = h
        .call(
            "POST",
            "/v1/api-keys",
            Some(&b.access),
            Some(json!({"name": "k", "role": "viewer", "project_id": pid, "expires_in_days": 1})),
        )
        .await;
    assert_eq!(code_of(&v), "not_found");

    // Nothing in alpha changed.
    let (s, _) = h
        .call("GET", &format!("/v1/projects/{pid}"), Some(&a.access), None)
        .await;
    assert_eq!(s, 200);
    let (_, members) = h.call("GET", "/v1/members", Some(&a.access), None).await;
    assert_eq!(members.as_array().unwrap().len(), 2);
    let (_, invs) = h
        .call("GET", "/v1/invitations", Some(&a.access), None)
        .await;
    assert_eq!(invs.as_array().unwrap().len(), 1);
    let (_, keys) = h.call("GET", "/v1/api-keys", Some(&a.access), None).await;
    assert!(keys[0]["revoked_at"].is_null());
    let (_, m) = h.call("GET", "/v1/me", Some(&a_member.access), None).await;
    assert_eq!(m["role"], "editor");
    // Beta's lists show nothing of alpha.
    let (_, l) = h.call("GET", "/v1/projects", Some(&b.access), None).await;
    assert_eq!(l.as_array().unwrap().len(), 0);
    let (_, r) = h
        .call("GET", "/v1/audit?limit=1000", Some(&b.access), None)
        .await;
    assert!(!r.to_string().contains("alpha.test"));
}

#[tokio::test]
async fn malformed_oversized_and_control_character_input_changes_nothing() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let send = |body: String, ctype: &'static str| {
        h.http
            .post(format!("{}/v1/projects", h.base))
            .bearer_auth(&u.access)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let r = send("{\"name\": ".into(), "application/json")
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code_of(&v), "invalid_input");
    let r = send("{\"name\": 42}".into(), "application/json")
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code_of(&v), "invalid_input");
    let r = send("{\"name\": \"x\"}".into(), "text/plain")
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code_of(&v), "invalid_input");
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(200 * 1024));
    let r = send(big, "application/json").await.unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code_of(&v), "payload_too_large");
    for bad in ["a\u{0}b", "line\nbreak", "esc\u{1b}[31m", ""] {
        let (s, v) = h
            .call(
                "POST",
                "/v1/projects",
                Some(&u.access),
                Some(json!({"name": bad})),
            )
            .await;
        assert_eq!((s.as_u16(), code_of(&v)), (422, "invalid_input"), "{bad:?}");
    }
    let (_, l) = h.call("GET", "/v1/projects", Some(&u.access), None).await;
    assert_eq!(l.as_array().unwrap().len(), 0, "nothing was created");

    // SQL metacharacters are data, stored and returned verbatim.
    let nasty = "x'); DROP TABLE projects; -- \" % _ \\";
    let (s, p) = h
        .call(
            "POST",
            "/v1/projects",
            Some(&u.access),
            Some(json!({"name": nasty})),
        )
        .await;
    assert_eq!(s, 201);
    let (_, got) = h
        .call(
            "GET",
            &format!("/v1/projects/{}", p["id"].as_str().unwrap()),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!(got["name"], nasty);
    let (_, v) = h
        .call("GET", "/v1/projects/' OR '1'='1", Some(&u.access), None)
        .await;
    assert_eq!(code_of(&v), "not_found");
    let (_, v) = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "lab' OR 1=1 --", "email": "' OR ''='", "password": "x"})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_credentials");
    let (_, v) = h
        .call(
            "POST",
            "/v1/invitations",
            Some(&u.access),
            Some(json!({"email": "a\u{0}@b.cc", "role": "viewer"})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_input");
    let (_, v) = h
        .call(
            "POST",
            "/v1/invitations",
            Some(&u.access),
            Some(json!({"email": "a@b.cc", "role": "superuser"})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_input");
    let (_, l) = h.call("GET", "/v1/projects", Some(&u.access), None).await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    let (_, v) = h.call("GET", "/v1/nope", Some(&u.access), None).await;
    assert_eq!(code_of(&v), "not_found");
}

#[tokio::test]
async fn wrong_and_replayed_totp_codes_are_refused_for_step_up() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let u = h.login("lab", &email).await;
    let u = h.enroll_and_relogin("lab", &u).await;
    let secret = u.totp.clone().unwrap();
    h.clock.advance(time::Duration::seconds(30));
    let code = h.code(&secret);
    let (s, _) = h
        .call(
            "POST",
            "/v1/auth/step-up",
            Some(&u.access),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = h
        .call(
            "POST",
            "/v1/auth/step-up",
            Some(&u.access),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), code_of(&v)),
        (401, "invalid_mfa_code"),
        "replay in the same window"
    );
    for bad in ["", "12345", "1234567", "abcdef", "99999999999"] {
        let (_, v) = h
            .call(
                "POST",
                "/v1/auth/step-up",
                Some(&u.access),
                Some(json!({"code": bad})),
            )
            .await;
        assert_eq!(code_of(&v), "invalid_mfa_code", "{bad:?}");
    }
    let failures = h
        .audit("lab")
        .await
        .iter()
        .filter(|e| {
            e.action.as_str() == "auth.step_up"
                && e.result == labvault_governance::audit::Outcome::Failure
        })
        .count();
    assert!(failures >= 2);
}

#[tokio::test]
async fn account_security_endpoints_refuse_hostile_input_and_change_nothing() {
    let h = harness().await;
    let email = h.tenant("lab").await;
    let owner = h.login("lab", &email).await;
    let owner = h.enroll_and_relogin("lab", &owner).await;
    let login_time = h.now();
    let beta_email = h.tenant("beta").await;
    let beta = h.login("beta", &beta_email).await;
    let beta = h.enroll_and_relogin("beta", &beta).await;
    let before = h.audit("beta").await.len();

    // Another tenant's member id, SQL metacharacters and control characters in the id all
    // behave like an id that does not exist.
    let missing = uuid::Uuid::new_v4().to_string();
    for id in [
        beta.id.as_str(),
        missing.as_str(),
        "1'%20OR%20'1'='1",
        "%00%0a",
    ] {
        let (s, v) = h
            .call(
                "POST",
                &format!("/v1/members/{id}/mfa/reset"),
                Some(&owner.access),
                None,
            )
            .await;
        assert_eq!((s.as_u16(), code_of(&v)), (404, "not_found"), "{id}");
    }
    let (_, me) = h.call("GET", "/v1/me", Some(&beta.access), None).await;
    assert_eq!(
        me["mfa_enrolled"], true,
        "the other tenant's member is untouched"
    );
    assert_eq!(
        h.audit("beta").await.len(),
        before + 1,
        "only beta's own /v1/me read"
    );

    // Malformed, incomplete and oversized bodies.
    let long = format!("Aa1-{}", "x".repeat(300));
    for (path, body, code) in [
        (
            "/v1/me/password",
            json!({"current_password": PW}),
            "invalid_input",
        ),
        (
            "/v1/me/password",
            json!({"current_password": PW, "new_password": 7}),
            "invalid_input",
        ),
        (
            "/v1/me/password",
            json!({"current_password": PW, "new_password": long}),
            "weak_password",
        ),
        (
            "/v1/me/password",
            json!({"current_password": PW, "new_password": "x".repeat(70_000)}),
            "payload_too_large",
        ),
        ("/v1/me/mfa", json!({"password": PW}), "invalid_input"),
    ] {
        let method = if path == "/v1/me/mfa" {
            "DELETE"
        } else {
            "POST"
        };
        let (_, v) = h.call(method, path, Some(&owner.access), Some(body)).await;
        assert_eq!(code_of(&v), code, "{path}");
    }
    // A TOTP code already used (for the login) cannot be replayed to disable MFA.
    let secret = owner.totp.clone().unwrap();
    let used = labvault_server::totp::code_at(&secret, login_time, 6);
    let (_, v) = h
        .call(
            "DELETE",
            "/v1/me/mfa",
            Some(&owner.access),
            Some(json!({"password": PW, "code": used})),
        )
        .await;
    assert_eq!(code_of(&v), "invalid_mfa_code", "replay in the same window");
    let (_, me) = h.call("GET", "/v1/me", Some(&owner.access), None).await;
    assert_eq!(me["mfa_enrolled"], true);
    let (s, _) = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"tenant": "lab", "email": email, "password": PW})),
        )
        .await;
    assert_eq!(s, 200, "the password is unchanged");
}

static TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A TLS server on 127.0.0.1:0 that answers every connection with `answer` (raw HTTP/1.1),
/// offering only `versions`: a stand-in for a wrong or hostile tenant. Returns its address
/// and the pin of its (fresh) key.
async fn fake_tenant(
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    answer: &'static str,
) -> (std::net::SocketAddr, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let pin = labvault_client::Pin::of_certificate(&cert)
        .unwrap()
        .to_string();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, pin)
}

/// The typed client trusts one key and TLS 1.3 only: a wrong pin is named (with the key the
/// server showed) before anything is sent, a TLS 1.2 server is refused whatever its key, a
/// non-HTTPS URL is refused, and a server answering outside the API is `Malformed`, never
/// taken for data.
#[tokio::test]
async fn the_client_trusts_only_the_pinned_key_over_tls_1_3_and_names_every_failure() {
    use labvault_client::{ClientError, ClientOptions, Pin, TenantClient};
    let h = harness().await;
    let url = format!("https://127.0.0.1:{}", h.server.addr.port());
    let email = h.tenant("lab").await;
    let before = h.audit("lab").await.len();
    let wrong = Pin::parse(&format!(
        "sha256/{}",
        base64::engine::general_purpose::STANDARD.encode([1u8; 32])
    ))
    .unwrap();
    let c = TenantClient::new(&url, wrong, ClientOptions::default()).unwrap();
    match c.login(&login_req("lab", &email, PW)).await {
        Err(ClientError::PinMismatch {
            pinned, presented, ..
        }) => {
            assert_eq!(pinned, wrong.to_string());
            assert_eq!(
                presented, h.server.pin,
                "the key the server showed is named"
            );
        }
        Err(e) => panic!("expected a pin mismatch, got {e:?}"),
        Ok(_) => panic!("a wrong pin logged in"),
    }
    assert_eq!(
        h.audit("lab").await.len(),
        before,
        "nothing reached the server"
    );
    for bad in ["http://127.0.0.1:1", "ftp://x", "not a url", "https://"] {
        assert!(
            matches!(
                TenantClient::new(bad, wrong, ClientOptions::default()),
                Err(ClientError::InvalidUrl(_))
            ),
            "{bad}"
        );
    }

    // The same well-behaved answer over TLS 1.3 is accepted; over TLS 1.2 only it is refused,
    // even with the server's own, correct pin.
    const HEALTH: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 34\r\n\r\n{\"status\":\"ok\",\"api_version\":\"v1\"}";
    for (versions, accepted) in [(TLS13_ONLY, true), (TLS12_ONLY, false)] {
        let (addr, pin) = fake_tenant(versions, HEALTH).await;
        let c = TenantClient::new(
            &format!("https://{addr}"),
            Pin::parse(&pin).unwrap(),
            ClientOptions::default(),
        )
        .unwrap();
        match c.health().await {
            Ok(health) => assert!(accepted && health.api_version == "v1"),
            Err(ClientError::Unreachable { .. }) => assert!(!accepted, "TLS 1.3 refused"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    // A pinned TLS 1.3 server answering outside the API.
    for (answer, want_status) in [
        (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"status\":42}",
            200,
        ),
        (
            "HTTP/1.1 500 Oops\r\ncontent-length: 9\r\n\r\n<html>bad",
            500,
        ),
        (
            "HTTP/1.1 401 No\r\ncontent-type: application/json\r\ncontent-length: 43\r\n\r\n{\"code\":\"made_up_code\",\"message\":\"hostile\"}",
            401,
        ),
    ] {
        let (addr, pin) = fake_tenant(TLS13_ONLY, answer).await;
        let c = TenantClient::new(
            &format!("https://{addr}"),
            Pin::parse(&pin).unwrap(),
            ClientOptions::default(),
        )
        .unwrap();
        match c.health().await {
            Err(ClientError::Malformed { status, .. }) => assert_eq!(status, want_status),
            Err(e) => panic!("expected Malformed for {answer:?}, got {e:?}"),
            Ok(h) => panic!("a malformed answer was taken for data: {h:?}"),
        }
    }
    // The real server, rightly pinned, works.
    let good = TenantClient::new(
        &url,
        Pin::parse(&h.server.pin).unwrap(),
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(good.health().await.unwrap().status, "ok");
}
