//! Blocklist rules: an address, a network, a principal or an API client, under a policy or
//! standalone, with a severity and an optional expiry — given as a time, or as a ban duration
//! that grows for repeat offenders (fail2ban's `bantime.increment`).

use valhalla_sdk::clients;
use valhalla_sdk::prelude::*;

use crate::index;
use crate::keys::rule_key;
use crate::policies::Policy;
use crate::settings::Settings;
use crate::values::{self, Net, RULE_TYPES, SEVERITIES, canonical_ip};

/// A rule as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Rule {
    pub id: String,
    /// the policy it belongs to; none for a standalone rule (which enforces)
    pub policy_id: Option<String>,
    /// `ip`, `cidr`, `user` or `api_key`
    pub rule_type: String,
    /// canonical: an address, a network (`10.1.0.0/16`), a principal id, an API client id
    pub value: String,
    /// what the guard looks the rule up by: stored, never answered
    #[serde(skip_serializing)]
    #[schemars(skip)]
    #[allow(dead_code)]
    pub lookup_key: String,
    pub severity: String,
    pub reason: Option<String>,
    pub active: bool,
    pub expires_at: Option<String>,
    /// the ban's length when it was given as a duration (after escalation)
    pub duration_seconds: Option<i64>,
    /// how many times this value has been blocked (1: the first time)
    pub offense: i64,
    pub created_by: String,
    pub created_at: String,
}

impl db::Record for Rule {
    const TABLE: &'static str = "blocklist_rules";
    const WHAT: &'static str = "blocklist rule";
}

/// `POST /system/security/blocklist`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = one_expiry)]
pub(crate) struct Create {
    #[validate(one_of = RULE_TYPES)]
    rule_type: String,
    /// an address (`ip`), a CIDR (`cidr`), a principal id (`user`), an API client id or a
    /// live key, which is resolved to its client and never stored (`api_key`)
    #[validate(length(min = 1, max = 256))]
    value: String,
    #[serde(default)]
    policy_id: Option<String>,
    #[serde(default = "medium")]
    #[validate(one_of = SEVERITIES)]
    severity: String,
    #[serde(default, alias = "description")]
    #[validate(length(max = 1024))]
    reason: Option<String>,
    #[serde(default = "valhalla_sdk::yes")]
    active: bool,
    #[serde(default)]
    #[validate(rfc3339)]
    expires_at: Option<String>,
    /// a ban length: `90s`, `30m`, `4h`, `1h30m`, `2d`
    #[serde(default)]
    #[validate(custom(function = duration_text))]
    duration: Option<String>,
    #[serde(default)]
    #[validate(range(min = 1, max = values::MAX_DURATION_SECONDS))]
    duration_seconds: Option<i64>,
}

valhalla_sdk::defaults! { fn medium() -> String = "medium"; }

fn duration_text(text: &str) -> Result<(), &'static str> {
    values::parse_duration(text).map(|_| ())
}

fn one_expiry(body: &Create, v: &mut Validator) {
    let given =
        [body.expires_at.is_some(), body.duration.is_some(), body.duration_seconds.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        v.error("expires_at", "give one of expires_at, duration and duration_seconds");
    }
}

fn target(id: &str) -> String {
    format!("security_policy/blocklist/{id}")
}

/// The canonical value of a rule of `rule_type`, or what is wrong with it (422 on `value`).
fn canonical_value(rule_type: &str, value: &str, settings: &Settings) -> Result<String, Problem> {
    let bad = |m: &str| Problem::invalid_field("value", m);
    let never = settings.never_block()?;
    match rule_type {
        "ip" => {
            let ip = canonical_ip(value).ok_or_else(|| bad("not an IP address"))?;
            if values::in_any(ip, &never) {
                return Err(bad("the never_block setting keeps this address from being blocked"));
            }
            Ok(ip.to_string())
        }
        "cidr" => Net::parse(value).map(|n| n.to_string()).map_err(bad),
        "user" if value.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(bad("a principal id has no spaces or control characters"))
        }
        "user" => Ok(value.to_string()),
        _ => clients::resolve(value, "value"),
    }
}

