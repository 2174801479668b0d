//! The retention policy model (shared by the vault and the tenant server) and the deletion lifecycle
//! as pure functions of an item's facts, the policy and "now".
//!
//! Defaults are the ones labs know from their platform: research data 7 years, analysis results 7 years,
//! backups 90 days (all configurable), audit logs 6 years minimum (configurable only upwards), and session
//! data by plan tier: trial 24 hours, starter 30 days, professional 90 days, enterprise an explicit custom
//! value. Deleting starts a 30-day grace period (soft-deleted, restorable), after which the item is
//! cryptographically erased; an expired item enters the same lifecycle. A legal hold blocks every step.
//!
//! Periods are serialised as strings `"<n>h"`, `"<n>d"` or `"<n>y"` (calendar years: 29 February plus one
//! year is 28 February), so policies travel over the wire unchanged.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::{Duration, Month, OffsetDateTime};

/// Longest period accepted, so a hostile or mistyped policy cannot overflow date arithmetic.
pub const MAX_YEARS: u32 = 200;

/// Kinds of data with their own retention period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// Raw research data (default 7 years).
    ResearchData,
    /// Results of analyses (default 7 years).
    AnalysisResult,
    /// Backups (default 90 days).
    Backup,
    /// The audit log itself (at least 6 years, never lower).
    AuditLog,
    /// Session/scratch data, by plan tier.
    SessionData,
}

impl DataType {
    /// All data types, in display order.
    pub const ALL: [DataType; 5] = [
        DataType::ResearchData,
        DataType::AnalysisResult,
        DataType::Backup,
        DataType::AuditLog,
        DataType::SessionData,
    ];

    /// snake_case name (as stored and sent on the wire).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::ResearchData => "research_data",
            DataType::AnalysisResult => "analysis_result",
            DataType::Backup => "backup",
            DataType::AuditLog => "audit_log",
            DataType::SessionData => "session_data",
        }
    }
}

impl std::str::FromStr for DataType {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        DataType::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| PolicyError::UnknownDataType(s.to_string()))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Plan tiers; they fix the session-data retention except for enterprise, which sets its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanTier {
    /// 24 hours.
    Trial,
    /// 30 days.
    Starter,
    /// 90 days.
    Professional,
    /// Custom, explicit.
    Enterprise,
}

impl PlanTier {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanTier::Trial => "trial",
            PlanTier::Starter => "starter",
            PlanTier::Professional => "professional",
            PlanTier::Enterprise => "enterprise",
        }
    }

    /// The session-data period the tier imposes; `None` for enterprise (custom).
    pub fn session_data_period(self) -> Option<RetentionPeriod> {
        match self {
            PlanTier::Trial => Some(RetentionPeriod::Hours(24)),
            PlanTier::Starter => Some(RetentionPeriod::Days(30)),
            PlanTier::Professional => Some(RetentionPeriod::Days(90)),
            PlanTier::Enterprise => None,
        }
    }
}

impl std::str::FromStr for PlanTier {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        match s {
            "trial" => Ok(PlanTier::Trial),
            "starter" => Ok(PlanTier::Starter),
            "professional" => Ok(PlanTier::Professional),
            "enterprise" => Ok(PlanTier::Enterprise),
            other => Err(PolicyError::UnknownPlan(other.to_string())),
        }
    }
}

/// Why a policy, period or override was refused. Nothing is changed when one of these is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Audit-log retention below the 6-year minimum.
    #[error("audit log retention must be at least 6 years (got {0}); it cannot be lowered")]
    AuditRetentionTooShort(RetentionPeriod),
    /// Zero, negative or unparsable period.
    #[error("invalid retention period {0:?}: expected a positive number followed by h, d or y (e.g. 90d, 7y)")]
    InvalidPeriod(String),
    /// Period longer than [`MAX_YEARS`].
    #[error("retention period {0} is longer than the {MAX_YEARS}-year maximum")]
    PeriodTooLong(RetentionPeriod),
    /// Session-data retention is fixed by the plan tier unless the plan is enterprise.
    #[error(
        "session data retention is set by the {0} plan ({1}); only enterprise plans can change it"
    )]
    NotConfigurable(&'static str, RetentionPeriod),
    /// Grace period outside 0 days ..= 1 year.
    #[error("grace period {0} is out of range (0d to 365d)")]
    InvalidGrace(RetentionPeriod),
    /// Unknown data type name.
    #[error("unknown data type {0:?}: expected research_data, analysis_result, backup, audit_log or session_data")]
    UnknownDataType(String),
    /// Unknown plan name.
    #[error("unknown plan tier {0:?}: expected trial, starter, professional or enterprise")]
    UnknownPlan(String),
}

