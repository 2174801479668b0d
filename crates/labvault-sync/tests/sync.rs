//! Sync tested the way sync engines are tested: devices with real vaults converge through the
//! real tenant server over TLS on 127.0.0.1 (`converge`), a hostile tenant is refused
//! (`hostile`), the tenant stores nothing it could read (`blindness`), and a deterministic
//! simulation drives the engine and the server's handlers through seeded faults (`sim`).
//! One test binary (links once).

#[path = "sync/common.rs"]
mod common;
#[path = "sync/converge.rs"]
mod converge;
