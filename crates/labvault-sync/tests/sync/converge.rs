//! Two and three devices of one user converge through the real tenant over TLS, after offline
//! edits on each: concurrent edits of one file, edit against delete, rename against rename,
//! a purge on one side; a fresh device gets the same catalog, names and bytes.

use labvault_core::ItemState;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_after_offline_edits_on_each() {
    let t = Tenant::start().await;
    let a = Device::new("workstation");
    a.login(&t).await;
    let p = a.project("Alpha");
    let big = bytes(300_000, 7);
    a.import(
        &p,
        &[
            ("data.csv", b"a,b\n1,2\n"),
            ("run/notes.txt", b"first notes"),
            ("big.bin", &big),
            ("edit-me.txt", b"v1"),
            ("delete-me.txt", b"old"),
            ("rename-me.txt", b"r"),
            ("purge-me.txt", b"secret for a while"),
        ],
    );
    let r = a.settle(&t).await;
    assert_eq!(r.errors, vec![], "a syncs cleanly");
    assert_eq!(
        a.vault
            .sync_status()
            .unwrap()
            .iter()
            .map(|s| s.pending_ops)
            .sum::<u64>(),
        0
    );

    // A fresh device signs in, is approved by the first, and downloads everything.
    let b = Device::new("laptop");
    b.login(&t).await;
    pair(&t, &a, &b).await;
    let r = b.settle(&t).await;
    assert_eq!(r.errors, vec![]);
    assert_eq!(
        a.vault.sync_catalog().unwrap(),
        b.vault.sync_catalog().unwrap(),
        "same catalog on the new device"
    );
    let pb = b.vault.project("Alpha").unwrap().id;
    assert_eq!(pb, p, "same project, same id, same name");
    assert_eq!(b.read(&b.item(&pb, "big.bin").id), big, "same bytes");
    b.verify();

    // Offline edits on both sides.
    a.import(&p, &[("edit-me.txt", b"v2 from the workstation")]);
    b.import(&p, &[("edit-me.txt", b"v2 from the laptop, later")]);
    let del = a.item(&p, "delete-me.txt").id;
    a.vault.soft_delete(&del).unwrap();
    b.import(
        &p,
        &[("delete-me.txt", b"edited while it was deleted elsewhere")],
    );
    let ren = a.item(&p, "rename-me.txt").id;
    a.vault
        .move_item(&ren, None, Some("renamed-on-a.txt"))
        .unwrap();
    b.vault
        .move_item(&ren, None, Some("renamed-on-b.txt"))
        .unwrap();
    let purge = b.item(&p, "purge-me.txt").id;
    b.vault.purge(&purge, "right to deletion").unwrap();
    a.import(&p, &[("new-on-a.txt", b"a")]);
    b.import(&p, &[("run/new-on-b.txt", b"b")]);

    // Sync both, in turns, until neither has anything to do.
    for _ in 0..3 {
        a.settle(&t).await;
        b.settle(&t).await;
    }
    let ca = a.vault.sync_catalog().unwrap();
    let cb = b.vault.sync_catalog().unwrap();
    assert_eq!(ca, cb, "both devices hold the same catalog");
    for d in [&a, &b] {
        d.verify();
        let s = d.vault.sync_status().unwrap();
        assert_eq!(
            s.iter()
                .map(|s| s.pending_ops + s.changed_items)
                .sum::<u64>(),
            0,
            "{}: outbox empty",
            d.name
        );
    }
    // Concurrent edits: both versions kept, the later one (the laptop's) head, the other a
    // conflict sibling.
    let e = a.item(&p, "edit-me.txt");
    assert_eq!(a.read(&e.id), b"v2 from the laptop, later");
    let entry = ca.iter().find(|c| c.item_id == e.id).unwrap();
    assert_eq!(entry.versions.len(), 3);
    assert_eq!(
        entry.versions.iter().filter(|v| v.3).count(),
        1,
        "one conflict sibling"
    );
    let conflicts = a.vault.sync_conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].item.id, e.id);
    // Edit beats delete.
    let d = a.vault.item(&del).unwrap();
    assert_eq!(d.state, ItemState::Active);
    assert_eq!(a.read(&del), b"edited while it was deleted elsewhere");
    // Rename against rename: one name, the same on both.
    let r = a.vault.item(&ren).unwrap();
    assert!(
        r.path == "renamed-on-a.txt" || r.path == "renamed-on-b.txt",
        "{}",
        r.path
    );
    assert_eq!(b.vault.item(&ren).unwrap().path, r.path);
    // The purge reached the other device: erased there too, its blob gone.
    let pa = a.vault.item(&purge).unwrap();
    assert_eq!(pa.state, ItemState::Erased);
    // Nothing lost: every file made anywhere is on both.
    for path in [
        "new-on-a.txt",
        "run/new-on-b.txt",
        "data.csv",
        "run/notes.txt",
        "big.bin",
    ] {
        assert_eq!(a.item(&p, path).state, ItemState::Active, "{path} on a");
        assert_eq!(b.item(&p, path).state, ItemState::Active, "{path} on b");
    }
    // The conflict is resolved on one device by picking the other version; both follow.
    let sibling = conflicts[0].siblings[0].0;
    a.vault.sync_resolve_conflict(&e.id, sibling).unwrap();
    a.settle(&t).await;
    b.settle(&t).await;
    assert_eq!(b.read(&e.id), b"v2 from the workstation");
    assert!(b.vault.sync_conflicts().unwrap().is_empty());
    assert_eq!(
        a.vault.sync_catalog().unwrap(),
        b.vault.sync_catalog().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_devices_converge_and_a_third_device_trusts_through_the_second() {
    let t = Tenant::start().await;
    let a = Device::new("a");
    a.login(&t).await;
    let p = a.project("Shared");
    a.import(&p, &[("one.txt", b"1")]);
    a.settle(&t).await;
    let b = Device::new("b");
    b.login(&t).await;
    pair(&t, &a, &b).await;
    b.settle(&t).await;
    // The third is approved by the second; the first trusts it through the second's signed
    // approval and seals it the keys of a project made after.
    let c = Device::new("c");
    c.login(&t).await;
    pair(&t, &b, &c).await;
    let q = a.project("Made later on a");
    a.import(&q, &[("later.txt", b"later")]);
    a.settle(&t).await;
    c.settle(&t).await;
    assert!(
        c.vault.project("Made later on a").is_ok(),
        "c got the key of a's new project"
    );
    // Offline edits on all three, then everyone syncs.
    a.import(&p, &[("from-a.txt", b"a")]);
    b.import(&p, &[("from-b.txt", b"b")]);
    c.import(
        &p,
        &[("from-c.txt", b"c"), ("one.txt", b"one, edited on c")],
    );
    for _ in 0..3 {
        for d in [&a, &b, &c] {
            d.settle(&t).await;
        }
    }
    let ca = a.vault.sync_catalog().unwrap();
    assert_eq!(ca, b.vault.sync_catalog().unwrap());
    assert_eq!(ca, c.vault.sync_catalog().unwrap());
    for d in [&a, &b, &c] {
        d.verify();
    }
    assert_eq!(a.read(&a.item(&p, "one.txt").id), b"one, edited on c");
}

/// A bandwidth limit holds uploads and downloads to it on average (the bytes still arrive
/// whole), and lifting it mid-way applies to the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_paces_uploads_and_downloads() {
    use labvault_sync::limiter::RateLimit;
    let t = Tenant::start().await;
    let mut a = Device::new("workstation");
    // 1 MiB in 64 KiB parts at 256 KiB/s: the last part may start only after ~3.75 s.
    a.cfg.rate_limit = RateLimit::new(Some(256 << 10));
    a.login(&t).await;
    let p = a.project("Alpha");
    let big = bytes(1 << 20, 3);
    a.import(&p, &[("big.bin", &big)]);
    let t0 = std::time::Instant::now();
    let r = a.settle(&t).await;
    assert_eq!(r.errors, vec![]);
    let up = t0.elapsed();
    assert!(
        up >= std::time::Duration::from_millis(3500),
        "upload took {up:?}"
    );

    let mut b = Device::new("laptop");
    b.cfg.rate_limit = RateLimit::new(Some(512 << 10));
    b.login(&t).await;
    pair(&t, &a, &b).await;
    let t0 = std::time::Instant::now();
    assert_eq!(b.settle(&t).await.errors, vec![]);
    let down = t0.elapsed();
    assert!(
        down >= std::time::Duration::from_millis(1500),
        "download took {down:?}"
    );
    let pb = b.vault.project("Alpha").unwrap().id;
    assert_eq!(b.read(&b.item(&pb, "big.bin").id), big, "same bytes");

    // Lifted: the next sync is not held back.
    b.cfg.rate_limit.set(None);
    a.import(&p, &[("more.bin", &bytes(1 << 20, 4))]);
    a.cfg.rate_limit.set(None);
    let t0 = std::time::Instant::now();
    a.settle(&t).await;
    b.settle(&t).await;
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(3500),
        "{:?}",
        t0.elapsed()
    );
}

