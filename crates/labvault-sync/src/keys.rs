//! Devices and project keys, kept in step with the tenant.
//!
//! * [`register`]: this device's public keys go to the tenant (a user's first device is
//!   approved there at once; any other waits).
//! * [`complete_pairing`]: a waiting device checks the approval it received (the approver's
//!   signature and the pairing MAC) and trusts its approver.
//! * [`approve`]: an approved device approves a waiting one from the code on its screen and
//!   seals it every project key it holds.
//! * [`refresh_trust`]: devices approved by trusted devices become trusted (signatures
//!   checked); revoked ones stop being trusted.
//! * [`reconcile_projects`]: local projects the tenant lacks are created there (same id, an
//!   opaque label: never the name); projects of the tenant with a key box for this device are
//!   installed here; every trusted device gets a box of every project key this device holds.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use labvault_client::ClientError;
use labvault_core::sync::{DeviceIdentity, DevicePublic, DeviceState as LocalState};
use labvault_core::Vault;
use labvault_wire::{
    ApproveDevice, Device, DeviceApproval, DeviceRegistration, DeviceState, ErrorCode, KeyBox,
    KeyBoxes,
};

use crate::session::Session;
use crate::{Result, SyncError};

fn public_of(d: &Device) -> Option<DevicePublic> {
    let x: [u8; 32] = B64.decode(&d.x25519).ok()?.try_into().ok()?;
    let e: [u8; 32] = B64.decode(&d.ed25519).ok()?.try_into().ok()?;
    Some(DevicePublic {
        x25519: x,
        ed25519: e,
    })
}

/// The keys the tenant lists for the devices an approval vouches for (the approval's
/// signature then proves they are the ones the approver holds).
fn vouched_keys(list: &[Device], ids: &[String]) -> Result<Vec<(String, DevicePublic)>> {
    ids.iter()
        .map(|id| {
            list.iter()
                .find(|d| d.device_id == *id)
                .and_then(public_of)
                .map(|k| (id.clone(), k))
                .ok_or_else(|| {
                    SyncError::Vault(labvault_core::Error::SyncRefused(format!(
                        "an approval vouches for device {id}, which the tenant does not list"
                    )))
                })
        })
        .collect()
}

/// The account id signed in (`sync_remote.user_id`).
pub fn user_id(vault: &Vault) -> Result<String> {
    vault
        .sync_remote()?
        .and_then(|r| r.user_id)
        .ok_or_else(|| SyncError::NotSignedIn("the tenant".into()))
}

/// Registers this device with the tenant (idempotent) and records its state.
pub async fn register(vault: &Vault, session: &Session) -> Result<DeviceIdentity> {
    let me = vault.sync_device()?;
    let reg = DeviceRegistration {
        device_id: me.device_id.clone(),
        name: me.name.clone(),
        x25519: B64.encode(me.keys.x25519),
        ed25519: B64.encode(me.keys.ed25519),
    };
    let registered = session
        .call(|t| {
            let reg = reg.clone();
            let api = session.client().clone();
            async move { api.register_device(&t, &reg).await }
        })
        .await;
    let (d, _) = match registered {
        Ok(r) => r,
        Err(SyncError::Client(ClientError::Api {
            code: ErrorCode::Conflict,
            ..
        })) if devices(session)
            .await?
            .iter()
            .any(|d| d.device_id == me.device_id && d.state == DeviceState::Revoked) =>
        {
            vault.sync_set_device_state(LocalState::Revoked)?;
            return Err(SyncError::Revoked);
        }
        Err(e) => return Err(e),
    };
    let state = match d.state {
        DeviceState::Approved => LocalState::Approved,
        DeviceState::Pending => LocalState::Pending,
        DeviceState::Revoked => LocalState::Revoked,
    };
    if state != me.state && !(me.state == LocalState::Pending && state == LocalState::Approved) {
        vault.sync_set_device_state(state)?;
    }
    Ok(vault.sync_device()?)
}

