//! Shared projects from the command line: `project share|members|unshare|rotate` and
//! `fingerprint`. Admin actions (adding, removing, changing a member's role) need a recent
//! MFA verification on the tenant: `--totp CODE` steps the session up first (a recovery code
//! works too). What rotation guarantees is printed with every rotation.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use labvault_core::Vault;
use labvault_sync::{sharing, Session, SyncError};

use crate::ctx::Ctx;
use crate::sync_cmd::{client_for, runtime, tokens};

/// What a rotation protects, said plainly.
const ROTATION_GUARANTEE: &str =
    "nothing written from now on can be decrypted by anyone who is no longer a member; \
what they already downloaded cannot be recalled";

/// `labvault project share`
#[derive(Args, Debug)]
pub struct ShareArgs {
    /// Project name or id.
    pub project: String,
    /// The member's email in the tenant.
    #[arg(long)]
    pub user: String,
    /// owner, admin, editor or viewer (changes the role of someone already a member).
    #[arg(long, default_value = "editor")]
    pub role: String,
    /// A current TOTP (or recovery) code: admin actions need a recent MFA verification.
    #[arg(long)]
    pub totp: Option<String>,
}

/// `labvault project unshare`
#[derive(Args, Debug)]
pub struct UnshareArgs {
    /// Project name or id.
    pub project: String,
    /// The member's email in the tenant.
    #[arg(long)]
    pub user: String,
    /// A current TOTP (or recovery) code.
    #[arg(long)]
    pub totp: Option<String>,
}

