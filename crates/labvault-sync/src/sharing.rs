//! Shared projects, kept in step with the tenant (formats and rules: `docs/sharing.md`).
//!
//! * [`ensure_identity`]: the user's identity is made on their first device and registered
//!   with the tenant; other devices receive it in identity boxes, which every device holding
//!   it seals to the user's trusted devices that lack one.
//! * [`refresh`]: a project's membership log is read from where this device's verified copy
//!   ends and handed to the vault, which verifies it and opens the keys; a project not yet
//!   shared gets its first entry (its creator as Owner); a verified removal of this user
//!   wipes the local copy; an Owner or Admin device rotates when a rotation is owed.
//! * [`share`], [`unshare`], [`set_role`], [`rotate`]: the admin actions, signed here.
//!
//! The vault decides what is true; this module only moves entries and boxes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use labvault_client::ClientError;
use labvault_core::sync::{
    parse_role, EntryBody, IdentityInfo, IdentityPublic, MembershipOutcome, MembershipView,
    RemoteMembership, WipeReport,
};
use labvault_core::Vault;
use labvault_wire::{
    AppendMembership, ErrorCode, Identity, IdentityBox, IdentityBoxes, IdentityQuery,
    IdentityRegistration, MemberBox, MembershipAppended,
};

use crate::keys::user_id;
use crate::session::Session;
use crate::{Result, SyncError};

fn refused(why: impl Into<String>) -> SyncError {
    SyncError::Vault(labvault_core::Error::SyncRefused(why.into()))
}

fn key32(s: &str, what: &str) -> Result<[u8; 32]> {
    B64.decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| refused(format!("the tenant sent a malformed {what}")))
}

/// The public keys of a registered identity.
pub fn public_of(i: &Identity) -> Result<IdentityPublic> {
    Ok(IdentityPublic {
        x25519: key32(&i.x25519, "identity key")?,
        ed25519: key32(&i.ed25519, "identity key")?,
    })
}

fn is_api(e: &SyncError, codes: &[ErrorCode]) -> bool {
    matches!(e, SyncError::Client(ClientError::Api { code, .. }) if codes.contains(code))
}

