//! security_actions (pack TR): security actions that run only once enough admins approved
//! them. An action (block or unblock an IP, deactivate or activate an API client, switch the
//! maintenance mode) is requested with its params and a reason; admins other than the
//! requester approve it, one approval each, until it has the approvals it needs; one rejection
//! rejects it; an approved action is executed exactly once, in-process by the pack that owns
//! what it changes. A pending action not approved in time expires. Every transition is
//! audited.
//!
//! ```text
//! pending ──approvals──▶ approved ──execute──▶ executing ──▶ executed | failed
//!    │  ▲                    │
//!    │  └──change (PATCH)────┤
//!    ├──reject───────────────┴──▶ rejected
//!    └──not approved in time────▶ expired
//! ```
//!
//! - [`action`]: the action and its approvals as stored, settings, who acts, expiry;
//! - [`params`]: each action type's params, checked and canonical;
//! - [`proposal`]: requesting, listing, reading and changing actions;
//! - [`review`]: approving and rejecting;
//! - [`execute`]: the claim and the call into the owning pack.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

mod action;
mod execute;
mod params;
mod proposal;
mod review;

fn pack() -> Pack {
    Pack::new(
        "security_actions",
        env!("CARGO_PKG_VERSION"),
        "Security actions with approvals (block IPs, deactivate clients, maintenance)",
    )
    .post(ACTIONS, Access::Write, "Request a security action", proposal::create)
    .get(
        ACTIONS,
        Access::Read,
        "List security actions (filter by status, action_type)",
        proposal::list,
    )
    .get(ACTION, Access::Read, "Get a security action", proposal::get)
    .patch(
        ACTION,
        Access::Write,
        "Change an action's params or reason (withdraws approvals)",
        proposal::change,
    )
    .post(
        "/system/security/actions/{id}/approve",
        Access::Admin,
        "Approve an action",
        review::approve,
    )
    .post("/system/security/actions/{id}/reject", Access::Admin, "Reject an action", review::reject)
    .post(
        "/system/security/actions/{id}/execute",
        Access::Admin,
        "Execute an approved action",
        execute::execute,
    )
    .schedule(TICK_MS, action::tick)
}

valhalla_sdk::export_pack!(pack);

const ACTIONS: &str = "/system/security/actions";
const ACTION: &str = "/system/security/actions/{id}";
/// How often overdue actions are expired (reads and actions expire them on sight too).
const TICK_MS: u64 = 5_000;
