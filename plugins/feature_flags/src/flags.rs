//! Flag routes: upsert (with variants and rules, checked and audited), list, get, delete, and
//! the native evaluation (`GET …/evaluate?subject=&attr.NAME=`, or `POST` a context body).

use valhalla_sdk::prelude::*;

use serde_json::{Map, Value};

use crate::engine::{self, Decision, NeedsTargetingKey, Segments};
use crate::model::{Definition, FlagType, Rule, Variant};
use crate::operators::Context;
use crate::{CACHE_TTL_MS, segments, validation};

/// `POST /system/features`: a flag to create or replace.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
#[validate(with = definition_checks)]
pub struct Upsert {
    #[validate(identifier(max = 128))]
    key: String,
    #[serde(default = "valhalla_sdk::yes")]
    enabled: bool,
    #[serde(default)]
    #[validate(length(max = 1024))]
    description: Option<String>,
    /// the share of subjects a boolean flag without variants is on for, 0..=100
    #[serde(default = "everyone")]
    #[validate(range(min = 0, max = 100))]
    rollout_percent: i64,
    #[serde(default)]
    #[validate(identifier(max = 64))]
    group: Option<String>,
    /// `boolean` (the default), `string`, `number` or `object`
    #[serde(default, rename = "type")]
    flag_type: FlagType,
    /// the flag's named values (none: a boolean flag's `on` and `off`)
    #[serde(default)]
    variants: Vec<Variant>,
    /// the variant served when no rule matches and the variants have no weights, and when
    /// the flag is disabled (required with variants)
    #[serde(default)]
    default_variant: Option<String>,
    /// targeting rules, tried in order
    #[serde(default)]
    rules: Vec<Rule>,
}

valhalla_sdk::defaults! { fn everyone() -> i64 = 100; }

impl Upsert {
    fn definition(&self) -> Definition {
        let rules = self.rules.iter().enumerate();
        Definition {
            key: self.key.clone(),
            enabled: self.enabled,
            rollout_percent: self.rollout_percent,
            flag_type: self.flag_type,
            variants: self.variants.clone(),
            default_variant: self.default_variant.clone(),
            // every stored rule has its id: `rule-{n}` in order unless given
            rules: rules.map(|(i, r)| Rule { id: Some(r.id_or(i)), ..r.clone() }).collect(),
        }
    }
}

fn definition_checks(body: &Upsert, v: &mut Validator) {
    // `/system/features/segments` is the segments' route, so no flag can be read under it
    v.check(body.key != "segments", "key", "`segments` names the segment routes");
    validation::definition(&body.definition(), v);
}

/// A flag as answered (and audited): one flat object.
#[derive(Serialize, JsonSchema)]
pub struct Flag {
    id: String,
    description: Option<String>,
    group: Option<String>,
    #[serde(flatten)]
    definition: Definition,
    created_at: String,
    updated_at: String,
}

