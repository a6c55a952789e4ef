//! The `outbound-mail` grant: `grants.smtp`, the SMTP relays a pack may send through, parsed
//! once at startup with their credentials, which stay in the host (the pack names a relay by
//! its URL and never sees them). An entry is a URL or a table:
//!
//! ```toml
//! smtp = [
//!     "smtp://127.0.0.1:2525",                       # a local relay: plain SMTP, no login
//!     { url = "smtp://mail.internal:587?tls=starttls", username = "valhalla",
//!       password_env = "VALHALLA_SMTP_PASSWORD" },  # STARTTLS required, then AUTH
//!     "smtps://smtp.example.com:465",                # implicit TLS
//! ]
//! ```
//!
//! `smtp://` is plain SMTP (port 25 by default) unless `?tls=starttls` (the upgrade is
//! required) or `?tls=opportunistic` (upgraded when the relay offers it); `smtps://` is
//! implicit TLS (port 465 by default). A URL carries no user or password: those go in
//! `username` and `password_env` (the variable is read at startup; unset is an error) or,
//! less wisely, `password`.

use std::fmt;

use crate::config::Secret;

/// A `grants.smtp` entry that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SmtpGrantError {
    #[error("`{0}` is not an SMTP URL like smtp://mail.internal:587?tls=starttls")]
    Shape(String),
    #[error("scheme `{0}` is not smtp or smtps")]
    Scheme(String),
    #[error("`tls={0}` is not starttls or opportunistic (smtps:// is implicit TLS)")]
    Tls(String),
    #[error("a relay URL carries no credentials: use `username` and `password_env`")]
    UserInfo,
    #[error("{0}")]
    Table(String),
    #[error("environment variable {0} (password_env) is not set")]
    MissingEnv(String),
}

/// How a connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// plain SMTP (a local relay)
    Plain,
    /// STARTTLS, required
    StartTls,
    /// STARTTLS when the relay offers it
    Opportunistic,
    /// TLS from the first byte (`smtps://`)
    Implicit,
}

/// One relay a pack may send through.
#[derive(Clone)]
pub struct SmtpRelay {
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub hello_name: Option<String>,
}

impl PartialEq for SmtpRelay {
    fn eq(&self, other: &Self) -> bool {
        let password = |r: &Self| r.password.as_ref().map(|p| p.expose().to_string());
        self.to_string() == other.to_string()
            && self.security == other.security
            && self.username == other.username
            && self.hello_name == other.hello_name
            && password(self) == password(other)
    }
}
impl Eq for SmtpRelay {}

impl fmt::Debug for SmtpRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpRelay")
            .field("relay", &self.to_string())
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl fmt::Display for SmtpRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Scheme, host and port of an SMTP URL, and its query.
fn split_url(url: &str) -> Result<(&'static str, String, u16, Option<&str>), SmtpGrantError> {
    let shape = || SmtpGrantError::Shape(url.to_string());
    let (scheme, rest) = url.split_once("://").ok_or_else(shape)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "smtp" => "smtp",
        "smtps" => "smtps",
        other => return Err(SmtpGrantError::Scheme(other.to_string())),
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('@') {
        return Err(SmtpGrantError::UserInfo);
    }
    if authority.is_empty() || authority.contains('/') || authority.contains(char::is_whitespace) {
        return Err(shape());
    }
    let default_port = if scheme == "smtps" { 465 } else { 25 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.ends_with(']') => (h, p.parse().map_err(|_| shape())?),
        _ => (authority, default_port),
    };
    if host.is_empty() {
        return Err(shape());
    }
    Ok((scheme, host.to_ascii_lowercase(), port, query))
}

impl SmtpRelay {
    /// Parse one URL (no credentials).
    pub fn parse_url(url: &str) -> Result<Self, SmtpGrantError> {
        let (scheme, host, port, query) = split_url(url)?;
        let mut security = if scheme == "smtps" {
            Security::Implicit
        } else {
            Security::Plain
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            match pair.split_once('=') {
                Some(("tls", "starttls")) if scheme == "smtp" => security = Security::StartTls,
                Some(("tls", "opportunistic")) if scheme == "smtp" => {
                    security = Security::Opportunistic
                }
                Some(("tls", other)) => return Err(SmtpGrantError::Tls(other.to_string())),
                _ => return Err(SmtpGrantError::Shape(url.to_string())),
            }
        }
        Ok(Self {
            scheme,
            host,
            port,
            security,
            username: None,
            password: None,
            hello_name: None,
        })
    }

    /// Parse one `grants.smtp` entry, reading `password_env` from `env`.
    pub fn parse(
        entry: &toml::Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SmtpGrantError> {
        let table = match entry {
            toml::Value::String(url) => return Self::parse_url(url),
            toml::Value::Table(t) => t,
            _ => return Err(SmtpGrantError::Table("must be a URL or a table".into())),
        };
        let text = |key: &str| -> Result<Option<String>, SmtpGrantError> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SmtpGrantError::Table(format!("`{key}` must be a string"))),
            }
        };
        for key in table.keys() {
            if !["url", "username", "password", "password_env", "hello_name"]
                .contains(&key.as_str())
            {
                return Err(SmtpGrantError::Table(format!(
                    "unknown key `{key}` (url, username, password_env, password, hello_name)"
                )));
            }
        }
        let url = text("url")?.ok_or_else(|| SmtpGrantError::Table("`url` is missing".into()))?;
        let mut relay = Self::parse_url(&url)?;
        relay.username = text("username")?;
        relay.hello_name = text("hello_name")?;
        relay.password = match (text("password_env")?, text("password")?) {
            (Some(_), Some(_)) => {
                return Err(SmtpGrantError::Table(
                    "give `password_env` or `password`, not both".into(),
                ));
            }
            (Some(var), None) => Some(Secret::new(
                env(&var).ok_or(SmtpGrantError::MissingEnv(var))?,
            )),
            (None, password) => password.map(Secret::new),
        };
        if relay.password.is_some() != relay.username.is_some() {
            return Err(SmtpGrantError::Table(
                "`username` and a password go together".into(),
            ));
        }
        Ok(relay)
    }

    /// Is `url` this relay (scheme, host and port; a query is ignored)?
    pub fn is(&self, url: &str) -> bool {
        split_url(url).is_ok_and(|(scheme, host, port, _)| {
            scheme == self.scheme && host == self.host && port == self.port
        })
    }
}

