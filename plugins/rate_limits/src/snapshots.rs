//! `GET /system/ratelimits/snapshots`: where every live counter stands against its rule.

use valhalla_sdk::prelude::*;

use crate::guard::{COUNTER_PREFIX, counter_key, reset_seconds};
use crate::rules::{SCOPES, enabled_rules};

const DEFAULT_LIMIT: i64 = 100;
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
#[derive(Deserialize, Validate)]
pub(crate) struct Filter {
    #[validate(one_of = SCOPES)]
    scope: Option<String>,
    rule_id: Option<String>,
    #[validate(range(min = 1, max = 1000))]
    limit: Option<i64>,
}

pub(crate) fn snapshots(
    ValidQuery(q): ValidQuery<Filter>,
) -> Result<Json<db::List<Snapshot>>, Problem> {
    let (scope, limit) = (q.scope, q.limit.unwrap_or(DEFAULT_LIMIT));
    let prefix = match &q.rule_id {
        Some(id) => counter_key(id, ""),
        None => COUNTER_PREFIX.to_string(),
    };
    let rules = enabled_rules()?;
    let mut items: Vec<Snapshot> = counters::live(&prefix, SCAN)?
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
