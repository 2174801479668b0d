//! Committed test vectors for blob format v1 (`tests/vectors/blob-v1.json`) and for the
//! formats of sync v1 (`tests/vectors/sync-v1.json`: sealed op payloads, key boxes, pairing
//! codes and MACs, device signatures; docs/sync-protocol.md).
//!
//! `vectors_decrypt_as_committed` checks every committed vector against the decoder
//! (valid ones decrypt to the given plaintext, negative ones fail with the exact error
//! code and chunk); `vectors_do_not_drift` regenerates them with the deterministic
//! entry point and demands byte equality with the committed file.
//! Regenerate after an intentional format change with:
//! `LABVAULT_REGEN_VECTORS=1 cargo test -p labvault-crypto --test vectors`

use labvault_crypto::{decrypt_blob, encrypt_blob_with_header_randomness, CryptoError, DataKey};
use serde_json::{json, Value};

const CS: u32 = 64;
const KEY: [u8; 32] = {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = i as u8;
        i += 1;
    }
    k
};
const OTHER_KEY: [u8; 32] = [0xEE; 32];
const FILE_ID: [u8; 16] = *b"labvault-vector1";
const OTHER_FILE_ID: [u8; 16] = *b"labvault-vector2";
const SALT: [u8; 32] = [0x5A; 32];
const PREFIX: [u8; 7] = [1, 2, 3, 4, 5, 6, 7];
const HDR: usize = 71;
const FRAME: usize = 64 + 17;

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/blob-v1.json")
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn encrypt(file_id: &[u8; 16], salt: &[u8; 32], pt: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encrypt_blob_with_header_randomness(
        &DataKey::from_bytes_for_test_vectors(KEY),
        file_id,
        CS,
        salt,
        &PREFIX,
        pt,
        &mut out,
        &mut |_| {},
    )
    .unwrap();
    out
}

fn case(name: &str, why: &str, pt: &[u8], blob: &[u8], expect: Value) -> Value {
    case_with(name, why, &KEY, &FILE_ID, pt, blob, expect)
}

fn case_with(
    name: &str,
    why: &str,
    key: &[u8; 32],
    fid: &[u8; 16],
    pt: &[u8],
    blob: &[u8],
    expect: Value,
) -> Value {
    json!({
        "name": name,
        "description": why,
        "key": hex::encode(key),
        "file_id": hex::encode(fid),
        "plaintext": if expect == "ok" { Value::String(hex::encode(pt)) } else { Value::Null },
        "blob": hex::encode(blob),
        "expect": expect,
    })
}

fn err(code: &str, chunk: Option<u64>) -> Value {
    match chunk {
        Some(c) => json!({"error": code, "chunk": c}),
        None => json!({"error": code}),
    }
}

