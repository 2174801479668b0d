//! File sync: devices and key boxes, the change feed of each project, blobs (small ones whole
//! or in packs, large ones in resumable parts), and audit anchors.
//!
//! Every call but device registration names the calling device (`x-labvault-device`), which
//! must be an approved device of the caller; API keys cannot sync. Roles come from the
//! project RBAC: Viewer reads (feed, snapshot, blobs, key boxes), Editor writes (commits,
//! blobs, uploads). Nothing here can read what it stores: payloads and blobs are sealed by
//! the devices (docs/sync-protocol.md).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures_util::StreamExt;
use labvault_governance::audit::actions;
use labvault_wire::*;
use sha2::{Digest, Sha256};

use crate::app::{check_id, check_text, clean, AppState, AuditedBy, Principal, ReqMeta};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::store::blobs::{BlobError, ByteStream, PutOutcome};
use crate::store::sync::{
    plan_quota, AnchorRow, Committer, DeviceRow, KeyBoxRow, MemberAccess, NewBlob, OpRow, PartRow,
    UploadRow,
};
use crate::store::StoreError;

/// Most ops in one commit, blob ids in one request, blobs in one pack.
const MAX_OPS: usize = 1000;
const MAX_IDS: usize = 1000;
const MAX_PACK_BLOBS: usize = 4096;
/// Largest sealed payload of one op (base64 characters).
const MAX_PAYLOAD: usize = 1 << 20;
/// Largest manifest of a pack (bytes of JSON).
const MAX_MANIFEST: usize = 1 << 20;
/// Longest long poll (s).
const MAX_WAIT: u32 = 25;

// ------------------------------------------------------------------ helpers

fn blob_err(e: BlobError) -> ApiError {
    match e {
        BlobError::NotFound => ApiError::not_found("blob"),
        BlobError::TooLarge(n) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("more than the {n} bytes announced or allowed"),
        ),
        BlobError::DigestMismatch => ApiError::new(
            ErrorCode::DigestMismatch,
            "the bytes received do not have the announced SHA-256",
        ),
        BlobError::Io(e) => ApiError::internal(format!("blob store: {e}")),
    }
}

/// A blob id: 32 lowercase hex characters (the device's random file id).
fn check_blob_id(id: &str) -> ApiResult<()> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "blob id {:?} is not 32 lowercase hex characters",
            clean(id)
        )))
    }
}

fn check_sha_hex(what: &str, s: &str) -> ApiResult<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() == 64
        && hex::decode_to_slice(s, &mut out).is_ok()
        && s.bytes().all(|b| !b.is_ascii_uppercase())
    {
        Ok(out)
    } else {
        Err(ApiError::invalid(format!(
            "{what} must be 64 lowercase hex characters"
        )))
    }
}

pub(super) fn check_key_b64(what: &str, s: &str) -> ApiResult<()> {
    match B64.decode(s) {
        Ok(b) if b.len() == 32 => Ok(()),
        _ => Err(ApiError::invalid(format!(
            "{what} must be 32 bytes in base64"
        ))),
    }
}

fn object_key(tenant: &str, project: &str, object: &str) -> String {
    format!("{tenant}/{project}/{object}")
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(
        body.into_data_stream()
            .map(|r| r.map_err(std::io::Error::other)),
    )
}

/// The approved device of the caller named in `x-labvault-device` (a user session, not an
/// API key).
pub(super) async fn calling_device(
    st: &AppState,
    p: &Principal,
    headers: &HeaderMap,
) -> ApiResult<DeviceRow> {
    p.require_user()?;
    let id = headers
        .get(DEVICE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DeviceNotApproved,
                format!("sync calls name the device in the {DEVICE_HEADER} header"),
            )
        })?;
    let not_approved = || {
        ApiError::new(
            ErrorCode::DeviceNotApproved,
            "this device is not approved for sync: approve it from another device of yours (`labvault device approve CODE`)",
        )
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_approved());
    }
    let d = match st.sync.device(&p.tenant_id, id).await {
        Ok(d) => d,
        Err(StoreError::NotFound(_)) => return Err(not_approved()),
        Err(e) => return Err(e.into()),
    };
    if d.user_id != p.user_id || d.state != DeviceState::Approved {
        return Err(not_approved());
    }
    if st.device_seen_due(&d.device_id) {
        st.sync
            .touch_device(&p.tenant_id, &d.device_id, st.now())
            .await?;
    }
    Ok(d)
}

/// The project must exist in the caller's tenant and the caller hold `min` on it: for a
/// shared project, as its membership log records (docs/sharing.md); otherwise by the
/// tenant's roles.
pub(super) async fn project_access(
    st: &AppState,
    p: &Principal,
    project: &str,
    min: Role,
) -> ApiResult<()> {
    check_id("project", project)?;
    st.store.get_project(&p.tenant_id, project).await?;
    let access = st
        .sync
        .member_access(&p.tenant_id, project, &p.user_id)
        .await?;
    if access == MemberAccess::NotShared {
        p.require_project(st, project, min).await?;
    }
    super::sharing::check_member(access, min)
}

/// Refuses when `more` bytes would take the tenant past its plan's quota.
async fn check_quota(st: &AppState, tenant: &str, more: u64) -> ApiResult<()> {
    let t = st.store.get_tenant(tenant).await?;
    if let Some(q) = plan_quota(t.plan) {
        let used = st.sync.tenant_usage(tenant).await?;
        if used.saturating_add(more) > q {
            return Err(ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "the {} plan holds {} GiB; {used} bytes are used and {more} more would exceed it",
                    t.plan.as_str(),
                    q >> 30
                ),
            ));
        }
    }
    Ok(())
}

fn device(d: DeviceRow) -> ApiResult<Device> {
    let approval = match d.approval {
        Some(a) => Some(serde_json::from_str(&a).map_err(ApiError::internal)?),
        None => None,
    };
    Ok(Device {
        device_id: d.device_id,
        user_id: d.user_id,
        name: d.name,
        x25519: d.x25519,
        ed25519: d.ed25519,
        state: d.state,
        created_at: rfc3339(d.created_at),
        approved_at: d.approved_at.map(rfc3339),
        last_seen_at: d.last_seen_at.map(rfc3339),
        approval,
    })
}

fn change(o: OpRow) -> Change {
    Change {
        seq: o.seq,
        op_id: o.op_id,
        item_id: o.item_id,
        rev: o.rev,
        epoch: o.epoch,
        device_id: o.device_id,
        user_id: o.user_id,
        payload: o.payload,
        blobs: o.blobs,
        tombstone: o.tombstone,
        hold: o.hold,
        compacted: o.compacted,
        committed_at: rfc3339(o.committed_at),
    }
}

