//! The bodies the channel routes take, and the rules of their fields (a 422 naming the field
//! when one is broken); what each kind needs besides is in [`crate::kinds`].

use valhalla_sdk::prelude::*;

use crate::kinds::{self, KINDS};
use crate::signing;

const MAX_NAME: usize = 128;
const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 1024;
const MAX_ADDRESS: usize = 320;
const MAX_TOKEN: usize = 256;

/// `POST /system/notify/channels`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Create {
    #[validate(length(min = 1, max = MAX_NAME), custom(function = plain_text))]
    pub(super) name: String,
    /// `webhook` (the default), `email` or `sms`
    #[serde(default = "webhook")]
    #[validate(one_of = KINDS)]
    pub(super) kind: String,
    /// webhook: an http(s) URL that `[packs.notifications.grants] outbound` allows; email:
    /// an SMTP relay of `grants.smtp` (default `settings.email.relay`); sms: the provider's
    /// endpoint (default `settings.sms.endpoint`)
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_URL), custom(function = url_shape))]
    pub(super) url: Option<String>,
    /// email: the recipient (`a@example.com`); sms: the number (E.164)
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_ADDRESS), custom(function = plain_text))]
    pub(super) to: Option<String>,
    /// email: the sender (default `settings.email.from`); sms: the number or sender id
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_ADDRESS), custom(function = plain_text))]
    pub(super) from: Option<String>,
    /// email: the `Reply-To`
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_ADDRESS), custom(function = kinds::address_shape))]
    pub(super) reply_to: Option<String>,
    /// sms: the provider's account (default `settings.sms.account_sid`)
    #[serde(default)]
    #[validate(length(min = 1, max = 64))]
    pub(super) account_sid: Option<String>,
    /// sms: the provider's auth token; write-only (never answered, listed or logged)
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_TOKEN), custom(function = plain_text))]
    pub(super) auth_token: Option<String>,
    #[serde(default)]
    #[validate(length(max = MAX_DESCRIPTION))]
    pub(super) description: Option<String>,
    #[serde(default = "valhalla_sdk::yes")]
    pub(super) enabled: bool,
    /// `whsec_` + base64 of 24 to 64 bytes; generated (and answered once) when absent
    #[serde(default)]
    #[validate(custom(function = signing::secret_shape))]
    pub(super) secret: Option<String>,
}

valhalla_sdk::defaults! { fn webhook() -> String = "webhook"; }

/// `PATCH /system/notify/channels/{id}`: absent fields stay; enabling clears
/// `disabled_reason`.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct Patch {
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_NAME), custom(function = plain_text))]
    pub(super) name: Option<String>,
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_URL), custom(function = url_shape))]
    pub(super) url: Option<String>,
    #[serde(default, deserialize_with = "valhalla_sdk::present")]
    #[validate(length(max = MAX_DESCRIPTION))]
    pub(super) description: Option<Option<String>>,
    #[serde(default)]
    pub(super) enabled: Option<bool>,
    /// email or sms: the recipient
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_ADDRESS), custom(function = plain_text))]
    pub(super) to: Option<String>,
    /// email or sms: the sender
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_ADDRESS), custom(function = plain_text))]
    pub(super) from: Option<String>,
    /// email: the `Reply-To` (null removes it)
    #[serde(default, deserialize_with = "valhalla_sdk::present")]
    #[validate(length(min = 1, max = MAX_ADDRESS))]
    pub(super) reply_to: Option<Option<String>>,
    /// sms: a new auth token (write-only)
    #[serde(default)]
    #[validate(length(min = 1, max = MAX_TOKEN), custom(function = plain_text))]
    pub(super) auth_token: Option<String>,
}

/// `POST /system/notify/channels/{id}/rotate-secret` (the body is optional).
#[derive(Deserialize, JsonSchema, Validate, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rotate {
    /// the new secret; generated (and answered once) when absent
    #[serde(default)]
    #[validate(custom(function = signing::secret_shape))]
    pub(super) secret: Option<String>,
}

pub(super) fn plain_text(text: &str) -> Result<(), &'static str> {
    if text.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else if !text.is_empty() && text.trim().is_empty() {
        Err("must not be blank")
    } else {
        Ok(())
    }
}

fn url_shape(url: &str) -> Result<(), &'static str> {
    let lower = url.to_ascii_lowercase();
    if !["http://", "https://", "smtp://", "smtps://"].iter().any(|s| lower.starts_with(s)) {
        Err("must be an http(s):// URL (smtp:// or smtps:// for email)")
    } else if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Err("must not contain spaces or control characters")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors<T: Validate>(value: &T) -> Vec<String> {
        Validator::of(value)
            .map_or_else(|p| p.errors.into_iter().map(|e| e.field).collect(), |()| vec![])
    }

    #[test]
    fn a_channel_defaults_to_an_enabled_webhook() {
        let c: Create =
            serde_json::from_str(r#"{"name": "ops", "url": "https://hooks.example.com/in"}"#)
                .unwrap();
        assert!(c.enabled && c.secret.is_none());
        assert_eq!(c.kind, "webhook");
        assert!(errors(&c).is_empty());
    }

    #[test]
    fn every_field_is_checked() {
        let c: Create = serde_json::from_str(
            r#"{"name": " ", "kind": "fax", "url": "ftp://x", "secret": "whsec_short"}"#,
        )
        .unwrap();
        assert_eq!(errors(&c), ["name", "kind", "url", "secret"]);
        let p: Patch = serde_json::from_str(r#"{"url": "https://a b", "name": ""}"#).unwrap();
        assert_eq!(errors(&p), ["name", "url"]);
        let unknown = r#"{"name": "a", "url": "https://a", "x": 1}"#;
        assert!(serde_json::from_str::<Create>(unknown).is_err());
    }

    #[test]
    fn email_and_sms_fields_are_checked_for_shape() {
        let c: Create = serde_json::from_str(
            r#"{"name": "m", "kind": "email", "to": "a@b.example", "reply_to": "nope",
                "auth_token": "t\n"}"#,
        )
        .unwrap();
        assert_eq!(errors(&c), ["reply_to", "auth_token"]);
        let c: Create =
            serde_json::from_str(r#"{"name": "m", "kind": "email", "url": "smtp://127.0.0.1:25"}"#)
                .unwrap();
        assert!(errors(&c).is_empty());
    }
}
