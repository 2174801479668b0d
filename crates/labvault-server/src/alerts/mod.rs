//! Security alerts: the server watches its own audit trail for what a lab's admins must know
//! about (repeated failed logins and lockouts, sign-ins from a new device or network range,
//! two-factor authentication turned off or reset, the Admin or Owner role granted, API keys
//! created, mass downloads or deletions, a broken audit chain, a failed backup). Each finding
//! becomes an alert for Owners and Admins (`GET /v1/alerts`, acknowledged and resolved in
//! place), a `security.alert` event in the tenant's audit trail, and a signed POST to the
//! tenant's webhook, retried until it is accepted (`docs/alerts.md`).
//!
//! [`detect`] is the pure rule engine; this module feeds it the events this process commits
//! (through the store's audit feed), raises what it finds, checks the audit chains daily and
//! delivers webhooks.

pub mod detect;

use std::time::Duration;

use hmac::{Hmac, Mac};
use labvault_governance::audit::actions;
use labvault_wire::{Alert, AlertNotice, AlertRule, AlertState, AuditResult};
use sha2::Sha256;

use crate::app::AppState;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::store::alerts::{AlertRow, DeliveryOutcome};
use crate::store::AuditDraft;
use detect::{Detector, Event, Observation, Thresholds};

/// Seconds between delivery attempts of one webhook notice: the first at once, then after
/// 1, 5 and 30 minutes, 2 and 6 hours; then it is given up (and that is audited).
pub const RETRY_DELAYS: [i64; 5] = [60, 300, 1800, 7200, 21600];

/// Associated data of a tenant's sealed webhook secret.
pub fn webhook_secret_aad(tenant: &str) -> String {
    format!("labvault/server/alert-webhook/{tenant}")
}

/// The wire form of a stored alert.
pub fn to_wire(a: &AlertRow) -> Alert {
    Alert {
        id: a.id.clone(),
        rule: a.rule,
        severity: a.rule.severity().into(),
        subject: a.subject.clone(),
        summary: a.summary.clone(),
        first_at: rfc3339(a.first_at),
        last_at: rfc3339(a.last_at),
        count: a.count,
        state: a.state,
        state_by: a.state_by.clone(),
        state_at: a.state_at.map(rfc3339),
    }
}

/// Raises a finding about `tenant`: a new alert (with its `security.alert` event and, if the
/// tenant has a webhook, a queued notice), or one more occurrence of the same unresolved one.
/// Returns the alert and whether it is new.
pub async fn raise(
    st: &AppState,
    tenant: &str,
    rule: AlertRule,
    subject: &str,
    summary: &str,
) -> Result<(AlertRow, bool), ApiError> {
    let now = st.now();
    let row = AlertRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        rule,
        subject: subject.to_string(),
        summary: summary.to_string(),
        first_at: now,
        last_at: now,
        count: 1,
        state: AlertState::Open,
        state_by: None,
        state_at: None,
    };
    let audit = AuditDraft {
        timestamp: st.clock.now(),
        user: "labvault-server".into(),
        action: actions::SECURITY_ALERT.into(),
        resource: format!("alert/{}", row.id),
        ip_address: "local".into(),
        user_agent: "labvault-server".into(),
        result: AuditResult::Success,
        detail: format!("rule={} subject={} {}", rule.as_str(), subject, summary),
    };
    let (row, created) = st.alerts.raise_alert(row, audit).await?;
    if created {
        tracing::warn!(tenant, rule = rule.as_str(), subject, "security alert");
        let cfg = st.alerts.alert_config(tenant).await?;
        if cfg.webhook_url.is_some() {
            let slug = st
                .store
                .get_tenant(tenant)
                .await
                .map(|t| t.slug)
                .unwrap_or_else(|_| tenant.to_string());
            let body = serde_json::to_string(&AlertNotice {
                tenant: slug,
                alert: to_wire(&row),
            })
            .map_err(ApiError::internal)?;
            st.alerts.queue_delivery(tenant, &row.id, body, now).await?;
        }
    }
    Ok((row, created))
}

/// The detector's thresholds of a tenant, read at each event that needs them (a point read;
/// a change of the settings applies to the next event).
async fn thresholds(st: &AppState, tenant: &str) -> Thresholds {
    let cfg = st.alerts.alert_config(tenant).await.unwrap_or_default();
    Thresholds {
        downloads_per_hour: cfg.downloads_per_hour,
        deletions_per_hour: cfg.deletions_per_hour,
    }
}

