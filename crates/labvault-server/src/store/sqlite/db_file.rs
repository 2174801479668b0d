//! The database file and its key: the embedded database is encrypted with SQLCipher (pages
//! AES-256-CBC with an HMAC-SHA512 per page, SQLCipher 4 defaults), keyed with a random
//! 256-bit key given raw (no passphrase derivation: the key is already random). A database
//! written before it was encrypted is converted once, at the first open with a key.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The 256-bit key of the database file. No `Clone`, no `Debug`: it is only ever turned into
/// the keying statement of a connection.
pub struct DbKey(Zeroizing<[u8; 32]>);

impl DbKey {
    /// The key from its 32 bytes.
    pub fn new(bytes: Zeroizing<[u8; 32]>) -> DbKey {
        DbKey(bytes)
    }

    /// `x'…'`: SQLCipher's raw-key form.
    fn literal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(&self.0[..])))
    }
}

/// What a plain SQLite file starts with (an encrypted one starts with random bytes).
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The database file and how to open it.
#[derive(Clone)]
pub(crate) struct DbFile {
    pub(crate) path: PathBuf,
    key: Option<Arc<DbKey>>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether `path` is a plain (unencrypted) SQLite database; `false` for a missing file.
pub fn is_plain(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 16];
    match std::fs::File::open(path) {
        Ok(mut f) => Ok(f.read_exact(&mut head).is_ok() && &head == PLAIN_HEADER),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn key_statement(key: &DbKey) -> Zeroizing<String> {
    Zeroizing::new(format!("PRAGMA key = \"{}\";", key.literal().as_str()))
}

impl DbFile {
    pub(crate) fn new(path: &Path, key: Option<DbKey>) -> DbFile {
        DbFile {
            path: path.to_path_buf(),
            key: key.map(Arc::new),
        }
    }

    /// A connection, keyed first (the key must be the first statement), then checked: a wrong
    /// key, or a file that is not this database, fails here with a clear message rather than
    /// at the first query.
    pub(crate) fn connect(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open(&self.path)?;
        if let Some(k) = &self.key {
            c.execute_batch(key_statement(k).as_str())?;
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|_| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
                    Some(format!(
                        "{} does not open with the database key in keys.json: a replaced key file, or a damaged database",
                        self.path.display()
                    )),
                )
            })?;
        }
        Ok(c)
    }

    /// Converts a database written before encryption into an encrypted one, once, before
    /// anything else opens it: exported into `<db>.encrypting` (every table, index and the
    /// schema version), synced, then renamed over the plain file. A crash before the rename
    /// leaves the plain database (the partial copy is removed and the conversion redone); after
    /// it, the encrypted one. The plain file's old disk blocks are not overwritten (docs).
    pub(crate) fn encrypt_if_plain(&self) -> rusqlite::Result<bool> {
        let Some(key) = &self.key else {
            return Ok(false);
        };
        let tmp = with_suffix(&self.path, ".encrypting");
        for p in [tmp.clone(), with_suffix(&tmp, "-journal")] {
            if p.exists() {
                std::fs::remove_file(&p).map_err(io_err)?;
            }
        }
        if !is_plain(&self.path).map_err(io_err)? {
            return Ok(false);
        }
        {
            let plain = Connection::open(&self.path)?;
            plain.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            let version: i64 = plain.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let attach = Zeroizing::new(format!(
                "ATTACH DATABASE '{}' AS encrypted KEY \"{}\";",
                tmp.display().to_string().replace('\'', "''"),
                key.literal().as_str()
            ));
            plain.execute_batch(attach.as_str())?;
            plain.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))?;
            plain.execute_batch(&format!("PRAGMA encrypted.user_version = {version};"))?;
            plain.execute_batch("DETACH DATABASE encrypted;")?;
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
        for suffix in ["-wal", "-shm"] {
            let p = with_suffix(&self.path, suffix);
            if p.exists() {
                std::fs::remove_file(&p).map_err(io_err)?;
            }
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err)?;
        }
        tracing::info!(db = %self.path.display(), "the database was encrypted");
        Ok(true)
    }
}

fn io_err(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
        Some(e.to_string()),
    )
}
