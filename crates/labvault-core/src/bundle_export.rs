//! Writing a project bundle (format in [`crate::bundle`]): every live item decrypted into
//! `files/<area>/<path>` by the area export (verified against its SHA-256 as it is written), the
//! manifest with retention and holds, the project's audit slice, then `bundle.json`.
//!
//! The bundle is built under a hidden name beside the destination and renamed into place only
//! when complete, so a bundle that fails or is cancelled half-way leaves nothing that looks like
//! one. A `.tar` destination gets the same tree as one archive (metadata first, so a verifier
//! can stream it).

use crate::bundle::{
    manifest_csv, verify_md, BundleAudit, BundleEntry, BundleFileDigest, BundleInfo, AUDIT_CSV,
    AUDIT_JSONL, AUDIT_XLSX, AUDIT_XLSX_MAX_EVENTS, BUNDLE_FILE, BUNDLE_FORMAT, FILES_DIR,
    MANIFEST_CSV, MANIFEST_JSON, MANIFEST_XLSX, METADATA_FILES, VERIFY_MD,
};
use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, random_hex, rfc3339, Staging};
use crate::model::{Area, ItemState, ListFilter};
use crate::transfer::{ExportOptions, TransferProgress};
use crate::vault::Vault;
use labvault_governance::audit::AuditEvent;
use labvault_governance::audit::{actions, resources};
use labvault_governance::export::{ExportFormat, ExportWriter};
use labvault_governance::retention::DisplayState;
use labvault_sheets::{Cell, Column, Kind, Sheet};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`Vault::export_project_bundle`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BundleSummary {
    /// The bundle (directory or `.tar`).
    pub path: PathBuf,
    /// Files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Audit events of the project in it.
    pub audit_events: u64,
    /// SHA-256 of its `bundle.json`, also recorded in the export's audit event.
    pub bundle_digest: String,
}