fn key_box(b: KeyBoxRow) -> KeyBox {
    KeyBox {
        project_id: b.project_id,
        epoch: b.epoch,
        device_id: b.device_id,
        sealed: b.sealed,
        signer_device_id: b.signer_device_id,
        signature: b.signature,
    }
}

/// Checks key boxes a device stores: for this project (or any project the caller can read),
/// signed by the calling device, sealed to an approved (or, when approving, the named
/// pending) device of the caller's own user.
async fn check_boxes(
    st: &AppState,
    p: &Principal,
    caller: &DeviceRow,
    boxes: &[KeyBox],
    pending: Option<&str>,
) -> ApiResult<Vec<KeyBoxRow>> {
    if boxes.len() > 10_000 {
        return Err(ApiError::invalid("at most 10000 key boxes at once"));
    }
    let mut out = Vec::with_capacity(boxes.len());
    for b in boxes {
        project_access(st, p, &b.project_id, Role::Viewer).await?;
        if b.signer_device_id != caller.device_id {
            return Err(ApiError::invalid(
                "key boxes must be signed by the calling device",
            ));
        }
        if b.epoch == 0 || b.sealed.len() > 1024 || b.signature.len() > 128 {
            return Err(ApiError::invalid("malformed key box"));
        }
        if B64.decode(&b.sealed).is_err() || B64.decode(&b.signature).map(|s| s.len()) != Ok(64) {
            return Err(ApiError::invalid(
                "key box fields must be base64 (signature: 64 bytes)",
            ));
        }
        if pending != Some(b.device_id.as_str()) {
            let d = match st.sync.device(&p.tenant_id, &b.device_id).await {
                Ok(d) => d,
                Err(StoreError::NotFound(_)) => return Err(ApiError::not_found("device")),
                Err(e) => return Err(e.into()),
            };
            if d.user_id != p.user_id || d.state != DeviceState::Approved {
                return Err(ApiError::forbidden(
                    "key boxes can only be sealed to your own approved devices",
                ));
            }
        }
        out.push(KeyBoxRow {
            project_id: b.project_id.clone(),
            epoch: b.epoch,
            device_id: b.device_id.clone(),
            sealed: b.sealed.clone(),
            signer_device_id: b.signer_device_id.clone(),
            signature: b.signature.clone(),
        });
    }
    Ok(out)
}

// ------------------------------------------------------------------ devices

/// Registers this device's public keys (a user's first device is approved at once; any
/// other waits for approval from one of the user's approved devices). `201` when new,
/// `200` when already registered with the same keys.
#[utoipa::path(post, path = "/v1/me/devices", tag = "sync", request_body = DeviceRegistration,
    security(("bearer" = [])),
    responses((status = 201, body = Device), (status = 200, body = Device), (status = "4XX", body = ErrorBody)))]
pub async fn register_device(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<DeviceRegistration>,
) -> ApiResult<(StatusCode, Json<Device>)> {
    st.audited(
        &p,
        &meta,
        actions::DEVICE_REGISTER,
        format!("device/{}", clean(&req.device_id)),
        AuditedBy::Store,
        async |draft| {
            p.require_user()?;
            if uuid::Uuid::parse_str(&req.device_id).is_err() {
                return Err(ApiError::invalid("device_id must be a UUID"));
            }
            check_text("name", &req.name, 128)?;
            check_key_b64("x25519", &req.x25519)?;
            check_key_b64("ed25519", &req.ed25519)?;
            let now = st.now();
            let row = DeviceRow {
                tenant_id: p.tenant_id.clone(),
                device_id: req.device_id.clone(),
                user_id: p.user_id.clone(),
                name: req.name.clone(),
                x25519: req.x25519.clone(),
                ed25519: req.ed25519.clone(),
                state: DeviceState::Pending,
                created_at: now,
                approved_at: None,
                approval: None,
                last_seen_at: None,
            };
            let d = st.sync.register_device(row, draft.clone()).await?;
            let status = if d.created_at == now && d.approval.is_none() && d.last_seen_at.is_none()
            {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(device(d)?)))
        },
    )
    .await
}

