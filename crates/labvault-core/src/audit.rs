//! The vault's audit trail: storage of the hash-chained events (format and chain from
//! `labvault-governance`), the hook that writes an operation's event in the same transaction as
//! its change, queries with keyset paging, export and verification.
//!
//! How operations are recorded: every audited public operation is a thin wrapper (in this file
//! and in `retention.rs`) around the unaudited implementation. The wrapper opens an audit
//! *frame* describing the action; [`crate::catalog::Catalog::write`] appends the frame's success
//! event inside the operation's own transaction, right before commit. If the operation fails
//! before committing, the wrapper records a `failure` (or `denied`) event in a transaction of
//! its own. Read-only operations (export, verify) record their event after they succeed.

use crate::error::{Error, ErrorCode, Result};
use crate::vault::Vault;
use labvault_governance::audit::{
    actions, from_unix_micros, genesis_hash, unix_micros, Action, AuditEvent, ChainReport,
    ChainVerifier, Checkpoint, EventDraft, EventRef, Outcome, VerifyMode,
};
use labvault_governance::export::{ExportFormat, ExportWriter};
use labvault_governance::Clock;
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// Schema migration adding the audit trail, legal holds and retention policies. Appended to
/// [`crate::catalog::MIGRATIONS`].
pub const MIGRATION_GOVERNANCE: &str = r#"
    CREATE TABLE audit_events (
        id         INTEGER PRIMARY KEY,
        device_id  TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        ts         INTEGER NOT NULL,
        user       TEXT NOT NULL,
        action     TEXT NOT NULL,
        resource   TEXT NOT NULL,
        ip_address TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        result     TEXT NOT NULL,
        detail     TEXT NOT NULL,
        v          INTEGER NOT NULL,
        prev_hash  BLOB NOT NULL,
        hash       BLOB NOT NULL,
        UNIQUE (device_id, seq)
    );
    CREATE INDEX audit_ts ON audit_events(ts);
    CREATE INDEX audit_user_ts ON audit_events(user, ts);
    CREATE INDEX audit_action_ts ON audit_events(action, ts);
    CREATE INDEX audit_result_ts ON audit_events(result, ts);
    CREATE INDEX audit_resource_ts ON audit_events(resource, ts);
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
    CREATE TABLE holds (
        id          TEXT PRIMARY KEY,
        target_kind TEXT NOT NULL CHECK (target_kind IN ('item','project')),
        target_id   TEXT NOT NULL,
        reason      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        released_at INTEGER,
        released_by TEXT
    );
    CREATE INDEX holds_active ON holds(target_id) WHERE released_at IS NULL;
    CREATE TABLE retention_policies (
        scope      TEXT PRIMARY KEY,
        plan       TEXT,
        overrides  TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL
    );
"#;

/// Schema migration 3: composite indexes for the two common combined audit queries ("what did
/// this user do of this kind", "which actions of this kind were denied"), which would otherwise
/// scan one index and filter by the other column.
pub const MIGRATION_AUDIT_COMBINED: &str = r#"
    CREATE INDEX audit_result_action_ts ON audit_events(result, action, ts);
    CREATE INDEX audit_user_action_ts ON audit_events(user, action, ts);
"#;

/// Who/what/where an event is attributed to; set on the catalog when the vault is opened.
#[derive(Clone)]
pub(crate) struct AuditCtx {
    pub(crate) device_id: String,
    pub(crate) actor: String,
    pub(crate) user_agent: String,
    pub(crate) clock: Arc<dyn Clock>,
}

/// How the frame's resource is found once the change is in the transaction.
#[derive(Clone, Debug)]
pub(crate) enum ResourceOf {
    Fixed(String),
    /// The item version the transaction just inserted (imports).
    LastItemVersion,
    /// The project the transaction just inserted.
    LastProject,
}

#[derive(Clone, Debug)]
struct Frame {
    action: &'static str,
    resource: ResourceOf,
    detail: String,
    /// Record an event in every write of the frame (imports: one per file), not just the first.
    repeat: bool,
    in_flight: u32,
    committed: u32,
}

/// What one unit of a batch write is about, when its caller knows: resource and the detail
/// to add (saves looking it up again for every event of a group).
pub(crate) type Subject = (String, Option<String>);

/// Per-catalog audit state: the context and the open frame, if any.
#[derive(Default)]
pub(crate) struct AuditHook {
    ctx: Option<AuditCtx>,
    frame: Option<Frame>,
    /// The chain head after this transaction's last event, inside a batch write (nothing else
    /// appends while it runs); `None` means read it from the table.
    batch_head: Option<Checkpoint>,
    in_batch: bool,
}

