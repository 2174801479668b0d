//! Audit query/export/verify and the access review.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use labvault_governance::audit::actions;
use labvault_wire::*;

use std::sync::Arc;

use crate::app::{AppState, AuditedBy, Principal, ReqMeta, ReviewBody};
use crate::chain;
use crate::clock::{parse_rfc3339, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::store::{AccessSnapshot, AuditFilter};
use labvault_governance::export::{ExportFormat, ExportWriter};

fn filter(q: &AuditQuery) -> ApiResult<AuditFilter> {
    let time = |s: &Option<String>, name: &str| -> ApiResult<Option<i64>> {
        s.as_deref()
            .map(|v| {
                parse_rfc3339(v)
                    .ok_or_else(|| ApiError::invalid(format!("{name} must be an RFC 3339 time")))
            })
            .transpose()
    };
    let result = q
        .result
        .as_deref()
        .map(|r| {
            r.parse::<AuditResult>()
                .map_err(|_| ApiError::invalid("result must be success, failure or denied"))
        })
        .transpose()?;
    let before_seq = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid("cursor is not valid"))
        })
        .transpose()?;
    for v in [&q.user, &q.action, &q.resource].into_iter().flatten() {
        if v.len() > 512 {
            return Err(ApiError::invalid("filter values must be at most 512 bytes"));
        }
    }
    Ok(AuditFilter {
        from: time(&q.from, "from")?,
        to: time(&q.to, "to")?,
        user: q.user.clone(),
        action_prefix: q.action.clone(),
        resource_prefix: q.resource.clone(),
        result,
        before_seq,
    })
}

/// A filtered page of the tenant's audit log, newest first (Owner/Admin).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = "4XX", body = ErrorBody)))]
pub async fn query_audit(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    st.audited(
        &p,
        &meta,
        actions::AUDIT_QUERY,
        "audit".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Admin)?;
            let f = filter(&q)?;
            let limit = q.limit.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(ApiError::invalid("limit must be between 1 and 1000"));
            }
            if let Some(events) = st.store.audit_page_json(&p.tenant_id, &f, limit).await {
                return Ok(page_json(&events, limit).into_response());
            }
            let events = st.store.audit_page(&p.tenant_id, f, limit).await?;
            let next_cursor = (events.len() as u32 == limit)
                .then(|| events.last().map(|r| r.seq.to_string()))
                .flatten();
            // The JSON of an `AuditPage`, from events that were never decoded.
            #[derive(serde::Serialize)]
            struct Page {
                events: Vec<crate::store::AuditJson>,
                next_cursor: Option<String>,
            }
            Ok(Json(Page {
                events,
                next_cursor,
            })
            .into_response())
        },
    )
    .await
}

/// The JSON of an [`AuditPage`] from events already in wire JSON (byte-identical to
/// serializing the page; the tests compare both).
pub fn page_json(events: &[(u64, std::sync::Arc<str>)], limit: u32) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        page_body(events, limit),
    )
        .into_response()
}

/// The body of [`page_json`].
pub fn page_body(events: &[(u64, std::sync::Arc<str>)], limit: u32) -> String {
    let mut body =
        String::with_capacity(32 + events.iter().map(|(_, j)| j.len() + 1).sum::<usize>());
    body.push_str("{\"events\":[");
    for (i, (_, json)) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(json);
    }
    body.push_str("],\"next_cursor\":");
    match events.last().filter(|_| events.len() as u32 == limit) {
        Some((seq, _)) => {
            body.push('"');
            body.push_str(&seq.to_string());
            body.push('"');
        }
        None => body.push_str("null"),
    }
    body.push('}');
    body
}

/// RFC 4180 field, with spreadsheet formula injection neutralised.
pub fn csv_field(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn csv_line(fields: &[&str]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Export of the audit log (CSV or JSON Lines), oldest first with chain hashes, for offline
/// re-verification (Owner/Admin).
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = ErrorBody)))]
pub async fn export_audit(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    st.audited(
        &p,
        &meta,
        actions::AUDIT_EXPORT,
        "audit".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Admin)?;
            let format = q.format.as_deref().unwrap_or("jsonl");
            if format != "csv" && format != "jsonl" {
                return Err(ApiError::invalid("format must be csv or jsonl"));
            }
            let f = filter(&q)?;
            let unfiltered = f.from.is_none()
                && f.to.is_none()
                && f.user.is_none()
                && f.action_prefix.is_none()
                && f.resource_prefix.is_none()
                && f.result.is_none()
                && f.before_seq.is_none();
            let rows = if unfiltered {
                st.store.audit_chain(&p.tenant_id).await?
            } else {
                let mut rows = st.store.query_audit(&p.tenant_id, f, u32::MAX).await?;
                rows.reverse();
                rows
            };
            let (fmt, ctype) = if format == "csv" {
                (ExportFormat::Csv, "text/csv; charset=utf-8")
            } else {
                (ExportFormat::Jsonl, "application/x-ndjson")
            };
            let mut w = ExportWriter::new(Vec::with_capacity(rows.len() * 300), fmt)
                .map_err(ApiError::internal)?;
            for r in &rows {
                w.write(r).map_err(ApiError::internal)?;
            }
            let body = w.finish().map_err(ApiError::internal)?;
            Ok(([(header::CONTENT_TYPE, ctype)], body).into_response())
        },
    )
    .await
}

