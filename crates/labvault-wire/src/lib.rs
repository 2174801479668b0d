//! Wire types shared by the tenant server and the desktop client.
//!
//! Kept free of server-only dependencies (serde and the governance model only; OpenAPI schemas
//! behind the `openapi` feature) so the desktop client can depend on it without pulling in axum
//! or SQLite. Enums and the audit event format are governance's own types, re-exported, not
//! copies.
//! All timestamps are RFC 3339 UTC strings, all ids are UUID strings: both survive any
//! language's JSON parser without precision loss.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::fmt;

/// The audit event format (same JSON as the vault's export, so a client verifies pages and
/// exports with the shared chain verifier) and its outcome, which the wire calls a result.
pub use labvault_governance::audit::{AuditEvent, Outcome as AuditResult};
/// Plan tiers and retention data types, as the retention model defines them.
pub use labvault_governance::retention::{DataType, PlanTier};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

mod alerts;
mod sharing;
mod sync;
pub use alerts::*;
pub use sharing::*;
pub use sync::*;

/// Version of this wire protocol, served under `/v1`; bumped on incompatible changes.
pub const API_VERSION: &str = "v1";

/// Stable error codes; clients branch on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Email/password (or API key) did not match; deliberately does not say which.
    InvalidCredentials,
    /// The operation needs a recent MFA verification (login second step or step-up).
    MfaRequired,
    /// MFA code (TOTP or recovery code) wrong or already used.
    InvalidMfaCode,
    /// Authenticated but the role does not allow the operation.
    Forbidden,
    /// No such resource in the caller's tenant (also for other tenants' ids).
    NotFound,
    /// The request conflicts with current state (duplicate email, last Owner, ...).
    Conflict,
    /// Too many attempts; retry after the `Retry-After` header.
    RateLimited,
    /// The request body or parameters are malformed or violate a rule.
    InvalidInput,
    /// No or unusable credentials.
    Unauthorized,
    /// Access token expired: refresh it.
    TokenExpired,
    /// Refresh token reused, revoked or unknown: log in again.
    InvalidRefreshToken,
    /// Password rejected by the password policy.
    WeakPassword,
    /// Request body larger than the server accepts.
    PayloadTooLarge,
    /// The tenant requires MFA and the user has not enrolled yet.
    MfaEnrollmentRequired,
    /// Trial tenant expired and deleted.
    TenantExpired,
    /// Server-side failure; details are in the server log, not in the response.
    Internal,
    /// The tenant's storage quota (by plan tier) would be exceeded.
    QuotaExceeded,
    /// Uploaded bytes do not have the digest the client announced.
    DigestMismatch,
    /// The device is not (yet, or any more) allowed to sync: approve it from another device.
    DeviceNotApproved,
    /// The cursor is older than what the feed still holds: read the snapshot.
    CursorExpired,
    /// Refused because a legal hold covers the data (an erasure of held items).
    OnHold,
    /// The request (or its body) did not arrive in time; retry it.
    RequestTimeout,
}

impl ErrorCode {
    /// The snake_case code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::MfaRequired => "mfa_required",
            ErrorCode::InvalidMfaCode => "invalid_mfa_code",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::InvalidRefreshToken => "invalid_refresh_token",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::MfaEnrollmentRequired => "mfa_enrollment_required",
            ErrorCode::TenantExpired => "tenant_expired",
            ErrorCode::Internal => "internal",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::DigestMismatch => "digest_mismatch",
            ErrorCode::DeviceNotApproved => "device_not_approved",
            ErrorCode::CursorExpired => "cursor_expired",
            ErrorCode::OnHold => "on_hold",
            ErrorCode::RequestTimeout => "request_timeout",
        }
    }

    /// The HTTP status the server answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidCredentials
            | ErrorCode::Unauthorized
            | ErrorCode::TokenExpired
            | ErrorCode::InvalidRefreshToken
            | ErrorCode::InvalidMfaCode => 401,
            ErrorCode::MfaRequired
            | ErrorCode::Forbidden
            | ErrorCode::MfaEnrollmentRequired
            | ErrorCode::DeviceNotApproved => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::OnHold => 423,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::TenantExpired | ErrorCode::CursorExpired => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::InvalidInput | ErrorCode::WeakPassword | ErrorCode::DigestMismatch => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::QuotaExceeded => 507,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation naming what is wrong.
    pub message: String,
}

