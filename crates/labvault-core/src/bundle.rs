//! The project bundle: what a full project export writes, and its offline verification.
//!
//! A bundle is a directory (or the same tree in one `.tar`) that describes itself, so a lab that
//! leaves, archives a project or faces an audit can check it years later without LabVault's
//! vault or keys:
//!
//! ```text
//! bundle.json      format, project, when and by whom, counts, and the SHA-256 of every other
//!                  metadata file (manifest.json, manifest.csv, audit.jsonl, audit.csv, VERIFY.md)
//! manifest.json    one entry per file: id, area, path, size, SHA-256, media and data type,
//!                  created by/at, version, retention period and expiry, legal hold
//! manifest.csv     the same rows as CSV, and manifest.xlsx as a spreadsheet
//! audit.jsonl      the project's audit events, each with its chain position and hashes
//! audit.csv        the same events as CSV, and audit.xlsx as a spreadsheet
//! VERIFY.md        how to check it, by hand or with `labvault verify-bundle`
//! files/<area>/<path>   the files, plaintext, under their original names
//! ```
//!
//! Verification ([`verify_bundle`]) re-hashes every file against the manifest, the metadata files
//! against `bundle.json`, looks for files the manifest does not name, and re-checks every audit
//! event's chain hash and the links between consecutive events. A bundle only vouches for
//! itself: the export's own audit event in the vault records the SHA-256 of `bundle.json`
//! (`bundle_digest`), which ties a bundle to the tamper-evident log it came from.

use crate::error::{Error, Result};
use labvault_governance::audit::{genesis_hash, AuditEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// The format name and version in `bundle.json`.
pub const BUNDLE_FORMAT: &str = "labvault-bundle/1";
/// The self-description file.
pub const BUNDLE_FILE: &str = "bundle.json";
/// The item manifest (JSON).
pub const MANIFEST_JSON: &str = "manifest.json";
/// The item manifest (CSV).
pub const MANIFEST_CSV: &str = "manifest.csv";
/// The project's audit events (JSON Lines).
pub const AUDIT_JSONL: &str = "audit.jsonl";
/// The project's audit events (CSV).
pub const AUDIT_CSV: &str = "audit.csv";
/// The item manifest (spreadsheet).
pub const MANIFEST_XLSX: &str = "manifest.xlsx";
/// The project's audit events (spreadsheet; left out past [`AUDIT_XLSX_MAX_EVENTS`]).
pub const AUDIT_XLSX: &str = "audit.xlsx";
/// Audit slices longer than this get no spreadsheet (the workbook is built in memory): the
/// CSV and JSON Lines hold them.
pub const AUDIT_XLSX_MAX_EVENTS: u64 = 250_000;
/// How to verify.
pub const VERIFY_MD: &str = "VERIFY.md";
/// Every metadata file a bundle may hold, in the order a `.tar` stores them.
pub const METADATA_FILES: &[&str] = &[
    BUNDLE_FILE,
    MANIFEST_JSON,
    MANIFEST_CSV,
    MANIFEST_XLSX,
    AUDIT_JSONL,
    AUDIT_CSV,
    AUDIT_XLSX,
    VERIFY_MD,
];
/// Where the files are.
pub const FILES_DIR: &str = "files";

/// One file of the bundle, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEntry {
    /// Item id in the vault.
    pub id: String,
    /// Area.
    pub area: String,
    /// Logical path in the area.
    pub path: String,
    /// Where the file is in the bundle (`files/<area>/<path>`).
    pub file: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Media type.
    pub media_type: String,
    /// Data type (drives retention).
    pub data_type: String,
    /// Who created the item.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// When this version was written (RFC 3339).
    pub updated_at: String,
    /// Version number.
    pub version: u32,
    /// Retention period (e.g. `7y`).
    pub retention_period: String,
    /// End of retention (RFC 3339).
    pub retention_expires_at: String,
    /// Under a legal hold when exported.
    pub on_hold: bool,
}

