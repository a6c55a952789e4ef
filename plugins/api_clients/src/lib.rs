//! api_clients (pack UD): API clients with roles and hashed keys, and the authentication guard
//! that turns `X-API-Key` / `Authorization: Bearer` into a principal. A key is shown once, when
//! it is created or rotated; only its SHA-256 digest is stored.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "api_clients",
        env!("CARGO_PKG_VERSION"),
        "API clients, keys and authentication",
    )
    .post(
        "/system/clients",
        Access::Admin,
        "Register a client (the key is shown once)",
        register,
    )
    .get("/system/clients", Access::Admin, "List clients", list)
    .get("/system/clients/{id}", Access::Admin, "Get a client", get)
    .post(
        "/system/clients/{id}/activate",
        Access::Admin,
        "Activate a client",
        activate,
    )
    .post(
        "/system/clients/{id}/deactivate",
        Access::Admin,
        "Deactivate a client",
        deactivate,
    )
    .post(
        "/system/clients/{id}/rotate",
        Access::Admin,
        "Replace a client's key",
        rotate,
    )
    .guard(
        GuardSpec {
            order: 0,
            methods: vec![],
            path_prefixes: vec![],
            needs_credentials: true,
        },
        authenticate,
    )
}

valhalla_sdk::export_pack!(pack);

const COLUMNS: &str = "id, name, description, client_type, roles, key_prefix, key_hash, active, created_at, updated_at, rotated_at";
const ROLES: [&str; 3] = ["read", "write", "admin"];
/// Shortest key a caller may choose (generated keys have 192 random bits).
const MIN_CHOSEN_KEY: usize = 8;
/// How long an authenticated key is trusted from the cache (writes invalidate at once).
const AUTH_TTL_MS: u64 = 60_000;
/// How long an unknown key's refusal is remembered.
const NEGATIVE_TTL_MS: u64 = 5_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    name: String,
    #[serde(default = "read_only")]
    roles: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    /// a key of the caller's choosing (`api_key` in the seeds); generated when absent
    #[serde(default, alias = "api_key")]
    key: Option<String>,
    /// a free-form kind: `service`, `test`, `partner` …
    #[serde(default)]
    client_type: Option<String>,
}

fn read_only() -> Vec<String> {
    vec!["read".into()]
}

impl Validate for Register {
    fn validate(&self, v: &mut Validator) {
        v.length("name", &self.name, 128)
            .max_length("description", self.description.as_deref(), 1024)
            .check(!self.roles.is_empty(), "roles", "at least one role")
            .check(
                self.roles.iter().all(|r| ROLES.contains(&r.as_str())),
                "roles",
                "roles are read, write and admin",
            );
        if let Some(key) = &self.key {
            v.check(
                (MIN_CHOSEN_KEY..=128).contains(&key.len())
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
                "key",
                "8 to 128 letters, digits, `_`, `-` or `.` (a generated key is stronger: leave it out)",
            );
        }
        if let Some(kind) = &self.client_type {
            v.identifier("client_type", kind, 64);
        }
    }
}

#[derive(Serialize, Clone)]
struct Client {
    id: String,
    name: String,
    description: Option<String>,
    client_type: Option<String>,
    roles: Vec<String>,
    key_prefix: String,
    active: bool,
    created_at: String,
    updated_at: String,
    rotated_at: Option<String>,
    #[serde(skip)]
    key_hash: String,
}

impl Client {
    fn from_row(row: &Row) -> Result<Self, Problem> {
        Ok(Self {
            id: row.text("id")?,
            name: row.text("name")?,
            description: row.opt_text("description")?,
            client_type: row.opt_text("client_type")?,
            roles: row
                .text("roles")?
                .split(',')
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect(),
            key_prefix: row.text("key_prefix")?,
            key_hash: row.text("key_hash")?,
            active: row.bool("active")?,
            created_at: row.text("created_at")?,
            updated_at: row.text("updated_at")?,
            rotated_at: row.opt_text("rotated_at")?,
        })
    }
}

/// A new key: `vk_` and 48 hex characters (192 random bits).
fn new_key() -> String {
    format!("vk_{}", crypto::random_hex(24))
}

/// The public start of a key: `vk_` and 8 characters of a generated key, at most a third of a
/// chosen one.
fn prefix_of(key: &str) -> String {
    let n = if key.starts_with("vk_") {
        11
    } else {
        (key.len() / 3).min(8)
    };
    key.chars().take(n).collect()
}

fn auth_cache_key(hash: &str) -> String {
    format!("key:{hash}")
}

