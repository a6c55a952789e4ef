//! What each kind of channel needs, checked when it is created or changed (a 422 naming the
//! field):
//!
//! - `webhook`: `url`, an http(s) URL under `grants.outbound`; a signing secret;
//! - `email`: `url`, the SMTP relay (`smtp://…`, else `settings.email.relay`), one of
//!   `grants.smtp`; `to`, `from` (else `settings.email.from`) and an optional `reply_to`,
//!   mailboxes (`a@example.com`, `A <a@example.com>`) the host parses (its word is final);
//! - `sms`: `to` and `from` (else `settings.sms.from`) numbers (E.164, or an alphanumeric
//!   sender for `from`), `account_sid` (else `settings.sms.account_sid`) and `auth_token`
//!   (write-only, like a webhook's secret); `url`, the provider's endpoint (else
//!   `settings.sms.endpoint` with the account), under `grants.outbound`.
//!
//! A field of another kind is refused, so nothing is stored that nothing reads.

use valhalla_sdk::prelude::*;

use crate::settings::Settings;

pub(crate) const KINDS: [&str; 3] = ["webhook", "email", "sms"];

/// The kind-specific fields a channel is given (or, on a change, has after it).
#[derive(Default, Clone)]
pub(crate) struct Fields {
    pub url: Option<String>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub account_sid: Option<String>,
    /// a webhook's signing secret
    pub secret: Option<String>,
    /// an SMS channel's provider token
    pub auth_token: Option<String>,
}

/// The fields as stored; `secret` none: generate one (webhook) or keep the stored one.
pub(crate) struct Resolved {
    pub url: String,
    pub to: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub account_sid: Option<String>,
    pub secret: Option<String>,
}

/// The fields of a `kind` channel, complete and checked. `creating`: an SMS token is
/// required (a change keeps the stored one); `url_changed`: its grant is checked.
pub(crate) fn resolve(
    kind: &str,
    f: Fields,
    settings: &Settings,
    creating: bool,
    url_changed: bool,
) -> Result<Resolved, Problem> {
    let foreign = |name: &str, given: bool| {
        if given {
            Err(Problem::invalid_field(name, format!("is not a field of {kind} channels")))
        } else {
            Ok(())
        }
    };
    match kind {
        "email" => {
            foreign("account_sid", f.account_sid.is_some())?;
            foreign("secret", f.secret.is_some())?;
            foreign("auth_token", f.auth_token.is_some())?;
            let url = f.url.or_else(|| settings.email.relay.clone());
            let url = required("url", url, "the SMTP relay (or settings.email.relay)")?;
            if url_changed {
                relay_granted(&url)?;
            }
            let to = required("to", f.to, "the recipient's address")?;
            mailbox("to", &to)?;
            let from = f.from.or_else(|| settings.email.from.clone());
            let from = required("from", from, "the sender's address (or settings.email.from)")?;
            mailbox("from", &from)?;
            if let Some(reply_to) = &f.reply_to {
                mailbox("reply_to", reply_to)?;
            }
            let (to, from) = (Some(to), Some(from));
            Ok(Resolved { url, to, from, reply_to: f.reply_to, account_sid: None, secret: None })
        }
        "sms" => {
            foreign("reply_to", f.reply_to.is_some())?;
            foreign("secret", f.secret.is_some())?;
            let account = f.account_sid.or_else(|| settings.sms.account_sid.clone());
            let account =
                required("account_sid", account, "the provider account (or settings.sms)")?;
            if !account.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(Problem::invalid_field("account_sid", "must be letters and digits"));
            }
            let url =
                f.url.unwrap_or_else(|| settings.sms.endpoint.replace("{account_sid}", &account));
            if url_changed {
                http_granted(&url)?;
            }
            let to = required("to", f.to, "the recipient's number (E.164: +15551234567)")?;
            number("to", &to, false)?;
            let from = f.from.or_else(|| settings.sms.from.clone());
            let from = required("from", from, "the sender's number (or settings.sms.from)")?;
            number("from", &from, true)?;
            if creating && f.auth_token.is_none() {
                return Err(Problem::invalid_field("auth_token", "is required for sms channels"));
            }
            let (to, from, account_sid) = (Some(to), Some(from), Some(account));
            Ok(Resolved { url, to, from, reply_to: None, account_sid, secret: f.auth_token })
        }
        _ => {
            for (name, given) in [
                ("to", f.to.is_some()),
                ("from", f.from.is_some()),
                ("reply_to", f.reply_to.is_some()),
                ("account_sid", f.account_sid.is_some()),
                ("auth_token", f.auth_token.is_some()),
            ] {
                foreign(name, given)?;
            }
            let url = required("url", f.url, "the webhook's URL")?;
            if url_changed {
                http_granted(&url)?;
            }
            let none = (None, None, None, None);
            Ok(Resolved {
                url,
                to: none.0,
                from: none.1,
                reply_to: none.2,
                account_sid: none.3,
                secret: f.secret,
            })
        }
    }
}

