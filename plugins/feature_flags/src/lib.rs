//! feature_flags (pack UA): feature toggles with groups and percentage rollout. Reads are served
//! from the host cache; every write invalidates the flag's entry, so the next read sees it.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

mod ofrep;

fn pack() -> Pack {
    Pack::new("feature_flags", env!("CARGO_PKG_VERSION"), "Feature flags with percentage rollout")
        .post("/system/features", Access::Write, "Create or update a flag", upsert)
        .get(
            "/system/features",
            Access::Read,
            "List flags (filter by group; offset or cursor)",
            list,
        )
        .get("/system/features/{key}", Access::Read, "Get a flag", |Path(key): Path<String>| {
            find(&key).map(Json)
        })
        .delete("/system/features/{key}", Access::Write, "Delete a flag", delete)
        .get(
            "/system/features/{key}/evaluate",
            Access::Read,
            "Evaluate a flag for a subject",
            evaluate,
        )
        .post(
            "/ofrep/v1/evaluate/flags/{key}",
            Access::Read,
            "OpenFeature (OFREP): evaluate one flag",
            ofrep::evaluate_one,
        )
        .post(
            "/ofrep/v1/evaluate/flags",
            Access::Read,
            "OpenFeature (OFREP): evaluate every flag (ETag, If-None-Match)",
            ofrep::evaluate_all,
        )
}

valhalla_sdk::export_pack!(pack);

/// Bounds how stale another replica's cached flag can be; writes here invalidate at once.
const CACHE_TTL_MS: u64 = 30_000;

/// `POST /system/features`: a flag to create or replace.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
struct Upsert {
    #[validate(identifier(max = 128))]
    key: String,
    #[serde(default = "valhalla_sdk::yes")]
    enabled: bool,
    #[serde(default)]
    #[validate(length(max = 1024))]
    description: Option<String>,
    /// the share of subjects the flag is on for, 0..=100
    #[serde(default = "all")]
    #[validate(range(min = 0, max = 100))]
    rollout_percent: i64,
    #[serde(default)]
    #[validate(identifier(max = 64))]
    group: Option<String>,
}

valhalla_sdk::defaults! { fn all() -> i64 = 100; }

/// A flag as stored, cached and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Flag {
    id: String,
    key: String,
    enabled: bool,
    description: Option<String>,
    group: Option<String>,
    rollout_percent: i64,
    created_at: String,
    updated_at: String,
}

/// The flag's `group` is the `flag_group` column (`group` is a word SQL reserves).
impl db::Record for Flag {
    const TABLE: &'static str = "feature_flags";
    const RENAMED: &'static [(&'static str, &'static str)] = &[("group", "flag_group")];
    const WHAT: &'static str = "feature flag";
}

/// `GET /system/features?group=…`
#[derive(Deserialize)]
struct ListQuery {
    group: Option<String>,
}

/// `GET /system/features/{key}/evaluate?subject=…`
#[derive(Deserialize)]
struct Subject {
    subject: Option<String>,
}

/// A flag's answer for one subject.
#[derive(Serialize, JsonSchema)]
struct Evaluation {
    enabled: bool,
    key: String,
    /// `enabled`, `disabled`, `rollout_zero`, `in_rollout` or `outside_rollout`
    reason: &'static str,
    rollout_percent: i64,
    subject: Option<String>,
}

fn cache_key(key: &str) -> String {
    format!("flag:{key}")
}

/// The flag, from the cache when it is there.
fn find(key: &str) -> Result<Flag, Problem> {
    cache::read_through(&cache_key(key), CACHE_TTL_MS, || db::find("key", key))?
        .ok_or_else(|| db::not_found::<Flag>(key))
}

fn upsert(Valid(body): Valid<Upsert>) -> Result<Json<Flag>, Problem> {
    let before: Option<Flag> = db::find("key", &body.key)?;
    let now = clock::now_rfc3339();
    let after: Flag = db::upsert(
        "ON CONFLICT (key) DO UPDATE SET enabled = excluded.enabled, \
         description = excluded.description, flag_group = excluded.flag_group, \
         rollout_percent = excluded.rollout_percent, updated_at = excluded.updated_at",
        params![
            clock::new_id(),
            body.key.as_str(),
            body.enabled,
            body.description,
            body.group,
            body.rollout_percent,
            now.as_str(),
            now
        ],
    )?
    .ok_or_else(|| Problem::internal("the statement returned no row"))?;
    cache::invalidate(&cache_key(&after.key));
    log::audit_upsert("flag", &format!("feature_flags/{}", after.key), before.as_ref(), &after);
    Ok(Json(after))
}

/// In key order, by `limit`/`offset` or by `cursor` (the previous page's `next_cursor`).
fn list(page: db::KeyPage, Query(q): Query<ListQuery>) -> Result<Json<db::KeyList<Flag>>, Problem> {
    db::key_page(db::Filter::new().eq("flag_group", q.group), "key", page)
}

fn delete(Path(key): Path<String>) -> Result<NoContent, Problem> {
    let before: Flag = db::get("key", &key)?;
    db::execute("DELETE FROM feature_flags WHERE key = $1", params![key.as_str()])?;
    cache::invalidate(&cache_key(&key));
    log::audit_deleted("flag.delete", &format!("feature_flags/{key}"), &before);
    Ok(NoContent)
}

/// The subject's bucket 0..100 for `key`: the same subject always lands in the same bucket,
/// and different flags split subjects independently.
fn bucket(key: &str, subject: &str) -> i64 {
    // FNV-1a over key, a separator and subject, then a murmur3 finaliser to spread the bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(subject.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % 100) as i64
}

fn evaluate(
    Path(key): Path<String>,
    Query(q): Query<Subject>,
) -> Result<Json<Evaluation>, Problem> {
    let flag = find(&key)?;
    let subject = q.subject.filter(|s| !s.is_empty());
    let (enabled, reason) = decide(&flag, subject.as_deref()).ok_or_else(|| {
        Problem::invalid_field("subject", "required for a flag with a partial rollout")
    })?;
    let rollout_percent = flag.rollout_percent;
    Ok(Json(Evaluation { enabled, key: flag.key, reason, rollout_percent, subject }))
}

/// Whether `flag` is on for `subject`, and why (`enabled`, `disabled`, `rollout_zero`,
/// `in_rollout`, `outside_rollout`); `None` when a partial rollout has no subject. Both the
/// native evaluation and OFREP decide here, so they agree for every subject.
fn decide(flag: &Flag, subject: Option<&str>) -> Option<(bool, &'static str)> {
    Some(match (flag.enabled, flag.rollout_percent) {
        (false, _) => (false, "disabled"),
        (true, 100..) => (true, "enabled"),
        (true, ..=0) => (false, "rollout_zero"),
        (true, percent) => {
            let inside = bucket(&flag.key, subject?) < percent;
            (inside, if inside { "in_rollout" } else { "outside_rollout" })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("f", "user-1"), bucket("f", "user-1"));
        let n = 10_000;
        let inside = (0..n).filter(|i| bucket("checkout", &format!("user-{i}")) < 30).count();
        let share = inside as f64 / n as f64;
        assert!((0.28..=0.32).contains(&share), "{share}");
    }
}
