//! Shared projects through the real tenant: three users with five devices share a project,
//! edit it from every device, and one member is removed while one of their devices is
//! offline. The remaining members converge and read everything; the removed member's devices
//! (holding every key they ever had) cannot open anything written after the rotation and get
//! 403; the offline device wipes its copy when it reconnects. Then the offline lease, device
//! revocation, and a hostile tenant lying about the membership log.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use labvault_client::{ClientError, ClientOptions, HttpsTransport, Pin, TenantClient, Transport};
use labvault_core::ErrorCode;
use labvault_sync::sharing;
use labvault_sync::SyncError;
use labvault_wire::{ChangesQuery, Role};
use serde_json::Value;

use crate::common::*;

const POSTDOC: &str = "postdoc@lab.test";
const STUDENT: &str = "student@lab.test";

fn names(d: &Device) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = d
        .vault
        .sync_catalog()
        .unwrap()
        .into_iter()
        .filter(|e| e.state == labvault_core::ItemState::Active)
        .map(|e| (e.project, e.path))
        .collect();
    v.sort();
    v
}

fn audit_actions(d: &Device) -> Vec<String> {
    let mut out = Vec::new();
    d.vault
        .audit_for_each(&Default::default(), |e| {
            out.push(e.action.to_string());
            Ok(())
        })
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_five_devices_share_and_a_removed_member_loses_what_follows() {
    let t = Tenant::start().await;
    t.add_member(POSTDOC, Role::Editor).await;
    t.add_member(STUDENT, Role::Viewer).await;

    // The PI's workstation creates the project; her laptop is paired to it.
    let pi_ws = Device::new("pi-workstation");
    pi_ws.login(&t).await;
    let p = pi_ws.project("Shared");
    pi_ws.import(&p, &[("protocol.md", b"step 1"), ("raw/a.csv", b"1,2")]);
    let r = pi_ws.settle(&t).await;
    assert_eq!(r.errors, vec![]);
    let v = pi_ws.vault.sync_membership(&p).unwrap().expect("shared");
    assert_eq!((v.epoch, v.my_role, v.members.len()), (1, Some("owner"), 1));
    let pi_laptop = Device::new("pi-laptop");
    pi_laptop.login(&t).await;
    pair(&t, &pi_ws, &pi_laptop).await;
    pi_laptop.settle(&t).await;
    assert_eq!(
        pi_laptop.vault.sync_identity().unwrap(),
        pi_ws.vault.sync_identity().unwrap(),
        "the identity travelled with the approval"
    );

    // The postdoc (two devices) and the student (one) sign in: identities, no access yet.
    let pd_laptop = Device::new("postdoc-laptop");
    pd_laptop.login_as(&t, POSTDOC).await;
    pd_laptop.settle(&t).await;
    let pd_ws = Device::new("postdoc-workstation");
    pd_ws.login_as(&t, POSTDOC).await;
    pair(&t, &pd_laptop, &pd_ws).await;
    pd_ws.settle(&t).await;
    let st = Device::new("student-laptop");
    st.login_as(&t, STUDENT).await;
    st.settle(&t).await;
    assert!(pd_ws.vault.project("Shared").is_err(), "not shared yet");

    // Sharing is an admin action: without a recent MFA step-up the tenant refuses it.
    let plain = pi_ws.engine(&t);
    let e = sharing::share(&pi_ws.vault, plain.session(), &p, POSTDOC, "editor")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "mfa_required", "{e}");
    drop(plain);
    let admin = step_up(&t, &pi_ws).await;
    sharing::share(&pi_ws.vault, admin.session(), &p, POSTDOC, "editor")
        .await
        .unwrap();
    sharing::share(&pi_ws.vault, admin.session(), &p, STUDENT, "editor")
        .await
        .unwrap();
    let v = pi_ws.vault.sync_membership(&p).unwrap().unwrap();
    assert_eq!(v.members.len(), 3);
    assert_eq!(v.length, 3, "entry 0 and two additions");
    drop(admin);

    // Every device gets the project and edits it.
    let all = [&pi_ws, &pi_laptop, &pd_laptop, &pd_ws, &st];
    for d in all {
        let r = d.settle(&t).await;
        assert_eq!(r.errors, vec![], "{}", d.name);
    }
    for (i, d) in all.iter().enumerate() {
        let pid = d
            .vault
            .project("Shared")
            .map(|x| x.id)
            .unwrap_or_else(|_| p.clone());
        assert_eq!(pid, p, "{}: same project id", d.name);
        d.import(
            &p,
            &[(
                &format!("from-{}.txt", d.name),
                format!("edit {i}").as_bytes(),
            )],
        );
    }
    for _ in 0..2 {
        for d in all {
            let r = d.settle(&t).await;
            assert_eq!(r.errors, vec![], "{}", d.name);
        }
    }
    let expected = names(&pi_ws);
    assert_eq!(expected.len(), 7, "two files and one from each device");
    for d in all {
        assert_eq!(names(d), expected, "{} converged", d.name);
        assert_eq!(
            d.vault.sync_catalog().unwrap(),
            pi_ws.vault.sync_catalog().unwrap()
        );
    }
    // Each device's name for the project is its own (names never reach the tenant).
    assert_eq!(
        String::from_utf8(pd_ws.read(&pd_ws.item(&p, "from-student-laptop.txt").id)).unwrap(),
        "edit 4"
    );

    // The postdoc leaves while their laptop is offline: removed, then the key rotates. (The
    // step-up belongs to the session, which a new engine resumes.)
    let admin = pi_ws.engine(&t);
    let epoch = sharing::unshare(&pi_ws.vault, admin.session(), &p, POSTDOC)
        .await
        .unwrap();
    assert_eq!(
        epoch,
        Some(2),
        "the PI's device rotated right after the removal"
    );
    let v = pi_ws.vault.sync_membership(&p).unwrap().unwrap();
    assert_eq!((v.epoch, v.members.len(), v.rotation_owed), (2, 2, false));
    drop(admin);

    // The tenant cuts the postdoc off at once: feed, snapshot, keys, blobs.
    let pd_engine = pd_laptop.engine(&t);
    let pd_s = pd_engine.session();
    let pid = p.clone();
    let feed = pd_s
        .call(|tok| {
            let (c, pid) = (pd_s.client().clone(), pid.clone());
            async move { c.changes(&tok, &pid, &ChangesQuery::default()).await }
        })
        .await
        .unwrap_err();
    assert_eq!(feed.code(), "forbidden", "{feed}");
    let keys = pd_s
        .call(|tok| {
            let (c, pid) = (pd_s.client().clone(), pid.clone());
            async move { c.keyring(&tok, &pid).await }
        })
        .await
        .unwrap_err();
    assert_eq!(keys.code(), "forbidden");
    let log = pd_s
        .call(|tok| {
            let (c, pid) = (pd_s.client().clone(), pid.clone());
            async move { c.membership(&tok, &pid, 0).await }
        })
        .await
        .unwrap();
    assert!(
        log.boxes.is_empty() && log.links.is_empty(),
        "the log only: no key of any epoch"
    );
    drop(pd_engine);

    // The remaining members write after the rotation.
    pi_laptop.settle(&t).await;
    pi_laptop.import(
        &p,
        &[("after/secret-result.csv", b"written after the rotation")],
    );
    st.import(&p, &[("after/student.txt", b"also after")]);
    for d in [&pi_laptop, &st, &pi_ws, &pi_laptop, &st] {
        let r = d.settle(&t).await;
        assert_eq!(r.errors, vec![], "{}", d.name);
    }
    for d in [&pi_laptop, &st] {
        assert_eq!(
            names(d),
            names(&pi_ws),
            "{} converged after the rotation",
            d.name
        );
        d.verify();
    }
    assert_eq!(
        st.read(&st.item(&p, "after/secret-result.csv").id),
        b"written after the rotation"
    );

    // The postdoc's offline laptop still holds epoch 1 (every key it ever had): the ops
    // written after the rotation, as the tenant stores them, do not open with it.
    let owner = pi_ws.engine(&t);
    let os = owner.session();
    let page = os
        .call(|tok| {
            let (c, pid) = (os.client().clone(), pid.clone());
            async move { c.changes(&tok, &pid, &ChangesQuery::default()).await }
        })
        .await
        .unwrap();
    drop(owner);
    let cursor = pd_laptop
        .vault
        .sync_projects()
        .unwrap()
        .into_iter()
        .find(|x| x.project_id == p)
        .unwrap()
        .cursor;
    assert_eq!(
        page.changes.iter().filter(|c| c.epoch == 2).count(),
        2,
        "the two files written after the rotation"
    );
    // The feed from the laptop's cursor, as the tenant stores it.
    let incoming = page
        .changes
        .iter()
        .filter(|c| c.seq >= cursor)
        .map(|c| labvault_core::sync::IncomingChange {
            seq: c.seq,
            op_id: c.op_id.clone(),
            item_id: c.item_id.clone(),
            rev: c.rev,
            epoch: c.epoch,
            device_id: c.device_id.clone(),
            payload: B64.decode(&c.payload).unwrap(),
            blobs: c.blobs.clone(),
            tombstone: c.tombstone,
            hold: c.hold,
            compacted: c.compacted,
        })
        .collect();
    let refused = pd_laptop
        .vault
        .sync_open_page(
            &p,
            incoming,
            &labvault_core::sync::FeedInfo {
                head_seq: page.head_seq,
                epoch: 2,
                generation: page.generation.clone(),
            },
        )
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SyncRefused);
    assert!(refused.to_string().contains("no key for"), "{refused}");

    // The postdoc's workstation (online) and then the laptop reconnect: both wipe the project.
    for d in [&pd_ws, &pd_laptop] {
        let r = d.sync(&t).await.unwrap();
        assert_eq!(r.wiped.len(), 1, "{}: {r:?}", d.name);
        assert_eq!(r.wiped[0].project_id, p);
        assert!(
            d.vault.project("Shared").is_err(),
            "{}: the copy is gone",
            d.name
        );
        assert!(
            audit_actions(d).iter().any(|a| a == "sync.wipe"),
            "{}: audited",
            d.name
        );
        assert!(
            d.vault
                .sync_catalog()
                .unwrap()
                .iter()
                .all(|e| e.project != "Shared"),
            "{}: nothing of it left in the catalog",
            d.name
        );
        let again = d.sync(&t).await.unwrap();
        assert_eq!(
            (again.wiped.len(), again.errors.len()),
            (0, 0),
            "{}: quiet after",
            d.name
        );
    }
    // The tenant recorded the removal and the rotation.
    let owner = pi_ws.engine(&t);
    let os = owner.session();
    let audit = os
        .call(|tok| {
            let c = os.client().clone();
            async move {
                c.audit(
                    &tok,
                    &labvault_wire::AuditQuery {
                        limit: Some(1000),
                        ..Default::default()
                    },
                )
                .await
            }
        })
        .await
        .unwrap();
    let changes: Vec<_> = audit
        .events
        .iter()
        .filter(|e| e.action.to_string() == "membership.change")
        .collect();
    assert!(
        changes.len() >= 5,
        "genesis, two adds, the removal, the rotation"
    );
    let wipes: Vec<String> = audit
        .events
        .iter()
        .filter(|e| e.action.to_string() == "device.wipe")
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(
        wipes.len(),
        2,
        "both of the postdoc's devices told the tenant: {wipes:?}"
    );
    assert!(
        wipes.iter().all(|w| w.starts_with("reason=removed items=")),
        "{wipes:?}"
    );
}