/// The caller's devices (any state).
#[utoipa::path(get, path = "/v1/me/devices", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = [Device]), (status = "4XX", body = ErrorBody)))]
pub async fn list_devices(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<Vec<Device>>> {
    st.audited(
        &p,
        &meta,
        actions::DEVICE_LIST,
        "devices".into(),
        AuditedBy::Handler,
        async |_| {
            p.require_user()?;
            let rows = st.sync.user_devices(&p.tenant_id, &p.user_id).await?;
            Ok(Json(
                rows.into_iter().map(device).collect::<ApiResult<_>>()?,
            ))
        },
    )
    .await
}

/// Approves a pending device of the caller from one of the caller's approved devices, with
/// the project keys sealed to it.
#[utoipa::path(post, path = "/v1/me/devices/{device_id}/approve", tag = "sync",
    request_body = ApproveDevice, params(("device_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Device), (status = "4XX", body = ErrorBody)))]
pub async fn approve_device(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    Json(req): Json<ApproveDevice>,
) -> ApiResult<Json<Device>> {
    st.audited(
        &p,
        &meta,
        actions::DEVICE_APPROVE,
        format!("device/{}", clean(&device_id)),
        AuditedBy::Store,
        async |draft| {
            let caller = calling_device(&st, &p, &headers).await?;
            check_id("device", &device_id)?;
            if req.approval.approver_device_id != caller.device_id {
                return Err(ApiError::invalid(
                    "the approval must name the calling device",
                ));
            }
            if B64.decode(&req.approval.signature).map(|s| s.len()) != Ok(64)
                || B64.decode(&req.approval.mac).map(|s| s.len()) != Ok(32)
            {
                return Err(ApiError::invalid(
                    "approval signature (64 bytes) and mac (32 bytes) must be base64",
                ));
            }
            if req.boxes.iter().any(|b| b.device_id != device_id) {
                return Err(ApiError::invalid(
                    "key boxes must be sealed to the approved device",
                ));
            }
            let boxes = check_boxes(&st, &p, &caller, &req.boxes, Some(&device_id)).await?;
            let identity_box = match &req.identity_box {
                Some(b) if b.device_id != device_id => {
                    return Err(ApiError::invalid(
                        "the identity box must be sealed to the approved device",
                    ))
                }
                Some(b) => {
                    super::sharing::check_identity_boxes(
                        &st,
                        &p,
                        &caller.device_id,
                        std::slice::from_ref(b),
                        Some(&device_id),
                    )
                    .await?
                }
                None => Vec::new(),
            };
            let approval = serde_json::to_string(&req.approval).map_err(ApiError::internal)?;
            let d = st
                .sync
                .approve_device(
                    &p.tenant_id,
                    &p.user_id,
                    &device_id,
                    approval,
                    boxes,
                    st.now(),
                    draft.clone(),
                )
                .await?;
            if !identity_box.is_empty() {
                let mut ev = draft.clone();
                ev.action = actions::IDENTITY_BOXES.into();
                st.sync
                    .put_identity_boxes(&p.tenant_id, &p.user_id, identity_box, ev)
                    .await?;
            }
            Ok(Json(device(d)?))
        },
    )
    .await
}

/// Revokes a device of the caller (from an approved device; a device may revoke itself).
/// Its key boxes are deleted and it is refused from then on.
#[utoipa::path(delete, path = "/v1/me/devices/{device_id}", tag = "sync",
    params(("device_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn revoke_device(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(device_id): Path<String>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::DEVICE_REVOKE,
        format!("device/{}", clean(&device_id)),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            check_id("device", &device_id)?;
            st.sync
                .revoke_device(
                    &p.tenant_id,
                    &p.user_id,
                    &device_id,
                    st.now(),
                    draft.clone(),
                )
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

// ------------------------------------------------------------------ key boxes

/// The key boxes of a project sealed to the calling device (every epoch).
#[utoipa::path(get, path = "/v1/projects/{project_id}/keyring", tag = "sync",
    params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = KeyBoxes), (status = "4XX", body = ErrorBody)))]
pub async fn get_keyring(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult<Json<KeyBoxes>> {
    st.audited(
        &p,
        &meta,
        actions::KEYRING_VIEW,
        format!("project/{}/keyring", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            let d = calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            let boxes = st
                .sync
                .key_boxes(&p.tenant_id, &project_id, &d.device_id)
                .await?;
            Ok(Json(KeyBoxes {
                boxes: boxes.into_iter().map(key_box).collect(),
            }))
        },
    )
    .await
}

/// Stores key boxes of a project (sealed by the calling device to the caller's own devices).
#[utoipa::path(put, path = "/v1/projects/{project_id}/keyring", tag = "sync",
    request_body = KeyBoxes, params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn put_keyring(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Json(req): Json<KeyBoxes>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::KEYRING_CHANGE,
        format!("project/{}/keyring", clean(&project_id)),
        AuditedBy::Store,
        async |draft| {
            let d = calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            if req.boxes.iter().any(|b| b.project_id != project_id) {
                return Err(ApiError::invalid("key boxes must be for this project"));
            }
            let feed = st.sync.feed(&p.tenant_id, &project_id).await?;
            if req.boxes.iter().any(|b| b.epoch > feed.epoch) {
                return Err(ApiError::invalid("key boxes of a future epoch"));
            }
            let rows = check_boxes(&st, &p, &d, &req.boxes, None).await?;
            st.sync
                .put_key_boxes(&p.tenant_id, rows, st.now(), draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// Which devices hold a key box of the project's current epoch.
#[utoipa::path(get, path = "/v1/projects/{project_id}/keyring/recipients", tag = "sync",
    params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = KeyRecipients), (status = "4XX", body = ErrorBody)))]
pub async fn key_recipients(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult<Json<KeyRecipients>> {
    st.audited(
        &p,
        &meta,
        actions::KEYRING_VIEW,
        format!("project/{}/keyring/recipients", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            let feed = st.sync.feed(&p.tenant_id, &project_id).await?;
            let device_ids = st
                .sync
                .key_recipients(&p.tenant_id, &project_id, feed.epoch)
                .await?;
            Ok(Json(KeyRecipients {
                epoch: feed.epoch,
                device_ids,
            }))
        },
    )
    .await
}

// ------------------------------------------------------------------ feed

fn check_op(op: &SyncOp) -> Result<(), String> {
    if uuid::Uuid::parse_str(&op.op_id).is_err() {
        return Err("op_id must be a UUID".into());
    }
    if uuid::Uuid::parse_str(&op.item_id).is_err() {
        return Err("item_id must be a UUID".into());
    }
    if op.payload.is_empty() || op.payload.len() > MAX_PAYLOAD || B64.decode(&op.payload).is_err() {
        return Err(format!(
            "payload must be base64 of at most {MAX_PAYLOAD} characters"
        ));
    }
    if op.blobs.len() > 100_000 {
        return Err("too many blobs in one op".into());
    }
    for b in &op.blobs {
        check_blob_id(b).map_err(|e| e.message)?;
    }
    Ok(())
}

/// Commits ops (Editor): each op on its own, in order; see [`OpResult`].
#[utoipa::path(post, path = "/v1/projects/{project_id}/commits", tag = "sync",
    request_body = CommitRequest, params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = CommitResponse), (status = "4XX", body = ErrorBody)))]
pub async fn commit(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Json(req): Json<CommitRequest>,
) -> ApiResult<Json<CommitResponse>> {
    st.audited(
        &p,
        &meta,
        actions::FEED_COMMIT,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Store,
        async |draft| {
            let d = calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Editor).await?;
            if req.ops.is_empty() || req.ops.len() > MAX_OPS {
                return Err(ApiError::invalid(format!("1 to {MAX_OPS} ops per commit")));
            }
            // Malformed ops are refused one by one; the others go to the store in order.
            let mut refused = Vec::with_capacity(req.ops.len());
            let mut valid = Vec::with_capacity(req.ops.len());
            for op in &req.ops {
                match check_op(op) {
                    Ok(()) => {
                        refused.push(None);
                        valid.push(op.clone());
                    }
                    Err(m) => refused.push(Some(OpResult::Rejected {
                        op_id: op.op_id.chars().take(64).collect(),
                        code: ErrorCode::InvalidInput.as_str().into(),
                        message: m,
                    })),
                }
            }
            let who = Committer {
                tenant: p.tenant_id.clone(),
                project: project_id.clone(),
                device: d.device_id.clone(),
                user: p.user_id.clone(),
                now: st.now(),
            };
            let (stored, feed) = if valid.is_empty() {
                // No store write to carry the event: recorded here.
                let mut ev = draft.clone();
                ev.detail = format!("rejected={}", req.ops.len());
                st.store.append_audit(&p.tenant_id, ev).await?;
                (Vec::new(), st.sync.feed(&p.tenant_id, &project_id).await?)
            } else {
                st.sync.commit(who, valid, draft.clone()).await?
            };
            let mut stored = stored.into_iter();
            let results = refused
                .into_iter()
                .map(|r| r.unwrap_or_else(|| stored.next().expect("one result per valid op")))
                .collect();
            st.feeds.publish(&p.tenant_id, &project_id, feed.head_seq);
            Ok(Json(CommitResponse {
                results,
                head_seq: feed.head_seq,
            }))
        },
    )
    .await
}

/// Ops after a cursor, in `seq` order (Viewer); with `wait`, waits up to that many seconds
/// (at most 25) for one when there is none yet.
#[utoipa::path(get, path = "/v1/projects/{project_id}/changes", tag = "sync",
    params(("project_id" = String, Path), ChangesQuery), security(("bearer" = [])),
    responses((status = 200, body = ChangesPage), (status = "4XX", body = ErrorBody)))]
