//! The engine: one pass brings every project in step with the tenant.
//!
//! A pass: this device is registered (and, if it waits for approval, checks whether the
//! approval arrived), trust and project keys are reconciled, then each project runs its cycle
//! ([`ProjectCycle`]): pull pages until the feed's head is applied (blobs received and
//! verified before each page is applied), stage local changes, push them (blobs first, then
//! ops in batches) and after conflicts pull again. A transient failure backs off the ops it
//! concerns (full jitter, honouring `Retry-After`) and the pass goes on with other projects; a
//! refusal stops the project with its reason; a fatal error (wrong pin, signed out, device
//! revoked) ends the pass. Finally this device's audit chain is anchored.
//!
//! Only one engine syncs a vault at a time (`sync/engine.lock`, a lock the OS releases if the
//! process dies).

use std::fs::File;
use std::sync::Arc;

use labvault_client::{ClientError, TenantClient};
use labvault_core::sync::{
    FeedInfo, IncomingChange, LocalBlob, OpAck, OutgoingOp, PulledPage, StoredAnchor,
};
use labvault_core::Vault;
use labvault_wire::{
    AnchorRequest, ChangesQuery, CommitRequest, ErrorCode, OpResult, SnapshotQuery, SyncOp,
};
use serde::Serialize;

use crate::keys;
use crate::planner::{backoff_ms, classify, Disposition, ProjectCycle, Seen, Step};
use crate::session::Session;
use crate::sharing;
use crate::transfer::{blocking, Transfers};
use crate::{Result, SyncError};

/// Tunables.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Transfers in flight.
    pub parallel: usize,
    /// Ops per commit request.
    pub commit_batch: usize,
    /// Items staged per transaction.
    pub stage_batch: usize,
    /// Changes per feed page.
    pub page_limit: u32,
    /// Part size of resumable uploads and of ranged downloads.
    pub part_size: u64,
    /// Target size of a pack of small blobs (and of a download batch).
    pub pack_target: u64,
    /// Blobs up to this size travel in packs and batches.
    pub small_blob_max: u64,
    /// Anchor the audit chain when this many events were added since the last anchor.
    pub anchor_every_events: u64,
    /// The bandwidth limit of every transfer (shared: changing it applies to a running sync).
    pub rate_limit: std::sync::Arc<crate::limiter::RateLimit>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            parallel: 4,
            // The tenant's caps: fewer round trips per pass.
            commit_batch: 1000,
            stage_batch: 2000,
            page_limit: 1000,
            part_size: 8 << 20,
            pack_target: 8 << 20,
            small_blob_max: 4 << 20,
            anchor_every_events: 1,
            rate_limit: crate::limiter::RateLimit::new(None),
        }
    }
}

/// What kind of work progress is reported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressPhase {
    /// Blob bytes up.
    Upload,
    /// Blob bytes down.
    Download,
    /// Ops applied from the feed.
    Pull,
    /// Ops acknowledged.
    Push,
}

/// A progress report (bytes for transfers, ops for pull and push).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Project id.
    pub project: String,
    /// Phase.
    pub phase: ProgressPhase,
    /// Done so far.
    pub done: u64,
    /// Known total (0 when unknown).
    pub total: u64,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Changes applied from the tenant.
    pub pulled: u64,
    /// Ops the tenant acknowledged.
    pub pushed: u64,
    /// Merges that kept two versions.
    pub conflicts: u64,
    /// Blob bytes sent.
    pub bytes_up: u64,
    /// Blob bytes received.
    pub bytes_down: u64,
    /// Projects created on the tenant / installed here.
    pub projects_created: u64,
    /// Projects installed here from key boxes.
    pub projects_installed: u64,
    /// Problems per project: (project id, message).
    pub errors: Vec<(String, String)>,
    /// Local copies of shared projects wiped (this user was removed from them).
    pub wiped: Vec<labvault_core::sync::WipeReport>,
    /// Shared projects whose key this device rotated.
    pub rotated: u64,
    /// The earliest time (ms) a backed-off op may be retried.
    pub retry_at: Option<i64>,
    /// Ops waiting (staged, unacknowledged) after the pass.
    pub pending: u64,
    /// How long the pass took (ms).
    pub elapsed_ms: u64,
}

