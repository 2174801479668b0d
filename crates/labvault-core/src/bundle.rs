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
//! checkpoints.json the tenant's signed checkpoints of the audit chains (when the vault syncs)
//! VERIFY.md        how to check it, by hand or with `labvault verify-bundle`
//! files/<area>/<path>   the files, plaintext, under their original names
//! versions/<area>/<path>/v<N>[.ext]   earlier versions: unresolved conflict siblings always,
//!                  every other kept version when asked for
//! ```
//!
//! A `.tar` bundle may be sealed with age (`bundle_seal`); verification opens it on the fly.
//!
//! Verification ([`verify_bundle`]) re-hashes every file against the manifest, the metadata files
//! against `bundle.json`, looks for files the manifest does not name, and re-checks every audit
//! event's chain hash and the links between consecutive events. A bundle only vouches for
//! itself: the export's own audit event in the vault records the SHA-256 of `bundle.json`
//! (`bundle_digest`), which ties a bundle to the tamper-evident log it came from.

use crate::bundle_seal::{read_error, BundleKey, AGE_MAGIC};
use crate::checkpoint::{check_signature, StoredAnchor};
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
/// The tenant's signed checkpoints of the audit chains, as the vault holds them.
pub const CHECKPOINTS_JSON: &str = "checkpoints.json";
/// Every metadata file a bundle may hold, in the order a `.tar` stores them.
pub const METADATA_FILES: &[&str] = &[
    BUNDLE_FILE,
    MANIFEST_JSON,
    MANIFEST_CSV,
    MANIFEST_XLSX,
    AUDIT_JSONL,
    AUDIT_CSV,
    AUDIT_XLSX,
    CHECKPOINTS_JSON,
    VERIFY_MD,
];
/// Where the files are.
pub const FILES_DIR: &str = "files";
/// Where earlier versions are (`versions/<area>/<path>/v<N>[.ext]`).
pub const VERSIONS_DIR: &str = "versions";

/// What a manifest entry is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryRole {
    /// The item's current version, under `files/`.
    #[default]
    Current,
    /// An earlier version, under `versions/`.
    Version,
    /// An unresolved conflict sibling (another device's version), under `versions/`.
    Conflict,
}

impl EntryRole {
    /// As written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Version => "version",
            Self::Conflict => "conflict",
        }
    }
}

/// Where version `version` of the item at `area/path` goes: `versions/<area>/<path>/v<N>` with
/// the file's extension, so it opens in the right program and never collides with a name.
pub fn version_file(area: &str, path: &str, version: u32) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => format!(".{ext}"),
        _ => String::new(),
    };
    format!("{VERSIONS_DIR}/{area}/{path}/v{version}{ext}")
}

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
    /// Current version, earlier version or conflict sibling (bundles without it: current).
    #[serde(default)]
    pub role: EntryRole,
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
    /// `modified`, `missing`, `unexpected`, `audit`, `checkpoint`, `malformed`.
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
    /// The bundle was sealed (age) and opened with the key given.
    pub encrypted: bool,
    /// Tenant-signed checkpoints whose signature was checked.
    pub checkpoints: u64,
    /// Of those, checkpoints of an event in the audit slice whose hash matched it.
    pub checkpoints_matched: u64,
    /// The key that signed the checkpoints (base64): compare it with the tenant's.
    pub tenant_key: Option<String>,
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
    "role",
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
            e.role.as_str().to_string(),
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
         0. A `.tar.age` bundle is sealed with age: `age -d -o bundle.tar bundle.tar.age` (with\n   \
            the passphrase, or `-i` and the identity file) gives the `.tar` this describes.\n\
         1. `bundle.json` lists the SHA-256 of every other metadata file (manifest, audit slice,\n   \
            checkpoints, this file); check them with `sha256sum`.\n\
         2. `manifest.json` (or manifest.csv) lists every file under `files/` (current versions)\n   \
            and `versions/` (earlier versions, conflict siblings) with its size and SHA-256.\n\
         3. Each line of `audit.jsonl` is one audit event. Its `hash` is SHA-256 over the event\n   \
            format version, `prev_hash`, `seq` and the digest of its content (the LabVault audit\n   \
            format, docs/audit-trail.md); consecutive events of one device link by `prev_hash`.\n\
         4. The SHA-256 of `bundle.json` itself is recorded as `bundle_digest` in the export's\n   \
            `data.export` event in the vault's audit log: compare them to tie this bundle to the\n   \
            vault it came from.\n\
         5. `checkpoints.json` holds the audit chain checkpoints the lab's tenant signed (Ed25519,\n   \
            docs/sync-protocol.md); where one names an event of `audit.jsonl`, their hashes\n   \
            must agree.\n"
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

/// What reading a bundle (a directory or a `.tar` stream) collected, before it is judged.
#[derive(Default)]
struct Collected {
    /// The metadata files, whole.
    small: HashMap<String, Vec<u8>>,
    /// Every file under `files/` or `versions/`: its SHA-256 and size, or `None` when it is not
    /// a regular file (a link, a device).
    found: BTreeMap<String, Option<(String, u64)>>,
    /// Anything else the bundle holds.
    stray: Vec<String>,
}

