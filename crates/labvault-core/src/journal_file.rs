//! The audit journal's file format (see `journal` for what is journaled and how it is moved
//! into the chain): sealed, hash-linked JSON lines appended under a file lock. Kept apart so
//! the vault handle can journal the events of a read-only (full-disk) vault without using the
//! modules above it.

use crate::error::{Error, Result};
use crate::keyfile_io::read_key_file;
use labvault_crypto::{JournalPublicKey, JournalSecretKey};
use labvault_governance::audit::actions;
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

/// One journaled event (the sealed plaintext; also the shape of legacy v1 lines). The last
/// four fields were added for the events of a vault open read-only on a full disk; older
/// entries read them as empty (`false`).
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) ts_us: i64,
    #[serde(default = "legacy_action")]
    pub(crate) action: String,
    #[serde(default = "legacy_result")]
    pub(crate) result: String,
    #[serde(default)]
    pub(crate) os_user: String,
    pub(crate) method: String,
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) prev: String,
    /// The event was made by an unlocked handle: `os_user` is the acting user.
    #[serde(default)]
    pub(crate) unlocked: bool,
    #[serde(default)]
    pub(crate) resource: String,
    #[serde(default)]
    pub(crate) detail: String,
    #[serde(default)]
    pub(crate) user_agent: String,
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

pub(crate) fn start_hash(vault_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(START_TAG);
    h.update([0]);
    h.update(vault_id.as_bytes());
    hex::encode(h.finalize())
}

pub(crate) fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Opens the journal for reading and appending under an exclusive lock (held until the file
/// is dropped), so concurrent writers never fork the chain.
pub(crate) fn open_locked(path: &Path, create: bool) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)?;
    f.lock()?;
    Ok(f)
}

pub(crate) fn read_all(f: &mut File, path: &Path) -> Result<String> {
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
pub(crate) fn set_aside(path: &Path, len: u64) -> Result<String> {
    let name = format!(
        "{JOURNAL_FILE}.oversized-{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let to = path.with_file_name(&name);
    std::fs::rename(path, &to).map_err(|e| Error::io_path("moving aside", path, e))?;
    tracing::warn!(bytes = len, kept_as = %name, "an oversized audit journal was set aside");
    Ok(name)
}

pub(crate) fn oversized(f: &File, path: &Path) -> Result<Option<u64>> {
    let len = f
        .metadata()
        .map_err(|e| Error::io_path("reading", path, e))?
        .len();
    Ok((len > MAX_JOURNAL_BYTES).then_some(len))
}

/// Seals `e` (chained to the journal's last line) and appends it.
pub(crate) fn append(dir: &Path, mut e: Entry) -> Result<()> {
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

/// What one journal line turned out to be.
pub(crate) enum Parsed {
    /// An entry (sealed or legacy), and the problem with its link, if any: an entry that opens
    /// is imported even when its predecessor is missing.
    Ok(Box<Entry>, bool, Option<&'static str>),
    /// Not an entry at all.
    Bad(&'static str),
}

pub(crate) fn parse_line(
    line: &str,
    sk: &JournalSecretKey,
    vault_id: &str,
    expected_prev: &str,
) -> Parsed {
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
        return Parsed::Ok(Box::new(e), true, link);
    }
    match serde_json::from_str::<Entry>(line) {
        Ok(e) => Parsed::Ok(Box::new(e), false, None),
        Err(_) => Parsed::Bad("malformed"),
    }
}

/// Events of a read-only vault waiting for room in the journal, at most [`MAX_WAITING`]; what
/// comes beyond that is counted, not kept (a task retrying on a full disk must not fill memory).
#[derive(Default)]
pub(crate) struct Unjournaled {
    waiting: Vec<Entry>,
    dropped: u64,
}

/// Events kept in memory at most while the journal has no room.
const MAX_WAITING: usize = 1000;

/// Journals the event of a vault open read-only on a full disk (its catalog cannot be
/// written): best effort, like the read it records. An event even the journal has no room for
/// waits in `pending` and is written before the next one, or at lock, once there is room; if
/// there never is, the loss is logged with the count, never silently.
pub(crate) fn note_read_only_event(
    dir: &Path,
    pending: &mut Unjournaled,
    actor: &crate::audit::Actor,
    action: &str,
    subject: crate::audit::Subject,
    result: labvault_governance::audit::Outcome,
) {
    if pending.waiting.len() >= MAX_WAITING {
        pending.dropped += 1;
        write_pending(dir, pending);
        return;
    }
    pending.waiting.push(Entry {
        id: uuid::Uuid::new_v4().to_string(),
        ts_us: labvault_governance::audit::unix_micros(actor.clock.now()),
        action: action.into(),
        result: result.as_str().into(),
        os_user: actor.user.clone(),
        method: "read_only".into(),
        code: String::new(),
        prev: String::new(),
        unlocked: true,
        resource: subject.resource,
        detail: subject.detail,
        user_agent: actor.user_agent.clone(),
    });
    write_pending(dir, pending);
}

/// Writes the events [`note_read_only_event`] could not, at lock: what still does not fit (and
/// what was never kept) is reported with its count in the log.
pub(crate) fn flush_unjournaled(dir: &Path, pending: &mut Unjournaled) {
    write_pending(dir, pending);
    let lost = pending.waiting.len() as u64 + pending.dropped;
    if lost > 0 {
        tracing::error!(
            events = lost,
            "audit events of a read-only vault were lost: the disk had no room even for the audit journal"
        );
        *pending = Unjournaled::default();
    }
}

fn write_pending(dir: &Path, pending: &mut Unjournaled) {
    while let Some(e) = pending.waiting.first() {
        if let Err(err) = append(dir, e.clone()) {
            tracing::warn!(
                code = err.code().as_str(),
                "an audit event waits for room in the journal"
            );
            return;
        }
        pending.waiting.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labvault_governance::audit::Outcome;

    /// Events a journal has no room for (here: no vault to journal into) wait in memory up to a
    /// bound; beyond it they are counted, and at lock the count of what was lost is reported
    /// and memory is released.
    #[test]
    fn events_waiting_for_journal_room_are_bounded() {
        let t = tempfile::tempdir().unwrap();
        let actor = crate::audit::Actor {
            device_id: "d".into(),
            user: "ada".into(),
            user_agent: "tests".into(),
            clock: std::sync::Arc::new(labvault_governance::SystemClock),
        };
        let mut pending = Unjournaled::default();
        for _ in 0..MAX_WAITING + 500 {
            note_read_only_event(
                &t.path().join("no-vault"),
                &mut pending,
                &actor,
                "data.export",
                crate::audit::Subject::on("vault"),
                Outcome::Success,
            );
        }
        assert_eq!(pending.waiting.len(), MAX_WAITING);
        assert_eq!(pending.dropped, 500);
        flush_unjournaled(&t.path().join("no-vault"), &mut pending);
        assert!(pending.waiting.is_empty() && pending.dropped == 0);
    }
}
