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
            "--log-file",
            dir.path().join("srv.log").to_str().unwrap(),
        ])
        .env("RUST_LOG", "info,tower_http=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    let out = child.wait_with_output().unwrap();
    assert_eq!(r["status"], "ok", "{r}");
    assert!(pin.unwrap().starts_with("sha256/"));
    // `--log-file`: the log (rotated by size, see `log_file.rs`) holds the request, never the
    // password; nothing goes to stderr.
    let log = std::fs::read_to_string(dir.path().join("srv.log")).unwrap();
    assert!(log.contains("/v1/auth/login"), "{log}");
    assert!(!log.contains(&password));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the desktop client does: trust the server by its SPKI pin only (no CA).
#[derive(Debug)]
struct PinVerifier {
    pin: String,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let got = labvault_server::server::spki_pin(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        if got == self.pin {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate pin mismatch".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn pinned_client(pin: &str) -> reqwest::Client {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(PinVerifier {
            pin: pin.to_string(),
            provider,
        }))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_client_pinning_the_printed_spki_connects_and_a_wrong_pin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = labvault_server::DataDir::create(dir.path()).unwrap();
    let state = labvault_server::open_state(
        &data,
        labvault_server::Config::default(),
        std::sync::Arc::new(labvault_server::clock::SystemClock),
    )
    .unwrap();
    let server = labvault_server::start(
        "127.0.0.1:0".parse().unwrap(),
        labvault_server::server::self_signed(&data).unwrap(),
        state,
    )
    .await
    .unwrap();
    let url = format!("https://127.0.0.1:{}/v1/health", server.addr.port());
    let ok = pinned_client(&server.pin).get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert!(pinned_client(wrong).get(&url).send().await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_tenants_audit_chain_stays_exportable() {
    use labvault_server::clock::ManualClock;
    use labvault_server::secrets::{KdfParams, Secret};
    use labvault_server::{create_tenant, open_state, sweep_trials, Config, DataDir, NewTenant};
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::create(dir.path()).unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let cfg = Config {
        kdf: KdfParams::TEST,
        ..Config::default()
    };
    let id = {
        let st = open_state(&data, cfg, clock.clone()).unwrap();
        let t = create_tenant(
            &st,
            NewTenant {
                slug: "short-trial".into(),
                name: "Trial".into(),
                plan: labvault_wire::PlanTier::Trial,
                owner_email: "t@trial.test".into(),
                owner_password: Secret::new("Correct-Horse-9".into()),
            },
        )
        .await
        .unwrap();
        clock.advance(time::Duration::hours(25));
        assert_eq!(sweep_trials(&st).await.unwrap(), vec![t.id.clone()]);
        t.id
    };
    let d = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(["--data-dir", d])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["deleted-tenants"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("{id}\t")));
    let o = run(&["audit-export", "--tenant", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["tenant.create", "tenant.trial_expire"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("chain verified"));
    let o = run(&["audit-export", "--tenant", "no-such-tenant"]);
    assert!(!o.status.success());
}

/// A slow loris: connections that finish the TLS handshake and then send nothing are closed
/// after the first-request timeout, an idle one after the idle timeout, and one address cannot
/// hold more than its share of connections.
#[tokio::test]
async fn silent_and_idle_connections_are_closed_and_one_address_is_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let data = labvault_server::DataDir::create(dir.path()).unwrap();
    let cfg = labvault_server::Config {
        first_request_timeout_secs: 1,
        idle_timeout_secs: 2,
        max_connections_per_ip: 4,
        ..labvault_server::Config::default()
    };
    let state = labvault_server::open_state(
        &data,
        cfg,
        std::sync::Arc::new(labvault_server::clock::SystemClock),
    )
    .unwrap();
    let server = labvault_server::start(
        "127.0.0.1:0".parse().unwrap(),
        labvault_server::server::self_signed(&data).unwrap(),
        state,
    )
    .await
    .unwrap();
    let addr = server.addr;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls_cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(PinVerifier {
            pin: server.pin.clone(),
            provider,
        }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_cfg));
    let handshake = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap()
    };
    let closed_within = |mut s: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
                         secs: u64| async move {
        let mut b = [0u8; 64];
        let t0 = std::time::Instant::now();
        let r = tokio::time::timeout(std::time::Duration::from_secs(secs), s.read(&mut b)).await;
        (matches!(r, Ok(Ok(0)) | Ok(Err(_))), t0.elapsed())
    };

    // Handshake, then silence: closed after about a second.
    let silent = handshake().await;
    let (closed, after) = closed_within(silent, 5).await;
    assert!(closed, "a silent connection is closed");
    assert!(after < std::time::Duration::from_secs(4), "{after:?}");

    // One request, then idle: closed after the idle timeout (not before the answer).
    let mut idle = handshake().await;
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let (closed, after) = closed_within(idle, 6).await;
    assert!(closed, "an idle connection is closed");
    assert!(after >= std::time::Duration::from_secs(1), "{after:?}");

    // Four connections from one address are held; the fifth is refused at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut fifth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut b = [0u8; 8];
    let r = tokio::time::timeout(std::time::Duration::from_millis(900), fifth.read(&mut b)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "the fifth connection is closed at once: {r:?}"
    );
    drop(held);
    // Slots come back: a new connection works once the others are gone.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let ok = pinned_client(&server.pin)
        .get(format!("https://127.0.0.1:{}/v1/health", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    server.stop().await;
}

/// The same error contract whatever goes wrong with a body: a stalled one is `408
/// request_timeout`, an oversized one `413 payload_too_large`, over HTTP/1.1 and HTTP/2, each
/// with its `{code, message}` body.
#[tokio::test]
async fn stalled_and_oversized_bodies_get_the_error_contract_on_both_protocols() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let data = labvault_server::DataDir::create(dir.path()).unwrap();
    let cfg = labvault_server::Config {
        request_timeout_secs: 1,
        idle_timeout_secs: 10,
        ..labvault_server::Config::default()
    };
    let state = labvault_server::open_state(
        &data,
        cfg,
        std::sync::Arc::new(labvault_server::clock::SystemClock),
    )
    .unwrap();
    let server = labvault_server::start(
        "127.0.0.1:0".parse().unwrap(),
        labvault_server::server::self_signed(&data).unwrap(),
        state,
    )
    .await
    .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = |alpn: &[&[u8]]| {
        let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(PinVerifier {
                pin: server.pin.clone(),
                provider: provider.clone(),
            }))
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        c
    };

    // HTTP/1.1: a body announced at 200 bytes, 20 sent, then nothing.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls(&[b"http/1.1"])))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"tenant\":\"x\",\"email",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut b = [0u8; 4096];
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&b[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");

    // HTTP/2 and HTTP/1.1: a body over the route's limit.
    let url = format!("https://127.0.0.1:{}/v1/auth/login", server.addr.port());
    let big =
        serde_json::json!({"tenant": "x", "email": "a@b.cd", "password": "p".repeat(200_000)});
    for (alpn, h2) in [
        (&[b"h2".as_slice()][..], true),
        (&[b"http/1.1".as_slice()][..], false),
    ] {
        let mut b = reqwest::Client::builder().use_preconfigured_tls(tls(alpn));
        if h2 {
            b = b.http2_prior_knowledge();
        }
        let r = b
            .build()
            .unwrap()
            .post(&url)
            .json(&big)
            .send()
            .await
            .unwrap();
        let version = r.version();
        assert_eq!(r.status(), 413, "{version:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "payload_too_large", "{version:?}: {v}");
        // Streamed, with no length announced.
        let chunks = (0..256).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024]));
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let mut b = reqwest::Client::builder().use_preconfigured_tls(tls(alpn));
        if h2 {
            b = b.http2_prior_knowledge();
        }
        let r = b
            .build()
            .unwrap()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{version:?} streamed");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "payload_too_large", "{version:?} streamed: {v}");
    }
    server.stop().await;
}

