//! The vault directory's layout: file names and where a blob lives. See docs/vault-layout.md.

use std::path::{Path, PathBuf};

/// Key file name inside the vault directory.
pub const KEY_FILE: &str = "vault.key";
/// Catalog file name inside the vault directory.
pub const CATALOG_FILE: &str = "catalog.db";
/// Directory of encrypted blobs.
pub const BLOBS_DIR: &str = "blobs";
/// Present while `blobs/` may hold a file that no committed catalog row references: created
/// (durably) before an import or an erasure changes `blobs/`, removed once it finished cleanly.
/// Unlock sweeps every blob for orphans only when it is there (at 100,000 blobs the sweep was
/// ~90 ms of every unlock).
pub const BLOBS_UNSETTLED: &str = "blobs.unsettled";
/// Directory of in-flight (ciphertext-only) temp files.
pub const TMP_DIR: &str = "tmp";
/// Directory of blobs being downloaded by sync (ciphertext only): a download survives a
/// restart and resumes where it stopped; unlock does not empty it (sync does).
pub const SYNC_DIR: &str = "sync";
/// Lock file every open handle holds (see `locks.rs`).
pub const LOCK_FILE: &str = crate::locks::OPEN_LOCK_FILE;

/// The default vault location: `$XDG_DATA_HOME/labvault/vault`, else
/// `~/.local/share/labvault/vault`. `None` if neither variable is usable.
pub fn default_vault_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => {
            let home = std::env::var_os("HOME").map(PathBuf::from)?;
            if !home.is_absolute() {
                return None;
            }
            home.join(".local").join("share")
        }
    };
    Some(base.join("labvault").join("vault"))
}

/// Present while a vault is being created, until its key file is written: what a creation
/// that died leaves is recognised as such (and may be cleared), unlike a vault whose key file
/// was lost.
pub const CREATING_MARKER: &str = ".labvault-creating";

/// Whether `dir` holds a vault (a key file); cheap, needs no passphrase.
pub fn vault_exists(dir: &Path) -> bool {
    dir.join(KEY_FILE).is_file()
}

/// Whether `dir` holds vault data (a catalog, or blob files) without its key file: the key
/// file was lost or moved. Creating a vault there would destroy what a restored key file
/// could still open, so nothing may be created or written there.
pub fn vault_data_without_key(dir: &Path) -> bool {
    if vault_exists(dir) || dir.join(CREATING_MARKER).exists() {
        // A vault, or the leftovers of a creation that never wrote its key file.
        return false;
    }
    let catalog = dir.join(CATALOG_FILE).exists();
    let blobs = std::fs::read_dir(dir.join(BLOBS_DIR))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    catalog || blobs
}

/// The error for a vault directory whose key file is missing (see
/// [`vault_data_without_key`]): what is missing, how to restore it, and what does not help.
pub fn missing_key_file_error(dir: &Path) -> crate::Error {
    crate::Error::CorruptKeyFile(format!(
        "the vault at {} has lost its key file {KEY_FILE} (its catalog and encrypted files are still there): restore {KEY_FILE} from a backup of this vault; the recovery key cannot open the vault without it. Do not run `labvault init` here: it refuses, because a new vault would make the existing files unreadable for good",
        dir.display()
    ))
}

/// Where a blob with this id lives: `blobs/<first 2 hex>/<id>`.
pub(crate) fn blob_path(dir: &Path, blob_id: &str) -> PathBuf {
    dir.join(BLOBS_DIR).join(&blob_id[..2]).join(blob_id)
}
