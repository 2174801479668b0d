//! End-to-end: the real LabVault app, driven through WebDriver like a scientist would use it.
//!
//! Chain: this test -> `tauri-driver` -> Debian's `WebKitWebDriver` -> the app binary cargo built
//! for this test, on an X display (Xvfb is started here when `DISPLAY` is unset). HOME and the XDG
//! directories point at a temp dir, so the user's real vault is never looked at.
//!
//! Build: `npm --prefix ui run build`, then
//! `cargo test --features labvault-app/custom-protocol,labvault-app/e2e-hooks -- e2e_`.
//! `custom-protocol` serves the embedded `ui/dist`; `e2e-hooks` makes the file dialogs return the
//! paths in `LABVAULT_E2E_*` and writes the one-time recovery key to a file instead of a native
//! dialog (everything else is the real app). Skips loudly when it cannot run; with `CI=true` a
//! missing piece is a failure instead. `LABVAULT_UPDATE_SCREENSHOTS=1` refreshes
//! `docs/screenshots/` from this run.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{tid, Cond, Harness, Session, LONG, SHORT};
use serde_json::json;

const PASSPHRASE: &str = "Kelp forest 7 tide pools, quietly";
/// The passphrase a project bundle is sealed with for an archive.
const BUNDLE_PASSPHRASE: &str = "Archive shelf 12, box of plankton nets";
/// The lab account's password on the tenant (never stored by the app; only the keyring token).
const LAB_PASSWORD: &str = "Tidal-Gauge-4417";
const WRONG_PASSPHRASE: &str = "Kelp forest 7 tide pools, loudly";
const PROJECT: &str = "plankton-2026";

/// Fails unless no secret string is anywhere in the page: markup, attributes, or the live value
/// of any input (React keeps controlled values in properties, not always in the markup).
fn assert_no_secret_in_dom(s: &Session, secrets: &[&str], when: &str) {
    let found = s.script(
        "const html = document.documentElement.outerHTML;
         const values = Array.from(document.querySelectorAll('input, textarea'))
             .map(i => i.value).join('\\n');
         return arguments[0].filter(x => html.includes(x) || values.includes(x)).length;",
        json!([secrets]),
    );
    if found != json!(0) {
        s.fail(&format!(
            "{found} secret string(s) are still in the DOM {when} (markup or an input's value)"
        ));
    }
}

const STEP_UP_WINDOW_SECS: i64 = 3;

/// The lab's tenant server, in this process (TLS on 127.0.0.1:0, its own data directory outside
/// the app's HOME): the PI (Owner, TOTP enrolled) and Ann (Editor), and a project that lives
/// only on the tenant (its access comes from roles, not from a signed membership log).
struct Lab {
    rt: tokio::runtime::Runtime,
    server: std::sync::Mutex<Option<labvault_server::RunningServer>>,
    data: labvault_server::DataDir,
    clock: Arc<ShiftedClock>,
    _dir: tempfile::TempDir,
    port: u16,
    url: String,
    pin: String,
    totp_secret: Vec<u8>,
    recovery_codes: Vec<String>,
    tenant_project: String,
}

/// A member who joined the lab long ago and has not been seen since (stale in the review).
const STALE_MEMBER: &str = "old@lab.test";
/// Ann, an Editor of the lab, who works on a second device through the `labvault` CLI.
const ANN: &str = "ann@lab.test";

/// The server's wall clock, shifted while the test sets up a member "200 days ago".
#[derive(Default)]
struct ShiftedClock(std::sync::atomic::AtomicI64);

