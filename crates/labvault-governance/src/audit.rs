//! The audit event model, its canonical encoding (v1), the hash chain and the chain verifier.
//!
//! # Hash chain, format v1
//!
//! Every event belongs to the chain of one device (a vault installation, or a tenant on the server) and
//! carries that chain's sequence number `seq` (1, 2, 3, ... without gaps). Its hash is
//!
//! ```text
//! content_digest = SHA-256("labvault/audit/event-content/v1" || u16 v
//!                          || f(device_id) || i64 timestamp_unix_micros
//!                          || f(user) || f(action) || f(resource) || f(ip_address)
//!                          || f(user_agent) || f(result) || f(detail))
//! hash           = SHA-256("labvault/audit/event-hash/v1" || u16 v || prev_hash[32] || u64 seq || content_digest[32])
//! f(s)           = u32 big-endian byte length of s || UTF-8 bytes of s        (all integers big-endian)
//! ```
//!
//! and `prev_hash` of seq 1 is the device's genesis hash,
//! `SHA-256("labvault/audit/genesis/v1" || f(device_id))`, so a chain cannot be spliced onto another
//! device's. Length prefixes make the encoding unambiguous (no field can bleed into the next), and the
//! two-level hash lets a later format reveal only the `content_digest` of an event an export leaves out
//! while still proving the links.
//!
//! # Anchoring
//!
//! An unkeyed chain proves internal consistency: editing, removing, inserting or reordering an event
//! breaks it, unless every later hash is recomputed too. [`Checkpoint`] (`device_id`, `seq`, `head_hash`)
//! is what closes that gap: its [`Checkpoint::signing_bytes`] are what the tenant server will sign and
//! keep, and [`ChainVerifier::expect_checkpoint`] checks a chain against such a checkpoint, which detects
//! a rewritten or truncated chain. The event format does not change for that.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::fmt;
use time::OffsetDateTime;

/// The event format version this crate writes; readers refuse others with [`ChainErrorKind::UnsupportedVersion`].
pub const EVENT_FORMAT_VERSION: u16 = 1;
const CONTENT_TAG: &[u8] = b"labvault/audit/event-content/v1";
const HASH_TAG: &[u8] = b"labvault/audit/event-hash/v1";
const GENESIS_TAG: &[u8] = b"labvault/audit/genesis/v1";
const CHECKPOINT_TAG: &[u8] = b"labvault/audit/checkpoint/v1";
/// How far ahead (and back) the verifier looks to tell a reorder from a deletion or insertion.
const LOOKAHEAD: usize = 16;

/// A SHA-256 hash of the chain.
pub type Hash32 = [u8; 32];

/// The action names the vault and the tenant server record: one vocabulary, so filters and
/// reports mean the same everywhere. Any name passing [`Action::new`] is valid in a chain.
pub mod actions {
    /// A vault was created (first event of a chain).
    pub const VAULT_CREATE: &str = "vault.create";
    /// Files were imported into a project.
    pub const DATA_IMPORT: &str = "data.import";
    /// Item content or metadata was read (preview, listing of one item).
    pub const DATA_VIEW: &str = "data.view";
    /// Item content was decrypted out of the vault.
    pub const DATA_EXPORT: &str = "data.export";
    /// Item renamed or moved.
    pub const DATA_RENAME: &str = "data.rename";
    /// Item soft-deleted (hidden, restorable during the grace period).
    pub const DATA_DELETE: &str = "data.delete";
    /// Soft-deleted item restored.
    pub const DATA_RESTORE: &str = "data.restore";
    /// Item cryptographically erased at the user's request.
    pub const DATA_PURGE: &str = "data.purge";
    /// Blobs and catalog verified.
    pub const DATA_VERIFY: &str = "data.verify";
    /// Vault unlocked (result `failure` for a wrong passphrase or recovery key).
    pub const AUTH_UNLOCK: &str = "auth.unlock";
    /// Vault locked.
    pub const AUTH_LOCK: &str = "auth.lock";
    /// Passphrase changed (or reset with the recovery key).
    pub const AUTH_PASSWD: &str = "auth.passwd";
    /// The vault's root key rotated: keys re-wrapped, the catalog re-keyed, a new recovery
    /// key issued; no file re-encrypted.
    pub const AUTH_REKEY: &str = "auth.rekey";
    /// Root key stored in / removed from the OS keyring.
    pub const AUTH_REMEMBER: &str = "auth.remember";
    /// Root key removed from the OS keyring.
    pub const AUTH_FORGET: &str = "auth.forget";
    /// Project created.
    pub const PROJECT_CREATE: &str = "project.create";
    /// Retention policy changed (vault or project scope).
    pub const RETENTION_POLICY: &str = "retention.policy";
    /// Retention enforcement run (one event per run, plus one per item step).
    pub const RETENTION_RUN: &str = "retention.run";
    /// Item moved to soft-deleted because it expired.
    pub const RETENTION_EXPIRE: &str = "retention.expire";
    /// Item cryptographically erased by the lifecycle (grace over) or by a right-to-deletion request.
    pub const RETENTION_ERASE: &str = "retention.erase";
    /// Legal hold set on an item or project.
    pub const RETENTION_HOLD: &str = "retention.hold";
    /// Legal hold cleared.
    pub const RETENTION_RELEASE: &str = "retention.release";
    /// Audit log exported.
    pub const AUDIT_EXPORT: &str = "audit.export";
    /// Audit log queried.
    pub const AUDIT_VIEW: &str = "audit.view";
    /// Audit chain verified.
    pub const AUDIT_VERIFY: &str = "audit.verify";
    /// Problem found while importing the journal of events that happened while the vault was
    /// locked (an entry deleted, altered or not sealed to this vault; result `failure`).
    pub const AUDIT_JOURNAL: &str = "audit.journal";
    /// A tenant was configured for sync (`remote add`), or removed.
    pub const SYNC_REMOTE: &str = "sync.remote";
    /// Signed in to the tenant (this device registered).
    pub const SYNC_LOGIN: &str = "sync.login";
    /// Signed out (the session revoked, the refresh token removed from the keyring).
    pub const SYNC_LOGOUT: &str = "sync.logout";
    /// A local change of an item or project acknowledged by the tenant (one per op).
    pub const SYNC_PUSH: &str = "sync.push";
    /// A change from the tenant applied to an item or project (one per op).
    pub const SYNC_PULL: &str = "sync.pull";
    /// Concurrent changes of one item merged; both versions kept.
    pub const SYNC_CONFLICT: &str = "sync.conflict";
    /// A conflict resolved by the user (a version picked as the head).
    pub const SYNC_RESOLVE: &str = "sync.resolve";
    /// A change refused by the tenant for good, or a change from the tenant refused (tampered,
    /// foreign key epoch, replayed), kept aside for the user.
    pub const SYNC_REFUSED: &str = "sync.refused";
    /// This device asked to join (pairing code shown).
    pub const SYNC_DEVICE_PAIR: &str = "sync.device_pair";
    /// Another device of the user approved from this one (project keys sealed to it).
    pub const SYNC_DEVICE_APPROVE: &str = "sync.device_approve";
    /// A device revoked from this one.
    pub const SYNC_DEVICE_REVOKE: &str = "sync.device_revoke";
    /// Project keys received from another device (key boxes opened).
    pub const SYNC_KEYS: &str = "sync.keys";
    /// The head of this device's audit chain anchored (signed checkpoint stored).
    pub const SYNC_ANCHOR: &str = "sync.anchor";
    /// The user's identity key made on this device, or received from another of their
    /// devices (shared projects).
    pub const SYNC_IDENTITY: &str = "sync.identity";
    /// A shared project's membership changed (an entry signed here, or a verified entry
    /// from another member: add, remove, role, rotation, revoked device).
    pub const SYNC_MEMBERSHIP: &str = "sync.membership";
    /// The local copy of a shared project this device lost (member removed, device revoked)
    /// crypto-erased: its keys destroyed, its blobs deleted.
    pub const SYNC_WIPE: &str = "sync.wipe";
    /// An instrument folder watch added (detail: folder-independent settings; resource: the
    /// watch).
    pub const WATCH_ADD: &str = "watch.add";
    /// A watch removed (its journal goes with it; imported items stay).
    pub const WATCH_REMOVE: &str = "watch.remove";
    /// A watch paused or resumed (detail `paused=true|false`).
    pub const WATCH_PAUSE: &str = "watch.pause";
    /// A watched source file deleted after its import was verified (detail: the item version).
    pub const WATCH_DELETE_SOURCE: &str = "watch.delete_source";

