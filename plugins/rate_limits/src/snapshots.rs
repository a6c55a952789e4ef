//! `GET /system/ratelimits/snapshots`: where every live counter stands against its rule.

use valhalla_sdk::prelude::*;

use crate::guard::{COUNTER_PREFIX, counter_key, reset_seconds};
use crate::rules::{enabled_rules, scope_filter};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
/// Counters a snapshot looks at, at most (before the scope filter and the limit).
const SCAN: u32 = 10_000;

/// One subject's count under one rule.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Snapshot {
    rule_id: String,
    scope: String,
    subject: String,
    count: i64,
    limit: i64,
    remaining: i64,
    reset_seconds: u64,
}

/// The filters: `scope`, `rule_id`, and at most `limit` items (100 by default).
#[derive(Deserialize)]
pub(crate) struct Filter {
    scope: Option<String>,
    rule_id: Option<String>,
    limit: Option<i64>,
}

pub(crate) fn snapshots(Query(q): Query<Filter>) -> Result<Json<db::List<Snapshot>>, Problem> {
    let scope = scope_filter(q.scope)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        let message = format!("must be between 1 and {MAX_LIMIT}");
        return Err(Problem::invalid_field("limit", message));
    }
    let prefix = match &q.rule_id {
        Some(id) => counter_key(id, ""),
        None => COUNTER_PREFIX.to_string(),
    };
    let rules = enabled_rules()?;
    let mut items: Vec<Snapshot> = cache::counters(&prefix, SCAN)
        .into_iter()
        .filter_map(|(key, counter)| {
            let (id, subject) = key.strip_prefix(COUNTER_PREFIX)?.split_once(':')?;
            let rule = rules.iter().find(|r| r.id == id)?;
            if scope.as_ref().is_some_and(|s| *s != rule.scope) {
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
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Json(db::List { total, items }))
}
