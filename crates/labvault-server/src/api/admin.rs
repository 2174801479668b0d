//! Tenant, members, invitations and API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use labvault_governance::audit::actions;
use labvault_wire::*;

use crate::app::{check_id, check_text, clean, AppState, AuditedBy, Principal, ReqMeta};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::secrets::{self, normalize_email, sha256_hex};
use crate::store::{ApiKeyRow, InvitationRow, TenantRow, UserRow};

/// Wire form of a tenant row.
pub fn tenant_info(t: &TenantRow) -> TenantInfo {
    TenantInfo {
        id: t.id.clone(),
        slug: t.slug.clone(),
        name: t.name.clone(),
        plan: t.plan,
        require_mfa: t.require_mfa,
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
    }
}

/// Wire form of a user row.
pub fn member(u: &UserRow) -> Member {
    Member {
        id: u.id.clone(),
        email: u.email.clone(),
        role: u.role,
        mfa_enrolled: u.mfa_enrolled(),
        created_at: rfc3339(u.created_at),
        last_active_at: u.last_active_at.map(rfc3339),
    }
}

/// Wire form of an invitation row.
pub fn invitation(i: &InvitationRow) -> Invitation {
    Invitation {
        id: i.id.clone(),
        email: i.email.clone(),
        role: i.role,
        expires_at: rfc3339(i.expires_at),
        created_at: rfc3339(i.created_at),
    }
}

fn api_key(k: &ApiKeyRow) -> ApiKey {
    ApiKey {
        id: k.id.clone(),
        name: k.name.clone(),
        role: k.role,
        project_id: k.project_id.clone(),
        created_at: rfc3339(k.created_at),
        expires_at: rfc3339(k.expires_at),
        revoked_at: k.revoked_at.map(rfc3339),
    }
}

/// The caller's tenant.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = TenantInfo), (status = "4XX", body = ErrorBody)))]
pub async fn get_tenant(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<TenantInfo>> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_VIEW,
        format!("tenant/{}", p.tenant_id),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Viewer)?;
            Ok(Json(tenant_info(&st.store.get_tenant(&p.tenant_id).await?)))
        },
    )
    .await
}

/// Right to deletion: the Owner irreversibly deletes the tenant's data. The tenant is
/// tombstoned and its audit chain is kept (audit logs are retained six years minimum); the
/// slug becomes free again.
#[utoipa::path(delete, path = "/v1/tenant", tag = "tenant", request_body = DeleteTenantRequest,
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_tenant(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<DeleteTenantRequest>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_DELETE,
        format!("tenant/{}", p.tenant_id),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Owner)?;
            p.require_recent_mfa(&st)?;
            let t = st.store.get_tenant(&p.tenant_id).await?;
            if req.confirm_slug != t.slug {
                return Err(ApiError::invalid(
                    "confirm_slug does not match the tenant slug",
                ));
            }
            st.store
                .delete_tenant(&p.tenant_id, st.now(), draft.clone(), draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Plan tier change (Owner, step-up).
#[utoipa::path(put, path = "/v1/tenant/plan", tag = "tenant", request_body = PlanRequest,
    security(("bearer" = [])),
    responses((status = 200, body = TenantInfo), (status = "4XX", body = ErrorBody)))]
pub async fn set_plan(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<PlanRequest>,
) -> ApiResult<Json<TenantInfo>> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_PLAN_CHANGE,
        format!("tenant/{}/plan/{}", p.tenant_id, req.plan.as_str()),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Owner)?;
            p.require_recent_mfa(&st)?;
            if req.plan == PlanTier::Trial {
                return Err(ApiError::invalid(
                    "a tenant cannot be moved back to the trial tier",
                ));
            }
            let t = st
                .store
                .update_tenant(&p.tenant_id, Some(req.plan), None, true, draft.clone())
                .await?;
            Ok(Json(tenant_info(&t)))
        },
    )
    .await
}