/// The sync engine of one vault.
pub struct SyncEngine {
    vault: Arc<Vault>,
    session: Session,
    api: TenantClient,
    cfg: EngineConfig,
    random: Box<dyn Fn() -> u64 + Send + Sync>,
    progress: Box<dyn Fn(Progress) + Send + Sync>,
    lock: Option<File>,
}

impl Drop for SyncEngine {
    /// Unlocks explicitly: a child forked by another thread holds a copy of the descriptor
    /// until it execs, and closing alone would leave the next engine refused as "busy".
    fn drop(&mut self) {
        if let Some(f) = self.lock.take() {
            let _ = f.unlock();
        }
    }
}

fn is_would_block(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.raw_os_error() == Some(11)
}

impl SyncEngine {
    /// An engine for `vault` signed in with `session`. Fails with `sync_busy` while another
    /// process syncs the same vault.
    pub fn new(vault: Arc<Vault>, session: Session, cfg: EngineConfig) -> Result<SyncEngine> {
        let dir = vault.dir().join(labvault_core::layout::SYNC_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| SyncError::Busy(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("engine.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SyncError::Busy(format!("opening {}: {e}", path.display())))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SyncError::Busy(
                    "another LabVault process is syncing this vault; it will bring it up to date"
                        .into(),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) if is_would_block(&e) => {
                return Err(SyncError::Busy(
                    "another LabVault process is syncing this vault".into(),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(SyncError::Busy(format!("locking {}: {e}", path.display())))
            }
        }
        let me = vault.device_id().to_string();
        let session = session.bind_device(&me)?;
        let api = session.client().clone();
        Ok(SyncEngine {
            vault,
            session,
            api,
            cfg,
            random: Box::new(rand::random::<u64>),
            progress: Box::new(|_| {}),
            lock: Some(f),
        })
    }

    /// Replaces the source of randomness (back-off jitter): a simulation seeds it.
    pub fn with_random(mut self, f: impl Fn() -> u64 + Send + Sync + 'static) -> SyncEngine {
        self.random = Box::new(f);
        self
    }

    /// Reports progress to `f` (at most a few times per transfer chunk).
    pub fn with_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> SyncEngine {
        self.progress = Box::new(f);
        self
    }

    /// The session (for device commands).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The vault.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    fn now(&self) -> i64 {
        (self.vault.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// One pass over every project (or only `only`, a project id or name).
    pub async fn pass(&self, only: Option<&str>) -> Result<PassReport> {
        let started = std::time::Instant::now();
        let mut report = PassReport::default();
        self.vault.sync_remote()?.ok_or(SyncError::NoRemote)?;
        let paired = match keys::register(&self.vault, &self.session).await {
            Ok(_) => keys::complete_pairing(&self.vault, &self.session).await,
            Err(e) => Err(e),
        };
        match paired {
            Ok(true) => {}
            Ok(false) => {
                let code = self.vault.sync_pairing_code()?;
                return Err(SyncError::NotApproved(code.to_string()));
            }
            Err(SyncError::Revoked) => {
                // A revoked device keeps nothing it synced: keys and copies are erased.
                for w in self.vault.sync_wipe_revoked()? {
                    sharing::report_wipe(&self.session, &w, "revoked").await;
                }
                return Err(SyncError::Revoked);
            }
            Err(e) => return Err(e),
        }
        keys::refresh_trust(&self.vault, &self.session).await?;
        let r = keys::reconcile_projects(&self.vault, &self.session, only).await?;
        report.projects_created = r.created;
        report.projects_installed = r.installed;
        if sharing::ensure_identity(&self.vault, &self.session).await? {
            self.refresh_shared(only, &mut report).await?;
        }
        self.vault.sync_clean_incoming(false)?;
        for p in self.vault.sync_projects()? {
            if !p.remote || only.is_some_and(|o| o != p.project_id && o != p.name) {
                continue;
            }
            if let Some(why) = &p.stopped {
                report.errors.push((p.project_id.clone(), why.clone()));
                continue;
            }
            self.project(&p.project_id, &mut report).await?;
        }
        report.pending = self.vault.sync_pending_ops()?;
        self.anchor().await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Reads the membership log of every project this device has or the tenant lists (see
    /// [`sharing::refresh`]); a refused log stops that project.
    async fn refresh_shared(&self, only: Option<&str>, report: &mut PassReport) -> Result<()> {
        let remote = self
            .session
            .call(|t| {
                let api = self.api.clone();
                async move { api.projects(&t).await }
            })
            .await?;
        let local = self.vault.sync_projects()?;
        let mut ids: std::collections::BTreeSet<String> =
            remote.into_iter().map(|p| p.id).collect();
        ids.extend(
            local
                .iter()
                .filter(|p| p.remote)
                .map(|p| p.project_id.clone()),
        );
        for id in ids {
            let name = local
                .iter()
                .find(|p| p.project_id == id)
                .map(|p| p.name.as_str());
            if only.is_some_and(|o| o != id && Some(o) != name) {
                continue;
            }
            if local
                .iter()
                .any(|p| p.project_id == id && p.stopped.is_some())
            {
                continue;
            }
            match sharing::refresh(&self.vault, &self.session, &id, true).await {
                Ok(sharing::Refreshed::Wiped(w)) => report.wiped.push(w),
                Ok(sharing::Refreshed::Member {
                    installed, rotated, ..
                }) => {
                    report.projects_installed += u64::from(installed);
                    report.rotated += u64::from(rotated);
                }
                Ok(sharing::Refreshed::NotShared) => {}
                // Not a member (never added): nothing of it is this device's business.
                Err(SyncError::Client(ClientError::Api {
                    code: ErrorCode::Forbidden | ErrorCode::NotFound,
                    ..
                })) => {}
                Err(SyncError::Vault(e)) if e.code() == labvault_core::ErrorCode::SyncRefused => {
                    let why = e.to_string();
                    if local.iter().any(|p| p.project_id == id) {
                        self.vault.sync_set_stopped(&id, Some(&why))?;
                    }
                    report.errors.push((id.clone(), why));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One project's cycle.
    async fn project(&self, project: &str, report: &mut PassReport) -> Result<()> {
        let mut cycle = ProjectCycle::new();
        while !cycle.done() {
            let seen = match cycle.next() {
                Step::Pull => self.pull(project, report).await,
                Step::Stage => {
                    let started = std::time::Instant::now();
                    let n = {
                        let (p, lim) = (project.to_string(), self.cfg.stage_batch);
                        blocking(&self.vault, move |v| v.sync_stage(&p, lim)).await?
                    };
                    let ms = started.elapsed().as_millis();
                    tracing::debug!(project, items = n, ms, "staged local changes");
                    Ok(Seen::Staged {
                        n,
                        more: n >= self.cfg.stage_batch,
                    })
                }
                Step::Push => self.push(project, report).await,
                Step::Finish | Step::WaitUntil(_) | Step::Stop(_) => {
                    unreachable!("the loop ends first")
                }
            };
            let seen = match seen {
                Ok(s) => s,
                Err(e) => self.on_error(project, e, report).await?,
            };
            cycle.observe(seen);
        }
        match cycle.next() {
            Step::WaitUntil(at) => {
                report.retry_at = Some(report.retry_at.map_or(at, |r| r.min(at)));
            }
            Step::Stop(why) if !report.errors.iter().any(|(p, w)| p == project && *w == why) => {
                report.errors.push((project.to_string(), why));
            }
            _ => {}
        }
        if let Some(at) = self.vault.sync_next_retry(project)? {
            report.retry_at = Some(report.retry_at.map_or(at, |r| r.min(at)));
        }
        Ok(())
    }

    /// Turns an error of a step into what the cycle sees, or ends the pass.
    async fn on_error(&self, project: &str, e: SyncError, report: &mut PassReport) -> Result<Seen> {
        match e {
            SyncError::Client(c) => match classify(&c) {
                Disposition::Retry { retry_after } => {
                    let at = self.now() + backoff_ms(1, retry_after, (self.random)()) as i64;
                    report.errors.push((project.to_string(), c.to_string()));
                    Ok(Seen::Transient(at))
                }
                Disposition::StopProject(why) => {
                    report.errors.push((project.to_string(), why.clone()));
                    Ok(Seen::Stopped(why))
                }
                Disposition::Fatal(_) => Err(SyncError::Client(c)),
            },
            SyncError::Vault(ve) => match ve.code() {
                labvault_core::ErrorCode::FeedDiverged => {
                    let why = ve.to_string();
                    self.vault.sync_set_stopped(project, Some(&why))?;
                    Ok(Seen::Stopped(why))
                }
                labvault_core::ErrorCode::SyncRefused => {
                    // Recorded (and the project stopped) where the refusal was found.
                    Ok(Seen::Stopped(ve.to_string()))
                }
                labvault_core::ErrorCode::VaultBusy => {
                    let at = self.now() + backoff_ms(1, None, (self.random)()) as i64;
                    report.errors.push((project.to_string(), ve.to_string()));
                    Ok(Seen::Transient(at))
                }
                _ => Err(SyncError::Vault(ve)),
            },
            other => Err(other),
        }
    }

    /// Reads, checks, completes and applies one page of the feed (a device new to the project
    /// starts from the snapshot instead).
    async fn pull(&self, project: &str, report: &mut PassReport) -> Result<Seen> {
        let sp = self
            .vault
            .sync_projects()?
            .into_iter()
            .find(|p| p.project_id == project)
            .ok_or_else(|| {
                SyncError::Vault(labvault_core::Error::NotFound(format!("project {project}")))
            })?;
        if sp.cursor == 0 && sp.generation.is_none() {
            return self.pull_snapshot(project, report).await;
        }
        let q = ChangesQuery {
            after: sp.cursor.saturating_sub(1),
            limit: Some(self.cfg.page_limit),
            wait: None,
        };
        let (api, p) = (self.api.clone(), project.to_string());
        let page = self
            .session
            .call(|t| {
                let (api, p, q) = (api.clone(), p.clone(), q.clone());
                async move { api.changes(&t, &p, &q).await }
            })
            .await?;
        if page.epoch > sp.epoch {
            // The project rotated since this device last read its membership: the new key
            // first (the log decides; the page's claim is only the reason to look).
            match sharing::refresh(&self.vault, &self.session, project, false).await {
                Ok(_) => {}
                Err(SyncError::Client(c)) => return Err(SyncError::Client(c)),
                Err(e) => return Err(e),
            }
        }
        let at_head = !page.has_more;
        let feed = FeedInfo {
            head_seq: page.head_seq,
            epoch: page.epoch,
            generation: page.generation.clone(),
        };
        let changes = page
            .changes
            .into_iter()
            .map(incoming)
            .collect::<Result<Vec<_>>>()?;
        let first = changes
            .iter()
            .find(|c| c.seq > sp.cursor)
            .map(|c| (c.seq, c.item_id.clone(), c.op_id.clone()));
        let opened = self.vault.sync_open_page(project, changes, &feed);
        let cursor = self
            .complete_and_apply(project, opened, first, report)
            .await?;
        (self.progress)(Progress {
            project: project.to_string(),
            phase: ProgressPhase::Pull,
            done: cursor,
            total: feed.head_seq,
        });
        Ok(Seen::Pulled {
            at_head: at_head && cursor >= feed.head_seq,
        })
    }

    /// Receives what an opened page needs and applies it; returns the cursor after it.
    async fn complete_and_apply(
        &self,
        project: &str,
        opened: labvault_core::Result<PulledPage>,
        first: Option<(u64, String, String)>,
        report: &mut PassReport,
    ) -> Result<u64> {
        let mut page = match opened {
            Ok(p) => p,
            Err(e) => return Err(self.refusal(project, first, e)),
        };
        if page.is_empty() {
            return Ok(page.last_seq());
        }
        let t = Transfers {
            vault: &self.vault,
            session: &self.session,
            api: &self.api,
            project,
            cfg: &self.cfg,
            progress: &*self.progress,
        };
        let started = std::time::Instant::now();
        let bytes = match t.download(&mut page).await {
            Ok(n) => n,
            Err(SyncError::Vault(e)) => return Err(self.refusal(project, first, e)),
            Err(e) => return Err(e),
        };
        report.bytes_down += bytes;
        let download_ms = started.elapsed().as_millis();
        let applied = blocking(&self.vault, move |v| v.sync_apply_page(page)).await?;
        report.pulled += applied.applied;
        report.conflicts += applied.conflicts;
        tracing::debug!(
            project,
            applied = applied.applied,
            bytes,
            download_ms,
            total_ms = started.elapsed().as_millis(),
            "applied a page (times since its download started)"
        );
        Ok(applied.cursor)
    }

    /// A device new to a project starts from the snapshot (the latest op of every item,
    /// page by page); the cursor moves to the head the snapshot was read at with its last
    /// page, and the feed continues from there.
    async fn pull_snapshot(&self, project: &str, report: &mut PassReport) -> Result<Seen> {
        let mut after: Option<String> = None;
        let mut feed: Option<FeedInfo> = None;
        loop {
            let q = SnapshotQuery {
                after_item: after.clone(),
                limit: Some(self.cfg.page_limit),
            };
            let (api, p) = (self.api.clone(), project.to_string());
            let page = self
                .session
                .call(|t| {
                    let (api, p, q) = (api.clone(), p.clone(), q.clone());
                    async move { api.snapshot(&t, &p, &q).await }
                })
                .await?;
            let feed = feed.get_or_insert(FeedInfo {
                head_seq: page.head_seq,
                epoch: page.epoch,
                generation: page.generation.clone(),
            });
            let last = page.next_item.is_none();
            let head_op = if last && feed.head_seq > 0 {
                Some(Some(self.op_at(project, feed.head_seq).await?))
            } else if last {
                Some(None)
            } else {
                None
            };
            let items = page
                .items
                .into_iter()
                .map(incoming)
                .collect::<Result<Vec<_>>>()?;
            let first = items
                .first()
                .map(|c| (c.seq, c.item_id.clone(), c.op_id.clone()));
            let opened = self.vault.sync_open_snapshot(project, items, feed, head_op);
            self.complete_and_apply(project, opened, first, report)
                .await?;
            if last {
                return Ok(Seen::Pulled { at_head: false });
            }
            after = page.next_item;
        }
    }

    /// The op id at a position of the feed.
    async fn op_at(&self, project: &str, seq: u64) -> Result<String> {
        let q = ChangesQuery {
            after: seq - 1,
            limit: Some(1),
            wait: None,
        };
        let (api, p) = (self.api.clone(), project.to_string());
        let page = self
            .session
            .call(|t| {
                let (api, p, q) = (api.clone(), p.clone(), q.clone());
                async move { api.changes(&t, &p, &q).await }
            })
            .await?;
        match page.changes.first() {
            Some(c) if c.seq == seq => Ok(c.op_id.clone()),
            _ => Err(SyncError::Client(ClientError::Malformed {
                url: self.api.base_url().to_string(),
                status: 200,
                detail: format!("the feed has no op at its head {seq}"),
            })),
        }
    }

    /// Records a refusal of what the tenant sent (the project stops) and returns the error.
    fn refusal(
        &self,
        project: &str,
        at: Option<(u64, String, String)>,
        e: labvault_core::Error,
    ) -> SyncError {
        if matches!(e.code(), labvault_core::ErrorCode::SyncRefused) {
            let (seq, item, op) = at.unwrap_or((0, String::new(), String::new()));
            if let Err(rec) = self.vault.sync_record_refusal(project, seq, &item, &op, &e) {
                tracing::warn!(code = rec.code().as_str(), "could not record a refusal");
            }
        }
        SyncError::Vault(e)
    }

    /// Sends one batch of ops (their blobs first) and records the answers.
    async fn push(&self, project: &str, report: &mut PassReport) -> Result<Seen> {
        let started = std::time::Instant::now();
        // This batch and the next: the next one's blobs go up while this one is committed.
        let mut ops = {
            let (p, lim) = (project.to_string(), 2 * self.cfg.commit_batch);
            blocking(&self.vault, move |v| v.sync_outgoing(&p, lim)).await?
        };
        if ops.is_empty() {
            return Ok(Seen::NothingToPush);
        }
        let next = ops.split_off(ops.len().min(self.cfg.commit_batch));
        let read_ms = started.elapsed().as_millis();
        let mut seen = std::collections::BTreeSet::new();
        let mut blobs_of = |ops: &[OutgoingOp]| -> Result<Vec<LocalBlob>> {
            let mut blobs = Vec::new();
            for op in ops {
                for b in self.vault.sync_blobs_for(op)? {
                    if seen.insert(b.blob_id.clone()) {
                        blobs.push(b);
                    }
                }
            }
            Ok(blobs)
        };
        let blobs = blobs_of(&ops)?;
        let ahead = blobs_of(&next)?;
        let op_ids: Vec<String> = ops.iter().map(|o| o.op_id.clone()).collect();
        let t = Transfers {
            vault: &self.vault,
            session: &self.session,
            api: &self.api,
            project,
            cfg: &self.cfg,
            progress: &*self.progress,
        };
        let sent = t.upload(blobs).await;
        let sent = match sent {
            Ok(n) => n,
            Err(e) => {
                self.back_off(&op_ids, &e)?;
                return Err(e);
            }
        };
        report.bytes_up += sent;
        let upload_ms = started.elapsed().as_millis();
        self.vault.sync_mark_sent(&op_ids)?;
        use base64::Engine;
        let req = CommitRequest {
            ops: ops
                .iter()
                .map(|o| SyncOp {
                    op_id: o.op_id.clone(),
                    item_id: o.item_id.clone(),
                    base_rev: o.base_rev,
                    epoch: o.epoch,
                    payload: base64::engine::general_purpose::STANDARD.encode(&o.payload),
                    blobs: o.blobs.clone(),
                    tombstone: o.tombstone,
                    hold: o.hold,
                })
                .collect(),
        };
        let (api, p) = (self.api.clone(), project.to_string());
        let commit = self.session.call(|t| {
            let (api, p, req) = (api.clone(), p.clone(), req.clone());
            async move { api.commit(&t, &p, &req).await }
        });
        // The next batch's blobs, quietly (its own push reports them); a failure here only
        // means that push sends them itself.
        let quiet = |_: Progress| {};
        let pre = Transfers {
            progress: &quiet,
            ..t
        };
        let (resp, pre_sent) = futures_util::future::join(commit, pre.upload(ahead)).await;
        match pre_sent {
            Ok(n) => report.bytes_up += n,
            Err(e) => {
                tracing::debug!(project, error = %e, "uploading the next batch's blobs early")
            }
        }
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                // The answer may be lost after the tenant applied them: they stay `sent` and
                // are resent with the same ids (the tenant answers `duplicate`).
                self.back_off(&op_ids, &e)?;
                return Err(e);
            }
        };
        if resp.results.len() != ops.len() {
            return Err(SyncError::Client(ClientError::Malformed {
                url: self.api.base_url().to_string(),
                status: 200,
                detail: format!("{} results for {} ops", resp.results.len(), ops.len()),
            }));
        }
        let commit_ms = started.elapsed().as_millis();
        let results: Vec<(String, OpAck)> = resp.results.into_iter().map(ack).collect();
        let acks = {
            let p = project.to_string();
            blocking(&self.vault, move |v| v.sync_record_results(&p, &results)).await?
        };
        tracing::debug!(
            project,
            ops = ops.len(),
            bytes = sent,
            read_ms,
            upload_ms,
            commit_ms,
            total_ms = started.elapsed().as_millis(),
            "pushed a batch (times since the batch started)"
        );
        report.pushed += acks.pushed;
        (self.progress)(Progress {
            project: project.to_string(),
            phase: ProgressPhase::Push,
            done: report.pushed,
            total: 0,
        });
        let more = ops.len() >= self.cfg.commit_batch || acks.missing_blobs > 0;
        if acks.stale_epoch > 0 {
            // Rotated meanwhile: the new key, then the changes sealed again (a conflict
            // round of the planner: pull, stage, push).
            sharing::refresh(&self.vault, &self.session, project, false).await?;
        }
        Ok(Seen::Pushed {
            conflicts: (acks.conflicts + acks.stale_epoch) as usize,
            more,
        })
    }

    fn back_off(&self, op_ids: &[String], e: &SyncError) -> Result<()> {
        if let SyncError::Client(c) = e {
            if let Disposition::Retry { retry_after } = classify(c) {
                let at = self.now() + backoff_ms(1, retry_after, (self.random)()) as i64;
                self.vault.sync_backoff(op_ids, at, &c.to_string())?;
            }
        }
        Ok(())
    }

    /// Has the tenant sign the head of this device's audit chain (when it moved) and keeps the
    /// signed checkpoints.
    async fn anchor(&self) -> Result<()> {
        let (chain, seq, head) = self.vault.audit_head()?;
        let last = self
            .vault
            .sync_anchors()?
            .iter()
            .filter(|a| a.kind == "device")
            .map(|a| a.seq)
            .max()
            .unwrap_or(0);
        if seq < last + self.cfg.anchor_every_events {
            return Ok(());
        }
        let req = AnchorRequest {
            chain_id: chain,
            seq,
            head_hash: head,
        };
        let receipt = self
            .session
            .call(|t| {
                let (api, req) = (self.api.clone(), req.clone());
                async move { api.anchor(&t, &req).await }
            })
            .await?;
        let stored = |kind: &str, a: labvault_wire::Anchor| StoredAnchor {
            kind: kind.to_string(),
            tenant_id: a.tenant_id,
            chain_id: a.chain_id,
            seq: a.seq,
            head_hash: a.head_hash,
            signed_at: a.signed_at,
            server_key: a.server_key,
            signature: a.signature,
        };
        self.vault.sync_store_anchors(&[
            stored("device", receipt.device),
            stored("server", receipt.server),
        ])?;
        Ok(())
    }

    /// Waits until the tenant has changes for a project after its cursor (long poll, at most
    /// 25 s); returns whether it has.
    pub async fn wait_for_changes(&self, project: &str) -> Result<bool> {
        let sp = self
            .vault
            .sync_projects()?
            .into_iter()
            .find(|p| p.project_id == project)
            .ok_or_else(|| {
                SyncError::Vault(labvault_core::Error::NotFound(format!("project {project}")))
            })?;
        let q = ChangesQuery {
            after: sp.cursor,
            limit: Some(1),
            wait: Some(25),
        };
        let (api, p) = (self.api.clone(), project.to_string());
        let page = self
            .session
            .call(|t| {
                let (api, p, q) = (api.clone(), p.clone(), q.clone());
                async move { api.changes(&t, &p, &q).await }
            })
            .await?;
        Ok(!page.changes.is_empty())
    }
}

fn incoming(c: labvault_wire::Change) -> Result<IncomingChange> {
    use base64::Engine;
    let payload = if c.compacted {
        Vec::new()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(&c.payload)
            .map_err(|_| {
                SyncError::Vault(labvault_core::Error::SyncRefused(format!(
                    "the change at seq {} carries a payload that is not base64",
                    c.seq
                )))
            })?
    };
    Ok(IncomingChange {
        seq: c.seq,
        op_id: c.op_id,
        item_id: c.item_id,
        rev: c.rev,
        epoch: c.epoch,
        device_id: c.device_id,
        payload,
        blobs: c.blobs,
        tombstone: c.tombstone,
        hold: c.hold,
        compacted: c.compacted,
    })
}

fn ack(r: OpResult) -> (String, OpAck) {
    match r {
        OpResult::Applied { op_id, seq, rev } => (op_id, OpAck::Applied { seq, rev }),
        OpResult::Duplicate { op_id, seq, rev } => (op_id, OpAck::Duplicate { seq, rev }),
        OpResult::Conflict { op_id, rev } => (op_id, OpAck::Conflict { rev }),
        OpResult::StaleEpoch { op_id, epoch } => (op_id, OpAck::StaleEpoch { epoch }),
        OpResult::BlobMissing { op_id, blob_id } => (op_id, OpAck::BlobMissing { blob_id }),
        OpResult::Rejected {
            op_id,
            code,
            message,
        } => (op_id, OpAck::Rejected { code, message }),
    }
}
