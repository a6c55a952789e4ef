//! `POST /system/logs/purge` `{before, limit}` → `{removed}`: the oldest entries logged before
//! `before`, at most `limit` (≤ 5000) per call, by the `(logged_at, id)` index. Retention calls
//! it until a call removes fewer than its limit; each call that removes something is audited.

use valhalla_sdk::prelude::*;

pub(crate) fn purge(Valid(body): Valid<db::PurgeRequest>) -> Result<Json<db::Purged>, Problem> {
    let removed = db::purge_oldest("system_logs", "logged_at", &db::Filter::new(), &body)?;
    let purged = db::Purged { removed };
    if removed > 0 {
        log::audit("system_log.purge", "system_logs", Some(&body), Some(&purged));
    }
    Ok(Json(purged))
}