impl PolicyError {
    /// Stable snake_case error code.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::AuditRetentionTooShort(_) => "audit_retention_too_short",
            PolicyError::InvalidPeriod(_) => "invalid_period",
            PolicyError::PeriodTooLong(_) => "invalid_period",
            PolicyError::NotConfigurable(..) => "not_configurable",
            PolicyError::InvalidGrace(_) => "invalid_period",
            PolicyError::UnknownDataType(_) => "unknown_data_type",
            PolicyError::UnknownPlan(_) => "unknown_plan",
        }
    }
}

/// A retention period in hours, days or calendar years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetentionPeriod {
    /// Exact hours.
    Hours(u32),
    /// Exact days (24 h).
    Days(u32),
    /// Calendar years.
    Years(u32),
}

impl RetentionPeriod {
    /// The audit-log floor.
    pub const AUDIT_LOG_MINIMUM: RetentionPeriod = RetentionPeriod::Years(6);
    /// The default soft-delete grace.
    pub const DEFAULT_GRACE: RetentionPeriod = RetentionPeriod::Days(30);

    /// Parses `"24h"`, `"90d"`, `"7y"`; zero and negative values are refused.
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        Self::parse_allow_zero(s).and_then(|p| {
            if p.is_zero() {
                Err(PolicyError::InvalidPeriod(s.to_string()))
            } else {
                Ok(p)
            }
        })
    }

    fn parse_allow_zero(s: &str) -> Result<Self, PolicyError> {
        let t = s.trim();
        let bad = || PolicyError::InvalidPeriod(s.to_string());
        if t.len() < 2 || !t.is_ascii() {
            return Err(bad());
        }
        let (num, unit) = t.split_at(t.len() - 1);
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = num.parse().map_err(|_| bad())?;
        let p = match unit {
            "h" | "H" => RetentionPeriod::Hours(n),
            "d" | "D" => RetentionPeriod::Days(n),
            "y" | "Y" => RetentionPeriod::Years(n),
            _ => return Err(bad()),
        };
        if p.max_days() > MAX_YEARS as u64 * 366 {
            return Err(PolicyError::PeriodTooLong(p));
        }
        Ok(p)
    }

    fn is_zero(self) -> bool {
        matches!(
            self,
            RetentionPeriod::Hours(0) | RetentionPeriod::Days(0) | RetentionPeriod::Years(0)
        )
    }

    fn max_days(self) -> u64 {
        match self {
            RetentionPeriod::Hours(h) => (h as u64).div_ceil(24),
            RetentionPeriod::Days(d) => d as u64,
            RetentionPeriod::Years(y) => y as u64 * 366,
        }
    }

    /// True when this period lasts at least `years` calendar years whatever the start date
    /// (days and hours are compared against the longest such span, leap days included).
    pub fn covers_years(self, years: u32) -> bool {
        let longest_days = years as u64 * 365 + (years as u64).div_ceil(4);
        match self {
            RetentionPeriod::Years(y) => y >= years,
            RetentionPeriod::Days(d) => d as u64 >= longest_days,
            RetentionPeriod::Hours(h) => h as u64 >= longest_days * 24,
        }
    }

    /// `start + self` (calendar arithmetic for years; saturates at the far future).
    pub fn add_to(self, start: OffsetDateTime) -> OffsetDateTime {
        let far = OffsetDateTime::UNIX_EPOCH + Duration::days(365 * 8000);
        match self {
            RetentionPeriod::Hours(h) => {
                start.checked_add(Duration::hours(h as i64)).unwrap_or(far)
            }
            RetentionPeriod::Days(d) => start.checked_add(Duration::days(d as i64)).unwrap_or(far),
            RetentionPeriod::Years(y) => {
                let year = start.year() + y as i32;
                start
                    .replace_year(year)
                    .or_else(|_| {
                        // 29 February in a non-leap target year.
                        start
                            .replace_day(28)
                            .and_then(|s| s.replace_month(Month::February))
                            .and_then(|s| s.replace_year(year))
                    })
                    .unwrap_or(far)
            }
        }
    }
}

