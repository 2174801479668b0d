//! Embedded SQLite implementation of [`Store`].
//!
//! One writer thread owns the only write connection and group-commits queued jobs (each in
//! its own savepoint, so one failing job never undoes another), so the async runtime never
//! waits for a write lock, and the audit chain needs no extra locking because all appends are
//! serialized. Reads use a pool of WAL reader connections. Short, index-bounded reads (point
//! lookups, one tenant's members/projects, an audit page) run inline on the calling task's
//! thread: a WAL reader never waits for the writer, and such a read costs tens of
//! microseconds, less than handing it to the blocking pool and back (two thread wake-ups,
//! which on 2 cores were a large share of a request). Unbounded scans (whole audit chains,
//! exports, operator listings) go to the blocking pool so they never stall other requests.
//!
//! Group commit: the writer drains every queued job (up to [`MAX_BATCH`]) and commits them
//! in ONE transaction with `synchronous=FULL`, so a request's audit event is on disk (WAL
//! fsynced) before the request is answered, and under load hundreds of events share one
//! fsync. If the commit fails, every job of the batch gets the error and nothing of the
//! batch is kept.
//!
//! Hot-path read cache: the per-request auth lookup and the access-review snapshot are
//! cached per key, tagged with a write epoch that the writer bumps after committing any job
//! that can change them (every write except a bare audit append), before answering that
//! job's caller. A cached value is only used while the epoch is unchanged, so a change is
//! seen by every request that starts after the change was acknowledged (a revoked session
//! is refused at once). Entries also expire after [`CACHE_TTL`], which bounds how long a
//! write by another process on the same database (the operations CLI) can go unseen.

use super::*;
use crate::chain;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

mod alerts;
mod db_file;
mod sharing;
mod sync;

use db_file::DbFile;
pub use db_file::{is_plain, DbKey};

/// Tenant id of the server-level chain (tenant creation/deletion, trial expiry).
pub const SYSTEM_TENANT: &str = "_system";

type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One queued write: runs inside the batch transaction, returns how to answer its caller.
struct Job {
    run: Box<dyn FnOnce(&Connection) -> Done + Send>,
    /// Whether it can change cached rows (everything but a bare audit append).
    invalidates: bool,
}

/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// How long a cached auth row or access snapshot may be used without re-reading, at most
/// (see the module doc; writes through this store invalidate at once).
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Entries per cache before it is emptied (bounds memory under many sessions).
const CACHE_MAX: usize = 10_000;

struct Cached<T> {
    epoch: u64,
    at: Instant,
    value: T,
}

