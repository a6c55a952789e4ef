//! Requesting actions: create one (its params checked for its type), list and read them, and
//! change a pending or approved one, which withdraws its approvals and returns it to pending.

use serde_json::{Map, Value};
use valhalla_sdk::prelude::*;

use crate::action::{self, APPROVED, Action, PENDING, STATUSES, Settings, Who, illegal};
use crate::params::{ACTION_TYPES, Params};

const MAX_REASON: usize = 1024;

/// `POST /system/security/actions`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = params_fit_type)]
pub(crate) struct Create {
    /// `block_ip`, `unblock_ip`, `deactivate_client`, `activate_client` or `set_maintenance`
    #[validate(one_of = ACTION_TYPES)]
    action_type: String,
    /// block_ip `{ip, duration? | duration_seconds? | expires_at?, severity?}`, unblock_ip
    /// `{ip}`, deactivate_client / activate_client `{client_id}`, set_maintenance `{mode,
    /// reason?}`
    params: Map<String, Value>,
    /// why the action is needed, for its approvers
    #[validate(length(min = 1, max = MAX_REASON))]
    reason: String,
    /// the approvals it needs (the pack's `required_approvals` setting when absent)
    #[serde(default)]
    #[validate(range(min = 1, max = 10))]
    required_approvals: Option<i64>,
}

/// The params are checked once the type is known; their errors are named `params.x`.
fn params_fit_type(body: &Create, v: &mut Validator) {
    if !ACTION_TYPES.contains(&body.action_type.as_str()) {
        return;
    }
    if let Err(errors) = Params::parse(&body.action_type, &body.params) {
        for e in errors {
            v.error(&e.field, e.message);
        }
    }
}

/// The checked params of a body that passed its rules.
fn checked(action_type: &str, params: &Map<String, Value>) -> Result<Params, Problem> {
    Params::parse(action_type, params).map_err(Problem::validation)
}

pub(crate) fn create(Valid(body): Valid<Create>, who: Who) -> Result<Created<Action>, Problem> {
    let settings = Settings::load()?;
    let params = checked(&body.action_type, &body.params)?.to_json();
    let (now, expires_at) = expiry(&settings);
    let action: Action = db::insert(params![
        clock::new_id(),
        body.action_type,
        params.to_string(),
        body.reason,
        PENDING,
        body.required_approvals.unwrap_or(settings.required_approvals),
        1i64,
        who.id,
        who.name,
        None::<String>,
        None::<String>,
        now.as_str(),
        now.as_str(),
        expires_at,
        None::<String>,
        None::<String>,
        None::<String>,
        None::<i64>,
        None::<String>
    ])?;
    log::audit_created("security_action.create", &action.target(), &action);
    Ok(Created(action))
}

/// Now (to the microsecond, so actions requested in one millisecond still list in order),
/// and when an action proposed now expires unless approved.
fn expiry(settings: &Settings) -> (String, String) {
    let now = clock::now_us();
    let ttl_us = settings.expire_after_seconds.saturating_mul(1_000_000);
    (clock::rfc3339_us(now), clock::rfc3339_us(now.saturating_add(ttl_us)))
}

/// `GET /system/security/actions?status=&action_type=`.
#[derive(Deserialize, Validate)]
pub(crate) struct ListQuery {
    #[validate(one_of = STATUSES)]
    status: Option<String>,
    #[validate(one_of = ACTION_TYPES)]
    action_type: Option<String>,
}

/// Newest first; overdue actions are expired before the list is read.
pub(crate) fn list(
    page: Page,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Result<Json<db::List<Action>>, Problem> {
    action::expire_overdue()?;
    let mut filter = db::Filter::new();
    filter.eq("status", q.status).eq("action_type", q.action_type);
    let Json(mut list) = db::list::<Action>(&filter, "created_at DESC, id DESC", page)?;
    action::attach_approvals(&mut list.items)?;
    Ok(Json(list))
}

pub(crate) fn get(Path(id): Path<String>) -> Result<Json<Action>, Problem> {
    action::load(&id).map(Json)
}

/// `PATCH /system/security/actions/{id}`: new params, a new reason, or both.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Change {
    /// the action type's params, checked as when created
    #[serde(default)]
    params: Option<Map<String, Value>>,
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_REASON))]
    reason: Option<String>,
}

/// Only the requester changes an action (whoever else changed it would be requesting what they
/// could then approve). Any real change withdraws the approvals: they were given to what the
/// action was, and the time to approve it starts again. Nothing changed (the same params and
/// reason) answers the action as it is.
pub(crate) fn change(
    Path(id): Path<String>,
    Valid(patch): Valid<Change>,
    who: Who,
) -> Result<Json<Action>, Problem> {
    let before = action::load(&id)?;
    if before.requested_by != who.id {
        return Err(Problem::forbidden(format!(
            "only the requester (`{}`) can change this action; reject it instead",
            before.requested_by
        )));
    }
    if before.status != PENDING && before.status != APPROVED {
        return Err(illegal(&before, "a pending or approved action can be changed"));
    }
    let params = match &patch.params {
        Some(p) => checked(&before.action_type, p)?.to_json(),
        None => before.params.clone(),
    };
    let reason = patch.reason.unwrap_or_else(|| before.reason.clone());
    if params == before.params && reason == before.reason {
        return Ok(Json(before));
    }
    // a changed action is proposed anew: its approvals start over, and so does its time
    let set = "params = $2, reason = $3, status = $4, revision = revision + 1, updated_at = $5, \
               expires_at = $8 WHERE id = $1 AND revision = $6 AND status IN ($4, $7)";
    let (now, expires_at) = expiry(&Settings::load()?);
    let values = params![
        id.as_str(),
        params.to_string(),
        reason,
        PENDING,
        now,
        before.revision,
        APPROVED,
        expires_at
    ];
    let Some(changed) = db::update::<Action>(set, values)? else {
        let current = action::load(&id)?;
        return Err(match current.status.as_str() {
            PENDING | APPROVED => Problem::conflict("the action changed meanwhile; read it again"),
            _ => illegal(&current, "a pending or approved action can be changed"),
        });
    };
    // the withdrawn approvals go (an approval racing this change may land after it: it is of
    // the old revision, so it does not count, and its approver's next approval replaces it)
    db::execute(
        "DELETE FROM security_action_approvals WHERE action_id = $1 AND revision <> $2",
        params![id.as_str(), changed.revision],
    )?;
    let after = action::load(&id)?;
    log::audit("security_action.update", &after.target(), Some(&before), Some(&after));
    Ok(Json(after))
}
