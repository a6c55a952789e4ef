//! `outbound-mail`: email over SMTP, built and sent by the host with `lettre` (tokio, rustls):
//! deny by default. A pack names a relay of its `grants.smtp` ([`SmtpGrant`]) by URL; any
//! other is refused before a connection is made. The relay's security (plain, STARTTLS,
//! implicit TLS) and credentials come from the grant and never reach the pack, nor any answer
//! or log line. The message is MIME: text/plain, or multipart/alternative with an HTML part,
//! with the pack's `Message-ID` (the same on every attempt) and a `Date`. A failure is
//! `transient` (a 4xx reply, a connection refused or dropped, a timeout) or `permanent` (a
//! 5xx reply), with the reply code.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use wasmtime::component::{HasData, Linker};

pub use super::outbound_mail_grant::SmtpGrant;
use super::outbound_mail_grant::{Security, SmtpRelay};
use crate::runtime::CallContext;
use crate::runtime::bindings::valhalla::pack::outbound_mail::{
    self, Host, MailError, MailFailure, MailMessage, MailSent,
};

/// Longest a pack may wait on one message, and the default.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest relay answer kept in a failure.
const MAX_MESSAGE: usize = 300;

/// One pack's outbound mail: its grant.
pub struct OutboundMail {
    pack: String,
    grant: SmtpGrant,
}

impl OutboundMail {
    pub fn new(pack: &str, grant: SmtpGrant) -> Self {
        Self {
            pack: pack.to_string(),
            grant,
        }
    }
}

/// What one call's `outbound-mail` imports see.
pub struct OutboundMailView<'a> {
    pub mail: &'a OutboundMail,
    pub call: &'a CallContext,
}

struct OutboundMailData;

impl HasData for OutboundMailData {
    type Data<'a> = OutboundMailView<'a>;
}

/// Link `outbound-mail` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> OutboundMailView<'_>,
) -> wasmtime::Result<()> {
    outbound_mail::add_to_linker::<T, OutboundMailData>(linker, get)
}

impl Host for OutboundMailView<'_> {
    async fn send(&mut self, message: MailMessage) -> Result<MailSent, MailError> {
        let Some(relay) = self.mail.grant.relay(&message.relay) else {
            tracing::warn!(pack = %self.mail.pack, request_id = %self.call.request_id, relay = %message.relay, "mail refused: relay not granted");
            return Err(MailError::AccessDenied(format!(
                "`{}` is not in this pack's grants.smtp",
                message.relay
            )));
        };
        let timeout = message
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(u64::from(ms)))
            .min(MAX_TIMEOUT);
        let built = build(&message).map_err(MailError::Invalid)?;
        let result = deliver(relay, built, timeout).await;
        if let Err(e) = &result {
            tracing::info!(pack = %self.mail.pack, relay = %relay, error = ?e, "mail not sent");
        }
        result
    }

    async fn allowed(&mut self, relay: String) -> bool {
        self.mail.grant.relay(&relay).is_some()
    }

    async fn check_mailbox(&mut self, mailbox: String) -> Result<(), String> {
        mailbox_of(&mailbox).map(|_| ())
    }
}

/// `mailbox` parsed: `a@example.com` or `A <a@example.com>`.
fn mailbox_of(mailbox: &str) -> Result<Mailbox, String> {
    if mailbox.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    mailbox
        .parse::<Mailbox>()
        .map_err(|e| format!("is not an email address: {e}"))
}

/// A `Message-ID` without brackets: `left@right`, no spaces, brackets or controls.
fn message_id_shape(id: &str) -> Result<(), String> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>');
    match id.split_once('@') {
        Some((l, r)) if !l.is_empty() && !r.is_empty() && !r.contains('@') && !id.contains(bad) => {
            Ok(())
        }
        _ => Err(format!("message-id `{id}` is not `left@right`")),
    }
}

/// The MIME message of `m`.
fn build(m: &MailMessage) -> Result<Message, String> {
    let field = |name: &str, e: String| format!("{name} {e}");
    message_id_shape(&m.message_id)?;
    if m.to.is_empty() {
        return Err("to must name a recipient".into());
    }
    if m.subject.chars().any(char::is_control) {
        return Err("subject must not contain control characters".into());
    }
    let mut builder = Message::builder()
        .from(mailbox_of(&m.from).map_err(|e| field("from", e))?)
        .subject(m.subject.clone())
        .message_id(Some(format!("<{}>", m.message_id)))
        .date_now();
    for to in &m.to {
        builder = builder.to(mailbox_of(to).map_err(|e| field("to", e))?);
    }
    if let Some(reply_to) = &m.reply_to {
        builder = builder.reply_to(mailbox_of(reply_to).map_err(|e| field("reply_to", e))?);
    }
    let built = match &m.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(m.text.clone())),
    };
    built.map_err(|e| format!("the message cannot be built: {e}"))
}

