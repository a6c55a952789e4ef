//! `POST /system/security/honeypots/telemetry/purge` `{before, limit}` → `{removed}`: the
//! oldest telemetry records (by `at`, indexed) from before `before`, at most `limit` (≤ 5000)
//! per call. Retention calls it until a call removes fewer than its limit. The honeypots'
//! `hits` counters stay: they count every hit ever recorded.

use valhalla_sdk::prelude::*;

pub(crate) fn purge(Valid(body): Valid<db::PurgeRequest>) -> Result<Json<db::Purged>, Problem> {
    let removed = db::purge_oldest("honeypot_telemetry", "at", &db::Filter::new(), &body)?;
    let purged = db::Purged { removed };
    if removed > 0 {
        log::audit("honeypot.telemetry.purge", "honeypot_telemetry", Some(&body), Some(&purged));
    }
    Ok(Json(purged))
}
