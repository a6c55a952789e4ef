//! system_config (pack TZ): a registry of non-secret configuration entries. Entries marked
//! `mutable: false` can be neither changed nor deleted.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "system_config",
        env!("CARGO_PKG_VERSION"),
        "Configuration registry (non-secret settings)",
    )
    .post("/system/config", Access::Write, "Create or update a config entry", upsert)
    .get("/system/config", Access::Read, "List config entries (limit/offset or cursor)", list)
    .get("/system/config/{key}", Access::Read, "Get a config entry", |Path(key): Path<String>| {
        find(&key).map(Json)
    })
    .delete("/system/config/{key}", Access::Write, "Delete a config entry", delete)
}

valhalla_sdk::export_pack!(pack);

/// Bounds how stale another replica's cached entry can be; writes here invalidate at once.
const CACHE_TTL_MS: u64 = 30_000;

/// `POST /system/config`: an entry to create or replace.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
struct Upsert {
    #[validate(identifier(max = 128))]
    key: String,
    #[validate(bytes(max = 65536))]
    value: String,
    #[serde(default)]
    #[validate(length(max = 1024))]
    description: Option<String>,
    /// `false` freezes the entry: no later change or delete
    #[serde(default = "valhalla_sdk::yes")]
    mutable: bool,
}

/// A config entry as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Entry {
    id: String,
    key: String,
    value: String,
    description: Option<String>,
    mutable: bool,
    created_at: String,
    updated_at: String,
}

impl db::Record for Entry {
    const TABLE: &'static str = "system_config";
    const WHAT: &'static str = "config entry";
}

fn cache_key(key: &str) -> String {
    format!("entry:{key}")
}

/// The entry, from the host cache when it is there: config is read far more than written.
fn find(key: &str) -> Result<Entry, Problem> {
    cache::read_through(&cache_key(key), CACHE_TTL_MS, || db::find("key", key))?
        .ok_or_else(|| db::not_found::<Entry>(key))
}

fn immutable(key: &str) -> Problem {
    Problem::conflict(format!("config entry `{key}` is immutable"))
}

fn upsert(Valid(body): Valid<Upsert>) -> Result<Json<Entry>, Problem> {
    let before: Option<Entry> = db::find("key", &body.key)?;
    if before.as_ref().is_some_and(|e| !e.mutable) {
        return Err(immutable(&body.key));
    }
    // The WHERE keeps an entry made immutable meanwhile from being overwritten.
    let now = clock::now_rfc3339();
    let after: Entry = db::upsert(
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
         description = excluded.description, mutable = excluded.mutable, \
         updated_at = excluded.updated_at WHERE system_config.mutable = $8",
        params![
            clock::new_id(),
            body.key.as_str(),
            body.value,
            body.description,
            body.mutable,
            now.as_str(),
            now,
            true
        ],
    )?
    .ok_or_else(|| immutable(&body.key))?;
    cache::invalidate(&cache_key(&after.key));
    let target = format!("system_config/{}", after.key);
    log::audit_upsert("config", &target, before.as_ref(), &after);
    Ok(Json(after))
}

/// In key order, by `limit`/`offset` or by `cursor` (the previous page's `next_cursor`).
fn list(page: db::KeyPage) -> Result<Json<db::KeyList<Entry>>, Problem> {
    db::key_page(&db::Filter::new(), "key", page)
}

fn delete(Path(key): Path<String>) -> Result<NoContent, Problem> {
    let entry: Entry = db::get("key", &key)?;
    if !entry.mutable {
        return Err(immutable(&key));
    }
    let deleted = db::execute(
        "DELETE FROM system_config WHERE key = $1 AND mutable = $2",
        params![key.as_str(), true],
    )?;
    cache::invalidate(&cache_key(&key));
    if deleted == 0 {
        return Err(immutable(&key));
    }
    log::audit_deleted("config.delete", &format!("system_config/{key}"), &entry);
    Ok(NoContent)
}
