//! Shared projects: users' identity keys and identity boxes, and each project's signed,
//! hash-chained membership log with its member boxes and epoch links (docs/sharing.md).
//!
//! The server cannot open a box, but it checks everything it can without keys before an entry
//! lands: the entry parses strictly, is the next one (number and previous hash), is signed by
//! the caller's registered identity, the caller is an Owner or Admin of the project (only an
//! Owner touches an Owner; the last Owner stays), an added member's identity is the one they
//! registered, a rotation goes to exactly the next epoch with a box for every member. Adding,
//! removing and re-roling members are admin actions and need a recent MFA step-up. Clients
//! verify the whole log again themselves: these checks protect honest servers from confused
//! clients; the clients' checks protect members from a dishonest server.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use labvault_crypto::{EntryBody, IdentityPublic, LogEntry, MemberRole};
use labvault_governance::audit::actions;
use labvault_wire::*;

use crate::app::{check_id, clean, AppState, AuditedBy, Principal, ReqMeta};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::store::sync::{
    IdentityBoxRow, IdentityRow, MemberAccess, MemberBoxRow, MembershipAppend, MembershipEffect,
};
use crate::store::StoreError;

use super::sync::{calling_device, check_key_b64, project_access};

/// Most member boxes in one append (a rotation seals one per member).
const MAX_BOXES: usize = 10_000;
/// Largest signed entry (base64 characters).
const MAX_ENTRY: usize = 4096;

fn role_of(r: MemberRole) -> Role {
    match r {
        MemberRole::Owner => Role::Owner,
        MemberRole::Admin => Role::Admin,
        MemberRole::Editor => Role::Editor,
        MemberRole::Viewer => Role::Viewer,
    }
}

fn public_of(row: &IdentityRow) -> ApiResult<IdentityPublic> {
    let key = |s: &str| -> ApiResult<[u8; 32]> {
        B64.decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ApiError::internal("a stored identity key is not 32 bytes"))
    };
    Ok(IdentityPublic {
        x25519: key(&row.x25519)?,
        ed25519: key(&row.ed25519)?,
    })
}

async fn identity_of(st: &AppState, tenant: &str, user_id: &str) -> ApiResult<Identity> {
    let u = st.store.get_user(tenant, user_id).await?;
    let row = st.sync.identity(tenant, user_id).await?.ok_or_else(|| {
        ApiError::not_found("identity (the member has not signed in from a LabVault device yet)")
    })?;
    Ok(Identity {
        user_id: row.user_id,
        email: u.email,
        x25519: row.x25519,
        ed25519: row.ed25519,
        registered_at: rfc3339(row.registered_at),
    })
}

fn check_sealed(what: &str, s: &str, max: usize) -> ApiResult<()> {
    if s.len() > max || B64.decode(s).is_err() {
        return Err(ApiError::invalid(format!(
            "{what} must be base64 of at most {max} characters"
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------ identities

/// Registers the caller's identity (from one of their approved devices). `201` when new,
/// `200` when the same keys were registered before; other keys are a `conflict`.
#[utoipa::path(put, path = "/v1/me/identity", tag = "sharing", request_body = IdentityRegistration,
    security(("bearer" = [])),
    responses((status = 201, body = Identity), (status = 200, body = Identity), (status = "4XX", body = ErrorBody)))]
pub async fn register_identity(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Json(req): Json<IdentityRegistration>,
) -> ApiResult<(StatusCode, Json<Identity>)> {
    st.audited(
        &p,
        &meta,
        actions::IDENTITY_REGISTER,
        format!("user/{}/identity", p.user_id),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            check_key_b64("x25519", &req.x25519)?;
            check_key_b64("ed25519", &req.ed25519)?;
            let now = st.now();
            let (_, created) = st
                .sync
                .register_identity(
                    IdentityRow {
                        tenant_id: p.tenant_id.clone(),
                        user_id: p.user_id.clone(),
                        x25519: req.x25519.clone(),
                        ed25519: req.ed25519.clone(),
                        registered_at: now,
                    },
                    draft.clone(),
                )
                .await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((
                status,
                Json(identity_of(&st, &p.tenant_id, &p.user_id).await?),
            ))
        },
    )
    .await
}

/// The caller's identity, the identity box sealed to the calling device, and which of the
/// caller's approved devices still lack one.
#[utoipa::path(get, path = "/v1/me/identity", tag = "sharing", security(("bearer" = [])),
    responses((status = 200, body = MyIdentity), (status = "4XX", body = ErrorBody)))]
