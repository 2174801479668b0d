//! Backups of a data directory: consistent, encrypted, authenticated, incremental for blobs,
//! with their own retention (`docs/server-backups.md`).
//!
//! A backup repository is a directory:
//! ```text
//! labvault-backup.json            marker: the repository format
//! snapshots/<id>/manifest.json    what the snapshot holds, with SHA-256 of every file, and a MAC
//! snapshots/<id>/db               the database as of one read transaction (SQLCipher, db key)
//! snapshots/<id>/keys.json        the server keys, wrapped under the KEK (never the KEK itself)
//! objects/<tenant>/<project>/..   blob objects (device ciphertext), shared by the snapshots
//! ```
//! Nothing in it is readable without the KEK's custodian (HSM or key file, kept elsewhere):
//! the database is encrypted with the database key, which is wrapped; the objects are sealed
//! by the devices. The manifest's MAC is keyed from the server's secrets key, so verification
//! needs the custodian too and a manifest cannot be forged or swapped between snapshots.
//! Objects are immutable, so a snapshot copies only objects the repository lacks; snapshots
//! older than the retention are removed with the objects only they referenced.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::{KekChoice, KeyError, KeyPaths};
use crate::server::DataDir;
use crate::store::blobs::object_relpath;

const REPO_FORMAT: &str = "labvault-server-backup/1";
const MARKER: &str = "labvault-backup.json";

/// What goes wrong with a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The keys (custodian, wrapped keys).
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The backup does not verify: tampered, damaged or incomplete.
    #[error("backup {snapshot}: {what}")]
    Invalid {
        /// Snapshot concerned.
        snapshot: String,
        /// What is wrong.
        what: String,
    },
    /// Wrong usage (no snapshot, a data directory that is not empty...).
    #[error("{0}")]
    Usage(String),
    /// The database could not be copied.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Size and SHA-256 (hex) of a file in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A blob object a snapshot references.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectEntry {
    /// Object key (`tenant/project/id`).
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// `manifest.json` of a snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Repository format.
    pub format: String,
    /// Snapshot id (also its directory name).
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Server version that wrote it.
    pub server_version: String,
    /// The database's schema version.
    pub schema_version: i64,
    /// The database copy.
    pub db: FileEntry,
    /// The wrapped keys.
    pub keys: FileEntry,
    /// Blob objects.
    pub objects: Vec<ObjectEntry>,
    /// The generated TLS certificate (`tls-cert.pem`) and its key as the data directory keeps
    /// it, sealed under the server's secrets key (`tls-key.sealed`), so a restored server
    /// keeps the pin its clients know.
    #[serde(default)]
    pub tls: Option<(FileEntry, FileEntry)>,
    /// HMAC-SHA256 (hex) of this manifest with `mac` empty, under a key derived from the
    /// server's secrets key.
    #[serde(default)]
    pub mac: String,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The new snapshot.
    pub id: String,
    /// Objects it references.
    pub objects: usize,
    /// Objects copied now (the others were in the repository already).
    pub copied: usize,
    /// Bytes copied now (database and objects).
    pub bytes_copied: u64,
    /// Snapshots removed by the retention.
    pub pruned_snapshots: Vec<String>,
    /// Objects removed with them.
    pub pruned_objects: usize,
}

/// Progress of long work, for a bar or an event.
pub trait Progress {
    /// `done` of `total` objects, `bytes` so far.
    fn objects(&mut self, done: usize, total: usize, bytes: u64);
}

impl Progress for () {
    fn objects(&mut self, _: usize, _: usize, _: u64) {}
}

/// The MAC key of manifests, derived from the server's secrets key.
fn mac_key(secrets: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secrets).expect("any key length");
    m.update(b"labvault/server/backup-manifest-mac/v1");
    Zeroizing::new(m.finalize().into_bytes().into())
}

fn manifest_mac(key: &[u8; 32], m: &Manifest) -> String {
    let mut unsigned = m.clone();
    unsigned.mac = String::new();
    let bytes = serde_json::to_vec(&unsigned).expect("serializable");
    let mut h = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    h.update(&bytes);
    hex::encode(h.finalize().into_bytes())
}