impl fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionPeriod::Hours(n) => write!(f, "{n}h"),
            RetentionPeriod::Days(n) => write!(f, "{n}d"),
            RetentionPeriod::Years(n) => write!(f, "{n}y"),
        }
    }
}

impl std::str::FromStr for RetentionPeriod {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        RetentionPeriod::parse(s)
    }
}

impl Serialize for RetentionPeriod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RetentionPeriod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Zero is representable on the wire (a zero grace); `RetentionPolicy::validate` decides.
        RetentionPeriod::parse_allow_zero(&s).map_err(serde::de::Error::custom)
    }
}

/// The effective retention rules for a vault (or tenant) or one of its projects.
///
/// Always obtained through [`RetentionPolicy::defaults`], [`RetentionPolicy::enterprise`],
/// [`RetentionPolicy::apply`] or deserialisation followed by [`RetentionPolicy::validate`], so an
/// invalid policy (audit below 6 years, zero periods) is never in effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Policy model version (1).
    pub version: u16,
    /// Plan tier (fixes session-data retention unless enterprise).
    pub plan: PlanTier,
    /// Research data.
    pub research_data: RetentionPeriod,
    /// Analysis results.
    pub analysis_result: RetentionPeriod,
    /// Backups.
    pub backup: RetentionPeriod,
    /// Audit log (at least 6 years).
    pub audit_log: RetentionPeriod,
    /// Session data.
    pub session_data: RetentionPeriod,
    /// Soft-delete grace before cryptographic erasure.
    pub grace: RetentionPeriod,
}

/// Changes to a policy at a narrower scope (vault over defaults, project over vault). `None` keeps the
/// inherited value. The plan tier is not overridable (it belongs to the vault/tenant).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    /// Research data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub research_data: Option<RetentionPeriod>,
    /// Analysis results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_result: Option<RetentionPeriod>,
    /// Backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<RetentionPeriod>,
    /// Audit log (never below 6 years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<RetentionPeriod>,
    /// Session data (enterprise only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_data: Option<RetentionPeriod>,
    /// Grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<RetentionPeriod>,
}

impl PolicyOverride {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == PolicyOverride::default()
    }

    /// Sets the field for `data_type`.
    pub fn set(&mut self, data_type: DataType, period: RetentionPeriod) {
        let slot = match data_type {
            DataType::ResearchData => &mut self.research_data,
            DataType::AnalysisResult => &mut self.analysis_result,
            DataType::Backup => &mut self.backup,
            DataType::AuditLog => &mut self.audit_log,
            DataType::SessionData => &mut self.session_data,
        };
        *slot = Some(period);
    }

    /// Layers `narrower` on top of `self` (narrower wins).
    pub fn merged_with(&self, narrower: &PolicyOverride) -> PolicyOverride {
        PolicyOverride {
            research_data: narrower.research_data.or(self.research_data),
            analysis_result: narrower.analysis_result.or(self.analysis_result),
            backup: narrower.backup.or(self.backup),
            audit_log: narrower.audit_log.or(self.audit_log),
            session_data: narrower.session_data.or(self.session_data),
            grace: narrower.grace.or(self.grace),
        }
    }
}

