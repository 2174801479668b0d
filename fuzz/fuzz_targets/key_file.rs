//! The key file (`vault.key`, JSON): parsed and bounds-checked before any KDF work.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = labvault_crypto::KeyFile::from_bytes(data) {
        // Whatever parses must serialize again and check its KDF bounds without panicking.
        let _ = kf.to_bytes();
        let _ = kf.kdf_params().check_bounds();
    }
});
