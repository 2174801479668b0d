//! Audit trail and retention in the vault, end to end on a real SQLCipher vault: every action
//! audited exactly once, tampering detected, legal holds, lifecycle with a moving clock.

use labvault_core::audit::AuditFilter;
use labvault_core::retention::HoldTarget;
use labvault_core::{
    Area, DataType, ErrorCode, ExportOptions, ImportOptions, ItemState, KdfParams, ManualClock,
    Passphrase, Unlock, Vault, VaultOptions,
};
use labvault_governance::audit::{AuditEvent, Checkpoint, EventDraft, Outcome};
use labvault_governance::export::{verify_export, ExportFormat};
use labvault_governance::retention::{PolicyOverride, RetentionPeriod};
use labvault_governance::{Action, VerifyMode};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use time::macros::datetime;
use time::Duration;

const PASS: &str = "correct horse battery staple";

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    src: PathBuf,
    clock: Arc<ManualClock>,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    Env {
        dir,
        src,
        clock: Arc::new(ManualClock::new(datetime!(2026-01-01 09:00 UTC))),
        _tmp: tmp,
    }
}

fn opts(e: &Env) -> VaultOptions {
    VaultOptions {
        kdf: Some(KdfParams::FLOOR),
        clock: e.clock.clone(),
        actor: "alice".into(),
        user_agent: "labvault-test/1".into(),
    }
}

fn create(e: &Env) -> Vault {
    Vault::create(&e.dir, &Passphrase::new(PASS.into()), opts(e))
        .unwrap()
        .0
}

fn unlock(e: &Env) -> Vault {
    Vault::unlock(
        &e.dir,
        Unlock::Passphrase(&Passphrase::new(PASS.into())),
        opts(e),
    )
    .unwrap()
}

fn import(v: &mut Vault, e: &Env, project: &str, name: &str, body: &str) -> String {
    let p = e.src.join(name);
    std::fs::write(&p, body).unwrap();
    let r = v
        .import(
            project,
            Area::Uploads,
            &[p],
            &ImportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    r.imported[0].item_id.clone()
}

fn all_events(v: &Vault) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    v.audit_for_each(&AuditFilter::default(), |ev| {
        out.push(ev);
        Ok(())
    })
    .unwrap();
    out
}

/// Runs `f` and returns the events it added.
fn events_of<T>(v: &mut Vault, f: impl FnOnce(&mut Vault) -> T) -> (T, Vec<AuditEvent>) {
    let before = v.audit_count().unwrap() as usize;
    let out = f(v);
    let evs = all_events(v);
    (out, evs[before..].to_vec())
}

fn one(evs: &[AuditEvent], action: &str, result: Outcome) {
    assert_eq!(evs.len(), 1, "expected exactly one event, got {evs:#?}");
    assert_eq!(evs[0].action.as_str(), action);
    assert_eq!(evs[0].result, result, "{:?}", evs[0]);
    assert_eq!(evs[0].user, "alice");
    assert_eq!(evs[0].user_agent, "labvault-test/1");
}

