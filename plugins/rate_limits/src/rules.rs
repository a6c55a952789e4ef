//! The rules: who is counted (a scope and a key), over which window, up to what limit; their
//! checks, their routes, and the cache of the enabled ones the guard reads on every request.

use core::net::IpAddr;

use valhalla_sdk::clients;
use valhalla_sdk::prelude::*;

use crate::guard::reset_counters;

pub(crate) const SCOPES: [&str; 3] = ["ip", "user", "api_key"];
/// The key of a rule that applies to every subject (each counted on its own).
pub(crate) const ANY: &str = "*";
/// Principal ids of API clients start with this.
pub(crate) const CLIENT_PREFIX: &str = clients::PRINCIPAL_PREFIX;
const MAX_KEY: usize = 256;
const MAX_DESCRIPTION: usize = 1024;
const MAX_WINDOW_SECONDS: i64 = 86_400;
const MAX_REQUESTS: i64 = 1_000_000;
/// The enabled rules are cached as `rules:{generation}`; every write moves the generation on
/// (a host counter) and drops the entries of every generation (on every replica: a
/// `delete-prefix` reaches them all). A guard that read the rules just before a write
/// can only re-fill the old generation's entry, which nobody reads any more.
const RULES_CACHE: &str = "rules";
const RULES_GENERATION: &str = "rules-generation";
/// The generation counter's window: practically forever.
const GENERATION_WINDOW_MS: u64 = 10 * 365 * 86_400_000;
/// Bounds how long a cached list lives without any write.
const RULES_TTL_MS: u64 = 30_000;

/// A rule as stored, answered and cached.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Rule {
    pub id: String,
    /// `ip`, `user` or `api_key`
    pub scope: String,
    /// `*` or the one subject counted (stored as `subject_key`)
    pub key: String,
    pub window_seconds: i64,
    pub max_requests: i64,
    pub enabled: bool,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl db::Record for Rule {
    const TABLE: &'static str = "rate_limit_rules";
    const RENAMED: &'static [(&'static str, &'static str)] = &[("key", "subject_key")];
    const WHAT: &'static str = "rate-limit rule";
}

impl Rule {
    /// Does the rule apply to `subject` (already found for the rule's scope)?
    pub fn applies_to(&self, subject: &str) -> bool {
        self.key == ANY || self.key == subject
    }
}

/// `POST /system/ratelimits/rules`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = key_fits_scope)]
pub(crate) struct Create {
    /// `ip`, `user` or `api_key`
    #[validate(one_of = SCOPES)]
    scope: String,
    /// `*` (every subject, each counted on its own) when absent
    #[serde(default = "any")]
    key: String,
    /// a minute when not given (seed 002 creates rules without it)
    #[serde(default = "minute")]
    #[validate(range(min = 1, max = MAX_WINDOW_SECONDS))]
    window_seconds: i64,
    #[validate(range(min = 1, max = MAX_REQUESTS))]
    max_requests: i64,
    #[serde(default = "valhalla_sdk::yes")]
    enabled: bool,
    #[serde(default)]
    #[validate(length(max = MAX_DESCRIPTION))]
    description: Option<String>,
}

valhalla_sdk::defaults! {
    fn any() -> String = ANY;
    fn minute() -> i64 = 60;
}

/// The key's check depends on the scope (a known one): its error comes after the fields'.
fn key_fits_scope(rule: &Create, v: &mut Validator) {
    let known = SCOPES.contains(&rule.scope.as_str());
    if let Some(message) = key_problem(&rule.scope, &rule.key).filter(|_| known) {
        v.error("key", message);
    }
}

/// `PATCH /system/ratelimits/rules/{id}`: absent fields stay as they are, `description: null`
/// clears it. The scope cannot change (the key's meaning depends on it): make a new rule.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Patch {
    /// checked against the rule's scope in [`update`]
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_KEY))]
    key: Option<String>,
    #[serde(default)]
    #[validate(range(min = 1, max = MAX_WINDOW_SECONDS))]
    window_seconds: Option<i64>,
    #[serde(default)]
    #[validate(range(min = 1, max = MAX_REQUESTS))]
    max_requests: Option<i64>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "valhalla_sdk::present")]
    #[validate(length(max = MAX_DESCRIPTION))]
    description: Option<Option<String>>,
}

