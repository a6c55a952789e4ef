//! rate_limits (pack UC): rate-limit rules per IP, user or API key, enforced by a guard with
//! the host's atomic windowed counters. A request over a rule's limit gets 429 with
//! `Retry-After` and `RateLimit-*` headers; one under it proceeds with the `RateLimit-*` headers
//! of its tightest rule. The enabled rules are cached; every write drops the cache, so a change
//! applies to the very next request.

#![cfg_attr(not(test), no_std)]

use core::net::IpAddr;

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "rate_limits",
        env!("CARGO_PKG_VERSION"),
        "Rate limits per IP, user or API key (429 + RateLimit-* headers)",
    )
    .post(
        "/system/ratelimits/rules",
        Access::Admin,
        "Create a rate-limit rule",
        create,
    )
    .get(
        "/system/ratelimits/rules",
        Access::Read,
        "List rate-limit rules (filter by scope, enabled)",
        list,
    )
    .get(
        "/system/ratelimits/rules/{id}",
        Access::Read,
        "Get a rate-limit rule",
        get,
    )
    .patch(
        "/system/ratelimits/rules/{id}",
        Access::Admin,
        "Change a rate-limit rule",
        update,
    )
    .delete(
        "/system/ratelimits/rules/{id}",
        Access::Admin,
        "Delete a rate-limit rule",
        delete,
    )
    .get(
        "/system/ratelimits/snapshots",
        Access::Read,
        "Current counts per rule and subject",
        snapshots,
    )
    .guard(
        GuardSpec {
            order: 20,
            methods: vec![],
            path_prefixes: vec![],
            needs_credentials: false,
        },
        enforce,
    )
}

valhalla_sdk::export_pack!(pack);

const COLUMNS: &str = "id, scope, subject_key, window_seconds, max_requests, enabled, description, \
                       created_at, updated_at";
const SCOPES: [&str; 3] = ["ip", "user", "api_key"];
/// The key of a rule that applies to every subject (each counted on its own).
const ANY: &str = "*";
/// Principal ids of API clients start with this.
const CLIENT_PREFIX: &str = "client:";
const MAX_KEY: usize = 256;
const MAX_DESCRIPTION: usize = 1024;
const MAX_WINDOW_SECONDS: i64 = 86_400;
const MAX_REQUESTS: i64 = 1_000_000;
/// The enabled rules are cached as `rules:{generation}`; every write moves the generation on
/// (a host counter) and drops the old entry. A guard that read the rules just before a write
/// can only re-fill the old generation's entry, which nobody reads any more.
const RULES_CACHE: &str = "rules";
const RULES_GENERATION: &str = "rules-generation";
/// The generation counter's window: practically forever.
const GENERATION_WINDOW_MS: u64 = 10 * 365 * 86_400_000;
/// Bounds how long a cached list lives without any write.
const RULES_TTL_MS: u64 = 30_000;
/// Counter keys: `rl:{rule_id}:{subject}`.
const COUNTER_PREFIX: &str = "rl:";
const DEFAULT_SNAPSHOT_LIMIT: i64 = 100;
const MAX_SNAPSHOT_LIMIT: i64 = 1000;
/// Counters a snapshot looks at, at most (before the scope filter and the limit).
const SNAPSHOT_SCAN: u32 = 10_000;

// ---------------------------------------------------------------------------------------------
// Rules

