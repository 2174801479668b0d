//! Security alerts of a tenant: what the server detected that its Owners and Admins must know
//! about, and where it sends them.

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The rules the server watches the audit trail with (stable snake_case names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// Many failed logins in the tenant in a short time (password guessing or spraying).
    FailedLogins,
    /// An account locked after repeated failed attempts.
    AccountLocked,
    /// A sign-in from a device (user agent) or network range the account never used.
    NewLoginLocation,
    /// Two-factor authentication disabled, or reset by an admin.
    MfaDisabled,
    /// The Admin or Owner role granted.
    AdminGranted,
    /// An API key created.
    ApiKeyCreated,
    /// More downloads by one caller in an hour than the tenant's threshold.
    MassDownload,
    /// More deletions by one caller in an hour than the tenant's threshold.
    MassDeletion,
    /// The tenant's audit chain no longer verifies.
    AuditChainBroken,
    /// A backup of the server failed.
    BackupFailed,
}

impl AlertRule {
    /// Every rule.
    pub const ALL: [AlertRule; 10] = [
        AlertRule::FailedLogins,
        AlertRule::AccountLocked,
        AlertRule::NewLoginLocation,
        AlertRule::MfaDisabled,
        AlertRule::AdminGranted,
        AlertRule::ApiKeyCreated,
        AlertRule::MassDownload,
        AlertRule::MassDeletion,
        AlertRule::AuditChainBroken,
        AlertRule::BackupFailed,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::FailedLogins => "failed_logins",
            AlertRule::AccountLocked => "account_locked",
            AlertRule::NewLoginLocation => "new_login_location",
            AlertRule::MfaDisabled => "mfa_disabled",
            AlertRule::AdminGranted => "admin_granted",
            AlertRule::ApiKeyCreated => "api_key_created",
            AlertRule::MassDownload => "mass_download",
            AlertRule::MassDeletion => "mass_deletion",
            AlertRule::AuditChainBroken => "audit_chain_broken",
            AlertRule::BackupFailed => "backup_failed",
        }
    }

    /// The rule named `s`.
    pub fn parse(s: &str) -> Option<AlertRule> {
        AlertRule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// How urgent it is: `critical` (act now), `high`, `medium`.
    pub fn severity(self) -> &'static str {
        match self {
            AlertRule::AuditChainBroken | AlertRule::MassDeletion => "critical",
            AlertRule::FailedLogins
            | AlertRule::AccountLocked
            | AlertRule::MfaDisabled
            | AlertRule::AdminGranted
            | AlertRule::MassDownload
            | AlertRule::BackupFailed => "high",
            AlertRule::NewLoginLocation | AlertRule::ApiKeyCreated => "medium",
        }
    }
}

/// Where an alert is in its handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// New.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
}

impl AlertState {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<AlertState> {
        [
            AlertState::Open,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One alert. Repeats of the same rule about the same subject while it is not resolved
/// raise its `count` and `last_at` instead of a new alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Alert {
    /// Id.
    pub id: String,
    /// The rule that fired.
    pub rule: AlertRule,
    /// `critical`, `high` or `medium`.
    pub severity: String,
    /// Whom or what it is about (an account, an API key, the tenant).
    pub subject: String,
    /// What happened, in a sentence.
    pub summary: String,
    /// First occurrence (RFC 3339).
    pub first_at: String,
    /// Latest occurrence (RFC 3339).
    pub last_at: String,
    /// Occurrences.
    pub count: u32,
    /// Handling state.
    pub state: AlertState,
    /// Who acknowledged or resolved it.
    pub state_by: Option<String>,
    /// When (RFC 3339).
    pub state_at: Option<String>,
}

/// Alerts, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlertList {
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// A tenant's alert settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlertSettings {
    /// HTTPS URL every new alert is POSTed to (signed), or none. `http://` only to a
    /// loopback address (a local relay).
    pub webhook_url: Option<String>,
    /// Downloads by one caller within an hour that raise `mass_download` (1 to 1,000,000).
    pub downloads_per_hour: u32,
    /// Deletions by one caller within an hour that raise `mass_deletion` (1 to 1,000,000).
    pub deletions_per_hour: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            webhook_url: None,
            downloads_per_hour: 2000,
            deletions_per_hour: 100,
        }
    }
}

/// Settings as saved; the webhook's signing secret only when a new URL was set (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlertSettingsSaved {
    /// The settings.
    pub settings: AlertSettings,
    /// HMAC-SHA256 key of the `x-labvault-signature` header (`t=<unix>,v1=<hex HMAC of
    /// "<t>.<body>">`), new with each new URL.
    pub webhook_secret: Option<String>,
}

/// The JSON body POSTed to the webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlertNotice {
    /// Tenant slug.
    pub tenant: String,
    /// The alert.
    pub alert: Alert,
}

/// Query parameters of the alert list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AlertQuery {
    /// `open`, `acknowledged`, `resolved` (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Alerts whose latest occurrence is within this many hours (1 to 8760; default 24).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
}
