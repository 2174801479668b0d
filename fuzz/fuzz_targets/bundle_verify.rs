//! A `.tar` project bundle as anyone may hand it over (`labvault verify-bundle`): any bytes as
//! the archive, verified in one pass, plain or (when it starts like one) as an age file opened
//! with an X25519 identity (a passphrase would make every input pay for scrypt).
#![no_main]
use std::path::Path;
use std::str::FromStr;

use labvault_core::bundle::verify_bundle_stream;
use labvault_core::bundle_seal::BundleKey;
use libfuzzer_sys::fuzz_target;

/// A key for fuzzing only (it protects nothing).
const IDENTITY: &str = "AGE-SECRET-KEY-18HZ7MTSQ5S5W9KG6Y7NGCRL8559YPSQ5LW3AKZYT0AQDPHZKNF7SSCDPF7";

fuzz_target!(|data: &[u8]| {
    let key = BundleKey::Identities(vec![age::x25519::Identity::from_str(IDENTITY).unwrap()]);
    let _ = verify_bundle_stream(data, Path::new("fuzz.tar"), Some(&key), &mut |_| {});
});
