//! Retention in the vault: policies per vault and project, legal holds, the enforcement run and
//! the status report. The rules themselves (periods, validation, lifecycle) are
//! `labvault_governance::retention`, shared with the tenant server; this module stores them and
//! applies them to items, one item per transaction, each step audited.

use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::holds::{held_ids, hold_reason};
use crate::model::{ItemInfo, ItemState};
use crate::vault::{ms_to_ts, ts_to_ms, Vault, WriteOp};
use crate::{items, projects};
use labvault_governance::audit::{actions, resources, Outcome};
use labvault_governance::retention::{
    self as gov, DataType, DisplayState, ItemLifecycle, LifecycleState, LifecycleStep, PlanTier,
    PolicyOverride, RetentionPeriod, RetentionPolicy,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use time::{Duration, OffsetDateTime};

/// The plan a vault has until someone sets one.
pub const DEFAULT_PLAN: PlanTier = PlanTier::Professional;
/// `erase_reason` of items erased because their grace period ended.
pub const REASON_RETENTION: &str = "retention: grace period ended";

/// What a legal hold is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldTarget {
    /// One item (by id).
    Item(String),
    /// A whole project (by name or id): every item in it.
    Project(String),
}

/// An active legal hold.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HoldInfo {
    /// Hold id.
    pub id: String,
    /// `item` or `project`.
    pub target_kind: String,
    /// Item or project id.
    pub target_id: String,
    /// Why (case number, request).
    pub reason: String,
    /// When it was set.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who set it.
    pub created_by: String,
}

/// Stored policy settings: the vault's plan and overrides, and each project's overrides.
#[derive(Clone, Debug, Serialize)]
pub struct PolicySettings {
    /// The plan tier.
    pub plan: PlanTier,
    /// Vault-wide overrides of the defaults.
    pub vault: PolicyOverride,
    /// Effective vault policy.
    pub effective: RetentionPolicy,
    /// Per-project overrides and effective policies, by project id.
    pub projects: Vec<ProjectPolicy>,
}

/// One project's policy.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectPolicy {
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// Its overrides (may be empty).
    pub overrides: PolicyOverride,
    /// The policy in effect for its items.
    pub effective: RetentionPolicy,
}

/// What a retention run did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RetentionRunReport {
    /// Items checked.
    pub checked: u64,
    /// Items moved to soft-deleted because they expired.
    pub expired: u64,
    /// Items cryptographically erased because their grace ended.
    pub erased: u64,
    /// Steps refused because of a legal hold.
    pub held: u64,
    /// Steps that failed (the item is retried next run).
    pub failed: u64,
}

/// Retention facts of one item.
#[derive(Clone, Debug, Serialize)]
pub struct ItemRetention {
    /// Item id.
    pub item_id: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// Area.
    pub area: String,
    /// Logical path.
    pub path: String,
    /// Data type.
    pub data_type: DataType,
    /// Its retention period (e.g. `7y`).
    pub period: String,
    /// Plaintext bytes of the current version (0 once erased).
    pub size: u64,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// End of retention.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// active, on_hold, soft_deleted, erased.
    pub state: DisplayState,
    /// Next lifecycle step.
    pub next_step: Option<LifecycleStep>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_step_at: Option<OffsetDateTime>,
}

/// Counts and bytes in one state.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StateCount {
    /// Items.
    pub items: u64,
    /// Plaintext bytes.
    pub bytes: u64,
}

/// Per-project summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProjectRetentionSummary {
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// Active (not held).
    pub active: StateCount,
    /// On hold.
    pub on_hold: StateCount,
    /// Soft-deleted (not held).
    pub soft_deleted: StateCount,
    /// Erased.
    pub erased: StateCount,
    /// Items whose next step is due within 7 days (overdue included; held items excluded).
    pub due_7d: u64,
    /// Within 30 days.
    pub due_30d: u64,
}

/// [`Vault::retention_status`].
#[derive(Clone, Debug, Serialize)]
pub struct RetentionStatus {
    /// Evaluated at.
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// Every item.
    pub items: Vec<ItemRetention>,
    /// Per project.
    pub projects: Vec<ProjectRetentionSummary>,
}

fn policy_err(e: gov::PolicyError) -> Error {
    Error::InvalidPolicy(e.to_string())
}

fn lifecycle_state(s: &str) -> LifecycleState {
    match s {
        "soft_deleted" => LifecycleState::SoftDeleted,
        "erased" => LifecycleState::Erased,
        _ => LifecycleState::Active,
    }
}

fn data_type(s: &str) -> DataType {
    s.parse().unwrap_or(DataType::ResearchData)
}

