//! "Remember on this device" against the real OS keyring (Secret Service). CI runs the suite
//! inside `dbus-run-session` with an unlocked gnome-keyring; without one, the test checks the
//! clear `keyring_unavailable` path instead (and says so), unless LABVAULT_REQUIRE_KEYRING=1.

mod common;

use common::*;
use labvault_core::{ErrorCode, Unlock, Vault};

#[test]
fn remember_unlock_forget_roundtrip() {
    // A private namespace so the test never touches a user's real entries.
    std::env::set_var("LABVAULT_KEYRING_SERVICE", "org.labvault.test.core");
    let (_t, dir, v, _) = new_vault();
    // Asked of the keyring itself: with one, it answers and does not remember this vault yet.
    let before = Vault::keyring_status(Some(v.vault_id()));
    match v.remember_on_device() {
        Ok(()) => {
            assert!(before.available && !before.remembers, "{before:?}");
            let after = Vault::keyring_status(Some(v.vault_id()));
            assert!(after.available && after.remembers, "{after:?}");
        }
        Err(e) if e.code() == ErrorCode::KeyringUnavailable => {
            assert!(!before.available && before.problem.is_some(), "{before:?}");
            assert!(
                std::env::var("LABVAULT_REQUIRE_KEYRING").as_deref() != Ok("1"),
                "keyring required but unavailable: {e}"
            );
            drop(v);
            // The passphrase path still works and nothing was written to disk instead.
            let e = Vault::unlock(&dir, Unlock::Keyring, opts()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::KeyringUnavailable);
            unlock(&dir);
            eprintln!("SKIPPED keyring round trip: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    }
    let id = v.vault_id().to_string();
    drop(v);
    let v = Vault::unlock(&dir, Unlock::Keyring, opts()).unwrap();
    assert_eq!(v.vault_id(), id);
    drop(v);
    // A root key rotation replaces the remembered key: the keyring still unlocks.
    let (v, _) = Vault::rotate_root_key_at(&dir, &pass(), opts()).unwrap();
    drop(v);
    let v = Vault::unlock(&dir, Unlock::Keyring, opts()).unwrap();
    assert_eq!(v.vault_id(), id);
    drop(v);
    assert!(Vault::forget_on_device(&dir, &opts()).unwrap());
    assert!(
        !Vault::forget_on_device(&dir, &opts()).unwrap(),
        "forget is idempotent"
    );
    let e = Vault::unlock(&dir, Unlock::Keyring, opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::KeyringUnavailable);
    // Both forgets (done while locked) reach the audit chain at the next unlock, once each.
    let v = unlock(&dir);
    let mut forgets = Vec::new();
    v.audit_for_each(&Default::default(), |ev| {
        if ev.action.as_str() == "auth.forget" {
            forgets.push(ev.detail);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(forgets.len(), 2, "{forgets:?}");
    assert!(forgets[0].starts_with("removed") && forgets[1].starts_with("no_entry"));
}
