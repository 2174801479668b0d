//! Instrument folder watches as the vault records them: each watch's settings, and the journal
//! of the source files it imported (the journal row commits in the transaction that commits
//! the item version, so a file is imported exactly once across crashes and restarts). Watching
//! the folder itself happens above the core (`labvault-watch`); this module never reads a
//! watched folder except to delete a source whose import it has verified.

use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::model::{Area, DataType};
use crate::vault::{ms_to_ts, ts_to_ms, Vault};
use labvault_governance::audit::{actions, resources};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Shortest and longest time a file must stay unchanged before it is imported.
pub const SETTLE_MS_RANGE: (u64, u64) = (500, 3_600_000);
/// At most this many include or exclude patterns per watch.
pub const MAX_PATTERNS: usize = 64;

/// What a new watch imports, from where, to where.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    /// Short name shown in lists and written into each import's audit event
    /// (`[A-Za-z0-9._-]`, 1-64 characters).
    pub name: String,
    /// The folder the instrument writes into (absolute).
    pub folder: PathBuf,
    /// Target project (name or id).
    pub project: String,
    /// Target area.
    pub area: Area,
    /// Data type of imported items (default by area).
    pub data_type: Option<DataType>,
    /// Patterns a file must match one of (none = every file); see [`pattern_matches`].
    pub include: Vec<String>,
    /// Patterns that exclude a file even if included.
    pub exclude: Vec<String>,
    /// Delete the source after its import was verified (the stored version re-read and
    /// compared with the source as it is then).
    pub delete_source: bool,
    /// How long size and modification time must stay the same before a file is complete.
    pub settle_ms: u64,
}

/// A watch as stored.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchInfo {
    /// Stable id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The watched folder.
    pub folder: PathBuf,
    /// Target project id and name.
    pub project_id: String,
    /// Target project name.
    pub project_name: String,
    /// Target area.
    pub area: Area,
    /// Data type of imported items.
    pub data_type: DataType,
    /// Include patterns (empty = every file).
    pub include: Vec<String>,
    /// Exclude patterns.
    pub exclude: Vec<String>,
    /// Whether sources are deleted after a verified import.
    pub delete_source: bool,
    /// Settle time in milliseconds.
    pub settle_ms: u64,
    /// Paused watches import nothing.
    pub paused: bool,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Files it imported so far.
    pub imported: u64,
    /// When it last imported a file.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_import_at: Option<OffsetDateTime>,
}

impl WatchInfo {
    /// Whether the file at `rel` (a `/`-separated path under the folder) is one to import.
    pub fn wants(&self, rel: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| pattern_matches(p, rel)))
            && !self.exclude.iter().any(|p| pattern_matches(p, rel))
    }
}

/// A source file's identity for the journal: the same path with the same size and
/// modification time is the same file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
        }
    }
}

/// One file a watch imported.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Path under the watched folder.
    pub source: String,
    /// The source as it was imported.
    pub stamp: Stamp,
    /// The item and version it became.
    pub item_id: String,
    /// Version created.
    pub version: u32,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub imported_at: OffsetDateTime,
    /// When the source was deleted after verification, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub source_deleted_at: Option<OffsetDateTime>,
}

/// Tells an import that it runs for a watch: each file's journal row commits with its item
/// version, and its audit event names the watch.
#[derive(Clone, Debug)]
pub struct WatchOrigin {
    /// The watch.
    pub watch_id: String,
    /// Its name (in audit details).
    pub watch_name: String,
    /// The watched folder (journal paths are relative to it).
    pub folder: PathBuf,
    /// The stamp each source had when it was found complete. The import reads the file
    /// after that; a file that changed meanwhile fails on its own (`source_vanished`) or is
    /// journaled with the stamp it was planned with, and its next change imports again.
    pub stamps: HashMap<PathBuf, Stamp>,
}

