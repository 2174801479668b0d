//! Adapter to the shared audit chain of `labvault_governance::audit`: each tenant is one
//! chain (its id is the chain's `device_id`), sealed with exactly the vault's format so a
//! server export verifies with the same offline verifier as a vault export.

use labvault_governance::audit::{
    genesis_hash, verify_chain, Action, AuditEvent, ChainError, EventDraft, Hash32,
};

use crate::store::{AuditDraft, StoreError};

/// `prev_hash` of a tenant chain's first event.
pub fn genesis(tenant: &str) -> Hash32 {
    genesis_hash(tenant)
}

/// Seals a draft as event `seq` of `tenant`'s chain.
pub fn seal(
    tenant: &str,
    seq: u64,
    prev: Hash32,
    d: &AuditDraft,
) -> Result<AuditEvent, StoreError> {
    let action = Action::new(d.action.clone())
        .map_err(|e| StoreError::Backend(format!("invalid audit action: {e}")))?;
    let draft = EventDraft::new(
        d.timestamp,
        d.user.clone(),
        action,
        d.resource.clone(),
        d.result,
    )
    .ip_address(d.ip_address.clone())
    .user_agent(d.user_agent.clone())
    .detail(d.detail.clone());
    Ok(AuditEvent::seal(draft, tenant, seq, prev))
}

/// Verifies a whole tenant chain (seq order from 1); `Ok(events)` or the first break.
pub fn verify(events: &[AuditEvent]) -> Result<u64, ChainError> {
    verify_chain(events.iter()).map(|r| r.events)
}