    /// Every action the vault records, for documentation and UI filters.
    pub const VAULT_ACTIONS: &[&str] = &[
        VAULT_CREATE,
        DATA_IMPORT,
        DATA_VIEW,
        DATA_EXPORT,
        DATA_RENAME,
        DATA_DELETE,
        DATA_RESTORE,
        DATA_PURGE,
        DATA_VERIFY,
        AUTH_UNLOCK,
        AUTH_LOCK,
        AUTH_PASSWD,
        AUTH_REKEY,
        AUTH_REMEMBER,
        AUTH_FORGET,
        PROJECT_CREATE,
        RETENTION_POLICY,
        RETENTION_RUN,
        RETENTION_EXPIRE,
        RETENTION_ERASE,
        RETENTION_HOLD,
        RETENTION_RELEASE,
        AUDIT_EXPORT,
        AUDIT_VIEW,
        AUDIT_VERIFY,
        AUDIT_JOURNAL,
        SYNC_REMOTE,
        SYNC_LOGIN,
        SYNC_LOGOUT,
        SYNC_PUSH,
        SYNC_PULL,
        SYNC_CONFLICT,
        SYNC_RESOLVE,
        SYNC_REFUSED,
        SYNC_DEVICE_PAIR,
        SYNC_DEVICE_APPROVE,
        SYNC_DEVICE_REVOKE,
        SYNC_KEYS,
        SYNC_ANCHOR,
        SYNC_IDENTITY,
        SYNC_MEMBERSHIP,
        SYNC_WIPE,
        WATCH_ADD,
        WATCH_REMOVE,
        WATCH_PAUSE,
        WATCH_DELETE_SOURCE,
    ];

    // ----- tenant server --------------------------------------------------------------------
    /// Password login (success, failure, denied for a locked account).
    pub const AUTH_LOGIN: &str = "auth.login";
    /// An account locked after too many failed attempts.
    pub const AUTH_LOCKOUT: &str = "auth.lockout";
    /// Second login step with a TOTP or recovery code.
    pub const AUTH_MFA: &str = "auth.mfa";
    /// TOTP enrolment started (secret issued).
    pub const AUTH_MFA_ENROLL_START: &str = "auth.mfa_enroll_start";
    /// TOTP enrolment confirmed (recovery codes issued).
    pub const AUTH_MFA_ENROLL: &str = "auth.mfa_enroll";
    /// Refresh token rotated.
    pub const AUTH_REFRESH: &str = "auth.refresh";
    /// A used refresh token presented again: the session is revoked.
    pub const AUTH_REFRESH_REUSE: &str = "auth.refresh_reuse";
    /// Session revoked by its user.
    pub const AUTH_LOGOUT: &str = "auth.logout";
    /// MFA re-verified for an admin action.
    pub const AUTH_STEP_UP: &str = "auth.step_up";
    /// A caller's requests refused for exceeding its request budget (recorded at most once a
    /// minute per caller, with the number refused since the last such event).
    pub const AUTH_RATE_LIMITED: &str = "auth.rate_limited";
    /// The caller read their account.
    pub const ACCOUNT_VIEW: &str = "account.view";
    /// The caller deleted their account (right to deletion).
    pub const ACCOUNT_DELETE: &str = "account.delete";
    /// Password changed.
    pub const ACCOUNT_PASSWORD_CHANGE: &str = "account.password_change";
    /// MFA turned off by its user.
    pub const ACCOUNT_MFA_DISABLE: &str = "account.mfa_disable";
    /// Tenant created (server-level chain).
    pub const TENANT_CREATE: &str = "tenant.create";
    /// Tenant details read.
    pub const TENANT_VIEW: &str = "tenant.view";
    /// Tenant deleted (right to deletion).
    pub const TENANT_DELETE: &str = "tenant.delete";
    /// Plan tier changed.
    pub const TENANT_PLAN_CHANGE: &str = "tenant.plan_change";
    /// Tenant settings (MFA requirement) changed.
    pub const TENANT_SETTINGS_CHANGE: &str = "tenant.settings_change";
    /// Ownership transferred to another member.
    pub const TENANT_OWNERSHIP_TRANSFER: &str = "tenant.ownership_transfer";
    /// A trial tenant's data purged at expiry.
    pub const TENANT_TRIAL_EXPIRE: &str = "tenant.trial_expire";
    /// Members listed.
    pub const MEMBER_LIST: &str = "member.list";
    /// A member's tenant role changed.
    pub const MEMBER_ROLE_CHANGE: &str = "member.role_change";
    /// A member removed.
    pub const MEMBER_REMOVE: &str = "member.remove";
    /// A member's MFA reset by an admin.
    pub const MEMBER_MFA_RESET: &str = "member.mfa_reset";
    /// Open invitations listed.
    pub const INVITATION_LIST: &str = "invitation.list";
    /// Invitation sent.
    pub const INVITATION_CREATE: &str = "invitation.create";
    /// Invitation revoked.
    pub const INVITATION_REVOKE: &str = "invitation.revoke";
    /// Invitation accepted (account created).
    pub const INVITATION_ACCEPT: &str = "invitation.accept";
    /// API keys listed.
    pub const APIKEY_LIST: &str = "apikey.list";
    /// API key created.
    pub const APIKEY_CREATE: &str = "apikey.create";
    /// API key revoked.
    pub const APIKEY_REVOKE: &str = "apikey.revoke";
    /// Projects listed.
    pub const PROJECT_LIST: &str = "project.list";
    /// A project read.
    pub const PROJECT_VIEW: &str = "project.view";
    /// A project deleted.
    pub const PROJECT_DELETE: &str = "project.delete";
    /// A per-project role assigned.
    pub const PROJECT_ROLE_CHANGE: &str = "project.role_change";
    /// A per-project role removed.
    pub const PROJECT_ROLE_REMOVE: &str = "project.role_remove";
    /// Retention policies read.
    pub const RETENTION_VIEW: &str = "retention.view";
    /// Retention policies changed (tenant or project).
    pub const RETENTION_CHANGE: &str = "retention.change";
    /// Audit log queried.
    pub const AUDIT_QUERY: &str = "audit.query";
    /// Access review read.
    pub const ACCESS_REVIEW_VIEW: &str = "access_review.view";
    /// Access review exported as CSV.
    pub const ACCESS_REVIEW_EXPORT: &str = "access_review.export";
    /// An access review signed off as done (with what it changed).
    pub const ACCESS_REVIEW_SIGN_OFF: &str = "access_review.sign_off";
    /// Ops committed to a project's change feed (one event per commit request).
    pub const FEED_COMMIT: &str = "feed.commit";
    /// A project's change feed read.
    pub const FEED_READ: &str = "feed.read";
    /// A project's snapshot read.
    pub const FEED_SNAPSHOT: &str = "feed.snapshot";
    /// A blob stored (one request).
    pub const BLOB_PUT: &str = "blob.put";
    /// A pack of small blobs stored.
    pub const BLOB_PACK: &str = "blob.pack";
    /// A blob (or a range of it) read.
    pub const BLOB_GET: &str = "blob.get";
    /// Several blobs read in one request.
    pub const BLOB_BATCH: &str = "blob.batch";
    /// Which blobs the server lacks.
    pub const BLOB_MISSING: &str = "blob.missing";
    /// Erased blobs removed after the grace period (by the server).
    pub const BLOB_REMOVE: &str = "blob.remove";
    /// A resumable upload started or resumed.
    pub const UPLOAD_CREATE: &str = "upload.create";
    /// A part of a resumable upload stored.
    pub const UPLOAD_PART: &str = "upload.part";
    /// A resumable upload's state read.
    pub const UPLOAD_STATUS: &str = "upload.status";
    /// A resumable upload completed (the blob checked and stored).
    pub const UPLOAD_COMPLETE: &str = "upload.complete";
    /// A resumable upload abandoned by its client.
    pub const UPLOAD_ABORT: &str = "upload.abort";
    /// An idle resumable upload forgotten (by the server).
    pub const UPLOAD_EXPIRE: &str = "upload.expire";
    /// A device registered.
    pub const DEVICE_REGISTER: &str = "device.register";
    /// A user's devices listed.
    pub const DEVICE_LIST: &str = "device.list";
    /// A device approved by another device of its user.
    pub const DEVICE_APPROVE: &str = "device.approve";
    /// A device revoked.
    pub const DEVICE_REVOKE: &str = "device.revoke";
    /// Key boxes read.
    pub const KEYRING_VIEW: &str = "keyring.view";
    /// Key boxes stored.
    pub const KEYRING_CHANGE: &str = "keyring.change";
    /// A device's audit chain head signed (and the tenant's own).
    pub const AUDIT_ANCHOR: &str = "audit.anchor";
    /// A user's identity key registered (shared projects).
    pub const IDENTITY_REGISTER: &str = "identity.register";
    /// An identity read (the caller's, or a member's to share with them).
    pub const IDENTITY_VIEW: &str = "identity.view";
    /// Identity boxes stored (the identity sealed to the user's devices).
    pub const IDENTITY_BOXES: &str = "identity.boxes";
    /// A project's membership log read.
    pub const MEMBERSHIP_VIEW: &str = "membership.view";
    /// A device erased its copy of a project it lost (reported by the device).
    pub const DEVICE_WIPE: &str = "device.wipe";
    /// A signed entry appended to a project's membership log (the detail names its kind:
    /// add, remove, set_role, rotate, device_revoked).
    pub const MEMBERSHIP_CHANGE: &str = "membership.change";
    /// The server's key-encryption key rotated (its keys re-wrapped; server chain).
    pub const SERVER_KEK_ROTATE: &str = "server.kek_rotate";
    /// A security alert raised (the rule, subject and summary in the detail).
    pub const SECURITY_ALERT: &str = "security.alert";
    /// Alerts listed.
    pub const ALERT_LIST: &str = "alert.list";
    /// An alert acknowledged.
    pub const ALERT_ACKNOWLEDGE: &str = "alert.acknowledge";
    /// An alert resolved.
    pub const ALERT_RESOLVE: &str = "alert.resolve";
    /// An alert's webhook delivery given up after its retries (by the server).
    pub const ALERT_DELIVERY: &str = "alert.delivery";
    /// A backup snapshot taken (or failed; server chain).
    pub const SERVER_BACKUP: &str = "server.backup";
    /// The server restored from a backup snapshot (server chain).
    pub const SERVER_RESTORE: &str = "server.restore";

