//! Name normalisation: project names, logical paths, OS file names (any bytes).
#![no_main]
use labvault_core::names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use std::os::unix::ffi::OsStrExt;
    let _ = names::component_from_os(std::ffi::OsStr::from_bytes(data));
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = names::validate_component(s);
        let _ = names::validate_project_name(s);
        if let Ok(p) = names::validate_logical_path(s) {
            assert!(!p.starts_with('/') && p.len() <= names::MAX_PATH_BYTES);
            assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
        }
    }
});