impl AuditHook {
    /// Called by `Catalog::write` right before commit (and by `Catalog::write_each` after each
    /// unit of work): appends the frame's success event. A `repeat` frame gets one event per
    /// call (imports: one per file, even when a group of files shares one transaction); any
    /// other frame exactly one.
    pub(crate) fn flush(&mut self, tx: &Connection) -> Result<()> {
        self.flush_with(tx, None)
    }

    /// Starts a batch write (`Catalog::write_each`): its events may reuse the chain head.
    pub(crate) fn begin_batch(&mut self) {
        self.in_batch = true;
        self.batch_head = None;
    }

    /// [`AuditHook::flush`], with the subject of the event given by the caller if known.
    pub(crate) fn flush_with(&mut self, tx: &Connection, subject: Option<Subject>) -> Result<()> {
        let (Some(ctx), Some(frame)) = (&self.ctx, &mut self.frame) else {
            return Ok(());
        };
        if (frame.committed > 0 || frame.in_flight > 0) && !frame.repeat {
            return Ok(());
        }
        let (resource, extra) = match (&frame.resource, subject) {
            (ResourceOf::Fixed(r), _) => (r.clone(), None),
            (_, Some(s)) => s,
            (ResourceOf::LastItemVersion, None) => tx
                .prepare_cached(
                    "SELECT i.project_id, v.item_id, v.version FROM item_versions v
                     JOIN items i ON i.id = v.item_id WHERE v.rowid = last_insert_rowid()",
                )?
                .query_row([], |r| {
                    Ok((
                        labvault_governance::audit::resources::item(
                            &r.get::<_, String>(0)?,
                            &r.get::<_, String>(1)?,
                        ),
                        Some(format!("version={}", r.get::<_, i64>(2)?)),
                    ))
                })
                .optional()?
                .unwrap_or_else(|| ("vault".into(), None)),
            (ResourceOf::LastProject, None) => tx
                .query_row(
                    "SELECT id FROM projects WHERE rowid = last_insert_rowid()",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .map(|p| (labvault_governance::audit::resources::project(&p), None))
                .unwrap_or_else(|| ("vault".into(), None)),
        };
        let detail = match extra {
            Some(x) if frame.detail.is_empty() => x,
            Some(x) => format!("{} {x}", frame.detail),
            None => frame.detail.clone(),
        };
        let d = draft(ctx, frame.action, resource, Outcome::Success, detail)?;
        let mut h = match self.batch_head.take() {
            Some(h) => h,
            None => head(tx, &ctx.device_id)?,
        };
        insert(tx, &h.append(d))?;
        if self.in_batch {
            self.batch_head = Some(h);
        }
        frame.in_flight += 1;
        Ok(())
    }

    fn end_batch(&mut self) {
        self.in_batch = false;
        self.batch_head = None;
    }

    /// Called by `Catalog::write` after a successful commit.
    pub(crate) fn committed(&mut self) {
        self.end_batch();
        if let Some(f) = &mut self.frame {
            f.committed += std::mem::take(&mut f.in_flight);
        }
    }

    /// Called when a transaction is rolled back.
    pub(crate) fn rolled_back(&mut self) {
        self.end_batch();
        if let Some(f) = &mut self.frame {
            f.in_flight = 0;
        }
    }

    pub(crate) fn set_ctx(&mut self, ctx: AuditCtx) {
        self.ctx = Some(ctx);
    }
}

fn draft(
    ctx: &AuditCtx,
    action: &str,
    resource: String,
    result: Outcome,
    detail: String,
) -> Result<EventDraft> {
    let action = Action::new(action).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(
        EventDraft::new(ctx.clock.now(), ctx.actor.clone(), action, resource, result)
            .user_agent(ctx.user_agent.clone())
            .detail(detail),
    )
}

/// The head of `device_id`'s chain as stored.
pub(crate) fn head(conn: &Connection, device_id: &str) -> Result<Checkpoint> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT seq, hash FROM audit_events WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Checkpoint::genesis(device_id),
        Some((seq, hash)) => Checkpoint {
            device_id: device_id.to_string(),
            seq: seq as u64,
            head_hash: hash
                .try_into()
                .map_err(|_| Error::CorruptCatalog("audit event hash is not 32 bytes".into()))?,
        },
    })
}

/// Seals and inserts one event (the caller owns the transaction).
pub(crate) fn append(
    conn: &Connection,
    ctx: &AuditCtx,
    action: &str,
    resource: String,
    result: Outcome,
    detail: String,
) -> Result<AuditEvent> {
    let d = draft(ctx, action, resource, result, detail)?;
    append_draft(conn, &ctx.device_id, d)
}

