//! HTTP: the request-id middleware, the route table built from pack manifests, dispatch to
//! packs, the host's health endpoints, and problem+json for every error.

pub mod access;
mod dispatch;
pub mod guard_chain;
mod health;
mod problem;
mod request_id;
pub mod routes;

pub use dispatch::{AppState, PackRouteError, router};
pub use problem::Problem;
pub use request_id::RequestId;
pub use routes::{RouteConflict, RouteTable};
