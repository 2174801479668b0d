//! LabVault desktop shell: a thin Tauri layer whose commands call straight into `labvault_core`.
//!
//! Every command returns either its result type or a [`CommandError`] (`{code, message}`), so the UI
//! branches on stable codes and never on message text. The IPC types derive `ts_rs::TS` and are
//! generated into `ui/src/bindings/`; a test fails when the committed TypeScript drifts.
#![forbid(unsafe_code)]

pub mod bindings;
pub mod commands;
pub mod error;
pub mod navigation;

#[cfg(test)]
mod ipc_tests;

use tauri::webview::{NewWindowResponse, WebviewWindowBuilder};
use tauri::{Manager, Runtime};

pub use commands::VaultStatus;
pub use error::CommandError;

/// Registers the commands on a builder; shared by [`run`] and the mock-runtime tests so both see
/// exactly the same IPC surface.
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![commands::vault_status])
}

/// Creates the main window from `tauri.conf.json` (declared with `create: false`) so navigation
/// guards can be attached: the webview may only ever show the bundled UI.
pub fn create_main_window<R: Runtime, M: Manager<R>>(manager: &M) -> tauri::Result<()> {
    let config = manager
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == "main")
        .cloned()
        .ok_or(tauri::Error::WindowNotFound)?;
    let dev_url = manager.config().build.dev_url.clone();
    WebviewWindowBuilder::from_config(manager, &config)?
        .on_navigation(move |url| navigation::is_app_url(url, dev_url.as_ref()))
        .on_new_window(|_url, _features| NewWindowResponse::Deny)
        .build()?;
    Ok(())
}

/// Runs the desktop app until its last window closes.
pub fn run() {
    with_commands(tauri::Builder::default())
        .setup(|app| {
            create_main_window(app)?;
            Ok(())
        })
        .run(tauri::generate_context!())
        .expect("LabVault could not start its window (is a graphical session available?)");
}
