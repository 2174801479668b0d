//! Shared projects on the server: identities (registered once, never silently replaced), the
//! membership log (next entry only, signed by the caller's registered identity, Owners and
//! Admins only, admin actions behind a step-up, the last Owner stays), access following the
//! log at once (403 after removal, the log alone for the removed), rotations (exactly the next
//! epoch, a box for every member, older epochs refused afterwards, requested by a revoked
//! device) and the tenant's policy.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use labvault_client::TenantClient;
use labvault_crypto::{
    link_epoch, seal_member_box, EntryBody, IdentityKeys, IdentityPublic, LogEntry,
    MemberBoxContext, MemberRole, ProjectKey, UnsignedEntry,
};
use labvault_wire::*;

use super::{id, op};
use crate::common::*;

struct Member {
    user: User,
    api: TenantClient,
    device: String,
    keys: IdentityKeys,
}

impl Member {
    fn public(&self) -> IdentityPublic {
        self.keys.public()
    }
}

async fn member(h: &Harness, user: User) -> Member {
    let device = h.device(&user).await;
    let api = h.api.for_device(&device).unwrap();
    let keys = IdentityKeys::generate();
    let p = keys.public();
    let reg = IdentityRegistration {
        x25519: B64.encode(p.x25519),
        ed25519: B64.encode(p.ed25519),
    };
    let (_, created) = api.register_identity(&user.access, &reg).await.unwrap();
    assert!(created);
    Member {
        user,
        api,
        device,
        keys,
    }
}

/// The log as the server holds it: (next seq, head hash).
async fn head(m: &Member, project: &str) -> (u64, [u8; 32]) {
    let page = m.api.membership(&m.user.access, project, 0).await.unwrap();
    let last = page
        .entries
        .last()
        .map(|e| {
            LogEntry::from_bytes(&B64.decode(e).unwrap())
                .unwrap()
                .hash()
        })
        .unwrap_or([0; 32]);
    (page.length, last)
}

async fn sign(m: &Member, project: &str, body: EntryBody) -> String {
    let (seq, prev_hash) = head(m, project).await;
    let e = m.keys.sign_entry(UnsignedEntry {
        project_id: project.into(),
        seq,
        prev_hash,
        at_ms: 0,
        signer: m.user.id.clone(),
        body,
    });
    B64.encode(e.to_bytes())
}

fn mbox(key: &ProjectKey, project: &str, epoch: u32, to: &Member) -> MemberBox {
    MemberBox {
        user_id: to.user.id.clone(),
        epoch,
        sealed: B64.encode(seal_member_box(
            &to.public(),
            key,
            &MemberBoxContext {
                project_id: project,
                epoch,
                user_id: &to.user.id,
            },
        )),
    }
}

async fn append(
    m: &Member,
    project: &str,
    entry: String,
    boxes: Vec<MemberBox>,
    link: Option<String>,
) -> Result<MembershipAppended, labvault_client::ClientError> {
    m.api
        .append_membership(
            &m.user.access,
            project,
            &AppendMembership { entry, boxes, link },
        )
        .await
}

