//! Dispatch: every request goes through the request-id middleware, then a chain of steps —
//! [`route`], [`body`](super::body::read), [`guards`], [`access`], [`call`] — each answering
//! `Result<_, Problem>`, so the chain reads as `?`s and errors become problem+json in one
//! place. Pack routes get a fresh instance of their pack; host routes are answered here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{StatusCode, header};

use super::access::credential;
use super::guard_chain::Verdict;
use super::health;
use super::metrics::{self, Matched};
use super::problem::{Problem, allow_header};
use super::request_id::{self, RequestId};
use super::response::{add_headers, into_http, route_response};
use super::routes::{HostRoute, Lookup, Owner, Target};
pub use super::state::{AppState, Served};
use crate::runtime::LoadedPack;
use crate::runtime::bindings::{self as wit, Method};

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(state)
        .layer(axum::middleware::from_fn(request_id::middleware))
}

/// The request as dispatch first sees it.
struct Incoming {
    request_id: Arc<str>,
    /// trailing slash removed
    path: String,
    method: http::Method,
    /// `None` for methods no route can declare
    wit_method: Option<Method>,
}

impl Incoming {
    fn of(request: &Request) -> Self {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|r| Arc::clone(&r.0))
            .unwrap_or_else(|| Arc::from(""));
        let raw = request.uri().path();
        let path = if raw.len() > 1 {
            raw.trim_end_matches('/')
        } else {
            raw
        };
        let path = if path.is_empty() { "/" } else { path }.to_string();
        Self {
            request_id,
            path,
            method: request.method().clone(),
            wit_method: wit_method(request.method()),
        }
    }

    fn is_head(&self) -> bool {
        self.wit_method == Some(Method::Head)
    }

    /// The method routes are looked up by: HEAD is GET without a body; OPTIONS answers the
    /// Allow header of whatever the path serves.
    fn lookup_method(&self) -> Option<Method> {
        match self.wit_method {
            Some(Method::Head) => Some(Method::Get),
            Some(Method::Options) => None,
            m => m,
        }
    }

    fn problem(&self, p: Problem) -> Response {
        p.at(&self.path, &self.request_id).into_response()
    }
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
    let started = std::time::Instant::now();
    let incoming = Incoming::of(&request);
    // the set this request is served by, to its end, whatever a reload does meanwhile
    let served = app.served();
    let mut matched = Matched::UNMATCHED;
    let mut response = serve(&app, &served, &incoming, request, &mut matched)
        .await
        .unwrap_or_else(|p| incoming.problem(p));
    retry_after_503(&mut response);
    matched.record(response.status(), started);
    response
}

/// A 503 always says when to come back: the host's own carry `Retry-After`; a pack's that
/// does not (a database outage the SDK reports, say) gets a second.
fn retry_after_503(response: &mut Response) {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
}

/// The chain: route, body, guards, access, call.
async fn serve<'a>(
    app: &AppState,
    served: &'a Served,
    incoming: &Incoming,
    request: Request,
    matched: &mut Matched<'a>,
) -> Result<Response, Problem> {
    let route = match route(served, incoming, matched)? {
        Routed::Pack(route) => route,
        Routed::Host(HostRoute::Live) => return Ok(health::live()),
        Routed::Host(HostRoute::Ready) => return Ok(health::ready(app, served).await),
        Routed::Host(HostRoute::OpenApi) => return Ok(super::openapi::serve(served)),
        Routed::Host(HostRoute::Metrics) => return metrics::prometheus(app),
        Routed::Host(HostRoute::HealthMetrics) => return Ok(metrics::summary(app, served)),
        Routed::Host(HostRoute::Docs) => {
            return super::docs::serve(&incoming.method, &incoming.path).await;
        }
        // `route` answers it as a guarded route
        Routed::Host(HostRoute::Reload) => return Err(Problem::not_found(&incoming.path)),
        Routed::Options(allow) => {
            let allow = [(header::ALLOW, allow_header(&allow))];
            return Ok((StatusCode::NO_CONTENT, allow).into_response());
        }
    };
    let (parts, body) = request.into_parts();
    let pace = super::body::Pace::of(&served.config.server);
    let body = super::body::read(body, &parts.headers, served.body_limit, pace).await?;
    let presented = credential(&parts.headers).is_some();
    let PackRoute {
        pack,
        template,
        target,
        params,
    } = route;
    let (mut request, credentials) =
        pack_request(served, incoming, (template, params), parts, body);
    let guard_headers = match guards(served, incoming, &mut request, &credentials).await? {
        Guarded::Proceed(headers) => headers,
        Guarded::Answered(response) => return Ok(response),
    };
    let answer = match (access(served, target, &request, presented), pack) {
        (Ok(()), Some(pack)) => {
            let bus = app.services.cache.bus();
            let mark = bus.map(|b| b.mark());
            let answer = call(pack, incoming, &request).await;
            // what the call invalidated reaches the other replicas before its answer does
            if let (Some(bus), Some(mark)) = (bus, mark) {
                bus.settle(mark).await;
            }
            answer
        }
        // the host's own guarded route: only `POST /admin/reload` is one
        (Ok(()), None) => Ok(super::reload::serve(app, &request).await),
        (Err(p), _) => Err(p),
    };
    let mut out = answer.unwrap_or_else(|p| incoming.problem(p));
    add_headers(&mut out, guard_headers);
    Ok(out)
}

