//! system_log (pack TV): the unified system log and audit trail. Clients write entries; the
//! host also writes every enabled pack's log lines and audit events into the same table.
//!
//! - [`entries`]: an entry as written and answered, and `POST /system/logs`;
//! - [`search`]: `GET /system/logs`, its filters, keyset (`cursor`) and offset pages, and the
//!   capped `total`;
//! - [`purge`]: `POST /system/logs/purge`, the oldest entries in batches (retention calls it).

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use valhalla_sdk::prelude::*;

mod entries;
mod purge;
mod search;

fn pack() -> Pack {
    Pack::new("system_log", env!("CARGO_PKG_VERSION"), "System log and audit trail")
        .post("/system/logs", Access::Write, "Write a log entry", entries::write)
        .get(
            "/system/logs",
            Access::Read,
            "Search the log (level, category, correlation_id, source, user_id, since, until; \
             cursor or offset pages)",
            search::list,
        )
        .post(
            "/system/logs/purge",
            Access::Admin,
            "Remove the oldest entries before a time, at most `limit` (≤ 5000) per call",
            purge::purge,
        )
}

valhalla_sdk::export_pack!(pack);
