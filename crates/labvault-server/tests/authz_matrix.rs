//! Exhaustive authorization matrix: ONE table of (method, path, rule, body); every row is
//! exercised with every principal (Owner, Admin, Editor, Viewer, no token, expired token,
//! another tenant's Owner). A route missing from the table, or a table row without a route
//! or OpenAPI entry, fails `table_covers_every_route`.

mod common;

use std::collections::BTreeSet;

use common::*;
use labvault_server::jwt::{Claims, AUD_ACCESS, ISSUER};
use labvault_wire::Role;
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Rule {
    /// No authentication.
    Public,
    /// Any authenticated member of the tenant.
    Member,
    /// At least this tenant role.
    Min(Role),
    /// A member calling from an approved device of theirs (`x-labvault-device`).
    Device,
    /// From an approved device, with at least this role on the project.
    DeviceMin(Role),
}

use Role::*;
use Rule::*;

/// Placeholders: {project} = a real project of tenant A, {missing} = a UUID that exists
/// nowhere, {missing_key} = an API key id that exists nowhere, {missing_blob} = a blob id that
/// exists nowhere, {device} = the calling principal's own approved device. Destructive rows
/// target missing ids (or carry a wrong confirmation) so an allowed call proves
/// authorization without destroying the fixture. Every principal calls with its device
/// header; `device_without_approval_is_refused_everywhere` covers calls without one.
const MATRIX: &[(&str, &str, Rule, &str)] = &[
    ("GET", "/v1/health", Public, ""),
    (
        "POST",
        "/v1/auth/login",
        Public,
        r#"{"tenant":"nope","email":"x@y.zz","password":"Wrong-pass-1"}"#,
    ),
    (
        "POST",
        "/v1/auth/mfa",
        Public,
        r#"{"mfa_token":"x","code":"000000"}"#,
    ),
    (
        "POST",
        "/v1/auth/refresh",
        Public,
        r#"{"refresh_token":"nope"}"#,
    ),
    (
        "POST",
        "/v1/auth/logout",
        Public,
        r#"{"refresh_token":"nope"}"#,
    ),
    ("POST", "/v1/auth/step-up", Member, r#"{"code":"abc"}"#),
    ("GET", "/v1/me", Member, ""),
    ("DELETE", "/v1/me", Member, r#"{"password":"Wrong-pass-1"}"#),
    ("POST", "/v1/me/mfa/enroll", Member, ""),
    ("POST", "/v1/me/mfa/confirm", Member, r#"{"code":"000000"}"#),
    (
        "DELETE",
        "/v1/me/mfa",
        Member,
        r#"{"password":"Wrong-pass-1","code":"000000"}"#,
    ),
    (
        "POST",
        "/v1/me/password",
        Member,
        r#"{"current_password":"Wrong-pass-1","new_password":"Xx-12345678"}"#,
    ),
    ("GET", "/v1/tenant", Min(Viewer), ""),
    (
        "DELETE",
        "/v1/tenant",
        Min(Owner),
        r#"{"confirm_slug":"wrong"}"#,
    ),
    ("PUT", "/v1/tenant/plan", Min(Owner), r#"{"plan":"trial"}"#),
    (
        "PUT",
        "/v1/tenant/settings",
        Min(Admin),
        r#"{"require_mfa":false}"#,
    ),
    (
        "POST",
        "/v1/tenant/transfer-ownership",
        Min(Owner),
        r#"{"user_id":"{missing}"}"#,
    ),
    ("GET", "/v1/members", Min(Viewer), ""),
    (
        "PUT",
        "/v1/members/{missing}/role",
        Min(Admin),
        r#"{"role":"viewer"}"#,
    ),
    ("DELETE", "/v1/members/{missing}", Min(Admin), ""),
    ("POST", "/v1/members/{missing}/mfa/reset", Min(Admin), ""),
    ("GET", "/v1/invitations", Min(Admin), ""),
    (
        "POST",
        "/v1/invitations",
        Min(Admin),
        r#"{"email":"new@lab.test","role":"viewer"}"#,
    ),
    ("DELETE", "/v1/invitations/{missing}", Min(Admin), ""),
    (
        "POST",
        "/v1/invitations/accept",
        Public,
        r#"{"token":"nope","password":"Xx-12345678"}"#,
    ),
    ("GET", "/v1/api-keys", Min(Admin), ""),
    (
        "POST",
        "/v1/api-keys",
        Min(Admin),
        r#"{"name":"ci","role":"viewer","expires_in_days":1}"#,
    ),
    ("DELETE", "/v1/api-keys/{missing_key}", Min(Admin), ""),
    ("GET", "/v1/projects", Min(Viewer), ""),
    ("POST", "/v1/projects", Min(Editor), r#"{"name":"p"}"#),
    ("GET", "/v1/projects/{project}", Min(Viewer), ""),
    ("DELETE", "/v1/projects/{missing}", Min(Admin), ""),
    (
        "PUT",
        "/v1/projects/{project}/members/{missing}",
        Min(Admin),
        r#"{"role":"viewer"}"#,
    ),
    (
        "DELETE",
        "/v1/projects/{project}/members/{missing}",
        Min(Admin),
        "",
    ),
    (
        "PUT",
        "/v1/projects/{project}/retention",
        Min(Admin),
        r#"{"rules":[{"data_type":"backup","period":"90d"}]}"#,
    ),
    ("GET", "/v1/retention", Min(Viewer), ""),
    (
        "PUT",
        "/v1/retention",
        Min(Admin),
        r#"{"rules":[{"data_type":"backup","period":"90d"}]}"#,
    ),
    ("GET", "/v1/audit", Min(Admin), ""),
    ("GET", "/v1/audit/export", Min(Admin), ""),
    ("GET", "/v1/audit/verify", Min(Admin), ""),
    ("GET", "/v1/access-review", Min(Admin), ""),
    ("GET", "/v1/access-review/csv", Min(Admin), ""),
    (
        "POST",
        "/v1/access-review/sign-off",
        Min(Admin),
        r#"{"stale_days":90,"changes":["downgraded a@lab on p to viewer"]}"#,
    ),
    (
        "POST",
        "/v1/me/devices",
        Member,
        r#"{"device_id":"{missing}","name":"laptop","x25519":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","ed25519":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}"#,
    ),
    ("GET", "/v1/me/devices", Member, ""),
    (
        "POST",
        "/v1/me/devices/{missing}/approve",
        Device,
        r#"{"approval":{"approver_device_id":"{device}","signature":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},"boxes":[]}"#,
    ),
    ("DELETE", "/v1/me/devices/{missing}", Device, ""),
    (
        "GET",
        "/v1/projects/{project}/keyring",
        DeviceMin(Viewer),
        "",
    ),
    (
        "PUT",
        "/v1/projects/{project}/keyring",
        DeviceMin(Viewer),
        r#"{"boxes":[]}"#,
    ),
    (
        "GET",
        "/v1/projects/{project}/keyring/recipients",
        DeviceMin(Viewer),
        "",
    ),
    (
        "POST",
        "/v1/projects/{project}/commits",
        DeviceMin(Editor),
        r#"{"ops":[{"op_id":"{missing}","item_id":"{missing}","base_rev":0,"epoch":1,"payload":"AQID","blobs":["{missing_blob}"],"tombstone":false}]}"#,
    ),
    (
        "GET",
        "/v1/projects/{project}/changes?after=0",
        DeviceMin(Viewer),
        "",
    ),
    (
        "GET",
        "/v1/projects/{project}/snapshot",
        DeviceMin(Viewer),
        "",
    ),
    (
        "PUT",
        "/v1/projects/{project}/blobs/{missing_blob}",
        DeviceMin(Editor),
        "{}",
    ),
    (
        "GET",
        "/v1/projects/{project}/blobs/{missing_blob}",
        DeviceMin(Viewer),
        "",
    ),
    (
        "POST",
        "/v1/projects/{project}/missing-blobs",
        DeviceMin(Viewer),
        r#"{"ids":["{missing_blob}"]}"#,
    ),
    (
        "POST",
        "/v1/projects/{project}/packs",
        DeviceMin(Editor),
        "{}",
    ),
    (
        "POST",
        "/v1/projects/{project}/blob-batches",
        DeviceMin(Viewer),
        r#"{"ids":["{missing_blob}"]}"#,
    ),
    (
        "POST",
        "/v1/projects/{project}/uploads",
        DeviceMin(Editor),
        r#"{"blob_id":"{missing_blob}","size":10,"part_size":8388608}"#,
    ),
    ("GET", "/v1/uploads/{missing}", Device, ""),
    ("PUT", "/v1/uploads/{missing}/parts/0", Device, "{}"),
    (
        "POST",
        "/v1/uploads/{missing}/complete",
        Device,
        r#"{"parts_sha256":[]}"#,
    ),
    ("DELETE", "/v1/uploads/{missing}", Device, ""),
    (
        "POST",
        "/v1/audit/anchors",
        Device,
        r#"{"chain_id":"{device}","seq":1,"head_hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
    ),
    ("GET", "/v1/audit/anchors?chain_id={device}", Member, ""),
    (
        "PUT",
        "/v1/me/identity",
        Device,
        r#"{"x25519":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","ed25519":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}"#,
    ),
    ("GET", "/v1/me/identity", Device, ""),
    ("PUT", "/v1/me/identity/boxes", Device, r#"{"boxes":[]}"#),
    ("GET", "/v1/identities?user_id={missing}", Member, ""),
    (
        "GET",
        "/v1/projects/{project}/membership",
        DeviceMin(Viewer),
        "",
    ),
    // Who may append is decided by the signed entry (an Owner or Admin of the project's
    // log, checked in flows_sync): a malformed entry gets past authorization for any device.
    (
        "POST",
        "/v1/projects/{project}/membership",
        Device,
        r#"{"entry":"AQID"}"#,
    ),
    ("GET", "/v1/tenant/sharing", Member, ""),
    // Any device of the caller, even a revoked one (it reports its own erasure).
    (
        "POST",
        "/v1/me/wipes",
        Device,
        r#"{"project_id":"{missing}","reason":"removed","items":0,"unsent":0}"#,
    ),
    (
        "PUT",
        "/v1/tenant/sharing",
        Min(Admin),
        r#"{"offline_lease_days":14,"key_rotation_days":90}"#,
    ),
    ("GET", "/v1/alerts", Min(Admin), ""),
    ("POST", "/v1/alerts/{missing}/acknowledge", Min(Admin), ""),
    ("POST", "/v1/alerts/{missing}/resolve", Min(Admin), ""),
    ("GET", "/v1/tenant/alerts", Min(Admin), ""),
    (
        "PUT",
        "/v1/tenant/alerts",
        Min(Admin),
        r#"{"webhook_url":null,"downloads_per_hour":2000,"deletions_per_hour":100}"#,
    ),
];

/// Codes that mean "authorization refused"; anything else means the request got past
/// authorization (it may still fail validation or find nothing).
const DENIALS: &[&str] = &["unauthorized", "token_expired", "forbidden", "mfa_required"];

/// The exact answer of each public route to the matrix's (deliberately wrong) bodies, the same
/// for every principal: a token must change nothing on these routes.
fn public_answer(path: &str) -> (u16, &'static str) {
    match path {
        "/v1/health" => (200, "ok"),
        "/v1/auth/login" => (401, "invalid_credentials"),
        "/v1/auth/mfa" => (401, "unauthorized"),
        "/v1/auth/refresh" => (401, "invalid_refresh_token"),
        "/v1/auth/logout" => (204, "ok"),
        "/v1/invitations/accept" => (404, "not_found"),
        other => panic!("no expected answer for the public route {other}"),
    }
}

fn template(path: &str) -> String {
    // Router/OpenAPI form of a matrix path.
    path.replace("{project}", "{project_id}")
        .replace(
            "/v1/projects/{project_id}/members/{missing}",
            "/v1/projects/{project_id}/members/{user_id}",
        )
        .replace("/v1/members/{missing}", "/v1/members/{user_id}")
        .replace(
            "/v1/invitations/{missing}",
            "/v1/invitations/{invitation_id}",
        )
        .replace("/v1/api-keys/{missing_key}", "/v1/api-keys/{key_id}")
        .replace("/v1/projects/{missing}", "/v1/projects/{project_id}")
        .replace("/v1/me/devices/{missing}", "/v1/me/devices/{device_id}")
        .replace("{missing_blob}", "{blob_id}")
        .replace(
            "/v1/uploads/{missing}/parts/0",
            "/v1/uploads/{upload_id}/parts/{n}",
        )
        .replace("/v1/uploads/{missing}", "/v1/uploads/{upload_id}")
        .replace("/v1/alerts/{missing}", "/v1/alerts/{alert_id}")
        .split('?')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn table_covers_every_route() {
    let table: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), template(p)))
        .collect();
    assert_eq!(table.len(), MATRIX.len(), "duplicate rows in the matrix");
    let routes: BTreeSet<(String, String)> = labvault_server::api::route_table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        routes.difference(&table).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes without an authorization-matrix row"
    );
    assert_eq!(
        table.difference(&routes).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "matrix rows without a route"
    );
    let doc: Value = serde_json::from_str(&labvault_server::api::openapi_json()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            documented.insert((m.to_uppercase(), path.clone()));
        }
    }
    assert_eq!(
        documented, routes,
        "OpenAPI paths differ from the router's routes"
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Owner,
    Admin,
    Editor,
    Viewer,
    NoToken,
    Expired,
    OtherTenant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_for_every_principal() {
    let h = harness().await;
    let cfg_window = h.server.state.cfg.step_up_window;
    assert!(cfg_window >= 300);
    h.tenant("alpha").await;
    let owner = h.login("alpha", "owner@alpha.test").await;
    let owner = h.enroll_and_relogin("alpha", &owner).await;
    let mut users = vec![(Who::Owner, owner.clone(), h.device(&owner).await)];
    for (who, email, role) in [
        (Who::Admin, "admin@alpha.test", labvault_wire::Role::Admin),
        (
            Who::Editor,
            "editor@alpha.test",
            labvault_wire::Role::Editor,
        ),
        (
            Who::Viewer,
            "viewer@alpha.test",
            labvault_wire::Role::Viewer,
        ),
    ] {
        let u = h.add_member("alpha", &owner, email, role).await;
        let u = h.enroll_and_relogin("alpha", &u).await;
        let d = h.device(&u).await;
        users.push((who, u, d));
    }
    h.tenant("beta").await;
    let other = h.login("beta", "owner@beta.test").await;
    let other = h.enroll_and_relogin("beta", &other).await;
    let other_device = h.device(&other).await;
    let project = h
        .api
        .create_project(&owner.access, "fixture")
        .await
        .unwrap()
        .id;
    let now = h.now();
    let expired = h.server.state.jwt.sign(&Claims {
        iss: ISSUER.into(),
        aud: AUD_ACCESS.into(),
        sub: owner.id.clone(),
        tid: h
            .server
            .state
            .store
            .tenant_by_slug("alpha")
            .await
            .unwrap()
            .id,
        sid: "s".into(),
        iat: now - 1200,
        nbf: now - 1200,
        exp: now - 600,
        mfa_at: Some(now - 1200),
        jti: "j".into(),
    });

    let missing = uuid::Uuid::new_v4().to_string();
    let missing_key = uuid::Uuid::new_v4().simple().to_string();
    let missing_blob = uuid::Uuid::new_v4().simple().to_string();
    let mut failures = Vec::new();
    let mut forbidden = 0;
    let mut cases = 0;
    for (method, path, rule, body_template) in MATRIX {
        let fill = |s: &str, device: &str| {
            s.replace("{project}", &project)
                .replace("{missing_key}", &missing_key)
                .replace("{missing_blob}", &missing_blob)
                .replace("{missing}", &missing)
                .replace("{device}", device)
        };
        let targets_missing = path.contains("{missing") || body_template.contains("{missing");
        let principals: Vec<(Who, Option<String>, String)> = users
            .iter()
            .map(|(w, u, d)| (*w, Some(u.access.clone()), d.clone()))
            .chain([
                (Who::NoToken, None, users[0].2.clone()),
                (Who::Expired, Some(expired.clone()), users[0].2.clone()),
                (
                    Who::OtherTenant,
                    Some(other.access.clone()),
                    other_device.clone(),
                ),
            ])
            .collect();
        for (who, token, device) in principals {
            cases += 1;
            let url = fill(path, &device);
            let body: Option<Value> = (!body_template.is_empty())
                .then(|| serde_json::from_str(&fill(body_template, &device)).unwrap());
            let (status, v) = h
                .call_with(
                    method,
                    &url,
                    token.as_deref(),
                    body,
                    &[(labvault_wire::DEVICE_HEADER, device.as_str())],
                )
                .await;
            let code = if status.is_success() {
                "ok"
            } else {
                code_of(&v)
            };
            let role_of = |w: Who| match w {
                Who::Owner => Some(Role::Owner),
                Who::Admin => Some(Role::Admin),
                Who::Editor => Some(Role::Editor),
                Who::Viewer => Some(Role::Viewer),
                _ => None,
            };
            // Expected: Some(code) for an exact denial, None for "gets past authorization".
            let expect: Option<&str> = match (rule, who) {
                (Public, _) => None,
                (_, Who::NoToken) => Some("unauthorized"),
                (_, Who::Expired) => Some("token_expired"),
                (_, Who::OtherTenant) if path.contains("{project}") => Some("not_found"),
                (_, Who::OtherTenant) => None,
                (Member, _) | (Device, _) => None,
                (Min(min), w) | (DeviceMin(min), w) => {
                    (role_of(w).unwrap() < *min).then_some("forbidden")
                }
            };
            let ok = match (rule, expect) {
                (Public, _) => (status.as_u16(), code) == public_answer(path),
                (_, Some(c)) => code == c,
                (_, None) => {
                    !DENIALS.contains(&code)
                        && status.as_u16() < 500
                        && (status.as_u16() != 404 || targets_missing)
                }
            };
            if expect == Some("forbidden") {
                forbidden += 1;
            }
            if !ok {
                failures.push(format!(
                    "{method} {path} as {who:?}: expected {}, got {status} {code}",
                    expect.unwrap_or("allowed")
                ));
            }
        }
    }
    assert_eq!(cases, MATRIX.len() * 7);
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );
    // Every role refusal is in the tenant's audit chain as `denied` with its code.
    let denied = h
        .audit("alpha")
        .await
        .iter()
        .filter(|e| {
            e.result == labvault_governance::audit::Outcome::Denied && e.detail == "forbidden"
        })
        .count();
    assert_eq!(denied, forbidden, "denied attempts audited");
}

/// Every sync route refuses a caller without an approved device of their own: no device
/// header, a device still pending approval, another user's device, and an API key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_without_approval_is_refused_everywhere() {
    let h = harness().await;
    h.tenant("alpha").await;
    let owner = h.login("alpha", "owner@alpha.test").await;
    let first = h.device(&owner).await;
    let pending = h.device(&owner).await;
    let editor = h
        .add_member("alpha", &owner, "editor@alpha.test", Role::Editor)
        .await;
    let project = h.api.create_project(&owner.access, "p").await.unwrap().id;
    let missing = uuid::Uuid::new_v4().to_string();
    let blob = uuid::Uuid::new_v4().simple().to_string();
    let mut checked = 0;
    for (method, path, rule, body) in MATRIX {
        if !matches!(rule, Device | DeviceMin(_)) {
            continue;
        }
        let fill = |s: &str| {
            s.replace("{project}", &project)
                .replace("{missing_blob}", &blob)
                .replace("{missing}", &missing)
                .replace("{device}", &first)
        };
        let body: Option<Value> =
            (!body.is_empty()).then(|| serde_json::from_str(&fill(body)).unwrap());
        for (who, token, headers) in [
            ("no header", &owner.access, vec![]),
            (
                "pending device",
                &owner.access,
                vec![(labvault_wire::DEVICE_HEADER, pending.as_str())],
            ),
            (
                "another user's device",
                &editor.access,
                vec![(labvault_wire::DEVICE_HEADER, first.as_str())],
            ),
            (
                "not a uuid",
                &owner.access,
                vec![(labvault_wire::DEVICE_HEADER, "../x")],
            ),
        ] {
            let (status, v) = h
                .call_with(method, &fill(path), Some(token), body.clone(), &headers)
                .await;
            assert_eq!(
                (status.as_u16(), code_of(&v)),
                (403, "device_not_approved"),
                "{method} {path} with {who}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * 25, "every device-bound route checked");
}
