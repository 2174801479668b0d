//! Sealed op payloads from the tenant: opened (authenticated) or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = labvault_crypto::PayloadKey::derive(
        &labvault_crypto::ProjectKey::from_bytes_for_test_vectors([3u8; 32]),
    );
    let ctx = labvault_crypto::PayloadContext {
        project_id: "p",
        item_id: "i",
        op_id: "o",
        epoch: 1,
        base_rev: 0,
    };
    let _ = key.open(&ctx, data);
});
