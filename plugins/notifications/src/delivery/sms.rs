//! An SMS delivery through the provider, Twilio's Messages API as the template: a form POST
//! (`To`, `From`, `Body`) to the channel's endpoint (under `grants.outbound`) with HTTP Basic
//! (account SID, auth token; the token is read here and nowhere answered or logged). 429,
//! 408 and 5xx (and network failures) are retried; any other 4xx is final.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use valhalla_sdk::prelude::*;

use super::content;
use crate::channels::Channel;
use crate::retry::{self, Outcome};
use crate::settings::Settings;

/// The longest SMS body sent (Twilio's limit is 1600 characters).
const MAX_BODY: usize = 1600;

pub(super) fn send(
    channel: &Channel,
    payload: &str,
    settings: &Settings,
) -> Result<Outcome, Problem> {
    let sql = "SELECT secret FROM notification_channels WHERE id = $1";
    let Some(row) = db::query_one(sql, params![channel.id.as_str()])? else {
        return Ok(Outcome::Final { error: "the channel was deleted".into(), status: None });
    };
    let token: String = row.get("secret")?;
    let content = content(payload);
    let body = if content.text.is_empty() {
        content.subject
    } else {
        format!("{}\n{}", content.subject, content.text)
    };
    let body: String = body.chars().take(MAX_BODY).collect();
    let form = form_encode(&[
        ("To", channel.to.as_deref().unwrap_or_default()),
        ("From", channel.from.as_deref().unwrap_or_default()),
        ("Body", &body),
    ]);
    let account = channel.account_sid.as_deref().unwrap_or_default();
    let basic = STANDARD.encode(format!("{account}:{token}"));
    let headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
        ("authorization".to_string(), format!("Basic {basic}")),
    ];
    let result = outbound::send(
        Method::Post,
        &channel.url,
        headers,
        form.into_bytes(),
        settings.delivery_timeout_ms,
    );
    Ok(match retry::classify(result, clock::now_ms()) {
        // a provider's 410 is an answer about this message, not the end of the channel
        Outcome::Gone => {
            Outcome::Final { error: "HTTP 410 (not retried)".into(), status: Some(410) }
        }
        other => other,
    })
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, space as `+`, every
/// other byte `%XX`.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(char::from(byte))
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
        out
    };
    let pairs: Vec<String> =
        pairs.iter().map(|(name, value)| format!("{}={}", encode(name), encode(value))).collect();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_url_encoded() {
        let form = form_encode(&[("To", "+15551234567"), ("Body", "Disk full\nat 90% é")]);
        assert_eq!(form, "To=%2B15551234567&Body=Disk+full%0Aat+90%25+%C3%A9");
    }
}
