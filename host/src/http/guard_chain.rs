//! The guard chain: packs that declare a guard see matching requests, in the configured order,
//! before the route's pack. A guard lets the request proceed (maybe as a principal, maybe
//! adding response headers) or answers it; a guard that fails, fails closed. A decision the
//! guard memoized is reused without an instance while it holds ([`super::guard_memo`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

use super::guard_memo::{Memoized, Memos, Reuse, Standing};
use super::problem::Problem;
use crate::metrics::GuardDecision;
use crate::runtime::bindings::{Decision, Method, Request, Response};
use crate::runtime::{LoadedPack, PackError};
use crate::telemetry::{self, Span};
use valhalla_wire::Kind;

struct Guard {
    pack: Arc<LoadedPack>,
    memos: Memos,
    methods: Vec<Method>,
    prefixes: Vec<String>,
    /// sees the credential headers (an authenticating guard)
    credentials: bool,
}

impl Guard {
    /// Does this guard want to see `method path`? (If not, it is not instantiated.)
    fn applies(&self, method: Method, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(&method))
            && (self.prefixes.is_empty()
                || self.prefixes.iter().any(|p| path.starts_with(p.as_str())))
    }
}

/// What the chain decided.
pub enum Verdict {
    /// go on to the route, adding these headers to its response
    Proceed(Vec<(String, String)>),
    /// a guard answered
    Respond {
        response: Response,
        headers: Vec<(String, String)>,
    },
}

/// A guard failed: the request is refused.
#[derive(Debug, thiserror::Error)]
#[error("guard failed: {0}")]
pub struct GuardFailed(pub PackError);

/// How the chain's guards were answered: by an instance, or from a memo.
#[derive(Debug, Default)]
pub struct GuardStats {
    /// guard calls made on an instance
    pub called: AtomicU64,
    /// guard decisions reused from a memo, with no instance
    pub reused: AtomicU64,
}

#[derive(Default)]
pub struct GuardChain {
    guards: Vec<Guard>,
    stats: Arc<GuardStats>,
}

impl GuardChain {
    /// The guards of `packs`: those named in `order` first, in that order, then the rest by
    /// their manifest's order.
    pub fn build(packs: &[Arc<LoadedPack>], order: &[String]) -> Self {
        let mut guards: Vec<(usize, i32, Guard)> = packs
            .iter()
            .filter_map(|p| {
                let spec = p.manifest.guard.as_ref()?;
                let rank = order
                    .iter()
                    .position(|n| n == p.name())
                    .unwrap_or(usize::MAX);
                Some((
                    rank,
                    spec.order,
                    Guard {
                        pack: Arc::clone(p),
                        memos: Memos::new(
                            Arc::clone(p.ctx.capabilities.cache.shared()),
                            Arc::clone(p.ctx.capabilities.counters.shared()),
                        ),
                        methods: spec.methods.clone(),
                        prefixes: spec.path_prefixes.clone(),
                        credentials: spec.needs_credentials,
                    },
                ))
            })
            .collect();
        guards.sort_by(|a, b| (a.0, a.1, a.2.pack.name()).cmp(&(b.0, b.1, b.2.pack.name())));
        let chain = Self {
            guards: guards.into_iter().map(|(_, _, g)| g).collect(),
            stats: Arc::default(),
        };
        if !chain.guards.is_empty() {
            tracing::info!(guards = ?chain.names(), "guard chain");
        }
        chain
    }

    /// The chain's counts of guard calls and reused decisions.
    pub fn stats(&self) -> Arc<GuardStats> {
        Arc::clone(&self.stats)
    }

    pub fn names(&self) -> Vec<&str> {
        self.guards.iter().map(|g| g.pack.name()).collect()
    }

    /// Run the guards that apply to `request`; a principal a guard attaches is visible to the
    /// guards after it and to the route. `credentials` (taken out of the request) are shown
    /// to the guards that declared they authenticate, and to no other. In a recorded trace
    /// the chain is a span, and so is each guard that applies (its decision an attribute).
    pub async fn run(
        &self,
        request: &mut Request,
        credentials: &[(String, String)],
    ) -> Result<Verdict, GuardFailed> {
        if self.guards.is_empty() {
            return Ok(Verdict::Proceed(Vec::new()));
        }
        let span = Span::child(|| "guard chain".into(), SpanKind::Internal, Vec::new);
        telemetry::within(span.as_ref(), self.run_chain(request, credentials)).await
    }

