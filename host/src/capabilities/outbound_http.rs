//! `outbound-http`: deny by default. A pack may reach only URLs matching its
//! `grants.outbound` patterns ([`OutboundGrant`]); anything else is refused before any
//! connection is made. Redirects are not followed (they could leave the grant), timeouts are
//! capped, response bodies are bounded.
//!
//! Every request carries the host's `traceparent` (the current trace, a new span id: the
//! client span's when the trace is recorded) and the incoming `tracestate`; a pack's own
//! values of those headers are replaced, so a pack cannot break the trace.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use wasmtime::component::{HasData, Linker};

pub use super::outbound_grant::OutboundGrant;
use crate::runtime::CallContext;
use crate::runtime::bindings::valhalla::pack::outbound_http::{self, Host, OutboundRequest};
use crate::runtime::bindings::{CapabilityError, Method, Response};
use crate::telemetry::{self, Span, SpanIds};

/// One pack's outbound HTTP: its grant and the client every pack shares.
pub struct OutboundHttp {
    pack: String,
    grant: OutboundGrant,
    client: reqwest::Client,
}

impl OutboundHttp {
    pub fn new(pack: &str, grant: OutboundGrant, client: reqwest::Client) -> Self {
        Self {
            pack: pack.to_string(),
            grant,
            client,
        }
    }
}

/// What one call's `outbound-http` imports see.
pub struct OutboundHttpView<'a> {
    pub http: &'a OutboundHttp,
    pub call: &'a CallContext,
}

struct OutboundHttpData;

impl HasData for OutboundHttpData {
    type Data<'a> = OutboundHttpView<'a>;
}

/// Link `outbound-http` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> OutboundHttpView<'_>,
) -> wasmtime::Result<()> {
    outbound_http::add_to_linker::<T, OutboundHttpData>(linker, get)
}

impl Host for OutboundHttpView<'_> {
    async fn send(&mut self, request: OutboundRequest) -> Result<Response, CapabilityError> {
        if !self.http.grant.allows(&request.url) {
            tracing::warn!(pack = %self.http.pack, request_id = %self.call.request_id, url = %request.url, "outbound request refused: not granted");
            return Err(CapabilityError::AccessDenied(format!(
                "`{}` is not in this pack's grants.outbound",
                request.url
            )));
        }
        let mut span = Span::child(
            || request.method.as_str().into(),
            SpanKind::Client,
            || client_attributes(&request),
        );
        let trace = telemetry::outbound_context(span.as_ref());
        let answer = send(&self.http.client, request, trace).await;
        if let Some(span) = &mut span {
            match &answer {
                Ok(r) => {
                    span.set(|| KeyValue::new("http.response.status_code", i64::from(r.status)));
                    if r.status >= 500 {
                        span.fail(|| r.status.to_string());
                    }
                }
                Err(e) => span.fail(|| telemetry::error_kind(e).to_string()),
            }
        }
        answer
    }

    fn allowed(&mut self, url: String) -> bool {
        self.http.grant.allows(&url)
    }
}

/// A client span's attributes: method, scheme, host and port; never the path or query
/// (they may carry tokens).
fn client_attributes(request: &OutboundRequest) -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new(
        "http.request.method",
        request.method.as_str(),
    )];
    if let Ok(uri) = request.url.parse::<http::Uri>() {
        if let Some(scheme) = uri.scheme_str() {
            attributes.push(KeyValue::new("url.scheme", scheme.to_string()));
        }
        if let Some(host) = uri.host() {
            attributes.push(KeyValue::new("server.address", host.to_string()));
        }
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    attributes
}

