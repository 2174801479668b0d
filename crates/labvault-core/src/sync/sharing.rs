//! Shared projects on this device (formats and rules: `docs/sharing.md`).
//!
//! * The user's **identity** (X25519 + Ed25519), made on their first device and received by
//!   the others in identity boxes signed by a device this one trusts; private halves wrapped
//!   by the root key, never outside this module.
//! * Each shared project's **membership log**, kept here as verified: what the tenant sends
//!   must extend it (a log that shrinks or changes is refused), the whole log is folded by
//!   [`Membership::verify`], every identity it names is pinned at first sight (a swapped key
//!   is refused), and the member boxes of the current epoch must be held by exactly the
//!   members.
//! * **Epoch keys**: the key of epoch 1 is the project key the catalog wraps data keys under;
//!   later epochs (opened from this user's member box, then walked back through the epoch
//!   links) are kept in `sync_epoch_keys`, wrapped by the root key. Payloads and the data keys
//!   inside them travel under the current epoch's key.
//! * The **offline lease**: a shared project that has not heard from the tenant within the
//!   lab's lease locks (its content cannot be opened) until the device reconnects.
//! * The **wipe**: a project this user was removed from (a verified removal in its log), or
//!   every synced project of a revoked device, is crypto-erased here.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use labvault_crypto::{
    link_epoch, open_epoch_link, seal_member_box, DevicePublic, EntryBody, IdentityBoxContext,
    IdentityKeys, IdentityPublic, LogEntry, MemberBoxContext, MemberRole, ProjectKey,
    UnsignedEntry, WrappedKey,
};
use labvault_governance::audit::{actions, resources};

use super::membership::Membership;
use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::vault::{ts_to_ms, Vault};

/// Kind of the statement a device signs over an identity box (part of the format).
pub const SIG_IDENTITY_BOX: &str = "identity-box";

const DAY_MS: i64 = 86_400_000;

/// The user's identity as this device holds it (public halves only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityInfo {
    /// Account id.
    pub user_id: String,
    /// Public keys.
    pub public: IdentityPublic,
}

impl IdentityInfo {
    /// The safety number others compare (`docs/sharing.md`).
    pub fn safety_number(&self) -> String {
        self.public.safety_number(&self.user_id)
    }
}

/// A member of a shared project, as the verified log says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// Account id.
    pub user_id: String,
    /// Role (`owner`, `admin`, `editor`, `viewer`).
    pub role: &'static str,
    /// Safety number of their identity.
    pub safety_number: String,
}

/// A shared project's membership as this device verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MembershipView {
    /// Project id.
    pub project_id: String,
    /// Current key epoch.
    pub epoch: u32,
    /// Members by user id.
    pub members: Vec<MemberInfo>,
    /// This user's role, if a member.
    pub my_role: Option<&'static str>,
    /// A member left or a device was revoked since the last rotation.
    pub rotation_owed: bool,
    /// Entries in the log.
    pub length: u64,
    /// When the key last rotated (or the project was shared), ms.
    pub last_rotation_ms: i64,
    /// The tenant's offline lease (days), once known.
    pub lease_days: Option<u32>,
    /// The tenant's automatic rotation period (days; 0 = never), once known.
    pub rotation_days: Option<u32>,
    /// Last time the tenant confirmed this device's membership (ms).
    pub contact_at: Option<i64>,
}

/// What the tenant sent about a project's membership (decoded, not yet trusted).
#[derive(Debug, Clone, Default)]
pub struct RemoteMembership {
    /// Entries from the length this device holds, in order.
    pub entries: Vec<Vec<u8>>,
    /// Entries in the tenant's log.
    pub length: u64,
    /// Member boxes sealed to this user: (epoch, sealed).
    pub boxes: Vec<(u32, Vec<u8>)>,
    /// Epoch links: (epoch, wrapped previous key).
    pub links: Vec<(u32, Vec<u8>)>,
    /// Members holding a box of the current epoch.
    pub box_holders: Vec<String>,
    /// The tenant's offline lease (days).
    pub lease_days: u32,
    /// The tenant's automatic rotation period (days; 0 = never).
    pub rotation_days: u32,
}

/// What accepting a membership log led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipOutcome {
    /// This user is a member.
    Member {
        /// The verified state.
        view: MembershipView,
        /// The project was installed here now.
        installed: bool,
        /// This device moved to a newer key epoch now.
        new_epoch: bool,
    },
    /// The verified log removes this user: the engine wipes the local copy.
    Removed {
        /// The entry that removed them.
        seq: u64,
    },
}

/// A rotation prepared here, waiting for the tenant to accept it.
#[derive(Debug)]
pub struct PreparedRotation {
    /// The signed `rotate` entry.
    pub entry: Vec<u8>,
    /// The new epoch.
    pub epoch: u32,
    /// The new key sealed to each member: (user id, sealed).
    pub boxes: Vec<(String, Vec<u8>)>,
    /// The previous key wrapped under the new one.
    pub link: Vec<u8>,
}

