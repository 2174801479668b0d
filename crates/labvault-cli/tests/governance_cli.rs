//! `labvault audit | retention | hold` driven through the real binary.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const PASS: &str = "cli governance passphrase";

struct Env {
    _t: tempfile::TempDir,
    root: PathBuf,
    vault: PathBuf,
}

impl Env {
    fn new() -> Env {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let vault = root.join("vault");
        let e = Env { _t: t, root, vault };
        let o = e
            .cmd()
            .env("LABVAULT_NEW_PASSPHRASE", PASS)
            .arg("init")
            .arg("--json")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        e
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_labvault"));
        c.arg("--vault")
            .arg(&self.vault)
            .arg("--no-keyring")
            .env("LABVAULT_KDF", "floor")
            .env("LABVAULT_PASSPHRASE", PASS)
            .env_remove("LABVAULT_NEW_PASSPHRASE")
            .env_remove("LABVAULT_VAULT")
            .current_dir(&self.root)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "labvault {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], exit: i32, code: &str) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(exit), "labvault {args:?}: {err}");
        assert!(err.contains(&format!("error[{code}]")), "{err}");
        err
    }
}

#[test]
fn hold_audit_export_and_offline_verify_through_the_cli() {
    let e = Env::new();
    e.ok(&["project", "create", "Alpha"]);
    std::fs::write(e.root.join("data.csv"), "a,b\n").unwrap();
    e.ok(&[
        "import",
        "--project",
        "Alpha",
        "--area",
        "uploads",
        "data.csv",
    ]);
    let ls: serde_json::Value = serde_json::from_str(&e.ok(&["ls", "--json"])).unwrap();
    let id = ls[0]["id"].as_str().unwrap().to_string();

    e.ok(&["hold", "set", "--item", &id, "--reason", "case 17"]);
    e.fails(&["rm", "--project", "Alpha", &id], 22, "on_hold");
    e.fails(
        &["purge", "--yes", "--project", "Alpha", &id],
        22,
        "on_hold",
    );
    let status: serde_json::Value =
        serde_json::from_str(&e.ok(&["retention", "status", "--json"])).unwrap();
    assert_eq!(status["items"][0]["state"], "on_hold");
    assert_eq!(status["projects"][0]["on_hold"]["items"], 1);

    let denied: serde_json::Value =
        serde_json::from_str(&e.ok(&["audit", "ls", "--result", "denied", "--json"])).unwrap();
    let actions: Vec<&str> = denied["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"data.delete"), "{actions:?}");
    assert!(denied["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["detail"] == "on_hold"));

    e.fails(
        &["retention", "policy", "set", "--set", "audit_log=5y"],
        14,
        "invalid_policy",
    );
    e.fails(
        &["retention", "policy", "set", "--set", "backup=0d"],
        14,
        "invalid_policy",
    );
    e.ok(&[
        "retention",
        "policy",
        "set",
        "--project",
        "Alpha",
        "--set",
        "research_data=10y",
    ]);
    let pol: serde_json::Value =
        serde_json::from_str(&e.ok(&["retention", "policy", "ls", "--json"])).unwrap();
    assert_eq!(pol["projects"][0]["effective"]["research_data"], "10y");
    assert_eq!(pol["effective"]["audit_log"], "6y");

    for fmt in ["csv", "jsonl"] {
        let out = format!("audit.{fmt}");
        e.ok(&["audit", "export", "--format", fmt, "--out", &out]);
        let v = e.ok(&["audit", "verify", "--file", &out]);
        assert!(v.contains("complete from genesis"), "{v}");
        let text = std::fs::read_to_string(e.root.join(&out)).unwrap();
        std::fs::write(e.root.join("bad"), text.replacen("case 17", "case 18", 1)).unwrap();
        let err = e.fails(&["audit", "verify", "--file", "bad"], 15, "tampered");
        assert!(err.contains("edited"), "{err}");
    }
    e.ok(&[
        "audit",
        "export",
        "--format",
        "jsonl",
        "--out",
        "f.jsonl",
        "--action",
        "retention.",
    ]);
    e.fails(&["audit", "verify", "--file", "f.jsonl"], 15, "tampered");
    assert!(e
        .ok(&["audit", "verify", "--file", "f.jsonl", "--filtered"])
        .contains("gap"));
    assert!(e.ok(&["audit", "verify"]).contains("chain intact"));

    e.ok(&["hold", "clear", "--item", &id]);
    e.ok(&["rm", "--project", "Alpha", &id]);
}

/// The audit trail as (action, result) pairs, split after every `auth.lock`: one chunk per CLI
/// session (the last one, the export's own session, ends before its lock).
fn sessions(e: &Env, out: &str) -> Vec<Vec<(String, String)>> {
    e.ok(&["audit", "export", "--format", "jsonl", "--out", out]);
    let text = std::fs::read_to_string(e.root.join(out)).unwrap();
    let mut chunks = vec![Vec::new()];
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let pair = (
            v["action"].as_str().unwrap().to_string(),
            v["result"].as_str().unwrap().to_string(),
        );
        let lock = pair.0 == "auth.lock";
        chunks.last_mut().unwrap().push(pair);
        if lock {
            chunks.push(Vec::new());
        }
    }
    chunks
}

fn session(events: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![("auth.unlock".to_string(), "success".to_string())];
    v.extend(events.iter().map(|(a, r)| (a.to_string(), r.to_string())));
    v.push(("auth.lock".into(), "success".into()));
    v
}

#[test]
fn every_cli_command_records_its_one_event_and_locks_at_the_end() {
    let e = Env::new();
    std::fs::write(e.root.join("a.csv"), "x,y\n").unwrap();
    let mut want: Vec<Vec<(String, String)>> = vec![vec![
        ("vault.create".into(), "success".into()),
        ("auth.lock".into(), "success".into()),
    ]];
    let mut step = |args: &[&str], exit: Option<(i32, &str)>, events: &[(&str, &str)]| {
        match exit {
            None => {
                e.ok(args);
            }
            Some((code, name)) => {
                e.fails(args, code, name);
            }
        }
        want.push(session(events));
    };
    step(
        &["project", "create", "Alpha"],
        None,
        &[("project.create", "success")],
    );
    step(
        &["project", "create", "Alpha"],
        Some((13, "already_exists")),
        &[("project.create", "failure")],
    );
    step(&["project", "ls"], None, &[]);
    let imp = [("data.import", "success")];
    step(
        &["import", "--project", "Alpha", "--area", "uploads", "a.csv"],
        None,
        &imp,
    );
    step(&["ls", "--json"], None, &[]);
    let ls: serde_json::Value = serde_json::from_str(&e.ok(&["ls", "--json"])).unwrap();
    want.push(session(&[]));
    let id = ls[0]["id"].as_str().unwrap().to_string();
    let mut step = |args: &[&str], exit: Option<(i32, &str)>, events: &[(&str, &str)]| {
        match exit {
            None => {
                e.ok(args);
            }
            Some((code, name)) => {
                e.fails(args, code, name);
            }
        }
        want.push(session(events));
    };
    std::fs::create_dir(e.root.join("out")).unwrap();
    step(
        &["export", "--project", "Alpha", &id, "out"],
        None,
        &[("data.export", "success")],
    );
    step(
        &["mv", "--project", "Alpha", &id, "b.csv"],
        None,
        &[("data.rename", "success")],
    );
    step(
        &["hold", "set", "--item", &id, "--reason", "case 9"],
        None,
        &[("retention.hold", "success")],
    );
    step(
        &["rm", "--project", "Alpha", &id],
        Some((22, "on_hold")),
        &[("data.delete", "denied")],
    );
    step(
        &["hold", "clear", "--item", &id],
        None,
        &[("retention.release", "success")],
    );
    step(
        &["rm", "--project", "Alpha", &id],
        None,
        &[("data.delete", "success")],
    );
    step(
        &["restore", "--project", "Alpha", &id],
        None,
        &[("data.restore", "success")],
    );
    step(&["verify"], None, &[("data.verify", "success")]);
    step(&["stats"], None, &[]);
    step(&["retention", "run"], None, &[("retention.run", "success")]);
    step(
        &["retention", "policy", "set", "--set", "audit_log=5y"],
        Some((14, "invalid_policy")),
        &[("retention.policy", "failure")],
    );
    step(
        &["retention", "policy", "set", "--set", "backup=30d"],
        None,
        &[("retention.policy", "success")],
    );
    step(&["retention", "status"], None, &[]);
    step(&["audit", "ls"], None, &[]);
    step(&["audit", "verify"], None, &[("audit.verify", "success")]);
    step(
        &["purge", "--yes", "--project", "Alpha", &id],
        None,
        &[("data.purge", "success")],
    );
    // Locked-vault events: a wrong passphrase, and forgetting the keyring entry (with or
    // without a Secret Service here). Both are journaled and come in at the next unlock.
    let o = e
        .cmd()
        .env("LABVAULT_PASSPHRASE", "not it")
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10));
    let o = e
        .cmd()
        .env(
            "LABVAULT_KEYRING_SERVICE",
            "org.labvault.test.cli-governance",
        )
        .arg("forget")
        .output()
        .unwrap();
    let forget = if o.status.success() {
        "success"
    } else {
        "failure"
    };
    assert!(matches!(o.status.code(), Some(0) | Some(17)), "{o:?}");
    // A passphrase change with a wrong current passphrase is recorded as a failed change,
    // as the app records it.
    let o = e
        .cmd()
        .env("LABVAULT_PASSPHRASE", "not it")
        .env("LABVAULT_NEW_PASSPHRASE", "a new passphrase")
        .arg("passwd")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10));
    let o = e
        .cmd()
        .env("LABVAULT_NEW_PASSPHRASE", PASS)
        .arg("passwd")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut s = vec![
        ("auth.unlock".to_string(), "failure".to_string()),
        ("auth.forget".to_string(), forget.to_string()),
        ("auth.passwd".to_string(), "failure".to_string()),
    ];
    s.extend(session(&[("auth.passwd", "success")]));
    want.push(s);

    let got = sessions(&e, "all.jsonl");
    // The export's own session: unlocked, not yet locked or exported when the file was written.
    want.push(vec![("auth.unlock".into(), "success".into())]);
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "session {i}");
    }
    // That export's session is complete in the next export.
    let got = sessions(&e, "all2.jsonl");
    assert_eq!(
        got[want.len() - 1],
        session(&[("audit.export", "success")]),
        "the first export's session"
    );
    assert!(e.ok(&["audit", "verify"]).contains("chain intact"));
}
