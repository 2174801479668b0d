//! IPC types of the connected half (sign-in, sync, team), as the webview sees them.
//!
//! Like [`crate::dto`], they mirror the sync crate's and the wire's types so the TypeScript
//! contract is explicit and generated, and so no field can carry a token or a key: the session
//! lives in the Rust side and the OS keyring only.

use labvault_core::sync::{ConflictInfo, ProjectStatus};
use labvault_sync::team::{AccessSource, TeamView};
use labvault_sync::PassReport;
use serde::Serialize;
use ts_rs::TS;

/// Where this vault stands with its lab's tenant (read locally; no network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// A tenant is configured.
    pub connected: bool,
    /// Its address.
    pub url: Option<String>,
    /// Its certificate pin (`sha256/...`).
    pub pin: Option<String>,
    /// The tenant's slug.
    pub tenant: Option<String>,
    /// The account's email, once signed in.
    pub email: Option<String>,
    /// A session is stored in the OS keyring.
    pub signed_in: bool,
    /// This device: `unregistered`, `pending` (waits for approval), `approved`, `revoked`.
    pub device: Option<String>,
    /// This device's id (to compare with the device list).
    pub device_id: String,
}

/// What a sign-in gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SignInResult {
    /// Signed in (false: the account has MFA and a code is needed).
    pub signed_in: bool,
    /// The account's tenant role, when signed in.
    pub role: Option<String>,
    /// Whether the account has MFA enrolled.
    pub mfa_enrolled: bool,
    /// This device's name.
    pub device_name: Option<String>,
    /// This device may sync (else another device of the user approves it first).
    pub approved: bool,
}

/// One project's sync state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSync {
    /// Project id.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// The tenant has it.
    pub remote: bool,
    /// Changed items not yet staged.
    #[ts(type = "number")]
    pub changed_items: u64,
    /// Changes waiting for the tenant.
    #[ts(type = "number")]
    pub pending_ops: u64,
    /// Encrypted bytes still to upload.
    #[ts(type = "number")]
    pub pending_bytes: u64,
    /// Items with conflicting versions.
    #[ts(type = "number")]
    pub conflicts: u64,
    /// Changes the tenant refused for good, with why.
    pub parked: Vec<ParkedChange>,
    /// Deletions held back as a mass delete until confirmed.
    #[ts(type = "number")]
    pub awaiting_confirmation: u64,
    /// Last successful sync (RFC 3339).
    pub last_sync_at: Option<String>,
    /// Why sync of this project stopped, if it did.
    pub stopped: Option<String>,
}

/// A change the tenant refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ParkedChange {
    /// The item or project it concerns.
    pub what: String,
    /// The tenant's reason.
    pub error: String,
}

impl From<ProjectStatus> for ProjectSync {
    fn from(p: ProjectStatus) -> Self {
        ProjectSync {
            project_id: p.project_id,
            name: p.name,
            remote: p.remote,
            changed_items: p.changed_items,
            pending_ops: p.pending_ops,
            pending_bytes: p.pending_bytes,
            conflicts: p.conflicts,
            parked: p
                .parked
                .into_iter()
                .map(|(what, error)| ParkedChange { what, error })
                .collect(),
            awaiting_confirmation: p.awaiting_confirmation,
            last_sync_at: p.last_sync_at,
            stopped: p.stopped,
        }
    }
}

/// What one sync pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Changes applied from the tenant.
    #[ts(type = "number")]
    pub pulled: u64,
    /// Changes the tenant accepted.
    #[ts(type = "number")]
    pub pushed: u64,
    /// Concurrent edits kept as two versions.
    #[ts(type = "number")]
    pub conflicts: u64,
    /// Bytes sent.
    #[ts(type = "number")]
    pub bytes_up: u64,
    /// Bytes received.
    #[ts(type = "number")]
    pub bytes_down: u64,
    /// Changes still waiting after the pass.
    #[ts(type = "number")]
    pub pending: u64,
    /// Problems by project.
    pub errors: Vec<ParkedChange>,
    /// Shared projects whose local copy was erased (access ended).
    pub wiped: Vec<String>,
    /// How long it took (ms).
    #[ts(type = "number")]
    pub elapsed_ms: u64,
}

impl From<PassReport> for SyncReport {
    fn from(r: PassReport) -> Self {
        SyncReport {
            pulled: r.pulled,
            pushed: r.pushed,
            conflicts: r.conflicts,
            bytes_up: r.bytes_up,
            bytes_down: r.bytes_down,
            pending: r.pending,
            errors: r
                .errors
                .into_iter()
                .map(|(what, error)| ParkedChange { what, error })
                .collect(),
            wiped: r.wiped.into_iter().map(|w| w.project_id).collect(),
            elapsed_ms: r.elapsed_ms,
        }
    }
}

