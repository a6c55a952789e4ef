//! The pack declaration: one table of routes that is both the manifest the host reads and the
//! router that dispatches requests, plus the optional guard and schedule.

use crate::alloc_prelude::*;

use crate::bindings::valhalla::pack::types as wit;
use crate::handler::Handler;
use crate::problem::Problem;
use crate::request::Request;
use crate::response::Response;
use crate::schema::Schema;
use wit::{Access, Method};

/// A guard: `Ok(None)` lets the request proceed, `Ok(Some(response))` answers it.
pub type GuardFn = fn(&Request) -> Result<wit::Decision, Problem>;
/// Scheduled work: a short report, or why it failed.
pub type TickFn = fn() -> Result<String, String>;

type Call = Box<dyn Fn(&Request) -> Result<Response, Problem>>;

struct Route {
    method: Method,
    path: &'static str,
    summary: &'static str,
    access: Access,
    call: Call,
    request_schema: fn() -> Option<Schema>,
    response_schema: fn() -> Option<Schema>,
}

/// Which requests a guard sees (the host skips the rest without calling the pack).
#[derive(Debug, Clone, Default)]
pub struct GuardSpec {
    /// lower runs first
    pub order: i32,
    /// the methods it sees; empty is all
    pub methods: Vec<Method>,
    /// the path prefixes it sees; empty is all
    pub path_prefixes: Vec<String>,
    /// an authenticating guard: it sees the credential headers, which the host keeps from
    /// every other guard and every route
    pub needs_credentials: bool,
}

/// A pack: name, version, routes, optional guard and schedule.
pub struct Pack {
    name: &'static str,
    version: &'static str,
    description: &'static str,
    routes: Vec<Route>,
    guard: Option<(GuardSpec, GuardFn)>,
    schedule: Option<(wit::Schedule, TickFn)>,
    fallback: Option<Call>,
}

/// The route template the host gives requests it sends to the [`Pack::fallback`].
pub const FALLBACK_ROUTE: &str = "*";

macro_rules! method_shorthands {
    ($($name:ident => $method:ident),*) => {$(
        #[doc = concat!("Serve `", stringify!($method), " path` with `handler`.")]
        pub fn $name<Args, H: Handler<Args>>(
            self,
            path: &'static str,
            access: Access,
            summary: &'static str,
            handler: H,
        ) -> Self {
            self.route(Method::$method, path, access, summary, handler)
        }
    )*};
}

impl Pack {
    /// A pack named `name` (its tables, grants and config section use this name).
    pub fn new(name: &'static str, version: &'static str, description: &'static str) -> Self {
        Self {
            name,
            version,
            description,
            routes: Vec::new(),
            guard: None,
            schedule: None,
            fallback: None,
        }
    }

