//! LabVault desktop shell: a thin Tauri layer whose commands call straight into `labvault_core`.
//!
//! Every command returns either its result type or a [`CommandError`] (`{code, message}`), so the UI
//! branches on stable codes and never on message text. The IPC types derive `ts_rs::TS` and are
//! generated into `ui/src/bindings/`; a test fails when the committed TypeScript drifts.
//! Secrets only flow in (passphrases); keys and the recovery key never reach the webview.
#![forbid(unsafe_code)]

pub mod bindings;
pub mod commands;
pub mod dto;
pub mod error;
pub mod logging;
pub mod navigation;
pub mod ops;
pub mod preview;
pub mod state;
pub mod tenant_dto;
pub mod tenant_ops;
pub mod tray;
pub mod watch_dto;
pub mod watch_ops;

#[cfg(test)]
mod api_gen;
#[cfg(test)]
mod architecture_tests;
#[cfg(test)]
mod ipc_tests;
#[cfg(test)]
mod tenant_tests;

use std::sync::Arc;
use std::time::Duration;

use tauri::webview::{NewWindowResponse, WebviewWindowBuilder};
use tauri::{Emitter, Manager, Runtime};

pub use dto::VaultStatus;
pub use error::CommandError;
pub use state::{AppState, Shared};

/// Event emitted to the webview when the vault locked itself after the idle time.
pub const EVENT_VAULT_LOCKED: &str = "vault-locked";

include!("command_list.rs");

/// Registers every command of `command_list.rs` (`app_commands!(handlers)`).
macro_rules! handlers {
    ($($c:ident),* $(,)?) => {
        tauri::generate_handler![$($c),*]
    };
}

/// Every command name, as declared to tauri-build (`src-tauri/build.rs`) and granted in
/// `capabilities/default.json` (a test checks all three agree).
pub const COMMANDS: &[&str] = app_commands!(command_names);

/// Registers the commands and the preview scheme on a builder; shared by [`run`] and the
/// mock-runtime tests so both see exactly the same IPC surface. The caller manages an
/// [`AppState`].
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    use commands::*;
    builder
        .invoke_handler(app_commands!(handlers))
        .register_asynchronous_uri_scheme_protocol(preview::SCHEME, |ctx, request, responder| {
            let shared = ctx.app_handle().state::<AppState>().0.clone();
            let label = ctx.webview_label().to_string();
            tauri::async_runtime::spawn_blocking(move || {
                responder.respond(preview::handle(&shared, &label, &request));
            });
        })
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

/// Starts the auto-lock watcher: every `tick`, locks the vault if it has been idle past the
/// configured time and tells the webview with [`EVENT_VAULT_LOCKED`].
pub fn spawn_auto_lock<R: Runtime>(app: tauri::AppHandle<R>, shared: Arc<Shared>, tick: Duration) {
    std::thread::Builder::new()
        .name("labvault-auto-lock".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            if shared.auto_lock_due() {
                let _ = app.emit(EVENT_VAULT_LOCKED, "idle");
            }
        })
        .expect("spawning the auto-lock thread");
}

/// Runs the desktop app until its last window closes (or, while instrument folders are watched,
/// until "Quit" in the tray).
pub fn run() {
    with_commands(tauri::Builder::default())
        // First: a second launch (say, while the window is closed to the tray) shows this one
        // instead of opening the vault in a second process.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tray::show_main(app)
        }))
        .plugin(tauri_plugin_dialog::init())
        .setup(|app| {
            let log_dir = app.path().app_log_dir().ok();
            if let Some(dir) = &log_dir {
                logging::init(dir);
            }
            let config = app.path().app_config_dir().ok();
            let shared = Arc::new(Shared::new(config.map(|d| d.join("settings.json"))));
            app.manage(AppState(shared.clone()));
            spawn_auto_lock(app.handle().clone(), shared.clone(), Duration::from_secs(5));
            tray::install(app, &shared);
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "LabVault started");
            create_main_window(app)?;
            Ok(())
        })
        .on_window_event(|window, event| {
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                let shared = window.state::<AppState>().0.clone();
                if shared.close_keeps_running() {
                    api.prevent_close();
                    let _ = window.hide();
                    tracing::info!("window closed to the tray: instrument folders keep running");
                }
            }
        })
        .run(tauri::generate_context!())
        .expect("LabVault could not start its window (is a graphical session available?)");
}
