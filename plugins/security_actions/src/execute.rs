//! Executing an approved action, exactly once: a conditional update claims it (`approved` →
//! `executing`; whoever loses the race gets a 409), then the owning pack is called in-process
//! and its answer decides `executed` (with its JSON answer) or `failed` (with its problem's
//! detail).

use serde_json::{Value, json};
use valhalla_sdk::Method::{Delete, Get, Post};
use valhalla_sdk::capability;
use valhalla_sdk::packs::problem_text;
use valhalla_sdk::prelude::*;
use valhalla_sdk::validate::is_identifier;

use crate::action::{self, APPROVED, Action, EXECUTED, EXECUTING, FAILED, Who, illegal};
use crate::params::{BlockIp, Params, rule_type};

const BLOCKLIST: &str = "/system/security/blocklist";
/// The longest blocklist rule reason this pack sends.
const MAX_RULE_REASON: usize = 1024;

/// What the owning pack made of the action.
struct Outcome {
    ok: bool,
    /// its HTTP status, when it answered
    status: Option<i64>,
    /// its JSON answer
    result: Value,
    /// why it failed
    error: Option<String>,
}

impl Outcome {
    fn failed(error: String, result: Value, status: Option<i64>) -> Self {
        Self { ok: false, status, result, error: Some(error) }
    }
}

/// The pack's answer, or the call's error, as an outcome.
fn call<B: Serialize>(
    pack: &str,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&B>,
) -> Outcome {
    match packs::call(pack, method, path, query, body) {
        Ok(answer) => {
            let result = answer.json();
            let status = Some(i64::from(answer.status));
            if answer.ok() {
                return Outcome { ok: true, status, result, error: None };
            }
            let error = problem_text(&result)
                .unwrap_or_else(|| format!("{pack} answered {}", answer.status));
            Outcome::failed(error, result, status)
        }
        Err(e) => Outcome::failed(capability::message(&e).to_string(), Value::Null, None),
    }
}

/// Run the action in the pack that owns what it changes.
fn perform(action: &Action, params: &Params) -> Outcome {
    match params {
        Params::BlockIp(b) => block(action, b),
        Params::UnblockIp(u) => unblock(&u.ip),
        Params::Client { activate, params } => {
            let verb = if *activate { "activate" } else { "deactivate" };
            let path = format!("/system/clients/{}/{verb}", params.client_id);
            call::<()>("api_clients", Post, &path, &[], None)
        }
        Params::SetMaintenance(m) => {
            let path = format!("/system/maintenance/state/{}", m.mode);
            let reason = m.reason.clone().unwrap_or_else(|| action.reason.clone());
            call::<()>("maintenance", Post, &path, &[("reason", reason.as_str())], None)
        }
    }
}

/// `POST /system/security/blocklist` of security_policy.
#[derive(Serialize)]
struct NewRule<'a> {
    rule_type: &'a str,
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<&'a str>,
    reason: String,
}

/// A blocklist rule for the address or network, ending as the action says.
fn block(action: &Action, b: &BlockIp) -> Outcome {
    let mut reason = format!("security action {}: {}", action.id, action.reason);
    if let Some((cut, _)) = reason.char_indices().nth(MAX_RULE_REASON) {
        reason.truncate(cut);
    }
    let rule = NewRule {
        rule_type: rule_type(&b.ip),
        value: &b.ip,
        severity: b.severity.as_deref(),
        duration: b.duration.as_deref(),
        duration_seconds: b.duration_seconds,
        expires_at: b.expires_at.as_deref(),
        reason,
    };
    call("security_policy", Post, BLOCKLIST, &[], Some(&rule))
}

/// Delete every active blocklist rule of this value (none is success: nothing blocks it).
fn unblock(ip: &str) -> Outcome {
    let query =
        [("rule_type", rule_type(ip)), ("value", ip), ("active", "true"), ("limit", "1000")];
    let listed = call::<()>("security_policy", Get, BLOCKLIST, &query, None);
    if !listed.ok {
        return listed;
    }
    let ids: Vec<&str> = listed.result["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| rule["id"].as_str())
        .collect();
    let mut removed = Vec::new();
    for id in ids {
        if !is_identifier(id) {
            let error = format!("security_policy listed a rule id that is not one: `{id}`");
            return Outcome::failed(error, json!({ "removed": removed }), None);
        }
        let deleted =
            call::<()>("security_policy", Delete, &format!("{BLOCKLIST}/{id}"), &[], None);
        // a rule gone meanwhile (expired, deleted) no longer blocks: that is what was asked
        if !deleted.ok && deleted.status != Some(404) {
            let error = deleted.error.unwrap_or_default();
            return Outcome::failed(error, json!({ "removed": removed }), deleted.status);
        }
        removed.push(id.to_string());
    }
    Outcome { ok: true, status: Some(200), result: json!({ "removed": removed }), error: None }
}

pub(crate) fn execute(Path(id): Path<String>, who: Who) -> Result<Json<Action>, Problem> {
    let only = "an approved action can be executed";
    let before = action::load(&id)?;
    if before.status != APPROVED {
        return Err(illegal(&before, only));
    }
    // the claim: of any number of simultaneous executes, one changes the row
    let claim = "UPDATE security_actions SET status = $2, executed_by = $3, updated_at = $4 \
                 WHERE id = $1 AND status = $5";
    let now = clock::now_rfc3339();
    let values = params![id.as_str(), EXECUTING, who.id.as_str(), now, APPROVED];
    if db::execute(claim, values)? == 0 {
        return Err(illegal(&action::load(&id)?, only));
    }
    let claimed = action::load(&id)?;
    log::audit("security_action.execute", &claimed.target(), Some(&before), Some(&claimed));

    let params = before.params.as_object().cloned().unwrap_or_default();
    let outcome = match Params::parse(&before.action_type, &params) {
        Ok(p) => perform(&claimed, &p),
        Err(_) => Outcome::failed("the stored params are not valid".into(), Value::Null, None),
    };
    let (status, executed_at) = match outcome.ok {
        true => (EXECUTED, Some(clock::now_rfc3339())),
        false => (FAILED, None),
    };
    let set = "status = $2, executed_at = $3, result = $4, result_status = $5, last_error = $6, \
               updated_at = $7 WHERE id = $1 AND status = $8";
    let values = params![
        id.as_str(),
        status,
        executed_at,
        outcome.result.to_string(),
        outcome.status,
        outcome.error,
        clock::now_rfc3339(),
        EXECUTING
    ];
    if db::update::<Action>(set, values)?.is_none() {
        // the stuck-execution sweep gave up on it first
        return Err(illegal(&action::load(&id)?, "an executing action can finish"));
    }
    let after = action::load(&id)?;
    log::audit(&format!("security_action.{status}"), &after.target(), Some(&claimed), Some(&after));
    Ok(Json(after))
}
