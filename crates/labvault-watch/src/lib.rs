//! Instrument folder watches: files an instrument writes into a folder are imported into the
//! vault once complete (unchanged for the watch's settle time, or closed after writing),
//! exactly once across restarts and crashes (the vault journals each file in the transaction
//! that commits it), and optionally deleted from the folder after a verified import.
//!
//! Modules, lowest first: `settle` (a pure state machine: when is a file complete), `scan`
//! (one look at a folder), `board` (state and activity shown to people), `passes` (one pass
//! over every watch: scan, settle, import, delete; driven with an explicit time), `runner` (the
//! thread with file-system notifications that runs the passes). Never touches the network.
#![forbid(unsafe_code)]

pub mod board;
pub mod passes;
pub mod runner;
pub mod scan;
pub mod settle;

pub use board::{Activity, ActivityKind, ActivitySink, Board, WatchState, WatchStatus};
pub use passes::{PassReport, Passes};
pub use runner::Runner;

#[cfg(test)]
mod tests;