pub async fn changes(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Json<ChangesPage>> {
    st.audited(
        &p,
        &meta,
        actions::FEED_READ,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            let limit = page_limit(q.limit);
            let wait = q.wait.unwrap_or(0).min(MAX_WAIT);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
            let mut rx = st.feeds.subscribe(&p.tenant_id, &project_id);
            loop {
                rx.borrow_and_update();
                let (ops, feed) = st
                    .sync
                    .changes(&p.tenant_id, &project_id, q.after, limit + 1)
                    .await?;
                let waiting = ops.is_empty() && q.after >= feed.head_seq;
                if !waiting || tokio::time::Instant::now() >= deadline {
                    let has_more = ops.len() > limit as usize;
                    let changes: Vec<Change> =
                        ops.into_iter().take(limit as usize).map(change).collect();
                    let next = changes.last().map(|c| c.seq).unwrap_or(q.after);
                    let feed = complete_feed(&st, &p, &project_id, feed).await?;
                    return Ok(Json(ChangesPage {
                        changes,
                        next,
                        has_more,
                        head_seq: feed.head_seq,
                        epoch: feed.epoch,
                        generation: feed.generation,
                    }));
                }
                let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
            }
        },
    )
    .await
}

/// Entries per feed or snapshot page: 500 unless asked, at most 1,000.
fn page_limit(asked: Option<u32>) -> u32 {
    asked.unwrap_or(500).clamp(1, 1000)
}

/// The feed's state as a page reports it; a page read without it (no generation) asks the
/// store for it.
async fn complete_feed(
    st: &AppState,
    p: &Principal,
    project_id: &str,
    feed: crate::store::sync::FeedState,
) -> ApiResult<crate::store::sync::FeedState> {
    if feed.generation.is_empty() {
        Ok(st.sync.feed(&p.tenant_id, project_id).await?)
    } else {
        Ok(feed)
    }
}

/// The latest op of every item, by item id, paged (Viewer): what a new device starts from.
#[utoipa::path(get, path = "/v1/projects/{project_id}/snapshot", tag = "sync",
    params(("project_id" = String, Path), SnapshotQuery), security(("bearer" = [])),
    responses((status = 200, body = SnapshotPage), (status = "4XX", body = ErrorBody)))]
pub async fn snapshot(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Json<SnapshotPage>> {
    st.audited(
        &p,
        &meta,
        actions::FEED_SNAPSHOT,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            let limit = page_limit(q.limit);
            let (ops, feed) = st
                .sync
                .snapshot(
                    &p.tenant_id,
                    &project_id,
                    q.after_item.as_deref(),
                    limit + 1,
                )
                .await?;
            let more = ops.len() > limit as usize;
            let items: Vec<Change> = ops.into_iter().take(limit as usize).map(change).collect();
            let next_item = if more {
                items.last().map(|c| c.item_id.clone())
            } else {
                None
            };
            let feed = complete_feed(&st, &p, &project_id, feed).await?;
            Ok(Json(SnapshotPage {
                items,
                next_item,
                head_seq: feed.head_seq,
                epoch: feed.epoch,
                generation: feed.generation,
            }))
        },
    )
    .await
}

// ------------------------------------------------------------------ blobs

fn content_digest(headers: &HeaderMap) -> ApiResult<[u8; 32]> {
    // RFC 9530: `Content-Digest: sha-256=:<base64>:`
    let v = headers
        .get("content-digest")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::invalid("a blob needs a Content-Digest: sha-256=:<base64>: header")
        })?;
    let b64 = v
        .trim()
        .strip_prefix("sha-256=:")
        .and_then(|r| r.strip_suffix(':'))
        .ok_or_else(|| ApiError::invalid("Content-Digest must be sha-256=:<base64>:"))?;
    let b = B64
        .decode(b64)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| ApiError::invalid("Content-Digest must hold a 32-byte SHA-256"))?;
    Ok(b.try_into().expect("checked length"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Stores one blob (Editor), checked against its `Content-Digest`. `201` stored, `200`
/// already held with the same bytes, `409` held with other bytes.
#[utoipa::path(put, path = "/v1/projects/{project_id}/blobs/{blob_id}", tag = "sync",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("project_id" = String, Path), ("blob_id" = String, Path)), security(("bearer" = [])),
    responses((status = 201, body = BlobInfo), (status = 200, body = BlobInfo), (status = "4XX", body = ErrorBody)))]
pub async fn put_blob(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path((project_id, blob_id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<(StatusCode, Json<BlobInfo>)> {
    st.audited(
        &p,
        &meta,
        actions::BLOB_PUT,
        format!("project/{}/blob/{}", clean(&project_id), clean(&blob_id)),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Editor).await?;
            check_blob_id(&blob_id)?;
            let sha = content_digest(&headers)?;
            let digest = format!("sha256:{}", hex::encode(sha));
            if let Some(b) = st.sync.blob(&p.tenant_id, &project_id, &blob_id).await? {
                if b.digest != digest {
                    return Err(ApiError::conflict("this blob is stored with other bytes"));
                }
                return Ok((
                    StatusCode::OK,
                    Json(BlobInfo {
                        blob_id,
                        size: b.size,
                        digest,
                    }),
                ));
            }
            let max = st.cfg.max_blob_request;
            let announced = content_length(&headers).unwrap_or(max);
            if announced > max {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("blobs over {max} bytes go through a resumable upload"),
                ));
            }
            check_quota(&st, &p.tenant_id, announced).await?;
            let key = object_key(&p.tenant_id, &project_id, &blob_id);
            let (stored, outcome) = st
                .blobs
                .put(&key, body_stream(body), max, Some(sha))
                .await
                .map_err(blob_err)?;
            if outcome == PutOutcome::Different {
                return Err(ApiError::conflict("this blob is stored with other bytes"));
            }
            let status = st
                .sync
                .record_blobs(
                    &p.tenant_id,
                    &project_id,
                    &blob_id,
                    vec![NewBlob {
                        blob_id: blob_id.clone(),
                        size: stored.size,
                        digest: digest.clone(),
                        offset: 0,
                    }],
                    st.now(),
                    draft.clone(),
                )
                .await?;
            let code = match status.first() {
                Some(BlobPutStatus::Created) => StatusCode::CREATED,
                Some(BlobPutStatus::Exists) => StatusCode::OK,
                _ => return Err(ApiError::conflict("this blob is stored with other bytes")),
            };
            Ok((
                code,
                Json(BlobInfo {
                    blob_id,
                    size: stored.size,
                    digest,
                }),
            ))
        },
    )
    .await
}

