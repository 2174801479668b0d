//! How fast the Team screen opens on a large lab: a real tenant server (in-process, TLS on
//! 127.0.0.1) with `MEMBERS` members, `PROJECTS` projects and `ROLES` per-project roles; the
//! app's `team_view` body (session, access review over TLS, merge with this vault's projects,
//! the IPC result) timed `ROUNDS` times, with the size of what crosses IPC into the webview and
//! the time to serialize it. Run through `bench/team.sh`; not a test.
//!
//! Env: `MEMBERS` (default 500), `PROJECTS` (200), `ROLES` (2000), `ROUNDS` (20).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{pct, start_lab, PW};

use labvault_app::state::{lock, Shared};
use labvault_app::{ops, tenant_ops};
use labvault_client::{Pin, TenantClient};
use labvault_sync::MemoryTokens;
use labvault_wire::{
    AcceptInvitationRequest, InvitationRequest, LoginRequest, LoginResponse, MfaLoginRequest, Role,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (members, projects, roles, rounds) = (
        env_usize("MEMBERS", 500),
        env_usize("PROJECTS", 200),
        env_usize("ROLES", 2000),
        env_usize("ROUNDS", 20),
    );
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = start_lab(&dir.path().join("server")).await;
    let api =
        TenantClient::new(&url, Pin::parse(&server.pin).unwrap(), Default::default()).unwrap();
    let login = LoginRequest {
        tenant: "lab".into(),
        email: "pi@lab.test".into(),
        password: PW.into(),
    };

    eprintln!("[team-bench] populating: {members} members, {projects} projects, {roles} per-project roles");
    let t0 = Instant::now();
    let LoginResponse::Ok(first) = api.login(&login).await.unwrap() else {
        panic!("no MFA yet")
    };
    let enrolled = api.mfa_enroll(&first.access_token).await.unwrap();
    let secret = labvault_server::totp::base32_decode(&enrolled.secret_base32).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let codes = api
        .mfa_confirm(
            &first.access_token,
            &labvault_server::totp::code_at(&secret, now, 6),
        )
        .await
        .unwrap()
        .recovery_codes;
    let LoginResponse::MfaRequired { mfa_token } = api.login(&login).await.unwrap() else {
        panic!("MFA expected")
    };
    let token = api
        .login_mfa(&MfaLoginRequest {
            mfa_token,
            code: codes[0].clone(),
        })
        .await
        .unwrap()
        .access_token;
    let mut user_ids = Vec::with_capacity(members);
    for i in 1..members {
        let email = format!("member{i:04}@lab.test");
        let inv = api
            .create_invitation(
                &token,
                &InvitationRequest {
                    email: email.clone(),
                    role: if i % 50 == 0 {
                        Role::Admin
                    } else if i % 3 == 0 {
                        Role::Viewer
                    } else {
                        Role::Editor
                    },
                    expires_in_hours: None,
                },
            )
            .await
            .unwrap();
        api.accept_invitation(&AcceptInvitationRequest {
            token: inv.token,
            password: PW.into(),
        })
        .await
        .unwrap();
    }
    for m in api.members(&token).await.unwrap() {
        if m.email != "pi@lab.test" {
            user_ids.push(m.id);
        }
    }
    let mut project_ids = Vec::with_capacity(projects);
    for i in 0..projects {
        project_ids.push(
            api.create_project(&token, &format!("p{i}"))
                .await
                .unwrap()
                .id,
        );
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..roles {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = &user_ids[(x as usize) % user_ids.len()];
        let p = &project_ids[((x >> 20) as usize) % project_ids.len()];
        let r = if x.is_multiple_of(2) {
            Role::Viewer
        } else {
            Role::Editor
        };
        api.set_project_role(&token, p, u, r).await.unwrap();
    }
    eprintln!(
        "[team-bench] populated in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // The app: its own vault (floor KDF), connected and signed in as the PI.
    let mut s = Shared::new(None);
    s.kdf = Some(labvault_core::KdfParams::FLOOR);
    s.recovery_out = Some(dir.path().join("recovery.txt"));
    s.tokens = Arc::new(MemoryTokens::default());
    lock(&s.settings).vault_dir = Some(dir.path().join("vault"));
    let s = Arc::new(s);
    ops::create(
        &s,
        "correct horse battery staple".into(),
        false,
        &|_| Ok(()),
    )
    .unwrap();
    tenant_ops::connect(&s, &url, &server.pin, Some("lab"))
        .await
        .unwrap();
    let r = tenant_ops::sign_in(&s, "pi@lab.test", PW, Some(&codes[1]))
        .await
        .unwrap();
    assert!(r.signed_in);

    let mut times = Vec::with_capacity(rounds);
    let mut ser = Vec::with_capacity(rounds);
    let mut bytes = 0usize;
    let mut cells = 0usize;
    // One warm-up (first TLS connection, first review computed on the server).
    tenant_ops::team_view(&s, None).await.unwrap();
    for _ in 0..rounds {
        let t = Instant::now();
        let team = tenant_ops::team_view(&s, None).await.unwrap();
        let mid = Instant::now();
        let json = serde_json::to_vec(&team).unwrap();
        ser.push(mid.elapsed());
        times.push(t.elapsed());
        bytes = json.len();
        cells = team.access.len();
    }
    let mut raw = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let _ = api
            .access_review(&token, &labvault_wire::ReviewQuery { stale_days: None })
            .await
            .unwrap();
        raw.push(t.elapsed());
    }
    println!("Team screen data on {members} members x {projects} projects ({roles} per-project roles), {rounds} rounds");
    println!(
        "team_view (session + access review over TLS + merge + IPC serialization): p50 {:.0} ms, p99 {:.0} ms",
        pct(&mut times, 0.5),
        pct(&mut times, 0.99)
    );
    println!(
        "  of which serializing the IPC result: p50 {:.1} ms; result {:.1} MB, {cells} explicit cells",
        pct(&mut ser, 0.5),
        bytes as f64 / 1e6
    );
    println!(
        "access review alone (GET /v1/access-review, typed client): p50 {:.0} ms, p99 {:.0} ms",
        pct(&mut raw, 0.5),
        pct(&mut raw, 0.99)
    );
    server.stop().await;
}
