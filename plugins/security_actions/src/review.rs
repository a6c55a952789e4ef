//! Reviewing actions (admins only): an approval per principal, never the requester's, until
//! the action has the approvals it needs; one rejection rejects.

use valhalla_sdk::FromRequest;
use valhalla_sdk::prelude::*;
use valhalla_sdk::schema::{self, Schema};

use crate::action::{self, APPROVED, Action, Approval, PENDING, REJECTED, Who, illegal};

/// A JSON body that may be left out (an empty body reads as `T::default()`), checked by its
/// rules when given.
pub(crate) struct Optional<T>(pub T);

impl<T> FromRequest for Optional<T>
where
    T: Default + serde::de::DeserializeOwned + Validate + JsonSchema,
{
    fn from_request(req: &Request) -> Result<Self, Problem> {
        if req.body().iter().all(u8::is_ascii_whitespace) {
            return Ok(Optional(T::default()));
        }
        req.json().map(Optional)
    }
    fn body_schema() -> Option<Schema> {
        Some(schema::of::<T>())
    }
}

/// `POST …/{id}/approve`, body optional.
#[derive(Deserialize, JsonSchema, Validate, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approve {
    #[serde(default)]
    #[validate(length(max = 1024))]
    comment: Option<String>,
}

/// `POST …/{id}/reject`, body optional.
#[derive(Deserialize, JsonSchema, Validate, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reject {
    #[serde(default)]
    #[validate(length(max = 1024))]
    reason: Option<String>,
}

fn already(who: &Who) -> Problem {
    Problem::conflict(format!("`{}` has already approved this action", who.id))
}

pub(crate) fn approve(
    Path(id): Path<String>,
    Optional(body): Optional<Approve>,
    who: Who,
) -> Result<Json<Action>, Problem> {
    let before = action::load(&id)?;
    if before.requested_by == who.id {
        return Err(Problem::forbidden(
            "the requester cannot approve their own action: another admin must",
        ));
    }
    if before.status != PENDING {
        return Err(illegal(&before, "a pending action can be approved"));
    }
    if before.approved_by(&who.id) {
        return Err(already(&who));
    }
    // an approval of an earlier revision (withdrawn by a change) gives way to this one
    db::execute(
        "DELETE FROM security_action_approvals WHERE action_id = $1 AND principal_id = $2 \
         AND revision <> $3",
        params![id.as_str(), who.id.as_str(), before.revision],
    )?;
    // recorded only while the action is still what the approver saw: pending, this revision,
    // not overdue; the UNIQUE (action_id, principal_id) refuses a second one
    let now = clock::now_rfc3339();
    let insert = format!(
        "INSERT INTO security_action_approvals (id, {}) SELECT $1, $2, $3, $4, $5, $6, $7 \
         WHERE EXISTS (SELECT 1 FROM security_actions WHERE id = $2 AND status = $8 \
         AND revision = $3 AND expires_at > $7)",
        db::stored_columns::<Approval>()
    );
    let values = params![
        clock::new_id(),
        id.as_str(),
        before.revision,
        who.id.as_str(),
        who.name.as_deref(),
        body.comment,
        now.as_str(),
        PENDING
    ];
    let recorded = db::execute(&insert, values)
        .map_err(|p| if p.status == 409 { already(&who) } else { p })?;
    if recorded == 0 {
        let current = action::load(&id)?;
        return Err(match current.status.as_str() {
            PENDING => Problem::conflict("the action changed meanwhile; review it again"),
            _ => illegal(&current, "a pending action can be approved"),
        });
    }
    // enough approvals of this revision: approved, once, by whichever approval completes them
    db::execute(
        "UPDATE security_actions SET status = $4, updated_at = $5 WHERE id = $1 AND status = $2 \
         AND revision = $3 AND required_approvals <= (SELECT COUNT(*) FROM \
         security_action_approvals WHERE action_id = $1 AND revision = $3)",
        params![id.as_str(), PENDING, before.revision, APPROVED, now],
    )?;
    let after = action::load(&id)?;
    log::audit("security_action.approve", &after.target(), Some(&before), Some(&after));
    Ok(Json(after))
}

/// Any admin may reject a pending or approved action, the requester too (withdrawing it).
pub(crate) fn reject(
    Path(id): Path<String>,
    Optional(body): Optional<Reject>,
    who: Who,
) -> Result<Json<Action>, Problem> {
    let before = action::load(&id)?;
    let only = "a pending or approved action can be rejected";
    if before.status != PENDING && before.status != APPROVED {
        return Err(illegal(&before, only));
    }
    let set = "status = $2, rejected_by = $3, rejection_reason = $4, updated_at = $5 \
               WHERE id = $1 AND status IN ($6, $7)";
    let values = params![
        id.as_str(),
        REJECTED,
        who.id.as_str(),
        body.reason,
        clock::now_rfc3339(),
        PENDING,
        APPROVED
    ];
    if db::update::<Action>(set, values)?.is_none() {
        return Err(illegal(&action::load(&id)?, only));
    }
    let after = action::load(&id)?;
    log::audit("security_action.reject", &after.target(), Some(&before), Some(&after));
    Ok(Json(after))
}
