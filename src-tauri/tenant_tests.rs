//! The connected half's command bodies against the real tenant server (in-process, TLS on
//! 127.0.0.1:0, its own data directory) and the real OS keyring (run under
//! `scripts/with-keyring.sh`): connect, sign in with MFA, sync, the team matrix, an admin
//! action that needs a step-up, the review's CSV and sign-off, a member's own view, sign-out.

use std::sync::{Arc, Mutex};

use labvault_client::{ClientOptions, Pin, TenantClient};
use labvault_core::{Area, ErrorCode, KdfParams};
use labvault_server::secrets::{KdfParams as ServerKdf, Secret};
use labvault_server::server::self_signed;
use labvault_server::{
    create_tenant, open_state, start, Config, DataDir, NewTenant, RunningServer,
};
use labvault_sync::{KeyringTokens, TenantCode, TokenStore};
use labvault_wire::{
    AcceptInvitationRequest, AuditQuery, InvitationRequest, LoginRequest, LoginResponse, PlanTier,
    Role,
};

use crate::dto::Progress;
use crate::ops;
use crate::state::{lock, Shared};
use crate::tenant_ops as t;

const PW: &str = "Correct-Horse-9";
const PASS: &str = "correct horse battery staple";

struct Lab {
    server: RunningServer,
    _dir: tempfile::TempDir,
    url: String,
    pin: String,
}

impl Lab {
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::create(dir.path()).unwrap();
        let cfg = Config {
            kdf: ServerKdf::TEST,
            login_attempts_per_ip_minute: 100_000,
            ..Config::default()
        };
        let state = open_state(&data, cfg, Arc::new(labvault_server::clock::SystemClock)).unwrap();
        let server = start(
            "127.0.0.1:0".parse().unwrap(),
            self_signed(&data).unwrap(),
            state,
        )
        .await
        .unwrap();
        create_tenant(
            &server.state,
            NewTenant {
                slug: "lab".into(),
                name: "The lab".into(),
                plan: PlanTier::Professional,
                owner_email: "pi@lab.test".into(),
                owner_password: Secret::new(PW.into()),
            },
        )
        .await
        .unwrap();
        Lab {
            url: format!("https://127.0.0.1:{}", server.addr.port()),
            pin: server.pin.clone(),
            server,
            _dir: dir,
        }
    }

    fn client(&self) -> TenantClient {
        TenantClient::new(
            &self.url,
            Pin::parse(&self.pin).unwrap(),
            ClientOptions::default(),
        )
        .unwrap()
    }

    async fn token(&self, email: &str) -> String {
        let r = self
            .client()
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

    async fn invite(&self, email: &str, role: Role) {
        let owner = self.token("pi@lab.test").await;
        let inv = self
            .client()
            .create_invitation(
                &owner,
                &InvitationRequest {
                    email: email.into(),
                    role,
                    expires_in_hours: None,
                },
            )
            .await
            .unwrap();
        self.client()
            .accept_invitation(&AcceptInvitationRequest {
                token: inv.token,
                password: PW.into(),
            })
            .await
            .unwrap();
    }
}

/// An app state with its own vault (floor KDF) and the keyring under a test service.
fn app(tmp: &std::path::Path, service: &str) -> Option<Arc<Shared>> {
    let tokens = KeyringTokens::with_service(service);
    if let Err(e) = tokens.load("probe") {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("LABVAULT_STRICT_TESTS").is_none(),
            "no Secret Service ({e}): run under scripts/with-keyring.sh"
        );
        eprintln!("skipped: no Secret Service ({e})");
        return None;
    }
    let mut s = Shared::new(None);
    s.kdf = Some(KdfParams::FLOOR);
    s.recovery_out = Some(tmp.join("recovery.txt"));
    s.tokens = Arc::new(tokens);
    lock(&s.settings).vault_dir = Some(tmp.join("vault"));
    let s = Arc::new(s);
    ops::create(&s, PASS.into(), false, &|_| panic!("e2e file expected")).unwrap();
    Some(s)
}