pub(crate) fn append_draft(
    conn: &Connection,
    device_id: &str,
    d: EventDraft,
) -> Result<AuditEvent> {
    let mut h = head(conn, device_id)?;
    let ev = h.append(d);
    insert(conn, &ev)?;
    Ok(ev)
}

pub(crate) fn insert(conn: &Connection, ev: &AuditEvent) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events(device_id, seq, ts, user, action, resource, ip_address, user_agent,
            result, detail, v, prev_hash, hash) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    )?
    .execute(params![
        ev.device_id,
        ev.seq as i64,
        unix_micros(ev.timestamp),
        ev.user,
        ev.action.as_str(),
        ev.resource,
        ev.ip_address,
        ev.user_agent,
        ev.result.as_str(),
        ev.detail,
        ev.v,
        &ev.prev_hash[..],
        &ev.hash[..],
    ])?;
    Ok(())
}

const EVENT_COLS: &str = "id, device_id, seq, ts, user, action, resource, ip_address, user_agent, result, detail, v, prev_hash, hash";

/// Columns read by [`event_ref`], in its order.
const REF_COLS: &str = "device_id, seq, ts, user, action, resource, ip_address, user_agent, result, detail, v, prev_hash, hash";

/// The row's event as borrowed values (no allocation), for bulk verification and export.
/// `None` when a column does not have the stored type (the caller falls back to the checked
/// path, which reports it).
fn event_ref<'r>(r: &'r Row<'_>) -> rusqlite::Result<Option<EventRef<'r>>> {
    fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
        Ok(r.get_ref(i)?.as_str().ok())
    }
    fn hash<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r [u8; 32]>> {
        Ok(r.get_ref(i)?.as_blob().ok().and_then(|b| b.try_into().ok()))
    }
    let int = |i: usize| -> rusqlite::Result<Option<i64>> { Ok(r.get_ref(i)?.as_i64().ok()) };
    let (
        Some(device_id),
        Some(seq),
        Some(ts_micros),
        Some(user),
        Some(action),
        Some(resource),
        Some(ip_address),
        Some(user_agent),
        Some(result),
        Some(detail),
        Some(v),
        Some(prev_hash),
        Some(hash),
    ) = (
        text(r, 0)?,
        int(1)?,
        int(2)?,
        text(r, 3)?,
        text(r, 4)?,
        text(r, 5)?,
        text(r, 6)?,
        text(r, 7)?,
        text(r, 8)?,
        text(r, 9)?,
        int(10)?,
        hash(r, 11)?,
        hash(r, 12)?,
    )
    else {
        return Ok(None);
    };
    let (Ok(seq), Ok(v)) = (u64::try_from(seq), u16::try_from(v)) else {
        return Ok(None);
    };
    Ok(Some(EventRef {
        device_id,
        seq,
        ts_micros,
        user,
        action,
        resource,
        ip_address,
        user_agent,
        result,
        detail,
        v,
        prev_hash,
        hash,
    }))
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<(i64, AuditEvent)> {
    let conv = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(Error::CorruptCatalog(e)),
        )
    };
    let hash32 = |i: usize| -> rusqlite::Result<[u8; 32]> {
        let b: Vec<u8> = r.get(i)?;
        b.try_into()
            .map_err(|_| conv(i, "hash is not 32 bytes".into()))
    };
    let ev = AuditEvent {
        device_id: r.get(1)?,
        seq: r.get::<_, i64>(2)? as u64,
        timestamp: from_unix_micros(r.get(3)?).map_err(|e| conv(3, e.to_string()))?,
        user: r.get(4)?,
        action: Action::new(r.get::<_, String>(5)?).map_err(|e| conv(5, e.to_string()))?,
        resource: r.get(6)?,
        ip_address: r.get(7)?,
        user_agent: r.get(8)?,
        result: r
            .get::<_, String>(9)?
            .parse()
            .map_err(|e: labvault_governance::audit::AuditError| conv(9, e.to_string()))?,
        detail: r.get(10)?,
        v: r.get::<_, i64>(11)? as u16,
        prev_hash: hash32(12)?,
        hash: hash32(13)?,
    };
    Ok((r.get(0)?, ev))
}

/// One device's run of events inside an id range, as checked by [`verify_segment`].
struct SegChain {
    device_id: String,
    first_seq: u64,
    first_prev: [u8; 32],
    last_seq: u64,
    last_hash: [u8; 32],
}