impl WatchOrigin {
    /// Appends ` watch=<name>` to an import event's detail.
    pub(crate) fn detail(origin: Option<&WatchOrigin>, detail: String) -> String {
        match origin {
            Some(o) => format!("{detail} watch={}", o.watch_name),
            None => detail,
        }
    }

    /// Records that `source` became `item_id` v`version`, in the import's transaction.
    pub(crate) fn journal(
        origin: Option<&WatchOrigin>,
        tx: &Transaction<'_>,
        source: &Path,
        item_id: &str,
        version: u32,
        now_ms: i64,
    ) -> Result<()> {
        let Some(o) = origin else { return Ok(()) };
        let Some(stamp) = o.stamps.get(source) else {
            return Err(Error::Internal(format!(
                "watch import of {} without its stamp",
                source.display()
            )));
        };
        let rel = relative(&o.folder, source)?;
        tx.execute(
            "INSERT OR REPLACE INTO watch_journal
               (watch_id, source, size, mtime_ns, item_id, version, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                o.watch_id,
                rel,
                stamp.size as i64,
                stamp.mtime_ns,
                item_id,
                version,
                now_ms
            ],
        )?;
        Ok(())
    }
}

/// `source` relative to `folder`, `/`-separated (UTF-8: the vault refuses other names anyway).
pub fn relative(folder: &Path, source: &Path) -> Result<String> {
    let rel = source.strip_prefix(folder).map_err(|_| {
        Error::InvalidArgument(format!(
            "{} is not under the watched folder {}",
            source.display(),
            folder.display()
        ))
    })?;
    let parts: Option<Vec<&str>> = rel.iter().map(|c| c.to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .ok_or_else(|| Error::InvalidName {
            name: rel.to_string_lossy().into_owned(),
            reason: "not valid UTF-8".into(),
        })
}

/// Whether glob `pattern` matches `rel` (a `/`-separated path). A pattern without `/` matches
/// the file name in any folder (`*.raw`); one with `/` matches the whole path (`run-*/*.csv`).
/// `*` matches within one name, `**` across folders, `?` one character; matching is
/// case-sensitive, as file names on Linux are.
pub fn pattern_matches(pattern: &str, rel: &str) -> bool {
    let subject = if pattern.contains('/') {
        rel
    } else {
        rel.rsplit('/').next().unwrap_or(rel)
    };
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = subject.chars().collect();
    glob(&p, &s)
}

fn glob(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            // `**/` also matches no folder at all.
            let rest = &p[2..];
            let rest_no_slash = rest.strip_prefix(&['/']).unwrap_or(rest);
            (0..=s.len()).any(|i| glob(rest, &s[i..]))
                || (rest_no_slash.len() != rest.len() && glob(rest_no_slash, s))
        }
        Some('*') => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != '/')
            .any(|i| glob(&p[1..], &s[i..])),
        Some('?') => s.first().is_some_and(|&c| c != '/') && glob(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason: "a watch name is 1-64 letters, digits, '.', '_' or '-'".into(),
        })
    }
}

fn check_patterns(what: &str, patterns: &[String]) -> Result<()> {
    if patterns.len() > MAX_PATTERNS {
        return Err(Error::InvalidArgument(format!(
            "at most {MAX_PATTERNS} {what} patterns"
        )));
    }
    for p in patterns {
        if p.trim().is_empty() || p.len() > 256 || p.contains(['\0', '\n']) || p.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "{what} pattern {p:?} is not a relative glob of 1-256 characters"
            )));
        }
    }
    Ok(())
}

fn check_folder(vault_dir: &Path, folder: &Path) -> Result<PathBuf> {
    if !folder.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "the watched folder {} is not an absolute path",
            folder.display()
        )));
    }
    let real = std::fs::canonicalize(folder)
        .map_err(|e| Error::io_path("opening the folder to watch", folder, e))?;
    if !real.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a folder",
            folder.display()
        )));
    }
    let vault = std::fs::canonicalize(vault_dir).unwrap_or_else(|_| vault_dir.to_path_buf());
    if real.starts_with(&vault) || vault.starts_with(&real) {
        return Err(Error::InvalidArgument(format!(
            "{} overlaps the vault at {}: a watch would import the vault's own files",
            folder.display(),
            vault.display()
        )));
    }
    Ok(real)
}

