//! Host health endpoints: liveness (the process answers) and readiness (the database answers
//! and every enabled pack is loaded; on PostgreSQL, the cache invalidation listener is
//! connected). They never depend on a pack.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use super::dispatch::{AppState, Served};

pub fn live() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub async fn ready(app: &AppState, served: &Served) -> Response {
    let db = tokio::time::timeout(Duration::from_secs(2), app.services.db.ping()).await;
    let (db_ok, db_detail) = match db {
        Ok(Ok(())) => (true, "ok".to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            (false, "unreachable".to_string())
        }
        Err(_) => (false, "timeout".to_string()),
    };
    let packs: serde_json::Map<String, serde_json::Value> = served
        .packs
        .iter()
        .map(|p| (p.name().to_string(), json!("loaded")))
        .collect();
    let uptime = (chrono::Utc::now() - app.services.started_at).num_seconds();
    // replicas on PostgreSQL: this one hears the others' cache invalidations
    let bus = app.services.cache.bus().map(|b| b.listening());
    let ready = db_ok && bus != Some(false);
    let mut checks = json!({
        "database": { "status": db_detail, "engine": format!("{:?}", app.services.db.engine()).to_lowercase() },
        "packs": packs,
    });
    if let Some(listening) = bus {
        checks["cache_invalidations"] =
            json!({ "status": if listening { "listening" } else { "reconnecting" } });
    }
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
        "uptime_seconds": uptime,
        "instance": &*app.services.instance,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
