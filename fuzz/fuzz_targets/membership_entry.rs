//! Membership log entries of shared projects: strict parsing of what the tenant relays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = labvault_crypto::LogEntry::from_bytes(data) {
        // What parses is exactly its own encoding (no second form of one entry).
        assert_eq!(e.to_bytes(), data);
        let _ = e.hash();
    }
});
