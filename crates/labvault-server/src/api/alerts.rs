//! Security alerts of the tenant (Owner/Admin): the list, acknowledge and resolve, and the
//! settings (webhook and thresholds).

use axum::extract::{Path, Query, State};
use axum::Json;
use labvault_governance::audit::actions;
use labvault_wire::*;

use crate::alerts::{check_webhook_url, to_wire, webhook_secret_aad};
use crate::app::{check_id, check_text, AppState, AuditedBy, Principal, ReqMeta};
use crate::error::{ApiError, ApiResult};
use crate::store::alerts::AlertConfigRow;

/// The tenant's alerts of the last `hours` (default 24), newest first (Owner/Admin).
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AlertList), (status = "4XX", body = ErrorBody)))]
pub async fn list_alerts(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Query(q): Query<AlertQuery>,
) -> ApiResult<Json<AlertList>> {
    st.audited(
        &p,
        &meta,
        actions::ALERT_LIST,
        "alerts".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Admin)?;
            let state = match q.state.as_deref() {
                None | Some("all") => None,
                Some(s) => Some(AlertState::parse(s).ok_or_else(|| {
                    ApiError::invalid("state must be open, acknowledged, resolved or all")
                })?),
            };
            let hours = q.hours.unwrap_or(24);
            if !(1..=8760).contains(&hours) {
                return Err(ApiError::invalid("hours must be 1 to 8760"));
            }
            let since = st.now() - i64::from(hours) * 3600;
            let rows = st.alerts.alerts(&p.tenant_id, since, state).await?;
            Ok(Json(AlertList {
                alerts: rows.iter().map(to_wire).collect(),
            }))
        },
    )
    .await
}

async fn set_state(
    st: AppState,
    p: Principal,
    meta: ReqMeta,
    alert_id: String,
    state: AlertState,
    action: &str,
) -> ApiResult<Json<Alert>> {
    st.audited(
        &p,
        &meta,
        action,
        format!("alert/{}", crate::app::clean(&alert_id)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            check_id("alert", &alert_id)?;
            let row = st
                .alerts
                .set_alert_state(
                    &p.tenant_id,
                    &alert_id,
                    state,
                    &p.actor,
                    st.now(),
                    draft.clone(),
                )
                .await?;
            Ok(Json(to_wire(&row)))
        },
    )
    .await
}

/// Acknowledges an alert: someone is on it (Owner/Admin; audited).
#[utoipa::path(post, path = "/v1/alerts/{alert_id}/acknowledge", tag = "alerts",
    params(("alert_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Alert), (status = "4XX", body = ErrorBody)))]
pub async fn acknowledge_alert(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<Alert>> {
    set_state(
        st,
        p,
        meta,
        alert_id,
        AlertState::Acknowledged,
        actions::ALERT_ACKNOWLEDGE,
    )
    .await
}

/// Resolves an alert: dealt with; the same finding later opens a new one (Owner/Admin;
/// audited).
#[utoipa::path(post, path = "/v1/alerts/{alert_id}/resolve", tag = "alerts",
    params(("alert_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Alert), (status = "4XX", body = ErrorBody)))]
pub async fn resolve_alert(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<Alert>> {
    set_state(
        st,
        p,
        meta,
        alert_id,
        AlertState::Resolved,
        actions::ALERT_RESOLVE,
    )
    .await
}

fn settings(c: &AlertConfigRow) -> AlertSettings {
    AlertSettings {
        webhook_url: c.webhook_url.clone(),
        downloads_per_hour: c.downloads_per_hour,
        deletions_per_hour: c.deletions_per_hour,
    }
}

/// The tenant's alert settings (Owner/Admin).
#[utoipa::path(get, path = "/v1/tenant/alerts", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = AlertSettings), (status = "4XX", body = ErrorBody)))]
pub async fn get_alert_settings(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<AlertSettings>> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_VIEW,
        format!("tenant/{}/alerts", p.tenant_id),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Admin)?;
            Ok(Json(settings(&st.alerts.alert_config(&p.tenant_id).await?)))
        },
    )
    .await
}

/// Sets the webhook and thresholds (Owner/Admin, step-up). A new webhook URL gets a new
/// signing secret, returned once.
#[utoipa::path(put, path = "/v1/tenant/alerts", tag = "alerts", request_body = AlertSettings,
    security(("bearer" = [])),
    responses((status = 200, body = AlertSettingsSaved), (status = "4XX", body = ErrorBody)))]
pub async fn set_alert_settings(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<AlertSettings>,
) -> ApiResult<Json<AlertSettingsSaved>> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_SETTINGS_CHANGE,
        format!(
            "tenant/{}/alerts/downloads/{}/deletions/{}/webhook/{}",
            p.tenant_id,
            req.downloads_per_hour,
            req.deletions_per_hour,
            if req.webhook_url.is_some() {
                "set"
            } else {
                "none"
            }
        ),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            let limit = 1..=1_000_000;
            if !limit.contains(&req.downloads_per_hour) || !limit.contains(&req.deletions_per_hour)
            {
                return Err(ApiError::invalid(
                    "downloads_per_hour and deletions_per_hour must be 1 to 1,000,000",
                ));
            }
            if let Some(url) = &req.webhook_url {
                check_text("webhook_url", url, 2048)?;
                check_webhook_url(url)?;
            }
            let old = st.alerts.alert_config(&p.tenant_id).await?;
            let (secret, sealed) = match &req.webhook_url {
                Some(url)
                    if old.webhook_url.as_ref() != Some(url) || old.webhook_secret.is_none() =>
                {
                    let s = crate::secrets::random_token();
                    let sealed = st
                        .sealer
                        .seal(&webhook_secret_aad(&p.tenant_id), s.as_bytes());
                    (Some(s), Some(sealed))
                }
                Some(_) => (None, old.webhook_secret.clone()),
                None => (None, None),
            };
            let cfg = AlertConfigRow {
                webhook_url: req.webhook_url.clone(),
                webhook_secret: sealed,
                downloads_per_hour: req.downloads_per_hour,
                deletions_per_hour: req.deletions_per_hour,
            };
            st.alerts
                .set_alert_config(&p.tenant_id, cfg.clone(), draft.clone())
                .await?;
            Ok(Json(AlertSettingsSaved {
                settings: settings(&cfg),
                webhook_secret: secret,
            }))
        },
    )
    .await
}
