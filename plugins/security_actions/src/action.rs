//! An action and its approvals as stored and answered, the pack's settings, who acts, and
//! expiry: a pending action not approved by its `expires_at` becomes `expired`, when it is
//! read or acted on and by the scheduled sweep.

use serde_json::Value;
use valhalla_sdk::FromRequest;
use valhalla_sdk::prelude::*;

pub(crate) const PENDING: &str = "pending";
pub(crate) const APPROVED: &str = "approved";
pub(crate) const REJECTED: &str = "rejected";
pub(crate) const EXECUTING: &str = "executing";
pub(crate) const EXECUTED: &str = "executed";
pub(crate) const FAILED: &str = "failed";
pub(crate) const EXPIRED: &str = "expired";
pub(crate) const STATUSES: [&str; 7] =
    [PENDING, APPROVED, REJECTED, EXECUTING, EXECUTED, FAILED, EXPIRED];

/// An action as stored and answered; `approvals` come from their own table.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub(crate) struct Action {
    pub id: String,
    /// `block_ip`, `unblock_ip`, `deactivate_client`, `activate_client`, `set_maintenance`
    pub action_type: String,
    /// the type's parameters, canonical
    #[serde(deserialize_with = "db::json_text")]
    pub params: Value,
    pub reason: String,
    /// `pending`, `approved`, `rejected`, `executing`, `executed`, `failed`, `expired`
    pub status: String,
    pub required_approvals: i64,
    /// counts the changes of params or reason; approvals are of one revision
    pub revision: i64,
    pub requested_by: String,
    pub requested_by_name: Option<String>,
    pub rejected_by: Option<String>,
    pub rejection_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// a pending action not approved by then expires
    pub expires_at: String,
    pub executed_at: Option<String>,
    /// who pressed execute
    pub executed_by: Option<String>,
    /// the owning pack's JSON answer to the execution
    #[serde(deserialize_with = "db::json_text")]
    pub result: Value,
    /// the owning pack's HTTP status, when it answered
    pub result_status: Option<i64>,
    /// why the execution failed
    pub last_error: Option<String>,
    /// the approvals of the current revision, oldest first
    #[serde(skip_deserializing)]
    pub approvals: Vec<Approval>,
}

impl db::Record for Action {
    const TABLE: &'static str = "security_actions";
    const WHAT: &'static str = "security action";
}

/// One principal's approval of one revision of an action.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub(crate) struct Approval {
    #[serde(skip_serializing)]
    pub action_id: String,
    #[serde(skip_serializing)]
    pub revision: i64,
    /// the approving principal's id
    pub principal: String,
    /// the approving principal's name
    pub name: Option<String>,
    pub comment: Option<String>,
    pub at: String,
}

impl db::Record for Approval {
    const TABLE: &'static str = "security_action_approvals";
    const RENAMED: &'static [(&'static str, &'static str)] =
        &[("principal", "principal_id"), ("name", "principal_name"), ("at", "created_at")];
}

impl Action {
    /// This action's audit target.
    pub fn target(&self) -> String {
        format!("security_actions/{}", self.id)
    }

    /// Has `principal` approved the current revision?
    pub fn approved_by(&self, principal: &str) -> bool {
        self.approvals.iter().any(|a| a.principal == principal)
    }

    fn overdue(&self, now: &str) -> bool {
        self.status == PENDING && self.expires_at.as_str() <= now
    }
}

/// The 409 of a transition the action's state does not allow: ``the action is executed;
/// only an approved action can be executed``.
pub(crate) fn illegal(action: &Action, only: &str) -> Problem {
    Problem::conflict(format!("the action is {}; only {only}", action.status))
}

/// Who calls: the principal's id (as [`Actor`] gives it) and name.
pub(crate) struct Who {
    pub id: String,
    pub name: Option<String>,
}

impl FromRequest for Who {
    fn from_request(req: &Request) -> Result<Self, Problem> {
        let Actor(id) = Actor::from_request(req)?;
        Ok(Who { id, name: req.principal().map(|p| p.name.clone()) })
    }
}

/// `[packs.security_actions.settings]`.
#[derive(Deserialize)]
pub(crate) struct Settings {
    /// approvals an action needs unless it says (1..=10)
    #[serde(default = "one")]
    pub required_approvals: i64,
    /// how long an action may wait for its approvals
    #[serde(default = "day")]
    pub expire_after_seconds: i64,
}

valhalla_sdk::defaults! {
    fn one() -> i64 = 1;
    fn day() -> i64 = 86_400;
}

impl Settings {
    /// The settings, checked.
    pub fn load() -> Result<Self, Problem> {
        let s: Settings = host::settings()?;
        if !(1..=10).contains(&s.required_approvals) || s.expire_after_seconds < 1 {
            return Err(Problem::internal(
                "the pack's settings are invalid: required_approvals must be 1 to 10 and \
                 expire_after_seconds at least 1",
            ));
        }
        Ok(s)
    }
}