#[test]
fn every_vault_action_records_exactly_one_event_with_the_right_result() {
    let e = env();
    let mut v = create(&e);
    let first = all_events(&v);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].action.as_str(), "vault.create");
    assert_eq!(first[0].device_id, v.device_id());

    let (p, evs) = events_of(&mut v, |v| v.create_project("Proteomics").unwrap());
    one(&evs, "project.create", Outcome::Success);
    assert_eq!(evs[0].resource, format!("project/{}", p.id));
    let (r, evs) = events_of(&mut v, |v| v.create_project("Proteomics"));
    assert_eq!(r.unwrap_err().code(), ErrorCode::AlreadyExists);
    one(&evs, "project.create", Outcome::Failure);
    assert_eq!(evs[0].detail, "already_exists");

    let (id, evs) = events_of(&mut v, |v| {
        import(v, &e, "Proteomics", "a.csv", "x,y\n1,2\n")
    });
    one(&evs, "data.import", Outcome::Success);
    assert_eq!(evs[0].resource, format!("project/{}/item/{id}", p.id));
    let (_, evs) = events_of(&mut v, |v| {
        let bad = e.src.join("does-not-exist.csv");
        v.import(
            "Proteomics",
            Area::Uploads,
            &[bad],
            &ImportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
    });
    one(&evs, "data.import", Outcome::Failure);

    let out = e.src.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (r, evs) = events_of(&mut v, |v| {
        v.export_item(
            &id,
            &out,
            &ExportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
    });
    r.unwrap();
    one(&evs, "data.export", Outcome::Success);
    let (r, evs) = events_of(&mut v, |v| {
        v.export_item(
            &id,
            &out,
            &ExportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
    });
    assert_eq!(r.unwrap_err().code(), ErrorCode::AlreadyExists);
    one(&evs, "data.export", Outcome::Failure);

    let (_, evs) = events_of(&mut v, |v| v.move_item(&id, None, Some("b.csv")).unwrap());
    one(&evs, "data.rename", Outcome::Success);
    let (_, evs) = events_of(&mut v, |v| v.soft_delete(&id).unwrap());
    one(&evs, "data.delete", Outcome::Success);
    let (r, evs) = events_of(&mut v, |v| v.soft_delete(&id));
    assert!(r.is_err());
    one(&evs, "data.delete", Outcome::Failure);
    let (_, evs) = events_of(&mut v, |v| v.restore(&id).unwrap());
    one(&evs, "data.restore", Outcome::Success);
    let (_, evs) = events_of(&mut v, |v| {
        v.verify(&mut |_| {}, &AtomicBool::new(false)).unwrap()
    });
    one(&evs, "data.verify", Outcome::Success);

    let (_, evs) = events_of(&mut v, |v| {
        v.hold_set(&HoldTarget::Item(id.clone()), "case 42")
            .unwrap()
    });
    one(&evs, "retention.hold", Outcome::Success);
    assert_eq!(evs[0].detail, "case 42");
    let (r, evs) = events_of(&mut v, |v| v.purge(&id, "right to deletion"));
    assert_eq!(r.unwrap_err().code(), ErrorCode::OnHold);
    one(&evs, "data.purge", Outcome::Denied);
    let (r, evs) = events_of(&mut v, |v| v.soft_delete(&id));
    assert_eq!(r.unwrap_err().code(), ErrorCode::OnHold);
    one(&evs, "data.delete", Outcome::Denied);
    let (_, evs) = events_of(&mut v, |v| {
        v.hold_clear(&HoldTarget::Item(id.clone())).unwrap()
    });
    one(&evs, "retention.release", Outcome::Success);
    let (_, evs) = events_of(&mut v, |v| v.purge(&id, "right to deletion").unwrap());
    one(&evs, "data.purge", Outcome::Success);
    let (r, evs) = events_of(&mut v, |v| v.purge(&id, "again"));
    assert_eq!(r.unwrap_err().code(), ErrorCode::Erased);
    one(&evs, "data.purge", Outcome::Failure);

    let (r, evs) = events_of(&mut v, |v| {
        let ov = PolicyOverride {
            audit_log: Some(RetentionPeriod::Years(5)),
            ..Default::default()
        };
        v.set_retention_policy(None, None, &ov)
    });
    assert_eq!(r.unwrap_err().code(), ErrorCode::InvalidPolicy);
    one(&evs, "retention.policy", Outcome::Failure);

    let (_, evs) = events_of(&mut v, |v| {
        let ov = PolicyOverride {
            backup: Some(RetentionPeriod::Days(60)),
            ..Default::default()
        };
        v.set_retention_policy(None, None, &ov).unwrap()
    });
    one(&evs, "retention.policy", Outcome::Success);
    let (_, evs) = events_of(&mut v, |v| v.run_retention(&mut |_, _| {}).unwrap());
    one(&evs, "retention.run", Outcome::Success);
    let (r, evs) = events_of(&mut v, |v| {
        v.hold_set(&HoldTarget::Item("no-such-item".into()), "case 43")
    });
    assert_eq!(r.unwrap_err().code(), ErrorCode::NotFound);
    one(&evs, "retention.hold", Outcome::Failure);
    let (r, evs) = events_of(&mut v, |v| v.move_item("no-such-item", None, Some("c.csv")));
    assert_eq!(r.unwrap_err().code(), ErrorCode::NotFound);
    one(&evs, "data.rename", Outcome::Failure);
    let (r, evs) = events_of(&mut v, |v| {
        v.audit_export(
            &AuditFilter::default(),
            ExportFormat::Jsonl,
            &e.src.join("no-such-dir").join("a.jsonl"),
            &mut |_, _| {},
        )
    });
    assert!(r.is_err());
    one(&evs, "audit.export", Outcome::Failure);

    let (_, evs) = events_of(&mut v, |v| {
        v.change_passphrase(&Passphrase::new(PASS.into()), &Passphrase::new(PASS.into()))
            .unwrap()
    });
    one(&evs, "auth.passwd", Outcome::Success);
    // A wrong current passphrase is recorded as such, whichever front end asked.
    let (r, evs) = events_of(&mut v, |v| {
        v.change_passphrase(
            &Passphrase::new("not the passphrase".into()),
            &Passphrase::new("another passphrase".into()),
        )
    });
    assert_eq!(r.unwrap_err().code(), ErrorCode::WrongPassphrase);
    one(&evs, "auth.passwd", Outcome::Failure);
    assert_eq!(evs[0].detail, "wrong_passphrase");

    let f = e.src.join("audit.csv");
    let (_, evs) = events_of(&mut v, |v| {
        v.audit_export(
            &AuditFilter::default(),
            ExportFormat::Csv,
            &f,
            &mut |_, _| {},
        )
        .unwrap()
    });
    one(&evs, "audit.export", Outcome::Success);
    let (_, evs) = events_of(&mut v, |v| v.audit_verify(&mut |_, _| {}).unwrap());
    one(&evs, "audit.verify", Outcome::Success);

    v.lock();
    let v = unlock(&e);
    let evs = all_events(&v);
    let tail: Vec<_> = evs[evs.len() - 2..]
        .iter()
        .map(|e| (e.action.as_str().to_string(), e.result))
        .collect();
    assert_eq!(
        tail,
        vec![
            ("auth.lock".to_string(), Outcome::Success),
            ("auth.unlock".to_string(), Outcome::Success),
        ],
        "a retention run at unlock that changes nothing is not recorded"
    );
    // And the whole chain is intact.
    let v = v;
    let reports = v.audit_verify(&mut |_, _| {}).unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].complete);
}

