//! What an op carries: the whole state of one item (or of a project's own record), sealed into
//! the op's payload. Format v1, JSON inside the AEAD (docs/sync-protocol.md, "Payloads").
//!
//! The state is read from the catalog ([`read_item`], [`read_project`]) and written back
//! ([`super::apply`]); [`ItemBase`] is the compact form kept as the merge base (no keys, no
//! hashes: only what a three-way merge compares).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Area, DataType, ItemState};
use crate::names;

/// Payload format version written by this build.
pub const STATE_VERSION: u32 = 1;

/// The sealed content of an op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// A file item.
    Item(ItemPayload),
    /// The project's own record (its name and project-wide holds).
    Project(ProjectPayload),
}

/// One version of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionState {
    /// Blob id: the blob's random file id (32 hex), also the version's identity everywhere.
    pub blob: String,
    /// Version number (1, 2, ...; kept by every device, assigned by whoever merged).
    pub n: u32,
    /// Data key wrapped by the key of `key_epoch` (base64); none once erased.
    pub key: Option<String>,
    /// Key epoch the data key is wrapped under.
    pub key_epoch: u32,
    /// Ciphertext size (the blob's bytes on the tenant).
    pub blob_size: u64,
    /// Plaintext size.
    pub size: u64,
    /// Plaintext SHA-256 (hex); checked after decrypting a downloaded blob.
    pub sha256: String,
    /// When it was made (ms).
    pub created_at: i64,
    /// Who made it.
    pub created_by: String,
    /// Lost a concurrent edit: kept beside the head for the user to see and pick.
    pub conflict: bool,
    /// Cryptographically erased (no key, no blob).
    pub erased: bool,
}

/// A legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldState {
    /// Hold id.
    pub id: String,
    /// Why.
    pub reason: String,
    /// Placed at (ms).
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
    /// Released at (ms).
    pub released_at: Option<i64>,
    /// By whom.
    pub released_by: Option<String>,
}

/// The state of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPayload {
    /// Format version ([`STATE_VERSION`]).
    pub v: u32,
    /// Area.
    pub area: Area,
    /// Logical path.
    pub path: String,
    /// Media type.
    pub media_type: String,
    /// Data type.
    pub data_type: DataType,
    /// Created by / at (ms).
    pub created_by: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// Lifecycle state.
    pub state: ItemState,
    /// Soft-deleted at (ms).
    pub deleted_at: Option<i64>,
    /// Erased at (ms).
    pub erased_at: Option<i64>,
    /// Why it was erased.
    pub erase_reason: Option<String>,
    /// Blob id of the head version.
    pub current: String,
    /// Every version, by number.
    pub versions: Vec<VersionState>,
    /// Holds on the item.
    pub holds: Vec<HoldState>,
}

/// The state of a project's own record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPayload {
    /// Format version.
    pub v: u32,
    /// Display name.
    pub name: String,
    /// Created at (ms).
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
    /// Project-wide holds.
    pub holds: Vec<HoldState>,
}

/// The compact merge base of an item: what the last state both sides agreed on was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemBase {
    /// Area.
    pub area: Option<Area>,
    /// Path.
    pub path: String,
    /// Data type.
    pub data_type: Option<DataType>,
    /// State.
    pub state: Option<ItemState>,
    /// Head blob.
    pub current: String,
    /// Known versions.
    pub versions: BTreeSet<String>,
    /// Versions flagged as conflicts.
    pub conflicts: BTreeSet<String>,
    /// Erased versions.
    pub erased: BTreeSet<String>,
    /// Holds: id -> released.
    pub holds: BTreeMap<String, bool>,
    /// Project name (for the project's own record).
    pub name: String,
}

impl Payload {
    /// The merge base of this state.
    pub fn base(&self) -> ItemBase {
        match self {
            Payload::Item(i) => i.base(),
            Payload::Project(p) => ItemBase {
                name: p.name.clone(),
                holds: holds_base(&p.holds),
                ..ItemBase::default()
            },
        }
    }

    /// The blob ids the op must reference (versions not erased).
    pub fn blobs(&self) -> Vec<String> {
        match self {
            Payload::Item(i) => i.live_blobs(),
            Payload::Project(_) => Vec::new(),
        }
    }

    /// Whether a legal hold covers it now.
    pub fn held(&self) -> bool {
        let holds = match self {
            Payload::Item(i) => &i.holds,
            Payload::Project(p) => &p.holds,
        };
        holds.iter().any(|h| h.released_at.is_none())
    }

