//! The `outbound-http` grant: `grants.outbound` URL patterns (`https://*.example.com:443`,
//! `http://127.0.0.1:*`), parsed once at startup; a URL no pattern allows is refused.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("`{0}` is not a URL pattern like https://*.example.com:443")]
    Shape(String),
    #[error("scheme `{0}` is not http, https or *")]
    Scheme(String),
    #[error("port `{0}` is not a number or *")]
    Port(String),
}

/// One allowed destination: scheme, host (exact, `*` or `*.suffix`) and port (or `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

impl UrlPattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let shape = || PatternError::Shape(pattern.to_string());
        let (scheme, rest) = pattern.split_once("://").ok_or_else(shape)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains('/') {
            return Err(shape());
        }
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            other => return Err(PatternError::Scheme(other.to_string())),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, None),
            Some((h, p)) => (
                h,
                Some(p.parse().map_err(|_| PatternError::Port(p.to_string()))?),
            ),
            None => (rest, scheme.as_deref().map(default_port)),
        };
        if host.is_empty() {
            return Err(shape());
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Does `url` fall under this pattern?
    pub fn allows(&self, url: &str) -> bool {
        let Ok(uri) = url.parse::<http::Uri>() else {
            return false;
        };
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        if !matches!(scheme, "http" | "https") {
            return false;
        }
        let host = host.to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or_else(|| default_port(scheme));
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
            && match self.host.strip_prefix("*.") {
                _ if self.host == "*" => true,
                Some(suffix) => {
                    host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}"))
                }
                None => host == self.host,
            }
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// The URLs one pack may reach. Empty (the default) reaches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundGrant {
    patterns: Vec<UrlPattern>,
}

/// A pattern of `grants.outbound` that does not parse, with its index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("[{index}]: {error}")]
pub struct OutboundGrantError {
    pub index: usize,
    pub error: PatternError,
}

impl OutboundGrant {
    /// Parse every pattern; the first bad one is the error.
    pub fn parse(patterns: &[String]) -> Result<Self, OutboundGrantError> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(index, p)| {
                UrlPattern::parse(p).map_err(|error| OutboundGrantError { index, error })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// May the pack reach `url`?
    pub fn allows(&self, url: &str) -> bool {
        self.patterns.iter().any(|p| p.allows(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = UrlPattern::parse("https://*.example.com").unwrap();
        assert!(p.allows("https://api.example.com/x"));
        assert!(!p.allows("https://example.com/x"));
        assert!(!p.allows("http://api.example.com/x"));
        assert!(!p.allows("https://api.example.com:8443/x"));
        assert!(!p.allows("https://evil.com/?q=.example.com"));

        let p = UrlPattern::parse("http://127.0.0.1:*").unwrap();
        assert!(p.allows("http://127.0.0.1:8000/system/health/live"));
        assert!(!p.allows("http://127.0.0.2:8000/"));

        let p = UrlPattern::parse("*://localhost:8000").unwrap();
        assert!(p.allows("http://localhost:8000"));
        assert!(p.allows("https://localhost:8000"));
    }

    #[test]
    fn a_grant_names_its_bad_pattern() {
        let ok = OutboundGrant::parse(&["http://127.0.0.1:*".into()]).unwrap();
        assert!(ok.allows("http://127.0.0.1:9/x") && !ok.allows("http://10.0.0.1/"));
        assert!(!OutboundGrant::default().allows("http://127.0.0.1:9/x"));
        let err =
            OutboundGrant::parse(&["https://a.example".into(), "ftp://x".into()]).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.to_string(), "[1]: scheme `ftp` is not http, https or *");
    }

    #[test]
    fn bad_patterns() {
        assert!(UrlPattern::parse("example.com").is_err());
        assert!(UrlPattern::parse("ftp://x").is_err());
        assert!(UrlPattern::parse("http://x:port").is_err());
        assert!(UrlPattern::parse("http://x/path").is_err());
    }
}
