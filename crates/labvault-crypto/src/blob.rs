//! Blob format v1: chunked, streaming, parallel AES-256-GCM. Specified in
//! `docs/blob-format-v1.md`; this module is the reference implementation.
//!
//! Memory is bounded by one batch of chunks (≈ 8 MiB by default) whatever the blob size;
//! chunks of a batch are sealed/opened on all cores, output is written in order, and on
//! decryption only chunks that verified are ever written.

use std::io::{Read, Seek, SeekFrom, Write};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::{hkdf_32, DataKey};
use crate::CryptoError;

/// `\x89LVBLOB\n`: non-ASCII first byte and a newline catch text-mode mangling, like PNG.
pub const MAGIC: [u8; 8] = [0x89, b'L', b'V', b'B', b'L', b'O', b'B', b'\n'];
/// The blob format version this code writes.
pub const BLOB_VERSION: u16 = 1;
/// Algorithm id 1: AES-256-GCM with an HKDF-SHA256 per-blob subkey.
pub const ALG_AES256GCM_HKDF_SHA256: u16 = 1;
/// Fixed header length of a v1 blob.
pub const HEADER_LEN: usize = 71;
/// 1 MiB: large enough that per-chunk overhead (17 bytes, one GCM finalisation) is
/// negligible, small enough that batches of chunks fill all cores with bounded memory.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest accepted chunk size (used by the test vectors).
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest accepted chunk size, so a hostile header cannot force huge allocations.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;

const TAG_LEN: usize = 16;
const KIND_CHUNK: u8 = 0;
const KIND_FINAL: u8 = 1;
const SUBKEY_INFO: &[u8] = b"labvault/blob/v1/chunk-key";
/// Target plaintext bytes per parallel batch.
const BATCH_BYTES: usize = 8 << 20;
/// Cap so tiny chunk sizes (test vectors) do not create huge job lists.
const MAX_BATCH_CHUNKS: usize = 1024;

/// What the vault records in its catalog after storing a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptSummary {
    /// Plaintext length in bytes.
    pub plaintext_len: u64,
    /// SHA-256 of the plaintext, computed while streaming (for `verify` and dedup).
    pub sha256: [u8; 32],
    /// Bytes written to the output.
    pub ciphertext_len: u64,
}

/// What an export/verify learns after a fully verified decryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptSummary {
    /// Plaintext length in bytes.
    pub plaintext_len: u64,
    /// SHA-256 of the plaintext, to compare with the catalog.
    pub sha256: [u8; 32],
}

/// A fresh random 128-bit file id (one per stored file version).
pub fn random_file_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

struct Header {
    bytes: [u8; HEADER_LEN],
    chunk_size: u32,
}

impl Header {
    fn build(chunk_size: u32, file_id: &[u8; 16], salt: &[u8; 32], prefix: &[u8; 7]) -> Header {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&BLOB_VERSION.to_be_bytes());
        b[10..12].copy_from_slice(&ALG_AES256GCM_HKDF_SHA256.to_be_bytes());
        b[12..16].copy_from_slice(&chunk_size.to_be_bytes());
        b[16..32].copy_from_slice(file_id);
        b[32..64].copy_from_slice(salt);
        b[64..71].copy_from_slice(prefix);
        Header {
            bytes: b,
            chunk_size,
        }
    }

    /// Checks in the order of the spec: magic, version, algorithm, chunk size, file id.
    fn read<R: Read>(r: &mut R, file_id: &[u8; 16]) -> Result<Header, CryptoError> {
        let mut b = [0u8; HEADER_LEN];
        let n = read_full(r, &mut b)?;
        if n < MAGIC.len() || b[..8] != MAGIC {
            return Err(CryptoError::NotABlob);
        }
        if n < HEADER_LEN {
            return Err(CryptoError::Truncated);
        }
        let version = u16::from_be_bytes([b[8], b[9]]);
        if version != BLOB_VERSION {
            return Err(CryptoError::UnsupportedVersion(u32::from(version)));
        }
        let alg = u16::from_be_bytes([b[10], b[11]]);
        if alg != ALG_AES256GCM_HKDF_SHA256 {
            return Err(CryptoError::InvalidHeader(format!(
                "unknown algorithm id {alg}"
            )));
        }
        let chunk_size = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
        check_chunk_size(chunk_size)?;
        if &b[16..32] != file_id {
            return Err(CryptoError::FileIdMismatch);
        }
        Ok(Header {
            bytes: b,
            chunk_size,
        })
    }

    fn cipher(&self, key: &DataKey) -> ChunkCipher {
        let sub = hkdf_32(
            &key.0,
            Some(&self.bytes[32..64]),
            &[SUBKEY_INFO, &self.bytes[16..32]],
        );
        let mut prefix = [0u8; 7];
        prefix.copy_from_slice(&self.bytes[64..71]);
        ChunkCipher {
            aead: backend::Aead::new(&sub),
            prefix,
            header_hash: Sha256::digest(self.bytes).into(),
        }
    }
}

