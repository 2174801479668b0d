//! Small files of an import: worker threads seal each into memory, and this thread writes them
//! as the records of ONE pack file per group (see `packs.rs`), made durable before the group's
//! commit references it.

use super::phases::{self, Phase};
use super::{
    blob_err, check_source_unchanged, create_temp, is_per_file_error, open_source, Planned,
    TempGuard,
};
use crate::error::{Error, Result};
use crate::fsutil::{self};
use crate::layout::BLOBS_DIR;
use labvault_crypto::{encrypt_blob_buffer, DataKey, PlaintextBuffer, DEFAULT_CHUNK_SIZE};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A group stored durably in `blobs/` (steps 1-3), waiting for its catalog commit.
pub(super) struct StagedGroup {
    /// One entry per file of the group, in plan order (per-file failures included).
    pub(super) files: Vec<Result<Record>>,
    /// The group's pack id (none if no file of the group could be read); its guard removes
    /// the pack until the commit that references it.
    pub(super) pack: Option<(String, TempGuard)>,
}

/// One small file sealed (blob format v1, fresh data key and file id) into memory by a worker.
struct Sealed {
    file_id: [u8; 16],
    dkey: DataKey,
    plaintext_len: u64,
    sha: String,
    bytes: Vec<u8>,
}

/// A sealed file written into its group's pack at `offset`.
pub(super) struct Record {
    pub(super) file_id: [u8; 16],
    pub(super) blob_id: String,
    pub(super) dkey: DataKey,
    pub(super) plaintext_len: u64,
    pub(super) sha: String,
    pub(super) offset: u64,
    pub(super) len: u64,
}

/// Step 1 for one small file: read, hash and encrypt it into memory, and check the source
/// still has its planned size.
fn seal_small(p: &Planned, cancel: &AtomicBool) -> Result<Sealed> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let src_name = p.source.display().to_string();
    let t = phases::start();
    let src = open_source(&p.source, &src_name)?;
    t.stop(Phase::OpenCreate);
    let t = phases::start();
    // Read straight into the buffer the blob is sealed in (no copy); one byte more than
    // planned, so that a file that grew is noticed.
    let mut plain = PlaintextBuffer::with_capacity(usize::try_from(p.size).unwrap_or(0));
    plain
        .read_from(src.take(p.size.saturating_add(1)))
        .map_err(|e| Error::io(format!("reading source {src_name}"), e))?;
    // Unique, and time-ordered so that a group's rows append to the catalog's blob id index.
    let file_id = uuid::Uuid::now_v7().into_bytes();
    let dkey = DataKey::generate();
    let (summary, bytes) = encrypt_blob_buffer(&dkey, &file_id, DEFAULT_CHUNK_SIZE, plain)
        .map_err(|e| blob_err(e, &src_name))?;
    t.stop(Phase::Encrypt);
    let t = phases::start();
    check_source_unchanged(p, summary.plaintext_len, &src_name)?;
    t.stop(Phase::SizeCheck);
    Ok(Sealed {
        file_id,
        dkey,
        plaintext_len: summary.plaintext_len,
        sha: hex::encode(summary.sha256),
        bytes,
    })
}

/// Steps 1-3 for a group of small files: worker threads seal every file into memory
/// ([`seal_small`]); this thread appends each, in plan order, as one record to ONE new pack
/// file in `tmp/`; then the pack is synced, renamed to `blobs/<xx>/<pack id>` and that
/// directory fsynced. A file failing on its own is recorded in its slot; any other error (or
/// `cancel`/`abort`) stops and is returned, and the pack is removed.
pub(super) fn stage_group(
    dir: &Path,
    group: &[Planned],
    cancel: &AtomicBool,
    abort: &AtomicBool,
) -> Result<StagedGroup> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
        .min(group.len().max(1));
    let stop = AtomicBool::new(false);
    let mut files: Vec<Result<Record>> = Vec::with_capacity(group.len());
    let mut pack: Option<PackWriter> = None;
    std::thread::scope(|s| -> Result<()> {
        let mut rxs = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Sealed>>(4);
            rxs.push(rx);
            let stop = &stop;
            s.spawn(move || {
                for p in group.iter().skip(w).step_by(workers) {
                    if stop.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
                        break;
                    }
                    if tx.send(seal_small(p, cancel)).is_err() {
                        break;
                    }
                }
            });
        }
        let mut outcome = Ok(());
        for k in 0..group.len() {
            let r = rxs[k % workers]
                .recv()
                .unwrap_or_else(|_| Err(Error::Internal("an import worker stopped".into())));
            let r = match r {
                Ok(sealed) => {
                    let t = phases::start();
                    let res = match &mut pack {
                        Some(w) => Ok(w),
                        None => PackWriter::create(dir).map(|w| pack.insert(w)),
                    }
                    .and_then(|w| w.append(sealed));
                    t.stop(Phase::Encrypt);
                    res
                }
                Err(e) => Err(e),
            };
            match r {
                Err(e) if !is_per_file_error(&e) => {
                    outcome = Err(e);
                    break;
                }
                r => files.push(r),
            }
        }
        if outcome.is_err() {
            stop.store(true, Ordering::Relaxed);
            for rx in &rxs {
                while rx.recv().is_ok() {}
            }
        }
        outcome
    })?;
    let Some(pack) = pack else {
        return Ok(StagedGroup { files, pack: None });
    };
    if cancel.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let (id, guard) = pack.store(dir)?;
    Ok(StagedGroup {
        files,
        pack: Some((id, guard)),
    })
}

