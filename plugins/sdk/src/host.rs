//! What the host knows: routes, loaded packs, this pack's settings, build info.

use crate::alloc_prelude::*;

use serde::de::DeserializeOwned;

use crate::bindings::valhalla::pack::host as host_api;
use crate::problem::Problem;
pub use host_api::{PackInfo, RouteInfo};

/// Every route the host serves, of every pack.
pub fn routes() -> Vec<RouteInfo> {
    host_api::routes()
}

/// Every pack the host loaded.
pub fn packs() -> Vec<PackInfo> {
    host_api::packs()
}

/// This pack's `[packs.<name>.settings]`, decoded as `T`.
pub fn settings<T: DeserializeOwned>() -> Result<T, Problem> {
    serde_json::from_str(&host_api::settings())
        .map_err(|e| Problem::internal(format!("the pack's settings are invalid: {e}")))
}

/// The host's build information as JSON.
pub fn build_info() -> serde_json::Value {
    serde_json::from_str(&host_api::build_info()).unwrap_or(serde_json::Value::Null)
}