/// Verifies the tenant's audit chain (Owner/Admin).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = AuditVerifyReport), (status = "4XX", body = ErrorBody)))]
pub async fn verify_audit(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<AuditVerifyReport>> {
    st.audited(
        &p,
        &meta,
        actions::AUDIT_VERIFY,
        "audit".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Admin)?;
            let rows = st.store.audit_chain(&p.tenant_id).await?;
            let bad = chain::verify(&rows).err();
            Ok(Json(AuditVerifyReport {
                events: rows.len() as u64,
                ok: bad.is_none(),
                first_bad_seq: bad.as_ref().map(|e| e.first_bad_seq),
                problem: bad.map(|e| e.kind.as_str().to_string()),
            }))
        },
    )
    .await
}

/// Authorization, parameters and the snapshot a review is computed from.
async fn review_inputs(
    st: &AppState,
    p: &Principal,
    q: &ReviewQuery,
) -> ApiResult<(Arc<AccessSnapshot>, i64, u32)> {
    p.require(Role::Admin)?;
    let stale_days = q.stale_days.unwrap_or(st.cfg.stale_days);
    if !(1..=3650).contains(&stale_days) {
        return Err(ApiError::invalid("stale_days must be between 1 and 3650"));
    }
    let now = st.now();
    let snap = st.store.access_snapshot(&p.tenant_id, now).await?;
    Ok((snap, now, stale_days))
}

async fn build_review(st: &AppState, p: &Principal, q: &ReviewQuery) -> ApiResult<AccessReview> {
    let (snap, now, stale_days) = review_inputs(st, p, q).await?;
    Ok(assemble_review(&snap, now, stale_days))
}

/// The review as a pure function of its inputs (see [`crate::app::ReviewBody`]).
fn assemble_review(snap: &AccessSnapshot, now: i64, stale_days: u32) -> AccessReview {
    let cutoff = now - i64::from(stale_days) * 86400;
    let (users, projects, roles, invitations) =
        (&snap.users, &snap.projects, &snap.roles, &snap.invitations);
    let mut members = Vec::with_capacity(users.len());
    let mut entries = Vec::with_capacity(users.len() * projects.len());
    for u in users {
        let stale = u.last_active_at.unwrap_or(u.created_at) < cutoff;
        let admin_without_mfa = u.role >= Role::Admin && !u.mfa_enrolled();
        members.push(AccessReviewMember {
            user_id: u.id.clone(),
            email: u.email.clone(),
            tenant_role: u.role,
            last_active_at: u.last_active_at.map(rfc3339),
            mfa_enrolled: u.mfa_enrolled(),
            stale,
            admin_without_mfa,
        });
        for pr in projects {
            let assigned = roles
                .iter()
                .find(|r| r.project_id == pr.id && r.user_id == u.id)
                .filter(|_| u.role != Role::Owner);
            let (effective_role, source) = match assigned {
                Some(a) => (a.role, RoleSource::Project),
                None => (u.role, RoleSource::Tenant),
            };
            entries.push(AccessReviewEntry {
                user_id: u.id.clone(),
                email: u.email.clone(),
                project_id: pr.id.clone(),
                effective_role,
                source,
                last_active_at: u.last_active_at.map(rfc3339),
                mfa_enrolled: u.mfa_enrolled(),
                stale,
                admin_without_mfa: effective_role >= Role::Admin && !u.mfa_enrolled(),
            });
        }
    }
    AccessReview {
        generated_at: rfc3339(now),
        stale_days,
        members,
        entries,
        pending_invitations: invitations.iter().map(super::admin::invitation).collect(),
    }
}