/// A metadata file and its digest, as `bundle.json` records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFileDigest {
    /// Name in the bundle.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// The audit slice's summary in `bundle.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleAudit {
    /// Events in `audit.jsonl`.
    pub events: u64,
    /// The vault's chain head when exported (device id, seq, hash): the slice ends at or before it.
    pub chain_head: Option<String>,
}

/// `bundle.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// When exported (RFC 3339).
    pub exported_at: String,
    /// Who exported it.
    pub exported_by: String,
    /// The program that wrote it.
    pub exported_with: String,
    /// Files under `files/`.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The audit slice.
    pub audit: BundleAudit,
    /// The other metadata files with their digests.
    pub metadata: Vec<BundleFileDigest>,
    /// What a reader should know (e.g. a spreadsheet left out), in plain words.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// What [`verify_bundle`] found wrong with one file or event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BundleProblem {
    /// The file (or `audit.jsonl:<line>`).
    pub path: String,
    /// `modified`, `missing`, `unexpected`, `audit`, `malformed`.
    pub kind: &'static str,
    /// What exactly.
    pub detail: String,
}

/// The result of [`verify_bundle`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct BundleVerification {
    /// The project.
    pub project: String,
    /// When it was exported.
    pub exported_at: String,
    /// Files re-hashed (manifest entries found).
    pub files_checked: u64,
    /// Their bytes.
    pub bytes_checked: u64,
    /// Audit events whose chain hash was recomputed.
    pub audit_events: u64,
    /// SHA-256 of `bundle.json`: compare it with `bundle_digest` in the export's audit event.
    pub bundle_digest: String,
    /// Everything wrong; empty for an intact bundle.
    pub problems: Vec<BundleProblem>,
}

