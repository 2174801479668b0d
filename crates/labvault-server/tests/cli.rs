//! The `labvault-server` binary: init, pin, openapi, and the one-command quickstart that a
//! fresh user runs to get a working tenant.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_labvault-server");

#[test]
fn init_creates_a_tenant_and_pin_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = Command::new(BIN)
        .args([
            "--data-dir",
            d,
            "init",
            "--slug",
            "cli-lab",
            "--plan",
            "trial",
            "--owner-email",
            "pi@lab.test",
        ])
        .env("LABVAULT_OWNER_PASSWORD", "Correct-Horse-9")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("created tenant 'cli-lab' (trial)"),
        "{stdout}"
    );
    assert!(stdout.contains("trial expires at"), "{stdout}");
    assert!(!stdout.contains("Correct-Horse-9"));

    let weak = Command::new(BIN)
        .args([
            "--data-dir",
            d,
            "init",
            "--slug",
            "weak-lab",
            "--owner-email",
            "pi@lab.test",
        ])
        .env("LABVAULT_OWNER_PASSWORD", "password")
        .output()
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));

    let pin = |_: ()| {
        let o = Command::new(BIN)
            .args(["--data-dir", d, "pin"])
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let p1 = pin(());
    assert!(p1.starts_with("sha256/") && p1.len() == 7 + 44, "{p1}");
    assert_eq!(pin(()), p1, "the generated certificate is reused");
    let cert = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&cert).unwrap();
    assert_eq!(labvault_server::server::spki_pin(&der).unwrap(), p1);

    let o = Command::new(BIN).arg("openapi").output().unwrap();
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        labvault_server::api::openapi_json()
    );
}

#[tokio::test]
async fn quickstart_serves_a_working_tenant_with_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "quickstart",
            "--bind",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut password, mut addr, mut pin) = (None, None, None);
    while pin.is_none() {
        let l = lines.next().expect("quickstart output").unwrap();
        if let Some(p) = l.trim().strip_prefix("Owner password: ") {
            password = Some(p.to_string());
        }
        if let Some(a) = l.strip_prefix("labvault-server listening on https://") {
            addr = Some(a.parse::<std::net::SocketAddr>().unwrap());
        }
        if let Some(p) = l.strip_prefix("certificate pin: ") {
            pin = Some(p.to_string());
        }
    }
    let (password, addr) = (password.expect("credentials printed"), addr.unwrap());
    let cert = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let r: serde_json::Value = client
        .post(format!("https://localhost:{}/v1/auth/login", addr.port()))
        .json(
            &serde_json::json!({"tenant": "lab", "email": "owner@lab.local", "password": password}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(r["status"], "ok", "{r}");
    assert!(pin.unwrap().starts_with("sha256/"));
}