    /// Every action the tenant server records besides the shared ones (`project.create`,
    /// `audit.export`, `audit.verify`).
    pub const TENANT_ACTIONS: &[&str] = &[
        AUTH_LOGIN,
        AUTH_LOCKOUT,
        AUTH_MFA,
        AUTH_MFA_ENROLL_START,
        AUTH_MFA_ENROLL,
        AUTH_REFRESH,
        AUTH_REFRESH_REUSE,
        AUTH_LOGOUT,
        AUTH_STEP_UP,
        AUTH_RATE_LIMITED,
        ACCOUNT_VIEW,
        ACCOUNT_DELETE,
        ACCOUNT_PASSWORD_CHANGE,
        ACCOUNT_MFA_DISABLE,
        TENANT_CREATE,
        TENANT_VIEW,
        TENANT_DELETE,
        TENANT_PLAN_CHANGE,
        TENANT_SETTINGS_CHANGE,
        TENANT_OWNERSHIP_TRANSFER,
        TENANT_TRIAL_EXPIRE,
        MEMBER_LIST,
        MEMBER_ROLE_CHANGE,
        MEMBER_REMOVE,
        MEMBER_MFA_RESET,
        INVITATION_LIST,
        INVITATION_CREATE,
        INVITATION_REVOKE,
        INVITATION_ACCEPT,
        APIKEY_LIST,
        APIKEY_CREATE,
        APIKEY_REVOKE,
        PROJECT_LIST,
        PROJECT_VIEW,
        PROJECT_DELETE,
        PROJECT_ROLE_CHANGE,
        PROJECT_ROLE_REMOVE,
        RETENTION_VIEW,
        RETENTION_CHANGE,
        AUDIT_QUERY,
        ACCESS_REVIEW_VIEW,
        ACCESS_REVIEW_EXPORT,
        ACCESS_REVIEW_SIGN_OFF,
        FEED_COMMIT,
        FEED_READ,
        FEED_SNAPSHOT,
        BLOB_PUT,
        BLOB_PACK,
        BLOB_GET,
        BLOB_BATCH,
        BLOB_MISSING,
        BLOB_REMOVE,
        UPLOAD_CREATE,
        UPLOAD_PART,
        UPLOAD_STATUS,
        UPLOAD_COMPLETE,
        UPLOAD_ABORT,
        UPLOAD_EXPIRE,
        DEVICE_REGISTER,
        DEVICE_LIST,
        DEVICE_APPROVE,
        DEVICE_REVOKE,
        KEYRING_VIEW,
        KEYRING_CHANGE,
        AUDIT_ANCHOR,
        IDENTITY_REGISTER,
        IDENTITY_VIEW,
        IDENTITY_BOXES,
        MEMBERSHIP_VIEW,
        MEMBERSHIP_CHANGE,
        DEVICE_WIPE,
        SERVER_KEK_ROTATE,
        SECURITY_ALERT,
        ALERT_LIST,
        ALERT_ACKNOWLEDGE,
        ALERT_RESOLVE,
        ALERT_DELIVERY,
        SERVER_BACKUP,
        SERVER_RESTORE,
    ];
}

/// Builders for `resource` strings, so vault and server name things the same way.
pub mod resources {
    /// The vault (or tenant) as a whole.
    pub const VAULT: &str = "vault";
    /// `project/<id>`
    pub fn project(project_id: &str) -> String {
        format!("project/{project_id}")
    }
    /// `project/<id>/item/<id>`
    pub fn item(project_id: &str, item_id: &str) -> String {
        format!("project/{project_id}/item/{item_id}")
    }
    /// `watch/<id>` (an instrument folder watch)
    pub fn watch(watch_id: &str) -> String {
        format!("watch/{watch_id}")
    }
}

/// Why an event or action name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// Not a dotted lowercase name such as `data.import`.
    #[error(
        "invalid audit action {0:?}: expected dotted lowercase segments such as \"data.import\""
    )]
    InvalidAction(String),
    /// Not one of `success`, `failure`, `denied`.
    #[error("invalid audit result {0:?}: expected success, failure or denied")]
    InvalidOutcome(String),
    /// Timestamp not representable in the format (outside ±292,000 years, or finer than a microsecond).
    #[error("invalid audit timestamp: {0}")]
    InvalidTimestamp(String),
}

impl AuditError {
    /// Stable snake_case error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::InvalidAction(_) => "invalid_action",
            AuditError::InvalidOutcome(_) => "invalid_result",
            AuditError::InvalidTimestamp(_) => "invalid_timestamp",
        }
    }
}

/// A validated dotted action name (`data.import`): 2 to 4 segments of `[a-z][a-z0-9_]*`, at most 64 bytes.
///
/// A validated string rather than a closed enum, so the server can record its own actions in the same
/// chain format; the vault's are listed in [`actions`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action(String);

