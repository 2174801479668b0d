//! Storage of file sync, behind two traits so backends can be swapped (`sqlite:` + files
//! today; PostgreSQL + S3 later): [`SyncStore`] for metadata (feeds, ops, items, blob records,
//! uploads, devices, key boxes, anchors), transactional like [`super::Store`], and
//! [`super::blobs::BlobStore`] for the encrypted bytes.
//!
//! Nothing here can tell what a project holds: payloads are opaque ciphertext, blobs are
//! ciphertext, ids are random (docs/sync-protocol.md, "What the server sees").

use async_trait::async_trait;
use labvault_wire::{BlobPutStatus, DeviceState, OpResult, PlanTier, Role, SharingPolicy, SyncOp};

use super::{AuditDraft, StoreResult};

/// A project's feed: its head, current key epoch and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    /// Highest `seq` (0: empty).
    pub head_seq: u64,
    /// Current key epoch.
    pub epoch: u32,
    /// Random identity of this feed (see `ChangesPage::generation`).
    pub generation: String,
}

/// One stored op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRow {
    /// Position in the feed.
    pub seq: u64,
    /// Op id.
    pub op_id: String,
    /// Item.
    pub item_id: String,
    /// Item revision after it.
    pub rev: u64,
    /// Key epoch.
    pub epoch: u32,
    /// Committing device.
    pub device_id: String,
    /// Its user.
    pub user_id: String,
    /// Sealed state (base64, as received; empty once compacted).
    pub payload: String,
    /// Referenced blobs.
    pub blobs: Vec<String>,
    /// Erased.
    pub tombstone: bool,
    /// Under a legal hold.
    pub hold: bool,
    /// The payload was removed (a later op erased versions it named).
    pub compacted: bool,
    /// Accepted at (Unix s).
    pub committed_at: i64,
}

/// Who commits, for the ops and their audit event.
#[derive(Debug, Clone)]
pub struct Committer {
    /// Tenant.
    pub tenant: String,
    /// Project.
    pub project: String,
    /// Device.
    pub device: String,
    /// User.
    pub user: String,
    /// Now (Unix s).
    pub now: i64,
}

/// A blob the server holds, complete and checked, and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// Blob id.
    pub blob_id: String,
    /// Bytes.
    pub size: u64,
    /// Digest (`sha256:<hex>` or `sha256-parts:<part size>:<hex>`).
    pub digest: String,
    /// Blob-store object holding it (its own, or a pack's).
    pub object: String,
    /// Offset of its bytes in the object.
    pub offset: u64,
    /// Stored at (Unix s).
    pub created_at: i64,
    /// When an erasure made it removable (Unix s); removed after the grace period.
    pub erased_at: Option<i64>,
}

/// A blob to record (its bytes are already stored and checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlob {
    /// Blob id.
    pub blob_id: String,
    /// Bytes.
    pub size: u64,
    /// Digest.
    pub digest: String,
    /// Offset in the object.
    pub offset: u64,
}

/// A resumable upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    /// Upload id.
    pub upload_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Project.
    pub project_id: String,
    /// The blob being uploaded.
    pub blob_id: String,
    /// Announced size.
    pub size: u64,
    /// Part size.
    pub part_size: u64,
    /// Created (Unix s).
    pub created_at: i64,
    /// Forgotten when idle until then (Unix s).
    pub expires_at: i64,
}

/// A stored part of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    /// Part number from 0.
    pub n: u32,
    /// Bytes.
    pub size: u64,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Tenant.
    pub tenant_id: String,
    /// Device id.
    pub device_id: String,
    /// User.
    pub user_id: String,
    /// Label.
    pub name: String,
    /// X25519 public key (base64).
    pub x25519: String,
    /// Ed25519 public key (base64).
    pub ed25519: String,
    /// State.
    pub state: DeviceState,
    /// Registered (Unix s).
    pub created_at: i64,
    /// Approved (Unix s).
    pub approved_at: Option<i64>,
    /// The approval (JSON of `labvault_wire::DeviceApproval`), none for a first device.
    pub approval: Option<String>,
    /// Last sync request (Unix s).
    pub last_seen_at: Option<i64>,
}

/// A key box as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBoxRow {
    /// Project.
    pub project_id: String,
    /// Epoch.
    pub epoch: u32,
    /// Device it is sealed to.
    pub device_id: String,
    /// Sealed key (base64).
    pub sealed: String,
    /// Sealing device.
    pub signer_device_id: String,
    /// Signature (base64).
    pub signature: String,
}

