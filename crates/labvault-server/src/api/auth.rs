//! Login (two steps with MFA), refresh rotation, logout, step-up, own account and MFA enrolment.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use labvault_governance::audit::actions;
use labvault_wire::*;

use crate::app::{AppState, AuditedBy, Principal, ReqMeta};
use crate::error::{ApiError, ApiResult};
use crate::jwt::{Claims, AUD_MFA, ISSUER};
use crate::secrets::{self, normalize_email, sha256_hex};
use crate::store::{StoreError, UserRow};
use crate::totp;

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "tenant, email or password is wrong",
    )
}

/// Sanitised claimed identity for audit events of failed logins.
fn claimed(email: &str) -> String {
    email
        .chars()
        .filter(|c| !c.is_control())
        .take(254)
        .collect::<String>()
        .to_lowercase()
}

async fn verify_pw(st: &AppState, password: String, hash: String) -> ApiResult<bool> {
    let kdf = st.cfg.kdf;
    let pw = secrets::Secret::new(password);
    tokio::task::spawn_blocking(move || secrets::verify_password(kdf, pw.expose(), &hash))
        .await
        .map_err(ApiError::internal)
}

fn locked(st: &AppState, u: &UserRow) -> Option<ApiError> {
    let until = u.locked_until?;
    let now = st.now();
    (until > now).then(|| {
        let mut e = ApiError::new(
            ErrorCode::RateLimited,
            "account temporarily locked after repeated failed logins",
        );
        e.retry_after = Some(until - now);
        e
    })
}

/// Starts a refresh family and returns the token pair.
async fn start_session(st: &AppState, u: &UserRow, mfa_at: Option<i64>) -> ApiResult<TokenPair> {
    let now = st.now();
    let family = uuid::Uuid::new_v4().to_string();
    let refresh = secrets::random_token();
    st.store
        .create_session(crate::store::NewSession {
            tenant: u.tenant_id.clone(),
            user: u.id.clone(),
            family: family.clone(),
            token_hash: sha256_hex(&refresh),
            now,
            expires_at: now + st.cfg.refresh_ttl,
            mfa_at,
        })
        .await?;
    Ok(TokenPair {
        access_token: st.access_token(&u.tenant_id, &u.id, &family, mfa_at),
        expires_in: st.cfg.access_ttl,
        refresh_token: refresh,
    })
}

/// Counts a failed password or code (and audits it, plus the lockout if it triggers one),
/// then returns the error to answer with, so the caller cannot forget either.
async fn fail_attempt(
    st: &AppState,
    u: &UserRow,
    meta: &ReqMeta,
    action: &str,
    err: ApiError,
) -> ApiError {
    let mut ev = st.draft(&u.email, meta, action, format!("user/{}", u.id));
    ev.result = AuditResult::Failure;
    ev.detail = err.code.as_str().into();
    let mut lock = st.draft(
        &u.email,
        meta,
        actions::AUTH_LOCKOUT,
        format!("user/{}", u.id),
    );
    lock.result = AuditResult::Denied;
    lock.detail = "rate_limited".into();
    st.store
        .login_failed(
            &u.tenant_id,
            &u.id,
            st.now(),
            st.cfg.max_failed_logins,
            st.cfg.lockout_secs,
            vec![ev, lock],
        )
        .await
        .map_or_else(ApiError::from, |_| err)
}

fn wrong_code() -> ApiError {
    ApiError::new(ErrorCode::InvalidMfaCode, "MFA code wrong or already used")
}

