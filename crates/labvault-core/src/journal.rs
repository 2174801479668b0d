//! What happens while the vault is locked: failed unlock attempts and "forget on this device".
//! The catalog cannot be written then (the key is what is missing), so these events are
//! appended to a journal file in the vault directory (`audit-journal.jsonl`) and moved into
//! the audit chain at the next successful unlock.
//!
//! Journal format v2, one JSON line per event: `{"v":2,"sealed":"<hex>"}`, where `sealed` is a
//! sealed box (`labvault_crypto::seal`: ephemeral X25519 + HKDF-SHA256 + AES-256-GCM) to the
//! vault's journal public key from the key file, with associated data
//! `"labvault/audit-journal/v2" || 0 || vault_id`. Inside: the event (id, time, action, result,
//! method, error code, OS user) and `prev`, the SHA-256 of the previous line's bytes (for the
//! first line, of `"labvault/audit-journal/v2/start" || 0 || vault_id`). So:
//! * nobody without the vault key can read an entry (confidential), or change one (each box is
//!   authenticated; a forged replacement no longer matches the next entry's `prev`);
//! * deleting, replacing or reordering an entry anywhere but at the end breaks the chain and is
//!   reported at import as an `audit.journal` `failure` event naming the first bad entry; the
//!   entries that open are still imported.
//!
//! What cannot be detected, because the writer of a genuine entry holds no secret either:
//! removing the **last** entries or the **whole file** before the next unlock, and entries
//! forged onto the end (anyone can seal to the public key). See `docs/audit-trail.md`.
//!
//! Version 1 lines (plain JSON, written before the key file had a journal key) are still
//! imported, marked `unsealed` in the event detail.

use crate::error::{Error, Result};
use crate::journal_file::{
    append, line_hash, open_locked, oversized, parse_line, read_all, set_aside, start_hash, Entry,
    Parsed, JOURNAL_FILE,
};
use crate::vault::WriteOp;
use labvault_crypto::JournalSecretKey;
use labvault_governance::audit::{actions, resources, unix_micros, Action, EventDraft, Outcome};
use rusqlite::params;
use std::path::Path;
use time::OffsetDateTime;

/// Journals a failed unlock, or a failed passphrase change whose current passphrase did not
/// open the vault (`action`), best effort: an unwritable journal must not hide the real error.
/// Only wrong secrets are journaled; a busy or missing vault is not an attempt.
pub(crate) fn note_failed_unlock(
    dir: &Path,
    action: &str,
    actor: &str,
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
        action: action.into(),
        result: Outcome::Failure.as_str().into(),
        os_user: actor.into(),
        method: method.into(),
        code: err.code().as_str().into(),
        prev: String::new(),
        ..Entry::default()
    };
    if let Err(e) = append(dir, e) {
        tracing::warn!(
            code = e.code().as_str(),
            "could not journal a failed unlock attempt"
        );
    }
}

/// Journals `auth.forget` (the keyring entry is removed without unlocking the vault, so that a
/// lost passphrase does not strand the key there). `outcome` is what the removal returned.
pub(crate) fn note_forget(
    dir: &Path,
    actor: &str,
    now: OffsetDateTime,
    outcome: &Result<bool>,
) -> Result<()> {
    let (result, code) = match outcome {
        Ok(true) => (Outcome::Success, "removed".to_string()),
        Ok(false) => (Outcome::Success, "no_entry".to_string()),
        Err(e) => (Outcome::Failure, e.code().as_str().to_string()),
    };
    append(
        dir,
        Entry {
            id: uuid::Uuid::new_v4().to_string(),
            ts_us: unix_micros(now),
            action: actions::AUTH_FORGET.into(),
            result: result.as_str().into(),
            os_user: actor.into(),
            method: "keyring".into(),
            code,
            prev: String::new(),
            ..Entry::default()
        },
    )
}