/// A lower bound of `p.add_to(t) - t` over every start `t`: hours and days are exact, a
/// calendar year is at least 365 days (29 February + 1 year = 28 February); one day less is
/// kept as margin.
fn shortest_span(p: RetentionPeriod) -> Duration {
    match p {
        RetentionPeriod::Hours(h) => Duration::hours(i64::from(h)),
        RetentionPeriod::Days(d) => Duration::days(i64::from(d)),
        RetentionPeriod::Years(y) => Duration::days((i64::from(y) * 365 - 1).max(0)),
    }
}

/// `d` in whole milliseconds, rounded down (a smaller span widens the candidate range).
fn whole_ms(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

/// The SQL (and its arguments) of [`Vault::retention_candidates`] for the policies `all`.
fn candidates_query(now: OffsetDateTime, all: &[&RetentionPolicy]) -> (String, Vec<i64>) {
    let cutoff = |shortest: Duration| ts_to_ms(now).saturating_sub(whole_ms(shortest));
    let shortest = |f: &dyn Fn(&RetentionPolicy) -> RetentionPeriod| {
        all.iter()
            .map(|p| shortest_span(f(p)))
            .min()
            .unwrap_or(Duration::ZERO)
    };
    let mut sql = String::from(
        "SELECT id, project_id, data_type, created_at, state, deleted_at FROM items
         WHERE (state = 'soft_deleted' AND (deleted_at IS NULL OR deleted_at <= ?1))",
    );
    let mut args: Vec<i64> = vec![cutoff(shortest(&|p| p.grace))];
    for dt in DataType::ALL {
        args.push(cutoff(shortest(&|p| p.period(dt))));
        sql += &format!(
            "\n OR (state = 'active' AND data_type = '{}' AND created_at <= ?{})",
            dt.as_str(),
            args.len()
        );
    }
    (sql, args)
}

fn stored_overrides(
    conn: &Connection,
    scope: &str,
) -> Result<Option<(Option<String>, PolicyOverride)>> {
    let row: Option<(Option<String>, String)> = conn
        .query_row(
            "SELECT plan, overrides FROM retention_policies WHERE scope = ?1",
            [scope],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(plan, json)| {
        serde_json::from_str(&json)
            .map(|ov| (plan, ov))
            .map_err(|e| Error::CorruptCatalog(format!("retention policy {scope}: {e}")))
    })
    .transpose()
}

fn project_overrides(conn: &Connection, project_id: &str) -> Result<PolicyOverride> {
    Ok(stored_overrides(conn, project_id)?
        .map(|x| x.1)
        .unwrap_or_default())
}

fn vault_policy_parts(conn: &Connection) -> Result<(PlanTier, PolicyOverride)> {
    Ok(match stored_overrides(conn, "vault")? {
        None => (DEFAULT_PLAN, PolicyOverride::default()),
        Some((plan, ov)) => (
            plan.as_deref()
                .map(str::parse)
                .transpose()
                .map_err(policy_err)?
                .unwrap_or(DEFAULT_PLAN),
            ov,
        ),
    })
}

fn effective(
    plan: PlanTier,
    vault: &PolicyOverride,
    project: Option<&PolicyOverride>,
) -> Result<RetentionPolicy> {
    let merged = match project {
        Some(p) => vault.merged_with(p),
        None => vault.clone(),
    };
    RetentionPolicy::defaults(plan)
        .apply(&merged)
        .map_err(policy_err)
}

/// Every policy in force on `conn`: the vault's (for projects without overrides) and each
/// project's, by project id.
fn policies_in_force(
    conn: &Connection,
) -> Result<(RetentionPolicy, HashMap<String, RetentionPolicy>)> {
    let (plan, vault) = vault_policy_parts(conn)?;
    let vault_policy = effective(plan, &vault, None)?;
    let mut policies = HashMap::new();
    let mut st = conn.prepare("SELECT id FROM projects")?;
    let ids: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        let ov = project_overrides(conn, &id)?;
        policies.insert(id, effective(plan, &vault, Some(&ov))?);
    }
    Ok((vault_policy, policies))
}

fn hold_resource(v: &Vault, target: &HoldTarget) -> String {
    match target {
        HoldTarget::Item(id) => items::resource_of(v, id),
        HoldTarget::Project(p) => match v.project(p) {
            Ok(p) => resources::project(&p.id),
            Err(_) => format!("project/{p}"),
        },
    }
}

/// The audit resource of a hold's target, read in the hold's own transaction.
fn hold_subject(conn: &Connection, target: &HoldTarget) -> Result<String> {
    Ok(match target {
        HoldTarget::Item(id) => {
            let i = items::get(conn, id)?;
            resources::item(&i.project_id, &i.id)
        }
        HoldTarget::Project(p) => resources::project(&projects::find(conn, p)?.id),
    })
}

fn hold_target_id(conn: &Connection, target: &HoldTarget) -> Result<(&'static str, String)> {
    Ok(match target {
        HoldTarget::Item(id) => {
            let i = items::get(conn, id)?;
            if i.state == ItemState::Erased {
                return Err(Error::Erased(format!("item {}", i.id)));
            }
            ("item", i.id)
        }
        HoldTarget::Project(p) => ("project", projects::find(conn, p)?.id),
    })
}