/// Writes `bytes` to `dir/name`, synced; returns its digest row.
fn write_meta(dir: &Path, name: &str, bytes: &[u8]) -> Result<BundleFileDigest> {
    let p = dir.join(name);
    let mut f = File::create(&p).map_err(|e| Error::io_path("writing", &p, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io_path("writing", &p, e))?;
    Ok(BundleFileDigest {
        name: name.to_string(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

/// The ustar/GNU header of a regular file (a GNU long-name entry first when the path is longer
/// than the header's 100 bytes), written straight to the archive.
fn write_tar_header(w: &mut dyn Write, path: &str, size: u64, mtime: i64) -> std::io::Result<()> {
    let bytes = path.as_bytes();
    if bytes.len() > 100 {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(bytes.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_cksum();
        w.write_all(h.as_bytes())?;
        w.write_all(bytes)?;
        w.write_all(&[0])?;
        write_tar_padding(w, bytes.len() as u64 + 1)?;
    }
    let mut h = tar::Header::new_gnu();
    let n = bytes.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&bytes[..n]);
    h.set_mode(0o644);
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h.set_size(size);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    w.write_all(h.as_bytes())
}

/// Zeros up to the next 512-byte block after `size` bytes of content.
fn write_tar_padding(w: &mut dyn Write, size: u64) -> std::io::Result<()> {
    let rem = (size % 512) as usize;
    if rem != 0 {
        w.write_all(&[0u8; 512][..512 - rem])?;
    }
    Ok(())
}

fn parse_time(s: &str) -> Cell {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(Cell::DateTime)
        .unwrap_or(Cell::Empty)
}

fn columns(spec: &[(&str, Kind)]) -> Vec<Column> {
    spec.iter().map(|(n, k)| Column::new(*n, *k)).collect()
}

/// The manifest as a spreadsheet (sizes as numbers, times as date-times, hashes as text).
fn manifest_sheet(entries: &[BundleEntry]) -> Sheet {
    use Kind::*;
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                Cell::Text(e.id.clone()),
                Cell::Text(e.area.clone()),
                Cell::Text(e.path.clone()),
                Cell::Text(e.file.clone()),
                Cell::Int(i64::try_from(e.size).unwrap_or(i64::MAX)),
                Cell::Text(e.sha256.clone()),
                Cell::Text(e.media_type.clone()),
                Cell::Text(e.data_type.clone()),
                Cell::Text(e.created_by.clone()),
                parse_time(&e.created_at),
                parse_time(&e.updated_at),
                Cell::Int(i64::from(e.version)),
                Cell::Text(e.retention_period.clone()),
                parse_time(&e.retention_expires_at),
                Cell::Bool(e.on_hold),
            ]
        })
        .collect();
    Sheet {
        name: "Manifest".into(),
        columns: columns(&[
            ("id", Code),
            ("area", Text),
            ("path", Text),
            ("file", Text),
            ("size", Integer),
            ("sha256", Code),
            ("media_type", Text),
            ("data_type", Text),
            ("created_by", Text),
            ("created_at", DateTime),
            ("updated_at", DateTime),
            ("version", Integer),
            ("retention_period", Text),
            ("retention_expires_at", DateTime),
            ("on_hold", Bool),
        ]),
        rows,
    }
}

/// The audit log's columns as a spreadsheet.
fn audit_columns() -> Vec<Column> {
    use Kind::*;
    columns(&[
        ("timestamp", DateTime),
        ("user", Text),
        ("action", Text),
        ("resource", Text),
        ("ip_address", Text),
        ("user_agent", Text),
        ("result", Text),
        ("detail", Text),
        ("device_id", Code),
        ("seq", Integer),
        ("prev_hash", Code),
        ("hash", Code),
    ])
}

fn audit_row(ev: &AuditEvent) -> Vec<Cell> {
    vec![
        Cell::DateTime(ev.timestamp),
        Cell::Text(ev.user.clone()),
        Cell::Text(ev.action.as_str().to_string()),
        Cell::Text(ev.resource.clone()),
        Cell::Text(ev.ip_address.clone()),
        Cell::Text(ev.user_agent.clone()),
        Cell::Text(ev.result.as_str().to_string()),
        Cell::Text(ev.detail.clone()),
        Cell::Text(ev.device_id.clone()),
        Cell::Int(i64::try_from(ev.seq).unwrap_or(i64::MAX)),
        Cell::Text(hex::encode(ev.prev_hash)),
        Cell::Text(hex::encode(ev.hash)),
    ]
}

fn xlsx(sheet: Sheet) -> Result<Vec<u8>> {
    labvault_sheets::workbook(&[sheet]).map_err(|e| Error::Internal(format!("spreadsheet: {e}")))
}

impl Vault {
    /// Exports every live item of `project` with its manifest and audit slice into a bundle at
    /// `dest`: a new directory, or one `.tar` file when `dest` ends in `.tar`. Refuses an
    /// existing destination; leaves nothing at `dest` unless the whole bundle was written.
    /// Records `data.export` on the project with the bundle's digest.
    pub fn export_project_bundle(
        &self,
        project: &str,
        dest: &Path,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<BundleSummary> {
        let p = self.project(project)?;
        self.read_op(actions::DATA_EXPORT, resources::project(&p.id), || {
            let s = self.write_bundle(&p.id, &p.name, dest, progress, cancel)?;
            let detail = format!(
                "bundle files={} bytes={} audit_events={} bundle_digest={}",
                s.files, s.bytes, s.audit_events, s.bundle_digest
            );
            Ok((s, detail))
        })
    }

    fn write_bundle(
        &self,
        project_id: &str,
        project_name: &str,
        dest: &Path,
        progress: &mut dyn FnMut(&TransferProgress<'_>),
        cancel: &AtomicBool,
    ) -> Result<BundleSummary> {
        let staging = Staging::beside(dest, "bundle")?;
        let staging_dir = staging.path().to_path_buf();
        let parent = staging.parent().to_path_buf();
        let as_tar = dest
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tar"));

        // The items and what retention says of each.
        let items = self.list(&ListFilter {
            project: Some(project_id.to_string()),
            ..Default::default()
        })?;
        let mut retention = HashMap::new();
        let mut offset = 0;
        loop {
            let page = self.retention_items_page(Some(project_id), offset, 5_000)?;
            let n = page.rows.len() as u64;
            for r in page.rows {
                retention.insert(r.item_id.clone(), r);
            }
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
        }
        let total: u64 = items.iter().map(|i| i.size).sum();
        let total_all = total;

        // The files, area by area (each verified against its SHA-256 as it is decrypted).
        // A directory bundle gets them now through the area export; a `.tar` streams them below.
        let files_root = staging_dir.join(FILES_DIR);
        let mut done_before = 0u64;
        if !as_tar {
            fs::create_dir(&files_root).map_err(|e| Error::io_path("creating", &files_root, e))?;
        }
        for area in Area::ALL.iter().filter(|_| !as_tar) {
            let in_area: u64 = items
                .iter()
                .filter(|i| i.area == *area)
                .map(|i| i.size)
                .sum();
            if !items.iter().any(|i| i.area == *area) {
                continue;
            }
            let dir = files_root.join(area.as_str());
            fs::create_dir(&dir).map_err(|e| Error::io_path("creating", &dir, e))?;
            let report = self.export_area_to(
                project_id,
                *area,
                &dir,
                &ExportOptions::default(),
                &mut |pr| {
                    progress(&TransferProgress {
                        path: pr.path,
                        file_done: pr.file_done,
                        file_total: pr.file_total,
                        overall_done: done_before + pr.overall_done,
                        overall_total: total_all,
                    })
                },
                cancel,
            )?;
            if let Some(f) = report.failed.first() {
                let detail = format!("{}; the bundle was not written", f.message);
                return Err(match f.code {
                    crate::ErrorCode::Tampered => Error::Tampered {
                        what: f.path.clone(),
                        detail,
                    },
                    _ => Error::InvalidArgument(format!(
                        "{} could not be exported: {detail}",
                        f.path
                    )),
                });
            }
            done_before += in_area;
        }

        // The manifest, checked against what was written (an import meanwhile would differ).
        let mut entries = Vec::with_capacity(items.len());
        for i in &items {
            let file = format!("{FILES_DIR}/{}/{}", i.area, i.path);
            let on_disk = fs::symlink_metadata(staging_dir.join(&file)).map(|m| m.len());
            if !as_tar && on_disk.ok() != Some(i.size) {
                return Err(Error::InvalidArgument(format!(
                    "the project changed during the export ({} is not as listed); export again",
                    file
                )));
            }
            let r = retention.get(&i.id);
            entries.push(BundleEntry {
                id: i.id.clone(),
                area: i.area.to_string(),
                path: i.path.clone(),
                file,
                size: i.size,
                sha256: i.sha256.clone(),
                media_type: i.media_type.clone(),
                data_type: i.data_type.to_string(),
                created_by: i.created_by.clone(),
                created_at: rfc3339(i.created_at),
                updated_at: rfc3339(i.updated_at),
                version: i.version,
                retention_period: r.map(|r| r.period.clone()).unwrap_or_default(),
                retention_expires_at: r.map(|r| rfc3339(r.expires_at)).unwrap_or_default(),
                on_hold: r.is_some_and(|r| r.state == DisplayState::OnHold),
            });
        }
        debug_assert!(items.iter().all(|i| i.state == ItemState::Active));

        // The audit slice: every event on the project or its items, in chain order.
        let jsonl_path = staging_dir.join(AUDIT_JSONL);
        let csv_path = staging_dir.join(AUDIT_CSV);
        let open = |p: &Path| -> Result<BufWriter<File>> {
            Ok(BufWriter::new(
                File::create(p).map_err(|e| Error::io_path("writing", p, e))?,
            ))
        };
        let wrap = |e: labvault_governance::export::ExportError| {
            Error::Internal(format!("writing the audit slice: {e}"))
        };
        let mut jsonl = ExportWriter::new(open(&jsonl_path)?, ExportFormat::Jsonl).map_err(wrap)?;
        let mut csv = ExportWriter::new(open(&csv_path)?, ExportFormat::Csv).map_err(wrap)?;
        let filter = crate::audit::AuditFilter {
            resource_prefix: Some(resources::project(project_id)),
            ..Default::default()
        };
        let mut audit_rows = Vec::new();
        let events = self.audit_for_each(&filter, |ev| {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            if (audit_rows.len() as u64) < AUDIT_XLSX_MAX_EVENTS {
                audit_rows.push(audit_row(&ev));
            }
            jsonl.write(&ev).map_err(wrap)?;
            csv.write(&ev).map_err(wrap)
        })?;
        let head = self
            .audit_query(&Default::default(), 1, None)?
            .events
            .first()
            .map(|e| format!("{} {} {}", e.device_id, e.seq, hex::encode(e.hash)));
        let mut meta = Vec::new();
        for (w, path) in [
            (jsonl.finish().map_err(wrap)?, &jsonl_path),
            (csv.finish().map_err(wrap)?, &csv_path),
        ] {
            let f = w
                .into_inner()
                .map_err(|e| Error::io_path("writing", path, e.into_error()))?;
            f.sync_all()
                .map_err(|e| Error::io_path("writing", path, e))?;
            let bytes = fs::read(path).map_err(|e| Error::io_path("reading", path, e))?;
            meta.push(BundleFileDigest {
                name: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                size: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(&bytes)),
            });
        }
        let manifest = serde_json::to_vec_pretty(&entries)
            .map_err(|e| Error::Internal(format!("manifest: {e}")))?;
        meta.insert(0, write_meta(&staging_dir, MANIFEST_JSON, &manifest)?);
        meta.insert(
            1,
            write_meta(
                &staging_dir,
                MANIFEST_CSV,
                manifest_csv(&entries).as_bytes(),
            )?,
        );
        meta.insert(
            2,
            write_meta(
                &staging_dir,
                MANIFEST_XLSX,
                &xlsx(manifest_sheet(&entries))?,
            )?,
        );
        let mut notes = Vec::new();
        if events <= AUDIT_XLSX_MAX_EVENTS {
            let sheet = Sheet {
                name: "Audit".into(),
                columns: audit_columns(),
                rows: audit_rows,
            };
            meta.push(write_meta(&staging_dir, AUDIT_XLSX, &xlsx(sheet)?)?);
        } else {
            notes.push(format!(
                "{AUDIT_XLSX} is left out: {events} audit events are more than a spreadsheet of \
                 this bundle holds ({AUDIT_XLSX_MAX_EVENTS}); {AUDIT_CSV} and {AUDIT_JSONL} hold them all"
            ));
        }
        meta.push(write_meta(
            &staging_dir,
            VERIFY_MD,
            verify_md(project_name).as_bytes(),
        )?);
        let info = BundleInfo {
            format: BUNDLE_FORMAT.into(),
            project_id: project_id.into(),
            project: project_name.into(),
            exported_at: rfc3339(self.now()),
            exported_by: self.actor().to_string(),
            exported_with: format!("labvault-core/{}", crate::VERSION),
            files: entries.len() as u64,
            bytes: total,
            audit: BundleAudit {
                events,
                chain_head: head,
            },
            metadata: meta,
            notes,
        };
        let info_bytes = serde_json::to_vec_pretty(&info)
            .map_err(|e| Error::Internal(format!("bundle.json: {e}")))?;
        let digest = write_meta(&staging_dir, BUNDLE_FILE, &info_bytes)?.sha256;
        fsync_dir(&staging_dir)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }

        if as_tar {
            // Written inside the staging directory (removed with it on failure).
            let tmp = staging_dir.join(format!(".{}.tar", random_hex(6)));
            let present: Vec<&str> = METADATA_FILES
                .iter()
                .copied()
                .filter(|n| staging_dir.join(n).exists())
                .collect();
            let f = File::create(&tmp).map_err(|e| Error::io_path("writing", &tmp, e))?;
            let mut ar = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
            ar.mode(tar::HeaderMode::Deterministic);
            let io = |e: std::io::Error| Error::io_path("writing", dest, e);
            for name in present {
                ar.append_path_with_name(staging_dir.join(name), name)
                    .map_err(io)?;
            }
            // Every file decrypted straight into the archive (checked against its SHA-256 as it
            // streams); the manifest must name exactly the items streamed.
            let mut streamed = std::collections::HashSet::new();
            let mut done = 0u64;
            for area in Area::ALL {
                self.for_each_plaintext(project_id, *area, cancel, &mut |item, decrypt| {
                    let name = format!("{FILES_DIR}/{}/{}", item.area, item.path);
                    let w = ar.get_mut();
                    write_tar_header(w, &name, item.size, item.updated_at.unix_timestamp())
                        .map_err(io)?;
                    decrypt(w)?;
                    write_tar_padding(w, item.size).map_err(io)?;
                    streamed.insert(item.id.clone());
                    done += item.size;
                    progress(&TransferProgress {
                        path: &item.path,
                        file_done: item.size,
                        file_total: item.size,
                        overall_done: done,
                        overall_total: total_all,
                    });
                    Ok(())
                })?;
            }
            if streamed.len() != entries.len() || entries.iter().any(|e| !streamed.contains(&e.id))
            {
                return Err(Error::InvalidArgument(
                    "the project changed during the export; export again".into(),
                ));
            }
            let w = ar.into_inner().map_err(io)?;
            let f = w.into_inner().map_err(|e| io(e.into_error()))?;
            f.sync_all().map_err(io)?;
            drop(f);
            fs::rename(&tmp, dest).map_err(io)?;
            fsync_dir(&parent)?;
            // `staging` (the metadata) is removed on drop.
        } else {
            staging.commit(dest)?;
        }
        Ok(BundleSummary {
            path: dest.to_path_buf(),
            files: entries.len() as u64,
            bytes: total,
            audit_events: events,
            bundle_digest: digest,
        })
    }
}
