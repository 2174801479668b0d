//! Blob format v1 behaviour: round trips (property-based), streaming/batching edges,
//! "only verified chunks are written", range decryption, and misuse.

use std::io::Cursor;

use labvault_crypto::{
    decrypt_blob, decrypt_range, encrypt_blob, encrypt_blob_buffer,
    encrypt_blob_buffer_with_header_randomness, encrypt_blob_with_header_randomness, CryptoError,
    DataKey, PlaintextBuffer, DEFAULT_CHUNK_SIZE, HEADER_LEN,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const FID: [u8; 16] = [0x42; 16];

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0] ^ seed)
        .collect()
}

fn enc(key: &DataKey, cs: u32, pt: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let s = encrypt_blob(key, &FID, cs, pt, &mut out, &mut |_| {}).unwrap();
    assert_eq!(s.plaintext_len, pt.len() as u64);
    assert_eq!(s.ciphertext_len, out.len() as u64);
    assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(pt)));
    out
}

fn dec(key: &DataKey, blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::new();
    let s = decrypt_blob(key, &FID, blob, &mut out, &mut |_| {})?;
    assert_eq!(s.plaintext_len, out.len() as u64);
    assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(&out)));
    Ok(out)
}

fn interesting_len() -> impl Strategy<Value = (u32, usize)> {
    (64u32..300).prop_flat_map(|cs| {
        let c = cs as usize;
        (
            Just(cs),
            prop_oneof![
                Just(0usize),
                Just(1),
                Just(c - 1),
                Just(c),
                Just(c + 1),
                Just(3 * c),
                Just(3 * c + 1),
                0usize..8 * c,
            ],
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_random_sizes((cs, len) in interesting_len(), seed in any::<u8>()) {
        let key = DataKey::generate();
        let pt = data(len, seed);
        let blob = enc(&key, cs, &pt);
        // Overhead: header + 1 kind byte per chunk + 4-byte final length + 16-byte tag per chunk.
        let chunks = if len == 0 { 1 } else { len.div_ceil(cs as usize) };
        prop_assert_eq!(blob.len(), HEADER_LEN + len + chunks * 17 + 4);
        prop_assert_eq!(dec(&key, &blob).unwrap(), pt.clone());
        // Range reads agree with the plaintext.
        let a = len / 3;
        let b = (len / 3) * 2 + 1;
        let r = decrypt_range(&key, &FID, Cursor::new(&blob), a as u64, (b - a) as u64).unwrap();
        prop_assert_eq!(&r[..], &pt[a.min(len)..b.min(len)]);
    }

    #[test]
    fn the_buffer_encoder_writes_the_same_blob_as_the_streaming_one(
        (cs, len) in interesting_len(),
        seed in any::<u8>(),
    ) {
        let key = DataKey::generate();
        let pt = data(len, seed);
        let (salt, prefix) = ([seed; 32], [seed ^ 0x5a; 7]);
        let mut streamed = Vec::new();
        let s = encrypt_blob_with_header_randomness(
            &key, &FID, cs, &salt, &prefix, &pt[..], &mut streamed, &mut |_| {},
        )
        .unwrap();

        // Read into a PlaintextBuffer and sealed in place (one chunk) or copied (more).
        let buffer = || {
            let mut b = PlaintextBuffer::with_capacity(len);
            prop_assert_eq!(b.read_from(&pt[..]).unwrap(), len);
            prop_assert_eq!(b.len(), len);
            Ok(b)
        };
        let (bs, in_buffer) = encrypt_blob_buffer_with_header_randomness(
            &key, &FID, cs, &salt, &prefix, buffer()?,
        )
        .unwrap();
        prop_assert_eq!(&in_buffer, &streamed);
        prop_assert_eq!(bs, s);
        let (_, fresh) = encrypt_blob_buffer(&key, &FID, cs, buffer()?).unwrap();
        prop_assert_eq!(dec(&key, &fresh).unwrap(), pt);
    }

    #[test]
    fn any_single_byte_flip_is_detected((cs, len) in interesting_len(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let key = DataKey::generate();
        let pt = data(len, 1);
        let mut blob = enc(&key, cs, &pt);
        let i = pos.index(blob.len());
        blob[i] ^= 1 << bit;
        prop_assert!(dec(&key, &blob).is_err(), "flip at {} undetected", i);
    }
}

#[test]
fn batch_boundaries_round_trip() {
    // With 64-byte chunks a batch is 1024 chunks (64 KiB); exercise exactly one batch (final
    // chunk full, found by peeking), one batch + 1 byte (peeked byte carried over), and
    // several batches.
    let key = DataKey::generate();
    let cs = 64;
    for len in [64 << 10, (64 << 10) + 1, (192 << 10) + 12345] {
        let pt = data(len, 7);
        let mut calls = Vec::new();
        let mut out = Vec::new();
        encrypt_blob(&key, &FID, cs, &pt[..], &mut out, &mut |n| calls.push(n)).unwrap();
        assert!(calls.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*calls.last().unwrap(), len as u64);
        assert_eq!(dec(&key, &out).unwrap(), pt, "len {len}");
    }
}

#[test]
fn default_chunk_size_round_trip() {
    let key = DataKey::generate();
    let pt = data(DEFAULT_CHUNK_SIZE as usize + 5, 3);
    let blob = enc(&key, DEFAULT_CHUNK_SIZE, &pt);
    assert_eq!(dec(&key, &blob).unwrap(), pt);
}

#[test]
fn tampered_late_batch_releases_only_verified_earlier_chunks() {
    let key = DataKey::generate();
    let cs = 64u32;
    let pt = data(200 << 10, 9);
    let mut blob = enc(&key, cs, &pt);
    // Corrupt a byte in chunk 2100 (third batch: batches are 1024 chunks of 64 bytes).
    let frame = cs as usize + 17;
    let pos = HEADER_LEN + 2100 * frame + 30;
    blob[pos] ^= 0x80;
    let mut out = Vec::new();
    let e = decrypt_blob(&key, &FID, &blob[..], &mut out, &mut |_| {}).unwrap_err();
    assert!(matches!(e, CryptoError::Tampered { chunk: 2100 }), "{e:?}");
    // Nothing from the failing batch was written; what was written verified and is correct.
    assert_eq!(out.len(), 2048 * cs as usize);
    assert_eq!(&out[..], &pt[..out.len()]);
}

#[test]
fn same_plaintext_encrypts_differently_each_time() {
    let key = DataKey::generate();
    let pt = data(1000, 0);
    assert_ne!(enc(&key, 64, &pt), enc(&key, 64, &pt));
}

#[test]
fn invalid_chunk_size_rejected() {
    let key = DataKey::generate();
    for cs in [0, 1, 63, (16 << 20) + 1] {
        let e = encrypt_blob(&key, &FID, cs, &b"x"[..], Vec::new(), &mut |_| {}).unwrap_err();
        assert_eq!(e.code(), "invalid_header");
    }
}

#[test]
fn output_io_error_is_reported_as_io() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let key = DataKey::generate();
    let e = encrypt_blob(&key, &FID, 64, &b"abc"[..], Full, &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), "io");
    let blob = enc(&key, 64, b"abc");
    let e = decrypt_blob(&key, &FID, &blob[..], Full, &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), "io");
}

#[test]
fn input_io_error_is_reported_as_io() {
    struct Vanishing(usize);
    impl std::io::Read for Vanishing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
    }
    let key = DataKey::generate();
    let e = encrypt_blob(&key, &FID, 64, Vanishing(1000), Vec::new(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, CryptoError::Io(ref io) if io.kind() == std::io::ErrorKind::NotFound));
}

