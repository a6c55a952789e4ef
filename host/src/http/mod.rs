//! HTTP: the request-id middleware, the route table built from pack manifests, dispatch to
//! packs (and their in-process calls to each other), the host's health endpoints, and
//! problem+json for every error.

pub mod access;
mod body;
mod client_ip;
mod dispatch;
mod docs;
pub mod guard_chain;
mod guard_memo;
mod health;
mod metrics;
mod openapi;
mod pack_calls;
mod problem;
mod reload;
mod request_id;
mod response;
pub mod routes;
pub mod serve;
mod state;

pub use client_ip::TrustedProxies;
pub use dispatch::{AppState, Served, router};
pub use pack_calls::InProcess;
pub use problem::Problem;
pub use request_id::RequestId;
pub use routes::{RouteConflict, RouteTable};