fn sha256_file(path: &Path) -> Result<FileEntry, BackupError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileEntry {
        size,
        sha256: hex::encode(h.finalize()),
    })
}

/// Copies `from` to `to` through a synced temporary file and a rename, hashing on the way.
fn copy_synced(from: &Path, to: &Path) -> Result<FileEntry, BackupError> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let mut src = std::fs::File::open(from).map_err(io(from))?;
    let mut dst = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(io(from))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io(&tmp))?;
        size += n as u64;
    }
    dst.sync_all().map_err(io(&tmp))?;
    drop(dst);
    std::fs::rename(&tmp, to).map_err(io(to))?;
    Ok(FileEntry {
        size,
        sha256: hex::encode(h.finalize()),
    })
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// A backup repository (a directory).
pub struct Repo {
    root: PathBuf,
}

impl Repo {
    /// The repository at `root`; created (with its marker) by the first backup.
    pub fn new(root: &Path) -> Repo {
        Repo {
            root: root.to_path_buf(),
        }
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(id)
    }

    fn object(&self, key: &str) -> Option<PathBuf> {
        object_relpath(key).map(|r| self.root.join(r))
    }

    fn init(&self) -> Result<(), BackupError> {
        let marker = self.root.join(MARKER);
        if marker.exists() {
            let text = std::fs::read_to_string(&marker).map_err(io(&marker))?;
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if v["format"] != REPO_FORMAT {
                return Err(BackupError::Usage(format!(
                    "{} is not a LabVault server backup repository ({})",
                    self.root.display(),
                    marker.display()
                )));
            }
            return Ok(());
        }
        if self.root.exists()
            && std::fs::read_dir(&self.root)
                .map_err(io(&self.root))?
                .next()
                .is_some()
        {
            return Err(BackupError::Usage(format!(
                "{} is neither empty nor a LabVault backup repository",
                self.root.display()
            )));
        }
        std::fs::create_dir_all(self.snapshots_dir()).map_err(io(&self.root))?;
        std::fs::write(
            &marker,
            serde_json::to_vec_pretty(&serde_json::json!({ "format": REPO_FORMAT }))
                .expect("serializable"),
        )
        .map_err(io(&marker))?;
        Ok(())
    }