fn check_chunk_size(cs: u32) -> Result<(), CryptoError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&cs) {
        return Err(CryptoError::InvalidHeader(format!(
            "chunk size {cs} outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        )));
    }
    Ok(())
}

/// AES-256-GCM backend. Default: the RustCrypto `aes-gcm` crate. With the
/// `ring-backend` feature: `ring`'s AES-256-GCM (same algorithm, same bytes; several times
/// faster on CPUs with VAES/AVX2, see `docs/benchmarks.md`). The committed test vectors
/// pass with either.
#[cfg(not(feature = "ring-backend"))]
mod backend {
    use super::TAG_LEN;
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    pub(super) struct Aead(Aes256Gcm);

    impl Aead {
        pub(super) fn new(key: &[u8; 32]) -> Aead {
            Aead(Aes256Gcm::new(key.into()))
        }
        pub(super) fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
            self.0
                .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into())
                .expect("chunk sizes are far below the AES-GCM message limit")
                .into()
        }
        pub(super) fn open(
            &self,
            nonce: &[u8; 12],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8],
        ) -> bool {
            let Ok(tag) = Tag::try_from(tag) else {
                return false;
            };
            self.0
                .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into(), &tag)
                .is_ok()
        }
    }
}

#[cfg(feature = "ring-backend")]
mod backend {
    use super::TAG_LEN;
    use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};

    pub(super) struct Aead(LessSafeKey);

    impl Aead {
        pub(super) fn new(key: &[u8; 32]) -> Aead {
            Aead(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, key).expect("32-byte key"),
            ))
        }
        pub(super) fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    buf,
                )
                .expect("chunk sizes are far below the AES-GCM message limit");
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(tag.as_ref());
            t
        }
        pub(super) fn open(
            &self,
            nonce: &[u8; 12],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8],
        ) -> bool {
            let Ok(tag) = Tag::try_from(tag) else {
                return false;
            };
            self.0
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    tag,
                    buf,
                    0..,
                )
                .is_ok()
        }
    }
}

/// The per-blob AEAD plus what every chunk's nonce and associated data are built from.
struct ChunkCipher {
    aead: backend::Aead,
    prefix: [u8; 7],
    header_hash: [u8; 32],
}

impl ChunkCipher {
    fn nonce(&self, index: u64, last: bool) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.prefix);
        n[7..11].copy_from_slice(&(index as u32).to_be_bytes());
        n[11] = u8::from(last);
        n
    }

    fn aad(&self, index: u64, last: bool) -> [u8; 41] {
        let mut a = [0u8; 41];
        a[..32].copy_from_slice(&self.header_hash);
        a[32..40].copy_from_slice(&index.to_be_bytes());
        a[40] = u8::from(last);
        a
    }

    fn seal(&self, index: u64, last: bool, buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.aead
            .seal(&self.nonce(index, last), &self.aad(index, last), buf)
    }

    fn open(&self, index: u64, last: bool, buf: &mut [u8], tag: &[u8]) -> bool {
        self.aead
            .open(&self.nonce(index, last), &self.aad(index, last), buf, tag)
    }
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Cores to use, looked up once per process: `available_parallelism` reads cgroup files
/// under `/proc` on every call, a measurable cost per small blob.
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Chunks per batch: ~8 MiB of plaintext, at most 1024 chunks, at least one per core.
fn batch_chunks(cs: usize) -> usize {
    (BATCH_BYTES / cs).min(MAX_BATCH_CHUNKS).max(threads())
}

