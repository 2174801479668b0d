//! The SQLCipher catalog: connection set-up, the schema and its migrations, the single write
//! path, and the pool of read-only connections that serve readers while a writer works.
//!
//! The catalog runs in WAL mode, so any number of read connections (in this process or in
//! others) see the last committed state while one write transaction is open. Every change goes
//! through [`Catalog::write`] or [`Catalog::write_each`]: one explicit transaction per unit of
//! work, inside which the caller appends the unit's audit event (see `audit.rs`).

mod upgrade;

use crate::error::{Error, Result};
use labvault_crypto::CatalogKey;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Ordered schema migrations; `PRAGMA user_version` = number applied. Append only: never edit a
/// shipped migration, add a new numbered file at the end (its position + 1 is its version).
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_catalog.sql"),
    include_str!("migrations/0002_governance.sql"),
    include_str!("migrations/0003_audit_combined_indexes.sql"),
    include_str!("migrations/0004_lifecycle_index.sql"),
    include_str!("migrations/0005_packs.sql"),
    include_str!("migrations/0006_items_checks.sql"),
    include_str!("migrations/0007_sync.sql"),
    include_str!("migrations/0008_sync_status_index.sql"),
    include_str!("migrations/0009_sharing.sql"),
    include_str!("migrations/0010_watches.sql"),
];

/// The schema version this build writes and understands.
pub fn current_schema_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// How long a connection waits for another one's write transaction before giving up with
/// `vault_busy`. Write transactions are short (a group commit is tens of milliseconds), so
/// this is only reached when another process holds the catalog locked for real.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The catalog's SQLCipher page format. Part of the on-disk format: a catalog only opens with
/// the settings it was written with, so a change needs an upgrade of existing catalogs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherFormat {
    /// Vaults made before the v2 format: SQLCipher 4 defaults (4096-byte pages, HMAC-SHA512
    /// page MAC, PBKDF2-HMAC-SHA512 for the MAC key). Only read, to upgrade it.
    V1,
    /// Current: 4096-byte pages, HMAC-SHA256 page MAC (hardware SHA-256 on current CPUs:
    /// about twice as fast as SHA-512 here, same 256-bit keys and per-page integrity),
    /// PBKDF2-HMAC-SHA256 to derive the MAC key from the raw key.
    V2,
}

/// Page size of [`CipherFormat::V2`] catalogs (see docs/vault-layout.md for the measurement
/// behind it).
pub const CIPHER_PAGE_SIZE: u32 = 4096;

impl CipherFormat {
    /// The cipher pragmas for schema `schema` (`main`, or an attached database), to run right
    /// after the key and before the first read.
    pub(crate) fn pragmas(self, schema: &str) -> String {
        let (page, hmac, kdf) = match self {
            CipherFormat::V1 => (4096, "HMAC_SHA512", "PBKDF2_HMAC_SHA512"),
            CipherFormat::V2 => (CIPHER_PAGE_SIZE, "HMAC_SHA256", "PBKDF2_HMAC_SHA256"),
        };
        format!(
            "PRAGMA {schema}.cipher_page_size = {page};
             PRAGMA {schema}.cipher_hmac_algorithm = {hmac};
             PRAGMA {schema}.cipher_kdf_algorithm = {kdf};"
        )
    }
}

/// Keys a fresh connection with the catalog key in `format` (the key must be the first
/// statement on the connection), then sets the per-connection options every catalog
/// connection uses. `cipher_memory_security` is deliberately left at SQLCipher's default (off;
/// see docs/vault-layout.md, "Catalog cipher settings").
pub(crate) fn key_connection(
    conn: &Connection,
    key: &CatalogKey,
    format: CipherFormat,
) -> Result<()> {
    let pragma = key.sqlcipher_key_pragma_value();
    let stmt = Zeroizing::new(format!("PRAGMA key = \"{}\";", pragma.as_str()));
    conn.execute_batch(stmt.as_str())?;
    drop(stmt);
    conn.execute_batch(&format.pragmas("main"))?;
    conn.execute_batch(
        "PRAGMA temp_store = MEMORY;
         PRAGMA cipher_log_level = NONE;",
    )?;
    Ok(())
}

/// Keys `conn` (see [`key_connection`]) and does a first real read, which fails (as
/// `corrupt_catalog`) on a wrong key, a non-database file or the other cipher format.
pub(crate) fn key_and_probe(
    conn: &Connection,
    key: &CatalogKey,
    format: CipherFormat,
) -> Result<()> {
    key_connection(conn, key, format)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| match Error::from(e) {
        // A full disk or an I/O error is what it is, not a wrong key or a damaged file: the
        // caller must not go on to "upgrade" (rewrite) a catalog that is fine.
        e @ (Error::NoSpace(_) | Error::Io { .. }) => e,
        Error::CorruptCatalog(m) => Error::CorruptCatalog(m),
        other => Error::CorruptCatalog(other.to_string()),
    })?;
    Ok(())
}

