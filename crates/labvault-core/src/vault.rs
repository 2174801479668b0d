//! The vault handle: creation, unlocking, locking, passphrase change, projects, start-up recovery.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::fsutil::{self, VaultLock};
use crate::model::ProjectInfo;
use crate::names;
use crate::packs;
use labvault_crypto::{
    CryptoError, KdfParams, KeyFile, Passphrase, ProjectKey, RecoveryKey, RootKey, WrappedKey,
};
use labvault_governance::{Clock, SystemClock};
use rusqlite::{params, OptionalExtension};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Key file name inside the vault directory.
pub const KEY_FILE: &str = "vault.key";
/// Catalog file name inside the vault directory.
pub const CATALOG_FILE: &str = "catalog.db";
/// Directory of encrypted blobs.
pub const BLOBS_DIR: &str = "blobs";
/// Present while `blobs/` may hold a file that no committed catalog row references: created
/// (durably) before an import or an erasure changes `blobs/`, removed once it finished cleanly.
/// Unlock sweeps every blob for orphans only when it is there (at 100,000 blobs the sweep was
/// ~90 ms of every unlock).
pub const BLOBS_UNSETTLED: &str = "blobs.unsettled";
/// Catalog meta key: this vault writes [`BLOBS_UNSETTLED`]. A vault from before the marker gets
/// one full sweep at its next unlock, which then sets it.
const MARKER_PROTOCOL_META: &str = "blobs_unsettled_marker";
/// Directory of in-flight (ciphertext-only) temp files.
pub const TMP_DIR: &str = "tmp";
/// Lock file (empty; an flock on it marks the vault as open).
pub const LOCK_FILE: &str = "vault.lock";

/// The default vault location: `$XDG_DATA_HOME/labvault/vault`, else
/// `~/.local/share/labvault/vault`. `None` if neither variable is usable.
pub fn default_vault_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => {
            let home = std::env::var_os("HOME").map(PathBuf::from)?;
            if !home.is_absolute() {
                return None;
            }
            home.join(".local").join("share")
        }
    };
    Some(base.join("labvault").join("vault"))
}

/// Whether `dir` holds a vault (a key file); cheap, needs no passphrase.
pub fn vault_exists(dir: &Path) -> bool {
    dir.join(KEY_FILE).is_file()
}