    /// Snapshot ids, oldest first (ids sort by time). Partial snapshots are not listed.
    pub fn snapshots(&self) -> Result<Vec<String>, BackupError> {
        let dir = self.snapshots_dir();
        let mut ids = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(io(&dir))?;
                    let name = e.file_name().to_string_lossy().to_string();
                    if !name.ends_with(".partial") && e.path().join("manifest.json").exists() {
                        ids.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&dir)(e)),
        }
        ids.sort();
        Ok(ids)
    }

    /// The manifest of a snapshot, parsed (not yet authenticated).
    pub fn manifest(&self, id: &str) -> Result<Manifest, BackupError> {
        let p = self.snapshot_dir(id).join("manifest.json");
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        serde_json::from_str(&text).map_err(|e| BackupError::Invalid {
            snapshot: id.into(),
            what: format!("manifest.json is not a manifest ({e})"),
        })
    }

    fn resolve(&self, snapshot: Option<&str>) -> Result<String, BackupError> {
        let ids = self.snapshots()?;
        match snapshot {
            Some(s) if ids.iter().any(|i| i == s) => Ok(s.to_string()),
            Some(s) => Err(BackupError::Usage(format!(
                "no snapshot '{s}' in {} (snapshots: {})",
                self.root.display(),
                if ids.is_empty() {
                    "none".into()
                } else {
                    ids.join(", ")
                }
            ))),
            None => ids.last().cloned().ok_or_else(|| {
                BackupError::Usage(format!("{} holds no snapshot", self.root.display()))
            }),
        }
    }

    /// Checks a snapshot without restoring it: its keys unwrap under the custodian, its
    /// manifest's MAC holds, and every file has the size and SHA-256 it lists. Returns the
    /// authenticated manifest.
    pub fn verify(
        &self,
        snapshot: Option<&str>,
        kek: &KekChoice,
        progress: &mut dyn Progress,
    ) -> Result<Manifest, BackupError> {
        let id = self.resolve(snapshot)?;
        let dir = self.snapshot_dir(&id);
        let invalid = |what: String| BackupError::Invalid {
            snapshot: id.clone(),
            what,
        };
        let m = self.manifest(&id)?;
        if m.format != REPO_FORMAT {
            return Err(invalid(format!("unknown format '{}'", m.format)));
        }
        let keys = KeyPaths::new(&dir).read_only(kek).map_err(|e| match e {
            KeyError::Wrap(w) => invalid(format!("keys.json: {w}")),
            e => BackupError::Keys(e),
        })?;
        let mk = mac_key(&keys.secrets);
        let expected = manifest_mac(&mk, &m);
        let given = hex::decode(&m.mac).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            hex::decode(&expected).expect("hex").as_slice(),
        )) {
            return Err(invalid(
                "manifest.json does not authenticate (altered, or from another server)".into(),
            ));
        }
        if m.id != id {
            return Err(invalid(format!(
                "the manifest is that of snapshot '{}' (a renamed snapshot)",
                m.id
            )));
        }
        let mut files = vec![("db", &m.db), ("keys.json", &m.keys)];
        if let Some((cert, key)) = &m.tls {
            files.push(("tls-cert.pem", cert));
            files.push(("tls-key.sealed", key));
        }
        for (name, want) in files {
            let got = sha256_file(&dir.join(name)).map_err(|e| invalid(e.to_string()))?;
            if &got != want {
                return Err(invalid(format!(
                    "{name} does not match the manifest (altered or damaged)"
                )));
            }
        }
        let mut bytes = 0u64;
        for (i, o) in m.objects.iter().enumerate() {
            let p = self
                .object(&o.key)
                .ok_or_else(|| invalid(format!("object key '{}' is not valid", o.key)))?;
            let got =
                sha256_file(&p).map_err(|_| invalid(format!("object {} is missing", o.key)))?;
            if got.size != o.size || got.sha256 != o.sha256 {
                return Err(invalid(format!(
                    "object {} does not match the manifest (altered or damaged)",
                    o.key
                )));
            }
            bytes += o.size;
            progress.objects(i + 1, m.objects.len(), bytes);
        }
        Ok(m)
    }
}

/// A new snapshot id: UTC time, sortable, and a random suffix.
fn snapshot_id(now: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        hex::encode(crate::secrets::random_bytes::<3>())
    )
}