#[derive(Serialize, Deserialize, Clone)]
struct Rule {
    id: String,
    scope: String,
    key: String,
    window_seconds: i64,
    max_requests: i64,
    enabled: bool,
    description: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Rule {
    fn from_row(row: &Row) -> Result<Self, Problem> {
        Ok(Self {
            id: row.text("id")?,
            scope: row.text("scope")?,
            key: row.text("subject_key")?,
            window_seconds: row.int("window_seconds")?,
            max_requests: row.int("max_requests")?,
            enabled: row.bool("enabled")?,
            description: row.opt_text("description")?,
            created_at: row.text("created_at")?,
            updated_at: row.text("updated_at")?,
        })
    }

    /// Does the rule apply to `subject` (already found for the rule's scope)?
    fn applies_to(&self, subject: &str) -> bool {
        self.key == ANY || self.key == subject
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    scope: String,
    #[serde(default = "any")]
    key: String,
    /// a minute when not given (seed 002 creates rules without it)
    #[serde(default = "minute")]
    window_seconds: i64,
    max_requests: i64,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    description: Option<String>,
}

fn any() -> String {
    ANY.to_string()
}

fn minute() -> i64 {
    60
}

fn yes() -> bool {
    true
}

impl Validate for Create {
    fn validate(&self, v: &mut Validator) {
        let scope_ok = SCOPES.contains(&self.scope.as_str());
        v.check(scope_ok, "scope", "must be one of `ip`, `user`, `api_key`");
        if scope_ok {
            check_key(v, &self.scope, &self.key);
        }
        check_limits(
            v,
            Some(self.window_seconds),
            Some(self.max_requests),
            self.description.as_deref(),
        );
    }
}

/// A partial update; absent fields stay as they are, `description: null` clears it. The scope
/// cannot change (the key's meaning depends on it): make a new rule instead.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    window_seconds: Option<i64>,
    #[serde(default)]
    max_requests: Option<i64>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl Validate for Patch {
    fn validate(&self, v: &mut Validator) {
        if let Some(key) = &self.key {
            // The scope-specific rules are checked against the rule in `update`.
            v.length("key", key, MAX_KEY);
        }
        check_limits(
            v,
            self.window_seconds,
            self.max_requests,
            self.description.as_ref().and_then(|d| d.as_deref()),
        );
    }
}

fn check_limits(
    v: &mut Validator,
    window_seconds: Option<i64>,
    max_requests: Option<i64>,
    description: Option<&str>,
) {
    if let Some(w) = window_seconds {
        v.range("window_seconds", w, 1, MAX_WINDOW_SECONDS);
    }
    if let Some(m) = max_requests {
        v.range("max_requests", m, 1, MAX_REQUESTS);
    }
    v.max_length("description", description, MAX_DESCRIPTION);
}

/// `key` is `*` or a subject of `scope`: an IP address, a principal id, an API client.
fn check_key(v: &mut Validator, scope: &str, key: &str) {
    if key == ANY {
        return;
    }
    let n = key.chars().count();
    if n == 0 || n > MAX_KEY {
        v.check(false, "key", "must be `*` or 1 to 256 characters");
        return;
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        v.check(
            false,
            "key",
            "must not contain spaces or control characters",
        );
        return;
    }
    match scope {
        "ip" => {
            v.check(
                key.parse::<IpAddr>().is_ok(),
                "key",
                "must be `*` or an IP address",
            );
        }
        "api_key" => {
            let id = key.strip_prefix(CLIENT_PREFIX).unwrap_or(key);
            v.check(
                !id.is_empty(),
                "key",
                "must be `*` or an API client id (`client:<id>` or `<id>`)",
            );
        }
        _ => {}
    }
}

/// The stored form of a valid key: IPs in canonical form (IPv4-mapped IPv6 as IPv4), API
/// clients as their principal id `client:<id>`.
fn normalize_key(scope: &str, key: &str) -> String {
    if key == ANY {
        return key.to_string();
    }
    match scope {
        "ip" => normalize_ip(key).unwrap_or_else(|| key.to_string()),
        "api_key" if !key.starts_with(CLIENT_PREFIX) => format!("{CLIENT_PREFIX}{key}"),
        _ => key.to_string(),
    }
}

/// An IP in canonical text form; an IPv4-mapped IPv6 address as plain IPv4.
fn normalize_ip(text: &str) -> Option<String> {
    let ip: IpAddr = text.parse().ok()?;
    Some(ip.to_canonical().to_string())
}

fn find(id: &str) -> Result<Option<Rule>, Problem> {
    let sql = format!("SELECT {COLUMNS} FROM rate_limit_rules WHERE id = $1");
    db::query_one(&sql, params![id])?
        .map(|row| Rule::from_row(&row))
        .transpose()
}

fn not_found(id: &str) -> Problem {
    Problem::not_found(format!("no rate-limit rule `{id}`"))
}

fn target(id: &str) -> String {
    format!("rate_limits/{id}")
}

fn rules_cache_key(generation: i64) -> String {
    format!("{RULES_CACHE}:{generation}")
}

/// The rules' generation after adding `delta` (0 reads it).
fn rules_generation(delta: i64) -> Option<i64> {
    cache::incr(RULES_GENERATION, delta, GENERATION_WINDOW_MS).map(|c| c.value)
}

/// After a write: the next request loads the rules afresh.
fn rules_changed() {
    if let Some(generation) = rules_generation(1) {
        cache::delete(&rules_cache_key(generation - 1));
    }
}

/// The enabled rules, from the cache when they are there.
fn enabled_rules() -> Result<Vec<Rule>, Problem> {
    // read before the database, so rules read before a write are cached under the old key
    let key = rules_generation(0).map(rules_cache_key);
    if let Some(rules) = key.as_deref().and_then(cache::get_json::<Vec<Rule>>) {
        return Ok(rules);
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM rate_limit_rules WHERE enabled = $1 ORDER BY created_at, id"
    );
    let rules = db::query(&sql, params![true])?
        .iter()
        .map(Rule::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(key) = &key {
        cache::set_json(key, &rules, Some(RULES_TTL_MS));
    }
    Ok(rules)
}

fn counter_key(rule_id: &str, subject: &str) -> String {
    format!("{COUNTER_PREFIX}{rule_id}:{subject}")
}

/// Forget a rule's counters (its window, key or state changed, or it is gone).
fn reset_counters(rule_id: &str) {
    cache::delete_prefix(&counter_key(rule_id, ""));
}

/// The `scope` query filter, checked.
fn scope_query(req: &Request) -> Result<Option<&str>, Problem> {
    match req.query("scope") {
        None => Ok(None),
        Some(s) if SCOPES.contains(&s) => Ok(Some(s)),
        Some(s) => Err(Problem::invalid_field(
            "scope",
            format!("`{s}` is not one of `ip`, `user`, `api_key`"),
        )),
    }
}

fn create(req: &Request) -> Result<Response, Problem> {
    let body: Create = req.json()?;
    let now = clock::now_rfc3339();
    let sql = format!(
        "INSERT INTO rate_limit_rules ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            clock::new_id(),
            body.scope.as_str(),
            normalize_key(&body.scope, &body.key),
            body.window_seconds,
            body.max_requests,
            body.enabled,
            body.description,
            now
        ],
    )?
    .ok_or_else(|| Problem::internal("the insert returned no row"))?;
    let rule = Rule::from_row(&row)?;
    rules_changed();
    log::audit::<(), Rule>("ratelimit.create", &target(&rule.id), None, Some(&rule));
    Response::created(&rule)
}

fn list(req: &Request) -> Result<Response, Problem> {
    let page = req.page()?;
    let mut filter = db::Filter::new();
    filter
        .eq("scope", scope_query(req)?)
        .eq("enabled", req.query_as::<bool>("enabled")?);
    db::list_page(
        "rate_limit_rules",
        COLUMNS,
        &filter,
        "created_at, id",
        page,
        Rule::from_row,
    )
}

fn get(req: &Request) -> Result<Response, Problem> {
    let id = req.param("id")?;
    Response::ok(&find(id)?.ok_or_else(|| not_found(id))?)
}

fn update(req: &Request) -> Result<Response, Problem> {
    let id = req.param("id")?;
    let patch: Patch = req.json()?;
    let before = find(id)?.ok_or_else(|| not_found(id))?;
    if let Some(key) = &patch.key {
        let mut v = Validator::default();
        check_key(&mut v, &before.scope, key);
        v.finish()?;
    }
    let key = patch
        .key
        .as_deref()
        .map_or_else(|| before.key.clone(), |k| normalize_key(&before.scope, k));
    let window_seconds = patch.window_seconds.unwrap_or(before.window_seconds);
    let max_requests = patch.max_requests.unwrap_or(before.max_requests);
    let enabled = patch.enabled.unwrap_or(before.enabled);
    let description = patch
        .description
        .clone()
        .unwrap_or_else(|| before.description.clone());
    let unchanged = key == before.key
        && window_seconds == before.window_seconds
        && max_requests == before.max_requests
        && enabled == before.enabled
        && description == before.description;
    if unchanged {
        return Response::ok(&before);
    }
    let sql = format!(
        "UPDATE rate_limit_rules SET subject_key = $2, window_seconds = $3, max_requests = $4, \
         enabled = $5, description = $6, updated_at = $7 WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            id,
            key.as_str(),
            window_seconds,
            max_requests,
            enabled,
            description,
            clock::now_rfc3339()
        ],
    )?
    .ok_or_else(|| not_found(id))?;
    let after = Rule::from_row(&row)?;
    rules_changed();
    // A new window, subject or state starts counting afresh; a new limit applies to the
    // current count.
    if after.key != before.key
        || after.window_seconds != before.window_seconds
        || after.enabled != before.enabled
    {
        reset_counters(id);
    }
    log::audit("ratelimit.update", &target(id), Some(&before), Some(&after));
    Response::ok(&after)
}

fn delete(req: &Request) -> Result<Response, Problem> {
    let id = req.param("id")?;
    let before = find(id)?.ok_or_else(|| not_found(id))?;
    if db::execute("DELETE FROM rate_limit_rules WHERE id = $1", params![id])? == 0 {
        return Err(not_found(id));
    }
    rules_changed();
    reset_counters(id);
    log::audit::<Rule, ()>("ratelimit.delete", &target(id), Some(&before), None);
    Response::no_content()
}

// ---------------------------------------------------------------------------------------------
// Snapshots

#[derive(Serialize)]
struct Snapshot {
    rule_id: String,
    scope: String,
    subject: String,
    count: i64,
    limit: i64,
    remaining: i64,
    reset_seconds: u64,
}

fn snapshots(req: &Request) -> Result<Response, Problem> {
    let scope = scope_query(req)?;
    let limit = req
        .query_as::<i64>("limit")?
        .unwrap_or(DEFAULT_SNAPSHOT_LIMIT);
    if !(1..=MAX_SNAPSHOT_LIMIT).contains(&limit) {
        return Err(Problem::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_SNAPSHOT_LIMIT}"),
        ));
    }
    let rule_id = req.query("rule_id");
    let prefix = match rule_id {
        Some(id) => counter_key(id, ""),
        None => COUNTER_PREFIX.to_string(),
    };
    let rules = enabled_rules()?;
    let items: Vec<Snapshot> = cache::counters(&prefix, SNAPSHOT_SCAN)
        .into_iter()
        .filter_map(|(key, counter)| {
            let (id, subject) = key.strip_prefix(COUNTER_PREFIX)?.split_once(':')?;
            let rule = rules.iter().find(|r| r.id == id)?;
            if scope.is_some_and(|s| s != rule.scope) {
                return None;
            }
            Some(Snapshot {
                rule_id: rule.id.clone(),
                scope: rule.scope.clone(),
                subject: subject.to_string(),
                count: counter.value,
                limit: rule.max_requests,
                remaining: (rule.max_requests - counter.value).max(0),
                reset_seconds: reset_seconds(counter.reset_ms),
            })
        })
        .collect();
    let total = items.len();
    let items: Vec<Snapshot> = items.into_iter().take(limit as usize).collect();
    Response::ok(&serde_json::json!({ "total": total, "items": items }))
}

