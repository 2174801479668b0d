//! The membership log of a shared project, checked entry by entry (formats:
//! `docs/sharing.md`). Every client folds the whole log from its first entry and refuses, with
//! an error naming the entry and the rule, anything a tenant could forge or reorder: entries
//! out of order or off the hash chain, signed by someone who was not an Owner or Admin at that
//! point (or not with the identity the log recorded), an Admin acting on Owners, the last
//! Owner leaving, a rotation that skips or repeats an epoch. Pure: no database, no network,
//! so the simulation and the hostile-server tests drive it directly.

use std::collections::{BTreeMap, BTreeSet};

use labvault_crypto::{EntryBody, IdentityPublic, LogEntry, MemberRole};

use crate::error::{Error, Result};

/// A member as the log says: their role and the identity their boxes are sealed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Role in the project.
    pub role: MemberRole,
    /// Public identity keys.
    pub identity: IdentityPublic,
}

/// The state a verified log leads to.
#[derive(Clone, Debug)]
pub struct Membership {
    project_id: String,
    members: BTreeMap<String, Member>,
    epoch: u32,
    next_seq: u64,
    head: [u8; 32],
    rotation_owed: bool,
    revoked_devices: BTreeSet<(String, [u8; 32])>,
}

fn refused(seq: u64, why: impl std::fmt::Display) -> Error {
    Error::SyncRefused(format!("membership log entry {seq}: {why}"))
}

impl Membership {
    /// Verifies a whole log. `creator` is the identity this client trusts for the member who
    /// created the project (its own, or one whose safety number was compared): entry 0 must
    /// be that member adding themselves as Owner, signed by themselves.
    pub fn verify(entries: &[LogEntry], creator: &IdentityPublic) -> Result<Membership> {
        let first = entries
            .first()
            .ok_or_else(|| Error::SyncRefused("the membership log is empty".into()))?;
        let mut m = Membership::genesis(first, creator)?;
        for e in &entries[1..] {
            m.apply(e)?;
        }
        Ok(m)
    }

    fn genesis(e: &LogEntry, creator: &IdentityPublic) -> Result<Membership> {
        let u = &e.entry;
        if u.seq != 0 || u.prev_hash != [0; 32] {
            return Err(refused(u.seq, "the log does not start at entry 0"));
        }
        let EntryBody::Add {
            user_id,
            role: MemberRole::Owner,
            identity,
        } = &u.body
        else {
            return Err(refused(
                0,
                "the first entry must add the project's creator as Owner",
            ));
        };
        if *user_id != u.signer || identity != creator {
            return Err(refused(
                0,
                "the project's creator is not the identity this device trusts for them",
            ));
        }
        e.verify(identity)
            .map_err(|_| refused(0, "signature does not verify"))?;
        let mut members = BTreeMap::new();
        members.insert(
            user_id.clone(),
            Member {
                role: MemberRole::Owner,
                identity: *identity,
            },
        );
        Ok(Membership {
            project_id: u.project_id.clone(),
            members,
            epoch: 1,
            next_seq: 1,
            head: e.hash(),
            rotation_owed: false,
            revoked_devices: BTreeSet::new(),
        })
    }

