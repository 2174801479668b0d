//! The detector: a pure state machine over audit events. It keeps sliding windows (failed
//! logins per tenant, downloads and deletions per caller) and says which rules fire; the
//! caller raises them ([`super::raise`]). Sign-ins from a new device or network range need
//! what the account used before, which lives in the store: the detector only names the
//! fingerprint to check ([`Observation::Login`]).

use std::collections::{HashMap, VecDeque};

use labvault_governance::audit::actions;
use labvault_wire::AlertRule;

/// Failed logins in a tenant within [`FAILED_LOGIN_WINDOW`] that raise `failed_logins`.
pub const FAILED_LOGINS: usize = 10;
/// The window of [`FAILED_LOGINS`] (seconds).
pub const FAILED_LOGIN_WINDOW: i64 = 600;
/// The window of the download and deletion thresholds (seconds).
pub const HOUR: i64 = 3600;

/// The fields of an audit event the rules read.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Event {
    /// Tenant (the chain's id).
    #[serde(rename = "device_id")]
    pub tenant: String,
    /// Actor.
    pub user: String,
    /// Action.
    pub action: String,
    /// Resource.
    pub resource: String,
    /// Client address.
    pub ip_address: String,
    /// Client user agent.
    pub user_agent: String,
    /// `success`, `failure`, `denied`.
    pub result: String,
    /// Error code or details.
    #[serde(default)]
    pub detail: String,
}

/// Whether the rules read events of this action at all: a cheap test on the raw JSON
/// before it is parsed, so the requests that make up most traffic cost nothing here.
pub fn interesting(action: &str) -> bool {
    matches!(
        action,
        actions::AUTH_LOGIN
            | actions::AUTH_LOCKOUT
            | actions::ACCOUNT_MFA_DISABLE
            | actions::MEMBER_MFA_RESET
            | actions::MEMBER_ROLE_CHANGE
            | actions::TENANT_OWNERSHIP_TRANSFER
            | actions::APIKEY_CREATE
            | actions::BLOB_GET
            | actions::BLOB_BATCH
    ) || is_deletion(action)
}

/// Whether the rules for `action` compare against the tenant's thresholds (downloads,
/// deletions).
pub fn uses_thresholds(action: &str) -> bool {
    matches!(action, actions::BLOB_GET | actions::BLOB_BATCH) || is_deletion(action)
}

/// Actions that delete something (members, projects, accounts, keys, devices, access).
fn is_deletion(action: &str) -> bool {
    matches!(
        action,
        actions::PROJECT_DELETE
            | actions::MEMBER_REMOVE
            | actions::ACCOUNT_DELETE
            | actions::APIKEY_REVOKE
            | actions::DEVICE_REVOKE
            | actions::PROJECT_ROLE_REMOVE
            | actions::INVITATION_REVOKE
            | actions::TENANT_DELETE
    )
}

/// The action of a raw audit event JSON, without parsing the rest.
pub fn action_of(json: &str) -> Option<&str> {
    let i = json.find("\"action\":\"")? + 10;
    let end = json[i..].find('"')?;
    Some(&json[i..i + end])
}

/// What the detector concluded from one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A rule fired.
    Fire {
        /// The rule.
        rule: AlertRule,
        /// Whom or what about.
        subject: String,
        /// What happened.
        summary: String,
    },
    /// A successful sign-in: check whether the account used this fingerprint before.
    Login {
        /// Account.
        user: String,
        /// Device (user-agent product) and network range.
        fingerprint: String,
    },
}

/// Thresholds of one tenant.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Downloads per caller per hour.
    pub downloads_per_hour: u32,
    /// Deletions per caller per hour.
    pub deletions_per_hour: u32,
}

/// The network range of an address: the /16 of IPv4, the /48 of IPv6 (about the span of an
/// organisation or a provider's region; no geolocation database is needed).
pub fn network_range(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.0.0/16", o[0], o[1])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => ip.to_string(),
    }
}

/// The product of a user agent (`labvault-desktop/1.4 (linux)` → `labvault-desktop`): a new
/// version of the same program is not a new device.
pub fn agent_product(ua: &str) -> String {
    ua.split(['/', ' ']).next().unwrap_or("").to_string()
}

/// The sliding windows.
#[derive(Default)]
pub struct Detector {
    windows: HashMap<(String, AlertRule, String), VecDeque<i64>>,
}

impl Detector {
    /// A detector with empty windows.
    pub fn new() -> Detector {
        Detector::default()
    }

    /// Counts `at` in the window of (tenant, rule, subject) and says whether it just reached
    /// `limit` (then the window starts again, so a sustained flood fires once per window).
    fn count(
        &mut self,
        key: (String, AlertRule, String),
        at: i64,
        span: i64,
        limit: usize,
    ) -> bool {
        let w = self.windows.entry(key).or_default();
        while w.front().is_some_and(|t| *t <= at - span) {
            w.pop_front();
        }
        w.push_back(at);
        if w.len() >= limit {
            w.clear();
            true
        } else {
            false
        }
    }

