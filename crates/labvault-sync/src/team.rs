//! The team and its access, as an Owner or Admin reviews it, and the changes a review makes.
//!
//! The tenant knows members, tenant roles, per-project roles and activity; it never knows
//! project names (it holds opaque labels), so names come from this vault where it has the
//! project. For a shared project the signed membership log this device verified is the truth:
//! its members and roles replace the tenant's rows, and changes to them are signed log entries
//! ([`crate::sharing`]), never the tenant's plain role calls (which it refuses there).
//!
//! Admin actions may answer `mfa_required`: the caller asks for a TOTP code, calls
//! [`Session::step_up`] and repeats the action; nothing else changes meanwhile.

use std::collections::BTreeMap;

use labvault_core::Vault;
use labvault_wire::{
    AccessReview, AccessReviewEntry, AccessReviewSignOff, AuditQuery, Me, Member, ReviewQuery,
    Role, RoleSource,
};

use crate::session::Session;
use crate::{account, sharing, Result, SyncError};

/// A project as the team screens show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamProject {
    /// Project id.
    pub id: String,
    /// The name in this vault, if this vault has the project.
    pub name: Option<String>,
    /// Shared with a signed membership log (members change through signed entries).
    pub shared: bool,
    /// Current key epoch of a shared project as verified here.
    pub epoch: Option<u32>,
}

/// Where a member's access to a project comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessSource {
    /// Their tenant role.
    Tenant,
    /// A per-project role on the tenant.
    Project,
    /// The project's signed membership log (verified on this device).
    MembershipLog,
}

/// One member's access to one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Effective role.
    pub role: Role,
    /// Where it comes from.
    pub source: AccessSource,
    /// For a signed membership: the safety number of the identity the log lists for them,
    /// to compare out of band (`labvault fingerprint` on their device shows theirs).
    pub safety_number: Option<String>,
}

/// The team, for the Team screen.
#[derive(Debug, Clone)]
pub struct TeamView {
    /// The account signed in.
    pub me: Me,
    /// Whether the account may review and change access (Owner or Admin).
    pub manages: bool,
    /// The full review (Owners and Admins), with shared projects' rows from their logs.
    pub review: Option<AccessReview>,
    /// Access as the matrix shows it (all members for managers; the caller's own otherwise).
    pub access: Vec<Access>,
    /// Projects (columns of the matrix).
    pub projects: Vec<TeamProject>,
}

fn role_of(s: &str) -> Option<Role> {
    Role::parse(s)
}

/// Reads the team: the access review for Owners and Admins, the caller's own access otherwise.
pub async fn view(vault: &Vault, session: &Session, stale_days: Option<u32>) -> Result<TeamView> {
    let me = account::me(session).await?;
    let manages = me.role >= Role::Admin;
    let names: BTreeMap<String, String> = vault
        .list_projects()?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let tenant_projects = session
        .call(|t| {
            let c = session.client().clone();
            async move { c.projects(&t).await }
        })
        .await?;
    let mut projects = Vec::with_capacity(tenant_projects.len());
    let mut logs = BTreeMap::new();
    for p in &tenant_projects {
        let log = vault.sync_membership(&p.id)?;
        projects.push(TeamProject {
            id: p.id.clone(),
            name: names.get(&p.id).cloned(),
            shared: log.is_some(),
            epoch: log.as_ref().map(|l| l.epoch),
        });
        if let Some(l) = log {
            logs.insert(p.id.clone(), l);
        }
    }
    projects.sort_by(|a, b| {
        (a.name.is_none(), a.name.as_deref().unwrap_or(""), &a.id).cmp(&(
            b.name.is_none(),
            b.name.as_deref().unwrap_or(""),
            &b.id,
        ))
    });
    let (review, access) = if manages {
        let q = ReviewQuery { stale_days };
        let mut r = session
            .call(|t| {
                let (c, q) = (session.client().clone(), q.clone());
                async move { c.access_review(&t, &q).await }
            })
            .await?;
        let access = merge_logs(&mut r, &logs);
        (Some(r), access)
    } else {
        let access = tenant_projects
            .iter()
            .map(|p| match logs.get(&p.id) {
                Some(l) => Access {
                    user_id: me.id.clone(),
                    project_id: p.id.clone(),
                    role: l.my_role.and_then(role_of).unwrap_or(p.effective_role),
                    source: AccessSource::MembershipLog,
                    safety_number: l
                        .members
                        .iter()
                        .find(|m| m.user_id == me.id)
                        .map(|m| m.safety_number.clone()),
                },
                None => Access {
                    user_id: me.id.clone(),
                    project_id: p.id.clone(),
                    role: p.effective_role,
                    source: AccessSource::Tenant,
                    safety_number: None,
                },
            })
            .collect();
        (None, access)
    };
    Ok(TeamView {
        me,
        manages,
        review,
        access,
        projects,
    })
}

