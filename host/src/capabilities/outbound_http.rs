//! `outbound-http`: deny by default. A pack may reach only URLs matching its
//! `grants.outbound` patterns (`https://*.example.com:443`, `http://127.0.0.1:*`); anything
//! else is refused before any connection is made. Redirects are not followed (they could leave
//! the grant), timeouts are capped, response bodies are bounded.

use std::time::Duration;

use crate::runtime::State;
use crate::runtime::bindings::valhalla::pack::outbound_http::{Host, OutboundRequest};
use crate::runtime::bindings::{CapabilityError, Response};

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

impl Host for State {
    async fn send(&mut self, request: OutboundRequest) -> Result<Response, CapabilityError> {
        if !self.pack.outbound.iter().any(|p| p.allows(&request.url)) {
            tracing::warn!(pack = %self.pack.name, request_id = %self.call.request_id, url = %request.url, "outbound request refused: not granted");
            return Err(CapabilityError::AccessDenied(format!(
                "`{}` is not in this pack's grants.outbound",
                request.url
            )));
        }
        send(&self.pack.services.http, request).await
    }
}

/// Longest a pack may wait on one outbound request, and the default.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body handed to a pack.
const MAX_BODY: usize = 1 << 20;

/// The client every pack shares: no redirects, no proxies from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("valhalla/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

async fn send(
    client: &reqwest::Client,
    request: OutboundRequest,
) -> Result<Response, CapabilityError> {
    use crate::runtime::bindings::Method;
    let method = match request.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
        Method::Options => reqwest::Method::OPTIONS,
    };
    let timeout = request
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(u64::from(ms)))
        .min(MAX_TIMEOUT);
    let mut builder = client.request(method, &request.url).timeout(timeout);
    for (name, value) in &request.headers {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) else {
            return Err(CapabilityError::Invalid(format!("invalid header `{name}`")));
        };
        builder = builder.header(n, v);
    }
    if !request.body.is_empty() {
        builder = builder.body(request.body);
    }
    let mut response = builder.send().await.map_err(|e| failure(&e, timeout))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failure(&e, timeout))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(CapabilityError::Unavailable(format!(
                "the response body exceeds {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn failure(e: &reqwest::Error, timeout: Duration) -> CapabilityError {
    if e.is_timeout() {
        CapabilityError::Unavailable(format!("timed out after {} ms", timeout.as_millis()))
    } else if e.is_builder() {
        CapabilityError::Invalid(format!("bad request: {e}"))
    } else {
        let cause = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        CapabilityError::Unavailable(format!("request failed{cause}"))
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
    fn bad_patterns() {
        assert!(UrlPattern::parse("example.com").is_err());
        assert!(UrlPattern::parse("ftp://x").is_err());
        assert!(UrlPattern::parse("http://x:port").is_err());
        assert!(UrlPattern::parse("http://x/path").is_err());
    }
}