/// A pack being written in `tmp/`: records appended back to back, written a batch at a time
/// straight from the workers' buffers (one vectored write, no copy into a buffer).
struct PackWriter {
    id: String,
    tmp_path: PathBuf,
    out: File,
    len: u64,
    pending: Vec<Vec<u8>>,
    pending_len: usize,
    guard: TempGuard,
}

/// Sealed records are written to a pack once this many bytes are waiting.
const PACK_WRITE_BATCH: usize = 1 << 20;

impl PackWriter {
    fn create(dir: &Path) -> Result<PackWriter> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let (out, tmp_path, guard) = create_temp(dir, &id)?;
        Ok(PackWriter {
            id,
            tmp_path,
            out,
            len: 0,
            pending: Vec::new(),
            pending_len: 0,
            guard,
        })
    }

    fn append(&mut self, s: Sealed) -> Result<Record> {
        let offset = self.len;
        let len = s.bytes.len() as u64;
        self.len += len;
        self.pending_len += s.bytes.len();
        self.pending.push(s.bytes);
        if self.pending_len >= PACK_WRITE_BATCH {
            self.write_pending()?;
        }
        Ok(Record {
            file_id: s.file_id,
            blob_id: hex::encode(s.file_id),
            dkey: s.dkey,
            plaintext_len: s.plaintext_len,
            sha: s.sha,
            offset,
            len,
        })
    }

    fn write_pending(&mut self) -> Result<()> {
        let mut slices: Vec<io::IoSlice<'_>> =
            self.pending.iter().map(|b| io::IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.out.write_vectored(rest) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "short write");
                    return Err(Error::io_path("writing", &self.tmp_path, e));
                }
                Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io_path("writing", &self.tmp_path, e)),
            }
        }
        self.pending.clear();
        self.pending_len = 0;
        Ok(())
    }

    /// Steps 2-3: sync the pack, rename it into `blobs/<xx>/`, fsync that directory. Returns
    /// the pack id and the guard that removes it until the catalog references it.
    fn store(mut self, dir: &Path) -> Result<(String, TempGuard)> {
        self.write_pending()?;
        let PackWriter {
            id,
            tmp_path,
            out: file,
            mut guard,
            ..
        } = self;
        let t = phases::start();
        file.sync_data()
            .map_err(|e| Error::io_path("syncing", &tmp_path, e))?;
        drop(file);
        t.stop(Phase::SyncData);
        let t = phases::start();
        let final_path = crate::layout::blob_path(dir, &id);
        let shard = final_path
            .parent()
            .expect("blob path has a shard dir")
            .to_path_buf();
        if !shard.exists() {
            fs::create_dir_all(&shard).map_err(|e| Error::io_path("creating", &shard, e))?;
            fsutil::fsync_dir(&dir.join(BLOBS_DIR))?;
        }
        fs::rename(&tmp_path, &final_path)
            .map_err(|e| Error::io_path("storing pack", &final_path, e))?;
        guard.0 = Some(final_path);
        t.stop(Phase::Rename);
        let t = phases::start();
        fsutil::fsync_dir(&shard)?;
        t.stop(Phase::DirFsync);
        Ok((id, guard))
    }
}