/// An epoch-tagged cache (see the module doc).
struct EpochCache<K, V> {
    map: Mutex<HashMap<K, Cached<V>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> EpochCache<K, V> {
    fn new() -> Self {
        EpochCache {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get<Q>(&self, key: &Q, epoch: u64, valid: impl FnOnce(&V) -> bool) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.get(key)?;
        (c.epoch == epoch && c.at.elapsed() < CACHE_TTL && valid(&c.value)).then(|| c.value.clone())
    }

    fn put(&self, key: K, epoch: u64, value: V) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= CACHE_MAX {
            m.clear();
        }
        m.insert(
            key,
            Cached {
                epoch,
                at: Instant::now(),
                value,
            },
        );
    }
}

/// Events most recently committed per tenant, kept in memory for audit pages.
const TAIL_MAX: usize = 1000;

/// One event of the audit tail: its seq and its wire JSON.
type TailEvent = (u64, Arc<str>);

thread_local! {
    /// Events appended by the current batch of the writer thread, not yet committed:
    /// (tenant, seq, wire JSON).
    static PENDING: std::cell::RefCell<Vec<(String, u64, Arc<str>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hands the audit events this process commits to the alert detector, batch by batch. The
/// channel is bounded: when the detector falls that far behind, batches are dropped and
/// counted in an ERROR log line rather than holding up the writer.
#[derive(Default)]
struct AuditObserver {
    tx: Mutex<Option<tokio::sync::mpsc::Sender<crate::store::alerts::AuditBatch>>>,
    dropped: AtomicU64,
}

impl AuditObserver {
    fn subscribe(&self) -> Option<tokio::sync::mpsc::Receiver<crate::store::alerts::AuditBatch>> {
        let mut g = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_some_and(|t| !t.is_closed()) {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        *g = Some(tx);
        Some(rx)
    }

    /// Sends the batch `events()` builds, built only when a detector listens.
    fn publish(&self, events: impl FnOnce() -> crate::store::alerts::AuditBatch) {
        let g = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = g.as_ref().filter(|t| !t.is_closed()) {
            if tx.try_send(events()).is_err() && !tx.is_closed() {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    batches = n,
                    "alert detection fell behind: audit events were not examined"
                );
            }
        }
    }
}

/// The newest committed events of each tenant's chain as wire JSON, published by the writer
/// after each commit (and before answering), so the newest audit pages (the hot ones) need
/// neither a database read nor re-serialization. Each tenant's tail is a gap-free run of seqs
/// ending at the chain head; it is emptied when another process wrote to the database
/// (checked at every batch) and not trusted when no batch ran for [`CACHE_TTL`].
#[derive(Default)]
struct AuditTail {
    inner: Mutex<TailInner>,
}

#[derive(Default)]
struct TailInner {
    tenants: HashMap<String, std::collections::VecDeque<TailEvent>>,
    checked_at: Option<Instant>,
}

impl AuditTail {
    fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tenants
            .clear();
    }

    fn publish(&self, events: Vec<(String, u64, Arc<str>)>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (tenant, seq, json) in events {
            let t = g.tenants.entry(tenant).or_default();
            if t.back().is_some_and(|(s, _)| s + 1 != seq) {
                t.clear(); // not contiguous: start again from this event
            }
            t.push_back((seq, json));
            if t.len() > TAIL_MAX {
                t.pop_front();
            }
        }
        g.checked_at = Some(Instant::now());
    }

    /// Up to `limit` events older than `before` (newest first), if the tail holds all of them.
    fn page(&self, tenant: &str, before: Option<i64>, limit: u32) -> Option<Vec<TailEvent>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.checked_at.is_none_or(|t| t.elapsed() >= CACHE_TTL) {
            return None;
        }
        let t = g.tenants.get(tenant)?;
        let (first, head) = (t.front()?.0, t.back()?.0);
        let top = match before {
            Some(b) => head.min(u64::try_from(b).ok()?.checked_sub(1)?),
            None => head,
        };
        if top < first {
            return None;
        }
        let from = top
            .saturating_sub(u64::from(limit).saturating_sub(1))
            .max(1);
        if from < first {
            return None;
        }
        let (a, b) = ((from - first) as usize, (top - first) as usize);
        Some(t.range(a..=b).rev().cloned().collect())
    }
}

/// Cached access snapshot with the earliest expiry of its invitations (the snapshot is
/// only valid before it).
#[derive(Clone)]
struct SnapEntry {
    snap: Arc<AccessSnapshot>,
    valid_until: i64,
}

/// Schema migrations, applied in order; `PRAGMA user_version` records the last one.
const MIGRATIONS: &[&str] = &[
    // 1: identity, access, audit, retention.
    r#"
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        plan TEXT NOT NULL,
        require_mfa INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        email TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        totp_secret BLOB,
        totp_pending BLOB,
        totp_last_step INTEGER,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER,
        created_at INTEGER NOT NULL,
        last_active_at INTEGER,
        UNIQUE (tenant_id, email)
    );
    CREATE TABLE recovery_codes (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        used_at INTEGER,
        PRIMARY KEY (user_id, code_hash)
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        mfa_at INTEGER,
        revoked_at INTEGER,
        revoked_reason TEXT
    );
    CREATE INDEX sessions_user ON sessions(tenant_id, user_id);
    CREATE TABLE refresh_tokens (
        hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        successor TEXT
    );
    CREATE INDEX refresh_session ON refresh_tokens(session_id);
    CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX projects_tenant ON projects(tenant_id);
    CREATE TABLE project_roles (
        tenant_id TEXT NOT NULL,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        PRIMARY KEY (project_id, user_id)
    );
    CREATE INDEX project_roles_tenant ON project_roles(tenant_id);
    CREATE TABLE invitations (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        closed_at INTEGER
    );
    CREATE INDEX invitations_tenant ON invitations(tenant_id);
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        project_id TEXT,
        secret_hash TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
    CREATE TABLE audit_events (
        tenant_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts_us INTEGER NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        ip_address TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        result TEXT NOT NULL,
        detail TEXT NOT NULL,
        v INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (tenant_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE retention_rules (
        tenant_id TEXT NOT NULL,
        project_id TEXT NOT NULL DEFAULT '',
        data_type TEXT NOT NULL,
        period TEXT NOT NULL,
        PRIMARY KEY (tenant_id, project_id, data_type)
    );
    "#,
    // 2: tenant tombstones. A deleted tenant keeps its row (slug freed, name erased) and its
    // audit chain; everything else is purged.
    r#"
    ALTER TABLE tenants ADD COLUMN deleted_at INTEGER;
    "#,
    // 3: file sync (devices, key boxes, change feeds, blob records, uploads, anchors).
    sync::MIGRATION,
    // 4: shared projects (identities, identity boxes, membership logs, member boxes, links).
    sharing::MIGRATION,
    // 5: audit events stored compactly (the view `audit_events` reads as before).
    include_str!("sqlite/compact_audit.sql"),
    // 6: security alerts, their settings, webhook deliveries and sign-in fingerprints.
    alerts::MIGRATION,
];

/// SQLite-backed store.
pub struct SqliteStore {
    db: DbFile,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// The writer thread, joined on drop: it closes (and checkpoints) the database before the
    /// store is gone, so the files can be copied or reopened right after.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_permits: Arc<tokio::sync::Semaphore>,
    /// Write epoch, bumped by the writer after committing a batch that can change cached rows.
    epoch: Arc<AtomicU64>,
    /// Committed write transactions (group-commit observability).
    commits: Arc<AtomicU64>,
    auth_cache: EpochCache<(String, String, String), AuthRow>,
    snap_cache: EpochCache<String, SnapEntry>,
    tail: Arc<AuditTail>,
    observer: Arc<AuditObserver>,
}

/// Concurrent read connections.
const READERS: usize = 6;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open(db: &DbFile) -> rusqlite::Result<Connection> {
    let c = db.connect()?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    // Every query goes through the statement cache (see `one`/`all`); room for all of them
    // so the hot ones are never evicted.
    c.set_prepared_statement_cache_capacity(128);
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
    Ok(c)
}

fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = c.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Readers first, then the writer: ending its channel ends its loop.
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(
            &mut *self.jobs.lock().unwrap_or_else(|e| e.into_inner()),
            closed,
        ));
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`.
    /// Opens (or creates) an unencrypted database: tests and tools. The server opens its
    /// database with [`SqliteStore::open_encrypted`].
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(DbFile::new(path, None))
    }

    /// Opens (or creates) the database encrypted with `key`; a database written before
    /// encryption is converted first (see `db_file.rs`).
    pub fn open_encrypted(path: &Path, key: DbKey) -> StoreResult<Self> {
        let db = DbFile::new(path, Some(key));
        db.encrypt_if_plain().map_err(backend)?;
        Self::open_with(db)
    }

    /// A raw connection to the database at `path` keyed with `key`, for tools and tests that
    /// must reach below the store (tamper tests). No migrations, no checks beyond the key.
    pub fn connect_raw(path: &Path, key: DbKey) -> StoreResult<Connection> {
        DbFile::new(path, Some(key)).connect().map_err(backend)
    }

    fn open_with(db: DbFile) -> StoreResult<Self> {
        let mut writer = open(&db).map_err(backend)?;
        // Every acknowledged write (and so every audit event of an answered request) must
        // survive a power loss: the WAL is fsynced at each commit. Group commit makes that
        // one fsync per batch.
        writer
            .execute_batch("PRAGMA synchronous=FULL;")
            .map_err(backend)?;
        migrate(&mut writer).map_err(backend)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let epoch = Arc::new(AtomicU64::new(0));
        let commits = Arc::new(AtomicU64::new(0));
        let tail = Arc::new(AuditTail::default());
        let observer = Arc::new(AuditObserver::default());
        let (e, n, t, o) = (
            epoch.clone(),
            commits.clone(),
            tail.clone(),
            observer.clone(),
        );
        let handle = std::thread::Builder::new()
            .name("labvault-db-writer".into())
            .spawn(move || writer_loop(writer, rx, e, n, t, o))
            .map_err(backend)?;
        Ok(SqliteStore {
            db,
            jobs: Mutex::new(tx),
            writer: Mutex::new(Some(handle)),
            readers: Arc::new(Mutex::new(Vec::new())),
            read_permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
            epoch,
            commits,
            auth_cache: EpochCache::new(),
            snap_cache: EpochCache::new(),
            tail,
            observer,
        })
    }

    /// Write transactions committed so far: with group commit, far fewer than writes.
    pub fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Schema version after migrations.
    pub fn schema_version(&self) -> usize {
        MIGRATIONS.len()
    }

    /// A short, index-bounded read, inline (see the module doc).
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> StoreResult<T>,
    {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open(&self.db).map_err(backend)?,
        };
        let r = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < READERS {
            pool.push(conn);
        }
        r
    }

    /// A read that may scan a lot (whole chains, exports): on the blocking pool.
    async fn scan<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        // At most READERS blocking reads at once, each on a pooled connection: more threads
        // than that only contend for the cores and would open connections under load.
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(backend)?;
        let readers = self.readers.clone();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => open(&db).map_err(backend)?,
            };
            let r = f(&conn);
            readers.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            r
        })
        .await
        .map_err(backend)?
    }

    /// A filtered audit page, newest first, mapped by `map`.
    async fn audit_select<T: Send + 'static>(
        &self,
        tenant: &str,
        f: AuditFilter,
        limit: u32,
        map: fn(&Row) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        // Only an unfiltered page is bounded by the (tenant_id, seq) key; a filter may have
        // to walk the whole chain to fill a page.
        let bounded = limit <= 200
            && f.from.is_none()
            && f.to.is_none()
            && f.user.is_none()
            && f.result.is_none()
            && f.action_prefix.is_none()
            && f.resource_prefix.is_none();
        let mut sql = format!("SELECT {AUDIT_COLS} FROM audit_events WHERE {AUDIT_TENANT}");
        let mut args: Vec<rusqlite::types::Value> = vec![tenant.to_string().into()];
        // `cond ?n` (then `close`, for a condition around the parameter).
        let mut add = |cond: &str, v: rusqlite::types::Value, close: &str| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ?{}{close}", args.len()));
        };
        if let Some(v) = f.before_seq {
            add("seq <", v.into(), "");
        }
        if let Some(v) = f.from {
            add("ts_us >=", v.saturating_mul(1_000_000).into(), "");
        }
        if let Some(v) = f.to {
            add("ts_us <", v.saturating_mul(1_000_000).into(), "");
        }
        if let Some(v) = f.user {
            // By the string's number: one lookup, not one per event.
            add(
                "user_key = (SELECT id FROM audit_strings WHERE s =",
                v.into(),
                ")",
            );
        }
        if let Some(v) = f.result {
            add("result =", v.as_str().to_string().into(), "");
        }
        // Prefix filters use substr() so LIKE metacharacters in user input mean nothing.
        if let Some(v) = f.action_prefix {
            let n = v.chars().count() as i64;
            add(&format!("substr(action, 1, {n}) ="), v.into(), "");
        }
        if let Some(v) = f.resource_prefix {
            let n = v.chars().count() as i64;
            add(&format!("substr(resource, 1, {n}) ="), v.into(), "");
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {limit}"));
        let job = move |c: &Connection| {
            let mut s = c.prepare_cached(&sql).map_err(backend)?;
            let rows = s
                .query_map(rusqlite::params_from_iter(args), map)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        };
        if bounded {
            self.read(job).await
        } else {
            self.scan(job).await
        }
    }

    /// A write that may change cached rows (see the module doc).
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.write_job(f, true).await
    }

    /// Queues `f` for the writer and waits until its batch is committed (or failed).
    async fn write_job<T, F>(&self, f: F, invalidates: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let run = Box::new(move |conn: &Connection| -> Done {
            // Cached statements: these run once per job, thousands of times a second.
            let exec = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
            let mark = PENDING.with(|p| p.borrow().len());
            let r = match exec("SAVEPOINT job") {
                Ok(_) => {
                    let r = f(conn);
                    let end = if r.is_ok() {
                        exec("RELEASE job")
                    } else {
                        exec("ROLLBACK TO job").and_then(|_| exec("RELEASE job"))
                    };
                    match end {
                        Ok(_) => r,
                        Err(e) => Err(backend(e)),
                    }
                }
                Err(e) => Err(backend(e)),
            };
            if r.is_err() {
                // The job's events were rolled back with it.
                PENDING.with(|p| p.borrow_mut().truncate(mark));
            }
            Box::new(move |commit: Result<(), String>| {
                let _ = tx.send(match commit {
                    Ok(()) => r,
                    Err(e) => Err(StoreError::Backend(e)),
                });
            })
        });
        let job = Job { run, invalidates };
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| StoreError::Backend("database writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("database writer dropped a job".into()))?
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    epoch: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
    tail: Arc<AuditTail>,
    observer: Arc<AuditObserver>,
) {
    let mut last_version: Option<i64> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Run nothing; dropping a job drops its reply channel, so every waiter gets
            // "database writer dropped a job".
            tracing::error!(error = %e, jobs = batch.len(), "could not begin write transaction");
            drop(batch);
            continue;
        }
        // Another process (the operations CLI) committed since our last batch: forget
        // everything cached from before.
        let version: Option<i64> = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok();
        let foreign = version.is_none() || version != last_version;
        last_version = version;
        if foreign {
            tail.clear();
        }
        let invalidates = foreign || batch.iter().any(|j| j.invalidates);
        PENDING.with(|p| p.borrow_mut().clear());
        let dones: Vec<Done> = batch.into_iter().map(|j| (j.run)(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        let events = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
        match &commit {
            Ok(()) => {
                commits.fetch_add(1, Ordering::SeqCst);
                if !events.is_empty() {
                    observer.publish(|| {
                        events
                            .iter()
                            .map(|(t, _, json)| (t.clone(), json.clone()))
                            .collect()
                    });
                }
                tail.publish(events);
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = dones.len(), "write batch failed to commit");
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        if invalidates {
            // After the commit and before any caller hears of it (see the module doc).
            epoch.fetch_add(1, Ordering::SeqCst);
        }
        for d in dones {
            d(commit.clone());
        }
    }
}

// ------------------------------------------------------------------ row mapping

fn role_of(s: String) -> rusqlite::Result<Role> {
    Role::parse(&s)
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(0, s, rusqlite::types::Type::Text))
}

fn plan_of(s: String) -> rusqlite::Result<PlanTier> {
    s.parse::<PlanTier>()
        .ok()
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(0, s, rusqlite::types::Type::Text))
}

const TENANT_COLS: &str = "id, slug, name, plan, require_mfa, created_at, expires_at";
fn tenant_row(r: &Row, o: usize) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: r.get(o)?,
        slug: r.get(o + 1)?,
        name: r.get(o + 2)?,
        plan: plan_of(r.get(o + 3)?)?,
        require_mfa: r.get(o + 4)?,
        created_at: r.get(o + 5)?,
        expires_at: r.get(o + 6)?,
    })
}

const USER_COLS: &str = "id, tenant_id, email, password_hash, role, totp_secret, totp_pending, \
     totp_last_step, failed_logins, locked_until, created_at, last_active_at";
fn user_row(r: &Row, o: usize) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(o)?,
        tenant_id: r.get(o + 1)?,
        email: r.get(o + 2)?,
        password_hash: r.get(o + 3)?,
        role: role_of(r.get(o + 4)?)?,
        totp_secret: r.get(o + 5)?,
        totp_pending: r.get(o + 6)?,
        totp_last_step: r.get(o + 7)?,
        failed_logins: r.get(o + 8)?,
        locked_until: r.get(o + 9)?,
        created_at: r.get(o + 10)?,
        last_active_at: r.get(o + 11)?,
    })
}

/// Per-request lookup: user, tenant and session state in one statement (built once).
static AUTH_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let prefixed = |cols: &str, p: &str| {
        cols.split(',')
            .map(|x| format!("{p}.{}", x.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT {}, {}, \
         (SELECT s.revoked_at IS NOT NULL FROM sessions s WHERE s.id = ?3 AND s.tenant_id = ?1 AND s.user_id = ?2) \
         FROM users u JOIN tenants t ON t.id = u.tenant_id \
         WHERE u.tenant_id = ?1 AND u.id = ?2 AND t.deleted_at IS NULL",
        prefixed(USER_COLS, "u"),
        prefixed(TENANT_COLS, "t")
    )
});

fn invitation_row(r: &Row) -> rusqlite::Result<InvitationRow> {
    Ok(InvitationRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        email: r.get(2)?,
        role: role_of(r.get(3)?)?,
        token_hash: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        closed_at: r.get(7)?,
    })
}
const INV_COLS: &str = "id, tenant_id, email, role, token_hash, created_at, expires_at, closed_at";

fn api_key_row(r: &Row) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        role: role_of(r.get(3)?)?,
        project_id: r.get(4)?,
        secret_hash: r.get(5)?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}
const KEY_COLS: &str =
    "id, tenant_id, name, role, project_id, secret_hash, created_by, created_at, expires_at, revoked_at";

fn audit_row(r: &Row) -> rusqlite::Result<AuditRow> {
    use labvault_governance::audit::{from_unix_micros, Action};
    let bad =
        |i: usize, v: String| rusqlite::Error::InvalidColumnType(i, v, rusqlite::types::Type::Text);
    let hash32 = |i: usize, v: String| -> rusqlite::Result<[u8; 32]> {
        hex::decode(&v)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad(i, v))
    };
    let ts: i64 = r.get(2)?;
    let action: String = r.get(4)?;
    let result: String = r.get(8)?;
    let v: i64 = r.get(10)?;
    Ok(AuditRow {
        device_id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        timestamp: from_unix_micros(ts).map_err(|_| bad(2, ts.to_string()))?,
        user: r.get(3)?,
        action: Action::new(action.clone()).map_err(|_| bad(4, action))?,
        resource: r.get(5)?,
        ip_address: r.get(6)?,
        user_agent: r.get(7)?,
        result: result.parse().map_err(|_| bad(8, result))?,
        detail: r.get(9)?,
        v: v as u16,
        prev_hash: hash32(11, r.get(11)?)?,
        hash: hash32(12, r.get(12)?)?,
    })
}
/// Wire form of an audit row without decoding the stored hex hashes (see `audit_page`).
fn audit_wire_row(r: &Row) -> rusqlite::Result<AuditJson> {
    let ts: i64 = r.get(2)?;
    let result: String = r.get(8)?;
    let bad =
        |i: usize, v: String| rusqlite::Error::InvalidColumnType(i, v, rusqlite::types::Type::Text);
    let timestamp =
        labvault_governance::audit::from_unix_micros(ts).map_err(|_| bad(2, ts.to_string()))?;
    Ok(AuditJson {
        device_id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        timestamp: labvault_governance::audit::ts_micros::format(timestamp),
        user: r.get(3)?,
        action: r.get(4)?,
        resource: r.get(5)?,
        ip_address: r.get(6)?,
        user_agent: r.get(7)?,
        result: result.parse().map_err(|_| bad(8, result))?,
        detail: r.get(9)?,
        v: r.get::<_, i64>(10)? as u16,
        prev_hash: r.get(11)?,
        hash: r.get(12)?,
    })
}
const AUDIT_COLS: &str = "tenant_id, seq, ts_us, user, action, resource, ip_address, user_agent, \
     result, detail, v, prev_hash, hash";

/// The condition selecting one tenant's events of the `audit_events` view by its key (`?1` is
/// the tenant id): the view's `tenant_id` is looked up per row, its `tenant` is the key.
pub(crate) const AUDIT_TENANT: &str = "tenant = (SELECT id FROM audit_strings WHERE s = ?1)";

/// The number standing for `s` in `audit_strings`, added if new.
fn intern(c: &Connection, s: &str) -> StoreResult<i64> {
    let found: Option<i64> = c
        .prepare_cached("SELECT id FROM audit_strings WHERE s = ?1")
        .map_err(backend)?
        .query_row([s], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    if let Some(id) = found {
        return Ok(id);
    }
    c.prepare_cached("INSERT INTO audit_strings (s) VALUES (?1)")
        .map_err(backend)?
        .execute([s])
        .map_err(backend)?;
    Ok(c.last_insert_rowid())
}

/// Appends to a tenant chain inside the caller's transaction (stored compactly: see
/// `sqlite/compact_audit.sql`).
fn append(c: &Connection, tenant: &str, ev: &AuditDraft) -> StoreResult<()> {
    let tenant_key = intern(c, tenant)?;
    let head: Option<(i64, Vec<u8>)> = c
        .prepare_cached(
            "SELECT seq, hash FROM audit_log WHERE tenant = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .map_err(backend)?
        .query_row([tenant_key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    let (seq, prev) = match head {
        Some((s, h)) => {
            let prev = <[u8; 32]>::try_from(h)
                .map_err(|_| StoreError::Backend("corrupt audit chain head".into()))?;
            (s as u64 + 1, prev)
        }
        None => (1, chain::genesis(tenant)),
    };
    let e = chain::seal(tenant, seq, prev, ev)?;
    let result = match e.result {
        labvault_wire::AuditResult::Success => 0,
        labvault_wire::AuditResult::Failure => 1,
        labvault_wire::AuditResult::Denied => 2,
    };
    // The previous event's hash is not stored again; the first event keeps its genesis hash.
    let stored_prev = (seq == 1).then(|| e.prev_hash.to_vec());
    let detail = (!e.detail.is_empty()).then_some(e.detail.as_str());
    c.prepare_cached(
        "INSERT INTO audit_log (tenant, seq, ts_us, user, action, resource, ip, agent, result, \
         detail, v, prev, hash) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    )
    .map_err(backend)?
    .execute(params![
        tenant_key,
        e.seq as i64,
        labvault_governance::audit::unix_micros(e.timestamp),
        intern(c, &e.user)?,
        intern(c, e.action.as_str())?,
        intern(c, &e.resource)?,
        intern(c, &e.ip_address)?,
        intern(c, &e.user_agent)?,
        result,
        detail,
        i64::from(e.v),
        stored_prev,
        e.hash.to_vec()
    ])
    .map_err(backend)?;
    // Serialized once here, published to the audit tail when the batch commits.
    let json = serde_json::to_string(&e).map_err(backend)?;
    PENDING.with(|p| {
        p.borrow_mut()
            .push((tenant.to_string(), e.seq, json.into()))
    });
    Ok(())
}

/// A change that must hit a row, recorded with its audit event in the same transaction:
/// `NotFound(what)` (and nothing recorded) when no row matched, which for another tenant's
/// row is exactly the answer for a missing one.
fn change_one<P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    what: &'static str,
    tenant: &str,
    audit: &AuditDraft,
) -> StoreResult<()> {
    let n = c.execute(sql, params).map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(what));
    }
    append(c, tenant, audit)
}

/// One row, or `NotFound(what)`: the shape of every point lookup.
fn one<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    map: impl FnOnce(&Row) -> rusqlite::Result<T>,
    what: &'static str,
) -> StoreResult<T> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, map))
        .optional()
        .map_err(backend)?
        .ok_or(StoreError::NotFound(what))
}

/// Every row of a query: the shape of every listing.
fn all<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    map: impl FnMut(&Row) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut s = c.prepare_cached(sql).map_err(backend)?;
    let rows = s.query_map(params, map).map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

fn get_user_c(c: &Connection, tenant: &str, user: &str) -> StoreResult<UserRow> {
    one(
        c,
        &format!("SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 AND id = ?2"),
        [tenant, user],
        |r| user_row(r, 0),
        "member",
    )
}

fn owner_count(c: &Connection, tenant: &str) -> StoreResult<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM users WHERE tenant_id = ?1 AND role = 'owner'",
        [tenant],
        |r| r.get(0),
    )
    .map_err(backend)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn insert_user(c: &Connection, u: &UserRow) -> StoreResult<()> {
    c.execute(
        "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at) \
         VALUES (?1,?2,?3,?4,?5,?6)",
        params![
            u.id,
            u.tenant_id,
            u.email,
            u.password_hash,
            u.role.as_str(),
            u.created_at
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("a member with this email already exists".into())
        } else {
            backend(e)
        }
    })?;
    Ok(())
}

/// Revokes every live session family of a user except `keep` (`""` keeps none).
fn revoke_sessions(
    c: &Connection,
    tenant: &str,
    user: &str,
    keep: &str,
    now: i64,
    reason: &str,
) -> StoreResult<u32> {
    let n = c
        .execute(
            "UPDATE sessions SET revoked_at = ?4, revoked_reason = ?5 \
             WHERE tenant_id = ?1 AND user_id = ?2 AND id <> ?3 AND revoked_at IS NULL",
            params![tenant, user, keep, now, reason],
        )
        .map_err(backend)?;
    Ok(n as u32)
}

fn project_exists(c: &Connection, tenant: &str, project: &str) -> StoreResult<()> {
    let n: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM projects WHERE tenant_id = ?1 AND id = ?2",
            [tenant, project],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if n == 0 {
        Err(StoreError::NotFound("project"))
    } else {
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(
        &self,
        t: TenantRow,
        owner: UserRow,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO tenants ({TENANT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"),
                params![
                    t.id,
                    t.slug,
                    t.name,
                    t.plan.as_str(),
                    t.require_mfa,
                    t.created_at,
                    t.expires_at
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("tenant slug '{}' is taken", t.slug))
                } else {
                    backend(e)
                }
            })?;
            insert_user(c, &owner)?;
            append(c, &t.id, &audit)?;
            append(c, SYSTEM_TENANT, &audit)
        })
        .await
    }

    async fn get_tenant(&self, tenant: &str) -> StoreResult<TenantRow> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {TENANT_COLS} FROM tenants WHERE id = ?1 AND deleted_at IS NULL"),
                [tenant],
                |r| tenant_row(r, 0),
                "tenant",
            )
        })
        .await
    }

    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<TenantRow> {
        let slug = slug.to_string();
        self.read(move |c| {
            one(
                c,
                &format!(
                    "SELECT {TENANT_COLS} FROM tenants WHERE slug = ?1 AND deleted_at IS NULL"
                ),
                [slug],
                |r| tenant_row(r, 0),
                "tenant",
            )
        })
        .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<TenantRow>> {
        self.scan(move |c| {
            all(
                c,
                &format!(
                    "SELECT {TENANT_COLS} FROM tenants WHERE deleted_at IS NULL ORDER BY created_at"
                ),
                [],
                |r| tenant_row(r, 0),
            )
        })
        .await
    }

    async fn update_tenant(
        &self,
        tenant: &str,
        plan: Option<PlanTier>,
        require_mfa: Option<bool>,
        clear_expiry: bool,
        audit: AuditDraft,
    ) -> StoreResult<TenantRow> {
        let tenant = tenant.to_string();
        self.write(move |c| {
            if let Some(p) = plan {
                c.execute(
                    "UPDATE tenants SET plan = ?2 WHERE id = ?1",
                    params![tenant, p.as_str()],
                )
                .map_err(backend)?;
            }
            if let Some(m) = require_mfa {
                c.execute(
                    "UPDATE tenants SET require_mfa = ?2 WHERE id = ?1",
                    params![tenant, m],
                )
                .map_err(backend)?;
            }
            if clear_expiry {
                c.execute(
                    "UPDATE tenants SET expires_at = NULL WHERE id = ?1",
                    [&tenant],
                )
                .map_err(backend)?;
            }
            append(c, &tenant, &audit)?;
            one(
                c,
                &format!("SELECT {TENANT_COLS} FROM tenants WHERE id = ?1 AND deleted_at IS NULL"),
                [&tenant],
                |r| tenant_row(r, 0),
                "tenant",
            )
        })
        .await
    }

    async fn delete_tenant(
        &self,
        tenant: &str,
        now: i64,
        audit: AuditDraft,
        system_audit: AuditDraft,
    ) -> StoreResult<()> {
        let tenant = tenant.to_string();
        self.write(move |c| {
            let n: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM tenants WHERE id = ?1 AND deleted_at IS NULL",
                    [&tenant],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound("tenant"));
            }
            let held: bool = c
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM feed_items WHERE tenant_id = ?1 AND hold = 1)",
                    [&tenant],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if held {
                return Err(StoreError::Rule(
                    ErrorCode::OnHold,
                    "a legal hold covers data of this tenant: release it before deleting the tenant".into(),
                ));
            }
            c.execute(
                "DELETE FROM refresh_tokens WHERE session_id IN \
                 (SELECT id FROM sessions WHERE tenant_id = ?1)",
                [&tenant],
            )
            .map_err(backend)?;
            // audit_events is deliberately absent: the chain outlives the tenant.
            for table in [
                "users",
                "recovery_codes",
                "sessions",
                "projects",
                "project_roles",
                "invitations",
                "api_keys",
                "retention_rules",
            ] {
                c.execute(
                    &format!("DELETE FROM {table} WHERE tenant_id = ?1"),
                    [&tenant],
                )
                .map_err(backend)?;
            }
            sync::forget_tenant(c, &tenant, now)?;
            // Tombstone: '~' cannot occur in a slug, so the old slug is free again and the
            // tombstone can never collide with a live tenant.
            c.execute(
                "UPDATE tenants SET deleted_at = ?2, slug = '~deleted~' || id, name = '', \
                 expires_at = NULL WHERE id = ?1",
                params![tenant, now],
            )
            .map_err(backend)?;
            append(c, &tenant, &audit)?;
            append(c, SYSTEM_TENANT, &system_audit)
        })
        .await
    }

    async fn deleted_tenants(&self) -> StoreResult<Vec<(String, i64)>> {
        self.scan(move |c| {
            all(
                c,
                "SELECT id, deleted_at FROM tenants WHERE deleted_at IS NOT NULL \
                     ORDER BY deleted_at, id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    async fn expired_trials(&self, now: i64) -> StoreResult<Vec<String>> {
        self.scan(move |c| {
            all(c, "SELECT id FROM tenants WHERE plan = 'trial' AND expires_at <= ?1 AND deleted_at IS NULL", [now], |r| r.get(0))
        })
        .await
    }

    async fn user_by_email(&self, tenant: &str, email: &str) -> StoreResult<UserRow> {
        let (tenant, email) = (tenant.to_string(), email.to_string());
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 AND email = ?2"),
                [tenant, email],
                |r| user_row(r, 0),
                "member",
            )
        })
        .await
    }

    async fn get_user(&self, tenant: &str, user: &str) -> StoreResult<UserRow> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.read(move |c| get_user_c(c, &tenant, &user)).await
    }

    async fn list_users(&self, tenant: &str) -> StoreResult<Vec<UserRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            all(
                c,
                &format!("SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 ORDER BY email"),
                [tenant],
                |r| user_row(r, 0),
            )
        })
        .await
    }

    async fn auth_lookup(&self, tenant: &str, user: &str, session: &str) -> StoreResult<AuthRow> {
        // Read the epoch BEFORE the rows: a write committed in between makes the entry stale
        // at once (see the module doc).
        let epoch = self.epoch.load(Ordering::SeqCst);
        let key = (tenant.to_string(), user.to_string(), session.to_string());
        if let Some(row) = self.auth_cache.get(&key, epoch, |_| true) {
            return Ok(row);
        }
        let (t, u, s) = key.clone();
        let row = self
            .read(move |c| {
                let mut st = c.prepare_cached(&AUTH_SQL).map_err(backend)?;
                st.query_row([&t, &u, &s], |r| {
                    let revoked: Option<bool> = r.get(19)?;
                    Ok(AuthRow {
                        user: user_row(r, 0)?,
                        tenant: tenant_row(r, 12)?,
                        // A missing session counts as revoked (API keys pass "").
                        session_revoked: revoked.unwrap_or(!s.is_empty()),
                    })
                })
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound("member"))
            })
            .await?;
        self.auth_cache.put(key, epoch, row.clone());
        Ok(row)
    }

    async fn set_role(
        &self,
        tenant: &str,
        user: &str,
        role: Role,
        audit: AuditDraft,
    ) -> StoreResult<UserRow> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            let u = get_user_c(c, &tenant, &user)?;
            if u.role == Role::Owner && role != Role::Owner && owner_count(c, &tenant)? <= 1 {
                return Err(StoreError::Conflict(
                    "the last Owner cannot be demoted; transfer ownership first".into(),
                ));
            }
            c.execute(
                "UPDATE users SET role = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, user, role.as_str()],
            )
            .map_err(backend)?;
            append(c, &tenant, &audit)?;
            get_user_c(c, &tenant, &user)
        })
        .await
    }

    async fn delete_user(&self, tenant: &str, user: &str, audit: AuditDraft) -> StoreResult<()> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            let u = get_user_c(c, &tenant, &user)?;
            if u.role == Role::Owner && owner_count(c, &tenant)? <= 1 {
                return Err(StoreError::Conflict(
                    "the last Owner cannot be removed; transfer ownership or delete the tenant"
                        .into(),
                ));
            }
            c.execute(
                "DELETE FROM refresh_tokens WHERE session_id IN \
                 (SELECT id FROM sessions WHERE tenant_id = ?1 AND user_id = ?2)",
                [&tenant, &user],
            )
            .map_err(backend)?;
            for sql in [
                "DELETE FROM sessions WHERE tenant_id = ?1 AND user_id = ?2",
                "DELETE FROM recovery_codes WHERE tenant_id = ?1 AND user_id = ?2",
                "DELETE FROM project_roles WHERE tenant_id = ?1 AND user_id = ?2",
                "DELETE FROM api_keys WHERE tenant_id = ?1 AND created_by = ?2",
                "DELETE FROM users WHERE tenant_id = ?1 AND id = ?2",
            ] {
                c.execute(sql, [&tenant, &user]).map_err(backend)?;
            }
            append(c, &tenant, &audit)
        })
        .await
    }

    async fn transfer_ownership(
        &self,
        tenant: &str,
        from: &str,
        to: &str,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (tenant, from, to) = (tenant.to_string(), from.to_string(), to.to_string());
        self.write(move |c| {
            get_user_c(c, &tenant, &to)?;
            if from == to {
                return Err(StoreError::Conflict("already the Owner".into()));
            }
            c.execute(
                "UPDATE users SET role = 'owner' WHERE tenant_id = ?1 AND id = ?2",
                [&tenant, &to],
            )
            .map_err(backend)?;
            c.execute(
                "UPDATE users SET role = 'admin' WHERE tenant_id = ?1 AND id = ?2",
                [&tenant, &from],
            )
            .map_err(backend)?;
            append(c, &tenant, &audit)
        })
        .await
    }

    async fn login_failed(
        &self,
        tenant: &str,
        user: &str,
        now: i64,
        max: i64,
        lock_secs: i64,
        audit: Vec<AuditDraft>,
    ) -> StoreResult<Option<i64>> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            let u = get_user_c(c, &tenant, &user)?;
            let failed = u.failed_logins + 1;
            let locked = if failed >= max {
                Some(now + lock_secs)
            } else {
                None
            };
            c.execute(
                "UPDATE users SET failed_logins = ?3, locked_until = COALESCE(?4, locked_until) \
                 WHERE tenant_id = ?1 AND id = ?2",
                params![
                    tenant,
                    user,
                    if locked.is_some() { 0 } else { failed },
                    locked
                ],
            )
            .map_err(backend)?;
            let n = if locked.is_some() {
                audit.len()
            } else {
                audit.len().min(1)
            };
            for ev in audit.iter().take(n) {
                append(c, &tenant, ev)?;
            }
            Ok(locked)
        })
        .await
    }

    async fn login_succeeded(&self, tenant: &str, user: &str) -> StoreResult<()> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE tenant_id = ?1 AND id = ?2",
                [&tenant, &user],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn set_totp_pending(&self, tenant: &str, user: &str, secret: Vec<u8>) -> StoreResult<()> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE users SET totp_pending = ?3 WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, user, secret],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound("member"));
            }
            Ok(())
        })
        .await
    }

    async fn confirm_totp(
        &self,
        tenant: &str,
        user: &str,
        step: i64,
        recovery_hashes: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?3 \
                     WHERE tenant_id = ?1 AND id = ?2 AND totp_pending IS NOT NULL",
                    params![tenant, user, step],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Conflict("no MFA enrolment in progress".into()));
            }
            c.execute(
                "DELETE FROM recovery_codes WHERE tenant_id = ?1 AND user_id = ?2",
                [&tenant, &user],
            )
            .map_err(backend)?;
            for h in &recovery_hashes {
                c.execute(
                    "INSERT INTO recovery_codes (tenant_id, user_id, code_hash) VALUES (?1,?2,?3)",
                    [&tenant, &user, h],
                )
                .map_err(backend)?;
            }
            append(c, &tenant, &audit)
        })
        .await
    }

    async fn advance_totp_step(&self, tenant: &str, user: &str, step: i64) -> StoreResult<bool> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE users SET totp_last_step = ?3 WHERE tenant_id = ?1 AND id = ?2 \
                     AND (totp_last_step IS NULL OR totp_last_step < ?3)",
                    params![tenant, user, step],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn use_recovery_code(&self, tenant: &str, user: &str, hash: &str) -> StoreResult<bool> {
        let (tenant, user, hash) = (tenant.to_string(), user.to_string(), hash.to_string());
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE recovery_codes SET used_at = strftime('%s','now') \
                     WHERE tenant_id = ?1 AND user_id = ?2 AND code_hash = ?3 AND used_at IS NULL",
                    [&tenant, &user, &hash],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn change_password(
        &self,
        tenant: &str,
        user: &str,
        new_hash: String,
        keep_session: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<u32> {
        let (tenant, user, keep) = (
            tenant.to_string(),
            user.to_string(),
            keep_session.to_string(),
        );
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE users SET password_hash = ?3, failed_logins = 0, locked_until = NULL \
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, user, new_hash],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound("member"));
            }
            let revoked = revoke_sessions(c, &tenant, &user, &keep, now, "password_change")?;
            append(c, &tenant, &audit)?;
            Ok(revoked)
        })
        .await
    }

    async fn reset_mfa(
        &self,
        tenant: &str,
        user: &str,
        keep_session: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<u32> {
        let (tenant, user, keep) = (
            tenant.to_string(),
            user.to_string(),
            keep_session.to_string(),
        );
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL \
                     WHERE tenant_id = ?1 AND id = ?2 AND totp_secret IS NOT NULL",
                    [&tenant, &user],
                )
                .map_err(backend)?;
            if n == 0 {
                get_user_c(c, &tenant, &user)?;
                return Err(StoreError::Conflict("MFA is not enrolled".into()));
            }
            c.execute(
                "DELETE FROM recovery_codes WHERE tenant_id = ?1 AND user_id = ?2",
                [&tenant, &user],
            )
            .map_err(backend)?;
            // A kept session must not carry a step-up that no longer exists.
            c.execute(
                "UPDATE sessions SET mfa_at = NULL WHERE tenant_id = ?1 AND user_id = ?2",
                [&tenant, &user],
            )
            .map_err(backend)?;
            let revoked = revoke_sessions(c, &tenant, &user, &keep, now, "mfa_reset")?;
            append(c, &tenant, &audit)?;
            Ok(revoked)
        })
        .await
    }

    async fn touch_activity(&self, tenant: &str, user: &str, now: i64) -> StoreResult<()> {
        let (tenant, user) = (tenant.to_string(), user.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE users SET last_active_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, user, now],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn create_session(&self, s: NewSession) -> StoreResult<()> {
        let NewSession {
            tenant,
            user,
            family,
            token_hash,
            now,
            expires_at,
            mfa_at,
        } = s;
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions (id, tenant_id, user_id, created_at, mfa_at) VALUES (?1,?2,?3,?4,?5)",
                params![family, tenant, user, now, mfa_at],
            )
            .map_err(backend)?;
            c.execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) VALUES (?1,?2,?3,?4)",
                params![token_hash, family, now, expires_at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        token_hash: &str,
        new_hash: &str,
        now: i64,
        new_expires_at: i64,
        grace_secs: i64,
    ) -> StoreResult<RefreshOutcome> {
        let (token_hash, new_hash) = (token_hash.to_string(), new_hash.to_string());
        self.write(move |c| {
            let row: Option<(String, i64, Option<i64>, Option<String>, String, String, Option<i64>, Option<i64>)> = c
                .query_row(
                    "SELECT r.session_id, r.expires_at, r.used_at, r.successor, s.tenant_id, s.user_id, \
                     s.revoked_at, s.mfa_at FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
                     WHERE r.hash = ?1",
                    [&token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((session, expires, used_at, successor, tenant, user, revoked, mfa_at)) = row else {
                return Ok(RefreshOutcome::Invalid);
            };
            if revoked.is_some() {
                return Ok(RefreshOutcome::Invalid);
            }
            if used_at.is_none() && expires <= now {
                return Ok(RefreshOutcome::Invalid);
            }
            let rotate = |c: &Connection| -> StoreResult<()> {
                c.execute(
                    "UPDATE refresh_tokens SET used_at = COALESCE(used_at, ?2), successor = ?3 WHERE hash = ?1",
                    params![token_hash, now, new_hash],
                )
                .map_err(backend)?;
                c.execute(
                    "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) VALUES (?1,?2,?3,?4)",
                    params![new_hash, session, now, new_expires_at],
                )
                .map_err(backend)?;
                Ok(())
            };
            match used_at {
                None => {
                    rotate(c)?;
                }
                Some(used) => {
                    // A retry whose response was lost: tolerated within the grace window if the
                    // successor it produced has not been used yet; that successor is retired.
                    let successor_unused: bool = match &successor {
                        Some(s) => c
                            .query_row(
                                "SELECT used_at IS NULL FROM refresh_tokens WHERE hash = ?1",
                                [s],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(backend)?
                            .unwrap_or(false),
                        None => false,
                    };
                    if now - used <= grace_secs && successor_unused {
                        let s = successor.clone().unwrap_or_default();
                        c.execute(
                            "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                            params![s, now],
                        )
                        .map_err(backend)?;
                        rotate(c)?;
                    } else {
                        c.execute(
                            "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'refresh_token_reuse' WHERE id = ?1",
                            params![session, now],
                        )
                        .map_err(backend)?;
                        return Ok(RefreshOutcome::Reused { tenant_id: tenant, user_id: user });
                    }
                }
            }
            Ok(RefreshOutcome::Rotated { user_id: user, tenant_id: tenant, family_id: session, mfa_at })
        })
        .await
    }

    async fn revoke_by_refresh(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(String, String)>> {
        let token_hash = token_hash.to_string();
        self.write(move |c| {
            let row: Option<(String, String, String)> = c
                .query_row(
                    "SELECT s.id, s.tenant_id, s.user_id FROM refresh_tokens r JOIN sessions s \
                     ON s.id = r.session_id WHERE r.hash = ?1",
                    [&token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((session, tenant, user)) = row else {
                return Ok(None);
            };
            c.execute(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2), \
                 revoked_reason = COALESCE(revoked_reason, 'logout') WHERE id = ?1",
                params![session, now],
            )
            .map_err(backend)?;
            Ok(Some((tenant, user)))
        })
        .await
    }

    async fn set_session_mfa(&self, tenant: &str, family: &str, mfa_at: i64) -> StoreResult<()> {
        let (tenant, family) = (tenant.to_string(), family.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE sessions SET mfa_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![tenant, family, mfa_at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn create_project(
        &self,
        tenant: &str,
        p: ProjectRow,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let tenant = tenant.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT INTO projects (id, tenant_id, name, created_at) VALUES (?1,?2,?3,?4)",
                params![p.id, tenant, p.name, p.created_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("a project with this id exists".into())
                } else {
                    backend(e)
                }
            })?;
            append(c, &tenant, &audit)
        })
        .await
    }

    async fn list_projects(&self, tenant: &str) -> StoreResult<Vec<ProjectRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            all(c, "SELECT id, name, created_at FROM projects WHERE tenant_id = ?1 ORDER BY created_at, id", [tenant], |r| {
                    Ok(ProjectRow { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)? })
                })
        })
        .await
    }

    async fn get_project(&self, tenant: &str, project: &str) -> StoreResult<ProjectRow> {
        let (tenant, project) = (tenant.to_string(), project.to_string());
        self.read(move |c| {
            one(
                c,
                "SELECT id, name, created_at FROM projects WHERE tenant_id = ?1 AND id = ?2",
                [tenant, project],
                |r| {
                    Ok(ProjectRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
                "project",
            )
        })
        .await
    }

    async fn delete_project(
        &self,
        tenant: &str,
        project: &str,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (tenant, project) = (tenant.to_string(), project.to_string());
        self.write(move |c| {
            project_exists(c, &tenant, &project)?;
            if sync::project_held_c(c, &tenant, &project)? {
                return Err(StoreError::Rule(
                    ErrorCode::OnHold,
                    "a legal hold covers data of this project: release it before deleting the project".into(),
                ));
            }
            sync::forget_project(c, &tenant, &project, audit.timestamp.unix_timestamp())?;
            for sql in [
                "DELETE FROM project_roles WHERE tenant_id = ?1 AND project_id = ?2",
                "DELETE FROM retention_rules WHERE tenant_id = ?1 AND project_id = ?2",
                "DELETE FROM projects WHERE tenant_id = ?1 AND id = ?2",
            ] {
                c.execute(sql, [&tenant, &project]).map_err(backend)?;
            }
            append(c, &tenant, &audit)
        })
        .await
    }

    async fn set_project_role(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
        role: Role,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (tenant, project, user) = (tenant.to_string(), project.to_string(), user.to_string());
        self.write(move |c| {
            project_exists(c, &tenant, &project)?;
            get_user_c(c, &tenant, &user)?;
            c.execute(
                "INSERT INTO project_roles (tenant_id, project_id, user_id, role) VALUES (?1,?2,?3,?4) \
                 ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
                params![tenant, project, user, role.as_str()],
            )
            .map_err(backend)?;
            append(c, &tenant, &audit)
        })
        .await
    }

    async fn remove_project_role(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (tenant, project, user) = (tenant.to_string(), project.to_string(), user.to_string());
        self.write(move |c| {
            change_one(c, "DELETE FROM project_roles WHERE tenant_id = ?1 AND project_id = ?2 AND user_id = ?3", [&tenant, &project, &user], "project role assignment", &tenant, &audit)
        })
        .await
    }

    async fn project_roles(&self, tenant: &str) -> StoreResult<Vec<ProjectRoleRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            all(
                c,
                "SELECT project_id, user_id, role FROM project_roles WHERE tenant_id = ?1",
                [tenant],
                |r| {
                    Ok(ProjectRoleRow {
                        project_id: r.get(0)?,
                        user_id: r.get(1)?,
                        role: role_of(r.get(2)?)?,
                    })
                },
            )
        })
        .await
    }

    async fn access_snapshot(&self, tenant: &str, now: i64) -> StoreResult<Arc<AccessSnapshot>> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(e) = self.snap_cache.get(tenant, epoch, |e| now < e.valid_until) {
            return Ok(e.snap);
        }
        let key = tenant.to_string();
        let tenant = key.clone();
        let snap = self.read(move |c| {
            let exec = |sql: &str| c.prepare_cached(sql).and_then(|mut s| s.execute([]));
            exec("BEGIN").map_err(backend)?;
            let r = (|| -> rusqlite::Result<AccessSnapshot> {
                let mut s = c.prepare_cached(&format!(
                    "SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 ORDER BY email"
                ))?;
                let users = s
                    .query_map([&tenant], |r| user_row(r, 0))?
                    .collect::<Result<_, _>>()?;
                let mut s = c.prepare_cached(
                    "SELECT id, name, created_at FROM projects WHERE tenant_id = ?1 ORDER BY created_at, id",
                )?;
                let projects = s
                    .query_map([&tenant], |r| {
                        Ok(ProjectRow {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            created_at: r.get(2)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut s = c.prepare_cached(
                    "SELECT project_id, user_id, role FROM project_roles WHERE tenant_id = ?1",
                )?;
                let roles = s
                    .query_map([&tenant], |r| {
                        Ok(ProjectRoleRow {
                            project_id: r.get(0)?,
                            user_id: r.get(1)?,
                            role: role_of(r.get(2)?)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut s = c.prepare_cached(&format!(
                    "SELECT {INV_COLS} FROM invitations WHERE tenant_id = ?1 AND closed_at IS NULL \
                     AND expires_at > ?2 ORDER BY created_at"
                ))?;
                let invitations = s
                    .query_map(params![tenant, now], invitation_row)?
                    .collect::<Result<_, _>>()?;
                Ok(AccessSnapshot {
                    users,
                    projects,
                    roles,
                    invitations,
                })
            })();
            let _ = exec("COMMIT");
            r.map_err(backend)
        })
        .await?;
        // Valid until the first of its invitations expires (time, not a write, changes it).
        let valid_until = snap
            .invitations
            .iter()
            .map(|i| i.expires_at)
            .min()
            .unwrap_or(i64::MAX);
        let snap = Arc::new(snap);
        self.snap_cache.put(
            key,
            epoch,
            SnapEntry {
                snap: snap.clone(),
                valid_until,
            },
        );
        Ok(snap)
    }

    async fn create_invitation(&self, inv: InvitationRow, audit: AuditDraft) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO invitations ({INV_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,NULL)"),
                params![
                    inv.id,
                    inv.tenant_id,
                    inv.email,
                    inv.role.as_str(),
                    inv.token_hash,
                    inv.created_at,
                    inv.expires_at
                ],
            )
            .map_err(backend)?;
            append(c, &inv.tenant_id, &audit)
        })
        .await
    }

    async fn pending_invitations(&self, tenant: &str, now: i64) -> StoreResult<Vec<InvitationRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {INV_COLS} FROM invitations WHERE tenant_id = ?1 AND closed_at IS NULL \
                     AND expires_at > ?2 ORDER BY created_at"
                ),
                params![tenant, now],
                invitation_row,
            )
        })
        .await
    }

    async fn revoke_invitation(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |c| {
            change_one(c, "UPDATE invitations SET closed_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND closed_at IS NULL", params![tenant, id, now], "invitation", &tenant, &audit)
        })
        .await
    }

    async fn invitation_by_token(&self, token_hash: &str) -> StoreResult<InvitationRow> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {INV_COLS} FROM invitations WHERE token_hash = ?1"),
                [token_hash],
                invitation_row,
                "invitation",
            )
        })
        .await
    }

    async fn accept_invitation(
        &self,
        invitation: &str,
        user: UserRow,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let invitation = invitation.to_string();
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE invitations SET closed_at = ?2 WHERE id = ?1 AND tenant_id = ?3 \
                     AND closed_at IS NULL AND expires_at > ?2",
                    params![invitation, now, user.tenant_id],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound("invitation"));
            }
            insert_user(c, &user)?;
            append(c, &user.tenant_id, &audit)
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKeyRow, audit: AuditDraft) -> StoreResult<()> {
        self.write(move |c| {
            if let Some(p) = &key.project_id {
                project_exists(c, &key.tenant_id, p)?;
            }
            c.execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,NULL)"
                ),
                params![
                    key.id,
                    key.tenant_id,
                    key.name,
                    key.role.as_str(),
                    key.project_id,
                    key.secret_hash,
                    key.created_by,
                    key.created_at,
                    key.expires_at
                ],
            )
            .map_err(backend)?;
            append(c, &key.tenant_id, &audit)
        })
        .await
    }

    async fn list_api_keys(&self, tenant: &str) -> StoreResult<Vec<ApiKeyRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at"
                ),
                [tenant],
                api_key_row,
            )
        })
        .await
    }

    async fn api_key(&self, id: &str) -> StoreResult<ApiKeyRow> {
        let id = id.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?1"),
                [id],
                api_key_row,
                "api key",
            )
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |c| {
            change_one(c, "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE tenant_id = ?1 AND id = ?2", params![tenant, id, now], "api key", &tenant, &audit)
        })
        .await
    }

    async fn append_audit(&self, tenant: &str, ev: AuditDraft) -> StoreResult<()> {
        let tenant = tenant.to_string();
        // A bare append changes no cached row, so it does not bump the epoch.
        self.write_job(move |c| append(c, &tenant, &ev), false)
            .await
    }

    async fn query_audit(
        &self,
        tenant: &str,
        f: AuditFilter,
        limit: u32,
    ) -> StoreResult<Vec<AuditRow>> {
        self.audit_select(tenant, f, limit, audit_row).await
    }

    async fn audit_page(
        &self,
        tenant: &str,
        f: AuditFilter,
        limit: u32,
    ) -> StoreResult<Vec<AuditJson>> {
        self.audit_select(tenant, f, limit, audit_wire_row).await
    }

    async fn audit_page_json(
        &self,
        tenant: &str,
        f: &AuditFilter,
        limit: u32,
    ) -> Option<Vec<(u64, Arc<str>)>> {
        let unfiltered = f.from.is_none()
            && f.to.is_none()
            && f.user.is_none()
            && f.result.is_none()
            && f.action_prefix.is_none()
            && f.resource_prefix.is_none();
        if !unfiltered || limit as usize > TAIL_MAX {
            return None;
        }
        self.tail.page(tenant, f.before_seq, limit)
    }

    async fn audit_chain(&self, tenant: &str) -> StoreResult<Vec<AuditRow>> {
        let tenant = tenant.to_string();
        self.scan(move |c| {
            all(
                c,
                &format!("SELECT {AUDIT_COLS} FROM audit_events WHERE {AUDIT_TENANT} ORDER BY seq"),
                [tenant],
                audit_row,
            )
        })
        .await
    }

    async fn retention_rules(&self, tenant: &str) -> StoreResult<Vec<RetentionRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            all(
                c,
                "SELECT project_id, data_type, period FROM retention_rules WHERE tenant_id = ?1 \
                     ORDER BY project_id, data_type",
                [tenant],
                |r| {
                    let p: String = r.get(0)?;
                    Ok(RetentionRow {
                        project_id: if p.is_empty() { None } else { Some(p) },
                        data_type: r.get(1)?,
                        period: r.get(2)?,
                    })
                },
            )
        })
        .await
    }

    async fn set_retention_rules(
        &self,
        tenant: &str,
        rules: Vec<RetentionRow>,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let tenant = tenant.to_string();
        self.write(move |c| {
            for r in &rules {
                if let Some(p) = &r.project_id {
                    project_exists(c, &tenant, p)?;
                }
                c.execute(
                    "INSERT INTO retention_rules (tenant_id, project_id, data_type, period) VALUES (?1,?2,?3,?4) \
                     ON CONFLICT (tenant_id, project_id, data_type) DO UPDATE SET period = excluded.period",
                    params![tenant, r.project_id.clone().unwrap_or_default(), r.data_type, r.period],
                )
                .map_err(backend)?;
            }
            append(c, &tenant, &audit)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labvault_governance::audit::actions;
    use std::sync::atomic::AtomicUsize;

    fn draft(action: &str) -> AuditDraft {
        AuditDraft {
            timestamp: time::OffsetDateTime::from_unix_timestamp(1_770_000_000).unwrap(),
            user: "owner@lab.test".into(),
            action: action.into(),
            resource: "access-review".into(),
            ip_address: "127.0.0.1".into(),
            user_agent: "test".into(),
            result: AuditResult::Success,
            detail: String::new(),
        }
    }

    fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        (dir, Arc::new(s))
    }

    /// A database of schema 4 (events in the old one-table form) is migrated to the compact
    /// tables without changing one byte of any event: every chain reads back equal, verifies,
    /// and grows on from its head; and the same events take far fewer bytes.
    #[tokio::test]
    async fn existing_chains_move_to_the_compact_audit_tables_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut before = Vec::new();
        {
            let c = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                c.execute_batch(sql).unwrap();
            }
            c.execute_batch("PRAGMA user_version = 4").unwrap();
            for t in ["t1", "t2"] {
                let mut prev = chain::genesis(t);
                for seq in 1..=30u64 {
                    let mut d = draft(if seq % 2 == 0 {
                        actions::AUDIT_QUERY
                    } else {
                        actions::ACCESS_REVIEW_VIEW
                    });
                    if seq % 3 == 0 {
                        d.detail = format!("n={seq}");
                    }
                    if seq == 5 {
                        d.result = AuditResult::Denied;
                    }
                    if seq == 7 {
                        d.result = AuditResult::Failure;
                        d.user = format!("other@{t}.test");
                    }
                    let e = chain::seal(t, seq, prev, &d).unwrap();
                    c.execute(
                        "INSERT INTO audit_events (tenant_id, seq, ts_us, user, action, resource, \
                         ip_address, user_agent, result, detail, v, prev_hash, hash) \
                         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
                        params![
                            t,
                            seq as i64,
                            labvault_governance::audit::unix_micros(e.timestamp),
                            e.user,
                            e.action.as_str(),
                            e.resource,
                            e.ip_address,
                            e.user_agent,
                            e.result.as_str(),
                            e.detail,
                            i64::from(e.v),
                            hex::encode(e.prev_hash),
                            hex::encode(e.hash)
                        ],
                    )
                    .unwrap();
                    prev = e.hash;
                    before.push(e);
                }
            }
        }
        let s = SqliteStore::open(&path).unwrap();
        for t in ["t1", "t2"] {
            let chain = s.audit_chain(t).await.unwrap();
            let want: Vec<_> = before
                .iter()
                .filter(|e| e.device_id == t)
                .cloned()
                .collect();
            assert_eq!(chain, want, "{t}");
            assert_eq!(chain::verify(&chain).unwrap(), 30);
        }
        let f = AuditFilter {
            result: Some(AuditResult::Denied),
            ..AuditFilter::default()
        };
        let denied = s.query_audit("t1", f, 10).await.unwrap();
        assert_eq!(denied.iter().map(|e| e.seq).collect::<Vec<_>>(), [5]);
        let f = AuditFilter {
            user: Some("other@t1.test".into()),
            ..AuditFilter::default()
        };
        let by_user = s.query_audit("t1", f, 10).await.unwrap();
        assert_eq!(by_user.iter().map(|e| e.seq).collect::<Vec<_>>(), [7]);
        assert_eq!(by_user[0].result, AuditResult::Failure);
        s.append_audit("t1", draft(actions::AUDIT_QUERY))
            .await
            .unwrap();
        let chain = s.audit_chain("t1").await.unwrap();
        assert_eq!(chain::verify(&chain).unwrap(), 31);
        // The 60 events: each string once, hashes as bytes, no repeated previous hash.
        let c = Connection::open(&path).unwrap();
        let row_bytes: i64 = c
            .query_row(
                "SELECT sum(8 + 8 + 6 * 2 + 1 + coalesce(length(detail), 0) + 1 \
                 + coalesce(length(prev), 0) + length(hash)) FROM audit_log",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let old_bytes: usize = before
            .iter()
            .map(|e| {
                36 + 16
                    + e.user.len()
                    + e.action.as_str().len()
                    + e.resource.len()
                    + e.ip_address.len()
                    + e.user_agent.len()
                    + e.result.as_str().len()
                    + e.detail.len()
                    + 1
                    + 128
            })
            .sum();
        assert!(
            (row_bytes as usize) * 3 < old_bytes * 2,
            "{row_bytes} bytes now vs {old_bytes} before"
        );
    }

    /// Occupies the writer until the returned sender is used (or dropped), so that the jobs
    /// queued meanwhile are committed as one batch.
    async fn block_writer(
        s: &Arc<SqliteStore>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel::<()>();
        let s2 = s.clone();
        let h = tokio::spawn(async move {
            s2.write(move |_| {
                let _ = started_tx.send(());
                let _ = wait.recv();
                Ok(())
            })
            .await
            .unwrap();
        });
        started.await.unwrap();
        (release, h)
    }

    /// Spawns `n` appends on the current-thread runtime and returns once every one of them
    /// has queued its job (each task queues before its first await).
    async fn queue_appends(
        s: &Arc<SqliteStore>,
        tenant: &str,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<StoreResult<()>>> {
        let queued = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (s, q, t) = (s.clone(), queued.clone(), tenant.to_string());
                tokio::spawn(async move {
                    q.fetch_add(1, Ordering::SeqCst);
                    s.append_audit(&t, draft(actions::ACCESS_REVIEW_VIEW)).await
                })
            })
            .collect();
        while queued.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
        handles
    }

    #[tokio::test]
    async fn concurrent_appends_share_one_commit_and_chain_verifies() {
        let (_d, s) = store();
        let (release, blocker) = block_writer(&s).await;
        let before = s.commit_count();
        let handles = queue_appends(&s, "t1", 200).await;
        release.send(()).unwrap();
        blocker.await.unwrap();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        // The blocker's batch, then ONE batch for all 200 events.
        assert_eq!(s.commit_count(), before + 2);
        let chain = s.audit_chain("t1").await.unwrap();
        assert_eq!(chain.len(), 200);
        assert!(chain.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
        assert_eq!(chain::verify(&chain).unwrap(), 200);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_waiter_and_keeps_nothing() {
        let (_d, s) = store();
        for _ in 0..3 {
            s.append_audit("t1", draft(actions::AUDIT_QUERY))
                .await
                .unwrap();
        }
        let (release, blocker) = block_writer(&s).await;
        // A job whose own statements succeed but whose batch cannot commit: a deferred
        // foreign-key violation is only detected by COMMIT.
        let s2 = s.clone();
        let bad = tokio::spawn(async move {
            s2.write(|c| {
                c.execute_batch(
                    "PRAGMA defer_foreign_keys=ON; \
                     INSERT INTO users (id, tenant_id, email, password_hash, role, created_at) \
                     VALUES ('u', 'no-such-tenant', 'x@y.test', 'h', 'viewer', 0);",
                )
                .map_err(backend)
            })
            .await
        });
        tokio::task::yield_now().await;
        let handles = queue_appends(&s, "t1", 50).await;
        release.send(()).unwrap();
        blocker.await.unwrap();
        let err = bad.await.unwrap().unwrap_err();
        assert!(
            matches!(err, StoreError::Backend(ref m) if m.contains("FOREIGN KEY")),
            "{err}"
        );
        for h in handles {
            assert!(matches!(h.await.unwrap(), Err(StoreError::Backend(_))));
        }
        // Nothing of the failed batch was kept; the chain goes on from where it was.
        assert_eq!(s.audit_chain("t1").await.unwrap().len(), 3);
        s.append_audit("t1", draft(actions::AUDIT_QUERY))
            .await
            .unwrap();
        let chain = s.audit_chain("t1").await.unwrap();
        assert_eq!(
            chain.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(chain::verify(&chain).unwrap(), 4);
        let users: i64 = s
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
                    .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(users, 0);
    }

    async fn tenant_with_owner(s: &SqliteStore) -> (String, String) {
        let t = TenantRow {
            id: "t1".into(),
            slug: "lab".into(),
            name: "Lab".into(),
            plan: PlanTier::Professional,
            require_mfa: false,
            created_at: 0,
            expires_at: None,
        };
        let u = UserRow {
            id: "u1".into(),
            tenant_id: "t1".into(),
            email: "owner@lab.test".into(),
            password_hash: "h".into(),
            role: Role::Owner,
            totp_secret: None,
            totp_pending: None,
            totp_last_step: None,
            failed_logins: 0,
            locked_until: None,
            created_at: 0,
            last_active_at: None,
        };
        s.create_tenant(t, u, draft(actions::TENANT_CREATE))
            .await
            .unwrap();
        ("t1".into(), "u1".into())
    }

    #[tokio::test]
    async fn cached_auth_rows_see_a_revocation_at_once_but_not_audit_appends() {
        let (_d, s) = store();
        let (t, u) = tenant_with_owner(&s).await;
        s.create_session(NewSession {
            tenant: t.clone(),
            user: u.clone(),
            family: "f1".into(),
            token_hash: "rt1".into(),
            now: 10,
            expires_at: 1000,
            mfa_at: None,
        })
        .await
        .unwrap();
        assert!(!s.auth_lookup(&t, &u, "f1").await.unwrap().session_revoked);
        let epoch = s.epoch.load(Ordering::SeqCst);
        s.append_audit(&t, draft(actions::ACCESS_REVIEW_VIEW))
            .await
            .unwrap();
        assert_eq!(
            s.epoch.load(Ordering::SeqCst),
            epoch,
            "appends keep the cache"
        );
        assert!(s.revoke_by_refresh("rt1", 20).await.unwrap().is_some());
        assert!(s.auth_lookup(&t, &u, "f1").await.unwrap().session_revoked);
        // An unknown session is revoked, cached or not.
        assert!(s.auth_lookup(&t, &u, "nope").await.unwrap().session_revoked);
    }

    #[tokio::test]
    async fn cached_access_snapshot_follows_writes_and_invitation_expiry() {
        let (_d, s) = store();
        let (t, _) = tenant_with_owner(&s).await;
        let inv = |id: &str, expires_at: i64| InvitationRow {
            id: id.into(),
            tenant_id: t.clone(),
            email: format!("{id}@lab.test"),
            role: Role::Editor,
            token_hash: format!("hash-{id}"),
            created_at: 0,
            expires_at,
            closed_at: None,
        };
        s.create_invitation(inv("a", 100), draft(actions::INVITATION_CREATE))
            .await
            .unwrap();
        let snap = s.access_snapshot(&t, 50).await.unwrap();
        assert_eq!((snap.projects.len(), snap.invitations.len()), (0, 1));
        // Served from the cache while nothing changes...
        assert!(Arc::ptr_eq(
            &snap,
            &s.access_snapshot(&t, 60).await.unwrap()
        ));
        // ...but not once its invitation has expired, with no write in between.
        assert!(s
            .access_snapshot(&t, 100)
            .await
            .unwrap()
            .invitations
            .is_empty());
        let p = ProjectRow {
            id: "p1".into(),
            name: "p".into(),
            created_at: 1,
        };
        s.create_project(&t, p, draft(actions::PROJECT_CREATE))
            .await
            .unwrap();
        assert_eq!(s.access_snapshot(&t, 101).await.unwrap().projects.len(), 1);
    }

    #[tokio::test]
    async fn audit_tail_pages_are_byte_identical_to_database_pages() {
        let (_d, s) = store();
        // A failed batch in the middle publishes nothing to the tail.
        for _ in 0..20 {
            s.append_audit("t1", draft(actions::AUDIT_QUERY))
                .await
                .unwrap();
        }
        let r = s
            .write(|c| {
                append(c, "t1", &draft(actions::AUDIT_QUERY))?;
                Err::<(), _>(StoreError::Conflict("job fails after its append".into()))
            })
            .await;
        assert!(r.is_err());
        for i in 0..100 {
            let mut d = draft(actions::ACCESS_REVIEW_VIEW);
            d.user_agent = format!("agent \"{i}\" \u{e9}\\");
            s.append_audit("t1", d).await.unwrap();
        }
        let cases: &[(Option<i64>, u32)] = &[
            (None, 50),
            (None, 1),
            (None, 120),
            (Some(61), 50),
            (Some(30), 50),
            (Some(500), 7),
        ];
        for &(before, limit) in cases {
            let f = AuditFilter {
                before_seq: before,
                ..AuditFilter::default()
            };
            let fast = s
                .audit_page_json("t1", &f, limit)
                .await
                .unwrap_or_else(|| panic!("tail serves {before:?} {limit}"));
            let events = s.audit_page("t1", f, limit).await.unwrap();
            let next_cursor = (events.len() as u32 == limit)
                .then(|| events.last().map(|r| r.seq.to_string()))
                .flatten();
            #[derive(serde::Serialize)]
            struct Page {
                events: Vec<AuditJson>,
                next_cursor: Option<String>,
            }
            let slow = serde_json::to_string(&Page {
                events,
                next_cursor,
            })
            .unwrap();
            assert_eq!(crate::api::governance::page_body(&fast, limit), slow);
            // The undecoded JSON is exactly the wire page of governance events.
            let typed: labvault_wire::AuditPage = serde_json::from_str(&slow).unwrap();
            assert_eq!(serde_json::to_string(&typed).unwrap(), slow);
        }
        // Filtered pages always come from the database.
        let f = AuditFilter {
            user: Some("owner@lab.test".into()),
            ..AuditFilter::default()
        };
        assert!(s.audit_page_json("t1", &f, 10).await.is_none());
        // A write by another process empties the tail at the next batch.
        let other = open(&s.db).unwrap();
        other
            .execute(
                "DELETE FROM audit_log WHERE tenant = (SELECT id FROM audit_strings WHERE s = 't1') AND seq > 50",
                [],
            )
            .unwrap();
        s.append_audit("t2", draft(actions::AUDIT_QUERY))
            .await
            .unwrap();
        assert!(s
            .audit_page_json("t1", &AuditFilter::default(), 10)
            .await
            .is_none());
    }
}
