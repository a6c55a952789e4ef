//! Segments: named, reusable constraint sets that flag rules refer to by key. Upsert, list,
//! get and delete (409 naming the flags while any rule uses it), every write audited; each
//! segment is read through the host cache, so an edit changes the next evaluation of every
//! flag that uses it.

use valhalla_sdk::prelude::*;

use crate::model::{Constraint, Definition};
use crate::{CACHE_TTL_MS, validation};

/// `POST /system/features/segments`: a segment to create or replace.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = constraint_checks)]
pub struct Upsert {
    #[validate(identifier(max = 64))]
    key: String,
    #[serde(default)]
    #[validate(length(max = 1024))]
    description: Option<String>,
    /// all must hold for a context to be in the segment
    constraints: Vec<Constraint>,
}

fn constraint_checks(body: &Upsert, v: &mut Validator) {
    validation::constraints(v, "", &body.constraints);
}

/// A segment as answered and cached.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub struct Segment {
    pub id: String,
    pub key: String,
    pub description: Option<String>,
    pub constraints: Vec<Constraint>,
    pub created_at: String,
    pub updated_at: String,
}

/// A segment's row: the constraints are JSON text.
#[derive(Deserialize)]
struct Row {
    id: String,
    key: String,
    description: Option<String>,
    #[serde(deserialize_with = "db::json_text")]
    constraints: Vec<Constraint>,
    created_at: String,
    updated_at: String,
}

impl db::Record for Row {
    const TABLE: &'static str = "feature_segments";
    const WHAT: &'static str = "segment";
}

impl From<Row> for Segment {
    fn from(r: Row) -> Self {
        let Row { id, key, description, constraints, created_at, updated_at } = r;
        Segment { id, key, description, constraints, created_at, updated_at }
    }
}

fn cache_key(key: &str) -> String {
    format!("segment:{key}")
}

fn load(key: &str) -> Result<Option<Segment>, Problem> {
    Ok(db::find::<Row>("key", key)?.map(Segment::from))
}

/// The segment, from the cache when it is there.
pub fn find(key: &str) -> Result<Option<Segment>, Problem> {
    cache::read_through(&cache_key(key), CACHE_TTL_MS, || load(key))
}

/// A 422 naming every `rules[i].segments[j]` that is no stored segment.
pub fn check_exist(flag: &Definition) -> Result<(), Problem> {
    let mut missing = Vec::new();
    for (i, rule) in flag.rules.iter().enumerate() {
        for (j, key) in rule.segments.iter().enumerate() {
            if find(key)?.is_none() {
                let field = format!("rules[{i}].segments[{j}]");
                missing.push(FieldError::new(field, format!("no segment `{key}`")));
            }
        }
    }
    if missing.is_empty() { Ok(()) } else { Err(Problem::validation(missing)) }
}

/// The statements that record which segments the flag's rules use (after its upsert).
pub fn link_statements(flag: &Definition) -> Vec<db::Statement> {
    let key = flag.key.as_str();
    let mut statements =
        vec![db::statement("DELETE FROM feature_flag_segments WHERE flag_key = $1", params![key])];
    let mut linked: Vec<&str> = Vec::new();
    for segment in flag.rules.iter().flat_map(|r| &r.segments) {
        if !linked.contains(&segment.as_str()) {
            linked.push(segment);
            statements.push(db::statement(
                "INSERT INTO feature_flag_segments (flag_key, segment_key) VALUES ($1, $2)",
                params![key, segment.as_str()],
            ));
        }
    }
    statements
}

pub fn upsert(Valid(body): Valid<Upsert>) -> Result<Json<Segment>, Problem> {
    let before = load(&body.key)?;
    let now = clock::now_rfc3339();
    let constraints =
        serde_json::to_string(&body.constraints).map_err(|_| Problem::internal("encoding"))?;
    let row: Option<Row> = db::upsert(
        "ON CONFLICT (key) DO UPDATE SET description = excluded.description, \
         constraints = excluded.constraints, updated_at = excluded.updated_at",
        params![
            clock::new_id(),
            body.key.as_str(),
            body.description,
            constraints,
            now.as_str(),
            now
        ],
    )?;
    let after =
        Segment::from(row.ok_or_else(|| Problem::internal("the statement returned no row"))?);
    cache::invalidate(&cache_key(&after.key));
    log::audit_upsert(
        "segment",
        &format!("feature_flags/segments/{}", after.key),
        before.as_ref(),
        &after,
    );
    Ok(Json(after))
}

/// In key order, by `limit`/`offset` or by `cursor`.
pub fn list(page: db::KeyPage) -> Result<Json<db::KeyList<Segment>>, Problem> {
    let Json(rows) = db::key_page::<Row>(&db::Filter::new(), "key", page)?;
    let items = rows.items.into_iter().map(Segment::from).collect();
    Ok(Json(db::KeyList { items, total: rows.total, next_cursor: rows.next_cursor }))
}

pub fn get(Path(key): Path<String>) -> Result<Json<Segment>, Problem> {
    find(&key)?.map(Json).ok_or_else(|| db::not_found::<Row>(&key))
}

/// The flags whose rules use the segment, in key order.
fn users(key: &str) -> Result<Vec<String>, Problem> {
    let rows = db::query(
        "SELECT flag_key FROM feature_flag_segments WHERE segment_key = $1 ORDER BY flag_key",
        params![key],
    )?;
    rows.iter().map(|r| r.get::<String>("flag_key")).collect()
}

fn in_use(key: &str, flags: &[String]) -> Problem {
    let names: Vec<String> = flags.iter().map(|f| format!("`{f}`")).collect();
    Problem::conflict(format!("segment `{key}` is used by the flags {}", names.join(", ")))
}

pub fn delete(Path(key): Path<String>) -> Result<NoContent, Problem> {
    let before = load(&key)?.ok_or_else(|| db::not_found::<Row>(&key))?;
    let flags = users(&key)?;
    if !flags.is_empty() {
        return Err(in_use(&key, &flags));
    }
    // a flag that took the segment up since is still refused, in the statement itself
    let deleted = db::execute(
        "DELETE FROM feature_segments WHERE key = $1 AND NOT EXISTS \
         (SELECT 1 FROM feature_flag_segments WHERE segment_key = $1)",
        params![key.as_str()],
    )?;
    if deleted == 0 {
        let flags = users(&key)?;
        return Err(if flags.is_empty() {
            db::not_found::<Row>(&key)
        } else {
            in_use(&key, &flags)
        });
    }
    cache::invalidate(&cache_key(&key));
    log::audit_deleted("segment.delete", &format!("feature_flags/segments/{key}"), &before);
    Ok(NoContent)
}