/// `labvault project members`
#[derive(Args, Debug)]
pub struct MembersArgs {
    /// Project name or id.
    pub project: String,
    /// Show what this device verified last, without asking the tenant.
    #[arg(long)]
    pub offline: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// `labvault project rotate`
#[derive(Args, Debug)]
pub struct RotateArgs {
    /// Project name or id.
    pub project: String,
}

/// `labvault fingerprint`
#[derive(Args, Debug)]
pub struct FingerprintArgs {
    /// A member's email (default: your own identity, from this device).
    pub email: Option<String>,
}

fn session(
    vault: &Arc<Vault>,
    totp: Option<&str>,
    rt: &tokio::runtime::Runtime,
) -> Result<Session> {
    let s = Session::resume(client_for(vault)?, vault.vault_id(), tokens())?
        .bind_device(vault.device_id())?;
    if let Some(code) = totp {
        rt.block_on(s.step_up(code))?;
    }
    Ok(s)
}

/// An admin action's error, with what to do when the tenant wants a step-up.
fn admin_error(e: SyncError) -> anyhow::Error {
    match e {
        SyncError::Client(labvault_client::ClientError::Api {
            status,
            code: code @ labvault_wire::ErrorCode::MfaRequired,
            message,
            retry_after,
        }) => SyncError::Client(labvault_client::ClientError::Api {
            status,
            code,
            message: format!(
                "{message}. Adding, removing or re-roling a member needs a recent MFA verification: run again with --totp CODE (a recovery code works too)"
            ),
            retry_after,
        })
        .into(),
        other => other.into(),
    }
}

fn project_id(vault: &Vault, p: &str) -> Result<String> {
    Ok(vault.project(p)?.id)
}

/// `labvault project share`
pub fn share(ctx: &Ctx, a: ShareArgs) -> Result<()> {
    let unlocked = ctx.unlock()?;
    let vault = unlocked.shared();
    let rt = runtime()?;
    let pid = project_id(&vault, &a.project)?;
    let s = session(&vault, a.totp.as_deref(), &rt)?;
    let already = rt.block_on(async {
        let i = sharing::find_identity(&vault, &s, &a.user).await?;
        let member = vault
            .sync_membership(&pid)?
            .is_some_and(|v| v.members.iter().any(|m| m.user_id == i.user_id));
        Ok::<_, SyncError>((i, member))
    });
    let (identity, member) = already.map_err(admin_error)?;
    if member {
        rt.block_on(sharing::set_role(&vault, &s, &pid, &a.user, &a.role))
            .map_err(admin_error)?;
        println!("{} is now {} of {}", a.user, a.role, a.project);
        return Ok(());
    }
    rt.block_on(sharing::share(&vault, &s, &pid, &a.user, &a.role))
        .map_err(admin_error)?;
    let number = sharing::public_of(&identity)?.safety_number(&identity.user_id);
    println!("shared {} with {} as {}", a.project, a.user, a.role);
    println!("their safety number: {number}");
    println!(
        "compare it with them out of band (they see it with `labvault fingerprint`); a different number means the tenant swapped their key"
    );
    Ok(())
}

/// `labvault project unshare`
pub fn unshare(ctx: &Ctx, a: UnshareArgs) -> Result<()> {
    let unlocked = ctx.unlock()?;
    let vault = unlocked.shared();
    let rt = runtime()?;
    let pid = project_id(&vault, &a.project)?;
    let s = session(&vault, a.totp.as_deref(), &rt)?;
    let epoch = rt
        .block_on(sharing::unshare(&vault, &s, &pid, &a.user))
        .map_err(admin_error)?;
    println!(
        "removed {} from {}: the tenant refuses them from now on",
        a.user, a.project
    );
    match epoch {
        Some(e) => println!("the project key rotated to epoch {e}: {ROTATION_GUARANTEE}"),
        None => println!(
            "the key rotation is owed: the next Owner or Admin device that syncs does it ({ROTATION_GUARANTEE})"
        ),
    }
    Ok(())
}

/// `labvault project rotate`
pub fn rotate(ctx: &Ctx, a: RotateArgs) -> Result<()> {
    let unlocked = ctx.unlock()?;
    let vault = unlocked.shared();
    let rt = runtime()?;
    let pid = project_id(&vault, &a.project)?;
    let s = session(&vault, None, &rt)?;
    let epoch = rt.block_on(sharing::rotate_now(&vault, &s, &pid))?;
    println!(
        "the key of {} rotated to epoch {epoch}: {ROTATION_GUARANTEE}",
        a.project
    );
    Ok(())
}

/// `labvault project members`
pub fn members(ctx: &Ctx, a: MembersArgs) -> Result<()> {
    let unlocked = ctx.unlock()?;
    let vault = unlocked.shared();
    let pid = project_id(&vault, &a.project)?;
    if !a.offline {
        let rt = runtime()?;
        let s = session(&vault, None, &rt)?;
        rt.block_on(sharing::refresh(&vault, &s, &pid, false))?;
    }
    let Some(v) = vault.sync_membership(&pid)? else {
        println!(
            "{} is not shared: only your devices hold it (sync once to put it on the tenant)",
            a.project
        );
        return Ok(());
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} (key epoch {}, {} entries in its verified membership log)",
        a.project, v.epoch, v.length
    );
    for m in &v.members {
        println!(
            "  {:<8} {}  safety number {}",
            m.role, m.user_id, m.safety_number
        );
    }
    if v.rotation_owed {
        println!("a key rotation is owed (a member left or a device was revoked)");
    }
    if let Some(days) = v.lease_days {
        println!("offline lease: {days} days without reaching the tenant");
    }
    Ok(())
}

/// `labvault fingerprint`
pub fn fingerprint(ctx: &Ctx, a: FingerprintArgs) -> Result<()> {
    let unlocked = ctx.unlock()?;
    let vault = unlocked.shared();
    match a.email {
        None => {
            let me = vault.sync_identity()?.ok_or_else(|| {
                labvault_core::Error::InvalidArgument(
                    "this device holds no identity yet: sign in and sync once (or approve it from a device of yours)".into(),
                )
            })?;
            println!("your safety number: {}", me.safety_number());
        }
        Some(email) => {
            let rt = runtime()?;
            let s = session(&vault, None, &rt)?;
            let i = rt.block_on(sharing::find_identity(&vault, &s, &email))?;
            let number = sharing::public_of(&i)?.safety_number(&i.user_id);
            println!("{email}: {number}");
            println!("ask them to read theirs (`labvault fingerprint` on their device): the numbers must match");
        }
    }
    Ok(())
}
