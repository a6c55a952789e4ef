//! An email delivery through the host's `outbound-mail`: the channel's relay, `From`, `To`
//! and `Reply-To`, the message's subject and text (and HTML), and the `Message-ID`
//! `<{message id}@{From's domain}>` on every attempt, so a receiver recognises a retry. A 4xx
//! or a network failure is retried; a 5xx is final.

use valhalla_sdk::mail::{self, MailError, MailMessage};
use valhalla_sdk::prelude::*;

use super::content;
use crate::channels::Channel;
use crate::kinds;
use crate::retry::Outcome;
use crate::settings::Settings;

pub(super) fn send(channel: &Channel, id: &str, payload: &str, settings: &Settings) -> Outcome {
    let content = content(payload);
    let from = channel.from.clone().unwrap_or_default();
    let message = MailMessage {
        relay: channel.url.clone(),
        message_id: format!("{id}@{}", kinds::domain_of(&from)),
        from,
        to: channel.to.iter().cloned().collect(),
        reply_to: channel.reply_to.clone(),
        subject: content.subject,
        text: content.text,
        html: content.html,
        timeout_ms: Some(settings.delivery_timeout_ms),
    };
    outcome(mail::send(&message))
}

/// What a relay's answer means.
fn outcome(result: Result<mail::MailSent, MailError>) -> Outcome {
    match result {
        Ok(sent) => Outcome::Delivered { status: sent.code },
        Err(MailError::Transient(f)) => {
            let error = mail::describe(&MailError::Transient(f.clone()));
            Outcome::Retry { error, status: f.code, retry_after_s: None }
        }
        Err(MailError::Permanent(f)) => {
            let error =
                format!("{} (not retried)", mail::describe(&MailError::Permanent(f.clone())));
            Outcome::Final { error, status: f.code }
        }
        Err(MailError::AccessDenied(_)) => Outcome::Final {
            error: "the channel's relay is not granted: not in this pack's grants.smtp".into(),
            status: None,
        },
        Err(MailError::Invalid(m)) => Outcome::Final { error: m, status: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valhalla_sdk::mail::MailFailure;

    fn failure(code: u16) -> MailFailure {
        MailFailure { code: Some(code), message: "try later".into() }
    }

    #[test]
    fn a_4xx_is_retried_and_a_5xx_is_final() {
        let sent = mail::MailSent { code: 250, message: "queued".into() };
        assert_eq!(outcome(Ok(sent)), Outcome::Delivered { status: 250 });
        let retry = outcome(Err(MailError::Transient(failure(451))));
        assert_eq!(
            retry,
            Outcome::Retry {
                error: "SMTP 451: try later".into(),
                status: Some(451),
                retry_after_s: None
            }
        );
        let dead = outcome(Err(MailError::Permanent(failure(550))));
        assert!(matches!(dead, Outcome::Final { status: Some(550), .. }), "{dead:?}");
        let denied = outcome(Err(MailError::AccessDenied("x".into())));
        let Outcome::Final { error, .. } = denied else { panic!("final") };
        assert!(error.contains("not granted"), "{error}");
    }
}