/// The journal key of an unlocked vault, adding one (key file version 2) if the key file has
/// none, or replacing one whose halves do not match. Returns the key and, if the stored one
/// was unusable, why (recorded as an `audit.journal` failure by [`ingest`]). Runs as the
/// writer: the key file is rewritten.
pub(crate) fn ensure_journal_key(w: &WriteOp<'_>) -> Result<(JournalSecretKey, Option<String>)> {
    let dir = w.vault.dir.clone();
    w.vault.with_keys_mut(|k| {
        let problem = match k.key_file.journal_secret_key(&k.root) {
            Ok(Some(sk)) => return Ok((sk, None)),
            Ok(None) => None,
            Err(e) => Some(format!("journal_key_replaced ({})", e.code())),
        };
        let (kf, sk) = k.key_file.with_journal_key(&k.root);
        crate::fsutil::atomic_write(&dir.join(crate::layout::KEY_FILE), &kf.to_bytes())?;
        k.key_file = kf;
        Ok((sk, problem))
    })
}

/// Moves journaled events into the chain in one transaction, then removes the journal. Checks
/// every sealed entry and the chain of `prev` hashes; the first problem found (and a journal
/// key that had to be replaced) is recorded as one `audit.journal` `failure` event.
/// Idempotent: the last ingested entry id and the digest of the journal are stored in the
/// same transaction, so a crash before the file is removed ingests nothing twice.
pub(crate) fn ingest(
    w: &mut WriteOp<'_>,
    sk: &JournalSecretKey,
    key_problem: Option<String>,
) -> Result<u64> {
    let vault_id = w.vault.vault_id.clone();
    let path = w.vault.dir.join(JOURNAL_FILE);
    let mut set_aside_as = None;
    let (file, text) = match open_locked(&path, false) {
        Ok(f) if oversized(&f, &path)?.is_some() => {
            // Too large to be genuine: never read whole, never a reason to stay locked.
            let len = oversized(&f, &path)?.unwrap_or(0);
            set_aside_as = Some((set_aside(&path, len)?, len));
            (None, String::new())
        }
        Ok(mut f) => {
            let t = read_all(&mut f, &path)?;
            (Some(f), t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, String::new()),
        Err(e) => return Err(Error::io_path("reading", &path, e)),
    };
    // Journals set aside (here, or by a writer while the vault was locked) not reported yet.
    let reported = crate::catalog::meta(w.conn(), "audit_journal_set_aside")?.unwrap_or_default();
    let mut new_aside: Vec<String> = std::fs::read_dir(&w.vault.dir)
        .map_err(|e| Error::io_path("listing", &w.vault.dir, e))?
        .filter_map(|d| d.ok())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{JOURNAL_FILE}.oversized-")))
        .filter(|n| !reported.split(' ').any(|r| r == n))
        .collect();
    new_aside.sort();
    let key_problem = match (new_aside.is_empty(), key_problem) {
        (false, p) => Some(
            p.map(|p| format!("{p}; ")).unwrap_or_default()
                + &format!(
                    "journal_oversized{} kept_as={}",
                    set_aside_as
                        .as_ref()
                        .map(|(_, len)| format!(" bytes={len}"))
                        .unwrap_or_default(),
                    new_aside.join(",")
                ),
        ),
        (true, p) => p,
    };
    if !new_aside.is_empty() {
        let all = format!("{reported} {}", new_aside.join(" "));
        w.tx(|tx| {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('audit_journal_set_aside', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = ?1",
                params![all.trim()],
            )?;
            Ok(())
        })?;
    }
    if file.is_none() && key_problem.is_none() {
        return Ok(0);
    }
    let digest = line_hash(&text);
    let mut entries = Vec::new();
    let mut problem: Option<String> = None;
    let mut prev = start_hash(&vault_id);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let n_lines = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        match parse_line(line, sk, &vault_id, &prev) {
            Parsed::Ok(e, sealed, link) => {
                if let (Some(why), None) = (link, &problem) {
                    problem = Some(format!("journal_tampered entry={} reason={why}", i + 1));
                }
                entries.push((e, sealed));
            }
            // A torn last line is a crash while writing, not tampering: the line is lost.
            Parsed::Bad("malformed") if i + 1 == n_lines && !text.ends_with('\n') => {}
            Parsed::Bad(why) => {
                if problem.is_none() {
                    problem = Some(format!("journal_tampered entry={} reason={why}", i + 1));
                }
            }
        }
        prev = line_hash(line);
    }
    let already = file.is_some()
        && crate::catalog::meta(w.conn(), "audit_journal_digest")?.as_deref()
            == Some(digest.as_str());
    let done = crate::catalog::meta(w.conn(), "audit_journal_last")?;
    let start = done
        .as_deref()
        .and_then(|d| entries.iter().position(|(e, _)| e.id == d).map(|i| i + 1))
        .unwrap_or(0);
    let todo = &entries[start..];
    let actor = w.vault.actor_ctx();
    let n = todo.len() as u64;
    // A journal problem already recorded (crash before the file was removed) is not repeated;
    // a replaced journal key is only ever found once.
    let problems: Vec<String> = key_problem
        .into_iter()
        .chain(problem.filter(|_| !already))
        .collect();
    if !todo.is_empty() || !problems.is_empty() {
        let last = todo.last().map(|(e, _)| e.id.clone());
        // The journaled events carry their own times and users: appended here, not by commit.
        w.tx(|tx| {
            for (e, sealed) in todo {
                let ts = labvault_governance::audit::from_unix_micros(e.ts_us)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let (Ok(action), Ok(result)) =
                    (Action::new(e.action.clone()), e.result.parse::<Outcome>())
                else {
                    continue;
                };
                let d = if e.unlocked && *sealed {
                    // The event of a handle open read-only on a full disk: its own user,
                    // resource and program, marked as having come through the journal.
                    let detail = format!("{} journaled read_only=disk_full", e.detail)
                        .trim_start()
                        .to_string();
                    let resource = if e.resource.is_empty() {
                        resources::VAULT.to_string()
                    } else {
                        e.resource.clone()
                    };
                    let agent = if e.user_agent.is_empty() {
                        actor.user_agent.clone()
                    } else {
                        e.user_agent.clone()
                    };
                    EventDraft::new(ts, e.os_user.clone(), action, resource, result)
                        .user_agent(agent)
                        .detail(detail)
                } else {
                    let is_forget = action.as_str() == actions::AUTH_FORGET;
                    let user = if is_forget && !e.os_user.is_empty() {
                        e.os_user.clone()
                    } else {
                        "unauthenticated".to_string()
                    };
                    let mut detail = format!("{} method={} journaled", e.code, e.method);
                    if !sealed {
                        detail += " unsealed";
                    }
                    if !is_forget && !e.os_user.is_empty() {
                        detail += &format!(" os_user={}", e.os_user);
                    }
                    EventDraft::new(ts, user, action, resources::VAULT, result)
                        .user_agent(actor.user_agent.clone())
                        .detail(detail)
                };
                crate::audit::append_draft(tx, &actor.device_id, d)?;
            }
            for p in &problems {
                crate::audit::append(
                    tx,
                    &actor,
                    actions::AUDIT_JOURNAL,
                    crate::audit::Subject::new("audit", p.clone()),
                    Outcome::Failure,
                )?;
            }
            if let Some(last) = &last {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('audit_journal_last', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = ?1",
                    params![last],
                )?;
            }
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('audit_journal_digest', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = ?1",
                params![digest],
            )?;
            Ok(())
        })?;
    }
    if file.is_some() {
        std::fs::remove_file(&path).map_err(|e| Error::io_path("removing", &path, e))?;
    }
    drop(file);
    Ok(n)
}
