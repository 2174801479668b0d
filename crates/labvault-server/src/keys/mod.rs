//! The server's own keys at rest: the database key, the token-signing key, the key sealing
//! server-side secrets and the audit-anchor signing key are random 256-bit keys kept only
//! wrapped, in `keys.json`, under a key-encryption key (KEK) held by a custodian: an HSM over
//! PKCS#11, or a key file for the embedded default ([`kek`]). Data directories of earlier
//! versions (one plain key file per key) are converted at the first start: the keys are
//! wrapped, then the plain files are overwritten and removed. Rotation adds a KEK version,
//! re-wraps every key under it and destroys the older versions; it also moves the keys from
//! a key file into an HSM. Format and procedures: `docs/server-keys.md`.

pub mod kek;
pub mod kek_file;
pub mod kek_hsm;
pub mod wrap;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use zeroize::Zeroizing;

use kek::{Custodian, Kek};
pub use kek_hsm::HsmConfig;

/// What goes wrong with the server's keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The custodian (HSM, key file) cannot be reached or used.
    #[error("{0}")]
    Custodian(String),
    /// A wrapped key is malformed or does not authenticate.
    #[error(transparent)]
    Wrap(#[from] wrap::WrapError),
    /// A wrapped key names a KEK version the custodian no longer (or never) held.
    #[error("the {purpose} key is wrapped under KEK version {version}, which {custodian} does not hold: a different HSM token or KEK file than the one these keys were wrapped with")]
    MissingKekVersion {
        /// Role of the key.
        purpose: String,
        /// Version named by the wrapped key.
        version: u32,
        /// Who was asked.
        custodian: Custodian,
    },
    /// `keys.json` is missing, unreadable or inconsistent.
    #[error("{0}")]
    Store(String),
    /// Filesystem failure.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the KEK is: a key file or an HSM token.
pub enum KekChoice {
    /// The key file at this path (`<data>/kek.key` by default).
    File(PathBuf),
    /// An HSM reached over PKCS#11.
    Hsm(HsmConfig),
}

impl KekChoice {
    /// The embedded default: `kek.key` in the data directory.
    pub fn default_for(data_dir: &Path) -> KekChoice {
        KekChoice::File(data_dir.join("kek.key"))
    }

    /// Who holds the KEK.
    pub fn custodian(&self) -> Custodian {
        match self {
            KekChoice::File(_) => Custodian::File,
            KekChoice::Hsm(cfg) => Custodian::Pkcs11 {
                token: cfg.token.clone(),
            },
        }
    }

    fn open(&self, create: bool) -> Result<Box<dyn Kek>, KeyError> {
        Ok(match self {
            KekChoice::File(p) => Box::new(kek_file::FileKek::open(p, create)?),
            KekChoice::Hsm(cfg) => Box::new(kek_hsm::HsmKek::open(cfg)?),
        })
    }
}

/// The server's keys, unwrapped. No `Clone`, no `Debug`; wiped on drop.
pub struct ServerKeys {
    /// Key of the SQLCipher database.
    pub db: Zeroizing<[u8; 32]>,
    /// HMAC key of access tokens.
    pub jwt: Zeroizing<[u8; 32]>,
    /// Seals server-side secrets (TOTP seeds) and keys their blind hashes.
    pub secrets: Zeroizing<[u8; 32]>,
    /// Ed25519 seed of the audit-anchor signing key.
    pub anchor: Zeroizing<[u8; 32]>,
}

/// The key roles, in `keys.json` and in each wrapped key's associated data, with the plain
/// file an earlier version kept each in.
const ROLES: [(&str, &str); 4] = [
    ("db", "db.key"),
    ("jwt", "jwt.key"),
    ("secrets", "secrets.key"),
    ("anchor", "anchor.key"),
];

impl ServerKeys {
    fn slot(&mut self, role: &str) -> &mut Zeroizing<[u8; 32]> {
        match role {
            "db" => &mut self.db,
            "jwt" => &mut self.jwt,
            "secrets" => &mut self.secrets,
            _ => &mut self.anchor,
        }
    }
    fn get(&self, role: &str) -> &[u8; 32] {
        match role {
            "db" => &self.db,
            "jwt" => &self.jwt,
            "secrets" => &self.secrets,
            _ => &self.anchor,
        }
    }
    fn zero() -> ServerKeys {
        let z = || Zeroizing::new([0u8; 32]);
        ServerKeys {
            db: z(),
            jwt: z(),
            secrets: z(),
            anchor: z(),
        }
    }
}

const FORMAT: &str = "labvault-server-keys/1";

/// `keys.json`: the wrapped keys and who wrapped them.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    format: String,
    custodian: Custodian,
    kek_version: u32,
    /// Unix seconds of the last wrap (creation or rotation): what scheduled rotation reads.
    wrapped_at: i64,
    keys: BTreeMap<String, String>,
    /// Earlier KEK versions still held, with when they were retired: backups taken before a
    /// rotation hold keys wrapped under them, so they are destroyed only once those backups
    /// have expired (or at once on request, after a compromise).
    #[serde(default)]
    retired: BTreeMap<u32, i64>,
}

