//! Raw chunk-encryption throughput of blob format v1, for `bench/run.sh`
//! (`cargo run --release -p labvault-crypto --example chunk_throughput [MiB]`).
//!
//! Prints `key=value` lines (MB/s = 10^6 bytes per second):
//! - `aesgcm_seal_1core`: the aes-gcm crate (the backend blob v1 uses) sealing 1 MiB chunks
//!   in place on one core, i.e. what `openssl speed -evp aes-256-gcm` measures;
//! - `aesgcm_seal_allcores`: the same on every core;
//! - `ring_seal_1core` / `ring_seal_allcores`: the `ring` crate's AES-256-GCM, as an
//!   alternative backend;
//! - `blob_encrypt_allcores` / `blob_decrypt_allcores`: the full `encrypt_blob` /
//!   `decrypt_blob` pipeline (header, framing, SHA-256, copies) from memory to a sink;
//! - `sha256_1core`: the plaintext digest computed alongside.

use std::time::Instant;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use labvault_crypto::{decrypt_blob, encrypt_blob, DataKey, DEFAULT_CHUNK_SIZE};
use sha2::{Digest, Sha256};

const CHUNK: usize = DEFAULT_CHUNK_SIZE as usize;

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn best_of<F: FnMut() -> f64>(runs: usize, mut f: F) -> f64 {
    (0..runs).map(|_| f()).fold(0.0, f64::max)
}

fn aesgcm_seal(chunks: &mut [Vec<u8>]) {
    let c = Aes256Gcm::new(&[7u8; 32].into());
    for (i, ch) in chunks.iter_mut().enumerate() {
        let mut n = [0u8; 12];
        n[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        let tag = c
            .encrypt_inout_detached(&Nonce::from(n), &[0u8; 41], ch.as_mut_slice().into())
            .unwrap();
        std::hint::black_box(tag);
    }
}

fn ring_seal(chunks: &mut [Vec<u8>]) {
    use ring::aead::{Aad, LessSafeKey, Nonce as RNonce, UnboundKey, AES_256_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    for (i, ch) in chunks.iter_mut().enumerate() {
        let mut n = [0u8; 12];
        n[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        let tag = k
            .seal_in_place_separate_tag(RNonce::assume_unique_for_key(n), Aad::from([0u8; 41]), ch)
            .unwrap();
        let _ = std::hint::black_box(tag);
    }
}

fn run_parallel(chunks: &mut [Vec<u8>], threads: usize, f: fn(&mut [Vec<u8>])) -> f64 {
    let bytes: usize = chunks.iter().map(|c| c.len()).sum();
    let per = chunks.len().div_ceil(threads);
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in chunks.chunks_mut(per) {
            s.spawn(move || f(part));
        }
    });
    mbps(bytes, t.elapsed().as_secs_f64())
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let total = mib * CHUNK;
    let mut chunks: Vec<Vec<u8>> = (0..mib).map(|i| vec![i as u8; CHUNK]).collect();
    println!("cores={threads}");
    println!("data_mib={mib}");

    let one = |f: fn(&mut [Vec<u8>]), chunks: &mut Vec<Vec<u8>>| {
        best_of(3, || run_parallel(chunks, 1, f))
    };
    println!("aesgcm_seal_1core={:.0}", one(aesgcm_seal, &mut chunks));
    println!(
        "aesgcm_seal_allcores={:.0}",
        best_of(3, || run_parallel(&mut chunks, threads, aesgcm_seal))
    );
    println!("ring_seal_1core={:.0}", one(ring_seal, &mut chunks));
    println!(
        "ring_seal_allcores={:.0}",
        best_of(3, || run_parallel(&mut chunks, threads, ring_seal))
    );

    let plain: Vec<u8> = (0..total).map(|i| (i * 31 + 7) as u8).collect();
    let sha = best_of(3, || {
        let t = Instant::now();
        std::hint::black_box(Sha256::digest(&plain));
        mbps(total, t.elapsed().as_secs_f64())
    });
    println!("sha256_1core={sha:.0}");

    let key = DataKey::generate();
    let fid = [1u8; 16];
    let mut blob = Vec::with_capacity(total + total / 1000 + 4096);
    let enc = best_of(3, || {
        blob.clear();
        let t = Instant::now();
        encrypt_blob(
            &key,
            &fid,
            DEFAULT_CHUNK_SIZE,
            &plain[..],
            &mut blob,
            &mut |_| {},
        )
        .unwrap();
        mbps(total, t.elapsed().as_secs_f64())
    });
    println!("blob_encrypt_allcores={enc:.0}");
    let dec = best_of(3, || {
        let t = Instant::now();
        decrypt_blob(&key, &fid, &blob[..], std::io::sink(), &mut |_| {}).unwrap();
        mbps(total, t.elapsed().as_secs_f64())
    });
    println!("blob_decrypt_allcores={dec:.0}");
}