/// A candidate row of the lifecycle pass: id, project id, data type, created, state, deleted.
type Candidate = (String, String, String, i64, String, Option<i64>);

/// The items whose next lifecycle step may be due at `at`, found through the `items_lifecycle`
/// index instead of reading every item: an active item of data type `dt` can only have expired
/// if it was created at least the *shortest* `dt` period in force (over every policy) before
/// `at`, and a soft-deleted one can only be due for erasure once the shortest grace has passed
/// since its deletion. The bounds are conservative (a calendar year counts as 364 days), so
/// every due item is returned; callers still decide each one exactly with `gov::evaluate`.
/// `data_type` is only ever written from [`DataType`], so the per-type ranges cover every row.
fn candidates(
    conn: &Connection,
    at: OffsetDateTime,
    all: &[&RetentionPolicy],
    project_id: Option<&str>,
) -> Result<Vec<Candidate>> {
    let (mut sql, args) = candidates_query(at, all);
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = args
        .into_iter()
        .map(|a| Box::new(a) as Box<dyn rusqlite::ToSql>)
        .collect();
    if let Some(p) = project_id {
        args.push(Box::new(p.to_string()));
        sql = format!("SELECT * FROM ({sql}) WHERE project_id = ?{}", args.len());
    }
    let mut st = conn.prepare(&sql)?;
    let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
    let r = st.query_map(refs.as_slice(), |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })?;
    Ok(r.collect::<rusqlite::Result<_>>()?)
}

