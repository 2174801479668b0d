//! The vault's audit trail on a catalog connection: appending hash-chained events (format and
//! chain from `labvault-governance`), queries with keyset paging, verification and export.
//!
//! Operations record their events explicitly (see `vault.rs`, `WriteOp`): each change appends
//! its event with [`append`] inside its own transaction, so "every action produces exactly one
//! event, committed with the change" holds by construction. This module knows nothing of
//! vaults; it works on connections.

use crate::error::{Error, Result};
use labvault_governance::audit::{
    from_unix_micros, genesis_hash, unix_micros, Action, AuditEvent, ChainReport, ChainVerifier,
    Checkpoint, EventDraft, EventRef, Outcome, VerifyMode,
};
use labvault_governance::export::{ExportFormat, ExportWriter};
use labvault_governance::Clock;
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// Who acts, for every event a vault handle writes.
#[derive(Clone)]
pub(crate) struct Actor {
    /// The chain the events go into (this vault's device).
    pub(crate) device_id: String,
    /// The user.
    pub(crate) user: String,
    /// The program.
    pub(crate) user_agent: String,
    /// "Now".
    pub(crate) clock: Arc<dyn Clock>,
}

/// What an event is about beyond its action: the resource acted on and a detail. Operations
/// return it with their result so the event names exactly what they did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// Resource path (`vault`, `project/<id>`, `item/<project>/<item>`, `audit`).
    pub resource: String,
    /// Free-form detail (`version=2`, an error code, counts).
    pub detail: String,
}

impl Subject {
    /// A subject with a detail.
    pub fn new(resource: impl Into<String>, detail: impl Into<String>) -> Subject {
        Subject {
            resource: resource.into(),
            detail: detail.into(),
        }
    }

    /// A subject without detail.
    pub fn on(resource: impl Into<String>) -> Subject {
        Subject::new(resource, String::new())
    }
}

