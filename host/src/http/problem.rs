//! RFC 9457 `application/problem+json`: the one place host errors become responses. Kinds,
//! statuses and titles come from the shared wire vocabulary ([`Kind`]); the errors dispatch
//! meets turn into problems through `From`, so each step of it can use `?`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use valhalla_wire::Kind;

use super::access::Denied;
use super::body::BodyError;
use super::guard_chain::GuardFailed;
use crate::runtime::PackError;

/// A host-made problem. The detail must be safe to show a client.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: Kind,
    pub detail: String,
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

/// A problem with the request it answers: what is sent.
#[derive(Debug)]
pub struct ProblemAt<'a> {
    problem: Problem,
    instance: &'a str,
    request_id: &'a str,
}

/// The problem+json body (RFC 9457, plus the request id).
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    instance: &'a str,
    request_id: &'a str,
}

/// The `Allow` header for `allow` (method names: always a valid value).
pub fn allow_header(allow: &str) -> HeaderValue {
    HeaderValue::from_str(allow).unwrap_or(HeaderValue::from_static("GET"))
}

/// Ask the client to come back in a second (for problems that pass).
fn retry_soon() -> (http::HeaderName, HeaderValue) {
    (header::RETRY_AFTER, HeaderValue::from_static("1"))
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(Kind::NotFound, format!("no route for {path}"))
    }

    /// `method` on `path`, which serves only `allow` (the `Allow` header's value).
    pub fn method_not_allowed(method: &http::Method, path: &str, allow: &str) -> Self {
        Self::new(
            Kind::MethodNotAllowed,
            format!("{method} is not allowed on {path}; allowed: {allow}"),
        )
        .with_header(header::ALLOW, allow_header(allow))
    }

    /// The pack answered something that is not a response.
    pub fn invalid_response(pack: &str) -> Self {
        Self::new(
            Kind::PackFailed,
            format!("pack `{pack}` answered an invalid status"),
        )
    }

    /// This problem as the answer to the request `request_id` for `instance` (its path).
    pub fn at<'a>(self, instance: &'a str, request_id: &'a str) -> ProblemAt<'a> {
        ProblemAt {
            problem: self,
            instance,
            request_id,
        }
    }

    pub fn with_header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A pack failure as the client sees it (the details are for the log).
impl From<PackError> for Problem {
    fn from(e: PackError) -> Self {
        let (name, value) = retry_soon();
        match &e {
            PackError::Trap { pack, .. } => Self::new(
                Kind::PackFailed,
                format!("pack `{pack}` failed while handling the request"),
            ),
            PackError::OutOfMemory { .. } => Self::new(Kind::PackOutOfMemory, e.to_string()),
            PackError::Deadline { .. } => {
                Self::new(Kind::PackTimeout, e.to_string()).with_header(name, value)
            }
            PackError::Busy { pack, .. } => Self::new(
                Kind::Overloaded,
                format!("pack `{pack}` cannot take more requests right now"),
            )
            .with_header(name, value),
        }
    }
}

/// A guard that fails, fails closed.
impl From<GuardFailed> for Problem {
    fn from(_: GuardFailed) -> Self {
        let (name, value) = retry_soon();
        Self::new(
            Kind::GuardFailed,
            "a guard could not decide on this request; it was refused",
        )
        .with_header(name, value)
    }
}

impl From<BodyError> for Problem {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => Self::new(
                Kind::PayloadTooLarge,
                format!("the request body exceeds {limit} bytes"),
            ),
            BodyError::Unreadable => {
                Self::new(Kind::BadRequest, "the request body could not be read")
            }
        }
    }
}

impl From<Denied> for Problem {
    fn from(denied: Denied) -> Self {
        let unauthorized = |detail| {
            Self::new(Kind::Unauthorized, detail)
                .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
        };
        match denied {
            Denied::Unauthenticated => {
                unauthorized("this route needs a credential: X-API-Key or Authorization: Bearer")
            }
            Denied::InvalidCredential => unauthorized("the credential is not valid"),
            Denied::Forbidden { needed } => Self::new(
                Kind::Forbidden,
                format!("this route needs the `{needed}` role"),
            ),
        }
    }
}

impl ProblemAt<'_> {
    /// The problem+json body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body()).unwrap_or_default()
    }

    fn body(&self) -> Body<'_> {
        let kind = self.problem.kind;
        Body {
            kind: kind.type_uri(),
            title: kind.title(),
            status: kind.status(),
            detail: &self.problem.detail,
            instance: self.instance,
            request_id: self.request_id,
        }
    }
}

impl IntoResponse for ProblemAt<'_> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.problem.status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.problem.headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_titles_are_the_status_reasons() {
        // the host used to take its titles from the status line; the wire table says the same
        for kind in [
            Kind::BadRequest,
            Kind::Unauthorized,
            Kind::Forbidden,
            Kind::NotFound,
            Kind::MethodNotAllowed,
            Kind::PayloadTooLarge,
            Kind::PackFailed,
            Kind::PackOutOfMemory,
            Kind::PackTimeout,
            Kind::Overloaded,
            Kind::GuardFailed,
        ] {
            let status = StatusCode::from_u16(kind.status()).unwrap();
            assert_eq!(Some(kind.title()), status.canonical_reason(), "{kind:?}");
        }
    }

    #[test]
    fn renders_the_same_json_as_ever() {
        let p = Problem::not_found("/nope");
        assert_eq!(
            serde_json::to_string(&p.at("/nope", "rid").body()).unwrap(),
            r#"{"type":"urn:valhalla:problem:not-found","title":"Not Found","status":404,"detail":"no route for /nope","instance":"/nope","request_id":"rid"}"#
        );
    }

    #[test]
    fn errors_become_their_problems() {
        let p = Problem::from(PackError::Deadline {
            pack: "p".into(),
            ms: 5,
        });
        assert_eq!((p.kind, p.status()), (Kind::PackTimeout, 503));
        assert_eq!(p.headers[0].0, header::RETRY_AFTER);
        let p = Problem::from(Denied::InvalidCredential);
        assert_eq!(
            (p.status(), p.detail.as_str()),
            (401, "the credential is not valid")
        );
        let p = Problem::from(BodyError::TooLarge { limit: 10 });
        assert_eq!((p.status(), p.kind), (413, Kind::PayloadTooLarge));
        let p = Problem::method_not_allowed(&http::Method::PUT, "/x", "GET, HEAD, OPTIONS");
        assert_eq!(
            p.detail,
            "PUT is not allowed on /x; allowed: GET, HEAD, OPTIONS"
        );
    }
}
