//! [`SyncStore`] on the SQLite store: the same writer thread, group commit and reader pool as
//! identity and governance, so an op, its feed position and its audit event commit together.
//!
//! The feed's `seq` comes from the project's `feeds.head_seq`, read and advanced inside the
//! commit's transaction by the single writer: gap-free and in visibility order. (A PostgreSQL
//! store needs a row lock on that counter for the same guarantee; nothing here relies on
//! SQLite beyond its transactions.)

use super::*;
use crate::store::sync::*;
use labvault_wire::{BlobPutStatus, DeviceState, OpResult, SyncOp};

/// Schema of file sync (migration 3).
pub(super) const MIGRATION: &str = r#"
CREATE TABLE devices (
    tenant_id    TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    x25519       TEXT NOT NULL,
    ed25519      TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    approved_at  INTEGER,
    approval     TEXT,
    revoked_at   INTEGER,
    last_seen_at INTEGER,
    PRIMARY KEY (tenant_id, device_id)
);
CREATE INDEX devices_user ON devices(tenant_id, user_id);
CREATE TABLE key_boxes (
    tenant_id        TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    epoch            INTEGER NOT NULL,
    device_id        TEXT NOT NULL,
    sealed           TEXT NOT NULL,
    signer_device_id TEXT NOT NULL,
    signature        TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, project_id, epoch, device_id)
);
CREATE TABLE feeds (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    head_seq   INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    generation TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project_id)
);
CREATE TABLE feed_ops (
    tenant_id    TEXT NOT NULL,
    project_id   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    op_id        TEXT NOT NULL,
    item_id      TEXT NOT NULL,
    rev          INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    device_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    payload      TEXT NOT NULL,
    blobs        TEXT NOT NULL,
    tombstone    INTEGER NOT NULL,
    hold         INTEGER NOT NULL,
    compacted    INTEGER NOT NULL,
    committed_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX feed_ops_seq ON feed_ops(tenant_id, project_id, seq);
CREATE UNIQUE INDEX feed_ops_op ON feed_ops(tenant_id, project_id, op_id);
CREATE INDEX feed_ops_item ON feed_ops(tenant_id, project_id, item_id, seq);
CREATE TABLE feed_items (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    rev        INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    tombstone  INTEGER NOT NULL,
    hold       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, project_id, item_id)
) WITHOUT ROWID;
CREATE TABLE item_blobs (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    blob_id    TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, project_id, blob_id, item_id)
) WITHOUT ROWID;
CREATE INDEX item_blobs_item ON item_blobs(tenant_id, project_id, item_id);
CREATE TABLE blobs (
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    blob_id    TEXT NOT NULL,
    size       INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    object     TEXT NOT NULL,
    offset     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    erased_at  INTEGER,
    PRIMARY KEY (tenant_id, project_id, blob_id)
) WITHOUT ROWID;
CREATE INDEX blobs_object ON blobs(object);
CREATE INDEX blobs_erased ON blobs(tenant_id, project_id) WHERE erased_at IS NOT NULL;
CREATE TABLE uploads (
    upload_id  TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    blob_id    TEXT NOT NULL,
    size       INTEGER NOT NULL,
    part_size  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX uploads_blob ON uploads(tenant_id, project_id, blob_id);
CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL,
    n         INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    PRIMARY KEY (upload_id, n)
) WITHOUT ROWID;
CREATE TABLE anchors (
    tenant_id TEXT NOT NULL,
    chain_id  TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (tenant_id, chain_id, seq, signed_at)
) WITHOUT ROWID;
"#;

fn state_of(s: String) -> rusqlite::Result<DeviceState> {
    match s.as_str() {
        "pending" => Ok(DeviceState::Pending),
        "approved" => Ok(DeviceState::Approved),
        "revoked" => Ok(DeviceState::Revoked),
        _ => Err(rusqlite::Error::InvalidColumnType(
            0,
            s,
            rusqlite::types::Type::Text,
        )),
    }
}

fn state_str(s: DeviceState) -> &'static str {
    match s {
        DeviceState::Pending => "pending",
        DeviceState::Approved => "approved",
        DeviceState::Revoked => "revoked",
    }
}

const DEVICE_COLS: &str = "tenant_id, device_id, user_id, name, x25519, ed25519, state, \
                           created_at, approved_at, approval, last_seen_at";
fn device_row(r: &Row) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        tenant_id: r.get(0)?,
        device_id: r.get(1)?,
        user_id: r.get(2)?,
        name: r.get(3)?,
        x25519: r.get(4)?,
        ed25519: r.get(5)?,
        state: state_of(r.get(6)?)?,
        created_at: r.get(7)?,
        approved_at: r.get(8)?,
        approval: r.get(9)?,
        last_seen_at: r.get(10)?,
    })
}

const OP_COLS: &str = "seq, op_id, item_id, rev, epoch, device_id, user_id, payload, blobs, \
                       tombstone, hold, compacted, committed_at";
fn op_row(r: &Row) -> rusqlite::Result<OpRow> {
    let blobs: String = r.get(8)?;
    Ok(OpRow {
        seq: r.get::<_, i64>(0)? as u64,
        op_id: r.get(1)?,
        item_id: r.get(2)?,
        rev: r.get::<_, i64>(3)? as u64,
        epoch: r.get::<_, i64>(4)? as u32,
        device_id: r.get(5)?,
        user_id: r.get(6)?,
        payload: r.get(7)?,
        blobs: serde_json::from_str(&blobs).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, e.into())
        })?,
        tombstone: r.get(9)?,
        hold: r.get(10)?,
        compacted: r.get(11)?,
        committed_at: r.get(12)?,
    })
}