impl RetentionPolicy {
    /// The shipped defaults for a non-enterprise plan; enterprise needs [`RetentionPolicy::enterprise`]
    /// (its session-data period has no default), and asking for it here gives the professional values
    /// with the plan set to enterprise.
    pub fn defaults(plan: PlanTier) -> Self {
        RetentionPolicy {
            version: 1,
            plan,
            research_data: RetentionPeriod::Years(7),
            analysis_result: RetentionPeriod::Years(7),
            backup: RetentionPeriod::Days(90),
            audit_log: RetentionPeriod::AUDIT_LOG_MINIMUM,
            session_data: plan
                .session_data_period()
                .unwrap_or(RetentionPeriod::Days(90)),
            grace: RetentionPeriod::DEFAULT_GRACE,
        }
    }

    /// Enterprise plan with its explicit session-data period (validated).
    pub fn enterprise(session_data: RetentionPeriod) -> Result<Self, PolicyError> {
        let p = RetentionPolicy {
            session_data,
            ..Self::defaults(PlanTier::Enterprise)
        };
        p.validate()?;
        Ok(p)
    }

    /// The period for `data_type`.
    pub fn period(&self, data_type: DataType) -> RetentionPeriod {
        match data_type {
            DataType::ResearchData => self.research_data,
            DataType::AnalysisResult => self.analysis_result,
            DataType::Backup => self.backup,
            DataType::AuditLog => self.audit_log,
            DataType::SessionData => self.session_data,
        }
    }

    /// Checks every rule: positive periods, at most [`MAX_YEARS`], audit log at least 6 years,
    /// session data fixed by a non-enterprise plan, grace between 0 and 365 days.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for dt in DataType::ALL {
            let p = self.period(dt);
            if p.is_zero() {
                return Err(PolicyError::InvalidPeriod(p.to_string()));
            }
            if p.max_days() > MAX_YEARS as u64 * 366 {
                return Err(PolicyError::PeriodTooLong(p));
            }
        }
        if !self.audit_log.covers_years(6) {
            return Err(PolicyError::AuditRetentionTooShort(self.audit_log));
        }
        if let Some(fixed) = self.plan.session_data_period() {
            if self.session_data != fixed {
                return Err(PolicyError::NotConfigurable(self.plan.as_str(), fixed));
            }
        }
        if self.grace.max_days() > 365 {
            return Err(PolicyError::InvalidGrace(self.grace));
        }
        Ok(())
    }

    /// This policy with `ov` applied, validated; `self` is unchanged on error.
    pub fn apply(&self, ov: &PolicyOverride) -> Result<RetentionPolicy, PolicyError> {
        let p = RetentionPolicy {
            version: self.version,
            plan: self.plan,
            research_data: ov.research_data.unwrap_or(self.research_data),
            analysis_result: ov.analysis_result.unwrap_or(self.analysis_result),
            backup: ov.backup.unwrap_or(self.backup),
            audit_log: ov.audit_log.unwrap_or(self.audit_log),
            session_data: ov.session_data.unwrap_or(self.session_data),
            grace: ov.grace.unwrap_or(self.grace),
        };
        p.validate()?;
        Ok(p)
    }
}

/// The lifecycle state stored with an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// Visible and usable.
    Active,
    /// Hidden, restorable until the grace period ends.
    SoftDeleted,
    /// Data key destroyed and blob removed; only the record of when and why remains.
    Erased,
}

/// The state shown to users: the stored state, with "on hold" taking precedence over active/soft-deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayState {
    /// Active.
    Active,
    /// Under legal hold (active or soft-deleted); nothing will happen to it.
    OnHold,
    /// Soft-deleted.
    SoftDeleted,
    /// Erased.
    Erased,
}

/// The next thing the lifecycle will do to an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStep {
    /// The retention period ended: soft-delete it (reason `expired`), starting the grace period.
    Expire,
    /// The grace period ended: erase it cryptographically.
    Erase,
}

/// Why an item was (soft-)deleted or erased; stored with the item so its record says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionCause {
    /// A user deleted it.
    User,
    /// Its retention period ended.
    Expired,
    /// Immediate erasure requested (right to deletion), grace skipped.
    RightToErasure,
}

