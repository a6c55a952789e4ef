//! Valhalla: an operations API server whose every feature is a WebAssembly pack.
//!
//! # Layout
//! - [`config`]: `config.toml` and `VALHALLA_*` overrides, validated;
//! - [`storage`]: the database (SQLite or PostgreSQL), per-pack migrations, the table sandbox;
//! - [`runtime`]: wasmtime engine, compiled-pack cache, fresh instance per call, deadlines;
//! - [`capabilities`]: the host side of each WIT import (`store`, `cache`, `log`, `host`,
//!   `packs`, `outbound-http`), each with its typed grant, its state, its view of a call and
//!   its own linking;
//! - [`http`]: request ids, the route table, dispatch (route → body → guards → access →
//!   call), in-process pack calls, health, problem+json (kinds from `valhalla_wire`);
//! - [`metrics`]: the process-wide Prometheus recorder and the per-route and per-pack series;
//! - [`telemetry`]: W3C Trace Context in and out, spans, OTLP/HTTP export;
//! - [`services`]: what the capabilities share (database, cache, catalogue);
//! - [`app`]: startup order and graceful shutdown ([`Application`]);
//! - [`reload`]: the served pack set, built at startup and rebuilt without downtime on SIGHUP or
//!   `POST /admin/reload`;
//! - [`scaffold`]: `valhalla new-pack NAME`, the files of a new pack.

pub mod app;
pub mod capabilities;
pub mod config;
pub mod http;
pub mod metrics;
pub mod reload;
pub mod runtime;
pub mod scaffold;
pub mod services;
pub mod storage;
pub mod telemetry;

pub use app::{Application, StartupError};
pub use config::Config;