/// The relays one pack may use. Empty (the default) sends nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmtpGrant {
    relays: Vec<SmtpRelay>,
}

/// An entry of `grants.smtp` that does not parse, with its index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("[{index}]: {error}")]
pub struct SmtpGrantEntryError {
    pub index: usize,
    pub error: SmtpGrantError,
}

impl SmtpGrant {
    /// Parse every entry (reading `password_env` variables from the process environment).
    pub fn parse(entries: &[toml::Value]) -> Result<Self, SmtpGrantEntryError> {
        Self::parse_with(entries, &|var| std::env::var(var).ok())
    }

    /// [`parse`](Self::parse) with the environment `env`.
    pub fn parse_with(
        entries: &[toml::Value],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SmtpGrantEntryError> {
        let relays = entries
            .iter()
            .enumerate()
            .map(|(index, e)| {
                SmtpRelay::parse(e, env).map_err(|error| SmtpGrantEntryError { index, error })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { relays })
    }

    /// The granted relay `url` names, if any.
    pub fn relay(&self, url: &str) -> Option<&SmtpRelay> {
        self.relays.iter().find(|r| r.is(url))
    }

    /// The relays, as `smtp://host:port (starttls, login)` (for `valhalla packs`).
    pub fn names(&self) -> Vec<String> {
        let name = |r: &SmtpRelay| {
            let security = match r.security {
                Security::Plain => "plain",
                Security::StartTls => "starttls",
                Security::Opportunistic => "opportunistic starttls",
                Security::Implicit => "tls",
            };
            let login = if r.username.is_some() { ", login" } else { "" };
            format!("{r} ({security}{login})")
        };
        self.relays.iter().map(name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml: &str) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("e = {toml}")).unwrap()["e"].clone()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn urls_select_the_security() {
        let r = SmtpRelay::parse_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((r.port, r.security), (2525, Security::Plain));
        let r = SmtpRelay::parse_url("smtp://Mail.Internal:587?tls=starttls").unwrap();
        assert_eq!(
            (r.host.as_str(), r.security),
            ("mail.internal", Security::StartTls)
        );
        let r = SmtpRelay::parse_url("smtps://smtp.example.com").unwrap();
        assert_eq!((r.port, r.security), (465, Security::Implicit));
        assert_eq!(SmtpRelay::parse_url("smtp://x").unwrap().port, 25);
        assert!(r.is("smtps://smtp.example.com:465"));
        assert!(!r.is("smtp://smtp.example.com:465"));
    }

    #[test]
    fn bad_urls_are_named() {
        assert!(matches!(
            SmtpRelay::parse_url("http://x"),
            Err(SmtpGrantError::Scheme(_))
        ));
        assert!(matches!(
            SmtpRelay::parse_url("smtp://u:p@x:25"),
            Err(SmtpGrantError::UserInfo)
        ));
        assert!(matches!(
            SmtpRelay::parse_url("smtp://x:25?tls=yes"),
            Err(SmtpGrantError::Tls(_))
        ));
        assert!(matches!(
            SmtpRelay::parse_url("smtps://x?tls=starttls"),
            Err(SmtpGrantError::Tls(_))
        ));
        assert!(SmtpRelay::parse_url("smtp://x/path").is_err());
        assert!(SmtpRelay::parse_url("smtp://x:port").is_err());
    }

    #[test]
    fn credentials_come_from_the_environment() {
        let env = |var: &str| (var == "PW").then(|| "s3cret".to_string());
        let e =
            entry(r#"{ url = "smtp://m:587?tls=starttls", username = "u", password_env = "PW" }"#);
        let r = SmtpRelay::parse(&e, &env).unwrap();
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{r:?}").contains("s3cret"), "never printed");
        let missing = SmtpRelay::parse(&e, &no_env).unwrap_err();
        assert_eq!(missing, SmtpGrantError::MissingEnv("PW".into()));
        let alone = entry(r#"{ url = "smtp://m", password = "x" }"#);
        assert!(SmtpRelay::parse(&alone, &no_env).is_err());
        let unknown = entry(r#"{ url = "smtp://m", user = "x" }"#);
        assert!(SmtpRelay::parse(&unknown, &no_env).is_err());
    }

    #[test]
    fn a_grant_names_its_bad_entry() {
        let entries = [entry(r#""smtp://a:25""#), entry(r#""ftp://b""#)];
        let err = SmtpGrant::parse_with(&entries, &no_env).unwrap_err();
        assert_eq!(err.index, 1);
        let ok = SmtpGrant::parse_with(&entries[..1], &no_env).unwrap();
        assert!(ok.relay("smtp://a:25").is_some() && ok.relay("smtp://a:26").is_none());
        assert!(
            SmtpGrant::default().relay("smtp://a:25").is_none(),
            "deny by default"
        );
    }
}