/// Access rows from the review, with each shared project's rows replaced by its verified log
/// (a member who is not in the log has no access there, whatever their tenant role).
fn merge_logs(
    r: &mut AccessReview,
    logs: &BTreeMap<String, labvault_core::sync::MembershipView>,
) -> Vec<Access> {
    let mut out = Vec::with_capacity(r.entries.len());
    r.entries.retain(|e| !logs.contains_key(&e.project_id));
    for e in &r.entries {
        out.push(Access {
            user_id: e.user_id.clone(),
            project_id: e.project_id.clone(),
            role: e.effective_role,
            source: match e.source {
                RoleSource::Tenant => AccessSource::Tenant,
                RoleSource::Project => AccessSource::Project,
            },
            safety_number: None,
        });
    }
    for (project, log) in logs {
        for m in &log.members {
            let Some(role) = role_of(m.role) else {
                continue;
            };
            out.push(Access {
                user_id: m.user_id.clone(),
                project_id: project.clone(),
                role,
                source: AccessSource::MembershipLog,
                safety_number: Some(m.safety_number.clone()),
            });
            if let Some(member) = r.members.iter().find(|x| x.user_id == m.user_id) {
                r.entries.push(AccessReviewEntry {
                    user_id: m.user_id.clone(),
                    email: member.email.clone(),
                    project_id: project.clone(),
                    effective_role: role,
                    source: RoleSource::Project,
                    last_active_at: member.last_active_at.clone(),
                    mfa_enrolled: member.mfa_enrolled,
                    stale: member.stale,
                    admin_without_mfa: member.admin_without_mfa,
                });
            }
        }
    }
    out
}

fn is_shared(vault: &Vault, project: &str) -> Result<bool> {
    Ok(vault.sync_membership(project)?.is_some())
}

/// Sets a member's role on one project (Owner/Admin; may need a step-up). For a project with
/// a membership log this is a signed entry: a role change for a member, an addition (sealing
/// the current key to them) for anyone else; otherwise the tenant's per-project role.
pub async fn set_project_role(
    vault: &Vault,
    session: &Session,
    project: &str,
    user_id: &str,
    role: Role,
) -> Result<()> {
    if let Some(log) = vault.sync_membership(project)? {
        if log.members.iter().any(|m| m.user_id == user_id) {
            return sharing::set_role(vault, session, project, user_id, role.as_str()).await;
        }
        sharing::share(vault, session, project, user_id, role.as_str()).await?;
        return Ok(());
    }
    session
        .call(|t| {
            let c = session.client().clone();
            async move { c.set_project_role(&t, project, user_id, role).await }
        })
        .await
}

/// Ends a member's own access to one project: removal from a shared project's log (the key
/// rotates right after), or dropping the per-project role on the tenant (they keep what their
/// tenant role gives). Returns the new key epoch when a shared project's key rotated.
pub async fn remove_project_access(
    vault: &Vault,
    session: &Session,
    project: &str,
    user_id: &str,
) -> Result<Option<u32>> {
    if is_shared(vault, project)? {
        return sharing::unshare(vault, session, project, user_id).await;
    }
    session
        .call(|t| {
            let c = session.client().clone();
            async move { c.remove_project_role(&t, project, user_id).await }
        })
        .await?;
    Ok(None)
}

/// Changes a member's tenant role (Owner/Admin; may need a step-up).
pub async fn set_tenant_role(session: &Session, user_id: &str, role: Role) -> Result<Member> {
    session
        .call(|t| {
            let c = session.client().clone();
            async move { c.set_member_role(&t, user_id, role).await }
        })
        .await
}

/// Removes a member from the tenant: every session and device of theirs ends at once.
pub async fn remove_member(session: &Session, user_id: &str) -> Result<()> {
    session
        .call(|t| {
            let c = session.client().clone();
            async move { c.remove_member(&t, user_id).await }
        })
        .await
}

