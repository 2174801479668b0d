//! Stable codes for everything that can stop a call to the tenant.
//!
//! A caller (the CLI's `--json`, the app's `{code, message}` contract) branches on one code per
//! failure. The vault's own failures keep the vault's codes; the tenant's and the network's get
//! a [`TenantCode`], named as the tenant's API names them where one exists, so the same failure
//! reads the same everywhere. The mapping from the wire is an exhaustive match: a new API code
//! does not compile until it is given a meaning here.

use labvault_client::ClientError;
use labvault_core::ErrorCode as VaultCode;
use labvault_wire::ErrorCode as WireCode;
use serde::Serialize;

use crate::SyncError;

/// Codes of failures that come from the tenant, the network or the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantCode {
    /// No tenant is configured for this vault.
    NoRemote,
    /// Not signed in, or the tenant ended the session.
    NotSignedIn,
    /// A TOTP code is needed: to sign in, or a recent one for an admin action (step-up).
    MfaRequired,
    /// The TOTP code was wrong.
    InvalidMfaCode,
    /// Email or password wrong.
    InvalidCredentials,
    /// This device waits for approval by another device of the user.
    DeviceNotApproved,
    /// The tenant revoked this device.
    DeviceRevoked,
    /// Another process is syncing this vault.
    SyncBusy,
    /// The server's key is not the pinned one.
    PinMismatch,
    /// The tenant cannot be reached (offline, refused, timed out).
    Unreachable,
    /// The caller's role does not allow it.
    Forbidden,
    /// The tenant's state changed meanwhile, or the change breaks one of its rules.
    Conflict,
    /// Too many requests; try again later.
    RateLimited,
    /// The tenant refused the request as invalid.
    InvalidInput,
    /// The new password is too weak.
    WeakPassword,
    /// The tenant requires MFA enrolment before this.
    MfaEnrollmentRequired,
    /// The tenant's plan expired.
    TenantExpired,
    /// The tenant's storage quota is used up.
    QuotaExceeded,
    /// The tenant answered with an error of its own or something that is not its API.
    TenantError,
}

impl TenantCode {
    /// Every code, in declaration order (generated bindings, exhaustive tables).
    pub const ALL: &'static [TenantCode] = &[
        TenantCode::NoRemote,
        TenantCode::NotSignedIn,
        TenantCode::MfaRequired,
        TenantCode::InvalidMfaCode,
        TenantCode::InvalidCredentials,
        TenantCode::DeviceNotApproved,
        TenantCode::DeviceRevoked,
        TenantCode::SyncBusy,
        TenantCode::PinMismatch,
        TenantCode::Unreachable,
        TenantCode::Forbidden,
        TenantCode::Conflict,
        TenantCode::RateLimited,
        TenantCode::InvalidInput,
        TenantCode::WeakPassword,
        TenantCode::MfaEnrollmentRequired,
        TenantCode::TenantExpired,
        TenantCode::QuotaExceeded,
        TenantCode::TenantError,
    ];

    /// The snake_case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            TenantCode::NoRemote => "no_remote",
            TenantCode::NotSignedIn => "not_signed_in",
            TenantCode::MfaRequired => "mfa_required",
            TenantCode::InvalidMfaCode => "invalid_mfa_code",
            TenantCode::InvalidCredentials => "invalid_credentials",
            TenantCode::DeviceNotApproved => "device_not_approved",
            TenantCode::DeviceRevoked => "device_revoked",
            TenantCode::SyncBusy => "sync_busy",
            TenantCode::PinMismatch => "pin_mismatch",
            TenantCode::Unreachable => "unreachable",
            TenantCode::Forbidden => "forbidden",
            TenantCode::Conflict => "conflict",
            TenantCode::RateLimited => "rate_limited",
            TenantCode::InvalidInput => "invalid_input",
            TenantCode::WeakPassword => "weak_password",
            TenantCode::MfaEnrollmentRequired => "mfa_enrollment_required",
            TenantCode::TenantExpired => "tenant_expired",
            TenantCode::QuotaExceeded => "quota_exceeded",
            TenantCode::TenantError => "tenant_error",
        }
    }
}

impl std::fmt::Display for TenantCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One code for any failure of a sync call: the vault's or the tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Code {
    /// A failure of the local vault.
    Vault(VaultCode),
    /// A failure of the tenant, the network or the session.
    Tenant(TenantCode),
}

impl Code {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Vault(c) => c.as_str(),
            Code::Tenant(c) => c.as_str(),
        }
    }
}

