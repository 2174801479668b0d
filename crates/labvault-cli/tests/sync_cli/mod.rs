//! Sync with the real processes: the `labvault-server` binary and the `labvault` binary, as a
//! user or a script drives them (no terminal: secrets from the environment), and faults
//! between them: a TCP proxy that throttles, cuts and resets connections, and `kill -9` of the
//! client and of the server in the middle of a large upload.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASS: &str = "sync cli passphrase";
const PW: &str = "Correct-Horse-9";

/// The server binary, built beside `labvault` by `cargo test --workspace`.
fn server_bin() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_labvault")).with_file_name("labvault-server");
    p.exists().then_some(p)
}

macro_rules! need_server {
    () => {
        match server_bin() {
            Some(p) => p,
            None => {
                assert!(
                    std::env::var_os("CI").is_none() && std::env::var_os("LABVAULT_STRICT_TESTS").is_none(),
                    "labvault-server is not built: run `cargo test --workspace` (CI must not skip this test)"
                );
                eprintln!("skipped: labvault-server not built (cargo test --workspace builds it)");
                return;
            }
        }
    };
}

/// A tenant server process.
struct Server {
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    port: u16,
    pin: String,
}

impl Server {
    fn start(bin: PathBuf, dir: &Path) -> Server {
        let o = Command::new(&bin)
            .args(["--data-dir"])
            .arg(dir)
            .args([
                "init",
                "--slug",
                "lab",
                "--plan",
                "professional",
                "--owner-email",
                "pi@lab.test",
            ])
            .env("LABVAULT_OWNER_PASSWORD", PW)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut s = Server {
            bin,
            dir: dir.to_path_buf(),
            child: None,
            port: 0,
            pin: String::new(),
        };
        s.serve();
        s
    }

    /// Starts serving (on the same port as before, if there was one).
    fn serve(&mut self) {
        let bind = format!("127.0.0.1:{}", self.port);
        let mut child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["serve", "--bind", &bind])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        // (The server prints both lines within a second; reading blocks until it does or dies.)
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("labvault-server listening on https://127.0.0.1:")
            {
                self.port = rest.trim().parse().unwrap();
            }
            if let Some(pin) = line.strip_prefix("certificate pin: ") {
                self.pin = pin.trim().to_string();
                break;
            }
        }
        assert!(
            self.port != 0 && !self.pin.is_empty(),
            "the server did not start"
        );
        // Keep draining its stdout so it never blocks.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A TCP proxy in front of the server: counts the bytes going up, and can throttle them, cut
