//! feature_flags (pack UA): typed flags with weighted variants, targeting rules and reusable
//! segments, evaluated by one pure function ([`engine::evaluate`]) that the native route,
//! OFREP and admin_ops share. Reads are served from the host cache; every write invalidates
//! the flag's (or segment's) entry, so the next read sees it.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use valhalla_sdk::prelude::*;

pub mod engine;
mod flags;
pub mod model;
mod ofrep;
pub mod operators;
mod segments;
mod validation;

fn pack() -> Pack {
    Pack::new(
        "feature_flags",
        env!("CARGO_PKG_VERSION"),
        "Feature flags: typed variants, targeting rules, segments",
    )
    .post("/system/features", Access::Write, "Create or update a flag", flags::upsert)
    .get(
        "/system/features",
        Access::Read,
        "List flags (filter by group; offset or cursor)",
        flags::list,
    )
    .post(
        "/system/features/segments",
        Access::Write,
        "Create or update a segment",
        segments::upsert,
    )
    .get("/system/features/segments", Access::Read, "List segments", segments::list)
    .get("/system/features/segments/{key}", Access::Read, "Get a segment", segments::get)
    .delete(
        "/system/features/segments/{key}",
        Access::Write,
        "Delete a segment (409 while a flag uses it)",
        segments::delete,
    )
    .get("/system/features/{key}", Access::Read, "Get a flag", |Path(key): Path<String>| {
        flags::find(&key).map(|flag| Json(flags::Flag::from(flag)))
    })
    .delete("/system/features/{key}", Access::Write, "Delete a flag", flags::delete)
    .get(
        "/system/features/{key}/evaluate",
        Access::Read,
        "Evaluate a flag for a subject (`subject`, `attr.NAME` context attributes)",
        flags::evaluate_query,
    )
    .post(
        "/system/features/{key}/evaluate",
        Access::Read,
        "Evaluate a flag for a context body `{subject, context}`",
        flags::evaluate_body,
    )
    .post(
        "/ofrep/v1/evaluate/flags/{key}",
        Access::Read,
        "OpenFeature (OFREP): evaluate one flag",
        ofrep::evaluate_one,
    )
    .post(
        "/ofrep/v1/evaluate/flags",
        Access::Read,
        "OpenFeature (OFREP): evaluate every flag (ETag, If-None-Match)",
        ofrep::evaluate_all,
    )
}

valhalla_sdk::export_pack!(pack);

/// Bounds how stale another replica's cached flag or segment can be; writes here invalidate
/// at once.
const CACHE_TTL_MS: u64 = 30_000;
