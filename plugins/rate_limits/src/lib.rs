//! rate_limits (pack UC): rate-limit rules per IP, user or API key, enforced by a guard with
//! the host's shared windowed counters (exact across replicas on PostgreSQL). A request over a rule's limit gets 429 with
//! `Retry-After` and `RateLimit-*` headers; one under it proceeds with the `RateLimit-*` headers
//! of its tightest rule. The enabled rules are cached; every write drops the cache, so a change
//! applies to the very next request.
//!
//! - [`rules`]: the rules, their checks and their cache;
//! - [`snapshots`]: the live counts per rule and subject;
//! - [`guard`]: counting each request and refusing it over a limit.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

mod guard;
mod rules;
mod snapshots;

fn pack() -> Pack {
    Pack::new(
        "rate_limits",
        env!("CARGO_PKG_VERSION"),
        "Rate limits per IP, user or API key (429 + RateLimit-* headers)",
    )
    .post(RULES, Access::Admin, "Create a rate-limit rule", rules::create)
    .get(RULES, Access::Read, "List rate-limit rules (filter by scope, enabled)", rules::list)
    .get(RULE, Access::Read, "Get a rate-limit rule", |Path(id): Path<String>| {
        db::get::<rules::Rule>("id", &id).map(Json)
    })
    .patch(RULE, Access::Admin, "Change a rate-limit rule", rules::update)
    .delete(RULE, Access::Admin, "Delete a rate-limit rule", rules::delete)
    .get(
        "/system/ratelimits/snapshots",
        Access::Read,
        "Current counts per rule and subject",
        snapshots::snapshots,
    )
    .guard(GuardSpec { order: 20, ..GuardSpec::default() }, guard::enforce)
}

valhalla_sdk::export_pack!(pack);

const RULES: &str = "/system/ratelimits/rules";
const RULE: &str = "/system/ratelimits/rules/{id}";
