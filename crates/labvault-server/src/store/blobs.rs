//! Encrypted blob bytes and the parts of resumable uploads, behind [`BlobStore`]; the embedded
//! default keeps them as files ([`FsBlobStore`]).
//!
//! Every write streams (bounded memory whatever the size) and is hashed while it is received.
//! An object becomes visible only when complete and checked: it is written to a temp file,
//! synced and then linked into place, which also makes `put` put-if-absent; a disconnect or a
//! digest mismatch leaves nothing. A resumable upload is one sparse file that each part is
//! written into at its offset and synced; the metadata store records a part only after that,
//! so a part cut off midway is simply sent again, and the completed file is renamed into
//! place (no copy of a 50 GiB blob). What an object holds is decided by the metadata store
//! (`blobs` records): an object no record names is garbage.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A stream of bytes in or out of the store.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What went wrong storing or reading bytes.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No such object or upload.
    #[error("not found")]
    NotFound,
    /// More bytes than allowed arrived.
    #[error("more than {0} bytes")]
    TooLarge(u64),
    /// The bytes do not have the announced digest (nothing was stored).
    #[error("the bytes do not have the announced SHA-256")]
    DigestMismatch,
    /// The body stopped early, or the disk failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Size and SHA-256 of bytes as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: [u8; 32],
}

/// What a put-if-absent found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored now.
    Created,
    /// The object existed with exactly these bytes (a resend): nothing changed.
    Same,
    /// The object existed with other bytes: left as it was.
    Different,
}

/// Blob bytes and resumable uploads. Object keys are `<tenant>/<project>/<object id>`, all
/// segments random ids the server chose or checked; upload ids likewise.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` (at most `max` bytes) as `key` unless `key` exists (put-if-absent; the
    /// existing object is compared, not replaced). With `expected`, bytes of another SHA-256
    /// store nothing (`DigestMismatch`); a body that fails midway stores nothing either.
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        max: u64,
        expected: Option<[u8; 32]>,
    ) -> Result<(Stored, PutOutcome), BlobError>;
    /// `len` bytes (`None`: to the end) of `key` from `offset`, and the object's total size.
    async fn get(
        &self,
        key: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<(u64, ByteStream), BlobError>;
    /// The size of `key`, if it exists.
    async fn size(&self, key: &str) -> Result<Option<u64>, BlobError>;
    /// Removes `key` (an absent one is fine).
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Every object (key, modification time in Unix s), for the sweep of objects no record
    /// names (left by a crash between storing and recording).
    async fn list(&self) -> Result<Vec<(String, i64)>, BlobError>;
    /// Removes every object of a tenant.
    async fn delete_tenant(&self, tenant: &str) -> Result<(), BlobError>;
    /// Prepares a resumable upload of `size` bytes (idempotent).
    async fn create_upload(&self, upload: &str, size: u64) -> Result<(), BlobError>;
    /// Stores `body` (at most `max` bytes) at `offset` of the upload (a part; a retried part
    /// overwrites its earlier try), durably, and returns what was received.
    async fn put_part(
        &self,
        upload: &str,
        offset: u64,
        body: ByteStream,
        max: u64,
    ) -> Result<Stored, BlobError>;
    /// Makes the upload's bytes the object `key` (the caller checked every part).
    async fn complete_upload(&self, upload: &str, key: &str) -> Result<(), BlobError>;
    /// Removes an upload's bytes.
    async fn abort_upload(&self, upload: &str) -> Result<(), BlobError>;
}

/// Blobs as files under one directory: `objects/<tenant>/<project>/<xx>/<id>`,
/// `uploads/<upload>` (one sparse file per upload, parts written at their offsets), `tmp/`.
pub struct FsBlobStore {
    root: PathBuf,
}

fn random_name() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Only `[0-9a-z-]` segments: a key or upload id can never step out of the store.
fn safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
}

async fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// Request bodies arrive in TLS-record-sized chunks (16 KiB); each write of a tokio file is
/// a trip to the blocking pool, so they are gathered into 1 MiB writes first.
fn buffered(f: tokio::fs::File) -> tokio::io::BufWriter<tokio::fs::File> {
    tokio::io::BufWriter::with_capacity(1 << 20, f)
}

