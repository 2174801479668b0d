//! Harness: the real tenant server (TLS on 127.0.0.1:0, its own data directory), and devices
//! (real vaults in temp directories) that sign in, pair and sync through the real engine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use labvault_client::{ClientOptions, Pin, TenantClient, Transport};
use labvault_core::{Area, ImportOptions, KdfParams, Passphrase, Unlock, Vault, VaultOptions};
use labvault_server::secrets::{KdfParams as ServerKdf, Secret};
use labvault_server::server::self_signed;
use labvault_server::{
    create_tenant, open_state, start, Config, DataDir, NewTenant, RunningServer,
};
use labvault_sync::{
    EngineConfig, LoginOutcome, MemoryTokens, PassReport, Session, SyncEngine, SyncError,
    TokenStore,
};
use labvault_wire::PlanTier;

pub const PW: &str = "Correct-Horse-9";
pub const PASS: &str = "correct horse battery staple";

/// A directory for test data: tmpfs when there is one (fsync is then free), else the temp dir.
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

pub fn server_config() -> Config {
    Config {
        kdf: ServerKdf::TEST,
        login_attempts_per_ip_minute: 100_000,
        sweep_interval_secs: 3600,
        part_size_range: (1024, 64 << 20),
        ..Config::default()
    }
}

/// The lab's tenant: a real server over TLS with one tenant and its owner.
pub struct Tenant {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub pin: String,
    pub slug: String,
    pub email: String,
}

impl Tenant {
    pub async fn start() -> Tenant {
        let dir = scratch();
        let data = DataDir::create(dir.path()).unwrap();
        let state = open_state(
            &data,
            server_config(),
            Arc::new(labvault_server::clock::SystemClock),
        )
        .unwrap();
        let server = start(
            "127.0.0.1:0".parse().unwrap(),
            self_signed(&data).unwrap(),
            state,
        )
        .await
        .unwrap();
        create_tenant(
            &server.state,
            NewTenant {
                slug: "lab".into(),
                name: "The lab".into(),
                plan: PlanTier::Professional,
                owner_email: "pi@lab.test".into(),
                owner_password: Secret::new(PW.into()),
            },
        )
        .await
        .unwrap();
        Tenant {
            url: format!("https://127.0.0.1:{}", server.addr.port()),
            pin: server.pin.clone(),
            server,
            dir,
            slug: "lab".into(),
            email: "pi@lab.test".into(),
        }
    }

    /// An access token of `email` (an account without MFA).
    pub async fn token(&self, email: &str) -> String {
        let r = self
            .client()
            .login(&labvault_wire::LoginRequest {
                tenant: self.slug.clone(),
                email: email.into(),
                password: PW.into(),
            })
            .await
            .unwrap();
        match r {
            labvault_wire::LoginResponse::Ok(p) => p.access_token,
            labvault_wire::LoginResponse::MfaRequired { .. } => panic!("{email} has MFA"),
        }
    }

    /// Invites `email` with a tenant role (by the owner) and accepts the invitation.
    pub async fn add_member(&self, email: &str, role: labvault_wire::Role) {
        let owner = self.token(&self.email).await;
        let inv = self
            .client()
            .create_invitation(
                &owner,
                &labvault_wire::InvitationRequest {
                    email: email.into(),
                    role,
                    expires_in_hours: None,
                },
            )
            .await
            .unwrap();
        self.client()
            .accept_invitation(&labvault_wire::AcceptInvitationRequest {
                token: inv.token,
                password: PW.into(),
            })
            .await
            .unwrap();
    }

    pub fn client(&self) -> TenantClient {
        TenantClient::new(
            &self.url,
            Pin::parse(&self.pin).unwrap(),
            ClientOptions {
                user_agent: "labvault-sync-tests/1".into(),
                ..ClientOptions::default()
            },
        )
        .unwrap()
    }

    /// Every file under the server's data directory.
    pub fn files(&self) -> Vec<PathBuf> {
        walk(self.dir.path())
    }

