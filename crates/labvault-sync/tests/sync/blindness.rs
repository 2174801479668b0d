//! The tenant is blind: after two devices of one user synced files whose content, file names
//! and project name carry marker strings, and the project was shared with a second user and
//! its key rotated, not one marker, key (root, project, epoch, data, device and identity
//! private keys) or plaintext SHA-256 appears anywhere under the server's data directory, in
//! any encoding a careless implementation would store (raw, hex, base64). The scanner's own
//! control: it does find what the server is meant to hold (the project's opaque label, a
//! device's and an identity's public keys).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use labvault_crypto::{KeyFile, Passphrase, WrappedKey};
use sha2::{Digest, Sha256};

use crate::common::*;

fn needles_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![bytes.to_vec(), hex::encode(bytes).into_bytes()];
    // Base64 of the value at each of the three alignments (the middle of a longer encoding).
    for shift in 0..3usize {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(bytes);
        let enc = B64.encode(&padded);
        let skip = if shift == 0 {
            0
        } else {
            (shift * 4).div_ceil(3) + 1
        };
        let core = &enc.as_bytes()[skip.min(enc.len())..enc.len().saturating_sub(4)];
        if core.len() >= 12 {
            out.push(core.to_vec());
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every key of a vault: root, project keys, data keys of every version, device private keys.
fn keys_of(d: &Device) -> Vec<[u8; 32]> {
    let dir = d.dir.path().join("vault");
    let kf = KeyFile::from_bytes(&std::fs::read(dir.join("vault.key")).unwrap()).unwrap();
    let root = kf
        .unlock_with_passphrase(&Passphrase::new(PASS.into()))
        .unwrap();
    let mut out = vec![root.expose_for_tests()];
    let conn =
        labvault_core::catalog::open_raw(&dir.join("catalog.db"), &root.catalog_key()).unwrap();
    let projects: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT id, wrapped_key FROM projects")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (id, w) in projects {
        let pk = root
            .unwrap_project_key(&WrappedKey::from_bytes(w).unwrap(), &id)
            .unwrap();
        out.push(pk.expose_for_tests());
        let versions: Vec<(String, Vec<u8>)> = conn
            .prepare(
                "SELECT v.blob_id, v.wrapped_data_key FROM item_versions v JOIN items i ON i.id = v.item_id
                 WHERE i.project_id = ?1 AND v.blob_id IS NOT NULL",
            )
            .unwrap()
            .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for (blob, w) in versions {
            let fid: [u8; 16] = hex::decode(&blob).unwrap().try_into().unwrap();
            let dk = pk
                .unwrap_data_key(&WrappedKey::from_bytes(w).unwrap(), &fid)
                .unwrap();
            out.push(dk.expose_for_tests());
        }
    }
    let (x, e): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT x25519_wrapped, ed25519_wrapped FROM sync_device",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let dk = labvault_crypto::DeviceKeys::unwrap(
        &root,
        &WrappedKey::from_bytes(x).unwrap(),
        &WrappedKey::from_bytes(e).unwrap(),
        d.vault.device_id(),
    )
    .unwrap();
    let (x, e) = dk.expose_for_tests();
    out.push(x);
    out.push(e);
    // The user's identity and the epoch keys of shared projects.
    let (user, x, e): (String, Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT user_id, x25519_wrapped, ed25519_wrapped FROM sync_identity",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let ik = labvault_crypto::IdentityKeys::unwrap(
        &root,
        &WrappedKey::from_bytes(x).unwrap(),
        &WrappedKey::from_bytes(e).unwrap(),
        &user,
    )
    .unwrap();
    let (x, e) = ik.expose_for_tests();
    out.push(x);
    out.push(e);
    let epochs: Vec<(String, u32, Vec<u8>)> = conn
        .prepare("SELECT project_id, epoch, wrapped FROM sync_epoch_keys")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (p, n, w) in epochs {
        let k = root
            .unwrap_project_key(
                &WrappedKey::from_bytes(w).unwrap(),
                &format!("{p}/epoch/{n}"),
            )
            .unwrap();
        out.push(k.expose_for_tests());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_stores_no_name_content_key_or_plaintext_hash() {
    let t = Tenant::start().await;
    let a = Device::new("a");
    a.login(&t).await;
    let p = a.project("PROJ-MARKER-7781 lab notebook");
    let small = b"CONTENT-MARKER-9923 small readings".to_vec();
    let mut big = b"CONTENT-MARKER-9923 ".repeat(20_000);
    big.extend(bytes(100_000, 3));
    a.import(
        &p,
        &[
            ("dir-marker-5531/file-marker-4412.csv", &small),
            ("big-marker-6620.bin", &big),
        ],
    );
    a.vault
        .move_item(
            &a.item(&p, "dir-marker-5531/file-marker-4412.csv").id,
            None,
            Some("renamed-marker-3307.csv"),
        )
        .unwrap();
    a.settle(&t).await;
    let b = Device::new("b");
    b.login(&t).await;
    pair(&t, &a, &b).await;
    b.settle(&t).await;
    assert_eq!(
        b.read(&b.item(&p, "renamed-marker-3307.csv").id),
        small,
        "the data did travel"
    );
    // Shared with a second user, then the key rotated; new data under the new key.
    t.add_member("colleague@lab.test", labvault_wire::Role::Editor)
        .await;
    let c = Device::new("c");
    c.login_as(&t, "colleague@lab.test").await;
    c.settle(&t).await;
    let admin = step_up(&t, &a).await;
    labvault_sync::sharing::share(
        &a.vault,
        admin.session(),
        &p,
        "colleague@lab.test",
        "editor",
    )
    .await
    .unwrap();
    let epoch = labvault_sync::sharing::rotate_now(&a.vault, admin.session(), &p)
        .await
        .unwrap();
    assert_eq!(epoch, 2);
    drop(admin);
    a.import(
        &p,
        &[("after-marker-8812.txt", b"CONTENT-MARKER-9923 after")],
    );
    a.settle(&t).await;
    for d in [&b, &c] {
        d.settle(&t).await;
        assert_eq!(
            d.read(&d.item(&p, "after-marker-8812.txt").id),
            b"CONTENT-MARKER-9923 after"
        );
    }

    let mut needles: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for m in [
        "CONTENT-MARKER-9923",
        "PROJ-MARKER-7781",
        "file-marker-4412",
        "dir-marker-5531",
        "renamed-marker-3307",
        "big-marker-6620",
        "after-marker-8812",
        "lab notebook",
    ] {
        needles.push((m.into(), needles_of(m.as_bytes())));
    }
    for (what, content) in [("small", &small), ("big", &big)] {
        let h: [u8; 32] = Sha256::digest(content).into();
        needles.push((format!("sha256 of {what}"), needles_of(&h)));
    }
    for d in [&a, &b, &c] {
        for (i, k) in keys_of(d).into_iter().enumerate() {
            needles.push((format!("key {i} of {}", d.name), needles_of(&k)));
        }
    }
    // Stop the server so its WAL and caches are on disk as they are. The database is
    // encrypted at rest; its decrypted content is scanned too: the tenant must be blind even
    // to someone who holds its database key.
    let mut files = t.files();
    let (_plain_dir, plain_db) = t.decrypted_db();
    files.push(plain_db);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("objects")),
        "blobs are stored"
    );
    let mut hits = Vec::new();
    let mut control = (false, false, false);
    let label = format!("lv-{}", &p[..8]);
    let a_pub = B64.encode(a.vault.sync_device().unwrap().keys.x25519);
    let c_identity = B64.encode(c.vault.sync_identity().unwrap().unwrap().public.x25519);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for (what, ns) in &needles {
            if ns.iter().any(|n| find(&data, n)) {
                hits.push(format!("{what} in {}", f.display()));
            }
        }
        control.0 |= find(&data, label.as_bytes());
        control.1 |= find(&data, a_pub.as_bytes());
        control.2 |= find(&data, c_identity.as_bytes());
    }
    assert_eq!(
        hits,
        Vec::<String>::new(),
        "the tenant's storage holds plaintext or keys"
    );
    assert_eq!(
        control,
        (true, true, true),
        "the scan sees what the server does store (label, public keys)"
    );
}
