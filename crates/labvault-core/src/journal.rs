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
use crate::vault::{read_key_file, WriteOp};
use labvault_crypto::{JournalPublicKey, JournalSecretKey};
use labvault_governance::audit::{actions, resources, unix_micros, Action, EventDraft, Outcome};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use time::OffsetDateTime;

/// File name of the journal inside the vault directory.
pub const JOURNAL_FILE: &str = "audit-journal.jsonl";
const AAD_TAG: &[u8] = b"labvault/audit-journal/v2";
const START_TAG: &[u8] = b"labvault/audit-journal/v2/start";
/// A journal larger than this is not a genuine one (each entry is ~300 bytes); refuse to read it whole.
const MAX_JOURNAL_BYTES: u64 = 64 << 20;

/// One journaled event (the sealed plaintext; also the shape of legacy v1 lines).
#[derive(Serialize, Deserialize)]
struct Entry {
    id: String,
    ts_us: i64,
    #[serde(default = "legacy_action")]
    action: String,
    #[serde(default = "legacy_result")]
    result: String,
    #[serde(default)]
    os_user: String,
    method: String,
    code: String,
    #[serde(default)]
    prev: String,
}

fn legacy_action() -> String {
    actions::AUTH_UNLOCK.into()
}

fn legacy_result() -> String {
    "failure".into()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedLine {
    v: u32,
    sealed: String,
}

fn aad(vault_id: &str) -> Vec<u8> {
    let mut a = AAD_TAG.to_vec();
    a.push(0);
    a.extend_from_slice(vault_id.as_bytes());
    a
}

fn start_hash(vault_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(START_TAG);
    h.update([0]);
    h.update(vault_id.as_bytes());
    hex::encode(h.finalize())
}

fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Opens the journal for reading and appending under an exclusive lock (held until the file
/// is dropped), so concurrent writers never fork the chain.
fn open_locked(path: &Path, create: bool) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)?;
    f.lock()?;
    Ok(f)
}

fn read_all(f: &mut File, path: &Path) -> Result<String> {
    let len = f
        .metadata()
        .map_err(|e| Error::io_path("reading", path, e))?
        .len();
    if len > MAX_JOURNAL_BYTES {
        return Err(Error::Tampered {
            what: format!("the audit journal {}", path.display()),
            detail: format!("{len} bytes, far larger than any genuine journal"),
        });
    }
    let mut text = String::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_string(&mut text))
        .map_err(|e| Error::io_path("reading", path, e))?;
    Ok(text)
}

/// Moves a journal too large to be genuine aside (`audit-journal.jsonl.oversized-<time>`),
/// where it stays for inspection, so it can neither lock the vault nor grow without bound.
/// Returns the name it got. The caller holds the journal's lock.
fn set_aside(path: &Path, len: u64) -> Result<String> {
    let name = format!(
        "{JOURNAL_FILE}.oversized-{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let to = path.with_file_name(&name);
    std::fs::rename(path, &to).map_err(|e| Error::io_path("moving aside", path, e))?;
    tracing::warn!(bytes = len, kept_as = %name, "an oversized audit journal was set aside");
    Ok(name)
}

fn oversized(f: &File, path: &Path) -> Result<Option<u64>> {
    let len = f
        .metadata()
        .map_err(|e| Error::io_path("reading", path, e))?
        .len();
    Ok((len > MAX_JOURNAL_BYTES).then_some(len))
}

/// Seals `e` (chained to the journal's last line) and appends it.
fn append(dir: &Path, mut e: Entry) -> Result<()> {
    let kf = read_key_file(dir)?;
    let path = dir.join(JOURNAL_FILE);
    let mut f = open_locked(&path, true).map_err(|er| Error::io_path("opening", &path, er))?;
    if let Some(len) = oversized(&f, &path)? {
        // Flooded (or planted): set aside, and this entry starts a new journal. The next
        // unlock records that the old one was too large.
        set_aside(&path, len)?;
        drop(f);
        f = open_locked(&path, true).map_err(|er| Error::io_path("opening", &path, er))?;
    }
    let text = read_all(&mut f, &path)?;
    let mut line = match kf.journal_public_key() {
        Some(pk) => {
            e.prev = match text.lines().rev().find(|l| !l.trim().is_empty()) {
                Some(last) => line_hash(last),
                None => start_hash(kf.vault_id()),
            };
            sealed_line(pk, kf.vault_id(), &e)?
        }
        // A version 1 key file (not unlocked since the upgrade): nothing to seal to, so the
        // old plain form, with no user name in it.
        None => {
            e.os_user.clear();
            serde_json::to_string(&e).map_err(|er| Error::Internal(er.to_string()))?
        }
    };
    // A torn last line (crash mid-write) must not swallow this entry.
    if !text.is_empty() && !text.ends_with('\n') {
        line.insert(0, '\n');
    }
    line.push('\n');
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|er| Error::io_path("writing", &path, er))
}

fn sealed_line(pk: &JournalPublicKey, vault_id: &str, e: &Entry) -> Result<String> {
    let pt = zeroize::Zeroizing::new(
        serde_json::to_vec(e).map_err(|er| Error::Internal(er.to_string()))?,
    );
    let sealed = labvault_crypto::seal(pk, &pt, &aad(vault_id));
    serde_json::to_string(&SealedLine {
        v: 2,
        sealed: hex::encode(sealed),
    })
    .map_err(|er| Error::Internal(er.to_string()))
}

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

/// What one journal line turned out to be.
enum Parsed {
    /// An entry (sealed or legacy), and the problem with its link, if any: an entry that opens
    /// is imported even when its predecessor is missing.
    Ok(Entry, bool, Option<&'static str>),
    /// Not an entry at all.
    Bad(&'static str),
}

fn parse_line(line: &str, sk: &JournalSecretKey, vault_id: &str, expected_prev: &str) -> Parsed {
    if let Ok(s) = serde_json::from_str::<SealedLine>(line) {
        if s.v != 2 {
            return Parsed::Bad("unknown_version");
        }
        let Ok(bytes) = hex::decode(&s.sealed) else {
            return Parsed::Bad("malformed");
        };
        let Ok(pt) = sk.open(&bytes, &aad(vault_id)) else {
            return Parsed::Bad("not_sealed_to_this_vault");
        };
        let Ok(e) = serde_json::from_slice::<Entry>(&pt) else {
            return Parsed::Bad("malformed");
        };
        let link = (e.prev != expected_prev).then_some("broken_link");
        return Parsed::Ok(e, true, link);
    }
    match serde_json::from_str::<Entry>(line) {
        Ok(e) => Parsed::Ok(e, false, None),
        Err(_) => Parsed::Bad("malformed"),
    }
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
                let d = EventDraft::new(ts, user, action, resources::VAULT, result)
                    .user_agent(actor.user_agent.clone())
                    .detail(detail);
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