/// Action `id` with its approvals, expired first if it is overdue.
pub(crate) fn load(id: &str) -> Result<Action, Problem> {
    let action = expire_if_due(db::get("id", id)?, &clock::now_rfc3339())?;
    let mut one = [action];
    attach_approvals(&mut one)?;
    let [action] = one;
    Ok(action)
}

/// Fill in the approvals of `actions` (of their current revisions), oldest first.
pub(crate) fn attach_approvals(actions: &mut [Action]) -> Result<(), Problem> {
    if actions.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=actions.len()).map(|i| format!("${i}")).collect();
    let rest = format!("WHERE action_id IN ({}) ORDER BY created_at, id", marks.join(", "));
    let ids = actions.iter().map(|a| db::ToValue::to_value(&a.id)).collect();
    let approvals: Vec<Approval> = db::select(&rest, ids)?;
    for action in actions.iter_mut() {
        action.approvals = approvals
            .iter()
            .filter(|a| a.action_id == action.id && a.revision == action.revision)
            .cloned()
            .collect();
    }
    Ok(())
}

/// `action` as it is once expiry has had its say: a pending action past `expires_at` becomes
/// `expired` (audited), exactly once however many callers notice it together.
fn expire_if_due(action: Action, now: &str) -> Result<Action, Problem> {
    if !action.overdue(now) {
        return Ok(action);
    }
    let set = "status = $2, updated_at = $3 WHERE id = $1 AND status = $4 AND expires_at <= $3";
    let params = params![action.id.as_str(), EXPIRED, now, PENDING];
    match db::update::<Action>(set, params)? {
        Some(after) => {
            log::audit("security_action.expire", &action.target(), Some(&action), Some(&after));
            Ok(after)
        }
        // someone else moved it on first (approved it, expired it): read what they left
        None => db::get("id", &action.id),
    }
}

/// Expire every overdue pending action (a read finds them, so the usual sweep writes
/// nothing); answers how many expired.
pub(crate) fn expire_overdue() -> Result<usize, Problem> {
    let now = clock::now_rfc3339();
    let due: Vec<Action> = db::select(
        "WHERE status = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT 500",
        params![PENDING, now.as_str()],
    )?;
    let mut expired = 0;
    for action in due {
        if expire_if_due(action, &now)?.status == EXPIRED {
            expired += 1;
        }
    }
    Ok(expired)
}

/// An execution left `executing` longer than this (its instance was stopped mid-way) is
/// recorded as failed by the sweep.
const STUCK_AFTER_MS: i64 = 10 * 60_000;

/// Fail executions that never finished (audited); answers how many.
pub(crate) fn fail_stuck() -> Result<usize, Problem> {
    let before = clock::rfc3339(clock::now_ms() - STUCK_AFTER_MS);
    let stuck: Vec<Action> =
        db::select("WHERE status = $1 AND updated_at <= $2", params![EXECUTING, before.as_str()])?;
    let mut failed = 0;
    for action in stuck {
        let set = "status = $2, last_error = $3, updated_at = $4 WHERE id = $1 AND status = $5 \
                   AND updated_at <= $6";
        let error = "the execution did not finish; check the target before trying again";
        let now = clock::now_rfc3339();
        let params = params![action.id.as_str(), FAILED, error, now, EXECUTING, before.as_str()];
        if let Some(after) = db::update::<Action>(set, params)? {
            log::audit("security_action.fail", &action.target(), Some(&action), Some(&after));
            failed += 1;
        }
    }
    Ok(failed)
}

/// The scheduled tick: expire overdue actions, fail stuck executions.
pub(crate) fn tick() -> Result<String, String> {
    let expired = expire_overdue().map_err(|p| p.detail)?;
    let failed = fail_stuck().map_err(|p| p.detail)?;
    Ok(match (expired, failed) {
        (0, 0) => String::new(),
        _ => format!("expired {expired}, failed {failed} stuck"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_are_read_under_their_columns() {
        assert_eq!(
            db::select_list::<Approval>(),
            "action_id, revision, principal_id AS \"principal\", principal_name AS \"name\", \
             comment, created_at AS \"at\""
        );
    }

    #[test]
    fn approvals_are_not_a_column() {
        assert!(!db::select_list::<Action>().split(", ").any(|c| c == "approvals"));
        assert!(db::select_list::<Action>().ends_with("result_status, last_error"));
    }

    #[test]
    fn settings_default() {
        let s: Settings = serde_json::from_str("{}").unwrap();
        assert_eq!((s.required_approvals, s.expire_after_seconds), (1, 86_400));
    }
}