/// A route that goes through guards and access checks: a pack's, or (no pack) the host's
/// reload.
struct PackRoute<'a> {
    pack: Option<&'a Arc<LoadedPack>>,
    template: &'a str,
    target: &'a Target,
    params: Vec<(String, String)>,
}

/// What a request is for.
enum Routed<'a> {
    Pack(PackRoute<'a>),
    Host(HostRoute),
    /// OPTIONS on a path that serves these methods (the `Allow` value)
    Options(String),
}

/// Step 1: the route for the request's method and path (404, 405).
fn route<'a>(
    served: &'a Served,
    incoming: &Incoming,
    matched: &mut Matched<'a>,
) -> Result<Routed<'a>, Problem> {
    let path = &incoming.path;
    match served.routes.lookup(incoming.lookup_method(), path) {
        Lookup::Found {
            template,
            target,
            params,
        } => {
            *matched = Matched {
                pack: &target.owner_name,
                template,
            };
            match target.owner {
                Owner::Host(HostRoute::Reload) => Ok(Routed::Pack(PackRoute {
                    pack: None,
                    template,
                    target,
                    params,
                })),
                Owner::Host(host) => Ok(Routed::Host(host)),
                Owner::Pack(i) => {
                    let pack = served
                        .packs
                        .get(i)
                        .ok_or_else(|| Problem::not_found(path))?;
                    Ok(Routed::Pack(PackRoute {
                        pack: Some(pack),
                        template,
                        target,
                        params,
                    }))
                }
            }
        }
        Lookup::MethodNotAllowed(allow) if incoming.wit_method == Some(Method::Options) => {
            Ok(Routed::Options(allow))
        }
        Lookup::MethodNotAllowed(allow) => {
            Err(Problem::method_not_allowed(&incoming.method, path, &allow))
        }
        Lookup::NotFound => Err(Problem::not_found(path)),
    }
}

fn client_ip(served: &Served, parts: &Parts) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    served.trusted_proxies.client_ip(peer, &parts.headers)
}

/// Step 2 (after the body): the request as the pack sees it, and the caller's credential
/// headers taken out of it — they go to the authenticating guards only, never to a route's
/// pack. The bootstrap admin key stands for itself; guards (api_clients) may attach a
/// principal.
fn pack_request(
    app: &Served,
    incoming: &Incoming,
    (template, params): (&str, Vec<(String, String)>),
    parts: Parts,
    body: bytes::Bytes,
) -> (wit::Request, Vec<(String, String)>) {
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (credentials, headers): (Vec<_>, Vec<_>) = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .partition(|(n, _)| valhalla_wire::is_credential(n));
    let principal = app
        .auth
        .bootstrap_principal(&parts.headers)
        .or_else(|| app.auth.local_principal());
    let request = wit::Request {
        method: incoming.lookup_method().unwrap_or(Method::Get),
        path: incoming.path.clone(),
        route: template.to_string(),
        params,
        query,
        headers,
        body: body.to_vec(),
        request_id: incoming.request_id.to_string(),
        principal,
        client_ip: client_ip(app, &parts),
    };
    (request, credentials)
}

/// What the guards decided.
enum Guarded {
    /// go on, adding these headers to the response
    Proceed(Vec<(String, String)>),
    /// a guard answered the request
    Answered(Response),
}

/// Step 3: the guard chain. A guard that answers stops the request there; one that fails,
/// fails closed.
async fn guards(
    app: &Served,
    incoming: &Incoming,
    request: &mut wit::Request,
    credentials: &[(String, String)],
) -> Result<Guarded, Problem> {
    match app.guards.run(request, credentials).await {
        Ok(Verdict::Proceed(headers)) => Ok(Guarded::Proceed(headers)),
        Ok(Verdict::Respond { response, headers }) => {
            let mut out = into_http(response, incoming.is_head(), "guard")
                .unwrap_or_else(|p| incoming.problem(p));
            add_headers(&mut out, headers);
            Ok(Guarded::Answered(out))
        }
        Err(failed) => {
            tracing::error!(error = %failed.0, "guard failed: request refused");
            Err(failed.into())
        }
    }
}

/// Step 4: the route's access level against the principal the guards left (401, 403).
fn access(
    app: &Served,
    target: &Target,
    request: &wit::Request,
    presented: bool,
) -> Result<(), Problem> {
    app.auth
        .check(target.access, request.principal.as_ref())
        .map_err(|denied| Problem::from(denied.presented(presented)))
}

/// Step 5: the route's pack, on a fresh instance.
async fn call(
    pack: &LoadedPack,
    incoming: &Incoming,
    request: &wit::Request,
) -> Result<Response, Problem> {
    let response = pack.handle(request).await.map_err(|e| {
        // a full pool is load, not a fault: no error line per refused request
        if matches!(e, crate::runtime::PackError::Busy { .. }) {
            tracing::warn!(error = %e, "pack call refused");
        } else {
            tracing::error!(error = %e, "pack call failed");
        }
        Problem::from(e)
    })?;
    let artefacts = &pack.ctx.capabilities.artefacts;
    route_response(response, incoming.is_head(), pack.name(), artefacts).await
}
