//! Rotating the vault's root key (`labvault rekey`): a new random root key replaces the old
//! one. What the old root wrapped is re-wrapped under the new one (project keys, later epoch
//! keys of shared projects, the device's and the user's identity key pairs, the journal key),
//! the catalog is re-keyed (its key derives from the root key), the passphrase wraps the new
//! root and a new recovery key is issued (the old one stops working). No blob is re-encrypted:
//! data keys are wrapped by project keys, which do not change.
//!
//! Crash safety, with the vault held exclusively (no other process may have it open):
//! 1. the re-keyed catalog is built as a copy beside the catalog (`catalog.db.rekey`), the keys
//!    re-wrapped and `auth.rekey` recorded in it, checked and made durable;
//! 2. the new key file is written beside the key file (`vault.key.next`);
//! 3. the copy is renamed over the catalog: from here the catalog needs the new root;
//! 4. the new key file is renamed over the key file.
//!
//! An open that finds `vault.key.next` settles the interruption first
//! (`crate::rotation_state::settle`): if the catalog still opens under the current key file,
//! the rotation is rolled back (the copy and the new key file deleted); if it does not, the
//! rotation passed step 3 and is finished with the passphrase (the new key file is moved into
//! place). Unlocking with the recovery key or the keyring cannot finish it (the new recovery
//! key was never shown, the keyring holds the old root): they say so.

use std::path::Path;

use rusqlite::params;
use zeroize::Zeroizing;

use labvault_crypto::{
    DeviceKeys, IdentityKeys, KdfParams, Passphrase, ProjectKey, RootKey, WrappedKey,
};
use labvault_governance::audit::{actions, resources, Outcome};

use crate::audit::{self, Subject};
use crate::catalog;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout::CATALOG_FILE;
use crate::locks::OpenLock;
use crate::rotation_state::{finish, NEXT_KEY_FILE};
use crate::vault::{key_err, read_key_file, Unlock, Vault, VaultOptions};

fn wrapped(b: Vec<u8>, what: &str) -> Result<WrappedKey> {
    WrappedKey::from_bytes(b).map_err(|e| Error::CorruptCatalog(format!("{what}: {e}")))
}

fn rows<T>(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut st = tx.prepare(sql)?;
    let out = st
        .query_map([], map)?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    Ok(out)
}

/// Re-wraps, in the re-keyed copy, everything the old root key wrapped. Returns how many keys.
fn rewrap_all(tx: &rusqlite::Transaction<'_>, old: &RootKey, new: &RootKey) -> Result<u64> {
    let mut n = 0u64;
    let rewrap_project = |w: Vec<u8>, context: &str| -> Result<Vec<u8>> {
        let k: ProjectKey = old
            .unwrap_project_key(&wrapped(w, "a project key")?, context)
            .map_err(|e| Error::CorruptCatalog(format!("the key of {context}: {e}")))?;
        Ok(new.wrap_project_key(&k, context).as_bytes().to_vec())
    };
    for (id, w) in rows(tx, "SELECT id, wrapped_key FROM projects", |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })? {
        let w = rewrap_project(w, &id)?;
        tx.execute(
            "UPDATE projects SET wrapped_key = ?2 WHERE id = ?1",
            params![id, w],
        )?;
        n += 1;
    }
    for (p, e, w) in rows(
        tx,
        "SELECT project_id, epoch, wrapped FROM sync_epoch_keys",
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        },
    )? {
        let w = rewrap_project(w, &format!("{p}/epoch/{e}"))?;
        tx.execute(
            "UPDATE sync_epoch_keys SET wrapped = ?3 WHERE project_id = ?1 AND epoch = ?2",
            params![p, e, w],
        )?;
        n += 1;
    }
    let device_id: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'device_id'", [], |r| {
            r.get(0)
        })
        .ok();
    if let Some(device_id) = device_id {
        for (x, e) in rows(
            tx,
            "SELECT x25519_wrapped, ed25519_wrapped FROM sync_device",
            |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )? {
            let keys = DeviceKeys::unwrap(
                old,
                &wrapped(x, "device key")?,
                &wrapped(e, "device key")?,
                &device_id,
            )
            .map_err(|e| Error::CorruptCatalog(format!("device keys: {e}")))?;
            let (x, e) = keys.wrap(new, &device_id);
            tx.execute(
                "UPDATE sync_device SET x25519_wrapped = ?1, ed25519_wrapped = ?2",
                params![x.as_bytes(), e.as_bytes()],
            )?;
            n += 2;
        }
    }
    for (user, x, e) in rows(
        tx,
        "SELECT user_id, x25519_wrapped, ed25519_wrapped FROM sync_identity",
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        },
    )? {
        let keys = IdentityKeys::unwrap(
            old,
            &wrapped(x, "identity key")?,
            &wrapped(e, "identity key")?,
            &user,
        )
        .map_err(|e| Error::CorruptCatalog(format!("identity keys: {e}")))?;
        let (x, e) = keys.wrap(new, &user);
        tx.execute(
            "UPDATE sync_identity SET x25519_wrapped = ?1, ed25519_wrapped = ?2",
            params![x.as_bytes(), e.as_bytes()],
        )?;
        n += 2;
    }
    Ok(n)
}