const WATCH_SELECT: &str = "SELECT w.id, w.name, w.folder, w.project_id, p.name, w.area,
        w.data_type, w.include, w.exclude, w.delete_source, w.settle_ms, w.paused, w.created_at,
        (SELECT count(*) FROM watch_journal j WHERE j.watch_id = w.id),
        (SELECT max(imported_at) FROM watch_journal j WHERE j.watch_id = w.id)
     FROM watches w JOIN projects p ON p.id = w.project_id";

fn lines(s: String) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

fn watch_from_row(r: &Row<'_>) -> rusqlite::Result<WatchInfo> {
    let parse = |i: usize, e: Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let area: String = r.get(5)?;
    let data_type: String = r.get(6)?;
    Ok(WatchInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        folder: PathBuf::from(r.get::<_, String>(2)?),
        project_id: r.get(3)?,
        project_name: r.get(4)?,
        area: area.parse().map_err(|e| parse(5, e))?,
        data_type: data_type.parse().map_err(|e| parse(6, e))?,
        include: lines(r.get(7)?),
        exclude: lines(r.get(8)?),
        delete_source: r.get(9)?,
        settle_ms: r.get::<_, i64>(10)? as u64,
        paused: r.get(11)?,
        created_at: ms_to_ts(r.get(12)?),
        imported: r.get::<_, i64>(13)? as u64,
        last_import_at: r.get::<_, Option<i64>>(14)?.map(ms_to_ts),
    })
}

fn find(conn: &Connection, name_or_id: &str) -> Result<WatchInfo> {
    conn.query_row(
        &format!("{WATCH_SELECT} WHERE w.id = ?1 OR w.name = ?1"),
        [name_or_id],
        watch_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("watch {name_or_id:?}")))
}

/// The SHA-256 (hex) of a file read to its end, and how many bytes that was.
fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