impl Collected {
    fn is_content(name: &str) -> bool {
        name.starts_with(&format!("{FILES_DIR}/")) || name.starts_with(&format!("{VERSIONS_DIR}/"))
    }
}

/// Verifies the bundle at `path` (a directory, a `.tar`, or a `.tar` sealed with age, which
/// `key` opens) offline. `progress(done, total)` is called with bytes hashed. An intact bundle
/// gives an empty `problems` list; a bundle that cannot be read at all (no `bundle.json`, not a
/// bundle, a sealed bundle without its key or with a chunk that does not authenticate) is an
/// error.
pub fn verify_bundle(
    path: &Path,
    key: Option<&BundleKey>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BundleVerification> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io_path("reading the bundle", path, e))?;
    if meta.is_dir() {
        return judge(path, collect_dir(path, progress)?, false);
    }
    // Progress of a `.tar` is the share of the file read (its `bundle.json` comes last).
    let f = File::open(path).map_err(|e| Error::io_path("reading the bundle", path, e))?;
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Counted {
        inner: f,
        read: read.clone(),
    };
    let size = meta.len();
    verify_bundle_stream(counted, path, key, &mut |_| {
        progress(read.load(std::sync::atomic::Ordering::Relaxed), size)
    })
}

/// Verifies a `.tar` bundle, plain or sealed with age (which `key` opens), read once from
/// `input` (a file, a pipe); `what` names it in errors. `progress` is called with the bytes of
/// content hashed so far.
pub fn verify_bundle_stream<R: Read>(
    input: R,
    what: &Path,
    key: Option<&BundleKey>,
    progress: &mut dyn FnMut(u64),
) -> Result<BundleVerification> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let head = input
        .fill_buf()
        .map_err(|e| Error::io_path("reading the bundle", what, e))?;
    if head.starts_with(AGE_MAGIC) {
        let Some(key) = key else {
            return Err(Error::InvalidArgument(format!(
                "{} is an encrypted bundle: give its passphrase or an age identity file",
                what.display()
            )));
        };
        let plain = key.open(input, what)?;
        let c = collect_tar(plain, &|e| read_error(e, what), progress)?;
        return judge(what, c, true);
    }
    let c = collect_tar(input, &|e| Error::io_path("reading", what, e), progress)?;
    judge(what, c, false)
}

/// A reader that counts the bytes it gave.
struct Counted<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// The expected bytes from `bundle.json`, for progress (0 when it cannot be read yet).
fn total_of(info: Option<&Vec<u8>>) -> u64 {
    info.and_then(|b| serde_json::from_slice::<BundleInfo>(b).ok())
        .map(|i| i.bytes)
        .unwrap_or(0)
}

fn collect_dir(d: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Collected> {
    let mut c = Collected::default();
    for w in METADATA_FILES.iter().copied() {
        match std::fs::read(d.join(w)) {
            Ok(b) => {
                c.small.insert(w.to_string(), b);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_path("reading", &d.join(w), e)),
        }
    }
    let total = total_of(c.small.get(BUNDLE_FILE));
    let mut done = 0u64;
    for top in [FILES_DIR, VERSIONS_DIR] {
        let root = d.join(top);
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
                    let f = File::open(&p).map_err(|e| Error::io_path("reading", &p, e))?;
                    let (sha, n) = hash_reader(f).map_err(|e| Error::io_path("reading", &p, e))?;
                    done += n;
                    progress(done, total);
                    c.found.insert(rel, Some((sha, n)));
                } else {
                    c.found.insert(rel, None);
                }
            }
        }
    }
    Ok(c)
}

/// Reads a `.tar` bundle in one pass (so a sealed one is decrypted once), in any member order:
/// metadata files whole, every other file hashed as it streams by.
fn collect_tar<R: Read>(
    input: R,
    io_err: &dyn Fn(io::Error) -> Error,
    progress: &mut dyn FnMut(u64),
) -> Result<Collected> {
    let mut c = Collected::default();
    let mut ar = tar::Archive::new(input);
    let mut done = 0u64;
    for entry in ar.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let name = entry_name(&entry);
        let kind = entry.header().entry_type();
        if METADATA_FILES.contains(&name.as_str()) && kind == tar::EntryType::Regular {
            let mut b = Vec::new();
            entry.read_to_end(&mut b).map_err(io_err)?;
            c.small.insert(name, b);
        } else if Collected::is_content(&name) {
            match kind {
                tar::EntryType::Regular => {
                    let (sha, n) = hash_reader(&mut entry).map_err(io_err)?;
                    done += n;
                    progress(done);
                    c.found.insert(name, Some((sha, n)));
                }
                tar::EntryType::Directory => {}
                _ => {
                    c.found.insert(name, None);
                }
            }
        } else if !matches!(name.as_str(), "" | FILES_DIR | VERSIONS_DIR)
            || kind != tar::EntryType::Directory
        {
            c.stray.push(name);
        }
    }
    Ok(c)
}

