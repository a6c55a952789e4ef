//! route_index (pack TY): the live route table, as the host serves it, for discovery.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::pack::{access_name, method_name};
use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "route_index",
        env!("CARGO_PKG_VERSION"),
        "Route index: every route the server serves",
    )
    .get("/debug/routes", Access::Read, "List every route", routes)
}

valhalla_sdk::export_pack!(pack);

/// `GET /debug/routes`: every route, sorted by path and method.
#[derive(Serialize, JsonSchema)]
struct RouteList {
    total: usize,
    routes: Vec<RouteOut>,
}

#[derive(Serialize, JsonSchema)]
struct RouteOut {
    path: String,
    /// one method per entry (`GET`, `POST` …)
    methods: Vec<&'static str>,
    summary: String,
    pack: String,
    /// `public`, `read`, `write` or `admin`
    access: &'static str,
}

/// One entry per route; HEAD and OPTIONS are the host's, not the API's, and are left out.
fn routes() -> Result<Json<RouteList>, Problem> {
    let mut routes: Vec<RouteOut> = host::routes()
        .into_iter()
        .filter(|r| !matches!(r.method, Method::Head | Method::Options))
        .map(|r| RouteOut {
            path: r.path,
            methods: vec![method_name(r.method)],
            summary: r.summary,
            pack: r.pack,
            access: access_name(r.access),
        })
        .collect();
    routes.sort_by(|a, b| a.path.cmp(&b.path).then(a.methods.cmp(&b.methods)));
    Ok(Json(RouteList { total: routes.len(), routes }))
}
