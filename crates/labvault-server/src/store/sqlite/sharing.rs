//! Identities and shared projects on the SQLite store (migration 4): registered identities,
//! identity boxes, each project's membership log, its members (the server's view of the log,
//! which decides access to synced data), member boxes and epoch links.
//!
//! An append is a compare-and-swap on the log's length and head hash inside the writer's
//! transaction, so two admins signing entry `n` at once cannot both land: the second gets
//! `conflict`, pulls the log and signs again.

use super::*;
use crate::store::sync::*;

/// Schema of shared projects (migration 4).
pub(super) const MIGRATION: &str = r#"
CREATE TABLE identities (
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    x25519        TEXT NOT NULL,
    ed25519       TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) WITHOUT ROWID;
CREATE TABLE identity_boxes (
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    sealed           TEXT NOT NULL,
    signer_device_id TEXT NOT NULL,
    signature        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
) WITHOUT ROWID;
CREATE INDEX identity_boxes_user ON identity_boxes(tenant_id, user_id);
CREATE TABLE membership_log (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    entry      TEXT NOT NULL,
    hash       TEXT NOT NULL,
    signer     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, project_id, seq)
) WITHOUT ROWID;
CREATE TABLE project_members (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    removed_at INTEGER,
    PRIMARY KEY (tenant_id, project_id, user_id)
) WITHOUT ROWID;
CREATE TABLE member_boxes (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project_id, epoch, user_id)
) WITHOUT ROWID;
CREATE TABLE rotation_requests (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project_id)
) WITHOUT ROWID;
CREATE TABLE sharing_policies (
    tenant_id          TEXT PRIMARY KEY,
    offline_lease_days INTEGER NOT NULL,
    key_rotation_days  INTEGER NOT NULL
);
CREATE TABLE epoch_links (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    link       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project_id, epoch)
) WITHOUT ROWID;
"#;

fn identity_row(r: &Row) -> rusqlite::Result<IdentityRow> {
    Ok(IdentityRow {
        tenant_id: r.get(0)?,
        user_id: r.get(1)?,
        x25519: r.get(2)?,
        ed25519: r.get(3)?,
        registered_at: r.get(4)?,
    })
}

pub(super) fn identity(
    c: &Connection,
    tenant: &str,
    user: &str,
) -> StoreResult<Option<IdentityRow>> {
    c.prepare_cached(
        "SELECT tenant_id, user_id, x25519, ed25519, registered_at FROM identities \
         WHERE tenant_id = ?1 AND user_id = ?2",
    )
    .and_then(|mut s| s.query_row([tenant, user], identity_row))
    .optional()
    .map_err(backend)
}

pub(super) fn register_identity(
    c: &Connection,
    row: &IdentityRow,
) -> StoreResult<(IdentityRow, bool)> {
    if let Some(old) = identity(c, &row.tenant_id, &row.user_id)? {
        if old.x25519 == row.x25519 && old.ed25519 == row.ed25519 {
            return Ok((old, false));
        }
        return Err(StoreError::Conflict(
            "this account already has another identity key; it never changes silently (restore it from one of your devices or the recovery code)".into(),
        ));
    }
    c.execute(
        "INSERT INTO identities (tenant_id, user_id, x25519, ed25519, registered_at) VALUES (?1,?2,?3,?4,?5)",
        params![row.tenant_id, row.user_id, row.x25519, row.ed25519, row.registered_at],
    )
    .map_err(backend)?;
    Ok((row.clone(), true))
}

pub(super) fn put_identity_boxes(
    c: &Connection,
    tenant: &str,
    user: &str,
    boxes: &[IdentityBoxRow],
) -> StoreResult<()> {
    let mut st = c
        .prepare_cached(
            "INSERT INTO identity_boxes (tenant_id, user_id, device_id, sealed, signer_device_id, signature) \
             VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT (tenant_id, device_id) DO UPDATE SET \
             sealed = excluded.sealed, signer_device_id = excluded.signer_device_id, signature = excluded.signature",
        )
        .map_err(backend)?;
    for b in boxes {
        st.execute(params![
            tenant,
            user,
            b.device_id,
            b.sealed,
            b.signer_device_id,
            b.signature
        ])
        .map_err(backend)?;
    }
    Ok(())
}

pub(super) fn identity_boxes(
    c: &Connection,
    tenant: &str,
    user: &str,
) -> StoreResult<Vec<IdentityBoxRow>> {
    all(
        c,
        "SELECT device_id, sealed, signer_device_id, signature FROM identity_boxes \
         WHERE tenant_id = ?1 AND user_id = ?2 ORDER BY device_id",
        [tenant, user],
        |r| {
            Ok(IdentityBoxRow {
                device_id: r.get(0)?,
                sealed: r.get(1)?,
                signer_device_id: r.get(2)?,
                signature: r.get(3)?,
            })
        },
    )
}