/// The embedded database is encrypted at rest (SQLCipher, its key wrapped in `keys.json`): a
/// database written before encryption is converted at the next start with everything in it
/// (members, the audit chain), and afterwards no member's address is in the file; a wrong
/// key is refused, and missing keys are named, before anything is written.
#[tokio::test]
async fn the_database_is_encrypted_at_rest_and_an_older_plain_one_is_converted() {
    use labvault_server::clock::SystemClock;
    use labvault_server::secrets::{KdfParams, Secret, SecretBox};
    use labvault_server::store::blobs::FsBlobStore;
    use labvault_server::store::sqlite::SqliteStore;
    use labvault_server::{create_tenant, open_state, AppState, Config, DataDir, NewTenant};
    use std::sync::Arc;
    const MARKER: &str = "marker-owner-7d1c@secret-lab.test";
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::create(dir.path()).unwrap();
    let cfg = Config {
        kdf: KdfParams::TEST,
        ..Config::default()
    };
    // A data directory of the version before: a plain database with a tenant in it.
    {
        let plain = Arc::new(SqliteStore::open(&data.db()).unwrap());
        let st = AppState::new(
            labvault_server::app::StateParts {
                store: plain.clone(),
                sync: plain.clone(),
                alerts: plain,
                blobs: Arc::new(FsBlobStore::open(&data.blobs()).unwrap()),
                clock: Arc::new(SystemClock),
                jwt: labvault_server::jwt::JwtKey::new(vec![7; 32]),
                sealer: SecretBox::new([8; 32]),
                anchor_key: ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
            },
            cfg.clone(),
        );
        create_tenant(
            &st,
            NewTenant {
                slug: "lab".into(),
                name: "Lab".into(),
                plan: labvault_wire::PlanTier::Professional,
                owner_email: MARKER.into(),
                owner_password: Secret::new("Correct-Horse-9".into()),
            },
        )
        .await
        .unwrap();
    }
    let holds_marker = |p: &std::path::Path| {
        std::fs::read(p).is_ok_and(|b| b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()))
    };
    assert!(holds_marker(&data.db()), "the old database was plain");

    let tenant = {
        let st = open_state(&data, cfg.clone(), Arc::new(SystemClock)).unwrap();
        let t = st.store.tenant_by_slug("lab").await.unwrap();
        let chain = st.store.audit_chain(&t.id).await.unwrap();
        assert!(!chain.is_empty());
        labvault_server::chain::verify(&chain).unwrap();
        t.id
    };
    let head = std::fs::read(data.db()).unwrap();
    assert!(!head.starts_with(b"SQLite format 3"), "encrypted");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        assert!(
            !holds_marker(&p),
            "{} holds a member's address",
            p.display()
        );
        assert!(
            !p.to_string_lossy().ends_with(".encrypting"),
            "left {}",
            p.display()
        );
    }
    // Reopened: already encrypted, nothing to convert, everything there.
    {
        let st = open_state(&data, cfg.clone(), Arc::new(SystemClock)).unwrap();
        assert_eq!(st.store.tenant_by_slug("lab").await.unwrap().id, tenant);
    }
    // Another key: refused by name, the database unchanged. (The keys are wrapped in
    // keys.json; the database key swapped with the token-signing key does not unwrap.)
    let key = dir.path().join("keys.json");
    let good = std::fs::read(&key).unwrap();
    let before = std::fs::read(data.db()).unwrap();
    let mut swapped: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let jwt = swapped["keys"]["jwt"].clone();
    swapped["keys"]["db"] = jwt;
    std::fs::write(&key, serde_json::to_vec(&swapped).unwrap()).unwrap();
    let e = open_state(&data, cfg.clone(), Arc::new(SystemClock))
        .err()
        .expect("a wrong key is refused")
        .to_string();
    assert!(e.contains("the db key does not unwrap"), "{e}");
    std::fs::remove_file(&key).unwrap();
    let e = open_state(&data, cfg.clone(), Arc::new(SystemClock))
        .err()
        .expect("missing keys are refused")
        .to_string();
    assert!(e.contains("missing") && e.contains("keys.json"), "{e}");
    assert!(
        !key.exists(),
        "no new key was made for an encrypted database"
    );
    assert_eq!(std::fs::read(data.db()).unwrap(), before);
    std::fs::write(&key, &good).unwrap();
    assert!(open_state(&data, cfg, Arc::new(SystemClock)).is_ok());
}

