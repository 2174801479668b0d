//! Storage of security alerts: the alerts themselves (deduplicated while unresolved), each
//! tenant's settings (webhook, thresholds), the webhook deliveries waiting or retrying, and the
//! sign-in fingerprints (device and network range) each account has used.

use async_trait::async_trait;
use labvault_wire::{AlertRule, AlertState};

use super::{AuditDraft, StoreResult};

/// Audit events as committed, one batch at a time: `(tenant, wire JSON)` each.
pub type AuditBatch = Vec<(String, std::sync::Arc<str>)>;

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Rule that fired.
    pub rule: AlertRule,
    /// Whom or what it is about.
    pub subject: String,
    /// What happened.
    pub summary: String,
    /// First occurrence (unix seconds).
    pub first_at: i64,
    /// Latest occurrence.
    pub last_at: i64,
    /// Occurrences.
    pub count: u32,
    /// Handling state.
    pub state: AlertState,
    /// Who acknowledged or resolved it.
    pub state_by: Option<String>,
    /// When.
    pub state_at: Option<i64>,
}

/// A tenant's alert settings as stored (the webhook secret sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfigRow {
    /// Webhook URL.
    pub webhook_url: Option<String>,
    /// The webhook's signing secret, sealed under the server's secrets key.
    pub webhook_secret: Option<Vec<u8>>,
    /// Threshold of `mass_download`.
    pub downloads_per_hour: u32,
    /// Threshold of `mass_deletion`.
    pub deletions_per_hour: u32,
}

impl Default for AlertConfigRow {
    fn default() -> Self {
        let d = labvault_wire::AlertSettings::default();
        AlertConfigRow {
            webhook_url: None,
            webhook_secret: None,
            downloads_per_hour: d.downloads_per_hour,
            deletions_per_hour: d.deletions_per_hour,
        }
    }
}

/// A webhook delivery due.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// Id.
    pub id: i64,
    /// Tenant.
    pub tenant_id: String,
    /// Alert delivered.
    pub alert_id: String,
    /// JSON body.
    pub body: String,
    /// Attempts made.
    pub attempts: u32,
}

/// How a delivery attempt ended.
pub enum DeliveryOutcome {
    /// Accepted by the receiver.
    Delivered {
        /// When.
        at: i64,
    },
    /// Failed; retried at `next_at`, or given up when `None` (with this audit event).
    Failed {
        /// Why.
        error: String,
        /// Next attempt.
        next_at: Option<i64>,
        /// Recorded when giving up.
        audit: Option<AuditDraft>,
    },
}

/// Storage of alerts.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Records a finding: a new alert (`true`), with `audit` (its `security.alert` event)
    /// appended in the same transaction, or a repeat of the same rule about the same subject
    /// while that alert is unresolved (`false`: its count and `last_at` grow, no event).
    async fn raise_alert(&self, row: AlertRow, audit: AuditDraft) -> StoreResult<(AlertRow, bool)>;
    /// Alerts whose latest occurrence is at or after `since`, newest first; one state or all.
    async fn alerts(
        &self,
        tenant: &str,
        since: i64,
        state: Option<AlertState>,
    ) -> StoreResult<Vec<AlertRow>>;
    /// Moves an alert to `state` (acknowledged or resolved), recorded with `audit`.
    async fn set_alert_state(
        &self,
        tenant: &str,
        id: &str,
        state: AlertState,
        by: &str,
        at: i64,
        audit: AuditDraft,
    ) -> StoreResult<AlertRow>;
    /// The tenant's settings (defaults when never set).
    async fn alert_config(&self, tenant: &str) -> StoreResult<AlertConfigRow>;
    /// Replaces the tenant's settings, recorded with `audit`.
    async fn set_alert_config(
        &self,
        tenant: &str,
        cfg: AlertConfigRow,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Notes that `user` signed in with `fingerprint`: `(new, first_ever)` = whether this
    /// fingerprint is new for the account, and whether the account had none before.
    async fn login_seen(
        &self,
        tenant: &str,
        user: &str,
        fingerprint: &str,
        now: i64,
    ) -> StoreResult<(bool, bool)>;
    /// Queues a webhook delivery, due now.
    async fn queue_delivery(
        &self,
        tenant: &str,
        alert_id: &str,
        body: String,
        now: i64,
    ) -> StoreResult<()>;
    /// Deliveries due at `now`, oldest first.
    async fn due_deliveries(&self, now: i64, limit: u32) -> StoreResult<Vec<DeliveryRow>>;
    /// Records an attempt's outcome.
    async fn delivery_attempted(&self, id: i64, outcome: DeliveryOutcome) -> StoreResult<()>;
    /// Every tenant that is not deleted (the chain check and failed-backup alerts).
    async fn live_tenants(&self) -> StoreResult<Vec<String>>;
    /// Audit events as this process commits them, `(tenant, wire JSON)` per batch: what the
    /// detector reads. `None` when the store cannot offer it (or it is already taken).
    fn subscribe_audit(&self) -> Option<tokio::sync::mpsc::Receiver<AuditBatch>> {
        None
    }
}