    /// Whether the item is erased (the op is a tombstone).
    pub fn tombstone(&self) -> bool {
        matches!(self, Payload::Item(i) if i.state == ItemState::Erased)
    }
}

fn holds_base(h: &[HoldState]) -> BTreeMap<String, bool> {
    h.iter()
        .map(|h| (h.id.clone(), h.released_at.is_some()))
        .collect()
}

impl ItemPayload {
    /// The merge base of this state.
    pub fn base(&self) -> ItemBase {
        ItemBase {
            area: Some(self.area),
            path: self.path.clone(),
            data_type: Some(self.data_type),
            state: Some(self.state),
            current: self.current.clone(),
            versions: self.versions.iter().map(|v| v.blob.clone()).collect(),
            conflicts: self
                .versions
                .iter()
                .filter(|v| v.conflict)
                .map(|v| v.blob.clone())
                .collect(),
            erased: self
                .versions
                .iter()
                .filter(|v| v.erased)
                .map(|v| v.blob.clone())
                .collect(),
            holds: holds_base(&self.holds),
            name: String::new(),
        }
    }

    /// Blob ids of the versions not erased, by number.
    pub fn live_blobs(&self) -> Vec<String> {
        self.versions
            .iter()
            .filter(|v| !v.erased)
            .map(|v| v.blob.clone())
            .collect()
    }

    /// The head version.
    pub fn head(&self) -> Option<&VersionState> {
        self.versions.iter().find(|v| v.blob == self.current)
    }

    /// Checks what a state from elsewhere must satisfy before it may touch the catalog (the
    /// names are valid, the versions consistent); a violation names what is wrong.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.v != STATE_VERSION {
            return Err(format!(
                "item state format {} (this build reads {STATE_VERSION})",
                self.v
            ));
        }
        names::validate_logical_path(&self.path).map_err(|e| e.to_string())?;
        if self.versions.is_empty() {
            return Err("an item without versions".into());
        }
        let mut seen = BTreeSet::new();
        let mut numbers = BTreeSet::new();
        for v in &self.versions {
            if v.blob.len() != 32
                || !v
                    .blob
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(format!(
                    "blob id {:?} is not 32 lowercase hex characters",
                    v.blob
                ));
            }
            if !seen.insert(v.blob.as_str()) || !numbers.insert(v.n) || v.n == 0 {
                return Err("versions repeat a blob or a number".into());
            }
            if v.erased != v.key.is_none() {
                return Err(format!("version {} has a key iff it is not erased", v.n));
            }
            if !v.erased && (v.sha256.len() != 64 || v.key_epoch == 0) {
                return Err(format!("version {} is malformed", v.n));
            }
        }
        let all_erased = self.versions.iter().all(|v| v.erased);
        if all_erased != (self.state == ItemState::Erased) {
            return Err("an item is erased iff all its versions are".into());
        }
        if !all_erased && self.head().is_none_or(|h| h.erased) {
            return Err("the head version is missing or erased".into());
        }
        Ok(())
    }
}

impl ProjectPayload {
    /// See [`ItemPayload::check`].
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.v != STATE_VERSION {
            return Err(format!(
                "project state format {} (this build reads {STATE_VERSION})",
                self.v
            ));
        }
        names::validate_project_name(&self.name).map_err(|e| e.to_string())
    }
}

fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|e: Error| Error::CorruptCatalog(format!("catalog value {s:?}: {e}")))
}

