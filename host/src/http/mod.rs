//! HTTP: the request-id middleware, the route table built from pack manifests, dispatch to
//! packs, the host's health endpoints, and problem+json for every error.

mod dispatch;
mod health;
mod problem;
mod request_id;
pub mod routes;

pub use dispatch::{AppState, router};
pub use problem::Problem;
pub use request_id::RequestId;
pub use routes::{RouteConflict, RouteTable};
