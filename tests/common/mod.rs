//! Shared end-to-end harness: Xvfb, `tauri-driver` + WebKitWebDriver, and a small W3C WebDriver
//! client whose helpers address the UI by the contract's `data-testid`s.
//!
//! Every wait has a timeout and fails with a message naming what was expected, what the page
//! showed instead, and a screenshot of the window at that moment (in the run's screenshot dir).
#![allow(dead_code)] // each test file uses its own subset of the helpers

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const WEBKIT_DRIVER: &str = "/usr/bin/WebKitWebDriver";

/// Default wait for UI reactions (IPC round trips, re-renders).
pub const SHORT: Duration = Duration::from_secs(15);
/// Wait for work that runs the KDF or moves many bytes (debug builds on a busy machine).
pub const LONG: Duration = Duration::from_secs(120);

/// Under CI, or README's test command (`LABVAULT_STRICT_TESTS=1`): a missing piece fails.
pub fn in_ci() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("LABVAULT_STRICT_TESTS")
}

/// Skips (returns None) with a loud banner, or fails in CI.
pub fn unavailable(reason: &str) -> Option<()> {
    if in_ci() {
        panic!("end-to-end test cannot run in CI: {reason}");
    }
    eprintln!();
    eprintln!("==================================================================");
    eprintln!("  SKIPPED: end-to-end window test did NOT run");
    eprintln!("  reason: {reason}");
    eprintln!("  (./scripts/test-all.sh sets everything up; with CI=true this fails)");
    eprintln!("==================================================================");
    eprintln!();
    None
}

/// Kills and reaps a helper process when the test ends, pass or fail.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Starts Xvfb on a free display number (it reports the number itself via -displayfd).
fn start_xvfb() -> Result<(Reaper, String), String> {
    let xvfb = find_in_path("Xvfb").ok_or("Xvfb is not installed (apt: xvfb)")?;
    let mut child = Command::new(xvfb)
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start Xvfb: {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| format!("Xvfb did not report a display: {e}"))?;
    let display = format!(":{}", line.trim());
    if line.trim().is_empty() {
        return Err("Xvfb exited without a display".into());
    }
    Ok((Reaper(child), display))
}

/// Minimal W3C WebDriver client over plain HTTP.
pub struct WebDriver {
    agent: ureq::Agent,
    base: String,
}

/// A WebDriver reply: HTTP status and the `value` member.
type Reply = (u16, Value);