/// The user's devices as the tenant lists them.
pub async fn devices(session: &Session) -> Result<Vec<Device>> {
    session
        .call(|t| {
            let api = session.client().clone();
            async move { api.devices(&t).await }
        })
        .await
}

/// For a device waiting for approval: if the tenant lists it as approved, checks the approval
/// and becomes approved here. Returns whether this device may sync.
pub async fn complete_pairing(vault: &Vault, session: &Session) -> Result<bool> {
    let me = vault.sync_device()?;
    match me.state {
        LocalState::Approved => return Ok(true),
        LocalState::Revoked => return Err(SyncError::Revoked),
        _ => {}
    }
    let user = user_id(vault)?;
    let list = devices(session).await?;
    let Some(mine) = list.iter().find(|d| d.device_id == me.device_id) else {
        return Ok(false);
    };
    match (mine.state, &mine.approval) {
        (DeviceState::Revoked, _) => {
            vault.sync_set_device_state(LocalState::Revoked)?;
            Err(SyncError::Revoked)
        }
        (DeviceState::Approved, None) => {
            // The tenant says this is the user's first device: it approved itself.
            vault.sync_set_device_state(LocalState::Approved)?;
            Ok(true)
        }
        (DeviceState::Approved, Some(a)) => {
            let approver = list
                .iter()
                .find(|d| d.device_id == a.approver_device_id)
                .and_then(|d| public_of(d).map(|p| (d, p)))
                .ok_or_else(|| {
                    SyncError::Vault(labvault_core::Error::SyncRefused(
                        "the tenant lists no keys for the device that approved this one".into(),
                    ))
                })?;
            let sig = B64.decode(&a.signature).unwrap_or_default();
            let mac = B64.decode(&a.mac).unwrap_or_default();
            let vouched = vouched_keys(&list, &a.vouched)?;
            let named: Vec<(String, String, DevicePublic)> = vouched
                .iter()
                .map(|(id, k)| {
                    let name = list
                        .iter()
                        .find(|d| d.device_id == *id)
                        .map(|d| d.name.clone())
                        .unwrap_or_default();
                    (id.clone(), name, *k)
                })
                .collect();
            vault.sync_accept_approval(
                &user,
                &a.approver_device_id,
                &approver.0.name,
                &approver.1,
                &named,
                &sig,
                &mac,
            )?;
            Ok(true)
        }
        (DeviceState::Pending, _) => Ok(false),
    }
}

