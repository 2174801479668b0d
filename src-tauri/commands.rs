//! Tauri commands: each one a few lines that call the core and map errors to [`CommandError`].

use labvault_core::ErrorCode;
use serde::Serialize;
use ts_rs::TS;

use crate::error::CommandError;

/// What the first screen needs to know: is there a vault where the app looks by default?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct VaultStatus {
    /// True when a vault key file is present at `path`.
    pub exists: bool,
    /// The default vault directory, shown so users know where their data lives.
    pub path: String,
}

/// Reports whether a vault exists at the default location (the same rule as the CLI's).
#[tauri::command]
pub fn vault_status() -> Result<VaultStatus, CommandError> {
    let dir = labvault_core::default_vault_dir().ok_or_else(|| {
        CommandError::new(
            ErrorCode::NotFound,
            "Cannot find a data directory for the vault: neither XDG_DATA_HOME nor HOME is set \
             to an absolute path.",
        )
    })?;
    Ok(VaultStatus {
        exists: labvault_core::vault_exists(&dir),
        path: dir.display().to_string(),
    })
}
