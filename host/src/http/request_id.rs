//! `X-Request-ID`: kept when the client sends a sane one, generated (UUID v7) otherwise,
//! returned on every response and attached to the request's log span.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

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

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id: Arc<str> = match request.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        Some(sent) if acceptable(sent) => Arc::from(sent),
        _ => Arc::from(uuid::Uuid::now_v7().to_string()),
    };
    request.extensions_mut().insert(RequestId(Arc::clone(&id)));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    let micros = started.elapsed().as_micros() as u64;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), micros, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), micros, "request done");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn accepts_sane_ids_only() {
        assert!(acceptable("abc-123"));
        assert!(acceptable("0190c9a4-1f3e-7b2a-9d4c-123456789abc"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable("new\nline"));
        assert!(!acceptable(&"x".repeat(129)));
    }
}
