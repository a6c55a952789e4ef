//! Security policies: a named set of blocklist rules that is enabled or not, and enforces
//! (blocks) or only monitors (records what it would have blocked).

use valhalla_sdk::prelude::*;

use crate::index;

pub(crate) const MODES: [&str; 2] = ["enforce", "monitor"];

/// A policy as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Policy {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// `enforce` (matching requests get 403) or `monitor` (they are only recorded)
    pub mode: String,
    pub created_at: String,
    pub updated_at: String,
}

impl db::Record for Policy {
    const TABLE: &'static str = "security_policies";
    const WHAT: &'static str = "policy";
}

/// `POST /system/security/policies`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Create {
    #[validate(length(min = 1, max = 128))]
    name: String,
    #[serde(default)]
    #[validate(length(max = 1024))]
    description: Option<String>,
    #[serde(default = "valhalla_sdk::yes")]
    enabled: bool,
    /// `enforce` when absent
    #[serde(default = "enforce")]
    #[validate(one_of = MODES)]
    mode: String,
}

valhalla_sdk::defaults! { fn enforce() -> String = "enforce"; }

/// `PATCH /system/security/policies/{id}`: absent fields stay; `description: null` clears it.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Patch {
    #[serde(default)]
    #[validate(length(min = 1, max = 128))]
    name: Option<String>,
    #[serde(default, deserialize_with = "valhalla_sdk::present")]
    #[validate(length(max = 1024))]
    description: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    #[validate(one_of = MODES)]
    mode: Option<String>,
}

fn target(id: &str) -> String {
    format!("security_policy/policies/{id}")
}

fn name_taken(name: &str) -> Problem {
    Problem::conflict(format!("a policy named `{name}` exists"))
}

pub(crate) fn create(Valid(body): Valid<Create>) -> Result<Created<Policy>, Problem> {
    if db::find::<Policy>("name", &body.name)?.is_some() {
        return Err(name_taken(&body.name));
    }
    let now = clock::now_rfc3339();
    let policy: Policy = db::insert(params![
        clock::new_id(),
        body.name.as_str(),
        body.description,
        body.enabled,
        body.mode,
        now.as_str(),
        now
    ])
    .map_err(|p| if p.status == 409 { name_taken(&body.name) } else { p })?;
    index::invalidate();
    log::audit_created("security.policy.create", &target(&policy.id), &policy);
    Ok(Created(policy))
}

/// The list filters.
#[derive(Deserialize, Validate)]
pub(crate) struct PolicyFilter {
    enabled: Option<bool>,
    #[validate(one_of = MODES)]
    mode: Option<String>,
}

pub(crate) fn list(
    page: Page,
    ValidQuery(q): ValidQuery<PolicyFilter>,
) -> Result<Json<db::List<Policy>>, Problem> {
    db::list(db::Filter::new().eq("enabled", q.enabled).eq("mode", q.mode), "created_at, id", page)
}

pub(crate) fn update(
    Path(id): Path<String>,
    Valid(patch): Valid<Patch>,
) -> Result<Json<Policy>, Problem> {
    let before: Policy = db::get("id", &id)?;
    if let Some(name) = patch.name.as_deref().filter(|n| *n != before.name)
        && db::find::<Policy>("name", name)?.is_some()
    {
        return Err(name_taken(name));
    }
    let after: Policy = db::update(
        "name = $2, description = $3, enabled = $4, mode = $5, updated_at = $6 WHERE id = $1",
        params![
            id.as_str(),
            patch.name.as_deref().unwrap_or(&before.name),
            patch.description.unwrap_or_else(|| before.description.clone()),
            patch.enabled.unwrap_or(before.enabled),
            patch.mode.as_deref().unwrap_or(&before.mode),
            clock::now_rfc3339()
        ],
    )?
    .ok_or_else(|| db::not_found::<Policy>(&id))?;
    index::invalidate();
    log::audit("security.policy.update", &target(&id), Some(&before), Some(&after));
    Ok(Json(after))
}

/// Delete a policy and its rules, in one transaction.
pub(crate) fn delete(Path(id): Path<String>) -> Result<NoContent, Problem> {
    let before: Policy = db::get("id", &id)?;
    let rules = db::query_scalar(
        "SELECT COUNT(*) FROM blocklist_rules WHERE policy_id = $1",
        params![id.as_str()],
    )?;
    db::batch(vec![
        db::statement("DELETE FROM blocklist_rules WHERE policy_id = $1", params![id.as_str()]),
        db::statement("DELETE FROM security_policies WHERE id = $1", params![id.as_str()]),
    ])?;
    index::invalidate();
    let audited = serde_json::json!({ "policy": before, "rules_deleted": rules });
    log::audit_deleted("security.policy.delete", &target(&id), &audited);
    Ok(NoContent)
}