/// Password step.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = "4XX", body = ErrorBody)))]
pub async fn login(
    State(st): State<AppState>,
    meta: ReqMeta,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let LoginRequest {
        tenant,
        email,
        password,
    } = req;
    let password = secrets::Secret::new(password);
    st.check_ip_budget(meta.ip_addr)?;
    let tenant = match st.store.tenant_by_slug(&tenant).await {
        Ok(t) => t,
        Err(StoreError::NotFound(_)) => {
            verify_pw(&st, password.expose().to_string(), st.dummy_hash.clone()).await?;
            return Err(invalid_credentials());
        }
        Err(e) => return Err(e.into()),
    };
    let user = match normalize_email(&email) {
        Ok(e) => match st.store.user_by_email(&tenant.id, &e).await {
            Ok(u) => Some(u),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        Err(_) => None,
    };
    let Some(user) = user else {
        verify_pw(&st, password.expose().to_string(), st.dummy_hash.clone()).await?;
        let mut ev = st.draft(
            &claimed(&email),
            &meta,
            actions::AUTH_LOGIN,
            "user/unknown".into(),
        );
        ev.result = AuditResult::Failure;
        ev.detail = "invalid_credentials".into();
        st.store.append_audit(&tenant.id, ev).await?;
        return Err(invalid_credentials());
    };
    if let Some(e) = locked(&st, &user) {
        let mut ev = st.draft(
            &user.email,
            &meta,
            actions::AUTH_LOGIN,
            format!("user/{}", user.id),
        );
        ev.result = AuditResult::Denied;
        ev.detail = "rate_limited".into();
        st.store.append_audit(&tenant.id, ev).await?;
        return Err(e);
    }
    if !verify_pw(
        &st,
        password.expose().to_string(),
        user.password_hash.clone(),
    )
    .await?
    {
        return Err(fail_attempt(
            &st,
            &user,
            &meta,
            actions::AUTH_LOGIN,
            invalid_credentials(),
        )
        .await);
    }
    if tenant.expires_at.is_some_and(|t| t <= st.now()) {
        return Err(ApiError::new(
            ErrorCode::TenantExpired,
            "trial tenant expired",
        ));
    }
    if user.mfa_enrolled() {
        let now = st.now();
        let challenge = st.jwt.sign(&Claims {
            iss: ISSUER.into(),
            aud: AUD_MFA.into(),
            sub: user.id.clone(),
            tid: user.tenant_id.clone(),
            sid: String::new(),
            iat: now,
            nbf: now,
            exp: now + st.cfg.mfa_challenge_ttl,
            mfa_at: None,
            jti: uuid::Uuid::new_v4().to_string(),
        });
        let ev = st.draft(
            &user.email,
            &meta,
            "auth.login.password",
            format!("user/{}", user.id),
        );
        st.store.append_audit(&tenant.id, ev).await?;
        return Ok(Json(LoginResponse::MfaRequired {
            mfa_token: challenge,
        }));
    }
    st.store.login_succeeded(&tenant.id, &user.id).await?;
    let pair = start_session(&st, &user, None).await?;
    let ev = st.draft(
        &user.email,
        &meta,
        actions::AUTH_LOGIN,
        format!("user/{}", user.id),
    );
    st.store.append_audit(&tenant.id, ev).await?;
    Ok(Json(LoginResponse::Ok(pair)))
}

/// Associated data binding a sealed TOTP seed to its account.
fn totp_aad(u: &UserRow) -> String {
    format!("totp/{}/{}", u.tenant_id, u.id)
}

/// Checks a TOTP or recovery code for `u`, consuming it. Replays are refused.
async fn check_code(st: &AppState, u: &UserRow, code: &str) -> ApiResult<bool> {
    let Some(sealed) = &u.totp_secret else {
        return Ok(false);
    };
    let secret = st
        .sealer
        .open(&totp_aad(u), sealed)
        .ok_or_else(|| ApiError::internal("stored TOTP secret does not decrypt"))?;
    if let Some(step) = totp::verify(&secret, code, st.now(), u.totp_last_step) {
        return Ok(st
            .store
            .advance_totp_step(&u.tenant_id, &u.id, step)
            .await?);
    }
    let normalized = code.trim().to_lowercase();
    if normalized.len() == 14 {
        let keyed = recovery_hash(st, &u.tenant_id, &u.id, &normalized);
        if st
            .store
            .use_recovery_code(&u.tenant_id, &u.id, &keyed)
            .await?
        {
            return Ok(true);
        }
        // Codes issued before they were stored keyed (plain SHA-256) still work, once.
        return Ok(st
            .store
            .use_recovery_code(&u.tenant_id, &u.id, &sha256_hex(&normalized))
            .await?);
    }
    Ok(false)
}

/// What the database keeps of a recovery code: a keyed hash under the server's secret, bound
/// to the user (a leaked database alone cannot be searched for codes offline).
fn recovery_hash(st: &AppState, tenant: &str, user: &str, code: &str) -> String {
    st.sealer.keyed_hash(
        "recovery-code",
        &[tenant, user, &code.trim().to_lowercase()],
    )
}

/// MFA step of login.
#[utoipa::path(post, path = "/v1/auth/mfa", tag = "auth", request_body = MfaLoginRequest,
    responses((status = 200, body = TokenPair), (status = "4XX", body = ErrorBody)))]
