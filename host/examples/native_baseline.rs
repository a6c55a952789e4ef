//! The benchmark's native baseline (not part of the product): the system_config lookup written
//! as a plain axum + sqlx handler, against the same SQLite file, same runtime, same pool size,
//! answering what the pack answers (the entry as JSON, or a problem+json 404).
//! `native_baseline <sqlite-url> <bind>` serves `GET /native/config/{key}`.

use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use valhalla_wire::Kind;

/// The host's allocator, so the comparison is of the architecture, not of `malloc`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn lookup(State(pool): State<SqlitePool>, Path(key): Path<String>) -> Response {
    let row = sqlx::query(
        "SELECT id, key, value, description, mutable, created_at, updated_at FROM system_config WHERE key = $1",
    )
    .bind(&key)
    .fetch_optional(&pool)
    .await;
    match row {
        Ok(Some(r)) => {
            let body = serde_json::json!({
                "id": r.get::<String, _>("id"),
                "key": r.get::<String, _>("key"),
                "value": r.get::<String, _>("value"),
                "description": r.get::<Option<String>, _>("description"),
                "mutable": r.get::<bool, _>("mutable"),
                "created_at": r.get::<String, _>("created_at"),
                "updated_at": r.get::<String, _>("updated_at"),
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        // the endpoint's contract, as the pack answers it: an RFC 9457 problem document
        Ok(None) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::json!({
                "type": Kind::NotFound.type_uri(),
                "title": Kind::NotFound.title(),
                "status": Kind::NotFound.status(),
                "detail": format!("no config entry `{key}`"),
                "instance": format!("/system/config/{key}"),
            })
            .to_string(),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "sqlite://valhalla.db".into());
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8001".into());
    let options = SqliteConnectOptions::from_str(&url)?
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await?;
    let app = Router::new()
        .route("/native/config/{key}", get(lookup))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("native baseline on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