/// Resets a member's MFA (they enrol again at next sign-in).
pub async fn reset_member_mfa(session: &Session, user_id: &str) -> Result<()> {
    session
        .call(|t| {
            let c = session.client().clone();
            async move { c.reset_member_mfa(&t, user_id).await }
        })
        .await?;
    Ok(())
}

/// The review as CSV, as the tenant writes it (one row per member × project).
pub async fn review_csv(session: &Session, stale_days: Option<u32>) -> Result<String> {
    let q = ReviewQuery { stale_days };
    session
        .call(|t| {
            let (c, q) = (session.client().clone(), q.clone());
            async move { c.access_review_csv(&t, &q).await }
        })
        .await
}

/// The tenant's access review (Owner or Admin).
async fn review(session: &Session, stale_days: Option<u32>) -> Result<AccessReview> {
    let q = ReviewQuery { stale_days };
    session
        .call(|t| {
            let (c, q) = (session.client().clone(), q.clone());
            async move { c.access_review(&t, &q).await }
        })
        .await
}

/// A file format for the access review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewFormat {
    /// As the tenant writes it: one row per member × project.
    Csv,
    /// The review as the tenant serves it (members, entries, pending invitations).
    Json,
    /// A workbook: "Access" (member × project) and "Members" sheets, typed cells.
    Xlsx,
}

impl ReviewFormat {
    /// The format a file name asks for (`.csv`, `.json`, `.xlsx`; CSV otherwise).
    pub fn from_path(path: &std::path::Path) -> ReviewFormat {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("json") => ReviewFormat::Json,
            Some("xlsx") => ReviewFormat::Xlsx,
            _ => ReviewFormat::Csv,
        }
    }
}

/// The review as `format` bytes.
pub async fn review_export(
    session: &Session,
    stale_days: Option<u32>,
    format: ReviewFormat,
) -> Result<Vec<u8>> {
    if format == ReviewFormat::Csv {
        return Ok(review_csv(session, stale_days).await?.into_bytes());
    }
    let review = review(session, stale_days).await?;
    match format {
        ReviewFormat::Json => Ok(serde_json::to_vec_pretty(&review).unwrap_or_default()),
        _ => review_workbook(&review),
    }
}

/// The review as a workbook (dates as date-times, flags as booleans).
pub fn review_workbook(r: &labvault_wire::AccessReview) -> Result<Vec<u8>> {
    use labvault_sheets::{Cell, Column, Kind, Sheet};
    let time = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(Cell::DateTime)
            .unwrap_or(Cell::Empty)
    };
    let cols = |c: &[(&str, Kind)]| c.iter().map(|(n, k)| Column::new(*n, *k)).collect();
    let access = Sheet {
        name: "Access".into(),
        columns: cols(&[
            ("email", Kind::Text),
            ("project_id", Kind::Code),
            ("role", Kind::Text),
            ("source", Kind::Text),
            ("last_active_at", Kind::DateTime),
            ("mfa_enrolled", Kind::Bool),
            ("stale", Kind::Bool),
            ("admin_without_mfa", Kind::Bool),
            ("user_id", Kind::Code),
        ]),
        rows: r
            .entries
            .iter()
            .map(|e| {
                vec![
                    Cell::Text(e.email.clone()),
                    Cell::Text(e.project_id.clone()),
                    Cell::Text(e.effective_role.as_str().into()),
                    Cell::Text(
                        serde_json::to_value(e.source)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                    ),
                    time(&e.last_active_at),
                    Cell::Bool(e.mfa_enrolled),
                    Cell::Bool(e.stale),
                    Cell::Bool(e.admin_without_mfa),
                    Cell::Text(e.user_id.clone()),
                ]
            })
            .collect(),
    };
    let members = Sheet {
        name: "Members".into(),
        columns: cols(&[
            ("email", Kind::Text),
            ("tenant_role", Kind::Text),
            ("last_active_at", Kind::DateTime),
            ("mfa_enrolled", Kind::Bool),
            ("stale", Kind::Bool),
            ("admin_without_mfa", Kind::Bool),
            ("user_id", Kind::Code),
        ]),
        rows: r
            .members
            .iter()
            .map(|m| {
                vec![
                    Cell::Text(m.email.clone()),
                    Cell::Text(m.tenant_role.as_str().into()),
                    time(&m.last_active_at),
                    Cell::Bool(m.mfa_enrolled),
                    Cell::Bool(m.stale),
                    Cell::Bool(m.admin_without_mfa),
                    Cell::Text(m.user_id.clone()),
                ]
            })
            .collect(),
    };
    labvault_sheets::workbook(&[access, members]).map_err(|e| {
        SyncError::Vault(labvault_core::Error::Internal(format!(
            "the access review spreadsheet: {e}"
        )))
    })
}