impl Action {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, AuditError> {
        let name = name.into();
        let segments: Vec<&str> = name.split('.').collect();
        let ok = name.len() <= 64
            && (2..=4).contains(&segments.len())
            && segments.iter().all(|s| {
                let mut chars = s.chars();
                matches!(chars.next(), Some('a'..='z'))
                    && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
            });
        if ok {
            Ok(Action(name))
        } else {
            Err(AuditError::InvalidAction(name))
        }
    }

    /// The dotted name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the names in [`actions::VAULT_ACTIONS`].
    pub fn is_vault_action(&self) -> bool {
        actions::VAULT_ACTIONS.contains(&self.0.as_str())
    }
}

impl TryFrom<String> for Action {
    type Error = AuditError;
    fn try_from(s: String) -> Result<Self, AuditError> {
        Action::new(s)
    }
}

impl From<Action> for String {
    fn from(a: Action) -> String {
        a.0
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Action {
    type Err = AuditError;
    fn from_str(s: &str) -> Result<Self, AuditError> {
        Action::new(s)
    }
}

/// How an action ended: `success`, `failure` (it was allowed but did not work, e.g. wrong passphrase,
/// tampered blob) or `denied` (refused by policy: legal hold, missing role).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action happened.
    Success,
    /// The action was attempted and failed.
    Failure,
    /// The action was refused by policy.
    Denied,
}

impl Outcome {
    /// `success`, `failure` or `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = AuditError;
    fn from_str(s: &str) -> Result<Self, AuditError> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "denied" => Ok(Outcome::Denied),
            other => Err(AuditError::InvalidOutcome(other.to_string())),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller knows about an action before it is sealed into the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDraft {
    /// When it happened (any offset; stored in UTC, truncated to microseconds).
    pub timestamp: OffsetDateTime,
    /// Who: the vault's user name, or the account email on the server.
    pub user: String,
    /// What: dotted action name.
    pub action: Action,
    /// On what: `vault`, `project/<id>`, `project/<id>/item/<id>`, ... (ids, never names).
    pub resource: String,
    /// Client IP on the server; empty for local vault actions.
    pub ip_address: String,
    /// HTTP User-Agent on the server; `labvault-cli/<version> (<os>; device <id>)` for local actions.
    pub user_agent: String,
    /// How it ended.
    pub result: Outcome,
    /// Machine-readable extra: the error code of a failure/denial, a hold reason, counts. May be empty.
    pub detail: String,
}

impl EventDraft {
    /// A draft with empty `ip_address`, `user_agent` and `detail`.
    pub fn new(
        timestamp: OffsetDateTime,
        user: impl Into<String>,
        action: Action,
        resource: impl Into<String>,
        result: Outcome,
    ) -> Self {
        Self {
            timestamp,
            user: user.into(),
            action,
            resource: resource.into(),
            ip_address: String::new(),
            user_agent: String::new(),
            result,
            detail: String::new(),
        }
    }

    /// Sets `user_agent`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Sets `ip_address`.
    pub fn ip_address(mut self, ip: impl Into<String>) -> Self {
        self.ip_address = ip.into();
        self
    }

    /// Sets `detail`.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// One sealed audit event: the fields labs know from their cloud platform plus the chain fields.
///
/// Serialises (serde) to the JSON Lines export/wire shape: timestamps as RFC 3339 UTC with exactly six
/// fractional digits, hashes as lowercase hex, the format version as `v`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// RFC 3339 UTC, microsecond precision.
    #[serde(with = "ts_micros")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub timestamp: OffsetDateTime,
    /// Who acted: the OS user (vault), the account email, `apikey:<id>` or `system` (server).
    pub user: String,
    /// What was done: a dotted action name such as `data.import` or `member.role_change`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub action: Action,
    /// On what: `vault`, `project/<id>`, `project/<id>/item/<id>`, `member/<id>`, ...
    pub resource: String,
    /// Client IP (server), empty for local actions.
    pub ip_address: String,
    /// Client software; for local actions the device and app version.
    pub user_agent: String,
    /// How it ended.
    pub result: Outcome,
    /// The error code of a failure or denial, or what the action says of itself (a reason,
    /// counts, a version).
    pub detail: String,
    /// The chain this event belongs to.
    pub device_id: String,
    /// Position in that chain, from 1.
    pub seq: u64,
    /// Event format version ([`EVENT_FORMAT_VERSION`]).
    pub v: u16,
    /// Hash of event `seq - 1`, or the device's genesis hash for seq 1.
    #[serde(with = "hex32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub prev_hash: Hash32,
    /// This event's chain hash.
    #[serde(with = "hex32")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub hash: Hash32,
}

fn put_field(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The genesis `prev_hash` of a device's chain: binds seq 1 to the device id.
pub fn genesis_hash(device_id: &str) -> Hash32 {
    let mut buf = Vec::with_capacity(GENESIS_TAG.len() + 4 + device_id.len());
    buf.extend_from_slice(GENESIS_TAG);
    put_field(&mut buf, device_id);
    Sha256::digest(&buf).into()
}

/// Microseconds since the Unix epoch, the timestamp as hashed and as stored in indexes.
pub fn unix_micros(ts: OffsetDateTime) -> i64 {
    (ts.unix_timestamp_nanos() / 1000) as i64
}

/// The inverse of [`unix_micros`].
pub fn from_unix_micros(micros: i64) -> Result<OffsetDateTime, AuditError> {
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000)
        .map_err(|e| AuditError::InvalidTimestamp(e.to_string()))
}

fn truncate_micros(ts: OffsetDateTime) -> OffsetDateTime {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    let micros = ts.nanosecond() / 1000;
    ts.replace_nanosecond(micros * 1000).unwrap_or(ts)
}

/// An event's fields borrowed from wherever they are stored (a database row, a parse buffer), so
/// that bulk verification and export touch each value once without building an [`AuditEvent`].
/// Hashing here is the same function as [`AuditEvent::compute_hash`] (which calls it).
#[derive(Clone, Copy, Debug)]
pub struct EventRef<'a> {
    /// The chain.
    pub device_id: &'a str,
    /// Position in the chain.
    pub seq: u64,
    /// Microseconds since the Unix epoch ([`unix_micros`]).
    pub ts_micros: i64,
    /// Who.
    pub user: &'a str,
    /// What (not validated here).
    pub action: &'a str,
    /// On what.
    pub resource: &'a str,
    /// Client IP.
    pub ip_address: &'a str,
    /// Client software.
    pub user_agent: &'a str,
    /// `success`, `failure` or `denied` (not validated here).
    pub result: &'a str,
    /// Extra.
    pub detail: &'a str,
    /// Event format version.
    pub v: u16,
    /// Hash of the previous event.
    pub prev_hash: &'a Hash32,
    /// This event's stored hash.
    pub hash: &'a Hash32,
}

fn put_field_h(h: &mut Sha256, s: &str) {
    h.update((s.len() as u32).to_be_bytes());
    h.update(s.as_bytes());
}

impl EventRef<'_> {
    /// SHA-256 of the canonical content (see [`AuditEvent::canonical_content`]), streamed into
    /// the hasher without an intermediate buffer.
    pub fn content_digest(&self) -> Hash32 {
        let mut h = Sha256::new();
        h.update(CONTENT_TAG);
        h.update(self.v.to_be_bytes());
        put_field_h(&mut h, self.device_id);
        h.update(self.ts_micros.to_be_bytes());
        for f in [
            self.user,
            self.action,
            self.resource,
            self.ip_address,
            self.user_agent,
            self.result,
            self.detail,
        ] {
            put_field_h(&mut h, f);
        }
        h.finalize().into()
    }

    /// The hash the event should carry given its fields, `seq` and `prev_hash`.
    pub fn compute_hash(&self) -> Hash32 {
        chain_hash(self.v, self.prev_hash, self.seq, &self.content_digest())
    }