fn normalise_roles(roles: &[String]) -> String {
    ROLES
        .iter()
        .filter(|r| roles.iter().any(|x| x == *r))
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

fn find(id: &str) -> Result<Client, Problem> {
    let sql = format!("SELECT {COLUMNS} FROM api_clients WHERE id = $1");
    db::query_one(&sql, params![id])?
        .map(|r| Client::from_row(&r))
        .transpose()?
        .ok_or_else(|| Problem::not_found(format!("no client `{id}`")))
}

fn register(req: &Request) -> Result<Response, Problem> {
    let body: Register = req.json()?;
    let key = body.key.clone().unwrap_or_else(new_key);
    let now = clock::now_rfc3339();
    let sql = format!(
        "INSERT INTO api_clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            clock::new_id(),
            body.name.as_str(),
            body.description,
            body.client_type,
            normalise_roles(&body.roles),
            prefix_of(&key),
            crypto::sha256_hex(key.as_bytes()),
            true,
            now,
            None::<String>
        ],
    )?
    .ok_or_else(|| Problem::internal("the insert returned no row"))?;
    let client = Client::from_row(&row)?;
    cache::delete(&auth_cache_key(&client.key_hash));
    log::audit::<(), _>(
        "client.register",
        &format!("api_clients/{}", client.id),
        None,
        Some(&client),
    );
    Response::created(&serde_json::json!({ "client": client, "api_key": key }))
}

fn list(req: &Request) -> Result<Response, Problem> {
    let mut filter = db::Filter::new();
    filter.eq("active", req.query_as::<bool>("active")?);
    db::list_page(
        "api_clients",
        COLUMNS,
        &filter,
        "created_at, id",
        req.page()?,
        Client::from_row,
    )
}

fn get(req: &Request) -> Result<Response, Problem> {
    Response::ok(&find(req.param("id")?)?)
}

fn set_active(req: &Request, active: bool) -> Result<Response, Problem> {
    let before = find(req.param("id")?)?;
    let sql = format!(
        "UPDATE api_clients SET active = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![before.id.as_str(), active, clock::now_rfc3339()],
    )?
    .ok_or_else(|| Problem::not_found(format!("no client `{}`", before.id)))?;
    let after = Client::from_row(&row)?;
    // the very next request with this key is checked against the database again
    cache::delete(&auth_cache_key(&before.key_hash));
    let action = if active {
        "client.activate"
    } else {
        "client.deactivate"
    };
    log::audit(
        action,
        &format!("api_clients/{}", after.id),
        Some(&before),
        Some(&after),
    );
    Response::ok(&after)
}

fn activate(req: &Request) -> Result<Response, Problem> {
    set_active(req, true)
}

fn deactivate(req: &Request) -> Result<Response, Problem> {
    set_active(req, false)
}

fn rotate(req: &Request) -> Result<Response, Problem> {
    let before = find(req.param("id")?)?;
    let key = new_key();
    let now = clock::now_rfc3339();
    let sql = format!(
        "UPDATE api_clients SET key_prefix = $2, key_hash = $3, rotated_at = $4, updated_at = $4 WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            before.id.as_str(),
            prefix_of(&key),
            crypto::sha256_hex(key.as_bytes()),
            now
        ],
    )?
    .ok_or_else(|| Problem::not_found(format!("no client `{}`", before.id)))?;
    let after = Client::from_row(&row)?;
    cache::delete(&auth_cache_key(&before.key_hash));
    log::audit(
        "client.rotate",
        &format!("api_clients/{}", after.id),
        Some(&before),
        Some(&after),
    );
    Response::ok(&serde_json::json!({ "client": after, "api_key": key }))
}

/// What the cache remembers about a key digest: its principal, or that it is not valid.
#[derive(Serialize, Deserialize)]
struct Known {
    principal: Option<(String, String, Vec<String>)>,
}

fn unauthorized(req: &Request) -> Result<guard::Decision, Problem> {
    let response =
        Problem::unauthorized("the API key is not valid (unknown, deactivated or rotated)")
            .into_response(req.request_id(), req.path())
            .with_header("www-authenticate", "Bearer");
    Ok(guard::respond(response))
}

/// The guard: a presented key becomes a principal, or the request is refused with 401.
/// Without a credential the request goes on anonymously (the host then refuses non-public
/// routes).
fn authenticate(req: &Request) -> Result<guard::Decision, Problem> {
    if req.principal().is_some() {
        return Ok(guard::proceed()); // the host's bootstrap admin
    }
    let Some(key) = req.credential() else {
        return Ok(guard::proceed());
    };
    let hash = crypto::sha256_hex(key.as_bytes());
    let known = match cache::get_json::<Known>(&auth_cache_key(&hash)) {
        Some(k) => k,
        None => {
            let row = db::query_one(
                "SELECT id, name, roles, active FROM api_clients WHERE key_hash = $1",
                params![hash.as_str()],
            )?;
            let principal = match row {
                Some(r) if r.bool("active")? => Some((
                    format!("client:{}", r.text("id")?),
                    r.text("name")?,
                    r.text("roles")?.split(',').map(String::from).collect(),
                )),
                _ => None,
            };
            let ttl = if principal.is_some() {
                AUTH_TTL_MS
            } else {
                NEGATIVE_TTL_MS
            };
            let known = Known { principal };
            cache::set_json(&auth_cache_key(&hash), &known, Some(ttl));
            known
        }
    };
    match known.principal {
        Some((id, name, roles)) => Ok(guard::proceed_as(guard::principal(id, name, roles))),
        None => unauthorized(req),
    }
}