/// Runs `f(chunk_slot, item)` for every item, spread over all cores in contiguous runs;
/// `extra` runs concurrently on the calling thread (I/O) and `side`, if any, on one more
/// thread (hashing), so that no single thread's serial work caps the throughput. With one
/// core or one item everything runs inline (no thread is started for a small file).
fn par_each<T: Send, F, E, S>(items: &mut [T], f: F, extra: E, side: Option<S>)
where
    F: Fn(&mut T) + Sync,
    E: FnOnce(),
    S: FnOnce() + Send,
{
    let workers = threads().min(items.len());
    if workers <= 1 {
        if let Some(side) = side {
            side();
        }
        extra();
        items.iter_mut().for_each(&f);
        return;
    }
    let per = items.len().div_ceil(workers);
    std::thread::scope(|s| {
        for part in items.chunks_mut(per) {
            let f = &f;
            s.spawn(move || part.iter_mut().for_each(f));
        }
        if let Some(side) = side {
            s.spawn(side);
        }
        extra();
    });
}

/// Encrypts `input` into `output` as a v1 blob under a fresh random salt and nonce prefix.
/// `progress` is called with the cumulative plaintext bytes after each batch.
pub fn encrypt_blob<R: Read, W: Write>(
    key: &DataKey,
    file_id: &[u8; 16],
    chunk_size: u32,
    input: R,
    output: W,
    progress: &mut dyn FnMut(u64),
) -> Result<EncryptSummary, CryptoError> {
    let (salt, prefix) = header_randomness();
    encrypt_blob_with_header_randomness(
        key, file_id, chunk_size, &salt, &prefix, input, output, progress,
    )
}

/// A fresh salt and nonce prefix for a blob header, from ONE read of the OS generator (small
/// files are imported by the thousand, and each system call shows).
fn header_randomness() -> ([u8; 32], [u8; 7]) {
    let mut r = [0u8; 39];
    rand::rngs::OsRng.fill_bytes(&mut r);
    let (salt, prefix) = r.split_at(32);
    (
        salt.try_into().expect("32 bytes"),
        prefix.try_into().expect("7 bytes"),
    )
}

/// Deterministic variant for generating and checking committed test vectors ONLY.
/// Reusing a salt/prefix with the same key in production would reuse nonces.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn encrypt_blob_with_header_randomness<R: Read, W: Write>(
    key: &DataKey,
    file_id: &[u8; 16],
    chunk_size: u32,
    salt: &[u8; 32],
    nonce_prefix: &[u8; 7],
    mut input: R,
    mut output: W,
    progress: &mut dyn FnMut(u64),
) -> Result<EncryptSummary, CryptoError> {
    check_chunk_size(chunk_size)?;
    let cs = chunk_size as usize;
    let header = Header::build(chunk_size, file_id, salt, nonce_prefix);
    let cipher = header.cipher(key);
    output.write_all(&header.bytes)?;
    let mut ct_len = HEADER_LEN as u64;
    let mut pt_len = 0u64;
    let mut hasher = Sha256::new();

    // Two batch buffers: while the cores seal batch k, this thread hashes batch k, writes
    // the sealed batch k-1 and reads batch k+1, so I/O and hashing overlap encryption.
    let nb = batch_chunks(cs);
    let mut bufs = [EncBatch::new(nb, cs), EncBatch::new(nb, cs)];
    let mut carry: Option<u8> = None;
    let mut index: u64 = 0;
    let (first, second) = bufs.split_at_mut(1);
    let (mut cur, mut other) = (&mut first[0], &mut second[0]);
    cur.fill(&mut input, &mut carry, &mut index, cs)?;
    loop {
        let cur_eof = cur.eof;
        let mut io_res: Result<(), CryptoError> = Ok(());
        {
            let EncBatch {
                plain,
                sealed,
                tags,
                n,
                chunks,
                first_index,
                eof,
                ..
            } = &mut *cur;
            let plain: &[u8] = &plain[..*n];
            if sealed.len() < *n {
                sealed.resize(*n, 0);
            }
            let mut rest: &mut [u8] = &mut sealed[..*n];
            let mut jobs: Vec<EncJob> = Vec::with_capacity(*chunks);
            for (i, tag) in tags.iter_mut().take(*chunks).enumerate() {
                let start = i * cs;
                let end = (start + cs).min(plain.len());
                let (dst, tail) = std::mem::take(&mut rest).split_at_mut(end - start);
                rest = tail;
                jobs.push(EncJob {
                    index: *first_index + i as u64,
                    last: *eof && i + 1 == *chunks,
                    src: &plain[start..end],
                    dst,
                    tag,
                });
            }
            let (hasher, other, output, input) =
                (&mut hasher, &mut *other, &mut output, &mut input);
            let (ct_len, carry, index, io_res) = (&mut ct_len, &mut carry, &mut index, &mut io_res);
            par_each(
                &mut jobs,
                |j| {
                    j.dst.copy_from_slice(j.src);
                    *j.tag = cipher.seal(j.index, j.last, j.dst);
                },
                move || {
                    *io_res = (|| {
                        if other.pending_write {
                            *ct_len += other.write_to(output, cs)?;
                        }
                        if !cur_eof {
                            other.fill(input, carry, index, cs)?;
                        }
                        Ok(())
                    })();
                },
                Some(move || hasher.update(plain)),
            );
        }
        io_res?;
        cur.pending_write = true;
        pt_len += cur.n as u64;
        progress(pt_len);
        if cur_eof {
            ct_len += cur.write_to(&mut output, cs)?;
            break;
        }
        std::mem::swap(&mut cur, &mut other);
    }
    output.flush()?;
    Ok(EncryptSummary {
        plaintext_len: pt_len,
        sha256: hasher.finalize().into(),
        ciphertext_len: ct_len,
    })
}

