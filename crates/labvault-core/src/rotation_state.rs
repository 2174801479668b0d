//! What an interrupted root key rotation left behind (`crate::rekey`), and settling it before
//! a vault is opened: below the vault, which calls [`settle`] first thing when it opens.

use std::path::Path;

use labvault_crypto::{KeyFile, Passphrase, RecoveryKey};

use crate::catalog;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keyfile_io::{key_err, read_key_file};
use crate::layout::{CATALOG_FILE, KEY_FILE};
use crate::locks::OpenLock;

/// The new key file of a rotation in progress.
pub(crate) const NEXT_KEY_FILE: &str = "vault.key.next";

/// The secret an open was given.
pub(crate) enum Secret<'a> {
    /// The passphrase.
    Passphrase(&'a Passphrase),
    /// The recovery key.
    RecoveryKey(&'a RecoveryKey),
    /// The root key remembered in the OS keyring.
    Keyring,
}

/// Moves the new key file into place (the last step of a rotation).
pub(crate) fn finish(dir: &Path) -> Result<()> {
    let next = dir.join(NEXT_KEY_FILE);
    std::fs::rename(&next, dir.join(KEY_FILE))
        .map_err(|e| Error::io_path("replacing the key file with", &next, e))?;
    fsutil::fsync_dir(dir)
}

/// Settles a rotation that was interrupted (see the module doc); called by every open before
/// the key file is read. Needs the vault exclusively.
pub(crate) fn settle(dir: &Path, how: Secret<'_>) -> Result<()> {
    let next = dir.join(NEXT_KEY_FILE);
    let cat = dir.join(CATALOG_FILE);
    let copy = catalog::rekey_copy_path(&cat);
    if !next.exists() && !copy.exists() {
        return Ok(());
    }
    let _lock = OpenLock::exclusive(dir)?;
    if !next.exists() {
        // Stopped while the copy was built: the catalog was never touched.
        catalog::remove_rekey_copy(&cat)?;
        return fsutil::fsync_dir(dir);
    }
    let current = read_key_file(dir)?;
    let root = match how {
        Secret::Passphrase(p) => current.unlock_with_passphrase(p).ok(),
        Secret::RecoveryKey(r) => current.unlock_with_recovery_key(r).ok(),
        Secret::Keyring => crate::keyring::load_root_key(current.vault_id()).ok(),
    };
    if let Some(r) = &root {
        if catalog::opens_with(&cat, &r.catalog_key()) {
            // Before the catalog was replaced: roll back.
            catalog::remove_rekey_copy(&cat)?;
            std::fs::remove_file(&next).map_err(|e| Error::io_path("removing", &next, e))?;
            tracing::warn!("an interrupted root key rotation was rolled back; the old keys stay");
            return fsutil::fsync_dir(dir);
        }
    }
    let Secret::Passphrase(p) = how else {
        return Err(Error::InvalidArgument(
            "a root key rotation of this vault was interrupted after its catalog was re-keyed: unlock it with your passphrase once to finish the rotation (then note the new recovery key with `labvault rekey` again)".into(),
        ));
    };
    let new = read_key_file_at(&next)?
        .unlock_with_passphrase(p)
        .map_err(key_err)?;
    if !catalog::opens_with(&cat, &new.catalog_key()) {
        return Err(Error::CorruptCatalog(
            "the catalog opens neither with the old nor with the new root key after an interrupted rotation".into(),
        ));
    }
    finish(dir)?;
    tracing::warn!(
        "an interrupted root key rotation was finished; its new recovery key was never shown: run `labvault rekey` again to get one"
    );
    Ok(())
}

fn read_key_file_at(path: &Path) -> Result<KeyFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io_path("reading", path, e))?;
    KeyFile::from_bytes(&bytes).map_err(key_err)
}