/// `bytes=START-END` or `bytes=START-` within `size`: (offset, length).
fn parse_range(v: &str, size: u64) -> ApiResult<(u64, u64)> {
    let bad = || {
        ApiError::invalid(format!(
            "unsupported or unsatisfiable Range {:?} (blob of {size} bytes)",
            clean(v)
        ))
    };
    let spec = v.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = if b.trim().is_empty() {
        size.checked_sub(1).ok_or_else(bad)?
    } else {
        b.trim()
            .parse::<u64>()
            .map_err(|_| bad())?
            .min(size.saturating_sub(1))
    };
    if start >= size || end < start {
        return Err(bad());
    }
    Ok((start, end - start + 1))
}

/// A blob's bytes (Viewer), whole or one `Range`; `HEAD` answers its size only.
#[utoipa::path(get, path = "/v1/projects/{project_id}/blobs/{blob_id}", tag = "sync",
    params(("project_id" = String, Path), ("blob_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, content_type = "application/octet-stream", body = Vec<u8>), (status = "4XX", body = ErrorBody)))]
pub async fn get_blob(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    method: Method,
    headers: HeaderMap,
    Path((project_id, blob_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    st.audited(
        &p,
        &meta,
        actions::BLOB_GET,
        format!("project/{}/blob/{}", clean(&project_id), clean(&blob_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            check_blob_id(&blob_id)?;
            let b = st
                .sync
                .blob(&p.tenant_id, &project_id, &blob_id)
                .await?
                .ok_or_else(|| ApiError::not_found("blob"))?;
            let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
            let (off, len, partial) = match range {
                Some(r) => {
                    let (o, l) = parse_range(r, b.size)?;
                    (o, l, true)
                }
                None => (0, b.size, false),
            };
            let mut resp = if method == Method::HEAD {
                Response::new(Body::empty())
            } else {
                let (_, s) = st
                    .blobs
                    .get(
                        &object_key(&p.tenant_id, &project_id, &b.object),
                        b.offset + off,
                        Some(len),
                    )
                    .await
                    .map_err(blob_err)?;
                Response::new(Body::from_stream(s))
            };
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if let Ok(v) = HeaderValue::from_str(&b.digest) {
                h.insert("x-labvault-digest", v);
            }
            if partial {
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                let cr = format!("bytes {}-{}/{}", off, off + len - 1, b.size);
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&cr).map_err(ApiError::internal)?,
                );
            }
            Ok(resp)
        },
    )
    .await
}

/// Which of these blobs the server does not hold (Viewer).
#[utoipa::path(post, path = "/v1/projects/{project_id}/missing-blobs", tag = "sync",
    request_body = BlobIds, params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = BlobIds), (status = "4XX", body = ErrorBody)))]
pub async fn missing_blobs(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Json(req): Json<BlobIds>,
) -> ApiResult<Json<BlobIds>> {
    st.audited(
        &p,
        &meta,
        actions::BLOB_MISSING,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            if req.ids.len() > MAX_IDS {
                return Err(ApiError::invalid(format!("at most {MAX_IDS} ids")));
            }
            for id in &req.ids {
                check_blob_id(id)?;
            }
            let ids = st
                .sync
                .missing_blobs(&p.tenant_id, &project_id, req.ids.clone())
                .await?;
            Ok(Json(BlobIds { ids }))
        },
    )
    .await
}

/// What went wrong inside a pack body, found while streaming it.
#[derive(Debug, Clone)]
enum PackFault {
    Digest(String),
    Length,
}

/// Reads the framed head of a body: `u32 BE length || manifest JSON`; returns the manifest
/// and the rest of the stream (with the bytes already read past the manifest in front).
async fn read_manifest(body: Body) -> ApiResult<(PackManifest, ByteStream)> {
    let mut s = body_stream(body);
    let mut head: Vec<u8> = Vec::new();
    let mut need = 4usize;
    loop {
        if head.len() >= 4 {
            let n = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
            if n == 0 || n > MAX_MANIFEST {
                return Err(ApiError::invalid(format!(
                    "pack manifest of {n} bytes (at most {MAX_MANIFEST})"
                )));
            }
            need = 4 + n;
        }
        if head.len() >= need && need > 4 {
            break;
        }
        match s.next().await {
            Some(Ok(c)) => head.extend_from_slice(&c),
            Some(Err(e)) => return Err(ApiError::invalid(format!("request body broke off: {e}"))),
            None => {
                return Err(ApiError::invalid(
                    "request body ends inside the pack manifest",
                ))
            }
        }
    }
    let manifest: PackManifest = serde_json::from_slice(&head[4..need])
        .map_err(|e| ApiError::invalid(format!("pack manifest: {e}")))?;
    let rest = Bytes::copy_from_slice(&head[need..]);
    let first = futures_util::stream::iter(if rest.is_empty() {
        vec![]
    } else {
        vec![Ok(rest)]
    });
    Ok((manifest, Box::pin(first.chain(s))))
}

/// Stores small blobs sent together (Editor): a framed body (manifest, then the blobs' bytes
/// back to back), kept as one pack object; each blob is checked against its SHA-256, and one
/// that does not match refuses the whole pack.
#[utoipa::path(post, path = "/v1/projects/{project_id}/packs", tag = "sync",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = PackResult), (status = "4XX", body = ErrorBody)))]
pub async fn put_pack(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    body: Body,
) -> ApiResult<Json<PackResult>> {
    st.audited(
        &p,
        &meta,
        actions::BLOB_PACK,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Editor).await?;
            let (manifest, rest) = read_manifest(body).await?;
            let n = manifest.blobs.len();
            if n == 0 || n > MAX_PACK_BLOBS {
                return Err(ApiError::invalid(format!("1 to {MAX_PACK_BLOBS} blobs per pack")));
            }
            let mut seen = std::collections::HashSet::new();
            let mut expected = Vec::with_capacity(n);
            let mut total = 0u64;
            for e in &manifest.blobs {
                check_blob_id(&e.blob_id)?;
                if !seen.insert(e.blob_id.clone()) {
                    return Err(ApiError::invalid("a blob appears twice in the pack"));
                }
                expected.push((e.blob_id.clone(), e.size, check_sha_hex("sha256", &e.sha256)?));
                total = total.saturating_add(e.size);
            }
            if total > st.cfg.max_blob_request {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("a pack holds at most {} bytes", st.cfg.max_blob_request),
                ));
            }
            check_quota(&st, &p.tenant_id, total).await?;
            // Each blob's bytes are hashed as they stream past; a mismatch fails the stream
            // (the store then keeps nothing) and says which blob.
            let fault: Arc<Mutex<Option<PackFault>>> = Arc::default();
            let verifier = PackVerifier {
                expected: expected.clone(),
                idx: 0,
                filled: 0,
                hash: Sha256::new(),
                fault: fault.clone(),
            };
            let stream = verifier.wrap(rest);
            let object = uuid::Uuid::new_v4().simple().to_string();
            let put = st
                .blobs
                .put(&object_key(&p.tenant_id, &project_id, &object), stream, total, None)
                .await;
            if let Some(f) = fault.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(match f {
                    PackFault::Digest(id) => ApiError::new(
                        ErrorCode::DigestMismatch,
                        format!("blob {id} of the pack does not have its announced SHA-256; nothing of the pack was stored"),
                    ),
                    PackFault::Length => ApiError::invalid("the pack body does not have the length its manifest announces"),
                });
            }
            put.map_err(blob_err)?;
            let mut offset = 0u64;
            let blobs = expected
                .iter()
                .map(|(id, size, sha)| {
                    let b = NewBlob {
                        blob_id: id.clone(),
                        size: *size,
                        digest: format!("sha256:{}", hex::encode(sha)),
                        offset,
                    };
                    offset += size;
                    b
                })
                .collect();
            let mut draft = draft.clone();
            draft.detail = format!("object={object} blobs={n} bytes={total}");
            let statuses = st
                .sync
                .record_blobs(&p.tenant_id, &project_id, &object, blobs, st.now(), draft)
                .await?;
            Ok(Json(PackResult {
                results: manifest
                    .blobs
                    .iter()
                    .zip(statuses)
                    .map(|(e, status)| BlobPutResult {
                        blob_id: e.blob_id.clone(),
                        status,
                    })
                    .collect(),
            }))
        },
    )
    .await
}

