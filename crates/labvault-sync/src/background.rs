//! Sync in the background while the desktop app is open: a pass whenever something changed
//! here (checked every 2 s) or on the tenant (long poll), when a backed-off change may be
//! retried, or when asked ([`Background::kick`]); paused and resumed by the person; stopped
//! when the vault locks.
//!
//! One engine serves the background loop and the "Sync now" button ([`Syncer::run`]): it holds
//! the vault's sync lock, so two passes never overlap. Offline is normal: an unreachable tenant
//! is retried with a growing delay (5 s doubling to 5 minutes), and every other failure waits
//! for the next change or kick, with its code kept for the status line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use labvault_core::Vault;
use labvault_wire::ChangesQuery;
use tokio::sync::Notify;

use crate::codes::{Code, TenantCode};
use crate::engine::{PassReport, Progress, SyncEngine};
use crate::session::Session;
use crate::{Result, SyncError};

/// Where the background sync stands, for a status line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackgroundState {
    /// The person paused it.
    pub paused: bool,
    /// A pass is running.
    pub running: bool,
    /// Whether the last attempt reached the tenant (`None` before the first).
    pub online: Option<bool>,
    /// When the last pass ended (ms since the epoch).
    pub last_pass_at: Option<i64>,
    /// What the last successful pass did.
    pub last_report: Option<PassReport>,
    /// Why the last pass failed, if it did: code and message.
    pub last_error: Option<(Code, String)>,
    /// When an unreachable tenant is tried again (ms since the epoch).
    pub next_try_at: Option<i64>,
}

type Sink = Arc<dyn Fn(Progress) + Send + Sync>;

