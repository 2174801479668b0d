//! A stored version copied into a new item: what "keep both" of a sync conflict needs (the
//! other side's version becomes a file of its own). The plaintext never leaves memory: the
//! version is decrypted a piece at a time (each chunk authenticated first) and re-encrypted
//! under a fresh data key into a new blob, through the same steps as an import (temp file,
//! fsync, rename into `blobs/`, catalog commit).

use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout::BLOBS_DIR;
use crate::model::ItemInfo;
use crate::names;
use crate::transfer::{blob_err, create_temp, insert_version};
use crate::vault::{ts_to_ms, Vault};
use crate::view::ViewHandle;
use labvault_crypto::{encrypt_blob, DataKey, DEFAULT_CHUNK_SIZE};
use labvault_governance::audit::{actions, resources};
use rusqlite::OptionalExtension;
use std::io::{self, BufWriter, Read, Write};

/// Reads a viewed version's plaintext in order, 4 MiB at a time.
struct VersionReader<'a> {
    vault: &'a Vault,
    view: &'a ViewHandle,
    off: u64,
    buf: Vec<u8>,
    pos: usize,
    error: Option<Error>,
}

impl Read for VersionReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.off >= self.view.size() {
                return Ok(0);
            }
            match self.vault.view_read(self.view, self.off, 4 << 20) {
                Ok(b) if b.is_empty() => return Ok(0),
                Ok(b) => {
                    self.off += b.len() as u64;
                    self.buf = b;
                    self.pos = 0;
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Vault {
    /// Copies version `version` of `item_id` into a new item at `path` in the same project and
    /// area (`data.import`, detail `copy_of=<item> version=<n>`). `already_exists` when an
    /// item is at that path: a copy never becomes a version of another file.
    pub fn copy_version(&self, item_id: &str, version: u32, path: &str) -> Result<ItemInfo> {
        let path = names::validate_logical_path(path)?;
        let view = self.view_handle(item_id, Some(version))?;
        let source = self.item(item_id)?;
        self.write_op(
            actions::DATA_IMPORT,
            || resources::project(&source.project_id),
            |w| {
                let taken: Option<String> = w
                    .conn()
                    .query_row(
                        "SELECT id FROM items WHERE project_id = ?1 AND area = ?2 AND path = ?3
                         AND state != 'erased'",
                        rusqlite::params![source.project_id, source.area.as_str(), path],
                        |r| r.get(0),
                    )
                    .optional()?;
                if taken.is_some() {
                    return Err(Error::AlreadyExists(format!(
                        "an item at {}/{path}",
                        source.area
                    )));
                }
                let pkey = w.vault.project_key(&source.project_id)?;
                let dir = w.vault.dir.clone();
                let mut file_id = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut file_id);
                let blob_id = hex::encode(file_id);
                w.mark_blobs_unsettled()?;
                let (out, tmp_path, mut guard) = create_temp(&dir, &blob_id)?;
                let dkey = DataKey::generate();
                let mut reader = VersionReader {
                    vault: w.vault,
                    view: &view,
                    off: 0,
                    buf: Vec::new(),
                    pos: 0,
                    error: None,
                };
                let mut writer = BufWriter::with_capacity(1 << 20, out);
                let what = crate::items::label(&source);
                let summary = encrypt_blob(
                    &dkey,
                    &file_id,
                    DEFAULT_CHUNK_SIZE,
                    &mut reader,
                    &mut writer,
                    &mut |_| {},
                )
                .map_err(|e| match reader.error.take() {
                    Some(re) => re,
                    None => blob_err(e, &what),
                })?;
                writer
                    .flush()
                    .map_err(|e| Error::io_path("writing", &tmp_path, e))?;
                let out = writer
                    .into_inner()
                    .map_err(|e| Error::io_path("writing", &tmp_path, e.into_error()))?;
                out.sync_all()
                    .map_err(|e| Error::io_path("syncing", &tmp_path, e))?;
                drop(out);
                let final_path = crate::layout::blob_path(&dir, &blob_id);
                let shard = final_path
                    .parent()
                    .expect("blob path has a shard dir")
                    .to_path_buf();
                if !shard.exists() {
                    std::fs::create_dir_all(&shard)
                        .map_err(|e| Error::io_path("creating", &shard, e))?;
                    fsutil::fsync_dir(&dir.join(BLOBS_DIR))?;
                }
                std::fs::rename(&tmp_path, &final_path)
                    .map_err(|e| Error::io_path("storing blob", &final_path, e))?;
                guard.0 = Some(final_path);
                fsutil::fsync_dir(&shard)?;
                let wrapped = pkey.wrap_data_key(&dkey, &file_id);
                let sha = hex::encode(summary.sha256);
                let now = ts_to_ms(w.vault.now());
                let actor = w.vault.actor.clone();
                let track = crate::changes::tracking(w.conn())?;
                let (new_id, _) = w.commit(actions::DATA_IMPORT, |tx| {
                    let (new_id, v) = insert_version(
                        tx,
                        &source.project_id,
                        source.area,
                        source.data_type,
                        &path,
                        &blob_id,
                        None,
                        &wrapped,
                        summary.plaintext_len,
                        &sha,
                        now,
                        &actor,
                        track,
                    )?;
                    let subject = Subject::new(
                        resources::item(&source.project_id, &new_id),
                        format!(
                            "area={} version={v} copy_of={} version={version}",
                            source.area, source.id
                        ),
                    );
                    Ok(((new_id, v), subject))
                })?;
                guard.disarm();
                crate::items::get(w.conn(), &new_id)
            },
        )
    }
}
