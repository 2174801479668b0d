//! Projects, per-project roles and retention policies.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use labvault_governance::audit::actions;
use labvault_wire::*;

use crate::app::{check_id, check_text, clean, AppState, AuditedBy, Principal, ReqMeta};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::store::{ProjectRow, RetentionRow};

/// Projects visible to the caller, with its effective role on each.
#[utoipa::path(get, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    responses((status = 200, body = [Project]), (status = "4XX", body = ErrorBody)))]
pub async fn list_projects(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<Vec<Project>>> {
    st.audited(
        &p,
        &meta,
        actions::PROJECT_LIST,
        "projects".into(),
        AuditedBy::Handler,
        async |_| {
            let projects = st.store.list_projects(&p.tenant_id).await?;
            if let Some(only) = &p.key_project {
                return Ok(Json(
                    projects
                        .into_iter()
                        .filter(|x| &x.id == only)
                        .map(|x| project(x, p.role))
                        .collect(),
                ));
            }
            p.require(Role::Viewer)?;
            let roles = st.store.project_roles(&p.tenant_id).await?;
            Ok(Json(
                projects
                    .into_iter()
                    .map(|x| {
                        let role = if p.role == Role::Owner || p.api_key.is_some() {
                            p.role
                        } else {
                            roles
                                .iter()
                                .find(|r| r.project_id == x.id && r.user_id == p.user_id)
                                .map(|r| r.role)
                                .unwrap_or(p.role)
                        };
                        project(x, role)
                    })
                    .collect(),
            ))
        },
    )
    .await
}

fn project(x: ProjectRow, role: Role) -> Project {
    Project {
        id: x.id,
        name: x.name,
        created_at: rfc3339(x.created_at),
        effective_role: role,
    }
}

/// Creates a project (Editor+).
#[utoipa::path(post, path = "/v1/projects", tag = "projects", request_body = ProjectRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Project), (status = "4XX", body = ErrorBody)))]
pub async fn create_project(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<ProjectRequest>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let id = match &req.id {
        Some(id) => match uuid::Uuid::parse_str(id) {
            Ok(u) => u.hyphenated().to_string(),
            Err(_) => return Err(ApiError::invalid("id must be a UUID")),
        },
        None => uuid::Uuid::new_v4().to_string(),
    };
    st.audited(
        &p,
        &meta,
        actions::PROJECT_CREATE,
        format!("project/{id}"),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Editor)?;
            check_text("name", &req.name, 512)?;
            let row = ProjectRow {
                id: id.clone(),
                name: req.name.clone(),
                created_at: st.now(),
            };
            st.store
                .create_project(&p.tenant_id, row.clone(), draft.clone())
                .await?;
            Ok((StatusCode::CREATED, Json(project(row, p.role))))
        },
    )
    .await
}

/// One project.
#[utoipa::path(get, path = "/v1/projects/{project_id}", tag = "projects",
    params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Project), (status = "4XX", body = ErrorBody)))]
pub async fn get_project(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Project>> {
    st.audited(
        &p,
        &meta,
        actions::PROJECT_VIEW,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            check_id("project", &project_id)?;
            let row = st.store.get_project(&p.tenant_id, &project_id).await?;
            let role = p.require_project(&st, &project_id, Role::Viewer).await?;
            Ok(Json(project(row, role)))
        },
    )
    .await
}

