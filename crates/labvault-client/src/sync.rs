//! The file-sync calls of the tenant API (devices, key boxes, the change feed, blobs,
//! resumable uploads, audit anchors) and the framing of multi-blob bodies.
//!
//! Sync calls name the device: make the client with [`TenantClient::for_device`].

use bytes::Bytes;
use http::{header, Method, StatusCode};
use labvault_wire::*;
use sha2::{Digest, Sha256};

use crate::{ClientError, Payload, TenantClient};

/// A framed multi-blob body: `u32 (big endian) manifest length || manifest JSON || bytes`.
pub fn frame(manifest: &PackManifest, bytes_len: usize) -> Vec<u8> {
    let m = serde_json::to_vec(manifest).expect("a manifest serializes");
    let mut out = Vec::with_capacity(4 + m.len() + bytes_len);
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    out
}

/// Splits a framed body into its manifest and its bytes, checking that the bytes are exactly
/// what the manifest announces.
pub fn unframe(body: &[u8]) -> Result<(PackManifest, &[u8]), String> {
    if body.len() < 4 {
        return Err("shorter than its length prefix".into());
    }
    let n = u32::from_be_bytes(body[..4].try_into().expect("4 bytes")) as usize;
    let rest = &body[4..];
    if n > rest.len() {
        return Err(format!("manifest of {n} bytes in a body of {}", body.len()));
    }
    let manifest: PackManifest =
        serde_json::from_slice(&rest[..n]).map_err(|e| format!("manifest: {e}"))?;
    let bytes = &rest[n..];
    let total: u64 = manifest.blobs.iter().map(|b| b.size).sum();
    if total != bytes.len() as u64 {
        return Err(format!(
            "the manifest announces {total} bytes, the body holds {}",
            bytes.len()
        ));
    }
    Ok((manifest, bytes))
}

impl TenantClient {
    fn malformed(&self, segments: &[&str], status: StatusCode, detail: String) -> ClientError {
        ClientError::Malformed {
            url: format!("{}/v1/{}", self.base_url(), segments.join("/")),
            status: status.as_u16(),
            detail,
        }
    }

