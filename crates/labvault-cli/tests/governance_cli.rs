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