/// every connection after some bytes, or refuse connections.
struct Proxy {
    port: u16,
    up: Arc<AtomicU64>,
    rate: Arc<AtomicU64>,
    cut_after: Arc<AtomicU64>,
    refuse: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Proxy {
            port,
            up: Arc::default(),
            rate: Arc::default(),
            cut_after: Arc::default(),
            refuse: Arc::default(),
        };
        let (up, rate, cut, refuse) = (
            p.up.clone(),
            p.rate.clone(),
            p.cut_after.clone(),
            p.refuse.clone(),
        );
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                if refuse.load(Ordering::SeqCst) {
                    // The connection is closed without a word.
                    drop(c);
                    continue;
                }
                let Ok(s) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (c2, s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
                let (up, rate, cut) = (up.clone(), rate.clone(), cut.clone());
                std::thread::spawn(move || pipe(c, s, Some((up, rate, cut))));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        p
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

type Meter = (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>);

fn pipe(mut from: TcpStream, mut to: TcpStream, meter: Option<Meter>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0u64;
    let start = Instant::now();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((up, rate, cut)) = &meter {
            let c = cut.load(Ordering::SeqCst);
            if c > 0 && sent + n as u64 > c {
                break;
            }
            sent += n as u64;
            up.fetch_add(n as u64, Ordering::SeqCst);
            let r = rate.load(Ordering::SeqCst);
            if r > 0 {
                let due = Duration::from_secs_f64(sent as f64 / r as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A device: a vault driven through the `labvault` binary.
struct Dev {
    _t: tempfile::TempDir,
    vault: PathBuf,
    service: String,
}

impl Dev {
    fn new(name: &str) -> Dev {
        let t = tempfile::tempdir().unwrap();
        let vault = t.path().join("vault");
        let d = Dev {
            vault,
            _t: t,
            service: format!("org.labvault.test.sync-cli.{name}.{}", std::process::id()),
        };
        let o = d
            .cmd()
            .env("LABVAULT_NEW_PASSPHRASE", PASS)
            .env_remove("LABVAULT_PASSPHRASE")
            .arg("init")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        d
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_labvault"));
        c.arg("--vault")
            .arg(&self.vault)
            .arg("--no-keyring")
            .env("LABVAULT_KDF", "floor")
            .env("LABVAULT_PASSPHRASE", PASS)
            .env("LABVAULT_KEYRING_SERVICE", &self.service)
            .env("LABVAULT_TENANT_PASSWORD", PW)
            .env_remove("LABVAULT_VAULT")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "labvault {args:?} failed ({:?}): {}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn connect(&self, url: &str, pin: &str) {
        self.ok(&["remote", "add", url, "--pin", pin, "--tenant", "lab"]);
        self.ok(&["login", "--email", "pi@lab.test"]);
    }

    fn listing(&self) -> Vec<(String, String, u64, String)> {
        let out = self.ok(&["ls", "--json", "--all"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let mut l: Vec<_> = v
            .iter()
            .map(|i| {
                (
                    i["project"].as_str().unwrap().to_string(),
                    format!(
                        "{}/{}",
                        i["area"].as_str().unwrap(),
                        i["path"].as_str().unwrap()
                    ),
                    i["size"].as_u64().unwrap(),
                    i["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        l.sort();
        l
    }
}

fn code_of(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Pairs `new` with `approver` through the command line.
fn pair(approver: &Dev, new: &Dev) {
    let out = new.ok(&["device", "pair"]);
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("pairing code: "))
        .expect("device pair prints the code")
        .trim()
        .to_string();
    let approved = approver.ok(&["device", "approve", &code]);
    assert!(approved.contains("approved"), "{approved}");
}

fn random_bytes(n: usize, seed: u32) -> Vec<u8> {
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

#[test]
fn two_vaults_sign_in_pair_and_sync_from_the_command_line() {
    let bin = need_server!();
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(bin, &t.path().join("server"));
    let a = Dev::new("a");
    a.ok(&["project", "create", "Alpha"]);
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("run")).unwrap();
    std::fs::write(src.join("run/readings.csv"), b"t,v\n1,2\n").unwrap();
    std::fs::write(src.join("notes.txt"), b"notes").unwrap();
    a.ok(&[
        "import",
        "--project",
        "Alpha",
        "--area",
        "uploads",
        src.to_str().unwrap(),
    ]);

    // A wrong pin is refused at once, naming the key the server showed.
    let wrong = format!("sha256/{}", "A".repeat(43) + "=");
    let o = a.run(&["remote", "add", &server.url(), "--pin", &wrong]);
    assert_eq!(code_of(&o), 25, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error[pin_mismatch]"));

    a.connect(&server.url(), &server.pin);
    let out = a.ok(&["sync"]);
    assert!(out.contains("pushed"), "{out}");
    let st: serde_json::Value = serde_json::from_str(&a.ok(&["sync", "status", "--json"])).unwrap();
    assert_eq!(st[0]["pending_ops"], 0, "{st}");
    assert!(st[0]["last_sync_at"].is_string());

    let b = Dev::new("b");
    b.ok(&[
        "remote",
        "add",
        &server.url(),
        "--pin",
        &server.pin,
        "--tenant",
        "lab",
    ]);
    let login = b.ok(&["login", "--email", "pi@lab.test"]);
    assert!(login.contains("waits for approval"), "{login}");
    let o = b.run(&["sync"]);
    assert_eq!(
        code_of(&o),
        24,
        "not approved yet: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    pair(&a, &b);
    b.ok(&["sync"]);
    assert_eq!(
        a.listing(),
        b.listing(),
        "the same catalog on the new device"
    );
    let out = t.path().join("out");
    b.ok(&[
        "export",
        "--project",
        "Alpha",
        "src/run/readings.csv",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(out.join("readings.csv")).unwrap(),
        b"t,v\n1,2\n"
    );
    let devs = a.ok(&["device", "ls"]);
    assert_eq!(
        devs.lines().filter(|l| l.contains("Approved")).count(),
        2,
        "{devs}"
    );
    assert!(a.ok(&["conflicts", "ls"]).contains("no conflicts"));
    // The audit trail verifies against the tenant's anchors.
    a.ok(&["audit", "verify"]);
    // Signed out, b cannot sync.
    b.ok(&["logout"]);
    let o = b.run(&["sync"]);
    assert_eq!(code_of(&o), 24, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error[not_signed_in]"));
}

#[test]
fn a_large_upload_survives_a_flaky_network_and_kill_9_of_either_side() {
    let bin = need_server!();
    let t = tempfile::tempdir().unwrap();
    let mut server = Server::start(bin, &t.path().join("server"));
    let proxy = Proxy::start(server.port);
    let a = Dev::new("a");
    a.ok(&["project", "create", "Big"]);
    const SIZE: usize = 48 << 20;
    let big = random_bytes(SIZE, 7);
    let f = t.path().join("big.bin");
    std::fs::write(&f, &big).unwrap();
    a.ok(&[
        "import",
        "--project",
        "Big",
        "--area",
        "uploads",
        f.to_str().unwrap(),
    ]);
    a.connect(&proxy.url(), &server.pin);

    // 1. The client is killed -9 in the middle of the upload; the next sync resumes it.
    proxy.rate.store(12 << 20, Ordering::SeqCst);
    let mut child = a
        .cmd()
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.up.load(Ordering::SeqCst) < 40 << 20 {
        assert!(Instant::now() < deadline, "the upload did not progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = proxy.up.load(Ordering::SeqCst);
    proxy.rate.store(0, Ordering::SeqCst);
    // 2. A cut connection and refused connections make the next tries fail cleanly.
    proxy.cut_after.store(1 << 20, Ordering::SeqCst);
    let o = a.run(&["sync"]);
    assert!(
        !o.status.success(),
        "a sync over connections cut after 1 MiB cannot finish"
    );
    proxy.cut_after.store(0, Ordering::SeqCst);
    proxy.refuse.store(true, Ordering::SeqCst);
    let o = a.run(&["sync"]);
    assert_eq!(
        code_of(&o),
        23,
        "refused connections: unreachable, try later: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    proxy.refuse.store(false, Ordering::SeqCst);
    let cut_bytes = proxy.up.load(Ordering::SeqCst) - before;
    let start = proxy.up.load(Ordering::SeqCst);
    a.ok(&["sync"]);
    let resumed = proxy.up.load(Ordering::SeqCst) - start;
    assert!(
        resumed < (SIZE as u64) - (16 << 20),
        "the upload resumed where it stopped: {resumed} bytes sent after {before} (and {cut_bytes} on cut connections)"
    );
    eprintln!("client kill -9: {before} bytes before, {resumed} after (of {SIZE})");
    let st: serde_json::Value = serde_json::from_str(&a.ok(&["sync", "status", "--json"])).unwrap();
    assert_eq!(st[0]["pending_ops"], 0, "{st}");

    // 3. The server is killed -9 in the middle of another upload and restarted.
    let big2 = random_bytes(SIZE, 8);
    let f2 = t.path().join("big2.bin");
    std::fs::write(&f2, &big2).unwrap();
    a.ok(&[
        "import",
        "--project",
        "Big",
        "--area",
        "uploads",
        f2.to_str().unwrap(),
    ]);
    proxy.rate.store(12 << 20, Ordering::SeqCst);
    let mark = proxy.up.load(Ordering::SeqCst);
    let mut child = a
        .cmd()
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while proxy.up.load(Ordering::SeqCst) - mark < 40 << 20 {
        assert!(
            Instant::now() < deadline + Duration::from_secs(120),
            "the second upload did not progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    let _ = child.wait();
    server.serve();
    proxy.rate.store(0, Ordering::SeqCst);
    let start = proxy.up.load(Ordering::SeqCst);
    a.ok(&["sync"]);
    let resumed = proxy.up.load(Ordering::SeqCst) - start;
    assert!(
        resumed < (SIZE as u64) - (16 << 20),
        "resumed after the server restart: {resumed}"
    );
    eprintln!("server kill -9: {resumed} bytes after the restart (of {SIZE})");

    // 4. A new device downloads both, byte for byte.
    let b = Dev::new("b");
    b.ok(&[
        "remote",
        "add",
        &server.url(),
        "--pin",
        &server.pin,
        "--tenant",
        "lab",
    ]);
    b.ok(&["login", "--email", "pi@lab.test"]);
    pair(&a, &b);
    b.ok(&["sync"]);
    let out = t.path().join("out");
    for (name, bytes) in [("big.bin", &big), ("big2.bin", &big2)] {
        b.ok(&["export", "--project", "Big", name, out.to_str().unwrap()]);
        assert!(
            std::fs::read(out.join(name)).unwrap() == *bytes,
            "{name} arrived intact"
        );
    }
    b.ok(&["verify"]);
}

mod share;
