//! Storage boundary of the tenant server.
//!
//! Handlers only see this trait and plain row types (ids as strings, times as Unix seconds),
//! never SQLite types, so a PostgreSQL implementation can be dropped in. Every method that
//! touches tenant data takes the tenant id and filters by it: a row of another tenant is
//! indistinguishable from a missing row. Mutations take the audit event describing them and
//! write it in the same transaction, so no change exists without its audit record.
//!
//! File sync has two traits of its own beside this one: [`sync::SyncStore`] (feeds, ops, blob
//! records, uploads, devices, key boxes, anchors; implemented by the same SQLite store) and
//! [`blobs::BlobStore`] (the ciphertext bytes; files by default).

pub mod alerts;
pub mod blobs;
pub mod sqlite;
pub mod sync;

use async_trait::async_trait;
use labvault_wire::{AuditResult, ErrorCode, PlanTier, Role};

/// Storage failure, mapped onto wire codes by the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Row missing in the caller's tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Uniqueness or state conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A business rule enforced inside the transaction (e.g. last Owner).
    #[error("{1}")]
    Rule(ErrorCode, String),
    /// Database failure.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// A tenant row.
#[derive(Debug, Clone)]
pub struct TenantRow {
    /// Id.
    pub id: String,
    /// Login slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: PlanTier,
    /// MFA required for all members.
    pub require_mfa: bool,
    /// Created (Unix s).
    pub created_at: i64,
    /// Trial expiry (Unix s).
    pub expires_at: Option<i64>,
}

/// A user (member of exactly one tenant).
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Id.
    pub id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Normalised email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Tenant role.
    pub role: Role,
    /// Confirmed TOTP secret.
    pub totp_secret: Option<Vec<u8>>,
    /// Enrolment in progress.
    pub totp_pending: Option<Vec<u8>>,
    /// Last accepted TOTP step (replay protection).
    pub totp_last_step: Option<i64>,
    /// Consecutive failed logins.
    pub failed_logins: i64,
    /// Locked until (Unix s).
    pub locked_until: Option<i64>,
    /// Created.
    pub created_at: i64,
    /// Last authenticated request.
    pub last_active_at: Option<i64>,
}

impl UserRow {
    /// Whether TOTP is enrolled.
    pub fn mfa_enrolled(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// What the per-request authentication needs, in one lookup.
#[derive(Debug, Clone)]
pub struct AuthRow {
    /// User.
    pub user: UserRow,
    /// Tenant.
    pub tenant: TenantRow,
    /// Session family revoked (logout, reuse, removal).
    pub session_revoked: bool,
}

/// A project.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    /// Id.
    pub id: String,
    /// Opaque label.
    pub name: String,
    /// Created.
    pub created_at: i64,
}

/// Per-project role assignment.
#[derive(Debug, Clone)]
pub struct ProjectRoleRow {
    /// Project.
    pub project_id: String,
    /// User.
    pub user_id: String,
    /// Role overriding the tenant role on that project.
    pub role: Role,
}

/// An invitation.
#[derive(Debug, Clone)]
pub struct InvitationRow {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Created.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Used or revoked.
    pub closed_at: Option<i64>,
}

/// An API key.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    /// Id (public part of the key).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Project restriction.
    pub project_id: Option<String>,
    /// SHA-256 of the secret part.
    pub secret_hash: String,
    /// Creator.
    pub created_by: String,
    /// Created.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Revoked.
    pub revoked_at: Option<i64>,
}

/// An audit event before it is chained.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    /// When.
    pub timestamp: time::OffsetDateTime,
    /// Actor.
    pub user: String,
    /// Dotted action.
    pub action: String,
    /// Resource path.
    pub resource: String,
    /// Client IP.
    pub ip_address: String,
    /// Client User-Agent.
    pub user_agent: String,
    /// Outcome.
    pub result: AuditResult,
    /// Error code of a failure/denial.
    pub detail: String,
}

/// A stored, chained audit event (the shared governance format).
pub type AuditRow = labvault_governance::audit::AuditEvent;