/// The engine shared by background passes and passes asked for by the person.
pub struct Syncer {
    engine: tokio::sync::Mutex<SyncEngine>,
    sink: Arc<Mutex<Option<Sink>>>,
    state: Arc<Mutex<BackgroundState>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms(vault: &Vault) -> i64 {
    (vault.now().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Syncer {
    /// Wraps `engine` (its progress goes to the sink of the pass running at the time).
    pub fn new(engine: SyncEngine) -> Arc<Syncer> {
        let sink: Arc<Mutex<Option<Sink>>> = Arc::new(Mutex::new(None));
        let to = sink.clone();
        let engine = engine.with_progress(move |p| {
            if let Some(f) = lock(&to).clone() {
                f(p)
            }
        });
        Arc::new(Syncer {
            engine: tokio::sync::Mutex::new(engine),
            sink,
            state: Arc::new(Mutex::new(BackgroundState::default())),
        })
    }

    /// One pass, its progress to `progress`; waits for a running pass to end first.
    pub async fn run(&self, progress: Option<Sink>) -> Result<PassReport> {
        let engine = self.engine.lock().await;
        *lock(&self.sink) = progress;
        lock(&self.state).running = true;
        let r = engine.pass(None).await;
        *lock(&self.sink) = None;
        let vault = engine.vault().clone();
        drop(engine);
        self.record(&vault, &r);
        r
    }

    fn record(&self, vault: &Vault, r: &Result<PassReport>) {
        let mut st = lock(&self.state);
        st.running = false;
        st.last_pass_at = Some(now_ms(vault));
        match r {
            Ok(rep) => {
                st.online = Some(true);
                st.last_report = Some(rep.clone());
                st.last_error = None;
                st.next_try_at = None;
            }
            Err(e) => {
                let code = e.stable_code();
                st.online = Some(code != TenantCode::Unreachable);
                st.last_error = Some((code, e.to_string()));
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> BackgroundState {
        lock(&self.state).clone()
    }
}

/// The background loop's handle; dropping it stops the loop.
pub struct Background {
    syncer: Arc<Syncer>,
    paused: Arc<AtomicBool>,
    kick: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Background {
    /// Starts the loop on `rt`. `waiter` is a second session of the same account for the long
    /// poll (so waiting never holds the engine).
    pub fn spawn(
        syncer: Arc<Syncer>,
        vault: Arc<Vault>,
        waiter: Session,
        rt: &tokio::runtime::Handle,
    ) -> Background {
        let paused = Arc::new(AtomicBool::new(false));
        let kick = Arc::new(Notify::new());
        let task = rt.spawn(run_loop(
            syncer.clone(),
            vault,
            waiter,
            paused.clone(),
            kick.clone(),
        ));
        Background {
            syncer,
            paused,
            kick,
            task,
        }
    }

    /// Pauses: no new pass starts (a running one finishes).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        lock(&self.syncer.state).paused = true;
        self.kick.notify_one();
    }

    /// Resumes and syncs now.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        lock(&self.syncer.state).paused = false;
        self.kick.notify_one();
    }

    /// Asks for a pass now (after a local change the caller knows of, or "Sync now").
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// The shared engine.
    pub fn syncer(&self) -> &Arc<Syncer> {
        &self.syncer
    }
}

const OFFLINE_FIRST_RETRY: Duration = Duration::from_secs(5);
const OFFLINE_MAX_RETRY: Duration = Duration::from_secs(300);
const LOCAL_CHECK: Duration = Duration::from_secs(2);
/// Passes start at most this often (a feed that answers at once must not spin the loop).
const MIN_GAP: Duration = Duration::from_secs(1);

async fn run_loop(
    syncer: Arc<Syncer>,
    vault: Arc<Vault>,
    waiter: Session,
    paused: Arc<AtomicBool>,
    kick: Arc<Notify>,
) {
    let mut offline_delay = OFFLINE_FIRST_RETRY;
    loop {
        if paused.load(Ordering::SeqCst) {
            kick.notified().await;
            continue;
        }
        let started = tokio::time::Instant::now();
        let r = syncer.run(None).await;
        tokio::time::sleep_until(started + MIN_GAP).await;
        match r {
            Ok(rep) => {
                offline_delay = OFFLINE_FIRST_RETRY;
                tokio::select! {
                    r = wait_for_work(&vault, &waiter, rep.retry_at) => {
                        if let Err(e) = r {
                            // The long poll failed (offline, signed out): note it and go on
                            // checking for local changes at a calm pace.
                            tracing::debug!(error = %e, "background sync: waiting for changes failed");
                            tokio::select! {
                                _ = tokio::time::sleep(offline_delay) => {}
                                _ = kick.notified() => {}
                            }
                        }
                    }
                    _ = kick.notified() => {}
                }
            }
            Err(e) if e.stable_code() == TenantCode::Unreachable || is_transient(&e) => {
                let at = now_ms(&vault) + offline_delay.as_millis() as i64;
                lock(&syncer.state).next_try_at = Some(at);
                tokio::select! {
                    _ = tokio::time::sleep(offline_delay) => {}
                    _ = kick.notified() => {}
                }
                offline_delay = (offline_delay * 2).min(OFFLINE_MAX_RETRY);
            }
            Err(e) => {
                // Signed out, revoked, a refused feed: passes would fail the same way; wait for
                // a kick (the person acts) or a slow retry.
                tracing::info!(code = %e.stable_code(), "background sync stopped: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(OFFLINE_MAX_RETRY) => {}
                    _ = kick.notified() => {}
                }
            }
        }
    }
}

fn is_transient(e: &SyncError) -> bool {
    matches!(e, SyncError::Client(c) if c.is_transient())
}

/// Waits for a change on the tenant (long poll on every synced project), a change here, or the
/// time a backed-off op may be retried. Errors of the long poll are returned.
pub async fn wait_for_work(vault: &Vault, session: &Session, retry_at: Option<i64>) -> Result<()> {
    let projects: Vec<(String, u64)> = vault
        .sync_projects()?
        .into_iter()
        .filter(|p| p.remote && p.stopped.is_none())
        .map(|p| (p.project_id, p.cursor))
        .collect();
    let remote = async {
        if projects.is_empty() {
            std::future::pending::<()>().await;
        }
        let polls: Vec<_> = projects
            .iter()
            .map(|(p, after)| {
                Box::pin(async move {
                    let q = ChangesQuery {
                        after: *after,
                        limit: Some(1),
                        wait: Some(25),
                    };
                    session
                        .call(|t| {
                            let (api, q) = (session.client().clone(), q.clone());
                            async move { api.changes(&t, p, &q).await }
                        })
                        .await
                })
            })
            .collect();
        let (r, _, _) = futures_util::future::select_all(polls).await;
        r.map(|_| ())
    };
    let local = async {
        loop {
            tokio::time::sleep(LOCAL_CHECK).await;
            let dirty: u64 = vault
                .sync_status()
                .map(|s| s.iter().map(|p| p.changed_items).sum())
                .unwrap_or(0);
            if dirty > 0 {
                return;
            }
        }
    };
    let retry = async {
        match retry_at {
            Some(at) => {
                let wait = (at - now_ms(vault)).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = remote => r?,
        _ = local => {}
        _ = retry => {}
    }
    Ok(())
}
