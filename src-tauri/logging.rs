//! Logging to a rolling file in the app's log directory (one file per day, two weeks kept).
//!
//! What is logged: command names, item and vault ids, error codes and counts. Never
//! passphrases, keys, recovery keys, file names or project names (those are user data): the
//! shell only logs through `ops::logged` and explicit id/code fields.

use std::path::Path;
use std::sync::OnceLock;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;

/// Keeps the background writer alive for the whole process (dropping it flushes and stops it).
static GUARD: OnceLock<WorkerGuard> = OnceLock::new();

/// Log files kept before the oldest is deleted.
pub const MAX_LOG_FILES: usize = 14;

/// Installs the global subscriber writing to `<dir>/labvault.<date>.log`. `LABVAULT_LOG`
/// overrides the filter (default `info`). A second call, or an unwritable directory, leaves
/// logging as it is: the app works without a log.
pub fn init(dir: &Path) {
    // The appender prunes old files at start: the directory must exist first (else it prints
    // "Error reading the log directory" on the first launch).
    let _ = std::fs::create_dir_all(dir);
    let appender = match RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("labvault")
        .filename_suffix("log")
        .max_log_files(MAX_LOG_FILES)
        .build(dir)
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("LabVault: cannot write logs to {}: {e}", dir.display());
            return;
        }
    };
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("LABVAULT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ok = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .is_ok();
    if ok {
        let _ = GUARD.set(guard);
    }
}
