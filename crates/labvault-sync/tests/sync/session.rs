//! Signing in: TOTP when enrolled, the refresh token in the OS keyring only (a real
//! Secret Service: run under `scripts/with-keyring.sh`), rotated on refresh, revoked by logout.

use std::sync::Arc;

use labvault_client::ClientError;
use labvault_sync::{KeyringTokens, LoginOutcome, Session, SyncError, TokenStore};
use labvault_wire::{ErrorCode, LoginRequest, LoginResponse};

use crate::common::{walk, Device, Tenant, PW};

fn totp_at(secret: &[u8], offset_secs: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    labvault_server::totp::code_at(secret, now + offset_secs, 6)
}

/// The keyring, or a failure under CI (a test that cannot reach it must not pass silently).
fn keyring(service: &str) -> Option<Arc<KeyringTokens>> {
    let tokens = Arc::new(KeyringTokens::with_service(service));
    match tokens.load("probe") {
        Ok(_) => Some(tokens),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none()
                    && std::env::var_os("LABVAULT_STRICT_TESTS").is_none(),
                "no Secret Service ({e}): run under scripts/with-keyring.sh"
            );
            eprintln!("skipped: no Secret Service ({e})");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_sign_in_keeps_the_token_in_the_keyring_rotates_it_and_logout_revokes_it() {
    let service = format!("org.labvault.test.session.{}", std::process::id());
    let Some(tokens) = keyring(&service) else {
        return;
    };
    let t = Tenant::start().await;
    let a = Device::new("a");
    let vault_id = a.vault.vault_id().to_string();
    let api = t.client();
    // The owner enrols TOTP.
    let req = LoginRequest {
        tenant: t.slug.clone(),
        email: t.email.clone(),
        password: PW.into(),
    };
    let LoginResponse::Ok(first) = api.login(&req).await.unwrap() else {
        panic!("no MFA yet")
    };
    let e = api.mfa_enroll(&first.access_token).await.unwrap();
    let secret = labvault_server::totp::base32_decode(&e.secret_base32).unwrap();
    api.mfa_confirm(&first.access_token, &totp_at(&secret, 0))
        .await
        .unwrap();

    let store: Arc<dyn TokenStore> = tokens.clone();
    let login = |code: Option<String>| {
        let (api, store, vault_id, slug, email) = (
            api.clone(),
            store.clone(),
            vault_id.clone(),
            t.slug.clone(),
            t.email.clone(),
        );
        async move { Session::login(api, &vault_id, store, &slug, &email, PW, code.as_deref()).await }
    };
    // Without a code: the tenant asks for one, nothing is stored.
    assert!(matches!(
        login(None).await.unwrap(),
        LoginOutcome::MfaNeeded
    ));
    assert!(tokens.load(&vault_id).unwrap().is_none());
    // A wrong code is refused by name.
    match login(Some("000000".into())).await {
        Err(SyncError::Client(ClientError::Api {
            code: ErrorCode::InvalidMfaCode,
            ..
        })) => {}
        other => panic!("a wrong TOTP code: {other:?}"),
    }
    assert!(tokens.load(&vault_id).unwrap().is_none());
    // The right one (the next step: the enrolment used this one).
    let LoginOutcome::SignedIn(s) = login(Some(totp_at(&secret, 30))).await.unwrap() else {
        panic!("signed in")
    };
    let refresh1 = tokens
        .load(&vault_id)
        .unwrap()
        .expect("the token is in the keyring");
    let me = s
        .call(|tok| {
            let c = api.clone();
            async move { c.me(&tok).await }
        })
        .await
        .unwrap();
    assert_eq!(me.email, t.email);
    // Never in a file: not in the vault, not in the working directory of the test.
    for f in walk(a.dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(refresh1.len())
                .any(|w| w == refresh1.as_bytes()),
            "the refresh token is in {}",
            f.display()
        );
    }

    // A new process resumes from the keyring: its first call refreshes, and the tenant's
    // rotation replaces the stored token.
    drop(s);
    let s = Session::resume(api.clone(), &vault_id, store.clone()).unwrap();
    s.call(|tok| {
        let c = api.clone();
        async move { c.me(&tok).await }
    })
    .await
    .unwrap();
    let refresh2 = tokens.load(&vault_id).unwrap().unwrap();
    assert_ne!(*refresh1, *refresh2, "the refresh token was rotated");

    // Logout revokes the session on the tenant and removes the token.
    s.logout().await.unwrap();
    assert!(tokens.load(&vault_id).unwrap().is_none());
    match api.refresh(&refresh2).await {
        Err(ClientError::Api { code, .. }) => assert!(
            matches!(
                code,
                ErrorCode::InvalidRefreshToken | ErrorCode::Unauthorized
            ),
            "{code:?}"
        ),
        other => panic!("a revoked token still refreshes: {other:?}"),
    }
    match Session::resume(api.clone(), &vault_id, store) {
        Err(SyncError::NotSignedIn(_)) => {}
        other => panic!("{other:?}"),
    }
}
