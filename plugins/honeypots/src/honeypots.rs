//! The honeypots: a name, the decoy path the host serves for it, whether it is on, whether a
//! hit blocks its source, and the severity its hits carry; their checks and their routes.
//! Every write drops the cached decoy paths ([`decoys::changed`]).

use valhalla_sdk::prelude::*;

use crate::{decoys, paths};

pub(crate) const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const MAX_NAME: usize = 128;
const MAX_DESCRIPTION: usize = 1024;

/// A honeypot as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Honeypot {
    pub id: String,
    /// unique
    pub name: String,
    /// the decoy path (unique; no route serves it)
    pub path: String,
    pub description: Option<String>,
    /// an enabled honeypot's path is a decoy; a disabled one's is a plain 404
    pub enabled: bool,
    /// a hit on the decoy blocks its source address (security_policy's blocklist)
    pub auto_block: bool,
    /// `low`, `medium`, `high` or `critical`: the severity of its hits
    pub severity: String,
    /// hits recorded so far
    pub hits: i64,
    pub last_hit_at: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl db::Record for Honeypot {
    const TABLE: &'static str = "honeypots";
    const WHAT: &'static str = "honeypot";
}

/// `POST /system/security/honeypots`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Create {
    #[validate(length(min = 1, max = MAX_NAME), custom(function = plain_text))]
    name: String,
    /// starts with `/`, at most 256 characters, no `?`, `#` or spaces, not under `/system/`
    /// and not a path a route serves
    #[validate(custom(function = paths::shape))]
    path: String,
    #[serde(default)]
    #[validate(length(max = MAX_DESCRIPTION))]
    description: Option<String>,
    #[serde(default = "valhalla_sdk::yes")]
    enabled: bool,
    #[serde(default)]
    auto_block: bool,
    /// `high` when absent
    #[serde(default = "high")]
    #[validate(one_of = SEVERITIES)]
    severity: String,
}

valhalla_sdk::defaults! { fn high() -> String = "high"; }

/// `PATCH /system/security/honeypots/{id}`: absent fields stay, `description: null` clears it.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Patch {
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_NAME), custom(function = plain_text))]
    name: Option<String>,
    #[serde(default)]
    #[validate(custom(function = paths::shape))]
    path: Option<String>,
    #[serde(default, deserialize_with = "valhalla_sdk::present")]
    #[validate(length(max = MAX_DESCRIPTION))]
    description: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    auto_block: Option<bool>,
    #[serde(default)]
    #[validate(one_of = SEVERITIES)]
    severity: Option<String>,
}

fn plain_text(text: &str) -> Result<(), &'static str> {
    if text.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else if !text.is_empty() && text.trim().is_empty() {
        Err("must not be blank")
    } else {
        Ok(())
    }
}

/// A decoy path must not be one the host routes (the route would answer, not the decoy): a
/// 422 naming `path`; nor another honeypot's: a 409.
fn check_path(path: &str, except_id: &str) -> Result<(), Problem> {
    let routes = host::routes();
    if let Some(template) = paths::served_by(path, routes.iter().map(|r| r.path.as_str())) {
        let message =
            format!("is served by the route `{template}`: a decoy needs a path of its own");
        return Err(Problem::invalid_field("path", message));
    }
    taken("path", path, except_id)
}

/// 409 when another honeypot already has `value` as its `column` (the unique index stands
/// behind this for writes that race).
fn taken(column: &'static str, value: &str, except_id: &str) -> Result<(), Problem> {
    let sql = format!("SELECT COUNT(*) FROM honeypots WHERE {column} = $1 AND id <> $2");
    if db::query_scalar(&sql, params![value, except_id])? > 0 {
        return Err(Problem::conflict(format!(
            "a honeypot with {column} `{value}` already exists"
        )));
    }
    Ok(())
}

fn target(id: &str) -> String {
    format!("honeypots/{id}")
}

pub(crate) fn create(
    Valid(body): Valid<Create>,
    Actor(actor): Actor,
) -> Result<Created<Honeypot>, Problem> {
    let path = paths::normalize(&body.path);
    check_path(&path, "")?;
    taken("name", &body.name, "")?;
    let now = clock::now_rfc3339();
    let honeypot: Honeypot = db::insert(params![
        clock::new_id(),
        body.name,
        path,
        body.description,
        body.enabled,
        body.auto_block,
        body.severity,
        0i64,
        None::<String>,
        actor,
        now.as_str(),
        now
    ])?;
    decoys::changed();
    log::audit_created("honeypot.create", &target(&honeypot.id), &honeypot);
    Ok(Created(honeypot))
}