/// Is `name` one of the trace headers the host sets itself?
fn is_trace_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(telemetry::TRACEPARENT)
        || name.eq_ignore_ascii_case(telemetry::TRACESTATE)
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
    (trace, state): (SpanIds, Option<Arc<str>>),
) -> Result<Response, CapabilityError> {
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
    for (name, value) in request.headers.iter().filter(|(n, _)| !is_trace_header(n)) {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) else {
            return Err(CapabilityError::Invalid(format!("invalid header `{name}`")));
        };
        builder = builder.header(n, v);
    }
    builder = builder.header(telemetry::TRACEPARENT, trace.traceparent());
    if let Some(state) = state.as_deref() {
        builder = builder.header(telemetry::TRACESTATE, state);
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

    fn get(url: &str) -> OutboundRequest {
        OutboundRequest {
            method: Method::Get,
            url: url.into(),
            headers: vec![],
            body: vec![],
            timeout_ms: Some(200),
        }
    }

    fn http(patterns: &[&str]) -> OutboundHttp {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        OutboundHttp::new("p", OutboundGrant::parse(&patterns).unwrap(), client())
    }

    async fn send_as(http: &OutboundHttp, url: &str) -> Result<Response, CapabilityError> {
        let call = CallContext::default();
        OutboundHttpView { http, call: &call }.send(get(url)).await
    }

    #[tokio::test]
    async fn an_ungranted_url_is_access_denied() {
        let none = http(&[]);
        match send_as(&none, "http://127.0.0.1:1/x").await {
            Err(CapabilityError::AccessDenied(m)) => assert!(m.contains("grants.outbound"), "{m}"),
            other => panic!("expected access-denied, got {other:?}"),
        }
        let other_host = http(&["https://*.example.com"]);
        assert!(matches!(
            send_as(&other_host, "https://example.com.evil.test/").await,
            Err(CapabilityError::AccessDenied(_))
        ));
    }

    #[test]
    fn allowed_checks_the_grant_alone() {
        let granted = http(&["https://hooks.example.com"]);
        let call = CallContext::default();
        let mut view = OutboundHttpView {
            http: &granted,
            call: &call,
        };
        assert!(view.allowed("https://hooks.example.com/in".into()));
        assert!(!view.allowed("https://hooks.example.com:8443/in".into()));
        assert!(!view.allowed("http://hooks.example.com/in".into()));
        assert!(!view.allowed("not a url".into()));
        assert!(
            !OutboundHttpView {
                http: &http(&[]),
                call: &call
            }
            .allowed("http://127.0.0.1/".into())
        );
    }

    /// A redirect is answered to the pack as it came (3xx and its `location`), never
    /// followed: its target could be outside the grant.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                (
                    http::StatusCode::FOUND,
                    [(http::header::LOCATION, "http://127.0.0.1:1/elsewhere")],
                )
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let granted = http(&["http://127.0.0.1:*"]);
        let answer = send_as(&granted, &format!("http://{addr}/")).await.unwrap();
        assert_eq!(answer.status, 302);
        assert!(
            answer
                .headers
                .iter()
                .any(|(n, v)| n == "location" && v.ends_with("/elsewhere"))
        );
        server.abort();
    }

    /// The host's `traceparent` goes out, whatever the pack wrote: the current trace, a new
    /// span id; a pack's `tracestate` is dropped for the incoming one (none here).
    #[tokio::test]
    async fn the_hosts_traceparent_wins() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|headers: http::HeaderMap| async move {
                let all = |n: &str| -> Vec<String> {
                    headers
                        .get_all(n)
                        .iter()
                        .map(|v| v.to_str().unwrap().to_string())
                        .collect()
                };
                format!("{:?}|{:?}", all("traceparent"), all("tracestate"))
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let granted = http(&["http://127.0.0.1:*"]);
        let forged = "00-11111111111111111111111111111111-2222222222222222-01";
        let mut request = get(&format!("http://{addr}/"));
        request.headers = vec![
            ("TraceParent".into(), forged.into()),
            ("tracestate".into(), "evil=1".into()),
        ];
        let parent = Span::server(None, 0xabc, Vec::new);
        let call = CallContext::default();
        let answer = parent
            .scope(
                OutboundHttpView {
                    http: &granted,
                    call: &call,
                }
                .send(request),
            )
            .await
            .unwrap();
        let text = String::from_utf8(answer.body).unwrap();
        let (sent, state) = text.split_once('|').unwrap();
        assert_eq!(state, "[]", "{text}");
        let sent: Vec<String> = sent
            .trim_matches(['[', ']', '"'])
            .split("\", \"")
            .map(String::from)
            .collect();
        assert_eq!(sent.len(), 1, "{text}");
        let ids = telemetry::parse_traceparent(&sent[0]).unwrap();
        assert_eq!(ids.trace_id, 0xabc);
        assert_ne!(ids.span_id, parent.ids().span_id);
        server.abort();
    }

    #[tokio::test]
    async fn a_granted_url_is_sent() {
        // Nothing listens on port 1: the request is made, and fails as unavailable.
        let granted = http(&["http://127.0.0.1:*"]);
        assert!(matches!(
            send_as(&granted, "http://127.0.0.1:1/x").await,
            Err(CapabilityError::Unavailable(_))
        ));
    }
}
