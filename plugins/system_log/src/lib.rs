//! system_log (pack TV): the unified system log and audit trail. Clients write entries; the
//! host also writes every enabled pack's log lines and audit events into the same table.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new(
        "system_log",
        env!("CARGO_PKG_VERSION"),
        "System log and audit trail",
    )
    .post("/system/logs", Access::Write, "Write a log entry", write)
    .get("/system/logs", Access::Read, "Search the log", list)
}

valhalla_sdk::export_pack!(pack);

const LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const COLUMNS: &str =
    "id, logged_at, level, category, message, correlation_id, user_id, source, context";

/// `warning` → `WARNING`; anything else is not a level.
fn level(raw: &str) -> Option<&'static str> {
    LEVELS.iter().find(|l| l.eq_ignore_ascii_case(raw)).copied()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    #[serde(default = "info")]
    level: String,
    #[serde(default = "general")]
    category: String,
    message: String,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    context: Option<serde_json::Map<String, serde_json::Value>>,
}

fn info() -> String {
    "INFO".into()
}

fn general() -> String {
    "general".into()
}

impl Validate for NewEntry {
    fn validate(&self, v: &mut Validator) {
        v.check(
            level(&self.level).is_some(),
            "level",
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        )
        .identifier("category", &self.category, 64)
        .length("message", &self.message, 8192)
        .max_length("correlation_id", self.correlation_id.as_deref(), 128)
        .max_length("user_id", self.user_id.as_deref(), 128);
    }
}

#[derive(Serialize)]
struct Entry {
    id: String,
    timestamp: String,
    level: String,
    category: String,
    message: String,
    correlation_id: Option<String>,
    user_id: Option<String>,
    source: String,
    context: serde_json::Value,
}

impl Entry {
    fn from_row(row: &Row) -> Result<Self, Problem> {
        let context = row.text("context")?;
        Ok(Self {
            id: row.text("id")?,
            timestamp: row.text("logged_at")?,
            level: row.text("level")?,
            category: row.text("category")?,
            message: row.text("message")?,
            correlation_id: row.opt_text("correlation_id")?,
            user_id: row.opt_text("user_id")?,
            source: row.text("source")?,
            context: serde_json::from_str(&context).unwrap_or(serde_json::Value::String(context)),
        })
    }
}

fn write(req: &Request) -> Result<Response, Problem> {
    let body: NewEntry = req.json()?;
    let level = level(&body.level).unwrap_or("INFO");
    // An entry without its own correlation id belongs to the request that wrote it.
    let correlation_id = body
        .correlation_id
        .clone()
        .unwrap_or_else(|| req.request_id().to_string());
    let user_id = body
        .user_id
        .clone()
        .or_else(|| req.principal().map(|p| p.id.clone()));
    let context = serde_json::Value::Object(body.context.clone().unwrap_or_default()).to_string();
    let sql = format!(
        "INSERT INTO system_logs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    );
    let row = db::query_one(
        &sql,
        params![
            clock::new_id(),
            clock::now_rfc3339(),
            level,
            body.category.as_str(),
            body.message.as_str(),
            correlation_id,
            user_id,
            "api",
            context
        ],
    )?
    .ok_or_else(|| Problem::internal("the insert returned no row"))?;
    Response::created(&Entry::from_row(&row)?)
}

fn list(req: &Request) -> Result<Response, Problem> {
    let page = req.page()?;
    let level = match req.query("level") {
        None => None,
        Some(raw) => Some(level(raw).ok_or_else(|| {
            Problem::invalid_field(
                "level",
                "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
            )
        })?),
    };
    let since = match req.query("since") {
        None => None,
        Some(raw) => Some(clock::rfc3339(clock::parse_rfc3339(raw).ok_or_else(
            || {
                Problem::invalid_field(
                    "since",
                    "must be an RFC 3339 timestamp like 2026-11-23T08:00:00Z",
                )
            },
        )?)),
    };
    let mut filter = db::Filter::new();
    filter
        .eq("level", level)
        .eq("category", req.query("category"))
        .eq("correlation_id", req.query("correlation_id"))
        .eq("source", req.query("source"))
        .push("logged_at", ">=", since);
    db::list_page(
        "system_logs",
        COLUMNS,
        &filter,
        "logged_at DESC, id DESC",
        page,
        Entry::from_row,
    )
}