const BLOB_COLS: &str = "blob_id, size, digest, object, offset, created_at, erased_at";
fn blob_row(r: &Row) -> rusqlite::Result<BlobRecord> {
    Ok(BlobRecord {
        blob_id: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        digest: r.get(2)?,
        object: r.get(3)?,
        offset: r.get::<_, i64>(4)? as u64,
        created_at: r.get(5)?,
        erased_at: r.get(6)?,
    })
}

const UPLOAD_COLS: &str =
    "upload_id, tenant_id, project_id, blob_id, size, part_size, created_at, expires_at";
fn upload_row(r: &Row) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        upload_id: r.get(0)?,
        tenant_id: r.get(1)?,
        project_id: r.get(2)?,
        blob_id: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        part_size: r.get::<_, i64>(5)? as u64,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

fn key_box_row(r: &Row) -> rusqlite::Result<KeyBoxRow> {
    Ok(KeyBoxRow {
        project_id: r.get(0)?,
        epoch: r.get::<_, i64>(1)? as u32,
        device_id: r.get(2)?,
        sealed: r.get(3)?,
        signer_device_id: r.get(4)?,
        signature: r.get(5)?,
    })
}

/// The feed row of a project, created (epoch 1, fresh generation) if missing.
fn feed_c(c: &Connection, tenant: &str, project: &str) -> StoreResult<FeedState> {
    let row = c
        .prepare_cached(
            "SELECT head_seq, epoch, generation FROM feeds WHERE tenant_id = ?1 AND project_id = ?2",
        )
        .map_err(backend)?
        .query_row([tenant, project], |r| {
            Ok(FeedState {
                head_seq: r.get::<_, i64>(0)? as u64,
                epoch: r.get::<_, i64>(1)? as u32,
                generation: r.get(2)?,
            })
        })
        .optional()
        .map_err(backend)?;
    match row {
        Some(f) => Ok(f),
        None => Ok(FeedState {
            head_seq: 0,
            epoch: 1,
            generation: String::new(),
        }),
    }
}

pub(super) fn ensure_feed(c: &Connection, tenant: &str, project: &str) -> StoreResult<FeedState> {
    let f = feed_c(c, tenant, project)?;
    if !f.generation.is_empty() {
        return Ok(f);
    }
    let generation = uuid::Uuid::new_v4().simple().to_string();
    c.execute(
        "INSERT INTO feeds (tenant_id, project_id, head_seq, epoch, generation) VALUES (?1, ?2, 0, 1, ?3)",
        params![tenant, project, generation],
    )
    .map_err(backend)?;
    Ok(FeedState {
        head_seq: 0,
        epoch: 1,
        generation,
    })
}

/// Marks blobs erased unless another item of the project still references them.
fn erase_unreferenced(
    c: &Connection,
    tenant: &str,
    project: &str,
    ids: &[String],
    now: i64,
) -> StoreResult<()> {
    let mut st = c
        .prepare_cached(
            "UPDATE blobs SET erased_at = ?4 WHERE tenant_id = ?1 AND project_id = ?2 AND blob_id = ?3 \
             AND erased_at IS NULL AND NOT EXISTS (SELECT 1 FROM item_blobs b WHERE b.tenant_id = ?1 \
             AND b.project_id = ?2 AND b.blob_id = ?3)",
        )
        .map_err(backend)?;
    for id in ids {
        st.execute(params![tenant, project, id, now])
            .map_err(backend)?;
    }
    Ok(())
}

