//! The guard: count the request against every enabled rule that applies to it, with the
//! host's shared windowed counters (`rl:{rule_id}:{subject}`: counted with every replica on
//! PostgreSQL, so a limit is the service's, not each process's); over any limit is a 429.

use valhalla_sdk::guard::{MemoCounter, MemoInput};
use valhalla_sdk::prelude::*;
use valhalla_sdk::problem::Kind;

use crate::rules::{CLIENT_PREFIX, enabled_rules_cached, normalize_ip};

/// Counter keys: `rl:{rule_id}:{subject}`.
pub(crate) const COUNTER_PREFIX: &str = "rl:";

pub(crate) fn counter_key(rule_id: &str, subject: &str) -> String {
    format!("{COUNTER_PREFIX}{rule_id}:{subject}")
}

/// Forget a rule's counters (its window, key or state changed, or it is gone). The rule's
/// change is made already: counters that cannot be reached now lapse with their window.
pub(crate) fn reset_counters(rule_id: &str) {
    if let Err(p) = counters::reset(&counter_key(rule_id, "")) {
        let fields = [("rule", rule_id), ("why", p.detail.as_str())];
        log::with_fields(log::Level::Warn, "cannot reset the rule's counters", &fields);
    }
}

/// Whole seconds until a window resets, rounded up, at least 1.
pub(crate) fn reset_seconds(reset_ms: u64) -> u64 {
    reset_ms.div_ceil(1000).max(1)
}

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

/// What the rules count requests by: the address only when an `ip` rule exists, the
/// principal only when a `user` or `api_key` rule does.
fn memo_inputs(rules: &[crate::rules::Rule]) -> Vec<MemoInput> {
    let mut inputs = Vec::new();
    if rules.iter().any(|r| r.scope != "ip") {
        inputs.push(MemoInput::Principal);
    }
    if rules.iter().any(|r| r.scope == "ip") {
        inputs.push(MemoInput::ClientIp);
    }
    inputs
}

/// Count the request against every enabled rule that applies to it; over any limit → 429.
pub(crate) fn enforce(req: &Request) -> Result<guard::Decision, Problem> {
    if req.path().starts_with("/system/health") {
        return Ok(guard::proceed());
    }
    let (rules, cached) = enabled_rules_cached()?;
    if rules.is_empty() {
        // nothing to count, for anyone, until the rules change
        guard::memoize(cached.as_deref(), &[]);
        return Ok(guard::proceed());
    }
    let ip = normalize_ip(req.client_ip())
        .or_else(|| Some(req.client_ip().to_string()).filter(|s| !s.is_empty()));
    let principal = req.principal().map(|p| p.id.as_str());
    // the rule with the fewest requests left (ties: the later reset)
    let mut tightest: Option<Standing> = None;
    // of the exceeded rules, the one that resets last: the client must wait for it
    let mut blocking: Option<Standing> = None;
    // what this request was counted against: the host counts the next ones like it
    let mut counted = Vec::new();
    for rule in &rules {
        let Some(subject) = subject_for(&rule.scope, ip.as_deref(), principal) else {
            continue;
        };
        if !rule.applies_to(subject) {
            continue;
        }
        let window_ms = u64::try_from(rule.window_seconds.max(1)).unwrap_or(1) * 1000;
        let key = counter_key(&rule.id, subject);
        let counter = counters::incr(&key, 1, window_ms)?;
        counted.push(MemoCounter { key, limit: rule.max_requests, window_ms });
        let standing = Standing {
            limit: rule.max_requests,
            count: counter.value,
            reset_seconds: reset_seconds(counter.reset_ms),
        };
        if standing.exceeded() {
            if blocking.as_ref().is_none_or(|b| standing.reset_seconds > b.reset_seconds) {
                blocking = Some(standing);
            }
        } else if tightest.as_ref().is_none_or(|t| {
            (standing.remaining(), core::cmp::Reverse(standing.reset_seconds))
                < (t.remaining(), core::cmp::Reverse(t.reset_seconds))
        }) {
            tightest = Some(standing);
        }
    }
    // Until the rules change, the next requests equal in what the rules count by (the
    // address, the principal) are counted against the same counters (by the host), or none.
    let inputs = memo_inputs(&rules);
    if counted.is_empty() {
        guard::memoize(cached.as_deref(), &inputs);
    } else {
        guard::memoize_counting(cached.as_deref(), &inputs, &counted);
    }
    let Some(b) = blocking else {
        return Ok(guard::proceed_with(None, tightest.map(|t| t.headers()).unwrap_or_default()));
    };
    let detail =
        format!("rate limit of {} requests exceeded; retry in {} s", b.limit, b.reset_seconds);
    let retry_after = ("Retry-After".to_string(), b.reset_seconds.to_string());
    let headers = core::iter::once(retry_after).chain(b.headers());
    Ok(guard::refuse(req, Problem::of(Kind::RateLimited, detail), headers))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(subject_for("api_key", ip, Some("client:x")), Some("client:x"));
    }

    #[test]
    fn counters_are_keyed_by_rule_and_subject() {
        assert_eq!(counter_key("r1", "10.0.0.1"), "rl:r1:10.0.0.1");
        assert_eq!(counter_key("r1", ""), "rl:r1:");
    }
}
