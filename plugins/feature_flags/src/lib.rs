//! feature_flags (pack UA): feature toggles with groups and percentage rollout. Reads are served
//! from the host cache; every write invalidates the flag's entry, so the next read sees it.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "feature_flags",
        env!("CARGO_PKG_VERSION"),
        "Feature flags with percentage rollout",
    )
    .post(
        "/system/features",
        Access::Write,
        "Create or update a flag",
        upsert,
    )
    .get(
        "/system/features",
        Access::Read,
        "List flags (filter by group)",
        list,
    )
    .get("/system/features/{key}", Access::Read, "Get a flag", get)
    .delete(
        "/system/features/{key}",
        Access::Write,
        "Delete a flag",
        delete,
    )
    .get(
        "/system/features/{key}/evaluate",
        Access::Read,
        "Evaluate a flag for a subject",
        evaluate,
    )
}

valhalla_sdk::export_pack!(pack);

const COLUMNS: &str =
    "id, key, enabled, description, flag_group, rollout_percent, created_at, updated_at";
/// Bounds how stale another replica's cached flag can be; writes here invalidate at once.
const CACHE_TTL_MS: u64 = 30_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upsert {
    key: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default = "all")]
    rollout_percent: i64,
}

fn yes() -> bool {
    true
}

fn all() -> i64 {
    100
}

impl Validate for Upsert {
    fn validate(&self, v: &mut Validator) {
        v.identifier("key", &self.key, 128)
            .max_length("description", self.description.as_deref(), 1024)
            .range("rollout_percent", self.rollout_percent, 0, 100);
        if let Some(g) = &self.group {
            v.identifier("group", g, 64);
        }
    }
}

#[derive(Serialize, Deserialize, Clone)]
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

impl Flag {
    fn from_row(row: &Row) -> Result<Self, Problem> {
        Ok(Self {
            id: row.text("id")?,
            key: row.text("key")?,
            enabled: row.bool("enabled")?,
            description: row.opt_text("description")?,
            group: row.opt_text("flag_group")?,
            rollout_percent: row.int("rollout_percent")?,
            created_at: row.text("created_at")?,
            updated_at: row.text("updated_at")?,
        })
    }
}

fn cache_key(key: &str) -> String {
    format!("flag:{key}")
}

fn find_in_db(key: &str) -> Result<Option<Flag>, Problem> {
    let sql = format!("SELECT {COLUMNS} FROM feature_flags WHERE key = $1");
    db::query_one(&sql, params![key])?
        .map(|row| Flag::from_row(&row))
        .transpose()
}

/// The flag, from the cache when it is there.
fn find(key: &str) -> Result<Option<Flag>, Problem> {
    cache::read_through(&cache_key(key), CACHE_TTL_MS, || find_in_db(key))
}

fn not_found(key: &str) -> Problem {
    Problem::not_found(format!("no feature flag `{key}`"))
}

fn upsert(req: &Request) -> Result<Response, Problem> {
    let body: Upsert = req.json()?;
    let before = find_in_db(&body.key)?;
    let sql = format!(
        "INSERT INTO feature_flags ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (key) DO UPDATE SET enabled = excluded.enabled, \
         description = excluded.description, flag_group = excluded.flag_group, \
         rollout_percent = excluded.rollout_percent, updated_at = excluded.updated_at \
         RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            clock::new_id(),
            body.key.as_str(),
            body.enabled,
            body.description,
            body.group,
            body.rollout_percent,
            clock::now_rfc3339()
        ],
    )?
    .ok_or_else(|| Problem::internal("the upsert returned no row"))?;
    let after = Flag::from_row(&row)?;
    cache::invalidate(&cache_key(&after.key));
    log::audit_upsert(
        "flag",
        &format!("feature_flags/{}", after.key),
        before.as_ref(),
        &after,
    );
    Response::ok(&after)
}

fn list(req: &Request) -> Result<Response, Problem> {
    let mut filter = db::Filter::new();
    filter.eq("flag_group", req.query("group"));
    db::list_page(
        "feature_flags",
        COLUMNS,
        &filter,
        "key",
        req.page()?,
        Flag::from_row,
    )
}

fn get(req: &Request) -> Result<Response, Problem> {
    let key = req.param("key")?;
    Response::ok(&find(key)?.ok_or_else(|| not_found(key))?)
}

fn delete(req: &Request) -> Result<Response, Problem> {
    let key = req.param("key")?;
    let before = find_in_db(key)?.ok_or_else(|| not_found(key))?;
    db::execute("DELETE FROM feature_flags WHERE key = $1", params![key])?;
    cache::invalidate(&cache_key(key));
    log::audit::<Flag, ()>(
        "flag.delete",
        &format!("feature_flags/{key}"),
        Some(&before),
        None,
    );
    Response::no_content()
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

fn evaluate(req: &Request) -> Result<Response, Problem> {
    let key = req.param("key")?;
    let flag = find(key)?.ok_or_else(|| not_found(key))?;
    let subject = req.query("subject").filter(|s| !s.is_empty());
    let (enabled, reason) = if !flag.enabled {
        (false, "disabled")
    } else if flag.rollout_percent >= 100 {
        (true, "enabled")
    } else if flag.rollout_percent <= 0 {
        (false, "rollout_zero")
    } else {
        let subject = subject.ok_or_else(|| {
            Problem::invalid_field("subject", "required for a flag with a partial rollout")
        })?;
        if bucket(key, subject) < flag.rollout_percent {
            (true, "in_rollout")
        } else {
            (false, "outside_rollout")
        }
    };
    Response::ok(&serde_json::json!({
        "key": flag.key,
        "subject": subject,
        "enabled": enabled,
        "reason": reason,
        "rollout_percent": flag.rollout_percent,
    }))
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("f", "user-1"), bucket("f", "user-1"));
        let n = 10_000;
        let inside = (0..n)
            .filter(|i| bucket("checkout", &format!("user-{i}")) < 30)
            .count();
        let share = inside as f64 / n as f64;
        assert!((0.28..=0.32).contains(&share), "{share}");
    }
}