/// Tenant settings (require MFA for all members): Owner/Admin, step-up.
#[utoipa::path(put, path = "/v1/tenant/settings", tag = "tenant", request_body = TenantSettingsRequest,
    security(("bearer" = [])),
    responses((status = 200, body = TenantInfo), (status = "4XX", body = ErrorBody)))]
pub async fn set_settings(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<TenantSettingsRequest>,
) -> ApiResult<Json<TenantInfo>> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_SETTINGS_CHANGE,
        format!("tenant/{}/require_mfa/{}", p.tenant_id, req.require_mfa),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            let t = st
                .store
                .update_tenant(
                    &p.tenant_id,
                    None,
                    Some(req.require_mfa),
                    false,
                    draft.clone(),
                )
                .await?;
            Ok(Json(tenant_info(&t)))
        },
    )
    .await
}

/// Transfers ownership; the caller becomes Admin.
#[utoipa::path(post, path = "/v1/tenant/transfer-ownership", tag = "tenant",
    request_body = TransferOwnershipRequest, security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn transfer_ownership(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<TransferOwnershipRequest>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_OWNERSHIP_TRANSFER,
        format!("member/{}", clean(&req.user_id)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Owner)?;
            p.require_recent_mfa(&st)?;
            check_id("member", &req.user_id)?;
            st.store
                .transfer_ownership(&p.tenant_id, &p.user_id, &req.user_id, draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Members of the tenant.
#[utoipa::path(get, path = "/v1/members", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = [Member]), (status = "4XX", body = ErrorBody)))]
pub async fn list_members(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<Vec<Member>>> {
    st.audited(
        &p,
        &meta,
        actions::MEMBER_LIST,
        "members".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Viewer)?;
            let users = st.store.list_users(&p.tenant_id).await?;
            Ok(Json(users.iter().map(member).collect()))
        },
    )
    .await
}

/// Changes a member's tenant role (Admin+, step-up; only Owners grant or revoke Owner).
#[utoipa::path(put, path = "/v1/members/{user_id}/role", tag = "members", request_body = RoleRequest,
    params(("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Member), (status = "4XX", body = ErrorBody)))]
pub async fn set_member_role(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(user_id): Path<String>,
    Json(req): Json<RoleRequest>,
) -> ApiResult<Json<Member>> {
    st.audited(
        &p,
        &meta,
        actions::MEMBER_ROLE_CHANGE,
        format!("member/{}/role/{}", clean(&user_id), req.role.as_str()),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            check_id("member", &user_id)?;
            let target = st.store.get_user(&p.tenant_id, &user_id).await?;
            if (target.role == Role::Owner || req.role == Role::Owner) && p.role != Role::Owner {
                return Err(ApiError::forbidden(
                    "only an Owner can grant or revoke the Owner role",
                ));
            }
            let u = st
                .store
                .set_role(&p.tenant_id, &user_id, req.role, draft.clone())
                .await?;
            Ok(Json(member(&u)))
        },
    )
    .await
}

/// Removes a member (Admin+, step-up; the last Owner cannot be removed).
#[utoipa::path(delete, path = "/v1/members/{user_id}", tag = "members",
    params(("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn remove_member(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::MEMBER_REMOVE,
        format!("member/{}", clean(&user_id)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            check_id("member", &user_id)?;
            let target = st.store.get_user(&p.tenant_id, &user_id).await?;
            if target.role == Role::Owner && p.role != Role::Owner {
                return Err(ApiError::forbidden("only an Owner can remove an Owner"));
            }
            st.store
                .delete_user(&p.tenant_id, &user_id, draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Resets a member's MFA (lost authenticator and recovery codes): Admin+, step-up; only an
/// Owner can reset an Owner's. The member's sessions are all revoked, so they log in with
/// their password and enrol again.
#[utoipa::path(post, path = "/v1/members/{user_id}/mfa/reset", tag = "members",
    params(("user_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = SessionsRevoked), (status = "4XX", body = ErrorBody)))]
pub async fn reset_member_mfa(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(user_id): Path<String>,
) -> ApiResult<Json<SessionsRevoked>> {
    st.audited(
        &p,
        &meta,
        actions::MEMBER_MFA_RESET,
        format!("member/{}", clean(&user_id)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            check_id("member", &user_id)?;
            let target = st.store.get_user(&p.tenant_id, &user_id).await?;
            if target.id == p.user_id {
                return Err(ApiError::invalid(
                    "use DELETE /v1/me/mfa to turn off your own MFA",
                ));
            }
            if target.role == Role::Owner && p.role != Role::Owner {
                return Err(ApiError::forbidden(
                    "only an Owner can reset an Owner's MFA",
                ));
            }
            let n = st
                .store
                .reset_mfa(&p.tenant_id, &user_id, "", st.now(), draft.clone())
                .await?;
            Ok(Json(SessionsRevoked {
                sessions_revoked: n,
            }))
        },
    )
    .await
}

/// Pending invitations.
#[utoipa::path(get, path = "/v1/invitations", tag = "invitations", security(("bearer" = [])),
    responses((status = 200, body = [Invitation]), (status = "4XX", body = ErrorBody)))]
pub async fn list_invitations(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<Vec<Invitation>>> {
    st.audited(
        &p,
        &meta,
        actions::INVITATION_LIST,
        "invitations".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Admin)?;
            let inv = st.store.pending_invitations(&p.tenant_id, st.now()).await?;
            Ok(Json(inv.iter().map(invitation).collect()))
        },
    )
    .await
}

/// Invites someone (Admin+; only Owners invite Owners).
#[utoipa::path(post, path = "/v1/invitations", tag = "invitations", request_body = InvitationRequest,
    security(("bearer" = [])),
    responses((status = 201, body = InvitationCreated), (status = "4XX", body = ErrorBody)))]
pub async fn create_invitation(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<InvitationRequest>,
) -> ApiResult<(StatusCode, Json<InvitationCreated>)> {
    let id = uuid::Uuid::new_v4().to_string();
    st.audited(
        &p,
        &meta,
        actions::INVITATION_CREATE,
        format!("invitation/{id}"),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            if req.role == Role::Owner && p.role != Role::Owner {
                return Err(ApiError::forbidden("only an Owner can invite an Owner"));
            }
            let email = normalize_email(&req.email)?;
            let hours = req.expires_in_hours.unwrap_or(72);
            if !(1..=720).contains(&hours) {
                return Err(ApiError::invalid(
                    "expires_in_hours must be between 1 and 720",
                ));
            }
            let token = secrets::random_token();
            let now = st.now();
            let row = InvitationRow {
                id: id.clone(),
                tenant_id: p.tenant_id.clone(),
                email,
                role: req.role,
                token_hash: sha256_hex(&token),
                created_at: now,
                expires_at: now + i64::from(hours) * 3600,
                closed_at: None,
            };
            st.store
                .create_invitation(row.clone(), draft.clone())
                .await?;
            Ok((
                StatusCode::CREATED,
                Json(InvitationCreated {
                    invitation: invitation(&row),
                    token,
                }),
            ))
        },
    )
    .await
}

/// Revokes a pending invitation.
#[utoipa::path(delete, path = "/v1/invitations/{invitation_id}", tag = "invitations",
    params(("invitation_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn revoke_invitation(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::INVITATION_REVOKE,
        format!("invitation/{}", clean(&id)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            check_id("invitation", &id)?;
            st.store
                .revoke_invitation(&p.tenant_id, &id, st.now(), draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Accepts an invitation, creating the account (single use, before expiry).
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "invitations",
    request_body = AcceptInvitationRequest,
    responses((status = 201, body = Member), (status = "4XX", body = ErrorBody)))]
pub async fn accept_invitation(
    State(st): State<AppState>,
    meta: ReqMeta,
    Json(req): Json<AcceptInvitationRequest>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    st.check_ip_budget(meta.ip_addr)?;
    let password = secrets::Secret::new(req.password);
    let inv = st
        .store
        .invitation_by_token(&sha256_hex(&req.token))
        .await
        .map_err(|_| ApiError::not_found("invitation"))?;
    let now = st.now();
    if inv.closed_at.is_some() || inv.expires_at <= now {
        return Err(ApiError::not_found("invitation"));
    }
    secrets::check_password_policy(password.expose(), &inv.email)?;
    let kdf = st.cfg.kdf;
    let hash = tokio::task::spawn_blocking(move || secrets::hash_password(kdf, password.expose()))
        .await
        .map_err(ApiError::internal)??;
    let user = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: inv.tenant_id.clone(),
        email: inv.email.clone(),
        password_hash: hash,
        role: inv.role,
        totp_secret: None,
        totp_pending: None,
        totp_last_step: None,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
        last_active_at: None,
    };
    let draft = st.draft(
        &inv.email,
        &meta,
        actions::INVITATION_ACCEPT,
        format!("invitation/{}", inv.id),
    );
    st.store
        .accept_invitation(&inv.id, user.clone(), now, draft)
        .await?;
    Ok((StatusCode::CREATED, Json(member(&user))))
}

/// API keys of the tenant.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = [ApiKey]), (status = "4XX", body = ErrorBody)))]
pub async fn list_api_keys(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<Vec<ApiKey>>> {
    st.audited(
        &p,
        &meta,
        actions::APIKEY_LIST,
        "api-keys".into(),
        AuditedBy::Handler,
        async |_| {
            p.require(Role::Admin)?;
            let keys = st.store.list_api_keys(&p.tenant_id).await?;
            Ok(Json(keys.iter().map(api_key).collect()))
        },
    )
    .await
}

/// Creates an API key (Admin+, step-up); the secret is shown once.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = ApiKeyRequest,
    security(("bearer" = [])),
    responses((status = 201, body = ApiKeyCreated), (status = "4XX", body = ErrorBody)))]
pub async fn create_api_key(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<ApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    st.audited(
        &p,
        &meta,
        actions::APIKEY_CREATE,
        format!("api-key/{id}"),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            check_text("name", &req.name, 200)?;
            if req.role > p.role || req.role == Role::Owner {
                return Err(ApiError::forbidden(
                    "an API key cannot have the Owner role or a role above its creator's",
                ));
            }
            if !(1..=365).contains(&req.expires_in_days) {
                return Err(ApiError::invalid(
                    "expires_in_days must be between 1 and 365",
                ));
            }
            if let Some(pid) = &req.project_id {
                check_id("project", pid)?;
            }
            let secret = secrets::random_token();
            let now = st.now();
            let row = ApiKeyRow {
                id: id.clone(),
                tenant_id: p.tenant_id.clone(),
                name: req.name.clone(),
                role: req.role,
                project_id: req.project_id.clone(),
                secret_hash: sha256_hex(&secret),
                created_by: p.user_id.clone(),
                created_at: now,
                expires_at: now + i64::from(req.expires_in_days) * 86400,
                revoked_at: None,
            };
            st.store.create_api_key(row.clone(), draft.clone()).await?;
            Ok((
                StatusCode::CREATED,
                Json(ApiKeyCreated {
                    api_key: api_key(&row),
                    key: format!("lvk_{id}_{secret}"),
                }),
            ))
        },
    )
    .await
}

/// Revokes an API key.
#[utoipa::path(delete, path = "/v1/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn revoke_api_key(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::APIKEY_REVOKE,
        format!("api-key/{}", clean(&key_id)),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            if key_id.len() != 32 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::not_found("api key"));
            }
            st.store
                .revoke_api_key(&p.tenant_id, &key_id, st.now(), draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}