#[tokio::test]
async fn membership_log_decides_access_and_rotations_retire_old_epochs() {
    let h = harness().await;
    h.tenant("gamma").await;
    let owner = h.login("gamma", "owner@gamma.test").await;
    let owner = h.enroll_and_relogin("gamma", &owner).await;
    let ed = h
        .add_member("gamma", &owner, "ed@gamma.test", Role::Editor)
        .await;
    let vw = h
        .add_member("gamma", &owner, "vw@gamma.test", Role::Viewer)
        .await;
    let o = member(&h, owner).await;
    let e = member(&h, ed).await;
    let v = member(&h, vw).await;

    // An identity is registered once; the same keys again are fine, other keys are not.
    let again = IdentityRegistration {
        x25519: B64.encode(o.public().x25519),
        ed25519: B64.encode(o.public().ed25519),
    };
    assert!(
        !o.api
            .register_identity(&o.user.access, &again)
            .await
            .unwrap()
            .1
    );
    let other = IdentityKeys::generate().public();
    let swap = IdentityRegistration {
        x25519: B64.encode(other.x25519),
        ed25519: B64.encode(other.ed25519),
    };
    assert_eq!(
        code(o.api.register_identity(&o.user.access, &swap).await),
        ErrorCode::Conflict
    );
    let found = o
        .api
        .find_identity(
            &o.user.access,
            &IdentityQuery {
                email: Some("ed@gamma.test".into()),
                user_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(found.user_id, e.user.id);
    assert_eq!(found.x25519, B64.encode(e.public().x25519));

    // A project not shared yet follows the tenant's roles (the editor may read its feed).
    let p = id();
    o.api
        .create_project_with_id(&o.user.access, "lv-label", &p)
        .await
        .unwrap();
    e.api
        .changes(&e.user.access, &p, &ChangesQuery::default())
        .await
        .unwrap();

    // Entry 0: the creator adds themselves as Owner, with their own box of epoch 1.
    let k1 = ProjectKey::generate();
    let wrong_first = sign(
        &o,
        &p,
        EntryBody::Add {
            user_id: e.user.id.clone(),
            role: MemberRole::Owner,
            identity: e.public(),
        },
    )
    .await;
    assert_eq!(
        code(append(&o, &p, wrong_first, vec![mbox(&k1, &p, 1, &e)], None).await),
        ErrorCode::InvalidInput
    );
    let genesis = sign(
        &o,
        &p,
        EntryBody::Add {
            user_id: o.user.id.clone(),
            role: MemberRole::Owner,
            identity: o.public(),
        },
    )
    .await;
    let r = append(&o, &p, genesis.clone(), vec![mbox(&k1, &p, 1, &o)], None)
        .await
        .unwrap();
    assert_eq!((r.length, r.epoch), (1, 1));
    // The same entry again is not the next one.
    assert_eq!(
        code(append(&o, &p, genesis, vec![mbox(&k1, &p, 1, &o)], None).await),
        ErrorCode::Conflict
    );

    // Shared now: the log decides. The editor (tenant role Editor) is not a member.
    assert_eq!(
        code(
            e.api
                .changes(&e.user.access, &p, &ChangesQuery::default())
                .await
        ),
        ErrorCode::Forbidden
    );
    // Roles of a shared project are not set beside the log.
    assert_eq!(
        code(
            o.api
                .set_project_role(&o.user.access, &p, &e.user.id, Role::Viewer)
                .await
        ),
        ErrorCode::Conflict
    );

    // Adding a member: the identity must be the one they registered, the box theirs.
    let add_e = |identity: IdentityPublic| EntryBody::Add {
        user_id: e.user.id.clone(),
        role: MemberRole::Editor,
        identity,
    };
    let forged = sign(&o, &p, add_e(other)).await;
    assert_eq!(
        code(append(&o, &p, forged, vec![mbox(&k1, &p, 1, &e)], None).await),
        ErrorCode::InvalidInput,
        "a swapped identity key"
    );
    let misboxed = sign(&o, &p, add_e(e.public())).await;
    assert_eq!(
        code(append(&o, &p, misboxed.clone(), vec![mbox(&k1, &p, 1, &v)], None).await),
        ErrorCode::InvalidInput,
        "a box for someone else"
    );
    // Signed by someone else's key than the caller's registered identity.
    let mut by_other = LogEntry::from_bytes(&B64.decode(&misboxed).unwrap()).unwrap();
    by_other = IdentityKeys::generate().sign_entry(by_other.entry);
    assert_eq!(
        code(
            append(
                &o,
                &p,
                B64.encode(by_other.to_bytes()),
                vec![mbox(&k1, &p, 1, &e)],
                None
            )
            .await
        ),
        ErrorCode::InvalidInput
    );
    let r = append(&o, &p, misboxed, vec![mbox(&k1, &p, 1, &e)], None)
        .await
        .unwrap();
    assert_eq!(r.length, 2);
    let page = e.api.membership(&e.user.access, &p, 0).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    assert_eq!(page.boxes.len(), 1, "the editor's own box");
    assert_eq!(page.policy, SharingPolicy::default());
    let mut holders = page.box_holders.clone();
    holders.sort();
    let mut want = vec![o.user.id.clone(), e.user.id.clone()];
    want.sort();
    assert_eq!(holders, want);

    // An Editor signs nothing; a non-member cannot read the log.
    let by_editor = sign(
        &e,
        &p,
        EntryBody::Add {
            user_id: v.user.id.clone(),
            role: MemberRole::Viewer,
            identity: v.public(),
        },
    )
    .await;
    assert_eq!(
        code(append(&e, &p, by_editor, vec![mbox(&k1, &p, 1, &v)], None).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(v.api.membership(&v.user.access, &p, 0).await),
        ErrorCode::Forbidden
    );

    // The member writes under epoch 1.
    let item = id();
    let c = e
        .api
        .commit(
            &e.user.access,
            &p,
            &CommitRequest {
                ops: vec![op(&item, 0, vec![])],
            },
        )
        .await
        .unwrap();
    assert!(matches!(c.results[0], OpResult::Applied { .. }));

    // Removing is an admin action: it needs a recent step-up.
    h.clock.advance(time::Duration::seconds(600));
    let remove = sign(
        &o,
        &p,
        EntryBody::Remove {
            user_id: e.user.id.clone(),
        },
    )
    .await;
    assert_eq!(
        code(append(&o, &p, remove.clone(), vec![], None).await),
        ErrorCode::MfaRequired
    );
    let fresh = o
        .api
        .step_up(&o.user.access, &h.code(o.user.totp.as_ref().unwrap()))
        .await
        .unwrap();
    let o = Member {
        user: User {
            access: fresh.access_token,
            ..o.user
        },
        ..o
    };
    append(&o, &p, remove, vec![], None).await.unwrap();
    // Cut off at once: feed, keys, blobs; the signed log alone stays readable (no boxes).
    assert_eq!(
        code(
            e.api
                .changes(&e.user.access, &p, &ChangesQuery::default())
                .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(e.api.keyring(&e.user.access, &p).await),
        ErrorCode::Forbidden
    );
    let page = e.api.membership(&e.user.access, &p, 0).await.unwrap();
    assert_eq!(
        (page.entries.len(), page.boxes.len(), page.links.len()),
        (3, 0, 0)
    );

    // The last Owner cannot leave.
    let leave = sign(
        &o,
        &p,
        EntryBody::Remove {
            user_id: o.user.id.clone(),
        },
    )
    .await;
    assert_eq!(
        code(append(&o, &p, leave, vec![], None).await),
        ErrorCode::Conflict
    );

    // Rotation: exactly the next epoch, a box for every member, a link.
    let k2 = ProjectKey::generate();
    let link = B64.encode(link_epoch(&k2, &k1, &p, 2).as_bytes());
    let skip = sign(&o, &p, EntryBody::Rotate { epoch: 3 }).await;
    assert_eq!(
        code(append(&o, &p, skip, vec![mbox(&k2, &p, 3, &o)], Some(link.clone())).await),
        ErrorCode::Conflict
    );
    let rotate = sign(&o, &p, EntryBody::Rotate { epoch: 2 }).await;
    assert_eq!(
        code(append(&o, &p, rotate.clone(), vec![mbox(&k2, &p, 2, &o)], None).await),
        ErrorCode::InvalidInput,
        "no link"
    );
    assert_eq!(
        code(
            append(
                &o,
                &p,
                rotate.clone(),
                vec![mbox(&k2, &p, 2, &o), mbox(&k2, &p, 2, &e)],
                Some(link.clone())
            )
            .await
        ),
        ErrorCode::InvalidInput,
        "a box for the removed member"
    );
    let r = append(&o, &p, rotate, vec![mbox(&k2, &p, 2, &o)], Some(link))
        .await
        .unwrap();
    assert_eq!((r.length, r.epoch), (4, 2));
    // Ops under epoch 1 are refused from now on; epoch 2 is accepted.
    let c = o
        .api
        .commit(
            &o.user.access,
            &p,
            &CommitRequest {
                ops: vec![op(&item, 1, vec![])],
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(c.results[0], OpResult::StaleEpoch { epoch: 2, .. }),
        "{:?}",
        c.results[0]
    );
    let mut under2 = op(&item, 1, vec![]);
    under2.epoch = 2;
    let c = o
        .api
        .commit(&o.user.access, &p, &CommitRequest { ops: vec![under2] })
        .await
        .unwrap();
    assert!(matches!(c.results[0], OpResult::Applied { .. }));

    // Revoking a member's device asks the next admin client to rotate.
    let page = o.api.membership(&o.user.access, &p, 0).await.unwrap();
    assert!(!page.rotation_requested);
    let extra = h.device(&o.user).await;
    o.api.revoke_device(&o.user.access, &extra).await.unwrap();
    let page = o.api.membership(&o.user.access, &p, 0).await.unwrap();
    assert!(page.rotation_requested, "a revoked device of a member");
    assert_eq!(page.links.len(), 1);

    // The tenant's policy: members read it, Admins set it (with step-up), bounds checked.
    assert_eq!(
        code(
            e.api
                .set_sharing_policy(
                    &e.user.access,
                    &SharingPolicy {
                        offline_lease_days: 1,
                        key_rotation_days: 0
                    }
                )
                .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            o.api
                .set_sharing_policy(
                    &o.user.access,
                    &SharingPolicy {
                        offline_lease_days: 0,
                        key_rotation_days: 0
                    }
                )
                .await
        ),
        ErrorCode::InvalidInput
    );
    let set = SharingPolicy {
        offline_lease_days: 7,
        key_rotation_days: 30,
    };
    o.api
        .set_sharing_policy(&o.user.access, &set)
        .await
        .unwrap();
    assert_eq!(v.api.sharing_policy(&v.user.access).await.unwrap(), set);
    let page = o.api.membership(&o.user.access, &p, 0).await.unwrap();
    assert_eq!(page.policy, set);

    // Every change is in the tenant's audit chain with its kind.
    let kinds: Vec<String> = h
        .audit("gamma")
        .await
        .into_iter()
        .filter(|a| a.action.as_str() == "membership.change" && a.result == AuditResult::Success)
        .map(|a| a.detail)
        .collect();
    assert_eq!(
        kinds,
        vec![
            "seq=0 kind=add",
            "seq=1 kind=add",
            "seq=2 kind=remove",
            "seq=3 kind=rotate"
        ]
    );
    let _ = (o.device, e.device, v.device);
}