/// This value's offense count, counting this one (a value unseen for the settings'
/// `forget_after_seconds` starts again at 1).
fn count_offense(key: &str, settings: &Settings, now_ms: i64) -> Result<i64, Problem> {
    let forget_before = clock::rfc3339(now_ms - settings.ban_increment.forget_after_seconds * 1000);
    let row = db::query_one(
        "INSERT INTO blocklist_offenses (lookup_key, offenses, last_at) VALUES ($1, 1, $2) \
         ON CONFLICT (lookup_key) DO UPDATE SET offenses = CASE \
         WHEN blocklist_offenses.last_at < $3 THEN 1 ELSE blocklist_offenses.offenses + 1 END, \
         last_at = $2 RETURNING offenses",
        params![key, clock::rfc3339(now_ms), forget_before],
    )?;
    row.map_or(Ok(1), |r| r.get::<i64>("offenses"))
}

pub(crate) fn create(
    Actor(by): Actor,
    Valid(body): Valid<Create>,
) -> Result<Created<Rule>, Problem> {
    let settings = Settings::load()?;
    let value = canonical_value(&body.rule_type, &body.value, &settings)?;
    if let Some(policy) = &body.policy_id
        && db::find::<Policy>("id", policy)?.is_none()
    {
        return Err(Problem::invalid_field("policy_id", "no such policy"));
    }
    let key = rule_key(&body.rule_type, &value);
    let now_ms = clock::now_ms();
    let offense = count_offense(&key, &settings, now_ms)?;
    let base = match (&body.duration, body.duration_seconds) {
        (Some(text), _) => {
            Some(values::parse_duration(text).map_err(|m| Problem::invalid_field("duration", m))?)
        }
        (None, seconds) => seconds,
    };
    let duration = base.map(|s| settings.ban_increment.escalate(s, offense));
    let expires_at = match (&body.expires_at, duration) {
        (Some(at), _) => {
            let ms = clock::parse_rfc3339(at)
                .ok_or_else(|| Problem::invalid_field("expires_at", "not RFC 3339"))?;
            Some(clock::rfc3339(ms))
        }
        (None, Some(seconds)) => {
            Some(clock::rfc3339(now_ms.saturating_add(seconds.saturating_mul(1000))))
        }
        (None, None) => None,
    };
    let rule: Rule = db::insert(params![
        clock::new_id(),
        body.policy_id,
        body.rule_type.as_str(),
        value,
        key,
        body.severity,
        body.reason,
        body.active,
        expires_at,
        duration,
        offense,
        by,
        clock::rfc3339(now_ms)
    ])?;
    index::added();
    log::audit_created("security.blocklist.create", &target(&rule.id), &rule);
    Ok(Created(rule))
}

/// The list filters; `active=true` is active and unexpired, `false` the rest.
#[derive(Deserialize, Validate)]
pub(crate) struct RuleFilter {
    #[validate(one_of = RULE_TYPES)]
    rule_type: Option<String>,
    #[validate(length(min = 1, max = 256))]
    value: Option<String>,
    policy_id: Option<String>,
    active: Option<bool>,
}

pub(crate) fn list(
    page: Page,
    ValidQuery(q): ValidQuery<RuleFilter>,
) -> Result<Json<db::List<Rule>>, Problem> {
    // a value is compared in its canonical form (an address as stored)
    let value = match (&q.rule_type, &q.value) {
        (Some(t), Some(v)) if t == "ip" => {
            Some(canonical_ip(v).map_or_else(|| v.clone(), |ip| ip.to_string()))
        }
        (Some(t), Some(v)) if t == "cidr" => {
            Some(Net::parse(v).map_or_else(|_| v.clone(), |n| n.to_string()))
        }
        (_, v) => v.clone(),
    };
    let mut filter = db::Filter::new();
    filter.eq("rule_type", q.rule_type).eq("value", value).eq("policy_id", q.policy_id);
    if let Some(active) = q.active {
        let live = move |n: usize| {
            let live =
                format!("(active = ${n} AND (expires_at IS NULL OR expires_at > ${}))", n + 1);
            if active { live } else { format!("NOT {live}") }
        };
        filter.raw(live, params![true, clock::now_rfc3339()]);
    }
    db::list::<Rule>(&filter, "created_at, id", page)
}

pub(crate) fn get(Path(id): Path<String>) -> Result<Json<Rule>, Problem> {
    db::get::<Rule>("id", &id).map(Json)
}

pub(crate) fn delete(Path(id): Path<String>) -> Result<NoContent, Problem> {
    let before: Rule = db::get("id", &id)?;
    db::execute("DELETE FROM blocklist_rules WHERE id = $1", params![id.as_str()])?;
    index::invalidate();
    log::audit_deleted("security.blocklist.delete", &target(&id), &before);
    Ok(NoContent)
}
