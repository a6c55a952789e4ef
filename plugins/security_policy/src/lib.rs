//! security_policy (pack TQ): security policies and their blocklist rules (an address, a
//! network, a principal or an API client), enforced by a guard that answers 403 naming the
//! rule, from an index in the host cache whose cost does not grow with the number of rules.
//!
//! - [`policies`]: policies, enabled or not, enforcing or monitoring;
//! - [`rules`]: the rules, their values, expiries and escalating bans;
//! - [`index`]: the guard's index of the live rules in the host cache;
//! - [`keys`]: the index's lookup keys;
//! - [`guard`]: the check on every request;
//! - [`hits`]: what the guard saw, and the counts;
//! - [`values`], [`settings`]: addresses, networks, durations; the pack's settings.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use valhalla_sdk::prelude::*;

mod guard;
mod hits;
mod index;
mod keys;
mod policies;
mod rules;
mod settings;
mod values;

fn pack() -> Pack {
    Pack::new(
        "security_policy",
        env!("CARGO_PKG_VERSION"),
        "Security policies and the blocklist guard (403 for blocked addresses, networks, principals, API clients)",
    )
    .post(POLICIES, Access::Admin, "Create a security policy", policies::create)
    .get(POLICIES, Access::Read, "List security policies (filter by enabled, mode)", policies::list)
    .get(POLICY, Access::Read, "Get a security policy", |Path(id): Path<String>| {
        db::get::<policies::Policy>("id", &id).map(Json)
    })
    .patch(POLICY, Access::Admin, "Change a security policy", policies::update)
    .delete(POLICY, Access::Admin, "Delete a security policy and its rules", policies::delete)
    .post(BLOCKLIST, Access::Admin, "Add a blocklist rule", rules::create)
    .get(BLOCKLIST, Access::Read, "List blocklist rules (filter by type, value, policy, active)", rules::list)
    .get(RULE, Access::Read, "Get a blocklist rule", rules::get)
    .delete(RULE, Access::Admin, "Delete a blocklist rule", rules::delete)
    .get(
        "/system/security/blocklist/hits",
        Access::Read,
        "Requests the blocklist matched, newest first (filter by since, rule, blocked)",
        hits::list,
    )
    .get("/system/security/summary", Access::Read, "Counts of policies, rules and hits", hits::summary)
    .guard(GuardSpec { order: 10, ..GuardSpec::default() }, guard::check)
    .schedule_every_replica(index::TICK_MS, index::refresh)
}

valhalla_sdk::export_pack!(pack);

const POLICIES: &str = "/system/security/policies";
const POLICY: &str = "/system/security/policies/{id}";
const BLOCKLIST: &str = "/system/security/blocklist";
const RULE: &str = "/system/security/blocklist/{id}";
