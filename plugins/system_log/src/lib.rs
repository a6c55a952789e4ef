//! system_log (pack TV): the unified system log and audit trail. Clients write entries; the
//! host also writes every enabled pack's log lines and audit events into the same table.

#![cfg_attr(not(test), no_std)]

use valhalla_sdk::prelude::*;

fn pack() -> Pack {
    Pack::new("system_log", env!("CARGO_PKG_VERSION"), "System log and audit trail")
        .post("/system/logs", Access::Write, "Write a log entry", write)
        .get("/system/logs", Access::Read, "Search the log", list)
}

valhalla_sdk::export_pack!(pack);

const LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const NOT_A_LEVEL: &str = "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL";

/// `warning` → `WARNING`; anything else is not a level.
fn level(raw: &str) -> Option<&'static str> {
    LEVELS.iter().find(|l| l.eq_ignore_ascii_case(raw)).copied()
}

/// `POST /system/logs`: an entry to write.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    /// DEBUG, INFO (the default), WARNING, ERROR or CRITICAL, in any case
    #[serde(default = "info")]
    #[validate(custom(function = known_level))]
    level: String,
    #[serde(default = "general")]
    #[validate(identifier(max = 64))]
    category: String,
    #[validate(length(min = 1, max = 8192))]
    message: String,
    /// the writing request's id when left out
    #[serde(default)]
    #[validate(length(max = 128))]
    correlation_id: Option<String>,
    /// the principal's id when left out
    #[serde(default)]
    #[validate(length(max = 128))]
    user_id: Option<String>,
    #[serde(default)]
    context: Option<serde_json::Map<String, serde_json::Value>>,
}

valhalla_sdk::defaults! {
    fn info() -> String = "INFO";
    fn general() -> String = "general";
}

fn known_level(raw: &str) -> Result<(), &'static str> {
    level(raw).map(|_| ()).ok_or(NOT_A_LEVEL)
}

/// An entry as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Entry {
    id: String,
    #[serde(rename(deserialize = "logged_at"))]
    timestamp: String,
    level: String,
    category: String,
    message: String,
    correlation_id: Option<String>,
    user_id: Option<String>,
    source: String,
    /// the JSON the entry was written with (older rows: their text as a string)
    #[serde(deserialize_with = "db::json_or_text")]
    context: serde_json::Value,
}

impl db::Record for Entry {
    const TABLE: &'static str = "system_logs";
}

fn write(Valid(body): Valid<NewEntry>, req: Request) -> Result<Created<Entry>, Problem> {
    // An entry without its own correlation id belongs to the request that wrote it.
    let correlation_id = body.correlation_id.unwrap_or_else(|| req.request_id().to_string());
    let user_id = body.user_id.or_else(|| req.principal().map(|p| p.id.clone()));
    let context = serde_json::Value::Object(body.context.unwrap_or_default()).to_string();
    let entry = db::insert(params![
        clock::new_id(),
        clock::now_rfc3339(),
        level(&body.level).unwrap_or("INFO"),
        body.category,
        body.message,
        correlation_id,
        user_id,
        "api",
        context
    ])?;
    Ok(Created(entry))
}

/// `GET /system/logs?level=…&category=…&correlation_id=…&source=…&since=…`
#[derive(Deserialize, Validate)]
struct Search {
    #[validate(custom(function = known_level))]
    level: Option<String>,
    category: Option<String>,
    correlation_id: Option<String>,
    source: Option<String>,
    #[validate(rfc3339)]
    since: Option<String>,
}

fn list(page: Page, ValidQuery(q): ValidQuery<Search>) -> Result<Json<db::List<Entry>>, Problem> {
    // stored in one fixed format, so that text comparison is time comparison
    let since = q.since.and_then(|raw| clock::parse_rfc3339(&raw)).map(clock::rfc3339);
    let mut filter = db::Filter::new();
    filter
        .eq("level", q.level.as_deref().and_then(level))
        .eq("category", q.category)
        .eq("correlation_id", q.correlation_id)
        .eq("source", q.source)
        .push("logged_at", ">=", since);
    db::list(&filter, "logged_at DESC, id DESC", page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_ignore_case_and_a_context_that_is_no_json_reads_as_text() {
        assert_eq!((level("warning"), level("LOUD")), (Some("WARNING"), None));
        let cell = |s: &str| db::json_or_text(serde_json::Value::String(s.into())).unwrap();
        assert_eq!(cell(r#"{"v":2}"#)["v"], 2);
        assert_eq!(cell("not json"), "not json");
    }

    #[test]
    fn search_parameters_are_checked() {
        let search = |level: &str, since: &str| {
            let q = Search {
                level: Some(level.into()),
                category: None,
                correlation_id: None,
                source: None,
                since: Some(since.into()),
            };
            Validator::of(&q)
        };
        assert!(search("warning", "2026-11-23T08:00:00Z").is_ok());
        let p = search("LOUD", "yesterday").unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["level", "since"]);
    }

    #[test]
    fn every_broken_rule_names_its_field_in_order() {
        let body = r#"{"level":"LOUD","category":"a b","message":"","user_id":""}"#;
        let p = Validator::of(&serde_json::from_str::<NewEntry>(body).unwrap()).unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["level", "category", "message"]);
        assert_eq!(p.errors[0].message, NOT_A_LEVEL);
    }
}