impl BundleVerification {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The columns of `manifest.csv`, in order.
pub const MANIFEST_CSV_HEADER: &[&str] = &[
    "id",
    "area",
    "path",
    "file",
    "size",
    "sha256",
    "media_type",
    "data_type",
    "created_by",
    "created_at",
    "updated_at",
    "version",
    "retention_period",
    "retention_expires_at",
    "on_hold",
];

/// One CSV field, quoted when it needs to be; a leading `= + - @` is prefixed with `'` so a
/// spreadsheet never runs a name as a formula.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `manifest.csv` for `entries` (CRLF line ends, as RFC 4180 says).
pub fn manifest_csv(entries: &[BundleEntry]) -> String {
    let mut out = MANIFEST_CSV_HEADER.join(",");
    out.push_str("\r\n");
    for e in entries {
        let row = [
            e.id.clone(),
            e.area.clone(),
            e.path.clone(),
            e.file.clone(),
            e.size.to_string(),
            e.sha256.clone(),
            e.media_type.clone(),
            e.data_type.clone(),
            e.created_by.clone(),
            e.created_at.clone(),
            e.updated_at.clone(),
            e.version.to_string(),
            e.retention_period.clone(),
            e.retention_expires_at.clone(),
            e.on_hold.to_string(),
        ];
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// `VERIFY.md` for a bundle of `project`.
pub fn verify_md(project: &str) -> String {
    format!(
        "# Verifying this LabVault bundle of project {project}\n\n\
         With LabVault installed: `labvault verify-bundle <this directory or .tar>`. It needs no\n\
         vault and no key, and reports every file that was changed, removed or added, and every\n\
         audit event whose hash or link does not hold.\n\n\
         By hand:\n\n\
         1. `bundle.json` lists the SHA-256 of manifest.json, manifest.csv, audit.jsonl, audit.csv\n   \
            and this file; check them with `sha256sum`.\n\
         2. `manifest.json` (or manifest.csv) lists every file under `files/` with its size and\n   \
            SHA-256; `cd files && sha256sum -c` on those two columns checks them all.\n\
         3. Each line of `audit.jsonl` is one audit event. Its `hash` is SHA-256 over the event\n   \
            format version, `prev_hash`, `seq` and the digest of its content (the LabVault audit\n   \
            format, docs/audit-trail.md); consecutive events of one device link by `prev_hash`.\n\
         4. The SHA-256 of `bundle.json` itself is recorded as `bundle_digest` in the export's\n   \
            `data.export` event in the vault's audit log: compare them to tie this bundle to the\n   \
            vault it came from.\n"
    )
}

/// SHA-256 and length of everything `r` yields.
pub(crate) fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// A bundle path from its manifest, refused unless it stays inside the bundle (a hostile
/// manifest must not make the verifier read `/etc/shadow` or `../../x`).
fn inside(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    let ok = !name.is_empty()
        && name.split('/').all(|c| !matches!(c, "" | "." | ".."))
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !name.contains('\\');
    ok.then(|| p.to_path_buf())
}

/// Where a verification reads the bundle from.
enum Source {
    Dir(PathBuf),
    Tar(PathBuf),
}

/// Verifies the bundle at `path` (a directory or a `.tar`) offline. `progress(done, total)` is
/// called with bytes hashed. An intact bundle gives an empty `problems` list; a bundle that
/// cannot be read at all (no `bundle.json`, not a bundle) is an error.
pub fn verify_bundle(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BundleVerification> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io_path("reading the bundle", path, e))?;
    let src = if meta.is_dir() {
        Source::Dir(path.to_path_buf())
    } else {
        Source::Tar(path.to_path_buf())
    };
    // Pass 1: the metadata files (small), read whole.
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let wanted = METADATA_FILES;
    match &src {
        Source::Dir(d) => {
            for w in wanted.iter().copied() {
                match std::fs::read(d.join(w)) {
                    Ok(b) => {
                        small.insert(w.to_string(), b);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io_path("reading", &d.join(w), e)),
                }
            }
        }
        Source::Tar(t) => {
            let mut ar = open_tar(t)?;
            for entry in ar.entries().map_err(|e| Error::io_path("reading", t, e))? {
                let mut entry = entry.map_err(|e| Error::io_path("reading", t, e))?;
                let name = entry_name(&entry);
                if wanted.contains(&name.as_str()) {
                    let mut b = Vec::new();
                    entry
                        .read_to_end(&mut b)
                        .map_err(|e| Error::io_path("reading", t, e))?;
                    small.insert(name, b);
                }
            }
        }
    }
    let Some(info_bytes) = small.get(BUNDLE_FILE) else {
        return Err(Error::InvalidArgument(format!(
            "{} is not a LabVault bundle: it has no {BUNDLE_FILE}",
            path.display()
        )));
    };
    let info: BundleInfo = serde_json::from_slice(info_bytes).map_err(|e| {
        Error::InvalidArgument(format!(
            "{BUNDLE_FILE} of {} is malformed: {e}",
            path.display()
        ))
    })?;
    if info.format != BUNDLE_FORMAT {
        return Err(Error::InvalidArgument(format!(
            "{} is a bundle of format {:?}; this LabVault reads {BUNDLE_FORMAT}",
            path.display(),
            info.format
        )));
    }
    let mut out = BundleVerification {
        project: info.project.clone(),
        exported_at: info.exported_at.clone(),
        bundle_digest: hex::encode(Sha256::digest(info_bytes)),
        ..Default::default()
    };
    let problem = |out: &mut BundleVerification, path: &str, kind: &'static str, detail: String| {
        out.problems.push(BundleProblem {
            path: path.to_string(),
            kind,
            detail,
        })
    };
    for m in &info.metadata {
        match small.get(&m.name) {
            None => problem(
                &mut out,
                &m.name,
                "missing",
                "listed in bundle.json, not in the bundle".into(),
            ),
            Some(b) => {
                let sha = hex::encode(Sha256::digest(b));
                if sha != m.sha256 || b.len() as u64 != m.size {
                    problem(
                        &mut out,
                        &m.name,
                        "modified",
                        format!("SHA-256 {sha}, bundle.json records {}", m.sha256),
                    );
                }
            }
        }
    }
    let entries: Vec<BundleEntry> =
        match small.get(MANIFEST_JSON).map(|b| serde_json::from_slice(b)) {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                problem(&mut out, MANIFEST_JSON, "malformed", e.to_string());
                Vec::new()
            }
            None => Vec::new(),
        };
    if let Some(b) = small.get(AUDIT_JSONL) {
        let n = check_audit(b, &mut out.problems);
        out.audit_events = n;
        if n != info.audit.events {
            problem(
                &mut out,
                AUDIT_JSONL,
                "audit",
                format!("{n} events, bundle.json records {}", info.audit.events),
            );
        }
    }