/// A SoftHSM2 token of its own (configuration, token directory), initialised with
/// `softhsm2-util` like an operator would: the real PKCS#11 module, not a mock.
struct SoftHsm {
    dir: tempfile::TempDir,
    module: std::path::PathBuf,
}

const HSM_PIN: &str = "4321-lab";

impl SoftHsm {
    /// `None` when SoftHSM2 is not installed and the run is not strict (CI=true fails).
    fn new() -> Option<SoftHsm> {
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        ]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists());
        let strict = ["CI", "LABVAULT_STRICT_TESTS"].iter().any(|v| {
            std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0" && x != "false")
        });
        let Some(module) = module else {
            assert!(
                !strict,
                "SoftHSM2 (package softhsm2) is required: run scripts/setup.sh"
            );
            eprintln!("skipping: SoftHSM2 is not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm { dir, module };
        let out = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "labvault",
                "--pin",
                HSM_PIN,
            ])
            .args(["--so-pin", "87654321"])
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .expect("softhsm2-util runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(hsm)
    }

    fn conf(&self) -> std::path::PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// `labvault-server` with this token as its KEK custodian.
    fn server(&self, data: &std::path::Path, pin: &str) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir")
            .arg(data)
            .env("LABVAULT_HSM_MODULE", &self.module)
            .env("SOFTHSM2_CONF", self.conf())
            .env("LABVAULT_HSM_PIN", pin)
            .env("LABVAULT_OWNER_PASSWORD", "Correct-Horse-9");
        c
    }
}