pub async fn login_mfa(
    State(st): State<AppState>,
    meta: ReqMeta,
    Json(req): Json<MfaLoginRequest>,
) -> ApiResult<Json<TokenPair>> {
    st.check_ip_budget(meta.ip_addr)?;
    let claims = st
        .jwt
        .verify(&req.mfa_token, AUD_MFA, st.now())
        .map_err(|_| ApiError::unauthorized("MFA challenge invalid or expired; log in again"))?;
    let user = match st.store.get_user(&claims.tid, &claims.sub).await {
        Ok(u) => u,
        Err(StoreError::NotFound(_)) => return Err(ApiError::unauthorized("account not found")),
        Err(e) => return Err(e.into()),
    };
    if let Some(e) = locked(&st, &user) {
        return Err(e);
    }
    if !check_code(&st, &user, &req.code).await? {
        return Err(fail_attempt(&st, &user, &meta, actions::AUTH_MFA, wrong_code()).await);
    }
    st.store.login_succeeded(&user.tenant_id, &user.id).await?;
    let pair = start_session(&st, &user, Some(st.now())).await?;
    let ev = st.draft(
        &user.email,
        &meta,
        actions::AUTH_LOGIN,
        format!("user/{}", user.id),
    );
    st.store.append_audit(&user.tenant_id, ev).await?;
    Ok(Json(pair))
}

fn bad_refresh() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRefreshToken,
        "refresh token invalid, expired or revoked; log in again",
    )
}

/// Rotates a refresh token.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = "4XX", body = ErrorBody)))]
pub async fn refresh(
    State(st): State<AppState>,
    meta: ReqMeta,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let now = st.now();
    let new = secrets::random_token();
    let outcome = st
        .store
        .rotate_refresh(
            &sha256_hex(&req.refresh_token),
            &sha256_hex(&new),
            now,
            now + st.cfg.refresh_ttl,
            st.cfg.refresh_grace,
        )
        .await?;
    match outcome {
        crate::store::RefreshOutcome::Rotated {
            user_id,
            tenant_id,
            family_id,
            mfa_at,
        } => {
            let actor = st
                .store
                .get_user(&tenant_id, &user_id)
                .await
                .map(|u| u.email)
                .unwrap_or_else(|_| "unknown".into());
            let ev = st.draft(
                &actor,
                &meta,
                actions::AUTH_REFRESH,
                format!("user/{user_id}"),
            );
            st.store.append_audit(&tenant_id, ev).await?;
            Ok(Json(TokenPair {
                access_token: st.access_token(&tenant_id, &user_id, &family_id, mfa_at),
                expires_in: st.cfg.access_ttl,
                refresh_token: new,
            }))
        }
        crate::store::RefreshOutcome::Reused { tenant_id, user_id } => {
            let actor = st
                .store
                .get_user(&tenant_id, &user_id)
                .await
                .map(|u| u.email)
                .unwrap_or_else(|_| "unknown".into());
            let mut ev = st.draft(
                &actor,
                &meta,
                actions::AUTH_REFRESH_REUSE,
                format!("user/{user_id}"),
            );
            ev.result = AuditResult::Denied;
            ev.detail = "invalid_refresh_token".into();
            st.store.append_audit(&tenant_id, ev).await?;
            Err(bad_refresh())
        }
        crate::store::RefreshOutcome::Invalid => Err(bad_refresh()),
    }
}

/// Revokes the refresh token's family.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn logout(
    State(st): State<AppState>,
    meta: ReqMeta,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    if let Some((tenant, user)) = st
        .store
        .revoke_by_refresh(&sha256_hex(&req.refresh_token), st.now())
        .await?
    {
        let actor = st
            .store
            .get_user(&tenant, &user)
            .await
            .map(|u| u.email)
            .unwrap_or_else(|_| "unknown".into());
        let ev = st.draft(&actor, &meta, actions::AUTH_LOGOUT, format!("user/{user}"));
        st.store.append_audit(&tenant, ev).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Fresh access token with a new `mfa_at`, without logging in again.
#[utoipa::path(post, path = "/v1/auth/step-up", tag = "auth", request_body = MfaCodeRequest,
    security(("bearer" = [])),
    responses((status = 200, body = AccessToken), (status = "4XX", body = ErrorBody)))]
pub async fn step_up(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<MfaCodeRequest>,
) -> ApiResult<Json<AccessToken>> {
    let draft = st.draft(
        &p.actor,
        &meta,
        actions::AUTH_STEP_UP,
        format!("user/{}", p.user_id),
    );
    let r = async {
        p.require_user()?;
        let user = st.store.get_user(&p.tenant_id, &p.user_id).await?;
        if !user.mfa_enrolled() {
            return Err(ApiError::new(
                ErrorCode::MfaRequired,
                "enrol TOTP first (POST /v1/me/mfa/enroll)",
            ));
        }
        if !check_code(&st, &user, &req.code).await? {
            return Err(fail_attempt(&st, &user, &meta, actions::AUTH_STEP_UP, wrong_code()).await);
        }
        let now = st.now();
        st.store
            .set_session_mfa(&p.tenant_id, &p.session, now)
            .await?;
        Ok(Json(AccessToken {
            access_token: st.access_token(&p.tenant_id, &p.user_id, &p.session, Some(now)),
            expires_in: st.cfg.access_ttl,
        }))
    }
    .await;
    finish_unless_counted(&st, &p, draft, r, false).await
}

