//! The vault key file: small, versioned JSON holding the Argon2id parameters and salt and
//! the root key wrapped twice (by the passphrase KEK and by the recovery-key KEK).
//!
//! Nothing in it is secret on its own; everything that matters is authenticated: both
//! wrapped copies bind the vault id and their purpose as AES-GCM associated data, so
//! swapping the wrapped keys (between the two slots or between vaults) fails to unlock.
//!
//! Version 2 adds the journal key pair (`journal_key`): an X25519 public key in clear and its
//! private key wrapped by the root key, so events that happen while the vault is locked can be
//! sealed to the vault (see [`crate::seal`]). Version 1 files still parse (no journal key);
//! the vault adds one at the next unlock with [`KeyFile::with_journal_key`].

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::recovery::RecoveryKey;
use crate::sealed::{JournalPublicKey, JournalSecretKey};
use crate::secret::{
    hkdf_32, unwrap, wrap, Passphrase, RootKey, WrappedKey, PURPOSE_ROOT_PASSPHRASE,
    PURPOSE_ROOT_RECOVERY,
};
use crate::CryptoError;

/// Current key file format version (2: with the journal key pair). Version 1 is still read.
pub const KEY_FILE_VERSION: u32 = 2;
const FORMAT_TAG: &str = "labvault-keyfile";
const KDF_ALGORITHM: &str = "argon2id-v19";
const SALT_LEN: usize = 16;
const RECOVERY_KEK_INFO: &[u8] = b"labvault/v1/recovery-kek";

/// Argon2id cost parameters. Stored in the key file, checked against [`KdfParams::FLOOR`]
/// and [`KdfParams::CEILING`] before any work is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Minimum accepted (OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane), so a
    /// hostile key file cannot make brute force cheap. Tests use it to stay fast.
    pub const FLOOR: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
    /// Maximum accepted per parameter (1 GiB, 10 passes, 4 lanes); together they must also
    /// stay within [`KdfParams::MAX_WORK`], so a hostile key file cannot make one unlock take
    /// more than a few seconds or exhaust memory.
    pub const CEILING: KdfParams = KdfParams {
        m_cost_kib: 1024 * 1024,
        t_cost: 10,
        p_cost: 4,
    };
    /// Most work one unlock may cost, in KiB x passes x lanes (the argon2 crate runs lanes one
    /// after another): 256 MiB x 8 passes. Measured on a 2-core machine: 2.3 s (256 MiB x 8)
    /// and 2.8 s (1 GiB x 2); what `calibrate` picks (about half a second) is far below.
    pub const MAX_WORK: u64 = 256 * 1024 * 8;

    fn work(&self) -> u64 {
        u64::from(self.m_cost_kib) * u64::from(self.t_cost) * u64::from(self.p_cost)
    }

    /// Measures this machine and picks parameters taking about `target` (LabVault uses
    /// ~0.5-1 s at vault creation), clamped to [FLOOR, CEILING].
    ///
    /// Memory is fixed at 64 MiB (or 256 MiB when that still fits the target with 2 passes);
    /// passes are scaled to the target. One lane, because the argon2 crate runs lanes
    /// sequentially, so extra lanes would only add time without adding attacker cost.
    pub fn calibrate(target: Duration) -> KdfParams {
        let probe = KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 2,
            p_cost: 1,
        };
        let t0 = Instant::now();
        let _ = derive_kek(b"calibration", &[0u8; SALT_LEN], probe);
        let per_pass = (t0.elapsed() / 2).max(Duration::from_micros(100));
        let mut m = probe.m_cost_kib;
        // If 4x the memory at 2 passes still fits the target, prefer memory hardness.
        if per_pass * 8 <= target {
            m *= 4;
        }
        let per_pass_m = per_pass * (m / probe.m_cost_kib);
        let t = (target.as_secs_f64() / per_pass_m.as_secs_f64()).round() as u32;
        KdfParams {
            m_cost_kib: m,
            t_cost: t,
            p_cost: 1,
        }
        .clamped()
    }

    fn clamped(self) -> KdfParams {
        let m_cost_kib = self
            .m_cost_kib
            .clamp(Self::FLOOR.m_cost_kib, Self::CEILING.m_cost_kib);
        let p_cost = self.p_cost.clamp(Self::FLOOR.p_cost, Self::CEILING.p_cost);
        let most_passes = (Self::MAX_WORK / (u64::from(m_cost_kib) * u64::from(p_cost))) as u32;
        KdfParams {
            m_cost_kib,
            t_cost: self
                .t_cost
                .min(most_passes)
                .clamp(Self::FLOOR.t_cost, Self::CEILING.t_cost),
            p_cost,
        }
    }

    /// Rejects parameters outside [FLOOR, CEILING] (from a key file or a caller).
    pub fn check_bounds(&self) -> Result<(), CryptoError> {
        let f = Self::FLOOR;
        let c = Self::CEILING;
        let check = |name: &str, v: u32, lo: u32, hi: u32| {
            if v < lo || v > hi {
                Err(CryptoError::KdfOutOfBounds(format!(
                    "{name} = {v} is outside the accepted range {lo}..={hi}"
                )))
            } else {
                Ok(())
            }
        };
        check("m_cost_kib", self.m_cost_kib, f.m_cost_kib, c.m_cost_kib)?;
        check("t_cost", self.t_cost, f.t_cost, c.t_cost)?;
        check("p_cost", self.p_cost, f.p_cost, c.p_cost)?;
        if self.work() > Self::MAX_WORK {
            return Err(CryptoError::KdfOutOfBounds(format!(
                "m_cost_kib x t_cost x p_cost = {} is more than the {} one unlock may cost",
                self.work(),
                Self::MAX_WORK
            )));
        }
        // Argon2 requires at least 8 KiB of memory per lane.
        if self.m_cost_kib < 8 * self.p_cost {
            return Err(CryptoError::KdfOutOfBounds(
                "m_cost_kib must be at least 8 * p_cost".into(),
            ));
        }
        Ok(())
    }
}

