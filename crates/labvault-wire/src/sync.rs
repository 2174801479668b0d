//! Wire types of file sync: the per-project change feed, commits of ops, blobs (small and
//! resumable), devices, key boxes and audit anchors.
//!
//! What the server sees of a project's content is exactly what these types carry in the
//! clear: random ids (project, item, op, blob, device, user), sequence numbers, revisions,
//! key epochs, sizes, digests of ciphertext, a tombstone flag and times. Names, folders,
//! metadata, wrapped data keys and plaintext hashes travel only inside `payload`, an AEAD
//! ciphertext under the project's epoch key (docs/sync-protocol.md).

use serde::{Deserialize, Serialize};

/// Header naming the calling device on every sync request (an approved device of the caller).
pub const DEVICE_HEADER: &str = "x-labvault-device";
/// Header with the SHA-256 (hex) of an upload part's bytes.
pub const PART_SHA256_HEADER: &str = "x-labvault-sha256";

#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

/// One op a device commits: the new state of one item, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SyncOp {
    /// Client-made op id (UUID); committing it again is answered with the first result.
    pub op_id: String,
    /// The item (UUID).
    pub item_id: String,
    /// The item revision this op was based on (0: the item is new).
    pub base_rev: u64,
    /// Key epoch the payload is sealed under.
    pub epoch: u32,
    /// The sealed item state, base64.
    pub payload: String,
    /// Blob ids the state references; the server must hold and have checked each.
    pub blobs: Vec<String>,
    /// The item is erased (its blobs may be removed after the policy's grace).
    pub tombstone: bool,
    /// A legal hold covers the item (for the project's own op: the whole project): the server
    /// refuses an erasure of it and keeps its blobs.
    #[serde(default)]
    pub hold: bool,
}

/// A batch of ops from one device (the device named in the `x-labvault-device` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CommitRequest {
    /// The ops, applied in order, each on its own (at most 1000).
    pub ops: Vec<SyncOp>,
}

/// What became of one op of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OpResult {
    /// Applied now, at `seq`; the item is at `rev`.
    Applied {
        /// The op.
        op_id: String,
        /// Its position in the project's feed.
        seq: u64,
        /// The item's revision after it.
        rev: u64,
    },
    /// Applied before (a resend): the first result.
    Duplicate {
        /// The op.
        op_id: String,
        /// Its position in the feed.
        seq: u64,
        /// The item's revision after it.
        rev: u64,
    },
    /// `base_rev` is not the item's revision any more: pull, merge, commit again.
    Conflict {
        /// The op.
        op_id: String,
        /// The item's current revision.
        rev: u64,
    },
    /// Sealed under an epoch that is not the project's current one.
    StaleEpoch {
        /// The op.
        op_id: String,
        /// The current epoch.
        epoch: u32,
    },
    /// A referenced blob is not (completely) on the server: upload it, commit again.
    BlobMissing {
        /// The op.
        op_id: String,
        /// The first missing blob.
        blob_id: String,
    },
    /// Refused for good (malformed, not allowed); `code` is an API error code.
    Rejected {
        /// The op.
        op_id: String,
        /// Why (an [`crate::ErrorCode`] name).
        code: String,
        /// For people.
        message: String,
    },
}

/// The answer to a commit: one result per op, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CommitResponse {
    /// Per op.
    pub results: Vec<OpResult>,
    /// The feed's head after the commit.
    pub head_seq: u64,
}

/// One accepted op, as the feed and the snapshot return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Change {
    /// Position in the project's feed (gap-free from 1).
    pub seq: u64,
    /// The op id.
    pub op_id: String,
    /// The item.
    pub item_id: String,
    /// The item's revision after this op.
    pub rev: u64,
    /// Key epoch of the payload.
    pub epoch: u32,
    /// Device that committed it.
    pub device_id: String,
    /// Its user.
    pub user_id: String,
    /// The sealed item state, base64.
    pub payload: String,
    /// Blobs it references.
    pub blobs: Vec<String>,
    /// Erased.
    pub tombstone: bool,
    /// Under a legal hold.
    pub hold: bool,
    /// The payload was removed because a later op of the item erased versions it named
    /// (`payload` is empty): skip it, the later op says what the item is now.
    pub compacted: bool,
    /// When the server accepted it (RFC 3339).
    pub committed_at: String,
}

