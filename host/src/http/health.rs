//! Host health endpoints: liveness (the process answers) and readiness (the database answers
//! and every enabled pack is loaded). They never depend on a pack.

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
    let body = json!({
        "status": if db_ok { "ready" } else { "not_ready" },
        "checks": {
            "database": { "status": db_detail, "engine": format!("{:?}", app.services.db.engine()).to_lowercase() },
            "packs": packs,
        },
        "uptime_seconds": uptime,
    });
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
