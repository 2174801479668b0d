//! Read paths for front ends that *show* data instead of copying it out: a paged, sorted item
//! listing (a window of 100,000 items must not be loaded to draw 40 rows) and in-memory
//! decryption of byte ranges for previews, so no plaintext is written to disk for viewing.
//!
//! Viewing is audited like every other data access: [`Vault::view_open`] records one
//! `data.view` event and returns the only handle [`Vault::view_read`] accepts, so a range read
//! can never happen without a recorded view.

use crate::audit::AuditFilter;
use crate::error::{Error, Result};
use crate::items::{self, item_from_row, label, ITEM_SELECT};
use crate::model::{Area, DataType, ItemInfo, ItemState};
use crate::packs::BlobLoc;
use crate::retention::ItemRetention;
use crate::transfer::blob_err;
use crate::vault::Vault;
use crate::{holds, projects};
use labvault_crypto::{decrypt_range, WrappedKey};
use labvault_governance::audit::{actions, resources, AuditEvent};
use rusqlite::types::ToSql;
use rusqlite::{params, OptionalExtension};

use std::io::BufReader;

/// Largest page [`Vault::items_page`] returns (a screen shows far fewer rows).
pub const MAX_ITEMS_PAGE: u64 = 5_000;

/// Largest range [`Vault::view_read`] decrypts at once; bigger requests are clamped.
pub const MAX_VIEW_READ: u64 = 64 << 20;

/// Column an item page is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SortKey {
    /// Logical path (default).
    #[default]
    Path,
    /// Plaintext size.
    Size,
    /// First import.
    Created,
    /// Last change (new version, rename).
    Modified,
    /// Media type.
    MediaType,
    /// Data type.
    DataType,
}

/// What an item page shows; every filter is combined with AND.
#[derive(Clone, Debug, Default)]
pub struct ItemQuery {
    /// Project name or id.
    pub project: String,
    /// Area; `None` = every area.
    pub area: Option<Area>,
    /// Case-insensitive substring of the logical path.
    pub text: Option<String>,
    /// Data type.
    pub data_type: Option<DataType>,
    /// Exact media type.
    pub media_type: Option<String>,
    /// States to include; empty = active only.
    pub states: Vec<ItemState>,
    /// Sort column.
    pub sort: SortKey,
    /// Descending order.
    pub desc: bool,
}

/// One page of [`Vault::items_page`].
#[derive(Clone, Debug)]
pub struct ItemPage {
    /// Items matching the query (all pages).
    pub total: u64,
    /// This page's rows, in order.
    pub rows: Vec<ItemInfo>,
}

/// Proof that a view of one item was opened (and audited) by [`Vault::view_open`]; the only way
/// to read its plaintext in memory. Holds no key: the data key stays wrapped until each read,
/// so a handle that outlives the unlocked vault decrypts nothing.
#[derive(Debug)]
pub struct ViewHandle {
    item_id: String,
    project_id: String,
    blob_id: String,
    loc: BlobLoc,
    wrapped: WrappedKey,
    size: u64,
    media_type: String,
    what: String,
}

impl ViewHandle {
    /// The item viewed.
    pub fn item_id(&self) -> &str {
        &self.item_id
    }
    /// Plaintext size in bytes (authenticated by the blob's final chunk on every read).
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Media type recorded for the item.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }
}

impl Vault {
    /// A page of items, sorted and filtered in SQL (`ORDER BY ... LIMIT ... OFFSET`), with the
    /// total count, so a list of any size costs one bounded query per screenful.
    pub fn items_page(&self, q: &ItemQuery, offset: u64, limit: u64) -> Result<ItemPage> {
        let conn = self.reader()?;
        let project = projects::find(&conn, &q.project)?;
        let (count_sql, sql, args) = page_sql(q, project.id, offset, limit);
        let refs: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let total: i64 = conn.query_row(&count_sql, refs.as_slice(), |r| r.get(0))?;
        let mut st = conn.prepare(&sql)?;
        let rows = st
            .query_map(refs.as_slice(), item_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ItemPage {
            total: total as u64,
            rows,
        })
    }

    /// Opens an active item for viewing and records `data.view` (once per opening, however
    /// many ranges are read afterwards). Erased items give `erased`, others not active
    /// `invalid_argument`.
    pub fn view_open(&self, item_id: &str) -> Result<ViewHandle> {
        self.read_op(
            actions::DATA_VIEW,
            items::resource_of(self, item_id),
            || Ok((self.view_handle(item_id, None)?, String::new())),
        )
    }

