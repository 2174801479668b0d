//! Signing in to the tenant and keeping the session alive.
//!
//! Login (email, password, TOTP when enrolled) returns an access token (kept in memory only)
//! and a single-use refresh token (kept in the OS keyring only). Every call goes through
//! [`Session::call`]: an expired access token is refreshed (the tenant rotates the refresh
//! token; the new one replaces the old in the keyring before it is used) and the call
//! repeated once. Logout revokes the session on the tenant and deletes the stored token.

use std::future::Future;
use std::sync::{Arc, Mutex};

use labvault_client::{ClientError, TenantClient};
use labvault_wire::{ErrorCode, LoginRequest, LoginResponse, MfaLoginRequest, TokenPair};
use zeroize::Zeroizing;

use crate::tokens::TokenStore;
use crate::{Result, SyncError};

/// A signed-in session of one vault with its tenant.
///
/// Clones share the access token and the refresh lock: the desktop app runs its background
/// sync, the "Sync now" button and team calls on clones of one session, so one refresh token
/// is never rotated by two callers at once (the loser would be signed out).
#[derive(Clone)]
pub struct Session {
    client: TenantClient,
    vault_id: String,
    tokens: Arc<dyn TokenStore>,
    state: Arc<Tokens>,
}

/// What clones of a session share.
struct Tokens {
    access: Mutex<Option<Zeroizing<String>>>,
    /// Serialises refreshes (one rotation at a time).
    refreshing: tokio::sync::Mutex<()>,
}

impl Tokens {
    fn new() -> Arc<Tokens> {
        Arc::new(Tokens {
            access: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tenant", &self.client.base_url())
            .field("tokens", &"[redacted]")
            .finish()
    }
}

/// What a login gave.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in.
    SignedIn(Box<Session>),
    /// A TOTP code is needed (none was given).
    MfaNeeded,
}

impl Session {
    /// A session from the refresh token stored for `vault_id` (`not_signed_in` without one).
    pub fn resume(
        client: TenantClient,
        vault_id: &str,
        tokens: Arc<dyn TokenStore>,
    ) -> Result<Session> {
        if tokens.load(vault_id)?.is_none() {
            return Err(SyncError::NotSignedIn(client.base_url().to_string()));
        }
        Ok(Session {
            client,
            vault_id: vault_id.to_string(),
            tokens,
            state: Tokens::new(),
        })
    }

    /// Signs in with email and password (and `totp` when the account has MFA); the refresh
    /// token goes to `tokens`.
    pub async fn login(
        client: TenantClient,
        vault_id: &str,
        tokens: Arc<dyn TokenStore>,
        tenant: &str,
        email: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<LoginOutcome> {
        let req = LoginRequest {
            tenant: tenant.to_string(),
            email: email.to_string(),
            password: password.to_string(),
        };
        let pair = match client.login(&req).await? {
            LoginResponse::Ok(p) => p,
            LoginResponse::MfaRequired { mfa_token } => match totp {
                None => return Ok(LoginOutcome::MfaNeeded),
                Some(code) => {
                    client
                        .login_mfa(&MfaLoginRequest {
                            mfa_token,
                            code: code.to_string(),
                        })
                        .await?
                }
            },
        };
        let s = Session {
            client,
            vault_id: vault_id.to_string(),
            tokens,
            state: Tokens::new(),
        };
        s.keep(pair)?;
        Ok(LoginOutcome::SignedIn(Box::new(s)))
    }

    fn keep(&self, pair: TokenPair) -> Result<()> {
        // The new refresh token is stored before the access token is used: a crash in between
        // leaves a token that still works (the server tolerates a retried rotation briefly).
        self.tokens.store(&self.vault_id, &pair.refresh_token)?;
        *self.state.access.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Zeroizing::new(pair.access_token));
        Ok(())
    }

    /// The same session, naming `device_id` on every call (sync calls need it).
    pub fn bind_device(mut self, device_id: &str) -> Result<Session> {
        self.client = self.client.for_device(device_id)?;
        Ok(self)
    }

    /// The client (for calls that need no token).
    pub fn client(&self) -> &TenantClient {
        &self.client
    }

    async fn access_token(&self) -> Result<Zeroizing<String>> {
        if let Some(t) = self
            .state
            .access
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(t);
        }
        self.refresh(None).await
    }

    /// Rotates the refresh token for a new access token. `stale` is the access token that
    /// was refused: if another task refreshed meanwhile, its token is used instead.
    async fn refresh(&self, stale: Option<&str>) -> Result<Zeroizing<String>> {
        let _one = self.state.refreshing.lock().await;
        if let Some(t) = self
            .state
            .access
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            if Some(t.as_str()) != stale {
                return Ok(t);
            }
        }
        let refresh = self
            .tokens
            .load(&self.vault_id)?
            .ok_or_else(|| SyncError::NotSignedIn(self.client.base_url().to_string()))?;
        // A refresh whose answer is lost has rotated the token on the tenant already: it is
        // retried at once, while the tenant still accepts the previous token (its grace window).
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match self.client.refresh(&refresh).await {
                Err(e) if e.is_transient() && tries < 4 => continue,
                other => break other,
            }
        };
        let pair = match result {
            Ok(p) => p,
            Err(ClientError::Api {
                code: ErrorCode::InvalidRefreshToken | ErrorCode::Unauthorized,
                ..
            }) => {
                let _ = self.tokens.delete(&self.vault_id);
                return Err(SyncError::NotSignedIn(self.client.base_url().to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let access = Zeroizing::new(pair.access_token.clone());
        self.keep(pair)?;
        Ok(access)
    }

    /// Runs a tenant call with the access token, refreshing it once when it expired.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = std::result::Result<T, ClientError>>,
    {
        let token = self.access_token().await?;
        match f(token.to_string()).await {
            Err(ClientError::Api {
                code: ErrorCode::TokenExpired,
                ..
            }) => {
                let fresh = self.refresh(Some(&token)).await?;
                Ok(f(fresh.to_string()).await?)
            }
            Err(ClientError::Api {
                code: ErrorCode::Unauthorized,
                ..
            }) => Err(SyncError::NotSignedIn(self.client.base_url().to_string())),
            other => Ok(other?),
        }
    }

    /// Steps up with a TOTP code: admin actions (sharing a project, removing a member) need
    /// a recent MFA verification; the stepped-up access token replaces the current one.
    pub async fn step_up(&self, code: &str) -> Result<()> {
        let code = code.to_string();
        let t = self
            .call(|tok| {
                let (api, code) = (self.client.clone(), code.clone());
                async move { api.step_up(&tok, &code).await }
            })
            .await?;
        *self.state.access.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Zeroizing::new(t.access_token));
        Ok(())
    }

    /// Revokes the session on the tenant (best effort when unreachable) and forgets the
    /// refresh token.
    pub async fn logout(self) -> Result<()> {
        if let Some(t) = self.tokens.load(&self.vault_id)? {
            if let Err(e) = self.client.logout(&t).await {
                tracing::warn!(error = %e, "the tenant could not be told about the logout");
            }
        }
        self.tokens.delete(&self.vault_id)
    }
}
