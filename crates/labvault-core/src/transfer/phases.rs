//! Where import time goes, for the import benchmark's per-file budget. Only with the
//! `bench-phases` feature: without it a [`Timer`] is empty and every call compiles to nothing,
//! so the product's hot path carries no clock reads and no shared counters.

/// A phase of the import protocol, in protocol order.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "bench-phases"), allow(dead_code))]
pub(crate) enum Phase {
    Plan,
    OpenCreate,
    Encrypt,
    SizeCheck,
    WaitEncryption,
    SyncData,
    Rename,
    DirFsync,
    WrapKeys,
    CatalogRows,
    CatalogTotal,
    Report,
}

#[cfg(feature = "bench-phases")]
mod imp {
    use super::Phase;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const NAMES: [&str; 12] = [
        "plan",
        "open+create",
        "encrypt (read, hash, seal, write)",
        "size check",
        "wait for encryption (not overlapped)",
        "sync data",
        "rename",
        "dir fsync",
        "wrap data keys",
        "catalog rows",
        "catalog total (rows + audit + commit)",
        "report",
    ];
    static NS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];

    pub(crate) struct Timer(Instant);

    pub(crate) fn start() -> Timer {
        Timer(Instant::now())
    }

    impl Timer {
        pub(crate) fn stop(self, p: Phase) {
            NS[p as usize].fetch_add(self.0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// Import time per phase (summed over threads) since the last call, and resets it.
    pub fn take_import_phase_times() -> Vec<(&'static str, Duration)> {
        NAMES
            .iter()
            .zip(&NS)
            .map(|(n, a)| (*n, Duration::from_nanos(a.swap(0, Ordering::Relaxed))))
            .collect()
    }
}

#[cfg(not(feature = "bench-phases"))]
mod imp {
    use super::Phase;

    pub(crate) struct Timer;

    #[inline(always)]
    pub(crate) fn start() -> Timer {
        Timer
    }

    impl Timer {
        #[inline(always)]
        pub(crate) fn stop(self, _: Phase) {}
    }
}

pub(crate) use imp::start;
#[cfg(feature = "bench-phases")]
pub use imp::take_import_phase_times;
