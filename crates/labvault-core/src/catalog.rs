//! The SQLCipher catalog: connection set-up, schema migrations and the single write path.
//!
//! Every mutating vault operation goes through [`Catalog::write`], one explicit transaction per
//! operation, so that anything that must commit atomically with a change (the audit trail) can be
//! added inside that one closure.

use crate::audit::Subject;
use crate::error::{Error, Result};
use labvault_crypto::CatalogKey;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use zeroize::Zeroizing;

/// Ordered schema migrations; `PRAGMA user_version` = number applied. Append only: never edit a
/// shipped migration, add a new one at the end (the index + 1 is its version).
pub const MIGRATIONS: &[&str] = &[
    // 1: projects, items, versions, vault metadata.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE projects (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        wrapped_key BLOB NOT NULL,
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL
    );
    CREATE TABLE items (
        id              TEXT PRIMARY KEY,
        project_id      TEXT NOT NULL REFERENCES projects(id),
        area            TEXT NOT NULL CHECK (area IN ('uploads','workspace','plots','exports')),
        path            TEXT NOT NULL,
        media_type      TEXT NOT NULL,
        data_type       TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('active','soft_deleted','erased')),
        deleted_at      INTEGER,
        erased_at       INTEGER,
        erase_reason    TEXT,
        current_version INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX items_active_path ON items(project_id, area, path) WHERE state = 'active';
    CREATE INDEX items_project_area ON items(project_id, area, state);
    CREATE TABLE item_versions (
        item_id          TEXT NOT NULL REFERENCES items(id),
        version          INTEGER NOT NULL,
        blob_id          TEXT UNIQUE,
        wrapped_data_key BLOB,
        size             INTEGER NOT NULL,
        sha256           TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        created_by       TEXT NOT NULL,
        PRIMARY KEY (item_id, version)
    );
    "#,
    // 2: audit trail, legal holds, retention policies (see audit.rs).
    crate::audit::MIGRATION_GOVERNANCE,
    // 3: composite audit indexes for combined filters (see audit.rs).
    crate::audit::MIGRATION_AUDIT_COMBINED,
    // 4: lifecycle index for the unlock-time retention pass (see retention.rs).
    crate::retention::MIGRATION_LIFECYCLE_INDEX,
    // 5: small files stored as records of pack files (see packs.rs).
    r#"
    ALTER TABLE item_versions ADD COLUMN pack_id TEXT;
    ALTER TABLE item_versions ADD COLUMN pack_offset INTEGER;
    ALTER TABLE item_versions ADD COLUMN pack_len INTEGER;
    CREATE INDEX item_versions_pack ON item_versions(pack_id) WHERE pack_id IS NOT NULL;
    "#,
    // 6: the items CHECKs as OR-chains (see MIGRATION_ITEMS_CHECKS).
    MIGRATION_ITEMS_CHECKS,
];

/// Migration 6: `items` rebuilt with its `area`/`state` CHECKs written as `=` comparisons
/// instead of `IN (...)` lists. Same rule, but SQLite evaluates an `IN` list of more than two
/// values through a temporary b-tree built on every INSERT: two per imported file, about half of
/// the row's insert cost. Runs with foreign keys off (SQLite's table-rebuild procedure);
/// [`Catalog::migrate`] checks them before committing. Row ids are kept.
const MIGRATION_ITEMS_CHECKS: &str = r#"
    CREATE TABLE items_v6 (
        id              TEXT PRIMARY KEY,
        project_id      TEXT NOT NULL REFERENCES projects(id),
        area            TEXT NOT NULL CHECK (area = 'uploads' OR area = 'workspace'
                                             OR area = 'plots' OR area = 'exports'),
        path            TEXT NOT NULL,
        media_type      TEXT NOT NULL,
        data_type       TEXT NOT NULL,
        created_by      TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state = 'active' OR state = 'soft_deleted'
                                             OR state = 'erased'),
        deleted_at      INTEGER,
        erased_at       INTEGER,
        erase_reason    TEXT,
        current_version INTEGER NOT NULL
    );
    INSERT INTO items_v6(rowid, id, project_id, area, path, media_type, data_type, created_by,
            created_at, updated_at, state, deleted_at, erased_at, erase_reason, current_version)
        SELECT rowid, id, project_id, area, path, media_type, data_type, created_by,
            created_at, updated_at, state, deleted_at, erased_at, erase_reason, current_version
        FROM items;
    DROP TABLE items;
    ALTER TABLE items_v6 RENAME TO items;
    CREATE UNIQUE INDEX items_active_path ON items(project_id, area, path) WHERE state = 'active';
    CREATE INDEX items_project_area ON items(project_id, area, state);
    CREATE INDEX items_lifecycle ON items(state, data_type, created_at);