/// Backs up the data directory `dir` into `repo`: the database as of one read transaction,
/// the wrapped keys, and every live blob object the repository lacks; then removes snapshots
/// older than `keep_days` and the objects only they referenced. The server may be running.
pub fn create(
    dir: &DataDir,
    kek: &KekChoice,
    repo_root: &Path,
    now: i64,
    keep_days: u32,
    progress: &mut dyn Progress,
) -> Result<BackupReport, BackupError> {
    let keys = KeyPaths::new(&dir.0).read_only(kek)?;
    let repo = Repo::new(repo_root);
    repo.init()?;
    let id = snapshot_id(now);
    let partial = repo.snapshots_dir().join(format!("{id}.partial"));
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;

    // Hashes of objects already in the repository, from the snapshots that list them.
    let mut known: BTreeMap<String, ObjectEntry> = BTreeMap::new();
    for s in repo.snapshots()? {
        if let Ok(m) = repo.manifest(&s) {
            for o in m.objects {
                known.insert(o.key.clone(), o);
            }
        }
    }

    // The database, as of one read transaction, and the objects it references.
    let db_copy = partial.join("db");
    let (schema_version, object_keys) = {
        let c = crate::store::sqlite::SqliteStore::connect_raw(
            &dir.db(),
            crate::store::sqlite::DbKey::new(keys.db.clone()),
        )
        .map_err(|e| BackupError::Usage(e.to_string()))?;
        c.busy_timeout(std::time::Duration::from_secs(30))?;
        let attach = Zeroizing::new(format!(
            "ATTACH DATABASE '{}' AS snapshot KEY \"x'{}'\";",
            db_copy.display().to_string().replace('\'', "''"),
            hex::encode(&keys.db[..])
        ));
        c.execute_batch(attach.as_str())?;
        c.execute_batch("BEGIN")?;
        let version: i64 = c.query_row("PRAGMA main.user_version", [], |r| r.get(0))?;
        let mut objects = Vec::new();
        {
            // Object keys as the blob store names them: tenant/project/object.
            let mut s = c.prepare(
                "SELECT DISTINCT tenant_id || '/' || project_id || '/' || object AS k \
                 FROM main.blobs WHERE erased_at IS NULL ORDER BY k",
            )?;
            let rows = s.query_map([], |r| r.get::<_, String>(0))?;
            for r in rows {
                objects.push(r?);
            }
        }
        c.query_row("SELECT sqlcipher_export('snapshot')", [], |_| Ok(()))?;
        c.execute_batch(&format!("PRAGMA snapshot.user_version = {version};"))?;
        c.execute_batch("COMMIT; DETACH DATABASE snapshot;")?;
        (version, objects)
    };
    let db_entry = sha256_file(&db_copy)?;
    std::fs::File::open(&db_copy)
        .and_then(|f| f.sync_all())
        .map_err(io(&db_copy))?;
    let mut bytes_copied = db_entry.size;
    let keys_entry = copy_synced(
        &KeyPaths::new(&dir.0).keys_json(),
        &partial.join("keys.json"),
    )?;

    let tls = if dir.cert().exists() && dir.sealed_key().exists() {
        let cert = copy_synced(&dir.cert(), &partial.join("tls-cert.pem"))?;
        let key = copy_synced(&dir.sealed_key(), &partial.join("tls-key.sealed"))?;
        Some((cert, key))
    } else {
        None
    };

    let live = dir.blobs();
    let mut objects = Vec::with_capacity(object_keys.len());
    let mut copied = 0usize;
    for (i, key) in object_keys.iter().enumerate() {
        let (Some(rel), Some(dst)) = (object_relpath(key), repo.object(key)) else {
            continue;
        };
        let src = live.join(&rel);
        let size = match std::fs::metadata(&src) {
            Ok(m) => m.len(),
            // Erased and collected since the read transaction: nothing to keep.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&src)(e)),
        };
        let entry = match known.get(key) {
            Some(k) if k.size == size && dst.exists() => k.clone(),
            _ => {
                let f = copy_synced(&src, &dst)?;
                copied += 1;
                bytes_copied += f.size;
                ObjectEntry {
                    key: key.clone(),
                    size: f.size,
                    sha256: f.sha256,
                }
            }
        };
        objects.push(entry);
        progress.objects(i + 1, object_keys.len(), bytes_copied);
    }

    let mut m = Manifest {
        format: REPO_FORMAT.into(),
        id: id.clone(),
        created_at: now,
        server_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        db: db_entry,
        keys: keys_entry,
        objects,
        tls,
        mac: String::new(),
    };
    m.mac = manifest_mac(&mac_key(&keys.secrets), &m);
    let mpath = partial.join("manifest.json");
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).expect("serializable"))
        .map_err(io(&mpath))?;
    std::fs::File::open(&mpath)
        .and_then(|f| f.sync_all())
        .map_err(io(&mpath))?;
    sync_dir(&partial)?;
    let done = repo.snapshot_dir(&id);
    std::fs::rename(&partial, &done).map_err(io(&done))?;
    sync_dir(&repo.snapshots_dir())?;

    let (pruned_snapshots, pruned_objects) = prune(&repo, now, keep_days, &id)?;
    Ok(BackupReport {
        id,
        objects: m.objects.len(),
        copied,
        bytes_copied,
        pruned_snapshots,
        pruned_objects,
    })
}

