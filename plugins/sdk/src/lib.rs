//! The guest SDK for Valhalla packs: a pack declares its routes and writes handlers and SQL;
//! this crate turns that into the `valhalla:pack` component exports.
//!
//! # Layout
//! - [`pack`]: the [`Pack`] declaration (routes, guard, schedule) and the export glue;
//! - [`handler`] and [`extract`]: handlers take extractors ([`Json`], [`Valid`], [`Path`],
//!   [`Query`], [`ValidQuery`], [`ValidPath`], [`Page`], [`Actor`], the [`Request`]) and
//!   return [`IntoResponse`] values ([`Json`], [`Created`], [`Accepted`], [`NoContent`]);
//! - [`schema`]: each route's request and response JSON Schema, from the handler's types;
//! - [`problem`]: RFC 9457 [`Problem`] errors with field-level details;
//! - [`validate`]: `#[derive(Validate)]` rules and the [`Validator`] they report to;
//! - [`db`]: parameterised SQL through the host's `store`, rows decoded by serde;
//! - [`cache`], [`counters`], [`log`], [`host`], [`outbound`]: the other host capabilities; [`artefacts`]:
//!   large files of the pack's own that the host streams as a route's body;
//! - [`guard`]: guard decisions; [`packs`]: calls into other packs;
//! - [`clock`]: RFC 3339 timestamps and UUID v7 ids; [`crypto`]: random tokens, SHA-256;
//! - [`jobs`]: leases on job rows a tick claims (claim, renew, finish);
//! - [`clients`]: an API client named by id or live key, resolved through api_clients.
//!
//! A pack's `lib.rs` starts with `#![cfg_attr(not(test), no_std)]` (the SDK brings the
//! allocator and the panic handler) and reads like this; its `Cargo.toml` depends on
//! `valhalla-sdk`, `serde` and `schemars` (the derives name them).
//!
//! ```no_run
//! use valhalla_sdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema, Validate)]
//! struct Greeting {
//!     #[validate(length(min = 1, max = 64))]
//!     name: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Hello {
//!     hello: String,
//! }
//!
//! fn pack() -> Pack {
//!     Pack::new("hello", env!("CARGO_PKG_VERSION"), "Says hello")
//!         .get("/hello/{name}", Access::Public, "Greet someone", |Path(name): Path<String>| {
//!             Ok(Json(Hello { hello: name }))
//!         })
//!         .post("/hello", Access::Write, "Greet from a body", |Valid(g): Valid<Greeting>| {
//!             Ok(Created(Hello { hello: g.name }))
//!         })
//! }
//!
//! valhalla_sdk::export_pack!(pack);
//! # fn main() {}
//! ```

#![no_std]
#![warn(missing_docs)]

extern crate alloc;
// The derives name `::valhalla_sdk`, which the SDK's own tests use too.
extern crate self as valhalla_sdk;
// Off wasm (the SDK's and the packs' unit tests), std brings the allocator and panic handler.
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

#[cfg(target_arch = "wasm32")]
mod heap;

/// The `alloc` names std's prelude would give: packs are `no_std`.
pub mod alloc_prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}

/// Generated bindings of the `valhalla:pack` world (one copy of the WIT, in `wit/`).
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "pack",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "valhalla_sdk::bindings",
    });
}

pub mod artefacts;
pub mod cache;
pub mod capability;
pub mod clients;
pub mod clock;
pub mod counters;
pub mod crypto;
pub mod db;
pub mod extract;
pub mod guard;
pub mod handler;
pub mod host;
pub mod jobs;
pub mod log;
pub mod mail;
pub mod outbound;
pub mod pack;
pub mod packs;
mod pairs;
pub mod problem;
pub mod request;
pub mod response;
pub mod schema;
pub mod validate;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use bindings::valhalla::pack::types::{Access, Method};
pub use extract::{
    Actor, FromRequest, Json, Path, Query, Valid, ValidPath, ValidQuery, present, yes,
};
pub use handler::{Accepted, Created, Handler, IntoResponse, NoContent};
pub use pack::{GuardSpec, Pack};
pub use pairs::PairError;
pub use problem::{FieldError, Problem};
pub use request::{Page, Request};
pub use response::Response;
pub use schema::JsonSchema;
/// `#[derive(Validate)]`: per-field `#[validate(...)]` rules (see [`valhalla_sdk_macros`]).
pub use valhalla_sdk_macros::Validate;
pub use validate::{Validate, Validator};

/// Everything a pack usually needs.
pub mod prelude {
    pub use crate::alloc_prelude::*;
    pub use crate::db::{self, Row};
    pub use crate::host::CheckedSettings;
    pub use crate::{
        Accepted, Access, Actor, Created, FieldError, GuardSpec, Json, JsonSchema, Method,
        NoContent, Pack, Page, Path, Problem, Query, Request, Response, Valid, ValidPath,
        ValidQuery, Validate, Validator, cache, capability, clock, counters, crypto, guard, host,
        jobs, log, mail, outbound, packs, params,
    };
    pub use serde::{Deserialize, Serialize};
}

/// Export a pack: `export_pack!(pack)` where `fn pack() -> Pack` declares it.
#[macro_export]
macro_rules! export_pack {
    ($declare:path) => {
        struct __ValhallaPack;

        impl $crate::bindings::Guest for __ValhallaPack {
            fn manifest() -> $crate::bindings::valhalla::pack::types::Manifest {
                $declare().manifest()
            }
            fn handle(
                request: $crate::bindings::valhalla::pack::types::Request,
            ) -> $crate::bindings::valhalla::pack::types::Response {
                $declare().handle(request)
            }
            fn guard(
                request: $crate::bindings::valhalla::pack::types::Request,
            ) -> $crate::bindings::valhalla::pack::types::Decision {
                $declare().guard_request(request)
            }
            fn tick() -> ::core::result::Result<$crate::alloc_prelude::String, $crate::alloc_prelude::String> {
                $declare().tick()
            }
        }

        $crate::bindings::export_bindings!(__ValhallaPack with_types_in $crate::bindings);
    };
}