/// An audit event in its wire JSON shape straight from storage: times formatted, hashes as the
/// stored hex, nothing decoded or re-validated (the audit page is the hottest read, and decoding
/// only to re-encode doubled its cost). Serializes to exactly the JSON of
/// [`labvault_wire::AuditEvent`]; a test deserializes it as one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditJson {
    /// RFC 3339 UTC with microseconds.
    pub timestamp: String,
    /// Actor.
    pub user: String,
    /// Dotted action.
    pub action: String,
    /// Resource path.
    pub resource: String,
    /// Client IP.
    pub ip_address: String,
    /// Client User-Agent.
    pub user_agent: String,
    /// Outcome.
    pub result: AuditResult,
    /// Error code of a failure or denial.
    pub detail: String,
    /// Chain id (the tenant).
    pub device_id: String,
    /// Position in the chain.
    pub seq: u64,
    /// Event format version.
    pub v: u16,
    /// Hex hash of the previous event.
    pub prev_hash: String,
    /// Hex hash of this event.
    pub hash: String,
}

/// Audit query filters.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// From (inclusive, Unix s).
    pub from: Option<i64>,
    /// To (exclusive, Unix s).
    pub to: Option<i64>,
    /// Exact actor.
    pub user: Option<String>,
    /// Action prefix.
    pub action_prefix: Option<String>,
    /// Resource prefix.
    pub resource_prefix: Option<String>,
    /// Outcome.
    pub result: Option<AuditResult>,
    /// Only events with seq below this (paging cursor).
    pub before_seq: Option<i64>,
}

/// A new session (refresh-token family) with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Tenant.
    pub tenant: String,
    /// User.
    pub user: String,
    /// Family id (the `sid` of access tokens).
    pub family: String,
    /// SHA-256 of the first refresh token.
    pub token_hash: String,
    /// Creation time.
    pub now: i64,
    /// Refresh token expiry.
    pub expires_at: i64,
    /// MFA time, if the login verified MFA.
    pub mfa_at: Option<i64>,
}

/// Everything the access review needs, read at one point in time.
#[derive(Debug, Clone, Default)]
pub struct AccessSnapshot {
    /// Members.
    pub users: Vec<UserRow>,
    /// Projects.
    pub projects: Vec<ProjectRow>,
    /// Per-project roles.
    pub roles: Vec<ProjectRoleRow>,
    /// Open invitations.
    pub invitations: Vec<InvitationRow>,
}

/// Outcome of presenting a refresh token.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// Rotated: the new token hash was stored; session data returned.
    Rotated {
        /// User.
        user_id: String,
        /// Tenant.
        tenant_id: String,
        /// Family.
        family_id: String,
        /// MFA time of the session.
        mfa_at: Option<i64>,
    },
    /// An already-used token outside the grace window: the family is now revoked.
    Reused {
        /// Tenant (for the audit event).
        tenant_id: String,
        /// User.
        user_id: String,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// A retention rule stored for a tenant (project `None`) or a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRow {
    /// Project override, or tenant-wide.
    pub project_id: Option<String>,
    /// Data type (governance snake_case name).
    pub data_type: String,
    /// Period (`24h`, `90d`, `7y`).
    pub period: String,
}

