//! This device's sync identity and the devices it trusts.
//!
//! * The tenant this vault syncs with ([`RemoteConfig`]: URL and the server key's pin).
//! * The device's key pairs (X25519, Ed25519), generated once, private halves wrapped by the
//!   root key; the device id is the vault's own (the id of its audit chain).
//! * Pairing: a new device shows a code (its key fingerprint and a secret it keeps);
//!   an approving device checks the fingerprint against the keys the tenant lists, signs an
//!   approval and MACs it with the secret, so the new device can check that its approver saw
//!   the code on its screen. Each side then trusts the other.
//! * Key boxes: project keys sealed to a trusted device and signed by the sealer; a box is
//!   opened only when its signer is trusted, and a box that would change a project's key is
//!   refused.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

use labvault_crypto::{
    approval_statement, seal_key_box, DeviceKeys, DevicePublic, KeyBoxContext, PairingCode,
    PairingSecret, ProjectKey, WrappedKey,
};
use labvault_governance::audit::{actions, resources};

use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::vault::{ts_to_ms, Vault};

/// Kinds of statements a device signs (part of the format).
pub const SIG_KEY_BOX: &str = "key-box";
/// See [`SIG_KEY_BOX`].
pub const SIG_DEVICE_APPROVAL: &str = "device-approval";

/// The tenant this vault syncs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteConfig {
    /// `https://host[:port]`.
    pub url: String,
    /// SPKI pin of the server's key (`sha256/<base64>`).
    pub pin: String,
    /// Tenant slug signed in to.
    pub tenant: Option<String>,
    /// Account email.
    pub email: Option<String>,
    /// Account id.
    pub user_id: Option<String>,
}

/// Where this device stands with the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Keys made, not yet registered.
    Unregistered,
    /// Registered, waiting for another device's approval.
    Pending,
    /// May sync.
    Approved,
    /// Revoked by another device.
    Revoked,
}

impl DeviceState {
    fn as_str(self) -> &'static str {
        match self {
            DeviceState::Unregistered => "unregistered",
            DeviceState::Pending => "pending",
            DeviceState::Approved => "approved",
            DeviceState::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Result<DeviceState> {
        Ok(match s {
            "unregistered" => DeviceState::Unregistered,
            "pending" => DeviceState::Pending,
            "approved" => DeviceState::Approved,
            "revoked" => DeviceState::Revoked,
            other => return Err(Error::CorruptCatalog(format!("device state {other:?}"))),
        })
    }
}

/// This device as the tenant knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceIdentity {
    /// Device id (the vault's device id).
    pub device_id: String,
    /// A label for people.
    pub name: String,
    /// Public keys.
    #[serde(skip)]
    pub keys: DevicePublic,
    /// Registration state.
    pub state: DeviceState,
}

/// A device this one trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedDevice {
    /// Its id.
    pub device_id: String,
    /// Its label.
    pub name: String,
    /// Its public keys.
    #[serde(skip)]
    pub keys: DevicePublic,
    /// How trust was established: `self`, `approved` (by this device), `pairing` (this
    /// device's approver, checked with the pairing secret) or `via:<device id>` (approved by a
    /// trusted device, checked by signature).
    pub via: String,
}

fn key32(b: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| Error::CorruptCatalog(format!("{what} is not 32 bytes")))
}

fn wrapped(b: Vec<u8>, what: &str) -> Result<WrappedKey> {
    WrappedKey::from_bytes(b).map_err(|e| Error::CorruptCatalog(format!("{what}: {e}")))
}

fn device_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.chars().all(|c| !c.is_control()));
    host.unwrap_or_else(|| "device".into())
        .chars()
        .take(64)
        .collect()
}

