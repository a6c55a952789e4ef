//! The outbox: `POST /system/notify` stores a message for its channel and answers 202 at once
//! (the tick delivers it); a `dedupe_key` already seen on that channel answers the message it
//! was first given to, enqueueing nothing. Lists by status and channel (keyset pages), one
//! message, the retry of a dead letter, and the purge of delivered messages for retention.

use valhalla_sdk::prelude::*;

use crate::channels;

pub(crate) const STATUSES: [&str; 5] = ["queued", "delivering", "delivered", "failed", "dead"];
const MAX_SUBJECT: usize = 256;
const MAX_DEDUPE_KEY: usize = 256;
/// The largest payload a message delivers, in bytes.
pub(crate) const MAX_PAYLOAD: usize = 65_536;

/// A message as stored and answered (never a secret).
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Message {
    /// also the `webhook-id` of every attempt: the receiver's idempotency key
    pub id: String,
    pub channel_id: String,
    pub subject: String,
    /// the JSON the caller gave
    #[serde(deserialize_with = "db::json_text")]
    pub body: serde_json::Value,
    pub dedupe_key: Option<String>,
    /// `queued`, `delivering`, `delivered`, `failed` (waiting for a retry) or `dead`
    pub status: String,
    /// attempts made so far
    pub attempts: i64,
    /// when the next attempt is due (queued and failed messages)
    pub next_attempt_at: Option<String>,
    /// what the last failed attempt met (never a secret)
    pub last_error: Option<String>,
    /// the HTTP status of the last attempt that got an answer
    pub last_status_code: Option<i64>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
}

impl db::Record for Message {
    const TABLE: &'static str = "notification_outbox";
    const WHAT: &'static str = "message";
}

/// A message as enqueued: `duplicate` when its `dedupe_key` was seen before, and this is the
/// message it was first given to.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Enqueued {
    #[serde(flatten)]
    message: Message,
    duplicate: bool,
}

/// `POST /system/notify`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Enqueue {
    /// the channel's id or name
    #[validate(length(min = 1, max = 128))]
    channel: String,
    #[validate(length(min = 1, max = MAX_SUBJECT), custom(function = no_controls))]
    subject: String,
    /// any JSON: the `data.body` of the delivered payload
    body: serde_json::Value,
    /// a message with a key this channel has seen is not enqueued again
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_DEDUPE_KEY), custom(function = no_controls))]
    dedupe_key: Option<String>,
}

fn no_controls(text: &str) -> Result<(), &'static str> {
    if text.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// The bytes every attempt sends, in Standard Webhooks' payload shape.
fn payload(id: &str, channel_id: &str, body: &Enqueue, at: &str) -> Result<String, Problem> {
    let payload = serde_json::json!({
        "type": "notification",
        "timestamp": at,
        "data": {
            "id": id,
            "channel_id": channel_id,
            "subject": body.subject,
            "body": body.body,
        },
    });
    let text =
        serde_json::to_string(&payload).map_err(|e| Problem::internal(format!("payload: {e}")))?;
    if text.len() > MAX_PAYLOAD {
        let message = format!("makes a payload over {MAX_PAYLOAD} bytes");
        return Err(Problem::invalid_field("body", message));
    }
    Ok(text)
}

pub(crate) fn enqueue(
    Valid(body): Valid<Enqueue>,
    Actor(actor): Actor,
) -> Result<Accepted<Enqueued>, Problem> {
    let Some(channel) = channels::find(&body.channel)? else {
        let message = format!("no channel `{}`", body.channel);
        return Err(Problem::invalid_field("channel", message));
    };
    if !channel.enabled {
        let why = channel.disabled_reason.as_deref().unwrap_or("turned off");
        return Err(Problem::conflict(format!("channel `{}` is disabled: {why}", channel.name)));
    }
    let id = clock::new_id();
    let now = clock::now_rfc3339();
    let payload = payload(&id, &channel.id, &body, &now)?;
    let stored_body = serde_json::to_string(&body.body).unwrap_or_else(|_| "null".into());
    let insert = format!(
        "INSERT INTO notification_outbox (id, channel_id, subject, body, payload, dedupe_key, \
         status, attempts, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $8, $8) \
         ON CONFLICT (channel_id, dedupe_key) DO NOTHING RETURNING {}",
        db::select_list::<Message>()
    );
    let params = params![
        id.as_str(),
        channel.id.as_str(),
        body.subject.as_str(),
        stored_body,
        payload,
        body.dedupe_key.as_deref(),
        actor,
        now
    ];
    if let Some(message) = db::query_one_as::<Message>(&insert, params)? {
        log::audit_created("notification.enqueue", &target(&message.id), &message);
        return Ok(Accepted(Enqueued { message, duplicate: false }));
    }
    let rest = "WHERE channel_id = $1 AND dedupe_key = $2";
    let key = body.dedupe_key.as_deref();
    let first = db::select::<Message>(rest, params![channel.id.as_str(), key])?.into_iter().next();
    let message = first.ok_or_else(|| Problem::conflict("the message conflicts, try again"))?;
    Ok(Accepted(Enqueued { message, duplicate: true }))
}