"#;

/// The schema version this build writes and understands.
pub fn current_schema_version() -> u32 {
    MIGRATIONS.len() as u32
}

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

/// An open, keyed catalog connection.
pub struct Catalog {
    conn: Connection,
    /// Audit frame of the operation in progress (see `audit.rs`).
    pub(crate) audit: crate::audit::AuditHook,
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
    /// [`CipherFormat::V2`] (see `catalog_upgrade.rs`); one that reads under neither format is
    /// `corrupt_catalog` and is left untouched.
    pub fn open(path: &Path, key: &CatalogKey, create: bool) -> Result<Catalog> {
        if !create && !path.exists() {
            return Err(Error::CorruptCatalog(format!(
                "catalog {} is missing",
                path.display()
            )));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        } else {
            // Leftovers of an interrupted upgrade: the old catalog is still the valid one.
            crate::catalog_upgrade::remove_leftovers(path)?;
        }
        let mut conn = Connection::open_with_flags(path, flags)?;
        let mut probe = key_and_probe(&conn, key, CipherFormat::V2);
        if probe.is_err() && !create {
            drop(conn);
            crate::catalog_upgrade::upgrade_v1_to_v2(path, key)?;
            conn = Connection::open_with_flags(path, flags)?;
            probe = key_and_probe(&conn, key, CipherFormat::V2);
        }
        if let Err(e) = probe {
            return Err(match e {
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
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;",
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut cat = Catalog {
            conn,
            audit: Default::default(),
        };
        cat.migrate(version)?;
        cat.conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        Ok(cat)
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

    /// A second, read-only connection to the same catalog, for a bulk read that runs on another
    /// thread next to the main connection (audit verification). Same key and cipher settings;
    /// `query_only`, so it can never write.
    pub(crate) fn open_reader(path: &Path, key: &CatalogKey) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        key_and_probe(&conn, key, CipherFormat::V2)?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(conn)
    }

    /// Runs `f` in one IMMEDIATE transaction and commits iff it returns `Ok`. The single place
    /// where catalog changes happen.
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = match f(&tx).and_then(|out| self.audit.flush(&tx).map(|()| out)) {
            Ok(out) => out,
            Err(e) => {
                self.audit.rolled_back();
                return Err(e);
            }
        };
        if let Err(e) = tx.commit() {
            self.audit.rolled_back();
            return Err(e.into());
        }
        self.audit.committed();
        Ok(out)
    }

    /// Runs `f(tx, 0..n)` in ONE IMMEDIATE transaction (group commit: one durable commit for
    /// many units of work) and commits iff every call returns `Ok`. The audit frame is flushed
    /// after each call, so each unit still gets its own audit event, naming what `subject`
    /// says of the unit's result (or else what the frame finds in the database).
    pub fn write_each<T>(
        &mut self,
        n: usize,
        mut f: impl FnMut(&Transaction<'_>, usize) -> Result<T>,
        subject: impl Fn(&T) -> Option<Subject>,
    ) -> Result<Vec<T>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(n);
        self.audit.begin_batch();
        for k in 0..n {
            let res = f(&tx, k).and_then(|o| self.audit.flush_with(&tx, subject(&o)).map(|()| o));
            match res {
                Ok(o) => out.push(o),
                Err(e) => {
                    self.audit.rolled_back();
                    return Err(e);
                }
            }
        }
        if let Err(e) = tx.commit() {
            self.audit.rolled_back();
            return Err(e.into());
        }
        self.audit.committed();
        Ok(out)
    }

    /// Read-only access for queries.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Moves everything from the WAL into the main file and truncates the WAL, so that erased
    /// key material does not linger in the log file.
    pub fn checkpoint_truncate(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Reads a metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }
}
