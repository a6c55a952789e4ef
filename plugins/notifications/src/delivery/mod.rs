//! The tick: claim due messages one at a time with a lease (`valhalla_sdk::jobs`: a message
//! is delivered by one claimer at once, and one whose claimer died is taken again once its
//! lease lapses), count the attempt, send it by its channel's kind, and record what came of
//! it: delivered, failed (waiting for its retry), or dead; a webhook's 410 turns the channel
//! off.
//!
//! - [`webhook`]: POST the stored payload signed per Standard Webhooks (`webhook-id` = the
//!   message id on every attempt);
//! - [`email`]: the host's `outbound-mail` (SMTP), `Message-ID` `<{id}@{from's domain}>`;
//! - [`sms`]: a Twilio-compatible form POST to the provider.

mod email;
mod sms;
mod webhook;

use valhalla_sdk::db::{ToValue, Value};
use valhalla_sdk::prelude::*;

use crate::channels;
use crate::retry::{self, Outcome};
use crate::settings::Settings;

fn spec(lease_ms: u64) -> jobs::Claim<'static> {
    jobs::Claim {
        table: "notification_outbox",
        ready: &["queued", "failed"],
        running: "delivering",
        lease_ms,
        due_column: Some("next_attempt_at"),
    }
}

/// What one tick did.
#[derive(Default)]
struct Tally {
    delivered: u32,
    failed: u32,
    dead: u32,
    lost: u32,
}

pub(crate) fn tick() -> Result<String, String> {
    let settings = Settings::load();
    let spec = spec(settings.lease_ms);
    let started = clock::now_ms();
    let mut tally = Tally::default();
    for _ in 0..settings.batch {
        if clock::now_ms() - started > settings.tick_budget_ms {
            break;
        }
        let claimed = jobs::claim(&spec, 1).map_err(|p| p.detail)?;
        let Some(id) = claimed.first() else { break };
        match deliver(&spec, &settings, id) {
            Ok(Some(status)) => match status {
                "delivered" => tally.delivered += 1,
                "failed" => tally.failed += 1,
                _ => tally.dead += 1,
            },
            Ok(None) => tally.lost += 1,
            Err(p) => return Err(format!("message {id}: {}", p.detail)),
        }
    }
    if tally.delivered + tally.failed + tally.dead + tally.lost == 0 {
        return Ok(String::new());
    }
    let Tally { delivered, failed, dead, lost } = tally;
    Ok(format!("delivered {delivered}, failed {failed}, dead {dead}, lost lease {lost}"))
}

/// The claimed message's delivery fields.
#[derive(Deserialize)]
struct Claimed {
    channel_id: String,
    payload: String,
    attempts: i64,
}

