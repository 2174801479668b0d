//! Security alerts on the SQLite store (migration 6): see `store/alerts.rs`.

use super::*;
use crate::store::alerts::*;
use labvault_wire::{AlertRule, AlertState};

/// Schema of alerts (migration 6).
pub(super) const MIGRATION: &str = r#"
CREATE TABLE alerts (
    id        TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    rule      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    summary   TEXT NOT NULL,
    first_at  INTEGER NOT NULL,
    last_at   INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    state     TEXT NOT NULL,
    state_by  TEXT,
    state_at  INTEGER
);
CREATE INDEX alerts_tenant ON alerts(tenant_id, last_at);
CREATE INDEX alerts_open ON alerts(tenant_id, rule, subject) WHERE state != 'resolved';
CREATE TABLE alert_config (
    tenant_id          TEXT PRIMARY KEY,
    webhook_url        TEXT,
    webhook_secret     BLOB,
    downloads_per_hour INTEGER NOT NULL,
    deletions_per_hour INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE alert_deliveries (
    id           INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    alert_id     TEXT NOT NULL,
    body         TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER,
    delivered_at INTEGER,
    last_error   TEXT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(next_at) WHERE next_at IS NOT NULL;
CREATE TABLE login_fingerprints (
    tenant_id   TEXT NOT NULL,
    user        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user, fingerprint)
) WITHOUT ROWID;
"#;

const ALERT_COLS: &str =
    "id, tenant_id, rule, subject, summary, first_at, last_at, count, state, state_by, state_at";

fn alert_row(r: &Row) -> rusqlite::Result<AlertRow> {
    let bad =
        |i: usize, v: String| rusqlite::Error::InvalidColumnType(i, v, rusqlite::types::Type::Text);
    let rule: String = r.get(2)?;
    let state: String = r.get(8)?;
    Ok(AlertRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        rule: AlertRule::parse(&rule).ok_or_else(|| bad(2, rule.clone()))?,
        subject: r.get(3)?,
        summary: r.get(4)?,
        first_at: r.get(5)?,
        last_at: r.get(6)?,
        count: r.get::<_, i64>(7)? as u32,
        state: AlertState::parse(&state).ok_or_else(|| bad(8, state.clone()))?,
        state_by: r.get(9)?,
        state_at: r.get(10)?,
    })
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn raise_alert(&self, row: AlertRow, audit: AuditDraft) -> StoreResult<(AlertRow, bool)> {
        self.write(move |c| {
            let open = c
                .prepare_cached(&format!(
                    "SELECT {ALERT_COLS} FROM alerts WHERE tenant_id = ?1 AND rule = ?2 \
                     AND subject = ?3 AND state != 'resolved'"
                ))
                .and_then(|mut s| {
                    s.query_row(
                        params![row.tenant_id, row.rule.as_str(), row.subject],
                        alert_row,
                    )
                })
                .optional()
                .map_err(backend)?;
            if let Some(mut a) = open {
                a.count += 1;
                a.last_at = a.last_at.max(row.last_at);
                a.summary = row.summary.clone();
                c.prepare_cached(
                    "UPDATE alerts SET count = ?2, last_at = ?3, summary = ?4 WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![a.id, a.count, a.last_at, a.summary]))
                .map_err(backend)?;
                return Ok((a, false));
            }
            c.prepare_cached(&format!(
                "INSERT INTO alerts ({ALERT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,NULL,NULL)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    row.id,
                    row.tenant_id,
                    row.rule.as_str(),
                    row.subject,
                    row.summary,
                    row.first_at,
                    row.last_at,
                    row.count,
                    row.state.as_str()
                ])
            })
            .map_err(backend)?;
            append(c, &row.tenant_id, &audit)?;
            Ok((row, true))
        })
        .await
    }

    async fn alerts(
        &self,
        tenant: &str,
        since: i64,
        state: Option<AlertState>,
    ) -> StoreResult<Vec<AlertRow>> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {ALERT_COLS} FROM alerts WHERE tenant_id = ?1 AND last_at >= ?2 \
                     AND (?3 IS NULL OR state = ?3) ORDER BY last_at DESC, id LIMIT 1000"
                ),
                params![tenant, since, state.map(|s| s.as_str())],
                alert_row,
            )
        })
        .await
    }

    async fn set_alert_state(
        &self,
        tenant: &str,
        id: &str,
        state: AlertState,
        by: &str,
        at: i64,
        audit: AuditDraft,
    ) -> StoreResult<AlertRow> {
        let (tenant, id, by) = (tenant.to_string(), id.to_string(), by.to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE alerts SET state = ?3, state_by = ?4, state_at = ?5 \
                     WHERE tenant_id = ?1 AND id = ?2",
                )
                .and_then(|mut s| s.execute(params![tenant, id, state.as_str(), by, at]))
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound("alert"));
            }
            append(c, &tenant, &audit)?;
            one(
                c,
                &format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?1"),
                [&id],
                alert_row,
                "alert",
            )
        })
        .await
    }

    async fn alert_config(&self, tenant: &str) -> StoreResult<AlertConfigRow> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT webhook_url, webhook_secret, downloads_per_hour, deletions_per_hour \
                 FROM alert_config WHERE tenant_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([&tenant], |r| {
                    Ok(AlertConfigRow {
                        webhook_url: r.get(0)?,
                        webhook_secret: r.get(1)?,
                        downloads_per_hour: r.get::<_, i64>(2)? as u32,
                        deletions_per_hour: r.get::<_, i64>(3)? as u32,
                    })
                })
            })
            .optional()
            .map_err(backend)?
            .unwrap_or_default())
        })
        .await
    }

    async fn set_alert_config(
        &self,
        tenant: &str,
        cfg: AlertConfigRow,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let tenant = tenant.to_string();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO alert_config \
                 (tenant_id, webhook_url, webhook_secret, downloads_per_hour, deletions_per_hour) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant,
                    cfg.webhook_url,
                    cfg.webhook_secret,
                    cfg.downloads_per_hour,
                    cfg.deletions_per_hour
                ])
            })
            .map_err(backend)?;
            append(c, &tenant, &audit)
        })
        .await
    }

    async fn login_seen(
        &self,
        tenant: &str,
        user: &str,
        fingerprint: &str,
        now: i64,
    ) -> StoreResult<(bool, bool)> {
        let (tenant, user, fp) = (
            tenant.to_string(),
            user.to_string(),
            fingerprint.to_string(),
        );
        self.write(move |c| {
            let known: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM login_fingerprints WHERE tenant_id = ?1 AND user = ?2",
                )
                .and_then(|mut s| s.query_row(params![tenant, user], |r| r.get(0)))
                .map_err(backend)?;
            let inserted = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO login_fingerprints (tenant_id, user, fingerprint, first_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![tenant, user, fp, now]))
                .map_err(backend)?;
            Ok((inserted == 1, known == 0))
        })
        .await
    }

    async fn queue_delivery(
        &self,
        tenant: &str,
        alert_id: &str,
        body: String,
        now: i64,
    ) -> StoreResult<()> {
        let (tenant, alert_id) = (tenant.to_string(), alert_id.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO alert_deliveries (tenant_id, alert_id, body, next_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![tenant, alert_id, body, now]))
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn due_deliveries(&self, now: i64, limit: u32) -> StoreResult<Vec<DeliveryRow>> {
        self.read(move |c| {
            all(
                c,
                "SELECT id, tenant_id, alert_id, body, attempts FROM alert_deliveries \
                 WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
                params![now, limit],
                |r| {
                    Ok(DeliveryRow {
                        id: r.get(0)?,
                        tenant_id: r.get(1)?,
                        alert_id: r.get(2)?,
                        body: r.get(3)?,
                        attempts: r.get::<_, i64>(4)? as u32,
                    })
                },
            )
        })
        .await
    }

    async fn delivery_attempted(&self, id: i64, outcome: DeliveryOutcome) -> StoreResult<()> {
        self.write(move |c| {
            match outcome {
                DeliveryOutcome::Delivered { at } => c
                    .prepare_cached(
                        "UPDATE alert_deliveries SET attempts = attempts + 1, next_at = NULL, \
                         delivered_at = ?2, last_error = NULL WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, at])),
                DeliveryOutcome::Failed {
                    error,
                    next_at,
                    audit,
                } => {
                    if let Some(a) = audit {
                        let tenant: String = c
                            .query_row(
                                "SELECT tenant_id FROM alert_deliveries WHERE id = ?1",
                                [id],
                                |r| r.get(0),
                            )
                            .map_err(backend)?;
                        append(c, &tenant, &a)?;
                    }
                    c.prepare_cached(
                        "UPDATE alert_deliveries SET attempts = attempts + 1, next_at = ?2, \
                         last_error = ?3 WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, next_at, error]))
                }
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    fn subscribe_audit(&self) -> Option<tokio::sync::mpsc::Receiver<AuditBatch>> {
        self.observer.subscribe()
    }

    async fn live_tenants(&self) -> StoreResult<Vec<String>> {
        self.read(move |c| {
            all(
                c,
                "SELECT id FROM tenants WHERE deleted_at IS NULL ORDER BY id",
                [],
                |r| r.get(0),
            )
        })
        .await
    }
}
