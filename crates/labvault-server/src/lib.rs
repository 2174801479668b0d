//! Reference LabVault tenant server: identity, MFA, roles, access review, audit, retention
//! policies and end-to-end encrypted file sync over HTTPS (TLS 1.3 only). It stores
//! ciphertext only: file blobs and item states arrive sealed by the devices
//! (`docs/sync-protocol.md`, "What the server sees").
//!
//! Layers: [`alerts`] (security alerts from the audit trail, webhooks), [`api`] (axum handlers, one route table that also feeds OpenAPI), [`app`]
//! (state, authentication, audit helpers), [`store`] (storage traits + SQLite + files),
//! [`server`] (TLS, accept loop, bootstrap, sweeper), [`conn_guard`] (connection limits and
//! idle timeouts), [`gc`] (removal of erased blobs), [`backup`] (backups and restores), [`keys`] (the server's keys, wrapped under a
//! key-encryption key in an HSM or a key file).
#![forbid(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod app;
pub mod backup;
pub mod chain;
pub mod clock;
pub mod conn_guard;
pub mod error;
pub mod gc;
pub mod jwt;
pub mod keys;
pub mod log_file;
pub mod secrets;
pub mod server;
pub mod store;
pub mod totp;

pub use app::{AppState, Config};
pub use keys::KekChoice;
pub use server::{
    create_tenant, open_state, open_state_with, start, sweep_trials, DataDir, NewTenant,
    RunningServer,
};