/// A signed audit anchor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRow {
    /// Tenant.
    pub tenant_id: String,
    /// Chain.
    pub chain_id: String,
    /// Events covered.
    pub seq: u64,
    /// Head hash (hex).
    pub head_hash: String,
    /// Signed at (RFC 3339, as signed).
    pub signed_at: String,
    /// Signature (base64).
    pub signature: String,
}

/// A user's registered identity (public halves, base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: String,
    /// X25519 public key.
    pub x25519: String,
    /// Ed25519 public key.
    pub ed25519: String,
    /// Registered (Unix s).
    pub registered_at: i64,
}

/// An identity box as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityBoxRow {
    /// Device it is sealed to.
    pub device_id: String,
    /// Sealed identity (base64).
    pub sealed: String,
    /// Sealing device.
    pub signer_device_id: String,
    /// Signature (base64).
    pub signature: String,
}

/// A member box as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberBoxRow {
    /// Member.
    pub user_id: String,
    /// Epoch.
    pub epoch: u32,
    /// Sealed key (base64).
    pub sealed: String,
}

/// What a caller may do with a project's synced data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAccess {
    /// The project has no membership log: the tenant's roles decide.
    NotShared,
    /// A member with this role.
    Member(Role),
    /// The project has a log and the caller is not a member.
    NotMember,
    /// The caller was a member and was removed: they may still read the signed log (to see
    /// their removal and wipe their copy), nothing else.
    Removed,
}

/// What an appended membership entry changes in the server's view of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEffect {
    /// A member joins.
    Add {
        /// User.
        user: String,
        /// Role.
        role: Role,
    },
    /// A member leaves: their access ends and their boxes are deleted.
    Remove {
        /// User.
        user: String,
    },
    /// A member's role changes.
    SetRole {
        /// User.
        user: String,
        /// Role.
        role: Role,
    },
    /// The project's key epoch moves on (ops under older epochs are refused from then on).
    Rotate {
        /// New epoch.
        epoch: u32,
        /// The previous key wrapped under the new one (base64).
        link: String,
    },
    /// Recorded only (a device's revocation, which rotation follows).
    Note,
}

/// One entry to append (checked by the handler), with its boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipAppend {
    /// Tenant.
    pub tenant: String,
    /// Project.
    pub project: String,
    /// Its position: must be the log's length (compare-and-swap).
    pub seq: u64,
    /// Hash of the previous entry (hex; empty for entry 0): must be the log's head.
    pub prev_hash: String,
    /// Its own hash (hex).
    pub hash: String,
    /// The signed entry (base64).
    pub entry: String,
    /// Signer.
    pub signer: String,
    /// Effect on access.
    pub effect: MembershipEffect,
    /// Member boxes it brings.
    pub boxes: Vec<MemberBoxRow>,
    /// Now (Unix s).
    pub now: i64,
}

/// A stored membership entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRow {
    /// Position.
    pub seq: u64,
    /// The signed entry (base64).
    pub entry: String,
    /// Its hash (hex).
    pub hash: String,
}