/// The list filters: `enabled`, `auto_block`, `severity`.
#[derive(Deserialize, Validate)]
pub(crate) struct HoneypotFilter {
    enabled: Option<bool>,
    auto_block: Option<bool>,
    #[validate(one_of = SEVERITIES)]
    severity: Option<String>,
}

pub(crate) fn list(
    page: Page,
    ValidQuery(q): ValidQuery<HoneypotFilter>,
) -> Result<Json<db::List<Honeypot>>, Problem> {
    let mut filter = db::Filter::new();
    filter.eq("enabled", q.enabled).eq("auto_block", q.auto_block).eq("severity", q.severity);
    db::list(&filter, "created_at, id", page)
}

pub(crate) fn get(Path(id): Path<String>) -> Result<Json<Honeypot>, Problem> {
    db::get::<Honeypot>("id", &id).map(Json)
}

pub(crate) fn update(
    Path(id): Path<String>,
    Valid(patch): Valid<Patch>,
) -> Result<Json<Honeypot>, Problem> {
    let before: Honeypot = db::get("id", &id)?;
    let name = patch.name.unwrap_or_else(|| before.name.clone());
    let path = patch.path.as_deref().map_or_else(|| before.path.clone(), paths::normalize);
    if path != before.path {
        check_path(&path, &id)?;
    }
    if name != before.name {
        taken("name", &name, &id)?;
    }
    let description = patch.description.unwrap_or_else(|| before.description.clone());
    let enabled = patch.enabled.unwrap_or(before.enabled);
    let auto_block = patch.auto_block.unwrap_or(before.auto_block);
    let severity = patch.severity.unwrap_or_else(|| before.severity.clone());
    let unchanged = name == before.name
        && path == before.path
        && description == before.description
        && enabled == before.enabled
        && auto_block == before.auto_block
        && severity == before.severity;
    if unchanged {
        return Ok(Json(before));
    }
    let set = "name = $2, path = $3, description = $4, enabled = $5, auto_block = $6, \
               severity = $7, updated_at = $8 WHERE id = $1";
    let now = clock::now_rfc3339();
    let params = params![id.as_str(), name, path, description, enabled, auto_block, severity, now];
    let after: Honeypot = db::update(set, params)?.ok_or_else(|| db::not_found::<Honeypot>(&id))?;
    decoys::changed();
    log::audit("honeypot.update", &target(&id), Some(&before), Some(&after));
    Ok(Json(after))
}

/// Delete a honeypot; its telemetry stays (each record carries its own path and severity).
pub(crate) fn delete(Path(id): Path<String>) -> Result<NoContent, Problem> {
    let before: Honeypot = db::get("id", &id)?;
    if db::execute("DELETE FROM honeypots WHERE id = $1", params![id.as_str()])? == 0 {
        return Err(db::not_found::<Honeypot>(&id));
    }
    decoys::changed();
    log::audit_deleted("honeypot.delete", &target(&id), &before);
    Ok(NoContent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors<T: Validate>(value: &T) -> Vec<String> {
        Validator::of(value)
            .map_or_else(|p| p.errors.into_iter().map(|e| e.field).collect(), |()| vec![])
    }

    #[test]
    fn a_honeypot_defaults_to_enabled_high_and_not_blocking() {
        let c: Create = serde_json::from_str(r#"{"name": "wp", "path": "/wp-login.php"}"#).unwrap();
        assert!(c.enabled && !c.auto_block);
        assert_eq!(c.severity, "high");
        assert!(errors(&c).is_empty());
    }

    #[test]
    fn every_field_is_checked() {
        let c: Create = serde_json::from_str(
            r#"{"name": " ", "path": "/system/x", "severity": "urgent", "description": null}"#,
        )
        .unwrap();
        assert_eq!(errors(&c), ["name", "path", "severity"]);
        let p: Patch = serde_json::from_str(r#"{"path": "no-slash", "name": ""}"#).unwrap();
        assert_eq!(errors(&p), ["name", "path"]);
        assert!(serde_json::from_str::<Create>(r#"{"name": "a", "path": "/a", "x": 1}"#).is_err());
    }

    #[test]
    fn a_patch_tells_a_null_description_from_an_absent_one() {
        let cleared: Patch = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(cleared.description, Some(None));
        let absent: Patch = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.description, None);
    }
}