/// Builds every vector from fixed inputs; pure function of the format implementation.
fn generate() -> Value {
    let mut cases = Vec::new();
    for (name, len, why) in [
        (
            "empty",
            0,
            "empty plaintext: a single final chunk holding only a tag",
        ),
        ("one_byte", 1, "1-byte plaintext"),
        (
            "exactly_one_chunk",
            64,
            "plaintext of exactly one chunk: that chunk is final",
        ),
        (
            "chunk_plus_one",
            65,
            "one full chunk + a 1-byte final chunk",
        ),
        (
            "multi_chunk",
            200,
            "three full chunks + an 8-byte final chunk",
        ),
        (
            "multi_chunk_full_final",
            192,
            "three full chunks, the third one final",
        ),
    ] {
        let pt = plaintext(len);
        cases.push(case(
            name,
            why,
            &pt,
            &encrypt(&FILE_ID, &SALT, &pt),
            json!("ok"),
        ));
    }

    // Negative vectors derive from `base`: 200 bytes = frames F0 F1 F2 (81 bytes each) + final (29).
    let base = encrypt(&FILE_ID, &SALT, &plaintext(200));
    let f = |i: usize| HDR + i * FRAME;
    let fin = f(3);
    let mut neg = |name: &str, why: &str, blob: Vec<u8>, expect: Value| {
        cases.push(case(name, why, &[], &blob, expect));
    };

    let mut b = base.clone();
    b[f(2) - 1] ^= 0x01;
    neg(
        "bad_tag",
        "last tag byte of chunk 1 flipped",
        b,
        err("tampered", Some(1)),
    );

    let mut b = base.clone();
    b[f(0) + 10] ^= 0x40;
    neg(
        "flipped_ciphertext_bit",
        "a ciphertext bit of chunk 0 flipped",
        b,
        err("tampered", Some(0)),
    );

    neg(
        "truncated_at_chunk_boundary",
        "cut after chunk 1 (chunks 2 and final missing)",
        base[..f(2)].to_vec(),
        err("truncated", None),
    );
    neg(
        "truncated_mid_chunk",
        "cut 40 bytes into chunk 1",
        base[..f(1) + 40].to_vec(),
        err("truncated", None),
    );
    neg(
        "truncated_mid_final_chunk",
        "cut 10 bytes before the end",
        base[..base.len() - 10].to_vec(),
        err("truncated", None),
    );
    neg(
        "header_only",
        "only the 71-byte header",
        base[..HDR].to_vec(),
        err("truncated", None),
    );
    neg(
        "truncated_header",
        "cut inside the header",
        base[..40].to_vec(),
        err("truncated", None),
    );

    let mut b = base.clone();
    b[f(0)..f(1)].copy_from_slice(&base[f(1)..f(2)]);
    b[f(1)..f(2)].copy_from_slice(&base[f(0)..f(1)]);
    neg(
        "reordered_chunks",
        "chunks 0 and 1 swapped",
        b,
        err("tampered", Some(0)),
    );

    let other = encrypt(&OTHER_FILE_ID, &[0xA5; 32], &plaintext(200));
    let mut b = base.clone();
    b[f(1)..f(2)].copy_from_slice(&other[f(1)..f(2)]);
    neg(
        "spliced_chunk",
        "chunk 1 replaced by chunk 1 of another blob under the same data key",
        b,
        err("tampered", Some(1)),
    );

    let same_fid_other_salt = encrypt(&FILE_ID, &[0x11; 32], &plaintext(200));
    let mut b = base.clone();
    b[f(2)..f(3)].copy_from_slice(&same_fid_other_salt[f(2)..f(3)]);
    neg(
        "spliced_chunk_same_file_id",
        "chunk 2 from another encryption of the same file id, key and plaintext",
        b,
        err("tampered", Some(2)),
    );

    neg(
        "missing_final_chunk",
        "final chunk dropped, everything else intact",
        base[..fin].to_vec(),
        err("truncated", None),
    );

    let mut b = base.clone();
    b.extend_from_slice(&base[fin..]);
    neg(
        "repeated_final_chunk",
        "final chunk appended a second time",
        b,
        err("trailing_data", None),
    );

    let mut b = base.clone();
    b.extend_from_slice(b"\x00\x01\x02");
    neg(
        "trailing_bytes",
        "three bytes after the final chunk",
        b,
        err("trailing_data", None),
    );

    // Mark non-final chunk 2 as final and drop the real final chunk: the last-chunk flag
    // is in nonce and AAD, so this must not verify.
    let mut b = base[..f(2)].to_vec();
    b.push(1);
    b.extend_from_slice(&(FRAME as u32 - 1).to_be_bytes());
    b.extend_from_slice(&base[f(2) + 1..f(3)]);
    neg(
        "chunk_marked_final",
        "chunk 2 relabelled as the final chunk, real final dropped",
        b,
        err("tampered", Some(2)),
    );

    let mut b = base.clone();
    b[fin] = 0;
    neg(
        "final_chunk_marked_non_final",
        "kind byte of the final chunk set to 0",
        b,
        err("truncated", None),
    );

    let mut b = base.clone();
    b[f(1)] = 7;
    neg(
        "unknown_chunk_kind",
        "kind byte of chunk 1 set to 7",
        b,
        err("tampered", Some(1)),
    );

    let mut b = base.clone();
    b[40] ^= 0x01;
    neg(
        "flipped_header_salt_bit",
        "one bit of the header salt flipped",
        b,
        err("tampered", Some(0)),
    );

    let mut b = base.clone();
    b[66] ^= 0x80;
    neg(
        "flipped_header_nonce_prefix_bit",
        "one bit of the nonce prefix flipped",
        b,
        err("tampered", Some(0)),
    );

    let mut b = base.clone();
    b[15] ^= 0x40; // chunk size 64 -> 0: out of range
    neg(
        "flipped_header_chunk_size_bit",
        "chunk size bit flipped to an invalid size",
        b,
        err("invalid_header", None),
    );

    let mut b = base.clone();
    b[15] = 65; // chunk size 64 -> 65: valid size, framing breaks / AAD mismatch
    neg(
        "header_chunk_size_changed",
        "chunk size changed to another valid value",
        b,
        err("tampered", Some(0)),
    );

    let mut b = base.clone();
    b[9] = 2;
    neg(
        "unknown_version",
        "version field set to 2",
        b,
        err("unsupported_version", None),
    );

    let mut b = base.clone();
    b[11] = 9;
    neg(
        "unknown_algorithm",
        "algorithm id set to 9",
        b,
        err("invalid_header", None),
    );

    let mut b = base.clone();
    b[1] = b'X';
    neg(
        "bad_magic",
        "magic bytes altered",
        b,
        err("not_a_blob", None),
    );
    neg(
        "not_a_blob",
        "arbitrary text",
        b"hello, world".to_vec(),
        err("not_a_blob", None),
    );

    let mut b = base.clone();
    b[16..32].copy_from_slice(&OTHER_FILE_ID);
    neg(
        "header_file_id_rewritten",
        "header file id rewritten to the file id the reader expects",
        b,
        err("tampered", Some(0)),
    );

    cases.push(case_with(
        "wrong_file_id",
        "intact blob, decrypted expecting another file id",
        &KEY,
        &OTHER_FILE_ID,
        &[],
        &base,
        err("file_id_mismatch", None),
    ));
    cases.push(case_with(
        "wrong_key",
        "intact blob, decrypted with another data key",
        &OTHER_KEY,
        &FILE_ID,
        &[],
        &base,
        err("tampered", Some(0)),
    ));

    // The file-id rewrite case must be checked against the rewritten id.
    for c in cases.iter_mut() {
        if c["name"] == "header_file_id_rewritten" {
            c["file_id"] = json!(hex::encode(OTHER_FILE_ID));
        }
    }

    json!({
        "format": "labvault blob format v1 test vectors",
        "spec": "docs/blob-format-v1.md",
        "chunk_size": CS,
        "salt": hex::encode(SALT),
        "nonce_prefix": hex::encode(PREFIX),
        "note": "Generated deterministically (fixed salt and nonce prefix) by crates/labvault-crypto/tests/vectors.rs; never reuse a salt/prefix in production.",
        "cases": cases,
    })
}

