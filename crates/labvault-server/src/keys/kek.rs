//! The key-encryption key (KEK): what every server key is wrapped under. Two custodians
//! implement it: a key file (the embedded default) and an HSM reached over PKCS#11, where the
//! KEK is generated inside the token and never leaves it. Each KEK has versions; rotation adds
//! one, re-wraps everything under it, then destroys the older ones.

use zeroize::Zeroizing;

use super::KeyError;

/// Which custodian holds the KEK (recorded in `keys.json`, so a server started with the
/// other one says so instead of failing on every key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Custodian {
    /// A key file (`kek.key`).
    File,
    /// A PKCS#11 token, by label.
    Pkcs11 {
        /// Token label.
        token: String,
    },
}

impl std::fmt::Display for Custodian {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Custodian::File => f.write_str("the key file"),
            Custodian::Pkcs11 { token } => write!(f, "the PKCS#11 token '{token}'"),
        }
    }
}

/// A KEK with its versions.
pub trait Kek: Send {
    /// Who holds it.
    fn custodian(&self) -> Custodian;
    /// The version new wraps use; 0 when there is none yet.
    fn current_version(&self) -> u32;
    /// Every version still held, ascending.
    fn versions(&self) -> Vec<u32>;
    /// Creates version `current + 1` and makes it current.
    fn add_version(&mut self) -> Result<u32, KeyError>;
    /// Destroys one version (nothing if it is not held).
    fn destroy(&mut self, version: u32) -> Result<(), KeyError>;
    /// Wraps `key` for `purpose` under the current version.
    fn wrap(&self, purpose: &str, key: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// Unwraps a key wrapped under any version still held.
    fn unwrap(&self, purpose: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}