/// An item with conflicting versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SyncConflict {
    /// Item id.
    pub item_id: String,
    /// Project id.
    pub project: String,
    /// Area (`uploads`, ...).
    pub area: String,
    /// Path in the area.
    pub path: String,
    /// The head version (the one shown today).
    pub head: u32,
    /// The head version's size in bytes.
    #[ts(type = "number")]
    pub head_size: u64,
    /// Media type (for previews of both sides).
    pub media_type: String,
    /// The versions that lost the concurrent edit; kept until the user chooses.
    pub siblings: Vec<ConflictVersion>,
}

/// One conflicting version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ConflictVersion {
    /// Version number.
    pub version: u32,
    /// Size in bytes.
    #[ts(type = "number")]
    pub size: u64,
    /// Written at (RFC 3339).
    pub created_at: String,
    /// Written by.
    pub created_by: String,
}

impl From<ConflictInfo> for SyncConflict {
    fn from(c: ConflictInfo) -> Self {
        SyncConflict {
            item_id: c.item.id,
            project: c.item.project,
            area: c.item.area.as_str().to_string(),
            path: c.item.path,
            head: c.head,
            head_size: c.item.size,
            media_type: c.item.media_type.clone(),
            siblings: c
                .siblings
                .into_iter()
                .map(|(version, size, created_at, created_by)| ConflictVersion {
                    version,
                    size,
                    created_at,
                    created_by,
                })
                .collect(),
        }
    }
}

/// The team as the Team screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    /// The account signed in.
    pub me: TeamMember,
    /// Whether it may review and change access (Owner or Admin).
    pub manages: bool,
    /// Days without activity after which access counts as stale.
    pub stale_days: u32,
    /// When the tenant computed the review (RFC 3339; empty for non-managers).
    pub generated_at: String,
    /// Members (only the caller for non-managers).
    pub members: Vec<TeamMember>,
    /// Projects (matrix columns).
    pub projects: Vec<TeamProject>,
    /// Access that does not follow from a member's lab role: per-project roles and signed
    /// memberships. Every other cell of a project without a membership log is the member's
    /// lab role (`tenantRole`), which the UI fills in: with 500 members x 200 projects the
    /// result stays small instead of carrying 100,000 rows across IPC.
    pub access: Vec<TeamAccess>,
    /// Pending invitations.
    pub invitations: Vec<PendingInvitation>,
}

/// A member of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamMember {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Tenant role (`owner`, `admin`, `editor`, `viewer`).
    pub tenant_role: String,
    /// Last activity (RFC 3339).
    pub last_active_at: Option<String>,
    /// MFA enrolled.
    pub mfa_enrolled: bool,
    /// No activity within the stale threshold.
    pub stale: bool,
    /// Owner or Admin without MFA.
    pub admin_without_mfa: bool,
}

/// A project column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamProject {
    /// Project id.
    pub id: String,
    /// Its name in this vault (the tenant never holds names); `null` when this vault lacks it.
    pub name: Option<String>,
    /// Shared through a signed membership log.
    pub shared: bool,
    /// Key epoch of a shared project.
    pub epoch: Option<u32>,
}

/// A member's effective role on a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamAccess {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Effective role.
    pub role: String,
    /// `tenant` (their tenant role), `project` (a per-project role) or `membership_log`.
    pub source: String,
    /// For a signed membership: the safety number of their identity, to compare out of band.
    pub safety_number: Option<String>,
}

/// An invitation not yet accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PendingInvitation {
    /// Id.
    pub id: String,
    /// Invitee.
    pub email: String,
    /// Role on acceptance.
    pub role: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
}

impl From<TeamView> for Team {
    fn from(v: TeamView) -> Self {
        let me = TeamMember {
            user_id: v.me.id.clone(),
            email: v.me.email.clone(),
            tenant_role: v.me.role.as_str().into(),
            last_active_at: None,
            mfa_enrolled: v.me.mfa_enrolled,
            stale: false,
            admin_without_mfa: v.me.role >= labvault_wire::Role::Admin && !v.me.mfa_enrolled,
        };
        let (stale_days, generated_at, members, invitations) = match v.review {
            Some(r) => (
                r.stale_days,
                r.generated_at,
                r.members
                    .into_iter()
                    .map(|m| TeamMember {
                        user_id: m.user_id,
                        email: m.email,
                        tenant_role: m.tenant_role.as_str().into(),
                        last_active_at: m.last_active_at,
                        mfa_enrolled: m.mfa_enrolled,
                        stale: m.stale,
                        admin_without_mfa: m.admin_without_mfa,
                    })
                    .collect(),
                r.pending_invitations
                    .into_iter()
                    .map(|i| PendingInvitation {
                        id: i.id,
                        email: i.email,
                        role: i.role.as_str().into(),
                        expires_at: i.expires_at,
                    })
                    .collect(),
            ),
            None => (90, String::new(), vec![me.clone()], vec![]),
        };
        Team {
            me,
            manages: v.manages,
            stale_days,
            generated_at,
            members,
            projects: v
                .projects
                .into_iter()
                .map(|p| TeamProject {
                    id: p.id,
                    name: p.name,
                    shared: p.shared,
                    epoch: p.epoch,
                })
                .collect(),
            access: v
                .access
                .into_iter()
                .filter(|a| a.source != AccessSource::Tenant)
                .map(|a| TeamAccess {
                    user_id: a.user_id,
                    project_id: a.project_id,
                    role: a.role.as_str().into(),
                    source: match a.source {
                        AccessSource::Tenant => "tenant",
                        AccessSource::Project => "project",
                        AccessSource::MembershipLog => "membership_log",
                    }
                    .into(),
                    safety_number: a.safety_number,
                })
                .collect(),
            invitations,
        }
    }
}