/// Where a rotation stops, for tests of interrupted rotations.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyStop {
    /// Run to the end.
    Never,
    /// After the re-keyed copy is built.
    AfterCopy,
    /// After the new key file is written beside the old one.
    AfterNextKeyFile,
    /// After the copy replaced the catalog, before the key file is replaced.
    AfterCatalog,
}

impl Vault {
    /// Rotates the root key of the vault in `dir` (see the module doc), given its passphrase.
    /// Fails with `vault_busy` while another process has the vault open. Returns the open vault
    /// and the new recovery key's display form, to be shown once: the old recovery key no
    /// longer works. A root key remembered in the OS keyring is replaced there.
    pub fn rotate_root_key_at(
        dir: &Path,
        passphrase: &Passphrase,
        opts: VaultOptions,
    ) -> Result<(Vault, Zeroizing<String>)> {
        Vault::rotate_root_key_stopping(dir, passphrase, opts, RekeyStop::Never)
    }

    /// [`Vault::rotate_root_key_at`], stopping early (tests of interrupted rotations).
    #[doc(hidden)]
    pub fn rotate_root_key_stopping(
        dir: &Path,
        passphrase: &Passphrase,
        opts: VaultOptions,
        stop: RekeyStop,
    ) -> Result<(Vault, Zeroizing<String>)> {
        // A normal unlock first: an earlier interruption settled, the journal ingested, the
        // passphrase checked (a wrong one is recorded like any failed unlock).
        let v = Vault::unlock(dir, Unlock::Passphrase(passphrase), opts.clone())?;
        let actor = v.actor_ctx();
        let vault_id = v.vault_id().to_string();
        let remembered = crate::keyring::probe(Some(&vault_id)).unwrap_or(false);
        v.close();
        drop(v);
        let lock = OpenLock::exclusive(dir).map_err(|e| match e {
            Error::VaultBusy(_) => Error::VaultBusy(
                "another LabVault process has this vault open; close it (the app, a sync) before rotating the root key".into(),
            ),
            other => other,
        })?;
        let key_file = read_key_file(dir)?;
        let old = key_file
            .unlock_with_passphrase(passphrase)
            .map_err(key_err)?;
        let kdf = match opts.kdf {
            Some(k) => k,
            None => KdfParams::calibrate(std::time::Duration::from_millis(500)),
        };
        let (next, new, recovery) = key_file
            .with_new_root(&old, passphrase, kdf)
            .map_err(key_err)?;
        let cat = dir.join(CATALOG_FILE);
        catalog::build_rekeyed_copy(&cat, &old.catalog_key(), &new.catalog_key(), |tx| {
            let n = rewrap_all(tx, &old, &new)?;
            audit::append(
                tx,
                &actor,
                actions::AUTH_REKEY,
                Subject::new(
                    resources::VAULT,
                    format!("keys_rewrapped={n} recovery_key=replaced files_reencrypted=0"),
                ),
                Outcome::Success,
            )?;
            Ok(())
        })?;
        if stop == RekeyStop::AfterCopy {
            return Err(Error::Cancelled);
        }
        fsutil::atomic_write(&dir.join(NEXT_KEY_FILE), &next.to_bytes())?;
        if stop == RekeyStop::AfterNextKeyFile {
            return Err(Error::Cancelled);
        }
        catalog::install_rekeyed_copy(&cat)?;
        if stop == RekeyStop::AfterCatalog {
            return Err(Error::Cancelled);
        }
        finish(dir)?;
        drop(lock);
        if remembered {
            crate::keyring::store_root_key(&vault_id, &new)?;
        }
        drop((old, new));
        let v = Vault::unlock(dir, Unlock::Passphrase(passphrase), opts)?;
        Ok((v, Zeroizing::new(recovery.to_display_string().to_string())))
    }
}
