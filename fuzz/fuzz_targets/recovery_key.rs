//! Recovery-key parsing (typed by people: any text).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(k) = labvault_crypto::RecoveryKey::parse(s) {
            // What parses prints back to a form that parses to the same key.
            let again = labvault_crypto::RecoveryKey::parse(&k.to_display_string()).unwrap();
            assert_eq!(*again.to_display_string(), *k.to_display_string());
        }
    }
});
