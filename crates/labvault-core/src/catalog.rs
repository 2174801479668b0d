//! The SQLCipher catalog: connection set-up, schema migrations and the single write path.
//!
//! Every mutating vault operation goes through [`Catalog::write`], one explicit transaction per
//! operation, so that anything that must commit atomically with a change (the audit trail) can be
//! added inside that one closure.

use crate::error::{Error, Result};
use labvault_crypto::CatalogKey;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
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
];

/// The schema version this build writes and understands.
pub fn current_schema_version() -> u32 {
    MIGRATIONS.len() as u32
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
    /// written.
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
        }
        let conn = Connection::open_with_flags(path, flags)?;
        // The key must be the very first statement on the connection.
        let pragma = key.sqlcipher_key_pragma_value();
        let stmt = Zeroizing::new(format!("PRAGMA key = \"{}\";", pragma.as_str()));
        conn.execute_batch(stmt.as_str())?;
        drop(stmt);
        conn.execute_batch(
            "PRAGMA cipher_memory_security = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cipher_log_level = NONE;",
        )?;
        // First real read: fails with NOTADB on a wrong key or a non-database file.
        let probe: rusqlite::Result<i64> =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
        if let Err(e) = probe {
            return Err(match Error::from(e) {
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
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;",
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut cat = Catalog {
            conn,
            audit: Default::default(),
        };
        cat.migrate(version)?;
        Ok(cat)
    }

    fn migrate(&mut self, from: u32) -> Result<()> {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
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
        let pragma = key.sqlcipher_key_pragma_value();
        let stmt = Zeroizing::new(format!("PRAGMA key = \"{}\";", pragma.as_str()));
        conn.execute_batch(stmt.as_str())?;
        drop(stmt);
        conn.execute_batch(
            "PRAGMA cipher_memory_security = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cipher_log_level = NONE;
             PRAGMA query_only = ON;",
        )?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| Error::CorruptCatalog(e.to_string()))?;
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
    /// after each call, so each unit still gets its own audit event (`last_insert_rowid` of a
    /// unit is what its event names).
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
            match f(&tx, k).and_then(|o| self.audit.flush(&tx).map(|()| o)) {
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
