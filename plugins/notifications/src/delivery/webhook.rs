//! A webhook delivery: the stored payload POSTed to the channel's URL, signed per Standard
//! Webhooks with every secret that signs now (`webhook-id` = the message id).

use valhalla_sdk::prelude::*;

use crate::channels::{self, Channel};
use crate::retry::{self, Outcome};
use crate::settings::Settings;
use crate::signing;

/// POST the payload to the channel, signed with every secret that signs now.
pub(super) fn send(
    channel: &Channel,
    id: &str,
    payload: &str,
    settings: &Settings,
    now: &str,
) -> Result<Outcome, Problem> {
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
    let result =
        outbound::send(Method::Post, &channel.url, headers, body, settings.delivery_timeout_ms);
    Ok(retry::classify(result, clock::now_ms()))
}
