//! api_clients (pack UD): API clients with roles and hashed keys, and the authentication guard
//! that turns `X-API-Key` / `Authorization: Bearer` into a principal. A key is shown once, when
//! it is created or rotated; only its SHA-256 digest is stored.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::guard::MemoInput;
use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("api_clients", env!("CARGO_PKG_VERSION"), "API clients, keys and authentication")
        .post(
            "/system/clients",
            Access::Admin,
            "Register a client (the key is shown once)",
            register,
        )
        .get("/system/clients", Access::Admin, "List clients", list)
        .get("/system/clients/{id}", Access::Admin, "Get a client", |Path(id): Path<String>| {
            db::get::<Client>("id", &id).map(Json)
        })
        .post("/system/clients/{id}/activate", Access::Admin, "Activate a client", set_active(true))
        .post(
            "/system/clients/{id}/deactivate",
            Access::Admin,
            "Deactivate a client",
            set_active(false),
        )
        .post("/system/clients/{id}/rotate", Access::Admin, "Replace a client's key", rotate)
        .post(
            "/system/clients/lookup",
            Access::Admin,
            "Find the client of a key (in the body, never the URL)",
            lookup,
        )
        .guard(
            GuardSpec { order: 0, needs_credentials: true, ..GuardSpec::default() },
            authenticate,
        )
}

valhalla_sdk::export_pack!(pack);

const ROLES: [&str; 3] = ["read", "write", "admin"];
/// How long an authenticated key is trusted from the cache (writes invalidate at once).
const AUTH_TTL_MS: u64 = 60_000;
/// How long an unknown key's refusal is remembered.
const NEGATIVE_TTL_MS: u64 = 5_000;

/// `POST /system/clients`: a client to register.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
struct Register {
    #[validate(length(min = 1, max = 128))]
    name: String,
    #[serde(default)]
    #[validate(length(max = 1024))]
    description: Option<String>,
    /// `read`, `write`, `admin`; read only when absent
    #[serde(default = "read_only")]
    #[validate(custom(function = known_roles))]
    #[schemars(length(min = 1), extend("items" = { "type": "string", "enum": ROLES }))]
    roles: Vec<String>,
    /// a key of the caller's choosing (`api_key` in the seeds); generated when absent
    #[serde(default, alias = "api_key")]
    #[validate(custom(function = chosen_key))]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.\-]{8,128}$"))]
    key: Option<String>,
    /// a free-form kind: `service`, `test`, `partner` …
    #[serde(default)]
    #[validate(identifier(max = 64))]
    client_type: Option<String>,
}

valhalla_sdk::defaults! { fn read_only() -> Vec<String> = vec!["read".to_string()]; }

fn known_roles(roles: &[String]) -> Result<(), &'static str> {
    if roles.is_empty() {
        Err("at least one role")
    } else if roles.iter().all(|r| ROLES.contains(&r.as_str())) {
        Ok(())
    } else {
        Err("roles are read, write and admin")
    }
}

/// 8 to 128 of `A-Z a-z 0-9 _ - .` (generated keys have 192 random bits).
fn chosen_key(key: &str) -> Result<(), &'static str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (8..=128).contains(&key.len()) && key.chars().all(allowed) {
        Ok(())
    } else {
        Err("8 to 128 letters, digits, `_`, `-` or `.` (a generated key is stronger: leave it out)")
    }
}

/// A client as stored and answered (without its key's digest).
#[derive(Serialize, Deserialize, JsonSchema)]
struct Client {
    id: String,
    name: String,
    description: Option<String>,
    client_type: Option<String>,
    #[serde(deserialize_with = "db::comma_list")]
    roles: Vec<String>,
    /// the public start of the key, to tell keys apart
    key_prefix: String,
    #[serde(skip_serializing)]
    key_hash: String,
    active: bool,
    created_at: String,
    updated_at: String,
    rotated_at: Option<String>,
}

impl db::Record for Client {
    const TABLE: &'static str = "api_clients";
    const WHAT: &'static str = "client";
}

/// A client with its key, shown this once.
#[derive(Serialize, JsonSchema)]
struct Issued {
    api_key: String,
    client: Client,
}

#[derive(Deserialize)]
struct ListQuery {
    active: Option<bool>,
}

/// A new key: `vk_` and 48 hex characters (192 random bits).
fn new_key() -> String {
    format!("vk_{}", crypto::random_hex(24))
}

/// The public start of a key: `vk_` and 8 characters of a generated key, at most a third of a
/// chosen one.
fn prefix_of(key: &str) -> String {
    let n = if key.starts_with("vk_") { 11 } else { (key.len() / 3).min(8) };
    key.chars().take(n).collect()
}

fn auth_cache_key(hash: &str) -> String {
    format!("key:{hash}")
}

fn register(Valid(body): Valid<Register>) -> Result<Created<Issued>, Problem> {
    let key = body.key.unwrap_or_else(new_key);
    let roles: Vec<_> = ROLES.into_iter().filter(|r| body.roles.iter().any(|x| x == r)).collect();
    let now = clock::now_rfc3339();
    let client: Client = db::insert(params![
        clock::new_id(),
        body.name,
        body.description,
        body.client_type,
        roles.join(","),
        prefix_of(&key),
        crypto::sha256_hex(key.as_bytes()),
        true,
        now.as_str(),
        now,
        None::<String>
    ])?;
    cache::delete(&auth_cache_key(&client.key_hash));
    log::audit_created("client.register", &target(&client), &client);
    Ok(Created(Issued { client, api_key: key }))
}

