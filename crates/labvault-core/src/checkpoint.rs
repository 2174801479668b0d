//! A checkpoint of an audit chain that the lab's tenant signed (an "anchor"), and the offline
//! check of its signature. Foundations, because both the vault (`anchors`) and a project bundle's
//! verification (`bundle`, no vault at hand) check the same bytes the same way.

use base64::Engine;
use serde::{Deserialize, Serialize};

use labvault_governance::audit::Checkpoint;

use crate::error::{Error, Result};

/// A signed checkpoint as the vault keeps it (and a bundle's `checkpoints.json` holds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnchor {
    /// `device` (a device's chain) or `server` (the tenant's chain).
    pub kind: String,
    /// Tenant.
    pub tenant_id: String,
    /// Chain.
    pub chain_id: String,
    /// Events covered.
    pub seq: u64,
    /// Head hash (hex).
    pub head_hash: String,
    /// Signed at (RFC 3339).
    pub signed_at: String,
    /// The tenant's Ed25519 anchor key (base64).
    pub server_key: String,
    /// Signature (base64).
    pub signature: String,
}

/// `"labvault/anchor/v1" || f(tenant) || f(signed_at) || checkpoint`, as the tenant signs
/// (docs/sync-protocol.md, "Audit anchors").
pub(crate) fn signed_bytes(a: &StoredAnchor) -> Result<Vec<u8>> {
    let mut head = [0u8; 32];
    hex::decode_to_slice(&a.head_hash, &mut head)
        .map_err(|_| Error::SyncRefused(format!("anchor of seq {} has a malformed hash", a.seq)))?;
    let cp = Checkpoint {
        device_id: a.chain_id.clone(),
        seq: a.seq,
        head_hash: head,
    };
    let mut out = b"labvault/anchor/v1".to_vec();
    for f in [&a.tenant_id, &a.signed_at] {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out.extend_from_slice(&cp.signing_bytes());
    Ok(out)
}

/// Checks that `a` is signed by the key it names (whether that key is the tenant's is the
/// caller's question: the first key seen, or the one a reader compares by hand).
pub(crate) fn check_signature(a: &StoredAnchor) -> Result<()> {
    use ed25519_dalek::{Signature, VerifyingKey};
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |why: &str| {
        Error::SyncRefused(format!(
            "the anchor of {} at seq {} (signed {}) {why}",
            a.chain_id, a.seq, a.signed_at
        ))
    };
    let key: [u8; 32] = b64
        .decode(&a.server_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("has a malformed key"))?;
    let sig: [u8; 64] = b64
        .decode(&a.signature)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("has a malformed signature"))?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| bad("has a malformed key"))?;
    key.verify_strict(&signed_bytes(a)?, &Signature::from_bytes(&sig))
        .map_err(|_| bad("is not signed by the tenant's anchor key"))
}