struct PackVerifier {
    expected: Vec<(String, u64, [u8; 32])>,
    idx: usize,
    filled: u64,
    hash: Sha256,
    fault: Arc<Mutex<Option<PackFault>>>,
}

impl PackVerifier {
    fn fail(&self, f: PackFault) -> std::io::Error {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        std::io::Error::other("pack refused")
    }

    /// Feeds `chunk` through the per-blob hashes.
    fn feed(&mut self, mut chunk: &[u8]) -> Result<(), std::io::Error> {
        while !chunk.is_empty() {
            // Zero-length blobs complete without bytes.
            self.close_empty()?;
            let Some((_, size, _)) = self.expected.get(self.idx) else {
                return Err(self.fail(PackFault::Length));
            };
            let take = ((size - self.filled) as usize).min(chunk.len());
            self.hash.update(&chunk[..take]);
            self.filled += take as u64;
            chunk = &chunk[take..];
            if self.filled == *size {
                self.finish_one()?;
            }
        }
        Ok(())
    }

    fn finish_one(&mut self) -> Result<(), std::io::Error> {
        let (id, _, sha) = self.expected[self.idx].clone();
        let got: [u8; 32] = std::mem::take(&mut self.hash).finalize().into();
        if got != sha {
            return Err(self.fail(PackFault::Digest(id)));
        }
        self.idx += 1;
        self.filled = 0;
        Ok(())
    }

    fn close_empty(&mut self) -> Result<(), std::io::Error> {
        while self
            .expected
            .get(self.idx)
            .is_some_and(|(_, size, _)| *size == 0 && self.filled == 0)
        {
            self.finish_one()?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), std::io::Error> {
        self.close_empty()?;
        if self.idx != self.expected.len() {
            return Err(self.fail(PackFault::Length));
        }
        Ok(())
    }

    /// The stream `inner` with every chunk fed through the checks; the first fault ends it
    /// with an error (so the store keeps nothing).
    fn wrap(self, inner: ByteStream) -> ByteStream {
        Box::pin(futures_util::stream::unfold(
            (inner, self, false),
            |(mut inner, mut v, done)| async move {
                if done {
                    return None;
                }
                match inner.next().await {
                    Some(Ok(chunk)) => match v.feed(&chunk) {
                        Ok(()) => Some((Ok(chunk), (inner, v, false))),
                        Err(e) => Some((Err(e), (inner, v, true))),
                    },
                    Some(Err(e)) => Some((Err(e), (inner, v, true))),
                    None => match v.end() {
                        Ok(()) => None,
                        Err(e) => Some((Err(e), (inner, v, true))),
                    },
                }
            },
        ))
    }
}

/// Several blobs in one answer (Viewer): a framed body, manifest (the blobs found, in the
/// order asked, while they fit in one request's size) then their bytes. Blobs the server
/// does not hold are left out; ask again for the ones not returned.
#[utoipa::path(post, path = "/v1/projects/{project_id}/blob-batches", tag = "sync",
    request_body = BlobIds, params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = "4XX", body = ErrorBody)))]
pub async fn blob_batch(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Json(req): Json<BlobIds>,
) -> ApiResult<Response> {
    st.audited(
        &p,
        &meta,
        actions::BLOB_BATCH,
        format!("project/{}", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Viewer).await?;
            if req.ids.is_empty() || req.ids.len() > MAX_IDS {
                return Err(ApiError::invalid(format!("1 to {MAX_IDS} ids")));
            }
            let mut entries = Vec::new();
            let mut ranges = Vec::new();
            let mut total = 0u64;
            for id in &req.ids {
                check_blob_id(id)?;
                let Some(b) = st.sync.blob(&p.tenant_id, &project_id, id).await? else {
                    continue;
                };
                if !entries.is_empty() && total + b.size > st.cfg.max_blob_request {
                    break;
                }
                total += b.size;
                entries.push(PackEntry {
                    blob_id: b.blob_id.clone(),
                    size: b.size,
                    sha256: b.digest.strip_prefix("sha256:").unwrap_or("").to_string(),
                });
                ranges.push((
                    object_key(&p.tenant_id, &project_id, &b.object),
                    b.offset,
                    b.size,
                ));
            }
            let manifest =
                serde_json::to_vec(&PackManifest { blobs: entries }).map_err(ApiError::internal)?;
            let mut head = (manifest.len() as u32).to_be_bytes().to_vec();
            head.extend_from_slice(&manifest);
            let blobs = st.blobs.clone();
            let bytes = futures_util::stream::iter(ranges)
                .then(move |(key, off, len)| {
                    let blobs = blobs.clone();
                    async move {
                        match blobs.get(&key, off, Some(len)).await {
                            Ok((_, s)) => s,
                            Err(e) => Box::pin(futures_util::stream::once(async move {
                                Err(std::io::Error::other(e.to_string()))
                            })) as ByteStream,
                        }
                    }
                })
                .flatten();
            let body =
                futures_util::stream::once(
                    async move { Ok::<_, std::io::Error>(Bytes::from(head)) },
                )
                .chain(bytes);
            let mut resp = Response::new(Body::from_stream(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(resp)
        },
    )
    .await
}

// ------------------------------------------------------------------ resumable uploads

fn upload_status(u: &UploadRow, parts: Vec<PartRow>, complete: bool) -> UploadStatus {
    UploadStatus {
        upload_id: u.upload_id.clone(),
        blob_id: u.blob_id.clone(),
        size: u.size,
        part_size: u.part_size,
        parts: parts
            .into_iter()
            .map(|p| PartInfo {
                n: p.n,
                size: p.size,
                sha256: p.sha256,
            })
            .collect(),
        expires_at: rfc3339(u.expires_at),
        complete,
    }
}

/// Starts a resumable upload of a large blob (Editor), or resumes the open one of the same
/// blob: the answer lists the parts already stored. `complete` when the blob is already held.
#[utoipa::path(post, path = "/v1/projects/{project_id}/uploads", tag = "sync",
    request_body = UploadRequest, params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UploadStatus), (status = "4XX", body = ErrorBody)))]