/// A flag as cached and evaluated: the definition nested (decoding a flattened struct would
/// buffer every field first, on every cached read).
#[derive(Serialize, Deserialize, Clone)]
pub struct Stored {
    pub id: String,
    pub description: Option<String>,
    pub group: Option<String>,
    pub definition: Definition,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Stored> for Flag {
    fn from(s: Stored) -> Self {
        let Stored { id, description, group, definition, created_at, updated_at } = s;
        Flag { id, description, group, definition, created_at, updated_at }
    }
}

/// A flag's row: variants and rules are JSON text.
#[derive(Deserialize)]
struct Row {
    id: String,
    key: String,
    enabled: bool,
    description: Option<String>,
    group: Option<String>,
    rollout_percent: i64,
    flag_type: String,
    #[serde(deserialize_with = "db::json_text")]
    variants: Vec<Variant>,
    default_variant: Option<String>,
    #[serde(deserialize_with = "db::json_text")]
    rules: Vec<Rule>,
    created_at: String,
    updated_at: String,
}

/// The flag's `group` is the `flag_group` column (`group` is a word SQL reserves).
impl db::Record for Row {
    const TABLE: &'static str = "feature_flags";
    const RENAMED: &'static [(&'static str, &'static str)] = &[("group", "flag_group")];
    const WHAT: &'static str = "feature flag";
}

impl From<Row> for Stored {
    fn from(r: Row) -> Self {
        let definition = Definition {
            key: r.key,
            enabled: r.enabled,
            rollout_percent: r.rollout_percent,
            flag_type: serde_json::from_value(Value::String(r.flag_type)).unwrap_or_default(),
            variants: r.variants,
            default_variant: r.default_variant,
            rules: r.rules,
        };
        Stored {
            id: r.id,
            description: r.description,
            group: r.group,
            definition,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn cache_key(key: &str) -> String {
    format!("flag:{key}")
}

fn load(key: &str) -> Result<Option<Stored>, Problem> {
    Ok(db::find::<Row>("key", key)?.map(Stored::from))
}

/// The flag, from the cache when it is there.
pub fn find(key: &str) -> Result<Stored, Problem> {
    cache::read_through(&cache_key(key), CACHE_TTL_MS, || load(key))?
        .ok_or_else(|| db::not_found::<Row>(key))
}

/// Every flag in key order, at most `limit` (from the store: the bulk OFREP answer).
pub fn all(limit: i64) -> Result<Vec<Stored>, Problem> {
    let rows: Vec<Row> = db::select("ORDER BY key LIMIT $1", params![limit])?;
    Ok(rows.into_iter().map(Stored::from).collect())
}

/// The segments the flag's rules name, as the evaluator takes them (from the cache).
pub fn segments_of(flag: &Definition) -> Result<Segments, Problem> {
    let mut found = Segments::new();
    for key in flag.rules.iter().flat_map(|r| &r.segments) {
        if !found.contains_key(key)
            && let Some(segment) = segments::find(key)?
        {
            found.insert(key.clone(), segment.constraints);
        }
    }
    Ok(found)
}

/// The flag's answer for a subject and attributes: the one evaluation every door uses.
pub fn decide<'f>(
    flag: &'f Definition,
    subject: Option<&str>,
    attributes: &Map<String, Value>,
) -> Result<Result<Decision<'f>, NeedsTargetingKey>, Problem> {
    let segments = segments_of(flag)?;
    let context = Context { targeting_key: subject, attributes, now_ms: clock::now_ms() };
    Ok(engine::evaluate(flag, &segments, &context))
}

pub fn upsert(Valid(body): Valid<Upsert>) -> Result<Json<Flag>, Problem> {
    let definition = body.definition();
    segments::check_exist(&definition)?;
    let before = load(&body.key)?;
    let now = clock::now_rfc3339();
    let upsert = format!(
        "INSERT INTO feature_flags ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (key) DO UPDATE SET enabled = excluded.enabled, \
         description = excluded.description, flag_group = excluded.flag_group, \
         rollout_percent = excluded.rollout_percent, flag_type = excluded.flag_type, \
         variants = excluded.variants, default_variant = excluded.default_variant, \
         rules = excluded.rules, updated_at = excluded.updated_at",
        db::stored_columns::<Row>()
    );
    let mut statements = vec![db::statement(
        &upsert,
        params![
            clock::new_id(),
            body.key.as_str(),
            body.enabled,
            body.description,
            body.group,
            body.rollout_percent,
            definition.flag_type.name(),
            json(&definition.variants),
            definition.default_variant,
            json(&definition.rules),
            now.as_str(),
            now
        ],
    )];
    statements.extend(segments::link_statements(&definition));
    db::batch(statements)?;
    cache::invalidate(&cache_key(&body.key));
    let after = load(&body.key)?.ok_or_else(|| Problem::internal("the flag was not stored"))?;
    let (before, after) = (before.map(Flag::from), Flag::from(after));
    log::audit_upsert("flag", &format!("feature_flags/{}", body.key), before.as_ref(), &after);
    Ok(Json(after))
}

/// The JSON text a list column stores.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_string())
}

/// `GET /system/features?group=…`
#[derive(Deserialize)]
pub struct ListQuery {
    group: Option<String>,
}

/// In key order, by `limit`/`offset` or by `cursor` (the previous page's `next_cursor`).
pub fn list(
    page: db::KeyPage,
    Query(q): Query<ListQuery>,
) -> Result<Json<db::KeyList<Flag>>, Problem> {
    let Json(rows) = db::key_page::<Row>(db::Filter::new().eq("flag_group", q.group), "key", page)?;
    let items = rows.items.into_iter().map(|r| Flag::from(Stored::from(r))).collect();
    Ok(Json(db::KeyList { items, total: rows.total, next_cursor: rows.next_cursor }))
}

pub fn delete(Path(key): Path<String>) -> Result<NoContent, Problem> {
    let before = load(&key)?.ok_or_else(|| db::not_found::<Row>(&key))?;
    db::batch(vec![
        db::statement(
            "DELETE FROM feature_flag_segments WHERE flag_key = $1",
            params![key.as_str()],
        ),
        db::statement("DELETE FROM feature_flags WHERE key = $1", params![key.as_str()]),
    ])?;
    cache::invalidate(&cache_key(&key));
    log::audit_deleted("flag.delete", &format!("feature_flags/{key}"), &Flag::from(before));
    Ok(NoContent)
}

/// A flag's answer for one context, natively.
#[derive(Serialize, JsonSchema)]
pub struct Evaluation {
    /// a boolean flag's value; for another type, whether the flag is enabled
    enabled: bool,
    key: String,
    /// `enabled`, `disabled`, `rollout_zero`, `in_rollout`, `outside_rollout` (a boolean flag
    /// without variants), `targeting_match`, `targeting_split`, `split`, `default`, `static`
    reason: &'static str,
    rollout_percent: i64,
    subject: Option<String>,
    #[serde(rename = "type")]
    flag_type: FlagType,
    /// the variant's value
    value: Value,
    /// the variant's name
    variant: String,
    /// the id of the rule that matched, if one did
    rule: Option<String>,
}

/// `POST /system/features/{key}/evaluate`: the context as a body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateBody {
    /// the subject (the sticky hash's targeting key)
    #[serde(default)]
    subject: Option<String>,
    /// the context attributes rules compare
    #[serde(default)]
    context: Map<String, Value>,
}

