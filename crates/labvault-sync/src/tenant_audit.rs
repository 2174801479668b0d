//! The lab's own audit log (the tenant's), for Owners and Admins in the app: pages with the
//! same filters as the vault's log, export, and a verification done **here**: the whole log is
//! exported as JSON Lines and its hash chain re-checked by this client with the same code that
//! checks the vault's, so the badge does not rest on the server's word alone.

use labvault_core::governance::audit::{ChainErrorKind, VerifyMode};
use labvault_core::governance::export::{verify_export, ExportError};
use labvault_wire::{AuditPage, AuditQuery};

use crate::session::Session;
use crate::Result;

/// A page of the tenant's audit log, newest first (`forbidden` below Admin).
pub async fn page(session: &Session, q: &AuditQuery) -> Result<AuditPage> {
    session
        .call(|t| {
            let (c, q) = (session.client().clone(), q.clone());
            async move { c.audit(&t, &q).await }
        })
        .await
}

/// The log (or the filtered part of it) as CSV or JSON Lines text (`q.format`).
pub async fn export(session: &Session, q: &AuditQuery) -> Result<String> {
    session
        .call(|t| {
            let (c, q) = (session.client().clone(), q.clone());
            async move { c.audit_export(&t, &q).await }
        })
        .await
}

/// What this client found when it re-verified the tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVerification {
    /// Every event links to the one before, from genesis, with no gap.
    pub ok: bool,
    /// Events checked.
    pub events: u64,
    /// The first event that breaks the chain.
    pub first_bad_seq: Option<u64>,
    /// What is wrong, for people.
    pub message: String,
}

/// Exports the whole log as JSON Lines and verifies its chain here.
pub async fn verify(session: &Session) -> Result<LocalVerification> {
    let q = AuditQuery {
        format: Some("jsonl".into()),
        ..AuditQuery::default()
    };
    let text = export(session, &q).await?;
    Ok(check(&text))
}

/// Verifies an exported tenant log (JSON Lines or CSV) as a complete chain.
pub fn check(text: &str) -> LocalVerification {
    match verify_export(text.as_bytes(), VerifyMode::Complete, &[], |_| {}) {
        Ok(v) => LocalVerification {
            ok: true,
            events: v.events,
            first_bad_seq: None,
            message: format!(
                "{} events of the lab's log verified on this device, from genesis, with no gap",
                v.events
            ),
        },
        Err(ExportError::Chain(e)) => LocalVerification {
            ok: false,
            events: 0,
            first_bad_seq: Some(e.first_bad_seq),
            message: format!(
                "the lab's audit chain breaks at event {} ({}): {}",
                e.first_bad_seq,
                e.device_id,
                match e.kind {
                    ChainErrorKind::Edited => "an event was changed",
                    ChainErrorKind::Missing => "an event is missing",
                    ChainErrorKind::Inserted => "an event was added",
                    ChainErrorKind::Reordered => "events were reordered",
                    k => k.as_str(),
                }
            ),
        },
        Err(e) => LocalVerification {
            ok: false,
            events: 0,
            first_bad_seq: None,
            message: format!("the lab's server sent an audit export that cannot be read: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labvault_core::governance::audit::{actions, Action, Checkpoint, EventDraft, Outcome};
    use labvault_core::governance::export::{ExportFormat, ExportWriter};

    fn log(n: u64) -> String {
        let mut head = Checkpoint::genesis("tenant-x");
        let mut w = ExportWriter::new(Vec::new(), ExportFormat::Jsonl).unwrap();
        for i in 1..=n {
            let ev = head.append(EventDraft::new(
                time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i as i64),
                "pi@lab.test",
                Action::new(actions::AUTH_LOGIN).unwrap(),
                "user/u1",
                Outcome::Success,
            ));
            w.write(&ev).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn an_intact_log_verifies_and_an_edited_or_shortened_one_does_not() {
        let text = log(5);
        let ok = check(&text);
        assert!(ok.ok && ok.events == 5, "{ok:?}");
        // An edited event (another user written in), a dropped one, garbage.
        let edited = text.replacen("pi@lab.test", "mallory@lab.test", 1);
        let bad = check(&edited);
        assert!(!bad.ok && bad.first_bad_seq.is_some(), "{bad:?}");
        let lines: Vec<&str> = text.lines().collect();
        let dropped = [&lines[..2], &lines[3..]].concat().join("\n");
        let bad = check(&dropped);
        assert!(!bad.ok && bad.message.contains("missing"), "{bad:?}");
        assert!(!check("not an export").ok);
    }
}
