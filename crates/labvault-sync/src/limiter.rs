//! A bandwidth limit shared by every transfer of an engine (uploads and downloads together):
//! each request waits for its slot so that the bytes sent and received average at most the
//! limit. Virtual scheduling: a request of `n` bytes starts at the later of now and the end of
//! the previous request's slot, and its own slot lasts `n / rate`. A limit changed while a sync
//! runs applies to the next request. Requests are at most a part or a pack (8 MiB), and with a
//! limit set the engine makes them about a second's worth, so bursts stay short.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The smallest limit accepted (below it, requests would wait minutes).
pub const MIN_BYTES_PER_SEC: u64 = 64 * 1024;

/// A shared, adjustable limit (0 = none).
#[derive(Debug, Default)]
pub struct RateLimit {
    bytes_per_sec: AtomicU64,
    next_free: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// A limit of `bytes_per_sec` (`None` or 0: unlimited).
    pub fn new(bytes_per_sec: Option<u64>) -> Arc<RateLimit> {
        let l = Arc::new(RateLimit::default());
        l.set(bytes_per_sec);
        l
    }

    /// Changes the limit (`None` or 0: unlimited); below [`MIN_BYTES_PER_SEC`] it is raised.
    pub fn set(&self, bytes_per_sec: Option<u64>) {
        let v = match bytes_per_sec {
            None | Some(0) => 0,
            Some(n) => n.max(MIN_BYTES_PER_SEC),
        };
        self.bytes_per_sec.store(v, Ordering::Relaxed);
        if v == 0 {
            *self.next_free.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// The limit in bytes per second, if one is set.
    pub fn get(&self) -> Option<u64> {
        match self.bytes_per_sec.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Waits until a request of `bytes` may go.
    pub async fn acquire(&self, bytes: u64) {
        let rate = self.bytes_per_sec.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let start = {
            let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let start = next.map_or(now, |t| t.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / rate as f64));
            start
        };
        tokio::time::sleep_until(start).await;
    }

    /// The request size that keeps bursts to about a second at this limit, at most `max`.
    pub fn request_size(&self, max: u64) -> u64 {
        match self.get() {
            None => max,
            Some(rate) => rate.clamp(256 * 1024, max.max(256 * 1024)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_average_at_most_the_limit() {
        let l = RateLimit::new(Some(1 << 20));
        let t0 = Instant::now();
        // 10 MiB in 1 MiB requests at 1 MiB/s: the last one starts after 9 s.
        for _ in 0..10 {
            l.acquire(1 << 20).await;
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_millis(9100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_never_waits_and_a_change_applies_to_the_next_request() {
        let l = RateLimit::new(None);
        let t0 = Instant::now();
        for _ in 0..100 {
            l.acquire(8 << 20).await;
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        l.set(Some(4 << 20));
        l.acquire(8 << 20).await; // first one goes at once, its slot lasts 2 s
        l.acquire(1).await;
        assert!(t0.elapsed() >= Duration::from_secs(2));
        l.set(Some(1)); // raised to the minimum
        assert_eq!(l.get(), Some(MIN_BYTES_PER_SEC));
        l.set(Some(0));
        assert_eq!(l.get(), None);
        assert_eq!(l.request_size(8 << 20), 8 << 20);
        l.set(Some(1 << 20));
        assert_eq!(l.request_size(8 << 20), 1 << 20);
    }
}
