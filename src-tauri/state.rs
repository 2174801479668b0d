//! The app's shared state: the (optional) unlocked vault, settings, the last-activity instant
//! for auto-lock, running operations (for cancel) and open preview views.
//!
//! The vault is shared (`Arc<Vault>`): an import runs on one blocking thread while the list,
//! previews, audit pages and status are served on others; the core decides who waits (only a
//! second writer). Locking closes the vault (every connection and key, the readers' too) and
//! forgets every view handle; the webview never holds anything that would survive it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use labvault_core::{ErrorCode, Vault, VaultOptions, ViewHandle};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::CommandError;

/// Default idle time before the vault locks itself.
pub const DEFAULT_AUTO_LOCK_MINUTES: u32 = 15;

/// Settings kept in `settings.json` in the app config directory (nothing secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StoredSettings {
    /// Idle minutes before auto-lock (1..=1440).
    pub auto_lock_minutes: u32,
    /// Vault directory; `None` = the default location.
    pub vault_dir: Option<PathBuf>,
    /// Whether the user asked this device to remember the vault (a hint for the unlock screen;
    /// the keyring itself is the truth).
    pub remembered_on_device: bool,
    /// Sync's bandwidth limit in KiB/s (`None`: unlimited).
    pub bandwidth_limit_kib: Option<u32>,
}

impl Default for StoredSettings {
    fn default() -> Self {
        StoredSettings {
            auto_lock_minutes: DEFAULT_AUTO_LOCK_MINUTES,
            vault_dir: None,
            remembered_on_device: false,
            bandwidth_limit_kib: None,
        }
    }
}

/// A recovery key waiting for the user to confirm they saved it (its last group is typed back).
pub struct PendingRecovery(pub Zeroizing<String>);

impl std::fmt::Debug for PendingRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingRecovery([redacted])")
    }
}

/// Everything the commands share. Cheap to clone through [`AppState`]'s `Arc`.
pub struct Shared {
    /// The unlocked vault, if any. The lock is held only to swap it, never during an operation.
    pub vault: Mutex<Option<Arc<Vault>>>,
    /// The last keyring probe and when it was made (a D-Bus round trip; see `keyring_status`).
    pub keyring: Mutex<Option<(Instant, labvault_core::KeyringStatus)>>,
    /// Persistent settings.
    pub settings: Mutex<StoredSettings>,
    /// Where settings are saved; `None` keeps them in memory (tests).
    pub settings_path: Option<PathBuf>,
    /// Last user or command activity.
    pub last_activity: Mutex<Instant>,
    /// Overrides the auto-lock idle time (tests use milliseconds).
    pub idle_override: Mutex<Option<Duration>>,
    /// Cancel flags of running operations, by the UI's op id.
    pub ops: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Open preview views by item id (each opening was audited as `data.view`).
    pub views: Mutex<HashMap<String, Arc<ViewHandle>>>,
    /// Recovery key shown at creation, until confirmed.
    pub pending_recovery: Mutex<Option<PendingRecovery>>,
    /// Where the recovery key goes instead of a native dialog (e2e-hooks builds and tests).
    pub recovery_out: Option<PathBuf>,
    /// KDF cost for new key files (`None` = calibrated); tests use the floor.
    pub kdf: Option<labvault_core::KdfParams>,
    /// The tenant session of the unlocked vault (tokens never leave the Rust side).
    pub session: Mutex<Option<Arc<labvault_sync::Session>>>,
    /// Where refresh tokens live: the OS keyring.
    pub tokens: Arc<dyn labvault_sync::TokenStore>,
    /// The sync engine of the unlocked vault (shared by "Sync now" and background sync).
    pub syncer: Mutex<Option<Arc<labvault_sync::background::Syncer>>>,
    /// Background sync, once started (by the status line's first look, when signed in).
    pub background: Mutex<Option<Arc<labvault_sync::background::Background>>>,
    /// Instrument folder watches of the unlocked vault (running while it is unlocked).
    pub watches: Mutex<Option<labvault_watch::Runner>>,
    /// Sync's bandwidth limit, shared with the engine (a change applies to a running sync).
    pub rate_limit: Arc<labvault_sync::limiter::RateLimit>,
    /// Whether the tray icon exists (closing the window may then hide it instead of quitting).
    pub tray_available: AtomicBool,
}

/// Tauri-managed handle to [`Shared`].
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

