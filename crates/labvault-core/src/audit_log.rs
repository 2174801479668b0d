//! Reading the audit trail from a vault: pages, streams, verification and export. Each runs on
//! read connections, so none of them waits for a writer; verification and export are recorded
//! (`audit.verify`, `audit.export`) like every other data access.

use crate::audit::{self, AuditExportSummary, AuditFilter, AuditPage};
use crate::error::Result;
use crate::layout::CATALOG_FILE;
use crate::vault::Vault;
use labvault_governance::audit::{actions, AuditEvent, ChainReport};
use labvault_governance::export::ExportFormat;
use std::path::Path;

impl Vault {
    /// Audit events matching `filter`, newest first, `limit` (1..=10,000) at a time; pass the
    /// returned cursor to continue.
    pub fn audit_query(
        &self,
        filter: &AuditFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<AuditPage> {
        audit::query(&*self.reader()?, filter, limit, cursor)
    }

    /// Streams every event matching `filter` in chain order (device, seq) to `f`.
    pub fn audit_for_each(
        &self,
        filter: &AuditFilter,
        f: impl FnMut(AuditEvent) -> Result<()>,
    ) -> Result<u64> {
        audit::for_each(&*self.reader()?, filter, f)
    }

    /// Number of audit events stored.
    pub fn audit_count(&self) -> Result<u64> {
        audit::count(&*self.reader()?)
    }

    /// Re-verifies every device chain in the catalog (streaming), then this device's chain
    /// against every checkpoint the tenant signed (`crate::anchors`), and records
    /// `audit.verify`. A break is [`crate::Error::ChainBroken`]: the device, the first bad seq
    /// and what was found, as values (and recorded as a `failure` with code `tampered`); a
    /// history rewritten after it was anchored is `tampered` naming the anchor. This
    /// device's report has `checkpoint_matched` when anchors were checked.
    pub fn audit_verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<Vec<ChainReport>> {
        self.read_op(actions::AUDIT_VERIFY, "audit".into(), || {
            let conn = self.reader()?;
            let second = || {
                let key = self.with_keys(|k| Ok(k.root.catalog_key()))?;
                crate::catalog::open_reader(&self.dir.join(CATALOG_FILE), &key)
            };
            let mut reports = audit::verify(&conn, second, progress)?;
            let anchors = self.check_anchors(&conn)?;
            if anchors.device_anchors > 0 {
                for r in reports.iter_mut().filter(|r| r.device_id == self.device_id) {
                    r.checkpoint_matched = true;
                }
            }
            let detail = format!(
                "anchors={} anchored_seq={}",
                anchors.device_anchors, anchors.anchored_seq
            );
            Ok((reports, detail))
        })
    }

    /// Writes the events matching `filter` to `out` (CSV or JSON Lines) in chain order, via a
    /// temp file renamed into place, and records `audit.export`.
    pub fn audit_export(
        &self,
        filter: &AuditFilter,
        format: ExportFormat,
        out: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<AuditExportSummary> {
        let detail = format!(
            "format={} filtered={}",
            match format {
                ExportFormat::Csv => "csv",
                ExportFormat::Jsonl => "jsonl",
            },
            !filter.is_empty()
        );
        self.read_op(actions::AUDIT_EXPORT, "audit".into(), || {
            let summary = audit::export(&*self.reader()?, filter, format, out, progress)?;
            Ok((summary, detail))
        })
    }
}