/// How the vault handle identifies the acting user and device and tells the time. Recorded on
/// items now and on audit events later.
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
            user_agent: format!("labvault-core/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The OS user name (`$USER`, `$LOGNAME`), or `unknown`.
pub fn os_user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
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

/// An unlocked vault. Keys live only inside this handle and are zeroized when it is dropped
/// ([`Vault::lock`] is the explicit form). Holds the vault's exclusive lock while alive.
pub struct Vault {
    pub(crate) dir: PathBuf,
    pub(crate) key_file: KeyFile,
    pub(crate) root: RootKey,
    pub(crate) catalog: Catalog,
    pub(crate) vault_id: String,
    pub(crate) device_id: String,
    pub(crate) actor: String,
    pub(crate) user_agent: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) kdf: Option<KdfParams>,
    /// This handle created [`BLOBS_UNSETTLED`] and has not removed it.
    pub(crate) blobs_marked: bool,
    /// An operation failed while [`BLOBS_UNSETTLED`] was set: it may have left orphans, so the
    /// marker stays until the next unlock sweeps, whatever later operations do.
    pub(crate) blobs_left_unsettled: bool,
    _lock: VaultLock,
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
pub(crate) fn key_err(e: CryptoError) -> Error {
    match e {
        CryptoError::WrongPassphrase => Error::WrongPassphrase,
        CryptoError::WrongRecoveryKey => Error::WrongRecoveryKey,
        CryptoError::InvalidRecoveryKey => Error::InvalidRecoveryKey(e.to_string()),
        CryptoError::UnsupportedVersion(v) => Error::UnsupportedVersion(format!(
            "the key file has format version {v}; update LabVault"
        )),
        CryptoError::CorruptKeyFile(m) => Error::CorruptKeyFile(m),
        CryptoError::KdfOutOfBounds(m) => Error::CorruptKeyFile(m),
        CryptoError::KeyringSecretInvalid => Error::KeyringUnavailable(e.to_string()),
        CryptoError::Io(io) => Error::io("key file", io),
        other => Error::CorruptKeyFile(other.to_string()),
    }
}

pub(crate) fn ts_to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn ms_to_ts(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Vault {
    /// Creates a new vault in `dir` (created if missing) and returns it unlocked, together with
    /// the recovery key's display form, which is shown to the user exactly once and never
    /// stored. The key file is written last: it is the commit point of creation.
    pub(crate) fn create_unaudited(
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
        fs::create_dir_all(dir).map_err(|e| Error::io_path("creating vault directory", dir, e))?;
        let lock = VaultLock::acquire(dir)?;
        if vault_exists(dir) {
            return Err(Error::AlreadyExists(format!(
                "a vault at {}",
                dir.display()
            )));
        }
        // Leftovers of an interrupted creation (no key file = nobody can ever read them).
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
        let (key_file, root, recovery) = KeyFile::create(passphrase, kdf).map_err(key_err)?;
        for sub in [BLOBS_DIR, TMP_DIR] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io_path("creating", &p, e))?;
        }
        let mut catalog = Catalog::open(&dir.join(CATALOG_FILE), &root.catalog_key(), true)?;
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
        let display = recovery.to_display_string();
        let vault = Vault {
            dir: dir.to_path_buf(),
            key_file,
            root,
            catalog,
            vault_id,
            device_id,
            actor: opts.actor,
            user_agent: opts.user_agent,
            clock: opts.clock,
            kdf: opts.kdf,
            blobs_marked: false,
            blobs_left_unsettled: false,
            _lock: lock,
        };
        Ok((vault, display))
    }

    /// Reads and parses the key file of the vault in `dir`.
    pub(crate) fn read_key_file(dir: &Path) -> Result<KeyFile> {
        let path = dir.join(KEY_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("a vault at {}", dir.display())))
            }
            Err(e) => return Err(Error::io_path("reading", &path, e)),
        };
        // A real key file is well under 4 KiB; refuse to parse anything absurd.
        if bytes.len() > 64 * 1024 {
            return Err(Error::CorruptKeyFile(format!(
                "{} is {} bytes, far larger than any key file",
                path.display(),
                bytes.len()
            )));
        }
        KeyFile::from_bytes(&bytes).map_err(key_err)
    }

    /// The vault id of the vault in `dir`, read from its key file (no secret needed); the
    /// keyring entry is stored under it.
    pub fn peek_vault_id(dir: &Path) -> Result<String> {
        Ok(Self::read_key_file(dir)?.vault_id().to_string())
    }

    /// Unlocks the vault in `dir`. Takes the vault's exclusive lock first (`vault_busy` if
    /// another process has it), then checks the key, the catalog and its schema version, and
    /// finally removes orphans left by an interrupted import or purge.
    pub(crate) fn unlock_unaudited(
        dir: &Path,
        how: Unlock<'_>,
        opts: VaultOptions,
    ) -> Result<Vault> {
        if !vault_exists(dir) {
            return Err(Error::NotFound(format!("a vault at {}", dir.display())));
        }
        let lock = VaultLock::acquire(dir)?;
        let key_file = Self::read_key_file(dir)?;
        let root = match how {
            Unlock::Passphrase(p) => key_file.unlock_with_passphrase(p).map_err(key_err)?,
            Unlock::RecoveryKey(r) => key_file.unlock_with_recovery_key(r).map_err(key_err)?,
            Unlock::Keyring => crate::keyring::load_root_key(key_file.vault_id())?,
        };
        let catalog = Catalog::open(&dir.join(CATALOG_FILE), &root.catalog_key(), false)?;
        let vault_id = catalog.meta("vault_id")?.unwrap_or_default();
        if vault_id != key_file.vault_id() {
            return Err(Error::CorruptCatalog(
                "the catalog belongs to another vault than the key file".into(),
            ));
        }
        let device_id = catalog
            .meta("device_id")?
            .ok_or_else(|| Error::CorruptCatalog("device id missing".into()))?;
        let mut vault = Vault {
            dir: dir.to_path_buf(),
            key_file,
            root,
            catalog,
            vault_id,
            device_id,
            actor: opts.actor,
            user_agent: opts.user_agent,
            clock: opts.clock,
            kdf: opts.kdf,
            blobs_marked: false,
            blobs_left_unsettled: false,
            _lock: lock,
        };
        vault.clean_orphans()?;
        Ok(vault)
    }

    /// Locks the vault: drops the catalog connection and zeroizes every key held.
    pub(crate) fn lock_unaudited(self) {
        drop(self);
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

    /// Changes the passphrase: re-wraps the root key under a new key-encryption key and
    /// replaces the key file atomically. No blob or catalog page is re-encrypted.
    pub(crate) fn change_passphrase_unaudited(&mut self, new: &Passphrase) -> Result<()> {
        let kdf = match self.kdf {
            Some(k) => k,
            None => KdfParams::calibrate(std::time::Duration::from_millis(500)),
        };
        let new_file = self
            .key_file
            .with_new_passphrase(&self.root, new, kdf)
            .map_err(key_err)?;
        let path = self.dir.join(KEY_FILE);
        self.catalog.write(|_tx| {
            fsutil::atomic_write(&path, &new_file.to_bytes())?;
            Ok(())
        })?;
        self.key_file = new_file;
        Ok(())
    }

    /// Stores the root key in the OS keyring under this vault's id ("remember on this device").
    pub(crate) fn remember_on_device_unaudited(&mut self) -> Result<()> {
        crate::keyring::store_root_key(&self.vault_id, &self.root)
    }

    /// Removes this vault's root key from the OS keyring. Needs no unlocked vault, so a lost
    /// passphrase does not leave the key stranded in the keyring.
    /// Returns whether there was an entry (forgetting twice is not an error).
    pub(crate) fn forget_on_device_unaudited(dir: &Path) -> Result<bool> {
        let id = Self::peek_vault_id(dir)?;
        crate::keyring::delete_root_key(&id)
    }

    // ----- projects -------------------------------------------------------------------------

    /// Creates a project with a fresh random project key wrapped by the root key.
    pub(crate) fn create_project_unaudited(&mut self, name: &str) -> Result<ProjectInfo> {
        names::validate_project_name(name)?;
        let id = uuid::Uuid::new_v4().to_string();
        let key = ProjectKey::generate();
        let wrapped = self.root.wrap_project_key(&key, &id);
        let now = self.now();
        let actor = self.actor.clone();
        self.catalog.write(|tx| {
            let exists: Option<String> = tx
                .query_row("SELECT id FROM projects WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_some() {
                return Err(Error::AlreadyExists(format!("project {name:?}")));
            }
            tx.execute(
                "INSERT INTO projects(id, name, wrapped_key, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, wrapped.as_bytes(), ts_to_ms(now), actor],
            )?;
            Ok(())
        })?;
        Ok(ProjectInfo {
            id,
            name: name.to_string(),
            created_at: ms_to_ts(ts_to_ms(now)),
            created_by: self.actor.clone(),
        })
    }

    /// All projects, by name.
    pub fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        let mut st = self.catalog.conn().prepare(
            "SELECT id, name, created_at, created_by FROM projects ORDER BY name COLLATE NOCASE, name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ProjectInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: ms_to_ts(r.get(2)?),
                created_by: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Finds a project by name or id.
    pub fn project(&self, name_or_id: &str) -> Result<ProjectInfo> {
        self.catalog
            .conn()
            .query_row(
                "SELECT id, name, created_at, created_by FROM projects WHERE name = ?1 OR id = ?1
                 ORDER BY (name = ?1) DESC LIMIT 1",
                [name_or_id],
                |r| {
                    Ok(ProjectInfo {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created_at: ms_to_ts(r.get(2)?),
                        created_by: r.get(3)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("project {name_or_id:?}")))
    }

    /// Unwraps a project's key (kept only for the duration of one operation).
    pub(crate) fn project_key(&self, project_id: &str) -> Result<ProjectKey> {
        let bytes: Vec<u8> = self
            .catalog
            .conn()
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
        self.root
            .unwrap_project_key(&wrapped, project_id)
            .map_err(|e| Error::CorruptCatalog(format!("key of project {project_id}: {e}")))
    }

    // ----- start-up recovery ----------------------------------------------------------------

    /// Removes what an interrupted operation can leave behind: every file in `tmp/` (nothing
    /// committed ever points there), stray key-file temp files, and, when [`BLOBS_UNSETTLED`]
    /// says an import or erasure did not finish cleanly (or the vault predates the marker),
    /// blobs that no committed catalog row references (written by an import that died before
    /// its transaction committed, or left by a purge that died after its commit). Returns how
    /// many were removed.
    pub(crate) fn clean_orphans(&mut self) -> Result<u64> {
        let mut removed = 0u64;
        let tmp = self.dir.join(TMP_DIR);
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                if fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        } else {
            fs::create_dir_all(&tmp).map_err(|e| Error::io_path("creating", &tmp, e))?;
        }
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with('.') && n.ends_with(".tmp") && fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        let marker = self.dir.join(BLOBS_UNSETTLED);
        let legacy = self.catalog.meta(MARKER_PROTOCOL_META)?.is_none();
        if legacy || marker.exists() {
            let referenced = self.referenced_blobs()?;
            let mut dirs = std::collections::BTreeSet::new();
            for (blob_id, path) in self.blob_files()? {
                if !referenced.contains(&blob_id) {
                    fs::remove_file(&path)
                        .map_err(|e| Error::io_path("removing orphan", &path, e))?;
                    removed += 1;
                    dirs.extend(path.parent().map(Path::to_path_buf));
                }
            }
            // Records of erased items whose bytes a crash left in their pack.
            let mut st = self
                .catalog
                .conn()
                .prepare("SELECT DISTINCT pack_id FROM item_versions WHERE pack_id IS NOT NULL")?;
            let packs: Vec<String> = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            drop(st);
            for p in packs {
                self.erase_dead_records(&p)?;
            }
            // The removals must be durable before the marker that would redo them goes.
            for d in dirs {
                fsutil::fsync_dir(&d)?;
            }
            if legacy {
                self.catalog.write(|tx| {
                    tx.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, '1')",
                        [MARKER_PROTOCOL_META],
                    )?;
                    Ok(())
                })?;
            }
            match fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io_path("removing", &marker, e)),
            }
        }
        if removed > 0 {
            tracing::info!(removed, "cleaned up files left by an interrupted operation");
        }
        Ok(removed)
    }

    /// Sets [`BLOBS_UNSETTLED`] (durably) unless this handle already did: called right before
    /// an operation adds a blob that its catalog commit will reference, or commits the removal
    /// of blobs it deletes afterwards.
    pub(crate) fn mark_blobs_unsettled(&mut self) -> Result<()> {
        if self.blobs_marked {
            return Ok(());
        }
        let marker = self.dir.join(BLOBS_UNSETTLED);
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io_path("creating", &marker, e))?;
        fsutil::fsync_dir(&self.dir)?;
        self.blobs_marked = true;
        Ok(())
    }

    /// Runs `op`, which may call [`Vault::mark_blobs_unsettled`], and removes the marker again
    /// only if `op` (and every earlier marked operation since unlock) succeeded, so a crash or
    /// failure anywhere in between leaves it for the next unlock's sweep.
    pub(crate) fn settling_blobs<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let res = op(self);
        if self.blobs_marked {
            if res.is_err() {
                self.blobs_left_unsettled = true;
            } else if !self.blobs_left_unsettled {
                // Not synced: should a crash undo the removal, the next unlock merely sweeps once.
                let _ = fs::remove_file(self.dir.join(BLOBS_UNSETTLED));
                self.blobs_marked = false;
            }
        }
        res
    }

    /// Names of the files in `blobs/` that committed catalog rows reference: blobs of their
    /// own and packs.
    pub(crate) fn referenced_blobs(&self) -> Result<std::collections::HashSet<String>> {
        let mut st = self.catalog.conn().prepare(
            "SELECT blob_id FROM item_versions WHERE blob_id IS NOT NULL AND pack_id IS NULL
             UNION SELECT DISTINCT pack_id FROM item_versions WHERE pack_id IS NOT NULL",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes from a pack the bytes of every record no catalog row references any more
    /// (erased items). False when no record of it is live (the caller removes the file).
    pub(crate) fn erase_dead_records(&self, pack_id: &str) -> Result<bool> {
        let live = packs::live_records(self.catalog.conn(), pack_id)?;
        if live.is_empty() {
            return Ok(false);
        }
        let path = fsutil::blob_path(&self.dir, pack_id);
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io_path("reading", &path, e)),
        };
        let dead = packs::gaps(&live, size);
        if !dead.is_empty() {
            packs::erase_ranges(&path, &dead)?;
        }
        Ok(true)
    }

    /// Every file under `blobs/` as (file name, path).
    pub(crate) fn blob_files(&self) -> Result<Vec<(String, PathBuf)>> {
        let blobs = self.dir.join(BLOBS_DIR);
        let mut out = Vec::new();
        let rd = match fs::read_dir(&blobs) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&blobs).map_err(|e| Error::io_path("creating", &blobs, e))?;
                return Ok(out);
            }
            Err(e) => return Err(Error::io_path("listing", &blobs, e)),
        };
        for shard in rd {
            let shard = shard.map_err(|e| Error::io_path("listing", &blobs, e))?;
            if !shard.path().is_dir() {
                out.push((
                    shard.file_name().to_string_lossy().into_owned(),
                    shard.path(),
                ));
                continue;
            }
            for f in fs::read_dir(shard.path())
                .map_err(|e| Error::io_path("listing", &shard.path(), e))?
            {
                let f = f.map_err(|e| Error::io_path("listing", &shard.path(), e))?;
                out.push((f.file_name().to_string_lossy().into_owned(), f.path()));
            }
        }
        Ok(out)
    }
}
