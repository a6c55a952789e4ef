//! Dispatch: every request goes through the request-id middleware, then the route table;
//! pack routes get a fresh instance of their pack, host routes are answered here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};

use super::access::{Auth, Denied, credential};
use super::guard_chain::{GuardChain, Outcome, is_credential};
use super::health;
use super::problem::Problem;
use super::request_id::{self, RequestId};
use super::routes::{HostRoute, Lookup, Owner, RouteTable};
use crate::runtime::bindings::{self as wit, Method};
use crate::runtime::{LoadedPack, PackError};
use crate::services::Services;

/// What the HTTP layer serves from.
pub struct AppState {
    pub packs: Vec<Arc<LoadedPack>>,
    pub routes: RouteTable,
    pub guards: GuardChain,
    pub auth: Auth,
    pub services: Arc<Services>,
    pub body_limit: usize,
}

/// A route of one pack, found for an in-process call.
pub struct PackRoute<'a> {
    pub pack: &'a Arc<LoadedPack>,
    pub template: &'a str,
    pub params: Vec<(String, String)>,
}

/// Why an in-process call found no route.
pub enum PackRouteError {
    NotLoaded,
    NoRoute,
}

impl AppState {
    /// `method path` of the enabled pack `name`.
    pub fn pack_route(
        &self,
        name: &str,
        method: Method,
        path: &str,
    ) -> Result<PackRoute<'_>, PackRouteError> {
        if !self.packs.iter().any(|p| p.name() == name) {
            return Err(PackRouteError::NotLoaded);
        }
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        match self.routes.lookup(Some(method), path) {
            Lookup::Found {
                template,
                target,
                params,
            } => match target.owner {
                Owner::Pack(i) if self.packs[i].name() == name => Ok(PackRoute {
                    pack: &self.packs[i],
                    template,
                    params,
                }),
                _ => Err(PackRouteError::NoRoute),
            },
            _ => Err(PackRouteError::NoRoute),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(state)
        .layer(axum::middleware::from_fn(request_id::middleware))
}

fn wit_method(m: &http::Method) -> Option<Method> {
    Some(match *m {
        http::Method::GET => Method::Get,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::PATCH => Method::Patch,
        http::Method::DELETE => Method::Delete,
        http::Method::HEAD => Method::Head,
        http::Method::OPTIONS => Method::Options,
        _ => return None,
    })
}

async fn dispatch(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| Arc::clone(&r.0))
        .unwrap_or_else(|| Arc::from(""));
    let raw_path = request.uri().path();
    let path = if raw_path.len() > 1 {
        raw_path.trim_end_matches('/')
    } else {
        raw_path
    };
    let path = if path.is_empty() { "/" } else { path }.to_string();
    let problem_at = |p: Problem| p.at(&path, &request_id).into_response();

