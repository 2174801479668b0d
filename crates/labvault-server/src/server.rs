//! Data directory, TLS (1.3 only) with a self-signed certificate and SPKI pin, the accept
//! loop, tenant bootstrap and the trial sweeper.

use labvault_governance::audit::actions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use labvault_wire::{AuditResult, PlanTier, Role};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::app::{AppState, Config, StateParts};
use crate::clock::Clock;
use crate::conn_guard::{Activity, PerAddress, Watched};
use crate::jwt::JwtKey;
use crate::keys::{KekChoice, KeyError, KeyPaths, ServerKeys};
use crate::secrets;
use crate::store::blobs::FsBlobStore;
use crate::store::sqlite::{SqliteStore, SYSTEM_TENANT};
use crate::store::{AuditDraft, StoreError, TenantRow, UserRow};

/// Failures while starting the server or bootstrapping a tenant.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Filesystem problem with the data directory or key files.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// Certificate or key unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// Storage failure.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The server's keys (custodian, wrapped keys).
    #[error("server keys: {0}")]
    Keys(#[from] KeyError),
    /// Bad bootstrap input (weak password, invalid email...).
    #[error("{0}")]
    Invalid(String),
}

/// Where the server keeps its state.
#[derive(Debug, Clone)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// Creates the directory (mode 0700 on Unix).
    pub fn create(path: &Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(path.join("tls"))?;
        restrict(path, 0o700)?;
        Ok(DataDir(path.to_path_buf()))
    }
    /// The SQLite database.
    pub fn db(&self) -> PathBuf {
        self.0.join("labvault-server.db")
    }
    /// Encrypted blob bytes (the file blob store).
    pub fn blobs(&self) -> PathBuf {
        self.0.join("blobs")
    }
    /// Generated certificate.
    pub fn cert(&self) -> PathBuf {
        self.0.join("tls").join("cert.pem")
    }
    /// The generated certificate's key as an earlier version kept it (plain PEM): sealed
    /// into [`DataDir::sealed_key`] and removed at the next start.
    pub fn key(&self) -> PathBuf {
        self.0.join("tls").join("key.pem")
    }
    /// The generated certificate's key, sealed under the server's secrets key.
    pub fn sealed_key(&self) -> PathBuf {
        self.0.join("tls").join("key.sealed")
    }
}

/// Associated data of the sealed TLS key (`tls/key.sealed`, and in backups).
pub const TLS_KEY_AAD: &str = "labvault/server/tls-key";

#[cfg(unix)]
fn restrict(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}
#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Writes a file only its owner can read (mode 0600), through a rename.
pub(crate) fn write_secret_file(p: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    restrict(&tmp, 0o600)?;
    std::fs::rename(tmp, p)
}

/// The server's keys of this data directory, unwrapped by `kek` (made at the first start).
pub fn load_keys(dir: &DataDir, kek: &KekChoice) -> Result<ServerKeys, ServerError> {
    let db = dir.db();
    let plain = crate::store::sqlite::is_plain(&db)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(KeyPaths::new(&dir.0).load(kek, db.exists(), plain, now)?)
}

/// A raw connection to the data directory's (encrypted) database, for tools and tests that
/// reach below the store; the keys are those of the default key file.
pub fn open_db_raw(dir: &DataDir) -> Result<rusqlite::Connection, ServerError> {
    open_db_raw_with(dir, &KekChoice::default_for(&dir.0))
}

/// [`open_db_raw`] with the keys unwrapped by `kek`.
pub fn open_db_raw_with(
    dir: &DataDir,
    kek: &KekChoice,
) -> Result<rusqlite::Connection, ServerError> {
    let keys = load_keys(dir, kek)?;
    Ok(SqliteStore::connect_raw(
        &dir.db(),
        crate::store::sqlite::DbKey::new(keys.db.clone()),
    )?)
}

/// Opens the store and builds the application state, the keys unwrapped from the default
/// key file (`kek.key` in the data directory).
pub fn open_state(
    dir: &DataDir,
    cfg: Config,
    clock: Arc<dyn Clock>,
) -> Result<AppState, ServerError> {
    open_state_with(dir, cfg, clock, &KekChoice::default_for(&dir.0))
}

