//! Two users share a project from the command line: `project share` (refused without a
//! step-up, then with `--totp`), safety numbers that match on both sides (`fingerprint`),
//! `project members`, `project unshare` (the key rotates, the removed member's next sync
//! erases their copy) and `project rotate`.

use hmac::{Hmac, Mac};
use labvault_client::{ClientOptions, Pin, TenantClient};
use labvault_wire::*;

use super::*;

/// RFC 4648 base32 (no padding), as TOTP secrets are shown.
fn base32(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in s.chars().filter(|c| *c != '=') {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            .find(c.to_ascii_uppercase())
            .unwrap() as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// RFC 6238 TOTP (SHA-1, 30 s, 6 digits) at Unix time `t`.
fn totp(secret: &[u8], t: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&(t / 30).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = (h[19] & 0xf) as usize;
    let bin = (u32::from(h[o] & 0x7f) << 24)
        | (u32::from(h[o + 1]) << 16)
        | (u32::from(h[o + 2]) << 8)
        | u32::from(h[o + 3]);
    format!("{:06}", bin % 1_000_000)
}

fn api(server: &Server) -> TenantClient {
    TenantClient::new(
        &server.url(),
        Pin::parse(&server.pin).unwrap(),
        ClientOptions::default(),
    )
    .unwrap()
}

async fn access(api: &TenantClient, email: &str) -> String {
    let r = api
        .login(&LoginRequest {
            tenant: "lab".into(),
            email: email.into(),
            password: PW.into(),
        })
        .await
        .unwrap();
    match r {
        LoginResponse::Ok(p) => p.access_token,
        LoginResponse::MfaRequired { .. } => panic!("{email} has MFA"),
    }
}

/// Invites the postdoc; enrols the PI's TOTP. Returns a recovery code of the PI.
fn set_up_accounts(server: &Server) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = api(server);
        let owner = access(&api, "pi@lab.test").await;
        let inv = api
            .create_invitation(
                &owner,
                &InvitationRequest {
                    email: "postdoc@lab.test".into(),
                    role: Role::Editor,
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
        let e = api.mfa_enroll(&owner).await.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let codes = api
            .mfa_confirm(&owner, &totp(&base32(&e.secret_base32), now))
            .await
            .unwrap();
        codes.recovery_codes[0].clone()
    })
}

#[test]
fn two_users_share_and_unshare_a_project_from_the_command_line() {
    let bin = need_server!();
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(bin, &t.path().join("server"));

    let pi = Dev::new("pi");
    pi.ok(&["project", "create", "Alpha"]);
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("results.csv"), b"t,v\n1,2\n").unwrap();
    pi.ok(&["import", "--project", "Alpha", src.to_str().unwrap()]);
    pi.connect(&server.url(), &server.pin);
    pi.ok(&["sync"]);
    let recovery = set_up_accounts(&server);
    let pd = Dev::new("postdoc");
    pd.ok(&[
        "remote",
        "add",
        &server.url(),
        "--pin",
        &server.pin,
        "--tenant",
        "lab",
    ]);
    pd.ok(&["login", "--email", "postdoc@lab.test"]);
    pd.ok(&["sync"]);
    assert!(!pd.ok(&["project", "ls"]).contains("Alpha"));

    // Sharing is an admin action: refused without a step-up, with what to do.
    let o = pi.run(&["project", "share", "Alpha", "--user", "postdoc@lab.test"]);
    assert_eq!(code_of(&o), 24, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--totp"));
    let out = pi.ok(&[
        "project",
        "share",
        "Alpha",
        "--user",
        "postdoc@lab.test",
        "--role",
        "editor",
        "--totp",
        &recovery,
    ]);
    let theirs = out
        .lines()
        .find_map(|l| l.strip_prefix("their safety number: "))
        .expect("the safety number is shown")
        .to_string();
    let own = pd.ok(&["fingerprint"]);
    assert_eq!(
        own.trim().strip_prefix("your safety number: ").unwrap(),
        theirs,
        "both sides see the same number"
    );
    assert!(pi
        .ok(&["fingerprint", "postdoc@lab.test"])
        .contains(&theirs));

    // The postdoc's next sync brings the project, its files and its members.
    pd.ok(&["sync"]);
    assert_eq!(pd.listing().len(), 1);
    let members = pd.ok(&["project", "members", "Alpha"]);
    assert!(
        members.contains("owner") && members.contains("editor"),
        "{members}"
    );

    // Removing them rotates the key and says what that protects.
    let out = pi.ok(&["project", "unshare", "Alpha", "--user", "postdoc@lab.test"]);
    assert!(out.contains("rotated to epoch 2"), "{out}");
    assert!(out.contains("cannot be recalled"), "{out}");
    let out = pd.ok(&["sync"]);
    assert!(out.contains("you were removed"), "{out}");
    assert!(
        !pd.ok(&["project", "ls"]).contains("Alpha"),
        "the copy is erased"
    );
    let v: serde_json::Value =
        serde_json::from_str(&pi.ok(&["project", "members", "Alpha", "--json"])).unwrap();
    assert_eq!(v["epoch"], 2);
    assert_eq!(v["members"].as_array().unwrap().len(), 1);
    assert!(pi.ok(&["project", "rotate", "Alpha"]).contains("epoch 3"));
    pi.ok(&["sync"]);
}