impl From<VaultCode> for Code {
    fn from(c: VaultCode) -> Self {
        Code::Vault(c)
    }
}

impl From<TenantCode> for Code {
    fn from(c: TenantCode) -> Self {
        Code::Tenant(c)
    }
}

impl PartialEq<VaultCode> for Code {
    fn eq(&self, other: &VaultCode) -> bool {
        *self == Code::Vault(*other)
    }
}

impl PartialEq<TenantCode> for Code {
    fn eq(&self, other: &TenantCode) -> bool {
        *self == Code::Tenant(*other)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The meaning of an API error code for the person at this end.
pub fn of_wire(code: WireCode) -> Code {
    use TenantCode as T;
    match code {
        WireCode::InvalidCredentials => T::InvalidCredentials.into(),
        WireCode::MfaRequired => T::MfaRequired.into(),
        WireCode::InvalidMfaCode => T::InvalidMfaCode.into(),
        WireCode::Forbidden => T::Forbidden.into(),
        WireCode::NotFound => VaultCode::NotFound.into(),
        WireCode::Conflict => T::Conflict.into(),
        WireCode::RateLimited => T::RateLimited.into(),
        WireCode::InvalidInput => T::InvalidInput.into(),
        // The session ended or cannot be renewed: sign in again.
        WireCode::Unauthorized | WireCode::TokenExpired | WireCode::InvalidRefreshToken => {
            T::NotSignedIn.into()
        }
        WireCode::WeakPassword => T::WeakPassword.into(),
        WireCode::MfaEnrollmentRequired => T::MfaEnrollmentRequired.into(),
        WireCode::TenantExpired => T::TenantExpired.into(),
        WireCode::QuotaExceeded => T::QuotaExceeded.into(),
        WireCode::DeviceNotApproved => T::DeviceNotApproved.into(),
        WireCode::OnHold => VaultCode::OnHold.into(),
        // Failures of the tenant itself or of the transfer: retried by sync, named here.
        WireCode::PayloadTooLarge
        | WireCode::Internal
        | WireCode::DigestMismatch
        | WireCode::CursorExpired
        | WireCode::RequestTimeout => T::TenantError.into(),
    }
}

impl SyncError {
    /// The stable code of this failure.
    pub fn stable_code(&self) -> Code {
        use TenantCode as T;
        match self {
            SyncError::NoRemote => T::NoRemote.into(),
            SyncError::NotSignedIn(_) => T::NotSignedIn.into(),
            SyncError::MfaCodeNeeded => T::MfaRequired.into(),
            SyncError::NotApproved(_) => T::DeviceNotApproved.into(),
            SyncError::Revoked => T::DeviceRevoked.into(),
            SyncError::Busy(_) => T::SyncBusy.into(),
            SyncError::Client(ClientError::PinMismatch { .. }) => T::PinMismatch.into(),
            SyncError::Client(ClientError::Unreachable { .. }) => T::Unreachable.into(),
            SyncError::Client(ClientError::InvalidPin(_) | ClientError::InvalidUrl(_)) => {
                VaultCode::InvalidArgument.into()
            }
            SyncError::Client(ClientError::Api { code, .. }) => of_wire(*code),
            SyncError::Client(ClientError::Tls(_) | ClientError::Malformed { .. }) => {
                T::TenantError.into()
            }
            SyncError::Vault(e) => e.code().into(),
            SyncError::Keyring(_) => VaultCode::KeyringUnavailable.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_serialized_and_disjoint_from_the_vaults() {
        let vault: HashSet<&str> = VaultCode::ALL.iter().map(|c| c.as_str()).collect();
        let mut seen = HashSet::new();
        for c in TenantCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
            assert!(!vault.contains(c.as_str()), "{c} is also a vault code");
        }
        assert_eq!(
            serde_json::to_string(&Code::from(VaultCode::Locked)).unwrap(),
            "\"locked\""
        );
    }

    #[test]
    fn an_expired_session_reads_as_not_signed_in_and_a_step_up_as_mfa_required() {
        assert_eq!(of_wire(WireCode::TokenExpired), TenantCode::NotSignedIn);
        assert_eq!(of_wire(WireCode::MfaRequired), TenantCode::MfaRequired);
        assert_eq!(of_wire(WireCode::NotFound), VaultCode::NotFound);
        let e = SyncError::Client(ClientError::Unreachable {
            url: "https://127.0.0.1:1".into(),
            reason: "refused".into(),
            timeout: false,
        });
        assert_eq!(e.stable_code(), TenantCode::Unreachable);
        assert_eq!(e.code(), "unreachable");
    }
}