/// A plaintext already in memory sealed into a v1 blob on the calling thread: the same bytes
/// [`encrypt_blob`] writes, without its batch buffers and threads, which cost more than a small
/// file itself. The multi-chunk path of [`encrypt_blob_buffer`].
fn encrypt_blob_in_memory(
    key: &DataKey,
    file_id: &[u8; 16],
    chunk_size: u32,
    salt: &[u8; 32],
    nonce_prefix: &[u8; 7],
    plaintext: &[u8],
) -> Result<(EncryptSummary, Vec<u8>), CryptoError> {
    check_chunk_size(chunk_size)?;
    let cs = chunk_size as usize;
    let header = Header::build(chunk_size, file_id, salt, nonce_prefix);
    let cipher = header.cipher(key);
    let chunks = plaintext.len().div_ceil(cs).max(1);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + chunks * (1 + TAG_LEN) + 4);
    out.extend_from_slice(&header.bytes);
    for i in 0..chunks {
        let part = &plaintext[(i * cs).min(plaintext.len())..((i + 1) * cs).min(plaintext.len())];
        let last = i + 1 == chunks;
        if last {
            out.push(KIND_FINAL);
            out.extend_from_slice(&((part.len() + TAG_LEN) as u32).to_be_bytes());
        } else {
            out.push(KIND_CHUNK);
        }
        let at = out.len();
        out.extend_from_slice(part);
        let tag = cipher.seal(i as u64, last, &mut out[at..]);
        out.extend_from_slice(&tag);
    }
    let summary = EncryptSummary {
        plaintext_len: plaintext.len() as u64,
        sha256: Sha256::digest(plaintext).into(),
        ciphertext_len: out.len() as u64,
    };
    Ok((summary, out))
}

/// Bytes before the plaintext of a one-chunk blob: header, chunk kind, final-chunk length.
const ONE_CHUNK_PREFIX: usize = HEADER_LEN + 1 + 4;

/// A plaintext read straight into the buffer its blob will be built in: for a file of at most
/// one chunk, [`encrypt_blob_buffer`] hashes and seals it in place, with no copy between the
/// read and the seal and no plaintext left behind in a freed buffer.
pub struct PlaintextBuffer(Vec<u8>);

impl PlaintextBuffer {
    /// An empty buffer with room for `plaintext_len` bytes and the blob's framing.
    pub fn with_capacity(plaintext_len: usize) -> PlaintextBuffer {
        let mut buf = Vec::with_capacity(ONE_CHUNK_PREFIX + plaintext_len + TAG_LEN + 1);
        buf.resize(ONE_CHUNK_PREFIX, 0);
        PlaintextBuffer(buf)
    }

    /// Appends everything `reader` yields; returns the number of bytes read.
    pub fn read_from<R: Read>(&mut self, mut reader: R) -> std::io::Result<usize> {
        reader.read_to_end(&mut self.0)
    }

    /// Plaintext bytes held.
    pub fn len(&self) -> usize {
        self.0.len() - ONE_CHUNK_PREFIX
    }