/// What a wipe removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WipeReport {
    /// Project id.
    pub project_id: String,
    /// Items removed.
    pub items: u64,
    /// Local changes that had not reached the tenant and are lost with the copy.
    pub unsent: u64,
}

fn role_name(r: MemberRole) -> &'static str {
    match r {
        MemberRole::Owner => "owner",
        MemberRole::Admin => "admin",
        MemberRole::Editor => "editor",
        MemberRole::Viewer => "viewer",
    }
}

/// Parses a role name (`owner`, `admin`, `editor`, `viewer`).
pub fn parse_role(s: &str) -> Result<MemberRole> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "owner" => MemberRole::Owner,
        "admin" => MemberRole::Admin,
        "editor" => MemberRole::Editor,
        "viewer" => MemberRole::Viewer,
        other => {
            return Err(Error::InvalidArgument(format!(
                "role {other:?}: use owner, admin, editor or viewer"
            )))
        }
    })
}

fn key32(b: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| Error::CorruptCatalog(format!("{what} is not 32 bytes")))
}

fn wrapped(b: Vec<u8>, what: &str) -> Result<WrappedKey> {
    WrappedKey::from_bytes(b).map_err(|e| Error::CorruptCatalog(format!("{what}: {e}")))
}

/// The root-key wrap context of a project's epoch key (`n >= 2`; epoch 1 is the project key,
/// wrapped with the project id alone). Project ids are UUIDs, so no context collides.
fn epoch_context(project_id: &str, epoch: u32) -> String {
    format!("{project_id}/epoch/{epoch}")
}

/// The statement a device signs over an identity box: the box's binding and its bytes.
pub fn identity_box_statement(ctx: &IdentityBoxContext<'_>, sealed: &[u8]) -> Vec<u8> {
    let mut s = ctx.aad();
    s.extend_from_slice(sealed);
    s
}

fn refused(project_id: &str, why: impl std::fmt::Display) -> Error {
    Error::SyncRefused(format!("shared project {project_id}: {why}"))
}

impl Vault {
    // ------------------------------------------------------------------ identity

