//! Encrypted bundles: a `.tar` bundle sealed in the age format (`age-encryption.org/v1`), to a
//! passphrase or to X25519 recipients (`age1…`), for handing to an archive.
//!
//! age and not our vault format, because an archive must open in twenty years with a tool
//! that is not ours: `age -d bundle.tar.age > bundle.tar` gives the plain `.tar` bundle, which
//! `labvault verify-bundle` (or `sha256sum` and the manifest) checks as before. The age stream
//! authenticates every 64 KiB chunk and its end, so a flipped byte or a cut file is named on
//! reading, never passed on as content.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;

use crate::error::{Error, Result};

/// The first bytes of every age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Who can open an encrypted bundle. Holds a secret: no `Clone`, no `Debug`.
pub enum BundleSeal {
    /// Anyone with this passphrase (scrypt, work factor tuned to ~1 s on this machine).
    Passphrase(SecretString),
    /// Anyone holding the identity of one of these X25519 recipients.
    Recipients(Vec<age::x25519::Recipient>),
}

impl BundleSeal {
    /// Seals to a passphrase typed by a person (an empty one is refused).
    pub fn passphrase(p: String) -> Result<Self> {
        if p.is_empty() {
            return Err(Error::InvalidArgument(
                "an encrypted bundle needs a passphrase that is not empty".into(),
            ));
        }
        Ok(Self::Passphrase(SecretString::from(p)))
    }

    /// Seals to age recipients (`age1…`); names the first that does not parse.
    pub fn recipients(list: &[String]) -> Result<Self> {
        if list.is_empty() {
            return Err(Error::InvalidArgument(
                "an encrypted bundle needs at least one recipient".into(),
            ));
        }
        let parsed = list
            .iter()
            .map(|r| {
                age::x25519::Recipient::from_str(r.trim()).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "{:?} is not an age recipient (age1…): {e}",
                        r.trim()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::Recipients(parsed))
    }

    /// Wraps `out` so that what is written to it is sealed; `finish()` on the result writes the
    /// last chunk (without it the file does not open).
    pub(crate) fn wrap<W: Write>(&self, out: W) -> io::Result<age::stream::StreamWriter<W>> {
        let enc = match self {
            Self::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
            Self::Recipients(rs) => {
                age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| io::Error::other(e.to_string()))?
            }
        };
        enc.wrap_output(out)
    }
}

/// What opens an encrypted bundle. Holds a secret: no `Clone`, no `Debug`.
pub enum BundleKey {
    /// The passphrase it was sealed with.
    Passphrase(SecretString),
    /// X25519 identities (`AGE-SECRET-KEY-1…`), e.g. from an age identity file.
    Identities(Vec<age::x25519::Identity>),
}

impl BundleKey {
    /// The passphrase the bundle was sealed with.
    pub fn passphrase(p: String) -> Self {
        Self::Passphrase(SecretString::from(p))
    }

    /// The identities of an age identity file (`age-keygen` output: comments, blank lines and
    /// `AGE-SECRET-KEY-1…` lines). The error names the line that is not an identity, never its
    /// content.
    pub fn identity_file(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io_path("reading", path, e))?;
        let mut ids = Vec::new();
        for (n, line) in io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| Error::io_path("reading", path, e))?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = age::x25519::Identity::from_str(line).map_err(|_| {
                Error::InvalidArgument(format!(
                    "line {} of {} is not an age identity (AGE-SECRET-KEY-1…)",
                    n + 1,
                    path.display()
                ))
            })?;
            ids.push(id);
        }
        if ids.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} holds no age identity",
                path.display()
            )));
        }
        Ok(Self::Identities(ids))
    }

    /// Opens the sealed stream `input` (of the bundle at `what`): the header is checked here
    /// (a wrong key fails now); the content is authenticated chunk by chunk as it is read.
    pub(crate) fn open<R: Read>(&self, input: R, what: &Path) -> Result<impl Read> {
        let bad = |detail: String| Error::Tampered {
            what: format!("the encrypted bundle {}", what.display()),
            detail,
        };
        let dec = age::Decryptor::new(input).map_err(|e| match e {
            age::DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Error::Truncated {
                    what: format!("the encrypted bundle {}", what.display()),
                    detail: "it ends inside its age header".into(),
                }
            }
            age::DecryptError::UnknownFormat => Error::UnsupportedVersion(format!(
                "{} is an age file of a newer format",
                what.display()
            )),
            e => bad(format!("its age header is not valid: {e}")),
        })?;
        let scrypt = dec.is_scrypt();
        let wrong = |e: age::DecryptError| match (e, self) {
            (
                age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed,
                Self::Passphrase(_),
            ) if scrypt => Error::WrongPassphrase,
            (
                age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed,
                Self::Passphrase(_),
            ) => Error::InvalidArgument(format!(
                "{} was sealed to age recipients, not to a passphrase: give an identity file",
                what.display()
            )),
            (age::DecryptError::NoMatchingKeys, Self::Identities(_)) => {
                Error::InvalidArgument(if scrypt {
                    format!(
                        "{} was sealed to a passphrase, not to an identity: give the passphrase",
                        what.display()
                    )
                } else {
                    format!(
                        "none of the identities given opens {}: it was sealed to other recipients",
                        what.display()
                    )
                })
            }
            (age::DecryptError::ExcessiveWork { required, target }, _) => {
                Error::InvalidArgument(format!(
                    "{} asks for a passphrase work factor of 2^{required}, far above this \
                     machine's 2^{target}: refused (it would take minutes)",
                    what.display()
                ))
            }
            (e, _) => bad(e.to_string()),
        };
        match self {
            Self::Passphrase(p) => {
                let id = age::scrypt::Identity::new(p.clone());
                dec.decrypt(std::iter::once(&id as &dyn age::Identity))
                    .map_err(wrong)
            }
            Self::Identities(ids) => dec
                .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
                .map_err(wrong),
        }
    }
}

/// True when the file at `path` starts like an age file.
pub fn is_sealed(path: &Path) -> Result<bool> {
    let mut f =
        std::fs::File::open(path).map_err(|e| Error::io_path("reading the bundle", path, e))?;
    let mut head = [0u8; 22];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io_path("reading the bundle", path, e)),
        }
    }
    Ok(&head[..n] == AGE_MAGIC)
}

/// The error of reading a sealed bundle's content: a failed chunk is tampering (or damage), a
/// cut stream is truncation; anything else is the disk's.
pub(crate) fn read_error(e: io::Error, what: &Path) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData => Error::Tampered {
            what: format!("the encrypted bundle {}", what.display()),
            detail: format!("a chunk does not authenticate ({e}); nothing after it is trusted"),
        },
        io::ErrorKind::UnexpectedEof => Error::Truncated {
            what: format!("the encrypted bundle {}", what.display()),
            detail: "its last chunk is missing: the file was cut".into(),
        },
        _ => Error::io_path("reading", what, e),
    }
}
