//! Audit chain and retention policy model shared by the vault and the tenant server.
#![forbid(unsafe_code)]
