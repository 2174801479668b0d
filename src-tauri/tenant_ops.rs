//! Bodies of the connected half's commands (sign-in, sync, team): plain async functions over
//! [`Shared`], testable against a real tenant server without a window. Each translates
//! arguments, calls `labvault_sync` and maps the result into [`crate::tenant_dto`].
//!
//! The session (access token in memory, refresh token in the OS keyring) stays here; locking
//! the vault forgets it. An admin action the tenant answers with `mfa_required` comes back as
//! that code: the UI asks for a TOTP code, calls [`step_up`] and repeats the action.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use labvault_core::{ErrorCode, Vault};
use labvault_sync::background::{Background, Syncer};
use labvault_sync::{
    account, keys, team, tenant_audit, EngineConfig, Session, SyncEngine, TokenStore,
};
use labvault_wire::Role;

use crate::dto::Progress;
use crate::error::CommandError;
use crate::ops::Sink;
use crate::state::{lock, Shared};
use crate::tenant_dto::*;

fn user_agent() -> String {
    format!("labvault-app/{}", env!("CARGO_PKG_VERSION"))
}

/// Writes an export the person asked for (atomically); a full disk is `no_space`.
fn write_export(path: &std::path::Path, bytes: &[u8]) -> Result<(), CommandError> {
    crate::state::write_atomic(path, bytes).map_err(|e| {
        CommandError::new(
            if e.raw_os_error() == Some(28) {
                ErrorCode::NoSpace
            } else {
                ErrorCode::Io
            },
            format!("writing {}: {e}", path.display()),
        )
    })
}

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::new(ErrorCode::InvalidArgument, msg)
}

fn role(s: &str) -> Result<Role, CommandError> {
    Role::parse(s).ok_or_else(|| {
        invalid(format!(
            "unknown role {s:?}: owner, admin, editor or viewer"
        ))
    })
}

fn tokens(s: &Shared) -> Arc<dyn TokenStore> {
    s.tokens.clone()
}

/// The signed-in session (resumed from the keyring on first use after unlock).
fn session(s: &Shared, v: &Vault) -> Result<Arc<Session>, CommandError> {
    if let Some(x) = lock(&s.session).clone() {
        return Ok(x);
    }
    let client = account::client(v, &user_agent())?;
    let fresh = Arc::new(account::resume(v, client, tokens(s))?);
    *lock(&s.session) = Some(fresh.clone());
    Ok(fresh)
}

/// `tenant_status`.
pub fn status(s: &Shared) -> Result<TenantStatus, CommandError> {
    s.with_vault(|v| {
        let st = account::status(v, s.tokens.as_ref())?;
        let device = st.device.map(|d| {
            serde_json::to_value(d)
                .ok()
                .and_then(|x| x.as_str().map(str::to_string))
                .unwrap_or_default()
        });
        let r = st.remote;
        Ok(TenantStatus {
            connected: r.is_some(),
            url: r.as_ref().map(|r| r.url.clone()),
            pin: r.as_ref().map(|r| r.pin.clone()),
            tenant: r.as_ref().and_then(|r| r.tenant.clone()),
            email: r.as_ref().and_then(|r| r.email.clone()),
            signed_in: st.signed_in,
            device,
            device_id: v.device_id().to_string(),
        })
    })
}

/// `tenant_connect`: checks the address and pin with a real call, then stores them.
pub async fn connect(
    s: &Shared,
    url: &str,
    pin: &str,
    tenant: Option<&str>,
) -> Result<TenantStatus, CommandError> {
    let v = s.vault()?;
    s.touch();
    account::connect(&v, url, pin, tenant, &user_agent()).await?;
    s.forget_tenant();
    status(s)
}