/// [`open_state`] with the keys unwrapped by `kek` (an HSM, or another key file).
pub fn open_state_with(
    dir: &DataDir,
    cfg: Config,
    clock: Arc<dyn Clock>,
    kek: &KekChoice,
) -> Result<AppState, ServerError> {
    let keys = load_keys(dir, kek)?;
    let sqlite = Arc::new(SqliteStore::open_encrypted(
        &dir.db(),
        crate::store::sqlite::DbKey::new(keys.db.clone()),
    )?);
    let parts = StateParts {
        store: sqlite.clone(),
        sync: sqlite.clone(),
        alerts: sqlite,
        blobs: Arc::new(FsBlobStore::open(&dir.blobs())?),
        clock,
        jwt: JwtKey::new(keys.jwt.to_vec()),
        sealer: crate::secrets::SecretBox::new(*keys.secrets),
        anchor_key: ed25519_dalek::SigningKey::from_bytes(&keys.anchor),
    };
    Ok(AppState::new(parts, cfg))
}

/// Rotates the key-encryption key of this data directory (see [`KeyPaths::rotate`]) and
/// records it in the server's audit chain.
pub async fn rotate_kek(
    state: &AppState,
    dir: &DataDir,
    to: &KekChoice,
    from: Option<&KekChoice>,
    destroy_retired_before: i64,
    actor: &str,
) -> Result<crate::keys::Rotation, ServerError> {
    let now = state.now();
    let r = KeyPaths::new(&dir.0).rotate(to, from, now, destroy_retired_before)?;
    audit_server_event(
        state,
        actor,
        actions::SERVER_KEK_ROTATE,
        "/server/keys",
        AuditResult::Success,
        format!(
            "from={} v{} to={} v{} keys={} destroyed={:?} retained={:?}",
            custodian_tag(&r.from.0),
            r.from.1,
            custodian_tag(&r.to.0),
            r.to.1,
            r.keys,
            r.destroyed,
            r.retained
        ),
    )
    .await?;
    tracing::info!(from = r.from.1, to = r.to.1, "key-encryption key rotated");
    Ok(r)
}

/// How long retired KEK versions are kept: the default retention of backups, which hold keys
/// wrapped under them.
pub const RETIRED_KEK_DAYS: i64 = 90;

/// Rotates the key-encryption key if the keys were last wrapped `days` or more ago (by the
/// server's clock); what the running server does on its schedule. Retired versions older
/// than [`RETIRED_KEK_DAYS`] are destroyed.
pub async fn rotate_kek_if_due(
    state: &AppState,
    dir: &DataDir,
    kek: &KekChoice,
    days: u32,
) -> Result<Option<crate::keys::Rotation>, ServerError> {
    let due = match KeyPaths::new(&dir.0).wrapped_at()? {
        Some((at, _)) => days > 0 && state.now() - at >= i64::from(days) * 86_400,
        None => false,
    };
    if !due {
        return Ok(None);
    }
    let destroy_before = state.now() - RETIRED_KEK_DAYS * 86_400;
    rotate_kek(state, dir, kek, None, destroy_before, "scheduled")
        .await
        .map(Some)
}

/// Appends an event of the server itself (operations: key rotations, backups, restores) to
/// the server chain, by `actor` (`operator` for the command line, `scheduled` for the server).
pub async fn audit_server_event(
    state: &AppState,
    actor: &str,
    action: &str,
    resource: &str,
    result: AuditResult,
    detail: String,
) -> Result<(), ServerError> {
    state
        .store
        .append_audit(
            SYSTEM_TENANT,
            AuditDraft {
                timestamp: state.clock.now(),
                user: actor.into(),
                action: action.into(),
                resource: resource.into(),
                ip_address: "local".into(),
                user_agent: "labvault-server".into(),
                result,
                detail,
            },
        )
        .await?;
    Ok(())
}

fn custodian_tag(c: &crate::keys::kek::Custodian) -> String {
    match c {
        crate::keys::kek::Custodian::File => "file".into(),
        crate::keys::kek::Custodian::Pkcs11 { token } => format!("pkcs11:{token}"),
    }
}

// ------------------------------------------------------------------ TLS

