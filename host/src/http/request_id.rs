//! The request's identity: its W3C trace context and its request id (the correlation id of
//! its logs, problems and system-log records).
//!
//! - A valid `traceparent` (W3C Trace Context level 1) makes the request a child of the
//!   caller's span and keeps its `tracestate`; an invalid one is ignored and a new trace
//!   starts. Without one, the trace is new.
//! - The request id is the client's `X-Request-ID` when it sends a sane one; else, with a
//!   valid `traceparent`, the trace id (32 hex digits); else a new UUID v7, whose 128 bits
//!   are also the new trace's id (the same value, written as a UUID).
//! - The response carries `X-Request-ID`, and the `traceparent` of the request's server span
//!   when the caller sent a valid one or the span is recorded (a caller outside any trace
//!   gets nothing it could use: the trace id is its request id); the request's log span
//!   carries both ids.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use opentelemetry::KeyValue;
use tracing::Instrument;

use crate::telemetry::{self, Span, SpanIds};

pub const HEADER: &str = "x-request-id";

/// The request id, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// 1..=128 of letters, digits and `-_.:/+=`.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// The caller's span: exactly one valid `traceparent`, and its `tracestate`.
fn incoming_parent(headers: &HeaderMap) -> Option<(SpanIds, Option<Arc<str>>)> {
    let mut parents = headers.get_all(telemetry::TRACEPARENT).iter();
    let (Some(value), None) = (parents.next(), parents.next()) else {
        return None;
    };
    let ids = telemetry::parse_traceparent(value.to_str().ok()?)?;
    let states = headers
        .get_all(telemetry::TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    Some((ids, telemetry::parse_tracestate(states)))
}

/// The request id and the trace id, by the rule in the module's doc.
fn identify(sent: Option<&str>, parent: Option<&SpanIds>) -> (Arc<str>, u128) {
    let sent = sent.filter(|s| acceptable(s)).map(Arc::from);
    match (sent, parent) {
        (Some(id), Some(p)) => (id, p.trace_id),
        (None, Some(p)) => (Arc::from(p.trace_hex()), p.trace_id),
        (sent, None) => {
            let uuid = uuid::Uuid::now_v7();
            let id = sent.unwrap_or_else(|| Arc::from(uuid.to_string()));
            (id, uuid.as_u128())
        }
    }
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let parent = incoming_parent(request.headers());
    let traced_caller = parent.is_some();
    let sent = request.headers().get(HEADER).and_then(|v| v.to_str().ok());
    let (id, trace_id) = identify(sent, parent.as_ref().map(|p| &p.0));
    request.extensions_mut().insert(RequestId(Arc::clone(&id)));
    let method = request.method().clone();
    let mut server = Span::server(parent, trace_id, || {
        vec![
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("url.path", request.uri().path().to_string()),
            KeyValue::new("valhalla.request_id", id.to_string()),
        ]
    });
    let traceparent = server.ids().traceparent_bytes();
    let trace_id = std::str::from_utf8(&traceparent[3..35]).unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %id, trace_id = %trace_id, method = %method, path = %request.uri().path());
    let started = Instant::now();
    let mut response = server
        .scope(next.run(request))
        .instrument(span.clone())
        .await;
    let status = response.status();
    let micros = started.elapsed().as_micros() as u64;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), micros, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), micros, "request done");
        }
    });
    if server.is_recording() {
        let route = server.route().map(str::to_string);
        server.rename(|| match &route {
            Some(r) => format!("{method} {r}"),
            None => method.to_string(),
        });
        if let Some(r) = route {
            server.set(|| KeyValue::new("http.route", r));
        }
        server.set(|| KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            server.fail(|| status.to_string());
        }
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(HEADER, value);
    }
    if (traced_caller || server.is_recording())
        && let Ok(value) = HeaderValue::from_bytes(&traceparent)
    {
        headers.insert(telemetry::TRACEPARENT, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn accepts_sane_ids_only() {
        assert!(acceptable("abc-123"));
        assert!(acceptable("0190c9a4-1f3e-7b2a-9d4c-123456789abc"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable("new\nline"));
        assert!(!acceptable(&"x".repeat(129)));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_request_id_follows_the_rule() {
        let parent = incoming_parent(&headers(&[("traceparent", PARENT)]))
            .unwrap()
            .0;
        let (id, trace) = identify(None, Some(&parent));
        assert_eq!(&*id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace, parent.trace_id);
        let (id, trace) = identify(Some("mine-1"), Some(&parent));
        assert_eq!((&*id, trace), ("mine-1", parent.trace_id));
        let (id, trace) = identify(None, None);
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.as_u128(), trace, "a new id is the new trace's id");
        let (id, _) = identify(Some("bad id"), None);
        assert!(uuid::Uuid::parse_str(&id).is_ok());
    }

    #[test]
    fn a_doubled_or_invalid_traceparent_is_no_parent() {
        assert!(
            incoming_parent(&headers(&[
                ("traceparent", PARENT),
                ("traceparent", PARENT)
            ]))
            .is_none()
        );
        assert!(incoming_parent(&headers(&[("traceparent", "00-nope")])).is_none());
        let (_, state) = incoming_parent(&headers(&[
            ("traceparent", PARENT),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]))
        .unwrap();
        assert_eq!(state.as_deref(), Some("a=1,b=2"));
    }
}
