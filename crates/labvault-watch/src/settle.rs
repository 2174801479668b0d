//! When is a file an instrument writes complete? A pure state machine (no clock, no file
//! system): it is fed what a scan saw and the close-after-write events, and answers which
//! files are ready. A file is ready when its size and modification time stayed the same for
//! the settle time, or when it was closed after writing and has not changed since. Time is
//! milliseconds on a monotonic clock the caller owns, so tests replay it exactly.

use labvault_core::watches::Stamp;
use std::collections::HashMap;

/// A file not yet complete.
#[derive(Clone, Debug)]
struct Candidate {
    stamp: Stamp,
    /// When it was first seen with this stamp.
    since_ms: u64,
    /// Closed after writing while it had this stamp.
    closed: bool,
}

/// What [`Settler::observe`] found about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Complete: import it.
    Ready(Stamp),
    /// Seen for the first time; waiting for it to settle.
    New,
    /// It changed since the last scan (still being written).
    Growing,
    /// Unchanged, but not for long enough yet.
    Settling,
}

/// Files waiting to be complete, per path.
#[derive(Debug)]
pub struct Settler {
    settle_ms: u64,
    pending: HashMap<String, Candidate>,
}

impl Settler {
    /// Files must stay unchanged `settle_ms` (unless closed after writing).
    pub fn new(settle_ms: u64) -> Settler {
        Settler {
            settle_ms,
            pending: HashMap::new(),
        }
    }

    /// Changes the settle time (a watch's settings changed); waiting files keep their clocks.
    pub fn set_settle_ms(&mut self, settle_ms: u64) {
        self.settle_ms = settle_ms;
    }

    /// Files still waiting.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// A scan at `now_ms` saw `rel` with `stamp`.
    pub fn observe(&mut self, rel: &str, stamp: Stamp, now_ms: u64) -> Verdict {
        match self.pending.get_mut(rel) {
            None => {
                self.pending.insert(
                    rel.to_string(),
                    Candidate {
                        stamp,
                        since_ms: now_ms,
                        closed: false,
                    },
                );
                if self.settle_ms == 0 {
                    self.pending.remove(rel);
                    return Verdict::Ready(stamp);
                }
                Verdict::New
            }
            Some(c) if c.stamp != stamp => {
                *c = Candidate {
                    stamp,
                    since_ms: now_ms,
                    closed: false,
                };
                Verdict::Growing
            }
            Some(c) => {
                if c.closed || now_ms.saturating_sub(c.since_ms) >= self.settle_ms {
                    self.pending.remove(rel);
                    Verdict::Ready(stamp)
                } else {
                    Verdict::Settling
                }
            }
        }
    }

    /// `rel` was closed after writing, and had `stamp` afterwards: once a scan sees it
    /// unchanged, it is ready without waiting for the settle time.
    pub fn closed(&mut self, rel: &str, stamp: Stamp, now_ms: u64) {
        let c = self
            .pending
            .entry(rel.to_string())
            .or_insert_with(|| Candidate {
                stamp,
                since_ms: now_ms,
                closed: false,
            });
        if c.stamp != stamp {
            c.stamp = stamp;
            c.since_ms = now_ms;
        }
        c.closed = true;
    }

    /// Forgets `rel` (it vanished, was excluded, or was imported by another way).
    pub fn forget(&mut self, rel: &str) {
        self.pending.remove(rel);
    }

    /// Keeps only the files `keep` says are still there.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.pending.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(size: u64, mtime_ns: i64) -> Stamp {
        Stamp { size, mtime_ns }
    }

    #[test]
    fn a_growing_file_waits_until_it_stays_unchanged_for_the_settle_time() {
        let mut s = Settler::new(1000);
        assert_eq!(s.observe("a", st(10, 1), 0), Verdict::New);
        assert_eq!(s.observe("a", st(20, 2), 600), Verdict::Growing);
        assert_eq!(s.observe("a", st(20, 2), 1500), Verdict::Settling);
        // 1000 ms after it last changed (at 600), not after it was first seen.
        assert_eq!(s.observe("a", st(20, 2), 1600), Verdict::Ready(st(20, 2)));
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn a_file_closed_after_writing_is_ready_at_the_next_unchanged_scan() {
        let mut s = Settler::new(60_000);
        assert_eq!(s.observe("a", st(10, 1), 0), Verdict::New);
        s.closed("a", st(12, 2), 10);
        assert_eq!(s.observe("a", st(12, 2), 20), Verdict::Ready(st(12, 2)));
        // Reopened and written again after the close: the close no longer counts.
        s.closed("b", st(5, 1), 0);
        assert_eq!(s.observe("b", st(9, 3), 5), Verdict::Growing);
        assert_eq!(s.observe("b", st(9, 3), 50), Verdict::Settling);
    }

    #[test]
    fn same_size_but_a_new_modification_time_restarts_the_clock() {
        let mut s = Settler::new(100);
        s.observe("a", st(10, 1), 0);
        assert_eq!(s.observe("a", st(10, 2), 90), Verdict::Growing);
        assert_eq!(s.observe("a", st(10, 2), 150), Verdict::Settling);
        assert_eq!(s.observe("a", st(10, 2), 190), Verdict::Ready(st(10, 2)));
    }

    #[test]
    fn forgotten_files_start_over() {
        let mut s = Settler::new(100);
        s.observe("a", st(1, 1), 0);
        s.retain(|k| k != "a");
        assert_eq!(s.observe("a", st(1, 1), 500), Verdict::New);
        s.forget("a");
        assert_eq!(s.waiting(), 0);
    }
}
