//! The tenant's signed checkpoints of this device's audit chain (and of the tenant's own chain
//! at the same moment), kept in the catalog and checked offline by `audit verify`: each
//! anchor's signature must hold under the tenant's anchor key, and this device's chain must
//! still have, at the anchored seq, the anchored hash. A history rewritten after it was
//! anchored (even one whose hashes were all recomputed) fails that check.

use rusqlite::params;
use serde::Serialize;

use labvault_governance::audit::{actions, resources};

use crate::audit::Subject;
use crate::checkpoint::check_signature;
pub use crate::checkpoint::StoredAnchor;
use crate::error::{Error, Result};
use crate::vault::Vault;

/// The result of checking the stored anchors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnchorCheck {
    /// Anchors of this device's chain checked against it.
    pub device_anchors: u64,
    /// Anchors of the tenant's chain whose signature was checked.
    pub server_anchors: u64,
    /// The highest seq of this device's chain covered by an anchor.
    pub anchored_seq: u64,
}

impl Vault {
    /// The head of this device's audit chain: (chain id, seq, hash hex).
    pub fn audit_head(&self) -> Result<(String, u64, String)> {
        let cp = crate::audit::head(&*self.reader()?, &self.device_id)?;
        Ok((cp.device_id, cp.seq, hex::encode(cp.head_hash)))
    }

    /// Keeps anchors the tenant signed (`sync.anchor`) after checking their signatures, that
    /// every anchor key is the one first seen, and that the device anchor matches this
    /// device's chain.
    pub fn sync_store_anchors(&self, anchors: &[StoredAnchor]) -> Result<()> {
        let known = self.sync_anchors()?;
        for a in anchors {
            check_signature(a)?;
            if let Some(first) = known.first() {
                if first.server_key != a.server_key {
                    return Err(Error::SyncRefused(format!(
                        "the tenant signed an anchor with another key ({}) than the one it used before ({})",
                        a.server_key, first.server_key
                    )));
                }
            }
            if a.kind == "device" && a.chain_id != self.device_id {
                return Err(Error::SyncRefused(
                    "an anchor of another device's chain".into(),
                ));
            }
        }
        let device = anchors.iter().find(|a| a.kind == "device");
        self.write_op(actions::SYNC_ANCHOR, || resources::VAULT.into(), |w| {
            w.commit(actions::SYNC_ANCHOR, |tx| {
                if let Some(d) = device {
                    let hash: Option<Vec<u8>> = tx
                        .query_row(
                            "SELECT hash FROM audit_events WHERE device_id = ?1 AND seq = ?2",
                            params![d.chain_id, d.seq as i64],
                            |r| r.get(0),
                        )
                        .ok();
                    if hash.map(hex::encode).as_deref() != Some(d.head_hash.as_str()) {
                        return Err(Error::SyncRefused(format!(
                            "the tenant's anchor of seq {} does not match this device's chain",
                            d.seq
                        )));
                    }
                }
                for a in anchors {
                    tx.execute(
                        "INSERT OR IGNORE INTO sync_anchors(kind, tenant_id, chain_id, seq, head_hash, signed_at,
                            server_key, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![a.kind, a.tenant_id, a.chain_id, a.seq as i64, a.head_hash, a.signed_at, a.server_key, a.signature],
                    )?;
                }
                let detail = device
                    .map(|d| format!("seq={} signed_at={}", d.seq, d.signed_at))
                    .unwrap_or_default();
                Ok(((), Subject::new("audit", detail)))
            })
        })
    }

    /// The stored anchors, oldest first.
    pub fn sync_anchors(&self) -> Result<Vec<StoredAnchor>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT kind, tenant_id, chain_id, seq, head_hash, signed_at, server_key, signature
             FROM sync_anchors ORDER BY signed_at, kind, seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok(StoredAnchor {
                kind: r.get(0)?,
                tenant_id: r.get(1)?,
                chain_id: r.get(2)?,
                seq: r.get::<_, i64>(3)? as u64,
                head_hash: r.get(4)?,
                signed_at: r.get(5)?,
                server_key: r.get(6)?,
                signature: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Checks every stored anchor offline (see the module documentation).
    pub(crate) fn check_anchors(&self, conn: &rusqlite::Connection) -> Result<AnchorCheck> {
        let anchors = self.sync_anchors()?;
        let mut out = AnchorCheck::default();
        let Some(first) = anchors.first() else {
            return Ok(out);
        };
        for a in &anchors {
            check_signature(a)?;
            if a.server_key != first.server_key {
                return Err(Error::SyncRefused(format!(
                    "stored anchors are signed by two different tenant keys ({} and {})",
                    first.server_key, a.server_key
                )));
            }
            if a.kind == "server" {
                out.server_anchors += 1;
                continue;
            }
            let hash: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT hash FROM audit_events WHERE device_id = ?1 AND seq = ?2",
                    params![a.chain_id, a.seq as i64],
                    |r| r.get(0),
                )
                .ok();
            match hash {
                Some(h) if hex::encode(&h) == a.head_hash => {}
                Some(_) => {
                    return Err(Error::Tampered {
                        what: "the audit trail".into(),
                        detail: format!(
                            "event {} differs from the one the tenant anchored on {}: local history was rewritten after it was anchored",
                            a.seq, a.signed_at
                        ),
                    })
                }
                None => {
                    return Err(Error::Tampered {
                        what: "the audit trail".into(),
                        detail: format!(
                            "event {} that the tenant anchored on {} is missing: local history was cut after it was anchored",
                            a.seq, a.signed_at
                        ),
                    })
                }
            }
            out.device_anchors += 1;
            out.anchored_seq = out.anchored_seq.max(a.seq);
        }
        Ok(out)
    }
}