/// The lab's access evidence for a compliance evidence pack: who asked, every review sign-off
/// (who, when, what changed; the latest first), admins without MFA, stale access, and the access
/// review itself (members, effective roles, MFA, pending invitations). Needs Owner or Admin.
pub async fn access_evidence(session: &Session) -> Result<serde_json::Value> {
    let me = account::me(session).await?;
    let review = review(session, None).await?;
    let sign_offs = sign_off_history(session).await?;
    let admins_without_mfa: Vec<&str> = review
        .members
        .iter()
        .filter(|m| m.admin_without_mfa)
        .map(|m| m.email.as_str())
        .collect();
    let stale: Vec<serde_json::Value> = review
        .entries
        .iter()
        .filter(|e| e.stale)
        .map(|e| {
            serde_json::json!({
                "email": e.email,
                "project_id": e.project_id,
                "role": e.effective_role.as_str(),
                "last_active_at": e.last_active_at,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "generated_for": me.email,
        "role": me.role.as_str(),
        "latest_sign_off": sign_offs.first(),
        "sign_offs": sign_offs,
        "admins_without_mfa": admins_without_mfa,
        "stale_access": stale,
        "access_review": review,
    }))
}

/// The review sign-offs in the tenant's audit trail, newest first (up to 100): when, by whom,
/// the threshold used, what changed and the note.
async fn sign_off_history(session: &Session) -> Result<Vec<serde_json::Value>> {
    let q = AuditQuery {
        action: Some(labvault_core::governance::audit::actions::ACCESS_REVIEW_SIGN_OFF.into()),
        result: Some("success".into()),
        limit: Some(100),
        ..Default::default()
    };
    let page = session
        .call(|t| {
            let (c, q) = (session.client().clone(), q.clone());
            async move { c.audit(&t, &q).await }
        })
        .await?;
    Ok(page
        .events
        .iter()
        .map(|ev| {
            let detail: serde_json::Value =
                serde_json::from_str(&ev.detail).unwrap_or(serde_json::Value::Null);
            serde_json::json!({
                "at": ev
                    .timestamp
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                "by": ev.user,
                "stale_days": detail.get("stale_days"),
                "changes": detail.get("changes").cloned().unwrap_or_else(|| serde_json::json!([])),
                "note": detail.get("note"),
                "audit_seq": ev.seq,
                "audit_hash": hex::encode(ev.hash),
            })
        })
        .collect())
}

/// Records the review as done in the tenant's audit trail, with what it changed.
pub async fn sign_off(
    session: &Session,
    stale_days: u32,
    changes: Vec<String>,
    note: Option<String>,
) -> Result<()> {
    if changes.len() > 200 {
        return Err(SyncError::Vault(labvault_core::Error::InvalidArgument(
            "a review signs off at most 200 changes; sign off in parts".into(),
        )));
    }
    let req = AccessReviewSignOff {
        stale_days,
        changes,
        note,
    };
    session
        .call(|t| {
            let (c, req) = (session.client().clone(), req.clone());
            async move { c.access_review_sign_off(&t, &req).await }
        })
        .await
}

/// Invites someone to the lab with a tenant role; the token is for the invitee only (shown once).
pub async fn invite(
    session: &Session,
    email: &str,
    role: Role,
    expires_in_hours: Option<u32>,
) -> Result<labvault_wire::InvitationCreated> {
    let req = labvault_wire::InvitationRequest {
        email: email.trim().to_string(),
        role,
        expires_in_hours,
    };
    session
        .call(|t| {
            let (c, req) = (session.client().clone(), req.clone());
            async move { c.create_invitation(&t, &req).await }
        })
        .await
}

/// Revokes a pending invitation.
pub async fn revoke_invitation(session: &Session, id: &str) -> Result<()> {
    session
        .call(|t| {
            let c = session.client().clone();
            async move { c.revoke_invitation(&t, id).await }
        })
        .await
}