    /// The user's identity on this device, if it holds one.
    pub fn sync_identity(&self) -> Result<Option<IdentityInfo>> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> = self
            .reader()?
            .query_row(
                "SELECT user_id, x25519_public, ed25519_public FROM sync_identity WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(user_id, x, e)| {
            Ok(IdentityInfo {
                user_id,
                public: IdentityPublic {
                    x25519: key32(x, "identity x25519 key")?,
                    ed25519: key32(e, "identity ed25519 key")?,
                },
            })
        })
        .transpose()
    }

    fn store_identity(
        &self,
        user_id: &str,
        keys: &IdentityKeys,
        via: &str,
    ) -> Result<IdentityInfo> {
        let (x, e) = self.with_keys(|k| Ok(keys.wrap(&k.root, user_id)))?;
        let public = keys.public();
        let now = ts_to_ms(self.now());
        self.write_op(
            actions::SYNC_IDENTITY,
            || format!("user/{user_id}"),
            |w| {
                w.commit(actions::SYNC_IDENTITY, |tx| {
                    let existing: Option<String> = tx
                        .query_row("SELECT user_id FROM sync_identity WHERE id = 1", [], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    if let Some(other) = existing {
                        return Err(Error::InvalidArgument(format!(
                            "this device already holds the identity of {other}"
                        )));
                    }
                    tx.execute(
                        "INSERT INTO sync_identity(id, user_id, x25519_public, ed25519_public,
                            x25519_wrapped, ed25519_wrapped, via, created_at)
                         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            user_id,
                            public.x25519,
                            public.ed25519,
                            x.as_bytes(),
                            e.as_bytes(),
                            via,
                            now
                        ],
                    )?;
                    let number = public.safety_number(user_id);
                    Ok((
                        (),
                        Subject::new(
                            format!("user/{user_id}"),
                            format!("{via} safety_number={number}"),
                        ),
                    ))
                })
            },
        )?;
        Ok(IdentityInfo {
            user_id: user_id.to_string(),
            public,
        })
    }

    /// Makes the user's identity here (their first device; `sync.identity`).
    pub fn sync_make_identity(&self, user_id: &str) -> Result<IdentityInfo> {
        self.store_identity(user_id, &IdentityKeys::generate(), "made")
    }

    /// The identity's private keys, for one use.
    fn with_identity<T>(&self, f: impl FnOnce(&IdentityKeys, &str) -> Result<T>) -> Result<T> {
        let (user, x, e): (String, Vec<u8>, Vec<u8>) = self
            .reader()?
            .query_row(
                "SELECT user_id, x25519_wrapped, ed25519_wrapped FROM sync_identity WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "this device does not hold your identity yet: sync once, or approve it from a device that does".into(),
                )
            })?;
        let (x, e) = (
            wrapped(x, "identity x25519 key")?,
            wrapped(e, "identity ed25519 key")?,
        );
        let keys = self.with_keys(|k| {
            IdentityKeys::unwrap(&k.root, &x, &e, &user)
                .map_err(|e| Error::CorruptCatalog(format!("identity keys: {e}")))
        })?;
        f(&keys, &user)
    }

    /// Seals the identity to another device of the user and signs the box with this
    /// device's key.
    pub fn sync_seal_identity(
        &self,
        to_id: &str,
        to: &DevicePublic,
    ) -> Result<(Vec<u8>, [u8; 64])> {
        let sealed = self.with_identity(|k, user| {
            Ok(k.seal_to_device(
                to,
                &IdentityBoxContext {
                    user_id: user,
                    device_id: to_id,
                },
            ))
        })?;
        let user = self.sync_identity()?.map(|i| i.user_id).unwrap_or_default();
        let ctx = IdentityBoxContext {
            user_id: &user,
            device_id: to_id,
        };
        let sig = self.sync_sign(SIG_IDENTITY_BOX, &identity_box_statement(&ctx, &sealed))?;
        Ok((sealed, sig))
    }

    /// Opens the identity box sealed to this device, if its signer is a trusted device of
    /// the user and it holds the identity the tenant registered (`expected`); keeps it.
    pub fn sync_open_identity_box(
        &self,
        user_id: &str,
        expected: &IdentityPublic,
        sealed: &[u8],
        signer_id: &str,
        signature: &[u8],
    ) -> Result<IdentityInfo> {
        let trusted = self.sync_trusted_devices()?;
        let signer = trusted
            .iter()
            .find(|t| t.device_id == signer_id)
            .ok_or_else(|| {
                Error::SyncRefused(format!(
                    "your identity box is signed by {signer_id}, a device this one does not trust"
                ))
            })?;
        let ctx = IdentityBoxContext {
            user_id,
            device_id: &self.device_id,
        };
        signer
            .keys
            .verify(
                SIG_IDENTITY_BOX,
                &identity_box_statement(&ctx, sealed),
                signature,
            )
            .map_err(|_| {
                Error::SyncRefused(format!("your identity box is not signed by {signer_id}"))
            })?;
        let keys = self.with_device_keys(|d| {
            IdentityKeys::open_identity_box(d, sealed, &ctx, expected).map_err(|_| {
                Error::SyncRefused(
                    "your identity box does not open with this device's key, or holds another identity than the one registered".into(),
                )
            })
        })?;
        self.store_identity(user_id, &keys, &format!("box:{signer_id}"))
    }

    /// Pins another user's identity at first sight; a different key later is refused.
    pub fn sync_pin_identity(&self, user_id: &str, public: &IdentityPublic) -> Result<()> {
        if let Some(me) = self.sync_identity()? {
            if me.user_id == user_id {
                if me.public != *public {
                    return Err(Error::SyncRefused(format!(
                        "the tenant names another identity key for you ({user_id}) than the one this device holds"
                    )));
                }
                return Ok(());
            }
        }
        let known: Option<(Vec<u8>, Vec<u8>)> = self
            .reader()?
            .query_row(
                "SELECT x25519, ed25519 FROM sync_identities WHERE user_id = ?1",
                [user_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match known {
            Some((x, e)) if x == public.x25519 && e == public.ed25519 => Ok(()),
            Some(_) => Err(Error::SyncRefused(format!(
                "the identity key of {user_id} differs from the one this device saw first: refused (compare safety numbers with them: `labvault fingerprint`)"
            ))),
            None => {
                let now = ts_to_ms(self.now());
                self.sync_bookkeeping(|tx| {
                    tx.execute(
                        "INSERT OR IGNORE INTO sync_identities(user_id, x25519, ed25519, first_seen_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![user_id, public.x25519, public.ed25519, now],
                    )?;
                    Ok(())
                })
            }
        }
    }

    // ------------------------------------------------------------------ epoch keys

    /// A project's key of `epoch` (epoch 1: the project key).
    pub(crate) fn epoch_key(&self, project_id: &str, epoch: u32) -> Result<ProjectKey> {
        if epoch <= 1 {
            return self.raw_project_key(project_id);
        }
        let bytes: Vec<u8> = self
            .reader()?
            .query_row(
                "SELECT wrapped FROM sync_epoch_keys WHERE project_id = ?1 AND epoch = ?2",
                params![project_id, epoch],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| {
                Error::SyncRefused(format!(
                    "project {project_id}: this device holds no key of epoch {epoch}"
                ))
            })?;
        let w = wrapped(bytes, "epoch key")?;
        self.with_keys(|k| {
            k.root
                .unwrap_project_key(&w, &epoch_context(project_id, epoch))
                .map_err(|e| {
                    Error::CorruptCatalog(format!("epoch {epoch} key of {project_id}: {e}"))
                })
        })
    }

    // ------------------------------------------------------------------ membership log

    fn stored_log(&self, project_id: &str) -> Result<Vec<LogEntry>> {
        let conn = self.reader()?;
        let mut st =
            conn.prepare("SELECT entry FROM sync_membership WHERE project_id = ?1 ORDER BY seq")?;
        let rows = st.query_map([project_id], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|b| {
            LogEntry::from_bytes(&b?)
                .map_err(|e| Error::CorruptCatalog(format!("stored membership entry: {e}")))
        })
        .collect()
    }

    /// Entries of a project's log this device holds (verified).
    pub fn sync_membership_len(&self, project_id: &str) -> Result<u64> {
        Ok(self.reader()?.query_row(
            "SELECT count(*) FROM sync_membership WHERE project_id = ?1",
            [project_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Folds a log, trusting entry 0's creator as this device knows them (itself, or the
    /// identity pinned at first sight), and pins every identity the log names.
    fn verify_log(&self, project_id: &str, entries: &[LogEntry]) -> Result<Membership> {
        let first = entries
            .first()
            .ok_or_else(|| refused(project_id, "the membership log is empty"))?;
        let creator = match &first.entry.body {
            EntryBody::Add { identity, .. } => *identity,
            _ => return Err(refused(project_id, "membership log entry 0 adds no one")),
        };
        for e in entries {
            if let EntryBody::Add {
                user_id, identity, ..
            } = &e.entry.body
            {
                self.sync_pin_identity(user_id, identity)
                    .map_err(|err| refused(project_id, format!("entry {}: {err}", e.entry.seq)))?;
            }
        }
        Membership::verify(entries, &creator).map_err(|e| refused(project_id, e))
    }

    fn view_of(
        &self,
        project_id: &str,
        m: &Membership,
        entries: &[LogEntry],
    ) -> Result<MembershipView> {
        let me = self.sync_identity()?.map(|i| i.user_id);
        let last_rotation_ms = entries
            .iter()
            .rev()
            .find(|e| matches!(e.entry.body, EntryBody::Rotate { .. }) || e.entry.seq == 0)
            .map(|e| e.entry.at_ms)
            .unwrap_or(0);
        let (lease_days, rotation_days, contact_at): (Option<i64>, Option<i64>, Option<i64>) = self
            .reader()?
            .query_row(
                "SELECT lease_days, rotation_days, contact_at FROM sync_projects WHERE project_id = ?1",
                [project_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .unwrap_or((None, None, None));
        Ok(MembershipView {
            project_id: project_id.to_string(),
            epoch: m.epoch(),
            members: m
                .members()
                .iter()
                .map(|(id, mm)| MemberInfo {
                    user_id: id.clone(),
                    role: role_name(mm.role),
                    safety_number: mm.identity.safety_number(id),
                })
                .collect(),
            my_role: me
                .as_deref()
                .and_then(|u| m.members().get(u))
                .map(|mm| role_name(mm.role)),
            rotation_owed: m.rotation_owed(),
            length: entries.len() as u64,
            last_rotation_ms,
            lease_days: lease_days.map(|d| d as u32),
            rotation_days: rotation_days.map(|d| d as u32),
            contact_at,
        })
    }

    /// A shared project's membership as verified here (`None`: not shared yet).
    pub fn sync_membership(&self, project_id: &str) -> Result<Option<MembershipView>> {
        let entries = self.stored_log(project_id)?;
        if entries.is_empty() {
            return Ok(None);
        }
        let m = self.verify_log(project_id, &entries)?;
        Ok(Some(self.view_of(project_id, &m, &entries)?))
    }

    /// Checks what the tenant sent against the log verified here, opens this user's key of
    /// the current epoch (and, through the links, every earlier one), installs the project if
    /// it is new here, and records the entries, the keys, the tenant's policy and the contact
    /// (which renews the offline lease). Refuses (`sync_refused`, nothing changed) a log that
    /// does not extend the one held here, fails verification, seals the current epoch to
    /// anyone but exactly the members, or gives this user no working key.
    pub fn sync_accept_membership(
        &self,
        project_id: &str,
        remote: RemoteMembership,
    ) -> Result<MembershipOutcome> {
        if uuid::Uuid::parse_str(project_id).is_err() {
            return Err(Error::SyncRefused(format!(
                "the tenant names a project {project_id:?}, which is not a project id"
            )));
        }
        let mut entries = self.stored_log(project_id)?;
        let held = entries.len() as u64;
        if remote.length < held {
            return Err(refused(
                project_id,
                format!(
                    "the tenant's membership log has {} entries, fewer than the {held} this device verified: entries were removed",
                    remote.length
                ),
            ));
        }
        if held + remote.entries.len() as u64 != remote.length {
            return Err(refused(
                project_id,
                "the tenant sent a membership log whose length does not match its entries",
            ));
        }
        for (i, b) in remote.entries.iter().enumerate() {
            let e = LogEntry::from_bytes(b).map_err(|err| {
                refused(
                    project_id,
                    format!("membership log entry {}: {err}", held + i as u64),
                )
            })?;
            entries.push(e);
        }
        let m = self.verify_log(project_id, &entries)?;
        let me = self.sync_identity()?.ok_or_else(|| {
            Error::InvalidArgument("this device does not hold your identity yet".into())
        })?;
        if !m.members().contains_key(&me.user_id) {
            let removal = entries.iter().rev().find(|e| {
                matches!(&e.entry.body, EntryBody::Remove { user_id } if *user_id == me.user_id)
            });
            return match removal {
                Some(e) => Ok(MembershipOutcome::Removed { seq: e.entry.seq }),
                None => Err(refused(
                    project_id,
                    "the membership log does not list you as a member",
                )),
            };
        }
        if m.members().get(&me.user_id).map(|x| x.identity) != Some(me.public) {
            return Err(refused(
                project_id,
                "the membership log lists another identity for you than the one this device holds",
            ));
        }
        m.check_box_holders(remote.box_holders.iter().map(String::as_str))
            .map_err(|e| refused(project_id, e))?;
        // This user's key of the current epoch, then every earlier one through the links.
        let epoch = m.epoch();
        let sealed = remote
            .boxes
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, s)| s)
            .ok_or_else(|| {
                refused(
                    project_id,
                    format!("the tenant holds no key of epoch {epoch} sealed to you"),
                )
            })?;
        let ctx = MemberBoxContext {
            project_id,
            epoch,
            user_id: &me.user_id,
        };
        let mut keys: Vec<(u32, ProjectKey)> = Vec::new();
        let current = self.with_identity(|k, _| {
            k.open_member_box(sealed, &ctx).map_err(|_| {
                refused(
                    project_id,
                    format!("your key box of epoch {epoch} does not open"),
                )
            })
        })?;
        keys.push((epoch, current));
        for n in (2..=epoch).rev() {
            let link = remote
                .links
                .iter()
                .find(|(e, _)| *e == n)
                .map(|(_, l)| l)
                .ok_or_else(|| {
                    refused(
                        project_id,
                        format!("the link from epoch {n} to {} is missing", n - 1),
                    )
                })?;
            let link = WrappedKey::from_bytes(link.clone())
                .map_err(|e| refused(project_id, format!("the link of epoch {n}: {e}")))?;
            let newer = &keys.last().expect("one key").1;
            let older = open_epoch_link(newer, &link, project_id, n).map_err(|_| {
                refused(
                    project_id,
                    format!("the link of epoch {n} does not open under its key"),
                )
            })?;
            keys.push((n - 1, older));
        }
        let base = &keys.last().expect("epoch 1").1;
        let installed = self.install_remote_project(
            project_id,
            base,
            1,
            &format!("from=membership epoch={epoch}"),
        )?;
        // Later epochs, wrapped by the root key; one this device holds must not change.
        let mut wrapped_epochs = Vec::new();
        for (n, k) in keys.iter().filter(|(n, _)| *n >= 2) {
            if let Ok(held) = self.epoch_key(project_id, *n) {
                if !labvault_crypto::project_keys_equal(&held, k) {
                    return Err(refused(
                        project_id,
                        format!("the key of epoch {n} differs from the one this device holds"),
                    ));
                }
                continue;
            }
            let w = self
                .with_keys(|kk| Ok(kk.root.wrap_project_key(k, &epoch_context(project_id, *n))))?;
            wrapped_epochs.push((*n, w));
        }
        let now = ts_to_ms(self.now());
        let new_entries: Vec<LogEntry> = entries[held as usize..].to_vec();
        let old_epoch: u32 = self.reader()?.query_row(
            "SELECT epoch FROM sync_projects WHERE project_id = ?1",
            [project_id],
            |r| r.get(0),
        )?;
        let new_epoch = epoch > old_epoch;
        let members = m.members().len() as i64;
        self.write_op(
            actions::SYNC_MEMBERSHIP,
            || resources::project(project_id),
            |w| {
                let n = new_entries.len() + usize::from(new_entries.is_empty());
                w.commit_each(actions::SYNC_MEMBERSHIP, n, |tx, i| {
                    if i == 0 {
                        for (n, wk) in &wrapped_epochs {
                            tx.execute(
                                "INSERT OR IGNORE INTO sync_epoch_keys(project_id, epoch, wrapped) VALUES (?1, ?2, ?3)",
                                params![project_id, n, wk.as_bytes()],
                            )?;
                        }
                        tx.execute(
                            "UPDATE sync_projects SET epoch = max(epoch, ?2), lease_days = ?3, rotation_days = ?4,
                                contact_at = ?5, members = ?6 WHERE project_id = ?1",
                            params![project_id, epoch, remote.lease_days, remote.rotation_days, now, members],
                        )?;
                        if new_epoch {
                            reseal_outbox(tx, project_id)?;
                        }
                    }
                    let Some(e) = new_entries.get(i) else {
                        return Ok(((), Subject::new(resources::project(project_id), format!("contact epoch={epoch}"))));
                    };
                    tx.execute(
                        "INSERT INTO sync_membership(project_id, seq, entry) VALUES (?1, ?2, ?3)",
                        params![project_id, e.entry.seq as i64, e.to_bytes()],
                    )?;
                    Ok(((), Subject::new(resources::project(project_id), describe(e))))
                })?;
                Ok(())
            },
        )?;
        let entries_now = self.stored_log(project_id)?;
        Ok(MembershipOutcome::Member {
            view: self.view_of(project_id, &m, &entries_now)?,
            installed,
            new_epoch,
        })
    }

    /// Records that the tenant was reached for a shared project whose log did not change
    /// (renews the offline lease).
    pub fn sync_touch_contact(&self, project_id: &str) -> Result<()> {
        let now = ts_to_ms(self.now());
        self.sync_bookkeeping(|tx| {
            tx.execute(
                "UPDATE sync_projects SET contact_at = ?2 WHERE project_id = ?1",
                params![project_id, now],
            )?;
            Ok(())
        })
    }

    // ------------------------------------------------------------------ signing changes

    fn sign_next(&self, project_id: &str, body: EntryBody) -> Result<(LogEntry, Membership)> {
        let entries = self.stored_log(project_id)?;
        let m = self.verify_log(project_id, &entries)?;
        let now = ts_to_ms(self.now());
        let e = self.with_identity(|k, user| {
            Ok(k.sign_entry(UnsignedEntry {
                project_id: project_id.to_string(),
                seq: entries.len() as u64,
                prev_hash: m.head(),
                at_ms: now,
                signer: user.to_string(),
                body,
            }))
        })?;
        // What the members' clients will check, checked here first.
        let mut after = m.clone();
        after.apply(&e).map_err(|err| match err {
            Error::SyncRefused(why) => Error::InvalidArgument(why),
            other => other,
        })?;
        Ok((e, after))
    }

    /// Opens a project's log: entry 0 adds this user as its Owner, with their box of epoch 1.
    /// Returns (entry, box).
    pub fn sync_genesis(&self, project_id: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        if self.sync_membership_len(project_id)? > 0 {
            return Err(Error::InvalidArgument(format!(
                "project {project_id} already has a membership log"
            )));
        }
        let me = self.sync_identity()?.ok_or_else(|| {
            Error::InvalidArgument("this device does not hold your identity yet".into())
        })?;
        let now = ts_to_ms(self.now());
        let e = self.with_identity(|k, user| {
            Ok(k.sign_entry(UnsignedEntry {
                project_id: project_id.to_string(),
                seq: 0,
                prev_hash: [0; 32],
                at_ms: now,
                signer: user.to_string(),
                body: EntryBody::Add {
                    user_id: user.to_string(),
                    role: MemberRole::Owner,
                    identity: me.public,
                },
            }))
        })?;
        let key = self.raw_project_key(project_id)?;
        let sealed = seal_member_box(
            &me.public,
            &key,
            &MemberBoxContext {
                project_id,
                epoch: 1,
                user_id: &me.user_id,
            },
        );
        Ok((e.to_bytes(), sealed))
    }

    /// Signs the addition of a member with the identity the tenant lists for them (pinned
    /// here; compare its safety number with them) and seals the current epoch's key to it.
    /// Returns (entry, box, epoch).
    pub fn sync_sign_add(
        &self,
        project_id: &str,
        user_id: &str,
        role: MemberRole,
        identity: &IdentityPublic,
    ) -> Result<(Vec<u8>, Vec<u8>, u32)> {
        self.sync_pin_identity(user_id, identity)?;
        let (e, after) = self.sign_next(
            project_id,
            EntryBody::Add {
                user_id: user_id.to_string(),
                role,
                identity: *identity,
            },
        )?;
        let epoch = after.epoch();
        let key = self.epoch_key(project_id, epoch)?;
        let sealed = seal_member_box(
            identity,
            &key,
            &MemberBoxContext {
                project_id,
                epoch,
                user_id,
            },
        );
        Ok((e.to_bytes(), sealed, epoch))
    }

    /// Signs a removal, a role change or a revoked device (no keys travel with these).
    pub fn sync_sign_change(&self, project_id: &str, body: EntryBody) -> Result<Vec<u8>> {
        if matches!(body, EntryBody::Add { .. } | EntryBody::Rotate { .. }) {
            return Err(Error::InvalidArgument(
                "additions and rotations carry keys: use their own calls".into(),
            ));
        }
        Ok(self.sign_next(project_id, body)?.0.to_bytes())
    }

    /// Prepares a rotation: a fresh key for the next epoch, sealed to every member of the
    /// verified log, linked to the current key, and the signed `rotate` entry. The new key
    /// itself is not kept: it comes back through this user's own box once the tenant
    /// accepted the entry, so a refused rotation leaves nothing behind.
    pub fn sync_prepare_rotation(&self, project_id: &str) -> Result<PreparedRotation> {
        let entries = self.stored_log(project_id)?;
        let m = self.verify_log(project_id, &entries)?;
        let epoch = m.epoch() + 1;
        let (e, after) = self.sign_next(project_id, EntryBody::Rotate { epoch })?;
        let current = self.epoch_key(project_id, m.epoch())?;
        let fresh = ProjectKey::generate();
        let boxes = after
            .members()
            .iter()
            .map(|(user, mm)| {
                (
                    user.clone(),
                    seal_member_box(
                        &mm.identity,
                        &fresh,
                        &MemberBoxContext {
                            project_id,
                            epoch,
                            user_id: user,
                        },
                    ),
                )
            })
            .collect();
        let link = link_epoch(&fresh, &current, project_id, epoch);
        Ok(PreparedRotation {
            entry: e.to_bytes(),
            epoch,
            boxes,
            link: link.as_bytes().to_vec(),
        })
    }

    /// Whether this device should rotate a project now: it is an Owner or Admin and the log
    /// owes a rotation, the tenant asks for one (a member's device was revoked), or the
    /// tenant's rotation period has passed since the last one.
    pub fn sync_rotation_due(&self, project_id: &str, tenant_asks: bool) -> Result<Option<String>> {
        let Some(v) = self.sync_membership(project_id)? else {
            return Ok(None);
        };
        if !matches!(v.my_role, Some("owner" | "admin")) {
            return Ok(None);
        }
        if v.rotation_owed {
            return Ok(Some("a member left or a device was revoked".into()));
        }
        if tenant_asks {
            return Ok(Some(
                "the tenant reports a revoked device of a member".into(),
            ));
        }
        if let Some(days) = v.rotation_days.filter(|d| *d > 0) {
            let now = ts_to_ms(self.now());
            if now - v.last_rotation_ms >= i64::from(days) * DAY_MS {
                return Ok(Some(format!("the lab rotates keys every {days} days")));
            }
        }
        Ok(None)
    }

    // ------------------------------------------------------------------ lease and wipe

    /// Why a shared project is locked on this device (its offline lease ran out), or `None`
    /// when its content is readable: what the app shows beside the project.
    pub fn sync_project_locked(&self, project_id: &str) -> Result<Option<String>> {
        match self.check_lease(project_id) {
            Ok(()) => Ok(None),
            Err(Error::ProjectLocked(why)) => Ok(Some(why)),
            Err(e) => Err(e),
        }
    }

    /// Refuses content access to a shared project (more than one member) whose last contact
    /// with the tenant is older than the lab's offline lease.
    pub(crate) fn check_lease(&self, project_id: &str) -> Result<()> {
        let row: Option<(Option<i64>, Option<i64>, i64)> = self
            .reader()?
            .query_row(
                "SELECT lease_days, contact_at, members FROM sync_projects WHERE project_id = ?1",
                [project_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((Some(days), Some(contact), members)) = row else {
            return Ok(());
        };
        if members < 2 {
            return Ok(());
        }
        let now = ts_to_ms(self.now());
        if now - contact > days * DAY_MS {
            let away = (now - contact) / DAY_MS;
            return Err(Error::ProjectLocked(format!(
                "project {project_id} is shared and this device has not reached the tenant for {away} days; the lab allows {days}: reconnect and sync to unlock it"
            )));
        }
        Ok(())
    }

    /// Crypto-erases the local copy of a project this device lost (`reason` says why):
    /// its keys (project, epoch and data keys) are overwritten and deleted, the WAL is
    /// truncated, then its blobs are removed and its records dropped (`sync.wipe`).
    pub fn sync_wipe_project(&self, project_id: &str, reason: &str) -> Result<WipeReport> {
        self.write_op(
            actions::SYNC_WIPE,
            || resources::project(project_id),
            |w| {
                w.mark_blobs_unsettled()?;
                let (report, own, packs) = w.commit(actions::SYNC_WIPE, |tx| {
                    let items: i64 = tx.query_row(
                        "SELECT count(*) FROM items WHERE project_id = ?1",
                        [project_id],
                        |r| r.get(0),
                    )?;
                    let unsent: i64 = tx.query_row(
                        "SELECT (SELECT count(*) FROM sync_dirty WHERE project_id = ?1)
                              + (SELECT count(*) FROM sync_outbox WHERE project_id = ?1)",
                        [project_id],
                        |r| r.get(0),
                    )?;
                    let mut own = Vec::new();
                    let mut packs = BTreeSet::new();
                    {
                        let mut st = tx.prepare(
                            "SELECT v.blob_id, v.pack_id FROM item_versions v JOIN items i ON i.id = v.item_id
                             WHERE i.project_id = ?1 AND v.blob_id IS NOT NULL",
                        )?;
                        let rows = st.query_map([project_id], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                        })?;
                        for row in rows {
                            match row? {
                                (_, Some(p)) => {
                                    packs.insert(p);
                                }
                                (b, None) => own.push(b),
                            }
                        }
                    }
                    // Overwrite key material in place first so no page keeps it, then drop.
                    tx.execute(
                        "UPDATE item_versions SET wrapped_data_key = zeroblob(length(wrapped_data_key))
                         WHERE wrapped_data_key IS NOT NULL AND item_id IN (SELECT id FROM items WHERE project_id = ?1)",
                        [project_id],
                    )?;
                    tx.execute(
                        "UPDATE projects SET wrapped_key = zeroblob(length(wrapped_key)) WHERE id = ?1",
                        [project_id],
                    )?;
                    tx.execute(
                        "UPDATE sync_epoch_keys SET wrapped = zeroblob(length(wrapped)) WHERE project_id = ?1",
                        [project_id],
                    )?;
                    for sql in [
                        "DELETE FROM item_versions WHERE item_id IN (SELECT id FROM items WHERE project_id = ?1)",
                        "DELETE FROM sync_items WHERE project_id = ?1",
                        "DELETE FROM sync_dirty WHERE project_id = ?1",
                        "DELETE FROM sync_outbox WHERE project_id = ?1",
                        "DELETE FROM sync_refused WHERE project_id = ?1",
                        "DELETE FROM sync_membership WHERE project_id = ?1",
                        "DELETE FROM sync_epoch_keys WHERE project_id = ?1",
                        "DELETE FROM holds WHERE target_id = ?1 OR target_id IN (SELECT id FROM items WHERE project_id = ?1)",
                        "DELETE FROM items WHERE project_id = ?1",
                        "DELETE FROM sync_projects WHERE project_id = ?1",
                        "DELETE FROM projects WHERE id = ?1",
                    ] {
                        tx.execute(sql, [project_id])?;
                    }
                    let report = WipeReport {
                        project_id: project_id.to_string(),
                        items: items as u64,
                        unsent: unsent as u64,
                    };
                    let detail = format!("reason={reason} items={items} unsent={unsent}");
                    Ok(((report, own, packs), Subject::new(resources::project(project_id), detail)))
                })?;
                w.checkpoint_truncate()?;
                crate::items::remove_erased_blobs(w, &own, &packs)?;
                Ok(report)
            },
        )
    }
}

impl Vault {
    /// For a device the tenant revoked: every synced project's local copy is wiped (see
    /// [`Vault::sync_wipe_project`]) and the user's identity is erased from it. Returns the
    /// wipes.
    pub fn sync_wipe_revoked(&self) -> Result<Vec<WipeReport>> {
        let mut out = Vec::new();
        for p in self.sync_projects()?.into_iter().filter(|p| p.remote) {
            out.push(self.sync_wipe_project(&p.project_id, "this device was revoked")?);
        }
        if self.sync_identity()?.is_some() {
            self.write_op(
                actions::SYNC_WIPE,
                || resources::VAULT.into(),
                |w| {
                    w.commit(actions::SYNC_WIPE, |tx| {
                        tx.execute(
                            "UPDATE sync_identity SET x25519_wrapped = zeroblob(length(x25519_wrapped)),
                                ed25519_wrapped = zeroblob(length(ed25519_wrapped))",
                            [],
                        )?;
                        tx.execute("DELETE FROM sync_identity", [])?;
                        Ok(((), Subject::new(resources::VAULT, "reason=this device was revoked identity=erased")))
                    })?;
                    w.checkpoint_truncate()
                },
            )?;
        }
        Ok(out)
    }
}

/// After the project moved to a newer epoch: ops sealed under the old one and not yet sent
/// are dropped and their items marked to be staged again (under the new key).
fn reseal_outbox(tx: &rusqlite::Transaction<'_>, project_id: &str) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO sync_dirty(item_id, project_id)
         SELECT item_id, project_id FROM sync_outbox WHERE project_id = ?1 AND state <> 'sent'",
        [project_id],
    )?;
    tx.execute(
        "DELETE FROM sync_outbox WHERE project_id = ?1 AND state <> 'sent'",
        [project_id],
    )?;
    Ok(())
}

fn describe(e: &LogEntry) -> String {
    let u = &e.entry;
    let what = match &u.body {
        EntryBody::Add { user_id, role, .. } => {
            format!("add user={user_id} role={}", role_name(*role))
        }
        EntryBody::Remove { user_id } => format!("remove user={user_id}"),
        EntryBody::SetRole { user_id, role } => {
            format!("set_role user={user_id} role={}", role_name(*role))
        }
        EntryBody::Rotate { epoch } => format!("rotate epoch={epoch}"),
        EntryBody::DeviceRevoked { user_id, .. } => format!("device_revoked user={user_id}"),
    };
    format!("seq={} signer={} {what}", u.seq, u.signer)
}
