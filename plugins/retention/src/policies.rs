//! Retention policies: one per category (its row's id), upserted by admins; each answered with
//! its last run. The row doubles as the category's lease for the tick (see [`crate::runs`]).

use valhalla_sdk::prelude::*;

use crate::categories::{self, NAMES};

/// The longest retention: ten years.
const MAX_RETAIN_DAYS: i64 = 3650;

/// `POST /system/retention`: a category's policy.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPolicy {
    /// `system_log`, `honeypot_telemetry`, `notifications_delivered` or `exports`
    #[validate(one_of = NAMES)]
    category: String,
    /// days data of the category is kept, 1..=3650
    #[validate(range(min = 1, max = MAX_RETAIN_DAYS))]
    retain_days: i64,
    /// whether the tick purges the category (true by default)
    #[serde(default = "valhalla_sdk::yes")]
    enabled: bool,
}

/// A policy as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub(crate) struct Policy {
    pub category: String,
    pub retain_days: i64,
    pub enabled: bool,
    /// `idle`, `running` (a tick is purging it now) or `off` (disabled)
    pub status: String,
    /// when the tick runs it next; `null`: at the next tick
    pub next_run_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub updated_by: String,
}

impl db::Record for Policy {
    const TABLE: &'static str = "retention_policies";
    const RENAMED: &'static [(&'static str, &'static str)] =
        &[("category", "id"), ("next_run_at", "next_attempt_at")];
    const WHAT: &'static str = "retention policy for";
}

/// A recorded run of a category's purge.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Run {
    pub id: String,
    pub category: String,
    pub started_at: String,
    pub finished_at: String,
    /// rows older than this were purged
    pub cutoff: String,
    pub removed: i64,
    pub batches: i64,
    pub duration_ms: i64,
    /// false when the run stopped at its time budget with more to purge
    pub complete: bool,
    /// why the run failed (the owning pack disabled or absent, a purge that failed)
    pub error: Option<String>,
    /// the host process that ran it
    pub instance: String,
}

impl db::Record for Run {
    const TABLE: &'static str = "retention_runs";
}

/// A policy and its last run.
#[derive(Serialize, JsonSchema)]
pub(crate) struct PolicyView {
    #[serde(flatten)]
    policy: Policy,
    /// the latest recorded run; `null` before the first
    last_run: Option<Run>,
}

fn view(policy: Policy) -> Result<PolicyView, Problem> {
    let last_run = db::select::<Run>(
        "WHERE category = $1 ORDER BY id DESC LIMIT 1",
        params![policy.category.as_str()],
    )?
    .into_iter()
    .next();
    Ok(PolicyView { policy, last_run })
}

pub(crate) fn upsert(
    Valid(body): Valid<NewPolicy>,
    Actor(actor): Actor,
) -> Result<Json<PolicyView>, Problem> {
    let before: Option<Policy> = db::find("id", &body.category)?;
    let now = clock::now_rfc3339();
    let status = if body.enabled { "idle" } else { "off" };
    // A changed policy is due at the next tick; a run in progress keeps its claim.
    let after: Policy = db::upsert(
        "ON CONFLICT (id) DO UPDATE SET retain_days = excluded.retain_days, \
         enabled = excluded.enabled, \
         status = CASE WHEN retention_policies.status = 'running' THEN 'running' \
         ELSE excluded.status END, \
         next_attempt_at = NULL, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        params![
            body.category.as_str(),
            body.retain_days,
            body.enabled,
            status,
            None::<&str>,
            now.as_str(),
            now.as_str(),
            actor.as_str()
        ],
    )?
    .ok_or_else(|| Problem::internal("the upsert returned no row"))?;
    log::audit_upsert(
        "retention",
        &format!("retention/{}", after.category),
        before.as_ref(),
        &after,
    );
    Ok(Json(view(after)?))
}

pub(crate) fn list() -> Result<Json<db::List<PolicyView>>, Problem> {
    let policies = db::select::<Policy>("ORDER BY id", vec![])?;
    let items = policies.into_iter().map(view).collect::<Result<Vec<_>, Problem>>()?;
    Ok(Json(db::List { total: i64::try_from(items.len()).unwrap_or(i64::MAX), items }))
}

pub(crate) fn get(Path(category): Path<String>) -> Result<Json<PolicyView>, Problem> {
    if categories::find(&category).is_none() {
        return Err(Problem::not_found(format!(
            "no retention category `{category}` (the categories: {})",
            NAMES.join(", ")
        )));
    }
    Ok(Json(view(db::get::<Policy>("id", &category)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_checked_field_by_field() {
        let body: NewPolicy =
            serde_json::from_str(r#"{"category": "logs", "retain_days": 0}"#).unwrap();
        let fields: Vec<String> =
            Validator::of(&body).unwrap_err().errors.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["category", "retain_days"]);
        let long: NewPolicy =
            serde_json::from_str(r#"{"category": "exports", "retain_days": 3651}"#).unwrap();
        assert!(Validator::of(&long).is_err());
        let ok: NewPolicy =
            serde_json::from_str(r#"{"category": "system_log", "retain_days": 30}"#).unwrap();
        assert!(ok.enabled && Validator::of(&ok).is_ok());
        assert!(
            serde_json::from_str::<NewPolicy>(
                r#"{"category": "exports", "retain_days": 1, "x": 1}"#
            )
            .is_err()
        );
    }
}
