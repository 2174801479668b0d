//! Drives the real `labvault` binary end to end, as a user or a script would.

mod sync_cli;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PASS: &str = "cli test passphrase";

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
        Env { _t: t, root, vault }
    }

    fn cmd(&self, pass: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_labvault"));
        c.arg("--vault")
            .arg(&self.vault)
            .env("LABVAULT_KDF", "floor")
            .env("LABVAULT_KEYRING_SERVICE", "org.labvault.test.cli")
            .env_remove("LABVAULT_PASSPHRASE")
            .env_remove("LABVAULT_NEW_PASSPHRASE")
            .env_remove("LABVAULT_VAULT")
            .stdin(Stdio::null());
        if let Some(p) = pass {
            c.env("LABVAULT_PASSPHRASE", p);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(Some(PASS)).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "labvault {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn init(&self) -> String {
        let o = self
            .cmd(None)
            .env("LABVAULT_NEW_PASSPHRASE", PASS)
            .arg("init")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(p: &Path, b: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, b).unwrap();
}

fn ls_json(env: &Env, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["ls", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&env.ok(&args)).unwrap()
}

#[test]
fn full_workflow_init_import_ls_export_rm_restore_purge_verify() {
    let env = Env::new();
    let out = env.init();
    assert!(out.contains("Recovery key (shown only this once)"), "{out}");
    assert!(out.contains("Write it down"));

    let id = env.ok(&["project", "create", "Proj A"]);
    assert_eq!(id.trim().len(), 36);
    let projects: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["project", "ls", "--json"])).unwrap();
    assert_eq!(projects[0]["name"], "Proj A");

    let src = env.root.join("data");
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i * 31 % 251) as u8).collect();
    write(&src.join("big.bin"), &big);
    write(&src.join("sub/table.csv"), b"x,y\n1,2\n");
    let out = env.ok(&[
        "import",
        "--project",
        "Proj A",
        "--area",
        "uploads",
        src.to_str().unwrap(),
    ]);
    assert!(out.contains("imported uploads/data/big.bin"), "{out}");
    assert!(out.contains("imported uploads/data/sub/table.csv"), "{out}");

    let items = ls_json(&env, &["--project", "Proj A"]);
    assert_eq!(items.len(), 2);
    for key in ["id", "project", "area", "path", "size", "sha256", "state"] {
        assert!(items[0].get(key).is_some(), "ls --json lacks {key}");
    }
    let bigi = items.iter().find(|i| i["path"] == "data/big.bin").unwrap();
    assert_eq!(bigi["size"], 2_500_000);
    assert_eq!(bigi["state"], "active");
    assert_eq!(bigi["project"], "Proj A");
    assert_eq!(ls_json(&env, &["--area", "plots"]).len(), 0);
    assert_eq!(ls_json(&env, &["--contains", "TABLE"]).len(), 1);

    // Export by path and by id; bytes identical.
    let dest = env.root.join("out");
    env.ok(&[
        "export",
        "--project",
        "Proj A",
        "data/big.bin",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(dest.join("big.bin")).unwrap(), big);
    let csv_id = items
        .iter()
        .find(|i| i["path"] == "data/sub/table.csv")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&[
        "export",
        "--project",
        "Proj A",
        &csv_id,
        dest.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(dest.join("table.csv")).unwrap(), b"x,y\n1,2\n");
    // Exporting again refuses to overwrite: already_exists = exit 13.
    let o = env.run(&[
        "export",
        "--project",
        "Proj A",
        &csv_id,
        dest.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 13, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error[already_exists]: "));
    // Whole area.
    let area_dest = env.root.join("area");
    env.ok(&[
        "export",
        "--project",
        "Proj A",
        "--area",
        "uploads",
        area_dest.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(area_dest.join("data/big.bin")).unwrap(), big);

    env.ok(&[
        "mv",
        "--project",
        "Proj A",
        "data/sub/table.csv",
        "tables/t.csv",
        "--to-area",
        "workspace",
    ]);
    assert_eq!(
        ls_json(&env, &["--area", "workspace"])[0]["path"],
        "tables/t.csv"
    );

    env.ok(&["rm", "--project", "Proj A", "data/big.bin"]);
    assert_eq!(ls_json(&env, &[]).len(), 1);
    assert_eq!(ls_json(&env, &["--state", "soft_deleted"]).len(), 1);
    env.ok(&["restore", "--project", "Proj A", "data/big.bin"]);
    assert_eq!(ls_json(&env, &[]).len(), 2);

    // Purge needs confirmation when not interactive.
    let o = env.run(&["purge", "--project", "Proj A", "data/big.bin"]);
    assert_eq!(code(&o), 14, "{}", stderr(&o));
    env.ok(&[
        "purge",
        "--project",
        "Proj A",
        "data/big.bin",
        "--yes",
        "--reason",
        "test",
    ]);
    let all = ls_json(&env, &["--all"]);
    let erased = all.iter().find(|i| i["path"] == "data/big.bin").unwrap();
    assert_eq!(erased["state"], "erased");
    assert_eq!(erased["erase_reason"], "test");
    let o = env.run(&[
        "export",
        "--project",
        "Proj A",
        erased["id"].as_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 21, "erased: {}", stderr(&o));

    let out = env.ok(&["verify"]);
    assert!(out.contains("0 problem(s)"), "{out}");
    let stats: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["stats", "--json"])).unwrap();
    assert!(stats
        .iter()
        .any(|r| r["state"] == "erased" && r["items"] == 1));
}

#[test]
fn wrong_passphrase_missing_vault_and_busy_codes() {
    let env = Env::new();
    let o = env.run(&["ls"]);
    assert_eq!(code(&o), 12, "no vault yet: {}", stderr(&o));
    assert!(stderr(&o).starts_with("error[not_found]:"));
    env.init();
    let o = env.cmd(Some("not it")).args(["ls"]).output().unwrap();
    assert_eq!(code(&o), 10);
    assert_eq!(
        stderr(&o).trim(),
        "error[wrong_passphrase]: wrong passphrase"
    );
    // No passphrase at all and no terminal: a clear message, not a hang.
    let o = env.cmd(None).args(["--no-keyring", "ls"]).output().unwrap();
    assert_eq!(code(&o), 14, "{}", stderr(&o));
    assert!(stderr(&o).contains("LABVAULT_PASSPHRASE"));
    // init over an existing vault.
    let o = env
        .cmd(None)
        .env("LABVAULT_NEW_PASSPHRASE", "x")
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(code(&o), 13);
}

#[test]
fn passwd_and_recover_via_stdin_and_env() {
    let env = Env::new();
    let out = env.init();
    let rk = out
        .lines()
        .map(str::trim)
        .find(|l| l.len() > 40 && l.contains('-'))
        .unwrap()
        .to_string();
    let mut child = env
        .cmd(None)
        .args(["--passphrase-stdin", "passwd"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASS}\nsecond passphrase\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(code(&env.run(&["ls"])), 10, "old passphrase refused");
    assert!(env
        .cmd(Some("second passphrase"))
        .arg("ls")
        .output()
        .unwrap()
        .status
        .success());

    let o = env
        .cmd(None)
        .env("LABVAULT_RECOVERY_KEY", "AAAA-BBBB")
        .env("LABVAULT_NEW_PASSPHRASE", PASS)
        .arg("recover")
        .output()
        .unwrap();
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error[invalid_recovery_key]"));
    let o = env
        .cmd(None)
        .env("LABVAULT_RECOVERY_KEY", &rk)
        .env("LABVAULT_NEW_PASSPHRASE", PASS)
        .arg("recover")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    env.ok(&["ls"]);

    // Rotating the root key issues a new recovery key and retires the old one.
    let out = env.ok(&["rekey"]);
    assert!(out.contains("no file was re-encrypted"), "{out}");
    let new_rk = out
        .lines()
        .map(str::trim)
        .find(|l| l.len() > 40 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap()
        .to_string();
    assert_ne!(new_rk, rk);
    let recover = |key: &str| {
        env.cmd(None)
            .env("LABVAULT_RECOVERY_KEY", key)
            .env("LABVAULT_NEW_PASSPHRASE", PASS)
            .arg("recover")
            .output()
            .unwrap()
    };
    let o = recover(&rk);
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error[wrong_recovery_key]"));
    let o = recover(&new_rk);
    assert!(o.status.success(), "{}", stderr(&o));
    env.ok(&["ls"]);
}

#[test]
fn tampered_blob_is_named_by_verify_and_bad_names_are_reported() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Lab"]);
    let src = env.root.join("in");
    write(&src.join("results.dat"), &vec![7u8; 300_000]);
    env.ok(&[
        "import",
        "-p",
        "Lab",
        src.join("results.dat").to_str().unwrap(),
    ]);
    let blobs: Vec<PathBuf> = fs::read_dir(env.vault.join("blobs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    let mut b = fs::read(&blobs[0]).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x40;
    fs::write(&blobs[0], b).unwrap();
    let o = env.run(&["verify"]);
    assert_eq!(code(&o), 15, "{}", stderr(&o));
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(all.contains("Lab/uploads/results.dat"), "{all}");
    assert!(stderr(&o).starts_with("error[tampered]"));
    let o = env.run(&["verify", "--json"]);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["problems"][0]["code"], "tampered");
    assert_eq!(rep["problems"][0]["path"], "results.dat");

    // One file with a name the vault refuses: the others are imported, exit 3, file named.
    write(&src.join("ok.txt"), b"fine");
    write(&src.join("bad\\name.txt"), b"nope");
    let o = env.run(&[
        "import",
        "-p",
        "Lab",
        "--into",
        "batch",
        src.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped[invalid_name]"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("bad\\name.txt"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("imported uploads/batch/in/ok.txt"));
}

#[test]
fn remember_and_forget_use_the_os_keyring_or_say_it_is_unavailable() {
    let env = Env::new();
    env.init();
    let o = env.run(&["remember"]);
    if code(&o) == 17 {
        // No Secret Service here: a clear message, and the passphrase path still works.
        assert!(
            stderr(&o).starts_with("error[keyring_unavailable]"),
            "{}",
            stderr(&o)
        );
        assert!(
            std::env::var("LABVAULT_REQUIRE_KEYRING").as_deref() != Ok("1"),
            "keyring required: {}",
            stderr(&o)
        );
        env.ok(&["ls"]);
        return;
    }
    assert!(o.status.success(), "{}", stderr(&o));
    // Remembered: no passphrase needed on this device.
    let o = env.cmd(None).args(["ls"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    env.ok(&["forget"]);
    let o = env.cmd(None).args(["ls"]).output().unwrap();
    assert_eq!(code(&o), 14, "passphrase needed again: {}", stderr(&o));
}

/// Lines are written in batches, not one write per file: every imported file must still get
/// exactly one line, in import order, with nothing lost when the command ends.
#[test]
fn import_of_many_files_prints_one_line_per_file_in_order() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Many"]);
    let src = env.root.join("many");
    let n = 700; // several group commits
    for i in 0..n {
        write(
            &src.join(format!("f{i:04}.txt")),
            format!("file {i}").as_bytes(),
        );
    }
    let out = env.ok(&[
        "import",
        "-p",
        "Many",
        "--area",
        "uploads",
        src.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    let expected: Vec<String> = (0..n)
        .map(|i| format!("imported uploads/many/f{i:04}.txt (v1, "))
        .collect();
    assert_eq!(lines.len(), n, "{out}");
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line:?} should start with {want:?}"
        );
    }
}

/// While the app (here: this test process, through the core) imports, the CLI lists, exports
/// and verifies the vault from another process; a command that would change it is refused at
/// once with a message naming the process that holds it.
#[test]
fn the_cli_reads_while_another_process_imports_and_is_told_who_holds_the_writer() {
    use labvault_core::{
        Area, ImportEvent, ImportOptions, Passphrase, Unlock, Vault, VaultOptions,
    };
    use std::sync::atomic::AtomicBool;
    use std::sync::{mpsc, Arc};

    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "p"]);
    let src = env.root.join("batch");
    let files: Vec<PathBuf> = (0..200)
        .map(|i| {
            let p = src.join(format!("f{i:03}.txt"));
            write(&p, format!("file {i}").as_bytes());
            p
        })
        .collect();
    let opts = VaultOptions {
        user_agent: "labvault-app/test".into(),
        ..VaultOptions::default()
    };
    let v = Arc::new(
        Vault::unlock(
            &env.vault,
            Unlock::Passphrase(&Passphrase::new(PASS.into())),
            opts,
        )
        .unwrap(),
    );
    let (committed_tx, committed_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let importer = {
        let v = v.clone();
        std::thread::spawn(move || {
            let mut parked = false;
            v.import(
                "p",
                Area::Uploads,
                &files,
                &ImportOptions::default(),
                &mut |e| {
                    if let (ImportEvent::FileDone(_), false) = (e, parked) {
                        parked = true;
                        committed_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    }
                },
                &AtomicBool::new(false),
            )
            .unwrap()
        })
    };
    committed_rx.recv().unwrap();

    // The writer is held mid-import: another process reads.
    let listed = ls_json(&env, &["--project", "p"]);
    assert!(!listed.is_empty() && listed.len() < 200, "{}", listed.len());
    let first = listed[0]["path"].as_str().unwrap().to_string();
    let out = env.root.join("out");
    env.ok(&["export", "--project", "p", &first, out.to_str().unwrap()]);
    assert_eq!(
        fs::read(out.join(&first)).unwrap(),
        fs::read(src.join(&first)).unwrap()
    );
    env.ok(&["verify"]);
    // A change is refused at once, naming the holder.
    let o = env.run(&["project", "create", "q"]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(msg.contains("error[vault_busy]"), "{msg}");
    assert!(msg.contains("labvault-app/test"), "{msg}");
    assert!(msg.contains("data.import"), "{msg}");
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");

    release_tx.send(()).unwrap();
    assert_eq!(importer.join().unwrap().imported.len(), 200);
    v.close();
    env.ok(&["project", "create", "q"]);
    assert_eq!(ls_json(&env, &["--project", "p"]).len(), 200);
}

#[test]
fn init_takes_the_passphrase_scripts_set_and_refuses_a_weak_one() {
    let env = Env::new();
    for weak in ["x", "abcdefgh", "short words"] {
        let o = env
            .cmd(None)
            .env("LABVAULT_NEW_PASSPHRASE", weak)
            .arg("init")
            .output()
            .unwrap();
        assert_eq!(code(&o), 14, "{weak:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("too weak"), "{}", stderr(&o));
    }
    // `LABVAULT_PASSPHRASE`, as every other command reads it, creates the vault too.
    let o = env.cmd(Some(PASS)).arg("init").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    env.ok(&["ls"]);
}

#[test]
fn hostile_file_names_are_printed_escaped() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Lab"]);
    let src = env.root.join("hostile");
    // A terminal escape (set the window title) and a newline faking a line of output.
    let name = "evil\u{1b}]0;pwned\u{7}\nskipped[ok]: all fine.txt";
    write(&src.join(name), b"x");
    let o = env
        .cmd(Some(PASS))
        .args(["import", "-p", "Lab", src.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 3, "the file is skipped: {err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(
        !err.lines().any(|l| l.starts_with("skipped[ok]")),
        "no faked line: {err:?}"
    );
    assert!(err.contains("\\u{1b}"), "{err:?}");
}

#[test]
fn import_json_stays_valid_with_a_non_utf8_file_name() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Lab"]);
    let src = env.root.join("mixed");
    write(&src.join("good.csv"), b"a,b");
    let bad = src.join(std::ffi::OsStr::from_bytes(b"bad\xff.csv"));
    std::fs::write(&bad, b"x").unwrap();
    let o = env
        .cmd(Some(PASS))
        .args(["import", "--json", "-p", "Lab", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "one imported, one skipped: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["imported"].as_array().unwrap().len(), 1);
    let failed = &v["failed"][0];
    assert!(
        failed["source"].as_str().unwrap().ends_with("bad\\xff.csv"),
        "{failed}"
    );
    assert_eq!(failed["code"], "invalid_name");
}

#[test]
fn export_area_writes_what_it_can_and_reports_each_item_it_cannot() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Lab"]);
    let src = env.root.join("data");
    for n in ["a.csv", "b.csv", "c.csv"] {
        write(&src.join(n), n.as_bytes());
    }
    env.ok(&["import", "-p", "Lab", src.to_str().unwrap()]);
    let out = env.root.join("out");
    write(&out.join("data/b.csv"), b"the user's own b");
    let o = env
        .cmd(Some(PASS))
        .args([
            "export",
            "-p",
            "Lab",
            "--area",
            "uploads",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "partial: {}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("exported "))
            .count(),
        2,
        "{stdout}"
    );
    assert!(
        stderr(&o).contains("not exported[already_exists]"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("2 file(s) exported, 1 could not be"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(out.join("data/b.csv")).unwrap(),
        b"the user's own b"
    );
    assert_eq!(std::fs::read(out.join("data/c.csv")).unwrap(), b"c.csv");
}

/// Instrument folder watches survive a killed process: `watch run` is killed (SIGKILL) in the
/// middle of importing a batch an instrument wrote; `watch run --once` afterwards imports the
/// rest, and every file is in the vault exactly once (version 1), journaled once.
#[test]
fn a_killed_watch_run_imports_every_file_exactly_once_after_restart() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "p"]);
    let instr = env.root.join("instrument");
    let n = 400;
    for i in 0..n {
        let body: Vec<u8> = (0..(2048 + i * 37)).map(|k| (k * 31 + i) as u8).collect();
        write(
            &instr.join(format!("run-{}/frame-{i:04}.raw", i % 4)),
            &body,
        );
    }
    write(&instr.join("big/stack.tif"), &vec![7u8; 24 << 20]);
    write(&instr.join("scratch.tmp"), b"never imported");
    env.ok(&[
        "watch",
        "add",
        "spectro",
        instr.to_str().unwrap(),
        "--project",
        "p",
        "--settle",
        "0.5",
    ]);
    let ls = env.ok(&["watch", "ls"]);
    assert!(ls.contains("spectro") && ls.contains("p/uploads"), "{ls}");

    let mut child = env
        .cmd(Some(PASS))
        .args(["watch", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journaled = |env: &Env| -> usize {
        let out = env.ok(&["watch", "log", "spectro", "--json", "--limit", "10000"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .unwrap()
            .len()
    };
    // Watch the journal from this process (a reader beside the child's writer) and kill the
    // child as soon as its first commit (the big file, in the first folder) is there.
    let reader = labvault_core::Vault::unlock(
        &env.vault,
        labvault_core::Unlock::Passphrase(&labvault_core::Passphrase::new(PASS.into())),
        labvault_core::VaultOptions::default(),
    )
    .unwrap();
    let id = reader.watch("spectro").unwrap().id;
    let t = std::time::Instant::now();
    while reader.watch_recent(&id, 1).unwrap().is_empty() {
        assert!(t.elapsed().as_secs() < 60, "watch run imported nothing");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.close();
    let after_kill = journaled(&env);
    eprintln!("journaled when killed: {after_kill} of {}", n + 1);
    assert!(after_kill <= n + 1);

    // Restarted: the rest is imported, nothing twice.
    let out = env.ok(&["watch", "run", "--once"]);
    let imported_now = out
        .lines()
        .filter(|l| l.starts_with("spectro: imported "))
        .count();
    assert_eq!(after_kill + imported_now, n + 1, "{out}");
    let items = ls_json(&env, &["--project", "p"]);
    assert_eq!(items.len(), n + 1);
    assert!(
        items.iter().all(|i| i["version"] == 1),
        "a file was imported twice"
    );
    assert!(items.iter().all(|i| i["path"] != "scratch.tmp"));
    assert!(items.iter().any(|i| i["path"] == "run-3/frame-0003.raw"));
    assert_eq!(journaled(&env), n + 1);
    // Once more: nothing left to do.
    let out = env.ok(&["watch", "run", "--once"]);
    assert!(!out.contains("imported"), "{out}");
    env.ok(&["verify"]);
    let audit = env.ok(&[
        "audit",
        "ls",
        "--action",
        "data.import",
        "--json",
        "--limit",
        "10000",
    ]);
    let page: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let watched = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.ends_with("watch=spectro"))
        })
        .count();
    assert_eq!(watched, n + 1, "one audit event per file, naming the watch");
}

/// Bytes of the tar `bundle` with one byte of `member`'s content flipped (ustar: the name is at
/// the start of a 512-byte header, the content in the blocks after it).
fn flip_in_tar(bundle: &Path, member: &str) {
    let mut b = fs::read(bundle).unwrap();
    let mut off = 0;
    while off + 512 <= b.len() {
        let name = String::from_utf8_lossy(&b[off..off + 100])
            .trim_end_matches('\0')
            .to_string();
        let size = u64::from_str_radix(
            String::from_utf8_lossy(&b[off + 124..off + 135]).trim_matches(['\0', ' ']),
            8,
        )
        .unwrap_or(0) as usize;
        if name == member {
            b[off + 512] ^= 0x01;
            fs::write(bundle, b).unwrap();
            return;
        }
        off += 512 + size.div_ceil(512) * 512;
    }
    panic!("{member} is not in {}", bundle.display());
}

fn verify_bundle(env: &Env, bundle: &Path) -> (i32, String) {
    let o = env.run(&["verify-bundle", bundle.to_str().unwrap()]);
    (
        code(&o),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o)),
    )
}

#[test]
fn a_project_bundle_verifies_offline_names_every_change_and_reimports_identically() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Plankton"]);
    let src = env.root.join("run-7");
    write(&src.join("od600.csv"), b"t,od\n0,0.1\n1,0.2\n");
    write(
        &src.join("plots/growth \"final\", v2.png"),
        &[0x89, b'P', b'N', b'G', 1, 2, 3],
    );
    write(
        &src.join("-rm -rf=1.txt"),
        b"a name that looks like an option and a formula",
    );
    write(&src.join("big.bin"), &vec![0x5au8; 3 << 20]);
    // A path past the tar header's 100 bytes (a GNU long-name entry in the .tar).
    let long = "instrument-run-2026-12-07-spectrophotometer-bay-3/calibrated-frames/frame-000001-of-000240.dat";
    write(&src.join(long), b"frame");
    env.ok(&["import", "-p", "Plankton", src.to_str().unwrap()]);
    let od_id = ls_json(&env, &[])
        .iter()
        .find(|i| i["path"] == "run-7/od600.csv")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["hold", "set", "--item", &od_id, "--reason", "audit 2026"]);

    // A directory bundle and a .tar bundle, both verified without the vault.
    let dir = env.root.join("bundle");
    let tar = env.root.join("bundle.tar");
    let out = env.ok(&["export-project", "Plankton", dir.to_str().unwrap()]);
    assert!(out.contains("5 file(s)"), "{out}");
    env.ok(&["export-project", "Plankton", tar.to_str().unwrap()]);
    for b in [&dir, &tar] {
        let (c, out) = verify_bundle(&env, b);
        assert_eq!(c, 0, "{out}");
        assert!(
            out.contains("5 file(s)") && out.contains("0 problem(s)"),
            "{out}"
        );
    }
    let o = env.run(&["export-project", "Plankton", dir.to_str().unwrap()]);
    assert_ne!(code(&o), 0, "an existing bundle is never overwritten");

    // The manifest: hashes, retention and the hold; the CSV has the same rows, names quoted.
    let manifest: Vec<serde_json::Value> =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest.len(), 5);
    let od = manifest
        .iter()
        .find(|e| e["path"] == "run-7/od600.csv")
        .unwrap();
    assert_eq!(od["on_hold"], true);
    assert_eq!(od["retention_period"], "7y");
    assert_eq!(od["data_type"], "research_data");
    let csv = fs::read_to_string(dir.join("manifest.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6);
    assert!(
        csv.contains("\"run-7/plots/growth \"\"final\"\", v2.png\""),
        "{csv}"
    );
    // The spreadsheet holds the same rows as the CSV, with numbers as numbers.
    {
        use calamine::{Data, Reader, Xlsx};
        let mut x: Xlsx<_> = calamine::open_workbook(dir.join("manifest.xlsx")).unwrap();
        let sheet = x.worksheet_range("Manifest").unwrap();
        assert_eq!(sheet.height(), 6);
        for (i, line) in csv.lines().skip(1).enumerate() {
            let row = sheet.rows().nth(i + 1).unwrap();
            let id = line.split(',').next().unwrap();
            assert_eq!(row[0], Data::String(id.into()));
            let entry = manifest.iter().find(|e| e["id"] == id).unwrap();
            assert_eq!(row[2], Data::String(entry["path"].as_str().unwrap().into()));
            assert_eq!(row[4], Data::Float(entry["size"].as_u64().unwrap() as f64));
            assert_eq!(
                row[5],
                Data::String(entry["sha256"].as_str().unwrap().into())
            );
            assert_eq!(row[14], Data::Bool(entry["on_hold"].as_bool().unwrap()));
        }
        let mut a: Xlsx<_> = calamine::open_workbook(dir.join("audit.xlsx")).unwrap();
        let audit_rows = a.worksheet_range("Audit").unwrap().height();
        let jsonl = fs::read_to_string(dir.join("audit.jsonl")).unwrap();
        assert_eq!(audit_rows, jsonl.lines().count() + 1);
    }
    // Every event of the project, and the export itself recorded with the bundle's digest.
    let audit = fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(audit.lines().count() >= 5, "{audit}");
    assert!(audit.contains("\"action\":\"retention.hold\""), "{audit}");
    let digest = fs::read(dir.join("bundle.json")).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(digest))
    };
    let ev = env.ok(&["audit", "ls", "--action", "data.export", "--json"]);
    assert!(ev.contains(&format!("bundle_digest={digest}")), "{ev}");

    // Re-imported into a fresh vault: the same paths and hashes.
    let fresh = Env::new();
    fresh.init();
    fresh.ok(&["project", "create", "Plankton"]);
    fresh.ok(&[
        "import",
        "-p",
        "Plankton",
        dir.join("files/uploads/run-7").to_str().unwrap(),
    ]);
    let mut a: Vec<(String, String)> = ls_json(&env, &[])
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().into(),
                i["sha256"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut b: Vec<(String, String)> = ls_json(&fresh, &[])
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().into(),
                i["sha256"].as_str().unwrap().into(),
            )
        })
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // A changed file, a removed file, an added file and an edited audit line: each named.
    let csv_file = dir.join("files/uploads/run-7/od600.csv");
    fs::write(&csv_file, b"t,od\n0,0.1\n1,0.9\n").unwrap();
    fs::remove_file(dir.join("files/uploads/run-7/big.bin")).unwrap();
    write(&dir.join("files/uploads/run-7/extra.txt"), b"slipped in");
    let edited = audit.replacen("\"result\":\"success\"", "\"result\":\"failure\"", 1);
    fs::write(dir.join("audit.jsonl"), edited).unwrap();
    let (c, out) = verify_bundle(&env, &dir);
    assert_eq!(c, 15, "tampered: {out}");
    assert!(
        out.contains("modified: files/uploads/run-7/od600.csv"),
        "{out}"
    );
    assert!(
        out.contains("missing: files/uploads/run-7/big.bin"),
        "{out}"
    );
    assert!(
        out.contains("unexpected: files/uploads/run-7/extra.txt"),
        "{out}"
    );
    assert!(
        out.contains("audit: audit.jsonl:1") && out.contains("edited"),
        "{out}"
    );
    assert!(out.contains("modified: audit.jsonl"), "{out}");

    // One flipped byte inside the .tar.
    flip_in_tar(&tar, "files/uploads/run-7/big.bin");
    let (c, out) = verify_bundle(&env, &tar);
    assert_eq!(c, 15, "{out}");
    assert!(
        out.contains("modified: files/uploads/run-7/big.bin"),
        "{out}"
    );

    // Not a bundle: a clear error, not a crash.
    let o = env.run(&["verify-bundle", src.to_str().unwrap()]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("not a LabVault bundle"),
        "{}",
        stderr(&o)
    );
}

/// A tool the test needs (installed by `scripts/setup.sh`): missing, the test fails.
fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{name} is not installed: run scripts/setup.sh");
    Command::new(name)
}

/// An archive gets a bundle sealed with age: the stock `age` tool opens one sealed to a
/// recipient (and the `.tar` it gives verifies), `verify-bundle` opens it with the identity
/// file or the passphrase, and refuses the wrong ones by name.
#[test]
fn a_sealed_bundle_opens_with_age_itself_and_verifies() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Archive"]);
    let src = env.root.join("in");
    write(&src.join("result.csv"), b"sample,value\nA,1\n");
    env.ok(&["import", "-p", "Archive", src.to_str().unwrap()]);
    write(&src.join("result.csv"), b"sample,value\nA,2\n");
    env.ok(&["import", "-p", "Archive", src.to_str().unwrap()]);

    let key = env.root.join("archive-key.txt");
    let o = tool("age-keygen").arg("-o").arg(&key).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let public = String::from_utf8_lossy(&o.stderr)
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .expect("age-keygen prints the public key")
        .to_string();
    let sealed = env.root.join("archive.tar.age");
    let out = env.ok(&[
        "export-project",
        "Archive",
        sealed.to_str().unwrap(),
        "--recipient",
        &public,
        "--all-versions",
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["files"], 2, "the current version and version 1");

    // The stock tool opens it; the plain .tar verifies and holds both versions.
    let tar = env.root.join("archive.tar");
    let o = tool("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(&tar)
        .arg(&sealed)
        .output()
        .unwrap();
    assert!(o.status.success(), "age -d: {}", stderr(&o));
    let (c, out) = verify_bundle(&env, &tar);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("2 file(s)"), "{out}");
    let listing = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("versions/uploads/in/result.csv/v1.csv"),
        "{listing}"
    );

    // The same check on a stream: `age -d … | labvault verify-bundle -`.
    let o = env
        .cmd(None)
        .args(["verify-bundle", "-"])
        .stdin(fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 file(s)"));
    // And the sealed stream itself, opened with the identity.
    let o = env
        .cmd(None)
        .args(["verify-bundle", "-", "--identity", key.to_str().unwrap()])
        .stdin(fs::File::open(&sealed).unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // verify-bundle opens it with the identity; without one it asks (no terminal: says how).
    let o = env.run(&[
        "verify-bundle",
        sealed.to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = env.run(&["verify-bundle", sealed.to_str().unwrap()]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("LABVAULT_BUNDLE_PASSPHRASE"),
        "{}",
        stderr(&o)
    );

    // A passphrase-sealed bundle: the right passphrase verifies, a wrong one is named.
    let by_pass = env.root.join("by-pass.tar.age");
    let o = env
        .cmd(Some(PASS))
        .env("LABVAULT_BUNDLE_PASSPHRASE", "hand this to the archive")
        .args([
            "export-project",
            "Archive",
            by_pass.to_str().unwrap(),
            "--encrypt",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let verify_with = |p: &str| {
        env.cmd(None)
            .env("LABVAULT_BUNDLE_PASSPHRASE", p)
            .args(["verify-bundle", by_pass.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = verify_with("hand this to the archive");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = verify_with("not the passphrase");
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    // A bad recipient is refused before anything is written.
    let o = env.run(&[
        "export-project",
        "Archive",
        env.root.join("x.tar.age").to_str().unwrap(),
        "--recipient",
        "age1notakey",
    ]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("not an age recipient"),
        "{}",
        stderr(&o)
    );
    assert!(!env.root.join("x.tar.age").exists());
}

#[test]
fn a_bundle_that_fails_half_way_leaves_nothing_that_looks_complete() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Lab"]);
    let src = env.root.join("in");
    write(&src.join("a.dat"), &vec![1u8; 200_000]);
    write(&src.join("b.dat"), &vec![2u8; 200_000]);
    env.ok(&["import", "-p", "Lab", src.to_str().unwrap()]);
    // Damage one blob: the export stops, names it, and leaves no bundle and no partial tree.
    let blobs: Vec<PathBuf> = fs::read_dir(env.vault.join("blobs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    let mut b = fs::read(&blobs[0]).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x40;
    fs::write(&blobs[0], b).unwrap();
    let out_dir = env.root.join("exports");
    fs::create_dir(&out_dir).unwrap();
    for name in ["lab-bundle", "lab-bundle.tar"] {
        let o = env.run(&[
            "export-project",
            "Lab",
            out_dir.join(name).to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 15, "{}", stderr(&o));
        assert!(stderr(&o).contains("uploads/in/"), "{}", stderr(&o));
        let left: Vec<_> = fs::read_dir(&out_dir).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
fn an_evidence_pack_states_erasures_holds_and_uncovered_controls_with_every_file_hashed() {
    let env = Env::new();
    env.init();
    env.ok(&["project", "create", "Trial 7"]);
    let src = env.root.join("in");
    write(&src.join("subjects.csv"), b"id,age\n1,34\n");
    write(&src.join("old-scan.dat"), &[3u8; 1000]);
    env.ok(&["import", "-p", "Trial 7", src.to_str().unwrap()]);
    let items = ls_json(&env, &[]);
    let id_of = |p: &str| {
        items.iter().find(|i| i["path"] == p).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    env.ok(&[
        "hold",
        "set",
        "--item",
        &id_of("in/subjects.csv"),
        "--reason",
        "FDA inspection 2026-44",
    ]);
    env.ok(&[
        "purge",
        "--project",
        "Trial 7",
        "in/old-scan.dat",
        "--yes",
        "--reason",
        "participant withdrew consent",
    ]);
    let pack = env.root.join("evidence");
    let out = env.ok(&[
        "evidence-pack",
        "Trial 7",
        pack.to_str().unwrap(),
        "--purpose",
        "Phase II efficacy study",
    ]);
    assert!(out.contains("audit chain verified"), "{out}");
    assert!(out.contains("3 control(s) not covered"), "{out}");

    let read = |n: &str| fs::read_to_string(pack.join(n)).unwrap();
    let retention: serde_json::Value =
        serde_json::from_str(&read("retention-evidence.json")).unwrap();
    assert_eq!(retention["erasures"][0]["path"], "in/old-scan.dat");
    assert_eq!(
        retention["erasures"][0]["reason"],
        "participant withdrew consent"
    );
    assert_eq!(
        retention["legal_holds"][0]["reason"],
        "FDA inspection 2026-44"
    );
    let record: serde_json::Value = serde_json::from_str(&read("processing-record.json")).unwrap();
    assert_eq!(record["controller_purposes"][0], "Phase II efficacy study");
    assert_eq!(
        record["categories_of_data"][0]["data_type"],
        "research_data"
    );
    assert_eq!(
        record["categories_of_data"][0]["items"], 1,
        "the erased item is not data held"
    );
    let audit: serde_json::Value = serde_json::from_str(&read("audit-evidence.json")).unwrap();
    assert_eq!(audit["chain_verified"], true);
    assert!(
        audit["counts_by_action_and_result"]["data.purge"]["success"] == 1
            || audit["counts_by_action_and_result"]["data.erase"]["success"] == 1,
        "{audit}"
    );
    let access: serde_json::Value = serde_json::from_str(&read("access-evidence.json")).unwrap();
    assert!(access["tenant"].as_str().unwrap().contains("not included"));
    let controls = read("controls.csv");
    assert_eq!(controls.lines().count(), 17, "{controls}");
    assert!(controls.contains("11.10(f)") && controls.contains("not covered"));
    assert!(read("index.html").contains("The hash chain verifies."));
    // Every file checks against SHA256SUMS with the standard tool.
    let o = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&pack)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 7);
}

/// Mounts a small tmpfs at `mnt`; `false` (or, under CI, a failure) where that is not allowed.
fn small_disk(mnt: &Path, size: &str) -> bool {
    fs::create_dir_all(mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let strict = ["CI", "LABVAULT_STRICT_TESTS"]
            .iter()
            .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"));
        assert!(
            !strict,
            "cannot mount a tmpfs (run as root): this full-disk test must run"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
    }
    ok
}

/// The vault's disk is full (a few KiB left): `ls`, `verify` and `export` to another disk work
/// and say the vault is read-only; `import` fails with `no_space` (exit 18), never with a
/// claim that the catalog is damaged.
#[test]
fn on_a_full_disk_the_cli_still_lists_verifies_and_exports() {
    let mut env = Env::new();
    let mnt = env.root.join("small-disk");
    if !small_disk(&mnt, "4m") {
        return;
    }
    env.vault = mnt.join("vault");
    let res = std::panic::catch_unwind(|| {
        env.init();
        env.ok(&["project", "create", "P"]);
        write(&env.root.join("src/rows.csv"), b"a,b\n1,2\n");
        let src = env.root.join("src/rows.csv");
        env.ok(&[
            "import",
            "--project",
            "P",
            "--area",
            "uploads",
            src.to_str().unwrap(),
        ]);
        let fill = mnt.join("fill");
        let mut f = fs::File::create(&fill).unwrap();
        for block in [64 << 10, 4 << 10, 1] {
            let b = vec![0u8; block];
            while f.write_all(&b).is_ok() {}
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len - (8 << 10)).unwrap();
        drop(f);

        let o = env.run(&["ls", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
        let items: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(items.len(), 1);
        env.ok(&["verify"]);
        let out = env.root.join("out");
        env.ok(&[
            "export",
            "--project",
            "P",
            "rows.csv",
            out.to_str().unwrap(),
        ]);
        assert_eq!(fs::read(out.join("rows.csv")).unwrap(), b"a,b\n1,2\n");
        let o = env.run(&[
            "import",
            "--project",
            "P",
            "--area",
            "uploads",
            src.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 18, "{}", stderr(&o));
        assert!(stderr(&o).contains("full"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("corrupt"), "{}", stderr(&o));
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}