pub(super) fn member_access(
    c: &Connection,
    tenant: &str,
    project: &str,
    user: &str,
) -> StoreResult<MemberAccess> {
    let (role, removed, shared): (Option<String>, bool, bool) = c
        .prepare_cached(
            "SELECT (SELECT role FROM project_members WHERE tenant_id = ?1 AND project_id = ?2 AND user_id = ?3), \
             EXISTS (SELECT 1 FROM project_members WHERE tenant_id = ?1 AND project_id = ?2 AND user_id = ?3 \
                     AND removed_at IS NOT NULL), \
             EXISTS (SELECT 1 FROM membership_log WHERE tenant_id = ?1 AND project_id = ?2)",
        )
        .and_then(|mut s| {
            s.query_row([tenant, project, user], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
        })
        .map_err(backend)?;
    Ok(match (shared, removed, role) {
        (false, _, _) => MemberAccess::NotShared,
        (true, true, _) => MemberAccess::Removed,
        (true, false, None) => MemberAccess::NotMember,
        (true, false, Some(r)) => MemberAccess::Member(role_of(r).map_err(backend)?),
    })
}

pub(super) fn members(
    c: &Connection,
    tenant: &str,
    project: &str,
) -> StoreResult<Vec<(String, Role)>> {
    all(
        c,
        "SELECT user_id, role FROM project_members WHERE tenant_id = ?1 AND project_id = ?2 \
         AND removed_at IS NULL ORDER BY user_id",
        [tenant, project],
        |r| Ok((r.get(0)?, role_of(r.get(1)?)?)),
    )
}

pub(super) fn membership_log(
    c: &Connection,
    tenant: &str,
    project: &str,
    from: u64,
) -> StoreResult<(Vec<MembershipRow>, u64)> {
    let rows = all(
        c,
        "SELECT seq, entry, hash FROM membership_log WHERE tenant_id = ?1 AND project_id = ?2 AND seq >= ?3 \
         ORDER BY seq",
        params![tenant, project, from as i64],
        |r| {
            Ok(MembershipRow {
                seq: r.get::<_, i64>(0)? as u64,
                entry: r.get(1)?,
                hash: r.get(2)?,
            })
        },
    )?;
    let length: i64 = c
        .prepare_cached(
            "SELECT coalesce(max(seq) + 1, 0) FROM membership_log WHERE tenant_id = ?1 AND project_id = ?2",
        )
        .and_then(|mut s| s.query_row([tenant, project], |r| r.get(0)))
        .map_err(backend)?;
    Ok((rows, length as u64))
}

fn set_member(c: &Connection, a: &MembershipAppend, user: &str, role: Role) -> StoreResult<()> {
    c.execute(
        "INSERT INTO project_members (tenant_id, project_id, user_id, role) VALUES (?1,?2,?3,?4) \
         ON CONFLICT (tenant_id, project_id, user_id) DO UPDATE SET role = excluded.role, removed_at = NULL",
        params![a.tenant, a.project, user, role.as_str()],
    )
    .map_err(backend)?;
    // The tenant's project roles mirror the log, so the access review shows shared projects.
    c.execute(
        "INSERT INTO project_roles (tenant_id, project_id, user_id, role) VALUES (?1,?2,?3,?4) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
        params![a.tenant, a.project, user, role.as_str()],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn append_membership(
    c: &Connection,
    a: &MembershipAppend,
) -> StoreResult<(u64, FeedState)> {
    let head: Option<(i64, String)> = c
        .prepare_cached(
            "SELECT seq, hash FROM membership_log WHERE tenant_id = ?1 AND project_id = ?2 \
             ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut s| s.query_row([&a.tenant, &a.project], |r| Ok((r.get(0)?, r.get(1)?))))
        .optional()
        .map_err(backend)?;
    let (length, head_hash) = match head {
        Some((s, h)) => (s as u64 + 1, h),
        None => (0, String::new()),
    };
    if a.seq != length || a.prev_hash != head_hash {
        return Err(StoreError::Conflict(format!(
            "the membership log has {length} entries and moved on since this entry was signed: read it again and sign the change anew"
        )));
    }
    c.execute(
        "INSERT INTO membership_log (tenant_id, project_id, seq, entry, hash, signer, created_at) \
         VALUES (?1,?2,?3,?4,?5,?6,?7)",
        params![
            a.tenant,
            a.project,
            a.seq as i64,
            a.entry,
            a.hash,
            a.signer,
            a.now
        ],
    )
    .map_err(backend)?;
    let mut feed = super::sync::ensure_feed(c, &a.tenant, &a.project)?;
    match &a.effect {
        MembershipEffect::Add { user, role } | MembershipEffect::SetRole { user, role } => {
            set_member(c, a, user, *role)?
        }
        MembershipEffect::Remove { user } => {
            c.execute(
                "UPDATE project_members SET removed_at = ?4 WHERE tenant_id = ?1 AND project_id = ?2 AND user_id = ?3",
                params![a.tenant, a.project, user, a.now],
            )
            .map_err(backend)?;
            for sql in [
                "DELETE FROM project_roles WHERE tenant_id = ?1 AND project_id = ?2 AND user_id = ?3",
                "DELETE FROM member_boxes WHERE tenant_id = ?1 AND project_id = ?2 AND user_id = ?3",
            ] {
                c.execute(sql, params![a.tenant, a.project, user])
                    .map_err(backend)?;
            }
        }
        MembershipEffect::Rotate { epoch, link } => {
            c.execute(
                "UPDATE feeds SET epoch = ?3 WHERE tenant_id = ?1 AND project_id = ?2",
                params![a.tenant, a.project, i64::from(*epoch)],
            )
            .map_err(backend)?;
            c.execute(
                "INSERT INTO epoch_links (tenant_id, project_id, epoch, link) VALUES (?1,?2,?3,?4)",
                params![a.tenant, a.project, i64::from(*epoch), link],
            )
            .map_err(backend)?;
            feed.epoch = *epoch;
            c.execute(
                "DELETE FROM rotation_requests WHERE tenant_id = ?1 AND project_id = ?2",
                params![a.tenant, a.project],
            )
            .map_err(backend)?;
        }
        MembershipEffect::Note => {}
    }
    let mut st = c
        .prepare_cached(
            "INSERT INTO member_boxes (tenant_id, project_id, epoch, user_id, sealed) VALUES (?1,?2,?3,?4,?5) \
             ON CONFLICT (tenant_id, project_id, epoch, user_id) DO UPDATE SET sealed = excluded.sealed",
        )
        .map_err(backend)?;
    for b in &a.boxes {
        st.execute(params![
            a.tenant,
            a.project,
            i64::from(b.epoch),
            b.user_id,
            b.sealed
        ])
        .map_err(backend)?;
    }
    Ok((length + 1, feed))
}

pub(super) fn member_boxes(
    c: &Connection,
    tenant: &str,
    project: &str,
    user: &str,
) -> StoreResult<Vec<MemberBoxRow>> {
    all(
        c,
        "SELECT user_id, epoch, sealed FROM member_boxes WHERE tenant_id = ?1 AND project_id = ?2 \
         AND user_id = ?3 ORDER BY epoch",
        [tenant, project, user],
        |r| {
            Ok(MemberBoxRow {
                user_id: r.get(0)?,
                epoch: r.get::<_, i64>(1)? as u32,
                sealed: r.get(2)?,
            })
        },
    )
}

pub(super) fn box_holders(
    c: &Connection,
    tenant: &str,
    project: &str,
    epoch: u32,
) -> StoreResult<Vec<String>> {
    all(
        c,
        "SELECT user_id FROM member_boxes WHERE tenant_id = ?1 AND project_id = ?2 AND epoch = ?3 ORDER BY user_id",
        params![tenant, project, i64::from(epoch)],
        |r| r.get(0),
    )
}

pub(super) fn epoch_links(
    c: &Connection,
    tenant: &str,
    project: &str,
) -> StoreResult<Vec<(u32, String)>> {
    all(
        c,
        "SELECT epoch, link FROM epoch_links WHERE tenant_id = ?1 AND project_id = ?2 ORDER BY epoch",
        [tenant, project],
        |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)),
    )
}

pub(super) fn sharing_policy(
    c: &Connection,
    tenant: &str,
) -> StoreResult<labvault_wire::SharingPolicy> {
    Ok(c.prepare_cached(
        "SELECT offline_lease_days, key_rotation_days FROM sharing_policies WHERE tenant_id = ?1",
    )
    .and_then(|mut s| {
        s.query_row([tenant], |r| {
            Ok(labvault_wire::SharingPolicy {
                offline_lease_days: r.get::<_, i64>(0)? as u32,
                key_rotation_days: r.get::<_, i64>(1)? as u32,
            })
        })
    })
    .optional()
    .map_err(backend)?
    .unwrap_or_default())
}

pub(super) fn set_sharing_policy(
    c: &Connection,
    tenant: &str,
    p: labvault_wire::SharingPolicy,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO sharing_policies (tenant_id, offline_lease_days, key_rotation_days) VALUES (?1,?2,?3) \
         ON CONFLICT (tenant_id) DO UPDATE SET offline_lease_days = excluded.offline_lease_days, \
         key_rotation_days = excluded.key_rotation_days",
        params![tenant, i64::from(p.offline_lease_days), i64::from(p.key_rotation_days)],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn rotation_requested(c: &Connection, tenant: &str, project: &str) -> StoreResult<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM rotation_requests WHERE tenant_id = ?1 AND project_id = ?2)",
    )
    .and_then(|mut s| s.query_row([tenant, project], |r| r.get(0)))
    .map_err(backend)
}

/// A revoked device's user: every shared project they are a member of owes a rotation.
pub(super) fn request_rotations(c: &Connection, tenant: &str, user: &str) -> StoreResult<()> {
    c.execute(
        "INSERT OR IGNORE INTO rotation_requests (tenant_id, project_id) \
         SELECT tenant_id, project_id FROM project_members WHERE tenant_id = ?1 AND user_id = ?2 \
         AND removed_at IS NULL",
        [tenant, user],
    )
    .map_err(backend)?;
    Ok(())
}
