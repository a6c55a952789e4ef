//! Recent incidents: requests the blocklist refused, honeypot hits and executed security
//! actions, each turned from its pack's record into one shape and merged newest first.

use core::cmp::Reverse;

use serde_json::Value;
use valhalla_sdk::prelude::*;

use crate::sources::text;

pub(crate) const BLOCKED_REQUEST: &str = "blocked_request";
pub(crate) const HONEYPOT_HIT: &str = "honeypot_hit";
pub(crate) const ACTION_EXECUTED: &str = "action_executed";

/// One incident, whatever pack recorded it.
#[derive(Serialize, JsonSchema, Debug, Clone, PartialEq)]
pub(crate) struct Incident {
    /// `blocked_request`, `honeypot_hit` or `action_executed`
    pub kind: &'static str,
    /// when it happened (RFC 3339)
    pub at: String,
    /// one line for a person
    pub summary: String,
    /// the record's id in its pack (the blocklist hit, the telemetry record, the action)
    pub id: String,
    /// the address involved, when there is one
    pub source_ip: Option<String>,
    pub severity: Option<String>,
}

fn or_unknown(value: Option<&str>) -> &str {
    value.unwrap_or("?")
}

/// A blocklist hit (security_policy) that was refused; `None` for a monitored one or a
/// record without an id or time.
pub(crate) fn blocked_request(hit: &Value) -> Option<Incident> {
    if hit.get("blocked").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let source_ip = text(hit, "source_ip").map(str::to_string);
    let summary = format!(
        "{} {} from {} refused by blocklist rule {}",
        or_unknown(text(hit, "method")),
        or_unknown(text(hit, "path")),
        or_unknown(source_ip.as_deref()),
        or_unknown(text(hit, "rule_id")),
    );
    Some(Incident {
        kind: BLOCKED_REQUEST,
        at: text(hit, "at")?.to_string(),
        summary,
        id: text(hit, "id")?.to_string(),
        source_ip,
        severity: None,
    })
}

/// A honeypot telemetry record.
pub(crate) fn honeypot_hit(record: &Value) -> Option<Incident> {
    let source_ip = text(record, "source_ip").map(str::to_string);
    let blocked = record.get("blocked").and_then(Value::as_bool) == Some(true);
    let summary = format!(
        "honeypot hit: {} {} from {}{}",
        or_unknown(text(record, "method")),
        or_unknown(text(record, "path")),
        or_unknown(source_ip.as_deref()),
        if blocked { " (source blocked)" } else { "" },
    );
    Some(Incident {
        kind: HONEYPOT_HIT,
        at: text(record, "at")?.to_string(),
        summary,
        id: text(record, "id")?.to_string(),
        source_ip,
        severity: text(record, "severity").map(str::to_string),
    })
}

/// An executed security action, at the time it was executed.
pub(crate) fn action_executed(action: &Value) -> Option<Incident> {
    let kind = or_unknown(text(action, "action_type"));
    let by = text(action, "executed_by").map(|b| format!(" by {b}")).unwrap_or_default();
    let reason = text(action, "reason").map(|r| format!(": {r}")).unwrap_or_default();
    let at = text(action, "executed_at").or_else(|| text(action, "updated_at"))?;
    Some(Incident {
        kind: ACTION_EXECUTED,
        at: at.to_string(),
        summary: format!("{kind} executed{by}{reason}"),
        id: text(action, "id")?.to_string(),
        source_ip: action["params"]["ip"].as_str().map(str::to_string),
        severity: action["params"]["severity"].as_str().map(str::to_string),
    })
}

/// Newest first (by time, then id), at most `limit`.
pub(crate) fn newest_first(mut incidents: Vec<Incident>, limit: usize) -> Vec<Incident> {
    let key = |i: &Incident| (clock::parse_rfc3339(&i.at).unwrap_or(i64::MIN), i.id.clone());
    incidents.sort_by_key(|i| Reverse(key(i)));
    incidents.truncate(limit);
    incidents
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_record_reads_as_an_incident() {
        let hit = json!({"id": "h1", "rule_id": "r1", "blocked": true, "source_ip": "10.0.0.1",
                         "method": "GET", "path": "/x", "at": "2026-11-23T08:00:00.000000Z"});
        let i = blocked_request(&hit).unwrap();
        assert_eq!((i.kind, i.id.as_str()), (BLOCKED_REQUEST, "h1"));
        assert_eq!(i.summary, "GET /x from 10.0.0.1 refused by blocklist rule r1");
        let monitored = json!({"id": "h2", "blocked": false, "at": "2026-11-23T08:00:00Z"});
        assert_eq!(blocked_request(&monitored), None);

        let t = json!({"id": "t1", "source_ip": "10.0.0.2", "method": "GET", "path": "/.env",
                       "blocked": true, "severity": "high", "at": "2026-11-23T08:00:00Z"});
        let i = honeypot_hit(&t).unwrap();
        assert_eq!(i.summary, "honeypot hit: GET /.env from 10.0.0.2 (source blocked)");
        assert_eq!(i.severity.as_deref(), Some("high"));

        let a = json!({"id": "a1", "action_type": "block_ip", "params": {"ip": "10.0.0.3"},
                       "reason": "scanner", "executed_by": "bootstrap-admin",
                       "executed_at": "2026-11-23T09:00:00Z", "updated_at": "x"});
        let i = action_executed(&a).unwrap();
        assert_eq!(i.summary, "block_ip executed by bootstrap-admin: scanner");
        assert_eq!(
            (i.at.as_str(), i.source_ip.as_deref()),
            ("2026-11-23T09:00:00Z", Some("10.0.0.3"))
        );
        assert_eq!(honeypot_hit(&json!({"id": "no time"})), None);
    }

    #[test]
    fn incidents_merge_newest_first() {
        let at = |id: &str, at: &str| Incident {
            kind: HONEYPOT_HIT,
            at: at.into(),
            summary: String::new(),
            id: id.into(),
            source_ip: None,
            severity: None,
        };
        let merged = newest_first(
            vec![
                at("a", "2026-11-23T08:00:00.000000Z"),
                at("b", "2026-11-23T09:00:00+01:00"),
                at("c", "2026-11-23T08:30:00Z"),
                at("d", "2026-11-23T08:30:00Z"),
            ],
            3,
        );
        let ids: Vec<&str> = merged.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["d", "c", "b"], "b is 08:00Z as a is: the later id first");
    }
}
