//! The audited public face of the vault operations. Each public operation here wraps the
//! unaudited implementation (`*_unaudited`, in `vault.rs`, `items.rs`, `transfer.rs`) so that
//! it records exactly one audit event (success in the operation's own transaction; failure or
//! denial in a transaction of its own; see `audit.rs`), and applies legal holds before
//! anything that deletes.

use crate::audit::ResourceOf;
use crate::error::Result;
use crate::model::{Area, ItemInfo, ProjectInfo};
use crate::transfer::{
    ExportOptions, ImportEvent, ImportOptions, ImportReport, TransferProgress, VerifyReport,
};
use crate::vault::{Unlock, Vault, VaultOptions};
use labvault_crypto::Passphrase;
use labvault_governance::audit::{actions, resources, Outcome};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use zeroize::Zeroizing;

impl Vault {
    fn item_resource(&self, item_id: &str) -> String {
        match self.item(item_id) {
            Ok(i) => resources::item(&i.project_id, &i.id),
            Err(_) => format!("item/{item_id}"),
        }
    }

    fn project_resource(&self, project: &str) -> String {
        match self.project(project) {
            Ok(p) => resources::project(&p.id),
            Err(_) => "project/unknown".to_string(),
        }
    }

    /// Creates a new vault ; its audit chain starts with
    /// `vault.create`.
    pub fn create(
        dir: &Path,
        passphrase: &Passphrase,
        opts: VaultOptions,
    ) -> Result<(Vault, Zeroizing<String>)> {
        let (mut v, rk) = Vault::create_unaudited(dir, passphrase, opts)?;
        v.record(
            actions::VAULT_CREATE,
            resources::VAULT.into(),
            Outcome::Success,
            String::new(),
        )?;
        Ok((v, rk))
    }

    /// Unlocks the vault , records `auth.unlock`, ingests the
    /// failed-unlock journal and enforces retention. A failed unlock cannot write the
    /// encrypted catalog; it is sealed into the journal instead (see `journal.rs`). A key file
    /// without a journal key (format version 1) gets one here.
    pub fn unlock(dir: &Path, how: Unlock<'_>, opts: VaultOptions) -> Result<Vault> {
        let method = match how {
            Unlock::Passphrase(_) => "passphrase",
            Unlock::RecoveryKey(_) => "recovery_key",
            Unlock::Keyring => "keyring",
        };
        let (actor, clock) = (opts.actor.clone(), opts.clock.clone());
        // Step timings (debug level) so a slow unlock can be attributed without a profiler.
        let t0 = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e3;
        let mut v = match Vault::unlock_unaudited(dir, how, opts) {
            Ok(v) => v,
            Err(e) => {
                crate::journal::note_failed_unlock(dir, &actor, clock.now(), method, &e);
                return Err(e);
            }
        };
        let open_ms = ms(t0);
        let t = std::time::Instant::now();
        let (journal_key, key_problem) = crate::journal::ensure_journal_key(&mut v)?;
        crate::journal::ingest(&mut v, &journal_key, key_problem)?;
        drop(journal_key);
        let journal_ms = ms(t);
        let t = std::time::Instant::now();
        v.record(
            actions::AUTH_UNLOCK,
            resources::VAULT.into(),
            Outcome::Success,
            format!("method={method}"),
        )?;
        let record_ms = ms(t);
        let t = std::time::Instant::now();
        let run = v.run_retention_inner(&mut |_, _| {}, false)?;
        tracing::debug!(
            open_ms,
            journal_ms,
            record_ms,
            retention_ms = ms(t),
            retention_checked = run.checked,
            total_ms = ms(t0),
            "unlock steps"
        );
        Ok(v)
    }

    /// Locks the vault after recording `auth.lock`.
    pub fn lock(mut self) {
        if let Err(e) = self.record(
            actions::AUTH_LOCK,
            resources::VAULT.into(),
            Outcome::Success,
            String::new(),
        ) {
            tracing::warn!(code = e.code().as_str(), "could not record the lock event");
        }
        self.lock_unaudited();
    }

    /// Removes this vault's root key from the OS keyring without unlocking it (so a lost
    /// passphrase does not strand the key there), and journals `auth.forget` (`success`,
    /// detail `removed` or `no_entry`; `failure` with the error code), sealed to the vault and
    /// moved into the chain at the next unlock. Returns whether there was an entry.
    pub fn forget_on_device(dir: &Path, opts: &VaultOptions) -> Result<bool> {
        let out = Vault::forget_on_device_unaudited(dir);
        if crate::vault::vault_exists(dir) {
            crate::journal::note_forget(dir, &opts.actor, opts.clock.now(), &out)?;
        }
        out
    }

    /// Changes the passphrase (`auth.passwd`).
    pub fn change_passphrase(&mut self, new: &Passphrase) -> Result<()> {
        self.audited(
            actions::AUTH_PASSWD,
            ResourceOf::Fixed(resources::VAULT.into()),
            String::new(),
            false,
            |v| v.change_passphrase_unaudited(new),
        )
    }