/// `GET /system/features/{key}/evaluate?subject=…&attr.plan=pro`
pub fn evaluate_query(Path(key): Path<String>, req: Request) -> Result<Json<Evaluation>, Problem> {
    let mut subject = None;
    let mut attributes = Map::new();
    for (name, value) in req.query_pairs() {
        if name == "subject" {
            subject = Some(value.clone());
        } else if let Some(attribute) = name.strip_prefix("attr.") {
            attributes.insert(attribute.to_string(), Value::String(value.clone()));
        }
    }
    evaluation(&key, subject, &attributes)
}

pub fn evaluate_body(
    Path(key): Path<String>,
    Json(body): Json<EvaluateBody>,
) -> Result<Json<Evaluation>, Problem> {
    evaluation(&key, body.subject, &body.context)
}

fn evaluation(
    key: &str,
    subject: Option<String>,
    attributes: &Map<String, Value>,
) -> Result<Json<Evaluation>, Problem> {
    let flag = find(key)?;
    let subject = subject.filter(|s| !s.is_empty());
    let d = flag.definition;
    let decision = decide(&d, subject.as_deref(), attributes)?.map_err(|NeedsTargetingKey| {
        Problem::invalid_field("subject", "required for a flag with a partial rollout")
    })?;
    let enabled = match decision.value {
        Value::Bool(on) => on,
        _ => d.enabled,
    };
    Ok(Json(Evaluation {
        enabled,
        reason: decision.native,
        rollout_percent: d.rollout_percent,
        subject,
        flag_type: d.flag_type,
        variant: decision.variant.to_string(),
        rule: decision.rule,
        value: decision.value,
        key: d.key.clone(),
    }))
}