#[test]
fn range_reads_only_need_covering_chunks() {
    let key = DataKey::generate();
    let cs = 64u32;
    let pt = data(64 * 10 + 7, 5);
    let mut blob = enc(&key, cs, &pt);
    let frame = 64 + 17;
    // Tamper chunk 2: a range inside chunks 5..=6 still works, one touching chunk 2 fails.
    blob[HEADER_LEN + 2 * frame + 10] ^= 1;
    let r = decrypt_range(&key, &FID, Cursor::new(&blob), 5 * 64 + 3, 100).unwrap();
    assert_eq!(r, &pt[5 * 64 + 3..5 * 64 + 103]);
    let e = decrypt_range(&key, &FID, Cursor::new(&blob), 2 * 64, 1).unwrap_err();
    assert!(matches!(e, CryptoError::Tampered { chunk: 2 }));
    // Full-blob decryption refuses it.
    assert!(matches!(
        dec(&key, &blob),
        Err(CryptoError::Tampered { chunk: 2 })
    ));
}

#[test]
fn range_edges() {
    let key = DataKey::generate();
    let pt = data(64 * 3, 2);
    let blob = enc(&key, 64, &pt);
    let rd = |o, l| decrypt_range(&key, &FID, Cursor::new(&blob), o, l).unwrap();
    assert_eq!(rd(0, u64::MAX), pt);
    assert_eq!(rd(64 * 3, 10), Vec::<u8>::new());
    assert_eq!(rd(1000, 10), Vec::<u8>::new());
    assert_eq!(rd(10, 0), Vec::<u8>::new());
    assert_eq!(rd(190, 10), &pt[190..]);
    let empty = enc(&key, 64, b"");
    assert!(decrypt_range(&key, &FID, Cursor::new(&empty), 0, 10)
        .unwrap()
        .is_empty());
    // Truncation is caught even if the requested range is intact.
    let cut = &blob[..blob.len() - 30];
    assert_eq!(
        decrypt_range(&key, &FID, Cursor::new(cut), 0, 10)
            .unwrap_err()
            .code(),
        "truncated"
    );
    let wrong = DataKey::generate();
    assert_eq!(
        decrypt_range(&wrong, &FID, Cursor::new(&blob), 0, 10)
            .unwrap_err()
            .code(),
        "tampered"
    );
}

#[test]
fn multi_batch_decrypt_progress_and_late_stream_errors() {
    let key = DataKey::generate();
    let pt = data((200 << 10) + 17, 4);
    let blob = enc(&key, 64, &pt);
    let mut calls = Vec::new();
    let mut out = Vec::new();
    decrypt_blob(&key, &FID, &blob[..], &mut out, &mut |n| calls.push(n)).unwrap();
    assert_eq!(out, pt);
    assert!(calls.len() >= 3 && calls.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*calls.last().unwrap(), pt.len() as u64);
    // Errors found in the third batch surface after the first two batches verified.
    let mut longer = blob.clone();
    longer.push(0);
    assert_eq!(dec(&key, &longer).unwrap_err().code(), "trailing_data");
    let cut = &blob[..blob.len() - 100];
    assert_eq!(dec(&key, cut).unwrap_err().code(), "truncated");
}