/// Deletes a project (Admin on the project).
#[utoipa::path(delete, path = "/v1/projects/{project_id}", tag = "projects",
    params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_project(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::PROJECT_DELETE,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Store,
        async |draft| {
            p.require_project(&st, &project_id, Role::Admin).await?;
            check_id("project", &project_id)?;
            st.store
                .delete_project(&p.tenant_id, &project_id, draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Assigns a per-project role overriding the member's tenant role there (Admin, step-up).
#[utoipa::path(put, path = "/v1/projects/{project_id}/members/{user_id}", tag = "projects",
    request_body = RoleRequest,
    params(("project_id" = String, Path), ("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn set_project_role(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path((project_id, user_id)): Path<(String, String)>,
    Json(req): Json<RoleRequest>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::PROJECT_ROLE_CHANGE,
        format!(
            "project/{}/member/{}/role/{}",
            clean(&project_id),
            clean(&user_id),
            req.role.as_str()
        ),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            check_id("project", &project_id)?;
            check_id("member", &user_id)?;
            if req.role == Role::Owner {
                return Err(ApiError::invalid(
                    "Owner is a tenant role, not a project role",
                ));
            }
            super::sharing::refuse_if_shared(&st, &p.tenant_id, &project_id).await?;
            st.store
                .set_project_role(&p.tenant_id, &project_id, &user_id, req.role, draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Removes a per-project role (Admin, step-up).
#[utoipa::path(delete, path = "/v1/projects/{project_id}/members/{user_id}", tag = "projects",
    params(("project_id" = String, Path), ("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn remove_project_role(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path((project_id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::PROJECT_ROLE_REMOVE,
        format!("project/{}/member/{}", clean(&project_id), clean(&user_id)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            check_id("project", &project_id)?;
            check_id("member", &user_id)?;
            super::sharing::refuse_if_shared(&st, &p.tenant_id, &project_id).await?;
            st.store
                .remove_project_role(&p.tenant_id, &project_id, &user_id, draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

// ------------------------------------------------------------------ retention
//
// The policy model is the vault's (`labvault_governance::retention`): defaults by plan tier,
// tenant overrides, project overrides on top, validated as a whole (audit logs >= 6 years,
// session data fixed by the plan except on enterprise).

use labvault_governance::retention::{
    DataType as GovType, PlanTier as GovPlan, PolicyOverride, RetentionPeriod,
    RetentionPolicy as GovPolicy,
};

fn gov_plan(p: PlanTier) -> GovPlan {
    match p {
        PlanTier::Trial => GovPlan::Trial,
        PlanTier::Starter => GovPlan::Starter,
        PlanTier::Professional => GovPlan::Professional,
        PlanTier::Enterprise => GovPlan::Enterprise,
    }
}

fn gov_type(t: DataType) -> GovType {
    match t {
        DataType::ResearchData => GovType::ResearchData,
        DataType::AnalysisResult => GovType::AnalysisResult,
        DataType::Backup => GovType::Backup,
        DataType::AuditLog => GovType::AuditLog,
        DataType::SessionData => GovType::SessionData,
    }
}

fn wire_type(t: GovType) -> DataType {
    match t {
        GovType::ResearchData => DataType::ResearchData,
        GovType::AnalysisResult => DataType::AnalysisResult,
        GovType::Backup => DataType::Backup,
        GovType::AuditLog => DataType::AuditLog,
        GovType::SessionData => DataType::SessionData,
    }
}

fn overrides(rows: &[RetentionRow], project: Option<&str>) -> PolicyOverride {
    let mut ov = PolicyOverride::default();
    for r in rows.iter().filter(|r| r.project_id.as_deref() == project) {
        if let (Ok(t), Ok(p)) = (
            r.data_type.parse::<GovType>(),
            r.period.parse::<RetentionPeriod>(),
        ) {
            ov.set(t, p);
        }
    }
    ov
}

/// When erased blobs of a project may be removed: `erased_at` plus the grace period of the
/// project's effective policy. A deleted tenant has no policy left: at once.
pub(crate) async fn erased_removable_at(
    st: &AppState,
    tenant: &str,
    project: &str,
    erased_at: i64,
) -> ApiResult<i64> {
    let t = match st.store.get_tenant(tenant).await {
        Ok(t) => t,
        Err(crate::store::StoreError::NotFound(_)) => return Ok(erased_at),
        Err(e) => return Err(e.into()),
    };
    let rows = st.store.retention_rules(tenant).await?;
    let policy = effective(&rows, Some(project), t.plan)?;
    let start = time::OffsetDateTime::from_unix_timestamp(erased_at)
        .map_err(|e| ApiError::internal(format!("erasure time: {e}")))?;
    Ok(policy.grace.add_to(start).unix_timestamp())
}

fn effective(rows: &[RetentionRow], project: Option<&str>, plan: PlanTier) -> ApiResult<GovPolicy> {
    let mut ov = overrides(rows, None);
    if let Some(p) = project {
        ov = ov.merged_with(&overrides(rows, Some(p)));
    }
    if plan != PlanTier::Enterprise {
        // Session data follows the plan tier; an override from an earlier enterprise plan lapses.
        ov.session_data = None;
    }
    GovPolicy::defaults(gov_plan(plan))
        .apply(&ov)
        .map_err(|e| ApiError::invalid(format!("retention policy: {e}")))
}

fn wire_policy(p: &GovPolicy, plan: PlanTier) -> RetentionPolicy {
    RetentionPolicy {
        plan,
        rules: GovType::ALL
            .iter()
            .map(|t| RetentionRule {
                data_type: wire_type(*t),
                period: p.period(*t).to_string(),
            })
            .collect(),
        grace: p.grace.to_string(),
    }
}

/// Tenant policy and project overrides (any member).
#[utoipa::path(get, path = "/v1/retention", tag = "retention", security(("bearer" = [])),
    responses((status = 200, body = RetentionOverview), (status = "4XX", body = ErrorBody)))]
pub async fn get_retention(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<RetentionOverview>> {
    st.audited(
        &p,
        &meta,
        actions::RETENTION_VIEW,
        "retention".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Viewer)?;
            let t = st.store.get_tenant(&p.tenant_id).await?;
            let rows = st.store.retention_rules(&p.tenant_id).await?;
            let mut projects: Vec<String> =
                rows.iter().filter_map(|r| r.project_id.clone()).collect();
            projects.dedup();
            let mut out = Vec::new();
            for pid in &projects {
                out.push(ProjectRetention {
                    project_id: pid.clone(),
                    policy: wire_policy(&effective(&rows, Some(pid), t.plan)?, t.plan),
                });
            }
            Ok(Json(RetentionOverview {
                tenant: wire_policy(&effective(&rows, None, t.plan)?, t.plan),
                projects: out,
            }))
        },
    )
    .await
}

async fn set_rules(
    st: &AppState,
    p: &Principal,
    project: Option<String>,
    req: RetentionRequest,
    draft: crate::store::AuditDraft,
) -> ApiResult<RetentionPolicy> {
    p.require(Role::Admin)?;
    p.require_recent_mfa(st)?;
    if let Some(pid) = &project {
        check_id("project", pid)?;
        st.store.get_project(&p.tenant_id, pid).await?;
    }
    if req.rules.is_empty() || req.rules.len() > 5 {
        return Err(ApiError::invalid("give between 1 and 5 rules"));
    }
    let mut new_rows = Vec::new();
    let t = st.store.get_tenant(&p.tenant_id).await?;
    for r in &req.rules {
        if r.data_type == DataType::SessionData && t.plan != PlanTier::Enterprise {
            return Err(ApiError::invalid(format!(
                "session data retention is fixed by the {} plan tier",
                t.plan.as_str()
            )));
        }
        let period: RetentionPeriod = r
            .period
            .parse()
            .map_err(|e| ApiError::invalid(format!("period {:?}: {e}", r.period)))?;
        new_rows.push(RetentionRow {
            project_id: project.clone(),
            data_type: gov_type(r.data_type).as_str().to_string(),
            period: period.to_string(),
        });
    }
    // Validate the resulting policy (and every project policy built on it) before storing.
    let mut all = st.store.retention_rules(&p.tenant_id).await?;
    all.retain(|old| {
        !new_rows
            .iter()
            .any(|n| n.project_id == old.project_id && n.data_type == old.data_type)
    });
    all.extend(new_rows.iter().cloned());
    let policy = effective(&all, project.as_deref(), t.plan)?;
    let mut pids: Vec<String> = all.iter().filter_map(|r| r.project_id.clone()).collect();
    pids.sort();
    pids.dedup();
    for pid in &pids {
        effective(&all, Some(pid), t.plan)?;
    }
    st.store
        .set_retention_rules(&p.tenant_id, new_rows, draft)
        .await?;
    Ok(wire_policy(&policy, t.plan))
}

/// Changes tenant-wide retention (Owner/Admin, step-up).
#[utoipa::path(put, path = "/v1/retention", tag = "retention", request_body = RetentionRequest,
    security(("bearer" = [])),
    responses((status = 200, body = RetentionPolicy), (status = "4XX", body = ErrorBody)))]
pub async fn set_retention(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<RetentionRequest>,
) -> ApiResult<Json<RetentionPolicy>> {
    let draft = st.draft(
        &p.actor,
        &meta,
        actions::RETENTION_CHANGE,
        "retention".into(),
    );
    let r = set_rules(&st, &p, None, req, draft.clone()).await.map(Json);
    st.finish(&p.tenant_id, draft, r, true).await
}

/// Changes a project's retention override (Owner/Admin, step-up).
#[utoipa::path(put, path = "/v1/projects/{project_id}/retention", tag = "retention",
    request_body = RetentionRequest, params(("project_id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = RetentionPolicy), (status = "4XX", body = ErrorBody)))]
pub async fn set_project_retention(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(project_id): Path<String>,
    Json(req): Json<RetentionRequest>,
) -> ApiResult<Json<RetentionPolicy>> {
    let draft = st.draft(
        &p.actor,
        &meta,
        actions::RETENTION_CHANGE,
        format!("project/{}/retention", clean(&project_id)),
    );
    let r = set_rules(&st, &p, Some(project_id), req, draft.clone())
        .await
        .map(Json);
    st.finish(&p.tenant_id, draft, r, true).await
}