    /// Applies the next entry, or refuses it (the state is unchanged on refusal).
    pub fn apply(&mut self, e: &LogEntry) -> Result<()> {
        let u = &e.entry;
        let seq = u.seq;
        if u.project_id != self.project_id {
            return Err(refused(seq, "belongs to another project's log"));
        }
        if seq != self.next_seq {
            return Err(refused(
                seq,
                format!("out of order: entry {} was expected", self.next_seq),
            ));
        }
        if u.prev_hash != self.head {
            return Err(refused(
                seq,
                "does not follow the entry before it (an entry was dropped, changed or reordered)",
            ));
        }
        let signer = self
            .members
            .get(&u.signer)
            .ok_or_else(|| refused(seq, format!("signed by {}, who is not a member", u.signer)))?;
        if !matches!(signer.role, MemberRole::Owner | MemberRole::Admin) {
            return Err(refused(
                seq,
                format!("signed by {}, who is not an Owner or Admin", u.signer),
            ));
        }
        e.verify(&signer.identity).map_err(|_| {
            refused(
                seq,
                format!("signature does not verify under {}'s identity", u.signer),
            )
        })?;
        let by_owner = signer.role == MemberRole::Owner;
        let owners = self
            .members
            .values()
            .filter(|m| m.role == MemberRole::Owner)
            .count();
        // Every check of an arm comes before its change: a refused entry changes nothing.
        match &u.body {
            EntryBody::Add {
                user_id,
                role,
                identity,
            } => {
                if self.members.contains_key(user_id) {
                    return Err(refused(seq, format!("{user_id} is already a member")));
                }
                if *role == MemberRole::Owner && !by_owner {
                    return Err(refused(seq, "only an Owner can add an Owner"));
                }
                self.members.insert(
                    user_id.clone(),
                    Member {
                        role: *role,
                        identity: *identity,
                    },
                );
            }
            EntryBody::Remove { user_id } => {
                let m = self
                    .members
                    .get(user_id)
                    .ok_or_else(|| refused(seq, format!("{user_id} is not a member")))?;
                if m.role == MemberRole::Owner {
                    if !by_owner {
                        return Err(refused(seq, "only an Owner can remove an Owner"));
                    }
                    if owners == 1 {
                        return Err(refused(seq, "the last Owner cannot leave"));
                    }
                }
                self.members.remove(user_id);
                self.rotation_owed = true;
            }
            EntryBody::SetRole { user_id, role } => {
                let m = self
                    .members
                    .get(user_id)
                    .ok_or_else(|| refused(seq, format!("{user_id} is not a member")))?;
                if (m.role == MemberRole::Owner || *role == MemberRole::Owner) && !by_owner {
                    return Err(refused(seq, "only an Owner can make or unmake an Owner"));
                }
                if m.role == MemberRole::Owner && *role != MemberRole::Owner && owners == 1 {
                    return Err(refused(seq, "the last Owner cannot step down"));
                }
                self.members.get_mut(user_id).expect("checked").role = *role;
            }
            EntryBody::Rotate { epoch } => {
                if *epoch != self.epoch + 1 {
                    return Err(refused(
                        seq,
                        format!(
                            "rotates to epoch {epoch}, the next one is {}",
                            self.epoch + 1
                        ),
                    ));
                }
                self.epoch = *epoch;
                self.rotation_owed = false;
            }
            EntryBody::DeviceRevoked {
                user_id,
                device_fingerprint,
            } => {
                if !self.members.contains_key(user_id) {
                    return Err(refused(seq, format!("{user_id} is not a member")));
                }
                self.revoked_devices
                    .insert((user_id.clone(), *device_fingerprint));
                self.rotation_owed = true;
            }
        }
        self.next_seq = seq + 1;
        self.head = e.hash();
        Ok(())
    }

    /// The epoch new data is written under.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Members by user id.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// A member removed or a device revoked since the last rotation: the next Owner or Admin
    /// client online rotates.
    pub fn rotation_owed(&self) -> bool {
        self.rotation_owed
    }

    /// Whether a device of `user_id` was revoked.
    pub fn device_revoked(&self, user_id: &str, fingerprint: &[u8; 32]) -> bool {
        self.revoked_devices
            .contains(&(user_id.to_string(), *fingerprint))
    }