    /// True when the stored hash matches the fields and the format version is known.
    pub fn is_hash_valid(&self) -> bool {
        self.v == EVENT_FORMAT_VERSION && self.compute_hash() == *self.hash
    }
}

impl AuditEvent {
    /// The borrowed view of this event.
    pub fn borrowed(&self) -> EventRef<'_> {
        EventRef {
            device_id: &self.device_id,
            seq: self.seq,
            ts_micros: unix_micros(self.timestamp),
            user: &self.user,
            action: self.action.as_str(),
            resource: &self.resource,
            ip_address: &self.ip_address,
            user_agent: &self.user_agent,
            result: self.result.as_str(),
            detail: &self.detail,
            v: self.v,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

fn chain_hash(v: u16, prev_hash: &Hash32, seq: u64, content_digest: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update(HASH_TAG);
    h.update(v.to_be_bytes());
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    h.update(content_digest);
    h.finalize().into()
}

impl AuditEvent {
    /// Seals `draft` as event `seq` of `device_id`'s chain, after the event whose hash is `prev_hash`.
    /// Callers normally use [`Checkpoint::append`], which tracks `seq` and `prev_hash` for them.
    pub fn seal(draft: EventDraft, device_id: &str, seq: u64, prev_hash: Hash32) -> AuditEvent {
        let mut ev = AuditEvent {
            timestamp: truncate_micros(draft.timestamp),
            user: draft.user,
            action: draft.action,
            resource: draft.resource,
            ip_address: draft.ip_address,
            user_agent: draft.user_agent,
            result: draft.result,
            detail: draft.detail,
            device_id: device_id.to_string(),
            seq,
            v: EVENT_FORMAT_VERSION,
            prev_hash,
            hash: [0; 32],
        };
        ev.hash = ev.compute_hash();
        ev
    }

    /// The canonical v1 content encoding (see the module docs); public for test vectors and other
    /// implementations.
    pub fn canonical_content(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(
            96 + self.device_id.len()
                + self.user.len()
                + self.action.as_str().len()
                + self.resource.len()
                + self.ip_address.len()
                + self.user_agent.len()
                + self.detail.len(),
        );
        buf.extend_from_slice(CONTENT_TAG);
        buf.extend_from_slice(&self.v.to_be_bytes());
        put_field(&mut buf, &self.device_id);
        buf.extend_from_slice(&unix_micros(self.timestamp).to_be_bytes());
        put_field(&mut buf, &self.user);
        put_field(&mut buf, self.action.as_str());
        put_field(&mut buf, &self.resource);
        put_field(&mut buf, &self.ip_address);
        put_field(&mut buf, &self.user_agent);
        put_field(&mut buf, self.result.as_str());
        put_field(&mut buf, &self.detail);
        buf
    }

    /// SHA-256 of [`AuditEvent::canonical_content`].
    pub fn content_digest(&self) -> Hash32 {
        self.borrowed().content_digest()
    }

    /// The hash this event should carry given its fields, `seq` and `prev_hash`.
    pub fn compute_hash(&self) -> Hash32 {
        chain_hash(self.v, &self.prev_hash, self.seq, &self.content_digest())
    }

    /// True when `hash` matches the event's own fields (says nothing about its place in the chain).
    pub fn is_hash_valid(&self) -> bool {
        self.v == EVENT_FORMAT_VERSION && self.compute_hash() == self.hash
    }

    /// The checkpoint "chain of `device_id` up to and including this event".
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            device_id: self.device_id.clone(),
            seq: self.seq,
            head_hash: self.hash,
        }
    }
}

/// A chain head: "the chain of `device_id` has `seq` events and the last one hashes to `head_hash`".
///
/// It is both the appender's state ([`Checkpoint::append`]) and the value a tenant server will sign
/// ([`Checkpoint::signing_bytes`]) to anchor a device's chain; verifying against it
/// ([`ChainVerifier::expect_checkpoint`]) detects truncation and wholesale rewriting.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Whose chain.
    pub device_id: String,
    /// Number of events covered (0 = empty chain).
    pub seq: u64,
    /// Hash of event `seq` (the genesis hash when `seq == 0`).
    #[serde(with = "hex32")]
    pub head_hash: Hash32,
}

impl Checkpoint {
    /// The empty chain of `device_id`.
    pub fn genesis(device_id: impl Into<String>) -> Self {
        let device_id = device_id.into();
        let head_hash = genesis_hash(&device_id);
        Self {
            device_id,
            seq: 0,
            head_hash,
        }
    }

    /// Seals `draft` as the next event and advances this head past it.
    pub fn append(&mut self, draft: EventDraft) -> AuditEvent {
        let ev = AuditEvent::seal(draft, &self.device_id, self.seq + 1, self.head_hash);
        self.seq = ev.seq;
        self.head_hash = ev.hash;
        ev
    }

    /// The next event's sequence number.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Unambiguous, versioned bytes for a signature:
    /// `"labvault/audit/checkpoint/v1" || f(device_id) || u64 seq || head_hash`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(CHECKPOINT_TAG.len() + 4 + self.device_id.len() + 40);
        buf.extend_from_slice(CHECKPOINT_TAG);
        put_field(&mut buf, &self.device_id);
        buf.extend_from_slice(&self.seq.to_be_bytes());
        buf.extend_from_slice(&self.head_hash);
        buf
    }

    /// `<seq>:<hex hash>`, the form the CLI prints and accepts.
    pub fn head_string(&self) -> String {
        format!("{}:{}", self.seq, hex::encode(self.head_hash))
    }
}

/// What kind of damage the verifier found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainErrorKind {
    /// The event's fields no longer match its hash, or a predecessor was changed and re-hashed.
    Edited,
    /// One or more events are gone (gap in seq, or renumbered after a deletion).
    Missing,
    /// An event was added (duplicate seq, or later events pushed back).
    Inserted,
    /// Events are out of order or swapped.
    Reordered,
    /// Seq 1 does not start from this device's genesis hash (spliced from another chain).
    ForeignGenesis,
    /// An event of another device appeared in a single-device verification.
    ForeignDevice,
    /// The chain disagrees with the trusted checkpoint at its seq.
    CheckpointMismatch,
    /// The chain ends before the trusted checkpoint's seq.
    Truncated,
    /// The event uses a format version this build does not know.
    UnsupportedVersion,
}

impl ChainErrorKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainErrorKind::Edited => "edited",
            ChainErrorKind::Missing => "missing",
            ChainErrorKind::Inserted => "inserted",
            ChainErrorKind::Reordered => "reordered",
            ChainErrorKind::ForeignGenesis => "foreign_genesis",
            ChainErrorKind::ForeignDevice => "foreign_device",
            ChainErrorKind::CheckpointMismatch => "checkpoint_mismatch",
            ChainErrorKind::Truncated => "truncated",
            ChainErrorKind::UnsupportedVersion => "unsupported_version",
        }
    }
}

/// The chain is broken: the first bad sequence number and how.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("audit chain of device {device_id} is broken at seq {first_bad_seq}: {}", kind.as_str())]
pub struct ChainError {
    /// Whose chain.
    pub device_id: String,
    /// The first sequence number whose event cannot be trusted.
    pub first_bad_seq: u64,
    /// What was detected.
    pub kind: ChainErrorKind,
}

impl ChainError {
    /// Stable error code for every chain break.
    pub fn code(&self) -> &'static str {
        "audit_tampered"
    }
}

/// How strict the verifier is about gaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// The whole chain: starts at seq 1 from the genesis hash (or right after the starting checkpoint),
    /// every seq present, every link checked. A gap is [`ChainErrorKind::Missing`].
    Complete,
    /// A filtered export: gaps are allowed and counted; every event's own hash is checked, and the link
    /// between every two consecutive seqs that are both present. Order must still be strictly increasing.
    Segments,
}