/// Role within a tenant or project, ordered from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only access.
    Viewer,
    /// Create, edit, run analyses.
    Editor,
    /// Manage the team and all data.
    Admin,
    /// Full control including plan and ownership.
    Owner,
}

impl Role {
    /// Stable lowercase name, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------- auth

/// First login step.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginRequest {
    /// Tenant slug (printed by `labvault-server init`).
    pub tenant: String,
    /// User email.
    pub email: String,
    /// Password; never logged.
    pub password: String,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("tenant", &self.tenant)
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Access + refresh token pair returned by a completed login, MFA step or refresh.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenPair {
    /// Signed JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use refresh token; each refresh returns a new one.
    pub refresh_token: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenPair([redacted], expires_in={})", self.expires_in)
    }
}

/// Result of the first login step.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginResponse {
    /// Logged in (no MFA enrolled).
    Ok(TokenPair),
    /// Password accepted; send a TOTP or recovery code with this challenge to `/v1/auth/mfa`.
    MfaRequired {
        /// Short-lived challenge token.
        mfa_token: String,
    },
}

/// Second login step.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MfaLoginRequest {
    /// Challenge token from the first step.
    pub mfa_token: String,
    /// 6-digit TOTP code or a recovery code.
    pub code: String,
}

/// Refresh or logout request.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RefreshRequest {
    /// The current refresh token.
    pub refresh_token: String,
}

/// MFA code for step-up or enrolment confirmation.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MfaCodeRequest {
    /// 6-digit TOTP code (or, for step-up, a recovery code).
    pub code: String,
}

/// Fresh access token after step-up.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccessToken {
    /// Signed JWT with a fresh `mfa_at`.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// TOTP enrolment material, shown once.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MfaEnrollResponse {
    /// Base32 shared secret for authenticator apps.
    pub secret_base32: String,
    /// `otpauth://` URI for QR codes.
    pub otpauth_uri: String,
}

/// Recovery codes, shown once after confirming enrolment; only their hashes are stored.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecoveryCodes {
    /// Single-use codes.
    pub recovery_codes: Vec<String>,
}

/// Confirmation for irreversible deletions.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeleteAccountRequest {
    /// Current password, re-checked before deletion.
    pub password: String,
}

/// Password change: the current password proves the caller is the account holder, not just
/// someone holding a stolen access token.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChangePasswordRequest {
    /// Current password.
    pub current_password: String,
    /// New password (same policy as at sign-up).
    pub new_password: String,
}

/// Outcome of a password change or MFA reset: every other session was logged out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionsRevoked {
    /// Session (refresh-token) families revoked by the change.
    pub sessions_revoked: u32,
}

/// Turning one's own MFA off needs both factors, so neither a stolen password nor a stolen
/// authenticator alone can remove the other.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DisableMfaRequest {
    /// Current password.
    pub password: String,
    /// A current TOTP code or an unused recovery code.
    pub code: String,
}

// ---------------------------------------------------------------- users, tenant

/// The caller's own profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Me {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Tenant role.
    pub role: Role,
    /// Tenant id.
    pub tenant_id: String,
    /// Whether TOTP is enrolled.
    pub mfa_enrolled: bool,
}

/// Tenant description visible to members.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantInfo {
    /// Tenant id.
    pub id: String,
    /// Login slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Plan tier.
    pub plan: PlanTier,
    /// Whether every member must enrol MFA.
    pub require_mfa: bool,
    /// Creation time.
    pub created_at: String,
    /// Deletion time for trials.
    pub expires_at: Option<String>,
}

/// Tenant settings change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantSettingsRequest {
    /// Require MFA enrolment for all members.
    pub require_mfa: bool,
}

/// Plan tier change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlanRequest {
    /// New plan tier (cannot be `trial`).
    pub plan: PlanTier,
}

