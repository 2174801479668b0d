//! The vault's lifecycle and its secrets: create, unlock (with its maintenance), lock, the
//! passphrase, "remember on this device" and what the OS keyring can do. The same calls serve
//! the CLI and the desktop app, so both are audited the same way.

use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::layout::{vault_exists, KEY_FILE};
use crate::vault::{key_err, read_key_file, Unlock, Vault, VaultOptions};
use crate::{blob_files, fsutil, journal, keyring};
use labvault_crypto::{KdfParams, Passphrase};
use labvault_governance::audit::{actions, resources, Outcome};
use std::path::Path;
use zeroize::Zeroizing;

/// Fewest characters a new passphrase may have (front ends show a strength estimate; this is
/// the hard floor).
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// Characters from which a passphrase counts as a passphrase of words, whatever its classes.
pub const LONG_PASSPHRASE_CHARS: usize = 15;

/// The same bar as the tenant's account passwords: at least [`MIN_PASSPHRASE_CHARS`]
/// characters with three of lowercase, uppercase, digit and symbol, or a passphrase of at
/// least [`LONG_PASSPHRASE_CHARS`] characters (several words). Anything weaker is
/// `invalid_argument`, saying what is needed. Applied to every new passphrase: creation,
/// change, reset with the recovery key.
pub fn check_new_passphrase(p: &Passphrase) -> Result<()> {
    let n = p.char_count();
    if n < MIN_PASSPHRASE_CHARS || (n < LONG_PASSPHRASE_CHARS && p.class_count() < 3) {
        return Err(Error::InvalidArgument(format!(
            "the new passphrase is too weak: use at least {MIN_PASSPHRASE_CHARS} characters with three of lowercase, uppercase, digits and symbols, or a phrase of at least {LONG_PASSPHRASE_CHARS} characters (several words)"
        )));
    }
    Ok(())
}

/// What this device's OS keyring can do for "remember on this device", asked of the keyring
/// itself (a Secret Service that answers), not guessed from the environment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyringStatus {
    /// A keyring answered.
    pub available: bool,
    /// It holds this vault's key (only asked when `vault_id` was given).
    pub remembers: bool,
    /// Why it is not available (`available == false`).
    pub problem: Option<String>,
}

impl Vault {
    /// Creates a new vault in `dir` (created if missing) and returns it unlocked, together with
    /// the recovery key's display form, which is shown to the user exactly once and never
    /// stored. Its audit chain starts with `vault.create`.
    pub fn create(
        dir: &Path,
        passphrase: &Passphrase,
        opts: VaultOptions,
    ) -> Result<(Vault, Zeroizing<String>)> {
        if crate::vault_exists(dir) {
            return Err(Error::AlreadyExists(format!(
                "a vault at {}",
                dir.display()
            )));
        }
        if crate::layout::vault_data_without_key(dir) {
            return Err(crate::layout::missing_key_file_error(dir));
        }
        check_new_passphrase(passphrase)?;
        let (v, recovery) = Vault::create_new(dir, passphrase, opts)?;
        v.write_op(
            actions::VAULT_CREATE,
            || resources::VAULT.into(),
            |w| {
                w.commit(actions::VAULT_CREATE, |_| {
                    Ok(((), Subject::on(resources::VAULT)))
                })
            },
        )?;
        Ok((v, recovery))
    }

    /// Unlocks the vault and records `auth.unlock`. A failed unlock cannot write the encrypted
    /// catalog; it is sealed into the journal instead (see `journal.rs`). As the vault's writer
    /// it then ingests that journal, sweeps orphans an interrupted operation left and enforces
    /// retention; while another process is writing the vault, that maintenance waits for a
    /// later unlock and the event says so (`maintenance=deferred`).
    pub fn unlock(dir: &Path, how: Unlock<'_>, opts: VaultOptions) -> Result<Vault> {
        Vault::unlock_as(dir, how, opts, actions::AUTH_UNLOCK)
    }

    fn unlock_as(
        dir: &Path,
        how: Unlock<'_>,
        opts: VaultOptions,
        failure_action: &str,
    ) -> Result<Vault> {
        let method = how.method();
        let (actor, clock) = (opts.actor.clone(), opts.clock.clone());
        let t0 = std::time::Instant::now();
        let v = match Vault::open(dir, &how, opts) {
            Ok(v) => v,
            Err(e) => {
                journal::note_failed_unlock(dir, failure_action, &actor, clock.now(), method, &e);
                return Err(e);
            }
        };
        let open_ms = t0.elapsed().as_secs_f64() * 1e3;
        if v.read_only_reason().is_some() {
            // A full disk: no maintenance (it writes); the event goes to the journal.
            // (the journal's import marks it `read_only=disk_full`)
            let detail = format!("method={method}");
            v.record(
                actions::AUTH_UNLOCK,
                Subject::new(resources::VAULT, detail),
                Outcome::Success,
            )?;
            return Ok(v);
        }
        match v.begin_write(actions::AUTH_UNLOCK, false)? {
            Some(mut w) => {
                let (journal_key, key_problem) = journal::ensure_journal_key(&w)?;
                journal::ingest(&mut w, &journal_key, key_problem)?;
                drop(journal_key);
                blob_files::sweep(&mut w)?;
                w.commit(actions::AUTH_UNLOCK, |_| {
                    let detail = format!("method={method}");
                    Ok(((), Subject::new(resources::VAULT, detail)))
                })?;
                let run = crate::retention::run_in(&mut w, &mut |_, _| {}, false)?;
                tracing::debug!(
                    open_ms,
                    total_ms = t0.elapsed().as_secs_f64() * 1e3,
                    retention_checked = run.checked,
                    "unlock"
                );
            }
            None => {
                let detail = format!("method={method} maintenance=deferred");
                v.record(
                    actions::AUTH_UNLOCK,
                    Subject::new(resources::VAULT, detail),
                    Outcome::Success,
                )?;
            }
        }
        Ok(v)
    }

