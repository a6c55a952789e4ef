//! What the guard saw: a row per rule and source per minute that a request matched (blocked,
//! or only recorded by a monitoring policy), the list of them, and the counts the dashboard
//! shows.

use valhalla_sdk::prelude::*;

use crate::index::Entry;

/// A source matching a rule is recorded at most once per this window.
const RECORD_WINDOW_MS: u64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// A recorded match.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Hit {
    pub id: String,
    pub rule_id: String,
    pub policy_id: Option<String>,
    /// `enforce` or `monitor`: the rule's policy's mode at the time
    pub mode: String,
    /// whether the request was refused
    pub blocked: bool,
    pub source_ip: String,
    pub principal: Option<String>,
    pub method: String,
    pub path: String,
    pub at: String,
}

impl db::Record for Hit {
    const TABLE: &'static str = "blocklist_hits";
    const WHAT: &'static str = "blocklist hit";
}

/// Record that `req` matched `rule` (at most once per rule, source and minute). A failure
/// to record is logged, never the request's failure.
pub(crate) fn record(rule: &Entry, req: &Request, blocked: bool) {
    let source = req.client_ip();
    let first = cache::incr(&format!("hit:{}:{source}", rule.id), 1, RECORD_WINDOW_MS)
        .is_none_or(|c| c.value == 1);
    if !first {
        return;
    }
    let inserted = db::execute(
        &format!(
            "INSERT INTO blocklist_hits ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            db::stored_columns::<Hit>()
        ),
        params![
            clock::new_id(),
            rule.id.as_str(),
            rule.policy_id.as_deref(),
            if rule.enforce { "enforce" } else { "monitor" },
            blocked,
            source,
            req.principal().map(|p| p.id.as_str()),
            valhalla_sdk::pack::method_name(req.method()),
            req.path(),
            clock::now_rfc3339()
        ],
    );
    if let Err(p) = inserted {
        log::warn(&format!("blocklist: a hit of rule {} was not recorded: {}", rule.id, p.detail));
    }
}

/// `GET /system/security/blocklist/hits` filters.
#[derive(Deserialize, Validate)]
pub(crate) struct HitFilter {
    #[validate(rfc3339)]
    since: Option<String>,
    rule_id: Option<String>,
    blocked: Option<bool>,
}

pub(crate) fn list(
    page: db::CursorPage,
    ValidQuery(q): ValidQuery<HitFilter>,
) -> Result<Json<db::CursorList<Hit>>, Problem> {
    let mut filter = db::Filter::new();
    filter.since("at", q.since.as_deref())?.eq("rule_id", q.rule_id).eq("blocked", q.blocked);
    db::cursor_page(&filter, page)
}

/// The counts the dashboard shows.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Summary {
    policies: i64,
    policies_enabled: i64,
    /// active, unexpired rules of enabled policies and standalone ones
    rules_active: i64,
    rules_total: i64,
    hits_last_24h: i64,
    blocked_last_24h: i64,
}

pub(crate) fn summary() -> Result<Json<Summary>, Problem> {
    let now = clock::now_ms();
    let day_ago = clock::rfc3339(now - DAY_MS);
    let count = |sql: &str, params| db::query_scalar(sql, params);
    Ok(Json(Summary {
        policies: count("SELECT COUNT(*) FROM security_policies", vec![])?,
        policies_enabled: count(
            "SELECT COUNT(*) FROM security_policies WHERE enabled = $1",
            params![true],
        )?,
        rules_active: count(
            "SELECT COUNT(*) FROM blocklist_rules r LEFT JOIN security_policies p \
             ON p.id = r.policy_id WHERE r.active = $1 AND (r.policy_id IS NULL OR p.enabled = $1) \
             AND (r.expires_at IS NULL OR r.expires_at > $2)",
            params![true, clock::rfc3339(now)],
        )?,
        rules_total: count("SELECT COUNT(*) FROM blocklist_rules", vec![])?,
        hits_last_24h: count(
            "SELECT COUNT(*) FROM blocklist_hits WHERE at >= $1",
            params![day_ago.as_str()],
        )?,
        blocked_last_24h: count(
            "SELECT COUNT(*) FROM blocklist_hits WHERE at >= $1 AND blocked = $2",
            params![day_ago.as_str(), true],
        )?,
    }))
}
