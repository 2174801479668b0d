//! The encrypted local vault.
#![forbid(unsafe_code)]
