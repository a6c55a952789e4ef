//! The host's metrics endpoints: `GET /metrics` (Prometheus text, from the process-wide
//! recorder in [`crate::metrics`]) and `GET /system/health/metrics` (seed 004's JSON summary:
//! uptime and request counts). Both are public, like the health probes: scrapers carry no key,
//! and neither shows more than route templates, pack names and counts.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::json;

use super::dispatch::{AppState, Served};
use super::problem::Problem;
use valhalla_wire::Kind;

/// The exposition format's content type (text format 0.0.4).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn uptime_seconds(app: &AppState) -> f64 {
    (chrono::Utc::now() - app.services.started_at).num_milliseconds() as f64 / 1000.0
}

/// `GET /metrics`.
pub fn prometheus(app: &AppState) -> Result<Response, Problem> {
    let (in_use, idle) = app.services.db.connections();
    let text = crate::metrics::render(in_use, idle, uptime_seconds(app))
        .ok_or_else(|| Problem::new(Kind::Unavailable, "the metrics recorder is not installed"))?;
    Ok(([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response())
}

/// `GET /system/health/metrics` (and the deprecated `/system-health/metrics`).
pub fn summary(app: &AppState, served: &Served) -> Response {
    let counts = crate::metrics::request_counts();
    let by_class: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("{}xx", i + 1), json!(n)))
        .collect();
    let (in_use, idle) = app.services.db.connections();
    let body = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": app.services.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "uptime_seconds": uptime_seconds(app).floor() as u64,
        "requests": {
            "total": counts.iter().sum::<u64>(),
            "by_status_class": by_class,
            "scope": "process",
        },
        "packs": { "loaded": served.packs.len() },
        "database": { "connections_in_use": in_use, "connections_idle": idle },
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// The pack and route template a request matched, for its series: [`Matched::UNMATCHED`]
/// until the route table finds one.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    pub pack: &'a str,
    pub template: &'a str,
}

impl Matched<'_> {
    pub const UNMATCHED: Matched<'static> = Matched {
        pack: crate::metrics::HOST,
        template: crate::metrics::UNMATCHED,
    };

    /// Count the answered request.
    pub fn record(&self, status: StatusCode, started: std::time::Instant) {
        crate::metrics::request(self.pack, self.template, status.as_u16(), started.elapsed());
    }
}