/// Applies the lifecycle to every item as part of write op `w` (see [`Vault::run_retention`]);
/// `always_record = false` (at unlock) records `retention.run` only when the run did or
/// refused something, so opening the vault does not flood the trail.
pub(crate) fn run_in(
    w: &mut WriteOp<'_>,
    progress: &mut dyn FnMut(u64, u64),
    always_record: bool,
) -> Result<RetentionRunReport> {
    let now = w.vault.now();
    let (vault_policy, policies) = policies_in_force(w.conn())?;
    let held = held_ids(w.conn())?;
    let all: Vec<&RetentionPolicy> = std::iter::once(&vault_policy)
        .chain(policies.values())
        .collect();
    let rows = candidates(w.conn(), now, &all, None)?;
    let total = rows.len() as u64;
    let mut report = RetentionRunReport {
        // On demand the report counts every item in scope (what users read as "checked");
        // at unlock only the candidates, so opening a large vault reads no extra rows.
        checked: if always_record {
            w.conn().query_row(
                "SELECT count(*) FROM items WHERE state IN ('active','soft_deleted')",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64
        } else {
            total
        },
        ..Default::default()
    };
    for (n, (id, project_id, dt, created, state, deleted)) in rows.into_iter().enumerate() {
        let policy = policies.get(&project_id).unwrap_or(&vault_policy);
        let on_hold = held.contains(&id) || held.contains(&project_id);
        let life = ItemLifecycle {
            data_type: data_type(&dt),
            created_at: ms_to_ts(created),
            state: lifecycle_state(&state),
            deleted_at: deleted.map(ms_to_ts),
            on_hold,
        };
        let status = gov::evaluate(&life, policy, now);
        let resource = resources::item(&project_id, &id);
        let step_action = match status.next_step {
            Some(LifecycleStep::Erase) => actions::RETENTION_ERASE,
            _ => actions::RETENTION_EXPIRE,
        };
        if status.blocked_by_hold && status.next_step_at.is_some_and(|t| t <= now) {
            w.record(
                step_action,
                Subject::new(resource, "on_hold"),
                Outcome::Denied,
            )?;
            report.held += 1;
        } else if status.due {
            let r = match status.next_step {
                Some(LifecycleStep::Expire) => expire_in(w, &id, &resource).map(|changed| {
                    if changed {
                        report.expired += 1
                    }
                }),
                Some(LifecycleStep::Erase) => items::erase_in(
                    w,
                    &id,
                    REASON_RETENTION,
                    actions::RETENTION_ERASE,
                    "grace_period_ended",
                )
                .map(|_| report.erased += 1),
                None => Ok(()),
            };
            if let Err(e) = r {
                if matches!(
                    e.code(),
                    crate::ErrorCode::NoSpace | crate::ErrorCode::VaultBusy
                ) {
                    return Err(e);
                }
                tracing::warn!(item = %id, code = e.code().as_str(), "retention step failed; retried next run");
                // Best effort, like the step: its failure is what the report counts.
                let _ = w.record(
                    step_action,
                    Subject::new(resource, e.code().as_str()),
                    crate::vault::outcome_of(&e),
                );
                report.failed += 1;
            }
        }
        progress(n as u64 + 1, total);
    }
    let detail = format!(
        "checked={} expired={} erased={} held={} failed={}",
        report.checked, report.expired, report.erased, report.held, report.failed
    );
    let did_something = report.expired + report.erased + report.held + report.failed > 0;
    if always_record || did_something {
        w.commit(actions::RETENTION_RUN, |_| {
            Ok(((), Subject::new(resources::VAULT, detail)))
        })?;
    }
    Ok(report)
}

/// Marks the item or project a hold changed for sync (holds travel with what they cover).
fn mark_hold_target(tx: &rusqlite::Connection, target: &HoldTarget) -> Result<()> {
    match target {
        HoldTarget::Item(id) => {
            let item = items::get(tx, id)?;
            crate::changes::mark_if_tracking(tx, &item.project_id, &item.id)
        }
        HoldTarget::Project(p) => {
            let p = projects::find(tx, p)?;
            crate::changes::mark_if_tracking(tx, &p.id, &p.id)
        }
    }
}

/// Soft-deletes an expired item (state-guarded: false if someone else moved it first).
fn expire_in(w: &mut WriteOp<'_>, id: &str, resource: &str) -> Result<bool> {
    let now = ts_to_ms(w.vault.now());
    w.commit(actions::RETENTION_EXPIRE, |tx| {
        let n = tx.execute(
            "UPDATE items SET state = 'soft_deleted', deleted_at = ?1 WHERE id = ?2 AND state = 'active'",
            params![now, id],
        )?;
        if n == 1 {
            let project_id = items::get(tx, id)?.project_id;
            crate::changes::mark_if_tracking(tx, &project_id, id)?;
        }
        Ok((n == 1, Subject::new(resource, "expired")))
    })
}

impl Vault {
    // ----- policies -------------------------------------------------------------------------

    /// The policy in effect for `project` (name or id), or the vault-wide one.
    pub fn retention_policy(&self, project: Option<&str>) -> Result<RetentionPolicy> {
        let conn = self.reader()?;
        let (plan, vault) = vault_policy_parts(&conn)?;
        match project {
            None => effective(plan, &vault, None),
            Some(p) => {
                let p = projects::find(&conn, p)?;
                let ov = project_overrides(&conn, &p.id)?;
                effective(plan, &vault, Some(&ov))
            }
        }
    }

    /// Every stored policy setting, and what is in effect where.
    pub fn retention_policies(&self) -> Result<PolicySettings> {
        let conn = self.reader()?;
        let (plan, vault) = vault_policy_parts(&conn)?;
        let eff = effective(plan, &vault, None)?;
        let mut projects = Vec::new();
        for p in self.list_projects()? {
            let ov = project_overrides(&conn, &p.id)?;
            projects.push(ProjectPolicy {
                effective: effective(plan, &vault, Some(&ov))?,
                project_id: p.id,
                project: p.name,
                overrides: ov,
            });
        }
        Ok(PolicySettings {
            plan,
            vault,
            effective: eff,
            projects,
        })
    }

    /// Changes the policy of the vault (`project = None`; may also change the plan) or of one
    /// project: `changes` are layered over what is stored. Refused with `invalid_policy`
    /// (nothing changed) when any resulting policy breaks a rule, e.g. audit logs below 6 years.
    /// Audited as `retention.policy`.
    pub fn set_retention_policy(
        &self,
        project: Option<&str>,
        plan: Option<PlanTier>,
        changes: &PolicyOverride,
    ) -> Result<RetentionPolicy> {
        let resource = || match project {
            Some(p) => match self.project(p) {
                Ok(p) => resources::project(&p.id),
                Err(_) => format!("project/{p}"),
            },
            None => resources::VAULT.to_string(),
        };
        let detail = serde_json::to_string(changes).unwrap_or_default();
        let detail = match plan {
            Some(p) => format!("plan={} {detail}", p.as_str()),
            None => detail,
        };
        self.write_op(actions::RETENTION_POLICY, resource, |w| {
            let now = ts_to_ms(w.vault.now());
            let actor = w.vault.actor.clone();
            w.commit(actions::RETENTION_POLICY, |tx| {
                let (cur_plan, vault) = vault_policy_parts(tx)?;
                match project {
                    None => {
                        let new_plan = plan.unwrap_or(cur_plan);
                        let new_vault = vault.merged_with(changes);
                        let eff = effective(new_plan, &new_vault, None)?;
                        // Every project's layered policy must stay valid too.
                        let mut st = tx.prepare("SELECT id, name FROM projects")?;
                        let ps: Vec<(String, String)> = st
                            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<rusqlite::Result<_>>()?;
                        for (id, name) in ps {
                            let ov = project_overrides(tx, &id)?;
                            effective(new_plan, &new_vault, Some(&ov)).map_err(|e| {
                                Error::InvalidPolicy(format!("project {name:?}: {e}"))
                            })?;
                        }
                        let json = serde_json::to_string(&new_vault)
                            .map_err(|e| Error::Internal(e.to_string()))?;
                        tx.execute(
                            "INSERT INTO retention_policies(scope, plan, overrides, updated_at, updated_by)
                             VALUES ('vault', ?1, ?2, ?3, ?4)
                             ON CONFLICT(scope) DO UPDATE SET plan = ?1, overrides = ?2, updated_at = ?3, updated_by = ?4",
                            params![new_plan.as_str(), json, now, actor],
                        )?;
                        Ok((eff, Subject::new(resources::VAULT, detail)))
                    }
                    Some(p) => {
                        if plan.is_some() {
                            return Err(Error::InvalidPolicy(
                                "the plan tier belongs to the vault; set it without --project"
                                    .into(),
                            ));
                        }
                        let p = projects::find(tx, p)?;
                        let new_ov = project_overrides(tx, &p.id)?.merged_with(changes);
                        let eff = effective(cur_plan, &vault, Some(&new_ov))?;
                        let json = serde_json::to_string(&new_ov)
                            .map_err(|e| Error::Internal(e.to_string()))?;
                        tx.execute(
                            "INSERT INTO retention_policies(scope, plan, overrides, updated_at, updated_by)
                             VALUES (?1, NULL, ?2, ?3, ?4)
                             ON CONFLICT(scope) DO UPDATE SET overrides = ?2, updated_at = ?3, updated_by = ?4",
                            params![p.id, json, now, actor],
                        )?;
                        Ok((eff, Subject::new(resources::project(&p.id), detail)))
                    }
                }
            })
        })
    }

    // ----- holds ----------------------------------------------------------------------------

    /// Puts an item or a whole project on legal hold (`retention.hold`, the reason as detail):
    /// from now on it is never soft-deleted, expired or purged, and every attempt is refused
    /// with `on_hold` (and audited as denied).
    pub fn hold_set(&self, target: &HoldTarget, reason: &str) -> Result<HoldInfo> {
        self.write_op(
            actions::RETENTION_HOLD,
            || hold_resource(self, target),
            |w| {
                let reason = reason.trim();
                if reason.is_empty() || reason.len() > 1000 || reason.chars().any(char::is_control)
                {
                    return Err(Error::InvalidArgument(
                        "a legal hold needs a reason (1 to 1000 characters, no control characters)"
                            .into(),
                    ));
                }
                let now = w.vault.now();
                let created_by = w.vault.actor.clone();
                w.commit(actions::RETENTION_HOLD, |tx| {
                    let (kind, target_id) = hold_target_id(tx, target)?;
                    let info = HoldInfo {
                        id: uuid::Uuid::new_v4().to_string(),
                        target_kind: kind.to_string(),
                        target_id,
                        reason: reason.to_string(),
                        created_at: ms_to_ts(ts_to_ms(now)),
                        created_by,
                    };
                    tx.execute(
                        "INSERT INTO holds(id, target_kind, target_id, reason, created_at, created_by)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            info.id,
                            info.target_kind,
                            info.target_id,
                            info.reason,
                            ts_to_ms(now),
                            info.created_by
                        ],
                    )?;
                    mark_hold_target(tx, target)?;
                    let subject = Subject::new(hold_subject(tx, target)?, reason);
                    Ok((info, subject))
                })
            },
        )
    }

    /// Releases every active hold on the target (`retention.release`); returns how many were
    /// released (`not_found` when there was none).
    pub fn hold_clear(&self, target: &HoldTarget) -> Result<u64> {
        self.write_op(
            actions::RETENTION_RELEASE,
            || hold_resource(self, target),
            |w| {
                let now = ts_to_ms(w.vault.now());
                let actor = w.vault.actor.clone();
                w.commit(actions::RETENTION_RELEASE, |tx| {
                    let target_id = match target {
                        HoldTarget::Item(id) => items::get(tx, id)?.id,
                        HoldTarget::Project(p) => projects::find(tx, p)?.id,
                    };
                    let n = tx.execute(
                        "UPDATE holds SET released_at = ?1, released_by = ?2
                         WHERE target_id = ?3 AND released_at IS NULL",
                        params![now, actor, target_id],
                    )?;
                    if n == 0 {
                        return Err(Error::NotFound(format!(
                            "an active legal hold on {target_id}"
                        )));
                    }
                    mark_hold_target(tx, target)?;
                    Ok((n as u64, Subject::on(hold_subject(tx, target)?)))
                })
            },
        )
    }

    /// Active holds.
    pub fn holds(&self) -> Result<Vec<HoldInfo>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT id, target_kind, target_id, reason, created_at, created_by FROM holds
             WHERE released_at IS NULL ORDER BY created_at, id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(HoldInfo {
                id: r.get(0)?,
                target_kind: r.get(1)?,
                target_id: r.get(2)?,
                reason: r.get(3)?,
                created_at: ms_to_ts(r.get(4)?),
                created_by: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The reason of an active hold on the item or its project, if any.
    pub fn hold_reason(&self, item: &ItemInfo) -> Result<Option<String>> {
        hold_reason(&*self.reader()?, item)
    }

    // ----- enforcement ----------------------------------------------------------------------

    /// Applies the lifecycle to every item as of the vault clock's "now": expired items are
    /// soft-deleted, soft-deleted items past their grace are cryptographically erased. Each
    /// step is its own transaction with its own audit event, guarded by the item's state, so a
    /// run that is interrupted resumes where it stopped and never repeats a step; held items
    /// are skipped and the refused step recorded as denied. Runs at unlock and on demand.
    pub fn run_retention(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<RetentionRunReport> {
        self.write_op(
            actions::RETENTION_RUN,
            || resources::VAULT.into(),
            |w| run_in(w, progress, true),
        )
    }

    // ----- status ---------------------------------------------------------------------------

    /// Retention status of every item (of one project, if given) and a summary per project.
    pub fn retention_status(&self, project: Option<&str>) -> Result<RetentionStatus> {
        let now = self.now();
        let conn = self.reader()?;
        let project_id = project
            .map(|p| projects::find(&conn, p))
            .transpose()?
            .map(|p| p.id);
        let (plan, vault) = vault_policy_parts(&conn)?;
        // Per project (index = its summary's index): effective policy and period labels.
        let mut policies: Vec<(RetentionPolicy, HashMap<DataType, String>)> = Vec::new();
        let held = held_ids(&conn)?;
        let mut st = conn.prepare(
            "SELECT i.id, i.project_id, p.name, i.area, i.path, i.data_type, i.created_at, i.state,
                    i.deleted_at, CASE WHEN i.state = 'erased' THEN 0 ELSE v.size END
             FROM items i
             JOIN projects p ON p.id = i.project_id
             JOIN item_versions v ON v.item_id = i.id AND v.version = i.current_version
             WHERE (?1 IS NULL OR i.project_id = ?1)",
        )?;
        let mut rows = st.query([&project_id])?;
        let mut items = Vec::new();
        // One summary per project, found by id without allocating a key per item.
        let mut summaries: Vec<ProjectRetentionSummary> = Vec::new();
        let mut summary_of: HashMap<String, usize> = HashMap::new();
        // Rows of one project mostly come together: remember the last one's index.
        let mut cur = usize::MAX;
        let in7 = now + Duration::days(7);
        let in30 = now + Duration::days(30);
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let pid: String = r.get(1)?;
            let pname: String = r.get(2)?;
            if summaries.get(cur).is_none_or(|s| s.project_id != pid) {
                cur = match summary_of.get(pid.as_str()) {
                    Some(&i) => i,
                    None => {
                        let ov = project_overrides(&conn, &pid)?;
                        policies.push((effective(plan, &vault, Some(&ov))?, HashMap::new()));
                        summaries.push(ProjectRetentionSummary {
                            project_id: pid.clone(),
                            project: pname.clone(),
                            ..Default::default()
                        });
                        summary_of.insert(pid.clone(), summaries.len() - 1);
                        summaries.len() - 1
                    }
                };
            }
            let si = cur;
            let (policy, labels) = &mut policies[si];
            let text = |i: usize| -> rusqlite::Result<&str> {
                r.get_ref(i)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })
            };
            let dt = data_type(text(5)?);
            let life = ItemLifecycle {
                data_type: dt,
                created_at: ms_to_ts(r.get(6)?),
                state: lifecycle_state(text(7)?),
                deleted_at: r.get::<_, Option<i64>>(8)?.map(ms_to_ts),
                on_hold: !held.is_empty() && (held.contains(&id) || held.contains(&pid)),
            };
            let size = r.get::<_, i64>(9)? as u64;
            let s = gov::evaluate(&life, policy, now);
            let period = labels
                .entry(dt)
                .or_insert_with(|| policy.period(dt).to_string())
                .clone();
            let sum = &mut summaries[si];
            let bucket = match s.state {
                DisplayState::Active => &mut sum.active,
                DisplayState::OnHold => &mut sum.on_hold,
                DisplayState::SoftDeleted => &mut sum.soft_deleted,
                DisplayState::Erased => &mut sum.erased,
            };
            bucket.items += 1;
            bucket.bytes += size;
            if !s.blocked_by_hold {
                if let Some(at) = s.next_step_at {
                    if at <= in7 {
                        sum.due_7d += 1;
                    }
                    if at <= in30 {
                        sum.due_30d += 1;
                    }
                }
            }
            items.push(ItemRetention {
                item_id: id,
                project_id: pid,
                project: pname,
                area: r.get(3)?,
                path: r.get(4)?,
                data_type: dt,
                period,
                size,
                created_at: life.created_at,
                expires_at: s.expires_at,
                state: s.state,
                next_step: s.next_step,
                next_step_at: s.next_step_at,
            });
        }
        // Sorting here is cheaper than asking SQLite to sort wide rows.
        items.sort_unstable_by(|a, b| {
            (&a.project, &a.area, &a.path, a.created_at).cmp(&(
                &b.project,
                &b.area,
                &b.path,
                b.created_at,
            ))
        });
        summaries.sort_by(|a, b| (&a.project, &a.project_id).cmp(&(&b.project, &b.project_id)));
        Ok(RetentionStatus {
            now,
            items,
            projects: summaries,
        })
    }
}