    // Pass 2: the files, streamed and hashed.
    let mut by_file: BTreeMap<String, &BundleEntry> = BTreeMap::new();
    for e in &entries {
        if inside(&e.file).is_none() || !e.file.starts_with(&format!("{FILES_DIR}/")) {
            problem(
                &mut out,
                &e.file,
                "malformed",
                "the manifest names a file outside files/".into(),
            );
            continue;
        }
        by_file.insert(e.file.clone(), e);
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    let mut done = 0u64;
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut check = |out: &mut BundleVerification, name: &str, r: &mut dyn Read| -> Result<()> {
        let Some(e) = by_file.get(name) else {
            problem(
                out,
                name,
                "unexpected",
                "a file the manifest does not list".into(),
            );
            return Ok(());
        };
        let (sha, n) = hash_reader(r).map_err(|er| Error::io(format!("reading {name}"), er))?;
        seen.insert(name.to_string(), ());
        out.files_checked += 1;
        out.bytes_checked += n;
        done += e.size;
        progress(done, total);
        if sha != e.sha256 || n != e.size {
            problem(
                out,
                name,
                "modified",
                format!(
                    "{n} bytes with SHA-256 {sha}; the manifest records {} bytes with {}",
                    e.size, e.sha256
                ),
            );
        }
        Ok(())
    };
    match &src {
        Source::Dir(d) => {
            let root = d.join(FILES_DIR);
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound && dir == root => break,
                    Err(e) => return Err(Error::io_path("reading", &dir, e)),
                };
                for ent in rd {
                    let ent = ent.map_err(|e| Error::io_path("reading", &dir, e))?;
                    let p = ent.path();
                    let ft = ent
                        .file_type()
                        .map_err(|e| Error::io_path("reading", &p, e))?;
                    let rel = p
                        .strip_prefix(d)
                        .map(|r| r.to_string_lossy().replace('\\', "/"))
                        .unwrap_or_default();
                    if ft.is_dir() {
                        stack.push(p);
                    } else if ft.is_file() {
                        let mut f = File::open(&p).map_err(|e| Error::io_path("reading", &p, e))?;
                        check(&mut out, &rel, &mut f)?;
                    } else {
                        problem(
                            &mut out,
                            &rel,
                            "unexpected",
                            "not a regular file (a link or a device)".into(),
                        );
                    }
                }
            }
        }
        Source::Tar(t) => {
            let mut ar = open_tar(t)?;
            for entry in ar.entries().map_err(|e| Error::io_path("reading", t, e))? {
                let mut entry = entry.map_err(|e| Error::io_path("reading", t, e))?;
                let name = entry_name(&entry);
                if !name.starts_with(&format!("{FILES_DIR}/")) {
                    if !wanted.contains(&name.as_str()) && name != FILES_DIR && !name.is_empty() {
                        problem(
                            &mut out,
                            &name,
                            "unexpected",
                            "a file the bundle does not describe".into(),
                        );
                    }
                    continue;
                }
                match entry.header().entry_type() {
                    tar::EntryType::Regular => check(&mut out, &name, &mut entry)?,
                    tar::EntryType::Directory => {}
                    _ => problem(
                        &mut out,
                        &name,
                        "unexpected",
                        "not a regular file (a link or a device)".into(),
                    ),
                }
            }
        }
    }
    for name in by_file.keys() {
        if !seen.contains_key(name) {
            problem(
                &mut out,
                name,
                "missing",
                "listed in the manifest, not in the bundle".into(),
            );
        }
    }
    if entries.len() as u64 != info.files {
        problem(
            &mut out,
            MANIFEST_JSON,
            "modified",
            format!(
                "{} entries, bundle.json records {}",
                entries.len(),
                info.files
            ),
        );
    }
    Ok(out)
}