/// Passphrase → Argon2id → 256-bit key-encryption key.
fn derive_kek(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Zeroizing<[u8; 32]> {
    let params = Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .expect("parameters were bounds-checked");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .expect("salt length and output length are valid");
    out
}

/// Recovery key → HKDF-SHA256 → KEK. No Argon2: the recovery key has 256 bits of entropy.
fn recovery_kek(r: &RecoveryKey, vault_id: &str) -> Zeroizing<[u8; 32]> {
    hkdf_32(&r.0, Some(vault_id.as_bytes()), &[RECOVERY_KEK_INFO])
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfJson {
    algorithm: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    format: String,
    version: u32,
    vault_id: String,
    kdf: KdfJson,
    root_key_wrapped_by_passphrase: String,
    root_key_wrapped_by_recovery_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal_key: Option<JournalKeyJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalKeyJson {
    algorithm: String,
    public: String,
    private_wrapped_by_root_key: String,
}

const JOURNAL_KEY_ALGORITHM: &str = "x25519";

/// The parsed, validated key file. Contains only non-secret (wrapped) material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    vault_id: String,
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    wrapped_by_passphrase: WrappedKey,
    wrapped_by_recovery: WrappedKey,
    journal: Option<(JournalPublicKey, WrappedKey)>,
}

impl KeyFile {
    /// Creates a new vault identity: random vault id, root key and recovery key.
    /// The recovery key is returned once, to be shown to the user, and never stored.
    pub fn create(
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<(KeyFile, RootKey, RecoveryKey), CryptoError> {
        kdf.check_bounds()?;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let vault_id = hex::encode(id);
        let root = RootKey::generate();
        let recovery = RecoveryKey::generate();
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kek = derive_kek(passphrase.as_bytes(), &salt, kdf);
        let wrapped_by_passphrase =
            wrap(&kek, &root.0, PURPOSE_ROOT_PASSPHRASE, vault_id.as_bytes());
        let rkek = recovery_kek(&recovery, &vault_id);
        let wrapped_by_recovery = wrap(&rkek, &root.0, PURPOSE_ROOT_RECOVERY, vault_id.as_bytes());
        let jsk = JournalSecretKey::generate();
        let journal = Some((jsk.public_key(), jsk.wrap(&root, &vault_id)));
        Ok((
            KeyFile {
                vault_id,
                kdf,
                salt,
                wrapped_by_passphrase,
                wrapped_by_recovery,
                journal,
            },
            root,
            recovery,
        ))
    }

    /// Runs Argon2id with the stored parameters; any failure is `WrongPassphrase`, nothing more.
    pub fn unlock_with_passphrase(&self, p: &Passphrase) -> Result<RootKey, CryptoError> {
        let kek = derive_kek(p.as_bytes(), &self.salt, self.kdf);
        unwrap(
            &kek,
            &self.wrapped_by_passphrase,
            PURPOSE_ROOT_PASSPHRASE,
            self.vault_id.as_bytes(),
        )
        .map(|k| RootKey(*k))
        .map_err(|_| CryptoError::WrongPassphrase)
    }

    /// Unlocks with the written-down recovery key (after a forgotten passphrase).
    pub fn unlock_with_recovery_key(&self, r: &RecoveryKey) -> Result<RootKey, CryptoError> {
        let kek = recovery_kek(r, &self.vault_id);
        unwrap(
            &kek,
            &self.wrapped_by_recovery,
            PURPOSE_ROOT_RECOVERY,
            self.vault_id.as_bytes(),
        )
        .map(|k| RootKey(*k))
        .map_err(|_| CryptoError::WrongRecoveryKey)
    }

    /// Changing the passphrase re-wraps the root key only (new salt, new params); no data
    /// is re-encrypted and the recovery key keeps working. `root` must be this vault's
    /// unlocked root key.
    pub fn with_new_passphrase(
        &self,
        root: &RootKey,
        new: &Passphrase,
        kdf: KdfParams,
    ) -> Result<KeyFile, CryptoError> {
        kdf.check_bounds()?;
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kek = derive_kek(new.as_bytes(), &salt, kdf);
        Ok(KeyFile {
            vault_id: self.vault_id.clone(),
            kdf,
            salt,
            wrapped_by_passphrase: wrap(
                &kek,
                &root.0,
                PURPOSE_ROOT_PASSPHRASE,
                self.vault_id.as_bytes(),
            ),
            wrapped_by_recovery: self.wrapped_by_recovery.clone(),
            journal: self.journal.clone(),
        })
    }

    /// Rotating the root key: a new random root key and a new recovery key (returned once, to
    /// be shown to the user; the old one stops working), the root key wrapped under the
    /// passphrase (fresh salt), and the journal's private key re-wrapped under the new root
    /// (same key pair, so entries other processes sealed to it can still be read). The vault
    /// id stays. `old` must be this vault's unlocked root key.
    pub fn with_new_root(
        &self,
        old: &RootKey,
        passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<(KeyFile, RootKey, RecoveryKey), CryptoError> {
        kdf.check_bounds()?;
        let journal = self.journal_secret_key(old)?;
        let root = RootKey::generate();
        let recovery = RecoveryKey::generate();
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kek = derive_kek(passphrase.as_bytes(), &salt, kdf);
        let id = self.vault_id.as_bytes();
        let file = KeyFile {
            vault_id: self.vault_id.clone(),
            kdf,
            salt,
            wrapped_by_passphrase: wrap(&kek, &root.0, PURPOSE_ROOT_PASSPHRASE, id),
            wrapped_by_recovery: wrap(
                &recovery_kek(&recovery, &self.vault_id),
                &root.0,
                PURPOSE_ROOT_RECOVERY,
                id,
            ),
            journal: journal.map(|sk| (sk.public_key(), sk.wrap(&root, &self.vault_id))),
        };
        Ok((file, root, recovery))
    }

    /// The public journal key, if this key file has one (version 2).
    pub fn journal_public_key(&self) -> Option<&JournalPublicKey> {
        self.journal.as_ref().map(|j| &j.0)
    }

    /// The private journal key, unwrapped with this vault's root key. `Ok(None)` for a version
    /// 1 file. Fails if the wrapped key does not open, or if the public key stored next to it
    /// is not its public key (swapped in by someone who wanted to read sealed entries).
    pub fn journal_secret_key(
        &self,
        root: &RootKey,
    ) -> Result<Option<JournalSecretKey>, CryptoError> {
        let Some((pk, wrapped)) = &self.journal else {
            return Ok(None);
        };
        let sk = JournalSecretKey::unwrap(root, wrapped, &self.vault_id)?;
        if sk.public_key() != *pk {
            return Err(CryptoError::CorruptKeyFile(
                "the journal public key does not match its private key".into(),
            ));
        }
        Ok(Some(sk))
    }

    /// A copy with a fresh journal key pair (upgrading a version 1 file, or replacing a
    /// journal key that failed [`KeyFile::journal_secret_key`]). `root` must be this vault's
    /// unlocked root key.
    pub fn with_journal_key(&self, root: &RootKey) -> (KeyFile, JournalSecretKey) {
        let sk = JournalSecretKey::generate();
        let mut kf = self.clone();
        kf.journal = Some((sk.public_key(), sk.wrap(root, &self.vault_id)));
        (kf, sk)
    }

    /// Random 128-bit vault id (32 lowercase hex chars); also the OS keyring entry name.
    pub fn vault_id(&self) -> &str {
        &self.vault_id
    }

    /// The Argon2id parameters this key file uses.
    pub fn kdf_params(&self) -> KdfParams {
        self.kdf
    }

    /// Pretty JSON, for humans inspecting a vault directory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let j = KeyFileJson {
            format: FORMAT_TAG.into(),
            version: if self.journal.is_some() { 2 } else { 1 },
            vault_id: self.vault_id.clone(),
            kdf: KdfJson {
                algorithm: KDF_ALGORITHM.into(),
                m_cost_kib: self.kdf.m_cost_kib,
                t_cost: self.kdf.t_cost,
                p_cost: self.kdf.p_cost,
                salt: B64.encode(self.salt),
            },
            root_key_wrapped_by_passphrase: B64.encode(self.wrapped_by_passphrase.as_bytes()),
            root_key_wrapped_by_recovery_key: B64.encode(self.wrapped_by_recovery.as_bytes()),
            journal_key: self.journal.as_ref().map(|(pk, w)| JournalKeyJson {
                algorithm: JOURNAL_KEY_ALGORITHM.into(),
                public: B64.encode(pk.to_bytes()),
                private_wrapped_by_root_key: B64.encode(w.as_bytes()),
            }),
        };
        let mut v = serde_json::to_vec_pretty(&j).expect("serializing plain structs");
        v.push(b'\n');
        v
    }

    /// Parses and validates, cheapest checks first: JSON and format tag, version, field
    /// shapes, then KDF bounds (before any KDF work could be triggered).
    pub fn from_bytes(b: &[u8]) -> Result<KeyFile, CryptoError> {
        let corrupt = |m: String| CryptoError::CorruptKeyFile(m);
        let v: serde_json::Value =
            serde_json::from_slice(b).map_err(|e| corrupt(format!("not valid JSON ({e})")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT_TAG) {
            return Err(corrupt(
                "not a LabVault key file (missing format tag)".into(),
            ));
        }
        let version = v
            .get("version")
            .and_then(|x| x.as_u64())
            .ok_or_else(|| corrupt("missing or invalid version".into()))?;
        if version > u64::from(KEY_FILE_VERSION) {
            return Err(CryptoError::UnsupportedVersion(
                u32::try_from(version).unwrap_or(u32::MAX),
            ));
        }
        if version != 1 && version != 2 {
            return Err(corrupt(format!("invalid version {version}")));
        }
        let j: KeyFileJson =
            serde_json::from_value(v).map_err(|e| corrupt(format!("malformed fields ({e})")))?;
        if j.kdf.algorithm != KDF_ALGORITHM {
            return Err(corrupt(format!(
                "unknown KDF algorithm {:?}",
                j.kdf.algorithm
            )));
        }
        if j.vault_id.len() != 32 || !j.vault_id.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(corrupt("vault_id is not 32 hex characters".into()));
        }
        let kdf = KdfParams {
            m_cost_kib: j.kdf.m_cost_kib,
            t_cost: j.kdf.t_cost,
            p_cost: j.kdf.p_cost,
        };
        kdf.check_bounds()?;
        let salt: [u8; SALT_LEN] = B64
            .decode(&j.kdf.salt)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| corrupt("kdf salt is not 16 base64-encoded bytes".into()))?;
        let wk = |name: &str, s: &str| -> Result<WrappedKey, CryptoError> {
            let raw = B64
                .decode(s)
                .map_err(|_| corrupt(format!("{name} is not valid base64")))?;
            WrappedKey::from_bytes(raw).map_err(|e| corrupt(format!("{name}: {e}")))
        };
        let journal = match (version, &j.journal_key) {
            (1, None) => None,
            (2, Some(jk)) => {
                if jk.algorithm != JOURNAL_KEY_ALGORITHM {
                    return Err(corrupt(format!(
                        "unknown journal key algorithm {:?}",
                        jk.algorithm
                    )));
                }
                let public: [u8; 32] = B64
                    .decode(&jk.public)
                    .ok()
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| {
                        corrupt("journal public key is not 32 base64-encoded bytes".into())
                    })?;
                Some((
                    JournalPublicKey::from_bytes(public),
                    wk(
                        "journal_key.private_wrapped_by_root_key",
                        &jk.private_wrapped_by_root_key,
                    )?,
                ))
            }
            (1, Some(_)) => return Err(corrupt("a version 1 key file has no journal key".into())),
            _ => return Err(corrupt("a version 2 key file needs its journal key".into())),
        };
        Ok(KeyFile {
            journal,
            wrapped_by_passphrase: wk(
                "root_key_wrapped_by_passphrase",
                &j.root_key_wrapped_by_passphrase,
            )?,
            wrapped_by_recovery: wk(
                "root_key_wrapped_by_recovery_key",
                &j.root_key_wrapped_by_recovery_key,
            )?,
            vault_id: j.vault_id,
            kdf,
            salt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp(s: &str) -> Passphrase {
        Passphrase::new(s.to_owned())
    }

    fn edit(kf: &KeyFile, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&kf.to_bytes()).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn create_unlock_round_trip_via_bytes() {
        let (kf, root, rec) = KeyFile::create(&pp("correct horse"), KdfParams::FLOOR).unwrap();
        let kf2 = KeyFile::from_bytes(&kf.to_bytes()).unwrap();
        assert_eq!(kf, kf2);
        assert_eq!(
            kf2.unlock_with_passphrase(&pp("correct horse")).unwrap().0,
            root.0
        );
        assert_eq!(kf2.unlock_with_recovery_key(&rec).unwrap().0, root.0);
        let parsed = RecoveryKey::parse(&rec.to_display_string()).unwrap();
        assert_eq!(kf2.unlock_with_recovery_key(&parsed).unwrap().0, root.0);
        assert_eq!(kf2.vault_id().len(), 32);
        assert_eq!(kf2.kdf_params(), KdfParams::FLOOR);
    }

    #[test]
    fn wrong_passphrase_says_only_that() {
        let (kf, _, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let e = kf.unlock_with_passphrase(&pp("b")).unwrap_err();
        assert!(matches!(e, CryptoError::WrongPassphrase));
        assert_eq!(e.to_string(), "wrong passphrase");
    }

    #[test]
    fn wrong_recovery_key() {
        let (kf, _, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let other = RecoveryKey::generate();
        assert_eq!(
            kf.unlock_with_recovery_key(&other).unwrap_err().code(),
            "wrong_recovery_key"
        );
    }

    #[test]
    fn change_passphrase_rewraps_only() {
        let (kf, root, rec) = KeyFile::create(&pp("old"), KdfParams::FLOOR).unwrap();
        let kf2 = kf
            .with_new_passphrase(&root, &pp("new"), KdfParams::FLOOR)
            .unwrap();
        assert_eq!(kf2.vault_id(), kf.vault_id());
        assert_eq!(kf2.unlock_with_passphrase(&pp("new")).unwrap().0, root.0);
        assert!(matches!(
            kf2.unlock_with_passphrase(&pp("old")),
            Err(CryptoError::WrongPassphrase)
        ));
        assert_eq!(kf2.unlock_with_recovery_key(&rec).unwrap().0, root.0);
        // Same root => same catalog key => catalog and blobs stay readable.
        assert_eq!(
            *kf2.unlock_with_passphrase(&pp("new"))
                .unwrap()
                .catalog_key()
                .sqlcipher_key_pragma_value(),
            *root.catalog_key().sqlcipher_key_pragma_value()
        );
    }

    #[test]
    fn corrupt_and_foreign_files() {
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            b"[1,2]",
            br#"{"format":"something-else","version":1}"#,
            br#"{"format":"labvault-keyfile"}"#,
            br#"{"format":"labvault-keyfile","version":1}"#,
            br#"{"format":"labvault-keyfile","version":0}"#,
        ] {
            let e = KeyFile::from_bytes(bad).unwrap_err();
            assert_eq!(
                e.code(),
                "corrupt_key_file",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let (kf, _, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let truncated = &kf.to_bytes()[..40];
        assert_eq!(
            KeyFile::from_bytes(truncated).unwrap_err().code(),
            "corrupt_key_file"
        );
        let b = edit(&kf, |v| v["kdf"]["salt"] = "AAAA".into());
        assert_eq!(
            KeyFile::from_bytes(&b).unwrap_err().code(),
            "corrupt_key_file"
        );
        let b = edit(&kf, |v| v["root_key_wrapped_by_passphrase"] = "!!".into());
        assert_eq!(
            KeyFile::from_bytes(&b).unwrap_err().code(),
            "corrupt_key_file"
        );
        let b = edit(&kf, |v| v["extra"] = 1.into());
        assert_eq!(
            KeyFile::from_bytes(&b).unwrap_err().code(),
            "corrupt_key_file"
        );
        let b = edit(&kf, |v| v["kdf"]["algorithm"] = "pbkdf2".into());
        assert_eq!(
            KeyFile::from_bytes(&b).unwrap_err().code(),
            "corrupt_key_file"
        );
    }

    #[test]
    fn newer_version_is_unsupported() {
        let (kf, _, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let b = edit(&kf, |v| v["version"] = 99.into());
        assert!(matches!(
            KeyFile::from_bytes(&b),
            Err(CryptoError::UnsupportedVersion(99))
        ));
    }

    #[test]
    fn version_1_files_still_unlock_and_upgrade_to_a_journal_key() {
        let (kf, root, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        assert!(kf.journal_public_key().is_some());
        // A version 1 file, as written before the journal key existed.
        let v1 = edit(&kf, |v| {
            v["version"] = 1.into();
            v.as_object_mut().unwrap().remove("journal_key");
        });
        let old = KeyFile::from_bytes(&v1).unwrap();
        assert!(old.journal_public_key().is_none());
        assert!(old.journal_secret_key(&root).unwrap().is_none());
        assert_eq!(old.unlock_with_passphrase(&pp("a")).unwrap().0, root.0);
        let (new, sk) = old.with_journal_key(&root);
        let back = KeyFile::from_bytes(&new.to_bytes()).unwrap();
        assert_eq!(back.journal_public_key(), Some(&sk.public_key()));
        let opened = back.journal_secret_key(&root).unwrap().unwrap();
        assert_eq!(opened.public_key(), sk.public_key());
        // Mismatched version and field are refused.
        let bad = edit(&kf, |v| v["version"] = 1.into());
        assert!(matches!(
            KeyFile::from_bytes(&bad),
            Err(CryptoError::CorruptKeyFile(_))
        ));
        let bad = edit(&kf, |v| {
            v.as_object_mut().unwrap().remove("journal_key");
        });
        assert!(matches!(
            KeyFile::from_bytes(&bad),
            Err(CryptoError::CorruptKeyFile(_))
        ));
    }

    #[test]
    fn a_swapped_journal_public_key_is_detected_at_unlock() {
        let (kf, root, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let attacker = crate::sealed::JournalSecretKey::generate();
        let b = edit(&kf, |v| {
            v["journal_key"]["public"] = B64.encode(attacker.public_key().to_bytes()).into();
        });
        let swapped = KeyFile::from_bytes(&b).unwrap();
        assert!(matches!(
            swapped.journal_secret_key(&root),
            Err(CryptoError::CorruptKeyFile(_))
        ));
        // The private key of another vault does not unwrap here.
        let (other, _, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let foreign = edit(&kf, |v| {
            let o: serde_json::Value = serde_json::from_slice(&other.to_bytes()).unwrap();
            v["journal_key"] = o["journal_key"].clone();
        });
        assert!(KeyFile::from_bytes(&foreign)
            .unwrap()
            .journal_secret_key(&root)
            .is_err());
    }

    #[test]
    fn kdf_params_out_of_bounds_rejected_before_any_work() {
        let (kf, _, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        for (field, val) in [
            ("m_cost_kib", 8u64),
            ("m_cost_kib", 4 * 1024 * 1024 * 1024),
            ("m_cost_kib", 3 * 1024 * 1024),
            ("t_cost", 1),
            ("t_cost", 1000),
            ("p_cost", 0),
            ("p_cost", 64),
        ] {
            let b = edit(&kf, |v| v["kdf"][field] = val.into());
            let e = KeyFile::from_bytes(&b).unwrap_err();
            // u32 overflow is a malformed field, the rest are bound violations.
            if val > u64::from(u32::MAX) {
                assert_eq!(e.code(), "corrupt_key_file");
            } else {
                assert_eq!(e.code(), "kdf_out_of_bounds", "{field}={val}");
            }
        }
        assert!(KeyFile::create(
            &pp("a"),
            KdfParams {
                t_cost: 1,
                ..KdfParams::FLOOR
            }
        )
        .is_err());
        // Each parameter within its own bound, the product over the work budget: refused,
        // so no key file can make an unlock take more than a few seconds.
        for (m, t, p) in [
            (1024 * 1024u32, 3u32, 1u32),
            (256 * 1024, 9, 1),
            (256 * 1024, 8, 2),
        ] {
            let b = edit(&kf, |v| {
                v["kdf"]["m_cost_kib"] = m.into();
                v["kdf"]["t_cost"] = t.into();
                v["kdf"]["p_cost"] = p.into();
            });
            let e = KeyFile::from_bytes(&b).unwrap_err();
            assert_eq!(e.code(), "kdf_out_of_bounds", "{m} {t} {p}");
        }
        for (m, t) in [(1024 * 1024u32, 2u32), (256 * 1024, 8), (64 * 1024, 10)] {
            let b = edit(&kf, |v| {
                v["kdf"]["m_cost_kib"] = m.into();
                v["kdf"]["t_cost"] = t.into();
            });
            KeyFile::from_bytes(&b).expect("within the budget");
        }
        // What calibration picks always fits.
        KdfParams::calibrate(std::time::Duration::from_millis(500))
            .check_bounds()
            .unwrap();
    }

    #[test]
    fn swapped_wrapped_keys_do_not_unlock() {
        let (kf, _, rec) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let b = edit(&kf, |v| {
            let p = v["root_key_wrapped_by_passphrase"].clone();
            v["root_key_wrapped_by_passphrase"] = v["root_key_wrapped_by_recovery_key"].clone();
            v["root_key_wrapped_by_recovery_key"] = p;
        });
        let swapped = KeyFile::from_bytes(&b).unwrap();
        assert_eq!(
            swapped.unlock_with_passphrase(&pp("a")).unwrap_err().code(),
            "wrong_passphrase"
        );
        assert_eq!(
            swapped.unlock_with_recovery_key(&rec).unwrap_err().code(),
            "wrong_recovery_key"
        );
        // Wrapped key of another vault (same passphrase) does not unlock this one: the
        // vault id is bound.
        let (other, _, _) = KeyFile::create(&pp("a"), KdfParams::FLOOR).unwrap();
        let ob: serde_json::Value = serde_json::from_slice(&other.to_bytes()).unwrap();
        let b = edit(&kf, |v| {
            v["root_key_wrapped_by_passphrase"] = ob["root_key_wrapped_by_passphrase"].clone();
            v["kdf"] = ob["kdf"].clone();
        });
        let franken = KeyFile::from_bytes(&b).unwrap();
        assert!(matches!(
            franken.unlock_with_passphrase(&pp("a")),
            Err(CryptoError::WrongPassphrase)
        ));
    }

    #[test]
    fn calibrate_is_clamped() {
        let p = KdfParams::calibrate(Duration::from_millis(1));
        assert!(p.check_bounds().is_ok());
        assert_eq!(p.t_cost, KdfParams::FLOOR.t_cost);
    }
}