impl WebDriver {
    fn new(port: u16) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(90)))
            .build()
            .into();
        WebDriver {
            agent,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn try_post(&self, path: &str, body: &Value) -> Result<Reply, String> {
        let mut resp = self
            .agent
            .post(&format!("{}{path}", self.base))
            .send_json(body)
            .map_err(|e| format!("WebDriver POST {path}: {e}"))?;
        let status = resp.status().as_u16();
        let json: Value = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_json()
            .unwrap_or(Value::Null);
        Ok((status, json.get("value").cloned().unwrap_or(Value::Null)))
    }

    fn try_get(&self, path: &str) -> Result<Reply, String> {
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .map_err(|e| format!("WebDriver GET {path}: {e}"))?;
        let status = resp.status().as_u16();
        let json: Value = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_json()
            .unwrap_or(Value::Null);
        Ok((status, json.get("value").cloned().unwrap_or(Value::Null)))
    }

    fn delete(&self, path: &str) {
        let _ = self.agent.delete(&format!("{}{path}", self.base)).call();
    }

    fn wait_until_up(&self, deadline: Duration) {
        let start = Instant::now();
        let addr = self.base.trim_start_matches("http://").to_string();
        while TcpStream::connect(&addr).is_err() {
            assert!(
                start.elapsed() < deadline,
                "tauri-driver never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Everything one end-to-end run needs: display, drivers, a private HOME, a screenshot dir.
pub struct Harness {
    _xvfb: Option<Reaper>,
    _driver_proc: Reaper,
    driver_log: tempfile::NamedTempFile,
    pub driver: WebDriver,
    pub display: String,
    pub app_bin: PathBuf,
    /// Where this run's screenshots go (always), under the cargo target dir.
    pub run_dir: PathBuf,
}

/// The `CSS selector` of an element by its contract test id.
pub fn tid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

impl Harness {
    /// Checks every prerequisite (skipping loudly, or failing in CI) and starts Xvfb and
    /// `tauri-driver` with `env` set: the driver passes its environment on to the app.
    pub fn start(env: &[(&str, &Path)], home: &Path, sandbox: &Path) -> Option<Harness> {
        if !cfg!(target_os = "linux") {
            unavailable("tauri-driver + WebKitWebDriver end-to-end tests only run on Linux")?;
        }
        if !cfg!(feature = "custom-protocol") {
            unavailable(
                "built without `--features custom-protocol`, so the app would load the dev server \
                 instead of the bundled UI; run `cargo test --features custom-protocol`",
            )?;
        }
        let app_bin = PathBuf::from(env!("CARGO_BIN_EXE_labvault-app"));
        let Some(tauri_driver) = find_in_path("tauri-driver") else {
            unavailable("tauri-driver not found (cargo install tauri-driver --locked)")?;
            unreachable!()
        };
        if !Path::new(WEBKIT_DRIVER).is_file() {
            unavailable("WebKitWebDriver not found (apt: webkit2gtk-driver)")?;
        }
        for tool in ["import", "convert"] {
            if find_in_path(tool).is_none() {
                unavailable(&format!(
                    "ImageMagick `{tool}` not found (apt: imagemagick)"
                ))?;
            }
        }
        let index = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/dist/index.html");
        assert!(
            index.is_file(),
            "ui/dist is missing: run `npm --prefix ui run build` before building the app"
        );

        let mut xvfb = None;
        let display = match std::env::var("DISPLAY") {
            Ok(d) if !d.is_empty() => d,
            _ => match start_xvfb() {
                Ok((reaper, display)) => {
                    xvfb = Some(reaper);
                    display
                }
                Err(reason) => {
                    unavailable(&reason)?;
                    unreachable!()
                }
            },
        };

        let port = free_port();
        let native_port = free_port();
        let driver_log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(&tauri_driver);
        cmd.args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .args(["--native-driver", WEBKIT_DRIVER])
            .env("DISPLAY", &display)
            .env("HOME", home)
            .env("USER", home.file_name().unwrap_or_default())
            // XDG_DATA_HOME is unset so the common `~/.local/share` rule is what gets exercised.
            .env_remove("XDG_DATA_HOME")
            .env("XDG_CONFIG_HOME", sandbox.join("config"))
            .env("XDG_CACHE_HOME", sandbox.join("cache"))
            .env("XDG_STATE_HOME", sandbox.join("state"))
            // Software rendering: Xvfb has no GPU, and DMA-BUF renderer probing only adds noise.
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .stdout(driver_log.reopen().unwrap())
            .stderr(driver_log.reopen().unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let driver_proc = Reaper(cmd.spawn().expect("start tauri-driver"));
        let driver = WebDriver::new(port);
        driver.wait_until_up(Duration::from_secs(20));
        let native = format!("127.0.0.1:{native_port}");
        let start = Instant::now();
        while TcpStream::connect(&native).is_err() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }

        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let run_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("e2e-screenshots")
            .join(format!("run-{stamp}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        eprintln!("screenshots of this run: {}", run_dir.display());
        Some(Harness {
            _xvfb: xvfb,
            _driver_proc: driver_proc,
            driver_log,
            driver,
            display,
            app_bin,
            run_dir,
        })
    }

    /// Output of tauri-driver, WebKitWebDriver and the app so far (printed when a test fails).
    pub fn driver_output(&mut self) -> String {
        let mut log = String::new();
        let _ = self.driver_log.as_file_mut().read_to_string(&mut log);
        log
    }
}

/// What [`Session::wait`] waits for, evaluated in the page on every poll.
#[derive(Clone, Copy, Debug)]
pub enum Cond<'a> {
    /// At least one element matches.
    Present,
    /// The first match is rendered (has a layout box and is not hidden).
    Visible,
    /// Nothing matches.
    Gone,
    /// The first match has this attribute value.
    Attr(&'a str, &'a str),
    /// The first match's text contains this.
    Text(&'a str),
    /// Exactly this many matches.
    Count(usize),
    /// At least this many matches.
    AtLeast(usize),
}

impl Cond<'_> {
    fn parts(&self) -> (&str, Value, Value) {
        match *self {
            Cond::Present => ("present", Value::Null, Value::Null),
            Cond::Visible => ("visible", Value::Null, Value::Null),
            Cond::Gone => ("gone", Value::Null, Value::Null),
            Cond::Attr(a, v) => ("attr", json!(a), json!(v)),
            Cond::Text(t) => ("text", json!(t), Value::Null),
            Cond::Count(n) => ("count", json!(n), Value::Null),
            Cond::AtLeast(n) => ("atleast", json!(n), Value::Null),
        }
    }
}

const COND_JS: &str = r#"
const [sel, kind, a, b] = arguments;
const els = Array.from(document.querySelectorAll(sel));
const el = els[0];
let ok = false;
switch (kind) {
  case 'present': ok = !!el; break;
  case 'visible': ok = !!el && el.getClientRects().length > 0
      && getComputedStyle(el).visibility !== 'hidden'; break;
  case 'gone': ok = !el; break;
  case 'attr': ok = !!el && el.getAttribute(a) === b; break;
  case 'text': ok = !!el && (el.textContent || '').includes(a); break;
  case 'count': ok = els.length === a; break;
  case 'atleast': ok = els.length >= a; break;
}
const desc = el ? {
  matches: els.length,
  attrs: Object.fromEntries(Array.from(el.attributes).filter(x => x.name.startsWith('data-')
      || ['value', 'aria-valuenow', 'aria-valuemax', 'max', 'src', 'class'].includes(x.name))
      .map(x => [x.name, x.value.slice(0, 200)])),
  text: (el.textContent || '').slice(0, 300),
} : { matches: 0 };
return { ok, desc };
"#;

/// One running app window (a WebDriver session); deleting the session closes the app.
pub struct Session<'a> {
    h: &'a Harness,
    id: String,
    /// The step being run, for failure messages and the failure screenshot's name.
    step: RefCell<String>,
    /// Screenshot file names taken in this session, in order.
    pub shots: RefCell<Vec<PathBuf>>,
}

impl<'a> Session<'a> {
    /// Launches the app (a new WebDriver session).
    pub fn launch(h: &'a Harness) -> Self {
        let body = json!({
            "capabilities": {
                "alwaysMatch": {
                    "tauri:options": { "application": h.app_bin.display().to_string() }
                }
            }
        });
        // tauri-driver accepts connections before its native driver (WebKitWebDriver) does and
        // drops the proxied request meanwhile: retry transport errors only, never HTTP errors.
        let started = Instant::now();
        let value = loop {
            match h.driver.try_post("/session", &body) {
                Ok((status, value)) => {
                    assert!(
                        (200..300).contains(&status),
                        "WebDriver POST /session failed with HTTP {status}: {value}"
                    );
                    break value;
                }
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    eprintln!("WebDriver not ready yet ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("{e}"),
            }
        };
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_string();
        Session {
            h,
            id,
            step: RefCell::new("launch".into()),
            shots: RefCell::new(Vec::new()),
        }
    }

    /// Names the step now running (shown in failures).
    pub fn step(&self, name: &str) {
        eprintln!("e2e step: {name}");
        *self.step.borrow_mut() = name.to_string();
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.id)
    }

    /// Fails the test at the current step: saves a screenshot and shows what the page says.
    pub fn fail(&self, what: &str) -> ! {
        let step = self.step.borrow().clone();
        let safe: String = step
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let shot = self.h.run_dir.join(format!("FAILED-{safe}.png"));
        let shot_note = match self.capture(&shot) {
            Ok(()) => format!("screenshot: {}", shot.display()),
            Err(e) => format!("(no screenshot: {e})"),
        };
        let page = self
            .try_script(
                "return document.body ? document.body.innerText.slice(0, 3000) : '';",
                json!([]),
            )
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| format!("(page unreadable: {e})"));
        panic!("e2e step `{step}` failed: {what}\n{shot_note}\n---- page text ----\n{page}\n----");
    }

    fn post(&self, rest: &str, body: Value) -> Value {
        let path = self.path(rest);
        match self.h.driver.try_post(&path, &body) {
            Ok((s, v)) if (200..300).contains(&s) => v,
            Ok((s, v)) => self.fail(&format!("WebDriver POST {rest} -> HTTP {s}: {v}")),
            Err(e) => self.fail(&e),
        }
    }

    fn get(&self, rest: &str) -> Value {
        let path = self.path(rest);
        match self.h.driver.try_get(&path) {
            Ok((s, v)) if (200..300).contains(&s) => v,
            Ok((s, v)) => self.fail(&format!("WebDriver GET {rest} -> HTTP {s}: {v}")),
            Err(e) => self.fail(&e),
        }
    }

    fn try_script(&self, script: &str, args: Value) -> Result<Value, String> {
        let path = self.path("/execute/sync");
        match self
            .h
            .driver
            .try_post(&path, &json!({ "script": script, "args": args }))?
        {
            (s, v) if (200..300).contains(&s) => Ok(v),
            (s, v) => Err(format!("script failed with HTTP {s}: {v}")),
        }
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.try_script(script, args)
            .unwrap_or_else(|e| self.fail(&e))
    }

    /// Runs an asynchronous `script` in the page: it must call `arguments[arguments.length - 1]`
    /// with its result.
    pub fn script_async(&self, script: &str, args: Value) -> Value {
        let path = self.path("/execute/async");
        match self
            .h
            .driver
            .try_post(&path, &json!({ "script": script, "args": args }))
        {
            Ok((s, v)) if (200..300).contains(&s) => v,
            Ok((s, v)) => self.fail(&format!("async script failed with HTTP {s}: {v}")),
            Err(e) => self.fail(&e),
        }
    }

    /// The current URL of the webview.
    pub fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_string()
    }

    /// Waits until `cond` holds for the elements matching `css`.
    pub fn wait_css(&self, css: &str, cond: Cond<'_>, timeout: Duration) {
        let (kind, a, b) = cond.parts();
        let start = Instant::now();
        loop {
            let r = self.script(COND_JS, json!([css, kind, a, b]));
            if r["ok"] == json!(true) {
                return;
            }
            if start.elapsed() > timeout {
                self.fail(&format!(
                    "waited {timeout:?} for `{css}` to be {cond:?}; it is: {}",
                    r["desc"]
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `cond` holds for the element(s) with this test id.
    pub fn wait(&self, testid: &str, cond: Cond<'_>, timeout: Duration) {
        self.wait_css(&tid(testid), cond, timeout)
    }

    /// Waits until the page script `js` (a function body) returns `true`.
    pub fn wait_js(&self, what: &str, js: &str, args: Value, timeout: Duration) {
        let start = Instant::now();
        loop {
            let r = self.script(js, args.clone());
            if r == json!(true) {
                return;
            }
            if start.elapsed() > timeout {
                self.fail(&format!("waited {timeout:?} for {what}; last result: {r}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (SHORT) for a visible element matching `css` and returns its WebDriver id.
    pub fn element_css(&self, css: &str) -> String {
        self.wait_css(css, Cond::Visible, SHORT);
        let el = self.post("/element", json!({ "using": "css selector", "value": css }));
        el[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| self.fail(&format!("no element id in {el}")))
            .to_string()
    }

    /// Waits (SHORT) for the visible element with this test id and returns its WebDriver id.
    pub fn element(&self, testid: &str) -> String {
        self.element_css(&tid(testid))
    }

    /// Clicks (a real WebDriver click) the element matching `css`.
    pub fn click_css(&self, css: &str) {
        let el = self.element_css(css);
        self.post(&format!("/element/{el}/click"), json!({}));
    }

    /// Clicks the element with this test id.
    pub fn click(&self, testid: &str) {
        self.click_css(&tid(testid))
    }

    /// Replaces the content of an input with `text`, typed as key events.
    pub fn type_into(&self, testid: &str, text: &str) {
        let el = self.element(testid);
        self.post(&format!("/element/{el}/clear"), json!({}));
        self.post(&format!("/element/{el}/value"), json!({ "text": text }));
    }

    /// An attribute of the first element with this test id (None when absent).
    pub fn attr(&self, testid: &str, name: &str) -> Option<String> {
        let v = self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
            json!([tid(testid), name]),
        );
        v.as_str().map(str::to_string)
    }

    /// The visible text of the first element with this test id.
    pub fn text(&self, testid: &str) -> String {
        let el = self.element(testid);
        self.get(&format!("/element/{el}/text"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Number of elements matching `css`.
    pub fn count_css(&self, css: &str) -> usize {
        self.script(
            "return document.querySelectorAll(arguments[0]).length;",
            json!([css]),
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Captures the app window from the X server (ImageMagick `import`): WebKitWebDriver's own
    /// screenshot command hangs under Xvfb without a GPU, and this shows the real window anyway.
    fn capture(&self, file: &Path) -> Result<(), String> {
        std::fs::create_dir_all(file.parent().unwrap()).map_err(|e| e.to_string())?;
        let out = Command::new("import")
            .args(["-display", &self.h.display, "-window", "LabVault"])
            .arg(format!("png:{}", file.display()))
            .output()
            .map_err(|e| format!("run ImageMagick import (apt: imagemagick): {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let png = std::fs::read(file).map_err(|e| e.to_string())?;
        if !png.starts_with(b"\x89PNG") {
            return Err("screenshot is not a PNG".into());
        }
        Ok(())
    }

    /// Saves a screenshot named `name` (e.g. `workspace.png`) into the run dir, and into
    /// `docs/screenshots/` when `LABVAULT_UPDATE_SCREENSHOTS=1`.
    pub fn screenshot(&self, name: &str) {
        // Let the last re-render and any CSS transition settle before capturing.
        std::thread::sleep(Duration::from_millis(400));
        let file = self.h.run_dir.join(name);
        if let Err(e) = self.capture(&file) {
            self.fail(&format!("screenshot {name} failed: {e}"));
        }
        eprintln!("saved screenshot {}", file.display());
        if std::env::var("LABVAULT_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::copy(&file, docs.join(name)).unwrap();
            eprintln!("updated docs/screenshots/{name}");
        }
        self.shots.borrow_mut().push(file);
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.h.driver.delete(&self.path(""));
    }
}

/// SHA-256 of a file as lowercase hex, with coreutils `sha256sum` (no hashing crate needed in
/// the app's dev-dependencies).
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {} failed", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Writes `len` bytes of reproducible pseudo-random data (xorshift64*): incompressible, so the
/// import is a real multi-chunk transfer.
pub fn write_random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        buf.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    buf.truncate(len);
    std::fs::write(path, buf).unwrap();
}

/// A real PNG made by ImageMagick (a labelled gradient would need fonts; a gradient does not).
pub fn write_png(path: &Path) {
    let out = Command::new("convert")
        .args(["-size", "320x200", "gradient:#1f6f8b-#e8f1f2"])
        .arg(format!("png:{}", path.display()))
        .output()
        .expect("run ImageMagick convert");
    assert!(
        out.status.success(),
        "convert failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SHA-256 of `bytes`, hex (as `sha256sum` prints it).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