    /// Serve `method path` with `handler`; `path` is a template like `/items/{id}`.
    pub fn route<Args, H: Handler<Args>>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: H,
    ) -> Self {
        self.routes.push(Route {
            method,
            path,
            summary,
            access,
            call: Box::new(move |req| handler.call(req)),
            request_schema: H::request_schema,
            response_schema: H::response_schema,
        });
        self
    }

    method_shorthands!(get => Get, post => Post, put => Put, patch => Patch, delete => Delete);

    /// Declare a guard run on matching requests before their route.
    pub fn guard(mut self, spec: GuardSpec, guard: GuardFn) -> Self {
        self.guard = Some((spec, guard));
        self
    }

    /// Serve, as a public route after the guards, every request no route of any pack matches
    /// (decoy paths): the handler answers 404 to what it does not want. `Request::route` is
    /// [`FALLBACK_ROUTE`]. One pack per host may declare it.
    pub fn fallback<Args, H: Handler<Args>>(mut self, handler: H) -> Self {
        self.fallback = Some(Box::new(move |req| handler.call(req)));
        self
    }

    /// Declare scheduled work every `interval_ms`: with several replicas on one database, run
    /// by one of them at a time (jobs, windows, deliveries).
    pub fn schedule(mut self, interval_ms: u64, tick: TickFn) -> Self {
        self.schedule = Some((wit::Schedule { interval_ms, every_replica: false }, tick));
        self
    }

    /// Declare scheduled work every `interval_ms` that every replica runs for itself: it keeps
    /// state of the replica's own (an index in its cache), which the others cannot build for it.
    pub fn schedule_every_replica(mut self, interval_ms: u64, tick: TickFn) -> Self {
        self.schedule = Some((wit::Schedule { interval_ms, every_replica: true }, tick));
        self
    }

    /// The manifest the host reads at startup.
    pub fn manifest(&self) -> wit::Manifest {
        wit::Manifest {
            name: self.name.into(),
            version: self.version.into(),
            description: self.description.into(),
            routes: self
                .routes
                .iter()
                .map(|r| wit::Route {
                    method: r.method,
                    path: r.path.into(),
                    summary: r.summary.into(),
                    access: r.access,
                    request_schema: (r.request_schema)(),
                    response_schema: (r.response_schema)(),
                })
                .collect(),
            guard: self.guard.as_ref().map(|(spec, _)| wit::GuardSpec {
                order: spec.order,
                methods: spec.methods.clone(),
                path_prefixes: spec.path_prefixes.clone(),
                needs_credentials: spec.needs_credentials,
            }),
            schedule: self.schedule.as_ref().map(|(schedule, _)| *schedule),
            fallback: self.fallback.is_some(),
        }
    }

    /// Dispatch a request to the route the host matched.
    pub fn handle(&self, request: wit::Request) -> wit::Response {
        let found = self
            .routes
            .iter()
            .find(|r| r.method == request.method && r.path == request.route)
            .map(|r| &r.call)
            .or(self.fallback.as_ref().filter(|_| request.route == FALLBACK_ROUTE));
        let request = Request::new(request);
        let result = match found {
            Some(call) => call(&request),
            None => Err(Problem::not_found(format!(
                "pack `{}` has no route {} {}",
                self.name,
                method_name(request.method()),
                request.route()
            ))),
        };
        result.unwrap_or_else(|p| p.into_response(request.request_id(), request.path())).into_wit()
    }

    /// Run the guard; a pack without one lets everything through.
    pub fn guard_request(&self, request: wit::Request) -> wit::Decision {
        let Some((_, guard)) = &self.guard else {
            return proceed();
        };
        let request = Request::new(request);
        guard(&request).unwrap_or_else(|p| {
            wit::Decision::Respond(p.into_response(request.request_id(), request.path()).into_wit())
        })
    }

    /// Run the scheduled work; a pack without a schedule has nothing to do.
    pub fn tick(&self) -> Result<String, String> {
        match &self.schedule {
            Some((_, tick)) => tick(),
            None => Ok(String::new()),
        }
    }
}

/// The decision that lets a request go on unchanged.
pub fn proceed() -> wit::Decision {
    wit::Decision::Proceed(wit::Proceed { principal: None, headers: Vec::new() })
}

/// `GET`, `POST` ... (the wire vocabulary's names).
pub fn method_name(m: Method) -> &'static str {
    valhalla_wire::Method::from(m).as_str()
}

/// `public`, `read`, `write`, `admin` (the wire vocabulary's names).
pub fn access_name(a: Access) -> &'static str {
    valhalla_wire::Access::from(a).as_str()
}

impl From<Method> for valhalla_wire::Method {
    fn from(m: Method) -> Self {
        match m {
            Method::Get => Self::Get,
            Method::Post => Self::Post,
            Method::Put => Self::Put,
            Method::Patch => Self::Patch,
            Method::Delete => Self::Delete,
            Method::Head => Self::Head,
            Method::Options => Self::Options,
        }
    }
}

impl From<Access> for valhalla_wire::Access {
    fn from(a: Access) -> Self {
        match a {
            Access::Public => Self::Public,
            Access::Read => Self::Read,
            Access::Write => Self::Write,
            Access::Admin => Self::Admin,
        }
    }
}