/// The review's JSON, reused while its inputs are the same.
async fn review_json(st: &AppState, p: &Principal, q: &ReviewQuery) -> ApiResult<Response> {
    let (snap, now, stale_days) = review_inputs(st, p, q).await?;
    let hit = {
        let m = st.review_cache.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&p.tenant_id)
            .filter(|c| Arc::ptr_eq(&c.snap, &snap) && c.now == now && c.stale_days == stale_days)
            .map(|c| c.body.clone())
    };
    let body = match hit {
        Some(b) => b,
        None => {
            let review = assemble_review(&snap, now, stale_days);
            let body =
                axum::body::Bytes::from(serde_json::to_vec(&review).map_err(ApiError::internal)?);
            let mut m = st.review_cache.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() >= 10_000 {
                m.clear();
            }
            m.insert(
                p.tenant_id.clone(),
                ReviewBody {
                    snap,
                    now,
                    stale_days,
                    body: body.clone(),
                },
            );
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Access review: members × projects with effective role and source (Owner/Admin).
#[utoipa::path(get, path = "/v1/access-review", tag = "access-review", params(ReviewQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AccessReview), (status = "4XX", body = ErrorBody)))]
pub async fn access_review(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Query(q): Query<ReviewQuery>,
) -> ApiResult<Response> {
    let draft = st.draft(
        &p.actor,
        &meta,
        actions::ACCESS_REVIEW_VIEW,
        "access-review".into(),
    );
    let r = review_json(&st, &p, &q).await;
    st.finish(&p.tenant_id, draft, r, false).await
}

/// The access review as CSV (one row per member × project, plus members without projects
/// and pending invitations).
#[utoipa::path(get, path = "/v1/access-review/csv", tag = "access-review", params(ReviewQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = ErrorBody)))]
pub async fn access_review_csv(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Query(q): Query<ReviewQuery>,
) -> ApiResult<Response> {
    st.audited(
        &p,
        &meta,
        actions::ACCESS_REVIEW_EXPORT,
        "access-review".into(),
        AuditedBy::Handler,
        async |_| {
            let review = build_review(&st, &p, &q).await?;
            let mut out = csv_line(&[
                "kind",
                "user_id",
                "email",
                "project_id",
                "effective_role",
                "source",
                "last_active_at",
                "mfa_enrolled",
                "stale",
                "admin_without_mfa",
            ]);
            let b = |v: bool| if v { "true" } else { "false" };
            for e in &review.entries {
                out.push_str(&csv_line(&[
                    "access",
                    &e.user_id,
                    &e.email,
                    &e.project_id,
                    e.effective_role.as_str(),
                    match e.source {
                        RoleSource::Tenant => "tenant",
                        RoleSource::Project => "project",
                    },
                    e.last_active_at.as_deref().unwrap_or(""),
                    b(e.mfa_enrolled),
                    b(e.stale),
                    b(e.admin_without_mfa),
                ]));
            }
            for m in &review.members {
                out.push_str(&csv_line(&[
                    "member",
                    &m.user_id,
                    &m.email,
                    "",
                    m.tenant_role.as_str(),
                    "tenant",
                    m.last_active_at.as_deref().unwrap_or(""),
                    b(m.mfa_enrolled),
                    b(m.stale),
                    b(m.admin_without_mfa),
                ]));
            }
            for i in &review.pending_invitations {
                out.push_str(&csv_line(&[
                    "invitation",
                    &i.id,
                    &i.email,
                    "",
                    i.role.as_str(),
                    "tenant",
                    "",
                    "false",
                    "false",
                    "false",
                ]));
            }
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        },
    )
    .await
}

/// Records an access review as done: who and when (this event), the threshold it used and
/// what it changed (each change is also its own event: role changes and removals are audited
/// where they happen). Owner/Admin.
#[utoipa::path(post, path = "/v1/access-review/sign-off", tag = "access-review",
    request_body = AccessReviewSignOff, security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn access_review_sign_off(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<AccessReviewSignOff>,
) -> ApiResult<axum::http::StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::ACCESS_REVIEW_SIGN_OFF,
        format!("access-review/changes/{}", req.changes.len().min(100_000)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            if req.stale_days == 0 || req.stale_days > 3650 {
                return Err(ApiError::invalid("stale_days is 1 to 3650"));
            }
            if req.changes.len() > 200 {
                return Err(ApiError::invalid("at most 200 changes per sign-off"));
            }
            let printable = |s: &str| !s.chars().any(char::is_control);
            for c in &req.changes {
                if c.trim().is_empty() || c.chars().count() > 300 || !printable(c) {
                    return Err(ApiError::invalid(
                        "each change is one line of 1 to 300 printable characters",
                    ));
                }
            }
            let note = req.note.as_deref().map(str::trim).unwrap_or("");
            if note.chars().count() > 2000 || note.chars().any(|c| c.is_control() && c != '\n') {
                return Err(ApiError::invalid(
                    "the note is at most 2,000 characters, without control characters",
                ));
            }
            let mut ev = draft.clone();
            ev.detail = serde_json::json!({
                "stale_days": req.stale_days,
                "changes": req.changes,
                "note": note,
            })
            .to_string();
            st.store
                .append_audit(&p.tenant_id, ev)
                .await
                .map_err(ApiError::internal)?;
            Ok(axum::http::StatusCode::NO_CONTENT)
        },
    )
    .await
}
