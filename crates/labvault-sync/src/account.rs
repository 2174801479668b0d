//! Connecting a vault to its lab's tenant and signing in: the steps the CLI and the desktop
//! app share, so both check the same things in the same order.
//!
//! * [`connect`]: the tenant's address and certificate pin are checked by a real call before
//!   they are stored (a wrong pin is found now, not at the first sync).
//! * [`sign_in`]: email, password and a TOTP code when the account has MFA; the refresh token
//!   goes to the token store (the OS keyring), the device registers and, when another device
//!   of the user has approved it, completes its pairing.
//! * [`resume`]: the stored session, bound to this device.
//! * [`sign_out`]: the tenant revokes the session; the token leaves the keyring.
//! * [`mfa_start`] / [`mfa_confirm`]: TOTP enrolment (the secret once, then the recovery codes
//!   once); [`change_password`]: the current password re-checked, other sessions logged out.

use std::sync::Arc;

use labvault_client::{ClientOptions, Pin, TenantClient};
use labvault_core::sync::{DeviceState, RemoteConfig};
use labvault_core::Vault;
use labvault_wire::{ChangePasswordRequest, Me};
use zeroize::Zeroizing;

use crate::session::{LoginOutcome, Session};
use crate::tokens::TokenStore;
use crate::{keys, Result, SyncError};

/// A client for the vault's configured tenant, naming the caller in `user_agent`.
pub fn client(vault: &Vault, user_agent: &str) -> Result<TenantClient> {
    let r = vault.sync_remote()?.ok_or(SyncError::NoRemote)?;
    let pin = Pin::parse(&r.pin)?;
    Ok(TenantClient::new(
        &r.url,
        pin,
        ClientOptions {
            user_agent: user_agent.to_string(),
            ..ClientOptions::default()
        },
    )?)
}

/// What [`connect`] stored.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The remote as stored.
    pub remote: RemoteConfig,
    /// The API version the tenant speaks.
    pub api_version: String,
}

/// Checks the tenant at `url` with `pin` (a health call over the pinned TLS connection) and
/// stores it as this vault's remote.
pub async fn connect(
    vault: &Vault,
    url: &str,
    pin: &str,
    tenant: Option<&str>,
    user_agent: &str,
) -> Result<Connected> {
    let parsed = Pin::parse(pin.trim())?;
    let client = TenantClient::new(
        url.trim(),
        parsed,
        ClientOptions {
            user_agent: user_agent.to_string(),
            ..ClientOptions::default()
        },
    )?;
    let health = client.health().await?;
    let tenant = tenant.map(str::trim).filter(|t| !t.is_empty());
    let remote = vault.set_sync_remote(client.base_url(), pin.trim(), tenant)?;
    Ok(Connected {
        remote,
        api_version: health.api_version,
    })
}

/// What a sign-in gave.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in; the device is registered.
    Done {
        /// The session, bound to this device.
        session: Box<Session>,
        /// The account.
        me: Me,
        /// This device's name.
        device_name: String,
        /// Whether this device may sync now (else it waits for approval by another device).
        approved: bool,
    },
    /// The account has MFA and no code was given.
    MfaNeeded,
}

/// Signs in to the configured tenant (`tenant`: the slug, or the one stored at connect).
pub async fn sign_in(
    vault: &Vault,
    client: TenantClient,
    tokens: Arc<dyn TokenStore>,
    tenant: Option<&str>,
    email: &str,
    password: &str,
    totp: Option<&str>,
) -> Result<SignIn> {
    let remote = vault.sync_remote()?.ok_or(SyncError::NoRemote)?;
    let tenant = tenant
        .map(str::to_string)
        .or(remote.tenant)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            SyncError::Vault(labvault_core::Error::InvalidArgument(
                "which tenant? give the lab's tenant name (its slug)".into(),
            ))
        })?;
    let email = email.trim();
    let totp = totp.map(str::trim).filter(|c| !c.is_empty());
    let session = match Session::login(
        client,
        vault.vault_id(),
        tokens,
        &tenant,
        email,
        password,
        totp,
    )
    .await?
    {
        LoginOutcome::SignedIn(s) => *s,
        LoginOutcome::MfaNeeded => return Ok(SignIn::MfaNeeded),
    };
    let me = me(&session).await?;
    vault.sync_signed_in(&tenant, email, &me.id)?;
    let session = session.bind_device(vault.device_id())?;
    let device = keys::register(vault, &session).await?;
    let approved = keys::complete_pairing(vault, &session).await?;
    Ok(SignIn::Done {
        session: Box::new(session),
        me,
        device_name: device.name,
        approved,
    })
}