fn required(name: &str, value: Option<String>, what: &str) -> Result<String, Problem> {
    value.ok_or_else(|| Problem::invalid_field(name, format!("is required: {what}")))
}

/// The pack may reach `url` (the host's grant check, no connection): else a 422 naming it.
fn http_granted(url: &str) -> Result<(), Problem> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Problem::invalid_field("url", "must be an http:// or https:// URL"));
    }
    if outbound::allowed(url) {
        Ok(())
    } else {
        Err(Problem::invalid_field(
            "url",
            "is not in this pack's grants.outbound ([packs.notifications.grants] in config.toml)",
        ))
    }
}

/// The relay is one of `grants.smtp` (checked by the host, no connection).
fn relay_granted(url: &str) -> Result<(), Problem> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("smtp://") || lower.starts_with("smtps://")) {
        return Err(Problem::invalid_field("url", "must be an smtp:// or smtps:// relay URL"));
    }
    if mail::allowed(url) {
        Ok(())
    } else {
        Err(Problem::invalid_field(
            "url",
            "is not in this pack's grants.smtp ([packs.notifications.grants] in config.toml)",
        ))
    }
}

/// A quick shape check here, then the host's parser.
fn mailbox(name: &str, value: &str) -> Result<(), Problem> {
    address_shape(value).map_err(|e| Problem::invalid_field(name, e))?;
    mail::check_mailbox(value).map_err(|e| Problem::invalid_field(name, e))
}

/// `local@domain`, alone or in `Name <…>`: one `@`, no spaces or controls in the address.
pub(crate) fn address_shape(value: &str) -> Result<(), &'static str> {
    let address = match value.rsplit_once('<') {
        Some((_, rest)) => rest.strip_suffix('>').ok_or("must end with `>` after `<`")?,
        None => value,
    };
    match address.split_once('@') {
        _ if value.chars().any(char::is_control) => Err("must not contain control characters"),
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err("must be an email address (name@example.com)"),
    }
}

/// E.164 (`+` and 8 to 15 digits); a sender may also be 1 to 11 letters, digits and spaces.
fn number(name: &str, value: &str, sender: bool) -> Result<(), Problem> {
    let e164 = value
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()));
    let alphanumeric = sender
        && (1..=11).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && value.chars().any(|c| c.is_ascii_alphabetic());
    if e164 || alphanumeric {
        Ok(())
    } else {
        Err(Problem::invalid_field(name, "must be a phone number in E.164 form (+15551234567)"))
    }
}

/// The domain of a mailbox's address (for the `Message-ID`), `valhalla.invalid` if none.
pub(crate) fn domain_of(mailbox: &str) -> String {
    let address = mailbox.rsplit_once('<').map_or(mailbox, |(_, rest)| rest);
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d).trim_end_matches('>');
    if domain.is_empty() { "valhalla.invalid".into() } else { domain.to_ascii_lowercase() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_have_a_shape() {
        assert!(address_shape("ops@example.com").is_ok());
        assert!(address_shape("Ops Team <ops@example.com>").is_ok());
        assert!(address_shape("ops").is_err());
        assert!(address_shape("a@b@c").is_err());
        assert!(address_shape("a b@c").is_err());
        assert!(address_shape("a@b\r\nBcc: x@y").is_err());
        assert!(address_shape("Ops <ops@example.com").is_err());
        assert_eq!(domain_of("Ops <ops@Example.com>"), "example.com");
        assert_eq!(domain_of("x"), "valhalla.invalid");
    }

    #[test]
    fn numbers_are_e164() {
        assert!(number("to", "+15551234567", false).is_ok());
        assert!(number("to", "15551234567", false).is_err());
        assert!(number("to", "+1555", false).is_err());
        assert!(number("from", "Valhalla", true).is_ok());
        assert!(number("to", "Valhalla", false).is_err());
    }

    #[test]
    fn fields_of_another_kind_are_refused() {
        let s = Settings::default();
        let f = Fields { to: Some("+15551234567".into()), ..Fields::default() };
        let p = resolve("webhook", f, &s, true, false).err().unwrap();
        assert_eq!(p.errors[0].field, "to");
        let p = resolve("sms", Fields::default(), &s, true, false).err().unwrap();
        assert_eq!(p.errors[0].field, "account_sid");
    }
}
