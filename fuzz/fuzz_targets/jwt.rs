//! Access tokens: any text as a bearer token, verified against the server's key.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = labvault_server::jwt::JwtKey::new(vec![5u8; 32]);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = key.verify(s, labvault_server::jwt::AUD_ACCESS, 1_800_000_000);
    }
});