/// `tenant_sign_in`.
pub async fn sign_in(
    s: &Shared,
    email: &str,
    password: &str,
    totp: Option<&str>,
) -> Result<SignInResult, CommandError> {
    let v = s.vault()?;
    s.touch();
    if email.trim().is_empty() || password.is_empty() {
        return Err(invalid("give the account's email and password"));
    }
    let client = account::client(&v, &user_agent())?;
    match account::sign_in(&v, client, tokens(s), None, email, password, totp).await? {
        account::SignIn::MfaNeeded => Ok(SignInResult {
            signed_in: false,
            role: None,
            mfa_enrolled: true,
            device_name: None,
            approved: false,
        }),
        account::SignIn::Done {
            session,
            me,
            device_name,
            approved,
        } => {
            s.forget_tenant();
            *lock(&s.session) = Some(Arc::new(*session));
            Ok(SignInResult {
                signed_in: true,
                role: Some(me.role.as_str().into()),
                mfa_enrolled: me.mfa_enrolled,
                device_name: Some(device_name),
                approved,
            })
        }
    }
}

/// `tenant_sign_out`: the tenant ends the session; the token leaves the keyring.
pub async fn sign_out(s: &Shared) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    s.forget_tenant();
    let client = account::client(&v, &user_agent())?;
    account::sign_out(&v, client, tokens(s)).await?;
    Ok(())
}

/// `tenant_step_up`: a fresh TOTP verification for admin actions.
pub async fn step_up(s: &Shared, code: &str) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    let code = code.trim();
    // The 6 digits of the authenticator app, or one of the account's recovery codes.
    if code.is_empty() || code.len() > 64 || code.chars().any(char::is_control) {
        return Err(invalid(
            "give the 6-digit code your authenticator app shows, or a recovery code",
        ));
    }
    session(s, &v)?.step_up(code).await?;
    Ok(())
}

/// `account_info`: the signed-in account as the tenant sees it.
pub async fn account_info(s: &Shared) -> Result<AccountInfo, CommandError> {
    let v = s.vault()?;
    let me = account::me(&*session(s, &v)?).await?;
    Ok(AccountInfo {
        email: me.email,
        role: role_name(me.role),
        mfa_enrolled: me.mfa_enrolled,
    })
}

fn role_name(r: Role) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `account_mfa_start`: the secret and its QR code for an authenticator app.
pub async fn mfa_start(s: &Shared) -> Result<MfaEnrollment, CommandError> {
    use base64::Engine as _;
    let v = s.vault()?;
    s.touch();
    let e = account::mfa_start(&*session(s, &v)?).await?;
    let code =
        qrcode::QrCode::with_error_correction_level(e.otpauth_uri.as_bytes(), qrcode::EcLevel::M)
            .map_err(|err| {
            CommandError::new(ErrorCode::Internal, format!("drawing the QR code: {err}"))
        })?;
    let svg = zeroize::Zeroizing::new(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    );
    let qr = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg.as_bytes())
    );
    Ok(MfaEnrollment {
        secret: e.secret_base32.to_string(),
        qr_code: qr,
    })
}

/// `account_mfa_confirm`: the first code from the authenticator; the recovery codes, once.
pub async fn mfa_confirm(s: &Shared, code: &str) -> Result<Vec<String>, CommandError> {
    let v = s.vault()?;
    s.touch();
    let code = code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            "give the 6-digit code your authenticator app shows",
        ));
    }
    let codes = account::mfa_confirm(&*session(s, &v)?, code).await?;
    Ok(codes.iter().map(|c| c.to_string()).collect())
}

/// `account_change_password`: gives how many other sessions were logged out.
pub async fn change_password(
    s: &Shared,
    current: zeroize::Zeroizing<String>,
    new: zeroize::Zeroizing<String>,
) -> Result<u32, CommandError> {
    let v = s.vault()?;
    s.touch();
    if current.is_empty() || new.is_empty() {
        return Err(invalid("give the current and the new password"));
    }
    Ok(account::change_password(&*session(s, &v)?, &current, &new).await?)
}

/// `project_sharing`: members, key epoch and lock state of a project (no network).
pub async fn project_sharing(s: &Shared, project: &str) -> Result<ProjectSharing, CommandError> {
    let mut sharing = verified_sharing(s, project)?;
    if sharing.shared {
        let v = s.vault()?;
        // Best effort and brief: the panel shows ids when the tenant cannot be asked.
        if let Ok(sess) = session(s, &v) {
            let names = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                member_emails(&sess, &sharing.members),
            )
            .await
            .unwrap_or_default();
            for m in &mut sharing.members {
                m.email = names.get(&m.user_id).cloned();
            }
        }
    }
    Ok(sharing)
}