    /// Locks the vault after recording `auth.lock`: see [`Vault::close`].
    pub fn lock(self) {
        self.close();
    }

    /// Records `auth.lock`, then drops every connection (the readers' too) and zeroizes the
    /// keys; every later call on this handle fails with `locked`. For a handle shared between
    /// threads, cancel running operations first: the write connection closes when the running
    /// write op returns.
    pub fn close(&self) {
        if self.is_locked() {
            return;
        }
        if let Err(e) = self.record(
            actions::AUTH_LOCK,
            Subject::on(resources::VAULT),
            Outcome::Success,
        ) {
            tracing::warn!(code = e.code().as_str(), "could not record the lock event");
        }
        self.shutdown();
    }

    /// Removes this vault's root key from the OS keyring without unlocking it (so a lost
    /// passphrase does not strand the key there), and journals `auth.forget` (`success`,
    /// detail `removed` or `no_entry`; `failure` with the error code), sealed to the vault and
    /// moved into the chain at the next unlock. Returns whether there was an entry.
    pub fn forget_on_device(dir: &Path, opts: &VaultOptions) -> Result<bool> {
        let id = read_key_file(dir)?.vault_id().to_string();
        let out = keyring::delete_root_key(&id);
        if vault_exists(dir) {
            journal::note_forget(dir, &opts.actor, opts.clock.now(), &out)?;
        }
        out
    }

    /// The vault id of the vault in `dir`, read from its key file (no secret needed); the
    /// keyring entry is stored under it.
    pub fn peek_vault_id(dir: &Path) -> Result<String> {
        Ok(read_key_file(dir)?.vault_id().to_string())
    }

    /// Asks the OS keyring whether it answers and, with `vault_id`, whether it remembers that
    /// vault. Never fails: an unreachable keyring is `available: false` with the reason.
    pub fn keyring_status(vault_id: Option<&str>) -> KeyringStatus {
        match keyring::probe(vault_id) {
            Ok(remembers) => KeyringStatus {
                available: true,
                remembers,
                problem: None,
            },
            Err(e) => KeyringStatus {
                available: false,
                remembers: false,
                problem: Some(e.to_string()),
            },
        }
    }

    /// Changes the passphrase given the current one (`auth.passwd`; a wrong current passphrase
    /// is recorded as a failure `wrong_passphrase`). Re-wraps the root key under a new
    /// key-encryption key and replaces the key file atomically; no blob or catalog page is
    /// re-encrypted.
    pub fn change_passphrase(&self, current: &Passphrase, new: &Passphrase) -> Result<()> {
        self.write_op(
            actions::AUTH_PASSWD,
            || resources::VAULT.into(),
            |w| {
                w.vault.with_keys(|k| {
                    k.key_file
                        .unlock_with_passphrase(current)
                        .map(drop)
                        .map_err(key_err)
                })?;
                check_new_passphrase(new)?;
                Vault::rewrap(w, new)
            },
        )
    }

    /// Opens the vault in `dir` with the current passphrase and changes it to `new`: the
    /// command-line form of [`Vault::change_passphrase`]. A current passphrase that does not open
    /// the vault is journaled as an `auth.passwd` failure `wrong_passphrase`, which is how the
    /// open vault records it too. Returns the open vault.
    pub fn change_passphrase_at(
        dir: &Path,
        current: &Passphrase,
        new: &Passphrase,
        opts: VaultOptions,
    ) -> Result<Vault> {
        check_new_passphrase(new)?;
        let v = Vault::unlock_as(dir, Unlock::Passphrase(current), opts, actions::AUTH_PASSWD)?;
        v.change_passphrase(current, new)?;
        Ok(v)
    }

    /// Sets a new passphrase without the current one: only on a vault unlocked with the
    /// recovery key, which is what it is for (`auth.passwd`, detail `recovery`).
    pub fn reset_passphrase(&self, new: &Passphrase) -> Result<()> {
        self.write_op(
            actions::AUTH_PASSWD,
            || resources::VAULT.into(),
            |w| {
                check_new_passphrase(new)?;
                Vault::rewrap(w, new)
            },
        )
    }

    fn rewrap(w: &mut crate::vault::WriteOp<'_>, new: &Passphrase) -> Result<()> {
        let v = w.vault;
        let kdf = match v.kdf {
            Some(k) => k,
            None => KdfParams::calibrate(std::time::Duration::from_millis(500)),
        };
        let path = v.dir.join(KEY_FILE);
        // The key file is replaced inside the transaction that records it: if the write
        // fails nothing is recorded, and an event is never missing for a changed file.
        w.commit(actions::AUTH_PASSWD, |_| {
            v.with_keys_mut(|k| {
                let new_file = k
                    .key_file
                    .with_new_passphrase(&k.root, new, kdf)
                    .map_err(key_err)?;
                fsutil::atomic_write(&path, &new_file.to_bytes())?;
                k.key_file = new_file;
                Ok(())
            })?;
            Ok(((), Subject::on(resources::VAULT)))
        })
    }

    /// Stores the root key in the OS keyring ("remember on this device", `auth.remember`).
    pub fn remember_on_device(&self) -> Result<()> {
        self.write_op(
            actions::AUTH_REMEMBER,
            || resources::VAULT.into(),
            |w| {
                w.vault
                    .with_keys(|k| keyring::store_root_key(&w.vault.vault_id, &k.root))?;
                w.commit(actions::AUTH_REMEMBER, |_| {
                    Ok(((), Subject::on(resources::VAULT)))
                })
            },
        )
    }
}
