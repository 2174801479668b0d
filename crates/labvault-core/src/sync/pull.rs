//! Applying the tenant's feed: open a page, receive the blobs it needs, apply it.
//!
//! 1. [`Vault::sync_open_page`] checks the page against what this device applied (same feed
//!    identity, the op at the cursor unchanged, no gap) and opens every payload against its
//!    project, item, op id, key epoch and revision: a tampered, moved or replayed op, or one
//!    under an epoch this device has no key for, refuses the whole page with
//!    `sync_refused`. It lists the blobs the final states need that are not here.
//! 2. [`Vault::sync_accept_blob`] (small blobs, in memory) and [`Vault::sync_download`] +
//!    [`Vault::sync_accept_download`] (large ones, streamed to `sync/` and resumable) receive
//!    them: each is decrypted with its data key and its plaintext hashed before it is kept
//!    (ciphertext only, in `sync/`); one that fails refuses the page.
//! 3. [`Vault::sync_apply_page`] moves the received blobs into `blobs/` and, in ONE
//!    transaction, applies every change (merging with local changes not yet pushed), records a
//!    `sync.pull` event per change (and `sync.conflict` per merge that kept two versions), and
//!    advances the cursor. Erasures from elsewhere are cryptographic here too.
//!
//! Nothing local changes before step 3 commits; a crash anywhere loses nothing (the page is
//! read again from the unchanged cursor).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use zeroize::Zeroizing;

use labvault_crypto::{PayloadContext, PayloadKey, ProjectKey, WrappedKey};
use labvault_governance::audit::{actions, resources, Outcome};

use super::merge::{clash_name, merge_item, merge_project};
use super::outbox::{base_of, epoch_of, event, read_state};
use super::state::{ItemPayload, Payload, ProjectPayload};
use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::layout::SYNC_DIR;
use crate::model::ItemState;
use crate::vault::{ts_to_ms, Vault};
use crate::{fsutil, names};

/// A change of the tenant's feed as received (payload still sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingChange {
    /// Feed position.
    pub seq: u64,
    /// Op id.
    pub op_id: String,
    /// Item (the project id for the project's own record).
    pub item_id: String,
    /// The item's revision after the op.
    pub rev: u64,
    /// Key epoch of the payload.
    pub epoch: u32,
    /// Device that made it.
    pub device_id: String,
    /// Sealed state.
    pub payload: Vec<u8>,
    /// Blob ids the tenant says it references.
    pub blobs: Vec<String>,
    /// The tenant's tombstone flag.
    pub tombstone: bool,
    /// The tenant's hold flag.
    pub hold: bool,
    /// Payload removed (superseded by a later op that erased something).
    pub compacted: bool,
}

/// The feed's head, epoch and identity as read with the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedInfo {
    /// Highest seq.
    pub head_seq: u64,
    /// Current key epoch.
    pub epoch: u32,
    /// Feed identity.
    pub generation: String,
}

/// A blob a page needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobNeed {
    /// Blob id.
    pub blob_id: String,
    /// Ciphertext bytes.
    pub size: u64,
}

/// What applying a page did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Changes applied.
    pub applied: u64,
    /// Changes skipped (already here, superseded within the page, or compacted).
    pub skipped: u64,
    /// Merges that kept two versions.
    pub conflicts: u64,
    /// Names changed to resolve a clash with another item.
    pub renamed: u64,
    /// The cursor after the page.
    pub cursor: u64,
}

/// What a received blob must be.
struct Expect {
    wrapped: String,
    sha256: String,
    size: u64,
    blob_size: u64,
    label: String,
}

enum Received {
    /// In the page's incoming pack at (offset, len).
    Pack(u64, u64),
    /// A file of its own in `sync/`.
    File(PathBuf),
}

enum Opened {
    Skip,
    Apply {
        seq: u64,
        op_id: String,
        item_id: String,
        rev: u64,
        device_id: String,
        payload: Box<Payload>,
    },
}

/// A page of the feed, opened and checked, with the blobs received for it so far. Dropping it
/// unapplied removes what it received in memory-sized pieces (large downloads stay, to be
/// resumed).
pub struct PulledPage {
    project_id: String,
    changes: Vec<Opened>,
    last_seq: u64,
    last_op: Option<String>,
    generation: String,
    /// Whether applying moves the cursor (not for the pages of a snapshot but its last).
    moves_cursor: bool,
    needs: Vec<BlobNeed>,
    expect: BTreeMap<String, Expect>,
    received: BTreeMap<String, Received>,
    pack: Option<(PathBuf, File, u64)>,
}

impl std::fmt::Debug for PulledPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulledPage")
            .field("project_id", &self.project_id)
            .field("changes", &self.changes.len())
            .field("last_seq", &self.last_seq)
            .field("needs", &self.needs.len())
            .finish()
    }
}

