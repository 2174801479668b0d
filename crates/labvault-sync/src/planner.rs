//! The decisions of sync, as pure functions and a small state machine, so a seeded simulation
//! can drive them through every fault and replay a failure exactly.
//!
//! * [`ProjectCycle`]: what to do next for one project in a pass: pull until the feed's head
//!   is applied, stage local changes, push them (blobs first, then the ops), and after a
//!   conflict pull again (the merge rebuilds the op) before pushing once more; a transient
//!   failure ends the cycle until its retry time, a refusal stops the project.
//! * [`classify`]: what a failed tenant call means (retry later, honour `Retry-After`; stop
//!   the project; stop everything).
//! * [`backoff_ms`]: full-jitter exponential back-off, 1 s to 5 min.

use labvault_client::ClientError;
use labvault_wire::ErrorCode;

/// Smallest back-off.
pub const BACKOFF_BASE_MS: u64 = 1_000;
/// Largest back-off.
pub const BACKOFF_MAX_MS: u64 = 300_000;
/// Pull/push rounds in one pass before giving the other projects their turn.
pub const MAX_ROUNDS: u32 = 4;

/// The delay before try `attempts + 1`: uniform in `[0, min(max, base * 2^attempts)]` ("full
/// jitter", so clients that failed together do not retry together), but never earlier than the
/// server's `Retry-After`. `random` is any uniformly random number (seeded in a simulation).
pub fn backoff_ms(attempts: u32, retry_after_secs: Option<u64>, random: u64) -> u64 {
    let cap = BACKOFF_BASE_MS
        .saturating_mul(1u64 << attempts.min(16))
        .min(BACKOFF_MAX_MS);
    let jittered = random % (cap + 1);
    jittered.max(retry_after_secs.unwrap_or(0).saturating_mul(1000))
}

/// What a failed call means for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Try again later (network, overload, server fault), not before `retry_after` seconds.
    Retry {
        /// The server's `Retry-After`, if it gave one.
        retry_after: Option<u64>,
    },
    /// This project cannot sync now (no access, gone, over quota): keep local data, tell the
    /// user, go on with the others.
    StopProject(String),
    /// Nothing can sync (wrong pin, signed out, device revoked).
    Fatal(String),
}

/// Classifies a tenant error.
pub fn classify(e: &ClientError) -> Disposition {
    match e {
        ClientError::Unreachable { .. } => Disposition::Retry { retry_after: None },
        ClientError::Malformed { .. } => Disposition::Retry { retry_after: None },
        ClientError::PinMismatch { .. }
        | ClientError::InvalidPin(_)
        | ClientError::InvalidUrl(_)
        | ClientError::Tls(_) => Disposition::Fatal(e.to_string()),
        ClientError::Api {
            code,
            status,
            retry_after,
            message,
        } => match code {
            ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::RequestTimeout => {
                Disposition::Retry {
                    retry_after: *retry_after,
                }
            }
            ErrorCode::Unauthorized
            | ErrorCode::InvalidRefreshToken
            | ErrorCode::DeviceNotApproved
            | ErrorCode::TenantExpired
            | ErrorCode::MfaEnrollmentRequired => Disposition::Fatal(format!("{message} ({code})")),
            ErrorCode::Forbidden | ErrorCode::NotFound | ErrorCode::QuotaExceeded => {
                Disposition::StopProject(format!("{message} ({code})"))
            }
            _ if *status >= 500 || *status == 408 => Disposition::Retry {
                retry_after: *retry_after,
            },
            _ => Disposition::StopProject(format!("{message} ({code})")),
        },
    }
}

/// The next step of a project's cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read and apply the next page of the feed.
    Pull,
    /// Turn local changes into ops.
    Stage,
    /// Send blobs and ops.
    Push,
    /// Done for this pass.
    Finish,
    /// Done for this pass; retry at this time (ms).
    WaitUntil(i64),
    /// Sync of the project stops (the reason is shown to the user).
    Stop(String),
}

/// What a step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A page was applied; `at_head`: nothing is left to read.
    Pulled {
        /// The feed's head is applied.
        at_head: bool,
    },
    /// `n` ops staged; `more`: the batch was full.
    Staged {
        /// Ops staged.
        n: usize,
        /// More changes are waiting.
        more: bool,
    },
    /// A batch of ops was answered.
    Pushed {
        /// Ops the tenant found based on an old revision.
        conflicts: usize,
        /// More ops are waiting to be sent.
        more: bool,
    },
    /// Nothing to send.
    NothingToPush,
    /// A transient failure: try again at this time (ms).
    Transient(i64),
    /// The project cannot sync (refused data, no access, diverged feed).
    Stopped(String),
}

/// One project's pull/stage/push cycle within a pass.
#[derive(Debug, Clone)]
pub struct ProjectCycle {
    step: Step,
    rounds: u32,
}

impl Default for ProjectCycle {
    fn default() -> Self {
        ProjectCycle {
            step: Step::Pull,
            rounds: 0,
        }
    }
}

impl ProjectCycle {
    /// A cycle starting with a pull.
    pub fn new() -> ProjectCycle {
        ProjectCycle::default()
    }

    /// The step to run now.
    pub fn next(&self) -> Step {
        self.step.clone()
    }

