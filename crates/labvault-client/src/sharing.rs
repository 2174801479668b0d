//! The shared-project calls of the tenant API: identities, identity boxes and each project's
//! membership log (docs/sharing.md). What comes back is checked by the caller (the sync
//! engine verifies every entry and box); this layer only moves it.

use http::{Method, StatusCode};
use labvault_wire::*;

use crate::{ClientError, Payload, TenantClient};

impl TenantClient {
    /// Registers the caller's identity; `true` when it was new.
    pub async fn register_identity(
        &self,
        token: &str,
        req: &IdentityRegistration,
    ) -> Result<(Identity, bool), ClientError> {
        let seg = ["me", "identity"];
        let r = self
            .exchange::<(), _>(
                Method::PUT,
                &seg,
                Some(token),
                None,
                Payload::Json(req),
                &[],
            )
            .await?;
        let created = r.status() == StatusCode::CREATED;
        Ok((self.json(&seg, r)?, created))
    }

    /// The caller's identity and the box sealed to the calling device.
    pub async fn my_identity(&self, token: &str) -> Result<MyIdentity, ClientError> {
        self.get(&["me", "identity"], Some(token)).await
    }

    /// Stores the caller's identity sealed to their devices.
    pub async fn put_identity_boxes(
        &self,
        token: &str,
        boxes: &IdentityBoxes,
    ) -> Result<(), ClientError> {
        self.call_empty(
            Method::PUT,
            &["me", "identity", "boxes"],
            Some(token),
            Some(boxes),
        )
        .await
    }

    /// A member's identity by email or user id.
    pub async fn find_identity(
        &self,
        token: &str,
        q: &IdentityQuery,
    ) -> Result<Identity, ClientError> {
        let seg = ["identities"];
        let r = self
            .exchange::<_, ()>(Method::GET, &seg, Some(token), Some(q), Payload::None, &[])
            .await?;
        self.json(&seg, r)
    }

    /// A project's membership log from entry `from`, with the caller's boxes.
    pub async fn membership(
        &self,
        token: &str,
        project: &str,
        from: u64,
    ) -> Result<MembershipPage, ClientError> {
        let seg = ["projects", project, "membership"];
        let q = MembershipQuery { from: Some(from) };
        let r = self
            .exchange::<_, ()>(Method::GET, &seg, Some(token), Some(&q), Payload::None, &[])
            .await?;
        self.json(&seg, r)
    }

    /// Appends a signed entry to a project's membership log.
    pub async fn append_membership(
        &self,
        token: &str,
        project: &str,
        req: &AppendMembership,
    ) -> Result<MembershipAppended, ClientError> {
        self.call(
            Method::POST,
            &["projects", project, "membership"],
            Some(token),
            Some(req),
        )
        .await
    }

    /// The tenant's policy for shared projects.
    pub async fn sharing_policy(&self, token: &str) -> Result<SharingPolicy, ClientError> {
        self.get(&["tenant", "sharing"], Some(token)).await
    }

    /// Sets the tenant's policy for shared projects (Admin, step-up).
    pub async fn set_sharing_policy(
        &self,
        token: &str,
        policy: &SharingPolicy,
    ) -> Result<SharingPolicy, ClientError> {
        self.call(
            Method::PUT,
            &["tenant", "sharing"],
            Some(token),
            Some(policy),
        )
        .await
    }

    /// Reports that this device erased its copy of a project it lost.
    pub async fn report_wipe(&self, token: &str, notice: &WipeNotice) -> Result<(), ClientError> {
        self.call_empty(Method::POST, &["me", "wipes"], Some(token), Some(notice))
            .await
    }
}