pub async fn my_identity(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
) -> ApiResult<Json<MyIdentity>> {
    st.audited(
        &p,
        &meta,
        actions::IDENTITY_VIEW,
        format!("user/{}/identity", p.user_id),
        AuditedBy::Handler,
        async |_| {
            let me = calling_device(&st, &p, &headers).await?;
            let identity = match identity_of(&st, &p.tenant_id, &p.user_id).await {
                Ok(i) => Some(i),
                Err(e) if e.code == ErrorCode::NotFound => None,
                Err(e) => return Err(e),
            };
            let boxes = st.sync.identity_boxes(&p.tenant_id, &p.user_id).await?;
            let devices = st.sync.user_devices(&p.tenant_id, &p.user_id).await?;
            let devices_without_box = devices
                .iter()
                .filter(|d| d.state == DeviceState::Approved)
                .filter(|d| !boxes.iter().any(|b| b.device_id == d.device_id))
                .map(|d| d.device_id.clone())
                .collect();
            let identity_box = boxes
                .into_iter()
                .find(|b| b.device_id == me.device_id)
                .map(|b| IdentityBox {
                    device_id: b.device_id,
                    sealed: b.sealed,
                    signer_device_id: b.signer_device_id,
                    signature: b.signature,
                });
            Ok(Json(MyIdentity {
                identity,
                identity_box,
                devices_without_box,
            }))
        },
    )
    .await
}

/// Checks identity boxes: signed by the calling device, sealed to approved devices (or the
/// one being approved) of the caller.
pub(super) async fn check_identity_boxes(
    st: &AppState,
    p: &Principal,
    caller: &str,
    boxes: &[IdentityBox],
    pending: Option<&str>,
) -> ApiResult<Vec<IdentityBoxRow>> {
    if boxes.len() > 1000 {
        return Err(ApiError::invalid("at most 1000 identity boxes at once"));
    }
    let mut out = Vec::with_capacity(boxes.len());
    for b in boxes {
        if b.signer_device_id != caller {
            return Err(ApiError::invalid(
                "identity boxes must be signed by the calling device",
            ));
        }
        check_sealed("sealed", &b.sealed, 1024)?;
        if B64.decode(&b.signature).map(|s| s.len()) != Ok(64) {
            return Err(ApiError::invalid("signature must be 64 bytes in base64"));
        }
        if pending != Some(b.device_id.as_str()) {
            let d = match st.sync.device(&p.tenant_id, &b.device_id).await {
                Ok(d) => d,
                Err(StoreError::NotFound(_)) => return Err(ApiError::not_found("device")),
                Err(e) => return Err(e.into()),
            };
            if d.user_id != p.user_id || d.state != DeviceState::Approved {
                return Err(ApiError::forbidden(
                    "identity boxes can only be sealed to your own approved devices",
                ));
            }
        }
        out.push(IdentityBoxRow {
            device_id: b.device_id.clone(),
            sealed: b.sealed.clone(),
            signer_device_id: b.signer_device_id.clone(),
            signature: b.signature.clone(),
        });
    }
    Ok(out)
}