pub async fn create_upload(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Json(req): Json<UploadRequest>,
) -> ApiResult<Json<UploadStatus>> {
    st.audited(
        &p,
        &meta,
        actions::UPLOAD_CREATE,
        format!(
            "project/{}/blob/{}",
            clean(&project_id),
            clean(&req.blob_id)
        ),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            project_access(&st, &p, &project_id, Role::Editor).await?;
            check_blob_id(&req.blob_id)?;
            let (lo, hi) = st.cfg.part_size_range;
            if req.part_size < lo || req.part_size > hi {
                return Err(ApiError::invalid(format!(
                    "part_size must be {lo} to {hi} bytes"
                )));
            }
            if req.size == 0 || req.size.div_ceil(req.part_size) > 100_000 {
                return Err(ApiError::invalid("size must be 1 byte to 100000 parts"));
            }
            let now = st.now();
            let row = UploadRow {
                upload_id: uuid::Uuid::new_v4().to_string(),
                tenant_id: p.tenant_id.clone(),
                project_id: project_id.clone(),
                blob_id: req.blob_id.clone(),
                size: req.size,
                part_size: req.part_size,
                created_at: now,
                expires_at: now + st.cfg.upload_ttl_secs,
            };
            if st
                .sync
                .blob(&p.tenant_id, &project_id, &req.blob_id)
                .await?
                .is_some()
            {
                // Already held: nothing to send, and no store write to carry the event.
                let mut ev = draft.clone();
                ev.detail = "already stored".into();
                st.store.append_audit(&p.tenant_id, ev).await?;
                return Ok(Json(upload_status(&row, Vec::new(), true)));
            }
            check_quota(&st, &p.tenant_id, req.size).await?;
            let u = st.sync.open_upload(row, draft.clone()).await?;
            st.blobs
                .create_upload(&u.upload_id, u.size)
                .await
                .map_err(blob_err)?;
            let parts = st.sync.parts(&u.upload_id).await?;
            Ok(Json(upload_status(&u, parts, false)))
        },
    )
    .await
}

/// The upload of the caller's tenant, with Editor on its project.
async fn upload_of(st: &AppState, p: &Principal, upload_id: &str) -> ApiResult<UploadRow> {
    check_id("upload", upload_id)?;
    let u = st.sync.upload(&p.tenant_id, upload_id).await?;
    project_access(st, p, &u.project_id, Role::Editor).await?;
    Ok(u)
}

/// A resumable upload and the parts the server holds (Editor).
#[utoipa::path(get, path = "/v1/uploads/{upload_id}", tag = "sync",
    params(("upload_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = UploadStatus), (status = "4XX", body = ErrorBody)))]
pub async fn get_upload(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(upload_id): Path<String>,
) -> ApiResult<Json<UploadStatus>> {
    st.audited(
        &p,
        &meta,
        actions::UPLOAD_STATUS,
        format!("upload/{}", clean(&upload_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            let u = upload_of(&st, &p, &upload_id).await?;
            let parts = st.sync.parts(&u.upload_id).await?;
            Ok(Json(upload_status(&u, parts, false)))
        },
    )
    .await
}

/// Stores part `n` (Editor): exactly `part_size` bytes (the last part: the rest), checked
/// against `x-labvault-sha256`. A part sent again replaces the earlier try.
#[utoipa::path(put, path = "/v1/uploads/{upload_id}/parts/{n}", tag = "sync",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("upload_id" = String, Path), ("n" = u32, Path)), security(("bearer" = [])),
    responses((status = 200, body = PartInfo), (status = "4XX", body = ErrorBody)))]
pub async fn put_part(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path((upload_id, n)): Path<(String, u32)>,
    body: Body,
) -> ApiResult<Json<PartInfo>> {
    st.audited(
        &p,
        &meta,
        actions::UPLOAD_PART,
        format!("upload/{}/part/{n}", clean(&upload_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            let u = upload_of(&st, &p, &upload_id).await?;
            let sha = headers
                .get(PART_SHA256_HEADER)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!("a part needs the {PART_SHA256_HEADER} header"))
                })?;
            let sha = check_sha_hex(PART_SHA256_HEADER, sha)?;
            let parts = u.size.div_ceil(u.part_size);
            if u64::from(n) >= parts {
                return Err(ApiError::invalid(format!(
                    "this upload has parts 0 to {}",
                    parts - 1
                )));
            }
            let offset = u64::from(n) * u.part_size;
            let want = u.part_size.min(u.size - offset);
            let stored = st
                .blobs
                .put_part(&u.upload_id, offset, body_stream(body), want)
                .await
                .map_err(blob_err)?;
            if stored.size != want {
                return Err(ApiError::invalid(format!(
                    "part {n} must be {want} bytes, {} arrived",
                    stored.size
                )));
            }
            if stored.sha256 != sha {
                return Err(ApiError::new(
                    ErrorCode::DigestMismatch,
                    format!("part {n} does not have the announced SHA-256; send it again"),
                ));
            }
            let part = PartRow {
                n,
                size: stored.size,
                sha256: hex::encode(sha),
            };
            st.sync
                .put_part(
                    &u.upload_id,
                    part.clone(),
                    st.now() + st.cfg.upload_ttl_secs,
                )
                .await?;
            Ok(Json(PartInfo {
                n,
                size: part.size,
                sha256: part.sha256,
            }))
        },
    )
    .await
}

