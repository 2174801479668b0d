//! File sync through the typed client over TLS: the change feed (gap-free, idempotent,
//! compare-and-swap, long poll, snapshot), blobs (whole, packed, resumable across a server
//! restart, ranged), quota, legal holds and erasure with the grace period, devices and
//! anchors. Everything a device sends here is opaque bytes: the server never needs more.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use labvault_client::{frame, TenantClient};
use labvault_wire::*;
use sha2::{Digest, Sha256};

use crate::common::*;

pub(super) fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn blob_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(super) fn op(item: &str, base_rev: u64, blobs: Vec<String>) -> SyncOp {
    SyncOp {
        op_id: id(),
        item_id: item.into(),
        base_rev,
        epoch: 1,
        payload: B64.encode(format!("sealed state of {item} at {base_rev}")),
        blobs,
        tombstone: false,
        hold: false,
    }
}

/// A user with an approved device and a project of theirs (id chosen by the client).
struct Dev {
    user: User,
    api: TenantClient,
    device: String,
    project: String,
}

async fn device_and_project(h: &Harness, slug: &str) -> Dev {
    h.tenant(slug).await;
    let user = h.login(slug, &format!("owner@{slug}.test")).await;
    let device = h.device(&user).await;
    let project = id();
    let p = h
        .api
        .create_project_with_id(&user.access, "opaque-label", &project)
        .await
        .unwrap();
    assert_eq!(p.id, project, "the client's id is kept");
    Dev {
        api: h.api.for_device(&device).unwrap(),
        user,
        device,
        project,
    }
}

fn applied(r: &OpResult) -> (u64, u64) {
    match r {
        OpResult::Applied { seq, rev, .. } => (*seq, *rev),
        other => panic!("expected applied, got {other:?}"),
    }
}