    pub(crate) fn json<R: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        r: http::Response<Bytes>,
    ) -> Result<R, ClientError> {
        let status = r.status();
        serde_json::from_slice(r.body())
            .map_err(|e| self.malformed(segments, status, e.to_string()))
    }

    // ----- devices -----------------------------------------------------------------------

    /// Registers this device's public keys; `true` when it was new.
    pub async fn register_device(
        &self,
        token: &str,
        req: &DeviceRegistration,
    ) -> Result<(Device, bool), ClientError> {
        let seg = ["me", "devices"];
        let r = self
            .exchange::<(), _>(
                Method::POST,
                &seg,
                Some(token),
                None,
                Payload::Json(req),
                &[],
            )
            .await?;
        let created = r.status() == StatusCode::CREATED;
        Ok((self.json(&seg, r)?, created))
    }

    /// The caller's devices.
    pub async fn devices(&self, token: &str) -> Result<Vec<Device>, ClientError> {
        self.get(&["me", "devices"], Some(token)).await
    }

    /// Approves a pending device of the caller, with the key boxes sealed to it.
    pub async fn approve_device(
        &self,
        token: &str,
        device_id: &str,
        req: &ApproveDevice,
    ) -> Result<Device, ClientError> {
        self.call(
            Method::POST,
            &["me", "devices", device_id, "approve"],
            Some(token),
            Some(req),
        )
        .await
    }

    /// Revokes a device of the caller.
    pub async fn revoke_device(&self, token: &str, device_id: &str) -> Result<(), ClientError> {
        self.call_empty::<()>(
            Method::DELETE,
            &["me", "devices", device_id],
            Some(token),
            None,
        )
        .await
    }

    // ----- key boxes ---------------------------------------------------------------------

    /// The key boxes of a project sealed to this device.
    pub async fn keyring(&self, token: &str, project: &str) -> Result<KeyBoxes, ClientError> {
        self.get(&["projects", project, "keyring"], Some(token))
            .await
    }

    /// Stores key boxes of a project.
    pub async fn put_keyring(
        &self,
        token: &str,
        project: &str,
        boxes: &KeyBoxes,
    ) -> Result<(), ClientError> {
        self.call_empty(
            Method::PUT,
            &["projects", project, "keyring"],
            Some(token),
            Some(boxes),
        )
        .await
    }

    /// The devices holding a box of the project's current epoch.
    pub async fn key_recipients(
        &self,
        token: &str,
        project: &str,
    ) -> Result<KeyRecipients, ClientError> {
        self.get(&["projects", project, "keyring", "recipients"], Some(token))
            .await
    }

    // ----- feed --------------------------------------------------------------------------

    /// Commits ops.
    pub async fn commit(
        &self,
        token: &str,
        project: &str,
        req: &CommitRequest,
    ) -> Result<CommitResponse, ClientError> {
        self.call(
            Method::POST,
            &["projects", project, "commits"],
            Some(token),
            Some(req),
        )
        .await
    }

    /// A page of the feed (long poll with `q.wait`).
    pub async fn changes(
        &self,
        token: &str,
        project: &str,
        q: &ChangesQuery,
    ) -> Result<ChangesPage, ClientError> {
        let seg = ["projects", project, "changes"];
        let r = self
            .exchange::<_, ()>(Method::GET, &seg, Some(token), Some(q), Payload::None, &[])
            .await?;
        self.json(&seg, r)
    }

    /// A page of the snapshot.
    pub async fn snapshot(
        &self,
        token: &str,
        project: &str,
        q: &SnapshotQuery,
    ) -> Result<SnapshotPage, ClientError> {
        let seg = ["projects", project, "snapshot"];
        let r = self
            .exchange::<_, ()>(Method::GET, &seg, Some(token), Some(q), Payload::None, &[])
            .await?;
        self.json(&seg, r)
    }

    // ----- blobs -------------------------------------------------------------------------

    /// Stores one blob whole; `true` when it was new.
    pub async fn put_blob(
        &self,
        token: &str,
        project: &str,
        blob_id: &str,
        bytes: Bytes,
    ) -> Result<(BlobInfo, bool), ClientError> {
        use base64::Engine;
        let digest = format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes))
        );
        let seg = ["projects", project, "blobs", blob_id];
        let r = self
            .exchange::<(), ()>(
                Method::PUT,
                &seg,
                Some(token),
                None,
                Payload::Bytes(bytes, vec![("content-digest", digest)]),
                &[],
            )
            .await?;
        let created = r.status() == StatusCode::CREATED;
        Ok((self.json(&seg, r)?, created))
    }

    /// A blob's bytes, whole or `range` = (offset, length).
    pub async fn get_blob(
        &self,
        token: &str,
        project: &str,
        blob_id: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Bytes, ClientError> {
        let seg = ["projects", project, "blobs", blob_id];
        let extra = match range {
            Some((off, len)) if len > 0 => {
                vec![(header::RANGE, format!("bytes={}-{}", off, off + len - 1))]
            }
            _ => vec![],
        };
        let r = self
            .exchange::<(), ()>(Method::GET, &seg, Some(token), None, Payload::None, &extra)
            .await?;
        let status = r.status();
        let body = r.into_body();
        if let Some((_, len)) = range {
            if status != StatusCode::PARTIAL_CONTENT || body.len() as u64 != len {
                return Err(self.malformed(
                    &seg,
                    status,
                    format!(
                        "asked for {len} bytes of a range, got {} (HTTP {status})",
                        body.len()
                    ),
                ));
            }
        }
        Ok(body)
    }

    /// Which of `ids` the server does not hold.
    pub async fn missing_blobs(
        &self,
        token: &str,
        project: &str,
        ids: Vec<String>,
    ) -> Result<Vec<String>, ClientError> {
        let r: BlobIds = self
            .call(
                Method::POST,
                &["projects", project, "missing-blobs"],
                Some(token),
                Some(&BlobIds { ids }),
            )
            .await?;
        Ok(r.ids)
    }

    /// Stores small blobs together: `body` is [`frame`]'s head followed by the bytes.
    pub async fn put_pack(
        &self,
        token: &str,
        project: &str,
        body: Bytes,
    ) -> Result<PackResult, ClientError> {
        let seg = ["projects", project, "packs"];
        let r = self
            .exchange::<(), ()>(
                Method::POST,
                &seg,
                Some(token),
                None,
                Payload::Bytes(body, vec![]),
                &[],
            )
            .await?;
        self.json(&seg, r)
    }

    /// Several blobs in one answer: the manifest of those returned and their bytes.
    pub async fn blob_batch(
        &self,
        token: &str,
        project: &str,
        ids: Vec<String>,
    ) -> Result<(PackManifest, Bytes), ClientError> {
        let seg = ["projects", project, "blob-batches"];
        let r = self
            .exchange::<(), _>(
                Method::POST,
                &seg,
                Some(token),
                None,
                Payload::Json(&BlobIds { ids }),
                &[],
            )
            .await?;
        let status = r.status();
        let body = r.into_body();
        let (manifest, bytes) = unframe(&body).map_err(|e| self.malformed(&seg, status, e))?;
        let start = body.len() - bytes.len();
        Ok((manifest, body.slice(start..)))
    }

    // ----- resumable uploads -------------------------------------------------------------

    /// Starts or resumes the upload of a large blob.
    pub async fn create_upload(
        &self,
        token: &str,
        project: &str,
        req: &UploadRequest,
    ) -> Result<UploadStatus, ClientError> {
        self.call(
            Method::POST,
            &["projects", project, "uploads"],
            Some(token),
            Some(req),
        )
        .await
    }

    /// An upload's state.
    pub async fn upload(&self, token: &str, upload_id: &str) -> Result<UploadStatus, ClientError> {
        self.get(&["uploads", upload_id], Some(token)).await
    }

    /// Stores one part.
    pub async fn put_part(
        &self,
        token: &str,
        upload_id: &str,
        n: u32,
        bytes: Bytes,
    ) -> Result<PartInfo, ClientError> {
        let sha = hex::encode(Sha256::digest(&bytes));
        self.put_part_hashed(token, upload_id, n, bytes, sha).await
    }

    /// Stores one part whose SHA-256 (hex) the caller already computed (off the runtime).
    pub async fn put_part_hashed(
        &self,
        token: &str,
        upload_id: &str,
        n: u32,
        bytes: Bytes,
        sha256_hex: String,
    ) -> Result<PartInfo, ClientError> {
        let sha = sha256_hex;
        let n_s = n.to_string();
        let seg = ["uploads", upload_id, "parts", n_s.as_str()];
        let r = self
            .exchange::<(), ()>(
                Method::PUT,
                &seg,
                Some(token),
                None,
                Payload::Bytes(bytes, vec![(PART_SHA256_HEADER, sha)]),
                &[],
            )
            .await?;
        self.json(&seg, r)
    }

    /// Completes an upload.
    pub async fn complete_upload(
        &self,
        token: &str,
        upload_id: &str,
        req: &CompleteUpload,
    ) -> Result<BlobInfo, ClientError> {
        self.call(
            Method::POST,
            &["uploads", upload_id, "complete"],
            Some(token),
            Some(req),
        )
        .await
    }

    /// Abandons an upload.
    pub async fn abort_upload(&self, token: &str, upload_id: &str) -> Result<(), ClientError> {
        self.call_empty::<()>(Method::DELETE, &["uploads", upload_id], Some(token), None)
            .await
    }

    // ----- audit anchors -----------------------------------------------------------------

    /// Has the head of this device's audit chain signed.
    pub async fn anchor(
        &self,
        token: &str,
        req: &AnchorRequest,
    ) -> Result<AnchorReceipt, ClientError> {
        self.call(Method::POST, &["audit", "anchors"], Some(token), Some(req))
            .await
    }

    /// The stored anchors of a chain.
    pub async fn anchors(&self, token: &str, chain_id: &str) -> Result<Vec<Anchor>, ClientError> {
        let seg = ["audit", "anchors"];
        let q = AnchorsQuery {
            chain_id: chain_id.to_string(),
        };
        let r = self
            .exchange::<_, ()>(Method::GET, &seg, Some(token), Some(&q), Payload::None, &[])
            .await?;
        self.json(&seg, r)
    }
}