/// Completes a resumable upload (Editor): every part present and matching the client's list
/// of part digests; the blob is then stored and recorded, with digest
/// `sha256-parts:<part size>:<SHA-256 of the concatenated part digests>`.
#[utoipa::path(post, path = "/v1/uploads/{upload_id}/complete", tag = "sync",
    request_body = CompleteUpload, params(("upload_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = BlobInfo), (status = "4XX", body = ErrorBody)))]
pub async fn complete_upload(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(upload_id): Path<String>,
    Json(req): Json<CompleteUpload>,
) -> ApiResult<Json<BlobInfo>> {
    st.audited(
        &p,
        &meta,
        actions::UPLOAD_COMPLETE,
        format!("upload/{}", clean(&upload_id)),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            let u = upload_of(&st, &p, &upload_id).await?;
            let parts = st.sync.parts(&u.upload_id).await?;
            let count = u.size.div_ceil(u.part_size) as usize;
            if req.parts_sha256.len() != count {
                return Err(ApiError::invalid(format!("the upload has {count} parts")));
            }
            let mut tree = Sha256::new();
            for (i, want) in req.parts_sha256.iter().enumerate() {
                let want = check_sha_hex("parts_sha256", want)?;
                let got = parts.iter().find(|x| x.n as usize == i).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::Conflict,
                        format!("part {i} has not been stored yet"),
                    )
                })?;
                if got.sha256 != hex::encode(want) {
                    return Err(ApiError::new(
                        ErrorCode::DigestMismatch,
                        format!("part {i} stored on the server has another SHA-256 than listed"),
                    ));
                }
                tree.update(want);
            }
            let digest = format!(
                "sha256-parts:{}:{}",
                u.part_size,
                hex::encode(tree.finalize())
            );
            st.blobs
                .complete_upload(
                    &u.upload_id,
                    &object_key(&u.tenant_id, &u.project_id, &u.blob_id),
                )
                .await
                .map_err(blob_err)?;
            let status = st
                .sync
                .record_blobs(
                    &u.tenant_id,
                    &u.project_id,
                    &u.blob_id,
                    vec![NewBlob {
                        blob_id: u.blob_id.clone(),
                        size: u.size,
                        digest: digest.clone(),
                        offset: 0,
                    }],
                    st.now(),
                    draft.clone(),
                )
                .await?;
            st.sync.close_upload(&u.upload_id, None).await?;
            if status.first() == Some(&BlobPutStatus::Conflict) {
                return Err(ApiError::conflict("this blob is stored with other bytes"));
            }
            Ok(Json(BlobInfo {
                blob_id: u.blob_id,
                size: u.size,
                digest,
            }))
        },
    )
    .await
}

/// Abandons a resumable upload (Editor): its parts are removed.
#[utoipa::path(delete, path = "/v1/uploads/{upload_id}", tag = "sync",
    params(("upload_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn abort_upload(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(upload_id): Path<String>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::UPLOAD_ABORT,
        format!("upload/{}", clean(&upload_id)),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            let u = upload_of(&st, &p, &upload_id).await?;
            st.blobs
                .abort_upload(&u.upload_id)
                .await
                .map_err(blob_err)?;
            st.sync
                .close_upload(&u.upload_id, Some((p.tenant_id.clone(), draft.clone())))
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

// ------------------------------------------------------------------ audit anchors

fn sign_anchor(st: &AppState, a: &mut Anchor) -> ApiResult<()> {
    use ed25519_dalek::Signer;
    let bytes = a
        .signed_bytes()
        .ok_or_else(|| ApiError::invalid("head_hash must be 64 lowercase hex characters"))?;
    a.signature = B64.encode(st.anchor_key.sign(&bytes).to_bytes());
    Ok(())
}

fn anchor_row(a: &Anchor) -> AnchorRow {
    AnchorRow {
        tenant_id: a.tenant_id.clone(),
        chain_id: a.chain_id.clone(),
        seq: a.seq,
        head_hash: a.head_hash.clone(),
        signed_at: a.signed_at.clone(),
        signature: a.signature.clone(),
    }
}

/// Signs the head of the calling device's audit chain (`chain_id` is the device id), and
/// the tenant's own chain head at the same moment; both are kept.
#[utoipa::path(post, path = "/v1/audit/anchors", tag = "sync", request_body = AnchorRequest,
    security(("bearer" = [])),
    responses((status = 200, body = AnchorReceipt), (status = "4XX", body = ErrorBody)))]
pub async fn anchor(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Json(req): Json<AnchorRequest>,
) -> ApiResult<Json<AnchorReceipt>> {
    st.audited(
        &p,
        &meta,
        actions::AUDIT_ANCHOR,
        format!("audit/chain/{}", clean(&req.chain_id)),
        AuditedBy::Store,
        async |draft| {
            let d = calling_device(&st, &p, &headers).await?;
            if req.chain_id != d.device_id {
                return Err(ApiError::forbidden(
                    "a device anchors its own audit chain only",
                ));
            }
            check_sha_hex("head_hash", &req.head_hash)?;
            let signed_at = rfc3339(st.now());
            let server_key = B64.encode(st.anchor_key.verifying_key().to_bytes());
            let mut device = Anchor {
                tenant_id: p.tenant_id.clone(),
                chain_id: req.chain_id.clone(),
                seq: req.seq,
                head_hash: req.head_hash.clone(),
                signed_at: signed_at.clone(),
                server_key: server_key.clone(),
                signature: String::new(),
            };
            sign_anchor(&st, &mut device)?;
            let (seq, head) = st.sync.audit_head(&p.tenant_id).await?;
            let mut server = Anchor {
                tenant_id: p.tenant_id.clone(),
                chain_id: p.tenant_id.clone(),
                seq,
                head_hash: head,
                signed_at,
                server_key,
                signature: String::new(),
            };
            sign_anchor(&st, &mut server)?;
            st.sync
                .put_anchors(
                    vec![anchor_row(&device), anchor_row(&server)],
                    draft.clone(),
                )
                .await?;
            Ok(Json(AnchorReceipt { device, server }))
        },
    )
    .await
}

/// The stored anchors of a chain (a device's own chain, or any chain for Admins).
#[utoipa::path(get, path = "/v1/audit/anchors", tag = "sync",
    params(("chain_id" = String, Query)), security(("bearer" = [])),
    responses((status = 200, body = [Anchor]), (status = "4XX", body = ErrorBody)))]
pub async fn list_anchors(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Query(q): Query<AnchorsQuery>,
) -> ApiResult<Json<Vec<Anchor>>> {
    st.audited(
        &p,
        &meta,
        actions::AUDIT_QUERY,
        format!("audit/chain/{}", clean(&q.chain_id)),
        AuditedBy::Handler,
        async |_| {
            let own = p.api_key.is_none()
                && st
                    .sync
                    .user_devices(&p.tenant_id, &p.user_id)
                    .await?
                    .iter()
                    .any(|d| d.device_id == q.chain_id);
            if !own {
                p.require(Role::Admin)?;
            }
            let server_key = B64.encode(st.anchor_key.verifying_key().to_bytes());
            let rows = st.sync.anchors(&p.tenant_id, &q.chain_id).await?;
            Ok(Json(
                rows.into_iter()
                    .map(|r| Anchor {
                        tenant_id: r.tenant_id,
                        chain_id: r.chain_id,
                        seq: r.seq,
                        head_hash: r.head_hash,
                        signed_at: r.signed_at,
                        server_key: server_key.clone(),
                        signature: r.signature,
                    })
                    .collect(),
            ))
        },
    )
    .await
}