#[tokio::test]
async fn feed_is_gap_free_idempotent_compare_and_swap_and_long_polls() {
    let h = harness().await;
    let d = device_and_project(&h, "alpha").await;
    let (t, p) = (d.user.access.as_str(), d.project.as_str());
    let item = id();
    let b = blob_id();
    // Blobs before metadata: an op naming a blob the server lacks is refused.
    let first = op(&item, 0, vec![b.clone()]);
    let r = d
        .api
        .commit(
            t,
            p,
            &CommitRequest {
                ops: vec![first.clone()],
            },
        )
        .await
        .unwrap();
    assert!(matches!(&r.results[0], OpResult::BlobMissing { blob_id, .. } if *blob_id == b));
    assert_eq!(r.head_seq, 0);
    d.api
        .put_blob(t, p, &b, Bytes::from_static(b"ciphertext"))
        .await
        .unwrap();
    let r = d
        .api
        .commit(
            t,
            p,
            &CommitRequest {
                ops: vec![first.clone()],
            },
        )
        .await
        .unwrap();
    assert_eq!(applied(&r.results[0]), (1, 1));
    // A resend (answer lost) gets the first result; a stale base is a conflict; another
    // epoch is stale; a malformed op is refused alone while the next one applies.
    let mut bad = op(&item, 1, vec![]);
    bad.item_id = "not-a-uuid".into();
    let mut stale = op(&item, 1, vec![]);
    stale.epoch = 2;
    let next = op(&item, 1, vec![b.clone()]);
    let r = d
        .api
        .commit(
            t,
            p,
            &CommitRequest {
                ops: vec![
                    first.clone(),
                    op(&item, 0, vec![]),
                    stale,
                    bad,
                    next.clone(),
                ],
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        &r.results[0],
        OpResult::Duplicate { seq: 1, rev: 1, .. }
    ));
    assert!(matches!(&r.results[1], OpResult::Conflict { rev: 1, .. }));
    assert!(matches!(
        &r.results[2],
        OpResult::StaleEpoch { epoch: 1, .. }
    ));
    assert!(matches!(&r.results[3], OpResult::Rejected { code, .. } if code == "invalid_input"));
    assert_eq!(applied(&r.results[4]), (2, 2));
    assert_eq!(r.head_seq, 2);
    // The same op id may not be reused for another item.
    let mut reuse = op(&id(), 0, vec![]);
    reuse.op_id = next.op_id.clone();
    let r = d
        .api
        .commit(t, p, &CommitRequest { ops: vec![reuse] })
        .await
        .unwrap();
    assert!(matches!(&r.results[0], OpResult::Rejected { code, .. } if code == "conflict"));

    let page = d
        .api
        .changes(
            t,
            p,
            &ChangesQuery {
                after: 0,
                limit: Some(1),
                wait: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (page.changes.len(), page.next, page.has_more, page.head_seq),
        (1, 1, true, 2)
    );
    assert_eq!(
        page.changes[0].payload, first.payload,
        "payloads come back byte for byte"
    );
    assert_eq!(page.changes[0].device_id, d.device);
    let generation = page.generation.clone();
    let page = d
        .api
        .changes(
            t,
            p,
            &ChangesQuery {
                after: 1,
                limit: None,
                wait: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.changes
            .iter()
            .map(|c| (c.seq, c.rev))
            .collect::<Vec<_>>(),
        vec![(2, 2)]
    );
    assert!(!page.has_more);
    assert_eq!(page.generation, generation);

    // Long poll: a reader waiting at the head is woken by a commit.
    let waiter = {
        let api = d.api.clone();
        let (t, p) = (t.to_string(), p.to_string());
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let page = api
                .changes(
                    &t,
                    &p,
                    &ChangesQuery {
                        after: 2,
                        limit: None,
                        wait: Some(20),
                    },
                )
                .await
                .unwrap();
            (page, start.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let other = id();
    let r = d
        .api
        .commit(
            t,
            p,
            &CommitRequest {
                ops: vec![op(&other, 0, vec![])],
            },
        )
        .await
        .unwrap();
    assert_eq!(applied(&r.results[0]), (3, 1));
    let (page, took) = waiter.await.unwrap();
    assert_eq!(
        page.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![3]
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "woken by the commit, not the timeout: {took:?}"
    );

    // The snapshot holds the latest op of each item, by item id, paged.
    let snap = d
        .api
        .snapshot(
            t,
            p,
            &SnapshotQuery {
                after_item: None,
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(snap.items.len(), 1);
    assert_eq!(snap.head_seq, 3);
    let rest = d
        .api
        .snapshot(
            t,
            p,
            &SnapshotQuery {
                after_item: snap.next_item.clone(),
                limit: Some(5),
            },
        )
        .await
        .unwrap();
    let mut all: Vec<(String, u64)> = snap
        .items
        .iter()
        .chain(&rest.items)
        .map(|c| (c.item_id.clone(), c.seq))
        .collect();
    all.sort();
    let mut want = vec![(item.clone(), 2), (other.clone(), 3)];
    want.sort();
    assert_eq!(all, want);
    assert_eq!(rest.next_item, None);

    // Every commit is one audit event with the caller's address and user agent.
    let events = h.audit("alpha").await;
    let commits: Vec<_> = events
        .iter()
        .filter(|e| e.action.as_str() == "feed.commit")
        .collect();
    assert_eq!(commits.len(), 5);
    assert!(commits
        .iter()
        .all(|e| e.ip_address == "127.0.0.1" && e.user_agent == UA));
    assert!(
        commits[2]
            .detail
            .contains("applied=1 duplicate=1 conflict=1 stale_epoch=1"),
        "{}",
        commits[2].detail
    );
}

#[tokio::test]
async fn blobs_whole_packed_resumable_across_a_restart_and_ranged() {
    let mut h = harness().await;
    let d = device_and_project(&h, "alpha").await;
    let (t, p) = (d.user.access.clone(), d.project.clone());
    // Whole: a wrong Content-Digest stores nothing.
    let b1 = blob_id();
    let (s, v) = h
        .call_with(
            "PUT",
            &format!("/v1/projects/{p}/blobs/{b1}"),
            Some(&t),
            Some(serde_json::json!("abc")),
            &[
                (DEVICE_HEADER, &d.device),
                (
                    "content-digest",
                    &format!("sha-256=:{}:", B64.encode([0u8; 32])),
                ),
            ],
        )
        .await;
    assert_eq!((s.as_u16(), code_of(&v)), (422, "digest_mismatch"));
    assert_eq!(
        d.api.missing_blobs(&t, &p, vec![b1.clone()]).await.unwrap(),
        vec![b1.clone()]
    );
    let (info, created) = d
        .api
        .put_blob(&t, &p, &b1, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        info.digest,
        format!("sha256:{}", hex::encode(Sha256::digest(b"0123456789")))
    );
    let (_, created) = d
        .api
        .put_blob(&t, &p, &b1, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert!(!created, "a resend is answered 200, not stored twice");
    let e = d
        .api
        .put_blob(&t, &p, &b1, Bytes::from_static(b"another"))
        .await;
    assert_eq!(code(e), ErrorCode::Conflict);
    assert_eq!(
        &d.api.get_blob(&t, &p, &b1, Some((3, 4))).await.unwrap()[..],
        b"3456"
    );
    assert_eq!(
        &d.api.get_blob(&t, &p, &b1, None).await.unwrap()[..],
        b"0123456789"
    );

    // Packed: three small blobs (one empty) in one request, one object on the server.
    let blobs: Vec<(String, Vec<u8>)> = vec![
        (blob_id(), b"alpha".to_vec()),
        (blob_id(), vec![]),
        (blob_id(), vec![9u8; 3000]),
    ];
    let pack = |blobs: &[(String, Vec<u8>)], corrupt: bool| {
        let manifest = PackManifest {
            blobs: blobs
                .iter()
                .map(|(id, b)| PackEntry {
                    blob_id: id.clone(),
                    size: b.len() as u64,
                    sha256: hex::encode(Sha256::digest(b)),
                })
                .collect(),
        };
        let mut body = frame(&manifest, 0);
        for (_, b) in blobs {
            body.extend_from_slice(b);
        }
        if corrupt {
            let n = body.len();
            body[n - 1] ^= 1;
        }
        Bytes::from(body)
    };
    let e = d.api.put_pack(&t, &p, pack(&blobs, true)).await;
    match e {
        Err(labvault_client::ClientError::Api {
            code: ErrorCode::DigestMismatch,
            message,
            ..
        }) => {
            assert!(message.contains(&blobs[2].0), "names the blob: {message}")
        }
        other => panic!("{other:?}"),
    }
    let ids: Vec<String> = blobs.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(
        d.api.missing_blobs(&t, &p, ids.clone()).await.unwrap(),
        ids,
        "a refused pack keeps nothing"
    );
    let r = d.api.put_pack(&t, &p, pack(&blobs, false)).await.unwrap();
    assert!(r.results.iter().all(|x| x.status == BlobPutStatus::Created));
    let r = d.api.put_pack(&t, &p, pack(&blobs, false)).await.unwrap();
    assert!(r.results.iter().all(|x| x.status == BlobPutStatus::Exists));
    assert!(d
        .api
        .missing_blobs(&t, &p, ids.clone())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        &d.api
            .get_blob(&t, &p, &blobs[2].0, Some((2990, 10)))
            .await
            .unwrap()[..],
        &[9u8; 10][..]
    );
    let mut asked = ids.clone();
    asked.insert(1, blob_id());
    let (m, bytes) = d.api.blob_batch(&t, &p, asked).await.unwrap();
    assert_eq!(
        m.blobs
            .iter()
            .map(|e| e.blob_id.clone())
            .collect::<Vec<_>>(),
        ids,
        "the missing one is left out"
    );
    assert_eq!(
        &bytes[..],
        [b"alpha".to_vec(), vec![], vec![9u8; 3000]]
            .concat()
            .as_slice()
    );

    // Resumable: 3 parts of 1 KiB + 100 bytes; part 2 first, then the server restarts.
    let big: Vec<u8> = (0..3172u32).map(|i| (i % 251) as u8).collect();
    let bb = blob_id();
    let req = UploadRequest {
        blob_id: bb.clone(),
        size: big.len() as u64,
        part_size: 1024,
    };
    let u = d.api.create_upload(&t, &p, &req).await.unwrap();
    assert!(u.parts.is_empty() && !u.complete);
    let part = |n: usize| Bytes::copy_from_slice(&big[n * 1024..((n + 1) * 1024).min(big.len())]);
    d.api.put_part(&t, &u.upload_id, 2, part(2)).await.unwrap();
    d.api.put_part(&t, &u.upload_id, 0, part(0)).await.unwrap();
    h.restart().await;
    // Resume: asking again returns the same upload and the parts it holds.
    let again = d.api.create_upload(&t, &p, &req).await.unwrap();
    assert_eq!(again.upload_id, u.upload_id);
    assert_eq!(
        again.parts.iter().map(|x| x.n).collect::<Vec<_>>(),
        vec![0, 2]
    );
    // A part with the wrong size or digest is refused and not recorded.
    let e = d
        .api
        .put_part(&t, &u.upload_id, 1, Bytes::from_static(b"short"))
        .await;
    assert_eq!(code(e), ErrorCode::InvalidInput);
    let (s, v) = h
        .call_with(
            "PUT",
            &format!("/v1/uploads/{}/parts/1", u.upload_id),
            Some(&t),
            None,
            &[
                (DEVICE_HEADER, &d.device),
                (PART_SHA256_HEADER, &"0".repeat(64)),
            ],
        )
        .await;
    assert_eq!(s.as_u16(), 422, "{v}");
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let list: Vec<String> = (0..4).map(|n| sha(&part(n))).collect();
    let e = d
        .api
        .complete_upload(
            &t,
            &u.upload_id,
            &CompleteUpload {
                parts_sha256: list.clone(),
            },
        )
        .await;
    assert_eq!(code(e), ErrorCode::Conflict, "part 1 is not stored yet");
    d.api.put_part(&t, &u.upload_id, 1, part(1)).await.unwrap();
    d.api.put_part(&t, &u.upload_id, 3, part(3)).await.unwrap();
    let mut wrong = list.clone();
    wrong[3] = sha(b"other");
    let e = d
        .api
        .complete_upload(
            &t,
            &u.upload_id,
            &CompleteUpload {
                parts_sha256: wrong,
            },
        )
        .await;
    assert_eq!(code(e), ErrorCode::DigestMismatch);
    let info = d
        .api
        .complete_upload(
            &t,
            &u.upload_id,
            &CompleteUpload {
                parts_sha256: list.clone(),
            },
        )
        .await
        .unwrap();
    let tree: Vec<u8> = list.iter().flat_map(|h| hex::decode(h).unwrap()).collect();
    assert_eq!(info.digest, format!("sha256-parts:1024:{}", sha(&tree)));
    assert_eq!(
        &d.api.get_blob(&t, &p, &bb, None).await.unwrap()[..],
        &big[..]
    );
    assert_eq!(
        &d.api
            .get_blob(&t, &p, &bb, Some((1000, 100)))
            .await
            .unwrap()[..],
        &big[1000..1100]
    );
    assert!(
        d.api.create_upload(&t, &p, &req).await.unwrap().complete,
        "nothing left to send"
    );
    assert_eq!(
        code(d.api.upload(&t, &u.upload_id).await),
        ErrorCode::NotFound
    );

    // An idle upload expires and its bytes go.
    let bc = blob_id();
    let u = d
        .api
        .create_upload(
            &t,
            &p,
            &UploadRequest {
                blob_id: bc,
                size: 2048,
                part_size: 1024,
            },
        )
        .await
        .unwrap();
    d.api
        .put_part(&t, &u.upload_id, 0, Bytes::from(vec![1u8; 1024]))
        .await
        .unwrap();
    h.clock.advance(time::Duration::days(8));
    labvault_server::gc::sweep_blobs(&h.server.state)
        .await
        .unwrap();
    let t = h.login("alpha", "owner@alpha.test").await.access;
    assert_eq!(
        code(d.api.upload(&t, &u.upload_id).await),
        ErrorCode::NotFound
    );
    assert!(!h
        .dir
        .path()
        .join("blobs/uploads")
        .join(&u.upload_id)
        .exists());
    assert!(h
        .audit("alpha")
        .await
        .iter()
        .any(|e| e.action.as_str() == "upload.expire"));
}

#[tokio::test]
async fn quota_holds_erasure_grace_and_removal() {
    let h = harness().await;
    let d = device_and_project(&h, "alpha").await;
    let (t, p) = (d.user.access.as_str(), d.project.as_str());
    // Quota by plan tier: a trial tenant holds 1 GiB.
    labvault_server::create_tenant(
        &h.server.state,
        labvault_server::NewTenant {
            slug: "trial".into(),
            name: "Trial lab".into(),
            plan: PlanTier::Trial,
            owner_email: "owner@trial.test".into(),
            owner_password: labvault_server::secrets::Secret::new(PW.into()),
        },
    )
    .await
    .unwrap();
    let tu = h.login("trial", "owner@trial.test").await;
    let td = h.device(&tu).await;
    let tp = h.api.create_project(&tu.access, "x").await.unwrap().id;
    let api = h.api.for_device(&td).unwrap();
    let e = api
        .create_upload(
            &tu.access,
            &tp,
            &UploadRequest {
                blob_id: blob_id(),
                size: 2 << 30,
                part_size: 1 << 20,
            },
        )
        .await;
    match e {
        Err(labvault_client::ClientError::Api {
            status: 507,
            code: ErrorCode::QuotaExceeded,
            message,
            ..
        }) => {
            assert!(message.contains("trial"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // Two items, each with a blob of its own, and two in one pack.
    let (x, y) = (id(), id());
    let (bx, by) = (blob_id(), blob_id());
    let (px, py) = (blob_id(), blob_id());
    d.api
        .put_blob(t, p, &bx, Bytes::from_static(b"x-bytes"))
        .await
        .unwrap();
    d.api
        .put_blob(t, p, &by, Bytes::from_static(b"y-bytes"))
        .await
        .unwrap();
    let manifest = PackManifest {
        blobs: [(&px, b"px".as_slice()), (&py, b"py".as_slice())]
            .iter()
            .map(|(i, b)| PackEntry {
                blob_id: (*i).clone(),
                size: 2,
                sha256: hex::encode(Sha256::digest(b)),
            })
            .collect(),
    };
    let mut body = frame(&manifest, 4);
    body.extend_from_slice(b"pxpy");
    d.api.put_pack(t, p, Bytes::from(body)).await.unwrap();
    let mut held = op(&x, 0, vec![bx.clone(), px.clone()]);
    held.hold = true;
    let r = d
        .api
        .commit(
            t,
            p,
            &CommitRequest {
                ops: vec![held, op(&y, 0, vec![by.clone(), py.clone()])],
            },
        )
        .await
        .unwrap();
    assert_eq!(applied(&r.results[0]), (1, 1));
    // Held: an erasure is refused, and so is deleting the project.
    let mut erase = op(&x, 1, vec![]);
    erase.tombstone = true;
    let r = d
        .api
        .commit(
            t,
            p,
            &CommitRequest {
                ops: vec![erase.clone()],
            },
        )
        .await
        .unwrap();
    assert!(matches!(&r.results[0], OpResult::Rejected { code, .. } if code == "on_hold"));
    let e = h.api.delete_project(t, p).await;
    assert_eq!(api_err(e), (423, ErrorCode::OnHold));
    // Erasing y (not held) removes its blobs after the grace period, and the payloads of
    // its earlier ops, which named its keys, at once.
    let mut ey = op(&y, 1, vec![]);
    ey.tombstone = true;
    let r = d
        .api
        .commit(t, p, &CommitRequest { ops: vec![ey] })
        .await
        .unwrap();
    assert_eq!(applied(&r.results[0]), (3, 2));
    let page = d.api.changes(t, p, &ChangesQuery::default()).await.unwrap();
    let first_y = page
        .changes
        .iter()
        .find(|c| c.item_id == y && c.rev == 1)
        .unwrap();
    assert!(first_y.compacted && first_y.payload.is_empty());
    assert!(
        !page
            .changes
            .iter()
            .find(|c| c.item_id == x)
            .unwrap()
            .compacted
    );
    assert_eq!(
        d.api
            .missing_blobs(t, p, vec![by.clone(), py.clone(), px.clone()])
            .await
            .unwrap(),
        vec![by.clone(), py.clone()]
    );
    let files = |h: &Harness| -> usize { walk(&h.dir.path().join("blobs/objects")).len() };
    assert_eq!(files(&h), 3);
    assert_eq!(
        labvault_server::gc::sweep_blobs(&h.server.state)
            .await
            .unwrap(),
        0,
        "within the 30-day grace"
    );
    h.clock.advance(time::Duration::days(31));
    assert_eq!(
        labvault_server::gc::sweep_blobs(&h.server.state)
            .await
            .unwrap(),
        2
    );
    let fresh = h.login("alpha", "owner@alpha.test").await.access;
    let t = fresh.as_str();
    // y's own object is gone; the pack was rewritten without py and px still reads.
    assert_eq!(files(&h), 2);
    assert_eq!(&d.api.get_blob(t, p, &px, None).await.unwrap()[..], b"px");
    assert_eq!(
        code(d.api.get_blob(t, p, &py, None).await),
        ErrorCode::NotFound
    );
    assert!(h
        .audit("alpha")
        .await
        .iter()
        .any(|e| e.action.as_str() == "blob.remove" && e.detail.starts_with("removed=1")));
    // Released, x can be erased and the project deleted; its blobs go after the grace.
    let mut release = op(&x, 1, vec![bx.clone(), px.clone()]);
    release.hold = false;
    d.api
        .commit(t, p, &CommitRequest { ops: vec![release] })
        .await
        .unwrap();
    erase.base_rev = 2;
    erase.op_id = id();
    let r = d
        .api
        .commit(t, p, &CommitRequest { ops: vec![erase] })
        .await
        .unwrap();
    applied(&r.results[0]);
    h.api.delete_project(t, p).await.unwrap();
    h.clock.advance(time::Duration::days(31));
    labvault_server::gc::sweep_blobs(&h.server.state)
        .await
        .unwrap();
    assert_eq!(files(&h), 0, "every object of the deleted project removed");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn devices_register_approve_and_revoke_anchors_verify() {
    let h = harness().await;
    h.tenant("alpha").await;
    let u = h.login("alpha", "owner@alpha.test").await;
    let first = h.device(&u).await;
    let second = h.device(&u).await;
    let devs = h.api.devices(&u.access).await.unwrap();
    let state = |id: &str| devs.iter().find(|d| d.device_id == id).unwrap().state;
    assert_eq!(
        (state(&first), state(&second)),
        (DeviceState::Approved, DeviceState::Pending)
    );
    let p = h.api.create_project(&u.access, "x").await.unwrap().id;
    let a1 = h.api.for_device(&first).unwrap();
    let a2 = h.api.for_device(&second).unwrap();
    // Pending: refused everywhere, and cannot approve itself.
    assert_eq!(
        code(a2.keyring(&u.access, &p).await),
        ErrorCode::DeviceNotApproved
    );
    let approval = DeviceApproval {
        approver_device_id: first.clone(),
        signature: B64.encode([1u8; 64]),
        mac: B64.encode([2u8; 32]),
        vouched: vec![],
    };
    let boxes = vec![KeyBox {
        project_id: p.clone(),
        epoch: 1,
        device_id: second.clone(),
        sealed: B64.encode([3u8; 92]),
        signer_device_id: first.clone(),
        signature: B64.encode([4u8; 64]),
    }];
    let self_approval = DeviceApproval {
        approver_device_id: second.clone(),
        ..approval.clone()
    };
    assert_eq!(
        code(
            a2.approve_device(
                &u.access,
                &second,
                &ApproveDevice {
                    approval: self_approval,
                    boxes: vec![],
                    identity_box: None,
                }
            )
            .await
        ),
        ErrorCode::DeviceNotApproved
    );
    let d = a1
        .approve_device(
            &u.access,
            &second,
            &ApproveDevice {
                approval: approval.clone(),
                boxes: boxes.clone(),
                identity_box: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(d.state, DeviceState::Approved);
    assert_eq!(d.approval, Some(approval.clone()));
    assert_eq!(a2.keyring(&u.access, &p).await.unwrap().boxes, boxes);
    assert_eq!(
        a1.key_recipients(&u.access, &p).await.unwrap().device_ids,
        vec![second.clone()]
    );
    // Keys may only be sealed to one's own approved devices.
    let other = h
        .add_member("alpha", &u, "eve@alpha.test", Role::Editor)
        .await;
    let eve_dev = h.device(&other).await;
    let to_eve = KeyBox {
        device_id: eve_dev.clone(),
        ..boxes[0].clone()
    };
    assert_eq!(
        code(
            a1.put_keyring(
                &u.access,
                &p,
                &KeyBoxes {
                    boxes: vec![to_eve]
                }
            )
            .await
        ),
        ErrorCode::Forbidden
    );

    // Anchors: signed over the governance checkpoint bytes, by the server's key.
    let head = hex::encode([7u8; 32]);
    let receipt = a2
        .anchor(
            &u.access,
            &AnchorRequest {
                chain_id: second.clone(),
                seq: 5,
                head_hash: head.clone(),
            },
        )
        .await
        .unwrap();
    for a in [&receipt.device, &receipt.server] {
        let key = ed25519_dalek::VerifyingKey::from_bytes(
            &B64.decode(&a.server_key).unwrap().try_into().unwrap(),
        )
        .unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(
            &B64.decode(&a.signature).unwrap().try_into().unwrap(),
        );
        key.verify_strict(&a.signed_bytes().unwrap(), &sig).unwrap();
        let mut moved = a.clone();
        moved.seq += 1;
        assert!(key
            .verify_strict(&moved.signed_bytes().unwrap(), &sig)
            .is_err());
    }
    assert_eq!(
        (receipt.device.seq, receipt.device.head_hash.as_str()),
        (5, head.as_str())
    );
    assert_eq!(receipt.server.chain_id, receipt.server.tenant_id);
    assert!(receipt.server.seq > 0);
    assert_eq!(
        code(
            a2.anchor(
                &u.access,
                &AnchorRequest {
                    chain_id: first.clone(),
                    seq: 1,
                    head_hash: head.clone()
                }
            )
            .await
        ),
        ErrorCode::Forbidden,
        "a device anchors its own chain only"
    );
    assert_eq!(
        a2.anchors(&u.access, &second).await.unwrap(),
        vec![receipt.device.clone()]
    );
    // Revoked: refused, and its key boxes are gone.
    a1.revoke_device(&u.access, &second).await.unwrap();
    assert_eq!(
        code(a2.keyring(&u.access, &p).await),
        ErrorCode::DeviceNotApproved
    );
    assert!(a1
        .key_recipients(&u.access, &p)
        .await
        .unwrap()
        .device_ids
        .is_empty());
    let events = h.audit("alpha").await;
    for action in [
        "device.register",
        "device.approve",
        "device.revoke",
        "keyring.change",
        "audit.anchor",
    ] {
        assert!(
            events.iter().any(|e| e.action.as_str() == action),
            "{action} audited"
        );
    }
}

mod sharing;

/// Downloads by one caller past the tenant's hourly threshold raise `mass_download` once,
/// naming the caller; below it nothing is raised.
#[tokio::test]
async fn a_mass_download_raises_an_alert_at_the_tenants_threshold() {
    let h = harness().await;
    let d = device_and_project(&h, "dl-lab").await;
    let owner = h.enroll_and_relogin("dl-lab", &d.user).await;
    let (t, p) = (owner.access.clone(), d.project.clone());
    h.api
        .set_alert_settings(
            &t,
            &AlertSettings {
                webhook_url: None,
                downloads_per_hour: 20,
                deletions_per_hour: 100,
            },
        )
        .await
        .unwrap();
    let b = blob_id();
    d.api
        .put_blob(&t, &p, &b, Bytes::from_static(b"sealed bytes"))
        .await
        .unwrap();
    let alerts = || async {
        h.api
            .alerts(&t, &AlertQuery::default())
            .await
            .unwrap()
            .alerts
    };
    for _ in 0..19 {
        d.api.get_blob(&t, &p, &b, None).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(alerts().await, [], "19 downloads, threshold 20");
    d.api.get_blob(&t, &p, &b, None).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        got = alerts().await;
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].rule, AlertRule::MassDownload);
    assert_eq!(got[0].subject, "owner@dl-lab.test");
}