/// A certificate chain and its key.
pub struct TlsMaterial {
    /// Chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// PEM of the leaf (for clients that trust it directly).
    pub cert_pem: String,
}

/// Generates a self-signed certificate for localhost on first use, then reuses it; its key is
/// kept sealed under the server's secrets key (unwrapped from the default key file).
pub fn self_signed(dir: &DataDir) -> Result<TlsMaterial, ServerError> {
    self_signed_with(dir, &KekChoice::default_for(&dir.0))
}

/// [`self_signed`] with the server keys unwrapped by `kek`. The key is never on disk in
/// plaintext: `tls/key.sealed` (AES-256-GCM under the secrets key); a plain `tls/key.pem`
/// of an earlier version is sealed, then overwritten and removed.
pub fn self_signed_with(dir: &DataDir, kek: &KekChoice) -> Result<TlsMaterial, ServerError> {
    let keys = load_keys(dir, kek)?;
    let sealer = crate::secrets::SecretBox::new(*keys.secrets);
    let seal = |pem: &[u8]| -> Result<(), ServerError> {
        write_secret_file(&dir.sealed_key(), &sealer.seal(TLS_KEY_AAD, pem))?;
        Ok(())
    };
    if dir.key().exists() && !dir.sealed_key().exists() {
        let pem = zeroize::Zeroizing::new(std::fs::read(dir.key())?);
        seal(&pem)?;
    }
    crate::keys::shred(&dir.key())?;
    if !dir.cert().exists() || !dir.sealed_key().exists() {
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        seal(zeroize::Zeroizing::new(ck.signing_key.serialize_pem()).as_bytes())?;
        std::fs::write(dir.cert(), ck.cert.pem())?;
    }
    let sealed = std::fs::read(dir.sealed_key())?;
    let pem = sealer.open(TLS_KEY_AAD, &sealed).ok_or_else(|| {
        ServerError::Tls(format!(
            "{} does not open with this server's keys (altered, or from another data directory)",
            dir.sealed_key().display()
        ))
    })?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", dir.sealed_key().display())))?;
    let cert_pem = std::fs::read_to_string(dir.cert())?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", dir.cert().display())))?;
    Ok(TlsMaterial {
        certs,
        key,
        cert_pem,
    })
}

/// Loads a PEM certificate chain and key.
pub fn load_pem(cert: &Path, key: &Path) -> Result<TlsMaterial, ServerError> {
    let cert_pem = std::fs::read_to_string(cert)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    Ok(TlsMaterial {
        certs,
        key,
        cert_pem,
    })
}

/// Pin of the leaf's public key: `sha256/` + base64(SHA-256(SubjectPublicKeyInfo DER)),
/// the HPKP form; stable across certificate renewals that keep the key.
pub fn spki_pin(cert: &CertificateDer<'_>) -> Result<String, ServerError> {
    let spki = spki_der(cert.as_ref())
        .ok_or_else(|| ServerError::Tls("cannot parse certificate".into()))?;
    Ok(format!("sha256/{}", STANDARD.encode(Sha256::digest(spki))))
}

/// One DER element: its tag, the whole encoding, its content, and what follows it.
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Reads one DER TLV.
fn tlv(d: &[u8]) -> Option<Tlv<'_>> {
    let tag = *d.first()?;
    let first = *d.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if d.len() < end {
        return None;
    }
    Some((tag, &d[..end], &d[hdr..end], &d[end..]))
}

/// SubjectPublicKeyInfo element of an X.509 certificate.
fn spki_der(cert: &[u8]) -> Option<&[u8]> {
    let (_, _, cert_content, _) = tlv(cert)?; // Certificate SEQUENCE
    let (_, _, tbs, _) = tlv(cert_content)?; // TBSCertificate SEQUENCE
    let mut rest = tbs;
    let (tag, _, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    // serial, signature, issuer, validity, subject
    for _ in 0..5 {
        let (_, _, _, r) = tlv(rest)?;
        rest = r;
    }
    let (tag, whole, _, _) = tlv(rest)?;
    (tag == 0x30).then_some(whole)
}

/// rustls configuration: TLS 1.3 only, ring provider, h2 + http/1.1.
pub fn rustls_config(m: TlsMaterial) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| ServerError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(m.certs, m.key)
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

// ------------------------------------------------------------------ serving

/// A running server (tests and the CLI).
pub struct RunningServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// SPKI pin of the certificate.
    pub pin: String,
    /// Leaf certificate PEM.
    pub cert_pem: String,
    /// The state (tests use it to reach the clock and store).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.join).await;
    }
}

