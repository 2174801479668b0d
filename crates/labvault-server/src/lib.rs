//! Reference LabVault tenant server: identity, MFA, roles, access review, audit and
//! retention policies over HTTPS (TLS 1.3 only). It stores ciphertext only: project names
//! and, later, file blobs arrive encrypted by the desktop client.
//!
//! Layers: [`api`] (axum handlers, one route table that also feeds OpenAPI), [`app`]
//! (state, authentication, audit helpers), [`store`] (storage trait + SQLite), [`server`]
//! (TLS, accept loop, bootstrap, trial sweeper).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod chain;
pub mod clock;
pub mod error;
pub mod jwt;
pub mod secrets;
pub mod server;
pub mod store;
pub mod totp;

pub use app::{AppState, Config};
pub use server::{
    create_tenant, open_state, start, sweep_trials, DataDir, NewTenant, RunningServer,
};
