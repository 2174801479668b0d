//! Audit export files as an auditor receives them (`labvault audit verify --file`): CSV or
//! JSON Lines of any content, verified streaming.
#![no_main]
use labvault_governance::audit::VerifyMode;
use labvault_governance::export::verify_export;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for mode in [VerifyMode::Complete, VerifyMode::Segments] {
        let _ = verify_export(std::io::BufReader::new(data), mode, &[], |_| {});
    }
});