fn target(id: &str) -> String {
    format!("notification_outbox/{id}")
}

/// The list filters: `status`, `channel` (an id).
#[derive(Deserialize, Validate)]
pub(crate) struct MessageFilter {
    #[validate(one_of = STATUSES)]
    status: Option<String>,
    #[validate(length(min = 1, max = 128))]
    channel: Option<String>,
}

pub(crate) fn list(
    page: db::CursorPage,
    ValidQuery(q): ValidQuery<MessageFilter>,
) -> Result<Json<db::CursorList<Message>>, Problem> {
    let mut filter = db::Filter::new();
    filter.eq("status", q.status).eq("channel_id", q.channel);
    db::cursor_page::<Message>(&filter, page)
}

pub(crate) fn get(Path(id): Path<String>) -> Result<Json<Message>, Problem> {
    db::get::<Message>("id", &id).map(Json)
}

/// A dead letter queued again, its attempts counted from nought; its channel must be on.
pub(crate) fn retry(Path(id): Path<String>) -> Result<Accepted<Message>, Problem> {
    let before: Message = db::get("id", &id)?;
    if before.status != "dead" {
        let detail = format!("only a dead message can be retried; this one is {}", before.status);
        return Err(Problem::conflict(detail));
    }
    match channels::find(&before.channel_id)? {
        None => return Err(Problem::conflict("the message's channel was deleted")),
        Some(c) if !c.enabled => {
            return Err(Problem::conflict(format!(
                "channel `{}` is disabled: enable it first",
                c.name
            )));
        }
        Some(_) => {}
    }
    let set = "status = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = $2 \
               WHERE id = $1 AND status = 'dead'";
    let after: Message = db::update(set, params![id.as_str(), clock::now_rfc3339()])?
        .ok_or_else(|| Problem::conflict("the message changed meanwhile, try again"))?;
    log::audit("notification.retry", &target(&id), Some(&before), Some(&after));
    Ok(Accepted(after))
}

/// Remove delivered messages delivered before `before`, at most `limit`, oldest first.
pub(crate) fn purge(Valid(body): Valid<db::PurgeRequest>) -> Result<Json<db::Purged>, Problem> {
    let mut filter = db::Filter::new();
    filter.eq("status", Some("delivered"));
    let removed = db::purge_oldest("notification_outbox", "delivered_at", &filter, &body)?;
    let after =
        serde_json::json!({ "before": body.before, "limit": body.limit, "removed": removed });
    log::audit::<(), _>("notification.purge", "notification_outbox", None, Some(&after));
    Ok(Json(db::Purged { removed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enqueue(json: &str) -> Enqueue {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_payload_is_standard_webhooks_shaped_and_bounded() {
        let e = enqueue(r#"{"channel": "ops", "subject": "hi", "body": {"n": 1}}"#);
        let text = payload("m1", "c1", &e, "2026-01-01T00:00:00.000000Z").unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "notification");
        assert_eq!(v["data"]["id"], "m1");
        assert_eq!(v["data"]["body"]["n"], 1);
        let big = serde_json::json!({"channel": "ops", "subject": "s", "body": "x".repeat(70_000)});
        let p = payload("m", "c", &enqueue(&big.to_string()), "t").unwrap_err();
        assert_eq!(p.errors[0].field, "body");
    }

    #[test]
    fn every_field_is_checked() {
        let e = enqueue(r#"{"channel": "", "subject": "a\nb", "body": 1, "dedupe_key": ""}"#);
        let fields: Vec<String> = Validator::of(&e)
            .map_or_else(|p| p.errors.into_iter().map(|e| e.field).collect(), |()| vec![]);
        assert_eq!(fields, ["channel", "subject", "dedupe_key"]);
        assert!(serde_json::from_str::<Enqueue>(r#"{"channel": "a", "subject": "b"}"#).is_err());
    }
}