    /// Stores the root key in the OS keyring (`auth.remember`).
    pub fn remember_on_device(&mut self) -> Result<()> {
        self.audited(
            actions::AUTH_REMEMBER,
            ResourceOf::Fixed(resources::VAULT.into()),
            String::new(),
            false,
            |v| v.remember_on_device_unaudited(),
        )
    }

    /// Creates a project (`project.create`, resource = the new project).
    pub fn create_project(&mut self, name: &str) -> Result<ProjectInfo> {
        self.audited(
            actions::PROJECT_CREATE,
            ResourceOf::LastProject,
            String::new(),
            false,
            |v| v.create_project_unaudited(name),
        )
    }

    /// Imports files (`data.import`: one event per file committed, in the transaction that
    /// commits it, a group commit for small files; plus one failure event per file refused).
    pub fn import(
        &mut self,
        project: &str,
        area: Area,
        sources: &[PathBuf],
        opts: &ImportOptions,
        progress: &mut dyn FnMut(&ImportEvent<'_>),
        cancel: &AtomicBool,
    ) -> Result<ImportReport> {
        let resource = self.project_resource(project);
        let out = self.audited(
            actions::DATA_IMPORT,
            ResourceOf::LastItemVersion,
            format!("area={area}"),
            true,
            |v| v.import_unaudited(project, area, sources, opts, progress, cancel),
        );
        if let Ok(report) = &out {
            if report.imported.is_empty() && report.failed.is_empty() {
                self.record(
                    actions::DATA_IMPORT,
                    resource.clone(),
                    Outcome::Success,
                    "files=0".into(),
                )?;
            }
            for f in &report.failed {
                self.record(
                    actions::DATA_IMPORT,
                    resource.clone(),
                    Outcome::Failure,
                    f.code.as_str().to_string(),
                )?;
            }
        }
        out
    }

    /// Exports one item (`data.export`).
    pub fn export_item(
        &mut self,
        item_id: &str,
        dest_dir: &Path,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<PathBuf> {
        let r = self.item_resource(item_id);
        self.audited(
            actions::DATA_EXPORT,
            ResourceOf::Fixed(r),
            String::new(),
            false,
            |v| v.export_item_unaudited(item_id, dest_dir, opts, progress, cancel),
        )
    }

    /// Exports a whole area (`data.export` on the project).
    #[allow(clippy::too_many_arguments)]
    pub fn export_area(
        &mut self,
        project: &str,
        area: Area,
        dest_dir: &Path,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<Vec<PathBuf>> {
        let r = self.project_resource(project);
        self.audited(
            actions::DATA_EXPORT,
            ResourceOf::Fixed(r),
            format!("area={area}"),
            false,
            |v| v.export_area_unaudited(project, area, dest_dir, opts, progress, cancel),
        )
    }

    /// Renames/moves an item (`data.rename`).
    pub fn move_item(
        &mut self,
        item_id: &str,
        new_area: Option<Area>,
        new_path: Option<&str>,
    ) -> Result<ItemInfo> {
        let r = self.item_resource(item_id);
        self.audited(
            actions::DATA_RENAME,
            ResourceOf::Fixed(r),
            String::new(),
            false,
            |v| v.move_item_unaudited(item_id, new_area, new_path),
        )
    }

    /// Soft-deletes an item (`data.delete`); refused with `on_hold` (audited as denied) under a
    /// legal hold.
    pub fn soft_delete(&mut self, item_id: &str) -> Result<ItemInfo> {
        let r = self.item_resource(item_id);
        self.audited(
            actions::DATA_DELETE,
            ResourceOf::Fixed(r),
            String::new(),
            false,
            |v| {
                v.ensure_not_held(item_id)?;
                v.soft_delete_unaudited(item_id)
            },
        )
    }

    /// Restores a soft-deleted item (`data.restore`).
    pub fn restore(&mut self, item_id: &str) -> Result<ItemInfo> {
        let r = self.item_resource(item_id);
        self.audited(
            actions::DATA_RESTORE,
            ResourceOf::Fixed(r),
            String::new(),
            false,
            |v| v.restore_unaudited(item_id),
        )
    }

    /// Immediate cryptographic erasure on request (right to deletion; skips the grace period):
    /// `data.purge`, refused with `on_hold` under a legal hold.
    pub fn purge(&mut self, item_id: &str, reason: &str) -> Result<ItemInfo> {
        let r = self.item_resource(item_id);
        self.audited(
            actions::DATA_PURGE,
            ResourceOf::Fixed(r),
            reason.to_string(),
            false,
            |v| {
                v.ensure_not_held(item_id)?;
                v.purge_unaudited(item_id, reason)
            },
        )
    }

    /// Verifies blobs and catalog (`data.verify`; result `failure` when problems are found).
    pub fn verify(
        &mut self,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<VerifyReport> {
        let out = self.verify_unaudited(progress, cancel);
        let (result, detail) = match &out {
            Ok(rep) if rep.is_ok() => (Outcome::Success, String::new()),
            Ok(rep) => (Outcome::Failure, format!("problems={}", rep.problems.len())),
            Err(e) => (Outcome::Failure, e.code().as_str().to_string()),
        };
        self.record(
            actions::DATA_VERIFY,
            resources::VAULT.into(),
            result,
            detail,
        )?;
        out
    }
}