impl Vault {
    /// Adds a watch (`watch.add`). The folder must exist, be a folder and not overlap the vault.
    pub fn watch_add(&self, spec: &WatchSpec) -> Result<WatchInfo> {
        check_name(&spec.name)?;
        check_patterns("include", &spec.include)?;
        check_patterns("exclude", &spec.exclude)?;
        let (lo, hi) = SETTLE_MS_RANGE;
        if !(lo..=hi).contains(&spec.settle_ms) {
            return Err(Error::InvalidArgument(format!(
                "settle time {} ms is outside {lo}..{hi} ms",
                spec.settle_ms
            )));
        }
        let folder = check_folder(&self.dir, &spec.folder)?;
        let folder_text = folder.to_str().ok_or_else(|| Error::InvalidName {
            name: folder.to_string_lossy().into_owned(),
            reason: "the folder's path is not valid UTF-8".into(),
        })?;
        let project = self.project(&spec.project)?;
        let id = uuid::Uuid::new_v4().to_string();
        let data_type = spec.data_type.unwrap_or(spec.area.default_data_type());
        let now = ts_to_ms(self.now());
        let actor = self.actor.clone();
        self.write_op(
            actions::WATCH_ADD,
            || resources::watch(&id),
            |w| {
                w.commit(actions::WATCH_ADD, |tx| {
                    let taken: bool = tx.query_row(
                        "SELECT EXISTS (SELECT 1 FROM watches WHERE name = ?1)",
                        [&spec.name],
                        |r| r.get(0),
                    )?;
                    if taken {
                        return Err(Error::AlreadyExists(format!("watch {:?}", spec.name)));
                    }
                    tx.execute(
                        "INSERT INTO watches (id, name, folder, project_id, area, data_type,
                           include, exclude, delete_source, settle_ms, created_at, created_by)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                        params![
                            id,
                            spec.name,
                            folder_text,
                            project.id,
                            spec.area.as_str(),
                            data_type.as_str(),
                            spec.include.join("\n"),
                            spec.exclude.join("\n"),
                            spec.delete_source,
                            spec.settle_ms as i64,
                            now,
                            actor
                        ],
                    )?;
                    let detail = format!(
                        "name={} project={} area={} delete_source={}",
                        spec.name, project.id, spec.area, spec.delete_source
                    );
                    Ok(((), Subject::new(resources::watch(&id), detail)))
                })
            },
        )?;
        self.watch(&id)
    }

    /// Every watch, by name.
    pub fn watches(&self) -> Result<Vec<WatchInfo>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(&format!("{WATCH_SELECT} ORDER BY w.name"))?;
        let rows = st.query_map([], watch_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One watch by name or id.
    pub fn watch(&self, name_or_id: &str) -> Result<WatchInfo> {
        find(&*self.reader()?, name_or_id)
    }

    /// Removes a watch and its journal (`watch.remove`); what it imported stays in the vault.
    pub fn watch_remove(&self, name_or_id: &str) -> Result<()> {
        let watch = self.watch(name_or_id)?;
        self.write_op(
            actions::WATCH_REMOVE,
            || resources::watch(&watch.id),
            |w| {
                w.commit(actions::WATCH_REMOVE, |tx| {
                    tx.execute("DELETE FROM watch_journal WHERE watch_id = ?1", [&watch.id])?;
                    tx.execute("DELETE FROM watches WHERE id = ?1", [&watch.id])?;
                    let detail = format!("name={} imported={}", watch.name, watch.imported);
                    Ok(((), Subject::new(resources::watch(&watch.id), detail)))
                })
            },
        )
    }

    /// Pauses or resumes a watch (`watch.pause`).
    pub fn watch_set_paused(&self, name_or_id: &str, paused: bool) -> Result<WatchInfo> {
        let watch = self.watch(name_or_id)?;
        self.write_op(
            actions::WATCH_PAUSE,
            || resources::watch(&watch.id),
            |w| {
                w.commit(actions::WATCH_PAUSE, |tx| {
                    tx.execute(
                        "UPDATE watches SET paused = ?2 WHERE id = ?1",
                        params![watch.id, paused],
                    )?;
                    let detail = format!("name={} paused={paused}", watch.name);
                    Ok(((), Subject::new(resources::watch(&watch.id), detail)))
                })
            },
        )?;
        self.watch(&watch.id)
    }

    /// Every source file `watch_id` imported, keyed by path and stamp.
    pub fn watch_journal(&self, watch_id: &str) -> Result<HashMap<(String, Stamp), JournalEntry>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT source, size, mtime_ns, item_id, version, imported_at, source_deleted_at
             FROM watch_journal WHERE watch_id = ?1",
        )?;
        let rows = st.query_map([watch_id], journal_from_row)?;
        let mut out = HashMap::new();
        for r in rows {
            let e = r?;
            out.insert((e.source.clone(), e.stamp), e);
        }
        Ok(out)
    }

    /// The newest `limit` files `watch_id` imported, newest first.
    pub fn watch_recent(&self, watch_id: &str, limit: usize) -> Result<Vec<JournalEntry>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT source, size, mtime_ns, item_id, version, imported_at, source_deleted_at
             FROM watch_journal WHERE watch_id = ?1 ORDER BY imported_at DESC, source LIMIT ?2",
        )?;
        let rows = st.query_map(params![watch_id, limit as i64], journal_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes the source of a journaled import after verifying it (`watch.delete_source`):
    /// the file still has the stamp it was imported with, its bytes hash to the stored
    /// version's SHA-256, and the stored version decrypts to that same hash. Anything else
    /// keeps the file and says why (`source_vanished` when it changed or went away, `tampered`
    /// when the stored copy does not match).
    pub fn watch_delete_source(&self, watch: &WatchInfo, entry: &JournalEntry) -> Result<()> {
        let path = watch.folder.join(&entry.source);
        let changed = |detail: String| Error::SourceVanished {
            path: path.display().to_string(),
            detail,
        };
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| changed(format!("it cannot be read to verify its import: {e}")))?;
        if !meta.is_file() || Stamp::of(&meta) != entry.stamp {
            return Err(changed("it changed after its import; it is kept".into()));
        }
        let stored_sha: String = self.reader()?.query_row(
            "SELECT sha256 FROM item_versions WHERE item_id = ?1 AND version = ?2",
            params![entry.item_id, entry.version],
            |r| r.get(0),
        )?;
        let (source_sha, n) = sha256_file(&path)
            .map_err(|e| changed(format!("it cannot be read to verify its import: {e}")))?;
        if source_sha != stored_sha || n != entry.stamp.size {
            return Err(changed(
                "its content differs from the imported version; it is kept".into(),
            ));
        }
        let view = self.view_handle(&entry.item_id, Some(entry.version))?;
        let mut h = Sha256::new();
        let mut off = 0;
        while off < view.size() {
            let chunk = self.view_read(&view, off, 8 << 20)?;
            if chunk.is_empty() {
                break;
            }
            off += chunk.len() as u64;
            h.update(&chunk);
        }
        if hex::encode(h.finalize()) != stored_sha {
            return Err(Error::Tampered {
                what: entry.source.clone(),
                detail: "the stored copy does not match its recorded SHA-256; the source is kept"
                    .into(),
            });
        }
        let resource = crate::items::resource_of(self, &entry.item_id);
        let now = ts_to_ms(self.now());
        self.write_op(
            actions::WATCH_DELETE_SOURCE,
            || resource.clone(),
            |w| {
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io_path("deleting the imported source", &path, e))?;
                if let Some(parent) = path.parent() {
                    let _ = crate::fsutil::fsync_dir(parent);
                }
                w.commit(actions::WATCH_DELETE_SOURCE, |tx| {
                    tx.execute(
                        "UPDATE watch_journal SET source_deleted_at = ?5
                         WHERE watch_id = ?1 AND source = ?2 AND size = ?3 AND mtime_ns = ?4",
                        params![
                            watch.id,
                            entry.source,
                            entry.stamp.size as i64,
                            entry.stamp.mtime_ns,
                            now
                        ],
                    )?;
                    let detail = format!("version={} watch={}", entry.version, watch.name);
                    Ok(((), Subject::new(resource.clone(), detail)))
                })
            },
        )
    }
}

