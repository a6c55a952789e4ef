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
    .post(
        "/system/config",
        Access::Write,
        "Create or update a config entry",
        upsert,
    )
    .get("/system/config", Access::Read, "List config entries", list)
    .get(
        "/system/config/{key}",
        Access::Read,
        "Get a config entry",
        get,
    )
    .delete(
        "/system/config/{key}",
        Access::Write,
        "Delete a config entry",
        delete,
    )
}

valhalla_sdk::export_pack!(pack);

const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 64 * 1024;
const MAX_DESCRIPTION: usize = 1024;
const COLUMNS: &str = "id, key, value, description, mutable, created_at, updated_at";
/// Bounds how stale another replica's cached entry can be; writes here invalidate at once.
const CACHE_TTL_MS: u64 = 30_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upsert {
    key: String,
    value: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "yes")]
    mutable: bool,
}

fn yes() -> bool {
    true
}

impl Validate for Upsert {
    fn validate(&self, v: &mut Validator) {
        v.identifier("key", &self.key, MAX_KEY)
            .check(
                self.value.len() <= MAX_VALUE,
                "value",
                "must be at most 65536 bytes",
            )
            .max_length("description", self.description.as_deref(), MAX_DESCRIPTION);
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    id: String,
    key: String,
    value: String,
    description: Option<String>,
    mutable: bool,
    created_at: String,
    updated_at: String,
}

impl Entry {
    fn from_row(row: &Row) -> Result<Self, Problem> {
        Ok(Self {
            id: row.text("id")?,
            key: row.text("key")?,
            value: row.text("value")?,
            description: row.opt_text("description")?,
            mutable: row.bool("mutable")?,
            created_at: row.text("created_at")?,
            updated_at: row.text("updated_at")?,
        })
    }
}

fn find_in_db(key: &str) -> Result<Option<Entry>, Problem> {
    let sql = format!("SELECT {COLUMNS} FROM system_config WHERE key = $1");
    db::query_one(&sql, params![key])?
        .map(|row| Entry::from_row(&row))
        .transpose()
}

fn cache_key(key: &str) -> String {
    format!("entry:{key}")
}

/// The entry, from the host cache when it is there: config is read far more than written.
fn find(key: &str) -> Result<Option<Entry>, Problem> {
    cache::read_through(&cache_key(key), CACHE_TTL_MS, || find_in_db(key))
}

fn immutable(key: &str) -> Problem {
    Problem::conflict(format!("config entry `{key}` is immutable"))
}

fn upsert(req: &Request) -> Result<Response, Problem> {
    let body: Upsert = req.json()?;
    let before = find_in_db(&body.key)?;
    if before.as_ref().is_some_and(|e| !e.mutable) {
        return Err(immutable(&body.key));
    }
    let now = clock::now_rfc3339();
    // The WHERE keeps an entry made immutable meanwhile from being overwritten.
    let sql = format!(
        "INSERT INTO system_config ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
         description = excluded.description, mutable = excluded.mutable, \
         updated_at = excluded.updated_at WHERE system_config.mutable = $7 \
         RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            clock::new_id(),
            body.key.as_str(),
            body.value,
            body.description,
            body.mutable,
            now,
            true
        ],
    )?
    .ok_or_else(|| immutable(&body.key))?;
    let after = Entry::from_row(&row)?;
    cache::invalidate(&cache_key(&after.key));
    log::audit_upsert(
        "config",
        &format!("system_config/{}", after.key),
        before.as_ref(),
        &after,
    );
    Response::ok(&after)
}

fn list(req: &Request) -> Result<Response, Problem> {
    db::list_page(
        "system_config",
        COLUMNS,
        &db::Filter::new(),
        "key",
        req.page()?,
        Entry::from_row,
    )
}

fn get(req: &Request) -> Result<Response, Problem> {
    let key = req.param("key")?;
    match find(key)? {
        Some(entry) => Response::ok(&entry),
        None => Err(Problem::not_found(format!("no config entry `{key}`"))),
    }
}

fn delete(req: &Request) -> Result<Response, Problem> {
    let key = req.param("key")?;
    let entry =
        find_in_db(key)?.ok_or_else(|| Problem::not_found(format!("no config entry `{key}`")))?;
    if !entry.mutable {
        return Err(immutable(key));
    }
    let deleted = db::execute(
        "DELETE FROM system_config WHERE key = $1 AND mutable = $2",
        params![key, true],
    )?;
    cache::invalidate(&cache_key(key));
    if deleted == 0 {
        return Err(immutable(key));
    }
    log::audit::<Entry, ()>(
        "config.delete",
        &format!("system_config/{key}"),
        Some(&entry),
        None,
    );
    Response::no_content()
}