/// Removes snapshots created more than `keep_days` ago (never `keep`, the newest), leftover
/// partial snapshots, and objects no remaining snapshot references.
fn prune(
    repo: &Repo,
    now: i64,
    keep_days: u32,
    keep: &str,
) -> Result<(Vec<String>, usize), BackupError> {
    let cutoff = now - i64::from(keep_days) * 86_400;
    let mut removed = Vec::new();
    let mut referenced = BTreeSet::new();
    for s in repo.snapshots()? {
        let m = repo.manifest(&s)?;
        if s != keep && m.created_at < cutoff {
            let d = repo.snapshot_dir(&s);
            std::fs::remove_dir_all(&d).map_err(io(&d))?;
            removed.push(s);
        } else {
            referenced.extend(m.objects.into_iter().map(|o| o.key));
        }
    }
    let sdir = repo.snapshots_dir();
    for e in std::fs::read_dir(&sdir).map_err(io(&sdir))?.flatten() {
        if e.file_name().to_string_lossy().ends_with(".partial") {
            std::fs::remove_dir_all(e.path()).map_err(io(&e.path()))?;
        }
    }
    let mut pruned = 0;
    let objects = repo.root.join("objects");
    for p in walk(&objects) {
        let rel = p.strip_prefix(&objects).unwrap_or(&p);
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        // objects/<tenant>/<project>/<xx>/<id>
        let key = match parts.as_slice() {
            [t, pr, _, id] => format!("{t}/{pr}/{id}"),
            _ => String::new(),
        };
        if !referenced.contains(&key) {
            std::fs::remove_file(&p).map_err(io(&p))?;
            pruned += 1;
        }
    }
    Ok((removed, pruned))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Restores a snapshot into `dir`, which must hold no database, no keys and no objects (the
/// KEK file may already be there). The snapshot is verified completely first; nothing is
/// written when it does not verify.
pub fn restore(
    repo_root: &Path,
    snapshot: Option<&str>,
    dir: &DataDir,
    kek: &KekChoice,
    progress: &mut dyn Progress,
) -> Result<Manifest, BackupError> {
    let keys_json = KeyPaths::new(&dir.0).keys_json();
    let has_objects = walk(&dir.blobs().join("objects"))
        .into_iter()
        .next()
        .is_some();
    if dir.db().exists() || keys_json.exists() || has_objects {
        return Err(BackupError::Usage(format!(
            "{} is not empty (a database, keys or blob objects are there): restore into an empty data directory",
            dir.0.display()
        )));
    }
    let repo = Repo::new(repo_root);
    let m = repo.verify(snapshot, kek, progress)?;
    let sdir = repo.snapshot_dir(&m.id);
    for o in &m.objects {
        let (Some(src), Some(rel)) = (repo.object(&o.key), object_relpath(&o.key)) else {
            continue;
        };
        let got = copy_synced(&src, &dir.blobs().join(rel))?;
        if got.sha256 != o.sha256 {
            return Err(BackupError::Invalid {
                snapshot: m.id.clone(),
                what: format!("object {} changed while it was restored", o.key),
            });
        }
    }
    if let Some((cert, key)) = &m.tls {
        if !dir.sealed_key().exists() {
            let got_cert = copy_synced(&sdir.join("tls-cert.pem"), &dir.cert())?;
            let got_key = copy_synced(&sdir.join("tls-key.sealed"), &dir.sealed_key())?;
            if &got_cert != cert || &got_key != key {
                return Err(BackupError::Invalid {
                    snapshot: m.id.clone(),
                    what: "the TLS certificate or key changed while they were restored".into(),
                });
            }
        }
    }
    // The database and the keys last: a restore cut short leaves no database to start on.
    let db = copy_synced(&sdir.join("db"), &dir.db())?;
    let keys = copy_synced(&sdir.join("keys.json"), &keys_json)?;
    if db != m.db || keys != m.keys {
        for p in [dir.db(), keys_json] {
            let _ = std::fs::remove_file(p);
        }
        return Err(BackupError::Invalid {
            snapshot: m.id.clone(),
            what: "the database or keys changed while they were restored".into(),
        });
    }
    sync_dir(&dir.0)?;
    Ok(m)
}