/// Ownership transfer to another member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TransferOwnershipRequest {
    /// Member who becomes Owner; the caller becomes Admin.
    pub user_id: String,
}

/// A tenant member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Member {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Tenant role.
    pub role: Role,
    /// Whether TOTP is enrolled.
    pub mfa_enrolled: bool,
    /// Creation time.
    pub created_at: String,
    /// Last authenticated request, if any.
    pub last_active_at: Option<String>,
}

/// Role change for a member (tenant-wide or per project).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoleRequest {
    /// New role.
    pub role: Role,
}

// ---------------------------------------------------------------- invitations

/// Invite someone by email.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InvitationRequest {
    /// Invitee email.
    pub email: String,
    /// Tenant role on acceptance.
    pub role: Role,
    /// Validity in hours (default 72, max 720).
    pub expires_in_hours: Option<u32>,
}

/// A pending or used invitation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Invitation {
    /// Invitation id.
    pub id: String,
    /// Invitee email.
    pub email: String,
    /// Role on acceptance.
    pub role: Role,
    /// Expiry.
    pub expires_at: String,
    /// Creation time.
    pub created_at: String,
}

/// Created invitation with its single-use token, shown once.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InvitationCreated {
    /// The invitation.
    pub invitation: Invitation,
    /// Secret to hand to the invitee.
    pub token: String,
}

/// Accept an invitation, creating the account.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AcceptInvitationRequest {
    /// Invitation token.
    pub token: String,
    /// Password for the new account.
    pub password: String,
}

// ---------------------------------------------------------------- projects

/// Create a project. The name is an opaque client-side label: the desktop client sends
/// it encrypted, the server never interprets it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProjectRequest {
    /// Opaque label (1..=512 chars, no control characters).
    pub name: String,
    /// Id chosen by the client (a UUID), so a vault's project keeps its id on the tenant;
    /// the server makes one when absent. An id already in use is a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Project {
    /// Project id.
    pub id: String,
    /// Opaque label.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// The caller's effective role on it.
    pub effective_role: Role,
}

// ---------------------------------------------------------------- access review

/// Where an effective role comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// The member's tenant role.
    Tenant,
    /// A per-project assignment overriding the tenant role.
    Project,
}

/// One member × project row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccessReviewEntry {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Project id.
    pub project_id: String,
    /// Effective role on the project.
    pub effective_role: Role,
    /// Where the role comes from.
    pub source: RoleSource,
    /// Last authenticated request.
    pub last_active_at: Option<String>,
    /// TOTP enrolled.
    pub mfa_enrolled: bool,
    /// No activity for `stale_days` (or never active and created before that).
    pub stale: bool,
    /// Admin/Owner without MFA.
    pub admin_without_mfa: bool,
}

/// Per-member summary of the review.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccessReviewMember {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Tenant role.
    pub tenant_role: Role,
    /// Last authenticated request.
    pub last_active_at: Option<String>,
    /// TOTP enrolled.
    pub mfa_enrolled: bool,
    /// Stale access flag.
    pub stale: bool,
    /// Admin/Owner without MFA flag.
    pub admin_without_mfa: bool,
}

/// Access review for PIs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccessReview {
    /// When the review was generated.
    pub generated_at: String,
    /// Staleness threshold used.
    pub stale_days: u32,
    /// Members.
    pub members: Vec<AccessReviewMember>,
    /// Members × projects.
    pub entries: Vec<AccessReviewEntry>,
    /// Pending (unused, unexpired) invitations.
    pub pending_invitations: Vec<Invitation>,
}

/// A finished access review, signed off for the audit trail: who (the caller) and when (the
/// event's time) come from the request; what the review changed is listed here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccessReviewSignOff {
    /// Staleness threshold the review used (days).
    pub stale_days: u32,
    /// The changes made during the review, one line each (e.g. `downgraded ann@lab on
    /// project 7f3a… to viewer`); at most 200 of up to 300 characters.
    pub changes: Vec<String>,
    /// A note from the reviewer (up to 2,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

// ---------------------------------------------------------------- API keys