/// Examines one committed audit event.
async fn examine(
    st: &AppState,
    d: &mut Detector,
    tenant: &str,
    json: &str,
) -> Result<(), ApiError> {
    let Some(action) = detect::action_of(json) else {
        return Ok(());
    };
    if !detect::interesting(action) || tenant == crate::server::SYSTEM_CHAIN {
        return Ok(());
    }
    let Ok(e) = serde_json::from_str::<Event>(json) else {
        return Ok(());
    };
    // Only the volume rules read the tenant's thresholds: no read for the other events.
    let th = if detect::uses_thresholds(action) {
        thresholds(st, tenant).await
    } else {
        Thresholds {
            downloads_per_hour: u32::MAX,
            deletions_per_hour: u32::MAX,
        }
    };
    for o in d.observe(&e, st.now(), th) {
        match o {
            Observation::Fire {
                rule,
                subject,
                summary,
            } => {
                raise(st, tenant, rule, &subject, &summary).await?;
            }
            Observation::Login { user, fingerprint } => {
                let (new, first_ever) = st
                    .alerts
                    .login_seen(tenant, &user, &fingerprint, st.now())
                    .await?;
                if new && !first_ever {
                    let (agent, range) = fingerprint.split_once('|').unwrap_or((&fingerprint, ""));
                    raise(
                        st,
                        tenant,
                        AlertRule::NewLoginLocation,
                        &user,
                        &format!(
                            "{user} signed in with {} from {} ({range}), a device or network range this account never used",
                            if agent.is_empty() { "an unnamed program" } else { agent },
                            e.ip_address
                        ),
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Verifies every tenant's audit chain; a broken one raises `audit_chain_broken`. Returns
/// how many chains are broken.
pub async fn check_chains(st: &AppState) -> Result<usize, ApiError> {
    let mut broken = 0;
    for tenant in st.alerts.live_tenants().await? {
        let chain = st.store.audit_chain(&tenant).await?;
        if let Err(e) = crate::chain::verify(&chain) {
            broken += 1;
            raise(
                st,
                &tenant,
                AlertRule::AuditChainBroken,
                "audit chain",
                &format!(
                    "the audit chain no longer verifies: event {} is {} (tampering with the database, or damage)",
                    e.first_bad_seq,
                    e.kind.as_str()
                ),
            )
            .await?;
        }
    }
    Ok(broken)
}

/// Raises `backup_failed` in every tenant: their data is not backed up as expected.
pub async fn backup_failed(st: &AppState, reason: &str) -> Result<(), ApiError> {
    for tenant in st.alerts.live_tenants().await? {
        raise(
            st,
            &tenant,
            AlertRule::BackupFailed,
            "server backup",
            &format!("a backup of the server failed: {reason}"),
        )
        .await?;
    }
    Ok(())
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: what the receiver checks (and
/// rejects when `t` is old, against replays).
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(m.finalize().into_bytes()))
}

/// Sends the webhook notices that are due; returns how many were accepted.
pub async fn deliver_due(st: &AppState, http: &reqwest::Client) -> Result<usize, ApiError> {
    let now = st.now();
    let mut delivered = 0;
    for d in st.alerts.due_deliveries(now, 100).await? {
        let cfg = st.alerts.alert_config(&d.tenant_id).await?;
        let secret = cfg
            .webhook_secret
            .as_deref()
            .and_then(|s| st.sealer.open(&webhook_secret_aad(&d.tenant_id), s));
        let result = match (&cfg.webhook_url, &secret) {
            (Some(url), Some(secret)) => http
                .post(url)
                .header("content-type", "application/json")
                .header(
                    "user-agent",
                    concat!("labvault-server/", env!("CARGO_PKG_VERSION")),
                )
                .header("x-labvault-delivery", d.id.to_string())
                .header("x-labvault-signature", signature(secret, now, &d.body))
                .body(d.body.clone())
                .send()
                .await
                .map_err(|e| format!("{e}"))
                .and_then(|r| {
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("the receiver answered {}", r.status()))
                    }
                }),
            _ => Err("the tenant has no webhook any more".to_string()),
        };
        let outcome = match result {
            Ok(()) => {
                delivered += 1;
                DeliveryOutcome::Delivered { at: now }
            }
            Err(error) => {
                let next = RETRY_DELAYS.get(d.attempts as usize).map(|s| now + s);
                let audit = next.is_none().then(|| AuditDraft {
                    timestamp: st.clock.now(),
                    user: "labvault-server".into(),
                    action: actions::ALERT_DELIVERY.into(),
                    resource: format!("alert/{}", d.alert_id),
                    ip_address: "local".into(),
                    user_agent: "labvault-server".into(),
                    result: AuditResult::Failure,
                    detail: format!(
                        "webhook not delivered after {} attempts: {error}",
                        d.attempts + 1
                    ),
                });
                tracing::warn!(tenant = %d.tenant_id, alert = %d.alert_id, %error, "alert webhook not delivered");
                DeliveryOutcome::Failed {
                    error,
                    next_at: next,
                    audit,
                }
            }
        };
        st.alerts.delivery_attempted(d.id, outcome).await?;
    }
    Ok(delivered)
}

/// The HTTP client of webhooks: rustls with the Web PKI roots, short timeouts, no redirects
/// (a redirect would carry the signed notice somewhere the tenant did not name).
pub fn webhook_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with default TLS builds")
}

/// Checks a webhook URL: HTTPS, or HTTP to a loopback address (a relay on the server).
pub fn check_webhook_url(url: &str) -> Result<(), ApiError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| ApiError::invalid("webhook_url is not a URL"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(ApiError::invalid(
            "webhook_url must be https:// (or http:// to a loopback address)",
        )),
    }
}

/// Runs the detector on this process's audit events and delivers webhooks every
/// `cfg.alert_tick_secs`, until the store's feed closes.
pub async fn run(st: AppState) {
    let Some(mut rx) = st.alerts.subscribe_audit() else {
        return;
    };
    let http = webhook_client();
    let mut d = Detector::new();
    let mut tick = tokio::time::interval(Duration::from_secs(st.cfg.alert_tick_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(batch) = batch else { return };
                for (tenant, json) in batch {
                    if let Err(e) = examine(&st, &mut d, &tenant, &json).await {
                        tracing::error!(error = %e.message, "alert detection");
                    }
                }
            }
            _ = tick.tick() => {
                d.prune(st.now());
                if let Err(e) = deliver_due(&st, &http).await {
                    tracing::error!(error = %e.message, "alert delivery");
                }
            }
        }
    }
}
