//! Blob format v1: the header and every chunk of an arbitrary byte stream. Decryption must
//! refuse (never panic, never hang, never write unauthenticated plaintext as final).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = labvault_crypto::DataKey::from_bytes_for_test_vectors([7u8; 32]);
    let file_id = [9u8; 16];
    let mut out = Vec::new();
    let _ = labvault_crypto::decrypt_blob(&key, &file_id, data, &mut out, &mut |_| {});
    let _ = labvault_crypto::decrypt_range(&key, &file_id, std::io::Cursor::new(data), 0, 64);
});