/// Audits the outcome, except wrong passwords/codes: `fail_attempt` already recorded those
/// (with the lockout, if any) and a second event would double-count them.
async fn finish_unless_counted<T>(
    st: &AppState,
    p: &Principal,
    draft: crate::store::AuditDraft,
    r: ApiResult<T>,
    recorded: bool,
) -> ApiResult<T> {
    let counted = matches!(&r, Err(e) if matches!(e.code, ErrorCode::InvalidMfaCode | ErrorCode::InvalidCredentials));
    match r {
        Err(e) if counted => Err(e),
        r => st.finish(&p.tenant_id, draft, r, recorded).await,
    }
}

/// The caller's profile.
#[utoipa::path(get, path = "/v1/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = "4XX", body = ErrorBody)))]
pub async fn me(State(st): State<AppState>, p: Principal, meta: ReqMeta) -> ApiResult<Json<Me>> {
    st.audited(
        &p,
        &meta,
        actions::ACCOUNT_VIEW,
        format!("user/{}", p.user_id),
        AuditedBy::Handler,
        async |_| {
            let u = st.store.get_user(&p.tenant_id, &p.user_id).await?;
            Ok(Json(Me {
                id: u.id,
                email: u.email,
                role: p.role,
                tenant_id: p.tenant_id.clone(),
                mfa_enrolled: u.totp_secret.is_some(),
            }))
        },
    )
    .await
}

/// Right to deletion: irreversibly deletes the caller's account.
#[utoipa::path(delete, path = "/v1/me", tag = "account", request_body = DeleteAccountRequest,
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_me(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<DeleteAccountRequest>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::ACCOUNT_DELETE,
        format!("user/{}", p.user_id),
        AuditedBy::Store,
        async |draft| {
            p.require_user()?;
            let u = st.store.get_user(&p.tenant_id, &p.user_id).await?;
            if !verify_pw(&st, req.password.clone(), u.password_hash.clone()).await? {
                return Err(invalid_credentials());
            }
            st.store
                .delete_user(&p.tenant_id, &p.user_id, draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Starts TOTP enrolment.
#[utoipa::path(post, path = "/v1/me/mfa/enroll", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = MfaEnrollResponse), (status = "4XX", body = ErrorBody)))]
pub async fn mfa_enroll(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<MfaEnrollResponse>> {
    st.audited(&p, &meta, actions::AUTH_MFA_ENROLL_START, format!("user/{}", p.user_id), AuditedBy::Handler, async |_| {
        p.require_user()?;
        let u = st.store.get_user(&p.tenant_id, &p.user_id).await?;
        if u.mfa_enrolled() {
            return Err(ApiError::conflict("MFA is already enrolled"));
        }
        let secret = zeroize::Zeroizing::new(secrets::random_bytes::<20>());
        let b32 = totp::base32(&secret[..]);
        let sealed = st.sealer.seal(&totp_aad(&u), &secret[..]);
        st.store
            .set_totp_pending(&p.tenant_id, &p.user_id, sealed)
            .await?;
        Ok(Json(MfaEnrollResponse {
            otpauth_uri: format!(
                "otpauth://totp/LabVault:{}?secret={b32}&issuer=LabVault&algorithm=SHA1&digits=6&period=30",
                u.email.replace('@', "%40")
            ),
            secret_base32: b32,
        }))
    })
    .await
}

/// Confirms enrolment with a first code; returns recovery codes once.
#[utoipa::path(post, path = "/v1/me/mfa/confirm", tag = "account", request_body = MfaCodeRequest,
    security(("bearer" = [])),
    responses((status = 200, body = RecoveryCodes), (status = "4XX", body = ErrorBody)))]
pub async fn mfa_confirm(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<MfaCodeRequest>,
) -> ApiResult<Json<RecoveryCodes>> {
    st.audited(
        &p,
        &meta,
        actions::AUTH_MFA_ENROLL,
        format!("user/{}", p.user_id),
        AuditedBy::Store,
        async |draft| {
            p.require_user()?;
            let u = st.store.get_user(&p.tenant_id, &p.user_id).await?;
            let sealed = u
                .totp_pending
                .as_ref()
                .ok_or_else(|| ApiError::conflict("no MFA enrolment in progress"))?;
            let pending = st
                .sealer
                .open(&totp_aad(&u), sealed)
                .ok_or_else(|| ApiError::internal("stored TOTP secret does not decrypt"))?;
            let step = totp::verify(&pending, &req.code, st.now(), None)
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidMfaCode, "MFA code wrong"))?;
            let codes: Vec<String> = (0..10).map(|_| secrets::recovery_code()).collect();
            let hashes = codes
                .iter()
                .map(|c| recovery_hash(&st, &p.tenant_id, &p.user_id, c))
                .collect();
            st.store
                .confirm_totp(&p.tenant_id, &p.user_id, step, hashes, draft.clone())
                .await?;
            Ok(Json(RecoveryCodes {
                recovery_codes: codes,
            }))
        },
    )
    .await
}

