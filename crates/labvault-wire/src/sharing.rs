//! Wire types of shared projects: users' identity keys, the identity boxes that carry an
//! identity to its user's devices, and each project's signed membership log with the member
//! boxes (epoch keys sealed to members' identities) and epoch links (docs/sharing.md).
//!
//! The server relays these and checks what it can without keys (who signs, in which order,
//! with which role); every client checks the signatures and the chain itself, so a server
//! that forges, drops or reorders entries is caught by the members.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

/// The public halves of a user's identity, registered once from the user's first device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IdentityRegistration {
    /// X25519 public key (base64): member boxes are sealed to it.
    pub x25519: String,
    /// Ed25519 public key (base64): checks the membership entries the user signs.
    pub ed25519: String,
}

/// A user's registered identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Identity {
    /// User id.
    pub user_id: String,
    /// Their email in the tenant.
    pub email: String,
    /// X25519 public key (base64).
    pub x25519: String,
    /// Ed25519 public key (base64).
    pub ed25519: String,
    /// Registered (RFC 3339).
    pub registered_at: String,
}

/// Looks up a member's identity by email or user id (exactly one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
pub struct IdentityQuery {
    /// Email of a member of the tenant.
    pub email: Option<String>,
    /// User id.
    pub user_id: Option<String>,
}

/// A user's identity sealed to one of their devices by another of their devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IdentityBox {
    /// Device it is sealed to.
    pub device_id: String,
    /// The sealed identity (base64), see docs/sharing.md.
    pub sealed: String,
    /// Device that sealed it.
    pub signer_device_id: String,
    /// Ed25519 signature of the signer over the box (base64).
    pub signature: String,
}

/// Identity boxes to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IdentityBoxes {
    /// The boxes.
    pub boxes: Vec<IdentityBox>,
}

/// The caller's identity as the calling device sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MyIdentity {
    /// The registered identity (none before the user's first device registers one).
    pub identity: Option<Identity>,
    /// The box sealed to the calling device, if one was stored.
    pub identity_box: Option<IdentityBox>,
    /// The caller's approved devices without an identity box.
    pub devices_without_box: Vec<String>,
}

/// A project's epoch key sealed to one member's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MemberBox {
    /// The member.
    pub user_id: String,
    /// Key epoch.
    pub epoch: u32,
    /// The sealed key (base64).
    pub sealed: String,
}

/// The key of epoch `epoch - 1` wrapped under the key of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EpochLink {
    /// The newer epoch.
    pub epoch: u32,
    /// The wrapped previous key (base64).
    pub link: String,
}

/// Reads a project's membership log from an entry on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
pub struct MembershipQuery {
    /// First entry to return (0: the whole log).
    pub from: Option<u64>,
}

/// A project's membership log (or its tail) with what the caller needs to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MembershipPage {
    /// Entries from `from` in order, each as signed (base64 of statement || signature).
    pub entries: Vec<String>,
    /// Entries in the whole log.
    pub length: u64,
    /// The project's current key epoch.
    pub epoch: u32,
    /// The member boxes sealed to the caller, every epoch.
    pub boxes: Vec<MemberBox>,
    /// Every epoch link of the project.
    pub links: Vec<EpochLink>,
    /// Members holding a box of the current epoch.
    pub box_holders: Vec<String>,
    /// The tenant's policy for shared projects (offline lease, automatic rotation).
    pub policy: SharingPolicy,
    /// A member's device was revoked since the last rotation: the next Owner or Admin client
    /// rotates (a hint; the log's own rules decide too).
    #[serde(default)]
    pub rotation_requested: bool,
}

/// Appends one signed entry to a project's membership log, with the member boxes it brings
/// (the creator's own box for entry 0, the new member's for an addition, one per member for
/// a rotation) and, for a rotation, the link to the previous epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AppendMembership {
    /// The signed entry (base64).
    pub entry: String,
    /// Member boxes.
    #[serde(default)]
    pub boxes: Vec<MemberBox>,
    /// For a rotation: the previous epoch's key wrapped under the new one (base64).
    #[serde(default)]
    pub link: Option<String>,
}

/// Where the log stands after an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MembershipAppended {
    /// Entries in the log.
    pub length: u64,
    /// The project's key epoch.
    pub epoch: u32,
}

/// A tenant's policy for shared projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SharingPolicy {
    /// How many days a device may work on shared projects without reaching the tenant;
    /// past that they lock on the device until it reconnects (1 to 365; default 14).
    pub offline_lease_days: u32,
    /// Every how many days each shared project's key rotates for new data, done by the next
    /// Owner or Admin client online (0: only when members leave; default 90).
    pub key_rotation_days: u32,
}

impl Default for SharingPolicy {
    fn default() -> Self {
        SharingPolicy {
            offline_lease_days: 14,
            key_rotation_days: 90,
        }
    }
}

/// A device reports that it erased its copy of a project it lost (its user removed from the
/// project, or the device revoked), for the tenant's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WipeNotice {
    /// The project whose copy was erased.
    pub project_id: String,
    /// Why (`removed` or `revoked`).
    pub reason: String,
    /// Items erased.
    pub items: u64,
    /// Local changes that never reached the tenant, lost with the copy.
    pub unsent: u64,
}