    /// No plaintext yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Encrypts a small file's plaintext, read into a [`PlaintextBuffer`], into a v1 blob on the
/// calling thread: the same bytes [`encrypt_blob`] writes, built in the buffer itself when the
/// plaintext fits one chunk (import packs many small files per group).
pub fn encrypt_blob_buffer(
    key: &DataKey,
    file_id: &[u8; 16],
    chunk_size: u32,
    plaintext: PlaintextBuffer,
) -> Result<(EncryptSummary, Vec<u8>), CryptoError> {
    let (salt, prefix) = header_randomness();
    encrypt_blob_buffer_with_header_randomness(key, file_id, chunk_size, &salt, &prefix, plaintext)
}

/// Deterministic variant of [`encrypt_blob_buffer`] for checking it against the other
/// encoders ONLY (reusing a salt/prefix with the same key would reuse nonces).
#[doc(hidden)]
pub fn encrypt_blob_buffer_with_header_randomness(
    key: &DataKey,
    file_id: &[u8; 16],
    chunk_size: u32,
    salt: &[u8; 32],
    nonce_prefix: &[u8; 7],
    plaintext: PlaintextBuffer,
) -> Result<(EncryptSummary, Vec<u8>), CryptoError> {
    check_chunk_size(chunk_size)?;
    let len = plaintext.len();
    let mut buf = plaintext.0;
    if len > chunk_size as usize {
        return encrypt_blob_in_memory(
            key,
            file_id,
            chunk_size,
            salt,
            nonce_prefix,
            &buf[ONE_CHUNK_PREFIX..],
        );
    }
    let header = Header::build(chunk_size, file_id, salt, nonce_prefix);
    let sha256: [u8; 32] = Sha256::digest(&buf[ONE_CHUNK_PREFIX..]).into();
    buf[..HEADER_LEN].copy_from_slice(&header.bytes);
    buf[HEADER_LEN] = KIND_FINAL;
    buf[HEADER_LEN + 1..ONE_CHUNK_PREFIX].copy_from_slice(&((len + TAG_LEN) as u32).to_be_bytes());
    let tag = header
        .cipher(key)
        .seal(0, true, &mut buf[ONE_CHUNK_PREFIX..]);
    buf.extend_from_slice(&tag);
    let summary = EncryptSummary {
        plaintext_len: len as u64,
        sha256,
        ciphertext_len: buf.len() as u64,
    };
    Ok((summary, buf))
}

/// One chunk to seal: plaintext source, ciphertext destination, tag slot.
struct EncJob<'a> {
    index: u64,
    last: bool,
    src: &'a [u8],
    dst: &'a mut [u8],
    tag: &'a mut [u8; TAG_LEN],
}

/// A batch of up to `nb` chunks: plaintext as read, sealed output, tags, and where the
/// batch sits in the stream.
struct EncBatch {
    /// Grows with what is read, up to `max_len`: a 2 KiB file must not pay for zeroing
    /// two 8 MiB batches (that was 71% of small-file import time).
    plain: Vec<u8>,
    max_len: usize,
    sealed: Vec<u8>,
    tags: Vec<[u8; TAG_LEN]>,
    n: usize,
    chunks: usize,
    first_index: u64,
    /// This batch holds the final chunk.
    eof: bool,
    /// Sealed but not yet written.
    pending_write: bool,
}

impl EncBatch {
    fn new(nb: usize, cs: usize) -> EncBatch {
        EncBatch {
            plain: Vec::new(),
            max_len: nb * cs,
            sealed: Vec::new(),
            tags: vec![[0u8; TAG_LEN]; nb],
            n: 0,
            chunks: 0,
            first_index: 0,
            eof: false,
            pending_write: false,
        }
    }

