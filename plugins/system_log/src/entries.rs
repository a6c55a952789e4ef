//! Log entries: the levels, an entry as written (`POST /system/logs`) and as stored and
//! answered.

use valhalla_sdk::prelude::*;

const LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
pub(crate) const NOT_A_LEVEL: &str = "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL";

/// `warning` → `WARNING`; anything else is not a level.
pub(crate) fn level(raw: &str) -> Option<&'static str> {
    LEVELS.iter().find(|l| l.eq_ignore_ascii_case(raw)).copied()
}

pub(crate) fn known_level(raw: &str) -> Result<(), &'static str> {
    level(raw).map(|_| ()).ok_or(NOT_A_LEVEL)
}

/// `POST /system/logs`: an entry to write.
#[derive(Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEntry {
    /// DEBUG, INFO (the default), WARNING, ERROR or CRITICAL, in any case
    #[serde(default = "info")]
    #[validate(custom(function = known_level))]
    #[schemars(regex(
        pattern = r"^([Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn][Ii][Nn][Gg]|[Ee][Rr][Rr][Oo][Rr]|[Cc][Rr][Ii][Tt][Ii][Cc][Aa][Ll])$"
    ))]
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

/// An entry as stored and answered.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Entry {
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

pub(crate) fn write(Valid(body): Valid<NewEntry>, req: Request) -> Result<Created<Entry>, Problem> {
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
    fn every_broken_rule_names_its_field_in_order() {
        let body = r#"{"level":"LOUD","category":"a b","message":"","user_id":""}"#;
        let p = Validator::of(&serde_json::from_str::<NewEntry>(body).unwrap()).unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["level", "category", "message"]);
        assert_eq!(p.errors[0].message, NOT_A_LEVEL);
    }
}
