//! The committed OpenAPI document must match the one generated from the code.

#[test]
fn committed_openapi_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let generated = labvault_server::api::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "crates/labvault-server/openapi.json is out of date with the code. Refresh it with:\n  \
         UPDATE_OPENAPI=1 cargo test -p labvault-server --test openapi\n\
         (or: cargo run -p labvault-server -- openapi > crates/labvault-server/openapi.json)"
    );
}
