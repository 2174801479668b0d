//! Sync tested the way sync engines are tested: devices with real vaults converge through the
//! real tenant server over TLS on 127.0.0.1 (`converge`), a hostile tenant is refused
//! (`hostile`), sessions sign in with TOTP and keep their token in the OS keyring only
//! (`session`), projects are shared between users with keys the tenant never sees
//! (`sharing`), the tenant stores nothing it could read (`blindness`), its backups restore
//! under active devices (`backup`), and a deterministic
//! simulation drives the engine and the server's handlers through seeded faults (`sim`).
//! One test binary (links once).

#[path = "sync/backup.rs"]
mod backup;
#[path = "sync/blindness.rs"]
mod blindness;
#[path = "sync/common.rs"]
mod common;
#[path = "sync/converge.rs"]
mod converge;
#[path = "sync/hostile.rs"]
mod hostile;
#[path = "sync/session.rs"]
mod session;
#[path = "sync/sharing.rs"]
mod sharing;
#[path = "sync/sim.rs"]
mod sim;