fn committed() -> Value {
    let text = std::fs::read_to_string(path()).expect("committed vectors file");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn vectors_do_not_drift() {
    let generated = generate();
    if std::env::var_os("LABVAULT_REGEN_VECTORS").is_some() {
        let mut s = serde_json::to_string_pretty(&generated).unwrap();
        s.push('\n');
        std::fs::write(path(), s).unwrap();
    }
    assert_eq!(
        committed(),
        generated,
        "blob-v1.json differs from what the implementation produces: the format drifted"
    );
}

#[test]
fn vectors_decrypt_as_committed() {
    let v = committed();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "vector set unexpectedly small");
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let key: [u8; 32] = hex::decode(c["key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let fid: [u8; 16] = hex::decode(c["file_id"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let blob = hex::decode(c["blob"].as_str().unwrap()).unwrap();
        let mut out = Vec::new();
        let r = decrypt_blob(
            &DataKey::from_bytes_for_test_vectors(key),
            &fid,
            &blob[..],
            &mut out,
            &mut |_| {},
        );
        if c["expect"] == "ok" {
            let pt = hex::decode(c["plaintext"].as_str().unwrap()).unwrap();
            assert_eq!(r.unwrap().plaintext_len, pt.len() as u64, "{name}");
            assert_eq!(out, pt, "{name}");
        } else {
            let e = r.expect_err(name);
            assert_eq!(
                e.code(),
                c["expect"]["error"].as_str().unwrap(),
                "{name}: {e}"
            );
            if let Some(chunk) = c["expect"]["chunk"].as_u64() {
                assert!(
                    matches!(e, CryptoError::Tampered { chunk: k } if k == chunk),
                    "{name}: {e:?}"
                );
            }
        }
    }
}

// ------------------------------------------------------------------ sync v1

mod sync_v1 {
    use labvault_crypto::{
        approval_statement, seal_key_box_with_randomness, DeviceKeys, KeyBoxContext, PairingCode,
        PairingSecret, PayloadContext, PayloadKey, ProjectKey,
    };
    use serde_json::{json, Value};

    const PROJECT_KEY: [u8; 32] = super::KEY;
    const NONCE: [u8; 12] = [0x0c; 12];
    const STATE: &[u8] =
        br#"{"kind":"project","v":1,"name":"vector","created_at":0,"created_by":"t","holds":[]}"#;
    const X_SEED: [u8; 32] = [0x11; 32];
    const ED_SEED: [u8; 32] = [0x22; 32];
    const EPHEMERAL: [u8; 32] = [0x33; 32];
    const BOX_NONCE: [u8; 12] = [0x44; 12];
    const SECRET: [u8; 7] = [0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x40];

    fn path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sync-v1.json")
    }

    fn ctx() -> PayloadContext<'static> {
        PayloadContext {
            project_id: "p-vector",
            item_id: "i-vector",
            op_id: "o-vector",
            epoch: 1,
            base_rev: 7,
        }
    }

    fn ctx_json(c: &PayloadContext<'_>) -> Value {
        json!({"project_id": c.project_id, "item_id": c.item_id, "op_id": c.op_id, "epoch": c.epoch, "base_rev": c.base_rev})
    }

    fn box_ctx() -> KeyBoxContext<'static> {
        KeyBoxContext {
            project_id: "p-vector",
            epoch: 1,
            device_id: "d-vector",
        }
    }

    fn generate() -> Value {
        let pk = PayloadKey::derive(&ProjectKey::from_bytes_for_test_vectors(PROJECT_KEY));
        let sealed = pk.seal_with_nonce(&ctx(), STATE, NONCE);
        let c = ctx();
        let mut payloads = vec![
            json!({"name": "ok", "context": ctx_json(&c), "sealed": hex::encode(&sealed), "expect": "ok"}),
        ];
        for (name, other) in [
            (
                "other_project",
                PayloadContext {
                    project_id: "p-other",
                    ..c
                },
            ),
            (
                "other_item",
                PayloadContext {
                    item_id: "i-other",
                    ..c
                },
            ),
            (
                "other_op",
                PayloadContext {
                    op_id: "o-other",
                    ..c
                },
            ),
            ("other_epoch", PayloadContext { epoch: 2, ..c }),
            ("other_base_rev", PayloadContext { base_rev: 8, ..c }),
        ] {
            payloads.push(json!({"name": name, "context": ctx_json(&other), "sealed": hex::encode(&sealed), "expect": "payload_invalid"}));
        }
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        payloads.push(json!({"name": "flipped_byte", "context": ctx_json(&c), "sealed": hex::encode(&flipped), "expect": "payload_invalid"}));
        let mut newer = sealed.clone();
        newer[0] = 2;
        payloads.push(json!({"name": "newer_version", "context": ctx_json(&c), "sealed": hex::encode(&newer), "expect": "unsupported_version"}));
        payloads.push(json!({"name": "truncated", "context": ctx_json(&c), "sealed": hex::encode(&sealed[..28]), "expect": "payload_invalid"}));

        let device = DeviceKeys::from_seeds_for_test_vectors(X_SEED, ED_SEED);
        let public = device.public();
        let bx = seal_key_box_with_randomness(
            &public,
            &ProjectKey::from_bytes_for_test_vectors(PROJECT_KEY),
            &box_ctx(),
            EPHEMERAL,
            BOX_NONCE,
        );
        let b = box_ctx();
        let mut boxes = vec![
            json!({"name": "ok", "project_id": b.project_id, "epoch": b.epoch, "device_id": b.device_id, "sealed": hex::encode(&bx), "expect": "ok"}),
        ];
        for (name, other) in [
            (
                "other_device",
                KeyBoxContext {
                    device_id: "d-other",
                    ..b
                },
            ),
            (
                "other_project",
                KeyBoxContext {
                    project_id: "p-other",
                    ..b
                },
            ),
            ("other_epoch", KeyBoxContext { epoch: 2, ..b }),
        ] {
            boxes.push(json!({"name": name, "project_id": other.project_id, "epoch": other.epoch, "device_id": other.device_id, "sealed": hex::encode(&bx), "expect": "key_box_invalid"}));
        }
        let mut flipped = bx.clone();
        flipped[50] ^= 1;
        boxes.push(json!({"name": "flipped_byte", "project_id": b.project_id, "epoch": b.epoch, "device_id": b.device_id, "sealed": hex::encode(&flipped), "expect": "key_box_invalid"}));

        let secret = PairingSecret::from_bytes(&SECRET).unwrap();
        let approver = DeviceKeys::from_seeds_for_test_vectors([0x66; 32], [0x77; 32]);
        let statement = approval_statement(
            "u-vector",
            "a-vector",
            &approver.public(),
            "d-vector",
            &public,
            &[],
        );
        json!({
            "format": "labvault sync v1 test vectors",
            "spec": "docs/sync-protocol.md",
            "note": "Generated deterministically (fixed keys, nonces and ephemeral keys) by crates/labvault-crypto/tests/vectors.rs; never reuse them in production.",
            "project_key": hex::encode(PROJECT_KEY),
            "payload_nonce": hex::encode(NONCE),
            "state": String::from_utf8(STATE.to_vec()).unwrap(),
            "payloads": payloads,
            "device": {
                "x25519_private": hex::encode(X_SEED),
                "ed25519_private": hex::encode(ED_SEED),
                "x25519_public": hex::encode(public.x25519),
                "ed25519_public": hex::encode(public.ed25519),
                "fingerprint": hex::encode(public.fingerprint()),
            },
            "key_box": {"ephemeral": hex::encode(EPHEMERAL), "nonce": hex::encode(BOX_NONCE), "cases": boxes},
            "pairing": {
                "secret": hex::encode(SECRET),
                "code": secret.code(&public).to_string(),
                "approval_statement": hex::encode(&statement),
                "approval_mac": hex::encode(secret.mac(&public, &statement)),
                "approver_ed25519_private": hex::encode([0x77u8; 32]),
                "approval_signature": hex::encode(approver.sign("device-approval", &statement)),
            },
        })
    }

    fn committed() -> Value {
        serde_json::from_str(&std::fs::read_to_string(path()).expect("committed sync vectors"))
            .unwrap()
    }

    #[test]
    fn sync_vectors_do_not_drift() {
        let generated = generate();
        if std::env::var_os("LABVAULT_REGEN_VECTORS").is_some() {
            let mut s = serde_json::to_string_pretty(&generated).unwrap();
            s.push('\n');
            std::fs::write(path(), s).unwrap();
        }
        assert_eq!(
            committed(),
            generated,
            "sync-v1.json differs from what the implementation produces: a format drifted"
        );
    }

    #[test]
    fn sync_vectors_open_and_refuse_as_committed() {
        let v = committed();
        let key: [u8; 32] = hex::decode(v["project_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let pk = PayloadKey::derive(&ProjectKey::from_bytes_for_test_vectors(key));
        let state = v["state"].as_str().unwrap();
        for c in v["payloads"].as_array().unwrap() {
            let x = &c["context"];
            let ctx = PayloadContext {
                project_id: x["project_id"].as_str().unwrap(),
                item_id: x["item_id"].as_str().unwrap(),
                op_id: x["op_id"].as_str().unwrap(),
                epoch: x["epoch"].as_u64().unwrap() as u32,
                base_rev: x["base_rev"].as_u64().unwrap(),
            };
            let r = pk.open(&ctx, &hex::decode(c["sealed"].as_str().unwrap()).unwrap());
            match c["expect"].as_str().unwrap() {
                "ok" => assert_eq!(&*r.unwrap(), state.as_bytes()),
                code => assert_eq!(r.unwrap_err().code(), code, "{}", c["name"]),
            }
        }
        let d = &v["device"];
        let seed = |f: &str| -> [u8; 32] {
            hex::decode(d[f].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let device = DeviceKeys::from_seeds_for_test_vectors(
            seed("x25519_private"),
            seed("ed25519_private"),
        );
        assert_eq!(
            hex::encode(device.public().x25519),
            d["x25519_public"].as_str().unwrap()
        );
        for c in v["key_box"]["cases"].as_array().unwrap() {
            let ctx = KeyBoxContext {
                project_id: c["project_id"].as_str().unwrap(),
                epoch: c["epoch"].as_u64().unwrap() as u32,
                device_id: c["device_id"].as_str().unwrap(),
            };
            let r = device.open_key_box(&hex::decode(c["sealed"].as_str().unwrap()).unwrap(), &ctx);
            match c["expect"].as_str().unwrap() {
                "ok" => assert!(labvault_crypto::project_keys_equal(
                    &r.unwrap(),
                    &ProjectKey::from_bytes_for_test_vectors(key)
                )),
                code => assert_eq!(r.unwrap_err().code(), code, "{}", c["name"]),
            }
        }
        let p = &v["pairing"];
        let code = PairingCode::parse(p["code"].as_str().unwrap()).unwrap();
        assert!(code.matches(&device.public()));
        let statement = hex::decode(p["approval_statement"].as_str().unwrap()).unwrap();
        let mac = hex::decode(p["approval_mac"].as_str().unwrap()).unwrap();
        code.secret
            .check_mac(&device.public(), &statement, &mac)
            .unwrap();
        let mut wrong = statement.clone();
        wrong[5] ^= 1;
        assert_eq!(
            code.secret
                .check_mac(&device.public(), &wrong, &mac)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        let approver = DeviceKeys::from_seeds_for_test_vectors(
            [0x66; 32],
            hex::decode(p["approver_ed25519_private"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let sig = hex::decode(p["approval_signature"].as_str().unwrap()).unwrap();
        approver
            .public()
            .verify("device-approval", &statement, &sig)
            .unwrap();
        assert_eq!(
            approver
                .public()
                .verify("key-box", &statement, &sig)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
    }
}

/// Committed vectors of the shared-project formats (`tests/vectors/sharing-v1.json`;
/// docs/sharing.md): safety numbers, member boxes, identity boxes and membership log entries,
/// each with the ways it must be refused.
mod sharing {
    use labvault_crypto::{
        seal_member_box_with_randomness, DeviceKeys, EntryBody, IdentityBoxContext, IdentityKeys,
        LogEntry, MemberBoxContext, MemberRole, ProjectKey, UnsignedEntry,
    };
    use serde_json::{json, Value};

    const EPOCH_KEY: [u8; 32] = super::KEY;
    const ADA: ([u8; 32], [u8; 32]) = ([0x61; 32], [0x62; 32]);
    const BOB: ([u8; 32], [u8; 32]) = ([0x71; 32], [0x72; 32]);
    const DEVICE: ([u8; 32], [u8; 32]) = ([0x11; 32], [0x22; 32]);
    const EPHEMERAL: [u8; 32] = [0x33; 32];
    const NONCE: [u8; 12] = [0x44; 12];

    fn path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sharing-v1.json")
    }

    fn id((x, e): ([u8; 32], [u8; 32])) -> IdentityKeys {
        IdentityKeys::from_seeds_for_test_vectors(x, e)
    }

    fn member_ctx() -> MemberBoxContext<'static> {
        MemberBoxContext {
            project_id: "p-vector",
            epoch: 2,
            user_id: "u-bob",
        }
    }

    fn identity_ctx() -> IdentityBoxContext<'static> {
        IdentityBoxContext {
            user_id: "u-ada",
            device_id: "d-laptop",
        }
    }

    fn chain() -> Vec<LogEntry> {
        let (ada, bob) = (id(ADA), id(BOB));
        let at = 1_767_225_600_000;
        let e0 = ada.sign_entry(UnsignedEntry {
            project_id: "p-vector".into(),
            seq: 0,
            prev_hash: [0; 32],
            at_ms: at,
            signer: "u-ada".into(),
            body: EntryBody::Add {
                user_id: "u-ada".into(),
                role: MemberRole::Owner,
                identity: ada.public(),
            },
        });
        let e1 = ada.sign_entry(UnsignedEntry {
            project_id: "p-vector".into(),
            seq: 1,
            prev_hash: e0.hash(),
            at_ms: at + 1,
            signer: "u-ada".into(),
            body: EntryBody::Add {
                user_id: "u-bob".into(),
                role: MemberRole::Editor,
                identity: bob.public(),
            },
        });
        let e2 = ada.sign_entry(UnsignedEntry {
            project_id: "p-vector".into(),
            seq: 2,
            prev_hash: e1.hash(),
            at_ms: at + 2,
            signer: "u-ada".into(),
            body: EntryBody::Rotate { epoch: 2 },
        });
        vec![e0, e1, e2]
    }

    fn generate() -> Value {
        let (ada, bob) = (id(ADA), id(BOB));
        let key = ProjectKey::from_bytes_for_test_vectors(EPOCH_KEY);
        let mbox = |ctx: &MemberBoxContext<'_>| {
            seal_member_box_with_randomness(&bob.public(), &key, ctx, EPHEMERAL, NONCE)
        };
        let good = mbox(&member_ctx());
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        let member_cases = vec![
            json!({"name": "ok", "project_id": "p-vector", "epoch": 2, "user_id": "u-bob", "sealed": hex::encode(&good), "expect": "ok"}),
            json!({"name": "other_epoch", "project_id": "p-vector", "epoch": 1, "user_id": "u-bob", "sealed": hex::encode(&good), "expect": "key_box_invalid"}),
            json!({"name": "other_project", "project_id": "p-other", "epoch": 2, "user_id": "u-bob", "sealed": hex::encode(&good), "expect": "key_box_invalid"}),
            json!({"name": "other_member", "project_id": "p-vector", "epoch": 2, "user_id": "u-eve", "sealed": hex::encode(&good), "expect": "key_box_invalid"}),
            json!({"name": "flipped_byte", "project_id": "p-vector", "epoch": 2, "user_id": "u-bob", "sealed": hex::encode(&flipped), "expect": "key_box_invalid"}),
        ];
        let device = DeviceKeys::from_seeds_for_test_vectors(DEVICE.0, DEVICE.1);
        let ibox =
            ada.seal_to_device_with_randomness(&device.public(), &identity_ctx(), EPHEMERAL, NONCE);
        let impostor =
            bob.seal_to_device_with_randomness(&device.public(), &identity_ctx(), EPHEMERAL, NONCE);
        let identity_cases = vec![
            json!({"name": "ok", "user_id": "u-ada", "device_id": "d-laptop", "sealed": hex::encode(&ibox), "expect": "ok"}),
            json!({"name": "other_device", "user_id": "u-ada", "device_id": "d-phone", "sealed": hex::encode(&ibox), "expect": "key_box_invalid"}),
            json!({"name": "holds_another_identity", "user_id": "u-ada", "device_id": "d-laptop", "sealed": hex::encode(&impostor), "expect": "key_box_invalid"}),
        ];
        let entries = chain();
        let wire = entries[1].to_bytes();
        let label = b"labvault/v1/membership-entry".len();
        let mut bad_sig = wire.clone();
        *bad_sig.last_mut().unwrap() ^= 1;
        let mut trailing = wire.clone();
        trailing.push(0);
        let mut v2 = wire.clone();
        v2[label] = 2;
        // The kind byte of entry 1 (an Add) follows the signer field.
        let kind_at = label + 1 + 4 + "p-vector".len() + 8 + 32 + 8 + 4 + "u-ada".len();
        let mut kind = wire.clone();
        kind[kind_at] = 9;
        let mut role = wire.clone();
        role[kind_at + 1 + 4 + "u-bob".len()] = 7;
        let entry_cases = vec![
            json!({"name": "signature_flipped", "wire": hex::encode(&bad_sig), "expect": "bad_signature"}),
            json!({"name": "trailing_byte", "wire": hex::encode(&trailing), "expect": "trailing_data"}),
            json!({"name": "version_2", "wire": hex::encode(&v2), "expect": "unsupported_version"}),
            json!({"name": "unknown_kind", "wire": hex::encode(&kind), "expect": "membership_entry_invalid"}),
            json!({"name": "unknown_role", "wire": hex::encode(&role), "expect": "membership_entry_invalid"}),
            json!({"name": "truncated", "wire": hex::encode(&wire[..wire.len() - 1]), "expect": "membership_entry_invalid"}),
        ];
        json!({
            "format": "LabVault shared projects v1 (docs/sharing.md)",
            "epoch_key": hex::encode(EPOCH_KEY),
            "identities": [
                {"user_id": "u-ada", "x25519_private": hex::encode(ADA.0), "ed25519_private": hex::encode(ADA.1),
                 "x25519_public": hex::encode(ada.public().x25519), "ed25519_public": hex::encode(ada.public().ed25519),
                 "safety_number": ada.public().safety_number("u-ada")},
                {"user_id": "u-bob", "x25519_private": hex::encode(BOB.0), "ed25519_private": hex::encode(BOB.1),
                 "x25519_public": hex::encode(bob.public().x25519), "ed25519_public": hex::encode(bob.public().ed25519),
                 "safety_number": bob.public().safety_number("u-bob")},
            ],
            "member_box": {"ephemeral": hex::encode(EPHEMERAL), "nonce": hex::encode(NONCE), "cases": member_cases},
            "identity_box": {"device_x25519_private": hex::encode(DEVICE.0), "device_ed25519_private": hex::encode(DEVICE.1), "cases": identity_cases},
            "log": entries.iter().map(|e| json!({"wire": hex::encode(e.to_bytes()), "hash": hex::encode(e.hash())})).collect::<Vec<_>>(),
            "log_refusals": entry_cases,
        })
    }

    fn committed() -> Value {
        serde_json::from_str(&std::fs::read_to_string(path()).expect("committed sharing vectors"))
            .unwrap()
    }

    #[test]
    fn sharing_vectors_do_not_drift() {
        let generated = generate();
        if std::env::var_os("LABVAULT_REGEN_VECTORS").is_some() {
            let mut s = serde_json::to_string_pretty(&generated).unwrap();
            s.push('\n');
            std::fs::write(path(), s).unwrap();
        }
        assert_eq!(
            committed(),
            generated,
            "sharing-v1.json differs from what the implementation produces: a format drifted"
        );
    }

    #[test]
    fn sharing_vectors_open_verify_and_refuse_as_committed() {
        let v = committed();
        let hex32 = |s: &Value| -> [u8; 32] {
            hex::decode(s.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let ids: Vec<IdentityKeys> = v["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let k = IdentityKeys::from_seeds_for_test_vectors(
                    hex32(&i["x25519_private"]),
                    hex32(&i["ed25519_private"]),
                );
                assert_eq!(
                    hex::encode(k.public().ed25519),
                    i["ed25519_public"].as_str().unwrap()
                );
                assert_eq!(
                    k.public().safety_number(i["user_id"].as_str().unwrap()),
                    i["safety_number"].as_str().unwrap()
                );
                k
            })
            .collect();
        let (ada, bob) = (&ids[0], &ids[1]);
        let key = ProjectKey::from_bytes_for_test_vectors(hex32(&v["epoch_key"]));
        for c in v["member_box"]["cases"].as_array().unwrap() {
            let ctx = MemberBoxContext {
                project_id: c["project_id"].as_str().unwrap(),
                epoch: c["epoch"].as_u64().unwrap() as u32,
                user_id: c["user_id"].as_str().unwrap(),
            };
            let r = bob.open_member_box(&hex::decode(c["sealed"].as_str().unwrap()).unwrap(), &ctx);
            match c["expect"].as_str().unwrap() {
                "ok" => assert!(labvault_crypto::project_keys_equal(&r.unwrap(), &key)),
                code => assert_eq!(r.unwrap_err().code(), code, "{}", c["name"]),
            }
        }
        let ib = &v["identity_box"];
        let device = DeviceKeys::from_seeds_for_test_vectors(
            hex32(&ib["device_x25519_private"]),
            hex32(&ib["device_ed25519_private"]),
        );
        for c in ib["cases"].as_array().unwrap() {
            let ctx = IdentityBoxContext {
                user_id: c["user_id"].as_str().unwrap(),
                device_id: c["device_id"].as_str().unwrap(),
            };
            let r = IdentityKeys::open_identity_box(
                &device,
                &hex::decode(c["sealed"].as_str().unwrap()).unwrap(),
                &ctx,
                &ada.public(),
            );
            match c["expect"].as_str().unwrap() {
                "ok" => assert_eq!(r.unwrap().public(), ada.public()),
                code => assert_eq!(r.unwrap_err().code(), code, "{}", c["name"]),
            }
        }
        let mut prev = [0u8; 32];
        for (n, e) in v["log"].as_array().unwrap().iter().enumerate() {
            let entry =
                LogEntry::from_bytes(&hex::decode(e["wire"].as_str().unwrap()).unwrap()).unwrap();
            assert_eq!(entry.entry.seq, n as u64);
            assert_eq!(
                entry.entry.prev_hash, prev,
                "entry {n} names the one before"
            );
            entry.verify(&ada.public()).unwrap();
            assert!(entry.verify(&bob.public()).is_err());
            assert_eq!(hex::encode(entry.hash()), e["hash"].as_str().unwrap());
            prev = entry.hash();
        }
        for c in v["log_refusals"].as_array().unwrap() {
            let r = LogEntry::from_bytes(&hex::decode(c["wire"].as_str().unwrap()).unwrap())
                .and_then(|e| e.verify(&ada.public()).map(|_| e));
            assert_eq!(
                r.unwrap_err().code(),
                c["expect"].as_str().unwrap(),
                "{}",
                c["name"]
            );
        }
    }
}