/// The emails of `members` by user id, as the tenant lists their identities.
async fn member_emails(
    sess: &Session,
    members: &[SharedMember],
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for m in members {
        let q = labvault_wire::IdentityQuery {
            email: None,
            user_id: Some(m.user_id.clone()),
        };
        let found = sess
            .call(|t| {
                let (api, q) = (sess.client().clone(), q.clone());
                async move { api.find_identity(&t, &q).await }
            })
            .await;
        match found {
            Ok(i) if i.user_id == m.user_id => {
                out.insert(m.user_id.clone(), i.email);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// What this device verified of a project's sharing (no network).
fn verified_sharing(s: &Shared, project: &str) -> Result<ProjectSharing, CommandError> {
    s.with_vault(|v| {
        let p = v.project(project)?;
        let locked = v.sync_project_locked(&p.id)?;
        let me = v.sync_identity()?.map(|i| i.user_id);
        let at = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
        };
        Ok(match v.sync_membership(&p.id)? {
            None => ProjectSharing {
                project_id: p.id,
                shared: false,
                epoch: 1,
                members: Vec::new(),
                rotation_owed: false,
                log_length: 0,
                last_rotation_at: None,
                lease_days: None,
                rotation_days: None,
                last_contact_at: None,
                locked,
            },
            Some(m) => ProjectSharing {
                project_id: p.id,
                shared: true,
                epoch: m.epoch,
                members: m
                    .members
                    .into_iter()
                    .map(|x| SharedMember {
                        you: me.as_deref() == Some(x.user_id.as_str()),
                        email: None,
                        user_id: x.user_id,
                        role: x.role.to_string(),
                        safety_number: x.safety_number,
                    })
                    .collect(),
                rotation_owed: m.rotation_owed,
                log_length: m.length,
                last_rotation_at: (m.last_rotation_ms > 0)
                    .then(|| at(m.last_rotation_ms))
                    .flatten(),
                lease_days: m.lease_days,
                rotation_days: m.rotation_days,
                last_contact_at: m.contact_at.and_then(at),
                locked,
            },
        })
    })
}

/// The tenant's query for the UI's audit filter (checked the same way as for the vault's log).
fn tenant_query(
    filter: &crate::dto::AuditFilter,
) -> Result<labvault_wire::AuditQuery, CommandError> {
    let f = filter.to_core()?;
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    Ok(labvault_wire::AuditQuery {
        from: f.from.and_then(rfc),
        to: f.to.and_then(rfc),
        user: f.user,
        action: f.action_prefix,
        resource: f.resource_prefix,
        result: f.result.map(|r| r.as_str().to_string()),
        ..Default::default()
    })
}

/// `tenant_audit_page`: a page of the lab's audit log (Owners and Admins).
pub async fn tenant_audit_page(
    s: &Shared,
    filter: &crate::dto::AuditFilter,
    cursor: Option<String>,
    limit: u32,
) -> Result<crate::dto::AuditPage, CommandError> {
    let v = s.vault()?;
    s.touch();
    let mut q = tenant_query(filter)?;
    q.cursor = cursor.filter(|c| !c.is_empty());
    q.limit = Some(limit.clamp(1, 1000));
    let page = tenant_audit::page(&*session(s, &v)?, &q).await?;
    Ok(crate::dto::AuditPage {
        events: page.events.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

/// `tenant_audit_verify`: the lab's whole log re-verified on this device.
pub async fn tenant_audit_verify(
    s: &Shared,
) -> Result<crate::dto::AuditVerifyResult, CommandError> {
    let v = s.vault()?;
    s.touch();
    let r = tenant_audit::verify(&*session(s, &v)?).await?;
    Ok(crate::dto::AuditVerifyResult {
        ok: r.ok,
        events_checked: r.events,
        first_bad_seq: r.first_bad_seq,
        device_id: None,
        message: r.message,
    })
}

/// `tenant_audit_export`: the lab's log (filtered) written to `dest_path` as CSV or JSON Lines.
pub async fn tenant_audit_export(
    s: &Shared,
    filter: &crate::dto::AuditFilter,
    format: crate::dto::AuditExportFormat,
    dest_path: &str,
) -> Result<crate::dto::AuditExportResult, CommandError> {
    let v = s.vault()?;
    s.touch();
    let path = std::path::Path::new(dest_path);
    if !path.is_absolute() {
        return Err(invalid("the export path must be absolute"));
    }
    let mut q = tenant_query(filter)?;
    let filtered = q.from.is_some()
        || q.to.is_some()
        || q.user.is_some()
        || q.action.is_some()
        || q.resource.is_some()
        || q.result.is_some();
    q.format = Some(
        match format {
            crate::dto::AuditExportFormat::Csv => "csv",
            crate::dto::AuditExportFormat::Jsonl => "jsonl",
        }
        .into(),
    );
    let text = tenant_audit::export(&*session(s, &v)?, &q).await?;
    let events = match format {
        crate::dto::AuditExportFormat::Jsonl => {
            text.lines().filter(|l| !l.trim().is_empty()).count()
        }
        // CSV: a header line; fields with line breaks are quoted, so count records by reading.
        crate::dto::AuditExportFormat::Csv => {
            labvault_core::governance::export::ExportReader::new(text.as_bytes())
                .map(|r| r.count())
                .unwrap_or(0)
        }
    } as u64;
    write_export(path, text.as_bytes())?;
    Ok(crate::dto::AuditExportResult {
        path: path.display().to_string(),
        events,
        filtered,
    })
}

/// `sync_set_bandwidth`: the limit in KiB/s (`None` or 0: unlimited), saved and applied at
/// once, to a sync that is running too.
pub fn set_bandwidth(s: &Shared, kib_per_sec: Option<u32>) -> Result<Option<u32>, CommandError> {
    let kib = kib_per_sec.filter(|&k| k > 0);
    if let Some(k) = kib {
        if !(64..=10_000_000).contains(&k) {
            return Err(invalid(
                "the bandwidth limit is 64 KiB/s to 10 GB/s, or none",
            ));
        }
    }
    lock(&s.settings).bandwidth_limit_kib = kib;
    s.save_settings()?;
    s.rate_limit.set(kib.map(|k| u64::from(k) * 1024));
    Ok(kib)
}

/// `sync_status`: per project, from the vault (no network).
pub fn sync_status(s: &Shared) -> Result<Vec<ProjectSync>, CommandError> {
    s.with_vault(|v| Ok(v.sync_status()?.into_iter().map(Into::into).collect()))
}

/// The shared engine (made on first use; holds the vault's sync lock while the vault is open).
fn syncer(s: &Shared, v: &Arc<Vault>) -> Result<Arc<Syncer>, CommandError> {
    if let Some(x) = lock(&s.syncer).clone() {
        return Ok(x);
    }
    let sess = session(s, v)?;
    let cfg = EngineConfig {
        rate_limit: s.rate_limit.clone(),
        ..EngineConfig::default()
    };
    let engine = SyncEngine::new(v.clone(), (*sess).clone(), cfg)?;
    let fresh = Syncer::new(engine);
    *lock(&s.syncer) = Some(fresh.clone());
    Ok(fresh)
}

/// `sync_run`: one full pass (push, pull, keys, shared projects), with progress; cancellable
/// (a cancelled pass stops between requests; what it did stays done and resumes next time).
pub async fn sync_run(
    s: &Arc<Shared>,
    op_id: &str,
    sink: Sink,
) -> Result<SyncReport, CommandError> {
    let v = s.vault()?;
    s.touch();
    let op = s.start_op(op_id)?;
    let syncer = syncer(s, &v)?;
    let id = op_id.to_string();
    let progress = sink.clone();
    let forward: Arc<dyn Fn(labvault_sync::Progress) + Send + Sync> = Arc::new(move |p| {
        let phase = serde_json::to_value(p.phase)
            .ok()
            .and_then(|x| x.as_str().map(str::to_string))
            .unwrap_or_default();
        progress(Progress {
            op_id: id.clone(),
            phase: "progress".into(),
            path: Some(format!("{phase}:{}", p.project)),
            file_done: p.done,
            file_total: p.total,
            overall_done: p.done,
            overall_total: p.total,
            files_done: 0,
            files_total: 0,
        })
    });
    let started = Progress {
        op_id: op_id.to_string(),
        phase: "started".into(),
        path: None,
        file_done: 0,
        file_total: 0,
        overall_done: 0,
        overall_total: 0,
        files_done: 0,
        files_total: 0,
    };
    sink(started.clone());
    let cancel = op.cancel.clone();
    let cancelled = async move {
        while !cancel.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Asked for now: what waits out a back-off of earlier failures is tried now.
    v.sync_retry_now(None)?;
    let report = tokio::select! {
        r = syncer.run(Some(forward)) => r?,
        _ = cancelled => {
            return Err(CommandError::new(ErrorCode::Cancelled, "sync was cancelled; what it sent and received is kept and the rest resumes at the next sync"))
        }
    };
    sink(Progress {
        phase: "done".into(),
        ..started
    });
    Ok(report.into())
}

/// `sync_state`: where sync stands, for the status line. When signed in on an approved
/// device, the first call starts background sync (a pass on every change here or on the
/// tenant); locking the vault or signing out stops it.
pub async fn sync_state(s: &Shared) -> Result<SyncState, CommandError> {
    let v = s.vault()?;
    let st = account::status(&v, s.tokens.as_ref())?;
    let pending: u64 = v
        .sync_status()?
        .iter()
        .map(|p| p.pending_ops + p.changed_items)
        .sum();
    let approved = st.signed_in && st.device == Some(labvault_core::sync::DeviceState::Approved);
    if !approved {
        return Ok(SyncState {
            connected: st.remote.is_some(),
            signed_in: st.signed_in,
            active: false,
            paused: false,
            running: false,
            online: None,
            last_pass_at: None,
            error: None,
            next_try_at: None,
            pending,
            bandwidth_limit_kib: lock(&s.settings).bandwidth_limit_kib,
        });
    }
    let running = lock(&s.background).clone();
    let bg = match running {
        Some(b) => b,
        None => {
            let syncer = syncer(s, &v)?;
            let waiter = (*session(s, &v)?).clone();
            let b = Arc::new(Background::spawn(
                syncer,
                v.clone(),
                waiter,
                &tokio::runtime::Handle::current(),
            ));
            *lock(&s.background) = Some(b.clone());
            b
        }
    };
    let b = bg.syncer().state();
    Ok(SyncState {
        connected: true,
        signed_in: true,
        active: true,
        paused: b.paused,
        running: b.running,
        online: b.online,
        last_pass_at: b.last_pass_at.map(crate::tenant_dto::rfc3339_ms),
        error: b
            .last_error
            .map(|(code, message)| CommandError::new(code, message)),
        next_try_at: b.next_try_at.map(crate::tenant_dto::rfc3339_ms),
        pending,
        bandwidth_limit_kib: lock(&s.settings).bandwidth_limit_kib,
    })
}

/// `sync_pause` / resume: background sync stops starting passes, or starts one now.
pub fn sync_pause(s: &Shared, paused: bool) -> Result<(), CommandError> {
    s.vault()?;
    s.touch();
    let running = lock(&s.background).clone();
    match running {
        Some(b) if paused => b.pause(),
        Some(b) => b.resume(),
        None => {
            return Err(CommandError::new(
                labvault_sync::TenantCode::NotSignedIn,
                "background sync runs once this device is signed in and approved",
            ))
        }
    }
    Ok(())
}

/// `sync_conflicts`.
pub fn conflicts(s: &Shared) -> Result<Vec<SyncConflict>, CommandError> {
    s.with_vault(|v| Ok(v.sync_conflicts()?.into_iter().map(Into::into).collect()))
}

/// `conflict_resolve`: keeps version `keep` as the head; the other versions stay in the
/// item's history (nothing is deleted).
pub fn resolve_conflict(s: &Shared, item_id: &str, keep: u32) -> Result<u32, CommandError> {
    s.with_vault(|v| Ok(v.sync_resolve_conflict(item_id, keep)?.version))
}

/// `conflict_keep_both`: version `other` becomes its own item at `new_path`; the item keeps
/// `keep`. Gives the new item's path.
pub fn keep_both(
    s: &Shared,
    item_id: &str,
    keep: u32,
    other: u32,
    new_path: &str,
) -> Result<String, CommandError> {
    s.with_vault(|v| {
        Ok(v.sync_keep_both(item_id, keep, other, new_path.trim())?
            .path)
    })
}

/// `team_view`.
pub async fn team_view(s: &Shared, stale_days: Option<u32>) -> Result<Team, CommandError> {
    let v = s.vault()?;
    s.touch();
    if let Some(d) = stale_days {
        if d == 0 || d > 3650 {
            return Err(invalid("the stale threshold is 1 to 3650 days"));
        }
    }
    let sess = session(s, &v)?;
    Ok(team::view(&v, &sess, stale_days).await?.into())
}

/// `team_set_project_role`.
pub async fn set_project_role(
    s: &Shared,
    project_id: &str,
    user_id: &str,
    new_role: &str,
) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    let r = role(new_role)?;
    let sess = session(s, &v)?;
    team::set_project_role(&v, &sess, project_id, user_id, r).await?;
    Ok(())
}

/// `team_remove_project_access`: returns the new key epoch when a shared project rotated.
pub async fn remove_project_access(
    s: &Shared,
    project_id: &str,
    user_id: &str,
) -> Result<Option<u32>, CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    Ok(team::remove_project_access(&v, &sess, project_id, user_id).await?)
}

/// `team_set_tenant_role`.
pub async fn set_tenant_role(
    s: &Shared,
    user_id: &str,
    new_role: &str,
) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    let r = role(new_role)?;
    let sess = session(s, &v)?;
    team::set_tenant_role(&sess, user_id, r).await?;
    Ok(())
}

/// `team_remove_member`.
pub async fn remove_member(s: &Shared, user_id: &str) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    team::remove_member(&sess, user_id).await?;
    Ok(())
}

/// `team_reset_mfa`.
pub async fn reset_mfa(s: &Shared, user_id: &str) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    team::reset_member_mfa(&sess, user_id).await?;
    Ok(())
}

/// `access_review_export`: the review written to `dest_path` (a path the user chose in the
/// native save dialog) as CSV, JSON or Excel by its extension. Returns the bytes written.
pub async fn access_review_export(
    s: &Shared,
    dest_path: &str,
    stale_days: Option<u32>,
) -> Result<u64, CommandError> {
    let v = s.vault()?;
    s.touch();
    let path = std::path::Path::new(dest_path);
    if !path.is_absolute() {
        return Err(invalid("the export path must be absolute"));
    }
    let sess = session(s, &v)?;
    let format = team::ReviewFormat::from_path(path);
    let bytes = team::review_export(&sess, stale_days, format).await?;
    write_export(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// `project_evidence_pack`: the compliance evidence pack of `project` in the new folder
/// `dest`, with the lab's access review when signed in and allowed to read it.
pub async fn evidence_pack(
    s: &Arc<Shared>,
    project: &str,
    dest: &str,
    purposes: Vec<String>,
) -> Result<EvidenceResult, CommandError> {
    let v = s.vault()?;
    s.touch();
    let dest = std::path::PathBuf::from(dest.trim());
    if !dest.is_absolute() {
        return Err(invalid("the evidence pack needs an absolute path"));
    }
    let purposes: Vec<String> = purposes
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let tenant_access = match session(s, &v) {
        Ok(sess) => team::access_evidence(&sess).await.ok(),
        Err(_) => None,
    };
    let with_tenant = tenant_access.is_some();
    let project = project.to_string();
    let out = tokio::task::spawn_blocking(move || {
        v.evidence_pack(
            &project,
            &dest,
            &labvault_core::evidence::EvidenceOptions {
                purposes,
                tenant_access,
            },
        )
    })
    .await
    .map_err(|e| CommandError::new(ErrorCode::Internal, format!("evidence pack: {e}")))??;
    Ok(EvidenceResult {
        path: out.path.display().to_string(),
        files: out.files,
        audit_ok: out.audit_ok,
        controls: out.controls,
        with_tenant,
    })
}

/// `access_review_sign_off`.
pub async fn access_review_sign_off(
    s: &Shared,
    stale_days: u32,
    changes: Vec<String>,
    note: Option<String>,
) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    team::sign_off(&sess, stale_days, changes, note).await?;
    Ok(())
}

/// `devices_list`: the user's devices.
pub async fn devices(s: &Shared) -> Result<Vec<UserDevice>, CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    let me = v.device_id().to_string();
    Ok(keys::devices(&sess)
        .await?
        .into_iter()
        .map(|d| UserDevice {
            this_device: d.device_id == me,
            state: serde_json::to_value(d.state)
                .ok()
                .and_then(|x| x.as_str().map(str::to_string))
                .unwrap_or_default(),
            device_id: d.device_id,
            name: d.name,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
        })
        .collect())
}

/// `device_approve`: approves a waiting device of the user from the pairing code it shows.
pub async fn approve_device(s: &Shared, code: &str) -> Result<String, CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    Ok(keys::approve(&v, &sess, code.trim()).await?.name)
}

/// `device_revoke`: the device stops syncing at once; shared projects' keys rotate.
pub async fn revoke_device(s: &Shared, device_id: &str) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    if device_id == v.device_id() {
        return Err(invalid(
            "this is the device you are using: sign out instead, or revoke it from another device",
        ));
    }
    let sess = session(s, &v)?;
    keys::revoke(&v, &sess, device_id).await?;
    Ok(())
}

