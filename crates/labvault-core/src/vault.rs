//! The vault handle: keys, catalog connections and the rules for using them from many callers.
//!
//! One [`Vault`] serves any number of readers while one writer works. It is `Send + Sync`, so a
//! front end can share it (`Arc<Vault>`) between an import running on one thread and the list,
//! previews and audit pages the user keeps using on others:
//!
//! * **Readers** (listing, item details, previews, audit pages, retention status, export,
//!   verify) take a read-only connection from a pool. The catalog is in WAL mode, so they see
//!   the last committed state and never wait for a writer; blob reads need no lock at all.
//! * **Writers** (everything that changes the vault) run as a [`WriteOp`]: one at a time in this
//!   process (a mutex), one at a time across processes (the writer lock of `locks.rs`, which
//!   refuses a second process with `vault_busy` naming the holder). A write op records its
//!   audit events itself, each in the transaction of the change it describes.
//! * **Events of readers** (a view, an export, a verification) are appended through a side
//!   connection in short transactions of their own, so recording a read never waits for a
//!   long write operation either (SQLite serialises it between the writer's transactions).
//!
//! [`Vault::shutdown`] (locking) drops every connection, the readers' included, and zeroizes the
//! keys; later calls fail with `locked`.

use crate::audit::{self, Actor, Subject};
use crate::catalog::{self, Catalog, Reader, ReaderPool};
use crate::error::{Error, ErrorCode, Result};
use crate::journal_file;
pub(crate) use crate::keyfile_io::{key_err, read_key_file};
use crate::locks::{OpenLock, WriterLock, WriterNote};
use crate::{fsutil, keyring};
use labvault_crypto::{
    CatalogKey, KdfParams, KeyFile, Passphrase, ProjectKey, RecoveryKey, RootKey, WrappedKey,
};
use labvault_governance::audit::Outcome;
use labvault_governance::{Clock, SystemClock};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use time::OffsetDateTime;
use zeroize::Zeroizing;

// The layout's names, where callers have always found them.
pub use crate::layout::{
    default_vault_dir, vault_exists, BLOBS_DIR, BLOBS_UNSETTLED, CATALOG_FILE, KEY_FILE, LOCK_FILE,
    TMP_DIR,
};

/// Catalog meta key: this vault writes [`BLOBS_UNSETTLED`]. A vault from before the marker gets
/// one full sweep at its next unlock, which then sets it.
pub(crate) const MARKER_PROTOCOL_META: &str = "blobs_unsettled_marker";

/// How the vault handle identifies the acting user and device and tells the time. Recorded on
/// items and audit events.
#[derive(Clone)]
pub struct VaultOptions {
    /// Argon2id parameters for a new key file (create / passphrase change). `None`: calibrate to
    /// about half a second on this machine.
    pub kdf: Option<KdfParams>,
    /// Source of "now" (tests move it; retention depends on it).
    pub clock: Arc<dyn Clock>,
    /// Who is acting (defaults to the OS user name).
    pub actor: String,
    /// Which program is acting, e.g. `labvault-cli/0.1.0`.
    pub user_agent: String,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            kdf: None,
            clock: Arc::new(SystemClock),
            actor: os_user_name(),
            user_agent: format!("labvault-core/{}", crate::VERSION),
        }
    }
}

/// The OS user name (`$USER`, `$LOGNAME`, else this process's uid looked up in `/etc/passwd`,
/// as services and containers often set neither), or `unknown`.
pub fn os_user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|s| !s.is_empty())
        .or_else(passwd_name)
        .unwrap_or_else(|| "unknown".to_string())
}

fn passwd_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid && !f[0].is_empty()).then(|| f[0].to_string())
    })
}