/// Binds and serves `state` over TLS until stopped; also starts the trial sweeper.
pub async fn start(
    bind: SocketAddr,
    tls: TlsMaterial,
    state: AppState,
) -> Result<RunningServer, ServerError> {
    let pin = spki_pin(&tls.certs[0])?;
    let cert_pem = tls.cert_pem.clone();
    let cfg = rustls_config(tls)?;
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let app = crate::api::router(state.clone());
    let (tx, rx) = oneshot::channel();
    let sweeper_state = state.clone();
    let state_cfg = state.cfg.clone();
    let join = tokio::spawn(async move {
        let alerter = tokio::spawn(crate::alerts::run(sweeper_state.clone()));
        let sweeper = tokio::spawn(sweeper_loop(sweeper_state));
        let limits = Limits {
            first: Duration::from_secs(state_cfg.first_request_timeout_secs),
            idle: Duration::from_secs(state_cfg.idle_timeout_secs),
            per_ip: state_cfg.max_connections_per_ip,
        };
        accept_loop(listener, TlsAcceptor::from(cfg), app, rx, limits).await;
        sweeper.abort();
        let _ = sweeper.await;
        alerter.abort();
        let _ = alerter.await;
    });
    Ok(RunningServer {
        addr,
        pin,
        cert_pem,
        state,
        shutdown: Some(tx),
        join,
    })
}

/// How long and how many connections may stay (see [`crate::conn_guard`]).
struct Limits {
    first: Duration,
    idle: Duration,
    per_ip: usize,
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    mut shutdown: oneshot::Receiver<()>,
    limits: Limits,
) {
    let limit = Arc::new(Semaphore::new(10_000));
    let per_address = Arc::new(PerAddress::default());
    // Connections outlive the accept loop unless told to end: a stopped server must let go of
    // its state (the database and blob files), so each connection watches `closing` and the loop
    // waits for them before it returns.
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = &mut shutdown => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let Some(admitted) = PerAddress::admit(&per_address, peer.ip(), limits.per_ip) else {
            tracing::debug!(peer = %peer.ip(), "refused a connection: the address holds its limit");
            drop(stream);
            continue;
        };
        let (first, idle) = (limits.first, limits.idle);
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut closing = closing.clone();
        conns.spawn(async move {
            let _permit = permit;
            let _admitted = admitted;
            let tls = tokio::select! {
                r = tokio::time::timeout(first.max(Duration::from_secs(1)), acceptor.accept(stream)) => match r {
                    Ok(Ok(s)) => s,
                    _ => return,
                },
                _ = closing.changed() => return,
            };
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
                },
            );
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            builder.http2().max_concurrent_streams(100);
            let activity = Activity::new();
            let io = Watched::new(tls, activity.clone());
            let conn = builder.serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = closing.changed() => None,
                _ = activity.expired(first, idle) => {
                    tracing::debug!(peer = %peer.ip(), "closed an idle connection");
                    return;
                }
            };
            let ended = match ended {
                Some(r) => r,
                None => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with error");
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Requests in flight get a moment to finish (a long poll answers early); the rest are cut.
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.shutdown().await;
    }
}

// ------------------------------------------------------------------ bootstrap & trials

/// What `init` creates.
pub struct NewTenant {
    /// Login slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Plan tier.
    pub plan: PlanTier,
    /// First Owner's email.
    pub owner_email: String,
    /// First Owner's password (checked against the policy).
    pub owner_password: secrets::Secret,
}

fn system_draft(st: &AppState, action: &str, resource: String, user: &str) -> AuditDraft {
    AuditDraft {
        timestamp: st.clock.now(),
        user: user.to_string(),
        action: action.to_string(),
        resource,
        ip_address: "local".into(),
        user_agent: format!("labvault-server/{}", env!("CARGO_PKG_VERSION")),
        result: AuditResult::Success,
        detail: String::new(),
    }
}

