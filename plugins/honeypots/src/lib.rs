//! honeypots (pack TS): decoy paths that no real client asks for. The host sends the pack
//! every request no route matches; a request for an enabled honeypot's path is a hit,
//! recorded with its source address, method, path, query, user agent and headers (never
//! credentials or secret-looking headers), and with `auto_block` its source address goes on
//! security_policy's blocklist for `block_duration_seconds` (default 14400), so its next
//! request gets 403. One source's hits on one decoy are recorded up to
//! `max_records_per_minute` (default 60) a minute. Every such request is answered exactly as the host answers a path it
//! does not serve (404 `no route for {path}`). External sensors report hits through the API.
//!
//! - [`honeypots`]: the honeypots, their checks and routes;
//! - [`paths`]: what a decoy path may be (its own, outside `/system/`);
//! - [`decoys`]: the fallback, the cached decoy paths, recording a hit and blocking;
//! - [`telemetry`]: the hit records, sensor reports, the keyset-paged lists;
//! - [`purge`]: the oldest telemetry in batches (retention calls it);
//! - [`settings`]: `block_duration_seconds`, `max_records_per_minute`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use valhalla_sdk::prelude::*;

mod decoys;
mod honeypots;
mod paths;
mod purge;
mod settings;
mod telemetry;

fn pack() -> Pack {
    Pack::new("honeypots", env!("CARGO_PKG_VERSION"), "Honeypot decoy paths and their telemetry")
        .post(HONEYPOTS, Access::Admin, "Create a honeypot", honeypots::create)
        .get(
            HONEYPOTS,
            Access::Read,
            "List honeypots (filter by enabled, severity)",
            honeypots::list,
        )
        .get(HONEYPOT, Access::Read, "Get a honeypot", honeypots::get)
        .patch(HONEYPOT, Access::Admin, "Change a honeypot", honeypots::update)
        .delete(
            HONEYPOT,
            Access::Admin,
            "Delete a honeypot (its telemetry stays)",
            honeypots::delete,
        )
        .post(
            TELEMETRY,
            Access::Write,
            "Report a hit seen by an external sensor",
            telemetry::report,
        )
        .get(TELEMETRY, Access::Read, "A honeypot's hits, newest first", telemetry::list_one)
        .post(
            "/system/security/honeypots/telemetry/purge",
            Access::Admin,
            "Remove the oldest telemetry before a time, at most `limit` (≤ 5000) per call",
            purge::purge,
        )
        .get(
            "/system/security/telemetry",
            Access::Read,
            "Every honeypot's hits, newest first (since, source_ip, severity)",
            telemetry::list_all,
        )
        .fallback(decoys::serve)
}

valhalla_sdk::export_pack!(pack);

const HONEYPOTS: &str = "/system/security/honeypots";
const HONEYPOT: &str = "/system/security/honeypots/{id}";
const TELEMETRY: &str = "/system/security/honeypots/{id}/telemetry";