#[test]
fn failed_unlocks_are_journaled_without_plaintext_and_ingested_at_next_unlock() {
    let e = env();
    create(&e).lock();
    let wrong = Passphrase::new("not it".into());
    for _ in 0..2 {
        let err = Vault::unlock(&e.dir, Unlock::Passphrase(&wrong), opts(&e)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::WrongPassphrase);
    }
    let journal = std::fs::read_to_string(e.dir.join("audit-journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2);
    assert!(
        !journal.contains("alice") && !journal.contains("not it"),
        "{journal}"
    );
    let v = unlock(&e);
    assert!(!e.dir.join("audit-journal.jsonl").exists());
    let failures: Vec<_> = all_events(&v)
        .into_iter()
        .filter(|ev| ev.action.as_str() == "auth.unlock" && ev.result == Outcome::Failure)
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(failures[0].detail.starts_with("wrong_passphrase"));
}

#[test]
fn an_oversized_journal_is_set_aside_and_recorded_instead_of_locking_the_vault() {
    let e = env();
    create(&e).lock();
    // 65 MiB of junk where the journal belongs (planted, or a flood of failed unlocks).
    let path = e.dir.join("audit-journal.jsonl");
    let junk = vec![b'x'; 65 << 20];
    std::fs::write(&path, &junk).unwrap();
    // A failed unlock meanwhile still gets journaled (a fresh journal).
    fail_unlock(&e, 1);
    assert_eq!(journal_lines(&e).len(), 1);
    std::fs::write(&path, &junk).unwrap();
    let v = unlock(&e);
    assert!(!path.exists(), "ingested or set aside");
    let kept: Vec<_> = std::fs::read_dir(&e.dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit-journal.jsonl.oversized-"))
        .collect();
    assert_eq!(
        kept.len(),
        2,
        "both oversized files kept for inspection: {kept:?}"
    );
    let problems = with_action(&v, "audit.journal");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let detail = &problems[0].detail;
    assert!(
        detail.contains("journal_oversized bytes=68157440"),
        "{detail}"
    );
    assert!(
        kept.iter().all(|k| detail.contains(k.as_str())),
        "both set-aside files named: {detail}"
    );
    drop(v);
    let v = unlock(&e);
    assert_eq!(with_action(&v, "audit.journal").len(), 1, "recorded once");
}

fn fail_unlock(e: &Env, n: usize) {
    let wrong = Passphrase::new("not it".into());
    for _ in 0..n {
        let err = Vault::unlock(&e.dir, Unlock::Passphrase(&wrong), opts(e)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::WrongPassphrase);
    }
}

fn journal_lines(e: &Env) -> Vec<String> {
    std::fs::read_to_string(e.dir.join("audit-journal.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn with_action(v: &Vault, action: &str) -> Vec<AuditEvent> {
    all_events(v)
        .into_iter()
        .filter(|ev| ev.action.as_str() == action)
        .collect()
}

#[test]
fn journal_entries_are_sealed_and_a_deleted_middle_entry_is_reported() {
    let e = env();
    create(&e).lock();
    fail_unlock(&e, 3);
    let lines = journal_lines(&e);
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert!(l.starts_with(r#"{"v":2,"sealed":""#), "{l}");
        assert!(
            !l.contains("wrong_passphrase") && !l.contains("passphrase"),
            "{l}"
        );
    }
    // Delete the middle entry.
    std::fs::write(
        e.dir.join("audit-journal.jsonl"),
        format!("{}\n{}\n", lines[0], lines[2]),
    )
    .unwrap();
    let v = unlock(&e);
    let failures: Vec<_> = with_action(&v, "auth.unlock")
        .into_iter()
        .filter(|ev| ev.result == Outcome::Failure)
        .collect();
    assert_eq!(failures.len(), 2, "the intact entries are still imported");
    assert_eq!(failures[0].user, "unauthenticated");
    assert!(
        failures[0].detail.contains("os_user=alice"),
        "{}",
        failures[0].detail
    );
    let found = with_action(&v, "audit.journal");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].result, Outcome::Failure);
    assert_eq!(
        found[0].detail,
        "journal_tampered entry=2 reason=broken_link"
    );
    assert!(!e.dir.join("audit-journal.jsonl").exists());
    v.audit_verify(&mut |_, _| {}).unwrap();
    v.lock();

    // An edited entry (one flipped hex digit) does not open; a reordered pair breaks links.
    fail_unlock(&e, 2);
    let mut lines = journal_lines(&e);
    let pos = lines[0].len() - 10;
    let flipped = if &lines[0][pos..pos + 1] == "0" {
        "1"
    } else {
        "0"
    };
    lines[0].replace_range(pos..pos + 1, flipped);
    std::fs::write(e.dir.join("audit-journal.jsonl"), lines.join("\n") + "\n").unwrap();
    let v = unlock(&e);
    let found = with_action(&v, "audit.journal");
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[1].detail,
        "journal_tampered entry=1 reason=not_sealed_to_this_vault"
    );
    v.lock();
    fail_unlock(&e, 2);
    let lines = journal_lines(&e);
    std::fs::write(
        e.dir.join("audit-journal.jsonl"),
        format!("{}\n{}\n", lines[1], lines[0]),
    )
    .unwrap();
    let v = unlock(&e);
    let found = with_action(&v, "audit.journal");
    assert_eq!(found.len(), 3);
    assert_eq!(
        found[2].detail,
        "journal_tampered entry=1 reason=broken_link"
    );
    // Removing the whole journal is the documented undetectable case: nothing is reported.
    v.lock();
    fail_unlock(&e, 1);
    std::fs::remove_file(e.dir.join("audit-journal.jsonl")).unwrap();
    let v = unlock(&e);
    assert_eq!(with_action(&v, "audit.journal").len(), 3);
}

#[test]
fn a_version_1_key_file_gets_its_journal_key_at_the_next_unlock() {
    let e = env();
    create(&e).lock();
    let key_path = e.dir.join("vault.key");
    let mut kf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
    assert_eq!(kf["version"], 2);
    kf["version"] = 1.into();
    kf.as_object_mut().unwrap().remove("journal_key");
    std::fs::write(&key_path, serde_json::to_vec_pretty(&kf).unwrap()).unwrap();
    // Nothing to seal to yet: the old plain form, without secrets.
    fail_unlock(&e, 1);
    let lines = journal_lines(&e);
    assert!(lines[0].contains("wrong_passphrase") && !lines[0].contains("not it"));
    let v = unlock(&e);
    let f = with_action(&v, "auth.unlock");
    assert!(f
        .iter()
        .any(|ev| ev.result == Outcome::Failure && ev.detail.contains("unsealed")));
    v.lock();
    let kf: serde_json::Value = serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
    assert_eq!(kf["version"], 2);
    assert_eq!(kf["journal_key"]["algorithm"], "x25519");
    fail_unlock(&e, 1);
    assert!(journal_lines(&e)[0].contains("sealed"));
    let v = unlock(&e);
    assert!(with_action(&v, "audit.journal").is_empty());

    // A public key swapped in by someone who wants to read the journal is caught and replaced.
    v.lock();
    let mut kf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
    let good = kf["journal_key"]["public"].clone();
    kf["journal_key"]["public"] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into();
    std::fs::write(&key_path, serde_json::to_vec_pretty(&kf).unwrap()).unwrap();
    let v = unlock(&e);
    let found = with_action(&v, "audit.journal");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].detail.starts_with("journal_key_replaced"),
        "{}",
        found[0].detail
    );
    v.lock();
    let kf: serde_json::Value = serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
    assert_ne!(
        kf["journal_key"]["public"],
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    assert_ne!(
        kf["journal_key"]["public"], good,
        "a fresh pair replaces the mismatched one"
    );
}

#[test]
fn audit_query_filters_and_pages_newest_first() {
    let e = env();
    let mut v = create(&e);
    v.create_project("P").unwrap();
    for i in 0..7 {
        e.clock.advance(Duration::seconds(1));
        import(&mut v, &e, "P", &format!("f{i}.txt"), "data");
    }
    let _ = v.soft_delete("nope");
    let f = AuditFilter {
        action_prefix: Some("data.".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = v.audit_query(&f, 3, cursor.as_deref()).unwrap();
        seen.extend(page.events);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    assert!(
        seen.windows(2)
            .all(|w| (w[0].timestamp, w[0].seq) >= (w[1].timestamp, w[1].seq)),
        "newest first"
    );
    assert_eq!(seen[0].action.as_str(), "data.delete");
    let failed = v
        .audit_query(
            &AuditFilter {
                result: Some(Outcome::Failure),
                ..Default::default()
            },
            100,
            None,
        )
        .unwrap();
    assert_eq!(failed.events.len(), 1);
    let window = AuditFilter {
        from: Some(datetime!(2026-01-01 09:00:02 UTC)),
        to: Some(datetime!(2026-01-01 09:00:04 UTC)),
        user: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(v.audit_query(&window, 100, None).unwrap().events.len(), 2);
    let nobody = AuditFilter {
        user: Some("mallory".into()),
        ..Default::default()
    };
    assert!(v.audit_query(&nobody, 100, None).unwrap().events.is_empty());
    assert_eq!(
        v.audit_query(&f, 3, Some("garbage")).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
}

fn raw_catalog(e: &Env) -> rusqlite::Connection {
    let kf = labvault_crypto::KeyFile::from_bytes(&std::fs::read(e.dir.join("vault.key")).unwrap())
        .unwrap();
    let root = kf
        .unlock_with_passphrase(&Passphrase::new(PASS.into()))
        .unwrap();
    let c =
        labvault_core::catalog::open_raw(&e.dir.join("catalog.db"), &root.catalog_key()).unwrap();
    c.execute_batch("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;")
        .unwrap();
    c
}

fn tampered_vault(tamper: impl FnOnce(&rusqlite::Connection)) -> (u64, String) {
    let e = env();
    let mut v = create(&e);
    v.create_project("P").unwrap();
    for i in 0..6 {
        import(&mut v, &e, "P", &format!("f{i}.txt"), "data");
    }
    v.lock();
    {
        let c = raw_catalog(&e);
        tamper(&c);
    }
    let v = unlock(&e);
    let err = v.audit_verify(&mut |_, _| {}).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Tampered);
    let msg = err.to_string();
    let seq: u64 = msg
        .split("seq ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The failed verification is itself on record.
    let last = v
        .audit_query(&AuditFilter::default(), 1, None)
        .unwrap()
        .events
        .remove(0);
    assert_eq!(
        (last.action.as_str(), last.result),
        ("audit.verify", Outcome::Failure)
    );
    (seq, msg)
}

#[test]
fn tampering_in_the_vault_is_detected_with_the_first_bad_seq() {
    let (seq, msg) = tampered_vault(|c| {
        c.execute("UPDATE audit_events SET user = 'mallory' WHERE seq = 4", [])
            .unwrap();
    });
    assert_eq!(seq, 4, "{msg}");
    assert!(msg.contains("edited"), "{msg}");

    let (seq, msg) = tampered_vault(|c| {
        c.execute("DELETE FROM audit_events WHERE seq = 5", [])
            .unwrap();
    });
    assert_eq!(seq, 5, "{msg}");
    assert!(msg.contains("missing"), "{msg}");

    let (seq, msg) = tampered_vault(|c| {
        c.execute_batch(
            "UPDATE audit_events SET seq = -seq WHERE seq IN (3, 4);
             UPDATE audit_events SET seq = 4 WHERE seq = -3;
             UPDATE audit_events SET seq = 3 WHERE seq = -4;",
        )
        .unwrap();
    });
    assert_eq!(seq, 3, "{msg}");
    assert!(msg.contains("reordered"), "{msg}");

    let (seq, msg) = tampered_vault(|c| {
        // A well-formed forged event linked after seq 4, the rest renumbered to make room.
        let (dev, prev): (String, Vec<u8>) = c
            .query_row(
                "SELECT device_id, hash FROM audit_events WHERE seq = 4",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        c.execute_batch(
            "UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 5; UPDATE audit_events SET seq = -seq WHERE seq < 0;",
        )
        .unwrap();
        let mut head = Checkpoint {
            device_id: dev.clone(),
            seq: 4,
            head_hash: prev.try_into().unwrap(),
        };
        let ev = head.append(EventDraft::new(
            datetime!(2026-01-01 09:00 UTC),
            "alice",
            Action::new("data.view").unwrap(),
            "vault",
            Outcome::Success,
        ));
        c.execute(
            "INSERT INTO audit_events(device_id, seq, ts, user, action, resource, ip_address, user_agent, result, detail, v, prev_hash, hash)
             VALUES (?1, 5, 0, 'alice', 'data.view', 'vault', '', '', 'success', '', 1, ?2, ?3)",
            rusqlite::params![dev, &ev.prev_hash[..], &ev.hash[..]],
        )
        .unwrap();
    });
    assert!(msg.contains("inserted") || msg.contains("edited"), "{msg}");
    assert!(seq == 5 || seq == 6, "{msg}");
}

#[test]
fn exported_audit_log_reverifies_offline_and_detects_edits() {
    let e = env();
    let mut v = create(&e);
    v.create_project("P").unwrap();
    import(&mut v, &e, "P", "=cmd|calc!A0.csv", "data");
    for format in [ExportFormat::Csv, ExportFormat::Jsonl] {
        let f = e.src.join(format!("audit.{format:?}"));
        let s = v
            .audit_export(&AuditFilter::default(), format, &f, &mut |_, _| {})
            .unwrap();
        assert!(!s.filtered);
        let bytes = std::fs::read(&f).unwrap();
        let r = verify_export(&bytes[..], VerifyMode::Complete, &[], |_| {}).unwrap();
        assert_eq!(r.events, s.events);
        let text = String::from_utf8(bytes).unwrap();
        let edited = text.replacen("alice", "bob", 1);
        assert!(
            verify_export(edited.as_bytes(), VerifyMode::Complete, &[], |_| {}).is_err(),
            "{format:?}"
        );
        // Delete, insert (a copy), reorder whole lines of the vault's own export: each is
        // named with its kind and first bad seq.
        let lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        let hdr = usize::from(format == ExportFormat::Csv);
        let kind_at = |ls: &[String]| match verify_export(
            ls.concat().as_bytes(),
            VerifyMode::Complete,
            &[],
            |_| {},
        ) {
            Err(labvault_governance::export::ExportError::Chain(e)) => {
                (e.first_bad_seq, e.kind.as_str().to_string())
            }
            other => panic!("{format:?}: expected a chain error, got {other:?}"),
        };
        let mut deleted = lines.clone();
        deleted.remove(hdr + 1);
        assert_eq!(kind_at(&deleted), (2, "missing".into()), "{format:?}");
        let mut inserted = lines.clone();
        inserted.insert(hdr + 2, lines[hdr + 1].clone());
        assert_eq!(kind_at(&inserted), (2, "inserted".into()), "{format:?}");
        let mut reordered = lines.clone();
        reordered.swap(hdr + 1, hdr + 2);
        assert_eq!(kind_at(&reordered), (2, "reordered".into()), "{format:?}");
    }
    let filtered = e.src.join("imports.jsonl");
    let f = AuditFilter {
        action_prefix: Some("data.import".into()),
        ..Default::default()
    };
    let s = v
        .audit_export(&f, ExportFormat::Jsonl, &filtered, &mut |_, _| {})
        .unwrap();
    assert!(s.filtered && s.events == 1);
    let bytes = std::fs::read(&filtered).unwrap();
    assert!(verify_export(&bytes[..], VerifyMode::Segments, &[], |_| {}).is_ok());
    assert!(verify_export(&bytes[..], VerifyMode::Complete, &[], |_| {}).is_err());
    assert!(std::fs::read_dir(&e.src).unwrap().all(|d| !d
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

fn blob_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir.join("blobs")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() {
            for f in std::fs::read_dir(&shard).unwrap() {
                out.push(f.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn lifecycle_expires_then_erases_and_a_hold_stops_it() {
    let e = env();
    let mut v = create(&e);
    v.create_project("P").unwrap();
    v.create_project("Q").unwrap();
    let kept = import(&mut v, &e, "P", "kept.csv", "held data");
    let gone = import(&mut v, &e, "P", "gone.csv", "expiring data");
    let other = import(&mut v, &e, "Q", "other.csv", "project-held data");
    v.hold_set(&HoldTarget::Item(kept.clone()), "litigation 7")
        .unwrap();
    v.hold_set(&HoldTarget::Project("Q".into()), "audit")
        .unwrap();
    let old_blobs: Vec<(PathBuf, Vec<u8>)> = blob_files(&e.dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();

    // Research data: 7 years. Nothing happens before.
    e.clock.advance(Duration::days(365 * 7));
    let r = v.run_retention(&mut |_, _| {}).unwrap();
    assert_eq!((r.expired, r.erased), (0, 0));
    let st = v.retention_status(Some("P")).unwrap();
    let gone_st = st.items.iter().find(|i| i.item_id == gone).unwrap();
    assert_eq!(gone_st.expires_at, datetime!(2033-01-01 09:00 UTC));
    assert_eq!(
        st.projects[0].due_7d, 1,
        "gone is due within 7 days; kept is held"
    );

    e.clock.advance(Duration::days(3));
    let r = v.run_retention(&mut |_, _| {}).unwrap();
    assert_eq!((r.expired, r.erased, r.held), (1, 0, 2));
    assert_eq!(v.item(&gone).unwrap().state, ItemState::SoftDeleted);
    assert_eq!(v.item(&kept).unwrap().state, ItemState::Active);
    // Idempotent: a second run at the same instant does nothing more.
    let r2 = v.run_retention(&mut |_, _| {}).unwrap();
    assert_eq!((r2.expired, r2.erased), (0, 0));

    e.clock.advance(Duration::days(31));
    let r = v.run_retention(&mut |_, _| {}).unwrap();
    assert_eq!(r.erased, 1);
    let g = v.item(&gone).unwrap();
    assert_eq!(g.state, ItemState::Erased);
    assert_eq!(
        g.erase_reason.as_deref(),
        Some("retention: grace period ended")
    );
    assert_eq!(
        v.item(&kept).unwrap().state,
        ItemState::Active,
        "held item survives past expiry"
    );
    assert_eq!(
        v.item(&other).unwrap().state,
        ItemState::Active,
        "project hold covers its items"
    );

    let st = v.retention_status(None).unwrap();
    let p = st.projects.iter().find(|p| p.project == "P").unwrap();
    assert_eq!((p.on_hold.items, p.erased.items, p.erased.bytes), (1, 1, 0));
    assert_eq!(p.on_hold.bytes, "held data".len() as u64);

    // Putting the old blobs back does not bring the erased item back.
    v.lock();
    for (p, b) in &old_blobs {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
    let v = unlock(&e);
    let out = e.src.join("restore-attempt");
    std::fs::create_dir_all(&out).unwrap();
    let err = v
        .export_item(
            &gone,
            &out,
            &ExportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Erased);
    v.lock();
    let c = raw_catalog(&e);
    let keys: i64 = c
        .query_row("SELECT count(*) FROM item_versions WHERE item_id = ?1 AND wrapped_data_key IS NOT NULL", [&gone], |r| r.get(0))
        .unwrap();
    assert_eq!(keys, 0, "the data key is destroyed");
    drop(c);
    let v = unlock(&e);
    let rep = v.verify(&mut |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(
        rep.problems.iter().any(|p| p.message.contains("orphan")),
        "the stale blob copy is an orphan: {:?}",
        rep.problems
    );

    v.hold_clear(&HoldTarget::Item(kept.clone())).unwrap();
    let r = v.run_retention(&mut |_, _| {}).unwrap();
    assert_eq!(r.expired, 1);
    assert_eq!(v.item(&kept).unwrap().state, ItemState::SoftDeleted);
}

#[test]
fn policies_layer_per_project_and_audit_minimum_holds() {
    let e = env();
    let v = create(&e);
    v.create_project("P").unwrap();
    let before = v.retention_policies().unwrap();
    for bad in [RetentionPeriod::Years(5), RetentionPeriod::Days(2000)] {
        let ov = PolicyOverride {
            audit_log: Some(bad),
            ..Default::default()
        };
        let err = v.set_retention_policy(Some("P"), None, &ov).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPolicy);
        assert!(err.to_string().contains("at least 6 years"), "{err}");
    }
    let zero = PolicyOverride {
        backup: Some(RetentionPeriod::Days(0)),
        ..Default::default()
    };
    assert_eq!(
        v.set_retention_policy(None, None, &zero)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidPolicy
    );
    let after = v.retention_policies().unwrap();
    assert_eq!(
        serde_json::to_string(&before).unwrap(),
        serde_json::to_string(&after).unwrap(),
        "nothing changed"
    );

    let ov = PolicyOverride {
        research_data: Some(RetentionPeriod::Years(10)),
        ..Default::default()
    };
    let eff = v.set_retention_policy(Some("P"), None, &ov).unwrap();
    assert_eq!(eff.research_data, RetentionPeriod::Years(10));
    assert_eq!(
        v.retention_policy(None).unwrap().research_data,
        RetentionPeriod::Years(7)
    );
    let session = PolicyOverride {
        session_data: Some(RetentionPeriod::Days(5)),
        ..Default::default()
    };
    assert_eq!(
        v.set_retention_policy(None, None, &session)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidPolicy
    );
    let eff = v
        .set_retention_policy(
            None,
            Some(labvault_governance::PlanTier::Enterprise),
            &session,
        )
        .unwrap();
    assert_eq!(eff.session_data, RetentionPeriod::Days(5));
}

#[test]
fn an_interrupted_retention_run_resumes_without_repeating_steps() {
    let e = env();
    let mut v = create(&e);
    v.create_project("P").unwrap();
    let ids: Vec<String> = (0..3)
        .map(|i| import(&mut v, &e, "P", &format!("s{i}.txt"), "scratch"))
        .collect();
    let ov = PolicyOverride {
        research_data: Some(RetentionPeriod::Days(1)),
        ..Default::default()
    };
    v.set_retention_policy(None, None, &ov).unwrap();
    e.clock.advance(Duration::days(2));
    // The process "dies" right after the first item's step committed.
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        v.run_retention(&mut |done, _| {
            if done == 1 {
                panic!("simulated crash");
            }
        })
    }));
    assert!(crashed.is_err());
    let moved = ids
        .iter()
        .filter(|i| v.item(i).unwrap().state == ItemState::SoftDeleted)
        .count();
    assert_eq!(
        moved, 1,
        "the step that committed before the crash stays done"
    );
    let r = v.run_retention(&mut |_, _| {}).unwrap();
    assert_eq!(r.expired, 2, "only what was still due");
    let expire_events = all_events(&v)
        .iter()
        .filter(|ev| ev.action.as_str() == "retention.expire")
        .count();
    assert_eq!(expire_events, 3, "one event per item, none repeated");
    assert!(v.audit_verify(&mut |_, _| {}).is_ok());
}

/// Imports `name` into `project` as `dt`.
fn import_as(v: &mut Vault, e: &Env, project: &str, name: &str, dt: DataType) -> String {
    let p = e.src.join(name);
    std::fs::write(&p, name).unwrap();
    let opts = ImportOptions {
        data_type: Some(dt),
        ..Default::default()
    };
    let r = v
        .import(
            project,
            Area::Uploads,
            &[p],
            &opts,
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    r.imported[0].item_id.clone()
}

/// The unlock-time pass reads only the items whose step may be due (through an index, with a
/// bound derived from the shortest period in force), so it must still catch every due item:
/// a project override shorter than the vault policy, a vault override for one data type, a
/// calendar year starting on 29 February, and a soft-deleted item whose grace ended; and it
/// must not touch anything one millisecond early.
#[test]
fn unlock_enforces_every_due_step_and_nothing_early() {
    let e = env();
    e.clock.set(datetime!(2028-02-29 09:00 UTC));
    let mut v = create(&e);
    v.create_project("P").unwrap();
    v.create_project("Q").unwrap();
    let one_year = PolicyOverride {
        research_data: Some(RetentionPeriod::Years(1)),
        ..Default::default()
    };
    v.set_retention_policy(Some("P"), None, &one_year).unwrap();
    let backup_30d = PolicyOverride {
        backup: Some(RetentionPeriod::Days(30)),
        ..Default::default()
    };
    v.set_retention_policy(None, None, &backup_30d).unwrap();
    let leap = import_as(&mut v, &e, "P", "leap.csv", DataType::ResearchData);
    let backup = import_as(&mut v, &e, "Q", "backup.tar", DataType::Backup);
    let research = import_as(&mut v, &e, "Q", "research.csv", DataType::ResearchData);
    let deleted = import_as(&mut v, &e, "Q", "deleted.csv", DataType::ResearchData);
    v.soft_delete(&deleted).unwrap();
    let states = |v: &Vault| -> Vec<ItemState> {
        [&leap, &backup, &research, &deleted]
            .iter()
            .map(|id| v.item(id).unwrap().state)
            .collect()
    };
    let relock = |v: Vault| {
        v.lock();
        unlock(&e)
    };
    use ItemState::{Active, Erased, SoftDeleted};

    // One millisecond before the backup period and the grace end: nothing moves.
    e.clock
        .advance(Duration::days(30) - Duration::milliseconds(1));
    let v = relock(v);
    assert_eq!(states(&v), [Active, Active, Active, SoftDeleted]);
    assert!(
        with_action(&v, "retention.run").is_empty(),
        "a quiet unlock records no run"
    );

    // Both are due at exactly their time.
    e.clock.advance(Duration::milliseconds(1));
    let v = relock(v);
    assert_eq!(states(&v), [Active, SoftDeleted, Active, Erased]);
    let runs = with_action(&v, "retention.run");
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0].detail.contains("expired=1 erased=1"),
        "{}",
        runs[0].detail
    );

    // 29 February 2028 + 1 year = 28 February 2029 09:00 (P's override), not a day later.
    e.clock.set(datetime!(2029-02-28 08:59:59.999 UTC));
    let v = relock(v);
    assert_eq!(v.item(&leap).unwrap().state, Active);
    e.clock.set(datetime!(2029-02-28 09:00 UTC));
    let v = relock(v);
    assert_eq!(states(&v), [SoftDeleted, Erased, Active, Erased]);
    assert!(v.audit_verify(&mut |_, _| {}).is_ok());
}

/// The paged retention reads agree with the whole-vault status they replace: every page of
/// items is the matching slice of `retention_status`, the timeline is exactly its due steps in
/// time order (held items left out), and item details carry the same facts and the history.
#[test]
fn paged_retention_items_and_timeline_agree_with_the_full_status() {
    let e = env();
    let mut v = create(&e);
    v.create_project("p").unwrap();
    v.create_project("q").unwrap();
    // Three ages and two projects; one on hold, one soft-deleted.
    let mut ids = Vec::new();
    for (i, project) in ["p", "q", "p", "q", "p", "p", "q"].iter().enumerate() {
        ids.push(import(&mut v, &e, project, &format!("f{i}.csv"), "x"));
        e.clock.advance(Duration::days(400));
    }
    v.set_retention_policy(
        Some("q"),
        None,
        &PolicyOverride {
            research_data: Some(RetentionPeriod::Years(1)),
            ..Default::default()
        },
    )
    .unwrap();
    v.hold_set(&HoldTarget::Item(ids[1].clone()), "case 7")
        .unwrap();
    v.soft_delete(&ids[4]).unwrap();

    let full = v.retention_status(None).unwrap();
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let page = v.retention_items_page(None, offset, 3).unwrap();
        assert_eq!(page.total, full.items.len() as u64);
        if page.rows.is_empty() {
            break;
        }
        offset += page.rows.len() as u64;
        paged.extend(page.rows);
    }
    let key = |r: &labvault_core::retention::ItemRetention| {
        (
            r.item_id.clone(),
            r.state,
            r.expires_at,
            r.next_step_at,
            r.period.clone(),
        )
    };
    assert_eq!(
        paged.iter().map(key).collect::<Vec<_>>(),
        full.items.iter().map(key).collect::<Vec<_>>()
    );
    let only_q = v.retention_items_page(Some("q"), 0, 100).unwrap();
    assert_eq!(only_q.total, 3);
    assert!(only_q.rows.iter().all(|r| r.project == "q"));

    for days in [0, 30, 400, 3000] {
        let until = full.now + Duration::days(days);
        let mut want: Vec<_> = full
            .items
            .iter()
            .filter(|i| {
                i.state != labvault_governance::retention::DisplayState::OnHold
                    && i.next_step_at.is_some_and(|at| at <= until)
            })
            .map(|i| (i.next_step_at.unwrap(), i.item_id.clone()))
            .collect();
        want.sort();
        let tl = v.retention_timeline(None, days as u32, 1000).unwrap();
        let got: Vec<_> = tl
            .steps
            .iter()
            .map(|s| (s.at, s.item.item_id.clone()))
            .collect();
        assert_eq!(got, want, "window of {days} days");
        assert_eq!(tl.total, want.len() as u64);
        let capped = v.retention_timeline(None, days as u32, 1).unwrap();
        assert_eq!(capped.total, want.len() as u64);
        assert!(capped.steps.len() <= 1);
    }

    let d = v.item_details(&ids[1], 50).unwrap();
    assert_eq!(d.hold_reason.as_deref(), Some("case 7"));
    assert_eq!(
        d.retention.state,
        labvault_governance::retention::DisplayState::OnHold
    );
    let actions: Vec<&str> = d.history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["retention.hold", "data.import"], "newest first");
    assert_eq!(
        v.item_details("no-such-item", 5).unwrap_err().code(),
        ErrorCode::NotFound
    );
}
