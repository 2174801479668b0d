//! Deterministic simulation: the real engine and the real server handlers (the axum router
//! over the real SQLite store and blob store, in process, no sockets), four devices with real
//! vaults (three of the PI, one of a postdoc the project is shared with), one seeded random
//! generator and one manual clock. The generator picks what users do (imports, new versions,
//! renames, deletes, restores, purges, holds, conflict picks), membership changes (the key
//! rotated from any PI device, the postdoc removed, then added again, each with a step-up),
//! when devices sync, and the faults: a dropped request, an answer lost after the server acted, a
//! duplicated request, 429 and 503 with `Retry-After`, a body cut mid-upload, an upload left to
//! expire, a client crash (the vault reopened from disk), a server restart, long offline
//! periods. At the end the faults stop, the postdoc is a member again, and every device syncs
//! until nothing moves; then: every device holds the same catalog and key epoch, nothing created anywhere is lost (only what a purge
//! named is gone, everywhere), nothing is duplicated, every blob decrypts and matches its hash,
//! every outbox is empty, and the tenant's feed is gap-free with each op once.
//!
//! A failing seed is printed with the command that replays it exactly (same actions, same
//! faults, same order): `LABVAULT_SIM_SEED=<seed> cargo test -p labvault-sync --test sync sim::replay`.
//! `LABVAULT_SIM_SEEDS=<n>` sweeps more seeds (docs/sync-protocol.md, "Testing").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::BodyExt;
use labvault_client::{ClientError, TenantClient, Transport};
use labvault_core::{
    Area, ImportOptions, ItemState, ManualClock, Passphrase, Unlock, Vault, VaultOptions,
};
use labvault_server::{create_tenant, open_state, DataDir, NewTenant};
use labvault_sync::{
    EngineConfig, LoginOutcome, MemoryTokens, Session, SyncEngine, SyncError, TokenStore,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::common::{scratch, server_config, PASS, PW};

const URL: &str = "https://tenant.sim";

/// Fault probabilities per request while faults are on.
#[derive(Clone, Copy)]
struct Faults {
    drop: f64,
    lose_answer: f64,
    duplicate: f64,
    throttle: f64,
    unavailable: f64,
    cut_body: f64,
}

const FAULTS: Faults = Faults {
    drop: 0.03,
    lose_answer: 0.04,
    duplicate: 0.03,
    throttle: 0.02,
    unavailable: 0.02,
    cut_body: 0.05,
};

/// The network and the server: requests go straight into the router.
struct SimNet {
    router: Mutex<axum::Router>,
    rng: Mutex<StdRng>,
    faults_on: AtomicBool,
    /// Crash the client at this request number (counted while set).
    crash_after: Mutex<Option<u32>>,
    trace: Mutex<Vec<String>>,
}

fn unreachable(what: &str) -> ClientError {
    ClientError::Unreachable {
        url: URL.into(),
        reason: what.into(),
        timeout: false,
    }
}

fn error_response(status: u16, code: &str, retry_after: Option<u64>) -> http::Response<Bytes> {
    let mut b = http::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(r) = retry_after {
        b = b.header("retry-after", r.to_string());
    }
    b.body(Bytes::from(format!(
        r#"{{"code":"{code}","message":"simulated {code}"}}"#
    )))
    .unwrap()
}

impl SimNet {
    fn roll(&self) -> f64 {
        self.rng.lock().unwrap().gen::<f64>()
    }

    fn note(&self, s: String) {
        if std::env::var_os("LABVAULT_SIM_TRACE").is_some() {
            eprintln!("{s}");
        }
        self.trace.lock().unwrap().push(s);
    }

    async fn call(
        &self,
        req: http::Request<Bytes>,
        cut: bool,
    ) -> Result<http::Response<Bytes>, ClientError> {
        let router = self.router.lock().unwrap().clone();
        let (parts, body) = req.into_parts();
        let body = if cut && body.len() > 8 {
            // The connection breaks midway: the server reads half the body, then an error.
            let half = body.slice(..body.len() / 2);
            let s = futures_util::stream::iter(vec![
                Ok::<Bytes, std::io::Error>(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut",
                )),
            ]);
            axum::body::Body::from_stream(s)
        } else {
            axum::body::Body::from(body)
        };
        let resp = router
            .oneshot(http::Request::from_parts(parts, body))
            .await
            .map_err(|e| unreachable(&e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| unreachable(&e.to_string()))?
            .to_bytes();
        if cut {
            return Err(unreachable("connection reset mid-request"));
        }
        Ok(http::Response::from_parts(parts, bytes))
    }
}

#[async_trait]
impl Transport for SimNet {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>, ClientError> {
        // The route, ids left out (they are random; the trace must replay exactly).
        let route: Vec<&str> = req
            .uri()
            .path()
            .split('/')
            .map(|s| {
                if s.len() >= 32 || s.parse::<u32>().is_ok() {
                    "{id}"
                } else {
                    s
                }
            })
            .collect();
        let what = format!("{} {}", req.method(), route.join("/"));
        {
            let mut c = self.crash_after.lock().unwrap();
            if let Some(n) = c.as_mut() {
                if *n == 0 {
                    *c = None;
                    self.note(format!("  crash at {what}"));
                    return Err(unreachable("client crashed"));
                }
                *n -= 1;
            }
        }
        if !self.faults_on.load(Ordering::SeqCst) {
            return self.call(req, false).await;
        }
        let r = self.roll();
        let f = FAULTS;
        let mut t = f.drop;
        if r < t {
            self.note(format!("  drop {what}"));
            return Err(unreachable("request dropped"));
        }
        t += f.throttle;
        if r < t {
            self.note(format!("  429 {what}"));
            return Ok(error_response(
                429,
                "rate_limited",
                Some(1 + (r * 1000.0) as u64 % 5),
            ));
        }
        t += f.unavailable;
        if r < t {
            self.note(format!("  503 {what}"));
            return Ok(error_response(503, "internal", None));
        }
        t += f.lose_answer;
        if r < t {
            self.note(format!("  lost answer {what}"));
            let _ = self.call(req, false).await;
            return Err(unreachable("answer lost"));
        }
        t += f.duplicate;
        if r < t {
            self.note(format!("  duplicate {what}"));
            let (parts, body) = req.into_parts();
            let again = http::Request::from_parts(parts.clone(), body.clone());
            let _ = self.call(again, false).await;
            return self
                .call(http::Request::from_parts(parts, body), false)
                .await;
        }
        t += f.cut_body;
        if r < t && req.body().len() > 1024 {
            self.note(format!("  cut {what}"));
            return self.call(req, true).await;
        }
        self.call(req, false).await
    }
}

struct SimDevice {
    name: &'static str,
    dir: tempfile::TempDir,
    vault: Arc<Vault>,
    tokens: Arc<MemoryTokens>,
    engine: Option<SyncEngine>,
}

fn vault_options(clock: &Arc<ManualClock>) -> VaultOptions {
    VaultOptions {
        kdf: Some(labvault_core::KdfParams::FLOOR),
        clock: clock.clone(),
        actor: "sim".into(),
        user_agent: "labvault-sim".into(),
    }
}

struct Sim {
    seed: u64,
    rng: StdRng,
    clock: Arc<ManualClock>,
    net: Arc<SimNet>,
    server_dir: tempfile::TempDir,
    devices: Vec<SimDevice>,
    project: String,
    /// Content hashes of every version imported, and of those a purge named.
    created: BTreeSet<String>,
    erasable: BTreeSet<String>,
    counter: u32,
    /// The PI's TOTP secret (admin actions step up with it).
    totp: Vec<u8>,
}

/// Devices 0-2 are the PI's; device 3 is the postdoc's (it only syncs: a removal erases its
/// copy, so it holds nothing of its own to lose).
const POSTDOC: usize = 3;
const POSTDOC_EMAIL: &str = "postdoc@lab.test";

fn email(d: usize) -> &'static str {
    if d == POSTDOC {
        POSTDOC_EMAIL
    } else {
        "pi@lab.test"
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn client(net: &Arc<SimNet>) -> TenantClient {
    let t: Arc<dyn Transport> = net.clone();
    TenantClient::with_transport(URL, t).unwrap()
}

impl Sim {
    async fn new(seed: u64) -> Sim {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-06-01 08:00 UTC),
        ));
        let server_dir = scratch();
        let data = DataDir::create(server_dir.path()).unwrap();
        let state = open_state(&data, server_config(), clock.clone()).unwrap();
        create_tenant(
            &state,
            NewTenant {
                slug: "lab".into(),
                name: "Sim lab".into(),
                plan: labvault_wire::PlanTier::Professional,
                owner_email: "pi@lab.test".into(),
                owner_password: labvault_server::secrets::Secret::new(PW.into()),
            },
        )
        .await
        .unwrap();
        let net = Arc::new(SimNet {
            router: Mutex::new(labvault_server::api::router(state)),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
            faults_on: AtomicBool::new(false),
            crash_after: Mutex::new(None),
            trace: Mutex::new(Vec::new()),
        });
        let mut sim = Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            clock,
            net,
            server_dir,
            devices: Vec::new(),
            project: String::new(),
            created: BTreeSet::new(),
            erasable: BTreeSet::new(),
            counter: 0,
            totp: Vec::new(),
        };
        for name in ["a", "b", "c", "d"] {
            let dir = scratch();
            let (v, _) = Vault::create(
                &dir.path().join("vault"),
                &Passphrase::new(PASS.into()),
                vault_options(&sim.clock),
            )
            .unwrap();
            sim.devices.push(SimDevice {
                name,
                dir,
                vault: Arc::new(v),
                tokens: Arc::new(MemoryTokens::default()),
                engine: None,
            });
        }
        sim.project = sim.devices[0].vault.create_project("Sim").unwrap().id;
        for d in 0..3 {
            sim.login(d).await;
        }
        // Setup without faults: a syncs, b and c are approved by a and catch up.
        sim.pass(0).await.unwrap();
        for d in 1..3 {
            let code = match sim.pass(d).await {
                Err(SyncError::NotApproved(c)) => c,
                other => panic!("seed {seed}: pairing: {other:?}"),
            };
            sim.engine(0).await;
            let e = sim.devices[0].engine.as_ref().unwrap();
            labvault_sync::keys::approve(&sim.devices[0].vault, e.session(), &code)
                .await
                .unwrap();
            sim.pass(d).await.unwrap();
        }
        // The postdoc joins the tenant; the PI enrols MFA and shares the project with them.
        let c = client(&sim.net);
        sim.engine(0).await;
        let s = sim.devices[0].engine.as_ref().unwrap().session();
        let inv = s
            .call(|t| {
                let c = c.clone();
                async move {
                    c.create_invitation(
                        &t,
                        &labvault_wire::InvitationRequest {
                            email: POSTDOC_EMAIL.into(),
                            role: labvault_wire::Role::Editor,
                            expires_in_hours: None,
                        },
                    )
                    .await
                }
            })
            .await
            .unwrap();
        c.accept_invitation(&labvault_wire::AcceptInvitationRequest {
            token: inv.token,
            password: PW.into(),
        })
        .await
        .unwrap();
        let e = s
            .call(|t| {
                let c = c.clone();
                async move { c.mfa_enroll(&t).await }
            })
            .await
            .unwrap();
        sim.totp = labvault_server::totp::base32_decode(&e.secret_base32).unwrap();
        let code = sim.totp_code();
        let s = sim.devices[0].engine.as_ref().unwrap().session();
        s.call(|t| {
            let (c, code) = (c.clone(), code.clone());
            async move { c.mfa_confirm(&t, &code).await }
        })
        .await
        .unwrap();
        sim.login(POSTDOC).await;
        sim.pass(POSTDOC).await.unwrap();
        sim.add_postdoc().await.unwrap();
        sim.pass(POSTDOC).await.unwrap();
        assert!(
            sim.devices[POSTDOC].vault.project("Sim").is_ok(),
            "seed {seed}: the postdoc has the project"
        );
        sim
    }

    /// A TOTP code of the PI a moment later (each code is used once).
    fn totp_code(&mut self) -> String {
        self.clock.advance(time::Duration::seconds(31));
        let now = labvault_core::Clock::now(self.clock.as_ref()).unix_timestamp();
        labvault_server::totp::code_at(&self.totp, now, 6)
    }

    /// Device 0's session, stepped up for an admin action.
    async fn admin(&mut self) -> Result<(), SyncError> {
        let code = self.totp_code();
        self.engine(0).await;
        let s = self.devices[0].engine.as_ref().unwrap().session();
        s.step_up(&code).await
    }

    async fn add_postdoc(&mut self) -> Result<(), SyncError> {
        self.admin().await?;
        let e = self.devices[0].engine.as_ref().unwrap();
        labvault_sync::sharing::share(
            &self.devices[0].vault,
            e.session(),
            &self.project,
            POSTDOC_EMAIL,
            "editor",
        )
        .await
        .map(|_| ())
    }

    async fn remove_postdoc(&mut self) -> Result<Option<u32>, SyncError> {
        self.admin().await?;
        let e = self.devices[0].engine.as_ref().unwrap();
        labvault_sync::sharing::unshare(
            &self.devices[0].vault,
            e.session(),
            &self.project,
            POSTDOC_EMAIL,
        )
        .await
    }

    /// Whether the postdoc is a member, by the log device 0 verified.
    fn postdoc_member(&self) -> bool {
        self.devices[0]
            .vault
            .sync_membership(&self.project)
            .unwrap()
            .is_some_and(|v| v.members.len() == 2)
    }

    async fn login(&mut self, d: usize) {
        let dev = &self.devices[d];
        dev.vault
            .set_sync_remote(
                URL,
                &format!("sha256/{}", base64_of([0u8; 32])),
                Some("lab"),
            )
            .unwrap();
        let tokens: Arc<dyn TokenStore> = dev.tokens.clone();
        let c = client(&self.net);
        let vault_id = dev.vault.vault_id().to_string();
        let login = |code: Option<String>| {
            let (c, tokens, vault_id) = (c.clone(), tokens.clone(), vault_id.clone());
            async move {
                Session::login(c, &vault_id, tokens, "lab", email(d), PW, code.as_deref())
                    .await
                    .unwrap()
            }
        };
        let s = match login(None).await {
            LoginOutcome::SignedIn(s) => *s,
            LoginOutcome::MfaNeeded => {
                let code = self.totp_code();
                match login(Some(code)).await {
                    LoginOutcome::SignedIn(s) => *s,
                    LoginOutcome::MfaNeeded => unreachable!(),
                }
            }
        };
        let dev = &self.devices[d];
        let me = s
            .call(|t| {
                let c = c.clone();
                async move { c.me(&t).await }
            })
            .await
            .unwrap();
        dev.vault.sync_signed_in("lab", email(d), &me.id).unwrap();
    }

    async fn engine(&mut self, d: usize) -> &SyncEngine {
        if self.devices[d].engine.is_none() {
            let tokens: Arc<dyn TokenStore> = self.devices[d].tokens.clone();
            let s = match Session::resume(
                client(&self.net),
                self.devices[d].vault.vault_id(),
                tokens.clone(),
            ) {
                Ok(s) => s,
                Err(SyncError::NotSignedIn(_)) => {
                    // The tenant ended the session (a refresh whose every answer was lost):
                    // the user signs in again.
                    self.trace(format!("  {} signs in again", self.devices[d].name));
                    self.login(d).await;
                    Session::resume(client(&self.net), self.devices[d].vault.vault_id(), tokens)
                        .unwrap()
                }
                Err(e) => panic!("seed {}: {e:?}", self.seed),
            };
            let dev = &self.devices[d];
            let seed = self.rng.gen::<u64>();
            let rng = Mutex::new(StdRng::seed_from_u64(seed));
            let cfg = EngineConfig {
                parallel: 1,
                commit_batch: 7,
                stage_batch: 9,
                page_limit: 6,
                part_size: 4096,
                pack_target: 8192,
                small_blob_max: 6000,
                anchor_every_events: 25,
                ..EngineConfig::default()
            };
            let e = SyncEngine::new(dev.vault.clone(), s, cfg)
                .unwrap()
                .with_random(move || rng.lock().unwrap().gen());
            self.devices[d].engine = Some(e);
        }
        self.devices[d].engine.as_ref().unwrap()
    }

    async fn pass(&mut self, d: usize) -> Result<labvault_sync::PassReport, SyncError> {
        self.engine(d).await;
        let e = self.devices[d].engine.as_ref().unwrap();
        e.pass(None).await
    }

    fn trace(&self, s: String) {
        self.net.note(s);
    }

    fn tick(&mut self) {
        let ms = self.rng.gen_range(1..2000);
        self.clock.advance(time::Duration::milliseconds(ms));
    }

    fn active_items(&self, d: usize) -> Vec<labvault_core::ItemInfo> {
        self.devices[d]
            .vault
            .list(&labvault_core::ListFilter::default())
            .unwrap()
    }

    fn content(&mut self, d: usize, large: bool) -> Vec<u8> {
        self.counter += 1;
        let n = if large {
            self.rng.gen_range(7000..20000)
        } else {
            self.rng.gen_range(0..3000)
        };
        let mut v = format!(
            "seed {} file {} from {}\n",
            self.seed, self.counter, self.devices[d].name
        )
        .into_bytes();
        let mut r =
            StdRng::seed_from_u64(self.seed.wrapping_mul(31).wrapping_add(self.counter as u64));
        v.extend((0..n).map(|_| r.gen::<u8>()));
        v
    }

    fn import(&mut self, d: usize, path: &str, bytes: &[u8]) {
        let dev = &self.devices[d];
        let src = dev.dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let file = src.join(path.rsplit('/').next().unwrap());
        std::fs::write(&file, bytes).unwrap();
        let prefix = path.rsplit_once('/').map(|(p, _)| p.to_string());
        let r = dev.vault.import(
            &self.project,
            Area::Uploads,
            &[file],
            &ImportOptions {
                dest_prefix: prefix,
                ..ImportOptions::default()
            },
            &mut |_| {},
            &AtomicBool::new(false),
        );
        match r {
            Ok(rep) if rep.imported.len() == 1 => {
                self.created.insert(sha(bytes));
            }
            // Offline past the lab's lease: the shared project is locked until a sync.
            Err(e) if e.code() == labvault_core::ErrorCode::ProjectLocked => {
                self.net
                    .note(format!("  {}: locked ({})", dev.name, e.code()));
            }
            other => panic!("seed {}: import on {}: {other:?}", self.seed, dev.name),
        }
    }

    /// One step: a user action, a sync, or a fault of the world.
    async fn step(&mut self, n: usize) {
        const NAMES: [&str; 6] = [
            "data.csv",
            "run/a.txt",
            "run/b.txt",
            "plot.png",
            "notes.md",
            "big.bin",
        ];
        self.tick();
        let d = self.rng.gen_range(0..4);
        let name = self.devices[d].name;
        let mut roll = self.rng.gen_range(0..100);
        if d == POSTDOC && roll <= 41 {
            // The postdoc's device only syncs (see [`POSTDOC`]).
            roll = 99;
        }
        match roll {
            0..=17 => {
                let path = NAMES[self.rng.gen_range(0..NAMES.len())];
                let large = path == "big.bin" && self.rng.gen_bool(0.5);
                let bytes = self.content(d, large);
                self.trace(format!("{n} {name}: import {path} ({})", &sha(&bytes)[..6]));
                self.import(d, path, &bytes);
            }
            18..=25 => {
                let items = self.active_items(d);
                if let Some(it) = pick(&mut self.rng, &items) {
                    let to = NAMES[self.rng.gen_range(0..NAMES.len())];
                    let r =
                        self.devices[d]
                            .vault
                            .move_item(&it.id, None, Some(&format!("moved/{to}")));
                    self.trace(format!(
                        "{n} {name}: rename -> {}",
                        r.as_ref()
                            .map(|_| "ok")
                            .unwrap_or_else(|e| e.code().as_str())
                    ));
                }
            }
            26..=31 => {
                let items = self.active_items(d);
                if let Some(it) = pick(&mut self.rng, &items) {
                    let r = self.devices[d].vault.soft_delete(&it.id);
                    self.trace(format!(
                        "{n} {name}: delete -> {}",
                        r.as_ref()
                            .map(|_| "ok")
                            .unwrap_or_else(|e| e.code().as_str())
                    ));
                }
            }
            32..=35 => {
                let deleted = self.devices[d]
                    .vault
                    .list(&labvault_core::ListFilter {
                        state: Some(ItemState::SoftDeleted),
                        ..Default::default()
                    })
                    .unwrap();
                if let Some(it) = pick(&mut self.rng, &deleted) {
                    let r = self.devices[d].vault.restore(&it.id);
                    self.trace(format!(
                        "{n} {name}: restore -> {}",
                        r.as_ref()
                            .map(|_| "ok")
                            .unwrap_or_else(|e| e.code().as_str())
                    ));
                }
            }
            36..=37 => {
                let items = self.active_items(d);
                if let Some(it) = pick(&mut self.rng, &items) {
                    // Everything this device knows of the item may be erased.
                    let known: Vec<String> = self.devices[d]
                        .vault
                        .sync_catalog()
                        .unwrap()
                        .into_iter()
                        .filter(|c| c.item_id == it.id)
                        .flat_map(|c| c.versions.into_iter().map(|v| v.1))
                        .collect();
                    let r = self.devices[d].vault.purge(&it.id, "right to deletion");
                    if r.is_ok() {
                        self.erasable.extend(known);
                    }
                    self.trace(format!(
                        "{n} {name}: purge -> {}",
                        r.as_ref()
                            .map(|_| "ok")
                            .unwrap_or_else(|e| e.code().as_str())
                    ));
                }
            }
            38..=39 => {
                let items = self.active_items(d);
                if let Some(it) = pick(&mut self.rng, &items) {
                    let target = labvault_core::retention::HoldTarget::Item(it.id.clone());
                    let r = if self.rng.gen_bool(0.5) {
                        self.devices[d]
                            .vault
                            .hold_set(&target, "sim audit")
                            .map(|_| ())
                    } else {
                        self.devices[d].vault.hold_clear(&target).map(|_| ())
                    };
                    self.trace(format!(
                        "{n} {name}: hold -> {}",
                        r.as_ref()
                            .map(|_| "ok")
                            .unwrap_or_else(|e| e.code().as_str())
                    ));
                }
            }
            40..=41 => {
                let c = self.devices[d].vault.sync_conflicts().unwrap();
                if let Some(x) = c.first() {
                    let keep = x.siblings[0].0;
                    let r = self.devices[d]
                        .vault
                        .sync_resolve_conflict(&x.item.id, keep);
                    self.trace(format!(
                        "{n} {name}: resolve -> {}",
                        r.as_ref()
                            .map(|_| "ok")
                            .unwrap_or_else(|e| e.code().as_str())
                    ));
                }
            }
            42..=75 => {
                self.net.faults_on.store(true, Ordering::SeqCst);
                let r = self.pass(d).await;
                self.net.faults_on.store(false, Ordering::SeqCst);
                self.trace(format!("{n} {name}: sync -> {}", summary(&r)));
                if let Err(SyncError::NotSignedIn(_)) = r {
                    // Every try of a refresh lost its answer: the tenant saw the token reused
                    // and ended the session. The user signs in again; nothing is lost.
                    self.trace(format!("{n} {name}: signs in again"));
                    self.login(d).await;
                    self.devices[d].engine = None;
                } else if let Err(e) = r {
                    // Transient and refused errors end a pass; nothing else may happen here.
                    assert!(
                        matches!(e, SyncError::Client(_)),
                        "seed {}: {name}: unexpected sync error {e:?} (replay: LABVAULT_SIM_SEED={} cargo test -p labvault-sync --test sync sim::replay)",
                        self.seed,
                        self.seed
                    );
                }
            }
            80..=85 => {
                // The client crashes mid-pass (at a random request) and restarts from disk.
                let at = self.rng.gen_range(0..12);
                *self.net.crash_after.lock().unwrap() = Some(at);
                let r = self.pass(d).await;
                *self.net.crash_after.lock().unwrap() = None;
                self.trace(format!(
                    "{n} {name}: crash mid-sync ({}) and restart",
                    summary(&r)
                ));
                self.restart_device(d);
                if let Err(SyncError::NotSignedIn(_)) = r {
                    self.login(d).await;
                }
            }
            86..=88 => {
                self.trace(format!("{n}: server restart"));
                self.restart_server();
            }
            89..=94 => {
                let h = self.rng.gen_range(1..72);
                self.trace(format!("{n}: {h} h pass offline"));
                self.clock.advance(time::Duration::hours(h));
            }
            95..=96 => {
                self.trace(format!("{n}: uploads left idle expire"));
                self.clock.advance(time::Duration::days(8));
                let state = self.server_state();
                labvault_server::gc::sweep_blobs(&state).await.unwrap();
                // Eight days offline: every device signs in again where its session lapsed.
            }
            76 | 77 | 97 if d != POSTDOC => {
                // Any PI device rotates the key (no step-up needed), under faults.
                self.net.faults_on.store(true, Ordering::SeqCst);
                self.engine(d).await;
                let e = self.devices[d].engine.as_ref().unwrap();
                let r = labvault_sync::sharing::rotate_now(
                    &self.devices[d].vault,
                    e.session(),
                    &self.project,
                )
                .await;
                self.net.faults_on.store(false, Ordering::SeqCst);
                self.trace(format!(
                    "{n} {name}: rotate -> {}",
                    r.as_ref()
                        .map(|e| format!("epoch {e}"))
                        .unwrap_or_else(|e| e.code().to_string())
                ));
            }
            78 | 98 if self.postdoc_member() => {
                self.net.faults_on.store(true, Ordering::SeqCst);
                let r = self.remove_postdoc().await;
                self.net.faults_on.store(false, Ordering::SeqCst);
                self.trace(format!(
                    "{n}: the postdoc is removed -> {}",
                    r.as_ref()
                        .map(|e| format!("{e:?}"))
                        .unwrap_or_else(|e| e.code().to_string())
                ));
            }
            78 | 79 | 98 | 99 if !self.postdoc_member() => {
                self.net.faults_on.store(true, Ordering::SeqCst);
                let r = self.add_postdoc().await;
                self.net.faults_on.store(false, Ordering::SeqCst);
                self.trace(format!(
                    "{n}: the postdoc is added again -> {}",
                    r.as_ref()
                        .map(|_| "ok".to_string())
                        .unwrap_or_else(|e| e.code().to_string())
                ));
            }
            _ => {
                self.trace(format!("{n} {name}: nothing"));
            }
        }
    }

    fn server_state(&self) -> labvault_server::AppState {
        let data = DataDir(self.server_dir.path().to_path_buf());
        // A second handle on the same database (the router keeps its own); used for the
        // server's own sweeper pass.
        open_state(&data, server_config(), self.clock.clone()).unwrap()
    }

    fn restart_server(&mut self) {
        let state = self.server_state();
        *self.net.router.lock().unwrap() = labvault_server::api::router(state);
    }

    fn restart_device(&mut self, d: usize) {
        // Unlocking runs the retention pass: soft-deleted items past their 30-day grace are
        // erased then, legitimately.
        let now = labvault_core::Clock::now(self.clock.as_ref());
        let due: BTreeSet<String> = self.devices[d]
            .vault
            .list(&labvault_core::ListFilter {
                state: Some(ItemState::SoftDeleted),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .filter(|i| {
                i.deleted_at
                    .is_some_and(|t| t + time::Duration::days(30) <= now)
            })
            .map(|i| i.id)
            .collect();
        for c in self.devices[d].vault.sync_catalog().unwrap() {
            if due.contains(&c.item_id) {
                self.erasable.extend(c.versions.into_iter().map(|v| v.1));
            }
        }
        let dev = &mut self.devices[d];
        dev.engine = None;
        dev.vault.shutdown();
        let v = Vault::unlock(
            &dev.dir.path().join("vault"),
            Unlock::Passphrase(&Passphrase::new(PASS.into())),
            vault_options(&self.clock),
        )
        .unwrap();
        dev.vault = Arc::new(v);
    }

    /// Faults off; every device syncs (confirming held-back deletions) until nothing moves.
    async fn quiesce(&mut self) {
        self.net.faults_on.store(false, Ordering::SeqCst);
        // Device 0 reads the log as the tenant has it; the postdoc is a member again.
        self.clock.advance(time::Duration::minutes(10));
        match self.pass(0).await {
            Ok(_) => {}
            Err(SyncError::NotSignedIn(_)) => {
                self.login(0).await;
                self.devices[0].engine = None;
                self.pass(0)
                    .await
                    .unwrap_or_else(|e| panic!("seed {}: quiet pass of a: {e:?}", self.seed));
            }
            Err(e) => panic!("seed {}: quiet pass of a: {e:?}", self.seed),
        }
        if !self.postdoc_member() {
            self.add_postdoc()
                .await
                .unwrap_or_else(|e| panic!("seed {}: adding the postdoc: {e:?}", self.seed));
        }
        for round in 0..30 {
            let mut moved = false;
            for d in 0..4 {
                self.tick();
                // A long quiet time: every back-off is over.
                self.clock.advance(time::Duration::minutes(10));
                for p in self.devices[d].vault.sync_projects().unwrap() {
                    self.devices[d]
                        .vault
                        .sync_confirm_deletes(&p.project_id)
                        .unwrap();
                }
                let r = self.pass(d).await;
                self.trace(format!(
                    "quiet {round} {}: sync -> {}",
                    self.devices[d].name,
                    summary(&r)
                ));
                let r = match r {
                    Ok(r) => r,
                    Err(SyncError::NotSignedIn(_)) => {
                        self.login(d).await;
                        self.devices[d].engine = None;
                        moved = true;
                        continue;
                    }
                    Err(e) => panic!(
                        "seed {}: round {round}: {}: {e:?}",
                        self.seed, self.devices[d].name
                    ),
                };
                assert!(
                    r.errors.is_empty(),
                    "seed {}: quiet sync of {} reported {:?}",
                    self.seed,
                    self.devices[d].name,
                    r.errors
                );
                if r.pulled + r.pushed > 0 || r.pending > 0 {
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("seed {}: devices did not settle in 30 rounds", self.seed);
    }

    async fn check(&mut self) {
        let seed = self.seed;
        let cats: Vec<_> = self
            .devices
            .iter()
            .map(|d| d.vault.sync_catalog().unwrap())
            .collect();
        for (d, c) in cats.iter().enumerate().skip(1) {
            assert_eq!(
                &cats[0], c,
                "seed {seed}: device {} differs from a",
                self.devices[d].name
            );
        }
        let epochs: Vec<_> = self
            .devices
            .iter()
            .map(|d| {
                d.vault
                    .sync_membership(&self.project)
                    .unwrap()
                    .map(|v| (v.epoch, v.length))
            })
            .collect();
        assert!(
            epochs.iter().all(|e| e.is_some() && *e == epochs[0]),
            "seed {seed}: devices verified different membership logs: {epochs:?}"
        );
        // Nothing lost, nothing duplicated.
        let mut live: BTreeMap<String, u32> = BTreeMap::new();
        for e in &cats[0] {
            for v in e.versions.iter().filter(|v| !v.4) {
                *live.entry(v.1.clone()).or_default() += 1;
            }
        }
        for s in &self.created {
            if !live.contains_key(s) {
                assert!(
                    self.erasable.contains(s),
                    "seed {seed}: a version ({s}) was lost without a purge naming it"
                );
            }
        }
        for (s, n) in &live {
            assert_eq!(*n, 1, "seed {seed}: version {s} exists {n} times");
        }
        for d in &self.devices {
            let r = d
                .vault
                .verify(&mut |_| {}, &AtomicBool::new(false))
                .unwrap();
            assert!(
                r.is_ok(),
                "seed {seed}: {} verify: {:?}",
                d.name,
                r.problems
            );
            for s in d.vault.sync_status().unwrap() {
                assert_eq!(
                    (s.pending_ops, s.changed_items, s.parked.len()),
                    (0, 0, 0),
                    "seed {seed}: {} outbox of {}",
                    d.name,
                    s.name
                );
                assert!(
                    s.stopped.is_none(),
                    "seed {seed}: {} stopped {:?}",
                    d.name,
                    s.stopped
                );
            }
            d.vault.audit_verify(&mut |_, _| {}).unwrap();
        }
        // The tenant's feed: gap-free, each op once.
        let state = self.server_state();
        let tenant = state.store.tenant_by_slug("lab").await.unwrap().id;
        let (ops, feed) = state
            .sync
            .changes(&tenant, &self.project, 0, 100_000)
            .await
            .unwrap();
        assert_eq!(ops.len() as u64, feed.head_seq, "seed {seed}: feed length");
        let mut ids = BTreeSet::new();
        for (i, o) in ops.iter().enumerate() {
            assert_eq!(o.seq, i as u64 + 1, "seed {seed}: gap in the feed");
            assert!(
                ids.insert(o.op_id.clone()),
                "seed {seed}: op {} twice",
                o.op_id
            );
        }
    }
}

fn base64_of(b: [u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn pick<'a, T>(rng: &mut StdRng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        Some(&v[rng.gen_range(0..v.len())])
    }
}

fn summary(r: &Result<labvault_sync::PassReport, SyncError>) -> String {
    match r {
        Ok(r) => format!(
            "pulled {} pushed {} conflicts {} errors {}",
            r.pulled,
            r.pushed,
            r.conflicts,
            r.errors.len()
        ),
        Err(e) => format!("error {}", e.code()),
    }
}

/// Runs one seed; returns its trace (actions, faults and outcomes, no random ids).
async fn run(seed: u64, steps: usize) -> Vec<String> {
    let mut sim = Sim::new(seed).await;
    for n in 0..steps {
        sim.step(n).await;
    }
    sim.quiesce().await;
    sim.check().await;
    let t = sim.net.trace.lock().unwrap().clone();
    t
}

fn seeds(from: u64, n: u64) -> impl Iterator<Item = u64> {
    let sweep: u64 = std::env::var("LABVAULT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let n = if sweep > 0 { sweep / 4 } else { n };
    (0..n).map(move |i| from + i * 4)
}

async fn sweep(lane: u64) {
    for seed in seeds(lane, 50) {
        run(seed, 60).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn seeds_lane_0() {
    sweep(0).await;
}

#[tokio::test(flavor = "current_thread")]
async fn seeds_lane_1() {
    sweep(1).await;
}

#[tokio::test(flavor = "current_thread")]
async fn seeds_lane_2() {
    sweep(2).await;
}

#[tokio::test(flavor = "current_thread")]
async fn seeds_lane_3() {
    sweep(3).await;
}

/// The same seed gives the same run, step by step (so a failure replays exactly).
#[tokio::test(flavor = "current_thread")]
async fn a_seed_replays_exactly() {
    let a = run(424242, 40).await;
    let b = run(424242, 40).await;
    assert_eq!(a, b);
    assert!(a.iter().any(|l| l.contains("sync ->")));
}

/// `LABVAULT_SIM_SEED=<seed>`: replays one seed with its trace printed.
#[tokio::test(flavor = "current_thread")]
async fn replay() {
    let Some(seed) = std::env::var("LABVAULT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return;
    };
    let steps = std::env::var("LABVAULT_SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    for line in run(seed, steps).await {
        println!("{line}");
    }
}
