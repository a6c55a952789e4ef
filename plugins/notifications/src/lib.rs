//! notifications (pack UG): an outbox of messages for webhook, email and SMS channels.
//! `POST /system/notify` stores a message and answers 202 at once; the tick (every half
//! second) delivers it: a webhook signed per Standard Webhooks v1.0.0 so a receiver verifies
//! it with any of that spec's libraries, an email through the host's SMTP capability
//! (`outbound-mail`, `grants.smtp`), an SMS as a Twilio-compatible form POST; retried with
//! backoff and jitter on network errors, timeouts, 408, 429 and 5xx (SMTP: 4xx), honouring
//! `Retry-After`, until the attempt cap, then dead; a final answer (a 4xx, SMTP 5xx) is dead
//! at once; a dead letter can be retried.
//! A 410 Gone turns the channel off. Deliveries are claimed with a lease in the database, so
//! a host killed mid-delivery has the message delivered again (same `webhook-id`) after the
//! lease lapses, and two replicas never deliver one message at once.
//!
//! - [`channels`]: the channels, their URL grant check and write-only secrets, rotation;
//! - [`kinds`]: what a webhook, email or sms channel needs, checked;
//! - [`messages`]: enqueueing (with `dedupe_key`), the lists, retry, the retention purge;
//! - [`delivery`]: the tick: claim, send (sign a webhook; email; sms), record;
//! - [`retry`]: what an answer means, the waits, `Retry-After`;
//! - [`signing`]: `whsec_` secrets and `v1,` signatures;
//! - [`settings`]: the schedule, the attempt cap, the timeout, the grace of a rotation, the
//!   email and SMS defaults.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use valhalla_sdk::prelude::*;

mod channels;
mod delivery;
mod kinds;
mod messages;
mod retry;
mod settings;
mod signing;

/// How often the tick looks for due messages.
const TICK_MS: u64 = 500;

fn pack() -> Pack {
    Pack::new(
        "notifications",
        env!("CARGO_PKG_VERSION"),
        "Webhook, email and SMS notifications from an outbox",
    )
    .post(CHANNELS, Access::Admin, "Create a channel (webhook, email or sms)", channels::create)
    .get(CHANNELS, Access::Read, "List channels (filter by enabled, kind)", channels::list)
    .get(CHANNEL, Access::Read, "Get a channel", channels::get)
    .patch(CHANNEL, Access::Admin, "Change a channel", channels::update)
    .delete(
        CHANNEL,
        Access::Admin,
        "Delete a channel (its undelivered messages become dead letters)",
        channels::delete,
    )
    .post(
        "/system/notify/channels/{id}/rotate-secret",
        Access::Admin,
        "A new signing secret; the old one signs on for the grace period",
        channels::rotate,
    )
    .post("/system/notify", Access::Write, "Enqueue a notification (202)", messages::enqueue)
    .get(
        "/system/notify",
        Access::Read,
        "List notifications, newest first (status, channel, cursor)",
        messages::list,
    )
    .get("/system/notify/{id}", Access::Read, "Get a notification", messages::get)
    .post("/system/notify/{id}/retry", Access::Admin, "Queue a dead letter again", messages::retry)
    .post(
        "/system/notify/purge",
        Access::Admin,
        "Remove delivered notifications delivered before `before` (retention)",
        messages::purge,
    )
    .schedule(TICK_MS, delivery::tick)
}

valhalla_sdk::export_pack!(pack);

const CHANNELS: &str = "/system/notify/channels";
const CHANNEL: &str = "/system/notify/channels/{id}";
