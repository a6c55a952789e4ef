//! Prometheus metrics: one process-wide recorder (`metrics` + `metrics-exporter-prometheus`,
//! installed once on first use, rendered by the host's `GET /metrics` route, no listener of its
//! own). Handles are registered once per route and per pack, so a request only bumps atomics;
//! the process-wide counts behind the JSON summary (`/system/health/metrics`) live here too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram, counter, describe_counter, describe_gauge, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "valhalla_http_requests_total";
pub const LATENCY: &str = "valhalla_http_request_duration_seconds";
pub const INSTANTIATIONS: &str = "valhalla_pack_instantiations_total";
pub const FAILURES: &str = "valhalla_pack_call_failures_total";
pub const GUARD_DECISIONS: &str = "valhalla_guard_decisions_total";
pub const TICKS: &str = "valhalla_scheduler_ticks_total";
pub const TICK_FAILURES: &str = "valhalla_scheduler_tick_failures_total";
pub const CACHE: &str = "valhalla_cache_lookups_total";
pub const DB_CONNECTIONS: &str = "valhalla_db_connections";
pub const UPTIME: &str = "valhalla_uptime_seconds";
pub const BUILD_INFO: &str = "valhalla_build_info";
pub const RELOADS: &str = "valhalla_config_reloads_total";
pub const CACHE_BUS: &str = "valhalla_cache_bus_events_total";

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Route label of a request no route matched (404, 405): one series, not one per path.
pub const UNMATCHED: &str = "unmatched";
/// Pack label of host routes and unmatched requests.
pub const HOST: &str = "host";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use (`None` if another recorder was installed).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(LATENCY.into()), LATENCY_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder);
    let handle = match installed {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: recorder not installed; /metrics stays empty");
            return None;
        }
    };
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics: no upkeep thread; histograms fold in at scrapes");
    }
    Some(handle)
}

fn describe() {
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by pack, route template and status class"
    );
    metrics::describe_histogram!(
        LATENCY,
        metrics::Unit::Seconds,
        "Time to answer a request, by pack and route template"
    );
    describe_counter!(INSTANTIATIONS, "Fresh pack instances created");
    describe_counter!(
        FAILURES,
        "Pack calls that failed, by kind (trap, deadline, out_of_memory, busy)"
    );
    describe_counter!(
        GUARD_DECISIONS,
        "Guard decisions: proceed, refuse (answered), reused (from a memo)"
    );
    describe_counter!(TICKS, "Scheduled ticks run");
    describe_counter!(
        TICK_FAILURES,
        "Scheduled ticks that failed or reported a failure"
    );
    describe_counter!(CACHE, "Cache reads by pack, hit or miss");
    describe_gauge!(
        DB_CONNECTIONS,
        "Database connections, in use or idle (at scrape time)"
    );
    describe_gauge!(UPTIME, "Seconds since this server started");
    describe_gauge!(BUILD_INFO, "Build information; the value is always 1");
    describe_counter!(
        CACHE_BUS,
        "Cross-replica cache invalidation trouble: listener disconnected (cache cleared), publish failed"
    );
    describe_counter!(
        RELOADS,
        "Configuration reloads (SIGHUP, POST /admin/reload), applied or rejected"
    );
}

/// Process-wide request counts by status class (1xx … 5xx), for the JSON summary.
static CLASSES: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Requests answered so far in this process, by status class `1xx` … `5xx`.
pub fn request_counts() -> [u64; 5] {
    std::array::from_fn(|i| CLASSES[i].load(Ordering::Relaxed))
}

/// A counter registered on its first increment, so a series that never moves is not shown.
#[derive(Default)]
struct Lazy(OnceLock<Counter>);

impl Lazy {
    fn increment(&self, register: impl FnOnce() -> Counter) {
        self.0.get_or_init(register).increment(1);
    }
}

/// One route's series.
struct RouteSeries {
    pack: String,
    route: String,
    by_class: [Lazy; 5],
    latency: Histogram,
}

impl RouteSeries {
    fn new(pack: &str, route: &str) -> Self {
        let latency = histogram!(LATENCY, "pack" => pack.to_string(), "route" => route.to_string());
        Self {
            pack: pack.to_string(),
            route: route.to_string(),
            by_class: Default::default(),
            latency,
        }
    }

    fn record(&self, class: usize, elapsed: Duration) {
        self.by_class[class].increment(|| {
            let status = ["1xx", "2xx", "3xx", "4xx", "5xx"][class];
            counter!(REQUESTS, "pack" => self.pack.clone(), "route" => self.route.clone(), "status" => status)
        });
        self.latency.record(elapsed.as_secs_f64());
    }
}