/// Create an API key for automation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKeyRequest {
    /// Label.
    pub name: String,
    /// Role the key acts with (not above the creator's).
    pub role: Role,
    /// Restrict the key to one project.
    pub project_id: Option<String>,
    /// Validity in days (1..=365).
    pub expires_in_days: u32,
}

/// An API key's metadata (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKey {
    /// Key id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Project restriction.
    pub project_id: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Expiry.
    pub expires_at: String,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// Created key with its secret, shown once.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKeyCreated {
    /// Metadata.
    pub api_key: ApiKey,
    /// Bearer secret (`lvk_...`).
    pub key: String,
}

// ---------------------------------------------------------------- audit

/// One page of audit events, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditPage {
    /// Events.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page.
    pub next_cursor: Option<String>,
}

/// Result of verifying the tenant's audit chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditVerifyReport {
    /// Events checked.
    pub events: u64,
    /// Whether the chain is intact.
    pub ok: bool,
    /// First bad sequence number, if any.
    pub first_bad_seq: Option<u64>,
    /// What is wrong there (`edited`, `missing`, `inserted`, `reordered`, ...).
    pub problem: Option<String>,
}

// ---------------------------------------------------------------- queries

/// Query parameters of the audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// From (inclusive), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// To (exclusive), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Exact actor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Action prefix, e.g. `auth.`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Resource prefix, e.g. `project/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `success`, `failure` or `denied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Paging cursor from the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size (1..=1000, default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Export format: `csv` or `jsonl` (export only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Access review parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReviewQuery {
    /// Days without activity after which access is flagged stale (default 90).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_days: Option<u32>,
}

/// Confirmation body for deleting the tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeleteTenantRequest {
    /// Must equal the tenant slug.
    pub confirm_slug: String,
}

// ---------------------------------------------------------------- retention

/// One retention rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RetentionRule {
    /// Data type.
    pub data_type: DataType,
    /// Period: a number and a unit, `24h`, `90d` or `7y`.
    pub period: String,
}

/// An effective retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RetentionPolicy {
    /// Plan tier the session-data period comes from.
    pub plan: PlanTier,
    /// Period per data type (all five).
    pub rules: Vec<RetentionRule>,
    /// Grace between soft delete and erasure.
    pub grace: String,
}

/// The tenant policy and project overrides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RetentionOverview {
    /// Effective tenant policy.
    pub tenant: RetentionPolicy,
    /// Effective policies of projects that have overrides.
    pub projects: Vec<ProjectRetention>,
}

/// A project's effective policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProjectRetention {
    /// Project id.
    pub project_id: String,
    /// Effective policy.
    pub policy: RetentionPolicy,
}

/// Change retention rules (the given data types only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RetentionRequest {
    /// Rules to set.
    pub rules: Vec<RetentionRule>,
}

/// Liveness answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// Wire protocol version.
    pub api_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_to_their_stable_snake_case_names() {
        for code in [
            ErrorCode::InvalidCredentials,
            ErrorCode::MfaRequired,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::RateLimited,
            ErrorCode::InvalidInput,
            ErrorCode::Unauthorized,
            ErrorCode::TokenExpired,
            ErrorCode::PayloadTooLarge,
            ErrorCode::InvalidRefreshToken,
            ErrorCode::InvalidMfaCode,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":"mfa_required","message":"step up"}"#).unwrap();
        assert_eq!(body.code, ErrorCode::MfaRequired);
    }

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Editor);
        assert!(Role::Editor > Role::Viewer);
        for r in [Role::Viewer, Role::Editor, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let req = LoginRequest {
            tenant: "t".into(),
            email: "a@b.c".into(),
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{req:?}").contains("hunter2"));
        let pair = TokenPair {
            access_token: "secret-at".into(),
            expires_in: 600,
            refresh_token: "secret-rt".into(),
        };
        assert!(!format!("{pair:?}").contains("secret"));
    }

    #[test]
    fn login_response_is_tagged_by_status() {
        let r = LoginResponse::MfaRequired {
            mfa_token: "x".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "mfa_required");
    }
}