fn not_found_is_none<T>(r: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn sha256_of_file(p: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = tokio::fs::File::open(p).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Where the object `key` (`tenant/project/id`) lives under a file store's root; `None` for
/// a key that is not one (backups lay objects out the same way).
pub fn object_relpath(key: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        [t, p, id] if [t, p, id].iter().all(|s| safe_segment(s)) && id.len() >= 2 => {
            Some(Path::new("objects").join(t).join(p).join(&id[..2]).join(id))
        }
        _ => None,
    }
}

impl FsBlobStore {
    /// A store in `root` (created if missing); temp files of an earlier run are removed.
    pub fn open(root: &Path) -> std::io::Result<FsBlobStore> {
        for d in ["objects", "uploads", "tmp"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        for e in std::fs::read_dir(root.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(FsBlobStore {
            root: root.to_path_buf(),
        })
    }

    fn object(&self, key: &str) -> Result<PathBuf, BlobError> {
        object_relpath(key)
            .map(|rel| self.root.join(rel))
            .ok_or(BlobError::NotFound)
    }

    fn upload_file(&self, upload: &str) -> Result<PathBuf, BlobError> {
        if !safe_segment(upload) {
            return Err(BlobError::NotFound);
        }
        Ok(self.root.join("uploads").join(upload))
    }

    /// Streams `body` into a new temp file, hashing it; the file is synced. Removed on error.
    async fn receive(
        &self,
        mut body: ByteStream,
        max: u64,
    ) -> Result<(PathBuf, Stored), BlobError> {
        let tmp = self.root.join("tmp").join(random_name());
        let res = async {
            let mut f = buffered(tokio::fs::File::create(&tmp).await?);
            let mut h = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(BlobError::TooLarge(max));
                }
                h.update(&chunk);
                f.write_all(&chunk).await?;
            }
            f.flush().await?;
            f.get_ref().sync_all().await?;
            Ok(Stored {
                size,
                sha256: h.finalize().into(),
            })
        }
        .await;
        match res {
            Ok(s) => Ok((tmp, s)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// Links a complete, synced temp file into place unless the object exists (then the
    /// existing bytes are compared with `sha256`). The temp file is removed either way.
    async fn place(
        &self,
        tmp: &Path,
        key: &str,
        sha256: [u8; 32],
    ) -> Result<PutOutcome, BlobError> {
        let dst = self.object(key)?;
        let dir = dst.parent().expect("objects have a parent").to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        let linked = tokio::fs::hard_link(tmp, &dst).await;
        let _ = tokio::fs::remove_file(tmp).await;
        match linked {
            Ok(()) => {
                fsync_dir(&dir).await?;
                Ok(PutOutcome::Created)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if sha256_of_file(&dst).await? == sha256 {
                    Ok(PutOutcome::Same)
                } else {
                    Ok(PutOutcome::Different)
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        max: u64,
        expected: Option<[u8; 32]>,
    ) -> Result<(Stored, PutOutcome), BlobError> {
        self.object(key)?;
        let (tmp, stored) = self.receive(body, max).await?;
        if expected.is_some_and(|e| e != stored.sha256) {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(BlobError::DigestMismatch);
        }
        let outcome = self.place(&tmp, key, stored.sha256).await?;
        Ok((stored, outcome))
    }

    async fn get(
        &self,
        key: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<(u64, ByteStream), BlobError> {
        let path = self.object(key)?;
        let mut f =
            not_found_is_none(tokio::fs::File::open(&path).await)?.ok_or(BlobError::NotFound)?;
        let total = f.metadata().await?.len();
        let offset = offset.min(total);
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let len = len.unwrap_or(total - offset).min(total - offset);
        let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 64 << 10);
        Ok((total, Box::pin(stream)))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, BlobError> {
        Ok(not_found_is_none(tokio::fs::metadata(self.object(key)?).await)?.map(|m| m.len()))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        not_found_is_none(tokio::fs::remove_file(self.object(key)?).await)?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, i64)>, BlobError> {
        let root = self.root.join("objects");
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(String, i64)>> {
            let mut out = Vec::new();
            let names = |d: &Path| -> std::io::Result<Vec<(String, PathBuf)>> {
                let mut v = Vec::new();
                for e in std::fs::read_dir(d)?.flatten() {
                    if let Some(n) = e.file_name().to_str() {
                        v.push((n.to_string(), e.path()));
                    }
                }
                Ok(v)
            };
            for (t, tp) in names(&root)? {
                for (p, pp) in names(&tp)? {
                    for (_, sp) in names(&pp)? {
                        for (id, ip) in names(&sp)? {
                            let m = std::fs::metadata(&ip)?;
                            let mtime = m
                                .modified()?
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs() as i64)
                                .unwrap_or(0);
                            out.push((format!("{t}/{p}/{id}"), mtime));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(BlobError::from)
    }

    async fn delete_tenant(&self, tenant: &str) -> Result<(), BlobError> {
        if !safe_segment(tenant) {
            return Err(BlobError::NotFound);
        }
        not_found_is_none(tokio::fs::remove_dir_all(self.root.join("objects").join(tenant)).await)?;
        Ok(())
    }

    async fn create_upload(&self, upload: &str, size: u64) -> Result<(), BlobError> {
        let p = self.upload_file(upload)?;
        let f = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&p)
            .await?;
        // Sparse: the parts fill it in whatever order they arrive.
        if f.metadata().await?.len() != size {
            f.set_len(size).await?;
        }
        f.sync_all().await?;
        fsync_dir(&self.root.join("uploads")).await?;
        Ok(())
    }

    async fn put_part(
        &self,
        upload: &str,
        offset: u64,
        mut body: ByteStream,
        max: u64,
    ) -> Result<Stored, BlobError> {
        let p = self.upload_file(upload)?;
        let mut f = not_found_is_none(tokio::fs::OpenOptions::new().write(true).open(&p).await)?
            .ok_or(BlobError::NotFound)?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut f = buffered(f);
        let mut h = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > max {
                return Err(BlobError::TooLarge(max));
            }
            h.update(&chunk);
            f.write_all(&chunk).await?;
        }
        f.flush().await?;
        f.get_ref().sync_data().await?;
        Ok(Stored {
            size,
            sha256: h.finalize().into(),
        })
    }

    async fn complete_upload(&self, upload: &str, key: &str) -> Result<(), BlobError> {
        let src = self.upload_file(upload)?;
        let dst = self.object(key)?;
        let dir = dst.parent().expect("objects have a parent").to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        match tokio::fs::rename(&src, &dst).await {
            Ok(()) => {}
            // Completed before (a resend after a lost answer): the object is in place.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && tokio::fs::metadata(&dst).await.is_ok() => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        }
        fsync_dir(&dir).await?;
        fsync_dir(&self.root.join("uploads")).await?;
        Ok(())
    }

    async fn abort_upload(&self, upload: &str) -> Result<(), BlobError> {
        not_found_is_none(tokio::fs::remove_file(self.upload_file(upload)?).await)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    async fn read_all(s: &FsBlobStore, key: &str, off: u64, len: Option<u64>) -> Vec<u8> {
        let (_, mut st) = s.get(key, off, len).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = st.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn puts_are_checked_put_if_absent_ranged_and_leave_nothing_on_failure() {
        let t = tempfile::tempdir().unwrap();
        let s = FsBlobStore::open(t.path()).unwrap();
        let key = "t1/p1/00112233445566778899aabbccddeeff";
        let data: &[u8] = b"hello world";
        let (st, out) = s
            .put(key, body(vec![b"hello ", b"world"]), 100, Some(sha(data)))
            .await
            .unwrap();
        assert_eq!((st.size, out), (11, PutOutcome::Created));
        assert_eq!(read_all(&s, key, 6, Some(3)).await, b"wor");
        assert_eq!(read_all(&s, key, 0, None).await, data);
        // Put-if-absent: a resend is `Same`, other bytes are `Different` and change nothing.
        let (_, out) = s.put(key, body(vec![data]), 100, None).await.unwrap();
        assert_eq!(out, PutOutcome::Same);
        let (_, out) = s
            .put(
                key,
                body(vec![b"HELLO WORLD"]),
                100,
                Some(sha(b"HELLO WORLD")),
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::Different);
        assert_eq!(read_all(&s, key, 0, None).await, data);
        // Wrong digest, too large, broken body: nothing stored, no temp file left.
        let k2 = "t1/p1/ffeeddccbbaa99887766554433221100";
        assert!(matches!(
            s.put(k2, body(vec![b"abc"]), 100, Some(sha(b"abd"))).await,
            Err(BlobError::DigestMismatch)
        ));
        assert!(matches!(
            s.put(k2, body(vec![b"abcdef"]), 5, None).await,
            Err(BlobError::TooLarge(5))
        ));
        let broken: ByteStream = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("client went away")),
        ]));
        assert!(s.put(k2, broken, 100, None).await.is_err());
        assert_eq!(s.size(k2).await.unwrap(), None);
        assert_eq!(std::fs::read_dir(t.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(s.list().await.unwrap().len(), 1);
        // Keys that try to leave the store are refused.
        for bad in ["../x/y", "t1/p1/../../etc", "t1/p1", "T1/p1/aa"] {
            assert!(s.object(bad).is_err(), "{bad}");
        }
        s.delete_tenant("t1").await.unwrap();
        assert!(s.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn parts_land_at_their_offsets_across_a_reopen_and_a_retried_part() {
        let t = tempfile::tempdir().unwrap();
        let s = FsBlobStore::open(t.path()).unwrap();
        s.create_upload("u-1", 11).await.unwrap();
        // The last part first; then a try of part 0 cut short, then its retry.
        let st = s.put_part("u-1", 6, body(vec![b"part1"]), 5).await.unwrap();
        assert_eq!(st.sha256, sha(b"part1"));
        let cut: ByteStream = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"pa")),
            Err(std::io::Error::other("connection reset")),
        ]));
        assert!(s.put_part("u-1", 0, cut, 6).await.is_err());
        // Restart of the server: the upload file is still there.
        let s = FsBlobStore::open(t.path()).unwrap();
        s.create_upload("u-1", 11).await.unwrap();
        s.put_part("u-1", 0, body(vec![b"part0-"]), 6)
            .await
            .unwrap();
        assert!(matches!(
            s.put_part("u-1", 0, body(vec![b"part0-x"]), 6).await,
            Err(BlobError::TooLarge(6))
        ));
        let key = "t1/p1/0123456789abcdef0123456789abcdef";
        s.complete_upload("u-1", key).await.unwrap();
        // A resent completion finds the object in place.
        s.complete_upload("u-1", key).await.unwrap();
        assert_eq!(read_all(&s, key, 0, None).await, b"part0-part1");
        s.abort_upload("u-1").await.unwrap();
    }
}