/// One attempt at message `id` (claimed by us): the status it ends in, or `None` when its
/// lease was lost meanwhile (another claimer owns it now; nothing is written).
fn deliver(
    spec: &jobs::Claim,
    settings: &Settings,
    id: &str,
) -> Result<Option<&'static str>, Problem> {
    let me = host::instance_id();
    let now_ms = clock::now_ms();
    let now = clock::rfc3339(now_ms);
    // Count the attempt before it is made: one that never finishes (a crash) still counts.
    let count = "UPDATE notification_outbox SET attempts = attempts + 1, updated_at = $3 \
                 WHERE id = $1 AND claimed_by = $2 AND status = 'delivering' \
                 RETURNING channel_id, payload, attempts";
    let Some(message) = db::query_one_as::<Claimed>(count, params![id, me, now.as_str()])? else {
        return Ok(None);
    };
    let attempts = message.attempts;
    let end = |status: &'static str,
               error: Option<String>,
               code: Option<u16>,
               next: Option<String>|
     -> Result<Option<&'static str>, Problem> {
        let set = [
            ("last_error", error.to_value()),
            ("last_status_code", Value::Int(code.map(i64::from))),
            ("next_attempt_at", next.to_value()),
            ("updated_at", clock::now_rfc3339().to_value()),
            ("delivered_at", (status == "delivered").then(clock::now_rfc3339).to_value()),
        ];
        Ok(jobs::finish(spec, id, status, &set)?.then_some(status))
    };
    if attempts > settings.attempts() {
        let error =
            format!("gave up after {} attempts (the last one never finished)", attempts - 1);
        return end("dead", Some(error), None, None);
    }
    let channel = match channels::find(&message.channel_id)? {
        None => return end("dead", Some("the channel was deleted".into()), None, None),
        Some(c) if !c.enabled => {
            let why = c.disabled_reason.unwrap_or_else(|| "turned off".into());
            return end("dead", Some(format!("the channel is disabled: {why}")), None, None);
        }
        Some(c) => c,
    };
    let outcome = match channel.kind.as_str() {
        "email" => email::send(&channel, id, &message.payload, settings),
        "sms" => sms::send(&channel, &message.payload, settings)?,
        _ => webhook::send(&channel, id, &message.payload, settings, &now)?,
    };
    let (error, code, retry_after_s) = match outcome {
        Outcome::Delivered { status } => return end("delivered", None, Some(status), None),
        Outcome::Gone => {
            let reason = format!("the receiver answered 410 Gone at {}", clock::now_rfc3339());
            channels::disable(&channel, &reason)?;
            let error = "HTTP 410 Gone: the channel is disabled".to_string();
            log::warn(&format!("message {id} to `{}`: {error}", channel.name));
            return end("dead", Some(error), Some(410), None);
        }
        Outcome::Retry { error, status, retry_after_s } => (error, status, Some(retry_after_s)),
        Outcome::Final { error, status } => (error, status, None),
    };
    log::warn(&format!("message {id} to `{}`, attempt {attempts}: {error}", channel.name));
    let Some(retry_after_s) = retry_after_s.filter(|_| attempts < settings.attempts()) else {
        return end("dead", Some(error), code, None);
    };
    let wait = retry::wait_ms(
        &settings.retry_schedule_seconds,
        attempts,
        settings.jitter,
        retry::random_unit(),
        retry_after_s,
        settings.max_retry_after_seconds,
    );
    let next = clock::rfc3339(clock::now_ms().saturating_add(wait));
    end("failed", Some(error), code, Some(next))
}

/// What a message says, from its stored payload: the subject, and the text (and, for
/// email, the HTML) of its body: a string is the text; `{"text": …, "html": …}` gives both;
/// any other JSON is the text, pretty-printed.
pub(crate) struct Content {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

pub(crate) fn content(payload: &str) -> Content {
    let value: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
    let data = &value["data"];
    let subject = data["subject"].as_str().unwrap_or_default().to_string();
    let body = &data["body"];
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let (text, html) = match body {
        serde_json::Value::Null => (String::new(), None),
        serde_json::Value::String(s) => (s.clone(), None),
        serde_json::Value::Object(o) if o.get("text").is_some_and(|t| t.is_string()) => {
            let text = o.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_string();
            (text, o.get("html").and_then(|h| h.as_str()).map(String::from))
        }
        other => (pretty(other), None),
    };
    Content { subject, text, html }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(body: &str) -> Content {
        content(&format!(r#"{{"data": {{"subject": "Disk full", "body": {body}}}}}"#))
    }

    #[test]
    fn a_body_becomes_text_and_html() {
        let c = of(r#""on db-1""#);
        assert_eq!((c.subject.as_str(), c.text.as_str(), c.html), ("Disk full", "on db-1", None));
        let c = of(r#"{"text": "t", "html": "<b>h</b>"}"#);
        assert_eq!((c.text.as_str(), c.html.as_deref()), ("t", Some("<b>h</b>")));
        assert_eq!(of(r#"{"n": 1}"#).text, "{\n  \"n\": 1\n}");
        assert_eq!(of("null").text, "");
    }
}