/// Trusts the user's devices approved by trusted devices (until nothing changes), and stops
/// trusting the ones the tenant lists as revoked.
pub async fn refresh_trust(vault: &Vault, session: &Session) -> Result<()> {
    let user = user_id(vault)?;
    let list = devices(session).await?;
    for d in list.iter().filter(|d| d.state == DeviceState::Revoked) {
        if vault
            .sync_trusted_devices()?
            .iter()
            .any(|t| t.device_id == d.device_id)
        {
            vault.sync_untrust_device(&d.device_id)?;
        }
    }
    loop {
        let mut changed = false;
        for d in list.iter().filter(|d| d.state == DeviceState::Approved) {
            let (Some(a), Some(keys)) = (&d.approval, public_of(d)) else {
                continue;
            };
            let sig = B64.decode(&a.signature).unwrap_or_default();
            let Ok(vouched) = vouched_keys(&list, &a.vouched) else {
                continue;
            };
            if vault.sync_trust_approved(
                &user,
                &a.approver_device_id,
                &d.device_id,
                &d.name,
                &keys,
                &vouched,
                &sig,
            )? {
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
    }
}

/// Approves the waiting device that shows `code`: the code must match the keys the tenant
/// lists for it. Every project key this device holds is sealed to it.
pub async fn approve(vault: &Vault, session: &Session, code: &str) -> Result<Device> {
    let user = user_id(vault)?;
    let me = vault.sync_device()?;
    let list = devices(session).await?;
    let code_half: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect::<String>()
        .to_uppercase();
    let candidate = list
        .iter()
        .filter(|d| d.state == DeviceState::Pending && d.device_id != me.device_id)
        .filter_map(|d| public_of(d).map(|p| (d, p)))
        .find(|(_, p)| p.code_half() == code_half.replace('O', "0").replace(['I', 'L'], "1"));
    let Some((device, keys)) = candidate else {
        return Err(SyncError::Vault(labvault_core::Error::SyncRefused(format!(
            "no device of yours waiting for approval shows the code {code}: check it on the new device (`labvault device pair`); a device whose keys the tenant substituted shows another code"
        ))));
    };
    let (signature, mac, vouched) =
        vault.sync_approve_device(code, &user, &device.device_id, &device.name, &keys)?;
    let mut boxes = Vec::new();
    // Epoch 1 of every project (the key the catalog uses); later epochs of shared projects
    // reach the device through the identity box below and the projects' member boxes.
    for p in vault.sync_projects()?.into_iter().filter(|p| p.remote) {
        let (sealed, sig) =
            vault.sync_seal_project_key(&p.project_id, 1, &device.device_id, &keys)?;
        boxes.push(KeyBox {
            project_id: p.project_id,
            epoch: 1,
            device_id: device.device_id.clone(),
            sealed: B64.encode(sealed),
            signer_device_id: me.device_id.clone(),
            signature: B64.encode(sig),
        });
    }
    // The user's identity travels with the approval (shared projects).
    let identity_box = if vault.sync_identity()?.is_some() {
        let (sealed, sig) = vault.sync_seal_identity(&device.device_id, &keys)?;
        Some(labvault_wire::IdentityBox {
            device_id: device.device_id.clone(),
            sealed: B64.encode(sealed),
            signer_device_id: me.device_id.clone(),
            signature: B64.encode(sig),
        })
    } else {
        None
    };
    let req = ApproveDevice {
        approval: DeviceApproval {
            approver_device_id: me.device_id.clone(),
            signature: B64.encode(signature),
            mac: B64.encode(mac),
            vouched,
        },
        boxes,
        identity_box,
    };
    let id = device.device_id.clone();
    session
        .call(|t| {
            let (api, req, id) = (session.client().clone(), req.clone(), id.clone());
            async move { api.approve_device(&t, &id, &req).await }
        })
        .await
}

/// Revokes a device of the user (from this one) and stops trusting it.
pub async fn revoke(vault: &Vault, session: &Session, device_id: &str) -> Result<()> {
    let id = device_id.to_string();
    session
        .call(|t| {
            let (api, id) = (session.client().clone(), id.clone());
            async move { api.revoke_device(&t, &id).await }
        })
        .await?;
    vault.sync_untrust_device(device_id)?;
    Ok(())
}

/// What reconciling projects did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProjectsReport {
    /// Projects created on the tenant.
    pub created: u64,
    /// Projects installed here from key boxes.
    pub installed: u64,
    /// Key boxes sealed to other devices.
    pub sealed: u64,
    /// Projects of the tenant with no key box for this device yet.
    pub without_keys: u64,
}

/// See the module documentation.
pub async fn reconcile_projects(
    vault: &Vault,
    session: &Session,
    only: Option<&str>,
) -> Result<ProjectsReport> {
    let mut report = ProjectsReport::default();
    let me = vault.sync_device()?;
    let remote = session
        .call(|t| {
            let api = session.client().clone();
            async move { api.projects(&t).await }
        })
        .await?;
    let remote_ids: BTreeSet<String> = remote.iter().map(|p| p.id.clone()).collect();
    let local = vault.sync_projects()?;
    let local_ids: BTreeSet<String> = local.iter().map(|p| p.project_id.clone()).collect();
    let wanted = |id: &str, name: &str| only.is_none_or(|o| o == id || o == name);
    // Local projects the tenant lacks: created with this vault's id and an opaque label.
    for p in local
        .iter()
        .filter(|p| !remote_ids.contains(&p.project_id) && wanted(&p.project_id, &p.name))
    {
        let label = format!("lv-{}", &p.project_id[..8]);
        let id = p.project_id.clone();
        let r = session
            .call(|t| {
                let (api, label, id) = (session.client().clone(), label.clone(), id.clone());
                async move { api.create_project_with_id(&t, &label, &id).await }
            })
            .await;
        match r {
            Ok(_) => report.created += 1,
            // Created by an earlier run whose answer was lost.
            Err(SyncError::Client(ClientError::Api {
                code: ErrorCode::Conflict,
                ..
            })) => {}
            Err(e) => return Err(e),
        }
        vault.sync_project_is_remote(&p.project_id)?;
    }
    // The tenant's projects this device has no key for yet: their key boxes.
    for p in remote
        .iter()
        .filter(|p| !local_ids.contains(&p.id) && only.is_none_or(|o| o == p.id))
    {
        let id = p.id.clone();
        let boxes = session
            .call(|t| {
                let (api, id) = (session.client().clone(), id.clone());
                async move { api.keyring(&t, &id).await }
            })
            .await;
        let boxes = match boxes {
            Ok(b) => b,
            Err(SyncError::Client(ClientError::Api {
                code: ErrorCode::Forbidden | ErrorCode::NotFound,
                ..
            })) => continue,
            Err(e) => return Err(e),
        };
        let mut installed = false;
        for b in boxes.boxes.iter().filter(|b| b.device_id == me.device_id) {
            let sealed = B64.decode(&b.sealed).unwrap_or_default();
            let sig = B64.decode(&b.signature).unwrap_or_default();
            match vault.sync_open_key_box(
                &b.project_id,
                b.epoch,
                &sealed,
                &b.signer_device_id,
                &sig,
            ) {
                Ok(added) => {
                    installed = true;
                    if added {
                        report.installed += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(project = %b.project_id, code = e.code().as_str(), "key box refused")
                }
            }
        }
        if !installed {
            report.without_keys += 1;
        }
    }
    // Every trusted device holds a box of every project key this device has.
    let trusted = vault.sync_trusted_devices()?;
    let peers: Vec<_> = trusted
        .iter()
        .filter(|t| t.device_id != me.device_id)
        .collect();
    if peers.is_empty() {
        return Ok(report);
    }
    for p in vault
        .sync_projects()?
        .into_iter()
        .filter(|p| p.remote && wanted(&p.project_id, &p.name))
    {
        let id = p.project_id.clone();
        let have = match session
            .call(|t| {
                let (api, id) = (session.client().clone(), id.clone());
                async move { api.key_recipients(&t, &id).await }
            })
            .await
        {
            Ok(h) => h,
            // No longer a member of a shared project: its membership log says so (and the
            // copy is wiped there, see `sharing::refresh`).
            Err(SyncError::Client(ClientError::Api {
                code: ErrorCode::Forbidden | ErrorCode::NotFound,
                ..
            })) => continue,
            Err(e) => return Err(e),
        };
        if have.epoch > 1 {
            // Rotated: a shared project's later keys reach the user's devices through their
            // identity (member boxes), not device key boxes.
            continue;
        }
        let mut boxes = Vec::new();
        for d in peers
            .iter()
            .filter(|d| !have.device_ids.contains(&d.device_id))
        {
            let (sealed, sig) =
                vault.sync_seal_project_key(&p.project_id, have.epoch, &d.device_id, &d.keys)?;
            boxes.push(KeyBox {
                project_id: p.project_id.clone(),
                epoch: have.epoch,
                device_id: d.device_id.clone(),
                sealed: B64.encode(sealed),
                signer_device_id: me.device_id.clone(),
                signature: B64.encode(sig),
            });
        }
        if boxes.is_empty() {
            continue;
        }
        report.sealed += boxes.len() as u64;
        let req = KeyBoxes { boxes };
        match session
            .call(|t| {
                let (api, id, req) = (session.client().clone(), id.clone(), req.clone());
                async move { api.put_keyring(&t, &id, &req).await }
            })
            .await
        {
            Ok(()) => {}
            // A device revoked meanwhile: its box is refused; the next pass seals again.
            Err(SyncError::Client(ClientError::Api {
                code: ErrorCode::Forbidden,
                ..
            })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
