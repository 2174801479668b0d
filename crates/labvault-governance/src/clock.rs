//! Injectable time source.
//!
//! Retention decisions and audit timestamps take their time from a [`Clock`] rather than calling
//! `OffsetDateTime::now_utc()` directly, so tests can jump years ahead with [`ManualClock`] and the
//! server and vault can share the exact same lifecycle code.

use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

/// A source of "now" (always UTC).
pub trait Clock: Send + Sync {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real wall clock; what production code uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; shareable between threads (behind an `Arc`).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock frozen at `start` (converted to UTC).
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start.to_offset(time::UtcOffset::UTC)),
        }
    }

    /// Jump to an absolute instant (may go backwards, to test clock skew).
    pub fn set(&self, to: OffsetDateTime) {
        *self.lock() = to.to_offset(time::UtcOffset::UTC);
    }

    /// Move forward (or backward, with a negative duration) by `by`.
    pub fn advance(&self, by: Duration) {
        let mut guard = self.lock();
        *guard += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetDateTime> {
        // A poisoned clock still holds a valid instant; keep going rather than panicking in tests.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.lock()
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(c.now(), datetime!(2026-01-01 00:00 UTC));
        c.advance(Duration::days(365 * 7));
        assert_eq!(c.now(), datetime!(2032-12-30 00:00 UTC));
        c.set(datetime!(2030-06-01 12:00 +02:00));
        assert_eq!(c.now(), datetime!(2030-06-01 10:00 UTC));
        assert_eq!(c.now().offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn system_clock_is_utc_and_recent() {
        let now = SystemClock.now();
        assert_eq!(now.offset(), time::UtcOffset::UTC);
        assert!(now.year() >= 2024);
    }
}