    /// Opens one version of an active item for viewing (`data.view`, detail `version=<n>`):
    /// the two sides of a sync conflict are shown side by side.
    pub fn view_open_version(&self, item_id: &str, version: u32) -> Result<ViewHandle> {
        self.read_op(
            actions::DATA_VIEW,
            items::resource_of(self, item_id),
            || {
                Ok((
                    self.view_handle(item_id, Some(version))?,
                    format!("version={version}"),
                ))
            },
        )
    }

    /// A handle on `version` of an active item (its current version when `None`), without an
    /// audit event: for operations that record their own.
    pub(crate) fn view_handle(&self, item_id: &str, version: Option<u32>) -> Result<ViewHandle> {
        let conn = self.reader()?;
        let mut item = items::get(&conn, item_id)?;
        if item.state != ItemState::Active {
            return Err(crate::items::wrong_state(&item, &[ItemState::Active]));
        }
        if let Some(v) = version {
            item.version = v;
            item.size = conn
                .query_row(
                    "SELECT size FROM item_versions WHERE item_id = ?1 AND version = ?2",
                    params![item.id, v],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .ok_or_else(|| Error::NotFound(format!("version {v} of {}", label(&item))))?
                as u64;
        }
        drop(conn);
        self.check_lease(&item.project_id)?;
        let conn = self.reader()?;
        let what = label(&item);
        type Row = (
            Option<String>,
            Option<Vec<u8>>,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let row: Option<Row> = conn
            .query_row(
                "SELECT blob_id, wrapped_data_key, pack_id, pack_offset, pack_len
                 FROM item_versions WHERE item_id = ?1 AND version = ?2",
                params![item.id, item.version],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let (blob_id, wrapped, loc) = match row {
            Some((Some(b), Some(w), pack, off, len)) => {
                let loc = BlobLoc::from_row(&self.dir, &b, pack, off, len)?;
                (b, w, loc)
            }
            Some(_) => return Err(Error::Erased(what)),
            None => {
                return Err(Error::CorruptCatalog(format!(
                    "{what} has no version {}",
                    item.version
                )))
            }
        };
        let wrapped = WrappedKey::from_bytes(wrapped).map_err(|e| blob_err(e, &what))?;
        Ok(ViewHandle {
            item_id: item.id,
            project_id: item.project_id,
            blob_id,
            loc,
            wrapped,
            size: item.size,
            media_type: item.media_type,
            what,
        })
    }

    /// Decrypts `[offset, offset + len)` of a viewed item into memory (clamped to the item's
    /// size and to [`MAX_VIEW_READ`]). Only the chunks covering the range are read; each is
    /// authenticated (and the final chunk always is, which fixes the length) before any byte
    /// of it is returned, so a tampered or truncated blob yields `tampered`/`truncated`, never
    /// unauthenticated bytes.
    pub fn view_read(&self, view: &ViewHandle, offset: u64, len: u64) -> Result<Vec<u8>> {
        let len = len.min(MAX_VIEW_READ);
        let mut file_id = [0u8; 16];
        hex::decode_to_slice(&view.blob_id, &mut file_id)
            .map_err(|_| Error::CorruptCatalog(format!("malformed blob id {:?}", view.blob_id)))?;
        let pkey = self.project_key(&view.project_id)?;
        let dkey = pkey
            .unwrap_data_key(&view.wrapped, &file_id)
            .map_err(|e| blob_err(e, &view.what))?;
        let file = view.loc.open(&view.what)?;
        decrypt_range(
            &dkey,
            &file_id,
            BufReader::with_capacity(1 << 16, file),
            offset,
            len,
        )
        .map_err(|e| blob_err(e, &view.what))
    }
}

/// What the details pane of one item shows, read in one call.
#[derive(Clone, Debug)]
pub struct ItemDetails {
    /// The item.
    pub item: ItemInfo,
    /// Its retention facts.
    pub retention: ItemRetention,
    /// The reason of an active legal hold on it or its project.
    pub hold_reason: Option<String>,
    /// Its newest audit events, newest first.
    pub history: Vec<AuditEvent>,
}

impl Vault {
    /// An item with its retention status, hold and audit history (its newest
    /// `history_limit` events).
    pub fn item_details(&self, item_id: &str, history_limit: usize) -> Result<ItemDetails> {
        let conn = self.reader()?;
        let item = items::get(&conn, item_id)?;
        let hold_reason = holds::hold_reason(&conn, &item)?;
        let filter = AuditFilter {
            resource_prefix: Some(resources::item(&item.project_id, &item.id)),
            ..Default::default()
        };
        let history = crate::audit::query(&conn, &filter, history_limit, None)?.events;
        drop(conn);
        Ok(ItemDetails {
            retention: self.item_retention(&item.id)?,
            item,
            hold_reason,
            history,
        })
    }
}

/// The count and page statements of [`Vault::items_page`] and their arguments (`?1` is the
/// project id).
fn page_sql(
    q: &ItemQuery,
    project_id: String,
    offset: u64,
    limit: u64,
) -> (String, String, Vec<Box<dyn ToSql>>) {
    let limit = limit.clamp(1, MAX_ITEMS_PAGE);
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(project_id)];
    let mut wh = String::from(" WHERE i.project_id = ?1");
    if let Some(a) = q.area {
        args.push(Box::new(a.as_str()));
        wh += &format!(" AND i.area = ?{}", args.len());
    }
    if let Some(t) = q.text.as_deref().filter(|t| !t.is_empty()) {
        args.push(Box::new(t.to_lowercase()));
        wh += &format!(" AND instr(lower(i.path), ?{}) > 0", args.len());
    }
    if let Some(d) = q.data_type {
        args.push(Box::new(d.as_str()));
        wh += &format!(" AND i.data_type = ?{}", args.len());
    }
    if let Some(m) = &q.media_type {
        args.push(Box::new(m.clone()));
        wh += &format!(" AND i.media_type = ?{}", args.len());
    }
    let states: Vec<ItemState> = if q.states.is_empty() {
        vec![ItemState::Active]
    } else {
        q.states.clone()
    };
    if let [one] = states.as_slice() {
        // An equality, not a one-value IN: SQLite then reads active items in path order
        // from the partial unique index `items_active_path`, so the first page of 100,000
        // items reads ~`limit` rows instead of sorting all of them (measured: 3.4 s at launch).
        args.push(Box::new(one.as_str()));
        wh += &format!(" AND i.state = ?{}", args.len());
    } else if states.len() < ItemState::ALL.len() {
        let mut marks = Vec::new();
        for s in &states {
            args.push(Box::new(s.as_str()));
            marks.push(format!("?{}", args.len()));
        }
        wh += &format!(" AND i.state IN ({})", marks.join(", "));
    }
    let col = match q.sort {
        SortKey::Path => "i.path",
        SortKey::Size => "v.size",
        SortKey::Created => "i.created_at",
        SortKey::Modified => "i.updated_at",
        SortKey::MediaType => "i.media_type",
        SortKey::DataType => "i.data_type",
    };
    let dir = if q.desc { "DESC" } else { "ASC" };
    // Ties are broken by path then id so paging is stable (no row shows up twice).
    let sql = format!(
        "{ITEM_SELECT}{wh} ORDER BY {col} {dir}, i.path {dir}, i.id {dir} LIMIT {limit} OFFSET {offset}"
    );
    (format!("SELECT count(*) FROM items i{wh}"), sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImportOptions, KdfParams, Passphrase, VaultOptions};
    use std::sync::atomic::AtomicBool;

    fn vault_with(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Vault) {
        let tmp = tempfile::tempdir().unwrap();
        let opts = VaultOptions {
            kdf: Some(KdfParams::FLOOR),
            ..Default::default()
        };
        let (v, _rk) = Vault::create(
            &tmp.path().join("v"),
            &Passphrase::new("unit test passphrase".into()),
            opts,
        )
        .unwrap();
        v.create_project("p").unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let mut paths = Vec::new();
        for (name, data) in files {
            let p = src.join(name);
            std::fs::write(&p, data).unwrap();
            paths.push(p);
        }
        v.import(
            "p",
            Area::Uploads,
            &paths,
            &ImportOptions::default(),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        (tmp, v)
    }

    fn query(sort: SortKey, desc: bool) -> ItemQuery {
        ItemQuery {
            project: "p".into(),
            area: Some(Area::Uploads),
            sort,
            desc,
            ..Default::default()
        }
    }

    #[test]
    fn pages_are_sorted_filtered_and_stable() {
        let (_t, v) = vault_with(&[
            ("b.csv", vec![1; 30]),
            ("a.txt", vec![1; 10]),
            ("c.txt", vec![1; 20]),
        ]);
        let paths = |p: ItemPage| p.rows.into_iter().map(|i| i.path).collect::<Vec<_>>();
        assert_eq!(
            paths(v.items_page(&query(SortKey::Path, false), 0, 10).unwrap()),
            ["a.txt", "b.csv", "c.txt"]
        );
        assert_eq!(
            paths(v.items_page(&query(SortKey::Size, true), 0, 10).unwrap()),
            ["b.csv", "c.txt", "a.txt"]
        );
        let page = v.items_page(&query(SortKey::Path, false), 1, 1).unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(paths(page), ["b.csv"]);
        let mut q = query(SortKey::Path, false);
        q.text = Some("TXT".into());
        let page = v.items_page(&q, 0, 10).unwrap();
        assert_eq!(page.total, 2);
        q.text = None;
        q.media_type = Some("text/csv".into());
        assert_eq!(paths(v.items_page(&q, 0, 10).unwrap()), ["b.csv"]);
    }

    /// The default listing (active items by path, either direction) must come straight from
    /// an index in order: a plan that sorts reads and sorts every item of a 100,000-item area
    /// before showing the first rows (seconds at launch).
    #[test]
    fn the_default_listing_is_read_in_index_order_without_a_sort() {
        let (_t, v) = vault_with(&[("a.txt", vec![1; 10])]);
        for desc in [false, true] {
            let (_, sql, args) = page_sql(&query(SortKey::Path, desc), "pid".into(), 0, 200);
            let refs: Vec<&dyn ToSql> = args.iter().map(|b| b.as_ref()).collect();
            let conn = v.reader().unwrap();
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = st
                .query_map(refs.as_slice(), |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = plan.join("\n");
            assert!(
                plan.contains("SEARCH i USING INDEX items_active_path"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[test]
    fn deleted_items_only_when_asked_for() {
        let (_t, v) = vault_with(&[("a.txt", vec![1; 10]), ("b.txt", vec![2; 10])]);
        let a = v
            .find_item(Some("p"), None, "a.txt", &[ItemState::Active])
            .unwrap();
        v.soft_delete(&a.id).unwrap();
        assert_eq!(
            v.items_page(&query(SortKey::Path, false), 0, 10)
                .unwrap()
                .total,
            1
        );
        let mut q = query(SortKey::Path, false);
        q.states = vec![ItemState::SoftDeleted];
        let page = v.items_page(&q, 0, 10).unwrap();
        assert_eq!(page.rows[0].id, a.id);
    }

    #[test]
    fn ranges_decrypt_exact_bytes_across_chunks_and_are_audited_once() {
        let data: Vec<u8> = (0..2_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_t, v) = vault_with(&[("big.bin", data.clone())]);
        let item = v
            .find_item(Some("p"), None, "big.bin", &[ItemState::Active])
            .unwrap();
        let before = v.audit_count().unwrap();
        let h = v.view_open(&item.id).unwrap();
        assert_eq!(v.audit_count().unwrap(), before + 1, "one data.view event");
        assert_eq!(h.size(), data.len() as u64);
        for (off, len) in [
            (0u64, 10u64),
            (1_048_570, 20),
            (2_000_000, 1_000_000),
            (5, 0),
        ] {
            let got = v.view_read(&h, off, len).unwrap();
            let end = (off + len).min(data.len() as u64) as usize;
            assert_eq!(got, &data[off as usize..end], "range {off}+{len}");
        }
        assert_eq!(
            v.audit_count().unwrap(),
            before + 1,
            "reads are not audited again"
        );
        let page = v
            .audit_query(
                &crate::audit::AuditFilter {
                    action_prefix: Some("data.view".into()),
                    ..Default::default()
                },
                10,
                None,
            )
            .unwrap();
        assert_eq!(page.events.len(), 1);
    }

    #[test]
    fn tampered_chunk_is_refused_not_returned() {
        let data = vec![42u8; 3 << 20];
        let (_t, v) = vault_with(&[("x.bin", data)]);
        let item = v
            .find_item(Some("p"), None, "x.bin", &[ItemState::Active])
            .unwrap();
        let h = v.view_open(&item.id).unwrap();
        let path = crate::layout::blob_path(v.dir(), &h.blob_id);
        let mut blob = std::fs::read(&path).unwrap();
        let i = labvault_crypto::HEADER_LEN + (1 << 20) + 100; // inside chunk 1
        blob[i] ^= 1;
        std::fs::write(&path, &blob).unwrap();
        assert_eq!(
            v.view_read(&h, 0, 10).unwrap(),
            vec![42u8; 10],
            "chunk 0 intact"
        );
        let err = v.view_read(&h, (1 << 20) + 5, 10).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::Tampered);
    }

    #[test]
    fn erased_items_cannot_be_viewed() {
        let (_t, v) = vault_with(&[("a.txt", b"hello".to_vec())]);
        let item = v
            .find_item(Some("p"), None, "a.txt", &[ItemState::Active])
            .unwrap();
        v.purge(&item.id, "test").unwrap();
        assert_eq!(
            v.view_open(&item.id).unwrap_err().code(),
            crate::ErrorCode::Erased
        );
    }
}
