//! The KEK in an HSM, over PKCS#11: AES-256 keys generated inside the token (sensitive, not
//! extractable), one object per version labelled `labvault-kek-v<N>`. Wrapping is AES-GCM
//! done by the token with a nonce and associated data from us, so the bytes have exactly the
//! format of [`super::wrap`]. The HSM is needed when keys are unwrapped (start, rotation),
//! not for serving requests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::kek::{Custodian, Kek};
use super::wrap;
use super::KeyError;

const LABEL_PREFIX: &str = "labvault-kek-v";

/// Where the HSM is and how to log in. No `Debug`, no `Clone`: it holds the PIN.
pub struct HsmConfig {
    /// The PKCS#11 module (shared library) of the HSM.
    pub module: PathBuf,
    /// Label of the token holding the KEK.
    pub token: String,
    /// The token's user PIN.
    pub pin: Zeroizing<String>,
}

/// A logged-in session on the token and the KEK versions found on it.
pub struct HsmKek {
    token: String,
    session: Mutex<Session>,
    versions: Vec<(u32, ObjectHandle)>,
}

fn ck(what: &str, e: CkError) -> KeyError {
    KeyError::Custodian(format!("PKCS#11 {what}: {e}"))
}

impl HsmKek {
    /// Loads the module, finds the token by label and logs in. Reads nothing else: every
    /// failure here happens before anything is written.
    pub fn open(cfg: &HsmConfig) -> Result<HsmKek, KeyError> {
        let module = Path::new(&cfg.module);
        let lib = Pkcs11::new(module).map_err(|e| {
            KeyError::Custodian(format!(
                "cannot load the PKCS#11 module {}: {e}",
                module.display()
            ))
        })?;
        match lib.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(ck("initialisation", e)),
        }
        let mut seen = Vec::new();
        let mut slot = None;
        for s in lib.get_slots_with_token().map_err(|e| ck("slot list", e))? {
            let info = lib.get_token_info(s).map_err(|e| ck("token info", e))?;
            let label = info.label().trim_end().to_string();
            if label == cfg.token {
                slot = Some(s);
                break;
            }
            seen.push(label);
        }
        let slot = slot.ok_or_else(|| {
            KeyError::Custodian(format!(
                "no PKCS#11 token labelled '{}' in {} (tokens present: {}): is the HSM connected and the token initialised?",
                cfg.token,
                module.display(),
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            ))
        })?;
        let session = lib
            .open_rw_session(slot)
            .map_err(|e| ck("open session", e))?;
        let pin = AuthPin::from(cfg.pin.as_str());
        session
            .login(UserType::User, Some(&pin))
            .map_err(|e| match e {
                CkError::Pkcs11(RvError::PinIncorrect, _) => KeyError::Custodian(format!(
                    "the HSM token '{}' refused the PIN (wrong PIN)",
                    cfg.token
                )),
                CkError::Pkcs11(RvError::PinLocked, _) => KeyError::Custodian(format!(
                    "the PIN of HSM token '{}' is locked after too many wrong attempts (the security officer must reset it)",
                    cfg.token
                )),
                e => ck("login", e),
            })?;
        let mut versions = Vec::new();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ];
        for h in session
            .find_objects(&template)
            .map_err(|e| ck("find keys", e))?
        {
            let attrs = session
                .get_attributes(h, &[AttributeType::Label])
                .map_err(|e| ck("read key label", e))?;
            for a in attrs {
                if let Attribute::Label(l) = a {
                    let label = String::from_utf8_lossy(&l).to_string();
                    if let Some(v) = label
                        .strip_prefix(LABEL_PREFIX)
                        .and_then(|n| n.parse::<u32>().ok())
                    {
                        versions.push((v, h));
                    }
                }
            }
        }
        versions.sort_by_key(|(v, _)| *v);
        Ok(HsmKek {
            token: cfg.token.clone(),
            session: Mutex::new(session),
            versions,
        })
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&self, version: u32) -> Option<ObjectHandle> {
        self.versions
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, h)| *h)
    }
}

impl Kek for HsmKek {
    fn custodian(&self) -> Custodian {
        Custodian::Pkcs11 {
            token: self.token.clone(),
        }
    }

    fn current_version(&self) -> u32 {
        self.versions.last().map(|(v, _)| *v).unwrap_or(0)
    }

    fn versions(&self) -> Vec<u32> {
        self.versions.iter().map(|(v, _)| *v).collect()
    }

    fn add_version(&mut self) -> Result<u32, KeyError> {
        let v = self.current_version() + 1;
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::ValueLen(32.into()),
            Attribute::Label(format!("{LABEL_PREFIX}{v}").into_bytes()),
        ];
        let h = self
            .session()
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| ck("generate the KEK", e))?;
        self.versions.push((v, h));
        Ok(v)
    }

    fn destroy(&mut self, version: u32) -> Result<(), KeyError> {
        let (old, keep): (Vec<_>, Vec<_>) = self.versions.iter().partition(|(v, _)| *v == version);
        for (_, h) in &old {
            self.session()
                .destroy_object(*h)
                .map_err(|e| ck("destroy an old KEK", e))?;
        }
        self.versions = keep;
        Ok(())
    }

    fn wrap(&self, purpose: &str, key: &[u8]) -> Result<Vec<u8>, KeyError> {
        let v = self.current_version();
        let h = self
            .handle(v)
            .ok_or_else(|| KeyError::Custodian("the HSM holds no KEK yet".into()))?;
        let nonce = crate::secrets::random_bytes::<12>();
        let mut iv = nonce;
        let aad = wrap::aad(purpose, &wrap::header(v));
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| ck("GCM", e))?;
        let sealed = self
            .session()
            .encrypt(&Mechanism::AesGcm(params), h, key)
            .map_err(|e| ck("wrap", e))?;
        Ok(wrap::assemble(v, &nonce, &sealed))
    }

    fn unwrap(&self, purpose: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let p = wrap::parse(blob)?;
        let h = self
            .handle(p.kek_version)
            .ok_or_else(|| KeyError::MissingKekVersion {
                purpose: purpose.into(),
                version: p.kek_version,
                custodian: self.custodian(),
            })?;
        let mut iv = *p.nonce;
        let aad = wrap::aad(purpose, p.header);
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| ck("GCM", e))?;
        self.session()
            .decrypt(&Mechanism::AesGcm(params), h, p.sealed)
            .map(Zeroizing::new)
            .map_err(|_| {
                KeyError::Wrap(wrap::WrapError::Unauthentic {
                    purpose: purpose.into(),
                    kek_version: p.kek_version,
                })
            })
    }
}