/// How to unlock a vault.
pub enum Unlock<'a> {
    /// The passphrase.
    Passphrase(&'a Passphrase),
    /// The recovery key shown at creation.
    RecoveryKey(&'a RecoveryKey),
    /// The root key remembered in the OS keyring on this device.
    Keyring,
}

impl Unlock<'_> {
    /// The method's name in audit details.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Unlock::Passphrase(_) => "passphrase",
            Unlock::RecoveryKey(_) => "recovery_key",
            Unlock::Keyring => "keyring",
        }
    }

    /// The same secret, as the modules below the vault see it.
    pub(crate) fn secret(&self) -> crate::rotation_state::Secret<'_> {
        match self {
            Unlock::Passphrase(p) => crate::rotation_state::Secret::Passphrase(p),
            Unlock::RecoveryKey(r) => crate::rotation_state::Secret::RecoveryKey(r),
            Unlock::Keyring => crate::rotation_state::Secret::Keyring,
        }
    }
}

/// The secrets of an unlocked vault. Never leaves the core; zeroized when dropped.
pub(crate) struct Keys {
    pub(crate) key_file: KeyFile,
    pub(crate) root: RootKey,
}

/// What the writer mutex guards.
struct WriterSlot {
    /// The write connection; `None` once the vault is locked.
    catalog: Option<Catalog>,
    /// An operation failed while [`BLOBS_UNSETTLED`] was set (or found it set): it may have
    /// left orphans, so the marker stays until the next unlock sweeps.
    blobs_left_unsettled: bool,
    /// An erasure's truncating checkpoint could not finish (readers held the WAL); retried
    /// after every later write and at lock, so erased key material does not linger in the WAL.
    checkpoint_owed: bool,
}

/// An unlocked vault. Keys live only inside this handle and are zeroized when it is locked or
/// dropped. See the module documentation for how callers share it.
pub struct Vault {
    pub(crate) dir: PathBuf,
    pub(crate) vault_id: String,
    pub(crate) device_id: String,
    pub(crate) actor: String,
    pub(crate) user_agent: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) kdf: Option<KdfParams>,
    keys: RwLock<Option<Keys>>,
    writer: Mutex<WriterSlot>,
    readers: ReaderPool,
    /// Connection for standalone audit events (see the module documentation).
    side: Mutex<Option<Connection>>,
    /// Opened read-only because the disk is full (see [`Vault::read_only_reason`]).
    full_disk: bool,
    /// Events of a read-only vault that not even the journal had room for: retried with every
    /// later event and at lock.
    unjournaled: Mutex<journal_file::Unjournaled>,
    closed: AtomicBool,
    _open: OpenLock,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("vault_id", &self.vault_id)
            .field("keys", &"[redacted]")
            .finish()
    }
}

