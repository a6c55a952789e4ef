//! Spans. The current span's W3C context travels with the request's future (a tokio
//! task-local), so the guard chain, the pack calls and the capability calls made inside them
//! (wasmtime polls a host import within the future that called the pack) find their parent
//! without any argument. A span is recorded, and exported, only when an exporter is installed
//! ([`super::export`]) and its trace is sampled; otherwise a child span is not even created
//! ([`Span::child`] answers `None`) and the request pays one span id for its own.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};

use super::export;
use super::traceparent::{SAMPLED, SpanIds};

tokio::task_local! {
    static CURRENT: Current;
}

/// The span a piece of work runs in, as its children need it.
#[derive(Debug, Clone)]
pub struct Current {
    pub ids: SpanIds,
    /// the incoming `tracestate`, passed on unchanged
    pub state: Option<Arc<str>>,
    /// the request's route template, noted by the first pack call of a recorded request
    route: Option<Arc<OnceLock<String>>>,
}

impl Current {
    /// The current span of this task, if it runs in one.
    pub fn get() -> Option<Current> {
        CURRENT.try_with(Clone::clone).ok()
    }

    fn recording(&self) -> bool {
        self.ids.sampled() && export::tracer().is_some()
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
    /// the trace id the next root span takes (see [`export`]'s id generator)
    static NEXT_TRACE: Cell<Option<u128>> = const { Cell::new(None) };
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    let here = &bytes as *const _ as u64;
    u64::from_ne_bytes(bytes) ^ here.rotate_left(32) ^ std::process::id() as u64
}

/// A random non-zero 64-bit id (splitmix64 on a per-thread seed: ids need to be unique, not
/// secret).
pub fn random_id() -> u64 {
    RNG.with(|state| {
        loop {
            let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    })
}

/// A new random trace id.
pub fn random_trace_id() -> u128 {
    (u128::from(random_id()) << 64) | u128::from(random_id())
}

/// The trace id a root span built now must take, if one was chosen.
pub(super) fn take_next_trace() -> Option<u128> {
    NEXT_TRACE.with(Cell::take)
}

/// The ratio sampler's decision for a new trace (the lower 63 bits of its id against the
/// ratio, as OpenTelemetry's `TraceIdRatioBased`).
fn sample(trace_id: u128, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    ((trace_id as u64) >> 1) < bound
}

/// How a span relates to the one before it.
enum Parent<'a> {
    /// a span of another service (an incoming `traceparent`)
    Remote(&'a Current),
    /// a span of this process
    Local(&'a Current),
    /// none: a new trace with this id
    Root(u128),
}

fn otel_ids(ids: &SpanIds) -> (TraceId, SpanId, TraceFlags) {
    (
        TraceId::from(ids.trace_id),
        SpanId::from(ids.span_id),
        TraceFlags::new(ids.flags),
    )
}

/// Start a recorded span on the installed tracer.
fn start(
    name: Cow<'static, str>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    parent: Parent<'_>,
) -> Option<(opentelemetry_sdk::trace::Span, SpanIds)> {
    let exporting = export::tracer()?;
    let builder = exporting
        .tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes);
    let cx = match parent {
        Parent::Remote(c) | Parent::Local(c) => {
            let (trace, span, flags) = otel_ids(&c.ids);
            let state = c
                .state
                .as_deref()
                .and_then(|s| s.parse::<TraceState>().ok())
                .unwrap_or_default();
            let remote = matches!(parent, Parent::Remote(_));
            Context::new()
                .with_remote_span_context(SpanContext::new(trace, span, flags, remote, state))
        }
        Parent::Root(trace_id) => {
            NEXT_TRACE.with(|n| n.set(Some(trace_id)));
            Context::new()
        }
    };
    let span = exporting.tracer.build_with_context(builder, &cx);
    NEXT_TRACE.with(|n| n.set(None));
    let sc = span.span_context();
    let ids = SpanIds {
        trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        flags: sc.trace_flags().to_u8(),
    };
    Some((span, ids))
}

/// One span: its context for its children, and its recording when it is recorded.
pub struct Span {
    current: Current,
    recorded: Option<opentelemetry_sdk::trace::Span>,
}

impl Span {
    /// A request's server span: the child of the caller's `parent` (a valid `traceparent`,
    /// with its `tracestate`), or the root of a new trace `trace_id`. Sampled as the parent
    /// says, else by `[telemetry] sample_ratio`; recorded only when spans are exported.
    pub fn server(
        parent: Option<(SpanIds, Option<Arc<str>>)>,
        trace_id: u128,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Span {
        let (remote, state) = match parent {
            Some((ids, state)) => (Some(ids), state),
            None => (None, None),
        };
        let exporting = export::tracer();
        let sampled = match (&remote, exporting) {
            (_, None) => false,
            (Some(ids), Some(_)) => ids.sampled(),
            (None, Some(e)) => sample(trace_id, e.sample_ratio),
        };
        let unrecorded = |flags| Span {
            current: Current {
                ids: SpanIds {
                    trace_id: remote.map_or(trace_id, |r| r.trace_id),
                    span_id: random_id(),
                    flags,
                },
                state: state.clone(),
                route: None,
            },
            recorded: None,
        };
        if !sampled {
            // not recorded here: the caller's sampling decision goes on unchanged
            return unrecorded(remote.map_or(0, |r| r.flags & SAMPLED));
        }
        let parent_current = remote.map(|ids| Current {
            ids,
            state: state.clone(),
            route: None,
        });
        let parent = match &parent_current {
            Some(c) => Parent::Remote(c),
            None => Parent::Root(trace_id),
        };
        match start("request".into(), SpanKind::Server, attributes(), parent) {
            Some((recorded, ids)) => Span {
                current: Current {
                    ids,
                    state,
                    route: Some(Arc::default()),
                },
                recorded: Some(recorded),
            },
            None => unrecorded(0),
        }
    }

    /// A new trace for work no request started (a scheduled tick); recorded when sampled.
    pub fn root(
        name: impl FnOnce() -> Cow<'static, str>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Span {
        let trace_id = uuid::Uuid::now_v7().as_u128();
        let recorded = export::tracer()
            .filter(|e| sample(trace_id, e.sample_ratio))
            .and_then(|_| {
                start(
                    name(),
                    SpanKind::Internal,
                    attributes(),
                    Parent::Root(trace_id),
                )
            });
        match recorded {
            Some((span, ids)) => Span {
                current: Current {
                    ids,
                    state: None,
                    route: None,
                },
                recorded: Some(span),
            },
            None => Span {
                current: Current {
                    ids: SpanIds {
                        trace_id,
                        span_id: random_id(),
                        flags: 0,
                    },
                    state: None,
                    route: None,
                },
                recorded: None,
            },
        }
    }

    /// A child of the current span, when that one is recorded; `None` (and nothing built,
    /// not even the name or the attributes) otherwise.
    pub fn child(
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<Span> {
        export::tracer()?;
        let parent = Current::get().filter(Current::recording)?;
        let (recorded, ids) = start(name(), kind, attributes(), Parent::Local(&parent))?;
        Some(Span {
            current: Current {
                ids,
                state: parent.state,
                route: parent.route,
            },
            recorded: Some(recorded),
        })
    }

    pub fn ids(&self) -> SpanIds {
        self.current.ids
    }

    pub fn state(&self) -> Option<&Arc<str>> {
        self.current.state.as_ref()
    }

    pub fn is_recording(&self) -> bool {
        self.recorded.is_some()
    }

    /// Run `work` with this span as the current one.
    pub fn scope<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self.current.clone(), work)
    }

    /// Add an attribute (built only when the span is recorded).
    pub fn set(&mut self, attribute: impl FnOnce() -> KeyValue) {
        if let Some(span) = &mut self.recorded {
            span.set_attribute(attribute());
        }
    }

    /// Mark the span failed with a short description (no secrets, no SQL values).
    pub fn fail(&mut self, description: impl FnOnce() -> String) {
        if let Some(span) = &mut self.recorded {
            span.set_status(Status::error(description()));
        }
    }

    /// Rename the span.
    pub fn rename(&mut self, name: impl FnOnce() -> String) {
        if let Some(span) = &mut self.recorded {
            span.update_name(name());
        }
    }

    /// The route template noted for this (server) span's request, if any.
    pub fn route(&self) -> Option<&str> {
        self.current
            .route
            .as_deref()
            .and_then(|r| r.get())
            .map(String::as_str)
    }

    /// Note the current request's route template for its server span (recorded requests
    /// only; the first note wins: in-process calls to other packs come after it).
    pub fn note_route(route: &str) {
        let _ = CURRENT.try_with(|c| {
            if let Some(r) = &c.route {
                r.get_or_init(|| route.to_string());
            }
        });
    }
}

/// Is the current span recorded? (Without an exporter: one atomic load.)
#[inline]
pub fn recording() -> bool {
    export::tracer().is_some() && CURRENT.try_with(|c| c.ids.sampled()).unwrap_or(false)
}

/// `work` in a child span of its own when the current span is recorded (else as it is); an
/// error marks the span failed.
pub async fn traced<T, E: std::fmt::Display>(
    name: impl FnOnce() -> Cow<'static, str>,
    attributes: impl FnOnce() -> Vec<KeyValue>,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let Some(mut span) = Span::child(name, SpanKind::Internal, attributes) else {
        return work.await;
    };
    let result = span.scope(work).await;
    if let Err(e) = &result {
        span.fail(|| e.to_string());
    }
    result
}

/// A pack call's attributes.
pub fn pack_call(pack: &str, export: &'static str, depth: u8) -> Vec<KeyValue> {
    vec![
        KeyValue::new("valhalla.pack", pack.to_string()),
        KeyValue::new("valhalla.pack.export", export),
        KeyValue::new("valhalla.call.depth", i64::from(depth)),
    ]
}

/// Run `work` in `span` when there is one (a recorded span), else as it is.
pub async fn within<F: Future>(span: Option<&Span>, work: F) -> F::Output {
    match span {
        Some(span) => span.scope(work).await,
        None => work.await,
    }
}

/// What an outbound request carries as its `traceparent` and `tracestate`: the client span
/// when it is recorded, else a new span id under the current span (or a new trace when there
/// is none), keeping the current flags.
pub fn outbound_context(span: Option<&Span>) -> (SpanIds, Option<Arc<str>>) {
    if let Some(span) = span {
        return (span.ids(), span.state().cloned());
    }
    match Current::get() {
        Some(c) => (
            SpanIds {
                span_id: random_id(),
                ..c.ids
            },
            c.state,
        ),
        None => (
            SpanIds {
                trace_id: random_trace_id(),
                span_id: random_id(),
                flags: 0,
            },
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_non_zero_and_differ() {
        let a = random_id();
        let b = random_id();
        assert!(a != 0 && b != 0 && a != b);
        assert_ne!(random_trace_id(), random_trace_id());
    }

    #[test]
    fn the_ratio_sampler_keeps_about_its_share() {
        assert!(sample(123, 1.0));
        assert!(!sample(u128::MAX, 0.0));
        let kept = (0..10_000)
            .filter(|_| sample(random_trace_id(), 0.25))
            .count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
    }

    #[tokio::test]
    async fn without_an_exporter_children_are_not_built_and_context_flows() {
        let server = Span::server(None, 7, Vec::new);
        assert!(!server.is_recording());
        assert_eq!(server.ids().trace_id, 7);
        let ids = server.ids();
        let seen = server
            .scope(async {
                assert!(Span::child(|| "x".into(), SpanKind::Internal, Vec::new).is_none());
                outbound_context(None).0
            })
            .await;
        assert_eq!(seen.trace_id, 7);
        assert_ne!(
            seen.span_id, ids.span_id,
            "an outbound call gets a span id of its own"
        );
        assert!(
            Current::get().is_none(),
            "outside the scope there is no current span"
        );
    }
}
