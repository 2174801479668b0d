//! Crash safety: a process killed (SIGKILL) in the middle of an import loses nothing it
//! reported as imported, leaves no catalog row pointing at a missing blob, and its orphans are
//! removed at the next unlock.
//!
//! The child is this same test binary re-executed on the `crash_child` test with an
//! environment variable telling it to run; in a normal run that test does nothing.

mod common;

use common::*;
use labvault_core::{
    Area, ExportOptions, ImportEvent, ImportOptions, ListFilter, IMPORT_GROUP_FILES,
};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

const ENV_DIR: &str = "LABVAULT_CRASH_CHILD_VAULT";
const ENV_SRC: &str = "LABVAULT_CRASH_CHILD_SRC";

#[test]
fn crash_child() {
    let (Some(dir), Some(src)) = (std::env::var_os(ENV_DIR), std::env::var_os(ENV_SRC)) else {
        return;
    };
    let v = unlock(&PathBuf::from(dir));
    let mut out = std::io::stdout();
    v.import(
        "P",
        Area::Uploads,
        &[PathBuf::from(src)],
        &ImportOptions::default(),
        &mut |e| {
            if let ImportEvent::FileDone(f) = e {
                writeln!(out, "DONE {} {}", f.path, f.sha256).unwrap();
                out.flush().unwrap();
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    writeln!(out, "FINISHED").unwrap();
}

#[test]
fn kill_mid_import_loses_nothing_reported() {
    let (t, dir, v, _) = new_vault();
    v.create_project("P").unwrap();
    drop(v);
    let src = t.path().join("batch");
    // Small files are committed in groups of IMPORT_GROUP_FILES: this makes two groups back
    // to back (the second one is encrypted, synced and renamed into `blobs/` while the first
    // one commits: pipelining), then a big file (imported on its own), then a third group.
    let g = IMPORT_GROUP_FILES[0];
    let (g2, big) = (60, g + 60);
    let n = big + 1 + 20;
    for i in 0..n {
        let len = if i == big {
            3 * 1024 * 1024
        } else {
            1 + (i * 997) % (8 * 1024)
        };
        write(&src.join(format!("f{i:04}.bin")), &bytes(len, i as u8));
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, &dir)
        .env(ENV_SRC, &src)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut reported = Vec::new();
    let mut line = String::new();
    // Let the first group commit, then kill without warning while the next one is in flight.
    while reported.len() < 4 {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("DONE ") {
            reported.push(rest.to_string());
        }
        assert!(
            !line.starts_with("FINISHED"),
            "child finished before it was killed"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(15));
    child.kill().unwrap();
    child.wait().unwrap();
    // Lines the child managed to write before dying also count as reported.
    for l in reader.lines() {
        let l = l.unwrap();
        if let Some(rest) = l.trim().strip_prefix("DONE ") {
            reported.push(rest.to_string());
        }
    }
    assert!(
        reported.len() >= 4 && reported.len() < n,
        "killed mid-import ({} done)",
        reported.len()
    );

    // Reopen: the lock died with the process, orphans are cleaned, everything reported is intact.
    let v = unlock(&dir);
    assert_eq!(tmp_count(&dir), 0, "temp files removed");
    let items = v.list(&ListFilter::default()).unwrap();
    // A group commits as a whole: what survived is a plan-order prefix ending on a unit
    // boundary (one or two groups, or the big file after them), and it includes every
    // reported file (reported only after its group committed). The pack of a group that was
    // already in `blobs/` but not committed was removed as an orphan: one file per committed
    // unit (a pack per group, a blob for the big file) is left.
    let committed = items.len();
    let units = [g, g + g2, big + 1, n]
        .iter()
        .position(|&c| c == committed)
        .unwrap_or_else(|| panic!("{committed} files committed: not a whole number of groups"));
    assert_eq!(blob_count(&dir), units + 1, "no orphan pack or blob");
    assert!(committed >= reported.len());
    let mut paths: Vec<&str> = items.iter().map(|i| i.path.as_str()).collect();
    paths.sort_unstable();
    let prefix: Vec<String> = (0..committed)
        .map(|i| format!("batch/f{i:04}.bin"))
        .collect();
    assert_eq!(paths, prefix, "committed files are a prefix of the plan");
    for r in &reported {
        let (path, sha) = r.split_once(' ').unwrap();
        let it = items
            .iter()
            .find(|i| i.path == path)
            .unwrap_or_else(|| panic!("reported {path} is missing after the crash"));
        assert_eq!(it.sha256, sha);
    }
    let rep = verify(&v);
    assert!(rep.is_ok(), "{:?}", rep.problems);
    let out = t.path().join("out");
    let first = &items[0];
    let p = v
        .export_item(
            &first.id,
            &out,
            &ExportOptions::default(),
            &mut no_progress(),
            &AtomicBool::new(false),
        )
        .unwrap();
    let name = first.path.rsplit('/').next().unwrap();
    assert_eq!(
        std::fs::read(p).unwrap(),
        std::fs::read(src.join(name)).unwrap()
    );

    // The interrupted import can simply be run again: the rest comes in, nothing duplicated.
    let rep = import(&v, "P", Area::Uploads, &[src]);
    assert!(rep.failed.is_empty());
    assert_eq!(v.list(&ListFilter::default()).unwrap().len(), n);
}
