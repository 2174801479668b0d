//! The KEK in a key file: the embedded default. `kek.key` holds the KEK's versions (JSON,
//! mode 0600, replaced atomically). Whoever has this file and the data directory has every
//! key: keep it elsewhere (`--kek-file`) or use an HSM (`docs/server-keys.md`).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::kek::{Custodian, Kek};
use super::wrap;
use super::KeyError;

const FORMAT: &str = "labvault-kek/1";

#[derive(serde::Serialize, serde::Deserialize)]
struct FileForm {
    format: String,
    versions: Vec<VersionForm>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct VersionForm {
    version: u32,
    key: String,
}

/// The hex copies of KEK versions are wiped like the keys themselves.
impl Drop for VersionForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// A KEK read from (and kept in) a key file.
pub struct FileKek {
    path: PathBuf,
    versions: Vec<(u32, Zeroizing<[u8; 32]>)>,
}

impl FileKek {
    /// Reads `path`, or starts an empty KEK there if `create` and the file does not exist
    /// (nothing is written until a version is added).
    pub fn open(path: &Path, create: bool) -> Result<FileKek, KeyError> {
        let bad = |why: &str| KeyError::Custodian(format!("{}: {why}", path.display()));
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                return Ok(FileKek {
                    path: path.to_path_buf(),
                    versions: Vec::new(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad("the key-encryption key file is missing (restore it from where it is kept; without it no server key can be read)"))
            }
            Err(e) => return Err(bad(&e.to_string())),
        };
        let form: FileForm = serde_json::from_str(&text)
            .map_err(|e| bad(&format!("not a LabVault KEK file ({e})")))?;
        if form.format != FORMAT {
            return Err(bad(&format!("unknown KEK file format '{}'", form.format)));
        }
        let mut versions = Vec::new();
        for v in form.versions {
            let bytes =
                Zeroizing::new(hex::decode(&v.key).map_err(|_| bad("a KEK version is not hex"))?);
            let key: [u8; 32] = bytes[..]
                .try_into()
                .map_err(|_| bad("a KEK version is not 256 bits"))?;
            versions.push((v.version, Zeroizing::new(key)));
        }
        versions.sort_by_key(|(v, _)| *v);
        Ok(FileKek {
            path: path.to_path_buf(),
            versions,
        })
    }

    fn save(&self) -> Result<(), KeyError> {
        let form = FileForm {
            format: FORMAT.into(),
            versions: self
                .versions
                .iter()
                .map(|(v, k)| VersionForm {
                    version: *v,
                    key: hex::encode(&k[..]),
                })
                .collect(),
        };
        let text = Zeroizing::new(serde_json::to_string_pretty(&form).expect("serializable"));
        drop(form);
        super::write_atomic(&self.path, text.as_bytes(), 0o600)
    }

    fn key(&self, version: u32) -> Option<&[u8; 32]> {
        self.versions
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| &**k)
    }
}

impl Kek for FileKek {
    fn custodian(&self) -> Custodian {
        Custodian::File
    }

    fn current_version(&self) -> u32 {
        self.versions.last().map(|(v, _)| *v).unwrap_or(0)
    }

    fn versions(&self) -> Vec<u32> {
        self.versions.iter().map(|(v, _)| *v).collect()
    }

    fn add_version(&mut self) -> Result<u32, KeyError> {
        let v = self.current_version() + 1;
        self.versions
            .push((v, Zeroizing::new(crate::secrets::random_bytes::<32>())));
        self.save()?;
        Ok(v)
    }

    fn destroy(&mut self, version: u32) -> Result<(), KeyError> {
        let before = self.versions.len();
        self.versions.retain(|(v, _)| *v != version);
        if self.versions.len() != before {
            self.save()?;
        }
        Ok(())
    }

    fn wrap(&self, purpose: &str, key: &[u8]) -> Result<Vec<u8>, KeyError> {
        let v = self.current_version();
        let kek = self
            .key(v)
            .ok_or_else(|| KeyError::Custodian("the KEK file has no version yet".into()))?;
        Ok(wrap::seal_with(
            kek,
            v,
            purpose,
            &crate::secrets::random_bytes::<12>(),
            key,
        ))
    }

    fn unwrap(&self, purpose: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let v = wrap::parse(blob)?.kek_version;
        let kek = self.key(v).ok_or_else(|| KeyError::MissingKekVersion {
            purpose: purpose.into(),
            version: v,
            custodian: Custodian::File,
        })?;
        Ok(wrap::open_with(kek, purpose, blob)?)
    }
}