/// One of the user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct UserDevice {
    /// Device id.
    pub device_id: String,
    /// Label.
    pub name: String,
    /// `pending`, `approved` or `revoked`.
    pub state: String,
    /// This is the device running the app.
    pub this_device: bool,
    /// Registered (RFC 3339).
    pub created_at: String,
    /// Last request (RFC 3339).
    pub last_seen_at: Option<String>,
}

/// Where a device waiting for approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PairingState {
    /// Approved now (the pairing completed).
    pub approved: bool,
    /// While waiting: the code to enter on an approved device of the user.
    pub code: Option<String>,
}

/// Where sync stands, for the status line (background sync included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// A tenant is configured.
    pub connected: bool,
    /// Signed in.
    pub signed_in: bool,
    /// Background sync runs (signed in on an approved device).
    pub active: bool,
    /// Paused by the person.
    pub paused: bool,
    /// A pass is running now.
    pub running: bool,
    /// Whether the last attempt reached the tenant (`null` before the first).
    pub online: Option<bool>,
    /// When the last pass ended (RFC 3339).
    pub last_pass_at: Option<String>,
    /// Why the last pass failed.
    pub error: Option<crate::error::CommandError>,
    /// When an unreachable tenant is tried again (RFC 3339).
    pub next_try_at: Option<String>,
    /// Changes here not yet on the tenant (all projects).
    #[ts(type = "number")]
    pub pending: u64,
    /// The bandwidth limit in KiB/s (`null`: none).
    pub bandwidth_limit_kib: Option<u32>,
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// An invitation just created: the token goes to the invitee only, through a channel the
/// inviter trusts; it is shown once and not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct InvitationSent {
    /// Id (to revoke it).
    pub id: String,
    /// Invitee.
    pub email: String,
    /// Role on acceptance.
    pub role: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
    /// The single-use token to hand to the invitee.
    pub token: String,
}

/// A TOTP enrolment in progress: what the person scans or types into an authenticator app,
/// shown once and held only by the dialog that shows it.
#[derive(Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct MfaEnrollment {
    /// Base32 secret, for typing in.
    pub secret: String,
    /// The `otpauth://` URI as a QR code (`data:image/svg+xml;base64,...`).
    pub qr_code: String,
}

/// The account as the tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    /// Email.
    pub email: String,
    /// Lab role.
    pub role: String,
    /// Whether MFA is on.
    pub mfa_enrolled: bool,
}

/// A member of a shared project, from the membership log verified on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SharedMember {
    /// Account id.
    pub user_id: String,
    /// Their email, as the tenant names the account (absent while offline: the log itself
    /// holds ids and keys only).
    pub email: Option<String>,
    /// Role in the project.
    pub role: String,
    /// Safety number of their identity key (compare it out of band).
    pub safety_number: String,
    /// This is the signed-in user.
    pub you: bool,
}

/// How a project is shared, as this device verified it (no network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSharing {
    /// Project id.
    pub project_id: String,
    /// It has a membership log (shared with the lab's members).
    pub shared: bool,
    /// Current key epoch (1 until the first rotation).
    pub epoch: u32,
    /// Members with their roles.
    pub members: Vec<SharedMember>,
    /// A key rotation is owed (a member left or a device was revoked): the next admin
    /// client online does it.
    pub rotation_owed: bool,
    /// Entries in the verified membership log.
    #[ts(type = "number")]
    pub log_length: u64,
    /// Last key rotation (RFC 3339).
    pub last_rotation_at: Option<String>,
    /// The lab's offline lease in days, if it sets one.
    pub lease_days: Option<u32>,
    /// The lab rotates keys every this many days, if it does.
    pub rotation_days: Option<u32>,
    /// Last contact with the tenant about this project (RFC 3339).
    pub last_contact_at: Option<String>,
    /// Why its content is locked here, and what to do; `None` when readable.
    pub locked: Option<String>,
}

/// What a compliance evidence pack holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceResult {
    /// The pack's folder.
    pub path: String,
    /// Files in it.
    pub files: Vec<String>,
    /// Whether the audit chain verified when the pack was made.
    pub audit_ok: bool,
    /// Controls by status (`covered`, `partly`, `not covered`, `failing`).
    #[ts(type = "Record<string, number>")]
    pub controls: std::collections::BTreeMap<String, u64>,
    /// Whether the lab's access review (from the tenant) is in it.
    pub with_tenant: bool,
}