/// Compares what was read with what the bundle says of itself.
fn judge(path: &Path, c: Collected, encrypted: bool) -> Result<BundleVerification> {
    let Collected {
        small,
        found,
        stray,
    } = c;
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
        encrypted,
        ..Default::default()
    };
    let problem = |out: &mut BundleVerification, path: &str, kind: &'static str, detail: String| {
        out.problems.push(BundleProblem {
            path: path.to_string(),
            kind,
            detail,
        })
    };
    for name in stray {
        problem(
            &mut out,
            &name,
            "unexpected",
            "a file the bundle does not describe".into(),
        );
    }
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
    for name in small.keys() {
        if name != BUNDLE_FILE && !info.metadata.iter().any(|m| &m.name == name) {
            problem(
                &mut out,
                name,
                "unexpected",
                "a metadata file bundle.json does not list".into(),
            );
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

    // The tenant's checkpoints: each signature, one key, and the hash of every anchored event
    // the slice holds.
    let mut anchored: HashMap<(String, u64), (String, String)> = HashMap::new();
    match small
        .get(CHECKPOINTS_JSON)
        .map(|b| serde_json::from_slice::<Vec<StoredAnchor>>(b))
    {
        None => {}
        Some(Err(e)) => problem(&mut out, CHECKPOINTS_JSON, "malformed", e.to_string()),
        Some(Ok(anchors)) => {
            out.tenant_key = anchors.first().map(|a| a.server_key.clone());
            for a in anchors {
                out.checkpoints += 1;
                if let Err(e) = check_signature(&a) {
                    problem(&mut out, CHECKPOINTS_JSON, "checkpoint", e.to_string());
                    continue;
                }
                if out.tenant_key.as_deref() != Some(a.server_key.as_str()) {
                    problem(
                        &mut out,
                        CHECKPOINTS_JSON,
                        "checkpoint",
                        format!(
                            "the checkpoint of {} at seq {} is signed by another key ({}) than the first",
                            a.chain_id, a.seq, a.server_key
                        ),
                    );
                }
                if a.kind == "device" {
                    anchored.insert((a.chain_id, a.seq), (a.head_hash, a.signed_at));
                }
            }
        }
    }
    if let Some(b) = small.get(AUDIT_JSONL) {
        let mut matched = 0;
        let mut differs = Vec::new();
        let n = check_audit(b, &mut out.problems, &mut |at, ev| {
            if let Some((head, signed_at)) = anchored.get(&(ev.device_id.clone(), ev.seq)) {
                if *head == hex::encode(ev.hash) {
                    matched += 1;
                } else {
                    differs.push(BundleProblem {
                        path: at.to_string(),
                        kind: "audit",
                        detail: format!(
                            "event {} of device {} differs from the one the tenant signed on {signed_at}: \
                             history was rewritten after it was anchored",
                            ev.seq, ev.device_id
                        ),
                    });
                }
            }
        });
        out.checkpoints_matched = matched;
        out.problems.extend(differs);
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

    // The files against the manifest.
    let mut listed: BTreeMap<&str, &BundleEntry> = BTreeMap::new();
    for e in &entries {
        if inside(&e.file).is_none() || !Collected::is_content(&e.file) {
            problem(
                &mut out,
                &e.file,
                "malformed",
                "the manifest names a file outside files/ and versions/".into(),
            );
            continue;
        }
        listed.insert(e.file.as_str(), e);
    }
    for (name, got) in &found {
        let Some(e) = listed.get(name.as_str()) else {
            problem(
                &mut out,
                name,
                "unexpected",
                "a file the manifest does not list".into(),
            );
            continue;
        };
        let Some((sha, n)) = got else {
            problem(
                &mut out,
                name,
                "unexpected",
                "not a regular file (a link or a device)".into(),
            );
            continue;
        };
        out.files_checked += 1;
        out.bytes_checked += n;
        if *sha != e.sha256 || *n != e.size {
            problem(
                &mut out,
                name,
                "modified",
                format!(
                    "{n} bytes with SHA-256 {sha}; the manifest records {} bytes with {}",
                    e.size, e.sha256
                ),
            );
        }
    }
    for name in listed.keys() {
        if !found.contains_key(*name) {
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

fn entry_name<R: Read>(e: &tar::Entry<'_, R>) -> String {
    e.path()
        .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// Re-checks the audit slice: every line an event, every event's hash, and the link between
/// consecutive events of one device (and seq 1's link to its genesis); `visit(at, event)` sees
/// every event read. Returns the events read.
fn check_audit(
    bytes: &[u8],
    problems: &mut Vec<BundleProblem>,
    visit: &mut dyn FnMut(&str, &AuditEvent),
) -> u64 {
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
        visit(&at, &ev);
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
