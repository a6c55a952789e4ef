//! retention (pack UI): how long each category of data is kept, and a scheduled purge of what
//! is past it. A policy per category (`system_log`, `honeypot_telemetry`,
//! `notifications_delivered`, `exports`) says `retain_days` (1..=3650) and whether it is
//! `enabled`. The tick (every second) claims the categories that are due (a lease per
//! category, so two replicas never purge one at once), and purges each through its owning
//! pack's purge route (`packs` import) in batches until a call removes fewer than the batch,
//! then records the run (removed, batches, duration, error) in `retention_runs` and in the
//! system log; a category runs again `interval_seconds` after its last run.
//!
//! - [`categories`]: the categories and the pack and route that own each;
//! - [`policies`]: the policies and their routes (`POST/GET /system/retention`, `GET …/{category}`);
//! - [`runs`]: the tick: claim, purge in batches, record;
//! - [`settings`]: `interval_seconds`, `batch_size`, `max_run_ms`, `runs_kept_days`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use valhalla_sdk::prelude::*;

mod categories;
mod policies;
mod runs;
mod settings;

/// How often the host ticks the pack: a tick only claims what is due.
const TICK_MS: u64 = 1_000;

fn pack() -> Pack {
    Pack::new("retention", env!("CARGO_PKG_VERSION"), "Retention policies and scheduled purges")
        .post(
            "/system/retention",
            Access::Admin,
            "Create or change a category's retention policy",
            policies::upsert,
        )
        .get("/system/retention", Access::Read, "Every retention policy", policies::list)
        .get(
            "/system/retention/{category}",
            Access::Read,
            "A category's policy and its last run",
            policies::get,
        )
        .schedule(TICK_MS, runs::tick)
}

valhalla_sdk::export_pack!(pack);
