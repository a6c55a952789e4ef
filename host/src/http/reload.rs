//! `POST /admin/reload` (admin only, through the guard chain like a pack's route): re-read
//! config.toml and answer what changed, or 422 problem+json with the reason the new
//! configuration was rejected — the old one keeps serving.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::dispatch::AppState;
use super::problem::Problem;
use crate::runtime::bindings as wit;
use valhalla_wire::Kind;

pub async fn serve(app: &AppState, request: &wit::Request) -> Response {
    match crate::reload::reload(app).await {
        Ok(report) => {
            let mut body = json!({ "status": "reloaded" });
            if let (Some(out), Ok(serde_json::Value::Object(fields))) =
                (body.as_object_mut(), serde_json::to_value(&report))
            {
                out.extend(fields);
            }
            Json(body).into_response()
        }
        Err(e) => Problem::new(
            Kind::Validation,
            format!("the new configuration was rejected; the running one keeps serving: {e}"),
        )
        .at(&request.path, &request.request_id)
        .into_response(),
    }
}
