//! The whole-vault check: catalog integrity, every live blob version decrypts and matches its
//! SHA-256, no row points at a missing blob, no blob is orphaned. A reader: it runs while an
//! import or a sync writes, and tells apart what a running writer explains from real damage.

use super::{blob_err, file_id_of, SinkWriter, TransferProgress, VerifyProblem, VerifyReport};
use crate::blob_files;
use crate::error::{Error, ErrorCode, Result};
use crate::items::label;
use crate::model::ItemInfo;
use crate::packs::BlobLoc;
use crate::vault::Vault;
use labvault_crypto::{decrypt_blob, WrappedKey};
use labvault_governance::audit::{actions, resources};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

impl Vault {
    /// Verifies blobs and catalog (`data.verify`; result `failure` when problems are found).
    /// Changes nothing; problems are reported (each naming its item), not fixed.
    pub fn verify(
        &self,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<VerifyReport> {
        let out = self.verify_all(progress, cancel);
        let (result, detail) = match &out {
            Ok(rep) if rep.is_ok() => (labvault_governance::audit::Outcome::Success, String::new()),
            Ok(rep) => (
                labvault_governance::audit::Outcome::Failure,
                format!("problems={}", rep.problems.len()),
            ),
            Err(e) => (
                labvault_governance::audit::Outcome::Failure,
                e.code().as_str().to_string(),
            ),
        };
        self.record(
            actions::DATA_VERIFY,
            crate::audit::Subject::new(resources::VAULT, detail),
            result,
        )?;
        out
    }

    /// Checks the whole vault: catalog integrity, every live blob version decrypts and matches
    /// its SHA-256, no row points at a missing blob, no blob is orphaned. Changes nothing;
    /// problems are reported (each naming its item), not fixed.
    fn verify_all(
        &self,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        // The blob files before the catalog snapshot: a blob committed later is not listed,
        // and one listed and committed is referenced in the snapshot.
        let files = blob_files::list(&self.dir)?;
        let conn = self.reader()?;
        // Every catalog read below sees one committed state, whatever a writer does meanwhile.
        conn.execute_batch("BEGIN")?;
        let snapshot = Snapshot(&conn);
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            report.problems.push(VerifyProblem {
                code: ErrorCode::CorruptCatalog,
                item_id: None,
                project: None,
                area: None,
                path: None,
                version: None,
                message: format!("catalog integrity check failed: {check}"),
            });
        }
        struct V {
            item: ItemInfo,
            version: u32,
            blob_id: String,
            pack: (Option<String>, Option<i64>, Option<i64>),
            wrapped: Vec<u8>,
            size: u64,
            sha: String,
        }
        let items: std::collections::HashMap<String, ItemInfo> = {
            let mut st = conn.prepare(crate::items::ITEM_SELECT)?;
            let rows = st.query_map([], crate::items::item_from_row)?;
            rows.map(|r| r.map(|i| (i.id.clone(), i)))
                .collect::<rusqlite::Result<_>>()?
        };
        let mut versions = Vec::new();
        {
            let mut st = conn.prepare(
                "SELECT item_id, version, blob_id, wrapped_data_key, size, sha256,
                        pack_id, pack_offset, pack_len
                 FROM item_versions WHERE blob_id IS NOT NULL ORDER BY item_id, version",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let item_id: String = r.get(0)?;
                let Some(item) = items.get(&item_id) else {
                    continue;
                };
                let wrapped: Option<Vec<u8>> = r.get(3)?;
                versions.push(V {
                    item: item.clone(),
                    version: r.get(1)?,
                    blob_id: r.get(2)?,
                    pack: (r.get(6)?, r.get(7)?, r.get(8)?),
                    wrapped: wrapped.unwrap_or_default(),
                    size: r.get::<_, i64>(4)? as u64,
                    sha: r.get(5)?,
                });
            }
        }
        // Items whose current version row is missing would not even be listed.
        let dangling: i64 = conn.query_row(
            "SELECT count(*) FROM items i WHERE NOT EXISTS
               (SELECT 1 FROM item_versions v WHERE v.item_id = i.id AND v.version = i.current_version)",
            [],
            |r| r.get(0),
        )?;
        if dangling > 0 {
            report.problems.push(VerifyProblem {
                code: ErrorCode::CorruptCatalog,
                item_id: None,
                project: None,
                area: None,
                path: None,
                version: None,
                message: format!("{dangling} item(s) have no current version row"),
            });
        }
        // Files no committed row references are expected while an operation that adds or
        // removes blobs runs (or after one that did not finish: the next unlock sweeps them).
        let referenced = blob_files::referenced(&conn)?;
        let settled = !blob_files::unsettled(&self.dir);
        for (name, path) in files {
            if settled && !referenced.contains(&name) {
                report.problems.push(VerifyProblem {
                    code: ErrorCode::CorruptCatalog,
                    item_id: None,
                    project: None,
                    area: None,
                    path: None,
                    version: None,
                    message: format!(
                        "orphan blob {} is referenced by no catalog row",
                        path.display()
                    ),
                });
            }
        }
        drop(snapshot);
        drop(conn);
        let total: u64 = versions.iter().map(|v| v.size).sum();
        let mut done = 0u64;
        let mut pkeys = std::collections::HashMap::new();
        for v in &versions {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let what = format!("{} (version {})", label(&v.item), v.version);
            let problem = |e: Error| VerifyProblem {
                code: e.code(),
                item_id: Some(v.item.id.clone()),
                project: Some(v.item.project.clone()),
                area: Some(v.item.area),
                path: Some(v.item.path.clone()),
                version: Some(v.version),
                message: e.to_string(),
            };
            if !pkeys.contains_key(&v.item.project_id) {
                let k = self.project_key(&v.item.project_id)?;
                pkeys.insert(v.item.project_id.clone(), k);
            }
            let pkey = &pkeys[&v.item.project_id];
            let res = (|| -> Result<()> {
                let file_id = file_id_of(&v.blob_id)?;
                let wrapped =
                    WrappedKey::from_bytes(v.wrapped.clone()).map_err(|e| blob_err(e, &what))?;
                let dkey = pkey
                    .unwrap_data_key(&wrapped, &file_id)
                    .map_err(|e| blob_err(e, &what))?;
                let (pack, off, len) = v.pack.clone();
                let f = BlobLoc::from_row(&self.dir, &v.blob_id, pack, off, len)?.open(&what)?;
                let path = v.item.path.as_str();
                let mut sink = SinkWriter {
                    inner: io::sink(),
                    cancel,
                    cancelled: false,
                    error: None,
                };
                let s = decrypt_blob(
                    &dkey,
                    &file_id,
                    io::BufReader::with_capacity(1 << 20, f),
                    &mut sink,
                    &mut |d| {
                        progress(&TransferProgress {
                            path,
                            file_done: d,
                            file_total: v.size,
                            overall_done: done + d.min(v.size),
                            overall_total: total,
                        })
                    },
                )
                .map_err(|e| {
                    if sink.cancelled {
                        Error::Cancelled
                    } else {
                        blob_err(e, &what)
                    }
                })?;
                if hex::encode(s.sha256) != v.sha || s.plaintext_len != v.size {
                    return Err(Error::Tampered {
                        what: what.clone(),
                        detail: "content does not match the recorded SHA-256".into(),
                    });
                }
                Ok(())
            })();
            match res {
                Ok(()) => {
                    report.blobs_checked += 1;
                    report.bytes_checked += v.size;
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                // A blob gone because a writer erased the item since the snapshot is no damage.
                Err(e) if e.code() == ErrorCode::NotFound && self.erased_since(&v.item.id)? => {}
                Err(e) => report.problems.push(problem(e)),
            }
            done += v.size;
        }
        Ok(report)
    }

    /// Whether the item has been erased by now (after a verification snapshot was taken).
    fn erased_since(&self, item_id: &str) -> Result<bool> {
        Ok(self.item(item_id)?.state == crate::model::ItemState::Erased)
    }
}

/// Ends the read transaction of a verification snapshot, however the check ends.
struct Snapshot<'c>(&'c rusqlite::Connection);

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("COMMIT");
    }
}