/// "Keep both": the other side of a conflict becomes a file of its own (re-encrypted, never
/// on disk in the clear), the conflict is resolved, and both devices end with both files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_both_sides_of_a_conflict_makes_a_second_file_on_every_device() {
    let t = Tenant::start().await;
    let a = Device::new("workstation");
    a.login(&t).await;
    let p = a.project("Alpha");
    a.import(&p, &[("counts.csv", b"t,n\n0,1\n"), ("other.csv", b"x")]);
    a.settle(&t).await;
    let b = Device::new("laptop");
    b.login(&t).await;
    pair(&t, &a, &b).await;
    b.settle(&t).await;
    let big = bytes(3 << 20, 9);
    a.import(&p, &[("counts.csv", &big)]);
    b.import(&p, &[("counts.csv", b"t,n\n0,1\n1,5\n")]);
    a.settle(&t).await;
    b.settle(&t).await;
    a.settle(&t).await;
    let conflicts = b.vault.sync_conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    let (item, head) = (conflicts[0].item.id.clone(), conflicts[0].head);
    let other = conflicts[0].siblings[0].0;

    // Refused without a change: the same version twice, a path that is taken.
    let e = b
        .vault
        .sync_keep_both(&item, head, head, "x.csv")
        .unwrap_err();
    assert_eq!(e.code(), labvault_core::ErrorCode::InvalidArgument);
    let e = b
        .vault
        .sync_keep_both(&item, head, other, "other.csv")
        .unwrap_err();
    assert_eq!(e.code(), labvault_core::ErrorCode::AlreadyExists);
    assert_eq!(
        b.vault.sync_conflicts().unwrap().len(),
        1,
        "still there to resolve"
    );

    let copy = b
        .vault
        .sync_keep_both(&item, head, other, "counts (workstation).csv")
        .unwrap();
    assert_eq!(copy.version, 1);
    assert!(b.vault.sync_conflicts().unwrap().is_empty());
    let head_bytes = b.read(&item);
    let other_bytes = b.read(&copy.id);
    assert_ne!(head_bytes, other_bytes);
    assert!(
        [head_bytes.as_slice(), other_bytes.as_slice()].contains(&big.as_slice()),
        "the workstation's 3 MiB version is one of the two files"
    );
    b.verify();
    b.settle(&t).await;
    a.settle(&t).await;
    assert!(a.vault.sync_conflicts().unwrap().is_empty());
    assert_eq!(
        a.read(&a.item(&p, "counts (workstation).csv").id),
        other_bytes
    );
    assert_eq!(a.read(&item), head_bytes);
    assert_eq!(
        a.vault.sync_catalog().unwrap(),
        b.vault.sync_catalog().unwrap()
    );
}