/// Checks events `lo..=hi` (by id) on `conn`: every event's own hash, and within the range
/// each device's events follow each other (seq + 1, linked). `None` at the first event that
/// does not. The links into the range are checked by the caller.
fn verify_segment(
    conn: &Connection,
    lo: i64,
    hi: i64,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<Vec<SegChain>>> {
    let mut st = conn.prepare(&format!(
        "SELECT {REF_COLS} FROM audit_events WHERE id BETWEEN ?1 AND ?2 ORDER BY id"
    ))?;
    let mut rows = st.query([lo, hi])?;
    let mut chains: Vec<SegChain> = Vec::new();
    let mut cur = 0usize;
    let mut done = 0u64;
    while let Some(r) = rows.next()? {
        let Some(ev) = event_ref(r)? else {
            return Ok(None);
        };
        if !ev.is_hash_valid() {
            return Ok(None);
        }
        if chains.get(cur).is_none_or(|c| c.device_id != ev.device_id) {
            match chains.iter().position(|c| c.device_id == ev.device_id) {
                Some(i) => cur = i,
                None => {
                    chains.push(SegChain {
                        device_id: ev.device_id.to_string(),
                        first_seq: ev.seq,
                        first_prev: *ev.prev_hash,
                        last_seq: ev.seq,
                        last_hash: *ev.hash,
                    });
                    cur = chains.len() - 1;
                    done += 1;
                    continue;
                }
            }
        }
        let c = &mut chains[cur];
        if ev.seq != c.last_seq + 1 || *ev.prev_hash != c.last_hash {
            return Ok(None);
        }
        c.last_seq = ev.seq;
        c.last_hash = *ev.hash;
        done += 1;
        if done.is_multiple_of(65_536) {
            progress(done, total);
        }
    }
    Ok(Some(chains))
}

/// Filters for [`Vault::audit_query`] and [`Vault::audit_export`]; all optional, combined with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Events at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Events strictly before this instant.
    pub to: Option<OffsetDateTime>,
    /// Exact user.
    pub user: Option<String>,
    /// Action prefix (`data.` or `data.export`).
    pub action_prefix: Option<String>,
    /// Resource prefix (`project/<id>`).
    pub resource_prefix: Option<String>,
    /// Result.
    pub result: Option<Outcome>,
}

impl AuditFilter {
    /// True when no filter is set (an export is then the whole log).
    pub fn is_empty(&self) -> bool {
        *self == AuditFilter::default()
    }

    fn sql(&self, args: &mut Vec<Box<dyn ToSql>>) -> String {
        let mut w = String::from(" WHERE 1=1");
        if let Some(f) = self.from {
            args.push(Box::new(unix_micros(f)));
            w += &format!(" AND ts >= ?{}", args.len());
        }
        if let Some(t) = self.to {
            args.push(Box::new(unix_micros(t)));
            w += &format!(" AND ts < ?{}", args.len());
        }
        if let Some(u) = &self.user {
            args.push(Box::new(u.clone()));
            w += &format!(" AND user = ?{}", args.len());
        }
        for (col, p) in [
            ("action", &self.action_prefix),
            ("resource", &self.resource_prefix),
        ] {
            if let Some(p) = p {
                args.push(Box::new(p.clone()));
                // An index range: every string starting with p sorts in [p, p || U+10FFFF).
                w += &format!(
                    " AND {col} >= ?{n} AND {col} < ?{n} || char(1114111)",
                    n = args.len()
                );
            }
        }
        if let Some(r) = self.result {
            args.push(Box::new(r.as_str()));
            w += &format!(" AND result = ?{}", args.len());
        }
        w
    }
}

/// One page of [`Vault::audit_query`], newest first.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass this back as the cursor to get the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// What an audit export wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditExportSummary {
    /// Where.
    pub path: PathBuf,
    /// Events written.
    pub events: u64,
    /// True when a filter was applied (verify it in segments mode).
    pub filtered: bool,
}