    async fn run_chain(
        &self,
        request: &mut Request,
        credentials: &[(String, String)],
    ) -> Result<Verdict, GuardFailed> {
        let mut headers = Vec::new();
        for guard in &self.guards {
            if !guard.applies(request.method, &request.path) {
                continue;
            }
            let mut span = Span::child(
                || format!("guard {}", guard.pack.name()).into(),
                SpanKind::Internal,
                || {
                    vec![KeyValue::new(
                        "valhalla.pack",
                        guard.pack.name().to_string(),
                    )]
                },
            );
            let mut decided = |what: &'static str| {
                if let Some(span) = &mut span {
                    span.set(|| KeyValue::new("valhalla.guard.decision", what));
                }
            };
            // a guard that does not see the credentials cannot depend on them
            let seen: &[(String, String)] = if guard.credentials { credentials } else { &[] };
            match guard.memos.lookup(request, seen).await {
                Some(Reuse::Proceed(memo)) => {
                    decided("reused");
                    apply(request, &mut headers, memo);
                    self.stats.reused.fetch_add(1, Ordering::Relaxed);
                    guard.pack.metrics().guard(GuardDecision::Reused);
                    continue;
                }
                Some(Reuse::Limited(standing)) => {
                    decided("reused_refuse");
                    self.stats.reused.fetch_add(1, Ordering::Relaxed);
                    guard.pack.metrics().guard(GuardDecision::Reused);
                    let response = rate_limited(request, &standing);
                    return Ok(Verdict::Respond { response, headers });
                }
                None => {}
            }
            self.stats.called.fetch_add(1, Ordering::Relaxed);
            let shown = request.headers.len();
            request.headers.extend_from_slice(seen);
            let decision = telemetry::within(span.as_ref(), guard.pack.guard_memo(request)).await;
            request.headers.truncate(shown);
            let outcome = match &decision {
                Ok((Decision::Proceed(_), _)) => "proceed",
                Ok((Decision::Respond(_), _)) => "refuse",
                Err(_) => "failed",
            };
            if let Some(span) = &mut span {
                span.set(|| KeyValue::new("valhalla.guard.decision", outcome));
                if let Err(e) = &decision {
                    span.fail(|| e.to_string());
                }
            }
            match decision {
                Ok((Decision::Proceed(p), memo)) => {
                    guard.pack.metrics().guard(GuardDecision::Proceed);
                    let decided = Memoized {
                        principal: p.principal,
                        headers: p.headers,
                    };
                    if let Some(memo) = memo {
                        guard.memos.store(memo, request, seen, decided.clone());
                    }
                    apply(request, &mut headers, decided);
                }
                Ok((Decision::Respond(response), memo)) => {
                    guard.pack.metrics().guard(GuardDecision::Refuse);
                    // a counting memo holds whatever this request's answer was
                    if let Some(memo) = memo.filter(|m| !m.counters.is_empty()) {
                        let decided = Memoized {
                            principal: None,
                            headers: Vec::new(),
                        };
                        guard.memos.store(memo, request, seen, decided);
                    }
                    return Ok(Verdict::Respond { response, headers });
                }
                Err(e) => return Err(GuardFailed(e)),
            }
        }
        Ok(Verdict::Proceed(headers))
    }
}

/// A guard's go-ahead: its principal (if any) for what follows, its headers for the answer.
fn apply(request: &mut Request, headers: &mut Vec<(String, String)>, decided: Memoized) {
    if let Some(principal) = decided.principal {
        request.principal = Some(principal);
    }
    headers.extend(decided.headers);
}

/// The 429 a counting memo answers, as the rate limit itself would: the problem, when to
/// retry, and the standing of the counter that resets last.
fn rate_limited(request: &Request, standing: &Standing) -> Response {
    let detail = format!(
        "rate limit of {} requests exceeded; retry in {} s",
        standing.limit, standing.reset_seconds
    );
    let problem = Problem::new(Kind::RateLimited, detail);
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/problem+json".to_string(),
        ),
        (
            "Retry-After".to_string(),
            standing.reset_seconds.to_string(),
        ),
    ];
    headers.extend(standing.headers());
    Response {
        status: Kind::RateLimited.status(),
        headers,
        body: problem.at(&request.path, &request.request_id).to_json(),
    }
}