/// Parameters of a feed read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ChangesQuery {
    /// Changes with `seq` greater than this.
    pub after: u64,
    /// Most changes returned (1..=1000, default 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Seconds to wait for a change when there is none yet (long poll; at most 25).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<u32>,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChangesPage {
    /// The changes, in `seq` order.
    pub changes: Vec<Change>,
    /// Pass as `after` for the next page.
    pub next: u64,
    /// More changes follow.
    pub has_more: bool,
    /// The feed's head when this page was read.
    pub head_seq: u64,
    /// The project's current key epoch.
    pub epoch: u32,
    /// The feed's identity: changes when the feed was reset (a client whose cursor is ahead
    /// of `head_seq` under the same generation is talking to a server restored from an older
    /// backup, and must stop instead of deleting anything).
    pub generation: String,
}

/// Parameters of a snapshot read (the latest op of every item, for a new device).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SnapshotQuery {
    /// Items with an id greater than this (paging).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_item: Option<String>,
    /// Most items returned (1..=1000, default 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A page of the snapshot: the latest change of each item, by item id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SnapshotPage {
    /// Latest change per item.
    pub items: Vec<Change>,
    /// Pass as `after_item` for the next page; `None` at the end.
    pub next_item: Option<String>,
    /// The feed's head when the first page was read: continue the feed from here.
    pub head_seq: u64,
    /// Current key epoch.
    pub epoch: u32,
    /// Feed identity (see [`ChangesPage::generation`]).
    pub generation: String,
}

/// Blob ids: which of them the server does not hold (`POST …/missing-blobs`), or which to
/// fetch (`POST …/blob-batches`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlobIds {
    /// Blob ids (32 lowercase hex), at most 1000.
    pub ids: Vec<String>,
}

/// A blob the server holds, complete and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlobInfo {
    /// Blob id.
    pub blob_id: String,
    /// Bytes.
    pub size: u64,
    /// Digest of the bytes: `sha256:<hex>` (sent whole) or `sha256-parts:<part size>:<hex>`
    /// (the SHA-256 of the concatenated SHA-256 digests of its parts, sent in parts).
    pub digest: String,
}

/// One blob of a pack (small blobs sent together in one request, `POST …/packs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PackEntry {
    /// Blob id.
    pub blob_id: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
}

/// The manifest at the head of a pack body, and of a blob batch answer. A framed body is
/// `u32 (big endian) manifest length || manifest JSON || the blobs' bytes back to back`, in
/// manifest order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PackManifest {
    /// The blobs, in body order.
    pub blobs: Vec<PackEntry>,
}

/// What became of one blob of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BlobPutStatus {
    /// Stored now.
    Created,
    /// Already held with the same digest.
    Exists,
    /// Already held with another digest: refused.
    Conflict,
}

/// Per-blob result of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlobPutResult {
    /// Blob id.
    pub blob_id: String,
    /// What became of it.
    pub status: BlobPutStatus,
}

/// The answer to a pack upload, in manifest order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PackResult {
    /// Per blob.
    pub results: Vec<BlobPutResult>,
}

/// Starts (or, for the same blob, resumes) a resumable upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UploadRequest {
    /// The blob (32 hex).
    pub blob_id: String,
    /// Its size in bytes.
    pub size: u64,
    /// Size of every part but the last (1 MiB to 64 MiB).
    pub part_size: u64,
}

/// One stored part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PartInfo {
    /// Part number from 0.
    pub n: u32,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the part (hex), checked on receipt against `x-labvault-sha256`.
    pub sha256: String,
}

/// A resumable upload and the parts the server already holds (the resume point).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UploadStatus {
    /// Upload id.
    pub upload_id: String,
    /// The blob.
    pub blob_id: String,
    /// Its size.
    pub size: u64,
    /// Every part but the last has exactly this size.
    pub part_size: u64,
    /// Parts stored so far, by number.
    pub parts: Vec<PartInfo>,
    /// The upload is forgotten if idle until then (RFC 3339).
    pub expires_at: String,
    /// The blob is already stored: nothing to upload (no upload was opened).
    pub complete: bool,
}

/// Completes a resumable upload: the client's digest of every part, in order; the server
/// checks them against the parts it stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CompleteUpload {
    /// SHA-256 (hex) of part 0, 1, ….
    pub parts_sha256: Vec<String>,
}

/// A device's public keys, registered at sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeviceRegistration {
    /// Device id (UUID, made by the device).
    pub device_id: String,
    /// A label for people ("lab workstation").
    pub name: String,
    /// X25519 public key (base64), for key boxes sealed to it.
    pub x25519: String,
    /// Ed25519 public key (base64), for what it signs.
    pub ed25519: String,
}

/// State of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Registered, waiting for another device of its user to approve it.
    Pending,
    /// May sync.
    Approved,
    /// Revoked: refused everywhere.
    Revoked,
}

