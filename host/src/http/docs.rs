//! `GET /docs`: Swagger UI over `/openapi.json`. Its JS and CSS come from the `swagger-ui-dist`
//! crate (Swagger UI's release files, Apache-2.0), compiled into the binary: no CDN, nothing
//! fetched at build or run time. `/docs/{asset}` serves those files.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use swagger_ui_dist::{ApiDefinition, OpenApiSource};
use tower::ServiceExt;

use super::problem::Problem;

pub const PREFIX: &str = "/docs";

fn ui() -> Router {
    static UI: OnceLock<Router> = OnceLock::new();
    UI.get_or_init(|| {
        swagger_ui_dist::generate_routes(ApiDefinition {
            uri_prefix: PREFIX,
            api_definition: OpenApiSource::Uri("/openapi.json"),
            title: Some("Valhalla API"),
        })
    })
    .clone()
}

/// The page or one of its assets; `path` has no trailing slash.
pub async fn serve(method: &http::Method, path: &str) -> Result<Response, Problem> {
    let request = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .body(Body::empty())
        .map_err(|_| Problem::not_found(path))?;
    let response = match ui().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        return Err(Problem::not_found(path));
    }
    Ok(response)
}