/// Makes sure this device holds the user's identity: made and registered on the user's first
/// device, received in an identity box on the others. Then seals it to the user's trusted
/// devices without a box. Returns whether this device holds it (`false`: waiting for a box
/// from a device that does).
pub async fn ensure_identity(vault: &Vault, session: &Session) -> Result<bool> {
    let user = user_id(vault)?;
    let mine = session
        .call(|t| {
            let api = session.client().clone();
            async move { api.my_identity(&t).await }
        })
        .await?;
    let local = vault.sync_identity()?;
    let local = match (local, &mine.identity) {
        (Some(l), Some(r)) => {
            if l.public != public_of(r)? {
                return Err(refused(
                    "the tenant lists another identity key for your account than the one this device holds: refused (compare safety numbers with `labvault fingerprint`)",
                ));
            }
            l
        }
        (Some(l), None) => {
            register_identity(session, &l).await?;
            l
        }
        (None, Some(r)) => {
            let Some(b) = &mine.identity_box else {
                return Ok(false);
            };
            let sealed = B64.decode(&b.sealed).unwrap_or_default();
            let sig = B64.decode(&b.signature).unwrap_or_default();
            vault.sync_open_identity_box(
                &user,
                &public_of(r)?,
                &sealed,
                &b.signer_device_id,
                &sig,
            )?
        }
        (None, None) => {
            let l = vault.sync_make_identity(&user)?;
            match register_identity(session, &l).await {
                Ok(()) => l,
                // Another device of the user registered one first: this device waits for
                // its box (its own identity is never used).
                Err(e) if is_api(&e, &[ErrorCode::Conflict]) => {
                    return Err(refused(
                        "another device of yours registered your identity at the same moment; approve this device again from it",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    };
    // Seal it to the user's trusted devices that lack a box.
    let trusted = vault.sync_trusted_devices()?;
    let mut boxes = Vec::new();
    for d in trusted.iter().filter(|d| {
        d.device_id != vault.device_id() && mine.devices_without_box.contains(&d.device_id)
    }) {
        let (sealed, sig) = vault.sync_seal_identity(&d.device_id, &d.keys)?;
        boxes.push(IdentityBox {
            device_id: d.device_id.clone(),
            sealed: B64.encode(sealed),
            signer_device_id: vault.device_id().to_string(),
            signature: B64.encode(sig),
        });
    }
    if !boxes.is_empty() {
        let req = IdentityBoxes { boxes };
        match session
            .call(|t| {
                let (api, req) = (session.client().clone(), req.clone());
                async move { api.put_identity_boxes(&t, &req).await }
            })
            .await
        {
            Ok(()) => {}
            // A device revoked meanwhile; the next pass seals again.
            Err(e) if is_api(&e, &[ErrorCode::Forbidden, ErrorCode::NotFound]) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = local;
    Ok(true)
}

async fn register_identity(session: &Session, l: &IdentityInfo) -> Result<()> {
    let req = IdentityRegistration {
        x25519: B64.encode(l.public.x25519),
        ed25519: B64.encode(l.public.ed25519),
    };
    session
        .call(|t| {
            let (api, req) = (session.client().clone(), req.clone());
            async move { api.register_identity(&t, &req).await }
        })
        .await?;
    Ok(())
}

/// What refreshing a project's membership did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Not shared and this device cannot open its log (no identity yet, or not its creator).
    NotShared,
    /// A member: the verified state.
    Member {
        /// The verified membership.
        view: MembershipView,
        /// Installed here now.
        installed: bool,
        /// This device rotated the project's key now.
        rotated: bool,
    },
    /// This user was removed: the local copy was wiped.
    Wiped(WipeReport),
}

async fn append(
    session: &Session,
    project: &str,
    req: AppendMembership,
) -> Result<MembershipAppended> {
    session
        .call(|t| {
            let (api, p, req) = (session.client().clone(), project.to_string(), req.clone());
            async move { api.append_membership(&t, &p, &req).await }
        })
        .await
}

/// Reads a project's membership log and hands it to the vault (see the module doc). With
/// `may_rotate`, an Owner or Admin device rotates a key that is owed or due.
pub async fn refresh(
    vault: &Vault,
    session: &Session,
    project: &str,
    may_rotate: bool,
) -> Result<Refreshed> {
    if vault.sync_identity()?.is_none() {
        return Ok(Refreshed::NotShared);
    }
    let from = vault.sync_membership_len(project).unwrap_or(0);
    let page = session
        .call(|t| {
            let (api, p) = (session.client().clone(), project.to_string());
            async move { api.membership(&t, &p, from).await }
        })
        .await?;
    if page.length == 0 && from == 0 {
        // Not shared yet: its creator (a device that has it) opens the log.
        let local = vault
            .sync_projects()?
            .into_iter()
            .any(|p| p.project_id == project);
        if !local {
            return Ok(Refreshed::NotShared);
        }
        let (entry, sealed) = vault.sync_genesis(project)?;
        let me = user_id(vault)?;
        let req = AppendMembership {
            entry: B64.encode(entry),
            boxes: vec![MemberBox {
                user_id: me,
                epoch: 1,
                sealed: B64.encode(sealed),
            }],
            link: None,
        };
        match append(session, project, req).await {
            Ok(_) => {}
            // Another device of the user (or the log's creator) was first: read it next.
            Err(e) if is_api(&e, &[ErrorCode::Conflict, ErrorCode::Forbidden]) => {
                return Ok(Refreshed::NotShared)
            }
            Err(e) => return Err(e),
        }
        return Box::pin(refresh(vault, session, project, may_rotate)).await;
    }
    let remote = RemoteMembership {
        entries: page
            .entries
            .iter()
            .map(|e| {
                B64.decode(e)
                    .map_err(|_| refused("a membership entry is not base64"))
            })
            .collect::<Result<_>>()?,
        length: page.length,
        boxes: page
            .boxes
            .iter()
            .map(|b| {
                Ok((
                    b.epoch,
                    B64.decode(&b.sealed)
                        .map_err(|_| refused("a member box is not base64"))?,
                ))
            })
            .collect::<Result<_>>()?,
        links: page
            .links
            .iter()
            .map(|l| {
                Ok((
                    l.epoch,
                    B64.decode(&l.link)
                        .map_err(|_| refused("an epoch link is not base64"))?,
                ))
            })
            .collect::<Result<_>>()?,
        box_holders: page.box_holders.clone(),
        lease_days: page.policy.offline_lease_days,
        rotation_days: page.policy.key_rotation_days,
    };
    let outcome = vault.sync_accept_membership(project, remote)?;
    match outcome {
        MembershipOutcome::Removed { seq } => {
            let local = vault
                .sync_projects()?
                .into_iter()
                .any(|p| p.project_id == project);
            if !local {
                // Wiped before (or never here): nothing of it is this device's business.
                return Ok(Refreshed::NotShared);
            }
            let report = vault.sync_wipe_project(
                project,
                &format!("removed from the project by membership log entry {seq}"),
            )?;
            report_wipe(session, &report, "removed").await;
            Ok(Refreshed::Wiped(report))
        }
        MembershipOutcome::Member {
            view, installed, ..
        } => {
            if may_rotate {
                if let Some(why) = vault.sync_rotation_due(project, page.rotation_requested)? {
                    tracing::info!(project, why, "rotating the project key");
                    match rotate(vault, session, project).await {
                        Ok(_) => {
                            let r = Box::pin(refresh(vault, session, project, false)).await?;
                            return Ok(match r {
                                Refreshed::Member { view, .. } => Refreshed::Member {
                                    view,
                                    installed,
                                    rotated: true,
                                },
                                other => other,
                            });
                        }
                        // Another admin rotated first, or the log moved on: next pass.
                        Err(e) if is_api(&e, &[ErrorCode::Conflict]) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(Refreshed::Member {
                view,
                installed,
                rotated: false,
            })
        }
    }
}

/// Rotates a project's key to the next epoch (sealed to every member, linked to the
/// previous one). Returns the new epoch.
pub async fn rotate(vault: &Vault, session: &Session, project: &str) -> Result<u32> {
    let r = vault.sync_prepare_rotation(project)?;
    let req = AppendMembership {
        entry: B64.encode(&r.entry),
        boxes: r
            .boxes
            .iter()
            .map(|(u, s)| MemberBox {
                user_id: u.clone(),
                epoch: r.epoch,
                sealed: B64.encode(s),
            })
            .collect(),
        link: Some(B64.encode(&r.link)),
    };
    append(session, project, req).await?;
    Ok(r.epoch)
}

/// A member's identity as the tenant lists it (by email or user id), pinned here at first
/// sight.
pub async fn find_identity(vault: &Vault, session: &Session, who: &str) -> Result<Identity> {
    let q = if who.contains('@') {
        IdentityQuery {
            email: Some(who.to_string()),
            user_id: None,
        }
    } else {
        IdentityQuery {
            email: None,
            user_id: Some(who.to_string()),
        }
    };
    let i = session
        .call(|t| {
            let (api, q) = (session.client().clone(), q.clone());
            async move { api.find_identity(&t, &q).await }
        })
        .await?;
    vault.sync_pin_identity(&i.user_id, &public_of(&i)?)?;
    Ok(i)
}

/// Brings the verified log up to date before signing a change on it.
async fn current(vault: &Vault, session: &Session, project: &str) -> Result<()> {
    match refresh(vault, session, project, false).await? {
        Refreshed::Member { .. } => Ok(()),
        Refreshed::Wiped(_) => Err(refused("you were removed from this project")),
        Refreshed::NotShared => Err(SyncError::Vault(labvault_core::Error::InvalidArgument(
            "this project is not on the tenant yet, or this device holds no identity: run `labvault sync` first".into(),
        ))),
    }
}

/// Shares a project with a member of the tenant (`role`: owner, admin, editor, viewer).
pub async fn share(
    vault: &Vault,
    session: &Session,
    project: &str,
    who: &str,
    role: &str,
) -> Result<Identity> {
    let role = parse_role(role)?;
    current(vault, session, project).await?;
    let i = find_identity(vault, session, who).await?;
    let (entry, sealed, epoch) = vault.sync_sign_add(project, &i.user_id, role, &public_of(&i)?)?;
    append(
        session,
        project,
        AppendMembership {
            entry: B64.encode(entry),
            boxes: vec![MemberBox {
                user_id: i.user_id.clone(),
                epoch,
                sealed: B64.encode(sealed),
            }],
            link: None,
        },
    )
    .await?;
    refresh(vault, session, project, false).await?;
    Ok(i)
}

/// Removes a member; the tenant cuts their access at once and this device (an Owner or
/// Admin) rotates the key right after. Returns the new epoch when the rotation went through.
pub async fn unshare(
    vault: &Vault,
    session: &Session,
    project: &str,
    who: &str,
) -> Result<Option<u32>> {
    current(vault, session, project).await?;
    let i = find_identity(vault, session, who).await?;
    let entry = vault.sync_sign_change(
        project,
        EntryBody::Remove {
            user_id: i.user_id.clone(),
        },
    )?;
    append(
        session,
        project,
        AppendMembership {
            entry: B64.encode(entry),
            boxes: vec![],
            link: None,
        },
    )
    .await?;
    current(vault, session, project).await?;
    match rotate(vault, session, project).await {
        Ok(epoch) => {
            current(vault, session, project).await?;
            Ok(Some(epoch))
        }
        Err(e) if is_api(&e, &[ErrorCode::Conflict]) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Changes a member's role.
pub async fn set_role(
    vault: &Vault,
    session: &Session,
    project: &str,
    who: &str,
    role: &str,
) -> Result<()> {
    let role = parse_role(role)?;
    current(vault, session, project).await?;
    let i = find_identity(vault, session, who).await?;
    let entry = vault.sync_sign_change(
        project,
        EntryBody::SetRole {
            user_id: i.user_id.clone(),
            role,
        },
    )?;
    append(
        session,
        project,
        AppendMembership {
            entry: B64.encode(entry),
            boxes: vec![],
            link: None,
        },
    )
    .await?;
    current(vault, session, project).await
}

/// Rotates a project's key now (an Owner or Admin). Returns the new epoch.
pub async fn rotate_now(vault: &Vault, session: &Session, project: &str) -> Result<u32> {
    current(vault, session, project).await?;
    let epoch = rotate(vault, session, project).await?;
    current(vault, session, project).await?;
    Ok(epoch)
}

/// Tells the tenant (for its audit trail) that this device erased a copy; best effort: the
/// erasure is done and in this device's own audit chain either way.
pub async fn report_wipe(session: &Session, w: &WipeReport, reason: &str) {
    let notice = labvault_wire::WipeNotice {
        project_id: w.project_id.clone(),
        reason: reason.to_string(),
        items: w.items,
        unsent: w.unsent,
    };
    let r = session
        .call(|t| {
            let (api, n) = (session.client().clone(), notice.clone());
            async move { api.report_wipe(&t, &n).await }
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(project = %w.project_id, error = %e, "the tenant was not told of an erasure");
    }
}
