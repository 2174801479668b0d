//! The server's own clean-up of file sync, run by the sweeper: idle resumable uploads are
//! forgotten, erased blobs are removed once the grace period of their project's retention
//! policy has passed (small blobs share pack objects: a pack whose blobs are all removable is
//! deleted, one that still holds live blobs is rewritten without the removable ones), and
//! objects that no blob record names (a crash between storing and recording) are deleted
//! once they are old enough that no upload can still be recording them.
//!
//! Legal holds need nothing here: the feed refuses to erase anything a hold covers, so a held
//! blob is never erased.

use std::collections::BTreeMap;

use labvault_governance::audit::actions;
use labvault_wire::AuditResult;

use crate::app::AppState;
use crate::server::ServerError;
use crate::store::sync::BlobRecord;
use crate::store::AuditDraft;

fn system_event(st: &AppState, action: &str, resource: String, detail: String) -> AuditDraft {
    AuditDraft {
        timestamp: st.clock.now(),
        user: "system".into(),
        action: action.into(),
        resource,
        ip_address: "local".into(),
        user_agent: format!("labvault-server/{}", env!("CARGO_PKG_VERSION")),
        result: AuditResult::Success,
        detail,
    }
}

fn object_key(tenant: &str, project: &str, object: &str) -> String {
    format!("{tenant}/{project}/{object}")
}

/// One pass: expired uploads, then erased blobs past their grace. Returns the number of
/// blobs removed.
pub async fn sweep_blobs(st: &AppState) -> Result<u64, ServerError> {
    let now = st.now();
    for u in st.sync.expired_uploads(now).await? {
        st.blobs
            .abort_upload(&u.upload_id)
            .await
            .map_err(|e| ServerError::Invalid(format!("removing upload {}: {e}", u.upload_id)))?;
        let ev = system_event(
            st,
            actions::UPLOAD_EXPIRE,
            format!("project/{}/upload/{}", u.project_id, u.upload_id),
            format!("blob={} size={}", u.blob_id, u.size),
        );
        st.sync
            .close_upload(&u.upload_id, Some((u.tenant_id, ev)))
            .await?;
    }
    let mut removed = 0u64;
    for (tenant, project) in st.sync.projects_with_erased_blobs().await? {
        let erased = st.sync.erased_blobs(&tenant, &project).await?;
        let mut due: BTreeMap<String, Vec<BlobRecord>> = BTreeMap::new();
        for b in erased {
            let at = b.erased_at.unwrap_or(now);
            let removable = crate::api::data::erased_removable_at(st, &tenant, &project, at)
                .await
                .map_err(|e| ServerError::Invalid(e.message))?;
            if removable <= now {
                due.entry(b.object.clone()).or_default().push(b);
            }
        }
        for (object, gone) in due {
            let all = st.sync.object_blobs(&tenant, &project, &object).await?;
            let gone_ids: Vec<String> = gone.iter().map(|b| b.blob_id.clone()).collect();
            let keep: Vec<&BlobRecord> = all
                .iter()
                .filter(|b| !gone_ids.contains(&b.blob_id))
                .collect();
            if !keep.is_empty() {
                repack(st, &tenant, &project, &object, &keep).await?;
            } else {
                st.blobs
                    .delete(&object_key(&tenant, &project, &object))
                    .await
                    .map_err(|e| ServerError::Invalid(format!("removing {object}: {e}")))?;
            }
            let n = gone_ids.len() as u64;
            let ev = system_event(
                st,
                actions::BLOB_REMOVE,
                format!("project/{project}"),
                format!("removed={n} object={object} kept={}", keep.len()),
            );
            st.sync
                .forget_blobs(&tenant, &project, gone_ids, ev)
                .await?;
            removed += n;
        }
    }
    Ok(removed)
}

/// Copies the blobs to keep out of `object` into a new object, points their records at it
/// and deletes the old object. A crash before the records move leaves the new object
/// unrecorded (swept later); after, the old one.
async fn repack(
    st: &AppState,
    tenant: &str,
    project: &str,
    object: &str,
    keep: &[&BlobRecord],
) -> Result<(), ServerError> {
    use futures_util::StreamExt;
    let err = |e: crate::store::blobs::BlobError| {
        ServerError::Invalid(format!("repacking {object}: {e}"))
    };
    let new_object = uuid::Uuid::new_v4().simple().to_string();
    let old_key = object_key(tenant, project, object);
    let mut moves = Vec::with_capacity(keep.len());
    let mut offset = 0u64;
    let mut ranges = Vec::with_capacity(keep.len());
    for b in keep {
        moves.push((b.blob_id.clone(), offset));
        ranges.push((b.offset, b.size));
        offset += b.size;
    }
    let total = offset;
    let blobs = st.blobs.clone();
    let body = futures_util::stream::iter(ranges)
        .then(move |(off, len)| {
            let blobs = blobs.clone();
            let key = old_key.clone();
            async move {
                match blobs.get(&key, off, Some(len)).await {
                    Ok((_, s)) => s,
                    Err(e) => Box::pin(futures_util::stream::once(async move {
                        Err(std::io::Error::other(e.to_string()))
                    })) as crate::store::blobs::ByteStream,
                }
            }
        })
        .flatten();
    st.blobs
        .put(
            &object_key(tenant, project, &new_object),
            Box::pin(body),
            total,
            None,
        )
        .await
        .map_err(err)?;
    st.sync
        .relocate_blobs(tenant, project, &new_object, moves)
        .await?;
    st.blobs
        .delete(&object_key(tenant, project, object))
        .await
        .map_err(err)?;
    Ok(())
}

/// Deletes objects that no blob record names and that are older than
/// `cfg.orphan_object_age_secs`. Returns how many.
pub async fn sweep_unrecorded_objects(st: &AppState) -> Result<u64, ServerError> {
    let now = st.now();
    let mut n = 0;
    let list = st
        .blobs
        .list()
        .await
        .map_err(|e| ServerError::Invalid(format!("listing blobs: {e}")))?;
    for (key, mtime) in list {
        if now - mtime < st.cfg.orphan_object_age_secs {
            continue;
        }
        let object = key.rsplit('/').next().unwrap_or_default();
        if !st.sync.object_referenced(object).await? {
            st.blobs
                .delete(&key)
                .await
                .map_err(|e| ServerError::Invalid(format!("removing {key}: {e}")))?;
            n += 1;
        }
    }
    Ok(n)
}
