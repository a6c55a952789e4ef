//! Outbound HTTP through the host: only to the URLs the pack's `grants.outbound` allows.

use crate::alloc_prelude::*;

use crate::bindings::valhalla::pack::outbound_http::{self as host_http, OutboundRequest};
use crate::bindings::valhalla::pack::types::{Error, Method};

/// An answer from another server.
pub struct Fetched {
    /// the HTTP status
    pub status: u16,
    /// the response headers
    pub headers: Vec<(String, String)>,
    /// the response body
    pub body: Vec<u8>,
}

/// `GET url`, waiting at most `timeout_ms`. `Err(Error::AccessDenied)` when the URL is not
/// granted (no connection is made).
pub fn get(url: &str, timeout_ms: u32) -> Result<Fetched, Error> {
    send(Method::Get, url, Vec::new(), Vec::new(), timeout_ms)
}

/// Send `method url` with `headers` and `body`; the host checks the URL against the pack's
/// `grants.outbound` and waits at most `timeout_ms`.
pub fn send(
    method: Method,
    url: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: u32,
) -> Result<Fetched, Error> {
    let response = host_http::send(&OutboundRequest {
        method,
        url: url.to_string(),
        headers,
        body,
        timeout_ms: Some(timeout_ms),
    })?;
    Ok(Fetched { status: response.status, headers: response.headers, body: response.body })
}

/// Would the pack's `grants.outbound` let [`send`] reach `url`? The grant check alone, no
/// connection: for refusing a URL the pack is given to keep (a webhook's) when it is given.
pub fn allowed(url: &str) -> bool {
    host_http::allowed(url)
}