impl Drop for PulledPage {
    fn drop(&mut self) {
        if let Some((p, _, _)) = self.pack.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl PulledPage {
    /// The blobs to receive before the page can be applied.
    pub fn needs(&self) -> &[BlobNeed] {
        &self.needs
    }

    /// The blobs still to receive.
    pub fn missing(&self) -> Vec<BlobNeed> {
        self.needs
            .iter()
            .filter(|n| !self.received.contains_key(&n.blob_id))
            .cloned()
            .collect()
    }

    /// Whether applying the page would change nothing (no change, cursor in place).
    pub fn is_empty(&self) -> bool {
        !self.moves_cursor
            && !self
                .changes
                .iter()
                .any(|c| matches!(c, Opened::Apply { .. }))
    }

    /// The feed position after the page.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// A large blob being downloaded into `sync/dl-<blob>.part` (ciphertext); it survives a
/// restart, and [`PartialDownload::have`] says where to resume.
pub struct PartialDownload {
    blob_id: String,
    path: PathBuf,
    file: File,
    have: u64,
    size: u64,
}

impl PartialDownload {
    /// Bytes already here.
    pub fn have(&self) -> u64 {
        self.have
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the next bytes.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if self.have + bytes.len() as u64 > self.size {
            return Err(Error::SyncRefused(format!(
                "blob {}: the tenant sent more than its {} bytes",
                self.blob_id, self.size
            )));
        }
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io_path("writing download", &self.path, e))?;
        self.have += bytes.len() as u64;
        Ok(())
    }
}

fn refused(project: &str, seq: u64, item: &str, why: impl std::fmt::Display) -> Error {
    Error::SyncRefused(format!(
        "the change at seq {seq} of project {project} (item {item}) {why}; nothing was applied"
    ))
}

pub(crate) fn file_id(blob: &str) -> Result<[u8; 16]> {
    let mut b = [0u8; 16];
    hex::decode_to_slice(blob, &mut b)
        .map_err(|_| Error::SyncRefused(format!("blob id {blob:?} is not 32 hex characters")))?;
    Ok(b)
}

/// A data key wrapped under `from` (base64), wrapped under `to` instead.
fn rewrap_key(from: &ProjectKey, to: &ProjectKey, blob: &str, key: Option<&str>) -> Result<String> {
    use base64::Engine;
    let b64 = &base64::engine::general_purpose::STANDARD;
    let fid = file_id(blob)?;
    let raw = b64
        .decode(key.unwrap_or(""))
        .map_err(|_| Error::SyncRefused("a data key is not base64".into()))?;
    let w = WrappedKey::from_bytes(raw).map_err(|e| Error::SyncRefused(e.to_string()))?;
    let dk = from
        .unwrap_data_key(&w, &fid)
        .map_err(|e| Error::SyncRefused(e.to_string()))?;
    Ok(b64.encode(to.wrap_data_key(&dk, &fid).as_bytes()))
}

/// Decrypts a whole blob (authenticating every chunk) and checks the plaintext's size and
/// SHA-256 against the sealed state, writing nothing.
fn verify_blob(key: &ProjectKey, blob: &str, e: &Expect, input: impl std::io::Read) -> Result<()> {
    let fid = file_id(blob)?;
    let b64 = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(&e.wrapped)
            .map_err(|_| {
                Error::SyncRefused(format!("the data key of {} is not base64", e.label))
            })?,
    );
    let wrapped = WrappedKey::from_bytes(b64.to_vec())
        .map_err(|err| Error::SyncRefused(format!("the data key of {}: {err}", e.label)))?;
    let dk = key.unwrap_data_key(&wrapped, &fid).map_err(|_| {
        Error::SyncRefused(format!(
            "the data key of {} does not unwrap under the project key",
            e.label
        ))
    })?;
    let sum = labvault_crypto::decrypt_blob(&dk, &fid, input, std::io::sink(), &mut |_| {})
        .map_err(|err| {
            Error::SyncRefused(format!(
                "the blob of {} from the tenant failed authentication ({}): it is not what the device that made it sealed",
                e.label,
                err.code()
            ))
        })?;
    if sum.plaintext_len != e.size || hex::encode(sum.sha256) != e.sha256 {
        return Err(Error::SyncRefused(format!(
            "the blob of {} decrypts to other content than its sealed state records",
            e.label
        )));
    }
    Ok(())
}

impl Vault {
    fn sync_dir(&self) -> Result<PathBuf> {
        let d = self.dir.join(SYNC_DIR);
        std::fs::create_dir_all(&d).map_err(|e| Error::io_path("creating", &d, e))?;
        Ok(d)
    }