/// The facts about an item that the lifecycle depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemLifecycle {
    /// Its data type.
    pub data_type: DataType,
    /// When it was created (retention starts here).
    pub created_at: OffsetDateTime,
    /// Stored state.
    pub state: LifecycleState,
    /// When it was soft-deleted (required for [`LifecycleState::SoftDeleted`]).
    pub deleted_at: Option<OffsetDateTime>,
    /// Under a legal hold (its own or its project's).
    pub on_hold: bool,
}

/// Where an item stands and what comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LifecycleStatus {
    /// What to show.
    pub state: DisplayState,
    /// End of its retention period.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The next step, if any (also shown when a hold blocks it).
    pub next_step: Option<LifecycleStep>,
    /// When that step becomes due.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_step_at: Option<OffsetDateTime>,
    /// The step is due now and nothing blocks it.
    pub due: bool,
    /// A legal hold is what stops the step.
    pub blocked_by_hold: bool,
}

/// End of the retention period of an item of `data_type` created at `created_at`.
pub fn expires_at(
    data_type: DataType,
    created_at: OffsetDateTime,
    policy: &RetentionPolicy,
) -> OffsetDateTime {
    policy.period(data_type).add_to(created_at)
}

/// When a soft-deleted item will be erased.
pub fn erase_at(deleted_at: OffsetDateTime, policy: &RetentionPolicy) -> OffsetDateTime {
    match policy.grace {
        RetentionPeriod::Hours(0) | RetentionPeriod::Days(0) | RetentionPeriod::Years(0) => {
            deleted_at
        }
        g => g.add_to(deleted_at),
    }
}

/// Evaluates an item at `now`.
pub fn evaluate(
    item: &ItemLifecycle,
    policy: &RetentionPolicy,
    now: OffsetDateTime,
) -> LifecycleStatus {
    let expires = expires_at(item.data_type, item.created_at, policy);
    let (next_step, next_step_at) = match item.state {
        LifecycleState::Active => (Some(LifecycleStep::Expire), Some(expires)),
        LifecycleState::SoftDeleted => (
            Some(LifecycleStep::Erase),
            // A soft-deleted item without a date is treated as deleted now: it gets its full grace.
            Some(erase_at(item.deleted_at.unwrap_or(now), policy)),
        ),
        LifecycleState::Erased => (None, None),
    };
    let state = match (item.state, item.on_hold) {
        (LifecycleState::Erased, _) => DisplayState::Erased,
        (_, true) => DisplayState::OnHold,
        (LifecycleState::Active, false) => DisplayState::Active,
        (LifecycleState::SoftDeleted, false) => DisplayState::SoftDeleted,
    };
    let time_reached = next_step_at.is_some_and(|at| at <= now);
    LifecycleStatus {
        state,
        expires_at: expires,
        next_step,
        next_step_at,
        due: time_reached && !item.on_hold,
        blocked_by_hold: item.on_hold && next_step.is_some(),
    }
}