/// One op of a commit, inside the commit's transaction.
fn apply_op(
    c: &Connection,
    who: &Committer,
    feed: &mut FeedState,
    op: SyncOp,
) -> StoreResult<OpResult> {
    let (t, p) = (who.tenant.as_str(), who.project.as_str());
    let dup: Option<(i64, i64, String)> = c
        .prepare_cached(
            "SELECT seq, rev, item_id FROM feed_ops WHERE tenant_id = ?1 AND project_id = ?2 AND op_id = ?3",
        )
        .map_err(backend)?
        .query_row([t, p, &op.op_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(backend)?;
    if let Some((seq, rev, item)) = dup {
        if item != op.item_id {
            return Ok(OpResult::Rejected {
                op_id: op.op_id,
                code: ErrorCode::Conflict.as_str().into(),
                message: "this op id was already used for another item".into(),
            });
        }
        return Ok(OpResult::Duplicate {
            op_id: op.op_id,
            seq: seq as u64,
            rev: rev as u64,
        });
    }
    if op.epoch != feed.epoch {
        return Ok(OpResult::StaleEpoch {
            op_id: op.op_id,
            epoch: feed.epoch,
        });
    }
    let item: Option<(i64, bool, bool)> = c
        .prepare_cached(
            "SELECT rev, hold, tombstone FROM feed_items WHERE tenant_id = ?1 AND project_id = ?2 AND item_id = ?3",
        )
        .map_err(backend)?
        .query_row([t, p, &op.item_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(backend)?;
    let (rev, held, erased) = item
        .map(|(r, h, e)| (r as u64, h, e))
        .unwrap_or((0, false, false));
    if op.base_rev != rev {
        return Ok(OpResult::Conflict {
            op_id: op.op_id,
            rev,
        });
    }
    {
        let mut st = c
            .prepare_cached(
                "SELECT 1 FROM blobs WHERE tenant_id = ?1 AND project_id = ?2 AND blob_id = ?3 \
                 AND erased_at IS NULL",
            )
            .map_err(backend)?;
        for b in &op.blobs {
            if !st.exists([t, p, b]).map_err(backend)? {
                return Ok(OpResult::BlobMissing {
                    op_id: op.op_id,
                    blob_id: b.clone(),
                });
            }
        }
    }
    let old: Vec<String> = all(
        c,
        "SELECT blob_id FROM item_blobs WHERE tenant_id = ?1 AND project_id = ?2 AND item_id = ?3",
        [t, p, &op.item_id],
        |r| r.get(0),
    )?;
    let removed: Vec<String> = old
        .iter()
        .filter(|b| !op.blobs.contains(b))
        .cloned()
        .collect();
    // An erasure removes blobs, or erases an item not erased yet; a tombstone of an item
    // already erased removes nothing a hold could keep.
    if !removed.is_empty() || (op.tombstone && !erased) {
        let project_hold: bool = c
            .prepare_cached(
                "SELECT hold FROM feed_items WHERE tenant_id = ?1 AND project_id = ?2 AND item_id = ?2",
            )
            .map_err(backend)?
            .query_row([t, p], |r| r.get(0))
            .optional()
            .map_err(backend)?
            .unwrap_or(false);
        if held || project_hold {
            return Ok(OpResult::Rejected {
                op_id: op.op_id,
                code: ErrorCode::OnHold.as_str().into(),
                message: "a legal hold covers this item: it cannot be erased".into(),
            });
        }
    }
    let seq = feed.head_seq + 1;
    let new_rev = rev + 1;
    let blobs_json = serde_json::to_string(&op.blobs).map_err(backend)?;
    c.prepare_cached(
        "INSERT INTO feed_ops (tenant_id, project_id, seq, op_id, item_id, rev, epoch, device_id, \
         user_id, payload, blobs, tombstone, hold, compacted, committed_at) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,0,?14)",
    )
    .map_err(backend)?
    .execute(params![
        t,
        p,
        seq as i64,
        op.op_id,
        op.item_id,
        new_rev as i64,
        i64::from(op.epoch),
        who.device,
        who.user,
        op.payload,
        blobs_json,
        op.tombstone,
        op.hold,
        who.now
    ])
    .map_err(backend)?;
    c.prepare_cached(
        "INSERT INTO feed_items (tenant_id, project_id, item_id, rev, last_seq, tombstone, hold) \
         VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT (tenant_id, project_id, item_id) DO UPDATE SET \
         rev = excluded.rev, last_seq = excluded.last_seq, tombstone = excluded.tombstone, \
         hold = excluded.hold",
    )
    .map_err(backend)?
    .execute(params![
        t,
        p,
        op.item_id,
        new_rev as i64,
        seq as i64,
        op.tombstone,
        op.hold
    ])
    .map_err(backend)?;
    if old != op.blobs {
        c.prepare_cached(
            "DELETE FROM item_blobs WHERE tenant_id = ?1 AND project_id = ?2 AND item_id = ?3",
        )
        .map_err(backend)?
        .execute([t, p, &op.item_id])
        .map_err(backend)?;
        let mut ins = c
            .prepare_cached(
                "INSERT OR IGNORE INTO item_blobs (tenant_id, project_id, blob_id, item_id) VALUES (?1,?2,?3,?4)",
            )
            .map_err(backend)?;
        for b in &op.blobs {
            ins.execute([t, p, b, &op.item_id]).map_err(backend)?;
        }
    }
    if !removed.is_empty() {
        // The earlier states of this item named the keys of what is now erased: gone too.
        erase_unreferenced(c, t, p, &removed, who.now)?;
        c.prepare_cached(
            "UPDATE feed_ops SET payload = '', compacted = 1 WHERE tenant_id = ?1 AND project_id = ?2 \
             AND item_id = ?3 AND seq < ?4 AND compacted = 0",
        )
        .map_err(backend)?
        .execute(params![t, p, op.item_id, seq as i64])
        .map_err(backend)?;
    }
    feed.head_seq = seq;
    Ok(OpResult::Applied {
        op_id: op.op_id,
        seq,
        rev: new_rev,
    })
}

/// Removes a project's sync state (its project row is being deleted): its blobs become
/// erased (removed after the grace period), everything else goes at once.
pub(super) fn forget_project(
    c: &Connection,
    tenant: &str,
    project: &str,
    now: i64,
) -> StoreResult<()> {
    c.execute(
        "UPDATE blobs SET erased_at = ?3 WHERE tenant_id = ?1 AND project_id = ?2 AND erased_at IS NULL",
        params![tenant, project, now],
    )
    .map_err(backend)?;
    for table in [
        "feeds",
        "feed_ops",
        "feed_items",
        "item_blobs",
        "key_boxes",
        "uploads",
    ] {
        c.execute(
            &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND project_id = ?2"),
            [tenant, project],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// Removes a deleted tenant's sync state; its blobs become erased at once (grace 0: the tenant
/// and its policies are gone).
pub(super) fn forget_tenant(c: &Connection, tenant: &str, now: i64) -> StoreResult<()> {
    c.execute(
        "UPDATE blobs SET erased_at = ?2 WHERE tenant_id = ?1 AND erased_at IS NULL",
        params![tenant, now],
    )
    .map_err(backend)?;
    for table in [
        "devices",
        "feeds",
        "feed_ops",
        "feed_items",
        "item_blobs",
        "key_boxes",
        "uploads",
    ] {
        c.execute(
            &format!("DELETE FROM {table} WHERE tenant_id = ?1"),
            [tenant],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// Whether a legal hold covers anything of the project.
pub(super) fn project_held_c(c: &Connection, tenant: &str, project: &str) -> StoreResult<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM feed_items WHERE tenant_id = ?1 AND project_id = ?2 AND hold = 1)",
    )
    .map_err(backend)?
    .query_row([tenant, project], |r| r.get(0))
    .map_err(backend)
}

#[async_trait]
impl SyncStore for SqliteStore {
    async fn register_device(&self, d: DeviceRow, audit: AuditDraft) -> StoreResult<DeviceRow> {
        self.write_job(
            move |c| {
                let existing = c
                    .prepare_cached(&format!(
                        "SELECT {DEVICE_COLS} FROM devices WHERE tenant_id = ?1 AND device_id = ?2"
                    ))
                    .map_err(backend)?
                    .query_row([&d.tenant_id, &d.device_id], device_row)
                    .optional()
                    .map_err(backend)?;
                if let Some(e) = existing {
                    if e.user_id == d.user_id
                        && e.x25519 == d.x25519
                        && e.ed25519 == d.ed25519
                        && e.state != DeviceState::Revoked
                    {
                        return Ok(e);
                    }
                    return Err(StoreError::Conflict(
                        "this device id is registered with other keys (or revoked)".into(),
                    ));
                }
                let first: bool = c
                    .query_row(
                        "SELECT NOT EXISTS (SELECT 1 FROM devices WHERE tenant_id = ?1 AND user_id = ?2 \
                         AND state <> 'revoked')",
                        [&d.tenant_id, &d.user_id],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                let mut row = d;
                if first {
                    row.state = DeviceState::Approved;
                    row.approved_at = Some(row.created_at);
                } else {
                    row.state = DeviceState::Pending;
                }
                c.execute(
                    &format!(
                        "INSERT INTO devices ({DEVICE_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,NULL,NULL)"
                    ),
                    params![
                        row.tenant_id,
                        row.device_id,
                        row.user_id,
                        row.name,
                        row.x25519,
                        row.ed25519,
                        state_str(row.state),
                        row.created_at,
                        row.approved_at
                    ],
                )
                .map_err(backend)?;
                append(c, &row.tenant_id, &audit)?;
                Ok(row)
            },
            false,
        )
        .await
    }

    async fn device(&self, tenant: &str, device_id: &str) -> StoreResult<DeviceRow> {
        let (t, d) = (tenant.to_string(), device_id.to_string());
        self.read(move |c| {
            one(
                c,
                &format!(
                    "SELECT {DEVICE_COLS} FROM devices WHERE tenant_id = ?1 AND device_id = ?2"
                ),
                [&t, &d],
                device_row,
                "device",
            )
        })
        .await
    }

    async fn user_devices(&self, tenant: &str, user: &str) -> StoreResult<Vec<DeviceRow>> {
        let (t, u) = (tenant.to_string(), user.to_string());
        self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {DEVICE_COLS} FROM devices WHERE tenant_id = ?1 AND user_id = ?2 ORDER BY created_at, device_id"
                ),
                [&t, &u],
                device_row,
            )
        })
        .await
    }

    async fn approve_device(
        &self,
        tenant: &str,
        user: &str,
        device_id: &str,
        approval: String,
        boxes: Vec<KeyBoxRow>,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<DeviceRow> {
        let (t, u, d) = (tenant.to_string(), user.to_string(), device_id.to_string());
        self.write_job(
            move |c| {
                let dev = one(
                    c,
                    &format!(
                        "SELECT {DEVICE_COLS} FROM devices WHERE tenant_id = ?1 AND device_id = ?2 AND user_id = ?3"
                    ),
                    [&t, &d, &u],
                    device_row,
                    "device",
                )?;
                match dev.state {
                    DeviceState::Pending => {}
                    DeviceState::Approved => {
                        return Err(StoreError::Conflict("the device is already approved".into()))
                    }
                    DeviceState::Revoked => {
                        return Err(StoreError::Conflict("the device was revoked".into()))
                    }
                }
                c.execute(
                    "UPDATE devices SET state = 'approved', approved_at = ?3, approval = ?4 \
                     WHERE tenant_id = ?1 AND device_id = ?2",
                    params![t, d, now, approval],
                )
                .map_err(backend)?;
                put_boxes(c, &t, &boxes, now)?;
                append(c, &t, &audit)?;
                one(
                    c,
                    &format!("SELECT {DEVICE_COLS} FROM devices WHERE tenant_id = ?1 AND device_id = ?2"),
                    [&t, &d],
                    device_row,
                    "device",
                )
            },
            false,
        )
        .await
    }

    async fn revoke_device(
        &self,
        tenant: &str,
        user: &str,
        device_id: &str,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (t, u, d) = (tenant.to_string(), user.to_string(), device_id.to_string());
        self.write_job(
            move |c| {
                let n = c
                    .execute(
                        "UPDATE devices SET state = 'revoked', revoked_at = ?4 WHERE tenant_id = ?1 \
                         AND device_id = ?2 AND user_id = ?3 AND state <> 'revoked'",
                        params![t, d, u, now],
                    )
                    .map_err(backend)?;
                if n == 0 {
                    return Err(StoreError::NotFound("device"));
                }
                c.execute(
                    "DELETE FROM key_boxes WHERE tenant_id = ?1 AND device_id = ?2",
                    [&t, &d],
                )
                .map_err(backend)?;
                c.execute(
                    "DELETE FROM identity_boxes WHERE tenant_id = ?1 AND device_id = ?2",
                    [&t, &d],
                )
                .map_err(backend)?;
                super::sharing::request_rotations(c, &t, &u)?;
                append(c, &t, &audit)
            },
            false,
        )
        .await
    }

    async fn touch_device(&self, tenant: &str, device_id: &str, now: i64) -> StoreResult<()> {
        let (t, d) = (tenant.to_string(), device_id.to_string());
        self.write_job(
            move |c| {
                c.prepare_cached(
                    "UPDATE devices SET last_seen_at = ?3 WHERE tenant_id = ?1 AND device_id = ?2",
                )
                .map_err(backend)?
                .execute(params![t, d, now])
                .map_err(backend)?;
                Ok(())
            },
            false,
        )
        .await
    }

    async fn put_key_boxes(
        &self,
        tenant: &str,
        boxes: Vec<KeyBoxRow>,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let t = tenant.to_string();
        self.write_job(
            move |c| {
                put_boxes(c, &t, &boxes, now)?;
                append(c, &t, &audit)
            },
            false,
        )
        .await
    }

    async fn key_boxes(
        &self,
        tenant: &str,
        project: &str,
        device_id: &str,
    ) -> StoreResult<Vec<KeyBoxRow>> {
        let (t, p, d) = (
            tenant.to_string(),
            project.to_string(),
            device_id.to_string(),
        );
        self.read(move |c| {
            all(
                c,
                "SELECT project_id, epoch, device_id, sealed, signer_device_id, signature FROM key_boxes \
                 WHERE tenant_id = ?1 AND project_id = ?2 AND device_id = ?3 ORDER BY epoch",
                [&t, &p, &d],
                key_box_row,
            )
        })
        .await
    }

    async fn key_recipients(
        &self,
        tenant: &str,
        project: &str,
        epoch: u32,
    ) -> StoreResult<Vec<String>> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.read(move |c| {
            all(
                c,
                "SELECT device_id FROM key_boxes WHERE tenant_id = ?1 AND project_id = ?2 AND epoch = ?3 \
                 ORDER BY device_id",
                params![t, p, i64::from(epoch)],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn identity(&self, tenant: &str, user: &str) -> StoreResult<Option<IdentityRow>> {
        let (t, u) = (tenant.to_string(), user.to_string());
        self.read(move |c| super::sharing::identity(c, &t, &u))
            .await
    }

    async fn register_identity(
        &self,
        row: IdentityRow,
        audit: AuditDraft,
    ) -> StoreResult<(IdentityRow, bool)> {
        self.write_job(
            move |c| {
                let r = super::sharing::register_identity(c, &row)?;
                append(c, &row.tenant_id, &audit)?;
                Ok(r)
            },
            false,
        )
        .await
    }

    async fn put_identity_boxes(
        &self,
        tenant: &str,
        user: &str,
        boxes: Vec<IdentityBoxRow>,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (t, u) = (tenant.to_string(), user.to_string());
        self.write_job(
            move |c| {
                super::sharing::put_identity_boxes(c, &t, &u, &boxes)?;
                append(c, &t, &audit)
            },
            false,
        )
        .await
    }

    async fn identity_boxes(&self, tenant: &str, user: &str) -> StoreResult<Vec<IdentityBoxRow>> {
        let (t, u) = (tenant.to_string(), user.to_string());
        self.read(move |c| super::sharing::identity_boxes(c, &t, &u))
            .await
    }

    async fn member_access(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
    ) -> StoreResult<MemberAccess> {
        let (t, p, u) = (tenant.to_string(), project.to_string(), user.to_string());
        self.read(move |c| super::sharing::member_access(c, &t, &p, &u))
            .await
    }

    async fn members(&self, tenant: &str, project: &str) -> StoreResult<Vec<(String, Role)>> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.read(move |c| super::sharing::members(c, &t, &p)).await
    }

    async fn membership_log(
        &self,
        tenant: &str,
        project: &str,
        from: u64,
    ) -> StoreResult<(Vec<MembershipRow>, u64)> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.scan(move |c| super::sharing::membership_log(c, &t, &p, from))
            .await
    }

    async fn append_membership(
        &self,
        a: MembershipAppend,
        audit: AuditDraft,
    ) -> StoreResult<(u64, FeedState)> {
        self.write_job(
            move |c| {
                let r = super::sharing::append_membership(c, &a)?;
                append(c, &a.tenant, &audit)?;
                Ok(r)
            },
            true,
        )
        .await
    }

    async fn member_boxes(
        &self,
        tenant: &str,
        project: &str,
        user: &str,
    ) -> StoreResult<Vec<MemberBoxRow>> {
        let (t, p, u) = (tenant.to_string(), project.to_string(), user.to_string());
        self.read(move |c| super::sharing::member_boxes(c, &t, &p, &u))
            .await
    }

    async fn box_holders(
        &self,
        tenant: &str,
        project: &str,
        epoch: u32,
    ) -> StoreResult<Vec<String>> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.read(move |c| super::sharing::box_holders(c, &t, &p, epoch))
            .await
    }

    async fn epoch_links(&self, tenant: &str, project: &str) -> StoreResult<Vec<(u32, String)>> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.read(move |c| super::sharing::epoch_links(c, &t, &p))
            .await
    }

    async fn rotation_requested(&self, tenant: &str, project: &str) -> StoreResult<bool> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.read(move |c| super::sharing::rotation_requested(c, &t, &p))
            .await
    }

    async fn sharing_policy(&self, tenant: &str) -> StoreResult<labvault_wire::SharingPolicy> {
        let t = tenant.to_string();
        self.read(move |c| super::sharing::sharing_policy(c, &t))
            .await
    }

    async fn set_sharing_policy(
        &self,
        tenant: &str,
        policy: labvault_wire::SharingPolicy,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let t = tenant.to_string();
        self.write_job(
            move |c| {
                super::sharing::set_sharing_policy(c, &t, policy)?;
                append(c, &t, &audit)
            },
            false,
        )
        .await
    }

    async fn feed(&self, tenant: &str, project: &str) -> StoreResult<FeedState> {
        let (t, p) = (tenant.to_string(), project.to_string());
        let f = {
            let (t, p) = (t.clone(), p.clone());
            self.read(move |c| feed_c(c, &t, &p)).await?
        };
        if !f.generation.is_empty() {
            return Ok(f);
        }
        self.write_job(move |c| ensure_feed(c, &t, &p), false).await
    }

    async fn commit(
        &self,
        who: Committer,
        ops: Vec<SyncOp>,
        audit: AuditDraft,
    ) -> StoreResult<(Vec<OpResult>, FeedState)> {
        self.write_job(
            move |c| {
                let mut feed = ensure_feed(c, &who.tenant, &who.project)?;
                let start = feed.head_seq;
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    results.push(apply_op(c, &who, &mut feed, op)?);
                }
                if feed.head_seq != start {
                    c.prepare_cached(
                        "UPDATE feeds SET head_seq = ?3 WHERE tenant_id = ?1 AND project_id = ?2",
                    )
                    .map_err(backend)?
                    .execute(params![who.tenant, who.project, feed.head_seq as i64])
                    .map_err(backend)?;
                }
                let mut audit = audit;
                let count = |f: fn(&OpResult) -> bool| results.iter().filter(|r| f(r)).count();
                audit.detail = format!(
                    "applied={} duplicate={} conflict={} stale_epoch={} blob_missing={} rejected={}",
                    count(|r| matches!(r, OpResult::Applied { .. })),
                    count(|r| matches!(r, OpResult::Duplicate { .. })),
                    count(|r| matches!(r, OpResult::Conflict { .. })),
                    count(|r| matches!(r, OpResult::StaleEpoch { .. })),
                    count(|r| matches!(r, OpResult::BlobMissing { .. })),
                    count(|r| matches!(r, OpResult::Rejected { .. })),
                );
                append(c, &who.tenant, &audit)?;
                Ok((results, feed))
            },
            false,
        )
        .await
    }

    async fn changes(
        &self,
        tenant: &str,
        project: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<(Vec<OpRow>, FeedState)> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.scan(move |c| {
            // One read transaction: the page and the head agree.
            c.execute_batch("BEGIN").map_err(backend)?;
            let r = (|| {
                let feed = feed_c(c, &t, &p)?;
                let ops = all(
                    c,
                    &format!(
                        "SELECT {OP_COLS} FROM feed_ops WHERE tenant_id = ?1 AND project_id = ?2 AND seq > ?3 \
                         ORDER BY seq LIMIT ?4"
                    ),
                    params![t, p, after as i64, i64::from(limit)],
                    op_row,
                )?;
                Ok((ops, feed))
            })();
            let _ = c.execute_batch("COMMIT");
            r
        })
        .await
    }

    async fn snapshot(
        &self,
        tenant: &str,
        project: &str,
        after_item: Option<&str>,
        limit: u32,
    ) -> StoreResult<(Vec<OpRow>, FeedState)> {
        let (t, p, a) = (
            tenant.to_string(),
            project.to_string(),
            after_item.unwrap_or("").to_string(),
        );
        self.scan(move |c| {
            c.execute_batch("BEGIN").map_err(backend)?;
            let r = (|| {
                let feed = feed_c(c, &t, &p)?;
                let cols = OP_COLS
                    .split(", ")
                    .map(|col| format!("o.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let ops = all(
                    c,
                    &format!(
                        "SELECT {cols} FROM feed_items i JOIN feed_ops o ON o.tenant_id = i.tenant_id \
                         AND o.project_id = i.project_id AND o.seq = i.last_seq \
                         WHERE i.tenant_id = ?1 AND i.project_id = ?2 AND i.item_id > ?3 \
                         ORDER BY i.item_id LIMIT ?4"
                    ),
                    params![t, p, a, i64::from(limit)],
                    op_row,
                )?;
                Ok((ops, feed))
            })();
            let _ = c.execute_batch("COMMIT");
            r
        })
        .await
    }

    async fn project_held(&self, tenant: &str, project: &str) -> StoreResult<bool> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.read(move |c| project_held_c(c, &t, &p)).await
    }

    async fn blob(
        &self,
        tenant: &str,
        project: &str,
        blob_id: &str,
    ) -> StoreResult<Option<BlobRecord>> {
        let (t, p, b) = (tenant.to_string(), project.to_string(), blob_id.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {BLOB_COLS} FROM blobs WHERE tenant_id = ?1 AND project_id = ?2 AND blob_id = ?3 \
                 AND erased_at IS NULL"
            ))
            .map_err(backend)?
            .query_row([&t, &p, &b], blob_row)
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn missing_blobs(
        &self,
        tenant: &str,
        project: &str,
        ids: Vec<String>,
    ) -> StoreResult<Vec<String>> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.scan(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT 1 FROM blobs WHERE tenant_id = ?1 AND project_id = ?2 AND blob_id = ?3 \
                     AND erased_at IS NULL",
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for id in ids {
                if !st.exists([&t, &p, &id]).map_err(backend)? {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn record_blobs(
        &self,
        tenant: &str,
        project: &str,
        object: &str,
        blobs: Vec<NewBlob>,
        now: i64,
        audit: AuditDraft,
    ) -> StoreResult<Vec<BlobPutStatus>> {
        let (t, p, o) = (tenant.to_string(), project.to_string(), object.to_string());
        self.write_job(
            move |c| {
                let mut out = Vec::with_capacity(blobs.len());
                for b in blobs {
                    let existing: Option<(String, Option<i64>)> = c
                        .prepare_cached(
                            "SELECT digest, erased_at FROM blobs WHERE tenant_id = ?1 AND project_id = ?2 \
                             AND blob_id = ?3",
                        )
                        .map_err(backend)?
                        .query_row([&t, &p, &b.blob_id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                        .map_err(backend)?;
                    out.push(match existing {
                        // An erased blob's id is never reused: its bytes are on their way out.
                        Some((_, Some(_))) => BlobPutStatus::Conflict,
                        Some((d, None)) if d == b.digest => BlobPutStatus::Exists,
                        Some(_) => BlobPutStatus::Conflict,
                        None => {
                            c.prepare_cached(&format!(
                                "INSERT INTO blobs (tenant_id, project_id, {BLOB_COLS}) \
                                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,NULL)"
                            ))
                            .map_err(backend)?
                            .execute(params![
                                t,
                                p,
                                b.blob_id,
                                b.size as i64,
                                b.digest,
                                o,
                                b.offset as i64,
                                now
                            ])
                            .map_err(backend)?;
                            BlobPutStatus::Created
                        }
                    });
                }
                append(c, &t, &audit)?;
                Ok(out)
            },
            false,
        )
        .await
    }

    async fn tenant_usage(&self, tenant: &str) -> StoreResult<u64> {
        let t = tenant.to_string();
        self.scan(move |c| {
            let held: i64 = c
                .query_row(
                    "SELECT coalesce(sum(size), 0) FROM blobs WHERE tenant_id = ?1",
                    [&t],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let reserved: i64 = c
                .query_row(
                    "SELECT coalesce(sum(size), 0) FROM uploads WHERE tenant_id = ?1",
                    [&t],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok((held + reserved) as u64)
        })
        .await
    }

    async fn projects_with_erased_blobs(&self) -> StoreResult<Vec<(String, String)>> {
        self.scan(|c| {
            all(
                c,
                "SELECT DISTINCT tenant_id, project_id FROM blobs WHERE erased_at IS NOT NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    async fn erased_blobs(&self, tenant: &str, project: &str) -> StoreResult<Vec<BlobRecord>> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.scan(move |c| {
            all(
                c,
                &format!(
                    "SELECT {BLOB_COLS} FROM blobs WHERE tenant_id = ?1 AND project_id = ?2 \
                     AND erased_at IS NOT NULL ORDER BY object, offset"
                ),
                [&t, &p],
                blob_row,
            )
        })
        .await
    }

    async fn object_blobs(
        &self,
        tenant: &str,
        project: &str,
        object: &str,
    ) -> StoreResult<Vec<BlobRecord>> {
        let (t, p, o) = (tenant.to_string(), project.to_string(), object.to_string());
        self.scan(move |c| {
            all(
                c,
                &format!(
                    "SELECT {BLOB_COLS} FROM blobs WHERE object = ?3 AND tenant_id = ?1 AND project_id = ?2 \
                     ORDER BY offset"
                ),
                [&t, &p, &o],
                blob_row,
            )
        })
        .await
    }

    async fn relocate_blobs(
        &self,
        tenant: &str,
        project: &str,
        new_object: &str,
        moves: Vec<(String, u64)>,
    ) -> StoreResult<()> {
        let (t, p, o) = (
            tenant.to_string(),
            project.to_string(),
            new_object.to_string(),
        );
        self.write_job(
            move |c| {
                let mut st = c
                    .prepare_cached(
                        "UPDATE blobs SET object = ?4, offset = ?5 WHERE tenant_id = ?1 AND project_id = ?2 \
                         AND blob_id = ?3",
                    )
                    .map_err(backend)?;
                for (id, off) in moves {
                    st.execute(params![t, p, id, o, off as i64]).map_err(backend)?;
                }
                Ok(())
            },
            false,
        )
        .await
    }

    async fn forget_blobs(
        &self,
        tenant: &str,
        project: &str,
        ids: Vec<String>,
        audit: AuditDraft,
    ) -> StoreResult<()> {
        let (t, p) = (tenant.to_string(), project.to_string());
        self.write_job(
            move |c| {
                let mut st = c
                    .prepare_cached(
                        "DELETE FROM blobs WHERE tenant_id = ?1 AND project_id = ?2 AND blob_id = ?3 \
                         AND erased_at IS NOT NULL",
                    )
                    .map_err(backend)?;
                for id in ids {
                    st.execute([&t, &p, &id]).map_err(backend)?;
                }
                append(c, &t, &audit)
            },
            false,
        )
        .await
    }

    async fn object_referenced(&self, object: &str) -> StoreResult<bool> {
        let o = object.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT EXISTS (SELECT 1 FROM blobs WHERE object = ?1)")
                .map_err(backend)?
                .query_row([&o], |r| r.get(0))
                .map_err(backend)
        })
        .await
    }

    async fn open_upload(&self, u: UploadRow, audit: AuditDraft) -> StoreResult<UploadRow> {
        self.write_job(
            move |c| {
                let existing = c
                    .prepare_cached(&format!(
                        "SELECT {UPLOAD_COLS} FROM uploads WHERE tenant_id = ?1 AND project_id = ?2 AND blob_id = ?3"
                    ))
                    .map_err(backend)?
                    .query_row([&u.tenant_id, &u.project_id, &u.blob_id], upload_row)
                    .optional()
                    .map_err(backend)?;
                let row = match existing {
                    Some(e) if e.size == u.size && e.part_size == u.part_size => {
                        c.execute(
                            "UPDATE uploads SET expires_at = ?2 WHERE upload_id = ?1",
                            params![e.upload_id, u.expires_at],
                        )
                        .map_err(backend)?;
                        UploadRow {
                            expires_at: u.expires_at,
                            ..e
                        }
                    }
                    Some(_) => {
                        return Err(StoreError::Conflict(
                            "an upload of this blob with another size or part size is open".into(),
                        ))
                    }
                    None => {
                        c.execute(
                            &format!("INSERT INTO uploads ({UPLOAD_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"),
                            params![
                                u.upload_id,
                                u.tenant_id,
                                u.project_id,
                                u.blob_id,
                                u.size as i64,
                                u.part_size as i64,
                                u.created_at,
                                u.expires_at
                            ],
                        )
                        .map_err(backend)?;
                        u
                    }
                };
                append(c, &row.tenant_id, &audit)?;
                Ok(row)
            },
            false,
        )
        .await
    }

    async fn upload(&self, tenant: &str, upload_id: &str) -> StoreResult<UploadRow> {
        let (t, u) = (tenant.to_string(), upload_id.to_string());
        self.read(move |c| {
            one(
                c,
                &format!(
                    "SELECT {UPLOAD_COLS} FROM uploads WHERE upload_id = ?1 AND tenant_id = ?2"
                ),
                [&u, &t],
                upload_row,
                "upload",
            )
        })
        .await
    }

    async fn put_part(&self, upload_id: &str, part: PartRow, expires_at: i64) -> StoreResult<()> {
        let u = upload_id.to_string();
        self.write_job(
            move |c| {
                let n = c
                    .execute(
                        "UPDATE uploads SET expires_at = ?2 WHERE upload_id = ?1",
                        params![u, expires_at],
                    )
                    .map_err(backend)?;
                if n == 0 {
                    return Err(StoreError::NotFound("upload"));
                }
                c.execute(
                    "INSERT INTO upload_parts (upload_id, n, size, sha256) VALUES (?1,?2,?3,?4) \
                     ON CONFLICT (upload_id, n) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256",
                    params![u, i64::from(part.n), part.size as i64, part.sha256],
                )
                .map_err(backend)?;
                Ok(())
            },
            false,
        )
        .await
    }

    async fn parts(&self, upload_id: &str) -> StoreResult<Vec<PartRow>> {
        let u = upload_id.to_string();
        self.scan(move |c| {
            all(
                c,
                "SELECT n, size, sha256 FROM upload_parts WHERE upload_id = ?1 ORDER BY n",
                [&u],
                |r| {
                    Ok(PartRow {
                        n: r.get::<_, i64>(0)? as u32,
                        size: r.get::<_, i64>(1)? as u64,
                        sha256: r.get(2)?,
                    })
                },
            )
        })
        .await
    }

    async fn close_upload(
        &self,
        upload_id: &str,
        audit: Option<(String, AuditDraft)>,
    ) -> StoreResult<()> {
        let u = upload_id.to_string();
        self.write_job(
            move |c| {
                c.execute("DELETE FROM upload_parts WHERE upload_id = ?1", [&u])
                    .map_err(backend)?;
                c.execute("DELETE FROM uploads WHERE upload_id = ?1", [&u])
                    .map_err(backend)?;
                if let Some((tenant, a)) = audit {
                    append(c, &tenant, &a)?;
                }
                Ok(())
            },
            false,
        )
        .await
    }

    async fn expired_uploads(&self, now: i64) -> StoreResult<Vec<UploadRow>> {
        self.scan(move |c| {
            all(
                c,
                &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE expires_at <= ?1"),
                [now],
                upload_row,
            )
        })
        .await
    }

    async fn put_anchors(&self, a: Vec<AnchorRow>, audit: AuditDraft) -> StoreResult<()> {
        self.write_job(
            move |c| {
                let tenant = a.first().map(|x| x.tenant_id.clone()).unwrap_or_default();
                for x in &a {
                    c.execute(
                        "INSERT OR REPLACE INTO anchors (tenant_id, chain_id, seq, head_hash, signed_at, signature) \
                         VALUES (?1,?2,?3,?4,?5,?6)",
                        params![x.tenant_id, x.chain_id, x.seq as i64, x.head_hash, x.signed_at, x.signature],
                    )
                    .map_err(backend)?;
                }
                append(c, &tenant, &audit)
            },
            false,
        )
        .await
    }

    async fn anchors(&self, tenant: &str, chain_id: &str) -> StoreResult<Vec<AnchorRow>> {
        let (t, ch) = (tenant.to_string(), chain_id.to_string());
        self.scan(move |c| {
            all(
                c,
                "SELECT tenant_id, chain_id, seq, head_hash, signed_at, signature FROM anchors \
                 WHERE tenant_id = ?1 AND chain_id = ?2 ORDER BY seq, signed_at",
                [&t, &ch],
                |r| {
                    Ok(AnchorRow {
                        tenant_id: r.get(0)?,
                        chain_id: r.get(1)?,
                        seq: r.get::<_, i64>(2)? as u64,
                        head_hash: r.get(3)?,
                        signed_at: r.get(4)?,
                        signature: r.get(5)?,
                    })
                },
            )
        })
        .await
    }

    async fn audit_head(&self, tenant: &str) -> StoreResult<(u64, String)> {
        let t = tenant.to_string();
        self.read(move |c| {
            let head: Option<(i64, String)> = c
                .prepare_cached(&format!(
                    "SELECT seq, hash FROM audit_events WHERE {} ORDER BY seq DESC LIMIT 1",
                    super::AUDIT_TENANT
                ))
                .map_err(backend)?
                .query_row([&t], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            Ok(match head {
                Some((s, h)) => (s as u64, h),
                None => (0, hex::encode(chain::genesis(&t))),
            })
        })
        .await
    }
}

fn put_boxes(c: &Connection, tenant: &str, boxes: &[KeyBoxRow], now: i64) -> StoreResult<()> {
    let mut st = c
        .prepare_cached(
            "INSERT INTO key_boxes (tenant_id, project_id, epoch, device_id, sealed, signer_device_id, \
             signature, created_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) \
             ON CONFLICT (tenant_id, project_id, epoch, device_id) DO UPDATE SET sealed = excluded.sealed, \
             signer_device_id = excluded.signer_device_id, signature = excluded.signature, \
             created_at = excluded.created_at",
        )
        .map_err(backend)?;
    for b in boxes {
        st.execute(params![
            tenant,
            b.project_id,
            i64::from(b.epoch),
            b.device_id,
            b.sealed,
            b.signer_device_id,
            b.signature,
            now
        ])
        .map_err(backend)?;
    }
    Ok(())
}