/// Opens a raw rusqlite connection to the catalog at `path` keyed in the current format, for
/// tools and tests that must reach below the vault API (benchmark set-up, tamper tests).
/// Performs no checks and no migrations.
pub fn open_raw(path: &Path, key: &CatalogKey) -> Result<Connection> {
    let conn = Connection::open(path)?;
    key_connection(&conn, key, CipherFormat::V2)?;
    Ok(conn)
}

/// The write connection of a catalog.
pub struct Catalog {
    conn: Connection,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Catalog")
    }
}

impl Catalog {
    /// Opens (or with `create`, creates) the catalog, keys it, checks the key and schema
    /// version, and applies pending migrations. A newer schema is refused before anything is
    /// written. A catalog still in the v1 cipher format is first upgraded to
    /// [`CipherFormat::V2`] (see `upgrade.rs`); one that reads under neither format is
    /// `corrupt_catalog` and is left untouched.
    ///
    /// `exclusive` is called before anything rewrites the catalog (upgrade, migrations, the
    /// clean-up of an interrupted upgrade): it must make sure no other process has the vault
    /// open, or fail (the vault's open lock does this).
    pub fn open(
        path: &Path,
        key: &CatalogKey,
        create: bool,
        exclusive: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Catalog> {
        if !create && !path.exists() {
            return Err(Error::CorruptCatalog(format!(
                "catalog {} is missing",
                path.display()
            )));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        } else if upgrade::has_leftovers(path) {
            // Leftovers of an interrupted upgrade: the old catalog is still the valid one.
            exclusive()?;
            upgrade::remove_leftovers(path)?;
        }
        let mut conn = Connection::open_with_flags(path, flags)?;
        let mut probe = key_and_probe(&conn, key, CipherFormat::V2);
        if matches!(probe, Err(Error::CorruptCatalog(_))) && !create {
            drop(conn);
            exclusive()?;
            upgrade::upgrade_v1_to_v2(path, key)?;
            conn = Connection::open_with_flags(path, flags)?;
            probe = key_and_probe(&conn, key, CipherFormat::V2);
        }
        if let Err(e) = probe {
            return Err(match e {
                e @ (Error::NoSpace(_) | Error::Io { .. }) => e,
                Error::CorruptCatalog(m) => Error::CorruptCatalog(m),
                other => Error::CorruptCatalog(other.to_string()),
            });
        }
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > current_schema_version() {
            return Err(Error::UnsupportedVersion(format!(
                "the catalog has schema version {version}, this LabVault understands up to {}; update LabVault",
                current_schema_version()
            )));
        }
        if !create && version == 0 {
            // An empty (for example truncated to 0 bytes) file reads as a new database: it
            // must not become one, or the vault's real catalog could never be restored there.
            return Err(Error::CorruptCatalog(format!(
                "the catalog {} is empty ({} bytes): it was truncated or replaced. Nothing was written; restore catalog.db from a backup of this vault",
                path.display(),
                std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
            )));
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;",
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mut cat = Catalog { conn };
        if version < current_schema_version() {
            exclusive()?;
            cat.migrate(version)?;
        }
        cat.conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        Ok(cat)
    }

    /// Opens the catalog read-only for a disk so full that SQLite cannot create the catalog's
    /// shared-memory index (`catalog.db-shm`), which [`Catalog::open`] reports as `no_space`.
    /// In exclusive locking mode SQLite keeps that index in this process's memory instead, so
    /// the last committed state (the main file, plus a WAL left behind, if any) can still be
    /// read: list, preview, export to another disk and verify keep working. `query_only`, and
    /// nothing is migrated or upgraded (a catalog that would need it is reported as `no_space`).
    ///
    /// The caller must have the vault to itself (its open lock exclusively): the shared-memory
    /// index a failed open left behind (it takes what little space was left) and an empty WAL
    /// are removed, as SQLite does when the last connection closes; a WAL with content holds
    /// committed changes and is read, never removed.
    pub fn open_on_full_disk(path: &Path, key: &CatalogKey) -> Result<Catalog> {
        upgrade::remove_if_present(&upgrade::with_suffix(path, "-shm"))?;
        let wal = upgrade::with_suffix(path, "-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0) {
            upgrade::remove_if_present(&wal)?;
        }
        let conn = open_full_disk_reader(path, key)?;
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != current_schema_version() || version == 0 {
            return Err(Error::NoSpace(format!(
                "the disk holding {} (the catalog needs an upgrade before it can be read, which needs free space)",
                path.display()
            )));
        }
        Ok(Catalog { conn })
    }

    /// Applies the migrations after `from`, each in its own transaction, with foreign keys
    /// off (a table rebuild drops and renames a referenced table) and checked before it
    /// commits: a migration that would leave a dangling reference is rolled back.
    fn migrate(&mut self, from: u32) -> Result<()> {
        self.conn.execute_batch("PRAGMA foreign_keys = OFF;")?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            let dangling: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()?;
            if let Some(table) = dangling {
                return Err(Error::CorruptCatalog(format!(
                    "schema migration {} would leave rows of {table} referencing missing rows",
                    i + 1
                )));
            }
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Runs `f` in one IMMEDIATE transaction and commits iff it returns `Ok`. The single place
    /// where catalog changes happen.
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f(tx, 0..n)` in ONE IMMEDIATE transaction (group commit: one durable commit for
    /// many units of work) and commits iff every call returns `Ok`.
    pub fn write_each<T>(
        &mut self,
        n: usize,
        mut f: impl FnMut(&Transaction<'_>, usize) -> Result<T>,
    ) -> Result<Vec<T>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            out.push(f(&tx, k)?);
        }
        tx.commit()?;
        Ok(out)
    }

    /// The write connection, for reads that must see this writer's own state.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Moves everything from the WAL into the main file and truncates the WAL, so that erased
    /// key material does not linger in the log file. `false` when readers (here or in another
    /// process) kept it from completing within the busy timeout; the caller retries later.
    pub fn checkpoint_truncate(&self) -> Result<bool> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    }

    /// Reads a metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        meta(&self.conn, key)
    }
}

/// Reads a metadata value on any connection.
pub(crate) fn meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Opens a read-only connection to the catalog: same key and cipher settings, `query_only`,
/// so it can never write. In WAL mode it reads the last committed state without waiting for
/// a writer.
pub(crate) fn open_reader(path: &Path, key: &CatalogKey) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    key_and_probe(&conn, key, CipherFormat::V2)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// A read-only connection that never touches `catalog.db-shm` (see
/// [`Catalog::open_on_full_disk`]): the exclusive locking mode must be set before the first
/// read. SQLite's file locks are off (`unix-none`: in exclusive mode it would want a write
/// lock, which a read-only file cannot take); the caller holds the vault's open lock
/// exclusively instead, so no other process changes the catalog meanwhile.
fn open_full_disk_reader(path: &Path, key: &CatalogKey) -> Result<Connection> {
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        c"unix-none",
    )?;
    key_connection(&conn, key, CipherFormat::V2)?;
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE;")?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| match Error::from(e) {
        e @ (Error::NoSpace(_) | Error::Io { .. } | Error::CorruptCatalog(_)) => e,
        other => Error::CorruptCatalog(other.to_string()),
    })?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Opens a read-write connection beside the writer for short transactions of their own
/// (standalone audit events), which SQLite serialises with the writer's transactions.
pub(crate) fn open_side_writer(path: &Path, key: &CatalogKey) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    key_and_probe(&conn, key, CipherFormat::V2)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;",
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Idle read-only connections, reused by readers. Closing the pool drops them all, and any
/// connection handed back afterwards is dropped instead of kept.
pub(crate) struct ReaderPool {
    path: PathBuf,
    /// The vault was opened on a full disk: readers keep their index in memory too.
    full_disk: bool,
    idle: Mutex<Option<Vec<Connection>>>,
}

/// Idle connections kept at most (more readers at once open more, then drop the surplus).
const MAX_IDLE_READERS: usize = 4;

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, full_disk: bool) -> ReaderPool {
        ReaderPool {
            path,
            full_disk,
            idle: Mutex::new(Some(Vec::new())),
        }
    }

    /// A connection for one read: an idle one, or a new one keyed with `key()` (called only
    /// when a connection must be opened). `locked` once the pool is closed.
    pub(crate) fn get(&self, key: impl FnOnce() -> Result<CatalogKey>) -> Result<Reader<'_>> {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            match idle.as_mut() {
                None => return Err(Error::Locked),
                Some(v) => v.pop(),
            }
        };
        let conn = match conn {
            Some(c) => c,
            None if self.full_disk => open_full_disk_reader(&self.path, &key()?)?,
            None => open_reader(&self.path, &key()?)?,
        };
        Ok(Reader {
            pool: self,
            conn: Some(conn),
        })
    }

    /// Drops every idle connection; later `get`s fail with `locked`.
    pub(crate) fn close(&self) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(idle);
    }
}

/// A read connection on loan from the [`ReaderPool`]; goes back when dropped.
pub(crate) struct Reader<'p> {
    pool: &'p ReaderPool,
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a reader holds its connection")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = idle.as_mut() {
            if v.len() < MAX_IDLE_READERS {
                v.push(conn);
            }
        }
    }
}

/// Suffix of the re-keyed copy a root key rotation builds next to the catalog.
pub(crate) const REKEY_SUFFIX: &str = ".rekey";

/// The re-keyed copy of the catalog at `path` (`catalog.db.rekey`).
pub(crate) fn rekey_copy_path(path: &Path) -> std::path::PathBuf {
    upgrade::with_suffix(path, REKEY_SUFFIX)
}

/// Deletes a re-keyed copy (and its journal files) an interrupted rotation left.
pub(crate) fn remove_rekey_copy(path: &Path) -> Result<bool> {
    let tmp = rekey_copy_path(path);
    let mut removed = false;
    for suffix in ["", "-journal", "-wal", "-shm"] {
        removed |= upgrade::remove_if_present(&upgrade::with_suffix(&tmp, suffix))?;
    }
    Ok(removed)
}

/// Builds `catalog.db.rekey`: a copy of the catalog at `path` (keyed `old`) keyed `new`, then
/// runs `change` on the copy in one transaction (re-wrapping what the old root key wrapped,
/// recording the event), checks it (integrity, schema version, the rows of every table but the
/// audit trail unchanged in number) and makes it durable. The catalog itself is not touched:
/// the caller renames the copy over it. The caller holds the vault exclusively.
pub(crate) fn build_rekeyed_copy(
    path: &Path,
    old: &CatalogKey,
    new: &CatalogKey,
    change: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
) -> Result<()> {
    remove_rekey_copy(path)?;
    let tmp = rekey_copy_path(path);
    let conn = open_raw(path, old)?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(Error::VaultBusy(
            "catalog (checkpoint before re-keying)".into(),
        ));
    }
    conn.close().map_err(|(_, e)| Error::from(e))?;
    let built = (|| -> Result<()> {
        // SQLCipher's own export: the old catalog is the main database, the copy attached
        // under the new key, in the current format, before anything is written to it.
        let tmp_name = tmp.to_str().ok_or_else(|| {
            Error::Internal(format!(
                "the vault path {} is not UTF-8; cannot re-key its catalog",
                tmp.display()
            ))
        })?;
        let src = open_raw(path, old)?;
        let key_value = new.sqlcipher_key_pragma_value();
        src.execute(
            "ATTACH DATABASE ?1 AS rekeyed KEY ?2",
            rusqlite::params![tmp_name, key_value.as_str()],
        )?;
        drop(key_value);
        src.execute_batch(&CipherFormat::V2.pragmas("rekeyed"))?;
        src.query_row("SELECT sqlcipher_export('rekeyed')", [], |_| Ok(()))?;
        src.execute_batch(&format!(
            "PRAGMA rekeyed.user_version = {version}; DETACH DATABASE rekeyed;"
        ))?;
        src.close().map_err(|(_, e)| Error::from(e))?;
        let mut c = open_raw(&tmp, new)?;
        let before = upgrade::table_counts(&c)?;
        let tx = c.transaction()?;
        change(&tx)?;
        tx.commit()?;
        let after = upgrade::table_counts(&c)?;
        let same = |counts: &[(String, i64)]| -> Vec<(String, i64)> {
            counts
                .iter()
                .filter(|(n, _)| n != "audit_events")
                .cloned()
                .collect()
        };
        if same(&before) != same(&after) {
            return Err(Error::Internal(
                "re-keying changed the number of rows of a table; the catalog is kept".into(),
            ));
        }
        c.close().map_err(|(_, e)| Error::from(e))?;
        upgrade::check_copy(&tmp, new, version, &after)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io_path("syncing", &tmp, e))
    })();
    if let Err(e) = built {
        let _ = remove_rekey_copy(path);
        return Err(e);
    }
    Ok(())
}

/// Puts the re-keyed copy in the catalog's place: the old catalog's (checkpointed, empty)
/// WAL and shm files go, then one atomic rename. From then on the catalog opens only with the
/// new key.
pub(crate) fn install_rekeyed_copy(path: &Path) -> Result<()> {
    let wal = upgrade::with_suffix(path, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(Error::Internal(
            "the catalog's WAL is not empty after a checkpoint; not re-keying".into(),
        ));
    }
    upgrade::remove_if_present(&wal)?;
    upgrade::remove_if_present(&upgrade::with_suffix(path, "-shm"))?;
    let tmp = rekey_copy_path(path);
    std::fs::rename(&tmp, path).map_err(|e| Error::io_path("replacing", path, e))?;
    if let Some(dir) = path.parent() {
        crate::fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

/// Whether the catalog at `path` opens with `key` (read only; nothing is changed).
pub(crate) fn opens_with(path: &Path, key: &CatalogKey) -> bool {
    let Ok(c) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    key_and_probe(&c, key, CipherFormat::V2).is_ok()
}