/// The files of a data directory's keys.
pub struct KeyPaths {
    dir: PathBuf,
}

impl KeyPaths {
    /// The keys of the data directory `dir`.
    pub fn new(dir: &Path) -> KeyPaths {
        KeyPaths {
            dir: dir.to_path_buf(),
        }
    }
    /// The wrapped keys.
    pub fn keys_json(&self) -> PathBuf {
        self.dir.join("keys.json")
    }
    fn lock(&self) -> PathBuf {
        self.dir.join("keys.lock")
    }
    fn legacy(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
    /// Whether the keys were made (a data directory's database is useless without them).
    pub fn exist(&self) -> bool {
        self.keys_json().exists() || self.legacy("db.key").exists()
    }

    /// Serializes key changes (first start, rotation) between processes on this directory.
    fn locked(&self) -> Result<std::fs::File, KeyError> {
        let p = self.lock();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io(&p))?;
        f.lock().map_err(io(&p))?;
        Ok(f)
    }

    fn read(&self) -> Result<Option<KeyFile>, KeyError> {
        let p = self.keys_json();
        match std::fs::read_to_string(&p) {
            Ok(t) => {
                let kf: KeyFile = serde_json::from_str(&t).map_err(|e| {
                    KeyError::Store(format!("{} is not a LabVault key file ({e})", p.display()))
                })?;
                if kf.format != FORMAT {
                    return Err(KeyError::Store(format!(
                        "{}: unknown format '{}'",
                        p.display(),
                        kf.format
                    )));
                }
                Ok(Some(kf))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn write(&self, kf: &KeyFile) -> Result<(), KeyError> {
        let text = serde_json::to_string_pretty(kf).expect("serializable");
        write_atomic(&self.keys_json(), text.as_bytes(), 0o600)
    }

    fn unwrap_all(&self, kf: &KeyFile, kek: &dyn Kek) -> Result<ServerKeys, KeyError> {
        let mut keys = ServerKeys::zero();
        for (role, _) in ROLES {
            let b64 = kf.keys.get(role).ok_or_else(|| {
                KeyError::Store(format!("{} has no {role} key", self.keys_json().display()))
            })?;
            let blob = B64.decode(b64).map_err(|_| {
                KeyError::Store(format!(
                    "{}: the {role} key is not base64",
                    self.keys_json().display()
                ))
            })?;
            let k = kek.unwrap(role, &blob)?;
            let k: [u8; 32] = k[..]
                .try_into()
                .map_err(|_| KeyError::Store(format!("the {role} key is not 256 bits")))?;
            **keys.slot(role) = k;
        }
        Ok(keys)
    }

    fn wrap_all(&self, keys: &ServerKeys, kek: &dyn Kek, now: i64) -> Result<KeyFile, KeyError> {
        let mut wrapped = BTreeMap::new();
        for (role, _) in ROLES {
            wrapped.insert(
                role.to_string(),
                B64.encode(kek.wrap(role, keys.get(role))?),
            );
        }
        Ok(KeyFile {
            format: FORMAT.into(),
            custodian: kek.custodian(),
            kek_version: kek.current_version(),
            wrapped_at: now,
            keys: wrapped,
            retired: BTreeMap::new(),
        })
    }

    /// Reads a plain key file of an earlier version, if present.
    fn read_legacy(&self, file: &str) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
        let p = self.legacy(file);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&p)(e)),
        };
        let bytes = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| KeyError::Store(format!("{} is not a hex key", p.display())))?,
        );
        let key: [u8; 32] = bytes[..]
            .try_into()
            .map_err(|_| KeyError::Store(format!("{} must hold exactly 256 bits", p.display())))?;
        Ok(Some(Zeroizing::new(key)))
    }

    /// Overwrites and removes the plain key files of an earlier version once `keys.json`
    /// holds them wrapped.
    fn shred_legacy(&self) -> Result<(), KeyError> {
        for (_, file) in ROLES {
            shred(&self.legacy(file))?;
        }
        Ok(())
    }

    /// The keys: unwrapped from `keys.json`, or made (or taken over from the plain files of
    /// an earlier version) and wrapped at the first start. `database_exists` guards against
    /// making new keys for a database whose keys were lost.
    pub fn load(
        &self,
        choice: &KekChoice,
        database_exists: bool,
        database_plain: bool,
        now: i64,
    ) -> Result<ServerKeys, KeyError> {
        // Which custodian wrapped the keys, then the custodian itself: a missing HSM, a
        // wrong PIN or the other custodian fails before anything is written.
        if let Some(kf) = self.read()? {
            if kf.custodian != choice.custodian() {
                return Err(KeyError::Custodian(format!(
                    "the server keys in {} are wrapped by {}, but the server was started with {}{}",
                    self.keys_json().display(),
                    kf.custodian,
                    choice.custodian(),
                    match &kf.custodian {
                        Custodian::File => ": to move them into the HSM, run `labvault-server rotate-kek --from-kek-file <kek.key>` with the HSM options".to_string(),
                        Custodian::Pkcs11 { token } => format!(
                            ": give the HSM options (--hsm-module, --hsm-token {token}, the PIN in LABVAULT_HSM_PIN)"
                        ),
                    }
                )));
            }
        }
        let first_start = !self.keys_json().exists();
        let mut kek = choice.open(first_start)?;
        let _lock = self.locked()?;
        if let Some(kf) = self.read()? {
            let keys = self.unwrap_all(&kf, kek.as_ref())?;
            // A start interrupted after writing keys.json but before removing plain files.
            self.shred_legacy()?;
            return Ok(keys);
        }
        let legacy_db = self.read_legacy("db.key")?;
        if database_exists && !database_plain && legacy_db.is_none() {
            return Err(KeyError::Store(format!(
                "the database is encrypted but its keys ({}) are missing: restore keys.json (and the KEK file or HSM token it names) from the backup kept with them",
                self.keys_json().display()
            )));
        }
        let mut keys = ServerKeys::zero();
        for (role, file) in ROLES {
            let k = match self.read_legacy(file)? {
                Some(k) => k,
                None => Zeroizing::new(crate::secrets::random_bytes::<32>()),
            };
            **keys.slot(role) = *k;
        }
        if kek.current_version() == 0 {
            kek.add_version()?;
        }
        let kf = self.wrap_all(&keys, kek.as_ref(), now)?;
        self.write(&kf)?;
        self.shred_legacy()?;
        Ok(keys)
    }

    /// The keys of an existing `keys.json`, unwrapped, writing nothing (no lock file, no
    /// conversion): for a backup's copy of the keys.
    pub fn read_only(&self, choice: &KekChoice) -> Result<ServerKeys, KeyError> {
        let kf = self
            .read()?
            .ok_or_else(|| KeyError::Store(format!("{} is missing", self.keys_json().display())))?;
        if kf.custodian != choice.custodian() {
            return Err(KeyError::Custodian(format!(
                "the keys in {} are wrapped by {}, not by {}",
                self.keys_json().display(),
                kf.custodian,
                choice.custodian()
            )));
        }
        let kek = choice.open(false)?;
        self.unwrap_all(&kf, kek.as_ref())
    }

    /// When the keys were last wrapped (unix seconds), and under which KEK version.
    pub fn wrapped_at(&self) -> Result<Option<(i64, u32)>, KeyError> {
        Ok(self.read()?.map(|kf| (kf.wrapped_at, kf.kek_version)))
    }

    /// Rotates the KEK: a new version on `to`'s custodian, every key re-wrapped under it and
    /// `keys.json` replaced. The version before is retired, not destroyed: backups taken
    /// before hold keys wrapped under it. Retired versions retired at or before
    /// `destroy_retired_before` (unix seconds: now minus the backup retention, or now after
    /// a compromise) are destroyed. With `from`, the keys are read with that (other)
    /// custodian: moving them from a key file into an HSM, after which the key file is
    /// overwritten and removed.
    pub fn rotate(
        &self,
        to: &KekChoice,
        from: Option<&KekChoice>,
        now: i64,
        destroy_retired_before: i64,
    ) -> Result<Rotation, KeyError> {
        let mut kek = to.open(true)?;
        let old = match from {
            Some(f) => Some(f.open(false)?),
            None => None,
        };
        let _lock = self.locked()?;
        let kf = self.read()?.ok_or_else(|| {
            KeyError::Store(format!(
                "{} does not exist: start the server once first",
                self.keys_json().display()
            ))
        })?;
        let reader: &dyn Kek = old.as_deref().unwrap_or(kek.as_ref());
        if kf.custodian != reader.custodian() {
            return Err(KeyError::Custodian(format!(
                "the server keys are wrapped by {}, not by {}",
                kf.custodian,
                reader.custodian()
            )));
        }
        let keys = self.unwrap_all(&kf, reader)?;
        let new_version = kek.add_version()?;
        let mut new = self.wrap_all(&keys, kek.as_ref(), now)?;
        if old.is_none() {
            new.retired = kf.retired.clone();
            new.retired.insert(kf.kek_version, now);
        }
        self.write(&new)?;
        let expired: Vec<u32> = new
            .retired
            .iter()
            .filter(|(_, at)| **at <= destroy_retired_before)
            .map(|(v, _)| *v)
            .collect();
        for v in &expired {
            kek.destroy(*v)?;
            new.retired.remove(v);
        }
        if !expired.is_empty() {
            self.write(&new)?;
        }
        if let Some(KekChoice::File(p)) = from {
            shred(p)?;
        }
        Ok(Rotation {
            from: (kf.custodian, kf.kek_version),
            to: (new.custodian, new_version),
            keys: ROLES.len(),
            destroyed: expired,
            retained: new.retired.keys().copied().collect(),
        })
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Custodian and KEK version before.
    pub from: (Custodian, u32),
    /// Custodian and KEK version after.
    pub to: (Custodian, u32),
    /// Keys re-wrapped.
    pub keys: usize,
    /// KEK versions destroyed.
    pub destroyed: Vec<u32>,
    /// Retired KEK versions still held (for older backups).
    pub retained: Vec<u32>,
}

/// Writes `data` to `path` through a synced temporary file and a rename, then syncs the
/// directory: after a crash the file is either the old or the new one.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
        let mut f = o.open(&tmp).map_err(io(&tmp))?;
        f.write_all(data).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    let _ = mode;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Overwrites a key file with zeros (synced) and removes it; nothing if it does not exist.
pub(crate) fn shred(path: &Path) -> Result<(), KeyError> {
    use std::io::Write;
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(&vec![0u8; len as usize]).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    drop(f);
    std::fs::remove_file(path).map_err(io(path))
}