    /// Reads the next batch. A full batch peeks one more byte (kept in `carry` for the
    /// next batch) to learn whether its last chunk is the final chunk of the stream.
    fn fill<R: Read>(
        &mut self,
        input: &mut R,
        carry: &mut Option<u8>,
        next_index: &mut u64,
        cs: usize,
    ) -> Result<(), CryptoError> {
        let mut n = 0;
        if let Some(b) = carry.take() {
            self.grow(1);
            self.plain[0] = b;
            n = 1;
        }
        // Read until EOF or a full batch, doubling the buffer as data keeps coming.
        loop {
            if n == self.plain.len() {
                if n == self.max_len {
                    break;
                }
                self.grow(n + 1);
            }
            let want = self.plain.len();
            n += read_full(input, &mut self.plain[n..want])?;
            if n < want {
                break;
            }
        }
        let eof = if n == self.max_len {
            let mut peek = [0u8; 1];
            if read_full(input, &mut peek)? == 1 {
                *carry = Some(peek[0]);
                false
            } else {
                true
            }
        } else {
            true
        };
        // n == 0 only for an empty stream (a carried byte makes every later batch non-empty).
        let chunks = if n == 0 { 1 } else { n.div_ceil(cs) };
        if *next_index + chunks as u64 > u64::from(u32::MAX) + 1 {
            return Err(CryptoError::InvalidHeader(
                "input too large for this chunk size (more than 2^32 chunks)".into(),
            ));
        }
        self.n = n;
        self.chunks = chunks;
        self.first_index = *next_index;
        *next_index += chunks as u64;
        self.eof = eof;
        self.pending_write = false;
        Ok(())
    }

    /// Grows `plain` to hold at least `min` bytes: doubling from 64 KiB, capped at `max_len`.
    fn grow(&mut self, min: usize) {
        let target = (self.plain.len() * 2)
            .max(64 * 1024)
            .max(min)
            .min(self.max_len);
        if target > self.plain.len() {
            self.plain.resize(target, 0);
        }
    }

    /// Writes the sealed frames in order; returns the number of bytes written.
    fn write_to<W: Write>(&mut self, out: &mut W, cs: usize) -> Result<u64, CryptoError> {
        let mut written = 0u64;
        for i in 0..self.chunks {
            let len = if self.n == 0 {
                0
            } else {
                (self.n - i * cs).min(cs)
            };
            if self.eof && i + 1 == self.chunks {
                out.write_all(&[KIND_FINAL])?;
                out.write_all(&((len + TAG_LEN) as u32).to_be_bytes())?;
                written += 5;
            } else {
                out.write_all(&[KIND_CHUNK])?;
                written += 1;
            }
            out.write_all(&self.sealed[i * cs..i * cs + len])?;
            out.write_all(&self.tags[i])?;
            written += (len + TAG_LEN) as u64;
        }
        self.pending_write = false;
        Ok(written)
    }
}

/// Decrypts a v1 blob, writing plaintext only for chunks that verified. Any error means
/// the output is incomplete and must be discarded by the caller (the vault writes to a
/// temp file and renames it only on success).
pub fn decrypt_blob<R: Read, W: Write>(
    key: &DataKey,
    file_id: &[u8; 16],
    input: R,
    mut output: W,
    progress: &mut dyn FnMut(u64),
) -> Result<DecryptSummary, CryptoError> {
    let mut input = std::io::BufReader::with_capacity(64 * 1024, input);
    let header = Header::read(&mut input, file_id)?;
    let cipher = header.cipher(key);
    let cs = header.chunk_size as usize;
    let slot = cs + TAG_LEN;
    let nb = batch_chunks(cs);
    let mut hasher = Sha256::new();
    let mut pt_len = 0u64;
    let mut index: u64 = 0;

    // Two batch buffers: while the cores open batch k, this thread hashes and writes the
    // verified batch k-1 and parses batch k+1.
    let mut bufs = [DecBatch::new(nb, slot), DecBatch::new(nb, slot)];
    let (first, second) = bufs.split_at_mut(1);
    let (mut cur, mut other) = (&mut first[0], &mut second[0]);
    cur.parse(&mut input, &mut index, nb, slot);
    loop {
        let cur_last = cur.last;
        let mut io_res: Result<(), CryptoError> = Ok(());
        let mut jobs: Vec<DecJob> = cur
            .buf
            .chunks_mut(slot)
            .zip(cur.frames.iter())
            .enumerate()
            .map(|(k, (s, &(len, last)))| DecJob {
                index: cur.first_index + k as u64,
                last,
                data: &mut s[..len],
                ok: false,
            })
            .collect();
        {
            let (hasher, other, output, input) =
                (&mut hasher, &mut *other, &mut output, &mut input);
            let (pt_len, index, io_res, progress) =
                (&mut pt_len, &mut index, &mut io_res, &mut *progress);
            par_each(
                &mut jobs,
                |j| {
                    let (ct, tag) = j.data.split_at_mut(j.data.len() - TAG_LEN);
                    j.ok = cipher.open(j.index, j.last, ct, tag);
                },
                move || {
                    if other.pending_write {
                        match other.write_to(output, hasher) {
                            Ok(n) => {
                                *pt_len += n;
                                progress(*pt_len);
                            }
                            Err(e) => {
                                *io_res = Err(e);
                                return;
                            }
                        }
                    }
                    if !cur_last {
                        other.parse(input, index, nb, slot);
                    }
                },
                None::<fn()>,
            );
        }
        let bad = jobs.iter().find(|j| !j.ok).map(|j| j.index);
        drop(jobs);
        io_res?;
        if let Some(chunk) = bad {
            return Err(CryptoError::Tampered { chunk });
        }
        if let Some(e) = cur.pending.take() {
            return Err(e);
        }
        cur.pending_write = true;
        if cur_last {
            pt_len += cur.write_to(&mut output, &mut hasher)?;
            progress(pt_len);
            break;
        }
        std::mem::swap(&mut cur, &mut other);
    }
    output.flush()?;
    Ok(DecryptSummary {
        plaintext_len: pt_len,
        sha256: hasher.finalize().into(),
    })
}