impl Vault {
    /// The tenant configured for sync, if any.
    pub fn sync_remote(&self) -> Result<Option<RemoteConfig>> {
        let conn = self.reader()?;
        Ok(conn
            .query_row(
                "SELECT url, pin, tenant, email, user_id FROM sync_remote WHERE id = 1",
                [],
                |r| {
                    Ok(RemoteConfig {
                        url: r.get(0)?,
                        pin: r.get(1)?,
                        tenant: r.get(2)?,
                        email: r.get(3)?,
                        user_id: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Configures the tenant (`sync.remote`): from now on every change is tracked, and
    /// everything already in the vault is marked to be sent. Another tenant than the one
    /// configured is refused while any project is synced with it.
    pub fn set_sync_remote(
        &self,
        url: &str,
        pin: &str,
        tenant: Option<&str>,
    ) -> Result<RemoteConfig> {
        self.write_op(
            actions::SYNC_REMOTE,
            || resources::VAULT.into(),
            |w| {
                let now = ts_to_ms(w.vault.now());
                w.commit(actions::SYNC_REMOTE, |tx| {
                    let existing: Option<String> = tx
                        .query_row("SELECT url FROM sync_remote WHERE id = 1", [], |r| r.get(0))
                        .optional()?;
                    if let Some(old) = &existing {
                        let synced: bool = tx.query_row(
                            "SELECT EXISTS (SELECT 1 FROM sync_projects WHERE remote = 1)",
                            [],
                            |r| r.get(0),
                        )?;
                        if old != url && synced {
                            return Err(Error::InvalidArgument(format!(
                                "this vault syncs with {old}; it cannot switch to another tenant while projects are synced there"
                            )));
                        }
                        tx.execute(
                            "UPDATE sync_remote SET url = ?1, pin = ?2, tenant = coalesce(?3, tenant) WHERE id = 1",
                            params![url, pin, tenant],
                        )?;
                    } else {
                        tx.execute(
                            "INSERT INTO sync_remote(id, url, pin, tenant, added_at) VALUES (1, ?1, ?2, ?3, ?4)",
                            params![url, pin, tenant, now],
                        )?;
                        crate::changes::mark_all(tx, None)?;
                    }
                    let detail = format!("url={url} pin={pin}");
                    Ok(((), Subject::new(resources::VAULT, detail)))
                })?;
                Ok(())
            },
        )?;
        self.sync_remote()?
            .ok_or_else(|| Error::Internal("the remote just written is missing".into()))
    }

    /// Records the account signed in (`sync.login`).
    pub fn sync_signed_in(&self, tenant: &str, email: &str, user_id: &str) -> Result<()> {
        self.write_op(
            actions::SYNC_LOGIN,
            || resources::VAULT.into(),
            |w| {
                w.commit(actions::SYNC_LOGIN, |tx| {
                    let n = tx.execute(
                        "UPDATE sync_remote SET tenant = ?1, email = ?2, user_id = ?3 WHERE id = 1",
                        params![tenant, email, user_id],
                    )?;
                    if n == 0 {
                        return Err(Error::InvalidArgument(
                            "no tenant is configured: `labvault remote add URL --pin PIN` first"
                                .into(),
                        ));
                    }
                    Ok((
                        (),
                        Subject::new(resources::VAULT, format!("tenant={tenant} email={email}")),
                    ))
                })
            },
        )
    }

    /// Records a sign-out (`sync.logout`).
    pub fn sync_signed_out(&self) -> Result<()> {
        self.write_op(
            actions::SYNC_LOGOUT,
            || resources::VAULT.into(),
            |w| {
                w.commit(actions::SYNC_LOGOUT, |_| {
                    Ok(((), Subject::on(resources::VAULT)))
                })
            },
        )
    }

    /// This device's identity, its key pairs made (and wrapped by the root key) on first use.
    pub fn sync_device(&self) -> Result<DeviceIdentity> {
        if let Some(d) = self.read_device()? {
            return Ok(d);
        }
        self.write_op(
            actions::SYNC_DEVICE_PAIR,
            || resources::VAULT.into(),
            |w| {
                let keys = DeviceKeys::generate();
                let (x, e) = w
                    .vault
                    .with_keys(|k| Ok(keys.wrap(&k.root, &w.vault.device_id)))?;
                let public = keys.public();
                let now = ts_to_ms(w.vault.now());
                let name = device_name();
                let device_id = w.vault.device_id.clone();
                w.tx(|tx| {
                    tx.execute(
                        "INSERT OR IGNORE INTO sync_device(id, name, x25519_public, ed25519_public,
                            x25519_wrapped, ed25519_wrapped, state, created_at)
                         VALUES (1, ?1, ?2, ?3, ?4, ?5, 'unregistered', ?6)",
                        params![name, public.x25519, public.ed25519, x.as_bytes(), e.as_bytes(), now],
                    )?;
                    tx.execute(
                        "INSERT OR IGNORE INTO sync_trust(device_id, x25519, ed25519, name, via, added_at)
                         VALUES (?1, ?2, ?3, ?4, 'self', ?5)",
                        params![device_id, public.x25519, public.ed25519, name, now],
                    )?;
                    Ok(())
                })
            },
        )?;
        self.read_device()?
            .ok_or_else(|| Error::Internal("the device keys just written are missing".into()))
    }

    fn read_device(&self) -> Result<Option<DeviceIdentity>> {
        let conn = self.reader()?;
        let row: Option<(String, Vec<u8>, Vec<u8>, String)> = conn
            .query_row(
                "SELECT name, x25519_public, ed25519_public, state FROM sync_device WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((name, x, e, state)) = row else {
            return Ok(None);
        };
        Ok(Some(DeviceIdentity {
            device_id: self.device_id.clone(),
            name,
            keys: DevicePublic {
                x25519: key32(x, "device x25519 key")?,
                ed25519: key32(e, "device ed25519 key")?,
            },
            state: DeviceState::parse(&state)?,
        }))
    }

    /// Records this device's registration state.
    pub fn sync_set_device_state(&self, state: DeviceState) -> Result<()> {
        self.sync_bookkeeping(|tx| {
            tx.execute(
                "UPDATE sync_device SET state = ?1 WHERE id = 1",
                [state.as_str()],
            )?;
            Ok(())
        })
    }

    /// The private keys, for one use (never kept outside this call).
    pub(crate) fn with_device_keys<T>(
        &self,
        f: impl FnOnce(&DeviceKeys) -> Result<T>,
    ) -> Result<T> {
        let (x, e): (Vec<u8>, Vec<u8>) = self
            .reader()?
            .query_row(
                "SELECT x25519_wrapped, ed25519_wrapped FROM sync_device WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::InvalidArgument("this device has no sync keys yet".into()))?;
        let (x, e) = (
            wrapped(x, "device x25519 key")?,
            wrapped(e, "device ed25519 key")?,
        );
        let keys = self.with_keys(|k| {
            DeviceKeys::unwrap(&k.root, &x, &e, &self.device_id)
                .map_err(|e| Error::CorruptCatalog(format!("device keys: {e}")))
        })?;
        f(&keys)
    }

    /// Signs a statement of `kind` with this device's Ed25519 key.
    pub fn sync_sign(&self, kind: &str, statement: &[u8]) -> Result<[u8; 64]> {
        self.with_device_keys(|k| Ok(k.sign(kind, statement)))
    }

    /// The pairing code this device shows while it waits for approval (its secret half is
    /// made once and kept in the catalog until the approval arrives; `sync.device_pair`).
    pub fn sync_pairing_code(&self) -> Result<Zeroizing<String>> {
        let me = self.sync_device()?;
        let stored: Option<Vec<u8>> = self.reader()?.query_row(
            "SELECT pairing_secret FROM sync_device WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        let secret = match stored {
            Some(b) => PairingSecret::from_bytes(&Zeroizing::new(b))
                .map_err(|e| Error::CorruptCatalog(format!("pairing secret: {e}")))?,
            None => {
                let s = PairingSecret::generate();
                let bytes = s.to_bytes();
                self.write_op(
                    actions::SYNC_DEVICE_PAIR,
                    || resources::VAULT.into(),
                    |w| {
                        w.commit(actions::SYNC_DEVICE_PAIR, |tx| {
                            tx.execute(
                                "UPDATE sync_device SET pairing_secret = ?1 WHERE id = 1",
                                [&bytes[..]],
                            )?;
                            Ok((
                                (),
                                Subject::new(resources::VAULT, format!("device={}", me.device_id)),
                            ))
                        })
                    },
                )?;
                s
            }
        };
        Ok(secret.code(&me.keys))
    }

    /// Checks the approval of this device by `approver` (signature over the approval
    /// statement, and the MAC keyed by this device's pairing secret); on success the approver
    /// becomes trusted, the secret is dropped and this device is approved.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_accept_approval(
        &self,
        user_id: &str,
        approver_id: &str,
        approver_name: &str,
        approver: &DevicePublic,
        vouched: &[(String, String, DevicePublic)],
        signature: &[u8],
        mac: &[u8],
    ) -> Result<()> {
        let me = self.sync_device()?;
        let stored: Option<Vec<u8>> = self.reader()?.query_row(
            "SELECT pairing_secret FROM sync_device WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        let Some(stored) = stored else {
            return Err(Error::SyncRefused(
                "this device never showed a pairing code, so it cannot check an approval: run `labvault device pair`".into(),
            ));
        };
        let secret = PairingSecret::from_bytes(&Zeroizing::new(stored))
            .map_err(|e| Error::CorruptCatalog(format!("pairing secret: {e}")))?;
        let v: Vec<(String, DevicePublic)> =
            vouched.iter().map(|(id, _, k)| (id.clone(), *k)).collect();
        let statement =
            approval_statement(user_id, approver_id, approver, &me.device_id, &me.keys, &v);
        secret.check_mac(&me.keys, &statement, mac).map_err(|_| {
            Error::SyncRefused(format!(
                "the approval of this device by {approver_id} does not carry this device's pairing code: it was not made by a device that saw the code (a substituted approver is refused)"
            ))
        })?;
        approver
            .verify(SIG_DEVICE_APPROVAL, &statement, signature)
            .map_err(|_| {
                Error::SyncRefused(format!(
                    "the approval by {approver_id} is not signed by that device's key"
                ))
            })?;
        let now = ts_to_ms(self.now());
        self.write_op(
            actions::SYNC_DEVICE_APPROVE,
            || resources::VAULT.into(),
            |w| {
                w.commit(actions::SYNC_DEVICE_APPROVE, |tx| {
                    tx.execute(
                        "UPDATE sync_device SET pairing_secret = NULL, state = 'approved' WHERE id = 1",
                        [],
                    )?;
                    trust(tx, approver_id, approver, approver_name, "pairing", now)?;
                    for (id, name, keys) in vouched {
                        if *id != me.device_id {
                            trust(tx, id, keys, name, &format!("vouched:{approver_id}"), now)?;
                        }
                    }
                    Ok(((), Subject::new(format!("device/{}", me.device_id), format!("approved_by={approver_id} vouched={}", vouched.len()))))
                })
            },
        )
    }

    /// Approves another device of the user from this one, given the code it shows: the code
    /// must match the keys the tenant lists for it. Returns the approval's signature and MAC;
    /// the device becomes trusted here (`sync.device_approve`).
    /// Returns also the ids of the devices vouched for (every other device this one trusts).
    pub fn sync_approve_device(
        &self,
        code: &str,
        user_id: &str,
        device_id: &str,
        device_name: &str,
        device: &DevicePublic,
    ) -> Result<([u8; 64], [u8; 32], Vec<String>)> {
        let me = self.sync_device()?;
        let code = PairingCode::parse(code).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if !code.matches(device) {
            return Err(Error::SyncRefused(format!(
                "the code does not match the keys the tenant lists for device {device_id}: either it is another device's code, or the keys were substituted on the way; nothing was approved"
            )));
        }
        let vouched: Vec<(String, DevicePublic)> = self
            .sync_trusted_devices()?
            .into_iter()
            .filter(|t| t.device_id != me.device_id && t.device_id != device_id)
            .map(|t| (t.device_id, t.keys))
            .collect();
        let statement = approval_statement(
            user_id,
            &me.device_id,
            &me.keys,
            device_id,
            device,
            &vouched,
        );
        let signature = self.sync_sign(SIG_DEVICE_APPROVAL, &statement)?;
        let mac = code.secret.mac(device, &statement);
        let now = ts_to_ms(self.now());
        self.write_op(
            actions::SYNC_DEVICE_APPROVE,
            || format!("device/{device_id}"),
            |w| {
                w.commit(actions::SYNC_DEVICE_APPROVE, |tx| {
                    trust(tx, device_id, device, device_name, "approved", now)?;
                    Ok((
                        (),
                        Subject::new(format!("device/{device_id}"), format!("name={device_name}")),
                    ))
                })
            },
        )?;
        Ok((
            signature,
            mac,
            vouched.into_iter().map(|(id, _)| id).collect(),
        ))
    }

    /// Trusts a device approved by a trusted device, after checking the approver's signature
    /// (over the approval statement with the devices it vouched for, `vouched`).
    #[allow(clippy::too_many_arguments)]
    pub fn sync_trust_approved(
        &self,
        user_id: &str,
        approver_id: &str,
        device_id: &str,
        device_name: &str,
        device: &DevicePublic,
        vouched: &[(String, DevicePublic)],
        signature: &[u8],
    ) -> Result<bool> {
        let trusted = self.sync_trusted_devices()?;
        if trusted.iter().any(|t| t.device_id == device_id) {
            return Ok(false);
        }
        let Some(approver) = trusted.iter().find(|t| t.device_id == approver_id) else {
            return Ok(false);
        };
        let statement = approval_statement(
            user_id,
            approver_id,
            &approver.keys,
            device_id,
            device,
            vouched,
        );
        if approver
            .keys
            .verify(SIG_DEVICE_APPROVAL, &statement, signature)
            .is_err()
        {
            return Ok(false);
        }
        let now = ts_to_ms(self.now());
        self.sync_bookkeeping(|tx| {
            trust(
                tx,
                device_id,
                device,
                device_name,
                &format!("via:{approver_id}"),
                now,
            )
        })?;
        Ok(true)
    }

    /// Devices this one trusts (itself included), not revoked.
    pub fn sync_trusted_devices(&self) -> Result<Vec<TrustedDevice>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT device_id, name, x25519, ed25519, via FROM sync_trust
             WHERE revoked_at IS NULL ORDER BY added_at, device_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (device_id, name, x, e, via) = row?;
            out.push(TrustedDevice {
                device_id,
                name,
                keys: DevicePublic {
                    x25519: key32(x, "trusted x25519 key")?,
                    ed25519: key32(e, "trusted ed25519 key")?,
                },
                via,
            });
        }
        Ok(out)
    }

    /// Stops trusting a revoked device (`sync.device_revoke`).
    pub fn sync_untrust_device(&self, device_id: &str) -> Result<()> {
        let now = ts_to_ms(self.now());
        self.write_op(
            actions::SYNC_DEVICE_REVOKE,
            || format!("device/{device_id}"),
            |w| {
                w.commit(actions::SYNC_DEVICE_REVOKE, |tx| {
                    tx.execute(
                        "UPDATE sync_trust SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL",
                        params![device_id, now],
                    )?;
                    Ok(((), Subject::on(format!("device/{device_id}"))))
                })
            },
        )
    }

    /// Seals the key of `epoch` of a project to a trusted device and signs the box.
    pub fn sync_seal_project_key(
        &self,
        project_id: &str,
        epoch: u32,
        to_id: &str,
        to: &DevicePublic,
    ) -> Result<(Vec<u8>, [u8; 64])> {
        if epoch != 1 {
            return Err(Error::SyncRefused(format!(
                "this device holds no key of epoch {epoch}"
            )));
        }
        let key = self.project_key(project_id)?;
        let ctx = KeyBoxContext {
            project_id,
            epoch,
            device_id: to_id,
        };
        let sealed = seal_key_box(to, &key, &ctx);
        let sig = self.sync_sign(SIG_KEY_BOX, &ctx.statement(&sealed))?;
        Ok((sealed, sig))
    }

    /// Opens a key box sealed to this device, if its signer is trusted and its signature
    /// holds, and installs the project (its key wrapped by this vault's root key) if it is
    /// new here (`sync.keys`). Returns whether a project was added. A box that holds another
    /// key than this device's for the same project is refused.
    pub fn sync_open_key_box(
        &self,
        project_id: &str,
        epoch: u32,
        sealed: &[u8],
        signer_id: &str,
        signature: &[u8],
    ) -> Result<bool> {
        if uuid::Uuid::parse_str(project_id).is_err() {
            return Err(Error::SyncRefused(format!(
                "a key box for {project_id:?}, which is not a project id"
            )));
        }
        if epoch != 1 {
            return Err(Error::SyncRefused(format!(
                "a key box of epoch {epoch}: this version of LabVault reads epoch 1 only"
            )));
        }
        let trusted = self.sync_trusted_devices()?;
        let signer = trusted.iter().find(|t| t.device_id == signer_id).ok_or_else(|| {
            Error::SyncRefused(format!(
                "the key box of project {project_id} is signed by {signer_id}, a device this one does not trust"
            ))
        })?;
        let ctx = KeyBoxContext {
            project_id,
            epoch,
            device_id: &self.device_id,
        };
        signer
            .keys
            .verify(SIG_KEY_BOX, &ctx.statement(sealed), signature)
            .map_err(|_| {
                Error::SyncRefused(format!(
                    "the key box of project {project_id} is not signed by {signer_id}"
                ))
            })?;
        let key: ProjectKey = self.with_device_keys(|k| {
            k.open_key_box(sealed, &ctx).map_err(|_| {
                Error::SyncRefused(format!(
                    "the key box of project {project_id} does not open with this device's key"
                ))
            })
        })?;
        self.install_remote_project(
            project_id,
            &key,
            epoch,
            &format!("epoch={epoch} from={signer_id}"),
        )
    }

    /// Installs a project received from the tenant with its key of epoch 1 (the key the
    /// catalog wraps data keys under; later epochs live in `sync_epoch_keys`), unless it is
    /// already here: then the key must be this device's. Returns whether it was added
    /// (`sync.keys`).
    pub(crate) fn install_remote_project(
        &self,
        project_id: &str,
        key: &ProjectKey,
        epoch: u32,
        detail: &str,
    ) -> Result<bool> {
        let exists: bool = self.reader()?.query_row(
            "SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?1)",
            [project_id],
            |r| r.get(0),
        )?;
        if exists {
            let mine = self.raw_project_key(project_id)?;
            if !labvault_crypto::project_keys_equal(&mine, key) {
                return Err(Error::SyncRefused(format!(
                    "the tenant sent a key for project {project_id} that is not this device's: refused"
                )));
            }
            return Ok(false);
        }
        let wrapped = self.with_keys(|k| Ok(k.root.wrap_project_key(key, project_id)))?;
        let now = ts_to_ms(self.now());
        let placeholder = format!("project-{}", &project_id[..8]);
        self.write_op(
            actions::SYNC_KEYS,
            || resources::project(project_id),
            |w| {
                let actor = w.vault.actor.clone();
                w.commit(actions::SYNC_KEYS, |tx| {
                    let mut name = placeholder.clone();
                    let taken: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM projects WHERE name = ?1)",
                        [&name],
                        |r| r.get(0),
                    )?;
                    if taken {
                        name = format!("project-{project_id}");
                    }
                    tx.execute(
                        "INSERT INTO projects(id, name, wrapped_key, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![project_id, name, wrapped.as_bytes(), now, actor],
                    )?;
                    tx.execute(
                        "INSERT INTO sync_projects(project_id, remote, epoch) VALUES (?1, 1, ?2)
                         ON CONFLICT(project_id) DO UPDATE SET remote = 1",
                        params![project_id, epoch],
                    )?;
                    Ok(((), Subject::new(resources::project(project_id), detail.to_string())))
                })
            },
        )?;
        Ok(true)
    }
}

fn trust(
    tx: &rusqlite::Connection,
    device_id: &str,
    keys: &DevicePublic,
    name: &str,
    via: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO sync_trust(device_id, x25519, ed25519, name, via, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(device_id) DO UPDATE SET x25519 = excluded.x25519, ed25519 = excluded.ed25519,
            name = excluded.name, via = excluded.via, revoked_at = NULL",
        params![device_id, keys.x25519, keys.ed25519, name, via, now],
    )?;
    Ok(())
}