fn parse_cursor(c: &str) -> Result<(i64, i64)> {
    let bad = || Error::InvalidArgument(format!("invalid audit cursor {c:?}"));
    let (a, b) = c.split_once('.').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// Largest page [`Vault::audit_query`] returns.
pub const MAX_PAGE: usize = 10_000;

impl Vault {
    pub(crate) fn audit_ctx(&self) -> AuditCtx {
        AuditCtx {
            device_id: self.device_id.clone(),
            actor: self.actor.clone(),
            user_agent: self.user_agent.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Runs `op` as one audited action: its first committed write (every write with
    /// `repeat`) carries the success event; if it fails before any commit, a failure/denied
    /// event is recorded in its own transaction; if it commits nothing but succeeds (a
    /// read-only action), its success event is recorded afterwards.
    pub(crate) fn audited<T>(
        &mut self,
        action: &'static str,
        resource: ResourceOf,
        detail: String,
        repeat: bool,
        op: impl FnOnce(&mut Vault) -> Result<T>,
    ) -> Result<T> {
        let ctx = self.audit_ctx();
        self.catalog.audit.set_ctx(ctx);
        self.catalog.audit.frame = Some(Frame {
            action,
            resource: resource.clone(),
            detail: detail.clone(),
            repeat,
            in_flight: 0,
            committed: 0,
        });
        let out = op(self);
        let committed = self
            .catalog
            .audit
            .frame
            .take()
            .map(|f| f.committed)
            .unwrap_or(0);
        let fixed = match resource {
            ResourceOf::Fixed(r) => r,
            _ => "vault".to_string(),
        };
        match &out {
            // A repeat frame (import) records one event per committed write, nothing otherwise.
            Ok(_) if committed == 0 && !repeat => {
                self.record(action, fixed, Outcome::Success, detail)?
            }
            Ok(_) => {}
            Err(_) if committed > 0 => {}
            Err(e) => {
                let result = match e.code() {
                    ErrorCode::OnHold => Outcome::Denied,
                    _ => Outcome::Failure,
                };
                // Best effort: the operation's own error is what the caller needs to see.
                if let Err(rec) = self.record(action, fixed, result, e.code().as_str().to_string())
                {
                    tracing::warn!(
                        code = rec.code().as_str(),
                        "could not record a failure audit event"
                    );
                }
            }
        }
        out
    }

    /// Records one event in its own transaction.
    pub(crate) fn record(
        &mut self,
        action: &str,
        resource: String,
        result: Outcome,
        detail: String,
    ) -> Result<()> {
        let ctx = self.audit_ctx();
        let frame = self.catalog.audit.frame.take();
        let r = self
            .catalog
            .write(|tx| append(tx, &ctx, action, resource, result, detail).map(|_| ()));
        self.catalog.audit.frame = frame;
        r
    }

    /// Audit events matching `filter`, newest first, `limit` (1..=10,000) at a time; pass the
    /// returned cursor to continue. Keyset paging on (timestamp, insertion order), so every page
    /// costs the same however deep it is.
    pub fn audit_query(
        &self,
        filter: &AuditFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<AuditPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let index = self.choose_index(filter)?;
        // Two steps: pick the page's ids from the index alone (when the filter's columns are
        // all in it, no table row is read for the candidates that are sorted away), then read
        // only those rows. A filter matching few events spread over a large log then costs
        // a few index pages, not one table page per candidate.
        let mut sql = format!(
            "SELECT {EVENT_COLS} FROM audit_events WHERE id IN (SELECT id FROM audit_events INDEXED BY {index}"
        );
        sql += &filter.sql(&mut args);
        if let Some(c) = cursor {
            let (ts, id) = parse_cursor(c)?;
            args.push(Box::new(ts));
            let n = args.len();
            args.push(Box::new(id));
            sql += &format!(" AND ts <= ?{n} AND (ts < ?{n} OR id < ?{})", n + 1);
        }
        sql += &format!(
            " ORDER BY ts DESC, id DESC LIMIT {}) ORDER BY ts DESC, id DESC",
            limit + 1
        );
        let mut st = self.catalog.conn().prepare(&sql)?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let mut rows: Vec<(i64, AuditEvent)> = st
            .query_map(refs.as_slice(), event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|(id, ev)| format!("{}.{}", unix_micros(ev.timestamp), id))
        } else {
            None
        };
        Ok(AuditPage {
            events: rows.into_iter().map(|(_, e)| e).collect(),
            next_cursor,
        })
    }

    /// Picks the index for a newest-first page. The planner has no reliable statistics for a
    /// log that grows all the time, so we probe: each filtered column's index is asked for at
    /// most `PROBE` matching entries; a filter matching fewer is used directly (few rows to
    /// sort), otherwise an equality index that yields time order (user, result) is scanned,
    /// otherwise the time index is scanned backwards until the page is full.
    fn choose_index(&self, filter: &AuditFilter) -> Result<&'static str> {
        const PROBE: i64 = 2_000;
        let conn = self.catalog.conn();
        let mut best: Option<(i64, &'static str)> = None;
        let mut ordered: Option<&'static str> = None;
        let mut probe = |index: &'static str, cond: &str, args: &[&str], eq: bool| -> Result<()> {
            let sql = format!(
                "SELECT count(*) FROM (SELECT 1 FROM audit_events INDEXED BY {index} WHERE {cond} LIMIT {PROBE})"
            );
            // An index missing from an older schema is simply not a candidate.
            let Ok(n) = conn.prepare_cached(&sql).and_then(|mut st| {
                st.query_row(rusqlite::params_from_iter(args.iter()), |r| {
                    r.get::<_, i64>(0)
                })
            }) else {
                return Ok(());
            };
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, index));
            }
            if eq && ordered.is_none() {
                ordered = Some(index);
            }
            Ok(())
        };
        if let Some(u) = &filter.user {
            probe("audit_user_ts", "user = ?1", &[u], true)?;
        }
        if let Some(r) = filter.result {
            probe("audit_result_ts", "result = ?1", &[r.as_str()], true)?;
        }
        if let Some(a) = &filter.action_prefix {
            probe(
                "audit_action_ts",
                "action >= ?1 AND action < ?1 || char(1114111)",
                &[a],
                false,
            )?;
            const RANGE: &str = "action >= ?2 AND action < ?2 || char(1114111)";
            if let Some(r) = filter.result {
                let cond = format!("result = ?1 AND {RANGE}");
                probe("audit_result_action_ts", &cond, &[r.as_str(), a], false)?;
            }
            if let Some(u) = &filter.user {
                let cond = format!("user = ?1 AND {RANGE}");
                probe("audit_user_action_ts", &cond, &[u, a], false)?;
            }
        }
        if let Some(r) = &filter.resource_prefix {
            probe(
                "audit_resource_ts",
                "resource >= ?1 AND resource < ?1 || char(1114111)",
                &[r],
                false,
            )?;
        }
        Ok(match (best, ordered) {
            (Some((n, index)), _) if n < PROBE => index,
            (_, Some(index)) => index,
            _ => "audit_ts",
        })
    }

    /// Like [`Vault::audit_for_each`], with each event as borrowed column values (no
    /// allocation per event): the bulk export path.
    fn audit_for_each_ref(
        &self,
        filter: &AuditFilter,
        mut f: impl FnMut(&EventRef<'_>) -> Result<()>,
    ) -> Result<u64> {
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let mut sql = format!("SELECT {REF_COLS} FROM audit_events");
        sql += &filter.sql(&mut args);
        sql += " ORDER BY device_id, seq";
        let mut st = self.catalog.conn().prepare(&sql)?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let mut rows = st.query(refs.as_slice())?;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            let ev = event_ref(r)?.ok_or_else(|| {
                Error::CorruptCatalog("an audit event column has the wrong type".into())
            })?;
            f(&ev)?;
            n += 1;
        }
        Ok(n)
    }

    /// Streams every event matching `filter` in chain order (device, seq) to `f`.
    pub fn audit_for_each(
        &self,
        filter: &AuditFilter,
        mut f: impl FnMut(AuditEvent) -> Result<()>,
    ) -> Result<u64> {
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let mut sql = format!("SELECT {EVENT_COLS} FROM audit_events");
        sql += &filter.sql(&mut args);
        sql += " ORDER BY device_id, seq";
        let mut st = self.catalog.conn().prepare(&sql)?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let mut rows = st.query(refs.as_slice())?;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            f(event_from_row(r)?.1)?;
            n += 1;
        }
        Ok(n)
    }

    /// Number of audit events stored.
    pub fn audit_count(&self) -> Result<u64> {
        Ok(self
            .catalog
            .conn()
            .query_row("SELECT count(*) FROM audit_events", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Re-verifies every device chain in the catalog (streaming) and records `audit.verify`.
    /// A break is reported as [`Error::Tampered`] naming the device and the first bad seq.
    pub fn audit_verify(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<Vec<ChainReport>> {
        self.audited(
            actions::AUDIT_VERIFY,
            ResourceOf::Fixed("audit".into()),
            String::new(),
            false,
            |v| v.audit_verify_unaudited(progress),
        )
    }

    fn audit_verify_unaudited(
        &self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<ChainReport>> {
        let total = self.audit_count()?;
        if let Some(reports) = self.audit_verify_fast(total, progress, 100_000)? {
            return Ok(reports);
        }
        self.audit_verify_diagnose(total, progress)
    }

    /// Verification fast path: the table in insertion order, hashing the borrowed column
    /// values straight from SQLite's buffers (no allocation per event). A device's events are
    /// inserted in seq order, so in insertion order each chain must go on exactly where it
    /// stopped. A large log is split into two halves of the id range, read at the same time by
    /// the main connection and a second read-only connection on another thread (SQLCipher's
    /// page decryption and the hashing then use both cores); the halves are stitched by
    /// checking that the second half's first event of each device links to the first half's
    /// last. `None` at the first event that does not fit, or if a column has an unexpected
    /// type: then [`Self::audit_verify_diagnose`] re-reads in (device, seq) order and names and
    /// classifies the first bad event. Both passes check the same hashes and links; only the
    /// diagnosing pass also re-parses names and times.
    /// Logs of fewer than `split_at` events are read by one thread.
    fn audit_verify_fast(
        &self,
        total: u64,
        progress: &mut dyn FnMut(u64, u64),
        split_at: u64,
    ) -> Result<Option<Vec<ChainReport>>> {
        let conn = self.catalog.conn();
        let (lo, hi): (i64, i64) = conn.query_row(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM audit_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let segments = if total < split_at {
            vec![verify_segment(conn, lo, hi, total, progress)?]
        } else {
            let mid = lo + (hi - lo) / 2;
            let reader = crate::catalog::Catalog::open_reader(
                &self.dir.join(crate::vault::CATALOG_FILE),
                &self.root.catalog_key(),
            )?;
            std::thread::scope(|scope| -> Result<_> {
                let second = scope
                    .spawn(move || verify_segment(&reader, mid + 1, hi, total, &mut |_, _| {}));
                // The first half reports progress for both (they advance together).
                let first = verify_segment(conn, lo, mid, total, &mut |d, t| progress(d * 2, t))?;
                let second = second
                    .join()
                    .map_err(|_| Error::Internal("audit verification thread panicked".into()))??;
                Ok(vec![first, second])
            })?
        };
        progress(total, total);
        let mut chains: Vec<SegChain> = Vec::new();
        for seg in segments {
            let Some(seg) = seg else {
                return Ok(None);
            };
            for c in seg {
                match chains.iter_mut().find(|p| p.device_id == c.device_id) {
                    Some(p) => {
                        if c.first_seq != p.last_seq + 1 || c.first_prev != p.last_hash {
                            return Ok(None);
                        }
                        p.last_seq = c.last_seq;
                        p.last_hash = c.last_hash;
                    }
                    None => {
                        if c.first_seq != 1 || c.first_prev != genesis_hash(&c.device_id) {
                            return Ok(None);
                        }
                        chains.push(c);
                    }
                }
            }
        }
        chains.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(Some(
            chains
                .into_iter()
                .map(|c| ChainReport {
                    events: c.last_seq,
                    first_seq: Some(1),
                    head: Some(Checkpoint {
                        device_id: c.device_id.clone(),
                        seq: c.last_seq,
                        head_hash: c.last_hash,
                    }),
                    device_id: c.device_id,
                    gaps: 0,
                    omitted: 0,
                    complete: true,
                    checkpoint_matched: false,
                })
                .collect(),
        ))
    }

    /// The diagnosing verifier: (device, seq) order through [`ChainVerifier`], which reports
    /// the first bad seq and whether it was edited, deleted, inserted or reordered.
    fn audit_verify_diagnose(
        &self,
        total: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<ChainReport>> {
        let mut reports = Vec::new();
        let mut current: Option<ChainVerifier> = None;
        let mut done = 0u64;
        let tampered = |e: labvault_governance::ChainError| Error::Tampered {
            what: format!("the audit trail of device {}", e.device_id),
            detail: format!(
                "first bad event: seq {} ({})",
                e.first_bad_seq,
                e.kind.as_str()
            ),
        };
        let mut st = self.catalog.conn().prepare(&format!(
            "SELECT {EVENT_COLS} FROM audit_events ORDER BY device_id, seq"
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (_, ev) = event_from_row(r)?;
            let switch = current
                .as_ref()
                .is_none_or(|c| c.device_id() != Some(ev.device_id.as_str()));
            if switch {
                if let Some(c) = current.take() {
                    reports.push(c.finish().map_err(tampered)?);
                }
                current = Some(ChainVerifier::for_device(
                    ev.device_id.clone(),
                    VerifyMode::Complete,
                ));
            }
            if let Some(c) = current.as_mut() {
                c.push(ev).map_err(tampered)?;
            }
            done += 1;
            if done.is_multiple_of(65_536) {
                progress(done, total);
            }
        }
        if let Some(c) = current.take() {
            reports.push(c.finish().map_err(tampered)?);
        }
        progress(done, total);
        Ok(reports)
    }

    /// Writes the events matching `filter` to `out` (CSV or JSON Lines) in chain order, via a
    /// temp file renamed into place, and records `audit.export`.
    pub fn audit_export(
        &mut self,
        filter: &AuditFilter,
        format: ExportFormat,
        out: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<AuditExportSummary> {
        let detail = format!(
            "format={} filtered={}",
            match format {
                ExportFormat::Csv => "csv",
                ExportFormat::Jsonl => "jsonl",
            },
            !filter.is_empty()
        );
        self.audited(
            actions::AUDIT_EXPORT,
            ResourceOf::Fixed("audit".into()),
            detail,
            false,
            |v| v.audit_export_unaudited(filter, format, out, progress),
        )
    }

    fn audit_export_unaudited(
        &self,
        filter: &AuditFilter,
        format: ExportFormat,
        out: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<AuditExportSummary> {
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let total = self.audit_count()?;
        let tmp_path = dir.join(format!(".labvault-audit-{}.tmp", uuid::Uuid::new_v4()));
        struct Cleanup(Option<PathBuf>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                if let Some(p) = self.0.take() {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| Error::io_path("creating export temp file", &tmp_path, e))?;
        let mut guard = Cleanup(Some(tmp_path.clone()));
        let ctx = format!("writing audit export {}", out.display());
        let wrap = |e: labvault_governance::export::ExportError| match e {
            labvault_governance::export::ExportError::Io(io) => Error::io(ctx.clone(), io),
            other => Error::Internal(other.to_string()),
        };
        let mut w = ExportWriter::new(std::io::BufWriter::with_capacity(1 << 20, file), format)
            .map_err(wrap)?;
        let n = self.audit_for_each_ref(filter, |ev| {
            w.write_ref(ev).map_err(wrap)?;
            if w.written().is_multiple_of(65_536) {
                progress(w.written(), total);
            }
            Ok(())
        })?;
        let buf = w.finish().map_err(wrap)?;
        let file = buf
            .into_inner()
            .map_err(|e| Error::io(ctx.clone(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(ctx.clone(), e))?;
        drop(file);
        std::fs::rename(&tmp_path, out).map_err(|e| Error::io(ctx.clone(), e))?;
        guard.0 = None;
        progress(n, total);
        Ok(AuditExportSummary {
            path: out.to_path_buf(),
            events: n,
            filtered: !filter.is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{KdfParams, Passphrase, Vault, VaultOptions};

    fn vault(dir: &std::path::Path) -> Vault {
        let opts = VaultOptions {
            kdf: Some(KdfParams::FLOOR),
            ..Default::default()
        };
        let (mut v, _) = Vault::create(dir, &Passphrase::new("pass".into()), opts).unwrap();
        for i in 0..30 {
            v.create_project(&format!("p{i}")).unwrap();
        }
        v
    }

    #[test]
    fn split_verification_agrees_with_the_diagnosing_pass_and_catches_breaks_at_the_seam() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault(&tmp.path().join("a"));
        let total = v.audit_count().unwrap();
        let fast = v
            .audit_verify_fast(total, &mut |_, _| {}, 1)
            .unwrap()
            .expect("an intact chain passes the split fast path");
        let slow = v.audit_verify_diagnose(total, &mut |_, _| {}).unwrap();
        assert_eq!(fast.len(), 1);
        assert_eq!(fast[0].head, slow[0].head);
        assert_eq!(fast[0].events, total);
        assert!(fast[0].complete);

        let (lo, hi): (i64, i64) = v
            .catalog
            .conn()
            .query_row("SELECT min(id), max(id) FROM audit_events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let seam = lo + (hi - lo) / 2 + 1;
        // The first event of the second half deleted (the halves no longer join), and
        // separately one in the middle of the second half edited.
        for (n, sql) in [
            "DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE id = ?1",
            "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET detail = 'x' WHERE id = ?1 + 3",
        ]
        .into_iter()
        .enumerate()
        {
            let v = vault(&tmp.path().join(format!("b{n}")));
            let (stmt, del) = sql.split_once("; ").unwrap();
            v.catalog.conn().execute_batch(stmt).unwrap();
            v.catalog.conn().execute(del, [seam]).unwrap();
            let total = v.audit_count().unwrap();
            assert!(v
                .audit_verify_fast(total, &mut |_, _| {}, 1)
                .unwrap()
                .is_none());
            let err = v.audit_verify_diagnose(total, &mut |_, _| {}).unwrap_err();
            assert_eq!(err.code().as_str(), "tampered");
        }
    }
}