impl labvault_server::clock::Clock for ShiftedClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
            + time::Duration::seconds(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

fn lab_config() -> labvault_server::Config {
    // A step-up counts for 3 s here (minutes in production), so the sign-in's own MFA
    // verification has lapsed when the test changes a role and the step-up prompt shows.
    labvault_server::Config {
        kdf: labvault_server::secrets::KdfParams::TEST,
        step_up_window: STEP_UP_WINDOW_SECS,
        ..labvault_server::Config::default()
    }
}

impl Lab {
    fn start() -> Lab {
        use labvault_server::secrets::Secret;
        use labvault_server::{
            create_tenant, open_state, server::self_signed, start, DataDir, NewTenant,
        };
        use labvault_wire::{
            AcceptInvitationRequest, InvitationRequest, LoginRequest, LoginResponse, PlanTier, Role,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::create(dir.path()).unwrap();
        let clock = Arc::new(ShiftedClock::default());
        let state = open_state(&data, lab_config(), clock.clone()).unwrap();
        let (server, secret, codes, project) = rt.block_on(async {
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
                    name: "Plankton lab".into(),
                    plan: PlanTier::Professional,
                    owner_email: "pi@lab.test".into(),
                    owner_password: Secret::new(LAB_PASSWORD.into()),
                },
            )
            .await
            .unwrap();
            let api = labvault_client::TenantClient::new(
                &format!("https://127.0.0.1:{}", server.addr.port()),
                labvault_client::Pin::parse(&server.pin).unwrap(),
                Default::default(),
            )
            .unwrap();
            // A Viewer who joined 200 days ago and has not been active since.
            clock
                .0
                .store(-200 * 86_400, std::sync::atomic::Ordering::SeqCst);
            let LoginResponse::Ok(then) = api
                .login(&LoginRequest {
                    tenant: "lab".into(),
                    email: "pi@lab.test".into(),
                    password: LAB_PASSWORD.into(),
                })
                .await
                .unwrap()
            else {
                panic!("no MFA yet")
            };
            let inv = api
                .create_invitation(
                    &then.access_token,
                    &InvitationRequest {
                        email: STALE_MEMBER.into(),
                        role: Role::Viewer,
                        expires_in_hours: None,
                    },
                )
                .await
                .unwrap();
            api.accept_invitation(&AcceptInvitationRequest {
                token: inv.token,
                password: LAB_PASSWORD.into(),
            })
            .await
            .unwrap();
            clock.0.store(0, std::sync::atomic::Ordering::SeqCst);
            let login = LoginRequest {
                tenant: "lab".into(),
                email: "pi@lab.test".into(),
                password: LAB_PASSWORD.into(),
            };
            let LoginResponse::Ok(pair) = api.login(&login).await.unwrap() else {
                panic!("no MFA yet")
            };
            let token = pair.access_token;
            let inv = api
                .create_invitation(
                    &token,
                    &InvitationRequest {
                        email: ANN.into(),
                        role: Role::Editor,
                        expires_in_hours: None,
                    },
                )
                .await
                .unwrap();
            api.accept_invitation(&AcceptInvitationRequest {
                token: inv.token,
                password: LAB_PASSWORD.into(),
            })
            .await
            .unwrap();
            let project = api
                .create_project(&token, "instrument-feed")
                .await
                .unwrap()
                .id;
            let enrolled = api.mfa_enroll(&token).await.unwrap();
            let secret = labvault_server::totp::base32_decode(&enrolled.secret_base32).unwrap();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let code = labvault_server::totp::code_at(&secret, now, 6);
            let codes = api.mfa_confirm(&token, &code).await.unwrap().recovery_codes;
            (server, secret, codes, project)
        });
        Lab {
            url: format!("https://127.0.0.1:{}", server.addr.port()),
            port: server.addr.port(),
            pin: server.pin.clone(),
            server: std::sync::Mutex::new(Some(server)),
            data,
            clock,
            rt,
            _dir: dir,
            totp_secret: secret,
            recovery_codes: codes,
            tenant_project: project,
        }
    }

    /// The authenticator's code for the next 30-second step (the enrolment used the current
    /// one, and a code is accepted once).
    fn next_code(&self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        labvault_server::totp::code_at(&self.totp_secret, now + 30, 6)
    }

    /// The tenant's audit events of `action` that succeeded (read with a recovery code).
    fn audit(&self, action: &str, recovery_code: &str) -> Vec<labvault_wire::AuditEvent> {
        use labvault_wire::{AuditQuery, LoginRequest, LoginResponse, MfaLoginRequest};
        self.rt.block_on(async {
            let api = labvault_client::TenantClient::new(
                &self.url,
                labvault_client::Pin::parse(&self.pin).unwrap(),
                Default::default(),
            )
            .unwrap();
            let LoginResponse::MfaRequired { mfa_token } = api
                .login(&LoginRequest {
                    tenant: "lab".into(),
                    email: "pi@lab.test".into(),
                    password: LAB_PASSWORD.into(),
                })
                .await
                .unwrap()
            else {
                panic!("the PI has MFA")
            };
            let pair = api
                .login_mfa(&MfaLoginRequest {
                    mfa_token,
                    code: recovery_code.into(),
                })
                .await
                .unwrap();
            api.audit(
                &pair.access_token,
                &AuditQuery {
                    action: Some(action.into()),
                    result: Some("success".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .events
        })
    }
}

impl Lab {
    /// Takes the tenant off the network (the devices are offline until [`Lab::restart`]).
    fn stop(&self) {
        let running = self.server.lock().unwrap().take();
        if let Some(s) = running {
            self.rt.block_on(s.stop());
        }
    }

    /// Brings the tenant back on the same address, certificate and data.
    fn restart(&self) {
        use labvault_server::{open_state, server::self_signed, start};
        let state = open_state(&self.data, lab_config(), self.clock.clone()).unwrap();
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let server = self
            .rt
            .block_on(start(addr, self_signed(&self.data).unwrap(), state))
            .unwrap();
        assert_eq!(
            server.pin, self.pin,
            "the restarted tenant keeps its certificate"
        );
        *self.server.lock().unwrap() = Some(server);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Completes the step-up prompt when the tenant asks for one (a recent one may still count),
/// then waits for `testid` to say `done`.
fn step_up_if_asked(s: &Session, code: &str, testid: &str, done: &str) {
    let deadline = Instant::now() + LONG;
    loop {
        let state = s.script(
            "const up = document.querySelector('[data-testid=\"step-up-code\"]');
             const el = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);
             if (up) return 'step-up';
             return el && el.textContent.includes(arguments[1]) ? 'done' : 'waiting';",
            json!([testid, done]),
        );
        match state.as_str() {
            Some("done") => return,
            Some("step-up") => {
                s.type_into("step-up-code", code);
                s.click("step-up-submit");
                s.wait(testid, Cond::Text(done), LONG);
                return;
            }
            _ if Instant::now() > deadline => s.fail(&format!(
                "neither a step-up prompt nor `{done}` in {testid}"
            )),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A second device: a vault of its own driven through the `labvault` binary, as a script would
/// (secrets from the environment, its own HOME, tokens in the session keyring).
struct Cli {
    bin: PathBuf,
    vault: PathBuf,
    home: PathBuf,
    user: &'static str,
}

impl Cli {
    /// The CLI cargo built beside the app (`cargo test --workspace` builds it; built here when
    /// this test runs alone).
    fn bin() -> PathBuf {
        let bin = Path::new(env!("CARGO_BIN_EXE_labvault-app")).with_file_name("labvault");
        if !bin.exists() {
            let st = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
                .args(["build", "-p", "labvault-cli", "--bin", "labvault"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(st.success(), "building the labvault CLI failed");
        }
        bin
    }

    /// A device of the OS account `user` with its vault under `dir`.
    fn new(dir: &Path, user: &'static str) -> Cli {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let c = Cli {
            bin: Cli::bin(),
            vault: dir.join("vault"),
            home,
            user,
        };
        let o = c
            .cmd()
            .env("LABVAULT_NEW_PASSPHRASE", PASSPHRASE)
            .env_remove("LABVAULT_PASSPHRASE")
            .arg("init")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "labvault init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        c
    }

    fn cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.arg("--vault")
            .arg(&self.vault)
            .arg("--no-keyring")
            .env("HOME", &self.home)
            .env("USER", self.user)
            .env("LABVAULT_KDF", "floor")
            .env("LABVAULT_PASSPHRASE", PASSPHRASE)
            .env(
                "LABVAULT_KEYRING_SERVICE",
                format!("org.labvault.e2e.{}.{}", self.user, std::process::id()),
            )
            .env("LABVAULT_TENANT_PASSWORD", LAB_PASSWORD)
            .env_remove("LABVAULT_VAULT")
            .stdin(std::process::Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd().args(args).output().unwrap();
        assert!(
            o.status.success(),
            "labvault {args:?} failed ({:?}): {}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Every live item as (project, area/path, SHA-256).
    fn listing(&self) -> Vec<(String, String, String)> {
        let v: Vec<serde_json::Value> = serde_json::from_str(&self.ok(&["ls", "--json"])).unwrap();
        v.iter()
            .map(|i| {
                (
                    i["project"].as_str().unwrap_or_default().to_string(),
                    format!(
                        "{}/{}",
                        i["area"].as_str().unwrap_or_default(),
                        i["path"].as_str().unwrap_or_default()
                    ),
                    i["sha256"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

/// Sets a `<select>` by test id the way a person's choice does (React sees a change event).
fn choose(s: &Session, testid: &str, value: &str) {
    s.script(
        "const el = document.querySelector(arguments[0]);
         el.value = arguments[1];
         el.dispatchEvent(new Event('change', { bubbles: true }));
         return null;",
        json!([tid(testid), value]),
    );
}

/// Clicks the row of the item whose path ends with `name` and waits for its details.
fn select_item(s: &Session, name: &str) {
    let row = format!("{}[data-path$=\"{name}\"]", tid("item-row"));
    s.click_css(&row);
    s.wait("item-details", Cond::Text(name), SHORT);
}

/// Waits until `path` holds exactly the bytes of `source` (an export may be written in place,
/// so a partial or preallocated file may be seen first; the hash is rechecked until it matches).
fn wait_same_file(s: &Session, path: &Path, source: &Path) {
    let want_len = std::fs::metadata(source).unwrap().len();
    let want = common::sha256_file(source);
    let start = Instant::now();
    loop {
        let len = std::fs::metadata(path).map(|m| m.len()).ok();
        if len == Some(want_len) && common::sha256_file(path) == want {
            return;
        }
        if start.elapsed() > LONG {
            let got = len.map(|_| common::sha256_file(path));
            s.fail(&format!(
                "exported {} never matched the source ({want_len} bytes, SHA-256 {want}); \
                 it has {len:?} bytes, SHA-256 {got:?}",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Fetches `url` from inside the page (as the UI does) and reports status, length and, when
/// WebCrypto is available, the body's SHA-256.
fn fetch_in_page(s: &Session, url: &str, range: Option<&str>) -> serde_json::Value {
    s.script_async(
        "const [url, range, done] = arguments;
         const headers = range ? { Range: range } : {};
         fetch(url, { headers })
           .then(async r => {
             const buf = await r.arrayBuffer();
             let sha256 = null;
             if (crypto.subtle) {
               const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
               sha256 = Array.from(d).map(b => b.toString(16).padStart(2, '0')).join('');
             }
             done({ status: r.status, len: buf.byteLength, sha256 });
           })
           .catch(e => done({ status: -1, error: String(e) }));",
        json!([url, range]),
    )
}

/// Waits for the progress panel to report `done` at 100 % (after an import or export).
fn wait_progress_done(s: &Session) {
    s.wait("progress-panel", Cond::Attr("data-state", "done"), LONG);
    let pct = s.script(
        "const p = document.querySelector(arguments[0]);
         if (!p) return null;
         if (p instanceof HTMLProgressElement) return p.max > 0 ? 100 * p.value / p.max : null;
         const now = Number(p.getAttribute('aria-valuenow'));
         const max = Number(p.getAttribute('aria-valuemax') || 100);
         return max > 0 ? 100 * now / max : null;",
        json!([tid("progress-overall")]),
    );
    if pct.as_f64().is_none_or(|p| (p - 100.0).abs() > 0.01) {
        s.fail(&format!("overall progress is {pct}%, expected 100%"));
    }
}

#[test]
fn e2e_app_scenario() {
    // A private HOME/XDG tree: the app must find no vault until it creates one.
    let sandbox = tempfile::tempdir().unwrap();
    let home = sandbox.path().join("home").join("ada");
    std::fs::create_dir_all(&home).unwrap();
    let vault_dir = home.join(".local/share/labvault/vault");

    // Test data: an image, a table, a note, and 20 MiB of random bytes (several chunks, long
    // enough for progress events).
    let data = sandbox.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let png = data.join("sample.png");
    let csv = data.join("sample.csv");
    let txt = data.join("notes.txt");
    let big = data.join("random.bin");
    common::write_png(&png);
    std::fs::write(
        &csv,
        "station,depth_m,chlorophyll\nA1,5,2.41\nA2,10,1.98\nB1,5,3.07\n",
    )
    .unwrap();
    std::fs::write(&txt, "Sampling notes: calm sea, 14 C, nets rinsed twice.\n").unwrap();
    common::write_random_file(&big, 20 * 1024 * 1024, 0x5EED);
    let import_list = std::env::join_paths([&png, &csv, &txt, &big]).unwrap();
    let import_list = Path::new(&import_list);
    let export_dir = sandbox.path().join("export");
    std::fs::create_dir_all(&export_dir).unwrap();
    let audit_csv = sandbox.path().join("audit-export.csv");
    // The save dialog answers with the path that has the suggested name's extension.
    let save_paths = PathBuf::from(format!(
        "{}:{}",
        audit_csv.display(),
        sandbox.path().join("project-bundle.tar.age").display()
    ));
    let recovery_out = sandbox.path().join("recovery-key.txt");

    let env: Vec<(&str, &Path)> = vec![
        ("LABVAULT_E2E_PICK_IMPORT", import_list),
        ("LABVAULT_E2E_PICK_DIR", &export_dir),
        ("LABVAULT_E2E_SAVE_PATH", &save_paths),
        ("LABVAULT_E2E_RECOVERY_OUT", &recovery_out),
        // Minimum Argon2id cost (honoured only with the e2e-hooks feature): the KDF is not
        // what this test is about, and a debug build on 2 cores would spend seconds per unlock.
        ("LABVAULT_KDF", Path::new("floor")),
    ];
    let Some(mut h) = Harness::start(&env, &home, sandbox.path()) else {
        return;
    };
    if !cfg!(feature = "e2e-hooks") {
        let _ = common::unavailable(
            "built without `--features labvault-app/e2e-hooks`, so file dialogs would be native \
             and cannot be driven; run `cargo test --features \
             labvault-app/custom-protocol,labvault-app/e2e-hooks -- e2e_`",
        );
        return;
    }

    let lab = Lab::start();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let s = Session::launch(&h);
        let recovery = scenario(
            &s,
            &vault_dir,
            &recovery_out,
            &[&png, &csv, &txt, &big],
            &export_dir,
            &audit_csv,
            &lab,
        );
        drop(s);
        // Nothing the user typed or imported may sit in plaintext anywhere the app writes: the
        // vault, its logs, WebKit's caches and storage (HOME and the XDG dirs).
        let logs = home.join(".local/share/org.labvault.desktop/logs");
        let secrets = [
            PASSPHRASE,
            WRONG_PASSPHRASE,
            BUNDLE_PASSPHRASE,
            LAB_PASSWORD,
            recovery.as_str(),
            PROJECT,
            "sample.csv",
            "chlorophyll",
            "nets rinsed",
        ];
        let xdg = ["cache", "config", "state"].map(|d| sandbox.path().join(d));
        for dir in [&home, &xdg[0], &xdg[1], &xdg[2]] {
            if let Some((file, secret)) = find_plaintext(dir, &secrets) {
                panic!("`{secret}` is in plaintext in {}", file.display());
            }
        }
        assert!(
            logs.is_dir(),
            "the app wrote no log directory at {}",
            logs.display()
        );
    }));
    if let Err(panic) = result {
        eprintln!(
            "---- tauri-driver / WebKitWebDriver / app output ----\n{}",
            h.driver_output()
        );
        eprintln!("screenshots of this run: {}", h.run_dir.display());
        std::panic::resume_unwind(panic);
    }
}

/// The first file under `dir` (recursively) containing one of `needles`, and which one
/// (GNU grep: fast over the encrypted blobs, unlike a byte loop in this unoptimised test).
fn find_plaintext(dir: &Path, needles: &[&str]) -> Option<(std::path::PathBuf, String)> {
    for n in needles {
        let out = std::process::Command::new("grep")
            .args(["-rlaF", "--", n])
            .arg(dir)
            .output()
            .expect("run grep");
        if let Some(file) = String::from_utf8_lossy(&out.stdout).lines().next() {
            return Some((file.into(), n.to_string()));
        }
    }
    None
}

/// Runs the whole user journey in one app session; returns the recovery key it was shown.
fn scenario(
    s: &Session,
    vault_dir: &Path,
    recovery_out: &Path,
    files: &[&Path; 4],
    export_dir: &Path,
    audit_csv: &Path,
    lab: &Lab,
) -> String {
    let [png, csv, txt, big] = *files;

    // ---- First run: the security settings are live, and there is no vault yet.
    s.step("first run");
    s.wait("screen-first-run", Cond::Visible, Duration::from_secs(60));
    if s.script("return typeof window.__TAURI__;", json!([])) != json!("undefined") {
        s.fail("window.__TAURI__ is exposed (withGlobalTauri must be off)");
    }
    if s.script("return Object.isFrozen(Object.prototype);", json!([])) != json!(true) {
        s.fail("Object.prototype is not frozen (freezePrototype must be on)");
    }
    if !s.url().starts_with("tauri://localhost") {
        s.fail(&format!("app must serve the bundled UI, got {}", s.url()));
    }
    assert!(
        !vault_dir.exists(),
        "showing first run must not create a vault"
    );
    s.screenshot("01-first-run.png");

    // Remote navigation is refused: the page stays the app.
    s.step("navigation blocked");
    s.script(
        "window.location.href = 'https://example.com/'; return null;",
        json!([]),
    );
    std::thread::sleep(Duration::from_millis(800));
    if !s.url().starts_with("tauri://localhost") {
        s.fail(&format!(
            "navigation to a remote URL must be blocked, now at {}",
            s.url()
        ));
    }
    s.wait("screen-first-run", Cond::Visible, SHORT);

    // ---- Create the vault: passphrase twice, then confirm the recovery key's last group.
    s.step("create vault");
    s.type_into("create-passphrase", PASSPHRASE);
    s.type_into("create-confirm", PASSPHRASE);
    s.click("create-submit");
    s.wait("recovery-last-group", Cond::Visible, LONG);
    let start = Instant::now();
    let recovery = loop {
        match std::fs::read_to_string(recovery_out) {
            Ok(k) if !k.trim().is_empty() => break k.trim().to_string(),
            _ if start.elapsed() > SHORT => s.fail(&format!(
                "the e2e-hooks build did not write the recovery key to {}",
                recovery_out.display()
            )),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let last_group = recovery.rsplit('-').next().unwrap().to_string();
    assert!(
        vault_dir.join("vault.key").is_file(),
        "vault.key was not created"
    );
    assert_no_secret_in_dom(
        s,
        &[PASSPHRASE, &recovery],
        "while confirming the recovery key",
    );
    s.screenshot("02-recovery-confirm.png");
    s.type_into("recovery-last-group", &last_group);
    s.click("recovery-confirm");
    s.wait("screen-workspace", Cond::Visible, SHORT);
    assert_no_secret_in_dom(s, &[PASSPHRASE, &recovery], "after creating the vault");

    // ---- Lock, then a wrong passphrase is refused with its code, then the right one opens.
    s.step("lock");
    s.click("lock-button");
    s.wait("screen-unlock", Cond::Visible, SHORT);
    s.wait("screen-workspace", Cond::Gone, SHORT);
    s.screenshot("03-unlock.png");

    s.step("unlock with a wrong passphrase");
    s.type_into("unlock-passphrase", WRONG_PASSPHRASE);
    s.click("unlock-submit");
    s.wait(
        "unlock-error",
        Cond::Attr("data-code", "wrong_passphrase"),
        LONG,
    );
    if s.count_css(&tid("screen-workspace")) != 0 {
        s.fail("a wrong passphrase opened the workspace");
    }
    s.screenshot("04-unlock-wrong-passphrase.png");

    s.step("unlock with the right passphrase");
    s.type_into("unlock-passphrase", PASSPHRASE);
    s.click("unlock-submit");
    s.wait("screen-workspace", Cond::Visible, LONG);
    assert_no_secret_in_dom(
        s,
        &[PASSPHRASE, WRONG_PASSPHRASE, &recovery],
        "after unlocking",
    );

    // ---- A project, then import four files through the (hooked) file dialog.
    s.step("create project");
    s.click("new-project");
    s.type_into("new-project-name", PROJECT);
    s.click("new-project-submit");
    let project = format!("project-{PROJECT}");
    s.wait(&project, Cond::Visible, SHORT);
    s.click(&project);
    s.click("area-tab-uploads");

    s.step("import files");
    s.click("import-files");
    s.wait("progress-panel", Cond::Present, SHORT);
    wait_progress_done(s);
    s.wait("item-row", Cond::Count(4), SHORT);
    s.screenshot("05-import-done.png");

    // ---- Preview: the image is decrypted in memory and served by the lvpreview:// scheme.
    s.step("preview image");
    select_item(s, "sample.png");
    let want_sha = common::sha256_file(png);
    s.wait("item-sha256", Cond::Text(&want_sha), SHORT);
    s.wait("preview-image", Cond::Present, SHORT);
    s.wait_js(
        "the preview <img> to load",
        "const i = document.querySelector(arguments[0]);
         return !!i && i.complete && i.naturalWidth > 0;",
        json!([tid("preview-image")]),
        SHORT,
    );
    let img = s.script(
        "const i = document.querySelector(arguments[0]);
         return [i.currentSrc || i.src, i.naturalWidth, i.naturalHeight];",
        json!([tid("preview-image")]),
    );
    // The UI fetches the decrypted bytes from lvpreview:// and shows them from an in-memory
    // blob: URL (never a file).
    if !img[0].as_str().is_some_and(|u| u.starts_with("blob:")) {
        s.fail(&format!(
            "the preview must be an in-memory blob: URL, got {}",
            img[0]
        ));
    }
    if img[1] != json!(320) || img[2] != json!(200) {
        s.fail(&format!(
            "the preview is {}x{}, the image is 320x200",
            img[1], img[2]
        ));
    }
    s.screenshot("06-preview-image.png");

    // The scheme itself: full body = the source bytes, and a Range request gets a 206 slice.
    s.step("lvpreview scheme");
    let png_id = s
        .attr("item-details", "data-item-id")
        .unwrap_or_else(|| s.fail("item-details has no data-item-id"));
    let preview_url = format!("lvpreview://localhost/item/{png_id}");
    let fetched = fetch_in_page(s, &preview_url, None);
    let png_len = std::fs::metadata(png).unwrap().len();
    if fetched["status"] != json!(200) || fetched["len"] != json!(png_len) {
        s.fail(&format!(
            "GET {preview_url}: {fetched}, expected 200 with {png_len} bytes"
        ));
    }
    if fetched["sha256"].as_str().is_some_and(|h| h != want_sha) {
        s.fail(&format!(
            "lvpreview served other bytes: {fetched}, source SHA-256 {want_sha}"
        ));
    }
    let ranged = fetch_in_page(s, &preview_url, Some("bytes=0-99"));
    if ranged["status"] != json!(206) || ranged["len"] != json!(100) {
        s.fail(&format!(
            "Range bytes=0-99 of {preview_url}: {ranged}, expected 206 with 100 bytes"
        ));
    }

    s.step("preview csv");
    select_item(s, "sample.csv");
    s.wait("preview-table", Cond::Text("chlorophyll"), SHORT);
    s.wait("preview-table", Cond::Text("3.07"), SHORT);
    s.screenshot("07-preview-csv.png");

    s.step("preview text");
    select_item(s, "notes.txt");
    s.wait("preview-text", Cond::Text("nets rinsed twice"), SHORT);

    // ---- Export (hooked directory dialog) and compare the bytes with the source.
    s.step("export");
    select_item(s, "random.bin");
    s.click("item-export");
    wait_same_file(s, &export_dir.join("random.bin"), big);
    wait_progress_done(s);
    select_item(s, "sample.png");
    s.click("item-export");
    wait_same_file(s, &export_dir.join("sample.png"), png);

    // ---- The whole project for an archive: sealed with a passphrase typed twice (a mismatch
    // is caught first), then opened and verified offline with the core's checker.
    s.step("export project sealed");
    let bundle = audit_csv.with_file_name("project-bundle.tar.age");
    s.click("export-project");
    s.wait("bundle-dialog", Cond::Visible, SHORT);
    s.click("bundle-all-versions");
    s.click("bundle-seal-passphrase");
    s.type_into("bundle-pass", BUNDLE_PASSPHRASE);
    s.type_into("bundle-pass2", "not the same passphrase");
    s.click("bundle-submit");
    s.wait("bundle-problem", Cond::Text("differ"), SHORT);
    s.type_into("bundle-pass2", BUNDLE_PASSPHRASE);
    s.screenshot("21-export-project-sealed.png");
    s.click("bundle-submit");
    s.wait("bundle-dialog", Cond::Gone, SHORT);
    let t0 = Instant::now();
    while !bundle.exists() {
        if t0.elapsed() > Duration::from_secs(60) {
            s.fail("the sealed bundle never appeared");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    s.wait("progress-panel", Cond::Text("encrypted with age"), LONG);
    let key = labvault_core::bundle_seal::BundleKey::passphrase(BUNDLE_PASSPHRASE.into());
    let v = labvault_core::bundle::verify_bundle(&bundle, Some(&key), &mut |_, _| {})
        .unwrap_or_else(|e| s.fail(&format!("the sealed bundle does not verify: {e}")));
    if !(v.is_ok() && v.encrypted && v.files_checked == 4) {
        s.fail(&format!("sealed bundle: {v:?}"));
    }

    // ---- Delete, find it under "show deleted", restore.
    s.step("delete");
    select_item(s, "notes.txt");
    s.click("item-delete");
    let notes_row = format!("{}[data-path$=\"notes.txt\"]", tid("item-row"));
    s.wait_css(&notes_row, Cond::Gone, SHORT);
    s.wait("item-row", Cond::Count(3), SHORT);

    s.step("restore");
    s.click("show-deleted");
    s.wait_css(&notes_row, Cond::Visible, SHORT);
    select_item(s, "notes.txt");
    s.screenshot("08-show-deleted.png");
    s.click("item-restore");
    s.click("show-deleted");
    s.wait("item-row", Cond::Count(4), SHORT);
    s.wait_css(&notes_row, Cond::Visible, SHORT);

    // ---- Legal hold: deletion of a held item is refused with the `on_hold` code.
    s.step("legal hold");
    select_item(s, "sample.csv");
    s.click("item-hold");
    s.type_into(
        "hold-reason",
        "Litigation hold: cruise 2026-11 data request",
    );
    s.click("hold-submit");
    s.wait("item-on-hold", Cond::Visible, SHORT);
    s.step("delete refused on hold");
    s.click("item-delete");
    s.wait_css(
        &format!("{}[data-code=\"on_hold\"]", tid("error-banner")),
        Cond::Visible,
        SHORT,
    );
    s.wait_css(
        &format!("{}[data-path$=\"sample.csv\"]", tid("item-row")),
        Cond::Visible,
        SHORT,
    );
    s.screenshot("09-delete-refused-on-hold.png");
    let _ = (csv, txt);

    // ---- Audit log: filter by action, the chain verifies, export the filtered rows to CSV.
    s.step("audit log");
    s.click("nav-audit");
    s.wait("screen-audit", Cond::Visible, SHORT);
    s.wait("audit-row", Cond::AtLeast(5), SHORT);
    s.wait("audit-verify-badge", Cond::Attr("data-state", "ok"), LONG);
    s.type_into("audit-filter-action", "data.import");
    s.click("audit-apply");
    s.wait_js(
        "only data.import rows (at least one per imported file)",
        "const rows = Array.from(document.querySelectorAll(arguments[0]));
         return rows.length >= 4
             && rows.every(r => (r.getAttribute('data-action') || '').startsWith('data.import'));",
        json!([tid("audit-row")]),
        SHORT,
    );
    let shown = s.count_css(&tid("audit-row"));
    s.screenshot("10-audit-log.png");

    s.step("audit export csv");
    s.click("audit-export-csv");
    let start = Instant::now();
    let exported = loop {
        let text = std::fs::read_to_string(audit_csv).unwrap_or_default();
        // Header + the filtered events, each ending in a newline, once the export is complete.
        if text.lines().count() > shown && text.ends_with('\n') {
            break text;
        }
        if start.elapsed() > SHORT {
            s.fail(&format!(
                "audit CSV {} not written (has {} lines)",
                audit_csv.display(),
                text.lines().count()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rows: Vec<&str> = exported.lines().skip(1).filter(|l| !l.is_empty()).collect();
    if rows.len() != shown || !rows.iter().all(|r| r.contains("data.import")) {
        s.fail(&format!(
            "the exported CSV should hold exactly the {shown} filtered data.import events:\n{exported}"
        ));
    }

    // ---- The other main screens, for the record.
    s.step("retention");
    s.click("nav-retention");
    s.wait("screen-retention", Cond::Visible, SHORT);
    s.wait("retention-summary", Cond::Visible, SHORT);
    s.screenshot("11-retention.png");

    s.step("settings");
    s.click("nav-settings");
    s.wait("screen-settings", Cond::Visible, SHORT);
    s.wait("settings-versions", Cond::Visible, SHORT);
    s.screenshot("12-settings.png");

    // ---- Instrument folders: a watched folder imports what the instrument writes (it syncs
    // with the rest of the project below).
    s.step("instrument folders: watch a folder");
    let instrument = vault_dir.parent().unwrap().join("instrument");
    std::fs::create_dir_all(&instrument).unwrap();
    s.click("nav-watches");
    s.wait("watch-empty", Cond::Visible, SHORT);
    s.click("watch-new");
    s.wait("watch-add-dialog", Cond::Visible, SHORT);
    s.type_into("watch-folder", instrument.to_str().unwrap());
    s.type_into("watch-name", "spectro-1");
    s.type_into("watch-include", "*.csv");
    s.type_into("watch-settle", "1");
    s.click("watch-add");
    s.wait("watch-state-spectro-1", Cond::Text("Watching"), LONG);
    std::fs::write(instrument.join("ignored.log"), b"not instrument output").unwrap();
    std::fs::write(instrument.join("run-42.csv"), b"t,od600\n0,0.11\n1,0.19\n").unwrap();
    s.wait("watch-imported-spectro-1", Cond::Text("1"), LONG);
    s.wait("watch-recent", Cond::Text("run-42.csv"), LONG);
    s.wait("watch-activity", Cond::Text("imported as run-42.csv"), LONG);
    s.screenshot("16-instrument-folders.png");

    // ---- The lab: connect, sign in with MFA, sync, review access with a step-up, sign off.
    s.step("sync: connect with a wrong pin, then the right one");
    s.click("nav-sync");
    s.wait("screen-sync", Cond::Visible, SHORT);
    s.type_into("sync-url", &lab.url);
    s.type_into(
        "sync-pin",
        "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    s.type_into("sync-tenant", "lab");
    s.click("sync-connect");
    s.wait(
        "error-banner",
        Cond::Attr("data-code", "pin_mismatch"),
        LONG,
    );
    s.type_into("sync-pin", &lab.pin);
    s.click("sync-connect");
    s.step("sync: sign in with an authenticator code");
    s.wait("sync-email", Cond::Visible, LONG);
    s.type_into("sync-email", "pi@lab.test");
    s.type_into("sync-password", LAB_PASSWORD);
    s.click("sync-sign-in");
    s.wait("sync-totp", Cond::Visible, LONG);
    s.type_into("sync-totp", &lab.next_code());
    s.click("sync-sign-in");
    s.wait("sync-email-shown", Cond::Text("pi@lab.test"), LONG);
    let signed_in_at = Instant::now();
    assert_no_secret_in_dom(s, &[LAB_PASSWORD], "after signing in to the lab");
    s.step("sync now");
    s.click("sync-now");
    s.wait("sync-reach", Cond::Text("Online"), LONG);
    s.wait_js(
        "the project reached the tenant with nothing left to send",
        "const row = document.querySelector(`[data-testid=\"sync-projects\"] tr[data-project=\"${arguments[0]}\"]`);
         return !!row && row.getAttribute('data-pending') === '0' && row.textContent.includes('On the server');",
        json!([PROJECT]),
        LONG,
    );
    // The status line (background sync started by its first look) says it synced.
    s.wait("sync-status-item", Cond::Text("Synced"), LONG);
    s.screenshot("13-sync.png");

    s.step("team: the access matrix");
    s.click("nav-team");
    s.wait("team-matrix", Cond::Visible, LONG);
    let ann_cell = format!(
        "[data-testid=\"team-row\"][data-email=\"ann@lab.test\"] [data-testid=\"team-cell\"][data-project-id=\"{}\"]",
        lab.tenant_project
    );
    s.wait_css(&ann_cell, Cond::Attr("data-role", "editor"), LONG);
    s.screenshot("14-team-access-review.png");
    s.step("team: a role change asks for a step-up in place");
    s.click_css(&ann_cell);
    s.wait("team-cell-role", Cond::Visible, SHORT);
    choose(s, "team-cell-role", "viewer");
    // Past the (test) step-up window of the sign-in's MFA verification.
    let lapse = Duration::from_secs(STEP_UP_WINDOW_SECS as u64 + 1);
    std::thread::sleep(lapse.saturating_sub(signed_in_at.elapsed()));
    s.click("team-cell-save");
    s.wait("step-up-code", Cond::Visible, LONG);
    s.screenshot("15-team-step-up.png");
    s.type_into("step-up-code", &lab.recovery_codes[0]);
    s.click("step-up-submit");
    s.wait("team-notice", Cond::Text("set ann@lab.test"), LONG);
    s.wait_css(&ann_cell, Cond::Attr("data-role", "viewer"), LONG);
    s.step("team: needs attention shows the stale member; revoke them");
    s.click("team-attention-only");
    let stale_row = format!("[data-testid=\"team-row\"][data-email=\"{STALE_MEMBER}\"]");
    s.wait_css(&stale_row, Cond::Text("stale"), LONG);
    if s.count_css(&format!("[data-testid=\"team-row\"][data-email=\"{ANN}\"]")) != 0 {
        s.fail("Ann (active, no admin) does not need attention and is filtered out");
    }
    s.screenshot("17-team-needs-attention.png");
    s.click_css(&format!("{stale_row} [data-testid=\"team-member\"]"));
    s.click("team-member-remove");
    s.click("team-member-remove-confirm");
    step_up_if_asked(
        s,
        &lab.recovery_codes[2],
        "team-notice",
        "removed old@lab.test from the lab",
    );
    s.wait_css(&stale_row, Cond::Gone, LONG);
    s.click("team-attention-only");
    s.step("team: sign the review off");
    s.click("team-sign-off");
    s.wait(
        "team-sign-off-changes",
        Cond::Text("set ann@lab.test"),
        SHORT,
    );
    s.type_into("team-sign-off-note", "Quarterly review");
    s.click("team-sign-off-submit");
    s.wait("team-notice", Cond::Text("signed off"), LONG);
    let signed = lab.audit("access_review.sign_off", &lab.recovery_codes[1]);
    if signed.len() != 1
        || signed[0].user != "pi@lab.test"
        || !signed[0].detail.contains("set ann@lab.test")
        || !signed[0]
            .detail
            .contains("removed old@lab.test from the lab")
        || !signed[0].detail.contains("Quarterly review")
    {
        s.fail(&format!(
            "the tenant's audit trail should hold the sign-off: {signed:?}"
        ));
    }

    // ---- A second device: Ann works in the same lab through the `labvault` CLI. The PI shares
    // the project with her from the matrix; it arrives on her device; both edit the same file
    // while the tenant is down; the conflict is resolved in the window and reaches Ann.
    s.step("second device: Ann signs in through the CLI");
    let sandbox = export_dir.parent().unwrap();
    let ann = Cli::new(&sandbox.join("ann"), "ann");
    ann.ok(&[
        "remote", "add", &lab.url, "--pin", &lab.pin, "--tenant", "lab",
    ]);
    ann.ok(&["login", "--email", ANN]);
    ann.ok(&["sync"]);
    if ann.ok(&["project", "ls"]).contains(PROJECT) {
        s.fail("the project reached Ann before it was shared with her");
    }
    s.step("team: share the project with Ann from the matrix");
    let project_id = s.script(
        "const c = Array.from(document.querySelectorAll(
             `[data-testid=\"team-row\"][data-email=\"${arguments[0]}\"] [data-testid=\"team-cell\"]`))
             .find(b => (b.getAttribute('aria-label') || '').includes(` on ${arguments[1]}:`));
         return c ? c.getAttribute('data-project-id') : null;",
        json!([ANN, PROJECT]),
    );
    let Some(project_id) = project_id.as_str() else {
        s.fail(&format!("no cell for Ann on {PROJECT} in the matrix"));
    };
    let ann_on_project = format!(
        "[data-testid=\"team-row\"][data-email=\"{ANN}\"] [data-testid=\"team-cell\"][data-project-id=\"{project_id}\"]"
    );
    s.wait_css(&ann_on_project, Cond::Attr("data-role", "none"), SHORT);
    s.click_css(&ann_on_project);
    s.wait("team-cell-role", Cond::Visible, SHORT);
    choose(s, "team-cell-role", "editor");
    s.click("team-cell-save");
    step_up_if_asked(s, &lab.recovery_codes[3], "team-notice", "set ann@lab.test");
    s.wait_css(&ann_on_project, Cond::Attr("data-role", "editor"), LONG);
    s.step("second device: the shared project arrives");
    ann.ok(&["sync"]);
    let listing = ann.listing();
    let csv_sha = common::sha256_file(csv);
    if !listing
        .iter()
        .any(|(p, path, sha)| p == PROJECT && path == "uploads/sample.csv" && *sha == csv_sha)
        || !listing
            .iter()
            .any(|(p, path, _)| p == PROJECT && path == "uploads/run-42.csv")
    {
        s.fail(&format!(
            "Ann's device should hold the shared project: {listing:?}"
        ));
    }

    s.step("offline on both devices: the same file changed twice");
    lab.stop();
    s.click("nav-sync");
    s.click("sync-now");
    s.wait("sync-reach", Cond::Text("Offline"), LONG);
    let ours = b"t,od600\n0,0.11\n1,0.19\n2,0.33\n";
    let theirs = b"t,od600\n0,0.11\n1,0.21\n";
    std::fs::write(instrument.join("run-42.csv"), ours).unwrap();
    s.click("nav-watches");
    s.click("watch-open-spectro-1");
    s.wait(
        "watch-activity",
        Cond::Text("imported as run-42.csv (version 2)"),
        LONG,
    );
    let ann_src = sandbox.join("ann-src");
    std::fs::create_dir_all(&ann_src).unwrap();
    std::fs::write(ann_src.join("run-42.csv"), theirs).unwrap();
    ann.ok(&[
        "import",
        "--project",
        PROJECT,
        ann_src.join("run-42.csv").to_str().unwrap(),
    ]);

    s.step("reconnect: the conflict shows and both versions are kept");
    lab.restart();
    ann.ok(&["sync"]);
    s.click("nav-sync");
    s.click("sync-now");
    s.wait("sync-reach", Cond::Text("Online"), LONG);
    let conflict = "[data-testid=\"sync-conflict\"][data-path=\"run-42.csv\"]";
    s.wait_css(conflict, Cond::Present, LONG);
    s.click_css(&format!("{conflict} [data-testid=\"sync-compare\"]"));
    s.wait("sync-compare-other", Cond::Visible, SHORT);
    s.screenshot("18-sync-conflict-compare.png");
    s.click_css("[data-testid=\"sync-compare-dialog\"] .modal__close, [data-testid=\"sync-compare-dialog\"] button[aria-label=\"Close\"]");
    s.click_css(&format!("{conflict} [data-testid=\"sync-keep-both\"]"));
    s.wait("sync-keep-both-name", Cond::Visible, SHORT);
    let other_name = s.script(
        "return document.querySelector('[data-testid=\"sync-keep-both-name\"]').value;",
        json!([]),
    );
    let other_name = other_name.as_str().unwrap_or_default().to_string();
    s.click("sync-keep-both-submit");
    s.wait_css(conflict, Cond::Gone, LONG);
    s.click("sync-now");
    s.wait_js(
        "the resolution reached the tenant",
        "const row = document.querySelector(`[data-testid=\"sync-projects\"] tr[data-project=\"${arguments[0]}\"]`);
         return !!row && row.getAttribute('data-pending') === '0';",
        json!([PROJECT]),
        LONG,
    );
    ann.ok(&["sync"]);
    let mut got: Vec<String> = ann
        .listing()
        .into_iter()
        .filter(|(p, path, _)| {
            p == PROJECT
                && (path == "uploads/run-42.csv" || *path == format!("uploads/{other_name}"))
        })
        .map(|(_, _, sha)| sha)
        .collect();
    got.sort();
    let mut want = vec![common::sha256_bytes(ours), common::sha256_bytes(theirs)];
    want.sort();
    if got != want {
        s.fail(&format!(
            "Ann should see both versions, as run-42.csv and {other_name}: {:?}",
            ann.listing()
        ));
    }

    // ---- The PI's laptop: a new device of the same account, approved from the window by its
    // pairing code, then syncs the project (its key was sealed to the laptop on approval).
    s.step("devices: approve the PI's laptop by its pairing code");
    let laptop = Cli::new(&sandbox.join("laptop"), "pi");
    laptop.ok(&[
        "remote", "add", &lab.url, "--pin", &lab.pin, "--tenant", "lab",
    ]);
    laptop.ok(&[
        "login",
        "--email",
        "pi@lab.test",
        "--totp",
        &lab.recovery_codes[4],
    ]);
    let code = laptop
        .ok(&["device", "pair"])
        .lines()
        .find_map(|l| {
            l.strip_prefix("pairing code: ")
                .map(|c| c.trim().to_string())
        })
        .expect("`device pair` shows the code");
    s.click("nav-sync");
    s.type_into("sync-pair-code", &code);
    s.click("sync-pair-approve");
    s.wait("sync-notice", Cond::Text("Approved"), LONG);
    s.wait_css(
        "[data-testid=\"sync-devices\"] tbody tr",
        Cond::Count(2),
        LONG,
    );
    s.screenshot("19-sync-devices.png");
    laptop.ok(&["sync"]);
    if !laptop
        .listing()
        .iter()
        .any(|(p, path, sha)| p == PROJECT && path == "uploads/sample.csv" && *sha == csv_sha)
    {
        s.fail(&format!(
            "the approved laptop should hold the project: {:?}",
            laptop.listing()
        ));
    }
    s.step("sync: the shared project's members and key epoch");
    s.click(&format!("sync-sharing-{PROJECT}"));
    s.wait("sync-members", Cond::Text("ann@lab.test"), LONG);
    s.wait("sync-epoch", Cond::Visible, SHORT);
    s.screenshot("20-sync-sharing.png");

    // ---- Locking clears everything sensitive from the UI.
    s.step("lock clears the UI");
    s.click("nav-workspace");
    s.wait("item-row", Cond::AtLeast(1), SHORT);
    s.click("lock-button");
    s.wait("screen-unlock", Cond::Visible, SHORT);
    assert_no_secret_in_dom(
        s,
        &[
            PROJECT,
            "sample.csv",
            "random.bin",
            "chlorophyll",
            &want_sha,
        ],
        "after locking (project names, file names, contents and hashes must be cleared)",
    );
    s.step("lvpreview refuses when locked");
    // The scheme answers 403; WebKit may surface that as a failed load (the refusal carries no
    // CORS headers). Either way no byte of the item reaches the page.
    let locked = fetch_in_page(s, &preview_url, None);
    let refused = locked["status"] == json!(403) || locked["status"] == json!(-1);
    if !refused || locked["len"].as_u64().is_some_and(|n| n > 0) {
        s.fail(&format!(
            "GET {preview_url} while locked: {locked}, expected a refusal"
        ));
    }
    recovery
}