/// Changes the caller's password. The current password is required (a stolen access token
/// alone cannot take the account over); every other session is logged out.
#[utoipa::path(post, path = "/v1/me/password", tag = "account", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses((status = 200, body = SessionsRevoked), (status = "4XX", body = ErrorBody)))]
pub async fn change_password(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<Json<SessionsRevoked>> {
    let draft = st.draft(
        &p.actor,
        &meta,
        actions::ACCOUNT_PASSWORD_CHANGE,
        format!("user/{}", p.user_id),
    );
    let current = secrets::Secret::new(req.current_password);
    let new = secrets::Secret::new(req.new_password);
    let r = async {
        let u = reauthenticate(&st, &p, &meta, &current, actions::ACCOUNT_PASSWORD_CHANGE).await?;
        if new.expose() == current.expose() {
            return Err(ApiError::invalid(
                "the new password must differ from the current one",
            ));
        }
        secrets::check_password_policy(new.expose(), &u.email)?;
        let kdf = st.cfg.kdf;
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(kdf, new.expose()))
            .await
            .map_err(ApiError::internal)??;
        let n = st
            .store
            .change_password(
                &p.tenant_id,
                &p.user_id,
                hash,
                &p.session,
                st.now(),
                draft.clone(),
            )
            .await?;
        Ok(Json(SessionsRevoked {
            sessions_revoked: n,
        }))
    }
    .await;
    finish_unless_counted(&st, &p, draft, r, true).await
}

/// Re-checks the password of a logged-in user before a security-sensitive change to their
/// own account; a wrong one counts towards the lockout like a failed login.
async fn reauthenticate(
    st: &AppState,
    p: &Principal,
    meta: &ReqMeta,
    password: &secrets::Secret,
    action: &str,
) -> ApiResult<UserRow> {
    p.require_user()?;
    let u = st.store.get_user(&p.tenant_id, &p.user_id).await?;
    if let Some(e) = locked(st, &u) {
        return Err(e);
    }
    if !verify_pw(st, password.expose().to_string(), u.password_hash.clone()).await? {
        let e = ApiError::new(
            ErrorCode::InvalidCredentials,
            "the current password is wrong",
        );
        return Err(fail_attempt(st, &u, meta, action, e).await);
    }
    Ok(u)
}

/// Turns the caller's own MFA off (password and a current code or recovery code). Other
/// sessions are logged out; if the tenant requires MFA, the caller must enrol again before
/// anything but `/v1/me` works.
#[utoipa::path(delete, path = "/v1/me/mfa", tag = "account", request_body = DisableMfaRequest,
    security(("bearer" = [])),
    responses((status = 200, body = SessionsRevoked), (status = "4XX", body = ErrorBody)))]
pub async fn mfa_disable(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<DisableMfaRequest>,
) -> ApiResult<Json<SessionsRevoked>> {
    let draft = st.draft(
        &p.actor,
        &meta,
        actions::ACCOUNT_MFA_DISABLE,
        format!("user/{}", p.user_id),
    );
    let password = secrets::Secret::new(req.password);
    let r = async {
        let u = reauthenticate(&st, &p, &meta, &password, actions::ACCOUNT_MFA_DISABLE).await?;
        if !u.mfa_enrolled() {
            return Err(ApiError::conflict("MFA is not enrolled"));
        }
        if !check_code(&st, &u, &req.code).await? {
            return Err(
                fail_attempt(&st, &u, &meta, actions::ACCOUNT_MFA_DISABLE, wrong_code()).await,
            );
        }
        let n = st
            .store
            .reset_mfa(
                &p.tenant_id,
                &p.user_id,
                &p.session,
                st.now(),
                draft.clone(),
            )
            .await?;
        Ok(Json(SessionsRevoked {
            sessions_revoked: n,
        }))
    }
    .await;
    finish_unless_counted(&st, &p, draft, r, true).await
}