fn open_tar(t: &Path) -> Result<tar::Archive<BufReader<File>>> {
    let f = File::open(t).map_err(|e| Error::io_path("reading the bundle", t, e))?;
    Ok(tar::Archive::new(BufReader::with_capacity(1 << 20, f)))
}

fn entry_name<R: Read>(e: &tar::Entry<'_, R>) -> String {
    e.path()
        .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// Re-checks the audit slice: every line an event, every event's hash, and the link between
/// consecutive events of one device (and seq 1's link to its genesis). Returns the events read.
fn check_audit(bytes: &[u8], problems: &mut Vec<BundleProblem>) -> u64 {
    let mut last: HashMap<String, (u64, [u8; 32])> = HashMap::new();
    let mut n = 0;
    for (i, line) in bytes.lines().enumerate() {
        let at = format!("{AUDIT_JSONL}:{}", i + 1);
        let line = match line {
            Ok(l) if l.trim().is_empty() => continue,
            Ok(l) => l,
            Err(e) => {
                problems.push(BundleProblem {
                    path: at,
                    kind: "malformed",
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let ev: AuditEvent = match serde_json::from_str(&line) {
            Ok(ev) => ev,
            Err(e) => {
                problems.push(BundleProblem {
                    path: at,
                    kind: "malformed",
                    detail: e.to_string(),
                });
                continue;
            }
        };
        n += 1;
        if !ev.is_hash_valid() {
            problems.push(BundleProblem {
                path: at.clone(),
                kind: "audit",
                detail: format!(
                    "event {} of device {} ({}) does not match its hash: it was edited",
                    ev.seq,
                    ev.device_id,
                    ev.action.as_str()
                ),
            });
        }
        let linked = match last.get(&ev.device_id) {
            Some((seq, hash)) if *seq + 1 == ev.seq => Some(*hash == ev.prev_hash),
            Some((seq, _)) if *seq >= ev.seq => {
                problems.push(BundleProblem {
                    path: at.clone(),
                    kind: "audit",
                    detail: format!(
                        "event {} of device {} is out of chain order",
                        ev.seq, ev.device_id
                    ),
                });
                None
            }
            // Events of other projects lie between: nothing to link.
            Some(_) => None,
            None if ev.seq == 1 => Some(genesis_hash(&ev.device_id) == ev.prev_hash),
            None => None,
        };
        if linked == Some(false) {
            problems.push(BundleProblem {
                path: at,
                kind: "audit",
                detail: format!(
                    "event {} of device {} does not link to the event before it",
                    ev.seq, ev.device_id
                ),
            });
        }
        last.insert(ev.device_id.clone(), (ev.seq, ev.hash));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_field("-1"), "'-1");
    }

    #[test]
    fn manifest_paths_must_stay_inside_the_bundle() {
        assert!(inside("files/uploads/a.csv").is_some());
        for bad in [
            "",
            "/etc/shadow",
            "files/../../x",
            "files/./a",
            "files\\..\\x",
        ] {
            assert!(inside(bad).is_none(), "{bad}");
        }
    }
}