// ------------------------------------------------------------------ a hostile tenant

/// How the tenant lies about shared projects.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    None,
    /// Flips a byte of the last membership entry's signature.
    ForgeSignature,
    /// Swaps the last two membership entries.
    Reorder,
    /// Appends an entry adding a member, signed by an identity that is no member.
    AddMember,
    /// Lists a member box holder the log does not have.
    ExtraHolder,
    /// Serves the log without its last two entries (a removal and its rotation dropped).
    DropRemoval,
    /// Serves only the boxes and links of epoch 1 (an old epoch handed out as current).
    OldEpoch,
    /// Lists another identity key for a member.
    SwapKey,
    /// Lists a device the user never approved, waiting for the identity.
    AddDevice,
    /// Puts an op sealed under epoch 1 after the feed's epoch 2 ops.
    RetiredKeyOp,
}

struct Liar {
    inner: HttpsTransport,
    lie: Mutex<Lie>,
    /// An op under a retired key, for [`Lie::RetiredKeyOp`].
    late_op: Mutex<Option<Value>>,
    /// Device ids the client sealed identity boxes to.
    sealed_to: Mutex<Vec<String>>,
}

fn json(body: &Bytes, f: impl FnOnce(&mut Value)) -> Bytes {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    f(&mut v);
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

fn forged_add(last: &str, length: u64) -> String {
    use labvault_core::sync::{EntryBody, MemberRole};
    let prev = labvault_crypto::LogEntry::from_bytes(&B64.decode(last).unwrap()).unwrap();
    let intruder = labvault_crypto::IdentityKeys::generate();
    let e = intruder.sign_entry(labvault_crypto::UnsignedEntry {
        project_id: prev.entry.project_id.clone(),
        seq: length,
        prev_hash: prev.hash(),
        at_ms: 0,
        signer: "intruder".into(),
        body: EntryBody::Add {
            user_id: "intruder".into(),
            role: MemberRole::Owner,
            identity: intruder.public(),
        },
    });
    B64.encode(e.to_bytes())
}

#[async_trait]
impl Transport for Liar {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>, ClientError> {
        let path = req.uri().path().to_string();
        let lie = *self.lie.lock().unwrap();
        if path.ends_with("/me/identity/boxes") {
            let v: Value = serde_json::from_slice(req.body()).unwrap();
            for b in v["boxes"].as_array().unwrap() {
                self.sealed_to
                    .lock()
                    .unwrap()
                    .push(b["device_id"].as_str().unwrap().to_string());
            }
        }
        let resp = self.inner.send(req).await?;
        let (parts, body) = resp.into_parts();
        if !parts.status.is_success() || lie == Lie::None {
            return Ok(http::Response::from_parts(parts, body));
        }
        let body = if path.ends_with("/membership") {
            json(&body, |v| {
                let n = v["entries"].as_array().unwrap().len();
                match lie {
                    Lie::ForgeSignature if n > 0 => {
                        let mut b = B64.decode(v["entries"][n - 1].as_str().unwrap()).unwrap();
                        let last = b.len() - 1;
                        b[last] ^= 1;
                        v["entries"][n - 1] = Value::String(B64.encode(b));
                    }
                    Lie::Reorder if n > 1 => {
                        v["entries"].as_array_mut().unwrap().swap(n - 2, n - 1)
                    }
                    Lie::AddMember if n > 0 => {
                        let length = v["length"].as_u64().unwrap();
                        let e = forged_add(v["entries"][n - 1].as_str().unwrap(), length);
                        v["entries"].as_array_mut().unwrap().push(Value::String(e));
                        v["length"] = Value::from(length + 1);
                    }
                    Lie::ExtraHolder => v["box_holders"]
                        .as_array_mut()
                        .unwrap()
                        .push(Value::String(uuid::Uuid::new_v4().to_string())),
                    Lie::DropRemoval => {
                        let length = v["length"].as_u64().unwrap();
                        v["entries"] = Value::Array(vec![]);
                        v["length"] = Value::from(length - 2);
                    }
                    Lie::OldEpoch => {
                        v["boxes"]
                            .as_array_mut()
                            .unwrap()
                            .retain(|b| b["epoch"] == 1);
                        v["links"] = Value::Array(vec![]);
                    }
                    _ => {}
                }
            })
        } else if path.ends_with("/identities") && lie == Lie::SwapKey {
            json(&body, |v| {
                v["x25519"] = Value::String(B64.encode([5u8; 32]))
            })
        } else if path.ends_with("/me/identity") && lie == Lie::AddDevice {
            json(&body, |v| {
                v["devices_without_box"]
                    .as_array_mut()
                    .unwrap()
                    .push(Value::String("00000000-0000-4000-8000-000000000bad".into()))
            })
        } else if path.ends_with("/changes") && lie == Lie::RetiredKeyOp {
            let late = self.late_op.lock().unwrap().clone();
            json(&body, |v| {
                let changes = v["changes"].as_array_mut().unwrap();
                if let (Some(last), Some(mut op)) = (changes.last().cloned(), late) {
                    if last["epoch"] == 2 {
                        let next = last["seq"].as_u64().unwrap() + 1;
                        op["seq"] = Value::from(next);
                        changes.push(op);
                        v["head_seq"] = Value::from(next);
                    }
                }
            })
        } else {
            body
        };
        Ok(http::Response::from_parts(parts, body))
    }
}

/// What a refused pass must leave: the membership and catalog as they were.
fn snapshot(d: &Device, p: &str) -> (Option<(u64, u32)>, Vec<labvault_core::sync::CatalogEntry>) {
    (
        d.vault
            .sync_membership(p)
            .unwrap()
            .map(|v| (v.length, v.epoch)),
        d.vault.sync_catalog().unwrap(),
    )
}

/// `d` syncs through the liar with `lie`: the project is refused with a message naming
/// `why`, nothing local changes; then the honest tenant brings it up to date.
async fn refused(l: &Liar, client: &TenantClient, d: &Device, p: &str, lie: Lie, why: &str) {
    let before = snapshot(d, p);
    *l.lie.lock().unwrap() = lie;
    let r = d.engine_with(client.clone()).pass(None).await.unwrap();
    *l.lie.lock().unwrap() = Lie::None;
    assert!(
        r.errors
            .iter()
            .any(|(_, m)| m.contains("refused") && m.contains(why)),
        "{lie:?}: refused naming {why:?}: {:?}",
        r.errors
    );
    assert_eq!(snapshot(d, p), before, "{lie:?}: nothing local changed");
    d.vault.sync_set_stopped(p, None).unwrap();
    let r = d.engine_with(client.clone()).pass(None).await.unwrap();
    assert_eq!(r.errors, vec![], "{lie:?}: the honest tenant again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_lying_about_membership_is_refused_and_nothing_local_changes() {
    let t = Tenant::start().await;
    t.add_member(POSTDOC, Role::Editor).await;
    t.add_member(STUDENT, Role::Editor).await;
    let pi = Device::new("pi");
    pi.login(&t).await;
    let p = pi.project("Shared");
    pi.import(&p, &[("a.txt", b"a")]);
    pi.settle(&t).await;
    let pd = Device::new("postdoc");
    pd.login_as(&t, POSTDOC).await;
    pd.settle(&t).await;
    let l = Arc::new(Liar {
        inner: HttpsTransport::new(Pin::parse(&t.pin).unwrap(), ClientOptions::default()).unwrap(),
        lie: Mutex::new(Lie::None),
        late_op: Mutex::new(None),
        sealed_to: Mutex::new(Vec::new()),
    });
    let tr: Arc<dyn Transport> = l.clone();
    let client = TenantClient::with_transport(&t.url, tr).unwrap();
    let st = Device::new("student");
    st.login_as_with(&t, client.clone(), STUDENT).await;
    st.engine_with(client.clone()).pass(None).await.unwrap();

    // A device the user never approved, listed as waiting for the identity: nothing is
    // sealed to it (only devices this one trusts get the identity).
    *l.lie.lock().unwrap() = Lie::AddDevice;
    st.engine_with(client.clone()).pass(None).await.unwrap();
    *l.lie.lock().unwrap() = Lie::None;
    assert!(
        l.sealed_to.lock().unwrap().is_empty(),
        "no identity box for an unknown device"
    );

    let admin = step_up(&t, &pi).await;
    sharing::share(&pi.vault, admin.session(), &p, STUDENT, "editor")
        .await
        .unwrap();
    st.engine_with(client.clone()).pass(None).await.unwrap();
    assert_eq!(st.vault.sync_membership(&p).unwrap().unwrap().length, 2);

    // One new entry: a forged signature, an intruder appended, a holder the log lacks.
    sharing::share(&pi.vault, admin.session(), &p, POSTDOC, "editor")
        .await
        .unwrap();
    refused(&l, &client, &st, &p, Lie::ForgeSignature, "signature").await;
    sharing::set_role(&pi.vault, admin.session(), &p, POSTDOC, "viewer")
        .await
        .unwrap();
    refused(&l, &client, &st, &p, Lie::AddMember, "not a member").await;
    refused(&l, &client, &st, &p, Lie::ExtraHolder, "not a member").await;
    // Two new entries, reordered.
    sharing::set_role(&pi.vault, admin.session(), &p, POSTDOC, "editor")
        .await
        .unwrap();
    sharing::set_role(&pi.vault, admin.session(), &p, POSTDOC, "viewer")
        .await
        .unwrap();
    refused(&l, &client, &st, &p, Lie::Reorder, "out of order").await;

    // A member's key swapped at the lookup: refused against the identity seen first.
    *l.lie.lock().unwrap() = Lie::SwapKey;
    let st_engine = st.engine_with(client.clone());
    let e = sharing::find_identity(&st.vault, st_engine.session(), POSTDOC)
        .await
        .unwrap_err();
    *l.lie.lock().unwrap() = Lie::None;
    assert!(
        e.to_string()
            .contains("differs from the one this device saw first"),
        "{e}"
    );
    drop(st_engine);

    // The postdoc writes offline under epoch 1, then is removed and the key rotates.
    pd.settle(&t).await;
    pd.import(&p, &[("late.txt", b"written with a key about to retire")]);
    pd.vault.sync_stage(&p, 100).unwrap();
    let late = pd.vault.sync_outgoing(&p, 100).unwrap().remove(0);
    assert_eq!(late.epoch, 1);
    *l.late_op.lock().unwrap() = Some(serde_json::json!({
        "seq": 0, "op_id": late.op_id, "item_id": late.item_id, "rev": late.base_rev + 1,
        "epoch": 1, "device_id": pd.vault.device_id(), "user_id": "postdoc",
        "payload": B64.encode(&late.payload), "blobs": late.blobs, "tombstone": false,
        "hold": false, "compacted": false, "committed_at": "2026-12-07T00:00:00Z"
    }));
    assert_eq!(
        sharing::unshare(&pi.vault, admin.session(), &p, POSTDOC)
            .await
            .unwrap(),
        Some(2)
    );
    drop(admin);
    st.engine_with(client.clone()).pass(None).await.unwrap();
    let v = st.vault.sync_membership(&p).unwrap().unwrap();
    assert_eq!((v.epoch, v.members.len()), (2, 2));

    // The removal and the rotation withheld, or epoch 1 handed out as current: refused.
    refused(&l, &client, &st, &p, Lie::DropRemoval, "fewer than").await;
    refused(&l, &client, &st, &p, Lie::OldEpoch, "no key of epoch 2").await;

    // An op under the retired key, placed after the rotation: refused.
    pi.import(&p, &[("after.txt", b"epoch 2")]);
    pi.settle(&t).await;
    refused(&l, &client, &st, &p, Lie::RetiredKeyOp, "retired key").await;
    assert!(st
        .vault
        .find_item(
            Some(&p),
            None,
            "late.txt",
            &[labvault_core::ItemState::Active]
        )
        .is_err());
    assert_eq!(
        st.read(&st.item(&p, "after.txt").id),
        b"epoch 2",
        "in step with the honest tenant"
    );
}

// ------------------------------------------------------------------ lease, revocation, policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_lease_locks_a_revoked_device_wipes_and_keys_rotate_on_schedule() {
    let t = Tenant::start().await;
    t.add_member(STUDENT, Role::Editor).await;
    let start = time::OffsetDateTime::now_utc();
    let pi_clock = Arc::new(labvault_core::ManualClock::new(start));
    let st_clock = Arc::new(labvault_core::ManualClock::new(start));
    let pi = Device::with_clock("pi", pi_clock.clone());
    pi.login(&t).await;
    let p = pi.project("Shared");
    pi.import(&p, &[("a.txt", b"results")]);
    pi.settle(&t).await;
    let st = Device::with_clock("student", st_clock.clone());
    st.login_as(&t, STUDENT).await;
    st.settle(&t).await;
    let admin = step_up(&t, &pi).await;
    sharing::share(&pi.vault, admin.session(), &p, STUDENT, "editor")
        .await
        .unwrap();
    drop(admin);
    st.settle(&t).await;
    let item = st.item(&p, "a.txt").id;
    assert_eq!(st.read(&item), b"results");

    // Fifteen days without reaching the tenant: past the default lease of 14, the shared
    // project locks (content and imports), the listing stays.
    st_clock.advance(time::Duration::days(15));
    let e = st.vault.view_open(&item).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProjectLocked);
    assert!(e.to_string().contains("the lab allows 14"), "{e}");
    assert_eq!(
        st.vault.item(&item).unwrap().path,
        "a.txt",
        "the listing stays"
    );
    // Reconnecting unlocks it.
    let r = st.sync(&t).await.unwrap();
    assert_eq!(r.errors, vec![]);
    assert_eq!(st.read(&item), b"results");

    // The lab shortens the lease to one day; the device learns it at its next sync.
    let admin = pi.engine(&t);
    let s = admin.session();
    let policy = labvault_wire::SharingPolicy {
        offline_lease_days: 1,
        key_rotation_days: 30,
    };
    s.call(|tok| {
        let c = s.client().clone();
        async move { c.set_sharing_policy(&tok, &policy).await }
    })
    .await
    .unwrap();
    drop(admin);
    st.sync(&t).await.unwrap();
    st_clock.advance(time::Duration::days(2));
    let e = st.vault.view_open(&item).unwrap_err();
    assert!(e.to_string().contains("the lab allows 1"), "{e}");
    st.sync(&t).await.unwrap();
    st.read(&item);

    // Thirty-one days on the PI's workstation: the lab's rotation period passed, so its
    // next sync rotates the key for new data.
    pi.sync(&t).await.unwrap();
    pi_clock.advance(time::Duration::days(31));
    let r = pi.sync(&t).await.unwrap();
    assert_eq!(r.rotated, 1, "{r:?}");
    assert_eq!(pi.vault.sync_membership(&p).unwrap().unwrap().epoch, 2);
    let r = pi.sync(&t).await.unwrap();
    assert_eq!(r.rotated, 0, "once per period");
    st.sync(&t).await.unwrap();
    assert_eq!(st.vault.sync_membership(&p).unwrap().unwrap().epoch, 2);

    // The student's second device is revoked from the first: the tenant refuses it, asks
    // the next admin client to rotate, and the revoked device wipes what it synced.
    let st2 = Device::new("student-tablet");
    st2.login_as(&t, STUDENT).await;
    pair(&t, &st, &st2).await;
    st2.settle(&t).await;
    assert_eq!(st2.read(&st2.item(&p, "a.txt").id), b"results");
    let e = st.engine(&t);
    labvault_sync::keys::revoke(&st.vault, e.session(), st2.vault.device_id())
        .await
        .unwrap();
    drop(e);
    match st2.sync(&t).await {
        Err(SyncError::Revoked) => {}
        other => panic!("a revoked device is refused, got {other:?}"),
    }
    assert!(st2.vault.project("Shared").is_err(), "the copy is wiped");
    assert!(
        st2.vault.sync_identity().unwrap().is_none(),
        "the identity is erased"
    );
    assert!(audit_actions(&st2).iter().any(|a| a == "sync.wipe"));
    let r = pi.sync(&t).await.unwrap();
    assert_eq!(r.rotated, 1, "the tenant asked for a rotation: {r:?}");
    assert_eq!(pi.vault.sync_membership(&p).unwrap().unwrap().epoch, 3);
    st.settle(&t).await;
    assert_eq!(st.read(&item), b"results", "the remaining device reads on");
}
