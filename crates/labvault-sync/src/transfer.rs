//! Moving blob bytes: the vault's ciphertext to the tenant, and the tenant's to the vault.
//!
//! Up: small blobs go together in packs (one request, one object on the tenant, each blob
//! checked against its SHA-256 there); large ones in resumable parts: asking for the upload
//! again returns the parts the tenant already holds, so a cut connection or a restart of
//! either side resumes where it stopped, and a part is read from the vault only when it is
//! sent (memory stays at a few parts whatever the size).
//!
//! Down: small blobs in batches, large ones by ranges appended to a download file in the vault
//! (resumed from its length); the vault verifies each (decrypts and hashes it) before it may
//! be applied.
//!
//! Transfers run `parallel` at a time; progress goes to the engine's callback.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use labvault_client::{frame, TenantClient};
use labvault_core::sync::{LocalBlob, PulledPage};
use labvault_core::Vault;
use labvault_wire::{BlobPutStatus, CompleteUpload, PackEntry, PackManifest, UploadRequest};
use sha2::{Digest, Sha256};

use crate::engine::{EngineConfig, Progress, ProgressPhase};
use crate::session::Session;
use crate::{Result, SyncError};

/// Runs a blocking vault call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    vault: &Arc<Vault>,
    f: impl FnOnce(&Vault) -> labvault_core::Result<T> + Send + 'static,
) -> Result<T> {
    let v = vault.clone();
    tokio::task::spawn_blocking(move || f(&v))
        .await
        .map_err(|e| SyncError::Vault(labvault_core::Error::Internal(format!("sync worker: {e}"))))?
        .map_err(SyncError::from)
}

fn refused(msg: String) -> SyncError {
    SyncError::Vault(labvault_core::Error::SyncRefused(msg))
}

/// The drivers of one project's transfers.
pub struct Transfers<'a> {
    pub(crate) vault: &'a Arc<Vault>,
    pub(crate) session: &'a Session,
    pub(crate) api: &'a TenantClient,
    pub(crate) project: &'a str,
    pub(crate) cfg: &'a EngineConfig,
    pub(crate) progress: &'a (dyn Fn(Progress) + Send + Sync),
}