/// The retention columns of an item row, as the paged queries select them.
const RETENTION_COLS: &str =
    "i.id, i.project_id, p.name, i.area, i.path, i.data_type, i.created_at, i.state,
        i.deleted_at, CASE WHEN i.state = 'erased' THEN 0 ELSE v.size END";
const RETENTION_FROM: &str = "FROM items i
     JOIN projects p ON p.id = i.project_id
     JOIN item_versions v ON v.item_id = i.id AND v.version = i.current_version";

/// Evaluates item rows against the policies in force, reading each project's policy once.
struct Evaluator {
    now: OffsetDateTime,
    plan: PlanTier,
    vault: PolicyOverride,
    held: HashSet<String>,
    projects: HashMap<String, (RetentionPolicy, HashMap<DataType, String>)>,
}

impl Evaluator {
    fn new(conn: &Connection, now: OffsetDateTime) -> Result<Evaluator> {
        let (plan, vault) = vault_policy_parts(conn)?;
        Ok(Evaluator {
            now,
            plan,
            vault,
            held: held_ids(conn)?,
            projects: HashMap::new(),
        })
    }

    /// One row of `SELECT {RETENTION_COLS}` evaluated.
    fn row(&mut self, conn: &Connection, r: &rusqlite::Row<'_>) -> Result<ItemRetention> {
        let id: String = r.get(0)?;
        let pid: String = r.get(1)?;
        if !self.projects.contains_key(&pid) {
            let ov = project_overrides(conn, &pid)?;
            let policy = effective(self.plan, &self.vault, Some(&ov))?;
            self.projects.insert(pid.clone(), (policy, HashMap::new()));
        }
        let (policy, labels) = self.projects.get_mut(&pid).expect("inserted above");
        let dt = data_type(&r.get::<_, String>(5)?);
        let life = ItemLifecycle {
            data_type: dt,
            created_at: ms_to_ts(r.get(6)?),
            state: lifecycle_state(&r.get::<_, String>(7)?),
            deleted_at: r.get::<_, Option<i64>>(8)?.map(ms_to_ts),
            on_hold: self.held.contains(&id) || self.held.contains(&pid),
        };
        let s = gov::evaluate(&life, policy, self.now);
        let period = labels
            .entry(dt)
            .or_insert_with(|| policy.period(dt).to_string())
            .clone();
        Ok(ItemRetention {
            item_id: id,
            project_id: pid,
            project: r.get(2)?,
            area: r.get(3)?,
            path: r.get(4)?,
            data_type: dt,
            period,
            size: r.get::<_, i64>(9)? as u64,
            created_at: life.created_at,
            expires_at: s.expires_at,
            state: s.state,
            next_step: s.next_step,
            next_step_at: s.next_step_at,
        })
    }
}