    let method = wit_method(request.method());
    let is_head = method == Some(Method::Head);
    // HEAD is GET without a body; OPTIONS answers the Allow header.
    let lookup_method = match method {
        Some(Method::Head) => Some(Method::Get),
        Some(Method::Options) => None,
        m => m,
    };
    let (template, target, params) = match app.routes.lookup(lookup_method, &path) {
        Lookup::Found {
            template,
            target,
            params,
        } => (template, target, params),
        Lookup::MethodNotAllowed(allow) => {
            let allow_value =
                HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("GET"));
            if method == Some(Method::Options) {
                return (StatusCode::NO_CONTENT, [(header::ALLOW, allow_value)]).into_response();
            }
            return problem_at(
                Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    format!(
                        "{} is not allowed on {path}; allowed: {allow}",
                        request.method()
                    ),
                )
                .with_header(header::ALLOW, allow_value),
            );
        }
        Lookup::NotFound => return problem_at(Problem::not_found(&path)),
    };

    let pack_index = match target.owner {
        Owner::Host(HostRoute::Live) => return health::live(),
        Owner::Host(HostRoute::Ready) => return health::ready(&app).await,
        Owner::Pack(i) => i,
    };
    let Some(pack) = app.packs.get(pack_index) else {
        return problem_at(Problem::not_found(&path));
    };

    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let body = match read_body(body, &parts.headers, app.body_limit).await {
        Ok(b) => b,
        Err(p) => return problem_at(p),
    };
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    // The caller's credential goes to the authenticating guards only, never to a route's pack.
    let (credentials, headers): (Vec<_>, Vec<_>) = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .partition(|(n, _)| is_credential(n));
    // The bootstrap admin key stands for itself; guards (api_clients) may attach a principal.
    let principal = app
        .auth
        .bootstrap_principal(&parts.headers)
        .or_else(|| app.auth.local_principal());
    let mut wit_request = wit::Request {
        method: lookup_method.unwrap_or(Method::Get),
        path: path.clone(),
        route: template.to_string(),
        params,
        query,
        headers,
        body: body.to_vec(),
        request_id: request_id.to_string(),
        principal,
        client_ip,
    };

    let guard_headers = match app.guards.run(&mut wit_request, &credentials).await {
        Outcome::Proceed(h) => h,
        Outcome::Respond { response, headers } => {
            let mut out = into_http(response, is_head, &path, &request_id, "guard");
            add_headers(&mut out, headers);
            return out;
        }
        Outcome::Failed(e) => {
            tracing::error!(error = %e, "guard failed: request refused");
            return problem_at(
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "guard-failed",
                    "a guard could not decide on this request; it was refused",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            );
        }
    };

    if let Err(denied) = app
        .auth
        .check(target.access, wit_request.principal.as_ref())
    {
        let problem = match denied {
            Denied::Unauthenticated => {
                let detail = if credential(&parts.headers).is_some() {
                    "the credential is not valid"
                } else {
                    "this route needs a credential: X-API-Key or Authorization: Bearer"
                };
                Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
                    .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
            }
            Denied::Forbidden { needed } => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this route needs the `{needed}` role"),
            ),
        };
        let mut out = problem_at(problem);
        add_headers(&mut out, guard_headers);
        return out;
    }

    let mut out = match pack.handle(&wit_request).await {
        Ok(response) => into_http(response, is_head, &path, &request_id, pack.name()),
        Err(e) => problem_at(pack_failure(e)),
    };
    add_headers(&mut out, guard_headers);
    out
}

/// Headers guards asked for, added to the final response.
fn add_headers(out: &mut Response, headers: Vec<(String, String)>) {
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

async fn read_body(
    body: Body,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the request body exceeds {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let limited = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limited || e.to_string().contains("length limit") {
            too_large()
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "the request body could not be read",
            )
        }
    })
}

/// A pack failure as the client sees it; the details go to the log.
fn pack_failure(e: PackError) -> Problem {
    tracing::error!(error = %e, "pack call failed");
    let retry = (header::RETRY_AFTER, HeaderValue::from_static("1"));
    match &e {
        PackError::Trap { pack, .. } => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pack-failed",
            format!("pack `{pack}` failed while handling the request"),
        ),
        PackError::OutOfMemory { .. } => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pack-out-of-memory",
            e.to_string(),
        ),
        PackError::Deadline { .. } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pack-timeout",
            e.to_string(),
        )
        .with_header(retry.0, retry.1),
        PackError::Busy { pack, .. } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("pack `{pack}` cannot take more requests right now"),
        )
        .with_header(retry.0, retry.1),
    }
}

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

fn into_http(
    response: wit::Response,
    is_head: bool,
    path: &str,
    request_id: &str,
    pack: &str,
) -> Response {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        tracing::error!(
            pack,
            status = response.status,
            "pack answered an invalid status"
        );
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pack-failed",
            format!("pack `{pack}` answered an invalid status"),
        )
        .at(path, request_id)
        .into_response();
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
    out
}
