//! Failed unlock attempts. A wrong passphrase or recovery key means the catalog cannot be
//! opened, so the attempt cannot enter the audit chain right away. It is appended to a small
//! journal file in the vault directory (`audit-journal.jsonl`) and ingested into the chain,
//! as `auth.unlock` events with result `failure`, at the next successful unlock.
//!
//! The journal holds only the time, the unlock method and the error code: no user name, no
//! names, no key material. It is not authenticated (nothing secret is available before
//! unlock); deleting it loses those attempts, which is the documented limit of this design
//! (sealing to a public key kept in the key file would fix the confidentiality side; see
//! `docs/audit-trail.md`).

use crate::error::{Error, Result};
use crate::vault::Vault;
use labvault_governance::audit::{actions, resources, unix_micros, Action, EventDraft, Outcome};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use time::OffsetDateTime;

/// File name of the journal inside the vault directory.
pub const JOURNAL_FILE: &str = "audit-journal.jsonl";

#[derive(Serialize, Deserialize)]
struct Entry {
    id: String,
    ts_us: i64,
    method: String,
    code: String,
}

/// Appends a failed-unlock entry (best effort: an unwritable journal must not hide the real
/// error). Only wrong secrets are journaled; a busy or missing vault is not an attempt.
pub(crate) fn note_failed_unlock(
    dir: &Path,
    _actor: &str,
    _user_agent: &str,
    now: OffsetDateTime,
    method: &str,
    err: &Error,
) {
    use crate::error::ErrorCode as C;
    if !matches!(
        err.code(),
        C::WrongPassphrase | C::WrongRecoveryKey | C::InvalidRecoveryKey | C::KeyringUnavailable
    ) || !crate::vault::vault_exists(dir)
    {
        return;
    }
    let e = Entry {
        id: uuid::Uuid::new_v4().to_string(),
        ts_us: unix_micros(now),
        method: method.to_string(),
        code: err.code().as_str().to_string(),
    };
    let Ok(mut line) = serde_json::to_vec(&e) else {
        return;
    };
    line.push(b'\n');
    let path = dir.join(JOURNAL_FILE);
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(&line)?;
            f.sync_all()
        });
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not journal a failed unlock attempt");
    }
}

/// Moves journaled attempts into the chain in one transaction, then removes the journal.
/// Idempotent: the last ingested entry id is stored in the same transaction, so a crash before
/// the file is removed does not ingest anything twice.
pub(crate) fn ingest(v: &mut Vault) -> Result<u64> {
    let path = v.dir.join(JOURNAL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io_path("reading", &path, e)),
    };
    let entries: Vec<Entry> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let done = v.catalog.meta("audit_journal_last")?;
    let start = done
        .as_deref()
        .and_then(|d| entries.iter().position(|e| e.id == d).map(|i| i + 1))
        .unwrap_or(0);
    let todo = &entries[start..];
    let ctx = v.audit_ctx();
    let n = todo.len() as u64;
    if let Some(last) = todo.last() {
        let action =
            Action::new(actions::AUTH_UNLOCK).map_err(|e| Error::Internal(e.to_string()))?;
        v.catalog.write(|tx| {
            for e in todo {
                let ts = labvault_governance::audit::from_unix_micros(e.ts_us)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let d = EventDraft::new(
                    ts,
                    "unauthenticated",
                    action.clone(),
                    resources::VAULT,
                    Outcome::Failure,
                )
                .user_agent(ctx.user_agent.clone())
                .detail(format!("{} method={} journaled", e.code, e.method));
                crate::audit::append_draft(tx, &ctx.device_id, d)?;
            }
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('audit_journal_last', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = ?1",
                params![last.id],
            )?;
            Ok(())
        })?;
    }
    std::fs::remove_file(&path).map_err(|e| Error::io_path("removing", &path, e))?;
    Ok(n)
}
