//! Backups of the tenant server under the devices that use it: a snapshot restores into an
//! empty data directory and the devices sync on as if nothing happened; later snapshots copy
//! only what is new; a snapshot altered anywhere is refused by `verify` and by `restore`
//! (which then writes nothing); retention removes expired snapshots.

use labvault_server::backup::{BackupError, Repo};
use labvault_server::KekChoice;

use crate::common::*;

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for f in walk(from) {
        let rel = f.strip_prefix(from).unwrap();
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dst).unwrap();
    }
}

fn flip_last_byte(p: &std::path::Path) {
    let mut b = std::fs::read(p).unwrap();
    *b.last_mut().unwrap() ^= 1;
    std::fs::write(p, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_an_empty_directory_and_devices_sync_on() {
    let mut t = Tenant::start().await;
    let a = Device::new("a");
    a.login(&t).await;
    let p = a.project("P");
    let big = vec![7u8; 3 << 20];
    a.import(&p, &[("one.txt", b"one"), ("big.bin", &big)]);
    a.settle(&t).await;
    let kek = KekChoice::default_for(t.dir.path());
    let repo_dir = scratch();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let first = t.backup_to(repo_dir.path(), now);
    assert!(
        first.objects >= 1 && first.copied == first.objects,
        "{first:?}"
    );
    a.import(&p, &[("two.txt", b"two")]);
    a.settle(&t).await;
    let second = t.backup_to(repo_dir.path(), now + 60);
    assert!(second.objects > first.objects, "{second:?}");
    assert_eq!(
        second.copied,
        second.objects - first.objects,
        "only the new objects are copied"
    );
    let repo = Repo::new(repo_dir.path());
    assert_eq!(
        repo.snapshots().unwrap(),
        [first.id.clone(), second.id.clone()]
    );
    let m = repo.verify(None, &kek, &mut ()).unwrap();
    assert_eq!(m.id, second.id);

    // Altered anywhere: refused by verify and by restore, which writes nothing.
    let tamper = |root: &std::path::Path, what: &str| {
        let snap = root.join("snapshots").join(&second.id);
        match what {
            "object" => flip_last_byte(
                &walk(&root.join("objects"))
                    .into_iter()
                    .max_by_key(|p| std::fs::metadata(p).unwrap().len())
                    .unwrap(),
            ),
            "database" => flip_last_byte(&snap.join("db")),
            "manifest" => {
                let p = snap.join("manifest.json");
                let text = std::fs::read_to_string(&p).unwrap();
                let edited = text.replacen("\"schema_version\": ", "\"schema_version\": 1", 1);
                assert_ne!(text, edited);
                std::fs::write(&p, edited).unwrap();
            }
            _ => {
                let p = snap.join("keys.json");
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                let jwt = v["keys"]["jwt"].clone();
                v["keys"]["secrets"] = jwt;
                std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            }
        }
    };
    let cases = [
        ("object", "does not match"),
        ("database", "db does not match"),
        ("manifest", "does not authenticate"),
        ("keys", "does not unwrap"),
    ];
    for (what, expect) in cases {
        let copy = scratch();
        copy_tree(repo_dir.path(), copy.path());
        tamper(copy.path(), what);
        let e = Repo::new(copy.path())
            .verify(Some(&second.id), &kek, &mut ())
            .expect_err(what)
            .to_string();
        assert!(e.contains(expect), "{what}: {e}");
        let target = scratch();
        std::fs::copy(t.dir.path().join("kek.key"), target.path().join("kek.key")).unwrap();
        let data = labvault_server::DataDir(target.path().to_path_buf());
        let e = labvault_server::backup::restore(
            copy.path(),
            Some(&second.id),
            &data,
            &KekChoice::default_for(target.path()),
            &mut (),
        )
        .expect_err(what);
        assert!(
            matches!(e, BackupError::Invalid { .. } | BackupError::Keys(_)),
            "{what}: {e}"
        );
        assert_eq!(
            walk(target.path()).len(),
            1,
            "{what}: restore wrote nothing"
        );
    }
    // Without the KEK, nothing verifies or restores.
    let stranger = scratch();
    std::fs::write(
        stranger.path().join("kek.key"),
        r#"{"format":"labvault-kek/1","versions":[{"version":1,"key":"0101010101010101010101010101010101010101010101010101010101010101"}]}"#,
    )
    .unwrap();
    assert!(repo
        .verify(None, &KekChoice::default_for(stranger.path()), &mut ())
        .is_err());
    // A data directory in use is not overwritten.
    let e = labvault_server::backup::restore(
        repo_dir.path(),
        None,
        &labvault_server::DataDir(t.dir.path().to_path_buf()),
        &kek,
        &mut (),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");

    // The round trip: wiped, restored from the newest snapshot, the same pin, and the
    // devices sync on without a divergence.
    let pin = t.pin.clone();
    let before = a.vault.sync_catalog().unwrap();
    t.restore_from(repo_dir.path(), &second.id).await;
    assert_eq!(
        t.server.pin, pin,
        "the restored server keeps its certificate"
    );
    let r = a.sync(&t).await.unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    a.import(&p, &[("three.txt", b"three")]);
    a.settle(&t).await;
    let b = Device::new("b");
    b.login(&t).await;
    pair(&t, &a, &b).await;
    b.settle(&t).await;
    assert_eq!(
        b.vault.sync_catalog().unwrap(),
        a.vault.sync_catalog().unwrap()
    );
    assert_eq!(b.vault.sync_catalog().unwrap().len(), before.len() + 1);
    assert_eq!(
        b.read(&b.item(&p, "big.bin").id),
        big,
        "a large file's bytes came back from the backup"
    );
    let tenant = t.server.state.store.tenant_by_slug("lab").await.unwrap();
    let chain = t.server.state.store.audit_chain(&tenant.id).await.unwrap();
    labvault_server::chain::verify(&chain).expect("the restored audit chain verifies");

    // Retention: 91 days on, the two old snapshots go; their objects stay while referenced.
    let later = t.backup_to(repo_dir.path(), now + 91 * 86_400);
    assert_eq!(
        later.pruned_snapshots,
        [first.id.clone(), second.id.clone()]
    );
    assert_eq!(repo.snapshots().unwrap(), vec![later.id]);
    assert_eq!(later.pruned_objects, 0);
    repo.verify(None, &kek, &mut ()).unwrap();
}