// ---------------------------------------------------------------------------------------------
// The guard

/// Where one rule stands for this request.
struct Standing {
    limit: i64,
    count: i64,
    reset_seconds: u64,
}

impl Standing {
    fn remaining(&self) -> i64 {
        (self.limit - self.count).max(0)
    }

    fn exceeded(&self) -> bool {
        self.count > self.limit
    }

    fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("RateLimit-Limit".into(), self.limit.to_string()),
            ("RateLimit-Remaining".into(), self.remaining().to_string()),
            ("RateLimit-Reset".into(), self.reset_seconds.to_string()),
        ]
    }
}

/// Whole seconds until a window resets, rounded up, at least 1.
fn reset_seconds(reset_ms: u64) -> u64 {
    reset_ms.div_ceil(1000).max(1)
}

/// The subject a rule of `scope` counts this request for, if the request has one.
fn subject_for<'a>(
    scope: &str,
    ip: Option<&'a str>,
    principal: Option<&'a str>,
) -> Option<&'a str> {
    match scope {
        "ip" => ip,
        "user" => principal,
        "api_key" => principal.filter(|id| id.starts_with(CLIENT_PREFIX)),
        _ => None,
    }
}

/// Count the request against every enabled rule that applies to it; over any limit → 429.
fn enforce(req: &Request) -> Result<guard::Decision, Problem> {
    if req.path().starts_with("/system/health") {
        return Ok(guard::proceed());
    }
    let rules = enabled_rules()?;
    if rules.is_empty() {
        return Ok(guard::proceed());
    }
    let ip = normalize_ip(req.client_ip())
        .or_else(|| Some(req.client_ip().to_string()).filter(|s| !s.is_empty()));
    let principal = req.principal().map(|p| p.id.as_str());
    // the rule with the fewest requests left (ties: the later reset)
    let mut tightest: Option<Standing> = None;
    // of the exceeded rules, the one that resets last: the client must wait for it
    let mut blocking: Option<Standing> = None;
    for rule in &rules {
        let Some(subject) = subject_for(&rule.scope, ip.as_deref(), principal) else {
            continue;
        };
        if !rule.applies_to(subject) {
            continue;
        }
        let window_ms = u64::try_from(rule.window_seconds.max(1)).unwrap_or(1) * 1000;
        let counter = cache::incr(&counter_key(&rule.id, subject), 1, window_ms)
            .ok_or_else(|| Problem::unavailable("the rate-limit counters are unavailable"))?;
        let standing = Standing {
            limit: rule.max_requests,
            count: counter.value,
            reset_seconds: reset_seconds(counter.reset_ms),
        };
        if standing.exceeded() {
            if blocking
                .as_ref()
                .is_none_or(|b| standing.reset_seconds > b.reset_seconds)
            {
                blocking = Some(standing);
            }
        } else if tightest.as_ref().is_none_or(|t| {
            (
                standing.remaining(),
                core::cmp::Reverse(standing.reset_seconds),
            ) < (t.remaining(), core::cmp::Reverse(t.reset_seconds))
        }) {
            tightest = Some(standing);
        }
    }
    if let Some(b) = blocking {
        let detail = format!(
            "rate limit of {} requests exceeded; retry in {} s",
            b.limit, b.reset_seconds
        );
        let mut response = Problem::new(429, "rate-limited", "Too Many Requests", detail)
            .into_response(req.request_id(), req.path())
            .with_header("Retry-After", b.reset_seconds.to_string());
        for (name, value) in b.headers() {
            response = response.with_header(name, value);
        }
        return Ok(guard::respond(response));
    }
    Ok(guard::proceed_with(
        None,
        tightest.map(|t| t.headers()).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_per_scope() {
        let errors = |scope: &str, key: &str| {
            let mut v = Validator::default();
            check_key(&mut v, scope, key);
            v.finish().is_err()
        };
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
        assert_eq!(normalize_key("ip", "::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(normalize_key("ip", "2001:DB8::1"), "2001:db8::1");
        assert_eq!(normalize_key("api_key", "abc"), "client:abc");
        assert_eq!(normalize_key("api_key", "client:abc"), "client:abc");
        assert_eq!(normalize_key("user", "*"), "*");
    }

    #[test]
    fn resets_round_up() {
        assert_eq!(reset_seconds(0), 1);
        assert_eq!(reset_seconds(1), 1);
        assert_eq!(reset_seconds(1000), 1);
        assert_eq!(reset_seconds(1001), 2);
        assert_eq!(reset_seconds(59_999), 60);
    }

    #[test]
    fn subjects_per_scope() {
        let ip = Some("127.0.0.1");
        assert_eq!(subject_for("ip", ip, None), ip);
        assert_eq!(subject_for("user", ip, None), None);
        assert_eq!(subject_for("user", ip, Some("local")), Some("local"));
        assert_eq!(subject_for("api_key", ip, Some("local")), None);
        assert_eq!(
            subject_for("api_key", ip, Some("client:x")),
            Some("client:x")
        );
    }
}