/// One page of [`Vault::retention_items_page`].
#[derive(Clone, Debug, Serialize)]
pub struct RetentionItemsPage {
    /// Items in scope (all pages).
    pub total: u64,
    /// This page, ordered by project, area, path, creation.
    pub rows: Vec<ItemRetention>,
}

/// One step of [`Vault::retention_timeline`].
#[derive(Clone, Debug, Serialize)]
pub struct TimelineStep {
    /// When it is due.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happens then.
    pub step: LifecycleStep,
    /// The item.
    pub item: ItemRetention,
}

/// [`Vault::retention_timeline`].
#[derive(Clone, Debug, Serialize)]
pub struct RetentionTimeline {
    /// Evaluated at.
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// The first `limit` steps due, soonest first.
    pub steps: Vec<TimelineStep>,
    /// Steps due in the window (all of them).
    pub total: u64,
}

/// Largest page of [`Vault::retention_items_page`].
pub const MAX_RETENTION_PAGE: u64 = 5_000;

impl Vault {
    /// A page of every item's retention facts (of one project, if given), ordered by project,
    /// area, path and creation and paged in SQL: a screenful costs one bounded query and the
    /// evaluation of its own rows, however large the vault.
    pub fn retention_items_page(
        &self,
        project: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<RetentionItemsPage> {
        let conn = self.reader()?;
        let project_id = project
            .map(|p| projects::find(&conn, p))
            .transpose()?
            .map(|p| p.id);
        let total: i64 = conn.query_row(
            "SELECT count(*) FROM items WHERE (?1 IS NULL OR project_id = ?1)",
            [&project_id],
            |r| r.get(0),
        )?;
        let mut ev = Evaluator::new(&conn, self.now())?;
        let mut st = conn.prepare(&format!(
            "SELECT {RETENTION_COLS} {RETENTION_FROM} WHERE (?1 IS NULL OR i.project_id = ?1)
             ORDER BY p.name, i.area, i.path, i.created_at, i.id LIMIT ?2 OFFSET ?3"
        ))?;
        let mut rows = st.query(params![
            project_id,
            limit.clamp(1, MAX_RETENTION_PAGE) as i64,
            offset.min(i64::MAX as u64) as i64
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(ev.row(&conn, r)?);
        }
        Ok(RetentionItemsPage {
            total: total as u64,
            rows: out,
        })
    }

    /// The lifecycle steps due within `days` (of one project, if given), soonest first, at most
    /// `limit` of them, with the total. Held items never step, so they are left out. Only the
    /// candidates the lifecycle index yields for the window's end are read and evaluated.
    pub fn retention_timeline(
        &self,
        project: Option<&str>,
        days: u32,
        limit: usize,
    ) -> Result<RetentionTimeline> {
        let now = self.now();
        let until = now + Duration::days(i64::from(days.min(36_500)));
        let conn = self.reader()?;
        let project_id = project
            .map(|p| projects::find(&conn, p))
            .transpose()?
            .map(|p| p.id);
        let (vault_policy, policies) = policies_in_force(&conn)?;
        let all: Vec<&RetentionPolicy> = std::iter::once(&vault_policy)
            .chain(policies.values())
            .collect();
        let ids: Vec<String> = candidates(&conn, until, &all, project_id.as_deref())?
            .into_iter()
            .map(|c| c.0)
            .collect();
        let mut ev = Evaluator::new(&conn, now)?;
        let mut st = conn.prepare_cached(&format!(
            "SELECT {RETENTION_COLS} {RETENTION_FROM} WHERE i.id = ?1"
        ))?;
        let mut steps = Vec::new();
        for id in ids {
            let mut rows = st.query([&id])?;
            let Some(r) = rows.next()? else { continue };
            let item = ev.row(&conn, r)?;
            if item.state == DisplayState::OnHold {
                continue;
            }
            if let (Some(at), Some(step)) = (item.next_step_at, item.next_step) {
                if at <= until {
                    steps.push(TimelineStep { at, step, item });
                }
            }
        }
        steps.sort_by(|a, b| (a.at, &a.item.item_id).cmp(&(b.at, &b.item.item_id)));
        let total = steps.len() as u64;
        steps.truncate(limit);
        Ok(RetentionTimeline { now, steps, total })
    }

    /// One item's retention facts.
    pub fn item_retention(&self, item_id: &str) -> Result<ItemRetention> {
        let conn = self.reader()?;
        let mut ev = Evaluator::new(&conn, self.now())?;
        let mut st = conn.prepare(&format!(
            "SELECT {RETENTION_COLS} {RETENTION_FROM} WHERE i.id = ?1"
        ))?;
        let mut rows = st.query([item_id])?;
        match rows.next()? {
            Some(r) => ev.row(&conn, r),
            None => Err(Error::NotFound(format!("item {item_id}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KdfParams, Passphrase, VaultOptions};

    /// The unlock-time pass must stay an index search: a plan that scans `items` would read
    /// every item of a 100,000-item vault at each unlock again.
    #[test]
    fn the_candidate_query_searches_the_lifecycle_index_and_never_scans_items() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = VaultOptions {
            kdf: Some(KdfParams::FLOOR),
            ..Default::default()
        };
        let (v, _rk) = Vault::create(
            &tmp.path().join("v"),
            &Passphrase::new("unit test passphrase".into()),
            opts,
        )
        .unwrap();
        let policy = v.retention_policy(None).unwrap();
        let (sql, args) = candidates_query(OffsetDateTime::now_utc(), &[&policy]);
        let conn = v.reader().unwrap();
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = st
            .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("USING INDEX items_lifecycle"), "{plan}");
        assert!(!plan.contains("SCAN items"), "{plan}");
    }

    #[test]
    fn the_shortest_span_never_exceeds_a_real_period() {
        let starts = [
            time::macros::datetime!(2028-02-29 00:00 UTC),
            time::macros::datetime!(2027-03-01 12:00 UTC),
            time::macros::datetime!(2031-12-31 23:59:59.999 UTC),
        ];
        for p in [
            RetentionPeriod::Years(1),
            RetentionPeriod::Years(4),
            RetentionPeriod::Years(7),
            RetentionPeriod::Days(30),
            RetentionPeriod::Hours(24),
        ] {
            for t in starts {
                assert!(t + shortest_span(p) <= p.add_to(t), "{p} from {t}");
            }
        }
    }
}