/// Locks a mutex, recovering from poisoning (a panicked command must not brick the app).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// State with settings loaded from `settings_path` (missing or unreadable file = defaults).
    pub fn new(settings_path: Option<PathBuf>) -> Shared {
        let settings = settings_path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<StoredSettings>(&b).ok())
            .unwrap_or_default();
        let recovery_out = if cfg!(feature = "e2e-hooks") {
            std::env::var_os("LABVAULT_E2E_RECOVERY_OUT").map(PathBuf::from)
        } else {
            None
        };
        let kdf = if cfg!(feature = "e2e-hooks")
            && std::env::var("LABVAULT_KDF").as_deref() == Ok("floor")
        {
            Some(labvault_core::KdfParams::FLOOR)
        } else {
            None
        };
        let settings_limit = settings.bandwidth_limit_kib;
        Shared {
            vault: Mutex::new(None),
            keyring: Mutex::new(None),
            settings: Mutex::new(settings),
            settings_path,
            last_activity: Mutex::new(Instant::now()),
            idle_override: Mutex::new(None),
            ops: Mutex::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
            pending_recovery: Mutex::new(None),
            recovery_out,
            kdf,
            session: Mutex::new(None),
            tokens: Arc::new(labvault_sync::KeyringTokens::default()),
            syncer: Mutex::new(None),
            background: Mutex::new(None),
            watches: Mutex::new(None),
            rate_limit: labvault_sync::limiter::RateLimit::new(
                settings_limit.map(|k| u64::from(k) * 1024),
            ),
            tray_available: AtomicBool::new(false),
        }
    }

    /// The vault directory in use: the configured one or the default location.
    pub fn vault_dir(&self) -> Result<PathBuf, CommandError> {
        if let Some(d) = lock(&self.settings).vault_dir.clone() {
            return Ok(d);
        }
        labvault_core::default_vault_dir().ok_or_else(|| {
            CommandError::new(
                ErrorCode::NotFound,
                "Cannot find a data directory for the vault: neither XDG_DATA_HOME nor HOME is set \
                 to an absolute path.",
            )
        })
    }

    /// Options for opening the vault as the desktop app.
    pub fn vault_options(&self) -> VaultOptions {
        VaultOptions {
            kdf: self.kdf,
            user_agent: format!("labvault-app/{}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        }
    }

    /// Saves settings (atomically: temp file + rename).
    pub fn save_settings(&self) -> Result<(), CommandError> {
        let Some(path) = &self.settings_path else {
            return Ok(());
        };
        let json = serde_json::to_vec_pretty(&*lock(&self.settings))
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        write_atomic(path, &json).map_err(|e| {
            CommandError::new(
                ErrorCode::Io,
                format!("saving settings to {}: {e}", path.display()),
            )
        })
    }

    /// Marks user activity now (every command does; the UI pings on input).
    pub fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    /// Idle time after which the vault locks.
    pub fn idle_limit(&self) -> Duration {
        lock(&self.idle_override).unwrap_or_else(|| {
            Duration::from_secs(u64::from(lock(&self.settings).auto_lock_minutes) * 60)
        })
    }

    /// The unlocked vault; `locked` when there is none.
    pub fn vault(&self) -> Result<Arc<Vault>, CommandError> {
        lock(&self.vault).clone().ok_or_else(|| {
            CommandError::new(ErrorCode::Locked, "The vault is locked: unlock it first.")
        })
    }

    /// Runs `f` on the unlocked vault (`locked` when there is none). Nothing app-wide is held
    /// while it runs: other commands go on beside it.
    pub fn with_vault<T>(
        &self,
        f: impl FnOnce(&Vault) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        self.touch();
        let v = self.vault()?;
        f(&v)
    }

    /// What the OS keyring can do, asked of it at most every 10 seconds.
    pub fn keyring_status(&self, vault_id: Option<&str>) -> labvault_core::KeyringStatus {
        const FRESH: Duration = Duration::from_secs(10);
        let mut cached = lock(&self.keyring);
        if let Some((at, st)) = cached.as_ref() {
            if at.elapsed() < FRESH {
                return st.clone();
            }
        }
        let st = Vault::keyring_status(vault_id);
        *cached = Some((Instant::now(), st.clone()));
        st
    }

    /// Makes `vault` the unlocked vault and starts its watches.
    pub fn set_vault(&self, vault: Vault) {
        let vault = Arc::new(vault);
        *lock(&self.vault) = Some(vault.clone());
        self.start_watches(&vault);
    }

    /// Starts the watches of `vault` unless they run (a vault without watches starts none;
    /// adding the first one starts them).
    pub fn start_watches(&self, vault: &Arc<Vault>) {
        let mut slot = lock(&self.watches);
        if slot.as_ref().is_some_and(|r| r.is_running()) {
            return;
        }
        if vault.watches().map(|w| w.is_empty()).unwrap_or(true) {
            return;
        }
        *slot = Some(labvault_watch::Runner::start(vault.clone()));
    }

    /// Whether closing the window should hide it to the tray rather than quit: only while a
    /// tray exists and instrument folders are being watched (they import only while the app
    /// runs). Everything else stops with the window, as before.
    pub fn close_keeps_running(&self) -> bool {
        if !self.tray_available.load(Ordering::Relaxed) {
            return false;
        }
        if !lock(&self.watches).as_ref().is_some_and(|r| r.is_running()) {
            return false;
        }
        let Ok(v) = self.vault() else { return false };
        v.watches()
            .map(|w| w.iter().any(|w| !w.paused))
            .unwrap_or(false)
    }

    /// Whether a vault is unlocked.
    pub fn is_unlocked(&self) -> bool {
        lock(&self.vault).is_some()
    }

    /// Locks: cancels running operations, forgets every open view and closes the vault
    /// (recording `auth.lock`; every connection closed and every key zeroized once a running
    /// write returns, which the cancel makes prompt). Returns whether a vault was unlocked.
    pub fn lock_vault(&self) -> bool {
        for flag in lock(&self.ops).values() {
            flag.store(true, Ordering::Relaxed);
        }
        let vault = lock(&self.vault).take();
        // Stops an import of a watch at its next file; joined before the vault closes.
        let watches = lock(&self.watches).take();
        drop(watches);
        lock(&self.views).clear();
        self.forget_tenant();
        *lock(&self.pending_recovery) = None;
        *lock(&self.keyring) = None;
        match vault {
            Some(v) => {
                v.close();
                true
            }
            None => false,
        }
    }

    /// Stops background sync and forgets the tenant session and engine (lock, sign-out).
    pub fn forget_tenant(&self) {
        *lock(&self.background) = None;
        *lock(&self.syncer) = None;
        *lock(&self.session) = None;
    }

    /// Locks the vault if it has been idle longer than the limit and no operation is running.
    /// Returns true when it locked (the caller emits `vault-locked`).
    pub fn auto_lock_due(&self) -> bool {
        let idle = lock(&self.last_activity).elapsed();
        if idle < self.idle_limit() || !lock(&self.ops).is_empty() || !self.is_unlocked() {
            return false;
        }
        tracing::info!(idle_secs = idle.as_secs(), "auto-lock");
        self.lock_vault()
    }

    /// Registers a cancellable operation under the UI's id; the guard unregisters it.
    pub fn start_op(self: &Arc<Self>, op_id: &str) -> Result<OpGuard, CommandError> {
        if op_id.is_empty() || op_id.len() > 128 {
            return Err(CommandError::new(
                ErrorCode::InvalidArgument,
                "opId must be 1 to 128 characters",
            ));
        }
        let mut ops = lock(&self.ops);
        if ops.contains_key(op_id) {
            return Err(CommandError::new(
                ErrorCode::AlreadyExists,
                format!("an operation with id {op_id:?} is already running"),
            ));
        }
        let flag = Arc::new(AtomicBool::new(false));
        ops.insert(op_id.to_string(), flag.clone());
        Ok(OpGuard {
            shared: self.clone(),
            id: op_id.to_string(),
            cancel: flag,
        })
    }

    /// Sets the cancel flag of a running operation; false when there is none with that id.
    pub fn cancel_op(&self, op_id: &str) -> bool {
        match lock(&self.ops).get(op_id) {
            Some(f) => {
                f.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// A running operation; unregisters itself when dropped.
pub struct OpGuard {
    shared: Arc<Shared>,
    id: String,
    /// Set by `operation_cancel` (or by locking).
    pub cancel: Arc<AtomicBool>,
}

impl OpGuard {
    /// The UI's id for this operation.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        lock(&self.shared.ops).remove(&self.id);
    }
}

/// Writes `bytes` to `path` via a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