/// Creates a tenant and its first Owner; trials expire after `cfg.trial_ttl`.
pub async fn create_tenant(st: &AppState, t: NewTenant) -> Result<TenantRow, ServerError> {
    let slug_ok = (3..=40).contains(&t.slug.len())
        && t.slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !slug_ok {
        return Err(ServerError::Invalid(
            "tenant slug must be 3-40 characters of a-z, 0-9 and '-'".into(),
        ));
    }
    crate::app::check_text("tenant name", &t.name, 200)
        .map_err(|e| ServerError::Invalid(e.message))?;
    let email =
        secrets::normalize_email(&t.owner_email).map_err(|e| ServerError::Invalid(e.message))?;
    secrets::check_password_policy(t.owner_password.expose(), &email)
        .map_err(|e| ServerError::Invalid(e.message))?;
    let kdf = st.cfg.kdf;
    let pw = t.owner_password;
    let hash = tokio::task::spawn_blocking(move || secrets::hash_password(kdf, pw.expose()))
        .await
        .map_err(|e| ServerError::Invalid(e.to_string()))?
        .map_err(|e| ServerError::Invalid(e.message))?;
    let now = st.now();
    let tenant = TenantRow {
        id: uuid::Uuid::new_v4().to_string(),
        slug: t.slug,
        name: t.name,
        plan: t.plan,
        require_mfa: false,
        created_at: now,
        expires_at: (t.plan == PlanTier::Trial).then_some(now + st.cfg.trial_ttl),
    };
    let owner = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        email: email.clone(),
        password_hash: hash,
        role: Role::Owner,
        totp_secret: None,
        totp_pending: None,
        totp_last_step: None,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
        last_active_at: None,
    };
    let ev = system_draft(
        st,
        actions::TENANT_CREATE,
        format!("tenant/{}", tenant.id),
        "system",
    );
    st.store.create_tenant(tenant.clone(), owner, ev).await?;
    Ok(tenant)
}

/// Purges every trial tenant past its expiry (data deleted, tenant tombstoned, audit chain
/// kept); each expiry is audited on the tenant's own chain and on the system chain.
/// Returns the expired tenant ids. Idempotent; runs periodically and on demand.
pub async fn sweep_trials(st: &AppState) -> Result<Vec<String>, ServerError> {
    let expired = st.store.expired_trials(st.now()).await?;
    for id in &expired {
        let ev = system_draft(
            st,
            actions::TENANT_TRIAL_EXPIRE,
            format!("tenant/{id}"),
            "system",
        );
        match st.store.delete_tenant(id, st.now(), ev.clone(), ev).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(StoreError::Rule(_, why)) => {
                tracing::warn!(tenant = %id, reason = %why, "expired trial tenant kept");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(tenant = %id, "trial tenant expired and deleted");
    }
    Ok(expired)
}

async fn sweeper_loop(st: AppState) {
    let every = Duration::from_secs(st.cfg.sweep_interval_secs.max(1));
    let mut orphans_due = 0i64;
    let mut chains_due = st.now() + 3600;
    loop {
        if let Err(e) = sweep_trials(&st).await {
            tracing::error!(error = %e, "trial sweep failed");
        }
        if let Err(e) = crate::gc::sweep_blobs(&st).await {
            tracing::error!(error = %e, "blob sweep failed");
        }
        // Unrecorded objects need a listing of the store: a few times a day.
        if st.now() >= orphans_due {
            orphans_due = st.now() + 6 * 3600;
            if let Err(e) = crate::gc::sweep_unrecorded_objects(&st).await {
                tracing::error!(error = %e, "object sweep failed");
            }
        }
        // Every audit chain re-verified once a day (an hour after start, then daily).
        if st.now() >= chains_due {
            chains_due = st.now() + 86_400;
            if let Err(e) = crate::alerts::check_chains(&st).await {
                tracing::error!(error = %e.message, "audit chain check failed");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Id of the server-level audit chain (tenant creation, deletion, trial expiry).
pub const SYSTEM_CHAIN: &str = SYSTEM_TENANT;