/// The result of a successful verification of one device's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Whose chain.
    pub device_id: String,
    /// Events checked.
    pub events: u64,
    /// Lowest seq seen.
    pub first_seq: Option<u64>,
    /// The last event checked as a checkpoint (seq and hash); `None` when no event was seen.
    pub head: Option<Checkpoint>,
    /// Number of gaps (only in [`VerifyMode::Segments`]).
    pub gaps: u64,
    /// Events left out by those gaps.
    pub omitted: u64,
    /// True when the events form one unbroken chain from genesis (or from the starting checkpoint).
    pub complete: bool,
    /// True when a trusted checkpoint was given and matched.
    pub checkpoint_matched: bool,
}

/// Streaming chain verifier: feed events in seq order with [`ChainVerifier::push`], then
/// [`ChainVerifier::finish`]. Constant memory (a window of 16 events), so it verifies a million-event log
/// straight from a database cursor or an export file.
///
/// Diagnosis: the first problem is classified as edited, missing, inserted or reordered using the
/// neighbouring events (up to 16 positions away); anything further is still detected, only classified
/// less precisely.
pub struct ChainVerifier {
    device_id: Option<String>,
    mode: VerifyMode,
    start: Option<Checkpoint>,
    expected: Option<Checkpoint>,
    checkpoint_matched: bool,
    buf: VecDeque<AuditEvent>,
    prev: Option<(u64, Hash32)>,
    prevprev: Option<Hash32>,
    recent: VecDeque<Hash32>,
    events: u64,
    first_seq: Option<u64>,
    gaps: u64,
    omitted: u64,
    from_start: bool,
    just_gapped: bool,
    failed: Option<ChainError>,
}

impl ChainVerifier {
    /// A verifier whose device is taken from the first event.
    pub fn new(mode: VerifyMode) -> Self {
        Self {
            device_id: None,
            mode,
            start: None,
            expected: None,
            checkpoint_matched: false,
            buf: VecDeque::with_capacity(LOOKAHEAD + 1),
            prev: None,
            prevprev: None,
            recent: VecDeque::with_capacity(LOOKAHEAD),
            events: 0,
            first_seq: None,
            gaps: 0,
            omitted: 0,
            from_start: false,
            just_gapped: false,
            failed: None,
        }
    }

    /// A verifier for `device_id`'s chain; events of other devices are [`ChainErrorKind::ForeignDevice`].
    pub fn for_device(device_id: impl Into<String>, mode: VerifyMode) -> Self {
        let mut v = Self::new(mode);
        v.device_id = Some(device_id.into());
        v
    }

    /// Continue a chain already verified up to `start` (incremental verification): the first event must
    /// be `start.seq + 1` and link to `start.head_hash`. Complete mode.
    pub fn resume_from(start: Checkpoint) -> Self {
        let mut v = Self::for_device(start.device_id.clone(), VerifyMode::Complete);
        v.start = Some(start);
        v
    }

    /// Also require the chain to reach `cp.seq` with exactly `cp.head_hash` there (an anchored,
    /// trusted head), which detects truncation and rewriting.
    pub fn expect_checkpoint(mut self, cp: Checkpoint) -> Self {
        if self.device_id.is_none() {
            self.device_id = Some(cp.device_id.clone());
        }
        self.expected = Some(cp);
        self
    }

    /// The device whose chain this verifier checks (once known).
    pub fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    fn err(&self, seq: u64, kind: ChainErrorKind) -> ChainError {
        ChainError {
            device_id: self.device_id.clone().unwrap_or_default(),
            first_bad_seq: seq,
            kind,
        }
    }

    /// Feeds the next event (in seq order). Returns the first error as soon as it is certain; after an
    /// error every further call returns the same error.
    pub fn push(&mut self, ev: AuditEvent) -> Result<(), ChainError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match &self.device_id {
            None => self.device_id = Some(ev.device_id.clone()),
            Some(d) if *d != ev.device_id => {
                let e = self.err(ev.seq, ChainErrorKind::ForeignDevice);
                self.failed = Some(e.clone());
                return Err(e);
            }
            Some(_) => {}
        }
        if self.prev.is_none() && self.events == 0 && self.buf.is_empty() {
            self.init_anchor();
        }
        self.buf.push_back(ev);
        while self.buf.len() > LOOKAHEAD {
            self.step()?;
        }
        Ok(())
    }

    fn init_anchor(&mut self) {
        let device = self.device_id.clone().unwrap_or_default();
        match (&self.start, self.mode) {
            (Some(cp), _) => self.prev = Some((cp.seq, cp.head_hash)),
            (None, VerifyMode::Complete) => self.prev = Some((0, genesis_hash(&device))),
            (None, VerifyMode::Segments) => self.prev = None,
        }
        self.from_start = self.prev.is_some();
    }

    /// Processes what is left and returns the report, or the first error.
    pub fn finish(mut self) -> Result<ChainReport, ChainError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.device_id.is_some()
            && self.prev.is_none()
            && self.events == 0
            && self.buf.is_empty()
        {
            self.init_anchor();
        }
        while !self.buf.is_empty() {
            self.step()?;
        }
        let head = match self.prev {
            Some((seq, hash)) if self.events > 0 || self.start.is_some() => Some(Checkpoint {
                device_id: self.device_id.clone().unwrap_or_default(),
                seq,
                head_hash: hash,
            }),
            _ => None,
        };
        if let Some(cp) = &self.expected {
            let reached = head.as_ref().map(|h| h.seq).unwrap_or(0);
            if reached < cp.seq {
                return Err(self.err(reached + 1, ChainErrorKind::Truncated));
            }
            if !self.checkpoint_matched {
                // The checkpoint's seq fell into a gap (segments mode) or before the start.
                return Err(self.err(cp.seq, ChainErrorKind::CheckpointMismatch));
            }
        }
        Ok(ChainReport {
            device_id: self.device_id.clone().unwrap_or_default(),
            events: self.events,
            first_seq: self.first_seq,
            head,
            gaps: self.gaps,
            omitted: self.omitted,
            complete: self.from_start && self.gaps == 0,
            checkpoint_matched: self.checkpoint_matched,
        })
    }

    fn step(&mut self) -> Result<(), ChainError> {
        let Some(ev) = self.buf.pop_front() else {
            return Ok(());
        };
        if let Err(kind_seq) = self.check(&ev) {
            let e = self.err(kind_seq.0, kind_seq.1);
            self.failed = Some(e.clone());
            return Err(e);
        }
        if let Some(cp) = &self.expected {
            if cp.seq == ev.seq {
                if cp.head_hash != ev.hash {
                    let e = self.err(ev.seq, ChainErrorKind::CheckpointMismatch);
                    self.failed = Some(e.clone());
                    return Err(e);
                }
                self.checkpoint_matched = true;
            }
        }
        self.prevprev = if std::mem::take(&mut self.just_gapped) {
            None
        } else {
            self.prev.map(|p| p.1)
        };
        self.prev = Some((ev.seq, ev.hash));
        if self.recent.len() == LOOKAHEAD {
            self.recent.pop_front();
        }
        self.recent.push_back(ev.hash);
        self.events += 1;
        self.first_seq.get_or_insert(ev.seq);
        Ok(())
    }

    fn known_elsewhere(&self, h: &Hash32) -> bool {
        self.recent.iter().any(|r| r == h) || self.buf.iter().any(|b| &b.hash == h)
    }

    /// Ok, or (first bad seq, kind).
    fn check(&mut self, ev: &AuditEvent) -> Result<(), (u64, ChainErrorKind)> {
        use ChainErrorKind::*;
        if ev.v != EVENT_FORMAT_VERSION {
            return Err((ev.seq, UnsupportedVersion));
        }
        let Some((pseq, phash)) = self.prev else {
            // Segments mode, first event: only its own hash can be checked.
            if ev.seq == 1 && ev.prev_hash == genesis_hash(&ev.device_id) {
                self.from_start = true;
            }
            return if ev.is_hash_valid() {
                Ok(())
            } else {
                Err((ev.seq, Edited))
            };
        };
        let e = pseq + 1;
        if ev.seq <= pseq {
            return Err(if ev.seq == pseq {
                (ev.seq, Inserted)
            } else {
                (ev.seq, Reordered)
            });
        }
        if ev.seq > e {
            if self.mode == VerifyMode::Segments {
                self.gaps += 1;
                self.omitted += ev.seq - e;
                self.just_gapped = true;
                return if ev.is_hash_valid() {
                    Ok(())
                } else {
                    Err((ev.seq, Edited))
                };
            }
            return Err(if self.buf.iter().any(|b| b.seq == e) {
                (e, Reordered)
            } else {
                (e, Missing)
            });
        }
        let digest = ev.content_digest();
        if chain_hash(ev.v, &ev.prev_hash, ev.seq, &digest) != ev.hash {
            return Err(self.diagnose_own(ev, e, &digest));
        }
        if ev.prev_hash != phash {
            if pseq == 0 && self.start.is_none() {
                return Err((ev.seq, ForeignGenesis));
            }
            if self.events == 0 {
                return Err((ev.seq, CheckpointMismatch));
            }
            if self.prevprev == Some(ev.prev_hash) {
                return Err((pseq, Inserted));
            }
            if self.buf.iter().any(|b| b.hash == ev.prev_hash) {
                return Err((pseq, Reordered));
            }
            return Err((pseq, Edited));
        }
        Ok(())
    }

    fn diagnose_own(&self, ev: &AuditEvent, e: u64, digest: &Hash32) -> (u64, ChainErrorKind) {
        use ChainErrorKind::*;
        if self.buf.front().map(|b| b.seq) == Some(ev.seq) {
            return (e, Inserted);
        }
        for d in 1..=LOOKAHEAD as u64 {
            if chain_hash(ev.v, &ev.prev_hash, e + d, digest) == ev.hash {
                // It belongs further on: either its predecessors were deleted and it was renumbered
                // down, or it was swapped with a later event whose hash it still links to.
                return if self.known_elsewhere(&ev.prev_hash) {
                    (e, Reordered)
                } else {
                    (e, Missing)
                };
            }
            if e > d && chain_hash(ev.v, &ev.prev_hash, e - d, digest) == ev.hash {
                return if self.buf.iter().any(|b| b.hash == ev.prev_hash) {
                    (e, Reordered)
                } else {
                    (e - d, Inserted)
                };
            }
        }
        (e, Edited)
    }
}

