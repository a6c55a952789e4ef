//! The tick: claim due messages one at a time with a lease (`valhalla_sdk::jobs`: a message
//! is delivered by one claimer at once, and one whose claimer died is taken again once its
//! lease lapses), count the attempt, POST the stored payload signed per Standard Webhooks
//! (`webhook-id` = the message id on every attempt), and record what came of it: delivered,
//! failed (waiting for its retry), or dead; a 410 turns the channel off.

use valhalla_sdk::db::{ToValue, Value};
use valhalla_sdk::prelude::*;

use crate::channels::{self, Channel};
use crate::retry::{self, Outcome};
use crate::settings::Settings;
use crate::signing;

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
    let result = send(&channel, id, &message.payload, settings, &now)?;
    let outcome = retry::classify(result, clock::now_ms());
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

/// POST the payload to the channel, signed with every secret that signs now.
fn send(
    channel: &Channel,
    id: &str,
    payload: &str,
    settings: &Settings,
    now: &str,
) -> Result<Result<outbound::Fetched, capability::Error>, Problem> {
    let secrets = channels::signing_secrets(&channel.id, now)?;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let timestamp = clock::now_ms() / 1000;
    let signature = signing::signature_header(&secrets, id, timestamp, payload.as_bytes());
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".to_string(), id.to_string()),
        ("webhook-timestamp".to_string(), timestamp.to_string()),
        ("webhook-signature".to_string(), signature),
    ];
    let body = payload.as_bytes().to_vec();
    Ok(outbound::send(Method::Post, &channel.url, headers, body, settings.delivery_timeout_ms))
}