fn run(mut c: Command) -> (bool, String) {
    let o = c.stdin(Stdio::null()).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Every file under `dir` with its bytes: what a thief of the data directory gets.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The server's keys live wrapped under a KEK inside a real PKCS#11 token (SoftHSM2): the
/// plain key files of an earlier version are taken over and destroyed, the data directory
/// alone holds no key and no member's address, a wrong PIN, a missing token or the wrong
/// custodian are refused by name before anything is written, rotation destroys the old KEK
/// version and is audited, and keys in the embedded key file move into the HSM.
#[test]
fn server_keys_are_wrapped_by_a_kek_in_the_hsm_and_rotate() {
    let Some(hsm) = SoftHsm::new() else { return };
    const MARKER: &str = "hsm-owner-5e2a@secret-lab.test";
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path();
    // A data directory of an earlier version: one plain key file per key.
    let legacy: Vec<(&str, [u8; 32])> = vec![
        ("db.key", [0x11; 32]),
        ("jwt.key", [0x22; 32]),
        ("secrets.key", [0x33; 32]),
        ("anchor.key", [0x44; 32]),
    ];
    for (f, k) in &legacy {
        std::fs::write(data.join(f), hex::encode(k)).unwrap();
    }
    // ... and its generated certificate with the key in plain PEM.
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::create_dir_all(data.join("tls")).unwrap();
    std::fs::write(data.join("tls/cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(data.join("tls/key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let legacy_pin = labvault_server::server::spki_pin(ck.cert.der()).unwrap();
    let mut init = hsm.server(data, HSM_PIN);
    init.args([
        "init",
        "--slug",
        "hsm-lab",
        "--plan",
        "professional",
        "--owner-email",
        MARKER,
    ]);
    let (ok, out) = run(init);
    assert!(ok, "{out}");

    // The generated TLS certificate's key is kept sealed: the pin is stable across starts.
    let pin = || {
        let mut c = hsm.server(data, HSM_PIN);
        c.arg("pin");
        let (ok, out) = run(c);
        assert!(ok, "{out}");
        out
    };
    let first_pin = pin();
    assert_eq!(
        first_pin.trim(),
        legacy_pin,
        "the certificate of before is kept"
    );
    assert_eq!(pin(), first_pin);
    assert!(
        !data.join("tls/key.pem").exists(),
        "the plain TLS key was removed"
    );

    // The plain key files are gone and no file holds a key or the owner's address.
    let files = snapshot(data);
    for (p, bytes) in &files {
        assert!(
            !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
            "{} holds a private key in PEM",
            p.display()
        );
    }
    for (f, k) in &legacy {
        assert!(!data.join(f).exists(), "{f} was left in plaintext");
        for (p, bytes) in &files {
            for needle in [k.to_vec(), hex::encode(k).into_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{} holds the {f} key",
                    p.display()
                );
            }
        }
    }
    for (p, bytes) in &files {
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "{} holds the owner's address",
            p.display()
        );
    }
    assert!(
        !data.join("kek.key").exists(),
        "the KEK is in the HSM, not in a file"
    );
    // The database is keyed with the key taken over (an old database stays readable).
    {
        let c = rusqlite::Connection::open(data.join("labvault-server.db")).unwrap();
        c.execute_batch(&format!(
            "PRAGMA key = \"x'{}'\";",
            hex::encode([0x11u8; 32])
        ))
        .unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    // Refusals by name, nothing written.
    let before = snapshot(data);
    let (ok, out) = run(hsm.server(data, "0000-wrong"));
    assert!(!ok);
    let (ok, out2) = {
        let mut c = hsm.server(data, "0000-wrong");
        c.arg("deleted-tenants");
        run(c)
    };
    assert!(!ok && out2.contains("refused the PIN"), "{out}\n{out2}");
    let mut other_label = hsm.server(data, HSM_PIN);
    other_label.args(["--hsm-token", "other-token", "deleted-tenants"]);
    let (ok, out) = run(other_label);
    assert!(!ok && out.contains("--hsm-token labvault"), "{out}");
    // The token removed: the same configuration, its token directory empty.
    let removed = tempfile::tempdir().unwrap();
    let removed_conf = removed.path().join("softhsm2.conf");
    std::fs::write(
        &removed_conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            removed.path().display()
        ),
    )
    .unwrap();
    let mut no_token = hsm.server(data, HSM_PIN);
    no_token
        .env("SOFTHSM2_CONF", &removed_conf)
        .arg("deleted-tenants");
    let (ok, out) = run(no_token);
    assert!(
        !ok && out.contains("no PKCS#11 token labelled 'labvault'"),
        "{out}"
    );
    let mut no_module = hsm.server(data, HSM_PIN);
    no_module
        .env("LABVAULT_HSM_MODULE", "/nonexistent/libpkcs11.so")
        .arg("deleted-tenants");
    let (ok, out) = run(no_module);
    assert!(
        !ok && out.contains("cannot load the PKCS#11 module"),
        "{out}"
    );
    let mut no_hsm = Command::new(BIN);
    no_hsm.arg("--data-dir").arg(data).arg("deleted-tenants");
    let (ok, out) = run(no_hsm);
    assert!(
        !ok && out.contains("wrapped by the PKCS#11 token 'labvault'"),
        "{out}"
    );
    assert_eq!(snapshot(data), before, "a refused start wrote nothing");

    // Rotation: a new KEK version, audited in the server chain; the old version is kept for
    // the backups wrapped under it (keys.json of before still opens) until destroyed.
    let old_keys = std::fs::read(data.join("keys.json")).unwrap();
    let mut rotate = hsm.server(data, HSM_PIN);
    rotate.arg("rotate-kek");
    let (ok, out) = run(rotate);
    assert!(
        ok && out.contains("version 1 -> the PKCS#11 token 'labvault' version 2"),
        "{out}"
    );
    assert!(out.contains("kept retired KEK versions [1]"), "{out}");
    let mut audit = hsm.server(data, HSM_PIN);
    audit.args(["audit-export", "--tenant", "_system"]);
    let (ok, out) = run(audit);
    assert!(
        ok && out.contains("server.kek_rotate")
            && out.contains("from=pkcs11:labvault v1 to=pkcs11:labvault v2"),
        "{out}"
    );
    let new_keys = std::fs::read(data.join("keys.json")).unwrap();
    std::fs::write(data.join("keys.json"), &old_keys).unwrap();
    let mut older = hsm.server(data, HSM_PIN);
    older.arg("deleted-tenants");
    let (ok, out) = run(older);
    assert!(
        ok,
        "keys wrapped under the retired version still open: {out}"
    );
    std::fs::write(data.join("keys.json"), &new_keys).unwrap();
    // After a compromise: every earlier version destroyed at once.
    let mut rotate = hsm.server(data, HSM_PIN);
    rotate.args(["rotate-kek", "--destroy-retired"]);
    let (ok, out) = run(rotate);
    assert!(ok && out.contains("destroyed KEK versions [1, 2]"), "{out}");
    let mut list = hsm.server(data, HSM_PIN);
    list.arg("deleted-tenants");
    let (ok, out) = run(list);
    assert!(ok, "the server opens after rotation: {out}");
    std::fs::write(data.join("keys.json"), &old_keys).unwrap();
    let mut stale = hsm.server(data, HSM_PIN);
    stale.arg("deleted-tenants");
    let (ok, out) = run(stale);
    assert!(
        !ok && out.contains("KEK version 1, which the PKCS#11 token 'labvault' does not hold"),
        "the old KEK version was destroyed: {out}"
    );
    std::fs::write(data.join("keys.json"), &new_keys).unwrap();

    // Keys in the embedded key file move into the HSM.
    let file_dir = tempfile::tempdir().unwrap();
    let mut init = Command::new(BIN);
    init.arg("--data-dir")
        .arg(file_dir.path())
        .args([
            "init",
            "--slug",
            "file-lab",
            "--owner-email",
            "pi@file-lab.test",
        ])
        .env("LABVAULT_OWNER_PASSWORD", "Correct-Horse-9");
    let (ok, out) = run(init);
    assert!(ok, "{out}");
    let kek_file = file_dir.path().join("kek.key");
    assert!(kek_file.exists());
    let mut plain_hsm = hsm.server(file_dir.path(), HSM_PIN);
    plain_hsm.arg("deleted-tenants");
    let (ok, out) = run(plain_hsm);
    assert!(!ok && out.contains("rotate-kek --from-kek-file"), "{out}");
    let mut mv = hsm.server(file_dir.path(), HSM_PIN);
    mv.arg("rotate-kek").arg("--from-kek-file").arg(&kek_file);
    let (ok, out) = run(mv);
    assert!(
        ok && out.contains("the key file version 1 -> the PKCS#11 token 'labvault'"),
        "{out}"
    );
    assert!(!kek_file.exists(), "the plain KEK file was destroyed");
    let mut after = hsm.server(file_dir.path(), HSM_PIN);
    after.args(["audit-export", "--tenant", "_system"]);
    let (ok, out) = run(after);
    assert!(ok && out.contains("server.kek_rotate"), "{out}");
}

/// The running server rotates its key-encryption key on schedule: not before the keys are
/// `days` old, then once (a new KEK version in the key file, the keys re-wrapped, audited in
/// the server chain as "scheduled"), and the server opens with the rotated keys.
#[tokio::test]
async fn the_kek_rotates_on_its_schedule() {
    use labvault_server::clock::ManualClock;
    use labvault_server::server::rotate_kek_if_due;
    use labvault_server::{open_state, Config, DataDir, KekChoice};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::create(dir.path()).unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let st = open_state(&data, Config::default(), clock.clone()).unwrap();
    let kek = KekChoice::default_for(dir.path());
    let version = || {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("keys.json")).unwrap()).unwrap();
        v["kek_version"].as_u64().unwrap()
    };
    assert_eq!(version(), 1);
    clock.advance(time::Duration::days(89));
    assert!(rotate_kek_if_due(&st, &data, &kek, 90)
        .await
        .unwrap()
        .is_none());
    assert!(
        rotate_kek_if_due(&st, &data, &kek, 0)
            .await
            .unwrap()
            .is_none(),
        "0 = off"
    );
    clock.advance(time::Duration::days(2));
    let r = rotate_kek_if_due(&st, &data, &kek, 90)
        .await
        .unwrap()
        .expect("due");
    assert_eq!((r.from.1, r.to.1, r.keys), (1, 2, 4));
    assert_eq!(version(), 2);
    assert!(
        rotate_kek_if_due(&st, &data, &kek, 90)
            .await
            .unwrap()
            .is_none(),
        "not again until 90 days after this rotation"
    );
    let kek_versions = || {
        let f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("kek.key")).unwrap()).unwrap();
        f["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kek_versions(),
        [1, 2],
        "version 1 kept for the backups wrapped under it"
    );
    clock.advance(time::Duration::days(91));
    let r = rotate_kek_if_due(&st, &data, &kek, 90)
        .await
        .unwrap()
        .expect("due");
    assert_eq!((r.destroyed, r.retained), (vec![1], vec![2]));
    assert_eq!(
        kek_versions(),
        [2, 3],
        "version 1 destroyed once its backups expired"
    );
    let chain = st.store.audit_chain("_system").await.unwrap();
    let ev = chain
        .iter()
        .find(|e| e.action.as_str() == "server.kek_rotate")
        .expect("audited");
    assert_eq!(ev.user, "scheduled");
    assert!(
        ev.detail.contains("from=file v1 to=file v2"),
        "{}",
        ev.detail
    );
    drop(st);
    assert!(open_state(&data, Config::default(), clock).is_ok());
}