/// The step to perform now, or `None` (nothing due, or held).
pub fn due_step(
    item: &ItemLifecycle,
    policy: &RetentionPolicy,
    now: OffsetDateTime,
) -> Option<LifecycleStep> {
    let s = evaluate(item, policy, now);
    if s.due {
        s.next_step
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use time::macros::datetime;

    #[test]
    fn defaults_match_the_platform_table() {
        let p = RetentionPolicy::defaults(PlanTier::Professional);
        p.validate().unwrap();
        assert_eq!(p.research_data, RetentionPeriod::Years(7));
        assert_eq!(p.analysis_result, RetentionPeriod::Years(7));
        assert_eq!(p.backup, RetentionPeriod::Days(90));
        assert_eq!(p.audit_log, RetentionPeriod::Years(6));
        assert_eq!(p.grace, RetentionPeriod::Days(30));
        let session = |t| RetentionPolicy::defaults(t).session_data;
        assert_eq!(session(PlanTier::Trial), RetentionPeriod::Hours(24));
        assert_eq!(session(PlanTier::Starter), RetentionPeriod::Days(30));
        assert_eq!(session(PlanTier::Professional), RetentionPeriod::Days(90));
        let e = RetentionPolicy::enterprise(RetentionPeriod::Years(2)).unwrap();
        assert_eq!(e.session_data, RetentionPeriod::Years(2));
    }

    #[test]
    fn audit_retention_below_six_years_is_refused() {
        let base = RetentionPolicy::defaults(PlanTier::Starter);
        for short in ["5y", "2000d", "2191d", "52583h"] {
            let ov = PolicyOverride {
                audit_log: Some(short.parse().unwrap()),
                ..Default::default()
            };
            let e = base.apply(&ov).unwrap_err();
            assert_eq!(e.code(), "audit_retention_too_short", "{short}");
            assert!(e.to_string().contains("at least 6 years"));
        }
        for long in ["6y", "10y", "2192d"] {
            let ov = PolicyOverride {
                audit_log: Some(long.parse().unwrap()),
                ..Default::default()
            };
            assert!(base.apply(&ov).is_ok(), "{long}");
        }
        // Also refused when it arrives over the wire.
        let mut json = serde_json::to_value(&base).unwrap();
        json["audit_log"] = "1y".into();
        let p: RetentionPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(
            p.validate().unwrap_err().code(),
            "audit_retention_too_short"
        );
    }

    #[test]
    fn bad_periods_are_refused() {
        for bad in [
            "0d",
            "0y",
            "-5d",
            "5",
            "d",
            "7 years",
            "1.5y",
            "",
            "+3d",
            "99999999999d",
            "201y",
        ] {
            let e = RetentionPeriod::parse(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_period", "{bad}");
        }
        let base = RetentionPolicy::defaults(PlanTier::Professional);
        let mut zero = base.clone();
        zero.backup = RetentionPeriod::Days(0);
        assert_eq!(zero.validate().unwrap_err().code(), "invalid_period");
        let long_grace = PolicyOverride {
            grace: Some(RetentionPeriod::Days(400)),
            ..Default::default()
        };
        assert_eq!(
            base.apply(&long_grace).unwrap_err().code(),
            "invalid_period"
        );
    }

    #[test]
    fn session_data_is_fixed_by_non_enterprise_plans() {
        let ov = PolicyOverride {
            session_data: Some(RetentionPeriod::Days(365)),
            ..Default::default()
        };
        let e = RetentionPolicy::defaults(PlanTier::Trial)
            .apply(&ov)
            .unwrap_err();
        assert_eq!(e.code(), "not_configurable");
        let ent = RetentionPolicy::enterprise(RetentionPeriod::Days(10)).unwrap();
        assert_eq!(
            ent.apply(&ov).unwrap().session_data,
            RetentionPeriod::Days(365)
        );
    }

    #[test]
    fn overrides_layer_and_serialise() {
        let vault = PolicyOverride {
            research_data: Some(RetentionPeriod::Years(10)),
            backup: Some(RetentionPeriod::Days(30)),
            ..Default::default()
        };
        let project = PolicyOverride {
            research_data: Some(RetentionPeriod::Years(15)),
            ..Default::default()
        };
        let eff = RetentionPolicy::defaults(PlanTier::Professional)
            .apply(&vault.merged_with(&project))
            .unwrap();
        assert_eq!(eff.research_data, RetentionPeriod::Years(15));
        assert_eq!(eff.backup, RetentionPeriod::Days(30));
        assert_eq!(eff.analysis_result, RetentionPeriod::Years(7));
        let json = serde_json::to_string(&project).unwrap();
        assert_eq!(json, r#"{"research_data":"15y"}"#);
        assert_eq!(
            serde_json::from_str::<PolicyOverride>(&json).unwrap(),
            project
        );
        assert!(serde_json::from_str::<PolicyOverride>(r#"{"plan":"enterprise"}"#).is_err());
        let p = RetentionPolicy::defaults(PlanTier::Trial);
        let back: RetentionPolicy =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn calendar_years_handle_leap_days() {
        let y = RetentionPeriod::Years(7);
        assert_eq!(
            y.add_to(datetime!(2024-02-29 10:00 UTC)),
            datetime!(2031-02-28 10:00 UTC)
        );
        assert_eq!(
            RetentionPeriod::Years(4).add_to(datetime!(2024-02-29 10:00 UTC)),
            datetime!(2028-02-29 10:00 UTC)
        );
        assert_eq!(
            RetentionPeriod::Hours(24).add_to(datetime!(2026-12-31 23:00 UTC)),
            datetime!(2027-01-01 23:00 UTC)
        );
    }

    fn item(dt: DataType, created: OffsetDateTime) -> ItemLifecycle {
        ItemLifecycle {
            data_type: dt,
            created_at: created,
            state: LifecycleState::Active,
            deleted_at: None,
            on_hold: false,
        }
    }

    #[test]
    fn lifecycle_walks_from_active_to_erased_as_time_passes() {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        let policy = RetentionPolicy::defaults(PlanTier::Professional);
        let mut it = item(DataType::ResearchData, clock.now());

        let s = evaluate(&it, &policy, clock.now());
        assert_eq!(s.state, DisplayState::Active);
        assert_eq!(s.expires_at, datetime!(2033-01-01 00:00 UTC));
        assert_eq!(
            (s.next_step, s.next_step_at),
            (
                Some(LifecycleStep::Expire),
                Some(datetime!(2033-01-01 00:00 UTC))
            )
        );
        assert!(!s.due);
        assert_eq!(due_step(&it, &policy, clock.now()), None);

        clock.advance(Duration::days(365 * 7 + 1)); // 2032-12-31: one leap day short
        assert_eq!(due_step(&it, &policy, clock.now()), None);
        clock.advance(Duration::days(1));
        assert_eq!(
            due_step(&it, &policy, clock.now()),
            Some(LifecycleStep::Expire)
        );

        it.state = LifecycleState::SoftDeleted;
        it.deleted_at = Some(clock.now());
        let s = evaluate(&it, &policy, clock.now());
        assert_eq!(s.state, DisplayState::SoftDeleted);
        assert_eq!(s.next_step, Some(LifecycleStep::Erase));
        assert_eq!(s.next_step_at, Some(clock.now() + Duration::days(30)));
        clock.advance(Duration::days(29));
        assert_eq!(due_step(&it, &policy, clock.now()), None);
        clock.advance(Duration::days(1));
        assert_eq!(
            due_step(&it, &policy, clock.now()),
            Some(LifecycleStep::Erase)
        );

        it.state = LifecycleState::Erased;
        let s = evaluate(&it, &policy, clock.now());
        assert_eq!(
            (s.state, s.next_step, s.due),
            (DisplayState::Erased, None, false)
        );
    }

    #[test]
    fn a_hold_blocks_every_step() {
        let policy = RetentionPolicy::defaults(PlanTier::Trial);
        let created = datetime!(2026-01-01 00:00 UTC);
        let far = created + Duration::days(365 * 50);
        let mut it = item(DataType::SessionData, created);
        assert_eq!(
            due_step(&it, &policy, created + Duration::hours(24)),
            Some(LifecycleStep::Expire)
        );
        it.on_hold = true;
        let s = evaluate(&it, &policy, far);
        assert_eq!(s.state, DisplayState::OnHold);
        assert!(!s.due && s.blocked_by_hold);
        assert_eq!(due_step(&it, &policy, far), None);
        it.state = LifecycleState::SoftDeleted;
        it.deleted_at = Some(created);
        assert_eq!(due_step(&it, &policy, far), None);
        it.on_hold = false;
        assert_eq!(due_step(&it, &policy, far), Some(LifecycleStep::Erase));
    }

    #[test]
    fn zero_grace_erases_right_after_deletion() {
        let mut policy = RetentionPolicy::defaults(PlanTier::Starter);
        policy.grace = RetentionPeriod::Days(0);
        policy.validate().unwrap();
        let t = datetime!(2026-05-05 05:05 UTC);
        let mut it = item(DataType::Backup, t);
        it.state = LifecycleState::SoftDeleted;
        it.deleted_at = Some(t);
        assert_eq!(due_step(&it, &policy, t), Some(LifecycleStep::Erase));
    }
}