/// The account signed in.
pub async fn me(session: &Session) -> Result<Me> {
    session
        .call(|t| {
            let c = session.client().clone();
            async move { c.me(&t).await }
        })
        .await
}

/// A TOTP enrolment in progress: the shared secret for an authenticator app, shown once.
/// Not `Clone` or `Debug`; zeroized when dropped.
pub struct MfaEnrollment {
    /// Base32 secret (for typing into an authenticator).
    pub secret_base32: Zeroizing<String>,
    /// The same as an `otpauth://` URI (for a QR code).
    pub otpauth_uri: Zeroizing<String>,
}

/// Starts TOTP enrolment (`conflict` when the account already has MFA). MFA is not on until
/// [`mfa_confirm`] gets a first code from the authenticator.
pub async fn mfa_start(session: &Session) -> Result<MfaEnrollment> {
    let r = session
        .call(|t| {
            let c = session.client().clone();
            async move { c.mfa_enroll(&t).await }
        })
        .await?;
    Ok(MfaEnrollment {
        secret_base32: Zeroizing::new(r.secret_base32),
        otpauth_uri: Zeroizing::new(r.otpauth_uri),
    })
}

/// Confirms TOTP enrolment with a code from the authenticator; gives the recovery codes, the
/// only time they are shown (`invalid_mfa_code` for a wrong code: enrolment stays pending).
pub async fn mfa_confirm(session: &Session, code: &str) -> Result<Vec<Zeroizing<String>>> {
    let code = code.trim().to_string();
    let r = session
        .call(|t| {
            let (c, code) = (session.client().clone(), code.clone());
            async move { c.mfa_confirm(&t, &code).await }
        })
        .await?;
    Ok(r.recovery_codes.into_iter().map(Zeroizing::new).collect())
}

/// Changes the account's password (the current one is re-checked; a wrong one counts towards
/// the lockout like a failed sign-in). Every other session of the account is logged out; this
/// one stays. Gives how many were logged out.
pub async fn change_password(session: &Session, current: &str, new: &str) -> Result<u32> {
    let (current, new) = (
        Zeroizing::new(current.to_string()),
        Zeroizing::new(new.to_string()),
    );
    let r = session
        .call(|t| {
            let c = session.client().clone();
            let req = ChangePasswordRequest {
                current_password: current.to_string(),
                new_password: new.to_string(),
            };
            async move {
                let req = req;
                let out = c.change_password(&t, &req).await;
                drop(Zeroizing::new(req.current_password));
                drop(Zeroizing::new(req.new_password));
                out
            }
        })
        .await?;
    Ok(r.sessions_revoked)
}

/// The stored session of this vault, bound to this device (`not_signed_in` without one).
pub fn resume(vault: &Vault, client: TenantClient, tokens: Arc<dyn TokenStore>) -> Result<Session> {
    Session::resume(client, vault.vault_id(), tokens)?.bind_device(vault.device_id())
}

/// Signs out: the tenant revokes the session (best effort when unreachable) and the refresh
/// token leaves the token store. Nothing in the vault is removed.
pub async fn sign_out(
    vault: &Vault,
    client: TenantClient,
    tokens: Arc<dyn TokenStore>,
) -> Result<()> {
    match Session::resume(client, vault.vault_id(), tokens) {
        Ok(s) => s.logout().await?,
        Err(SyncError::NotSignedIn(_)) => {}
        Err(e) => return Err(e),
    }
    vault.sync_signed_out()?;
    Ok(())
}

/// Where this vault stands with its tenant, read locally (no network).
#[derive(Debug, Clone)]
pub struct AccountStatus {
    /// The configured tenant, if any.
    pub remote: Option<RemoteConfig>,
    /// A session token is stored.
    pub signed_in: bool,
    /// This device's registration state, once signed in.
    pub device: Option<DeviceState>,
}

/// The account status from the vault and the token store.
pub fn status(vault: &Vault, tokens: &dyn TokenStore) -> Result<AccountStatus> {
    let remote = vault.sync_remote()?;
    let signed_in = remote.is_some() && tokens.load(vault.vault_id())?.is_some();
    let device = if signed_in {
        Some(vault.sync_device()?.state)
    } else {
        None
    };
    Ok(AccountStatus {
        remote,
        signed_in,
        device,
    })
}
