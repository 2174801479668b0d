//! Where a version's ciphertext lives: its own blob file `blobs/<xx>/<blob id>`, or a record in
//! a pack `blobs/<xx>/<pack id>` (the blob-v1 streams of a group of small files back to back,
//! one file create, write, sync and rename per group instead of one per file; see
//! docs/vault-layout.md, "Packs"). Readers see either as one blob through [`Window`].

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The location of one version's ciphertext, from its catalog row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlobLoc {
    /// A blob file of its own (big files, versions imported before packs).
    Own(PathBuf),
    /// `len` bytes at `offset` of a pack file.
    Record {
        /// The pack file.
        pack: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// Its length (header, chunks and tags).
        len: u64,
    },
}

impl BlobLoc {
    /// From the `blob_id, pack_id, pack_offset, pack_len` columns of an `item_versions` row.
    pub(crate) fn from_row(
        dir: &Path,
        blob_id: &str,
        pack_id: Option<String>,
        offset: Option<i64>,
        len: Option<i64>,
    ) -> Result<BlobLoc> {
        let valid_id = |id: &str| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid_id(blob_id) {
            return Err(Error::CorruptCatalog(format!(
                "malformed blob id {blob_id:?}"
            )));
        }
        match (pack_id, offset, len) {
            (None, None, None) => Ok(BlobLoc::Own(crate::layout::blob_path(dir, blob_id))),
            (Some(p), Some(o), Some(l)) if valid_id(&p) && o >= 0 && l > 0 => Ok(BlobLoc::Record {
                pack: crate::layout::blob_path(dir, &p),
                offset: o as u64,
                len: l as u64,
            }),
            _ => Err(Error::CorruptCatalog(format!(
                "blob {blob_id} has an invalid pack location"
            ))),
        }
    }

    /// The file holding the ciphertext.
    pub(crate) fn path(&self) -> &Path {
        match self {
            BlobLoc::Own(p) | BlobLoc::Record { pack: p, .. } => p,
        }
    }

    /// Opens the ciphertext for reading; a missing file is `not_found` naming `what`.
    pub(crate) fn open(&self, what: &str) -> Result<Window> {
        let path = self.path();
        let file = File::open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(format!("the blob of {what}"))
            } else {
                Error::io_path("reading blob of", path, e)
            }
        })?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io_path("reading blob of", path, e))?
            .len();
        let (start, len) = match self {
            BlobLoc::Own(_) => (0, file_len),
            // A pack cut short shows as a record cut short (the blob format reports it).
            BlobLoc::Record { offset, len, .. } => {
                (*offset, (*len).min(file_len.saturating_sub(*offset)))
            }
        };
        let mut w = Window {
            file,
            start,
            len,
            pos: 0,
        };
        w.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io_path("reading blob of", path, e))?;
        Ok(w)
    }
}

/// A byte range of a file read as if it were the whole file.
pub(crate) struct Window {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.file.seek(SeekFrom::Start(self.start + target))?;
        self.pos = target;
        Ok(target)
    }
}

/// Removes the bytes of erased records from a pack that other records still use: the file
/// system frees their blocks (a hole: reads give zeros), or where it cannot punch holes they
/// are overwritten with zeros; then the pack is synced. Ranges past the end are ignored.
pub(crate) fn erase_ranges(pack: &Path, ranges: &[(u64, u64)]) -> Result<()> {
    let err = |e: io::Error| Error::io_path("erasing records in", pack, e);
    let mut f = OpenOptions::new().write(true).open(pack).map_err(err)?;
    let size = f.metadata().map_err(err)?.len();
    for &(offset, len) in ranges {
        let len = len.min(size.saturating_sub(offset));
        if len == 0 {
            continue;
        }
        if !punch_hole(&f, offset, len) {
            f.seek(SeekFrom::Start(offset)).map_err(err)?;
            let zeros = vec![0u8; 1 << 16];
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n]).map_err(err)?;
                left -= n as u64;
            }
        }
    }
    f.sync_data().map_err(err)
}

/// Deallocates `[offset, offset + len)` keeping the file size; false where unsupported.
fn punch_hole(f: &File, offset: u64, len: u64) -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{fallocate, FallocateFlags};
        fallocate(
            f,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset,
            len,
        )
        .is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (f, offset, len);
        false
    }
}

/// The records of a pack still referenced by the catalog, as sorted (offset, len).
pub(crate) fn live_records(conn: &rusqlite::Connection, pack_id: &str) -> Result<Vec<(u64, u64)>> {
    let mut st = conn.prepare_cached(
        "SELECT pack_offset, pack_len FROM item_versions
         WHERE pack_id = ?1 AND blob_id IS NOT NULL ORDER BY pack_offset",
    )?;
    let rows = st.query_map([pack_id], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The gaps between `live` records (sorted) up to `size`: what erased records left.
pub(crate) fn gaps(live: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for &(o, l) in live {
        if o > at {
            out.push((at, o - at));
        }
        at = at.max(o.saturating_add(l));
    }
    if size > at {
        out.push((at, size - at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_what_no_live_record_covers() {
        assert_eq!(gaps(&[], 10), vec![(0, 10)]);
        assert_eq!(gaps(&[(0, 4), (4, 6)], 10), Vec::<(u64, u64)>::new());
        assert_eq!(gaps(&[(2, 3), (7, 1)], 10), vec![(0, 2), (5, 2), (8, 2)]);
    }

    #[test]
    fn a_window_reads_and_seeks_only_its_range() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("0123456789abcdef0123456789abcdef");
        std::fs::write(&p, b"aaaHELLObbb").unwrap();
        let loc = BlobLoc::Record {
            pack: p.clone(),
            offset: 3,
            len: 5,
        };
        let mut w = loc.open("x").unwrap();
        let mut s = String::new();
        w.read_to_string(&mut s).unwrap();
        assert_eq!(s, "HELLO");
        assert_eq!(w.seek(SeekFrom::End(-2)).unwrap(), 3);
        s.clear();
        w.read_to_string(&mut s).unwrap();
        assert_eq!(s, "LO");
        // A record running past the end of a cut pack ends where the pack ends.
        let cut = BlobLoc::Record {
            pack: p,
            offset: 9,
            len: 5,
        };
        let mut v = Vec::new();
        cut.open("x").unwrap().read_to_end(&mut v).unwrap();
        assert_eq!(v, b"bb");
    }

    #[test]
    fn erased_ranges_read_as_zeros_and_the_rest_is_kept() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("pack");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 + 1).collect();
        std::fs::write(&p, &data).unwrap();
        erase_ranges(&p, &[(5, 10), (100_000, 50_000)]).unwrap();
        let after = std::fs::read(&p).unwrap();
        assert_eq!(after.len(), data.len(), "size kept");
        assert!(after[5..15].iter().all(|&b| b == 0));
        assert!(after[100_000..150_000].iter().all(|&b| b == 0));
        assert_eq!(after[..5], data[..5]);
        assert_eq!(after[15..100_000], data[15..100_000]);
        assert_eq!(after[150_000..], data[150_000..]);
    }
}
