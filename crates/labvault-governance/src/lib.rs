//! Audit hash chain and retention policy model shared by the vault (`labvault-core`) and the tenant
//! server (`labvault-server`).
//!
//! Pure logic: no storage, no network, no global clock. Both sides record the same [`audit::AuditEvent`]
//! format, chain it with the same hash, export and re-verify it with the same code, and evaluate the same
//! [`retention::RetentionPolicy`], so an auditor can check a vault export and a server export the same way.
//!
//! * [`clock`]: injectable time source, so lifecycle tests can move years forward without sleeping.
//! * [`audit`]: event model, canonical encoding v1, chain hash, streaming chain verifier, checkpoints.
//! * [`export`]: CSV (RFC 4180, formula-injection guarded, reversible) and JSON Lines writers and readers,
//!   and the offline verifier for exported files.
//! * [`retention`]: data types, plan tiers, policies with validation and overrides, lifecycle as pure functions.
#![forbid(unsafe_code)]

pub mod audit;
pub mod clock;
pub mod export;
pub mod retention;

/// The `time` crate this API uses, so callers name the same `OffsetDateTime`.
pub use time;

pub use audit::{
    actions, Action, AuditEvent, ChainError, ChainErrorKind, ChainReport, ChainVerifier,
    Checkpoint, EventDraft, Outcome, VerifyMode,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use retention::{
    DataType, ItemLifecycle, LifecycleState, LifecycleStatus, LifecycleStep, PlanTier, PolicyError,
    PolicyOverride, RetentionPeriod, RetentionPolicy,
};