type Routes = RwLock<HashMap<String, HashMap<String, RouteSeries>>>;
static ROUTES: OnceLock<Routes> = OnceLock::new();

/// Count a request answered `status` after `elapsed`, under its pack and route template
/// ([`HOST`] / [`UNMATCHED`] for the host's own). After a route's first request this is a read
/// lock, two lookups by `&str` and atomic adds: no allocation.
pub fn request(pack: &str, route: &str, status: u16, elapsed: Duration) {
    let class = usize::from(status / 100).clamp(1, 5) - 1;
    CLASSES[class].fetch_add(1, Ordering::Relaxed);
    if handle().is_none() {
        return;
    }
    let routes = ROUTES.get_or_init(Routes::default);
    if let Ok(map) = routes.read()
        && let Some(series) = map.get(pack).and_then(|m| m.get(route))
    {
        series.record(class, elapsed);
        return;
    }
    if let Ok(mut map) = routes.write() {
        let series = map
            .entry(pack.to_string())
            .or_default()
            .entry(route.to_string())
            .or_insert_with(|| RouteSeries::new(pack, route));
        series.record(class, elapsed);
    }
}

/// One pack's series: instantiations from its load on, the others from their first event.
pub struct PackSeries {
    pack: String,
    instantiations: Counter,
    /// by [`Failure`]
    failures: [Lazy; 4],
    /// by [`GuardDecision`]
    decisions: [Lazy; 3],
    ticks: Lazy,
    tick_failures: Lazy,
}

/// How a pack call failed, for [`PackSeries::failed`].
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Trap,
    Deadline,
    OutOfMemory,
    Busy,
}

/// What a guard decided, for [`PackSeries::guard`].
#[derive(Debug, Clone, Copy)]
pub enum GuardDecision {
    Proceed,
    Refuse,
    Reused,
}

impl PackSeries {
    pub fn new(pack: &str) -> Self {
        handle();
        Self {
            pack: pack.to_string(),
            instantiations: counter!(INSTANTIATIONS, "pack" => pack.to_string()),
            failures: Default::default(),
            decisions: Default::default(),
            ticks: Lazy::default(),
            tick_failures: Lazy::default(),
        }
    }

    pub fn instantiated(&self) {
        self.instantiations.increment(1);
    }

    pub fn failed(&self, failure: Failure) {
        let kind = match failure {
            Failure::Trap => "trap",
            Failure::Deadline => "deadline",
            Failure::OutOfMemory => "out_of_memory",
            Failure::Busy => "busy",
        };
        self.failures[failure as usize]
            .increment(|| counter!(FAILURES, "pack" => self.pack.clone(), "kind" => kind));
    }

    pub fn guard(&self, decision: GuardDecision) {
        let label = match decision {
            GuardDecision::Proceed => "proceed",
            GuardDecision::Refuse => "refuse",
            GuardDecision::Reused => "reused",
        };
        self.decisions[decision as usize].increment(
            || counter!(GUARD_DECISIONS, "pack" => self.pack.clone(), "decision" => label),
        );
    }

    /// A tick ran; `ok` false when it failed or reported a failure.
    pub fn ticked(&self, ok: bool) {
        self.ticks
            .increment(|| counter!(TICKS, "pack" => self.pack.clone()));
        if !ok {
            self.tick_failures
                .increment(|| counter!(TICK_FAILURES, "pack" => self.pack.clone()));
        }
    }
}

/// One pack's cache reads.
pub struct CacheSeries {
    hit: Counter,
    miss: Counter,
}

impl CacheSeries {
    pub fn new(pack: &str) -> Self {
        handle();
        let c =
            |result: &'static str| counter!(CACHE, "pack" => pack.to_string(), "result" => result);
        Self {
            hit: c("hit"),
            miss: c("miss"),
        }
    }

    pub fn lookup(&self, hit: bool) {
        if hit { &self.hit } else { &self.miss }.increment(1);
    }
}

/// Something happened to the cross-replica invalidation bus (`disconnected`, `publish_failed`).
pub fn cache_bus(event: &'static str) {
    counter!(CACHE_BUS, "event" => event).increment(1);
}

/// A configuration reload was applied (`true`) or rejected.
pub fn reloaded(applied: bool) {
    let result = if applied { "applied" } else { "rejected" };
    counter!(RELOADS, "result" => result).increment(1);
}

/// Set the scrape-time gauges (database connections, uptime) and render the exposition text.
pub fn render(in_use: usize, idle: usize, uptime_seconds: f64) -> Option<String> {
    let handle = handle()?;
    gauge!(DB_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    gauge!(DB_CONNECTIONS, "state" => "idle").set(idle as f64);
    gauge!(UPTIME).set(uptime_seconds);
    Some(handle.render())
}