/// The holds targeting `target_id`.
fn holds_of(conn: &Connection, target_id: &str) -> Result<Vec<HoldState>> {
    let mut st = conn.prepare_cached(
        "SELECT id, reason, created_at, created_by, released_at, released_by FROM holds
         WHERE target_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = st.query_map([target_id], |r| {
        Ok(HoldState {
            id: r.get(0)?,
            reason: r.get(1)?,
            created_at: r.get(2)?,
            created_by: r.get(3)?,
            released_at: r.get(4)?,
            released_by: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The ciphertext size of a blob-v1 stream for `plaintext` bytes in 1 MiB chunks: the header,
/// then per chunk a kind byte and the 16-byte tag, and the final chunk's 4-byte length (an
/// empty file is one empty final chunk; docs/blob-format-v1.md, section 1).
pub(crate) fn blob_size(plaintext: u64) -> u64 {
    let chunk = u64::from(labvault_crypto::DEFAULT_CHUNK_SIZE);
    let chunks = plaintext.div_ceil(chunk).max(1);
    labvault_crypto::HEADER_LEN as u64 + plaintext + 17 * chunks + 4
}

/// The state of an item as the catalog holds it (`None` if there is no such item).
pub(crate) fn read_item(conn: &Connection, item_id: &str) -> Result<Option<(String, ItemPayload)>> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
        i64,
        String,
        Option<i64>,
        Option<i64>,
        Option<String>,
        u32,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT project_id, area, path, media_type, data_type, created_by, created_at, updated_at,
                    state, deleted_at, erased_at, erase_reason, current_version
             FROM items WHERE id = ?1",
        )?
        .query_row([item_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
            ))
        })
        .optional()?;
    let Some(r) = row else { return Ok(None) };
    let mut st = conn.prepare_cached(
        "SELECT version, blob_id, wrapped_data_key, size, sha256, created_at, created_by, conflict,
                pack_len, sync_blob
         FROM item_versions WHERE item_id = ?1 ORDER BY version",
    )?;
    let mut versions = Vec::new();
    let mut current = String::new();
    let mut rows = st.query([item_id])?;
    while let Some(v) = rows.next()? {
        let n: u32 = v.get(0)?;
        let blob: Option<String> = v.get(1)?;
        let key: Option<Vec<u8>> = v.get(2)?;
        let size = v.get::<_, i64>(3)? as u64;
        // An erased version has lost its blob id locally; its identity is kept in sync_blob.
        let id = match (blob, v.get::<_, Option<String>>(9)?) {
            (Some(b), _) => b,
            (None, Some(b)) => b,
            (None, None) => format!("{:032x}", u128::from(n)),
        };
        use base64::Engine;
        let erased = key.is_none();
        if n == r.12 {
            current = id.clone();
        }
        versions.push(VersionState {
            blob: id,
            n,
            key: key.map(|k| base64::engine::general_purpose::STANDARD.encode(k)),
            key_epoch: 1,
            blob_size: match v.get::<_, Option<i64>>(8)? {
                Some(len) => len as u64,
                None => blob_size(size),
            },
            size,
            sha256: v.get(4)?,
            created_at: v.get(5)?,
            created_by: v.get(6)?,
            conflict: v.get(7)?,
            erased,
        });
    }
    let item = ItemPayload {
        v: STATE_VERSION,
        area: parse(&r.1)?,
        path: r.2,
        media_type: r.3,
        data_type: parse(&r.4)?,
        created_by: r.5,
        created_at: r.6,
        updated_at: r.7,
        state: parse(&r.8)?,
        deleted_at: r.9,
        erased_at: r.10,
        erase_reason: r.11,
        current,
        versions,
        holds: holds_of(conn, item_id)?,
    };
    Ok(Some((r.0, item)))
}

/// The state of a project's own record.
pub(crate) fn read_project(conn: &Connection, project_id: &str) -> Result<Option<ProjectPayload>> {
    let row: Option<(String, i64, String)> = conn
        .prepare_cached("SELECT name, created_at, created_by FROM projects WHERE id = ?1")?
        .query_row(params![project_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((name, created_at, created_by)) = row else {
        return Ok(None);
    };
    Ok(Some(ProjectPayload {
        v: STATE_VERSION,
        name,
        created_at,
        created_by,
        holds: holds_of(conn, project_id)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_sizes_follow_the_blob_format() {
        let h = labvault_crypto::HEADER_LEN as u64;
        assert_eq!(blob_size(0), h + 21);
        assert_eq!(blob_size(1), h + 1 + 21);
        assert_eq!(blob_size(1 << 20), h + (1 << 20) + 21);
        assert_eq!(blob_size((1 << 20) + 1), h + (1 << 20) + 1 + 17 + 21);
        // The real encoder agrees.
        for len in [0usize, 1, 1000, (1 << 20) + 5] {
            let pt = vec![7u8; len];
            let mut out = Vec::new();
            labvault_crypto::encrypt_blob(
                &labvault_crypto::DataKey::generate(),
                &[1; 16],
                labvault_crypto::DEFAULT_CHUNK_SIZE,
                &pt[..],
                &mut out,
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(out.len() as u64, blob_size(len as u64), "{len}");
        }
    }
}