/// Metadata of file sync. Every method is scoped to one tenant (and where it applies, one
/// project); another tenant's rows are indistinguishable from missing ones. Mutations that a
/// user asked for take the audit event describing them and write it in the same transaction.
#[async_trait]
pub trait SyncStore: Send + Sync + 'static {
    // ----- devices
    /// Registers a device, or returns it unchanged if already registered by the same user
    /// with the same keys (`conflict` otherwise). A user's first device is approved at once:
    /// there is no other device to approve it.
    async fn register_device(&self, d: DeviceRow, audit: AuditDraft) -> StoreResult<DeviceRow>;
    /// One device of the tenant.
    async fn device(&self, tenant: &str, device_id: &str) -> StoreResult<DeviceRow>;
    /// The devices of a user.
    async fn user_devices(&self, tenant: &str, user: &str) -> StoreResult<Vec<DeviceRow>>;
    /// Approves a pending device of `user` (recording the approval) and stores the key boxes
    /// sealed to it, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn approve_device(
        &self,
        tenant: &str,
        user: &str,
        device_id: &str,
        approval: String,
        boxes: Vec<KeyBoxRow>,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<DeviceRow>;
    /// Revokes a device of `user`; its key boxes are deleted.
    async fn revoke_device(
        &self,
        tenant: &str,
        user: &str,
        device_id: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Records that a device made a sync request.
    async fn touch_device(&self, tenant: &str, device_id: &str, now: i64) -> StoreResult<()>;

    // ----- key boxes
    /// Stores key boxes (replacing a box for the same project, epoch and device).
    async fn put_key_boxes(
        &self,
        tenant: &str,
        boxes: Vec<KeyBoxRow>,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// The boxes of a project sealed to a device, every epoch.
    async fn key_boxes(
        &self,
        tenant: &str,
        project: &str,
        device_id: &str,
    ) -> StoreResult<Vec<KeyBoxRow>>;
    /// The devices holding a box of `epoch` of a project.
    async fn key_recipients(
        &self,
        tenant: &str,
        project: &str,
        epoch: u32,
    ) -> StoreResult<Vec<String>>;

    // ----- identities and shared projects (docs/sharing.md)
    /// A user's registered identity.
    async fn identity(&self, tenant: &str, user: &str) -> StoreResult<Option<IdentityRow>>;
    /// Registers a user's identity (`true`), or returns it unchanged when the same keys are
    /// already registered (`false`; `conflict` for other keys: an identity never changes
    /// silently).
    async fn register_identity(
        &self,
        row: IdentityRow,
        audit: AuditDraft,
    ) -> StoreResult<(IdentityRow, bool)>;
    /// Stores identity boxes sealed to devices of `user` (replacing a device's box).
    async fn put_identity_boxes(
        &self,
        tenant: &str,
        user: &str,
        boxes: Vec<IdentityBoxRow>,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// The identity boxes sealed to devices of a user.
    async fn identity_boxes(&self, tenant: &str, user: &str) -> StoreResult<Vec<IdentityBoxRow>>;
    /// The caller's access to a project's synced data (see [`MemberAccess`]).
    async fn member_access(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
    ) -> StoreResult<MemberAccess>;
    /// The members of a shared project with their roles.
    async fn members(&self, tenant: &str, project: &str) -> StoreResult<Vec<(String, Role)>>;
    /// The membership log from entry `from` on, and its length.
    async fn membership_log(
        &self,
        tenant: &str,
        project: &str,
        from: u64,
    ) -> StoreResult<(Vec<MembershipRow>, u64)>;
    /// Appends an entry if it is the next one (`conflict` otherwise), applies its effect
    /// (members, the tenant's project roles, boxes, the feed's epoch) and writes the audit
    /// event, in one transaction. Returns the log's length and the feed.
    async fn append_membership(
        &self,
        a: MembershipAppend,
        audit: AuditDraft,
    ) -> StoreResult<(u64, FeedState)>;
    /// The member boxes of a project sealed to a user, every epoch.
    async fn member_boxes(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
    ) -> StoreResult<Vec<MemberBoxRow>>;
    /// The members holding a box of `epoch`.
    async fn box_holders(
        &self,
        tenant: &str,
        project: &str,
        epoch: u32,
    ) -> StoreResult<Vec<String>>;
    /// Every epoch link of a project: (epoch, link).
    async fn epoch_links(&self, tenant: &str, project: &str) -> StoreResult<Vec<(u32, String)>>;
    /// Whether a member's device was revoked since the project's last rotation.
    async fn rotation_requested(&self, tenant: &str, project: &str) -> StoreResult<bool>;
    /// The tenant's policy for shared projects (the defaults until one is set).
    async fn sharing_policy(&self, tenant: &str) -> StoreResult<SharingPolicy>;
    /// Sets the tenant's policy for shared projects, with the audit event.
    async fn set_sharing_policy(
        &self,
        tenant: &str,
        policy: SharingPolicy,
        audit: AuditDraft,
    ) -> StoreResult<()>;

    // ----- feed
    /// The feed of a project (created empty, epoch 1, with a fresh generation, if new).
    async fn feed(&self, tenant: &str, project: &str) -> StoreResult<FeedState>;
    /// Applies ops in order, each on its own: a duplicate op id answers with its first result,
    /// a `base_rev` that is not the item's revision is a conflict, an op under another epoch
    /// is stale, an op referencing a blob the server does not hold is `blob_missing`, an
    /// erasure of held items is refused (`on_hold`); applied ops get the next gap-free
    /// `seq`s. Blobs an applied op no longer references (and no other item does) become
    /// erased, and the earlier payloads of its item (which named their keys) are removed.
    /// One transaction with the audit event.
    async fn commit(
        &self,
        who: Committer,
        ops: Vec<SyncOp>,
        audit: AuditDraft,
    ) -> StoreResult<(Vec<OpResult>, FeedState)>;
    /// Ops with `seq > after`, in order, at most `limit`, and the feed state read with them.
    async fn changes(
        &self,
        tenant: &str,
        project: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<(Vec<OpRow>, FeedState)>;
    /// The latest op of each item with an id above `after_item`, by item id, and the feed
    /// state, in one read.
    async fn snapshot(
        &self,
        tenant: &str,
        project: &str,
        after_item: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<OpRow>, FeedState)>;
    /// Whether a legal hold covers anything of a project (its own op, or an item's latest).
    async fn project_held(&self, tenant: &str, project: &str) -> StoreResult<bool>;

    // ----- blobs
    /// The record of a blob the server holds (not erased).
    async fn blob(
        &self,
        tenant: &str,
        project: &str,
        blob_id: &str,
    ) -> StoreResult<Option<BlobRecord>>;
    /// Which of `ids` the server does not hold (or holds erased).
    async fn missing_blobs(
        &self,
        tenant: &str,
        project: &str,
        ids: Vec<String>,
    ) -> StoreResult<Vec<String>>;
    /// Records blobs whose bytes are stored in `object` and checked: new ids are recorded,
    /// ids already held are left as they are (`exists` with the same digest, `conflict`
    /// otherwise). One transaction with the audit event.
    async fn record_blobs(
        &self,
        tenant: &str,
        project: &str,
        object: &str,
        blobs: Vec<NewBlob>,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<Vec<BlobPutStatus>>;
    /// Bytes a tenant holds or has reserved for open uploads, for the quota.
    async fn tenant_usage(&self, tenant: &str) -> StoreResult<u64>;
    /// Projects (of any tenant, deleted ones included) with erased blobs not yet removed.
    async fn projects_with_erased_blobs(&self) -> StoreResult<Vec<(String, String)>>;
    /// The erased blobs of a project.
    async fn erased_blobs(&self, tenant: &str, project: &str) -> StoreResult<Vec<BlobRecord>>;
    /// Every blob recorded in `object` (erased or not).
    async fn object_blobs(
        &self,
        tenant: &str,
        project: &str,
        object: &str,
    ) -> StoreResult<Vec<BlobRecord>>;
    /// Points blobs at their copies in `new_object` (`(blob id, offset)`), after a repack.
    async fn relocate_blobs(
        &self,
        tenant: &str,
        project: &str,
        new_object: &str,
        moves: Vec<(String, u64)>,
    ) -> StoreResult<()>;
    /// Forgets removed blobs, with the server's audit event.
    async fn forget_blobs(
        &self,
        tenant: &str,
        project: &str,
        ids: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<()>;
    /// Whether any blob record names `object` (for the sweep of unrecorded objects).
    async fn object_referenced(&self, object: &str) -> StoreResult<bool>;

    // ----- uploads
    /// Starts an upload for a blob, or returns the open one for the same blob (resume).
    async fn open_upload(&self, u: UploadRow, audit: AuditDraft) -> StoreResult<UploadRow>;
    /// An upload of the tenant.
    async fn upload(&self, tenant: &str, upload_id: &str) -> StoreResult<UploadRow>;
    /// Records a stored part and keeps the upload alive until `expires_at`.
    async fn put_part(&self, upload_id: &str, part: PartRow, expires_at: i64) -> StoreResult<()>;
    /// The stored parts of an upload, by number.
    async fn parts(&self, upload_id: &str) -> StoreResult<Vec<PartRow>>;
    /// Forgets an upload (completed, aborted or expired), with an audit event when given.
    async fn close_upload(
        &self,
        upload_id: &str,
        audit: Option<(String, AuditDraft)>,
    ) -> StoreResult<()>;
    /// Uploads idle past their expiry (any tenant).
    async fn expired_uploads(&self, now: i64) -> StoreResult<Vec<UploadRow>>;

    // ----- audit anchors
    /// Stores signed anchors (a device chain's and the tenant's), with the audit event.
    async fn put_anchors(&self, a: Vec<AnchorRow>, audit: AuditDraft) -> StoreResult<()>;
    /// The anchors of a chain, oldest first.
    async fn anchors(&self, tenant: &str, chain_id: &str) -> StoreResult<Vec<AnchorRow>>;
    /// The head of a tenant's own audit chain: (seq, hash hex).
    async fn audit_head(&self, tenant: &str) -> StoreResult<(u64, String)>;
}

/// The quota of a plan tier in bytes (`None`: unlimited).
pub fn plan_quota(plan: PlanTier) -> Option<u64> {
    const GIB: u64 = 1 << 30;
    match plan {
        PlanTier::Trial => Some(GIB),
        PlanTier::Starter => Some(100 * GIB),
        PlanTier::Professional => Some(1024 * GIB),
        PlanTier::Enterprise => None,
    }
}
