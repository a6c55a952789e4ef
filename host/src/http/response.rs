//! A pack's (or a guard's) WIT response as an HTTP response: the status checked, the headers
//! the host owns (framing, connection, the request id) dropped, the body left out for HEAD.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode};

use super::problem::Problem;
use crate::runtime::bindings as wit;

/// Headers a pack may not set: the host owns framing and connection handling.
fn forbidden_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "x-request-id"
    )
}

/// `response` from `pack`, as sent to the client.
pub fn into_http(response: wit::Response, is_head: bool, pack: &str) -> Result<Response, Problem> {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        tracing::error!(
            pack,
            status = response.status,
            "pack answered an invalid status"
        );
        return Err(Problem::invalid_response(pack));
    };
    let body = if is_head {
        Body::empty()
    } else {
        Body::from(response.body)
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (name, value) in response.headers {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) if !forbidden_header(&n) => {
                headers.append(n, v);
            }
            _ => tracing::warn!(pack, header = %name, "pack header dropped"),
        }
    }
    Ok(out)
}

/// Headers guards asked for, added to the final response.
pub fn add_headers(out: &mut Response, headers: Vec<(String, String)>) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) && !forbidden_header(&n)
        {
            out.headers_mut().insert(n, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_keeps_its_own_headers() {
        let response = wit::Response {
            status: 201,
            headers: vec![
                ("x-request-id".into(), "forged".into()),
                ("content-length".into(), "1".into()),
                ("x-own".into(), "1".into()),
            ],
            body: b"body".to_vec(),
        };
        let out = into_http(response, false, "p").unwrap();
        assert_eq!(out.status(), 201);
        assert!(out.headers().get("x-request-id").is_none());
        assert!(out.headers().get("content-length").is_none());
        assert_eq!(out.headers()["x-own"], "1");
        let bad = wit::Response {
            status: 1000,
            headers: vec![],
            body: vec![],
        };
        assert_eq!(into_http(bad, false, "p").unwrap_err().status(), 500);
    }
}