    /// A decrypted copy of the server's database (with its key, as the server reads it), in a
    /// temporary directory of its own: what someone holding the server's keys would see.
    pub fn decrypted_db(&self) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let to = t.path().join("plain.db");
        let c = labvault_server::server::open_db_raw(&labvault_server::DataDir(
            self.dir.path().to_path_buf(),
        ))
        .unwrap();
        c.execute_batch(&format!(
            "ATTACH DATABASE '{}' AS plain KEY ''; SELECT sqlcipher_export('plain'); DETACH DATABASE plain;",
            to.display()
        ))
        .unwrap();
        (t, to)
    }

    /// A backup now, with `labvault-server backup`'s code (a snapshot of the database, the
    /// wrapped keys and the blob objects, in a repository of its own): what a nightly
    /// backup holds.
    pub fn backup(&self) -> Backup {
        let repo = scratch();
        let r = self.backup_to(
            repo.path(),
            time::OffsetDateTime::now_utc().unix_timestamp(),
        );
        Backup { repo, id: r.id }
    }

    /// A backup into the repository `repo`, as if taken at `now` (unix seconds).
    pub fn backup_to(&self, repo: &Path, now: i64) -> labvault_server::backup::BackupReport {
        labvault_server::backup::create(
            &DataDir(self.dir.path().to_path_buf()),
            &labvault_server::KekChoice::default_for(self.dir.path()),
            repo,
            now,
            90,
            &mut (),
        )
        .unwrap()
    }

    /// Stops the server, wipes its data directory (all but the KEK file, which an operator
    /// keeps apart from the backups), restores `backup` into it with `labvault-server
    /// restore`'s code and starts it again on the same address.
    pub async fn restore(&mut self, backup: &Backup) {
        self.restore_from(backup.repo.path(), &backup.id).await
    }

    /// [`Tenant::restore`] of snapshot `id` of the repository `repo`.
    pub async fn restore_from(&mut self, repo: &Path, id: &str) {
        let data = DataDir(self.dir.path().to_path_buf());
        let addr = self.server.addr;
        // A stand-in on its own data directory, so the real one is let go of entirely.
        let spare = scratch();
        let spare_data = DataDir::create(spare.path()).unwrap();
        let spare_state = open_state(
            &spare_data,
            server_config(),
            Arc::new(labvault_server::clock::SystemClock),
        )
        .unwrap();
        let tmp = start(
            "127.0.0.1:0".parse().unwrap(),
            self_signed(&spare_data).unwrap(),
            spare_state,
        )
        .await
        .unwrap();
        let old = std::mem::replace(&mut self.server, tmp);
        old.stop().await;
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name == "kek.key" {
                continue;
            }
            if e.path().is_dir() {
                std::fs::remove_dir_all(e.path()).unwrap();
            } else {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        labvault_server::backup::restore(
            repo,
            Some(id),
            &data,
            &labvault_server::KekChoice::default_for(self.dir.path()),
            &mut (),
        )
        .unwrap();
        let state = open_state(
            &data,
            server_config(),
            Arc::new(labvault_server::clock::SystemClock),
        )
        .unwrap();
        let new = start(addr, self_signed(&data).unwrap(), state)
            .await
            .unwrap();
        let tmp = std::mem::replace(&mut self.server, new);
        tmp.stop().await;
    }
}

/// A backup snapshot and its repository.
pub struct Backup {
    pub repo: tempfile::TempDir,
    pub id: String,
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn vault_options() -> VaultOptions {
    VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        actor: "scientist".into(),
        user_agent: "labvault-sync-tests".into(),
        ..VaultOptions::default()
    }
}

/// A device: a vault of its own, its tokens, its engine settings.
pub struct Device {
    pub name: &'static str,
    pub dir: tempfile::TempDir,
    pub vault: Arc<Vault>,
    pub tokens: Arc<MemoryTokens>,
    pub cfg: EngineConfig,
}

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        part_size: 64 << 10,
        pack_target: 256 << 10,
        small_blob_max: 128 << 10,
        ..EngineConfig::default()
    }
}

impl Device {
    pub fn new(name: &'static str) -> Device {
        Device::with_options(name, vault_options())
    }

    /// A device whose vault runs on `clock` (offline leases, rotation periods).
    pub fn with_clock(name: &'static str, clock: Arc<labvault_core::ManualClock>) -> Device {
        Device::with_options(
            name,
            VaultOptions {
                clock,
                ..vault_options()
            },
        )
    }

    pub fn with_options(name: &'static str, opts: VaultOptions) -> Device {
        let dir = scratch();
        let (vault, _) = Vault::create(
            &dir.path().join("vault"),
            &Passphrase::new(PASS.into()),
            opts,
        )
        .unwrap();
        Device {
            name,
            dir,
            vault: Arc::new(vault),
            tokens: Arc::new(MemoryTokens::default()),
            cfg: engine_config(),
        }
    }

    /// Locks the vault and opens it again (what a restart of the app does).
    pub fn reopen(&mut self) {
        self.vault.shutdown();
        let v = Vault::unlock(
            &self.dir.path().join("vault"),
            Unlock::Passphrase(&Passphrase::new(PASS.into())),
            vault_options(),
        )
        .unwrap();
        self.vault = Arc::new(v);
    }

    /// Configures the tenant and signs in as its owner.
    pub async fn login(&self, t: &Tenant) {
        self.login_with(t, t.client()).await
    }

    pub async fn login_with(&self, t: &Tenant, client: TenantClient) {
        self.login_as_with(t, client, &t.email).await
    }

    /// Configures the tenant and signs in as `email` (an account without MFA, or before
    /// enrolling it).
    pub async fn login_as(&self, t: &Tenant, email: &str) {
        self.login_as_with(t, t.client(), email).await
    }