/// The storage interface.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // tenants
    /// Creates a tenant with its first Owner.
    async fn create_tenant(
        &self,
        t: TenantRow,
        owner: UserRow,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Tenant by id.
    async fn get_tenant(&self, tenant: &str) -> StoreResult<TenantRow>;
    /// Tenant by login slug.
    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<TenantRow>;
    /// All tenants (operations CLI).
    async fn list_tenants(&self) -> StoreResult<Vec<TenantRow>>;
    /// Plan / MFA requirement changes.
    async fn update_tenant(
        &self,
        tenant: &str,
        plan: Option<PlanTier>,
        require_mfa: Option<bool>,
        clear_expiry: bool,
        audit: AuditDraft,
    ) -> StoreResult<TenantRow>;
    /// Irreversibly purges the tenant's data (members, sessions, projects, roles,
    /// invitations, API keys, retention rules) and leaves a tombstone: the tenant row is
    /// marked deleted (its slug freed, its name erased) and its audit chain is KEPT, ending
    /// with `audit` (the deletion event), because audit logs must outlive the tenant (six
    /// years minimum). `system_audit` is appended to the server-level chain.
    async fn delete_tenant(
        &self,
        tenant: &str,
        now: i64,
        audit: AuditDraft,
        system_audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Tombstones of deleted tenants: (tenant id, deleted at), oldest first (operations).
    async fn deleted_tenants(&self) -> StoreResult<Vec<(String, i64)>>;
    /// Trial tenants whose expiry is at or before `now`.
    async fn expired_trials(&self, now: i64) -> StoreResult<Vec<String>>;

    // users
    /// User by email within a tenant.
    async fn user_by_email(&self, tenant: &str, email: &str) -> StoreResult<UserRow>;
    /// User by id within a tenant.
    async fn get_user(&self, tenant: &str, user: &str) -> StoreResult<UserRow>;
    /// Members of a tenant.
    async fn list_users(&self, tenant: &str) -> StoreResult<Vec<UserRow>>;
    /// Per-request lookup of user, tenant and session state.
    async fn auth_lookup(&self, tenant: &str, user: &str, session: &str) -> StoreResult<AuthRow>;
    /// Tenant role change; refuses demoting the last Owner.
    async fn set_role(
        &self,
        tenant: &str,
        user: &str,
        role: Role,
        audit: AuditDraft,
    ) -> StoreResult<UserRow>;
    /// Removes a member (and their sessions, project roles, API keys); refuses the last Owner.
    async fn delete_user(&self, tenant: &str, user: &str, audit: AuditDraft) -> StoreResult<()>;
    /// Makes `to` Owner and `from` Admin atomically.
    async fn transfer_ownership(
        &self,
        tenant: &str,
        from: &str,
        to: &str,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Counts a failed login; locks when `max` is reached. Returns the lock end, if locked.
    async fn login_failed(
        &self,
        tenant: &str,
        user: &str,
        now: i64,
        max: i64,
        lock_secs: i64,
        audit: Vec<AuditDraft>,
    ) -> StoreResult<Option<i64>>;
    /// Clears the failure counter after a successful login.
    async fn login_succeeded(&self, tenant: &str, user: &str) -> StoreResult<()>;
    /// Stores a pending TOTP secret.
    async fn set_totp_pending(&self, tenant: &str, user: &str, secret: Vec<u8>) -> StoreResult<()>;
    /// Confirms enrolment with the accepted step and the recovery-code hashes.
    async fn confirm_totp(
        &self,
        tenant: &str,
        user: &str,
        step: i64,
        recovery_hashes: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Records an accepted TOTP step; false if a step at least as new was already used.
    async fn advance_totp_step(&self, tenant: &str, user: &str, step: i64) -> StoreResult<bool>;
    /// Consumes a recovery code; false if unknown or used.
    async fn use_recovery_code(&self, tenant: &str, user: &str, hash: &str) -> StoreResult<bool>;
    /// Replaces the password hash, clears the failure counter and revokes every session
    /// family of the user except `keep_session`. Returns how many sessions were revoked.
    async fn change_password(
        &self,
        tenant: &str,
        user: &str,
        new_hash: String,
        keep_session: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<u32>;
    /// Removes TOTP (confirmed and pending) and recovery codes, drops the MFA time of the
    /// user's sessions and revokes every session family except `keep_session` (`""` revokes
    /// all). Returns how many sessions were revoked; `not_found` if the user has no MFA.
    async fn reset_mfa(
        &self,
        tenant: &str,
        user: &str,
        keep_session: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<u32>;
    /// Updates last activity.
    async fn touch_activity(&self, tenant: &str, user: &str, now: i64) -> StoreResult<()>;

    // sessions
    /// Starts a refresh-token family.
    async fn create_session(&self, s: NewSession) -> StoreResult<()>;
    /// Rotates a refresh token (see [`RefreshOutcome`]).
    async fn rotate_refresh(
        &self,
        token_hash: &str,
        new_hash: &str,
        now: i64,
        new_expires_at: i64,
        grace_secs: i64,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes the family of a refresh token (logout). Returns (tenant, user) if found.
    async fn revoke_by_refresh(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(String, String)>>;
    /// Records a step-up on the session so refreshed tokens keep it.
    async fn set_session_mfa(&self, tenant: &str, family: &str, mfa_at: i64) -> StoreResult<()>;

    // projects
    /// Creates a project.
    async fn create_project(
        &self,
        tenant: &str,
        p: ProjectRow,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Projects of a tenant.
    async fn list_projects(&self, tenant: &str) -> StoreResult<Vec<ProjectRow>>;
    /// One project.
    async fn get_project(&self, tenant: &str, project: &str) -> StoreResult<ProjectRow>;
    /// Deletes a project and its role assignments.
    async fn delete_project(
        &self,
        tenant: &str,
        project: &str,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Assigns (or replaces) a project role.
    async fn set_project_role(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
        role: Role,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Removes a project role assignment.
    async fn remove_project_role(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// All project role assignments of a tenant.
    async fn project_roles(&self, tenant: &str) -> StoreResult<Vec<ProjectRoleRow>>;

    /// Consistent snapshot of members, projects, project roles and open invitations (one
    /// read transaction), for the access review.
    /// Shared (`Arc`) because the store may serve it from a cache: it is the hottest read.
    async fn access_snapshot(
        &self,
        tenant: &str,
        now: i64,
    ) -> StoreResult<std::sync::Arc<AccessSnapshot>>;

    // invitations
    /// Stores an invitation.
    async fn create_invitation(&self, inv: InvitationRow, audit: AuditDraft) -> StoreResult<()>;
    /// Open invitations (not closed, not expired).
    async fn pending_invitations(&self, tenant: &str, now: i64) -> StoreResult<Vec<InvitationRow>>;
    /// Revokes an open invitation.
    async fn revoke_invitation(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Invitation by token hash (any tenant: the token is the credential).
    async fn invitation_by_token(&self, token_hash: &str) -> StoreResult<InvitationRow>;
    /// Consumes the invitation and creates the user, once.
    async fn accept_invitation(
        &self,
        invitation: &str,
        user: UserRow,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()>;

    // API keys
    /// Stores a key.
    async fn create_api_key(&self, key: ApiKeyRow, audit: AuditDraft) -> StoreResult<()>;
    /// Keys of a tenant.
    async fn list_api_keys(&self, tenant: &str) -> StoreResult<Vec<ApiKeyRow>>;
    /// Key by id (any tenant: the id is part of the credential).
    async fn api_key(&self, id: &str) -> StoreResult<ApiKeyRow>;
    /// Revokes a key.
    async fn revoke_api_key(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()>;

    // audit
    /// Appends one event to the tenant's chain (group-committed).
    async fn append_audit(&self, tenant: &str, ev: AuditDraft) -> StoreResult<()>;
    /// Filtered page, newest first.
    async fn query_audit(
        &self,
        tenant: &str,
        f: AuditFilter,
        limit: u32,
    ) -> StoreResult<Vec<AuditRow>>;
    /// The same page as [`Store::query_audit`] straight in wire form: the audit page is the
    /// hottest read, and decoding hashes and re-validating actions only to re-encode them
    /// for the response doubled its cost.
    async fn audit_page(
        &self,
        tenant: &str,
        f: AuditFilter,
        limit: u32,
    ) -> StoreResult<Vec<AuditJson>>;
    /// The page of [`Store::audit_page`] as `(seq, wire JSON of the event)`, newest first,
    /// when the store holds it in memory (`None`: call `audit_page`). The newest pages are
    /// read far more often than anything else, and serializing them was most of their cost.
    async fn audit_page_json(
        &self,
        _tenant: &str,
        _f: &AuditFilter,
        _limit: u32,
    ) -> Option<Vec<(u64, std::sync::Arc<str>)>> {
        None
    }
    /// The whole chain in order (export, verify).
    async fn audit_chain(&self, tenant: &str) -> StoreResult<Vec<AuditRow>>;

    // retention
    /// Stored rules (tenant-wide and project overrides).
    async fn retention_rules(&self, tenant: &str) -> StoreResult<Vec<RetentionRow>>;
    /// Replaces the given rules.
    async fn set_retention_rules(
        &self,
        tenant: &str,
        rules: Vec<RetentionRow>,
        audit: AuditDraft,
    ) -> StoreResult<()>;
}
