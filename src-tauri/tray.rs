//! The tray icon: closing the window while instrument folders are watched hides it instead of
//! quitting, because watches import only while the app runs. The tray brings the window back,
//! locks the vault, or quits. Without a tray (no status area on the desktop, or it failed to
//! start) closing quits as before, so the app never keeps running where nobody can reach it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{Emitter, Manager, Runtime};

use crate::state::Shared;
use crate::EVENT_VAULT_LOCKED;

const SHOW: &str = "tray-show";
const LOCK: &str = "tray-lock";
const QUIT: &str = "tray-quit";

/// Shows and focuses the main window (from the tray, or a second launch).
pub fn show_main<R: Runtime>(app: &tauri::AppHandle<R>) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Installs the tray icon; records in `shared` whether there is one.
pub fn install<R: Runtime>(app: &tauri::App<R>, shared: &Arc<Shared>) {
    match build(app, shared.clone()) {
        Ok(()) => shared.tray_available.store(true, Ordering::Relaxed),
        Err(e) => tracing::warn!(error = %e, "no tray icon: closing the window quits LabVault"),
    }
}

fn build<R: Runtime>(app: &tauri::App<R>, shared: Arc<Shared>) -> tauri::Result<()> {
    let menu = Menu::with_items(
        app,
        &[
            &MenuItem::with_id(app, SHOW, "Open LabVault", true, None::<&str>)?,
            &MenuItem::with_id(app, LOCK, "Lock vault", true, None::<&str>)?,
            &MenuItem::with_id(app, QUIT, "Quit LabVault", true, None::<&str>)?,
        ],
    )?;
    let mut tray = TrayIconBuilder::with_id("main")
        .tooltip("LabVault")
        .menu(&menu)
        .on_menu_event(move |app, event| match event.id().as_ref() {
            SHOW => show_main(app),
            LOCK if shared.lock_vault() => {
                let _ = app.emit(EVENT_VAULT_LOCKED, "tray");
            }
            QUIT => {
                shared.lock_vault();
                app.exit(0);
            }
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}
