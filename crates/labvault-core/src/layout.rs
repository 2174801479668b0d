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

/// Whether `dir` holds a vault (a key file); cheap, needs no passphrase.
pub fn vault_exists(dir: &Path) -> bool {
    dir.join(KEY_FILE).is_file()
}

/// Where a blob with this id lives: `blobs/<first 2 hex>/<id>`.
pub(crate) fn blob_path(dir: &Path, blob_id: &str) -> PathBuf {
    dir.join(BLOBS_DIR).join(&blob_id[..2]).join(blob_id)
}
