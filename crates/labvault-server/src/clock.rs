//! Injectable time, shared with the vault through `labvault_governance::clock`, so token
//! expiry, lockout, trial expiry and staleness are testable without sleeping.

pub use labvault_governance::clock::{Clock, ManualClock, SystemClock};
use time::OffsetDateTime;

/// Unix seconds of the clock's now; the server stores times as integers (portable to PostgreSQL).
pub fn now_ts(c: &dyn Clock) -> i64 {
    c.now().unix_timestamp()
}

/// RFC 3339 UTC rendering used on the wire.
pub fn rfc3339(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

/// Parses RFC 3339 into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
