//! Adapter to the shared audit chain of `labvault_governance::audit`: each tenant is one
//! chain (its id is the chain's `device_id`), sealed with exactly the vault's format so a
//! server export verifies with the same offline verifier as a vault export.

use labvault_governance::audit::{
    genesis_hash, verify_chain, Action, AuditEvent, ChainError, EventDraft, Hash32, Outcome,
};
use labvault_wire::AuditResult;

use crate::store::{AuditDraft, StoreError};

/// `prev_hash` of a tenant chain's first event.
pub fn genesis(tenant: &str) -> Hash32 {
    genesis_hash(tenant)
}

/// Governance outcome of a wire result.
pub fn outcome(r: AuditResult) -> Outcome {
    match r {
        AuditResult::Success => Outcome::Success,
        AuditResult::Failure => Outcome::Failure,
        AuditResult::Denied => Outcome::Denied,
    }
}

fn result(o: Outcome) -> AuditResult {
    match o {
        Outcome::Success => AuditResult::Success,
        Outcome::Failure => AuditResult::Failure,
        Outcome::Denied => AuditResult::Denied,
    }
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
        outcome(d.result),
    )
    .ip_address(d.ip_address.clone())
    .user_agent(d.user_agent.clone())
    .detail(d.detail.clone());
    Ok(AuditEvent::seal(draft, tenant, seq, prev))
}

/// Wire form (same JSON shape as the governance event).
pub fn to_wire(ev: &AuditEvent) -> labvault_wire::AuditEvent {
    labvault_wire::AuditEvent {
        timestamp: labvault_governance::audit::ts_micros::format(ev.timestamp),
        user: ev.user.clone(),
        action: ev.action.as_str().to_string(),
        resource: ev.resource.clone(),
        ip_address: ev.ip_address.clone(),
        user_agent: ev.user_agent.clone(),
        result: result(ev.result),
        detail: ev.detail.clone(),
        device_id: ev.device_id.clone(),
        seq: ev.seq,
        v: ev.v,
        prev_hash: hex::encode(ev.prev_hash),
        hash: hex::encode(ev.hash),
    }
}

/// Verifies a whole tenant chain (seq order from 1); `Ok(events)` or the first break.
pub fn verify(events: &[AuditEvent]) -> Result<u64, ChainError> {
    verify_chain(events.iter()).map(|r| r.events)
}