fn draft(actor: &Actor, action: &str, subject: Subject, result: Outcome) -> Result<EventDraft> {
    let action = Action::new(action).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(EventDraft::new(
        actor.clock.now(),
        actor.user.clone(),
        action,
        subject.resource,
        result,
    )
    .user_agent(actor.user_agent.clone())
    .detail(subject.detail))
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

/// Seals and inserts one event; the caller owns the transaction (the change it records).
pub(crate) fn append(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    subject: Subject,
    result: Outcome,
) -> Result<AuditEvent> {
    let d = draft(actor, action, subject, result)?;
    append_draft(conn, &actor.device_id, d)
}

/// Seals and inserts a prepared event (journal ingestion sets its own time and user).
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

/// Appends many events inside ONE transaction (a group commit), reading the chain head once:
/// nothing else can append while the transaction is open.
pub(crate) struct ChainAppender {
    head: Checkpoint,
}

impl ChainAppender {
    /// Starts at the current head; call inside the transaction that will hold the events.
    pub(crate) fn new(conn: &Connection, device_id: &str) -> Result<ChainAppender> {
        Ok(ChainAppender {
            head: head(conn, device_id)?,
        })
    }

    /// Appends one event after the previous one.
    pub(crate) fn push(
        &mut self,
        conn: &Connection,
        actor: &Actor,
        action: &str,
        subject: Subject,
        result: Outcome,
    ) -> Result<()> {
        let ev = self.head.append(draft(actor, action, subject, result)?);
        insert(conn, &ev)
    }
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

/// Audit events matching `filter`, newest first, `limit` (1..=10,000) at a time; pass the
/// returned cursor to continue. Keyset paging on (timestamp, insertion order), so every page
/// costs the same however deep it is.
pub(crate) fn query(
    conn: &Connection,
    filter: &AuditFilter,
    limit: usize,
    cursor: Option<&str>,
) -> Result<AuditPage> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let index = choose_index(conn, filter)?;
    // Two steps: pick the page's ids from the index alone (when the filter's columns are all
    // in it, no table row is read for the candidates that are sorted away), then read only
    // those rows. A filter matching few events spread over a large log then costs a few index
    // pages, not one table page per candidate.
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
    let mut st = conn.prepare(&sql)?;
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

/// Picks the index for a newest-first page. The planner has no reliable statistics for a log
/// that grows all the time, so we probe: each filtered column's index is asked for at most
/// `PROBE` matching entries; a filter matching fewer is used directly (few rows to sort),
/// otherwise an equality index that yields time order (user, result) is scanned, otherwise the
/// time index is scanned backwards until the page is full.
fn choose_index(conn: &Connection, filter: &AuditFilter) -> Result<&'static str> {
    const PROBE: i64 = 2_000;
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

/// Like [`for_each`], with each event as borrowed column values (no allocation per event): the
/// bulk export path.
fn for_each_ref(
    conn: &Connection,
    filter: &AuditFilter,
    mut f: impl FnMut(&EventRef<'_>) -> Result<()>,
) -> Result<u64> {
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut sql = format!("SELECT {REF_COLS} FROM audit_events");
    sql += &filter.sql(&mut args);
    sql += " ORDER BY device_id, seq";
    let mut st = conn.prepare(&sql)?;
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
pub(crate) fn for_each(
    conn: &Connection,
    filter: &AuditFilter,
    mut f: impl FnMut(AuditEvent) -> Result<()>,
) -> Result<u64> {
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut sql = format!("SELECT {EVENT_COLS} FROM audit_events");
    sql += &filter.sql(&mut args);
    sql += " ORDER BY device_id, seq";
    let mut st = conn.prepare(&sql)?;
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
pub(crate) fn count(conn: &Connection) -> Result<u64> {
    Ok(
        conn.query_row("SELECT count(*) FROM audit_events", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

/// Re-verifies every device chain (streaming). A break is [`Error::ChainBroken`] naming the
/// device, the first bad seq and what was found. `second` opens another read connection for
/// the second half of a large log (see [`verify_fast`]).
pub(crate) fn verify(
    conn: &Connection,
    second: impl FnOnce() -> Result<Connection> + Send,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<ChainReport>> {
    let total = count(conn)?;
    if let Some(reports) = verify_fast(conn, second, total, progress, 100_000)? {
        return Ok(reports);
    }
    verify_diagnose(conn, total, progress)
}

/// Verification fast path: the table in insertion order, hashing the borrowed column values
/// straight from SQLite's buffers (no allocation per event). A device's events are inserted in
/// seq order, so in insertion order each chain must go on exactly where it stopped. A large log
/// is split into two halves of the id range, read at the same time by `conn` and a second
/// read-only connection on another thread (SQLCipher's page decryption and the hashing then use
/// both cores); the halves are stitched by checking that the second half's first event of each
/// device links to the first half's last. `None` at the first event that does not fit, or if a
/// column has an unexpected type: then [`verify_diagnose`] re-reads in (device, seq) order and
/// names and classifies the first bad event. Both passes check the same hashes and links; only
/// the diagnosing pass also re-parses names and times. Logs of fewer than `split_at` events are
/// read by one thread.
fn verify_fast(
    conn: &Connection,
    second: impl FnOnce() -> Result<Connection> + Send,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
    split_at: u64,
) -> Result<Option<Vec<ChainReport>>> {
    // One read transaction: both halves must see the same log (the second connection cannot
    // share it, so its half is bounded by the ids read here; later events are past `hi`).
    let (lo, hi): (i64, i64) = conn.query_row(
        "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM audit_events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let segments = if total < split_at {
        vec![verify_segment(conn, lo, hi, total, progress)?]
    } else {
        let mid = lo + (hi - lo) / 2;
        std::thread::scope(|scope| -> Result<_> {
            let second = scope.spawn(move || {
                let reader = second()?;
                verify_segment(&reader, mid + 1, hi, total, &mut |_, _| {})
            });
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

/// The diagnosing verifier: (device, seq) order through [`ChainVerifier`], which reports the
/// first bad seq and whether it was edited, deleted, inserted or reordered.
fn verify_diagnose(
    conn: &Connection,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<ChainReport>> {
    let mut reports = Vec::new();
    let mut current: Option<ChainVerifier> = None;
    let mut done = 0u64;
    let mut st = conn.prepare(&format!(
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
                reports.push(c.finish().map_err(Error::ChainBroken)?);
            }
            current = Some(ChainVerifier::for_device(
                ev.device_id.clone(),
                VerifyMode::Complete,
            ));
        }
        if let Some(c) = current.as_mut() {
            c.push(ev).map_err(Error::ChainBroken)?;
        }
        done += 1;
        if done.is_multiple_of(65_536) {
            progress(done, total);
        }
    }
    if let Some(c) = current.take() {
        reports.push(c.finish().map_err(Error::ChainBroken)?);
    }
    progress(done, total);
    Ok(reports)
}

/// Writes the events matching `filter` to `out` (CSV or JSON Lines) in chain order, via a temp
/// file renamed into place.
pub(crate) fn export(
    conn: &Connection,
    filter: &AuditFilter,
    format: ExportFormat,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditExportSummary> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let total = count(conn)?;
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
    let n = for_each_ref(conn, filter, |ev| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KdfParams, Passphrase, Vault, VaultOptions};

    fn vault(dir: &std::path::Path) -> Vault {
        let opts = VaultOptions {
            kdf: Some(KdfParams::FLOOR),
            ..Default::default()
        };
        let (v, _) =
            Vault::create(dir, &Passphrase::new("unit test passphrase".into()), opts).unwrap();
        for i in 0..30 {
            v.create_project(&format!("p{i}")).unwrap();
        }
        v
    }

    #[test]
    fn split_verification_agrees_with_the_diagnosing_pass_and_catches_breaks_at_the_seam() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let v = vault(&dir);
        let conn = v.raw_connection_for_tests().unwrap();
        let reader = || v.raw_connection_for_tests();
        let total = count(&conn).unwrap();
        let fast = verify_fast(&conn, reader, total, &mut |_, _| {}, 1)
            .unwrap()
            .expect("an intact chain passes the split fast path");
        let slow = verify_diagnose(&conn, total, &mut |_, _| {}).unwrap();
        assert_eq!(fast.len(), 1);
        assert_eq!(fast[0].head, slow[0].head);
        assert_eq!(fast[0].events, total);
        assert!(fast[0].complete);

        let (lo, hi): (i64, i64) = conn
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
            let conn = v.raw_connection_for_tests().unwrap();
            let (stmt, del) = sql.split_once("; ").unwrap();
            conn.execute_batch(stmt).unwrap();
            conn.execute(del, [seam]).unwrap();
            let total = count(&conn).unwrap();
            let reader = || v.raw_connection_for_tests();
            assert!(verify_fast(&conn, reader, total, &mut |_, _| {}, 1)
                .unwrap()
                .is_none());
            let err = verify_diagnose(&conn, total, &mut |_, _| {}).unwrap_err();
            let Error::ChainBroken(b) = err else {
                panic!("a chain break is a value, got {err}");
            };
            assert_eq!(b.device_id, v.device_id());
            assert!(b.first_bad_seq >= 1);
        }
    }
}