/// Verifies a complete single-device chain held in memory (seq order, from seq 1).
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> Result<ChainReport, ChainError> {
    let mut v = ChainVerifier::new(VerifyMode::Complete);
    for ev in events {
        v.push(ev.clone())?;
    }
    v.finish()
}

/// RFC 3339 with exactly six fractional digits and `Z`: the one timestamp form exports use.
pub mod ts_micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );

    /// Formats a timestamp (converted to UTC).
    pub fn format(ts: OffsetDateTime) -> String {
        ts.to_offset(time::UtcOffset::UTC)
            .format(FORMAT)
            .unwrap_or_else(|_| ts.unix_timestamp().to_string())
    }

    /// Parses any RFC 3339 timestamp; refuses sub-microsecond digits (they would not be covered by the hash).
    pub fn parse(s: &str) -> Result<OffsetDateTime, super::AuditError> {
        let ts = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| super::AuditError::InvalidTimestamp(format!("{s:?}: {e}")))?;
        if ts.nanosecond() % 1000 != 0 {
            return Err(super::AuditError::InvalidTimestamp(format!(
                "{s:?}: finer than a microsecond"
            )));
        }
        Ok(ts.to_offset(time::UtcOffset::UTC))
    }

    /// serde serialize.
    pub fn serialize<S: Serializer>(ts: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*ts))
    }

    /// serde deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// 32-byte hashes as 64 lowercase hex digits.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses 64 hex digits.
    pub fn parse(s: &str) -> Result<[u8; 32], String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| format!("bad hash {s:?}: {e}"))?;
        Ok(out)
    }

    /// serde serialize.
    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    /// serde deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const DEV: &str = "dev-0001";

    fn draft(i: u64) -> EventDraft {
        EventDraft::new(
            datetime!(2026-01-29 12:00 UTC) + time::Duration::seconds(i as i64),
            "alice@example.org",
            Action::new(actions::DATA_VIEW).unwrap(),
            resources::item("p1", &format!("i{i}")),
            Outcome::Success,
        )
        .user_agent("labvault-cli/0.1.0 (linux; device dev-0001)")
    }

    fn chain(n: u64) -> Vec<AuditEvent> {
        let mut head = Checkpoint::genesis(DEV);
        (1..=n).map(|i| head.append(draft(i))).collect()
    }

    fn err(events: &[AuditEvent]) -> (u64, ChainErrorKind) {
        let e = verify_chain(events).expect_err("tampering must be detected");
        assert_eq!(e.code(), "audit_tampered");
        (e.first_bad_seq, e.kind)
    }

    #[test]
    fn intact_chain_verifies_and_reports_head() {
        let c = chain(50);
        let r = verify_chain(&c).unwrap();
        assert_eq!(r.events, 50);
        assert!(r.complete);
        assert_eq!(r.head.unwrap(), c[49].checkpoint());
        assert_eq!(c[0].prev_hash, genesis_hash(DEV));
        assert_eq!(verify_chain(&[]).unwrap().events, 0);
    }

    #[test]
    fn committed_test_vector() {
        // Other implementations (and the server) must reproduce this hash bit for bit.
        let mut head = Checkpoint::genesis("device-A");
        let ev = head.append(
            EventDraft::new(
                datetime!(2026-01-29 12:00:00.123456 UTC),
                "user@example.com",
                Action::new("data.view").unwrap(),
                "project/abc123/item/P001",
                Outcome::Success,
            )
            .ip_address("203.0.113.50")
            .user_agent("Mozilla/5.0"),
        );
        assert_eq!(
            hex::encode(genesis_hash("device-A")),
            GENESIS_VECTOR,
            "genesis hash changed: format break"
        );
        assert_eq!(
            hex::encode(ev.hash),
            EVENT_VECTOR,
            "event hash changed: format break"
        );
    }
    const GENESIS_VECTOR: &str = "a24b8646b60ea033ec8d3bc6e4cd0c155c5c3ba39c3cfabc9c0b370ad9e0b30e";
    const EVENT_VECTOR: &str = "da5205abe10c5f619a0a45a5d717861c76f8121f560d5abcacd9f2673550d1e1";

    #[test]
    fn edit_without_rehash_is_edited_at_that_seq() {
        let mut c = chain(20);
        c[6].user = "mallory".into();
        assert_eq!(err(&c), (7, ChainErrorKind::Edited));
        let mut c = chain(20);
        c[9].result = Outcome::Denied;
        assert_eq!(err(&c), (10, ChainErrorKind::Edited));
        let mut c = chain(20);
        c[19].timestamp += time::Duration::microseconds(1);
        assert_eq!(err(&c), (20, ChainErrorKind::Edited));
    }

    #[test]
    fn edit_with_rehash_is_caught_by_the_successor() {
        let mut c = chain(20);
        c[6].detail = "forged".into();
        c[6].hash = c[6].compute_hash();
        assert_eq!(err(&c), (7, ChainErrorKind::Edited));
    }

    #[test]
    fn deletion_is_missing() {
        let mut c = chain(20);
        c.remove(4);
        assert_eq!(err(&c), (5, ChainErrorKind::Missing));
        // Deleted and the rest renumbered down to hide the gap.
        let mut c = chain(20);
        c.remove(4);
        for ev in &mut c[4..] {
            ev.seq -= 1;
        }
        assert_eq!(err(&c), (5, ChainErrorKind::Missing));
        // The first event deleted.
        let mut c = chain(5);
        c.remove(0);
        assert_eq!(err(&c), (1, ChainErrorKind::Missing));
    }

    #[test]
    fn insertion_is_inserted() {
        // A second event claiming an existing seq.
        let mut c = chain(10);
        let mut forged = c[3].clone();
        forged.user = "mallory".into();
        forged.hash = forged.compute_hash();
        c.insert(4, forged);
        assert_eq!(err(&c), (4, ChainErrorKind::Inserted));
        // A well-formed forged event linked into place, later events renumbered up.
        let mut c = chain(10);
        let mut head = c[3].checkpoint();
        let forged = head.append(draft(99));
        c.insert(4, forged);
        for ev in &mut c[5..] {
            ev.seq += 1;
        }
        assert_eq!(err(&c), (5, ChainErrorKind::Inserted));
    }

    #[test]
    fn reordering_is_reordered() {
        // Rows swapped (seqs travel with them).
        let mut c = chain(10);
        c.swap(3, 4);
        assert_eq!(err(&c), (4, ChainErrorKind::Reordered));
        // Seq numbers swapped between two events (rows stay in seq order).
        let mut c = chain(10);
        c.swap(3, 4);
        c[3].seq = 4;
        c[4].seq = 5;
        assert_eq!(err(&c), (4, ChainErrorKind::Reordered));
        // Going backwards further on.
        let mut c = chain(10);
        let moved = c.remove(2);
        c.push(moved);
        let (seq, kind) = err(&c);
        assert_eq!(seq, 3);
        assert!(matches!(kind, ChainErrorKind::Reordered), "{kind:?}");
    }

    #[test]
    fn foreign_and_spliced_chains_are_refused() {
        let c = chain(3);
        let mut other = Checkpoint::genesis("dev-other");
        let o = other.append(draft(1));
        let mut mixed = c.clone();
        mixed.push(o);
        assert_eq!(err(&mixed), (1, ChainErrorKind::ForeignDevice));
        // Same device id, but seq 1 does not start from this device's genesis.
        let mut c = chain(3);
        c[0].prev_hash = [0; 32];
        c[0].hash = c[0].compute_hash();
        assert_eq!(err(&c), (1, ChainErrorKind::ForeignGenesis));
    }

    #[test]
    fn checkpoint_detects_truncation_and_rewrite() {
        let c = chain(10);
        let anchored = c[9].checkpoint();
        let mut v = ChainVerifier::new(VerifyMode::Complete).expect_checkpoint(anchored.clone());
        for ev in &c[..8] {
            v.push(ev.clone()).unwrap();
        }
        let e = v.finish().unwrap_err();
        assert_eq!((e.first_bad_seq, e.kind), (9, ChainErrorKind::Truncated));
        // Whole chain rewritten consistently: only the anchor can tell.
        let mut head = Checkpoint::genesis(DEV);
        let rewritten: Vec<_> = (1..=10)
            .map(|i| head.append(draft(i).detail("rewritten")))
            .collect();
        assert!(verify_chain(&rewritten).is_ok());
        let mut v = ChainVerifier::new(VerifyMode::Complete).expect_checkpoint(anchored.clone());
        let e = rewritten
            .iter()
            .try_for_each(|ev| v.push(ev.clone()))
            .and_then(|_| v.finish().map(|_| ()))
            .unwrap_err();
        assert_eq!(e.kind, ChainErrorKind::CheckpointMismatch);
        let mut v = ChainVerifier::new(VerifyMode::Complete).expect_checkpoint(anchored);
        for ev in &c {
            v.push(ev.clone()).unwrap();
        }
        assert!(v.finish().unwrap().checkpoint_matched);
    }

    #[test]
    fn resume_from_checkpoint_verifies_only_the_tail() {
        let c = chain(10);
        let mut v = ChainVerifier::resume_from(c[5].checkpoint());
        for ev in &c[6..] {
            v.push(ev.clone()).unwrap();
        }
        let r = v.finish().unwrap();
        assert_eq!(r.events, 4);
        assert_eq!(r.head.unwrap().seq, 10);
        let mut v = ChainVerifier::resume_from(c[4].checkpoint());
        let e = v
            .push(c[6].clone())
            .and_then(|_| v.finish().map(|_| ()))
            .unwrap_err();
        assert_eq!((e.first_bad_seq, e.kind), (6, ChainErrorKind::Missing));
    }

    #[test]
    fn segments_mode_accepts_gaps_but_not_edits() {
        let c = chain(30);
        let filtered: Vec<_> = c
            .iter()
            .filter(|e| e.seq % 3 != 0 || e.seq > 20)
            .cloned()
            .collect();
        let mut v = ChainVerifier::new(VerifyMode::Segments);
        for ev in &filtered {
            v.push(ev.clone()).unwrap();
        }
        let r = v.finish().unwrap();
        assert_eq!(r.gaps, 6);
        assert_eq!(r.omitted, 6);
        assert!(!r.complete);
        assert!(
            verify_chain(&filtered).is_err(),
            "a gap is an error for a complete chain"
        );

        let mut bad = filtered.clone();
        bad[7].resource = "project/p1/item/other".into();
        let mut v = ChainVerifier::new(VerifyMode::Segments);
        let e = bad
            .iter()
            .try_for_each(|ev| v.push(ev.clone()))
            .and_then(|_| v.finish().map(|_| ()))
            .unwrap_err();
        assert_eq!(
            (e.first_bad_seq, e.kind),
            (bad[7].seq, ChainErrorKind::Edited)
        );

        let mut swapped = filtered.clone();
        swapped.swap(10, 11);
        let mut v = ChainVerifier::new(VerifyMode::Segments);
        let e = swapped
            .iter()
            .try_for_each(|ev| v.push(ev.clone()))
            .and_then(|_| v.finish().map(|_| ()))
            .unwrap_err();
        assert_eq!(e.kind, ChainErrorKind::Reordered);
    }

    #[test]
    fn action_names_are_validated() {
        for ok in actions::VAULT_ACTIONS {
            assert!(Action::new(*ok).unwrap().is_vault_action());
        }
        assert!(Action::new("member.role_change").is_ok());
        for bad in [
            "",
            "data",
            "Data.view",
            "data..view",
            ".data",
            "data.view.",
            "data view",
            "1a.b",
            "a.b.c.d.e",
        ] {
            let e = Action::new(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_action");
        }
    }

    #[test]
    fn json_shape_round_trips_and_truncates_to_micros() {
        let mut head = Checkpoint::genesis(DEV);
        let mut d = draft(1);
        d.timestamp = datetime!(2026-01-29 13:00:00.123456789 +01:00);
        let ev = head.append(d);
        assert_eq!(ev.timestamp, datetime!(2026-01-29 12:00:00.123456 UTC));
        let json = serde_json::to_string(&ev).unwrap();
        assert!(
            json.contains("\"timestamp\":\"2026-01-29T12:00:00.123456Z\""),
            "{json}"
        );
        assert!(json.contains("\"result\":\"success\""));
        let back: AuditEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
        assert!(back.is_hash_valid());
        let bad = json.replace(".123456Z", ".123456789Z");
        assert!(serde_json::from_str::<AuditEvent>(&bad).is_err());
        let extra = json.replacen('{', "{\"sneaky\":1,", 1);
        assert!(serde_json::from_str::<AuditEvent>(&extra).is_err());
    }

    #[test]
    fn checkpoint_signing_bytes_are_unambiguous() {
        let a = Checkpoint {
            device_id: "ab".into(),
            seq: 1,
            head_hash: [1; 32],
        };
        let b = Checkpoint {
            device_id: "a".into(),
            seq: 1,
            head_hash: [1; 32],
        };
        assert_ne!(a.signing_bytes(), b.signing_bytes());
        assert!(a
            .signing_bytes()
            .starts_with(b"labvault/audit/checkpoint/v1"));
        assert_eq!(a.head_string(), format!("1:{}", "01".repeat(32)));
    }
}