/// Maps key-file errors (as opposed to blob errors) to vault errors.
pub(crate) fn ts_to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn ms_to_ts(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The result an error is recorded with: a legal hold refuses (`denied`), anything else fails.
pub(crate) fn outcome_of(e: &Error) -> Outcome {
    match e.code() {
        ErrorCode::OnHold => Outcome::Denied,
        _ => Outcome::Failure,
    }
}

impl Vault {
    /// Creates the directory, key file and catalog of a new vault and returns it open, with the
    /// recovery key's display form (shown to the user once, never stored). The key file is
    /// written last: it is the commit point of creation. Records nothing yet.
    pub(crate) fn create_new(
        dir: &Path,
        passphrase: &Passphrase,
        opts: VaultOptions,
    ) -> Result<(Vault, Zeroizing<String>)> {
        if vault_exists(dir) {
            return Err(Error::AlreadyExists(format!(
                "a vault at {}",
                dir.display()
            )));
        }
        if crate::layout::vault_data_without_key(dir) {
            return Err(crate::layout::missing_key_file_error(dir));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io_path("creating vault directory", dir, e))?;
        let open = OpenLock::exclusive(dir)?;
        if vault_exists(dir) {
            return Err(Error::AlreadyExists(format!(
                "a vault at {}",
                dir.display()
            )));
        }
        // Leftovers of an interrupted creation (its marker, no key file: nobody can ever read
        // them; a vault whose key file was lost has no marker and was refused above).
        for name in [
            CATALOG_FILE,
            "catalog.db-wal",
            "catalog.db-shm",
            "catalog.db-journal",
        ] {
            let p = dir.join(name);
            if p.exists() {
                fs::remove_file(&p).map_err(|e| Error::io_path("removing", &p, e))?;
            }
        }
        let kdf = match opts.kdf {
            Some(k) => k,
            None => KdfParams::calibrate(std::time::Duration::from_millis(500)),
        };
        let marker = dir.join(crate::layout::CREATING_MARKER);
        fs::write(&marker, b"").map_err(|e| Error::io_path("creating", &marker, e))?;
        fsutil::fsync_dir(dir)?;
        let (key_file, root, recovery) = KeyFile::create(passphrase, kdf).map_err(key_err)?;
        for sub in [BLOBS_DIR, TMP_DIR] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io_path("creating", &p, e))?;
        }
        let mut catalog = Catalog::open(
            &dir.join(CATALOG_FILE),
            &root.catalog_key(),
            true,
            &mut || Ok(()),
        )?;
        let vault_id = key_file.vault_id().to_string();
        let device_id = uuid::Uuid::new_v4().to_string();
        let now = ts_to_ms(opts.clock.now());
        catalog.write(|tx| {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('vault_id', ?1), ('device_id', ?2), ('created_at', ?3), (?4, '1')",
                params![vault_id, device_id, now.to_string(), MARKER_PROTOCOL_META],
            )?;
            Ok(())
        })?;
        fsutil::fsync_dir(dir)?;
        fsutil::atomic_write(&dir.join(KEY_FILE), &key_file.to_bytes())?;
        fs::remove_file(&marker).map_err(|e| Error::io_path("removing", &marker, e))?;
        fsutil::fsync_dir(dir)?;
        open.make_shared()?;
        let display = recovery.to_display_string();
        let keys = Keys { key_file, root };
        Ok((
            Vault::assemble(dir, keys, (catalog, false), vault_id, device_id, opts, open),
            display,
        ))
    }

    /// Opens the vault in `dir` with `how`: the shared open lock, the key, the catalog (upgraded
    /// and migrated if needed, which requires that no other process has it open). Records
    /// nothing and changes nothing else; see `account.rs` for what unlocking does.
    pub(crate) fn open(dir: &Path, how: &Unlock<'_>, opts: VaultOptions) -> Result<Vault> {
        if !vault_exists(dir) {
            if crate::layout::vault_data_without_key(dir) {
                return Err(crate::layout::missing_key_file_error(dir));
            }
            return Err(Error::NotFound(format!("a vault at {}", dir.display())));
        }
        crate::rotation_state::settle(dir, how.secret())?;
        let open = OpenLock::shared(dir)?;
        let key_file = read_key_file(dir)?;
        let root = match how {
            Unlock::Passphrase(p) => key_file.unlock_with_passphrase(p).map_err(key_err)?,
            Unlock::RecoveryKey(r) => key_file.unlock_with_recovery_key(r).map_err(key_err)?,
            Unlock::Keyring => keyring::load_root_key(key_file.vault_id())?,
        };
        let mut exclusive_taken = false;
        let opened = Catalog::open(
            &dir.join(CATALOG_FILE),
            &root.catalog_key(),
            false,
            &mut || {
                if !exclusive_taken {
                    open.make_exclusive(dir)?;
                    exclusive_taken = true;
                }
                Ok(())
            },
        );
        if exclusive_taken {
            open.make_shared()?;
        }
        // A full disk keeps the catalog from being opened for writing, not from being read:
        // the vault opens read-only, so its data can still be listed, verified and exported
        // to another disk (the way out of a full disk). Anything else is reported as it was.
        let (catalog, full_disk) = match opened {
            Ok(c) => (c, false),
            Err(Error::NoSpace(why)) => {
                // Read without SQLite's shared-memory coordination, so alone: the open lock
                // stays exclusive for the life of this handle.
                open.make_exclusive(dir)?;
                match Catalog::open_on_full_disk(&dir.join(CATALOG_FILE), &root.catalog_key()) {
                    Ok(c) => {
                        tracing::warn!("the disk is full: the vault is open read-only");
                        (c, true)
                    }
                    Err(other) => {
                        tracing::warn!(
                            code = other.code().as_str(),
                            "the vault could not be opened read-only on a full disk either"
                        );
                        return Err(Error::NoSpace(why));
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let vault_id = catalog.meta("vault_id")?.unwrap_or_default();
        if vault_id != key_file.vault_id() {
            return Err(Error::CorruptCatalog(
                "the catalog belongs to another vault than the key file".into(),
            ));
        }
        let device_id = catalog
            .meta("device_id")?
            .ok_or_else(|| Error::CorruptCatalog("device id missing".into()))?;
        let keys = Keys { key_file, root };
        Ok(Vault::assemble(
            dir,
            keys,
            (catalog, full_disk),
            vault_id,
            device_id,
            opts,
            open,
        ))
    }

    fn assemble(
        dir: &Path,
        keys: Keys,
        // The catalog, and whether it was opened read-only on a full disk.
        (catalog, full_disk): (Catalog, bool),
        vault_id: String,
        device_id: String,
        opts: VaultOptions,
        open: OpenLock,
    ) -> Vault {
        Vault {
            dir: dir.to_path_buf(),
            vault_id,
            device_id,
            actor: opts.actor,
            user_agent: opts.user_agent,
            clock: opts.clock,
            kdf: opts.kdf,
            keys: RwLock::new(Some(keys)),
            writer: Mutex::new(WriterSlot {
                catalog: Some(catalog),
                blobs_left_unsettled: false,
                checkpoint_owed: false,
            }),
            readers: ReaderPool::new(dir.join(CATALOG_FILE), full_disk),
            side: Mutex::new(None),
            full_disk,
            unjournaled: Mutex::new(journal_file::Unjournaled::default()),
            closed: AtomicBool::new(false),
            _open: open,
        }
    }

    /// Vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Random vault id (from the key file).
    pub fn vault_id(&self) -> &str {
        &self.vault_id
    }

    /// Id of this device (random, made at creation).
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Who acts through this handle.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Which program acts through this handle.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// "Now" according to the vault's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Why this handle cannot change the vault, if it cannot: the disk holding it was full
    /// when it was unlocked, so it was opened read-only (list, preview, verify and export work;
    /// their audit events go to the journal and into the chain at the next unlock with space).
    pub fn read_only_reason(&self) -> Option<String> {
        self.full_disk.then(|| {
            format!(
                "the disk holding the vault at {} is full: the vault is open read-only (list, preview, verify and export to another disk work); free space on that disk and unlock again to change anything",
                self.dir.display()
            )
        })
    }

    /// Whether [`Vault::shutdown`] has run (every call then fails with `locked`).
    pub fn is_locked(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_locked() {
            return Err(Error::Locked);
        }
        Ok(())
    }

    /// Runs `f` with the keys; `locked` once they are gone.
    pub(crate) fn with_keys<T>(&self, f: impl FnOnce(&Keys) -> Result<T>) -> Result<T> {
        let guard = self.keys.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(k) => f(k),
            None => Err(Error::Locked),
        }
    }

    /// Runs `f` with the keys for changing them (passphrase change, journal key).
    pub(crate) fn with_keys_mut<T>(&self, f: impl FnOnce(&mut Keys) -> Result<T>) -> Result<T> {
        let mut guard = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(k) => f(k),
            None => Err(Error::Locked),
        }
    }

    fn catalog_key(&self) -> Result<CatalogKey> {
        self.with_keys(|k| Ok(k.root.catalog_key()))
    }

    /// A read-only catalog connection for one read (never waits for a writer).
    pub(crate) fn reader(&self) -> Result<Reader<'_>> {
        self.check_open()?;
        self.readers.get(|| self.catalog_key())
    }

    /// Who the events of this handle name.
    pub(crate) fn actor_ctx(&self) -> Actor {
        Actor {
            device_id: self.device_id.clone(),
            user: self.actor.clone(),
            user_agent: self.user_agent.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Records one event in a transaction of its own on the side connection (the event of a
    /// read, or of a write that could not start). Never call it from inside a write
    /// transaction of this handle: use [`WriteOp::record`] there.
    pub(crate) fn record(&self, action: &str, subject: Subject, result: Outcome) -> Result<()> {
        self.check_open()?;
        if self.full_disk {
            let mut pending = self.unjournaled.lock().unwrap_or_else(|e| e.into_inner());
            journal_file::note_read_only_event(
                &self.dir,
                &mut pending,
                &self.actor_ctx(),
                action,
                subject,
                result,
            );
            return Ok(());
        }
        let mut side = self.side.lock().unwrap_or_else(|e| e.into_inner());
        if side.is_none() {
            *side = Some(catalog::open_side_writer(
                &self.dir.join(CATALOG_FILE),
                &self.catalog_key()?,
            )?);
        }
        let conn = side.as_mut().expect("opened above");
        let actor = self.actor_ctx();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        audit::append(&tx, &actor, action, subject, result)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a failure (or, under a legal hold, a denial) of `action`; best effort: the
    /// operation's own error is what the caller needs to see.
    pub(crate) fn record_failure(&self, action: &str, resource: String, e: &Error) {
        if e.code() == ErrorCode::Locked {
            return;
        }
        let subject = Subject::new(resource, e.code().as_str());
        if let Err(rec) = self.record(action, subject, outcome_of(e)) {
            tracing::warn!(
                code = rec.code().as_str(),
                "could not record a failure audit event"
            );
        }
    }

    /// A read-only operation with one audit event: `f` returns its result and the event's
    /// detail; the event is recorded after it succeeded (or its failure, if it failed).
    pub(crate) fn read_op<T>(
        &self,
        action: &'static str,
        resource: String,
        f: impl FnOnce() -> Result<(T, String)>,
    ) -> Result<T> {
        match f() {
            Ok((out, detail)) => {
                self.record(action, Subject::new(resource, detail), Outcome::Success)?;
                Ok(out)
            }
            Err(e) => {
                self.record_failure(action, resource, &e);
                Err(e)
            }
        }
    }

    /// A changing operation: runs `f` as the one writer of the vault (waiting for a writer of
    /// this process, refusing with `vault_busy` while another process writes). `f` records its
    /// events through the [`WriteOp`] it gets, each with its change; if it fails before any
    /// audited commit, its failure (or denial) is recorded here against `resource()`.
    pub(crate) fn write_op<T>(
        &self,
        action: &'static str,
        resource: impl FnOnce() -> String,
        f: impl FnOnce(&mut WriteOp<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut op = match self.begin_write(action, true) {
            Ok(Some(op)) => op,
            Ok(None) => unreachable!("a waiting writer always gets the vault"),
            Err(e) => {
                self.record_failure(action, resource(), &e);
                return Err(e);
            }
        };
        let out = f(&mut op);
        let out = op.settle(out);
        if let Err(e) = &out {
            if op.audited_commits == 0 && e.code() != ErrorCode::Locked {
                let subject = Subject::new(resource(), e.code().as_str());
                if let Err(rec) = op.record(action, subject, outcome_of(e)) {
                    tracing::warn!(
                        code = rec.code().as_str(),
                        "could not record a failure audit event"
                    );
                }
            }
        }
        out
    }

    /// Starts a write op. With `wait`, waits for another writer of this process; without, gives
    /// `None` when the vault is being written here or in another process (maintenance that
    /// can wait for the next unlock).
    pub(crate) fn begin_write(
        &self,
        action: &'static str,
        wait: bool,
    ) -> Result<Option<WriteOp<'_>>> {
        self.check_open()?;
        let slot = if wait {
            self.writer.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            match self.writer.try_lock() {
                Ok(s) => s,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            }
        };
        if slot.catalog.is_none() {
            return Err(Error::Locked);
        }
        if let Some(why) = self.read_only_reason() {
            return Err(Error::NoSpace(why));
        }
        let note = WriterNote {
            pid: std::process::id(),
            program: self.user_agent.clone(),
            operation: action.to_string(),
            since: self
                .now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        let lock = match WriterLock::try_acquire(&self.dir, &note) {
            Ok(l) => l,
            Err(e) if !wait && e.code() == ErrorCode::VaultBusy => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(WriteOp {
            vault: self,
            _lock: lock,
            slot,
            audited_commits: 0,
            marked: false,
        }))
    }

    /// Unwraps a project's key (kept only for the duration of one operation). A shared
    /// project past the lab's offline lease is locked (`project_locked`).
    pub(crate) fn project_key(&self, project_id: &str) -> Result<ProjectKey> {
        self.check_lease(project_id)?;
        self.raw_project_key(project_id)
    }

    /// [`Vault::project_key`] without the lease check: for sync renewing the lease.
    pub(crate) fn raw_project_key(&self, project_id: &str) -> Result<ProjectKey> {
        let bytes: Vec<u8> = self
            .reader()?
            .query_row(
                "SELECT wrapped_key FROM projects WHERE id = ?1",
                [project_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("project {project_id}")))?;
        let wrapped = WrappedKey::from_bytes(bytes).map_err(|e| {
            Error::CorruptCatalog(format!("wrapped key of project {project_id}: {e}"))
        })?;
        self.with_keys(|k| {
            k.root
                .unwrap_project_key(&wrapped, project_id)
                .map_err(|e| Error::CorruptCatalog(format!("key of project {project_id}: {e}")))
        })
    }

    /// Locks the handle: every later call fails with `locked`, idle read connections and the
    /// side connection close at once, the write connection once a running write op (which the
    /// caller has cancelled) returns, and the keys are zeroized. A truncating checkpoint still
    /// owed by an erasure is made first.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.readers.close();
        drop(self.side.lock().unwrap_or_else(|e| e.into_inner()).take());
        if self.full_disk {
            let mut pending = self.unjournaled.lock().unwrap_or_else(|e| e.into_inner());
            journal_file::flush_unjournaled(&self.dir, &mut pending);
        }
        {
            let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            if slot.checkpoint_owed {
                if let Some(c) = slot.catalog.as_ref() {
                    if let Err(e) = c.checkpoint_truncate() {
                        tracing::warn!(code = e.code().as_str(), "final checkpoint failed");
                    }
                }
            }
            slot.catalog = None;
        }
        drop(self.keys.write().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// A fresh raw connection to this vault's catalog (unit tests reach below the API).
    #[cfg(test)]
    pub(crate) fn raw_connection_for_tests(&self) -> Result<Connection> {
        catalog::open_raw(&self.dir.join(CATALOG_FILE), &self.catalog_key()?)
    }
}

/// The one writer of a vault, for the length of one changing operation (see
/// [`Vault::write_op`]). Every change goes through [`WriteOp::commit`] (one transaction carrying
/// its audit event) or [`WriteOp::commit_each`] (a group commit with one event per unit).
pub(crate) struct WriteOp<'v> {
    pub(crate) vault: &'v Vault,
    /// Declared (so dropped) before `slot`: the file lock is let go of before the next writer
    /// of this process gets the slot, which would otherwise find the lock still held and report
    /// its own process as busy.
    _lock: WriterLock,
    slot: MutexGuard<'v, WriterSlot>,
    audited_commits: u32,
    /// This op created [`BLOBS_UNSETTLED`].
    marked: bool,
}

impl WriteOp<'_> {
    fn catalog(&mut self) -> &mut Catalog {
        self.slot
            .catalog
            .as_mut()
            .expect("a write op exists only while the catalog is open")
    }

    /// The write connection, for reads that must see what this op committed so far.
    pub(crate) fn conn(&self) -> &Connection {
        self.slot
            .catalog
            .as_ref()
            .expect("a write op exists only while the catalog is open")
            .conn()
    }

    /// One transaction: `f` makes the change and says what it was about; the `action` event
    /// is appended in the same transaction, so the change and its record commit together.
    pub(crate) fn commit<T>(
        &mut self,
        action: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<(T, Subject)>,
    ) -> Result<T> {
        let actor = self.vault.actor_ctx();
        let out = self.catalog().write(|tx| {
            let (out, subject) = f(tx)?;
            audit::append(tx, &actor, action, subject, Outcome::Success)?;
            Ok(out)
        })?;
        self.audited_commits += 1;
        Ok(out)
    }

    /// A group commit: `f(tx, k)` for every unit `k` in ONE transaction, each unit with its own
    /// `action` event naming what it did.
    pub(crate) fn commit_each<T>(
        &mut self,
        action: &str,
        n: usize,
        mut f: impl FnMut(&Transaction<'_>, usize) -> Result<(T, Subject)>,
    ) -> Result<Vec<T>> {
        let actor = self.vault.actor_ctx();
        let mut chain: Option<audit::ChainAppender> = None;
        let out = self.catalog().write_each(n, |tx, k| {
            let (out, subject) = f(tx, k)?;
            let chain = match &mut chain {
                Some(c) => c,
                None => chain.insert(audit::ChainAppender::new(tx, &actor.device_id)?),
            };
            chain.push(tx, &actor, action, subject, Outcome::Success)?;
            Ok(out)
        })?;
        self.audited_commits += n as u32;
        Ok(out)
    }

    /// A transaction whose events the caller appends itself (journal ingestion carries events
    /// of other times and users) or that records nothing of its own (bookkeeping in `meta`).
    pub(crate) fn tx<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.catalog().write(f)
    }

    /// One event in a transaction of its own (a refused step, a file that failed).
    pub(crate) fn record(&mut self, action: &str, subject: Subject, result: Outcome) -> Result<()> {
        let actor = self.vault.actor_ctx();
        self.catalog().write(|tx| {
            audit::append(tx, &actor, action, subject, result)?;
            Ok(())
        })
    }

    /// Sets [`BLOBS_UNSETTLED`] (durably) unless this op already did: called right before the op
    /// adds a blob its catalog commit will reference, or commits the removal of blobs it deletes
    /// afterwards. A marker found already there was left by an operation that did not finish:
    /// it then stays until the next unlock sweeps.
    pub(crate) fn mark_blobs_unsettled(&mut self) -> Result<()> {
        if self.marked {
            return Ok(());
        }
        let marker = self.vault.dir.join(BLOBS_UNSETTLED);
        if marker.exists() {
            self.slot.blobs_left_unsettled = true;
        }
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io_path("creating", &marker, e))?;
        fsutil::fsync_dir(&self.vault.dir)?;
        self.marked = true;
        Ok(())
    }

    /// Moves the WAL into the catalog and truncates it (after an erasure); if readers keep it
    /// from completing, it is owed and retried after later writes and at lock.
    pub(crate) fn checkpoint_truncate(&mut self) -> Result<()> {
        let done = self.catalog().checkpoint_truncate()?;
        self.slot.checkpoint_owed = !done;
        if !done {
            tracing::warn!("the WAL could not be truncated now (readers active); retried later");
        }
        Ok(())
    }

    /// Blob marker and owed checkpoint at the end of the op: the marker goes only if this op
    /// (and every earlier one) finished cleanly, so a crash or failure leaves it for the sweep.
    fn settle<T>(&mut self, out: Result<T>) -> Result<T> {
        if self.marked {
            if out.is_err() {
                self.slot.blobs_left_unsettled = true;
            } else if !self.slot.blobs_left_unsettled {
                // Not synced: should a crash undo the removal, the next unlock merely sweeps once.
                let _ = fs::remove_file(self.vault.dir.join(BLOBS_UNSETTLED));
            }
            self.marked = false;
        }
        if self.slot.checkpoint_owed {
            let _ = self.checkpoint_truncate();
        }
        out
    }

    /// After a sweep removed every orphan: the marker's promise is kept again.
    pub(crate) fn blobs_settled(&mut self) {
        self.slot.blobs_left_unsettled = false;
    }
}

#[cfg(test)]
mod tests {
    /// Without `$USER` (services, containers) the actor is still the account's name.
    #[test]
    fn the_account_name_comes_from_passwd_when_the_environment_has_none() {
        let out = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let want = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(super::passwd_name().as_deref(), Some(want.as_str()));
    }
}