/// `device_pairing`: on a device waiting for approval, checks whether the approval arrived
/// (completing the pairing when it did) and otherwise returns the code to enter on an approved
/// device. The code is shown to the person by design: it is how they vouch for this device.
pub async fn pairing(s: &Shared) -> Result<PairingState, CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    keys::register(&v, &sess).await?;
    if keys::complete_pairing(&v, &sess).await? {
        return Ok(PairingState {
            approved: true,
            code: None,
        });
    }
    Ok(PairingState {
        approved: false,
        code: Some(v.sync_pairing_code()?.to_string()),
    })
}

/// `team_invite`: invites someone with a lab role (Owner/Admin; may answer `mfa_required`).
pub async fn invite(
    s: &Shared,
    email: &str,
    new_role: &str,
    expires_in_hours: Option<u32>,
) -> Result<InvitationSent, CommandError> {
    let v = s.vault()?;
    s.touch();
    let r = role(new_role)?;
    let email = email.trim();
    if !email.contains('@') || email.len() > 254 || email.chars().any(char::is_control) {
        return Err(invalid("give the invitee's email address"));
    }
    if expires_in_hours.is_some_and(|h| h == 0 || h > 720) {
        return Err(invalid("an invitation is valid for 1 to 720 hours"));
    }
    let sess = session(s, &v)?;
    let created = team::invite(&sess, email, r, expires_in_hours).await?;
    Ok(InvitationSent {
        id: created.invitation.id,
        email: created.invitation.email,
        role: created.invitation.role.as_str().into(),
        expires_at: created.invitation.expires_at,
        token: created.token,
    })
}

/// `team_revoke_invitation`.
pub async fn revoke_invitation(s: &Shared, id: &str) -> Result<(), CommandError> {
    let v = s.vault()?;
    s.touch();
    let sess = session(s, &v)?;
    team::revoke_invitation(&sess, id).await?;
    Ok(())
}