/// A device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Device {
    /// Device id.
    pub device_id: String,
    /// Its user.
    pub user_id: String,
    /// Label.
    pub name: String,
    /// X25519 public key (base64).
    pub x25519: String,
    /// Ed25519 public key (base64).
    pub ed25519: String,
    /// State.
    pub state: DeviceState,
    /// Registered (RFC 3339).
    pub created_at: String,
    /// Approved (RFC 3339).
    pub approved_at: Option<String>,
    /// Last request (RFC 3339).
    pub last_seen_at: Option<String>,
    /// How it was approved (none for a user's first device, which approves itself).
    pub approval: Option<DeviceApproval>,
}

/// An approval of a device by another device of the same user: a signature by the approver
/// over the approval statement (`docs/sync-protocol.md`), and a MAC over the same statement
/// keyed by the secret half of the new device's pairing code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeviceApproval {
    /// The approving device.
    pub approver_device_id: String,
    /// Ed25519 signature of the approver (base64).
    pub signature: String,
    /// Pairing MAC (base64).
    pub mac: String,
    /// Devices the approver trusts and vouches for to the new device (covered by the
    /// signature and the MAC, with the keys the approver holds for them).
    #[serde(default)]
    pub vouched: Vec<String>,
}

/// Approves a pending device: the approval and the project keys sealed to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApproveDevice {
    /// The approval.
    pub approval: DeviceApproval,
    /// Key boxes sealed to the new device.
    pub boxes: Vec<KeyBox>,
    /// The user's identity sealed to the new device (docs/sharing.md).
    #[serde(default)]
    pub identity_box: Option<crate::IdentityBox>,
}

/// A project key of one epoch, sealed to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyBox {
    /// Project.
    pub project_id: String,
    /// Epoch.
    pub epoch: u32,
    /// Device it is sealed to.
    pub device_id: String,
    /// The sealed key (base64), see docs/sync-protocol.md.
    pub sealed: String,
    /// Device that sealed it.
    pub signer_device_id: String,
    /// Ed25519 signature of the signer over the box (base64).
    pub signature: String,
}

/// Which devices hold a key box of a project's current epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyRecipients {
    /// The current epoch.
    pub epoch: u32,
    /// Devices with a box of it.
    pub device_ids: Vec<String>,
}

/// Key boxes to store (a new project's first epoch, or approving a device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KeyBoxes {
    /// The boxes.
    pub boxes: Vec<KeyBox>,
}

/// Asks the server to sign the head of a device's audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnchorRequest {
    /// The audit chain (a vault's device id).
    pub chain_id: String,
    /// Number of events in the chain.
    pub seq: u64,
    /// Hash of event `seq` (hex).
    pub head_hash: String,
}

/// Parameters of an anchor listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AnchorsQuery {
    /// The audit chain (a device id, or the tenant id for the tenant's own chain).
    pub chain_id: String,
}

/// The answer to an anchor request: the device chain's checkpoint and one of the tenant's own
/// audit chain at the same moment, both signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnchorReceipt {
    /// The device chain.
    pub device: Anchor,
    /// The tenant's chain (`chain_id` = `tenant`).
    pub server: Anchor,
}

/// A signed checkpoint: the server saw `chain_id` at `seq` with `head_hash` at `signed_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Anchor {
    /// Tenant.
    pub tenant_id: String,
    /// The audit chain.
    pub chain_id: String,
    /// Events covered.
    pub seq: u64,
    /// Head hash (hex).
    pub head_hash: String,
    /// When the server signed (RFC 3339).
    pub signed_at: String,
    /// The server's Ed25519 public key (base64).
    pub server_key: String,
    /// Ed25519 signature over the canonical text of the fields above (base64).
    pub signature: String,
}

impl Anchor {
    /// The exact bytes the server signs: `"labvault/anchor/v1" || f(tenant_id) || f(signed_at)
    /// || checkpoint`, with `f(s)` = u32 big-endian length || UTF-8 bytes and `checkpoint` =
    /// the audit chain's [`labvault_governance::audit::Checkpoint::signing_bytes`] of
    /// (`chain_id`, `seq`, `head_hash`). `None` when `head_hash` is not 64 hex characters.
    pub fn signed_bytes(&self) -> Option<Vec<u8>> {
        let mut head = [0u8; 32];
        hex_decode(&self.head_hash, &mut head)?;
        let cp = labvault_governance::audit::Checkpoint {
            device_id: self.chain_id.clone(),
            seq: self.seq,
            head_hash: head,
        };
        let mut out = b"labvault/anchor/v1".to_vec();
        for f in [&self.tenant_id, &self.signed_at] {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f.as_bytes());
        }
        out.extend_from_slice(&cp.signing_bytes());
        Some(out)
    }
}

fn hex_decode(s: &str, out: &mut [u8; 32]) -> Option<()> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(())
}