/// One chunk to open in place: ciphertext followed by its tag.
struct DecJob<'a> {
    index: u64,
    last: bool,
    data: &'a mut [u8],
    ok: bool,
}

/// A batch of parsed frames awaiting verification (and then writing).
struct DecBatch {
    buf: Vec<u8>,
    /// Bytes per frame slot in `buf` (chunk size + tag).
    slot: usize,
    /// (ciphertext length incl. tag, is final chunk) per frame.
    frames: Vec<(usize, bool)>,
    first_index: u64,
    /// A framing/trailing-data/read error found after the frames of this batch; reported
    /// only once those frames verified, so errors come out in stream order.
    pending: Option<CryptoError>,
    /// No batch follows (final chunk seen, or an error ended parsing).
    last: bool,
    pending_write: bool,
}

impl DecBatch {
    fn new(nb: usize, slot: usize) -> DecBatch {
        DecBatch {
            // Grown one frame slot at a time in `parse`, so small blobs stay cheap.
            buf: Vec::new(),
            slot,
            frames: Vec::with_capacity(nb),
            first_index: 0,
            pending: None,
            last: false,
            pending_write: false,
        }
    }

    fn parse<R: Read>(&mut self, input: &mut R, next_index: &mut u64, nb: usize, slot: usize) {
        self.frames.clear();
        self.pending = None;
        self.pending_write = false;
        self.first_index = *next_index;
        let mut final_seen = false;
        while self.frames.len() < nb && !final_seen {
            let i = *next_index;
            let off = self.frames.len() * slot;
            match read_frame(input, i, slot, &mut self.buf, off) {
                Ok((len, last)) => {
                    self.frames.push((len, last));
                    *next_index += 1;
                    final_seen = last;
                }
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
        if final_seen {
            let mut extra = [0u8; 1];
            match read_full(input, &mut extra) {
                Ok(0) => {}
                Ok(_) => self.pending = Some(CryptoError::TrailingData),
                Err(e) => self.pending = Some(e.into()),
            }
        }
        self.last = final_seen || self.pending.is_some();
    }

    /// Hashes and writes the (verified) plaintext of every frame; returns its length.
    fn write_to<W: Write>(&mut self, out: &mut W, hasher: &mut Sha256) -> Result<u64, CryptoError> {
        let mut n = 0u64;
        for (k, &(len, _)) in self.frames.iter().enumerate() {
            let start = k * self.slot;
            let pt = &self.buf[start..start + len - TAG_LEN];
            hasher.update(pt);
            out.write_all(pt)?;
            n += pt.len() as u64;
        }
        self.pending_write = false;
        Ok(n)
    }
}

/// Reads one frame into `buf[off..]` (at most `slot` = chunk size + tag bytes), sizing `buf`
/// to end with the frame, so a small blob does not pay for zeroing a whole chunk slot;
/// returns its ciphertext length (including tag) and whether it is the final chunk.
fn read_frame<R: Read>(
    input: &mut R,
    i: u64,
    slot: usize,
    buf: &mut Vec<u8>,
    off: usize,
) -> Result<(usize, bool), CryptoError> {
    let mut kind = [0u8; 1];
    if read_full(input, &mut kind)? == 0 {
        return Err(CryptoError::Truncated);
    }
    if i > u64::from(u32::MAX) {
        return Err(CryptoError::Tampered { chunk: i });
    }
    let (len, last) = match kind[0] {
        KIND_CHUNK => (slot, false),
        KIND_FINAL => {
            let mut l = [0u8; 4];
            if read_full(input, &mut l)? < 4 {
                return Err(CryptoError::Truncated);
            }
            let l = u32::from_be_bytes(l) as usize;
            if !(TAG_LEN..=slot).contains(&l) {
                return Err(CryptoError::Tampered { chunk: i });
            }
            (l, true)
        }
        _ => return Err(CryptoError::Tampered { chunk: i }),
    };
    // Appending through `take` fills the spare capacity without zeroing it first (this
    // frame's bytes, and any later frame's from a previous batch, are read again anyway).
    buf.truncate(off);
    buf.reserve(len);
    Read::take(&mut *input, len as u64).read_to_end(buf)?;
    if buf.len() < off + len {
        return Err(CryptoError::Truncated);
    }
    Ok((len, last))
}

/// Random access for previews (HTTP range requests): verifies the final chunk (which
/// authenticates the plaintext length) and decrypts only the chunks covering
/// `[offset, offset + len)`, clamped to the plaintext length.
pub fn decrypt_range<R: Read + Seek>(
    key: &DataKey,
    file_id: &[u8; 16],
    mut input: R,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, CryptoError> {
    input.seek(SeekFrom::Start(0))?;
    let header = Header::read(&mut input, file_id)?;
    let cipher = header.cipher(key);
    let cs = u64::from(header.chunk_size);
    let frame = cs + TAG_LEN as u64 + 1;
    let total = input.seek(SeekFrom::End(0))?;
    let body = total - HEADER_LEN as u64;
    let min_final = 5 + TAG_LEN as u64;
    if body < min_final {
        return Err(CryptoError::Truncated);
    }
    let n = (body - min_final) / frame; // number of non-final chunks
    let final_ct = body - 5 - n * frame;
    if final_ct > cs + TAG_LEN as u64 || n > u64::from(u32::MAX) {
        return Err(CryptoError::Truncated);
    }
    let read_frame = |input: &mut R, idx: u64, last: bool| -> Result<Vec<u8>, CryptoError> {
        input.seek(SeekFrom::Start(HEADER_LEN as u64 + idx * frame))?;
        let mut kind = [0u8; 1];
        input.read_exact(&mut kind)?;
        let want = if last { KIND_FINAL } else { KIND_CHUNK };
        if kind[0] != want {
            return Err(if last {
                CryptoError::Truncated
            } else {
                CryptoError::Tampered { chunk: idx }
            });
        }
        let clen = if last {
            let mut l = [0u8; 4];
            input.read_exact(&mut l)?;
            if u64::from(u32::from_be_bytes(l)) != final_ct {
                return Err(CryptoError::Truncated);
            }
            final_ct as usize
        } else {
            frame as usize - 1
        };
        let mut data = vec![0u8; clen];
        input.read_exact(&mut data)?;
        let (ct, tag) = data.split_at_mut(clen - TAG_LEN);
        if !cipher.open(idx, last, ct, tag) {
            return Err(CryptoError::Tampered { chunk: idx });
        }
        data.truncate(clen - TAG_LEN);
        Ok(data)
    };
    let final_pt = read_frame(&mut input, n, true)?;
    let pt_total = n * cs + final_pt.len() as u64;
    let start = offset.min(pt_total);
    let end = offset.saturating_add(len).min(pt_total);
    let mut out = Vec::with_capacity((end - start) as usize);
    if start == end {
        return Ok(out);
    }
    for idx in start / cs..=(end - 1) / cs {
        let chunk_start = idx * cs;
        let pt = if idx == n {
            None
        } else {
            Some(read_frame(&mut input, idx, false)?)
        };
        let pt: &[u8] = pt.as_deref().unwrap_or(&final_pt);
        let a = (start.max(chunk_start) - chunk_start) as usize;
        let b = (end.min(chunk_start + pt.len() as u64) - chunk_start) as usize;
        out.extend_from_slice(&pt[a..b]);
    }
    Ok(out)
}
