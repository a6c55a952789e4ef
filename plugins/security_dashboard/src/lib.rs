//! security_dashboard (pack TT): one admin view of the security packs, gathered in-process
//! (`grants.packs`): security_policy's counts and the requests its blocklist refused,
//! security_actions' pending, approved and executed actions, honeypots' hits of the last
//! 24 hours; the incidents of all three merged newest first. A source pack that is disabled,
//! not granted or failing shows as `{"available": false, "error": "…"}`, and the dashboard
//! still answers.
//!
//! - [`sources`]: calling a source pack and reading its answer;
//! - [`incidents`]: each pack's records as incidents, merged newest first.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

use crate::incidents::Incident;
use crate::sources::{count, items, read};

mod incidents;
mod sources;

fn pack() -> Pack {
    Pack::new(
        "security_dashboard",
        env!("CARGO_PKG_VERSION"),
        "Security overview: policies, actions, honeypots, recent incidents",
    )
    .get(
        "/system/security/dashboard",
        Access::Admin,
        "Counts and recent incidents of the security packs",
        dashboard,
    )
}

valhalla_sdk::export_pack!(pack);

const POLICY: &str = "security_policy";
const ACTIONS: &str = "security_actions";
const HONEYPOTS: &str = "honeypots";
const ACTIONS_PATH: &str = "/system/security/actions";
const DAY_MS: i64 = 86_400_000;

/// One source's part of the dashboard: its counts, or why there are none.
#[derive(Serialize, JsonSchema)]
struct Section<T> {
    available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(flatten)]
    counts: Option<T>,
}

/// security_policy's summary (`null` where it gives no count).
#[derive(Serialize, JsonSchema)]
struct PolicyCounts {
    policies: Option<i64>,
    policies_enabled: Option<i64>,
    rules_active: Option<i64>,
    hits_last_24h: Option<i64>,
    blocked_last_24h: Option<i64>,
}

/// security_actions by status.
#[derive(Serialize, JsonSchema)]
struct ActionCounts {
    /// waiting for approvals
    pending: Option<i64>,
    /// approved, not executed yet
    approved: Option<i64>,
    executed: Option<i64>,
}

/// honeypots' last 24 hours.
#[derive(Serialize, JsonSchema)]
struct HoneypotCounts {
    hits_last_24h: Option<i64>,
    honeypots_enabled: Option<i64>,
}

/// `GET /system/security/dashboard`.
#[derive(Serialize, JsonSchema)]
struct Dashboard {
    generated_at: String,
    policies: Section<PolicyCounts>,
    actions: Section<ActionCounts>,
    honeypots: Section<HoneypotCounts>,
    /// blocked requests, honeypot hits and executed actions, newest first
    recent_incidents: Vec<Incident>,
}

/// `?limit=`: how many recent incidents (1..=100, default 20).
#[derive(Deserialize, Validate)]
struct DashboardQuery {
    #[validate(range(min = 1, max = 100))]
    limit: Option<i64>,
}

/// A source's counts and incidents, or why it could not give them.
type Gathered<T> = Result<(T, Vec<Incident>), String>;

fn dashboard(ValidQuery(q): ValidQuery<DashboardQuery>) -> Result<Json<Dashboard>, Problem> {
    let limit = q.limit.unwrap_or(20);
    let n = limit.to_string();
    let mut incidents = Vec::new();
    let policies = section(policies(&n), &mut incidents);
    let actions = section(actions(&n), &mut incidents);
    let honeypots = section(honeypots(&n), &mut incidents);
    let limit = usize::try_from(limit).unwrap_or(20);
    Ok(Json(Dashboard {
        generated_at: clock::now_rfc3339(),
        policies,
        actions,
        honeypots,
        recent_incidents: incidents::newest_first(incidents, limit),
    }))
}

fn section<T>(gathered: Gathered<T>, incidents: &mut Vec<Incident>) -> Section<T> {
    match gathered {
        Ok((counts, found)) => {
            incidents.extend(found);
            Section { available: true, error: None, counts: Some(counts) }
        }
        Err(error) => Section { available: false, error: Some(error), counts: None },
    }
}

fn policies(limit: &str) -> Gathered<PolicyCounts> {
    let summary = read(POLICY, "/system/security/summary", &[])?;
    let query = [("limit", limit), ("blocked", "true")];
    let hits = read(POLICY, "/system/security/blocklist/hits", &query)?;
    let counts = PolicyCounts {
        policies: count(&summary, "policies"),
        policies_enabled: count(&summary, "policies_enabled"),
        rules_active: count(&summary, "rules_active"),
        hits_last_24h: count(&summary, "hits_last_24h"),
        blocked_last_24h: count(&summary, "blocked_last_24h"),
    };
    Ok((counts, items(&hits).iter().filter_map(incidents::blocked_request).collect()))
}

fn actions(limit: &str) -> Gathered<ActionCounts> {
    let total = |status: &str| {
        read(ACTIONS, ACTIONS_PATH, &[("status", status), ("limit", "1")])
            .map(|b| count(&b, "total"))
    };
    let pending = total("pending")?;
    let approved = total("approved")?;
    let executed = read(ACTIONS, ACTIONS_PATH, &[("status", "executed"), ("limit", limit)])?;
    let counts = ActionCounts { pending, approved, executed: count(&executed, "total") };
    Ok((counts, items(&executed).iter().filter_map(incidents::action_executed).collect()))
}

fn honeypots(limit: &str) -> Gathered<HoneypotCounts> {
    let since = clock::rfc3339(clock::now_ms() - DAY_MS);
    let query = [("since", since.as_str()), ("limit", limit)];
    let recent = read(HONEYPOTS, "/system/security/telemetry", &query)?;
    let query = [("enabled", "true"), ("limit", "1")];
    let enabled = read(HONEYPOTS, "/system/security/honeypots", &query)?;
    let counts = HoneypotCounts {
        hits_last_24h: count(&recent, "total"),
        honeypots_enabled: count(&enabled, "total"),
    };
    Ok((counts, items(&recent).iter().filter_map(incidents::honeypot_hit).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_section_is_available_false_and_why() {
        let mut incidents = Vec::new();
        let down: Section<HoneypotCounts> = section(Err("honeypots is off".into()), &mut incidents);
        let json = serde_json::to_value(&down).unwrap();
        assert_eq!(json, serde_json::json!({"available": false, "error": "honeypots is off"}));
        let counts = HoneypotCounts { hits_last_24h: Some(2), honeypots_enabled: None };
        let up = section(Ok((counts, vec![])), &mut incidents);
        let json = serde_json::to_value(&up).unwrap();
        let want =
            serde_json::json!({"available": true, "hits_last_24h": 2, "honeypots_enabled": null});
        assert_eq!(json, want);
    }
}
