//! Validation of project names and logical item paths.
//!
//! Names reach the catalog only, never the file system (blob file names are random ids), but they
//! come back out on export, so anything that could escape the destination directory (`..`,
//! absolute paths, NUL) or that some file systems cannot hold (> 255 bytes per component) is
//! refused up front with `invalid_name`, before anything is changed.

use crate::error::{Error, Result};
use std::ffi::OsStr;

/// Longest accepted name component, in bytes (the common file-system limit).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest accepted logical path, in bytes (PATH_MAX on Linux).
pub const MAX_PATH_BYTES: usize = 4096;

/// At most `max` bytes of `s`, cut at a character boundary (a byte index inside a multi-byte
/// character would panic).
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn invalid(name: &str, reason: &str) -> Error {
    Error::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks one path component (a file or directory name).
pub fn validate_component(c: &str) -> Result<()> {
    if c.is_empty() {
        return Err(invalid(c, "empty name"));
    }
    if c == "." || c == ".." {
        return Err(invalid(c, "`.` and `..` are not allowed"));
    }
    if c.contains('/') {
        return Err(invalid(c, "`/` is not allowed in a name"));
    }
    if c.contains('\\') {
        return Err(invalid(c, "`\\` is not allowed in a name"));
    }
    if c.contains('\0') {
        return Err(invalid(c, "NUL is not allowed in a name"));
    }
    if c.chars().any(|ch| ch.is_control()) {
        return Err(invalid(c, "control characters are not allowed in a name"));
    }
    if c.len() > MAX_COMPONENT_BYTES {
        return Err(invalid(
            c,
            &format!(
                "name is {} bytes long, the limit is {MAX_COMPONENT_BYTES}",
                c.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a project name: one component, not only whitespace.
pub fn validate_project_name(name: &str) -> Result<()> {
    validate_component(name)?;
    if name.trim().is_empty() {
        return Err(invalid(name, "project name is blank"));
    }
    Ok(())
}

/// Normalises and checks a logical path (`a/b/c.csv`): relative, `/`-separated, every component
/// valid. Leading/trailing slashes and empty components from `//` are refused rather than
/// silently fixed, so what the user typed is what gets stored.
pub fn validate_logical_path(path: &str) -> Result<String> {
    if path.is_empty() {
        return Err(invalid(path, "empty path"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(invalid(
            prefix(path, 64),
            &format!("path is longer than {MAX_PATH_BYTES} bytes"),
        ));
    }
    if path.starts_with('/') {
        return Err(invalid(path, "absolute paths are not allowed"));
    }
    for c in path.split('/') {
        validate_component(c).map_err(|e| match e {
            Error::InvalidName { reason, .. } => invalid(path, &reason),
            other => other,
        })?;
    }
    Ok(path.to_string())
}

/// Converts an OS file name to a checked component; non-UTF-8 names are refused (the vault
/// stores names as UTF-8 and must be able to give back exactly what it took in).
pub fn component_from_os(name: &OsStr) -> Result<String> {
    match name.to_str() {
        Some(s) => {
            validate_component(s)?;
            Ok(s.to_string())
        }
        None => Err(invalid(
            &name.to_string_lossy(),
            "file name is not valid UTF-8",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes_and_oddities() {
        for bad in [
            "",
            ".",
            "..",
            "a/..",
            "../x",
            "/abs",
            "a//b",
            "a/",
            "nul\0byte",
            "back\\slash",
        ] {
            assert!(validate_logical_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_logical_path(&"x".repeat(256)).is_err());
        assert!(validate_logical_path(&"x".repeat(255)).is_ok());
        assert_eq!(validate_logical_path("a/b c/d.csv").unwrap(), "a/b c/d.csv");
        assert!(validate_project_name("   ").is_err());
        assert!(validate_project_name("a/b").is_err());
        assert!(validate_project_name("Cell imaging 2026").is_ok());
    }

    #[test]
    fn long_names_in_any_script_are_refused_without_a_panic() {
        // 4097 bytes of two-, three- and four-byte characters: the cut for the message used to
        // land inside a character and panic.
        for ch in ["é", "日", "🧪"] {
            let long = ch.repeat(4097 / ch.len() + 1);
            let e = validate_logical_path(&long).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidName);
            let long_component = ch.repeat(300);
            assert!(validate_component(&long_component).is_err());
            assert!(validate_project_name(&long_component).is_err());
        }
        assert_eq!(prefix("aé", 2), "a");
        assert_eq!(prefix("abc", 64), "abc");
    }

    proptest::proptest! {
        /// Every name function takes any string (and any bytes as an OS name) without a panic,
        /// and what it accepts stays within the limits and free of what it refuses.
        #[test]
        fn name_functions_never_panic(s in "\\PC{0,300}|[a-zé日🧪/\\.\\x00\\n]{0,5000}", raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(p) = validate_logical_path(&s) {
                proptest::prop_assert!(p.len() <= MAX_PATH_BYTES && !p.starts_with('/'));
                proptest::prop_assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && c.len() <= MAX_COMPONENT_BYTES));
            }
            let _ = validate_component(&s);
            let _ = validate_project_name(&s);
            use std::os::unix::ffi::OsStrExt;
            let _ = component_from_os(OsStr::from_bytes(&raw));
            let _ = prefix(&s, 64);
        }
    }

    #[test]
    fn non_utf8_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let e = component_from_os(OsStr::from_bytes(b"bad\xff.csv")).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidName);
    }
}