/// The transport for one message to `relay`: its security and credentials, no pool.
fn transport(
    relay: &SmtpRelay,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let params = || {
        TlsParameters::new(relay.host.clone()).map_err(|e| {
            MailError::Transient(MailFailure {
                code: None,
                message: clip(&format!("TLS setup failed: {e}")),
            })
        })
    };
    let tls = match relay.security {
        Security::Plain => Tls::None,
        Security::StartTls => Tls::Required(params()?),
        Security::Opportunistic => Tls::Opportunistic(params()?),
        Security::Implicit => Tls::Wrapper(params()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.clone())
        .port(relay.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&relay.username, &relay.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    if let Some(name) = &relay.hello_name {
        builder = builder.hello_name(ClientId::Domain(name.clone()));
    }
    Ok(builder.build())
}

/// Send `message` through `relay`, waiting at most `timeout` in all.
async fn deliver(
    relay: &SmtpRelay,
    message: Message,
    timeout: Duration,
) -> Result<MailSent, MailError> {
    let transport = transport(relay, timeout)?;
    let sent = tokio::time::timeout(timeout, transport.send(message)).await;
    let redact = |text: String| match &relay.password {
        Some(p) if !p.expose().is_empty() => clip(&text.replace(p.expose(), "***")),
        _ => clip(&text),
    };
    match sent {
        Err(_) => Err(MailError::Transient(MailFailure {
            code: None,
            message: format!("timed out after {} ms", timeout.as_millis()),
        })),
        Ok(Ok(response)) => Ok(MailSent {
            code: u16::from(response.code()),
            message: redact(response.message().collect::<Vec<_>>().join(" ")),
        }),
        Ok(Err(e)) => {
            let failure = MailFailure {
                code: e.status().map(u16::from),
                message: redact(e.to_string()),
            };
            if e.is_permanent() {
                Err(MailError::Permanent(failure))
            } else {
                Err(MailError::Transient(failure))
            }
        }
    }
}

fn clip(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(relay: &str) -> MailMessage {
        MailMessage {
            relay: relay.into(),
            from: "Ops <ops@example.com>".into(),
            to: vec!["oncall@example.com".into()],
            reply_to: Some("desk@example.com".into()),
            subject: "Disk full".into(),
            text: "plain".into(),
            html: Some("<p>html</p>".into()),
            message_id: "m1@example.com".into(),
            timeout_ms: Some(500),
        }
    }

    fn mail(entries: &[&str]) -> OutboundMail {
        let entries: Vec<toml::Value> = entries
            .iter()
            .map(|e| toml::Value::String(e.to_string()))
            .collect();
        OutboundMail::new("p", SmtpGrant::parse(&entries).unwrap())
    }

    #[tokio::test]
    async fn an_ungranted_relay_is_refused_without_a_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = format!("smtp://{}", listener.local_addr().unwrap());
        let call = CallContext::default();
        let none = mail(&[]);
        let mut view = OutboundMailView {
            mail: &none,
            call: &call,
        };
        assert!(!view.allowed(relay.clone()).await);
        match view.send(message(&relay)).await {
            Err(MailError::AccessDenied(m)) => assert!(m.contains("grants.smtp"), "{m}"),
            other => panic!("expected access-denied, got {other:?}"),
        }
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "no connection was made");
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let granted = mail(&["smtp://127.0.0.1:1"]);
        let call = CallContext::default();
        let mut view = OutboundMailView {
            mail: &granted,
            call: &call,
        };
        assert!(view.allowed("smtp://127.0.0.1:1".into()).await);
        assert!(matches!(
            view.send(message("smtp://127.0.0.1:1")).await,
            Err(MailError::Transient(_))
        ));
    }

    #[test]
    fn messages_are_mime_with_the_given_id() {
        let built = build(&message("smtp://x")).unwrap();
        let text = String::from_utf8(built.formatted()).unwrap();
        assert!(text.contains("Message-ID: <m1@example.com>"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("Reply-To: desk@example.com"), "{text}");
        assert!(text.contains("Date: "), "{text}");
        let mut bad = message("smtp://x");
        bad.to = vec!["not an address".into()];
        assert!(build(&bad).unwrap_err().starts_with("to "));
        bad.to = vec![];
        assert!(build(&bad).is_err());
        let mut bad = message("smtp://x");
        bad.message_id = "<x@y>".into();
        assert!(build(&bad).is_err());
        assert!(mailbox_of("A <a@example.com>").is_ok());
        assert!(mailbox_of("a@example.com\r\nBcc: x@y").is_err());
    }
}
