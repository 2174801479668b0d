//! A hostile (or broken) tenant: what it sends is checked, and refused with a clear error while
//! nothing local changes: a tampered blob, a tampered op payload, an op moved to another item,
//! a replayed op, an op under a foreign key epoch, a feed that went back in time, a substituted
//! device key at pairing, and a wrong pin.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use labvault_client::{ClientError, ClientOptions, HttpsTransport, Pin, TenantClient, Transport};
use labvault_core::ErrorCode;
use labvault_sync::SyncError;
use serde_json::Value;

use crate::common::*;

/// How the tenant lies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    None,
    /// Flips a byte in the blob bytes of a batch answer.
    BlobByte,
    /// Flips a byte of the last change's payload.
    Payload,
    /// Swaps the payloads of the last two changes (moving ops between items).
    SwapPayloads,
    /// Serves the first op of the feed again, at the next position.
    Replay,
    /// Claims another key epoch for the last change.
    Epoch,
    /// Lists other keys for the devices waiting for approval.
    DeviceKey,
}

struct Liar {
    inner: HttpsTransport,
    lie: Mutex<Lie>,
    /// The first change seen in any feed answer (for replays).
    first: Mutex<Option<Value>>,
}

fn mutate_json(body: &Bytes, f: impl FnOnce(&mut Value)) -> Bytes {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    f(&mut v);
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

fn flip_b64(s: &str) -> String {
    let mut b = B64.decode(s).unwrap();
    let i = b.len() / 2;
    b[i] ^= 1;
    B64.encode(b)
}

#[async_trait]
impl Transport for Liar {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>, ClientError> {
        let path = req.uri().path().to_string();
        let resp = self.inner.send(req).await?;
        let (parts, body) = resp.into_parts();
        let lie = *self.lie.lock().unwrap();
        let body = if path.ends_with("/changes") && parts.status.is_success() {
            let first = &self.first;
            mutate_json(&body, |v| {
                let changes = v["changes"].as_array_mut().unwrap();
                if first.lock().unwrap().is_none() {
                    if let Some(c) = changes.first() {
                        *first.lock().unwrap() = Some(c.clone());
                    }
                }
                let n = changes.len();
                match lie {
                    Lie::Payload if n > 0 => {
                        let p = changes[n - 1]["payload"].as_str().unwrap().to_string();
                        changes[n - 1]["payload"] = Value::String(flip_b64(&p));
                    }
                    Lie::SwapPayloads if n > 1 => {
                        let a = changes[n - 1]["payload"].clone();
                        changes[n - 1]["payload"] = changes[n - 2]["payload"].clone();
                        changes[n - 2]["payload"] = a;
                    }
                    Lie::Epoch if n > 0 => changes[n - 1]["epoch"] = Value::from(2),
                    Lie::Replay if n > 0 => {
                        let mut again = first.lock().unwrap().clone().unwrap();
                        let next = changes[n - 1]["seq"].as_u64().unwrap() + 1;
                        again["seq"] = Value::from(next);
                        changes.push(again);
                        v["head_seq"] = Value::from(next);
                        v["next"] = Value::from(next);
                    }
                    _ => {}
                }
            })
        } else if path.ends_with("/blob-batches") && lie == Lie::BlobByte && body.len() > 8 {
            let mut b = body.to_vec();
            let n = b.len();
            b[n - 10] ^= 1;
            Bytes::from(b)
        } else if path.ends_with("/me/devices")
            && lie == Lie::DeviceKey
            && parts.status.is_success()
        {
            mutate_json(&body, |v| {
                if let Some(list) = v.as_array_mut() {
                    for d in list.iter_mut().filter(|d| d["state"] == "pending") {
                        d["x25519"] = Value::String(B64.encode([9u8; 32]));
                    }
                }
            })
        } else {
            body
        };
        Ok(http::Response::from_parts(parts, body))
    }
}

fn liar(t: &Tenant) -> (Arc<Liar>, TenantClient) {
    let l = Arc::new(Liar {
        inner: HttpsTransport::new(Pin::parse(&t.pin).unwrap(), ClientOptions::default()).unwrap(),
        lie: Mutex::new(Lie::None),
        first: Mutex::new(None),
    });
    let tr: Arc<dyn Transport> = l.clone();
    (l, TenantClient::with_transport(&t.url, tr).unwrap())
}

/// A syncs a project; B (paired, in step) then meets `lie` on its next pull of A's `change`.
async fn refused_case(lie: Lie, change: impl Fn(&Device, &str)) {
    let t = Tenant::start().await;
    let a = Device::new("a");
    a.login(&t).await;
    let p = a.project("P");
    a.import(&p, &[("one.txt", b"one"), ("two.txt", b"two")]);
    a.settle(&t).await;
    let b = Device::new("b");
    b.login(&t).await;
    pair(&t, &a, &b).await;
    let (l, client) = liar(&t);
    b.engine_with(client.clone()).pass(None).await.unwrap();
    change(&a, &p);
    a.settle(&t).await;
    let before = b.vault.sync_catalog().unwrap();
    let cursor = b.vault.sync_projects().unwrap()[0].cursor;
    *l.lie.lock().unwrap() = lie;
    // The project stops (other projects would go on); the report names what was refused.
    let r = b.engine_with(client.clone()).pass(None).await.unwrap();
    assert_eq!(r.errors.len(), 1, "{lie:?}: one problem reported: {r:?}");
    assert!(r.errors[0].1.contains("refused"), "{lie:?}: {:?}", r.errors);
    assert_eq!(r.pulled, 0, "{lie:?}");
    assert_eq!(
        b.vault.sync_catalog().unwrap(),
        before,
        "{lie:?}: nothing local changed"
    );
    let sp = &b.vault.sync_projects().unwrap()[0];
    assert_eq!(sp.cursor, cursor, "{lie:?}: the cursor did not move");
    assert!(
        sp.stopped.as_deref().is_some_and(|s| s.contains("refused")),
        "{lie:?}: the project stopped: {:?}",
        sp.stopped
    );
    let refused = b
        .vault
        .audit_query(
            &labvault_core::audit::AuditFilter {
                action_prefix: Some("sync.refused".into()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(refused.events.len(), 1, "{lie:?}: the refusal is audited");
    // The honest tenant again: after `sync --retry`, b catches up.
    *l.lie.lock().unwrap() = Lie::None;
    b.vault.sync_set_stopped(&p, None).unwrap();
    b.engine_with(client).pass(None).await.unwrap();
    assert_eq!(
        b.vault.sync_catalog().unwrap(),
        a.vault.sync_catalog().unwrap(),
        "{lie:?}: in step after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_blob_is_refused() {
    refused_case(Lie::BlobByte, |a, p| {
        a.import(p, &[("three.txt", b"three")])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_payload_is_refused() {
    refused_case(Lie::Payload, |a, p| a.import(p, &[("three.txt", b"three")])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_moved_between_ops_are_refused() {
    refused_case(Lie::SwapPayloads, |a, p| {
        a.import(p, &[("three.txt", b"three"), ("four.txt", b"four")])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_op_is_refused() {
    refused_case(Lie::Replay, |a, p| a.import(p, &[("three.txt", b"three")])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_op_under_a_foreign_key_epoch_is_refused() {
    refused_case(Lie::Epoch, |a, p| a.import(p, &[("three.txt", b"three")])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_device_key_is_caught_by_the_pairing_code() {
    let t = Tenant::start().await;
    let a = Device::new("a");
    a.login(&t).await;
    a.project("P");
    a.settle(&t).await;
    let b = Device::new("b");
    b.login(&t).await;
    let code = match b.sync(&t).await {
        Err(SyncError::NotApproved(c)) => c,
        other => panic!("{other:?}"),
    };
    let (l, client) = liar(&t);
    *l.lie.lock().unwrap() = Lie::DeviceKey;
    let e = a.engine_with(client);
    let r = labvault_sync::keys::approve(&a.vault, e.session(), &code).await;
    let err = r.unwrap_err();
    assert_eq!(err.code(), "sync_refused", "{err}");
    assert!(err.to_string().contains("substituted"), "{err}");
    // Nothing was approved: b still waits, and a trusts no one new.
    assert!(matches!(b.sync(&t).await, Err(SyncError::NotApproved(_))));
    assert_eq!(a.vault.sync_trusted_devices().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused_before_anything_is_sent() {
    let t = Tenant::start().await;
    let a = Device::new("a");
    a.login(&t).await;
    a.project("P");
    let wrong = Pin::parse(&format!("sha256/{}", B64.encode([1u8; 32]))).unwrap();
    let client = TenantClient::new(&t.url, wrong, ClientOptions::default()).unwrap();
    let r = a.engine_with(client).pass(None).await;
    match r {
        Err(SyncError::Client(ClientError::PinMismatch { presented, .. })) => {
            assert_eq!(presented, t.pin)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !a.vault.sync_projects().unwrap()[0].remote,
        "nothing reached the tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_went_back_in_time_stops_the_project_and_deletes_nothing() {
    let mut t = Tenant::start().await;
    let a = Device::new("a");
    a.login(&t).await;
    let p = a.project("P");
    a.import(&p, &[("one.txt", b"one")]);
    a.settle(&t).await;
    let backup = t.backup();
    a.import(&p, &[("two.txt", b"two"), ("three.txt", b"three")]);
    a.settle(&t).await;
    let before = a.vault.sync_catalog().unwrap();
    // The server is restored from the older backup: its feed ends before what a applied.
    t.restore(&backup).await;
    // Sessions issued after the backup are unknown to it: the user signs in again.
    match a.sync(&t).await {
        Err(SyncError::NotSignedIn(_)) => {}
        other => panic!("a session the restored server never issued: {other:?}"),
    }
    a.login(&t).await;
    let r = a.sync(&t).await.unwrap();
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(r.errors[0].1.contains("older backup"), "{:?}", r.errors);
    let sp = &a.vault.sync_projects().unwrap()[0];
    assert!(sp.stopped.is_some());
    assert_eq!(
        a.vault.sync_catalog().unwrap(),
        before,
        "nothing deleted or changed"
    );
    let stopped = a.sync(&t).await.unwrap();
    assert_eq!(
        stopped.pushed + stopped.pulled,
        0,
        "a stopped project stays stopped"
    );
    // The user knows the server was restored: a resync merges this device's items back.
    a.vault.sync_resync_project(&p).unwrap();
    a.settle(&t).await;
    assert_eq!(a.vault.sync_catalog().unwrap(), before);
    let b = Device::new("b");
    b.login(&t).await;
    pair(&t, &a, &b).await;
    b.settle(&t).await;
    assert_eq!(
        b.vault.sync_catalog().unwrap(),
        before,
        "the restored tenant has everything again"
    );
    let _ = ErrorCode::FeedDiverged;
}