    /// Hash of the last entry (what the next entry names).
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// An op sealed under `epoch`: refused when the log has rotated past it (a removed member
    /// writing with an old key, or a replay), and when the log does not reach it (the tenant
    /// withholds the entries that led there).
    pub fn check_op_epoch(&self, epoch: u32) -> Result<()> {
        if epoch < self.epoch {
            return Err(Error::SyncRefused(format!(
                "an op under key epoch {epoch}, but the project rotated to epoch {}",
                self.epoch
            )));
        }
        if epoch > self.epoch {
            return Err(Error::SyncRefused(format!(
                "an op under key epoch {epoch}, but the membership log ends at epoch {}: entries are being withheld",
                self.epoch
            )));
        }
        Ok(())
    }

    /// The current epoch's member boxes must exist for exactly the current members: a box for
    /// anyone else is a member the log does not have (or one it removed).
    pub fn check_box_holders<'a>(&self, holders: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let holders: BTreeSet<&str> = holders.into_iter().collect();
        if let Some(extra) = holders.iter().find(|h| !self.members.contains_key(**h)) {
            return Err(Error::SyncRefused(format!(
                "epoch {} is sealed to {extra}, who is not a member by the membership log",
                self.epoch
            )));
        }
        if let Some(missing) = self.members.keys().find(|m| !holders.contains(m.as_str())) {
            return Err(Error::SyncRefused(format!(
                "epoch {} is not sealed to member {missing}",
                self.epoch
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labvault_crypto::{IdentityKeys, UnsignedEntry};

    struct Log {
        entries: Vec<LogEntry>,
    }

    impl Log {
        fn new(owner: &IdentityKeys) -> Log {
            let mut l = Log { entries: vec![] };
            l.push(
                owner,
                "ada",
                EntryBody::Add {
                    user_id: "ada".into(),
                    role: MemberRole::Owner,
                    identity: owner.public(),
                },
            );
            l
        }

        fn next(&self, signer: &str, body: EntryBody) -> UnsignedEntry {
            UnsignedEntry {
                project_id: "p".into(),
                seq: self.entries.len() as u64,
                prev_hash: self.entries.last().map_or([0; 32], |e| e.hash()),
                at_ms: 0,
                signer: signer.into(),
                body,
            }
        }

        fn push(&mut self, keys: &IdentityKeys, signer: &str, body: EntryBody) -> &LogEntry {
            let e = keys.sign_entry(self.next(signer, body));
            self.entries.push(e);
            self.entries.last().unwrap()
        }
    }

    fn add(user: &str, role: MemberRole, id: &IdentityKeys) -> EntryBody {
        EntryBody::Add {
            user_id: user.into(),
            role,
            identity: id.public(),
        }
    }

    fn refusal(r: Result<Membership>) -> String {
        match r {
            Err(Error::SyncRefused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_log_of_adds_roles_removal_and_rotation_verifies_to_the_members_and_epoch() {
        let (ada, bob, cy) = (
            IdentityKeys::generate(),
            IdentityKeys::generate(),
            IdentityKeys::generate(),
        );
        let mut l = Log::new(&ada);
        l.push(&ada, "ada", add("bob", MemberRole::Admin, &bob));
        l.push(&bob, "bob", add("cy", MemberRole::Editor, &cy));
        l.push(
            &bob,
            "bob",
            EntryBody::Remove {
                user_id: "cy".into(),
            },
        );
        let m = Membership::verify(&l.entries, &ada.public()).unwrap();
        assert!(m.rotation_owed());
        assert_eq!(m.epoch(), 1);
        l.push(&bob, "bob", EntryBody::Rotate { epoch: 2 });
        let m = Membership::verify(&l.entries, &ada.public()).unwrap();
        assert!(!m.rotation_owed());
        assert_eq!(m.epoch(), 2);
        assert_eq!(m.members().keys().collect::<Vec<_>>(), ["ada", "bob"]);
        m.check_box_holders(["ada", "bob"]).unwrap();
        m.check_op_epoch(2).unwrap();
    }

    #[test]
    fn a_member_added_by_the_tenant_or_by_a_non_admin_is_refused() {
        let (ada, bob, eve) = (
            IdentityKeys::generate(),
            IdentityKeys::generate(),
            IdentityKeys::generate(),
        );
        let mut l = Log::new(&ada);
        l.push(&ada, "ada", add("bob", MemberRole::Editor, &bob));
        // The tenant signs with a key of its own, in a member's name.
        let mut forged = Log {
            entries: l.entries.clone(),
        };
        forged.push(&eve, "ada", add("eve", MemberRole::Editor, &eve));
        assert!(refusal(Membership::verify(&forged.entries, &ada.public())).contains("signature"));
        // An Editor cannot add anyone.
        let mut by_editor = Log {
            entries: l.entries.clone(),
        };
        by_editor.push(&bob, "bob", add("eve", MemberRole::Viewer, &eve));
        assert!(
            refusal(Membership::verify(&by_editor.entries, &ada.public()))
                .contains("not an Owner or Admin")
        );
        // A non-member cannot sign at all.
        let mut stranger = Log {
            entries: l.entries.clone(),
        };
        stranger.push(&eve, "eve", add("eve", MemberRole::Owner, &eve));
        assert!(
            refusal(Membership::verify(&stranger.entries, &ada.public())).contains("not a member")
        );
    }

    #[test]
    fn a_swapped_creator_a_changed_entry_a_dropped_or_reordered_entry_are_refused() {
        let (ada, bob, cy) = (
            IdentityKeys::generate(),
            IdentityKeys::generate(),
            IdentityKeys::generate(),
        );
        let mut l = Log::new(&ada);
        l.push(&ada, "ada", add("bob", MemberRole::Editor, &bob));
        l.push(&ada, "ada", add("cy", MemberRole::Editor, &cy));
        l.push(
            &ada,
            "ada",
            EntryBody::Remove {
                user_id: "bob".into(),
            },
        );
        l.push(&ada, "ada", EntryBody::Rotate { epoch: 2 });
        Membership::verify(&l.entries, &ada.public()).unwrap();
        // The tenant presents another identity as the creator.
        assert!(refusal(Membership::verify(&l.entries, &bob.public())).contains("creator"));
        // A changed role in an entry: its signature no longer verifies.
        let mut changed = l.entries.clone();
        changed[1].entry.body = add("bob", MemberRole::Owner, &bob);
        assert!(refusal(Membership::verify(&changed, &ada.public())).contains("signature"));
        // The removal dropped: the rotation no longer follows the entry before it.
        let mut dropped = l.entries.clone();
        dropped.remove(3);
        assert!(refusal(Membership::verify(&dropped, &ada.public())).contains("out of order"));
        // Reordered.
        let mut reordered = l.entries.clone();
        reordered.swap(1, 2);
        assert!(refusal(Membership::verify(&reordered, &ada.public())).contains("out of order"));
        // Withheld at the tail: the ops name an epoch the log does not reach.
        let withheld = Membership::verify(&l.entries[..4], &ada.public()).unwrap();
        assert!(withheld.rotation_owed());
        assert!(format!("{:?}", withheld.check_op_epoch(2)).contains("withheld"));
    }

    #[test]
    fn replayed_epochs_old_keys_and_boxes_for_non_members_are_refused() {
        let (ada, bob) = (IdentityKeys::generate(), IdentityKeys::generate());
        let mut l = Log::new(&ada);
        l.push(&ada, "ada", add("bob", MemberRole::Editor, &bob));
        l.push(
            &ada,
            "ada",
            EntryBody::Remove {
                user_id: "bob".into(),
            },
        );
        l.push(&ada, "ada", EntryBody::Rotate { epoch: 2 });
        let m = Membership::verify(&l.entries, &ada.public()).unwrap();
        // An op under the old epoch (the removed member still holds its key).
        assert!(format!("{:?}", m.check_op_epoch(1)).contains("rotated to epoch 2"));
        // The tenant seals the new epoch to the removed member, or leaves a member out.
        assert!(format!("{:?}", m.check_box_holders(["ada", "bob"]))
            .contains("bob, who is not a member"));
        assert!(format!("{:?}", m.check_box_holders(Vec::<&str>::new()))
            .contains("not sealed to member ada"));
        // A rotation that repeats or skips an epoch.
        for epoch in [2, 4] {
            let mut again = Log {
                entries: l.entries.clone(),
            };
            again.push(&ada, "ada", EntryBody::Rotate { epoch });
            assert!(refusal(Membership::verify(&again.entries, &ada.public()))
                .contains("the next one is 3"));
        }
    }

    #[test]
    fn admins_cannot_touch_owners_and_the_last_owner_stays() {
        let (ada, bob, cy) = (
            IdentityKeys::generate(),
            IdentityKeys::generate(),
            IdentityKeys::generate(),
        );
        let mut l = Log::new(&ada);
        l.push(&ada, "ada", add("bob", MemberRole::Admin, &bob));
        let base = l.entries.clone();
        for (signer, keys, body, why) in [
            (
                "bob",
                &bob,
                EntryBody::Remove {
                    user_id: "ada".into(),
                },
                "only an Owner can remove an Owner",
            ),
            (
                "bob",
                &bob,
                add("cy", MemberRole::Owner, &cy),
                "only an Owner can add an Owner",
            ),
            (
                "bob",
                &bob,
                EntryBody::SetRole {
                    user_id: "bob".into(),
                    role: MemberRole::Owner,
                },
                "only an Owner can make",
            ),
            (
                "ada",
                &ada,
                EntryBody::Remove {
                    user_id: "ada".into(),
                },
                "the last Owner cannot leave",
            ),
            (
                "ada",
                &ada,
                EntryBody::SetRole {
                    user_id: "ada".into(),
                    role: MemberRole::Admin,
                },
                "the last Owner cannot step down",
            ),
        ] {
            let mut t = Log {
                entries: base.clone(),
            };
            t.push(keys, signer, body);
            let msg = refusal(Membership::verify(&t.entries, &ada.public()));
            assert!(msg.contains(why), "{msg}");
        }
    }

    /// Two branches of one log (a tenant showing each device another history), spliced with
    /// every number and signature intact: only the hash chain tells.
    #[test]
    fn entries_spliced_from_another_branch_are_refused() {
        let (ada, bob, eve) = (
            IdentityKeys::generate(),
            IdentityKeys::generate(),
            IdentityKeys::generate(),
        );
        let mut x = Log::new(&ada);
        x.push(&ada, "ada", add("bob", MemberRole::Editor, &bob));
        let mut y = Log {
            entries: x.entries.clone(),
        };
        x.push(
            &ada,
            "ada",
            EntryBody::Remove {
                user_id: "bob".into(),
            },
        );
        y.push(&ada, "ada", add("eve", MemberRole::Viewer, &eve));
        y.push(&ada, "ada", EntryBody::Rotate { epoch: 2 });
        let spliced = vec![
            x.entries[0].clone(),
            x.entries[1].clone(),
            x.entries[2].clone(),
            y.entries[3].clone(),
        ];
        let msg = refusal(Membership::verify(&spliced, &ada.public()));
        assert!(msg.contains("does not follow the entry before it"), "{msg}");
    }

    #[test]
    fn a_revoked_device_owes_a_rotation() {
        let (ada, bob) = (IdentityKeys::generate(), IdentityKeys::generate());
        let mut l = Log::new(&ada);
        l.push(&ada, "ada", add("bob", MemberRole::Editor, &bob));
        l.push(
            &ada,
            "ada",
            EntryBody::DeviceRevoked {
                user_id: "bob".into(),
                device_fingerprint: [7; 32],
            },
        );
        let m = Membership::verify(&l.entries, &ada.public()).unwrap();
        assert!(m.rotation_owed());
        assert!(m.device_revoked("bob", &[7; 32]));
        assert!(!m.device_revoked("bob", &[8; 32]));
    }
}