fn journal_from_row(r: &Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        source: r.get(0)?,
        stamp: Stamp {
            size: r.get::<_, i64>(1)? as u64,
            mtime_ns: r.get(2)?,
        },
        item_id: r.get(3)?,
        version: r.get(4)?,
        imported_at: ms_to_ts(r.get(5)?),
        source_deleted_at: r.get::<_, Option<i64>>(6)?.map(ms_to_ts),
    })
}

#[cfg(test)]
mod tests {
    use super::pattern_matches as m;

    #[test]
    fn patterns_match_names_and_paths() {
        assert!(m("*.raw", "a.raw"));
        assert!(m("*.raw", "run-1/deep/a.raw"));
        assert!(!m("*.raw", "a.raw.tmp"));
        assert!(!m("*.RAW", "a.raw"));
        assert!(m("run-?/*.csv", "run-1/x.csv"));
        assert!(!m("run-?/*.csv", "run-1/sub/x.csv"));
        assert!(m("run-*/**/*.csv", "run-1/sub/deeper/x.csv"));
        assert!(m("run-*/**/*.csv", "run-1/x.csv"));
        assert!(m("**/*.csv", "x.csv"));
        assert!(m(".*", ".hidden"));
        assert!(!m(".*", "visible"));
        assert!(m("~$*", "~$lock.docx"));
        assert!(!m("*", "a/b") || m("*", "b"));
        assert!(!m("a*", "b"));
        assert!(m("", "") && !m("", "x"));
    }
}