    /// Removes what an interrupted pull left in `sync/` (incoming packs; partial downloads of
    /// large blobs are kept to be resumed, unless `all`).
    pub fn sync_clean_incoming(&self, all: bool) -> Result<()> {
        let d = self.sync_dir()?;
        for e in std::fs::read_dir(&d)
            .map_err(|e| Error::io_path("listing", &d, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("in-") || all {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// Opens a page of a project's feed (`changes` in seq order, the change at the cursor
    /// first when the cursor is not 0). See the module documentation.
    pub fn sync_open_page(
        &self,
        project_id: &str,
        changes: Vec<IncomingChange>,
        feed: &FeedInfo,
    ) -> Result<PulledPage> {
        let conn = self.reader()?;
        let (cursor, cursor_op, generation): (u64, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT cursor, cursor_op, generation FROM sync_projects WHERE project_id = ?1",
                [project_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .unwrap_or((0, None, None));
        let name: String = conn
            .query_row(
                "SELECT name FROM projects WHERE id = ?1",
                [project_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("project {project_id}")))?;
        if let Some(g) = &generation {
            if *g != feed.generation {
                return Err(Error::FeedDiverged(format!(
                    "the tenant's feed of project {name:?} was replaced (its identity changed): this device stopped syncing the project instead of deleting anything; `labvault sync --resync {project_id}` merges this device's items into the new feed"
                )));
            }
        }
        if feed.head_seq < cursor {
            return Err(Error::FeedDiverged(format!(
                "the tenant's feed of project {name:?} ends at seq {} but this device has applied up to seq {cursor}: the server may have been restored from an older backup. Nothing was changed here; `labvault sync --resync {project_id}` sends this device's items back",
                feed.head_seq
            )));
        }
        let mut iter = changes.into_iter().peekable();
        if cursor > 0 {
            match iter.next() {
                Some(c) if c.seq == cursor && Some(&c.op_id) == cursor_op.as_ref() => {}
                _ => {
                    return Err(Error::FeedDiverged(format!(
                        "the tenant's feed of project {name:?} no longer holds the op this device applied at seq {cursor}: the server was restored from an older backup or its feed rewritten. Nothing was changed here; `labvault sync --resync {project_id}` merges this device's items back"
                    )))
                }
            }
        }
        let mut expect_seq = cursor + 1;
        let mut last_op = cursor_op;
        let mut rest = Vec::new();
        for ch in iter {
            if ch.seq != expect_seq {
                return Err(refused(
                    &name,
                    ch.seq,
                    &ch.item_id,
                    format_args!(
                        "does not follow seq {} (the feed must have no gaps)",
                        expect_seq - 1
                    ),
                ));
            }
            expect_seq += 1;
            last_op = Some(ch.op_id.clone());
            rest.push(ch);
        }
        let moved = expect_seq - 1 > cursor || generation.is_none();
        let mut page = self.open_changes(&conn, project_id, &name, rest, false)?;
        page.last_seq = expect_seq - 1;
        page.last_op = last_op;
        page.generation = feed.generation.clone();
        page.moves_cursor = moved;
        Ok(page)
    }

    /// Opens a page of a project's snapshot (the latest op of every item, for a device that
    /// starts with the project): the same checks as a feed page but for the order. `last`
    /// is given with the snapshot's last page: the feed's head when the snapshot was read and
    /// the op id at that head, where the cursor then stands.
    pub fn sync_open_snapshot(
        &self,
        project_id: &str,
        items: Vec<IncomingChange>,
        feed: &FeedInfo,
        last: Option<Option<String>>,
    ) -> Result<PulledPage> {
        let conn = self.reader()?;
        let name: String = conn
            .query_row(
                "SELECT name FROM projects WHERE id = ?1",
                [project_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("project {project_id}")))?;
        let mut seen = BTreeSet::new();
        for c in &items {
            if !seen.insert(c.item_id.clone()) {
                return Err(refused(
                    &name,
                    c.seq,
                    &c.item_id,
                    "appears twice in the snapshot",
                ));
            }
        }
        let mut page = self.open_changes(&conn, project_id, &name, items, true)?;
        page.generation = feed.generation.clone();
        match last {
            Some(head_op) => {
                page.last_seq = feed.head_seq;
                page.last_op = head_op;
                page.moves_cursor = true;
            }
            None => page.moves_cursor = false,
        }
        Ok(page)
    }

    /// Opens changes (see the module documentation): authenticates each payload, checks it,
    /// refuses replays, keeps the last change of each item, and lists the blobs needed.
    fn open_changes(
        &self,
        conn: &rusqlite::Connection,
        project_id: &str,
        name: &str,
        changes: Vec<IncomingChange>,
        snapshot: bool,
    ) -> Result<PulledPage> {
        let epoch = epoch_of(conn, project_id)?;
        let base = self.project_key(project_id)?;
        // Payload keys of the epochs this page uses (each op names its own; history keeps
        // the epoch it was written under).
        let mut payload_keys: BTreeMap<u32, (PayloadKey, Option<ProjectKey>)> = BTreeMap::new();
        let mut last_epoch = 0u32;
        let mut opened: Vec<Opened> = Vec::new();
        let mut last_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut page_rev: BTreeMap<String, u64> = BTreeMap::new();
        for ch in changes {
            if ch.compacted {
                if snapshot {
                    return Err(refused(
                        name,
                        ch.seq,
                        &ch.item_id,
                        "is a compacted op, which a snapshot cannot hold",
                    ));
                }
                opened.push(Opened::Skip);
                continue;
            }
            if ch.epoch == 0 || ch.epoch > epoch {
                return Err(refused(name, ch.seq, &ch.item_id, format_args!("is sealed under key epoch {}, which this device has no key for (it holds epoch {epoch}; the membership log does not reach it)", ch.epoch)));
            }
            // In feed order epochs only grow: an op under an older key after a newer one was
            // written with a key the rotation retired.
            if !snapshot && ch.epoch < last_epoch {
                return Err(refused(name, ch.seq, &ch.item_id, format_args!("is sealed under key epoch {} after an op under epoch {last_epoch}: written with a retired key", ch.epoch)));
            }
            last_epoch = last_epoch.max(ch.epoch);
            if let std::collections::btree_map::Entry::Vacant(slot) = payload_keys.entry(ch.epoch) {
                let k = self.epoch_key(project_id, ch.epoch)?;
                slot.insert((PayloadKey::derive(&k), (ch.epoch > 1).then_some(k)));
            }
            if ch.rev == 0 || uuid::Uuid::parse_str(&ch.item_id).is_err() {
                return Err(refused(name, ch.seq, &ch.item_id, "is malformed"));
            }
            let ctx = PayloadContext {
                project_id,
                item_id: &ch.item_id,
                op_id: &ch.op_id,
                epoch: ch.epoch,
                base_rev: ch.rev - 1,
            };
            let pk = &payload_keys[&ch.epoch].0;
            let plain = pk.open(&ctx, &ch.payload).map_err(|e| {
                refused(name, ch.seq, &ch.item_id, format_args!("does not authenticate ({}): it was tampered with, or moved from another op, item or revision", e.code()))
            })?;
            let mut payload: Payload = serde_json::from_slice(&plain).map_err(|e| {
                refused(
                    name,
                    ch.seq,
                    &ch.item_id,
                    format_args!("holds a state this build cannot read ({e})"),
                )
            })?;
            if let Payload::Item(i) = &mut payload {
                // Data keys under a later epoch's key are kept under the catalog's (epoch 1).
                for v in i
                    .versions
                    .iter_mut()
                    .filter(|v| !v.erased && v.key_epoch != 1)
                {
                    if v.key_epoch > ch.epoch {
                        return Err(refused(
                            name,
                            ch.seq,
                            &ch.item_id,
                            format_args!(
                                "wraps a data key under epoch {}, later than its own",
                                v.key_epoch
                            ),
                        ));
                    }
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        payload_keys.entry(v.key_epoch)
                    {
                        let k = self.epoch_key(project_id, v.key_epoch)?;
                        slot.insert((PayloadKey::derive(&k), Some(k)));
                    }
                    let Some(from) = &payload_keys[&v.key_epoch].1 else {
                        continue;
                    };
                    v.key = Some(rewrap_key(from, &base, &v.blob, v.key.as_deref()).map_err(|_| {
                        refused(name, ch.seq, &ch.item_id, format_args!("holds a data key of version {} that does not unwrap under epoch {}", v.n, v.key_epoch))
                    })?);
                    v.key_epoch = 1;
                }
            }
            match &payload {
                Payload::Item(i) => {
                    if ch.item_id == project_id {
                        return Err(refused(
                            name,
                            ch.seq,
                            &ch.item_id,
                            "puts an item where the project record belongs",
                        ));
                    }
                    i.check()
                        .map_err(|e| refused(name, ch.seq, &ch.item_id, e))?;
                }
                Payload::Project(p) => {
                    if ch.item_id != project_id {
                        return Err(refused(
                            name,
                            ch.seq,
                            &ch.item_id,
                            "puts a project record on an item",
                        ));
                    }
                    p.check()
                        .map_err(|e| refused(name, ch.seq, &ch.item_id, e))?;
                }
            }
            let sealed: BTreeSet<String> = payload.blobs().into_iter().collect();
            let said: BTreeSet<String> = ch.blobs.iter().cloned().collect();
            if sealed != said || ch.tombstone != payload.tombstone() || ch.hold != payload.held() {
                return Err(refused(
                    name,
                    ch.seq,
                    &ch.item_id,
                    "carries blob references or flags that differ from its sealed state",
                ));
            }
            // Replays: a revision this device already has, at a later position.
            let known = base_of(conn, &ch.item_id)?;
            let floor = page_rev
                .get(&ch.item_id)
                .copied()
                .or(known.as_ref().map(|(r, _, _)| *r))
                .unwrap_or(0);
            if ch.rev <= floor {
                let already = known.as_ref().is_some_and(|(_, seq, _)| ch.seq <= *seq);
                if already {
                    opened.push(Opened::Skip);
                    continue;
                }
                return Err(refused(
                    name,
                    ch.seq,
                    &ch.item_id,
                    format_args!(
                        "repeats revision {} of the item (this device has {floor}): a replayed op",
                        ch.rev
                    ),
                ));
            }
            page_rev.insert(ch.item_id.clone(), ch.rev);
            if let Some(i) = last_index.insert(ch.item_id.clone(), opened.len()) {
                // Superseded within the page: the later op carries the whole state.
                opened[i] = Opened::Skip;
            }
            opened.push(Opened::Apply {
                seq: ch.seq,
                op_id: ch.op_id,
                item_id: ch.item_id,
                rev: ch.rev,
                device_id: ch.device_id,
                payload: Box::new(payload),
            });
        }
        // The project's own record first: its holds decide merges of its items.
        opened.sort_by_key(|o| !matches!(o, Opened::Apply { payload, .. } if matches!(payload.as_ref(), Payload::Project(_))));
        // The blobs the final states need that are not here.
        let mut needs = Vec::new();
        let mut expect = BTreeMap::new();
        for o in &opened {
            let Opened::Apply {
                item_id,
                payload,
                seq,
                ..
            } = o
            else {
                continue;
            };
            let Payload::Item(i) = payload.as_ref() else {
                continue;
            };
            for v in i.versions.iter().filter(|v| !v.erased) {
                let holder: Option<String> = conn
                    .prepare_cached("SELECT item_id FROM item_versions WHERE blob_id = ?1")?
                    .query_row([&v.blob], |r| r.get(0))
                    .optional()?;
                match holder {
                    Some(h) if h == *item_id => continue,
                    Some(_) => {
                        return Err(refused(
                            name,
                            *seq,
                            item_id,
                            format_args!("claims blob {} of another item", v.blob),
                        ));
                    }
                    None => {}
                }
                if expect.contains_key(&v.blob) {
                    continue;
                }
                needs.push(BlobNeed {
                    blob_id: v.blob.clone(),
                    size: v.blob_size,
                });
                expect.insert(
                    v.blob.clone(),
                    Expect {
                        wrapped: v.key.clone().unwrap_or_default(),
                        sha256: v.sha256.clone(),
                        size: v.size,
                        blob_size: v.blob_size,
                        label: format!("version {} of {}/{}/{}", v.n, name, i.area, i.path),
                    },
                );
            }
        }
        Ok(PulledPage {
            project_id: project_id.to_string(),
            changes: opened,
            last_seq: 0,
            last_op: None,
            generation: String::new(),
            moves_cursor: false,
            needs,
            expect,
            received: BTreeMap::new(),
            pack: None,
        })
    }

    /// Receives a small blob the page needs: verified (decrypted and hashed), then kept as
    /// ciphertext in the page's incoming pack.
    pub fn sync_accept_blob(
        &self,
        page: &mut PulledPage,
        blob_id: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let e = page.expect.get(blob_id).ok_or_else(|| {
            Error::SyncRefused(format!(
                "the tenant sent blob {blob_id}, which the page does not need"
            ))
        })?;
        if bytes.len() as u64 != e.blob_size {
            return Err(Error::SyncRefused(format!(
                "the blob of {} has {} bytes from the tenant, its sealed state says {}",
                e.label,
                bytes.len(),
                e.blob_size
            )));
        }
        verify_blob(&self.project_key(&page.project_id)?, blob_id, e, bytes)?;
        if page.pack.is_none() {
            let p = self
                .sync_dir()?
                .join(format!("in-{}.pack", fsutil::random_hex(16)));
            let f = File::create(&p).map_err(|e| Error::io_path("creating", &p, e))?;
            page.pack = Some((p, f, 0));
        }
        let (path, f, len) = page.pack.as_mut().expect("created above");
        f.write_all(bytes)
            .map_err(|e| Error::io_path("writing", path, e))?;
        page.received.insert(
            blob_id.to_string(),
            Received::Pack(*len, bytes.len() as u64),
        );
        *len += bytes.len() as u64;
        Ok(())
    }

    /// Opens (or resumes) the download of a large blob the page needs.
    pub fn sync_download(&self, page: &PulledPage, blob_id: &str) -> Result<PartialDownload> {
        let e = page.expect.get(blob_id).ok_or_else(|| {
            Error::InvalidArgument(format!("the page does not need blob {blob_id}"))
        })?;
        file_id(blob_id)?;
        let path = self.sync_dir()?.join(format!("dl-{blob_id}.part"));
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|err| Error::io_path("opening", &path, err))?;
        let mut have = file
            .seek(SeekFrom::End(0))
            .map_err(|err| Error::io_path("reading", &path, err))?;
        if have > e.blob_size {
            file.set_len(0)
                .map_err(|err| Error::io_path("truncating", &path, err))?;
            have = 0;
        }
        Ok(PartialDownload {
            blob_id: blob_id.to_string(),
            path,
            file,
            have,
            size: e.blob_size,
        })
    }

    /// Verifies a finished download (decrypting it as it is read back) and keeps it for the
    /// page. A download that fails verification is deleted (it is downloaded again next time).
    pub fn sync_accept_download(&self, page: &mut PulledPage, dl: PartialDownload) -> Result<()> {
        let PartialDownload {
            blob_id,
            path,
            file,
            have,
            size,
        } = dl;
        drop(file);
        let e = page.expect.get(&blob_id).ok_or_else(|| {
            Error::InvalidArgument(format!("the page does not need blob {blob_id}"))
        })?;
        if have != size {
            return Err(Error::InvalidArgument(format!(
                "the download of {blob_id} is not complete"
            )));
        }
        let f = File::open(&path).map_err(|err| Error::io_path("reading", &path, err))?;
        if let Err(err) = verify_blob(&self.project_key(&page.project_id)?, &blob_id, e, f) {
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        page.received.insert(blob_id, Received::File(path));
        Ok(())
    }

    /// Applies a page whose blobs were all received (see the module documentation).
    pub fn sync_apply_page(&self, mut page: PulledPage) -> Result<ApplyReport> {
        if let Some(n) = page.missing().first() {
            return Err(Error::InvalidArgument(format!(
                "blob {} of the page has not been received",
                n.blob_id
            )));
        }
        let project_id = page.project_id.clone();
        self.write_op(actions::SYNC_PULL, || resources::project(&project_id), |w| {
            // The received ciphertext goes into blobs/ first (durably), then the catalog.
            let mut locations: BTreeMap<String, Location> = BTreeMap::new();
            if !page.received.is_empty() {
                w.mark_blobs_unsettled()?;
                let dir = w.vault.dir.clone();
                let pack_id = fsutil::random_hex(16);
                if let Some((path, f, _)) = page.pack.take() {
                    f.sync_all().map_err(|e| Error::io_path("syncing", &path, e))?;
                    drop(f);
                    place(&dir, &path, &pack_id)?;
                }
                for (blob, r) in std::mem::take(&mut page.received) {
                    match r {
                        Received::Pack(off, len) => {
                            locations.insert(blob, Location::Pack(pack_id.clone(), off, len));
                        }
                        Received::File(path) => {
                            File::open(&path)
                                .and_then(|f| f.sync_all())
                                .map_err(|e| Error::io_path("syncing", &path, e))?;
                            place(&dir, &path, &blob)?;
                            locations.insert(blob, Location::Own);
                        }
                    }
                }
            }
            let actor = w.vault.actor_ctx();
            let now = ts_to_ms(w.vault.now());
            let mut report = ApplyReport {
                cursor: page.last_seq,
                ..ApplyReport::default()
            };
            let mut erased_own: Vec<String> = Vec::new();
            let mut erased_packs: BTreeSet<String> = BTreeSet::new();
            let changes = std::mem::take(&mut page.changes);
            w.tx(|tx| {
                for o in changes {
                    let Opened::Apply { seq, op_id, item_id, rev, device_id, payload } = o else {
                        report.skipped += 1;
                        continue;
                    };
                    let detail = format!("seq={seq} rev={rev} op={op_id} device={device_id}");
                    match *payload {
                        Payload::Item(remote) => {
                            let out = apply_item(tx, &project_id, &item_id, remote, &locations, &mut erased_own, &mut erased_packs)?;
                            record_base(tx, &project_id, &item_id, rev, seq, &op_id, &out.remote_base)?;
                            let res = resources::item(&project_id, &item_id);
                            event(tx, &actor, actions::SYNC_PULL, Subject::new(res.clone(), detail), Outcome::Success)?;
                            if !out.conflicts.is_empty() {
                                report.conflicts += 1;
                                event(
                                    tx,
                                    &actor,
                                    actions::SYNC_CONFLICT,
                                    Subject::new(res, format!("kept={} from={device_id}", out.conflicts.join(","))),
                                    Outcome::Success,
                                )?;
                            }
                            report.renamed += out.renamed;
                        }
                        Payload::Project(remote) => {
                            let base = apply_project(tx, &project_id, remote)?;
                            record_base(tx, &project_id, &project_id, rev, seq, &op_id, &base)?;
                            event(tx, &actor, actions::SYNC_PULL, Subject::new(resources::project(&project_id), detail), Outcome::Success)?;
                        }
                    }
                    report.applied += 1;
                }
                if page.moves_cursor {
                    tx.execute(
                        "INSERT INTO sync_projects(project_id, remote, cursor, cursor_op, generation, last_sync_at)
                         VALUES (?1, 1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(project_id) DO UPDATE SET remote = 1, cursor = excluded.cursor,
                            cursor_op = excluded.cursor_op, generation = excluded.generation,
                            last_sync_at = excluded.last_sync_at",
                        params![project_id, page.last_seq as i64, page.last_op, page.generation, now],
                    )?;
                }
                Ok(())
            })?;
            // Blobs received for versions the merge erased (this side erased them meanwhile):
            // not kept.
            let mut unused_packs = BTreeSet::new();
            for (blob, loc) in &locations {
                let used: bool = w
                    .conn()
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM item_versions WHERE blob_id = ?1)")?
                    .query_row([blob], |r| r.get(0))?;
                if !used {
                    match loc {
                        Location::Own => erased_own.push(blob.clone()),
                        Location::Pack(p, _, _) => {
                            unused_packs.insert(p.clone());
                        }
                    }
                }
            }
            erased_packs.extend(unused_packs);
            if !erased_own.is_empty() || !erased_packs.is_empty() {
                w.mark_blobs_unsettled()?;
                w.checkpoint_truncate()?;
                crate::items::remove_erased_blobs(w, &erased_own, &erased_packs)?;
            }
            Ok(report)
        })
    }

    /// Records a change of the tenant that was refused (kept for the user, `sync.refused`)
    /// and stops the project's sync with the reason.
    pub fn sync_record_refusal(
        &self,
        project_id: &str,
        seq: u64,
        item_id: &str,
        op_id: &str,
        e: &Error,
    ) -> Result<()> {
        let now = ts_to_ms(self.now());
        let msg = e.to_string();
        self.write_op(
            actions::SYNC_REFUSED,
            || resources::project(project_id),
            |w| {
                w.commit(actions::SYNC_REFUSED, |tx| {
                    tx.execute(
                    "INSERT INTO sync_refused(project_id, item_id, op_id, seq, code, message, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![project_id, item_id, op_id, seq as i64, e.code().as_str(), msg, now],
                )?;
                    tx.execute(
                        "INSERT INTO sync_projects(project_id, stopped) VALUES (?1, ?2)
                     ON CONFLICT(project_id) DO UPDATE SET stopped = excluded.stopped",
                        params![project_id, msg],
                    )?;
                    Ok((
                        (),
                        Subject::new(
                            resources::project(project_id),
                            format!("{} seq={seq}", e.code().as_str()),
                        ),
                    ))
                })
            },
        )
    }
}

/// Where a received blob ended up in `blobs/`.
enum Location {
    Pack(String, u64, u64),
    Own,
}

/// Renames a synced file from `sync/` into `blobs/<xx>/<id>` and makes the rename durable.
fn place(dir: &Path, from: &Path, id: &str) -> Result<()> {
    let to = crate::layout::blob_path(dir, id);
    let shard = to.parent().expect("blob paths have a parent");
    if !shard.exists() {
        std::fs::create_dir_all(shard).map_err(|e| Error::io_path("creating", shard, e))?;
        fsutil::fsync_dir(&dir.join(crate::layout::BLOBS_DIR))?;
    }
    std::fs::rename(from, &to)
        .map_err(|e| Error::io_path("moving a downloaded blob to", &to, e))?;
    fsutil::fsync_dir(shard)?;
    Ok(())
}

fn record_base(
    tx: &Transaction<'_>,
    project_id: &str,
    item_id: &str,
    rev: u64,
    seq: u64,
    op_id: &str,
    base: &super::state::ItemBase,
) -> Result<()> {
    tx.execute(
        "INSERT INTO sync_items(item_id, project_id, rev, last_seq, last_op, base) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(item_id) DO UPDATE SET rev = excluded.rev, last_seq = excluded.last_seq,
            last_op = excluded.last_op, base = excluded.base",
        params![
            item_id,
            project_id,
            rev as i64,
            seq as i64,
            op_id,
            serde_json::to_string(base).map_err(|e| Error::Internal(e.to_string()))?
        ],
    )?;
    Ok(())
}

/// Whether an item has local changes the tenant has not acknowledged.
fn pending(tx: &Transaction<'_>, item_id: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sync_dirty WHERE item_id = ?1)
                 OR EXISTS (SELECT 1 FROM sync_outbox WHERE item_id = ?1)",
        )?
        .query_row([item_id], |r| r.get(0))?)
}

/// After a merge: push the merged state if it differs from what the tenant has, else nothing.
fn settle_pending(
    tx: &Transaction<'_>,
    project_id: &str,
    item_id: &str,
    differs: bool,
) -> Result<()> {
    tx.execute("DELETE FROM sync_outbox WHERE item_id = ?1", [item_id])?;
    if differs {
        crate::changes::mark(tx, project_id, item_id)?;
    } else {
        tx.execute("DELETE FROM sync_dirty WHERE item_id = ?1", [item_id])?;
    }
    Ok(())
}

struct ItemOutcome {
    remote_base: super::state::ItemBase,
    conflicts: Vec<String>,
    renamed: u64,
}

#[allow(clippy::too_many_arguments)]
fn apply_item(
    tx: &Transaction<'_>,
    project_id: &str,
    item_id: &str,
    remote: ItemPayload,
    locations: &BTreeMap<String, Location>,
    erased_own: &mut Vec<String>,
    erased_packs: &mut BTreeSet<String>,
) -> Result<ItemOutcome> {
    let remote_base = remote.base();
    let local = match read_state(tx, project_id, item_id)? {
        Some(Payload::Item(i)) => Some(i),
        _ => {
            let elsewhere: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM items WHERE id = ?1 AND project_id <> ?2)",
                [item_id, project_id],
                |r| r.get(0),
            )?;
            if elsewhere {
                return Err(Error::SyncRefused(format!(
                    "item {item_id} arrived in project {project_id} but belongs to another project here; nothing was applied"
                )));
            }
            None
        }
    };
    let is_pending = local.is_some() && pending(tx, item_id)?;
    let (mut state, conflicts) = match (&local, is_pending) {
        (Some(l), true) => {
            let base = base_of(tx, item_id)?.map(|(_, _, b)| b);
            let project_held: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM holds WHERE target_id = ?1 AND released_at IS NULL)",
                [project_id],
                |r| r.get(0),
            )?;
            let m = merge_item(base.as_ref(), l, &remote, project_held);
            (m.state, m.conflicts)
        }
        _ => (remote, Vec::new()),
    };
    let renamed = resolve_clash(tx, project_id, item_id, &mut state)?;
    write_item(
        tx,
        project_id,
        item_id,
        &state,
        locations,
        erased_own,
        erased_packs,
    )?;
    if is_pending || renamed > 0 {
        settle_pending(tx, project_id, item_id, state.base() != remote_base)?;
    }
    Ok(ItemOutcome {
        remote_base,
        conflicts,
        renamed,
    })
}

/// Two active items at one path: the one with the larger id takes a clash name, the same on
/// every device. Returns how many items were renamed (the other one is renamed and marked
/// to be pushed here; this one's new name is pushed by the caller).
fn resolve_clash(
    tx: &Transaction<'_>,
    project_id: &str,
    item_id: &str,
    state: &mut ItemPayload,
) -> Result<u64> {
    if state.state != ItemState::Active {
        return Ok(0);
    }
    let taken = |path: &str, except: &str| -> Result<Option<String>> {
        Ok(tx
            .prepare_cached(
                "SELECT id FROM items WHERE project_id = ?1 AND area = ?2 AND path = ?3
                 AND state = 'active' AND id <> ?4",
            )?
            .query_row(
                params![project_id, state.area.as_str(), path, except],
                |r| r.get(0),
            )
            .optional()?)
    };
    let Some(other) = taken(&state.path, item_id)? else {
        return Ok(0);
    };
    // The larger id yields; its new name must be free too.
    let (loser, base) = if item_id > other.as_str() {
        (item_id.to_string(), state.path.clone())
    } else {
        (other.clone(), state.path.clone())
    };
    for attempt in 0..6 {
        let new = clash_name(&base, &loser, attempt);
        names::validate_logical_path(&new)?;
        if taken(&new, &loser)?.is_some() || (loser != item_id && new == state.path) {
            continue;
        }
        if loser == item_id {
            state.path = new;
            state.media_type = crate::model::guess_media_type(&state.path).to_string();
        } else {
            tx.execute(
                "UPDATE items SET path = ?1, media_type = ?2 WHERE id = ?3",
                params![new, crate::model::guess_media_type(&new), loser],
            )?;
            crate::changes::mark(tx, project_id, &loser)?;
        }
        return Ok(1);
    }
    Err(Error::Internal(format!(
        "could not give item {loser} a path of its own"
    )))
}

/// Writes an item's state into the catalog: the row, every version (new ones at the
/// locations the page received them at; erased ones cryptographically erased here: key
/// overwritten, then the blob removed after the commit) and its holds.
fn write_item(
    tx: &Transaction<'_>,
    project_id: &str,
    item_id: &str,
    s: &ItemPayload,
    locations: &BTreeMap<String, Location>,
    erased_own: &mut Vec<String>,
    erased_packs: &mut BTreeSet<String>,
) -> Result<()> {
    let head_n = s
        .versions
        .iter()
        .find(|v| v.blob == s.current)
        .map(|v| v.n)
        .unwrap_or_else(|| s.versions.iter().map(|v| v.n).max().unwrap_or(1));
    tx.execute(
        "INSERT INTO items(id, project_id, area, path, media_type, data_type, created_by, created_at,
            updated_at, state, deleted_at, erased_at, erase_reason, current_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, -1)
         ON CONFLICT(id) DO UPDATE SET area = excluded.area, path = excluded.path,
            media_type = excluded.media_type, data_type = excluded.data_type,
            updated_at = excluded.updated_at, state = excluded.state, deleted_at = excluded.deleted_at,
            erased_at = excluded.erased_at, erase_reason = excluded.erase_reason",
        params![
            item_id,
            project_id,
            s.area.as_str(),
            s.path,
            s.media_type,
            s.data_type.as_str(),
            s.created_by,
            s.created_at,
            s.updated_at,
            s.state.as_str(),
            s.deleted_at,
            s.erased_at,
            s.erase_reason
        ],
    )?;
    // Renumber through negative numbers so (item, version) never collides midway.
    tx.execute(
        "UPDATE item_versions SET version = -version WHERE item_id = ?1 AND version > 0",
        [item_id],
    )?;
    let mut max_n = 0;
    for v in &s.versions {
        max_n = max_n.max(v.n);
        let local: Option<(i64, Option<String>, Option<String>)> = tx
            .prepare_cached(
                "SELECT version, blob_id, pack_id FROM item_versions
                 WHERE item_id = ?1 AND (blob_id = ?2 OR sync_blob = ?2)",
            )?
            .query_row([item_id, &v.blob], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match local {
            Some((old_n, None, _)) if !v.erased => {
                // Erased here, kept by the tenant (a legal hold outranked the erasure): the
                // version comes back with its key and the blob just received.
                let key = base64::engine::general_purpose::STANDARD
                    .decode(v.key.as_deref().unwrap_or(""))
                    .map_err(|_| {
                        Error::SyncRefused(format!("the data key of version {} is not base64", v.n))
                    })?;
                let (pack_id, off, len) = match locations.get(&v.blob) {
                    Some(Location::Pack(p, o, l)) => {
                        (Some(p.clone()), Some(*o as i64), Some(*l as i64))
                    }
                    Some(Location::Own) => (None, None, None),
                    None => {
                        return Err(Error::Internal(format!(
                        "blob {} of item {item_id} was not received before the page was applied",
                        v.blob
                    )))
                    }
                };
                tx.execute(
                    "UPDATE item_versions SET version = ?1, blob_id = ?2, wrapped_data_key = ?3, pack_id = ?4,
                        pack_offset = ?5, pack_len = ?6, sync_blob = NULL, conflict = ?7
                     WHERE item_id = ?8 AND version = ?9",
                    params![v.n, v.blob, key, pack_id, off, len, v.conflict, item_id, old_n],
                )?;
            }
            Some((old_n, blob, pack)) => {
                if v.erased && blob.is_some() {
                    match pack {
                        Some(p) => {
                            erased_packs.insert(p);
                        }
                        None => erased_own.push(v.blob.clone()),
                    }
                    tx.execute(
                        "UPDATE item_versions SET wrapped_data_key = zeroblob(length(wrapped_data_key))
                         WHERE item_id = ?1 AND version = ?2",
                        params![item_id, old_n],
                    )?;
                    tx.execute(
                        "UPDATE item_versions SET sync_blob = blob_id, wrapped_data_key = NULL, blob_id = NULL,
                            pack_id = NULL, pack_offset = NULL, pack_len = NULL
                         WHERE item_id = ?1 AND version = ?2",
                        params![item_id, old_n],
                    )?;
                }
                tx.execute(
                    "UPDATE item_versions SET version = ?1, conflict = ?2 WHERE item_id = ?3 AND version = ?4",
                    params![v.n, v.conflict && !v.erased, item_id, old_n],
                )?;
            }
            None if v.erased => {
                tx.execute(
                    "INSERT INTO item_versions(item_id, version, blob_id, wrapped_data_key, size, sha256,
                        created_at, created_by, conflict, sync_blob)
                     VALUES (?1, ?2, NULL, NULL, ?3, ?4, ?5, ?6, 0, ?7)",
                    params![item_id, v.n, v.size as i64, v.sha256, v.created_at, v.created_by, v.blob],
                )?;
            }
            None => {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(v.key.as_deref().unwrap_or(""))
                    .map_err(|_| {
                        Error::SyncRefused(format!("the data key of version {} is not base64", v.n))
                    })?;
                let (pack_id, off, len) = match locations.get(&v.blob) {
                    Some(Location::Pack(p, o, l)) => {
                        (Some(p.clone()), Some(*o as i64), Some(*l as i64))
                    }
                    Some(Location::Own) => (None, None, None),
                    None => {
                        return Err(Error::Internal(format!(
                        "blob {} of item {item_id} was not received before the page was applied",
                        v.blob
                    )))
                    }
                };
                tx.execute(
                    "INSERT INTO item_versions(item_id, version, blob_id, wrapped_data_key, size, sha256,
                        created_at, created_by, pack_id, pack_offset, pack_len, conflict)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        item_id, v.n, v.blob, key, v.size as i64, v.sha256, v.created_at, v.created_by,
                        pack_id, off, len, v.conflict
                    ],
                )?;
            }
        }
    }
    // Versions only this device has (never dropped): after the others, to be pushed.
    let leftovers: Vec<i64> = tx
        .prepare_cached("SELECT version FROM item_versions WHERE item_id = ?1 AND version < 0 ORDER BY version DESC")?
        .query_map([item_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for old in leftovers {
        max_n += 1;
        tx.execute(
            "UPDATE item_versions SET version = ?1 WHERE item_id = ?2 AND version = ?3",
            params![max_n, item_id, old],
        )?;
        crate::changes::mark(tx, project_id, item_id)?;
    }
    tx.execute(
        "UPDATE items SET current_version = ?1 WHERE id = ?2",
        params![head_n, item_id],
    )?;
    write_holds(tx, "item", item_id, &s.holds)
}

fn write_holds(
    tx: &Transaction<'_>,
    kind: &str,
    target: &str,
    holds: &[super::state::HoldState],
) -> Result<()> {
    for h in holds {
        tx.execute(
            "INSERT INTO holds(id, target_kind, target_id, reason, created_at, created_by, released_at, released_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET released_at = coalesce(holds.released_at, excluded.released_at),
                released_by = coalesce(holds.released_by, excluded.released_by)",
            params![h.id, kind, target, h.reason, h.created_at, h.created_by, h.released_at, h.released_by],
        )?;
    }
    Ok(())
}

/// Applies a project's own record (its name, with a clash name if another local project has
/// it; its holds). Returns the merge base to keep.
fn apply_project(
    tx: &Transaction<'_>,
    project_id: &str,
    remote: ProjectPayload,
) -> Result<super::state::ItemBase> {
    let remote_base = Payload::Project(remote.clone()).base();
    let local = read_state(tx, project_id, project_id)?;
    let is_pending = pending(tx, project_id)?;
    let mut state = match (&local, is_pending) {
        (Some(Payload::Project(l)), true) => {
            let base = base_of(tx, project_id)?.map(|(_, _, b)| b);
            merge_project(base.as_ref(), l, &remote)
        }
        _ => remote,
    };
    // Two projects with one name: the one with the larger id takes a clash name, the same
    // on every device.
    let other: Option<String> = tx
        .query_row(
            "SELECT id FROM projects WHERE name = ?1 AND id <> ?2",
            [&state.name, project_id],
            |r| r.get(0),
        )
        .optional()?;
    let mut renamed = false;
    if let Some(other) = other {
        if project_id > other.as_str() {
            state.name = clash_name(&state.name, project_id, 0);
            names::validate_project_name(&state.name)?;
            renamed = true;
        } else {
            let new = clash_name(&state.name, &other, 0);
            names::validate_project_name(&new)?;
            tx.execute(
                "UPDATE projects SET name = ?1 WHERE id = ?2",
                [&new, &other],
            )?;
            crate::changes::mark(tx, &other, &other)?;
        }
    }
    tx.execute(
        "UPDATE projects SET name = ?1 WHERE id = ?2",
        [&state.name, project_id],
    )?;
    write_holds(tx, "project", project_id, &state.holds)?;
    if is_pending || renamed {
        settle_pending(
            tx,
            project_id,
            project_id,
            Payload::Project(state).base() != remote_base,
        )?;
    }
    Ok(remote_base)
}