impl Transfers<'_> {
    fn report(&self, phase: ProgressPhase, done: u64, total: u64) {
        (self.progress)(Progress {
            project: self.project.to_string(),
            phase,
            done,
            total,
        });
    }

    /// Small blobs grouped, in order, into packs (or download batches) of at most `max_count`
    /// and about a share per transfer in flight of their total size, so a batch of a few MB
    /// still keeps every connection busy: between 1 MiB (below that, per-request costs
    /// dominate) and `pack_target`.
    fn group<T>(&self, items: Vec<T>, size: impl Fn(&T) -> u64, max_count: usize) -> Vec<Vec<T>> {
        let total: u64 = items.iter().map(&size).sum();
        let target = total
            .div_ceil(self.cfg.parallel.max(1) as u64)
            .clamp(1 << 20, self.cfg.pack_target.max(1 << 20))
            .min(self.cfg.rate_limit.request_size(self.cfg.pack_target));
        let mut groups = Vec::new();
        let mut cur = Vec::new();
        let mut cur_bytes = 0u64;
        for item in items {
            let n = size(&item);
            if !cur.is_empty() && (cur_bytes + n > target || cur.len() >= max_count) {
                groups.push(std::mem::take(&mut cur));
                cur_bytes = 0;
            }
            cur_bytes += n;
            cur.push(item);
        }
        if !cur.is_empty() {
            groups.push(cur);
        }
        groups
    }

    /// Uploads blobs the tenant lacks; returns the bytes sent. Each blob the tenant confirms
    /// is recorded in the vault, so it is never sent twice.
    pub async fn upload(&self, blobs: Vec<LocalBlob>) -> Result<u64> {
        if blobs.is_empty() {
            return Ok(0);
        }
        let total: u64 = blobs.iter().map(|b| b.size).sum();
        let (small, large): (Vec<LocalBlob>, Vec<LocalBlob>) = blobs
            .into_iter()
            .partition(|b| b.size <= self.cfg.small_blob_max);
        let packs = self.group(small, |b| b.size, 4096);
        let done = std::sync::atomic::AtomicU64::new(0);
        let done = &done;
        let tick = |n: u64| {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            self.report(ProgressPhase::Upload, d, total);
        };
        futures_util::stream::iter(packs.into_iter().map(|p| {
            let tick = &tick;
            async move {
                let n: u64 = p.iter().map(|b| b.size).sum();
                self.upload_pack(p).await?;
                tick(n);
                Ok::<_, SyncError>(())
            }
        }))
        .buffer_unordered(self.cfg.parallel.max(1))
        .try_collect::<Vec<()>>()
        .await?;
        for b in large {
            self.upload_large(b, &tick).await?;
        }
        Ok(total)
    }

    async fn upload_pack(&self, blobs: Vec<LocalBlob>) -> Result<()> {
        let ids: Vec<String> = blobs.iter().map(|b| b.blob_id.clone()).collect();
        // Read, hashed and framed off the runtime's threads.
        let framed = {
            let blobs = blobs.clone();
            blocking(self.vault, move |v| {
                let mut bytes = Vec::with_capacity(blobs.iter().map(|b| b.size as usize).sum());
                let mut entries = Vec::with_capacity(blobs.len());
                for b in &blobs {
                    let data = v.sync_read_blob(b, 0, b.size)?;
                    entries.push(PackEntry {
                        blob_id: b.blob_id.clone(),
                        size: data.len() as u64,
                        sha256: hex::encode(Sha256::digest(&data)),
                    });
                    bytes.extend_from_slice(&data);
                }
                let mut framed = frame(&PackManifest { blobs: entries }, bytes.len());
                framed.extend_from_slice(&bytes);
                Ok(Bytes::from(framed))
            })
            .await?
        };
        let (api, project) = (self.api.clone(), self.project.to_string());
        self.cfg.rate_limit.acquire(framed.len() as u64).await;
        let r = self
            .session
            .call(|t| {
                let (api, project, framed) = (api.clone(), project.clone(), framed.clone());
                async move { api.put_pack(&t, &project, framed).await }
            })
            .await?;
        if let Some(bad) = r
            .results
            .iter()
            .find(|x| x.status == BlobPutStatus::Conflict)
        {
            return Err(refused(format!(
                "the tenant holds other bytes under blob id {}: refusing to reference them",
                bad.blob_id
            )));
        }
        blocking(self.vault, move |v| v.sync_blobs_uploaded(&ids)).await
    }

    async fn upload_large(&self, b: LocalBlob, tick: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let part_size = self.cfg.part_size;
        let req = UploadRequest {
            blob_id: b.blob_id.clone(),
            size: b.size,
            part_size,
        };
        let (api, project) = (self.api.clone(), self.project.to_string());
        let status = self
            .session
            .call(|t| {
                let (api, project, req) = (api.clone(), project.clone(), req.clone());
                async move { api.create_upload(&t, &project, &req).await }
            })
            .await?;
        if status.complete {
            tick(b.size);
            let id = b.blob_id.clone();
            return blocking(self.vault, move |v| v.sync_blobs_uploaded(&[id])).await;
        }
        let parts = b.size.div_ceil(part_size) as u32;
        let have: std::collections::BTreeMap<u32, String> = status
            .parts
            .iter()
            .map(|p| (p.n, p.sha256.clone()))
            .collect();
        let upload_id = status.upload_id.clone();
        let blob = Arc::new(b.clone());
        // Each part: read from the vault, hashed; sent unless the tenant holds those bytes.
        let digests: Vec<(u32, String)> = futures_util::stream::iter((0..parts).map(|n| {
            let (blob, have, upload_id) = (blob.clone(), have.get(&n).cloned(), upload_id.clone());
            async move {
                let off = u64::from(n) * part_size;
                let len = part_size.min(blob.size - off);
                let (bytes, sha) = {
                    let blob = blob.clone();
                    blocking(self.vault, move |v| {
                        let bytes = v.sync_read_blob(&blob, off, len)?;
                        let sha = hex::encode(Sha256::digest(&bytes));
                        Ok((bytes, sha))
                    })
                    .await?
                };
                if have.as_deref() != Some(sha.as_str()) {
                    self.cfg.rate_limit.acquire(bytes.len() as u64).await;
                    let bytes = Bytes::from(bytes);
                    let api = self.api.clone();
                    self.session
                        .call(|t| {
                            let (api, id, bytes, sha) =
                                (api.clone(), upload_id.clone(), bytes.clone(), sha.clone());
                            async move { api.put_part_hashed(&t, &id, n, bytes, sha).await }
                        })
                        .await?;
                }
                tick(len);
                Ok::<_, SyncError>((n, sha))
            }
        }))
        .buffered(self.cfg.parallel.max(1))
        .try_collect()
        .await?;
        let req = CompleteUpload {
            parts_sha256: digests.into_iter().map(|(_, s)| s).collect(),
        };
        self.session
            .call(|t| {
                let (api, id, req) = (self.api.clone(), upload_id.clone(), req.clone());
                async move { api.complete_upload(&t, &id, &req).await }
            })
            .await?;
        let id = b.blob_id.clone();
        blocking(self.vault, move |v| v.sync_blobs_uploaded(&[id])).await
    }

    /// Receives every blob a page needs (verified by the vault as they arrive); returns the
    /// bytes received.
    pub async fn download(&self, page: &mut PulledPage) -> Result<u64> {
        let needs = page.missing();
        if needs.is_empty() {
            return Ok(0);
        }
        let total: u64 = needs.iter().map(|n| n.size).sum();
        let mut done = 0u64;
        let (small, large): (Vec<_>, Vec<_>) = needs
            .into_iter()
            .partition(|n| n.size <= self.cfg.small_blob_max);
        // Small ones in batches of about a pack.
        let ids = small.into_iter().map(|n| (n.size, n.blob_id));
        let batches: Vec<(u64, Vec<String>)> = self
            .group(ids.collect(), |(size, _)| *size, 1000)
            .into_iter()
            .map(|b| {
                let bytes = b.iter().map(|(size, _)| *size).sum();
                (bytes, b.into_iter().map(|(_, id)| id).collect())
            })
            .collect();
        let mut fetched = futures_util::stream::iter(batches.into_iter().map(|(bytes, ids)| {
            let (api, project) = (self.api.clone(), self.project.to_string());
            async move {
                self.cfg.rate_limit.acquire(bytes).await;
                self.session
                    .call(|t| {
                        let (api, project, ids) = (api.clone(), project.clone(), ids.clone());
                        async move { api.blob_batch(&t, &project, ids).await }
                    })
                    .await
                    .map(|r| (ids, r))
            }
        }))
        .buffer_unordered(self.cfg.parallel.max(1));
        while let Some(r) = fetched.next().await {
            let (asked, (manifest, bytes)) = r?;
            let mut off = 0usize;
            let mut got = 0;
            for e in &manifest.blobs {
                let end = off + e.size as usize;
                let slice = bytes.slice(off..end);
                off = end;
                if !asked.contains(&e.blob_id) {
                    return Err(refused(format!(
                        "the tenant sent blob {} that was not asked for",
                        e.blob_id
                    )));
                }
                self.vault.sync_accept_blob(page, &e.blob_id, &slice)?;
                done += e.size;
                got += 1;
            }
            if got == 0 {
                return Err(SyncError::Client(labvault_client::ClientError::Malformed {
                    url: self.api.base_url().to_string(),
                    status: 200,
                    detail: format!(
                        "the tenant returned none of {} blobs the feed references",
                        asked.len()
                    ),
                }));
            }
            self.report(ProgressPhase::Download, done, total);
        }
        drop(fetched);
        // What a batch did not return (it caps the answer) is asked for again next time round.
        if page
            .missing()
            .iter()
            .any(|n| n.size <= self.cfg.small_blob_max)
        {
            return Box::pin(self.download(page)).await.map(|n| n + done);
        }
        // Large ones by ranges, resumed from what is already here: several ranges in flight,
        // written in order (so at most `parallel` parts are held in memory).
        for n in large {
            let mut dl = self.vault.sync_download(page, &n.blob_id)?;
            done += dl.have();
            let part = self.cfg.rate_limit.request_size(self.cfg.part_size.max(1));
            let (from, size) = (dl.have(), dl.size());
            let ranges = (from..size)
                .step_by(part as usize)
                .map(|off| (off, part.min(size - off)));
            let mut fetched = futures_util::stream::iter(ranges.map(|(off, len)| {
                let (api, project, id) = (
                    self.api.clone(),
                    self.project.to_string(),
                    n.blob_id.clone(),
                );
                async move {
                    self.cfg.rate_limit.acquire(len).await;
                    self.session
                        .call(|t| {
                            let (api, project, id) = (api.clone(), project.clone(), id.clone());
                            async move { api.get_blob(&t, &project, &id, Some((off, len))).await }
                        })
                        .await
                }
            }))
            .buffered(self.cfg.parallel.max(1));
            while let Some(r) = fetched.next().await {
                // The client checked that the range arrived whole.
                let bytes = r?;
                dl.append(&bytes)?;
                done += bytes.len() as u64;
                self.report(ProgressPhase::Download, done, total);
            }
            drop(fetched);
            self.vault.sync_accept_download(page, dl)?;
        }
        Ok(total)
    }
}