/// What is wrong with `key` as a rule's key in `scope`: it must be `*` or a subject of the
/// scope (an IP address, a principal id, an API client).
fn key_problem(scope: &str, key: &str) -> Option<&'static str> {
    let n = key.chars().count();
    if key == ANY {
        None
    } else if n == 0 || n > MAX_KEY {
        Some("must be `*` or 1 to 256 characters")
    } else if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters")
    } else if scope == "ip" && key.parse::<IpAddr>().is_err() {
        Some("must be `*` or an IP address")
    } else if scope == "api_key" && key.strip_prefix(CLIENT_PREFIX).unwrap_or(key).is_empty() {
        Some("must be `*` or an API client (`client:<id>`, `<id>` or one of its live keys)")
    } else {
        None
    }
}

/// The stored form of a valid key: IPs in canonical form (IPv4-mapped IPv6 as IPv4), API
/// clients as their principal id `client:<id>`, named by their id or by one of their live
/// keys (resolved through api_clients: a key is never stored).
fn stored_key(scope: &str, key: &str) -> Result<String, Problem> {
    Ok(match scope {
        _ if key == ANY => key.to_string(),
        "ip" => normalize_ip(key).unwrap_or_else(|| key.to_string()),
        "api_key" => format!("{CLIENT_PREFIX}{}", clients::resolve(key, "key")?),
        _ => key.to_string(),
    })
}

/// An IP in canonical text form; an IPv4-mapped IPv6 address as plain IPv4.
pub(crate) fn normalize_ip(text: &str) -> Option<String> {
    let ip: IpAddr = text.parse().ok()?;
    Some(ip.to_canonical().to_string())
}

fn target(id: &str) -> String {
    format!("rate_limits/{id}")
}

pub(crate) fn create(Valid(body): Valid<Create>) -> Result<Created<Rule>, Problem> {
    let key = stored_key(&body.scope, &body.key)?;
    let now = clock::now_rfc3339();
    let rule: Rule = db::insert(params![
        clock::new_id(),
        body.scope.as_str(),
        key,
        body.window_seconds,
        body.max_requests,
        body.enabled,
        body.description,
        now.as_str(),
        now
    ])?;
    rules_changed();
    log::audit_created("ratelimit.create", &target(&rule.id), &rule);
    Ok(Created(rule))
}

/// The list filters: `scope` and `enabled`.
#[derive(Deserialize, Validate)]
pub(crate) struct RuleFilter {
    #[validate(one_of = SCOPES)]
    scope: Option<String>,
    enabled: Option<bool>,
}

pub(crate) fn list(
    page: Page,
    ValidQuery(q): ValidQuery<RuleFilter>,
) -> Result<Json<db::List<Rule>>, Problem> {
    db::list(
        db::Filter::new().eq("scope", q.scope).eq("enabled", q.enabled),
        "created_at, id",
        page,
    )
}

pub(crate) fn update(
    Path(id): Path<String>,
    Valid(patch): Valid<Patch>,
) -> Result<Json<Rule>, Problem> {
    let before: Rule = db::get("id", &id)?;
    if let Some(message) = patch.key.as_deref().and_then(|k| key_problem(&before.scope, k)) {
        return Err(Problem::invalid_field("key", message));
    }
    let key = match patch.key {
        Some(k) => stored_key(&before.scope, &k)?,
        None => before.key.clone(),
    };
    let window_seconds = patch.window_seconds.unwrap_or(before.window_seconds);
    let max_requests = patch.max_requests.unwrap_or(before.max_requests);
    let enabled = patch.enabled.unwrap_or(before.enabled);
    let description = patch.description.unwrap_or_else(|| before.description.clone());
    // A new window, subject or state starts counting afresh; a new limit applies to the
    // current count.
    let recount =
        key != before.key || window_seconds != before.window_seconds || enabled != before.enabled;
    if !recount && max_requests == before.max_requests && description == before.description {
        return Ok(Json(before));
    }
    let set = "subject_key = $2, window_seconds = $3, max_requests = $4, enabled = $5, \
               description = $6, updated_at = $7 WHERE id = $1";
    let now = clock::now_rfc3339();
    let params = params![id.as_str(), key, window_seconds, max_requests, enabled, description, now];
    let after: Rule = db::update(set, params)?.ok_or_else(|| db::not_found::<Rule>(&id))?;
    rules_changed();
    if recount {
        reset_counters(&id);
    }
    log::audit("ratelimit.update", &target(&id), Some(&before), Some(&after));
    Ok(Json(after))
}

