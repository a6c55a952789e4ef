//! Email through the host (`outbound-mail`): only through the SMTP relays the pack's
//! `grants.smtp` names; the relay's credentials stay in the host.

use crate::alloc_prelude::*;

use crate::bindings::valhalla::pack::outbound_mail as host_mail;
pub use crate::bindings::valhalla::pack::outbound_mail::{
    MailError, MailFailure, MailMessage, MailSent,
};

/// Send `message`; `Err(MailError::AccessDenied)` when its relay is not granted (no
/// connection is made), `Transient` for a 4xx or a network failure, `Permanent` for a 5xx.
pub fn send(message: &MailMessage) -> Result<MailSent, MailError> {
    host_mail::send(message)
}

/// Would the pack's `grants.smtp` let [`send`] use `relay`? The check alone, no connection.
pub fn allowed(relay: &str) -> bool {
    host_mail::allowed(relay)
}

/// Is `mailbox` (`a@example.com`, `A <a@example.com>`) an address the host can send from or
/// to? `Err` says why not; the host's parser is the final word.
pub fn check_mailbox(mailbox: &str) -> Result<(), String> {
    host_mail::check_mailbox(mailbox)
}

/// The text of a failure, for a log line or a dead letter.
pub fn describe(e: &MailError) -> String {
    match e {
        MailError::Transient(f) | MailError::Permanent(f) => match f.code {
            Some(code) => format!("SMTP {code}: {}", f.message),
            None => f.message.clone(),
        },
        MailError::AccessDenied(m) | MailError::Invalid(m) => m.clone(),
    }
}