/// `POST /system/clients/lookup`: a key whose client is wanted.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
struct Lookup {
    #[validate(length(min = 1, max = 256))]
    key: String,
}

/// The client a key belongs to (active or not), by its digest; an unknown key is a 404 that
/// does not repeat it.
fn lookup(Valid(body): Valid<Lookup>) -> Result<Json<Client>, Problem> {
    let hash = crypto::sha256_hex(body.key.as_bytes());
    db::find::<Client>("key_hash", &hash)?
        .map(Json)
        .ok_or_else(|| Problem::not_found("no client has this key"))
}

fn list(Query(q): Query<ListQuery>, page: Page) -> Result<Json<db::List<Client>>, Problem> {
    db::list(db::Filter::new().eq("active", q.active), "created_at, id", page)
}

fn target(client: &Client) -> String {
    format!("api_clients/{}", client.id)
}

/// Run `UPDATE api_clients SET {set} WHERE id = $1` on client `id`; the cached authentication
/// of its key is dropped, so the very next request with it is checked against the database.
fn change(id: &str, action: &str, set: &str, params: Vec<db::Value>) -> Result<Client, Problem> {
    let before: Client = db::get("id", id)?;
    let after: Client = db::update(&format!("{set} WHERE id = $1"), params)?
        .ok_or_else(|| db::not_found::<Client>(id))?;
    cache::delete(&auth_cache_key(&before.key_hash));
    log::audit(action, &target(&after), Some(&before), Some(&after));
    Ok(after)
}

/// `POST /system/clients/{id}/activate` or `/deactivate`.
fn set_active(active: bool) -> impl Fn(Path<String>) -> Result<Json<Client>, Problem> {
    let action = if active { "client.activate" } else { "client.deactivate" };
    move |Path(id)| {
        let params = params![id.as_str(), active, clock::now_rfc3339()];
        change(&id, action, "active = $2, updated_at = $3", params).map(Json)
    }
}

fn rotate(Path(id): Path<String>) -> Result<Json<Issued>, Problem> {
    let key = new_key();
    let set = "key_prefix = $2, key_hash = $3, rotated_at = $4, updated_at = $4";
    let hash = crypto::sha256_hex(key.as_bytes());
    let params = params![id.as_str(), prefix_of(&key), hash, clock::now_rfc3339()];
    let client = change(&id, "client.rotate", set, params)?;
    Ok(Json(Issued { client, api_key: key }))
}

/// What the cache remembers about a key digest: its principal, or that it is not valid.
#[derive(Serialize, Deserialize)]
struct Known {
    principal: Option<(String, String, Vec<String>)>,
}

/// The columns the guard reads of the key's owner.
#[derive(Deserialize)]
struct Owner {
    id: String,
    name: String,
    roles: String,
    active: bool,
}

/// The guard: a presented key becomes a principal, or the request is refused with 401.
/// Without a credential the request goes on anonymously (the host then refuses non-public
/// routes).
fn authenticate(req: &Request) -> Result<guard::Decision, Problem> {
    // The decision depends on the credential and the principal the request arrives with,
    // and on the key's cache entry, which every change to its client deletes.
    let inputs = [MemoInput::Credentials, MemoInput::Principal];
    if req.principal().is_some() {
        guard::memoize(None, &inputs);
        return Ok(guard::proceed()); // the host's bootstrap admin
    }
    let Some(key) = req.credential() else {
        guard::memoize(None, &inputs);
        return Ok(guard::proceed());
    };
    let hash = crypto::sha256_hex(key.as_bytes());
    let known = match cache::get_json::<Known>(&auth_cache_key(&hash)) {
        Some(k) => k,
        None => {
            let sql = "SELECT id, name, roles, active FROM api_clients WHERE key_hash = $1";
            let principal = match db::query_one_as::<Owner>(sql, params![hash.as_str()])? {
                Some(o) if o.active => Some((
                    format!("client:{}", o.id),
                    o.name,
                    o.roles.split(',').map(String::from).collect(),
                )),
                _ => None,
            };
            let ttl = if principal.is_some() { AUTH_TTL_MS } else { NEGATIVE_TTL_MS };
            let known = Known { principal };
            cache::set_json(&auth_cache_key(&hash), &known, Some(ttl));
            known
        }
    };
    let Some((id, name, roles)) = known.principal else {
        let problem =
            Problem::unauthorized("the API key is not valid (unknown, deactivated or rotated)");
        return Ok(guard::refuse(req, problem, [("www-authenticate", "Bearer")]));
    };
    guard::memoize(Some(&auth_cache_key(&hash)), &inputs);
    Ok(guard::proceed_as(guard::principal(id, name, roles)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_show_little_of_a_key() {
        assert_eq!(prefix_of("vk_0123456789abcdef"), "vk_01234567");
        assert_eq!(prefix_of("sk_test_123"), "sk_");
        assert_eq!(prefix_of("my-own-key-that-is-long-enough-1234"), "my-own-k");
    }

    #[test]
    fn roles_and_chosen_keys_are_checked() {
        let roles = |r: &[&str]| known_roles(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(roles(&[]), Err("at least one role"));
        assert_eq!(roles(&["read", "root"]), Err("roles are read, write and admin"));
        assert_eq!(roles(&["admin", "read"]), Ok(()));
        assert!(chosen_key("sk_test_123").is_ok());
        assert!(chosen_key("short").is_err());
        assert!(chosen_key("has spaces in it").is_err());
    }
}