/// Stores the caller's identity sealed to their devices (sealed and signed by the calling
/// device).
#[utoipa::path(put, path = "/v1/me/identity/boxes", tag = "sharing", request_body = IdentityBoxes,
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn put_identity_boxes(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Json(req): Json<IdentityBoxes>,
) -> ApiResult<StatusCode> {
    st.audited(
        &p,
        &meta,
        actions::IDENTITY_BOXES,
        format!("user/{}/identity", p.user_id),
        AuditedBy::Store,
        async |draft| {
            let me = calling_device(&st, &p, &headers).await?;
            if st.sync.identity(&p.tenant_id, &p.user_id).await?.is_none() {
                return Err(ApiError::conflict(
                    "register the identity (PUT /v1/me/identity) before sealing it to devices",
                ));
            }
            let rows = check_identity_boxes(&st, &p, &me.device_id, &req.boxes, None).await?;
            st.sync
                .put_identity_boxes(&p.tenant_id, &p.user_id, rows, draft.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// A member's identity, to share a project with them (any user of the tenant). Compare its
/// safety number with the member out of band (`labvault fingerprint EMAIL`).
#[utoipa::path(get, path = "/v1/identities", tag = "sharing", params(IdentityQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Identity), (status = "4XX", body = ErrorBody)))]
pub async fn find_identity(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Query(q): Query<IdentityQuery>,
) -> ApiResult<Json<Identity>> {
    let who = q
        .email
        .clone()
        .or_else(|| q.user_id.clone())
        .unwrap_or_default();
    st.audited(
        &p,
        &meta,
        actions::IDENTITY_VIEW,
        format!("identity/{}", clean(&who)),
        AuditedBy::Handler,
        async |_| {
            p.require_user()?;
            let user_id = match (&q.email, &q.user_id) {
                (Some(email), None) => {
                    st.store
                        .user_by_email(&p.tenant_id, &email.trim().to_lowercase())
                        .await?
                        .id
                }
                (None, Some(id)) => {
                    check_id("user", id)?;
                    id.clone()
                }
                _ => {
                    return Err(ApiError::invalid(
                        "name the member by exactly one of email or user_id",
                    ))
                }
            };
            Ok(Json(identity_of(&st, &p.tenant_id, &user_id).await?))
        },
    )
    .await
}

// ------------------------------------------------------------------ membership log

/// A project's membership log from entry `from`, the member boxes sealed to the caller, the
/// epoch links, and who holds a box of the current epoch. Members only (for a project not
/// shared yet: anyone who may read it, and the log is empty).
#[utoipa::path(get, path = "/v1/projects/{project_id}/membership", tag = "sharing",
    params(("project_id" = String, Path), MembershipQuery), security(("bearer" = [])),
    responses((status = 200, body = MembershipPage), (status = "4XX", body = ErrorBody)))]
pub async fn membership(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Query(q): Query<MembershipQuery>,
) -> ApiResult<Json<MembershipPage>> {
    st.audited(
        &p,
        &meta,
        actions::MEMBERSHIP_VIEW,
        format!("project/{}/membership", clean(&project_id)),
        AuditedBy::Handler,
        async |_| {
            calling_device(&st, &p, &headers).await?;
            let t = &p.tenant_id;
            // A removed member reads the signed log (it proves their removal to their
            // devices, which then wipe their copies) and nothing else.
            let removed = match project_access(&st, &p, &project_id, Role::Viewer).await {
                Ok(()) => false,
                Err(e) => {
                    if st.sync.member_access(t, &project_id, &p.user_id).await?
                        != MemberAccess::Removed
                    {
                        return Err(e);
                    }
                    true
                }
            };
            let (rows, length) = st
                .sync
                .membership_log(t, &project_id, q.from.unwrap_or(0))
                .await?;
            let feed = st.sync.feed(t, &project_id).await?;
            let boxes = if removed {
                Vec::new()
            } else {
                st.sync.member_boxes(t, &project_id, &p.user_id).await?
            };
            Ok(Json(MembershipPage {
                entries: rows.into_iter().map(|r| r.entry).collect(),
                length,
                epoch: feed.epoch,
                boxes: boxes
                    .into_iter()
                    .map(|b| MemberBox {
                        user_id: b.user_id,
                        epoch: b.epoch,
                        sealed: b.sealed,
                    })
                    .collect(),
                links: if removed {
                    Vec::new()
                } else {
                    st.sync
                        .epoch_links(t, &project_id)
                        .await?
                        .into_iter()
                        .map(|(epoch, link)| EpochLink { epoch, link })
                        .collect()
                },
                box_holders: st.sync.box_holders(t, &project_id, feed.epoch).await?,
                policy: st.sync.sharing_policy(t).await?,
                rotation_requested: st.sync.rotation_requested(t, &project_id).await?,
            }))
        },
    )
    .await
}

/// The rules the server can check without keys (see the module doc); returns the entry's
/// effect on access.
async fn check_entry(
    st: &AppState,
    p: &Principal,
    project_id: &str,
    e: &LogEntry,
    req: &AppendMembership,
) -> ApiResult<MembershipEffect> {
    let t = &p.tenant_id;
    let u = &e.entry;
    if u.project_id != project_id {
        return Err(ApiError::invalid("the entry is for another project"));
    }
    if u.signer != p.user_id {
        return Err(ApiError::forbidden(
            "membership entries are signed by the caller's own identity",
        ));
    }
    let signer_identity = st.sync.identity(t, &p.user_id).await?.ok_or_else(|| {
        ApiError::conflict("register your identity (PUT /v1/me/identity) before signing entries")
    })?;
    e.verify(&public_of(&signer_identity)?).map_err(|_| {
        ApiError::invalid("the entry's signature does not verify under your registered identity")
    })?;
    let feed = st.sync.feed(t, project_id).await?;
    let members = st.sync.members(t, project_id).await?;
    let role_of_member = |user: &str| members.iter().find(|(m, _)| m == user).map(|(_, r)| *r);
    let boxes_for = |who: &[&str], epoch: u32| -> ApiResult<()> {
        let mut named: Vec<&str> = req.boxes.iter().map(|b| b.user_id.as_str()).collect();
        named.sort_unstable();
        let mut want = who.to_vec();
        want.sort_unstable();
        if named != want || req.boxes.iter().any(|b| b.epoch != epoch) {
            return Err(ApiError::invalid(format!(
                "this entry brings member boxes of epoch {epoch} for exactly: {}",
                want.join(", ")
            )));
        }
        Ok(())
    };
    if u.seq == 0 {
        // The creator opens the log: adds themselves as Owner, with their own box.
        p.require_project(st, project_id, Role::Editor).await?;
        let EntryBody::Add {
            user_id,
            role: MemberRole::Owner,
            identity,
        } = &u.body
        else {
            return Err(ApiError::invalid(
                "entry 0 adds its signer as the project's first Owner",
            ));
        };
        if *user_id != p.user_id || *identity != public_of(&signer_identity)? {
            return Err(ApiError::invalid(
                "entry 0 adds its signer, with their registered identity, as Owner",
            ));
        }
        boxes_for(&[user_id], feed.epoch)?;
        return Ok(MembershipEffect::Add {
            user: user_id.clone(),
            role: Role::Owner,
        });
    }
    let signer_role = match role_of_member(&p.user_id) {
        Some(r @ (Role::Owner | Role::Admin)) => r,
        Some(_) => {
            return Err(ApiError::forbidden(
                "only the project's Owners and Admins change its members and keys",
            ))
        }
        None => return Err(ApiError::forbidden("you are not a member of this project")),
    };
    let owners = members.iter().filter(|(_, r)| *r == Role::Owner).count();
    let owner_only = |touches_owner: bool| -> ApiResult<()> {
        if touches_owner && signer_role != Role::Owner {
            return Err(ApiError::forbidden(
                "only an Owner adds, removes, promotes or demotes an Owner",
            ));
        }
        Ok(())
    };
    let no_boxes = || -> ApiResult<()> {
        if !req.boxes.is_empty() || req.link.is_some() {
            return Err(ApiError::invalid(
                "this kind of entry brings no member boxes or link",
            ));
        }
        Ok(())
    };
    match &u.body {
        EntryBody::Add {
            user_id,
            role,
            identity,
        } => {
            p.require_recent_mfa(st)?;
            owner_only(*role == MemberRole::Owner)?;
            if role_of_member(user_id).is_some() {
                return Err(ApiError::conflict(
                    "the user is already a member of this project",
                ));
            }
            let theirs = st.sync.identity(t, user_id).await?.ok_or_else(|| {
                ApiError::not_found(
                    "identity (the user has not signed in from a LabVault device yet)",
                )
            })?;
            if *identity != public_of(&theirs)? {
                return Err(ApiError::invalid(
                    "the entry names another identity than the one the user registered",
                ));
            }
            boxes_for(&[user_id], feed.epoch)?;
            Ok(MembershipEffect::Add {
                user: user_id.clone(),
                role: role_of(*role),
            })
        }
        EntryBody::Remove { user_id } => {
            p.require_recent_mfa(st)?;
            no_boxes()?;
            let r = role_of_member(user_id).ok_or_else(|| ApiError::not_found("member"))?;
            owner_only(r == Role::Owner)?;
            if r == Role::Owner && owners == 1 {
                return Err(ApiError::conflict(
                    "the project's last Owner cannot leave: make another member Owner first",
                ));
            }
            Ok(MembershipEffect::Remove {
                user: user_id.clone(),
            })
        }
        EntryBody::SetRole { user_id, role } => {
            p.require_recent_mfa(st)?;
            no_boxes()?;
            let r = role_of_member(user_id).ok_or_else(|| ApiError::not_found("member"))?;
            owner_only(r == Role::Owner || *role == MemberRole::Owner)?;
            if r == Role::Owner && *role != MemberRole::Owner && owners == 1 {
                return Err(ApiError::conflict(
                    "the project's last Owner cannot step down: make another member Owner first",
                ));
            }
            Ok(MembershipEffect::SetRole {
                user: user_id.clone(),
                role: role_of(*role),
            })
        }
        EntryBody::Rotate { epoch } => {
            if *epoch != feed.epoch + 1 {
                return Err(ApiError::conflict(format!(
                    "the project is at key epoch {}; a rotation goes to {}",
                    feed.epoch,
                    feed.epoch + 1
                )));
            }
            let who: Vec<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
            boxes_for(&who, *epoch)?;
            let link = req.link.clone().ok_or_else(|| {
                ApiError::invalid("a rotation brings the link to the previous epoch")
            })?;
            check_sealed("link", &link, 256)?;
            Ok(MembershipEffect::Rotate {
                epoch: *epoch,
                link,
            })
        }
        EntryBody::DeviceRevoked { user_id, .. } => {
            no_boxes()?;
            role_of_member(user_id).ok_or_else(|| ApiError::not_found("member"))?;
            Ok(MembershipEffect::Note)
        }
    }
}

fn kind_of(b: &EntryBody) -> &'static str {
    match b {
        EntryBody::Add { .. } => "add",
        EntryBody::Remove { .. } => "remove",
        EntryBody::SetRole { .. } => "set_role",
        EntryBody::Rotate { .. } => "rotate",
        EntryBody::DeviceRevoked { .. } => "device_revoked",
    }
}

/// Appends one signed entry to a project's membership log (see the module doc for what is
/// checked). Removing a member ends their access at once (`403` on the feed, blobs, keys and
/// this log); a rotation moves the project to the next key epoch, and ops under older
/// epochs are refused from then on.
#[utoipa::path(post, path = "/v1/projects/{project_id}/membership", tag = "sharing",
    request_body = AppendMembership, params(("project_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = MembershipAppended), (status = "4XX", body = ErrorBody)))]
pub async fn append_membership(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Path(project_id): Path<String>,
    Json(req): Json<AppendMembership>,
) -> ApiResult<Json<MembershipAppended>> {
    st.audited(
        &p,
        &meta,
        actions::MEMBERSHIP_CHANGE,
        format!("project/{}/membership", clean(&project_id)),
        AuditedBy::Store,
        async |draft| {
            calling_device(&st, &p, &headers).await?;
            check_id("project", &project_id)?;
            st.store.get_project(&p.tenant_id, &project_id).await?;
            if req.entry.len() > MAX_ENTRY || req.boxes.len() > MAX_BOXES {
                return Err(ApiError::invalid(format!(
                    "an entry is at most {MAX_ENTRY} characters and brings at most {MAX_BOXES} boxes"
                )));
            }
            let bytes = B64
                .decode(&req.entry)
                .map_err(|_| ApiError::invalid("entry must be base64"))?;
            let entry = LogEntry::from_bytes(&bytes).map_err(|e| {
                ApiError::invalid(format!("the membership entry is malformed: {e}"))
            })?;
            for b in &req.boxes {
                check_id("user", &b.user_id)?;
                check_sealed("member box", &b.sealed, 1024)?;
            }
            let effect = check_entry(&st, &p, &project_id, &entry, &req).await?;
            let u = &entry.entry;
            let mut draft = draft.clone();
            draft.detail = format!("seq={} kind={}", u.seq, kind_of(&u.body));
            let (length, feed) = st
                .sync
                .append_membership(
                    MembershipAppend {
                        tenant: p.tenant_id.clone(),
                        project: project_id.clone(),
                        seq: u.seq,
                        prev_hash: if u.seq == 0 {
                            String::new()
                        } else {
                            hex::encode(u.prev_hash)
                        },
                        hash: hex::encode(entry.hash()),
                        entry: req.entry.clone(),
                        signer: p.user_id.clone(),
                        effect,
                        boxes: req
                            .boxes
                            .iter()
                            .map(|b| MemberBoxRow {
                                user_id: b.user_id.clone(),
                                epoch: b.epoch,
                                sealed: b.sealed.clone(),
                            })
                            .collect(),
                        now: st.now(),
                    },
                    draft,
                )
                .await?;
            Ok(Json(MembershipAppended {
                length,
                epoch: feed.epoch,
            }))
        },
    )
    .await
}

/// Whether the caller may use a project's synced data with at least `min`: for a shared
/// project, the membership the log records decides (tenant roles do not reach into it).
pub(super) fn check_member(access: MemberAccess, min: Role) -> ApiResult<()> {
    match access {
        MemberAccess::NotShared => Ok(()),
        MemberAccess::Member(r) if r >= min => Ok(()),
        MemberAccess::Member(r) => Err(ApiError::forbidden(format!(
            "your role on this shared project is {}; this needs {} or higher",
            r.as_str(),
            min.as_str()
        ))),
        MemberAccess::NotMember => Err(ApiError::forbidden(
            "you are not a member of this shared project: ask one of its Owners or Admins",
        )),
        MemberAccess::Removed => Err(ApiError::forbidden(
            "you were removed from this shared project: its data and keys are no longer yours to read",
        )),
    }
}

/// Refuses to change a shared project's roles outside its signed membership log: the log is
/// what members' clients verify, so a role set beside it would be a member they refuse.
pub(super) async fn refuse_if_shared(st: &AppState, tenant: &str, project: &str) -> ApiResult<()> {
    if st.sync.member_access(tenant, project, "").await? != MemberAccess::NotShared {
        return Err(ApiError::conflict(
            "this project's members are kept in its signed membership log: change them from a member's LabVault (`labvault project share|unshare`)",
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------ policy

/// The tenant's policy for shared projects (any member).
#[utoipa::path(get, path = "/v1/tenant/sharing", tag = "sharing", security(("bearer" = [])),
    responses((status = 200, body = SharingPolicy), (status = "4XX", body = ErrorBody)))]
pub async fn get_policy(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
) -> ApiResult<Json<SharingPolicy>> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_VIEW,
        format!("tenant/{}/sharing", p.tenant_id),
        AuditedBy::Handler,
        async |_| Ok(Json(st.sync.sharing_policy(&p.tenant_id).await?)),
    )
    .await
}

/// Sets the tenant's policy for shared projects: the offline lease (1 to 365 days) and the
/// automatic key rotation period (0 to 3650 days; 0 rotates only when members leave).
/// Owner/Admin, step-up.
#[utoipa::path(put, path = "/v1/tenant/sharing", tag = "sharing", request_body = SharingPolicy,
    security(("bearer" = [])),
    responses((status = 200, body = SharingPolicy), (status = "4XX", body = ErrorBody)))]
pub async fn set_policy(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    Json(req): Json<SharingPolicy>,
) -> ApiResult<Json<SharingPolicy>> {
    st.audited(
        &p,
        &meta,
        actions::TENANT_SETTINGS_CHANGE,
        format!(
            "tenant/{}/sharing/lease/{}/rotation/{}",
            p.tenant_id, req.offline_lease_days, req.key_rotation_days
        ),
        AuditedBy::Store,
        async |draft| {
            p.require(Role::Admin)?;
            p.require_recent_mfa(&st)?;
            if !(1..=365).contains(&req.offline_lease_days) || req.key_rotation_days > 3650 {
                return Err(ApiError::invalid(
                    "offline_lease_days must be 1 to 365 and key_rotation_days 0 to 3650",
                ));
            }
            st.sync
                .set_sharing_policy(&p.tenant_id, req, draft.clone())
                .await?;
            Ok(Json(req))
        },
    )
    .await
}

// ------------------------------------------------------------------ erasure notices

/// A device of the caller (approved, or revoked: a revoked device reports its own erasure) reports
/// that it erased its copy of a project it lost. Only recorded in the audit trail.
#[utoipa::path(post, path = "/v1/me/wipes", tag = "sharing", request_body = WipeNotice,
    security(("bearer" = [])),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn report_wipe(
    State(st): State<AppState>,
    p: Principal,
    meta: ReqMeta,
    headers: HeaderMap,
    Json(req): Json<WipeNotice>,
) -> ApiResult<StatusCode> {
    let device = headers
        .get(DEVICE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let resource = format!(
        "project/{}/device/{}",
        clean(&req.project_id),
        clean(&device)
    );
    st.audited(
        &p,
        &meta,
        actions::DEVICE_WIPE,
        resource,
        AuditedBy::Store,
        async |draft| {
            p.require_user()?;
            check_id("project", &req.project_id)?;
            if !matches!(req.reason.as_str(), "removed" | "revoked") {
                return Err(ApiError::invalid("reason is `removed` or `revoked`"));
            }
            let d = match st.sync.device(&p.tenant_id, &device).await {
                Ok(d) if d.user_id == p.user_id && d.state != DeviceState::Pending => d,
                Ok(_) | Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::new(
                        ErrorCode::DeviceNotApproved,
                        "the erasure notice names no device of yours",
                    ))
                }
                Err(e) => return Err(e.into()),
            };
            let mut ev = draft.clone();
            ev.detail = format!(
                "reason={} items={} unsent={} device_state={:?}",
                req.reason, req.items, req.unsent, d.state
            );
            st.store
                .append_audit(&p.tenant_id, ev)
                .await
                .map_err(ApiError::internal)?;
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}