fn totp(secret: &[u8]) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    labvault_server::totp::code_at(secret, now, 6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pi_connects_signs_in_with_mfa_syncs_reviews_access_and_steps_up_for_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let service = format!("org.labvault.test.app.{}", std::process::id());
    let Some(s) = app(tmp.path(), &service) else {
        return;
    };
    let lab = Lab::start().await;
    lab.invite("ann@lab.test", Role::Editor).await;
    lab.invite("bob@lab.test", Role::Viewer).await;
    let project = ops::project_create(&s, "plankton-2026").unwrap();
    let src = tmp.path().join("counts.csv");
    std::fs::write(&src, b"station,count\nA,12\n").unwrap();
    let (tx, _rx) = std::sync::mpsc::channel::<Progress>();
    let sink: ops::Sink = Arc::new(move |p| {
        let _ = tx.send(p);
    });
    ops::import_paths(
        &s,
        &project.id,
        Area::Uploads,
        vec![src.display().to_string()],
        None,
        "imp",
        sink,
    )
    .unwrap();

    // Not connected: the status says so, and sign-in names what is missing.
    let st = t::status(&s).unwrap();
    assert!(!st.connected && !st.signed_in);
    let e = t::sign_in(&s, "pi@lab.test", PW, None).await.unwrap_err();
    assert_eq!(e.code, TenantCode::NoRemote, "{e}");

    // A wrong pin and a dead address are refused before anything is stored.
    let wrong_pin = format!("sha256/{}", "A".repeat(43) + "=");
    let e = t::connect(&s, &lab.url, &wrong_pin, Some("lab"))
        .await
        .unwrap_err();
    assert_eq!(e.code, TenantCode::PinMismatch, "{e}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://{}", dead.local_addr().unwrap());
    drop(dead);
    let e = t::connect(&s, &dead_url, &lab.pin, Some("lab"))
        .await
        .unwrap_err();
    assert_eq!(e.code, TenantCode::Unreachable, "{e}");
    assert!(!t::status(&s).unwrap().connected);
    let st = t::connect(&s, &lab.url, &lab.pin, Some("lab"))
        .await
        .unwrap();
    assert!(st.connected && !st.signed_in);
    assert_eq!(st.tenant.as_deref(), Some("lab"));

    // Sign in: a wrong password is named; the right one signs in and approves the first device.
    let e = t::sign_in(&s, "pi@lab.test", "Wrong-Horse-9", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, TenantCode::InvalidCredentials, "{e}");
    let r = t::sign_in(&s, "pi@lab.test", PW, None).await.unwrap();
    assert!(r.signed_in && r.approved, "{r:?}");
    assert_eq!(r.role.as_deref(), Some("owner"));
    let st = t::status(&s).unwrap();
    assert!(st.signed_in);
    assert_eq!(st.device.as_deref(), Some("approved"));

    // The PI enrols TOTP (as the Account screen will); a change of a member's role then needs
    // a step-up, since this session's sign-in had no MFA.
    let owner = lab.token("pi@lab.test").await;
    let enrolled = lab.client().mfa_enroll(&owner).await.unwrap();
    let secret = labvault_server::totp::base32_decode(&enrolled.secret_base32).unwrap();
    let codes = lab
        .client()
        .mfa_confirm(&owner, &totp(&secret))
        .await
        .unwrap();

    // Sync: the project and its file reach the tenant; progress starts and ends.
    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let g = got.clone();
    let report = t::sync_run(
        &s,
        "sync-1",
        Arc::new(move |p: Progress| g.lock().unwrap().push(p.phase)),
    )
    .await
    .unwrap();
    assert!(report.pushed >= 2, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let phases = got.lock().unwrap().clone();
    assert_eq!(phases.first().map(String::as_str), Some("started"));
    assert_eq!(phases.last().map(String::as_str), Some("done"));
    let ps = t::sync_status(&s).unwrap();
    let p = ps.iter().find(|p| p.project_id == project.id).unwrap();
    assert!(
        p.remote && p.pending_ops == 0 && p.last_sync_at.is_some(),
        "{p:?}"
    );

    // A project kept only on the tenant (made there by an automation, say): its access comes
    // from tenant and per-project roles, not from a membership log.
    let opaque = lab.client().create_project(&owner, "opaque").await.unwrap();

    // The team matrix: three members; the synced project under its local name (the tenant
    // holds only an opaque label) with its signed membership log as the truth (the PI alone:
    // Ann's tenant role gives her nothing there), the tenant-only project by tenant roles.
    let team = t::team_view(&s, None).await.unwrap();
    assert!(team.manages);
    assert_eq!(team.stale_days, 90);
    let emails: Vec<&str> = team.members.iter().map(|m| m.email.as_str()).collect();
    for e in ["pi@lab.test", "ann@lab.test", "bob@lab.test"] {
        assert!(emails.contains(&e), "{emails:?}");
    }
    let col = team.projects.iter().find(|p| p.id == project.id).unwrap();
    assert_eq!(col.name.as_deref(), Some("plankton-2026"));
    assert!(col.shared && col.epoch == Some(1), "{col:?}");
    let col = team.projects.iter().find(|p| p.id == opaque.id).unwrap();
    assert!(col.name.is_none() && !col.shared, "{col:?}");
    let ann = team
        .members
        .iter()
        .find(|m| m.email == "ann@lab.test")
        .unwrap()
        .clone();
    let pi = team
        .members
        .iter()
        .find(|m| m.email == "pi@lab.test")
        .unwrap()
        .clone();
    assert!(pi.mfa_enrolled && !pi.admin_without_mfa, "{pi:?}");
    // A cell as the UI shows it: explicit access, else (projects without a membership log)
    // the member's lab role, which the result leaves out.
    let cell = |team: &crate::tenant_dto::Team, user: &str, project: &str| {
        let explicit = team
            .access
            .iter()
            .find(|a| a.user_id == user && a.project_id == project)
            .map(|a| (a.role.clone(), a.source.clone()));
        let shared = team.projects.iter().any(|p| p.id == project && p.shared);
        explicit.or_else(|| {
            (!shared).then(|| {
                let m = team.members.iter().find(|m| m.user_id == user).unwrap();
                (m.tenant_role.clone(), "tenant".to_string())
            })
        })
    };
    assert_eq!(cell(&team, &ann.user_id, &project.id), None);
    assert_eq!(
        cell(&team, &pi.user_id, &project.id),
        Some(("owner".into(), "membership_log".into()))
    );
    assert_eq!(
        cell(&team, &ann.user_id, &opaque.id),
        Some(("editor".into(), "tenant".into()))
    );

    // Downgrade Ann on the tenant-only project: the tenant asks for a step-up; a wrong code is
    // refused, the right one (a recovery code here: a TOTP code may not be reused within its
    // step) lets the same action through.
    let e = t::set_project_role(&s, &opaque.id, &ann.user_id, "viewer")
        .await
        .unwrap_err();
    assert_eq!(e.code, TenantCode::MfaRequired, "{e}");
    let e = t::step_up(&s, "000000").await.unwrap_err();
    assert_eq!(e.code, TenantCode::InvalidMfaCode, "{e}");
    let e = t::set_project_role(&s, &opaque.id, &ann.user_id, "superuser")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    t::step_up(&s, &codes.recovery_codes[0]).await.unwrap();
    t::set_project_role(&s, &opaque.id, &ann.user_id, "viewer")
        .await
        .unwrap();
    let team = t::team_view(&s, Some(30)).await.unwrap();
    assert_eq!(team.stale_days, 30);
    assert_eq!(
        cell(&team, &ann.user_id, &opaque.id),
        Some(("viewer".into(), "project".into()))
    );
    // Giving Ann access to the synced project means adding her to its signed log, which needs
    // her identity: she never signed in from a device, so the tenant has none to seal to.
    let e = t::set_project_role(&s, &project.id, &ann.user_id, "editor")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");
    // Back to her tenant role on the tenant-only project.
    assert_eq!(
        t::remove_project_access(&s, &opaque.id, &ann.user_id)
            .await
            .unwrap(),
        None
    );
    let team = t::team_view(&s, Some(30)).await.unwrap();
    assert_eq!(
        cell(&team, &ann.user_id, &opaque.id),
        Some(("editor".into(), "tenant".into()))
    );

    // Invitations: created with a role (the token only in the result), listed, revoked.
    let sent = t::invite(&s, "newcomer@lab.test", "viewer", Some(24))
        .await
        .unwrap();
    assert!(!sent.token.is_empty() && sent.role == "viewer");
    let e = t::invite(&s, "not-an-email", "viewer", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let e = t::invite(&s, "x@lab.test", "viewer", Some(10_000))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let team = t::team_view(&s, Some(30)).await.unwrap();
    assert!(team
        .invitations
        .iter()
        .any(|i| i.id == sent.id && i.email == "newcomer@lab.test"));
    assert!(!serde_json::to_string(&team).unwrap().contains(&sent.token));
    t::revoke_invitation(&s, &sent.id).await.unwrap();
    let team = t::team_view(&s, Some(30)).await.unwrap();
    assert!(team.invitations.is_empty(), "{:?}", team.invitations);
    // The PI's own cell on the synced project carries their identity's safety number.
    let mine = team
        .access
        .iter()
        .find(|a| a.user_id == pi.user_id && a.project_id == project.id)
        .unwrap();
    let sn = mine
        .safety_number
        .as_deref()
        .expect("a signed membership has a safety number");
    assert_eq!(sn.split(' ').count(), 6, "{sn}");
    // The Sync screen's "Members and keys" of the synced project, read from the log verified
    // on this device: the PI alone, the same safety number, key epoch 1, readable.
    let sh = t::project_sharing(&s, "plankton-2026").await.unwrap();
    assert!(sh.shared && sh.epoch == 1 && sh.locked.is_none(), "{sh:?}");
    assert_eq!(sh.members.len(), 1);
    assert!(sh.members[0].you && sh.members[0].role == "owner");
    assert_eq!(
        sh.members[0].email.as_deref(),
        Some("pi@lab.test"),
        "members are named by the tenant"
    );
    assert_eq!(sh.members[0].safety_number, sn);
    assert!(sh.log_length >= 1 && sh.last_contact_at.is_some(), "{sh:?}");
    assert!(team
        .access
        .iter()
        .filter(|a| a.source != "membership_log")
        .all(|a| a.safety_number.is_none()));
    assert!(team.access.iter().all(|a| a.source != "tenant"));

    // The review as CSV, and its sign-off in the tenant's audit trail with what it changed.
    let csv_path = tmp.path().join("review.csv");
    let n = t::access_review_export(&s, &csv_path.display().to_string(), Some(30))
        .await
        .unwrap();
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(n as usize, csv.len());
    assert!(
        csv.contains("ann@lab.test") && csv.contains(&opaque.id),
        "{csv}"
    );
    // The same review as JSON and as a workbook whose Access sheet has the CSV's rows.
    let json_path = tmp.path().join("review.json");
    t::access_review_export(&s, &json_path.display().to_string(), Some(30))
        .await
        .unwrap();
    let review: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let entries = review["entries"].as_array().unwrap().len();
    let members = review["members"].as_array().unwrap().len();
    // The CSV has one `access` row per entry and one `member` row per member.
    assert_eq!(
        entries + members + 1,
        csv.lines().count(),
        "{review}\n{csv}"
    );
    let xlsx_path = tmp.path().join("review.xlsx");
    t::access_review_export(&s, &xlsx_path.display().to_string(), Some(30))
        .await
        .unwrap();
    {
        use calamine::{Data, Reader, Xlsx};
        let mut x: Xlsx<_> = calamine::open_workbook(&xlsx_path).unwrap();
        let access = x.worksheet_range("Access").unwrap();
        assert_eq!(access.height(), entries + 1);
        assert!(access
            .rows()
            .any(|r| r[0] == Data::String("ann@lab.test".into())
                && r[1] == Data::String(opaque.id.clone())));
        assert_eq!(x.worksheet_range("Members").unwrap().height(), members + 1);
    }
    // The evidence pack carries the lab's access review while signed in.
    let pack = tmp.path().join("evidence-online");
    let ev = t::evidence_pack(
        &s,
        "plankton-2026",
        &pack.display().to_string(),
        vec![" Plankton survey ".into()],
    )
    .await
    .unwrap();
    assert!(ev.with_tenant && ev.audit_ok, "{ev:?}");
    let access = std::fs::read_to_string(pack.join("access-evidence.json")).unwrap();
    assert!(
        access.contains("\"access_review\"") && access.contains("ann@lab.test"),
        "{access}"
    );
    // The tenant's signed checkpoints of this device's chain, as synced, are in the pack.
    let audit_ev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pack.join("audit-evidence.json")).unwrap()).unwrap();
    let cps = audit_ev["signed_checkpoints"].as_array().unwrap();
    assert!(
        cps.iter().any(
            |c| c["kind"] == "device" && c["signature"].as_str().is_some_and(|s| !s.is_empty())
        ),
        "{audit_ev}"
    );
    let record = std::fs::read_to_string(pack.join("processing-record.json")).unwrap();
    assert!(record.contains("\"Plankton survey\""), "{record}");
    assert_eq!(ev.controls["partly"], 4, "{:?}", ev.controls);
    let e = t::access_review_export(&s, "relative.csv", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let change = format!("ann@lab.test on {}: editor -> viewer", opaque.id);
    t::access_review_sign_off(&s, 30, vec![change.clone()], Some("Q4 review".into()))
        .await
        .unwrap();
    let e = t::access_review_sign_off(&s, 30, vec!["bad\u{7}line".into()], None)
        .await
        .unwrap_err();
    assert_eq!(e.code, TenantCode::InvalidInput, "{e}");
    // Before the sign-off the pack had none; now its access evidence names who signed off,
    // when, and what changed (the tenant's audit event), the latest first.
    let before: serde_json::Value = serde_json::from_str(&access).unwrap();
    assert!(before["tenant"]["latest_sign_off"].is_null(), "{before}");
    let pack = tmp.path().join("evidence-signed-off");
    t::evidence_pack(&s, "plankton-2026", &pack.display().to_string(), vec![])
        .await
        .unwrap();
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pack.join("access-evidence.json")).unwrap()).unwrap();
    let latest = &after["tenant"]["latest_sign_off"];
    assert_eq!(latest["by"], "pi@lab.test", "{after}");
    assert_eq!(latest["changes"], serde_json::json!([change]), "{after}");
    assert_eq!(latest["note"], "Q4 review");
    assert_eq!(latest["stale_days"], 30);
    assert_eq!(after["tenant"]["sign_offs"].as_array().unwrap().len(), 1);
    assert!(after["tenant"]["admins_without_mfa"].is_array(), "{after}");
    let html = std::fs::read_to_string(pack.join("index.html")).unwrap();
    assert!(
        html.contains("signed off") && html.contains("by pi@lab.test, 1 change(s)"),
        "{html}"
    );

    // The lab's audit log in the app: the sign-off is there with the same filters as the
    // vault's log, the whole chain verifies on this device, and the filtered export is written.
    let f: crate::dto::AuditFilter =
        serde_json::from_value(serde_json::json!({"actionPrefix": "access_review."})).unwrap();
    let page = t::tenant_audit_page(&s, &f, None, 50).await.unwrap();
    assert!(!page.events.is_empty());
    assert!(page
        .events
        .iter()
        .all(|e| e.action.starts_with("access_review.")));
    assert!(page
        .events
        .iter()
        .any(|e| e.action == "access_review.sign_off"));
    let ver = t::tenant_audit_verify(&s).await.unwrap();
    assert!(ver.ok && ver.events_checked > 5, "{ver:?}");
    let out = tmp.path().join("lab-audit.csv");
    let x = t::tenant_audit_export(
        &s,
        &f,
        crate::dto::AuditExportFormat::Csv,
        out.to_str().unwrap(),
    )
    .await
    .unwrap();
    assert!(x.filtered && x.events == page.events.len() as u64, "{x:?}");
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("access_review.sign_off"));
    let bad: crate::dto::AuditFilter =
        serde_json::from_value(serde_json::json!({"from": "yesterday"})).unwrap();
    assert_eq!(
        t::tenant_audit_page(&s, &bad, None, 50)
            .await
            .unwrap_err()
            .code,
        labvault_sync::Code::Vault(ErrorCode::InvalidArgument)
    );
    let audit = lab
        .client()
        .audit(
            &lab.token("bob@lab.test").await,
            &AuditQuery {
                action: Some("access_review.sign_off".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(audit.is_err(), "a Viewer cannot read the tenant's audit");
    let LoginResponse::MfaRequired { mfa_token } = lab
        .client()
        .login(&LoginRequest {
            tenant: "lab".into(),
            email: "pi@lab.test".into(),
            password: PW.into(),
        })
        .await
        .unwrap()
    else {
        panic!("the PI has MFA now")
    };
    let pair = lab
        .client()
        .login_mfa(&labvault_wire::MfaLoginRequest {
            mfa_token,
            code: codes.recovery_codes[1].clone(),
        })
        .await
        .unwrap();
    let page = lab
        .client()
        .audit(
            &pair.access_token,
            &AuditQuery {
                action: Some("access_review.sign_off".into()),
                result: Some("success".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.events.len(),
        1,
        "exactly the one good sign-off succeeded"
    );
    let ev = &page.events[0];
    assert_eq!(ev.user, "pi@lab.test");
    assert!(
        ev.detail.contains(&change) && ev.detail.contains("Q4 review"),
        "{}",
        ev.detail
    );

    // Nothing the webview received holds a token: the team and status results are plain.
    let vault_id = s.vault().unwrap().vault_id().to_string();
    let token = s
        .tokens
        .load(&vault_id)
        .unwrap()
        .expect("the refresh token is in the keyring");
    let shown = serde_json::to_string(&(t::status(&s).unwrap(), team)).unwrap();
    assert!(!shown.contains(token.as_str()));

    // Locking forgets the session; after unlock it resumes from the keyring.
    assert!(s.lock_vault());
    assert!(lock(&s.session).is_none());
    ops::unlock(&s, ops::UnlockWith::Passphrase(PASS.into())).unwrap();
    assert!(t::team_view(&s, None).await.unwrap().manages);

    // Sign-out: the token leaves the keyring; team calls then say "not signed in", while the
    // local sync status keeps working (offline is normal).
    t::sign_out(&s).await.unwrap();
    assert!(s.tokens.load(&vault_id).unwrap().is_none());
    assert!(!t::status(&s).unwrap().signed_in);
    let e = t::team_view(&s, None).await.unwrap_err();
    assert_eq!(e.code, TenantCode::NotSignedIn, "{e}");
    assert!(!t::sync_status(&s).unwrap().is_empty());
    // Signed out, the evidence pack says the lab's access review is not in it.
    let pack = tmp.path().join("evidence-offline");
    let ev = t::evidence_pack(&s, "plankton-2026", &pack.display().to_string(), vec![])
        .await
        .unwrap();
    assert!(!ev.with_tenant);
    let access = std::fs::read_to_string(pack.join("access-evidence.json")).unwrap();
    assert!(access.contains("not included"), "{access}");
    // Signed out (or offline), the verified log still shows the members, by id.
    let sh = t::project_sharing(&s, "plankton-2026").await.unwrap();
    assert!(
        sh.shared && sh.members.len() == 1 && sh.members[0].email.is_none(),
        "{sh:?}"
    );
    lab.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sees_only_their_own_access_and_cannot_change_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let service = format!("org.labvault.test.app-member.{}", std::process::id());
    let Some(s) = app(tmp.path(), &service) else {
        return;
    };
    let lab = Lab::start().await;
    lab.invite("ann@lab.test", Role::Editor).await;
    let owner = lab.token("pi@lab.test").await;
    let p = lab.client().create_project(&owner, "opaque").await.unwrap();
    let members = lab.client().members(&owner).await.unwrap();
    let pi = members.iter().find(|m| m.email == "pi@lab.test").unwrap();

    t::connect(&s, &lab.url, &lab.pin, Some("lab"))
        .await
        .unwrap();
    let r = t::sign_in(&s, "ann@lab.test", PW, None).await.unwrap();
    assert!(r.signed_in && r.approved);
    let team = t::team_view(&s, None).await.unwrap();
    assert!(!team.manages);
    assert_eq!(team.members.len(), 1, "a member sees only themself");
    assert_eq!(team.members[0].email, "ann@lab.test");
    let col = team.projects.iter().find(|c| c.id == p.id).unwrap();
    assert_eq!(
        col.name, None,
        "this vault does not have the project: no name to show"
    );
    assert!(
        !team.access.iter().any(|a| a.source == "tenant"),
        "cells that follow from the lab role are left to the UI"
    );
    assert_eq!(team.members[0].tenant_role, "editor");
    let e = t::set_tenant_role(&s, &pi.id, "viewer").await.unwrap_err();
    assert_eq!(e.code, TenantCode::Forbidden, "{e}");
    let e = t::access_review_sign_off(&s, 90, vec![], None)
        .await
        .unwrap_err();
    assert_eq!(e.code, TenantCode::Forbidden, "{e}");
    let e = t::tenant_audit_page(&s, &Default::default(), None, 10)
        .await
        .unwrap_err();
    assert_eq!(
        e.code,
        TenantCode::Forbidden,
        "a member cannot read the lab's log: {e}"
    );

    // The bandwidth limit: checked, saved in the settings, shared with the engine at once.
    let e = t::set_bandwidth(&s, Some(10)).unwrap_err();
    assert_eq!(
        e.code,
        labvault_sync::Code::Vault(ErrorCode::InvalidArgument)
    );
    assert_eq!(t::set_bandwidth(&s, Some(2048)).unwrap(), Some(2048));
    assert_eq!(s.rate_limit.get(), Some(2048 * 1024));
    assert_eq!(
        t::sync_state(&s).await.unwrap().bandwidth_limit_kib,
        Some(2048)
    );
    assert_eq!(t::set_bandwidth(&s, Some(0)).unwrap(), None);
    assert_eq!(s.rate_limit.get(), None);
    assert_eq!(lock(&s.settings).bandwidth_limit_kib, None);

    // A project only on this vault is not shared, and readable.
    ops::project_create(&s, "notes").unwrap();
    let sh = t::project_sharing(&s, "notes").await.unwrap();
    assert!(
        !sh.shared && sh.members.is_empty() && sh.locked.is_none(),
        "{sh:?}"
    );
    assert_eq!(
        t::project_sharing(&s, "no-such").await.unwrap_err().code,
        labvault_sync::Code::Vault(ErrorCode::NotFound)
    );

    // Ann turns on two-factor authentication in the app: a QR code and the secret, a wrong
    // first code refused (enrolment stays pending), then the recovery codes once.
    assert!(!t::account_info(&s).await.unwrap().mfa_enrolled);
    let e = t::mfa_start(&s).await.unwrap();
    assert!(e.qr_code.starts_with("data:image/svg+xml;base64,"));
    let secret = labvault_server::totp::base32_decode(&e.secret).unwrap();
    let wrong = if totp(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let err = t::mfa_confirm(&s, wrong).await.unwrap_err();
    assert_eq!(err.code, TenantCode::InvalidMfaCode, "{err}");
    assert_eq!(
        t::mfa_confirm(&s, "12ab").await.unwrap_err().code,
        labvault_sync::Code::Vault(ErrorCode::InvalidArgument)
    );
    let codes = t::mfa_confirm(&s, &totp(&secret)).await.unwrap();
    assert_eq!(codes.len(), 10);
    assert!(t::account_info(&s).await.unwrap().mfa_enrolled);
    assert!(t::mfa_start(&s).await.is_err(), "already enrolled");

    // She changes her password: a wrong current one is refused; afterwards only the new one
    // signs in (with a code, now that MFA is on).
    let err = t::change_password(
        &s,
        "not-my-password".to_string().into(),
        "Newer-Horse-10".to_string().into(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, TenantCode::InvalidCredentials, "{err}");
    t::change_password(
        &s,
        PW.to_string().into(),
        "Newer-Horse-10".to_string().into(),
    )
    .await
    .unwrap();
    t::sign_out(&s).await.unwrap();
    let err = t::sign_in(&s, "ann@lab.test", PW, Some(&codes[0]))
        .await
        .unwrap_err();
    assert_eq!(err.code, TenantCode::InvalidCredentials, "{err}");
    let r = t::sign_in(&s, "ann@lab.test", "Newer-Horse-10", None)
        .await
        .unwrap();
    assert!(!r.signed_in && r.mfa_enrolled, "a code is asked for now");
    let r = t::sign_in(&s, "ann@lab.test", "Newer-Horse-10", Some(&codes[0]))
        .await
        .unwrap();
    assert!(r.signed_in);
    t::sign_out(&s).await.unwrap();
    lab.server.stop().await;
}

/// Waits (up to 30 s) until `f` holds; the background loop runs on its own schedule.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn import(s: &Arc<Shared>, project: &str, path: &std::path::Path, op: &str) {
    let sink: ops::Sink = Arc::new(|_| {});
    ops::import_paths(
        s,
        project,
        Area::Uploads,
        vec![path.display().to_string()],
        None,
        op,
        sink,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sync_sends_new_work_pauses_and_rides_out_the_tenant_going_away() {
    let tmp = tempfile::tempdir().unwrap();
    let service = format!("org.labvault.test.app-bg.{}", std::process::id());
    let Some(s) = app(tmp.path(), &service) else {
        return;
    };
    let lab = Lab::start().await;
    let project = ops::project_create(&s, "plankton-2026").unwrap();

    // Not signed in: nothing runs in the background.
    let st = t::sync_state(&s).await.unwrap();
    assert!(!st.active && !st.signed_in);
    assert!(lock(&s.background).is_none());
    let e = t::sync_pause(&s, true).unwrap_err();
    assert_eq!(e.code, TenantCode::NotSignedIn);

    t::connect(&s, &lab.url, &lab.pin, Some("lab"))
        .await
        .unwrap();
    t::sign_in(&s, "pi@lab.test", PW, None).await.unwrap();
    let st = t::sync_state(&s).await.unwrap();
    assert!(st.active && st.signed_in && !st.paused);
    let pending = |s: &Arc<Shared>| {
        t::sync_status(s)
            .unwrap()
            .iter()
            .map(|p| p.pending_ops + p.changed_items)
            .sum::<u64>()
    };
    eventually("the first background pass reached the tenant", || async {
        let st = t::sync_state(&s).await.unwrap();
        st.online == Some(true) && st.last_pass_at.is_some() && pending(&s) == 0
    })
    .await;

    // A new file is sent without anyone pressing "Sync now".
    let f1 = tmp.path().join("run-1.csv");
    std::fs::write(&f1, b"t,v\n0,1\n").unwrap();
    import(&s, &project.id, &f1, "i1");
    assert!(pending(&s) > 0);
    eventually("the background sent the new file", || async {
        pending(&s) == 0
    })
    .await;

    // Paused: new work waits (beyond the 2 s local check); resumed: it goes at once.
    t::sync_pause(&s, true).unwrap();
    eventually("the pause took effect", || async {
        let st = t::sync_state(&s).await.unwrap();
        st.paused && !st.running
    })
    .await;
    let f2 = tmp.path().join("run-2.csv");
    std::fs::write(&f2, b"t,v\n0,2\n").unwrap();
    import(&s, &project.id, &f2, "i2");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(pending(&s) > 0, "a paused sync sent changes");
    t::sync_pause(&s, false).unwrap();
    eventually("resuming sent what waited", || async { pending(&s) == 0 }).await;

    // The tenant goes away: the status line says offline with the reason, and the new work
    // stays pending here (nothing lost), to be sent when it is back.
    lab.server.stop().await;
    let f3 = tmp.path().join("run-3.csv");
    std::fs::write(&f3, b"t,v\n0,3\n").unwrap();
    import(&s, &project.id, &f3, "i3");
    eventually(
        "the background noticed the tenant is unreachable",
        || async {
            let st = t::sync_state(&s).await.unwrap();
            st.online == Some(false)
                && st
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == TenantCode::Unreachable)
                && st.next_try_at.is_some()
        },
    )
    .await;
    assert!(pending(&s) > 0);
    let kept = s
        .vault()
        .unwrap()
        .find_item(
            Some("plankton-2026"),
            None,
            "run-3.csv",
            &[labvault_core::ItemState::Active],
        )
        .unwrap();
    assert_eq!(kept.path, "run-3.csv");

    // Locking stops background sync and releases the engine.
    assert!(s.lock_vault());
    assert!(lock(&s.background).is_none() && lock(&s.syncer).is_none());
}