/// `backup`, `backups`, `verify-backup` and `restore` from the command line: a restore into
/// an empty data directory (with the KEK file the operator kept apart) serves the same tenant,
/// both operations are in the server's audit chain, and an altered snapshot is refused.
#[test]
fn backup_commands_round_trip_and_refuse_an_altered_snapshot() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let server = |dir: &std::path::Path| {
        let mut c = Command::new(BIN);
        c.arg("--data-dir")
            .arg(dir)
            .env("LABVAULT_OWNER_PASSWORD", "Correct-Horse-9");
        c
    };
    let mut init = server(data.path());
    init.args([
        "init",
        "--slug",
        "bk-lab",
        "--owner-email",
        "pi@bk-lab.test",
    ]);
    let (ok, out) = run(init);
    assert!(ok, "{out}");
    let tenant_id = out
        .split(", id ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let mut backup = server(data.path());
    backup.arg("backup").arg("--to").arg(repo.path());
    let (ok, out) = run(backup);
    assert!(ok && out.contains("snapshot "), "{out}");
    // A failed backup (the destination is not a repository) is refused and audited.
    let not_repo = tempfile::tempdir().unwrap();
    std::fs::write(not_repo.path().join("notes.txt"), "mine").unwrap();
    let mut failed = server(data.path());
    failed.arg("backup").arg("--to").arg(not_repo.path());
    let (ok, out) = run(failed);
    assert!(
        !ok && out.contains("neither empty nor a LabVault backup repository"),
        "{out}"
    );
    let mut audit = server(data.path());
    audit.args(["audit-export", "--tenant", "_system"]);
    let (_, out) = run(audit);
    assert!(
        out.lines()
            .any(|l| l.contains("server.backup") && l.contains("\"result\":\"failure\"")),
        "{out}"
    );
    // ... and raised as an alert to the lab's admins (a security event in its trail).
    let mut trail = server(data.path());
    trail.args(["audit-export", "--tenant", &tenant_id]);
    let (ok, out) = run(trail);
    assert!(
        ok && out
            .lines()
            .any(|l| l.contains("security.alert") && l.contains("rule=backup_failed")),
        "{out}"
    );
    let mut list = server(data.path());
    list.arg("backups").arg("--from").arg(repo.path());
    let (ok, out) = run(list);
    assert!(ok && out.lines().count() == 1, "{out}");
    let mut verify = server(data.path());
    verify
        .args(["verify-backup", "--all", "--from"])
        .arg(repo.path());
    let (ok, out) = run(verify);
    assert!(ok && out.contains("verified"), "{out}");

    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(data.path().join("kek.key"), restored.path().join("kek.key")).unwrap();
    let mut restore = server(restored.path());
    restore.arg("restore").arg("--from").arg(repo.path());
    let (ok, out) = run(restore);
    assert!(ok && out.contains("restored snapshot"), "{out}");
    let mut audit = server(restored.path());
    audit.args(["audit-export", "--tenant", "_system"]);
    let (ok, out) = run(audit);
    assert!(
        ok && out.contains("tenant.create") && out.contains("server.restore"),
        "{out}"
    );
    let mut audit = server(data.path());
    audit.args(["audit-export", "--tenant", "_system"]);
    let (ok, out) = run(audit);
    assert!(
        ok && out.contains("server.backup") && out.contains("\"result\":\"success\""),
        "{out}"
    );
    let mut again = server(restored.path());
    again.arg("restore").arg("--from").arg(repo.path());
    let (ok, out) = run(again);
    assert!(!ok && out.contains("not empty"), "{out}");

    let manifest = walk_files(repo.path())
        .into_iter()
        .find(|p| p.ends_with("manifest.json"))
        .unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"created_at\": 1", "\"created_at\": 2"),
    )
    .unwrap();
    let mut verify = server(data.path());
    verify.args(["verify-backup", "--from"]).arg(repo.path());
    let (ok, out) = run(verify);
    assert!(!ok && out.contains("does not authenticate"), "{out}");
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(data.path().join("kek.key"), empty.path().join("kek.key")).unwrap();
    let mut restore = server(empty.path());
    restore.arg("restore").arg("--from").arg(repo.path());
    let (ok, out) = run(restore);
    assert!(!ok && out.contains("does not authenticate"), "{out}");
    assert!(
        !empty.path().join("labvault-server.db").exists(),
        "nothing restored"
    );
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    snapshot(dir).into_keys().collect()
}
