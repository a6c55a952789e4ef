//! exports (pack UH): export jobs. `POST /system/exports` `{source, format, filter?}` queues
//! a job (202) once its source accepted the filter; the scheduled tick runs it, walking the
//! source pack's list through `packs` by keyset and appending each page to an artefact in the
//! host's export directory (`artefacts` grant), so an export of a million rows runs in flat
//! memory; `GET …/{id}/download` answers the finished artefact, streamed by the host.
//!
//! ```text
//! queued ──tick claims──▶ running ──last page──▶ done
//!    │                      │  ╰──source fails──▶ failed
//!    ╰──────cancel──────────┴──────────────────▶ cancelled
//! ```
//!
//! - [`sources`]: the exportable lists, their columns and filters, fetching a page;
//! - [`format`]: json and csv, written a page at a time;
//! - [`job`]: the job as stored, its lease, the settings;
//! - [`api`]: the routes; [`run`]: the tick.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use valhalla_sdk::prelude::*;

mod api;
mod format;
mod job;
mod run;
mod sources;

fn pack() -> Pack {
    Pack::new("exports", env!("CARGO_PKG_VERSION"), "Export jobs: json/csv of a pack's list")
        .post(EXPORTS, Access::Write, "Request an export (202: queued)", api::create)
        .get(EXPORTS, Access::Read, "List exports, newest first (status, source)", api::list)
        .get(EXPORT, Access::Read, "Get an export", api::get)
        .post(
            "/system/exports/{id}/status",
            Access::Admin,
            "Cancel an export ({status: cancelled})",
            api::set_status,
        )
        .get(
            "/system/exports/{id}/download",
            Access::Read,
            "Download a done export (409 before)",
            api::download,
        )
        .post(
            "/system/exports/purge",
            Access::Admin,
            "Remove finished exports before a time, with their files",
            api::purge,
        )
        .schedule(TICK_MS, run::tick)
}

valhalla_sdk::export_pack!(pack);

const EXPORTS: &str = "/system/exports";
const EXPORT: &str = "/system/exports/{id}";
/// How often queued exports are looked for (a running one goes on at every tick).
const TICK_MS: u64 = 1_000;