    pub async fn login_as_with(&self, t: &Tenant, client: TenantClient, email: &str) {
        self.vault
            .set_sync_remote(&t.url, &t.pin, Some(&t.slug))
            .unwrap();
        let tokens: Arc<dyn TokenStore> = self.tokens.clone();
        let s = match Session::login(
            client.clone(),
            self.vault.vault_id(),
            tokens,
            &t.slug,
            email,
            PW,
            None,
        )
        .await
        .unwrap()
        {
            LoginOutcome::SignedIn(s) => *s,
            LoginOutcome::MfaNeeded => panic!("no MFA in tests"),
        };
        let me = s
            .call(|tok| {
                let c = client.clone();
                async move { c.me(&tok).await }
            })
            .await
            .unwrap();
        self.vault.sync_signed_in(&t.slug, email, &me.id).unwrap();
    }

    pub fn engine(&self, t: &Tenant) -> SyncEngine {
        self.engine_with(t.client())
    }

    pub fn engine_with(&self, client: TenantClient) -> SyncEngine {
        let tokens: Arc<dyn TokenStore> = self.tokens.clone();
        let s = Session::resume(client, self.vault.vault_id(), tokens).unwrap();
        SyncEngine::new(self.vault.clone(), s, self.cfg.clone()).unwrap()
    }

    pub async fn sync(&self, t: &Tenant) -> Result<PassReport, SyncError> {
        self.engine(t).pass(None).await
    }

    /// Syncs until a pass changes nothing here (at most 6 passes).
    pub async fn settle(&self, t: &Tenant) -> PassReport {
        let mut last = PassReport::default();
        for _ in 0..6 {
            last = self.sync(t).await.unwrap();
            if last.pulled == 0 && last.pushed == 0 {
                return last;
            }
        }
        last
    }

    pub fn project(&self, name: &str) -> String {
        match self.vault.project(name) {
            Ok(p) => p.id,
            Err(_) => self.vault.create_project(name).unwrap().id,
        }
    }

    /// Imports files (name, bytes) into project/uploads.
    pub fn import(&self, project: &str, files: &[(&str, &[u8])]) {
        let src = self
            .dir
            .path()
            .join("src")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let mut paths = Vec::new();
        for (name, bytes) in files {
            let p = src.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            paths.push(p);
        }
        for p in paths {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .parent()
                .map(|d| d.to_string_lossy().into_owned())
                .filter(|d| !d.is_empty());
            self.vault
                .import(
                    project,
                    Area::Uploads,
                    std::slice::from_ref(&p),
                    &ImportOptions {
                        dest_prefix: rel,
                        ..ImportOptions::default()
                    },
                    &mut |_| {},
                    &AtomicBool::new(false),
                )
                .unwrap();
        }
    }

    pub fn item(&self, project: &str, path: &str) -> labvault_core::ItemInfo {
        self.vault
            .find_item(
                Some(project),
                Some(Area::Uploads),
                path,
                &[
                    labvault_core::ItemState::Active,
                    labvault_core::ItemState::SoftDeleted,
                    labvault_core::ItemState::Erased,
                ],
            )
            .unwrap()
    }

    /// The bytes of an item's current version.
    pub fn read(&self, item_id: &str) -> Vec<u8> {
        let h = self.vault.view_open(item_id).unwrap();
        let size = self.vault.item(item_id).unwrap().size;
        self.vault.view_read(&h, 0, size).unwrap()
    }

    /// Full verification: every version decrypts and matches its hash.
    pub fn verify(&self) {
        let r = self
            .vault
            .verify(&mut |_| {}, &AtomicBool::new(false))
            .unwrap();
        assert!(r.is_ok(), "{}: verify found {:?}", self.name, r.problems);
    }
}

/// Pairs `new` (signed in, waiting) with `approver` (already syncing).
pub async fn pair(t: &Tenant, approver: &Device, new: &Device) {
    let code = match new.sync(t).await {
        Err(SyncError::NotApproved(code)) => code,
        other => panic!("a second device waits for approval, got {other:?}"),
    };
    let e = approver.engine(t);
    labvault_sync::keys::approve(&approver.vault, e.session(), &code)
        .await
        .unwrap();
    drop(e);
}

pub fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

/// A transport handle type for tests that wrap the real one.
pub type DynTransport = Arc<dyn Transport>;

/// Enrols TOTP for the account signed in on `d` and steps its session up with the next code,
/// as an admin does before sharing (admin actions need a recent MFA verification). Returns
/// the engine whose session is stepped up.
pub async fn step_up(t: &Tenant, d: &Device) -> SyncEngine {
    let e = d.engine(t);
    let s = e.session();
    let enrolled = s
        .call(|tok| {
            let c = s.client().clone();
            async move { c.mfa_enroll(&tok).await }
        })
        .await
        .unwrap();
    let secret = labvault_server::totp::base32_decode(&enrolled.secret_base32).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let code = labvault_server::totp::code_at(&secret, now, 6);
    let codes = s
        .call(|tok| {
            let (c, code) = (s.client().clone(), code.clone());
            async move { c.mfa_confirm(&tok, &code).await }
        })
        .await
        .unwrap();
    // A recovery code steps up without waiting for the next TOTP step.
    s.step_up(&codes.recovery_codes[0]).await.unwrap();
    e
}