    /// Forgets windows with nothing in the last hour (bounded memory).
    pub fn prune(&mut self, now: i64) {
        self.windows
            .retain(|_, w| w.back().is_some_and(|t| *t > now - HOUR));
    }

    /// What `e`, at `at` (unix seconds), means.
    pub fn observe(&mut self, e: &Event, at: i64, th: Thresholds) -> Vec<Observation> {
        let ok = e.result == "success";
        let fire = |rule, subject: &str, summary: String| Observation::Fire {
            rule,
            subject: subject.to_string(),
            summary,
        };
        let mut out = Vec::new();
        match e.action.as_str() {
            actions::AUTH_LOGIN if !ok && e.detail != "rate_limited" => {
                let key = (e.tenant.clone(), AlertRule::FailedLogins, String::new());
                if self.count(key, at, FAILED_LOGIN_WINDOW, FAILED_LOGINS) {
                    out.push(fire(
                        AlertRule::FailedLogins,
                        "tenant",
                        format!(
                            "{FAILED_LOGINS} failed sign-ins within {} minutes (the latest for {} from {})",
                            FAILED_LOGIN_WINDOW / 60,
                            e.user,
                            e.ip_address
                        ),
                    ));
                }
            }
            actions::AUTH_LOGIN if ok => out.push(Observation::Login {
                user: e.user.clone(),
                fingerprint: format!(
                    "{}|{}",
                    agent_product(&e.user_agent),
                    network_range(&e.ip_address)
                ),
            }),
            actions::AUTH_LOCKOUT => out.push(fire(
                AlertRule::AccountLocked,
                &e.user,
                format!(
                    "{} was locked after repeated failed attempts (the latest from {})",
                    e.user, e.ip_address
                ),
            )),
            actions::ACCOUNT_MFA_DISABLE if ok => out.push(fire(
                AlertRule::MfaDisabled,
                &e.user,
                format!("{} turned two-factor authentication off", e.user),
            )),
            actions::MEMBER_MFA_RESET if ok => out.push(fire(
                AlertRule::MfaDisabled,
                &e.resource,
                format!(
                    "{} reset the two-factor authentication of {}",
                    e.user, e.resource
                ),
            )),
            actions::MEMBER_ROLE_CHANGE
                if ok
                    && (e.resource.ends_with("/role/admin")
                        || e.resource.ends_with("/role/owner")) =>
            {
                let member = e
                    .resource
                    .strip_prefix("member/")
                    .and_then(|r| r.split('/').next())
                    .unwrap_or(&e.resource);
                let role = e.resource.rsplit('/').next().unwrap_or("");
                out.push(fire(
                    AlertRule::AdminGranted,
                    &format!("member/{member}"),
                    format!("{} gave member {member} the {role} role", e.user),
                ));
            }
            actions::TENANT_OWNERSHIP_TRANSFER if ok => out.push(fire(
                AlertRule::AdminGranted,
                &e.resource,
                format!(
                    "{} transferred the ownership of the lab ({})",
                    e.user, e.resource
                ),
            )),
            actions::APIKEY_CREATE if ok => out.push(fire(
                AlertRule::ApiKeyCreated,
                &e.resource,
                format!("{} created an API key ({})", e.user, e.resource),
            )),
            actions::BLOB_GET | actions::BLOB_BATCH if ok => {
                let key = (e.tenant.clone(), AlertRule::MassDownload, e.user.clone());
                if self.count(key, at, HOUR, th.downloads_per_hour.max(1) as usize) {
                    out.push(fire(
                        AlertRule::MassDownload,
                        &e.user,
                        format!(
                            "{} made {} downloads within an hour (the tenant's threshold), from {}",
                            e.user, th.downloads_per_hour, e.ip_address
                        ),
                    ));
                }
            }
            a if ok && is_deletion(a) => {
                let key = (e.tenant.clone(), AlertRule::MassDeletion, e.user.clone());
                if self.count(key, at, HOUR, th.deletions_per_hour.max(1) as usize) {
                    out.push(fire(
                        AlertRule::MassDeletion,
                        &e.user,
                        format!(
                            "{} made {} deletions within an hour (the tenant's threshold; the latest {} {})",
                            e.user, th.deletions_per_hour, e.action, e.resource
                        ),
                    ));
                }
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str, result: &str, user: &str) -> Event {
        Event {
            tenant: "t1".into(),
            user: user.into(),
            action: action.into(),
            resource: "r".into(),
            ip_address: "10.1.2.3".into(),
            user_agent: "labvault-desktop/1.0".into(),
            result: result.into(),
            detail: String::new(),
        }
    }

    const TH: Thresholds = Thresholds {
        downloads_per_hour: 5,
        deletions_per_hour: 3,
    };

    fn rules(obs: &[Observation]) -> Vec<AlertRule> {
        obs.iter()
            .filter_map(|o| match o {
                Observation::Fire { rule, .. } => Some(*rule),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn failed_logins_fire_at_the_threshold_within_the_window_only() {
        let mut d = Detector::new();
        // Spread over more than the window: never 10 within 10 minutes.
        for i in 0..30 {
            assert!(d
                .observe(&ev("auth.login", "failure", "a@x"), i * 120, TH)
                .is_empty());
        }
        let mut fired = Vec::new();
        for i in 0..10 {
            fired.extend(rules(&d.observe(
                &ev("auth.login", "failure", "b@x"),
                10_000 + i,
                TH,
            )));
        }
        assert_eq!(fired, [AlertRule::FailedLogins]);
    }

    #[test]
    fn downloads_and_deletions_fire_per_caller_at_the_tenants_threshold() {
        let mut d = Detector::new();
        let mut fired = Vec::new();
        for i in 0..4 {
            fired.extend(rules(&d.observe(&ev("blob.get", "success", "a@x"), i, TH)));
            fired.extend(rules(&d.observe(&ev("blob.get", "success", "b@x"), i, TH)));
        }
        assert!(fired.is_empty(), "4 each, threshold 5");
        fired.extend(rules(&d.observe(
            &ev("blob.batch", "success", "a@x"),
            10,
            TH,
        )));
        assert_eq!(fired, [AlertRule::MassDownload]);
        // An hour later the window has emptied.
        let mut later = Vec::new();
        for i in 0..4 {
            later.extend(rules(&d.observe(
                &ev("blob.get", "success", "b@x"),
                4000 + i,
                TH,
            )));
        }
        assert!(later.is_empty());
        let mut del = Vec::new();
        for a in ["project.delete", "member.remove", "apikey.revoke"] {
            del.extend(rules(&d.observe(&ev(a, "success", "c@x"), 20, TH)));
        }
        assert_eq!(del, [AlertRule::MassDeletion]);
        assert!(rules(&d.observe(&ev("project.delete", "denied", "d@x"), 20, TH)).is_empty());
    }

    #[test]
    fn single_event_rules_and_what_does_not_fire() {
        let mut d = Detector::new();
        let mut role = ev("member.role_change", "success", "pi@x");
        role.resource = "member/u-7/role/admin".into();
        assert_eq!(
            d.observe(&role, 0, TH),
            [Observation::Fire {
                rule: AlertRule::AdminGranted,
                subject: "member/u-7".into(),
                summary: "pi@x gave member u-7 the admin role".into()
            }]
        );
        role.resource = "member/u-7/role/editor".into();
        assert!(d.observe(&role, 0, TH).is_empty(), "not an admin role");
        for (a, r) in [
            ("auth.lockout", AlertRule::AccountLocked),
            ("account.mfa_disable", AlertRule::MfaDisabled),
            ("member.mfa_reset", AlertRule::MfaDisabled),
            ("apikey.create", AlertRule::ApiKeyCreated),
        ] {
            assert_eq!(
                rules(&d.observe(
                    &ev(
                        a,
                        if a == "auth.lockout" {
                            "denied"
                        } else {
                            "success"
                        },
                        "u@x"
                    ),
                    0,
                    TH
                )),
                [r],
                "{a}"
            );
        }
        assert!(d
            .observe(&ev("apikey.create", "denied", "u@x"), 0, TH)
            .is_empty());
        assert_eq!(
            d.observe(&ev("auth.login", "success", "u@x"), 0, TH),
            [Observation::Login {
                user: "u@x".into(),
                fingerprint: "labvault-desktop|10.1.0.0/16".into()
            }]
        );
        // Normal traffic.
        for a in [
            "account.view",
            "audit.query",
            "access_review.view",
            "feed.commit",
            "project.create",
        ] {
            assert!(!interesting(a), "{a}");
            assert!(d.observe(&ev(a, "success", "u@x"), 0, TH).is_empty());
        }
    }

    #[test]
    fn raw_json_action_and_network_ranges() {
        assert_eq!(
            action_of(r#"{"timestamp":"x","user":"u","action":"auth.login","resource":"r"}"#),
            Some("auth.login")
        );
        assert_eq!(action_of("{}"), None);
        assert_eq!(network_range("192.168.17.4"), "192.168.0.0/16");
        assert_eq!(network_range("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
        assert_eq!(agent_product("Mozilla/5.0 (X11)"), "Mozilla");
    }
}