    /// Advances on what the step found.
    pub fn observe(&mut self, seen: Seen) {
        self.step = match (&self.step, seen) {
            (_, Seen::Transient(at)) => Step::WaitUntil(at),
            (_, Seen::Stopped(why)) => Step::Stop(why),
            (Step::Pull, Seen::Pulled { at_head: false }) => Step::Pull,
            (Step::Pull, Seen::Pulled { at_head: true }) => Step::Stage,
            (Step::Stage, Seen::Staged { more: true, .. }) => Step::Stage,
            (Step::Stage, Seen::Staged { more: false, .. }) => Step::Push,
            (Step::Push, Seen::Pushed { conflicts, more }) if conflicts > 0 => {
                self.rounds += 1;
                if self.rounds < MAX_ROUNDS {
                    Step::Pull
                } else if more {
                    Step::Push
                } else {
                    Step::Finish
                }
            }
            (Step::Push, Seen::Pushed { more: true, .. }) => Step::Push,
            (Step::Push, Seen::Pushed { more: false, .. }) | (Step::Push, Seen::NothingToPush) => {
                Step::Finish
            }
            (s, other) => {
                debug_assert!(false, "unexpected {other:?} in step {s:?}");
                Step::Finish
            }
        };
    }

    /// Whether the cycle is over for this pass.
    pub fn done(&self) -> bool {
        matches!(self.step, Step::Finish | Step::WaitUntil(_) | Step::Stop(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_capped_and_honours_retry_after() {
        assert_eq!(backoff_ms(0, None, 0), 0);
        assert!(backoff_ms(0, None, u64::MAX) <= 1_000);
        assert!(backoff_ms(3, None, u64::MAX) <= 8_000);
        assert!(backoff_ms(40, None, u64::MAX) <= BACKOFF_MAX_MS);
        assert_eq!(backoff_ms(0, Some(30), 5), 30_000);
        let spread: std::collections::BTreeSet<u64> =
            (0..50u64).map(|r| backoff_ms(5, None, r * 7919)).collect();
        assert!(spread.len() > 40, "jitter spreads retries");
    }

    #[test]
    fn a_cycle_pulls_to_the_head_stages_pushes_and_pulls_again_after_a_conflict() {
        let mut c = ProjectCycle::new();
        let mut steps = vec![c.next()];
        for seen in [
            Seen::Pulled { at_head: false },
            Seen::Pulled { at_head: true },
            Seen::Staged { n: 2, more: true },
            Seen::Staged { n: 1, more: false },
            Seen::Pushed {
                conflicts: 1,
                more: false,
            },
            Seen::Pulled { at_head: true },
            Seen::Staged { n: 1, more: false },
            Seen::Pushed {
                conflicts: 0,
                more: true,
            },
            Seen::Pushed {
                conflicts: 0,
                more: false,
            },
        ] {
            c.observe(seen);
            steps.push(c.next());
        }
        use Step::*;
        assert_eq!(
            steps,
            vec![Pull, Pull, Stage, Stage, Push, Pull, Stage, Push, Push, Finish]
        );
        assert!(c.done());
    }

    #[test]
    fn conflicts_do_not_loop_forever_and_faults_end_the_cycle() {
        let mut c = ProjectCycle::new();
        for _ in 0..MAX_ROUNDS {
            c.observe(Seen::Pulled { at_head: true });
            c.observe(Seen::Staged { n: 1, more: false });
            c.observe(Seen::Pushed {
                conflicts: 1,
                more: false,
            });
        }
        assert_eq!(c.next(), Step::Finish);
        let mut c = ProjectCycle::new();
        c.observe(Seen::Transient(42));
        assert_eq!(c.next(), Step::WaitUntil(42));
        let mut c = ProjectCycle::new();
        c.observe(Seen::Stopped("refused".into()));
        assert_eq!(c.next(), Step::Stop("refused".into()));
    }

    #[test]
    fn errors_are_classified_by_code_never_by_message() {
        let api = |status: u16, code: ErrorCode, retry_after: Option<u64>| ClientError::Api {
            status,
            code,
            message: "whatever".into(),
            retry_after,
        };
        assert_eq!(
            classify(&api(429, ErrorCode::RateLimited, Some(7))),
            Disposition::Retry {
                retry_after: Some(7)
            }
        );
        assert_eq!(
            classify(&api(503, ErrorCode::Internal, None)),
            Disposition::Retry { retry_after: None }
        );
        assert!(matches!(
            classify(&api(403, ErrorCode::Forbidden, None)),
            Disposition::StopProject(_)
        ));
        assert!(matches!(
            classify(&api(507, ErrorCode::QuotaExceeded, None)),
            Disposition::StopProject(_)
        ));
        assert!(matches!(
            classify(&api(403, ErrorCode::DeviceNotApproved, None)),
            Disposition::Fatal(_)
        ));
        assert!(matches!(
            classify(&ClientError::PinMismatch {
                url: "u".into(),
                pinned: "a".into(),
                presented: "b".into()
            }),
            Disposition::Fatal(_)
        ));
        assert_eq!(
            classify(&ClientError::Unreachable {
                url: "u".into(),
                reason: "reset".into(),
                timeout: false
            }),
            Disposition::Retry { retry_after: None }
        );
    }
}