pub(crate) fn delete(Path(id): Path<String>) -> Result<NoContent, Problem> {
    let before: Rule = db::get("id", &id)?;
    if db::execute("DELETE FROM rate_limit_rules WHERE id = $1", params![id.as_str()])? == 0 {
        return Err(db::not_found::<Rule>(&id));
    }
    rules_changed();
    reset_counters(&id);
    log::audit_deleted("ratelimit.delete", &target(&id), &before);
    Ok(NoContent)
}

fn rules_cache_key(generation: i64) -> String {
    format!("{RULES_CACHE}:{generation}")
}

/// The rules' generation after adding `delta` (0 reads it).
fn rules_generation(delta: i64) -> Option<i64> {
    cache::incr(RULES_GENERATION, delta, GENERATION_WINDOW_MS).map(|c| c.value)
}

/// After a write: the next request loads the rules afresh, here and on every other replica
/// (whose generation counter is its own: the prefix drops every generation's entry).
fn rules_changed() {
    rules_generation(1);
    cache::delete_prefix(&format!("{RULES_CACHE}:"));
}

/// The enabled rules, from the cache when they are there.
pub(crate) fn enabled_rules() -> Result<Vec<Rule>, Problem> {
    enabled_rules_cached().map(|(rules, _)| rules)
}

/// The enabled rules and the cache entry they were read from or stored in (none when the
/// cache could not hold them): a decision made from them holds while that entry does.
pub(crate) fn enabled_rules_cached() -> Result<(Vec<Rule>, Option<String>), Problem> {
    // read before the database, so rules read before a write are cached under the old key
    let key = rules_generation(0).map(rules_cache_key);
    if let Some(rules) = key.as_deref().and_then(cache::get_json::<Vec<Rule>>) {
        return Ok((rules, key));
    }
    let rules = db::select("WHERE enabled = $1 ORDER BY created_at, id", params![true])?;
    if let Some(key) = &key {
        cache::set_json(key, &rules, Some(RULES_TTL_MS));
    }
    Ok((rules, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_per_scope() {
        let errors = |scope: &str, key: &str| key_problem(scope, key).is_some();
        assert!(!errors("ip", "*"));
        assert!(!errors("ip", "10.0.0.1"));
        assert!(!errors("ip", "::1"));
        assert!(errors("ip", "10.0.0.256"));
        assert!(errors("ip", "localhost"));
        assert!(!errors("user", "alice"));
        assert!(errors("user", "a b"));
        assert!(errors("user", ""));
        assert!(!errors("api_key", "client:abc"));
        assert!(!errors("api_key", "abc"));
        assert!(errors("api_key", "client:"));
    }

    #[test]
    fn keys_are_normalized() {
        assert_eq!(stored_key("ip", "::ffff:10.0.0.1").ok().as_deref(), Some("10.0.0.1"));
        assert_eq!(stored_key("ip", "2001:DB8::1").ok().as_deref(), Some("2001:db8::1"));
        assert_eq!(stored_key("user", "*").ok().as_deref(), Some("*"));
        assert_eq!(stored_key("api_key", "*").ok().as_deref(), Some("*"));
    }

    #[test]
    fn the_key_is_read_from_subject_key() {
        let want = "id, scope, subject_key AS \"key\", window_seconds, max_requests, enabled, \
                    description, created_at, updated_at";
        assert_eq!(db::select_list::<Rule>(), want);
        assert!(db::stored_columns::<Rule>().starts_with("id, scope, subject_key, window_seconds"));
    }

    #[test]
    fn the_scope_is_checked_before_the_key_and_the_key_after_the_limits() {
        let create = |json: &str| serde_json::from_str::<Create>(json).unwrap();
        let fields = |c: Create| {
            let errors = Validator::of(&c);
            errors.map_or_else(|p| p.errors.into_iter().map(|e| e.field).collect(), |()| vec![])
        };
        let planet = create(r#"{"scope": "planet", "key": "a b", "max_requests": 0}"#);
        assert_eq!(fields(planet), ["scope", "max_requests"], "no key check without a scope");
        let ip = create(r#"{"scope": "ip", "key": "x", "max_requests": 0}"#);
        assert_eq!(fields(ip), ["max_requests", "key"]);
    }

    #[test]
    fn cached_rules_read_back() {
        let json = r#"[{"id":"r","scope":"ip","key":"*","window_seconds":60,"max_requests":5,
            "enabled":true,"description":null,"created_at":"t","updated_at":"t"}]"#;
        let rules: Vec<Rule> = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&rules).unwrap(), json.replace("\n            ", ""));
    }
}
