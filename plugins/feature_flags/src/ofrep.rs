//! The OpenFeature Remote Evaluation Protocol (OFREP, open-feature/protocol
//! `service/openapi.yaml`): `POST /ofrep/v1/evaluate/flags/{key}` and the bulk
//! `POST /ofrep/v1/evaluate/flags`, so any OpenFeature SDK's OFREP provider reads these flags.
//!
//! Flags decide through [`crate::flags::decide`] (the evaluator, [`crate::engine::evaluate`]),
//! as the native `/system/features/{key}/evaluate` does: the `targetingKey` is the native
//! `subject` and the other context entries its attributes, so a context gets the same variant
//! and value either way; the reason is OFREP's (`TARGETING_MATCH`, `SPLIT`, `STATIC`,
//! `DISABLED`, `DEFAULT`) and `metadata.rule_id` names the rule that matched. The body is read raw, not through a typed extractor, so a
//! bad body answers OFREP's `{key, errorCode, errorDetails}` rather than problem+json.

use valhalla_sdk::prelude::*;

use serde_json::{Map, Value, json};

use crate::engine::NeedsTargetingKey;
use crate::flags::{Stored, all, decide, find};

/// The most flags one bulk answer carries (in key order).
const BULK_LIMIT: i64 = 10_000;

/// An OFREP error code with its HTTP status.
struct Failure {
    status: u16,
    code: &'static str,
    details: String,
}

impl Failure {
    fn new(status: u16, code: &'static str, details: impl Into<String>) -> Self {
        Self { status, code, details: details.into() }
    }

    /// A store or cache failure: OFREP's `GENERAL`, as a 500.
    fn general(problem: &Problem) -> Self {
        Self::new(500, "GENERAL", problem.detail.clone())
    }

    /// `{key?, errorCode, errorDetails}`, the shape of every OFREP error.
    fn body(&self, key: Option<&str>) -> Value {
        let mut body = json!({"errorCode": self.code, "errorDetails": self.details});
        if let Some(key) = key {
            body["key"] = json!(key);
        }
        body
    }

    fn into_response(self, key: Option<&str>) -> Result<Response, Problem> {
        Response::json(self.status, &self.body(key))
    }
}

/// The evaluation context of a request body: an object, perhaps empty. An empty body or one
/// without `context` is an empty context (providers send `{}` when there is none).
fn context(body: &[u8]) -> Result<Map<String, Value>, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::new(400, "PARSE_ERROR", format!("the body is not JSON: {e}")))?;
    let Value::Object(mut request) = parsed else {
        return Err(Failure::new(400, "GENERAL", "the body must be a JSON object"));
    };
    match request.remove("context") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(context)) => Ok(context),
        Some(_) => Err(Failure::new(400, "INVALID_CONTEXT", "`context` must be a JSON object")),
    }
}

/// The context's `targetingKey` (an empty one is none, as an empty native `subject` is).
fn targeting_key(context: &Map<String, Value>) -> Result<Option<&str>, Failure> {
    match context.get("targetingKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) => Ok(Some(key.as_str()).filter(|k| !k.is_empty())),
        Some(_) => Err(Failure::new(400, "INVALID_CONTEXT", "`targetingKey` must be a string")),
    }
}

/// One flag's OFREP success (the native evaluation's decision, in OFREP's words), or
/// `TARGETING_KEY_MISSING` when a split needs a targeting key the context lacks.
fn evaluation(flag: &Stored, context: &Map<String, Value>) -> Result<Value, Failure> {
    let subject = targeting_key(context)?;
    let def = &flag.definition;
    let decision = decide(def, subject, context)
        .map_err(|problem| Failure::general(&problem))?
        .map_err(|NeedsTargetingKey| {
            Failure::new(
                400,
                "TARGETING_KEY_MISSING",
                format!(
                    "flag `{}` splits subjects by a sticky hash: the context needs a targetingKey",
                    def.key
                ),
            )
        })?;
    let mut metadata = json!({"rollout_percent": def.rollout_percent,
        "valhalla_reason": decision.native, "type": def.flag_type.name()});
    if let Some(group) = &flag.group {
        metadata["group"] = json!(group);
    }
    if let Some(rule) = &decision.rule {
        metadata["rule_id"] = json!(rule);
    }
    Ok(json!({
        "key": def.key,
        "value": decision.value,
        "reason": decision.reason.ofrep(),
        "variant": decision.variant,
        "metadata": metadata,
    }))
}

/// `POST /ofrep/v1/evaluate/flags/{key}`: one flag for the body's context.
pub(crate) fn evaluate_one(Path(key): Path<String>, req: Request) -> Result<Response, Problem> {
    let answer = context(req.body()).and_then(|context| {
        targeting_key(&context)?;
        let flag = find(&key).map_err(|problem| match problem.status {
            404 => Failure::new(404, "FLAG_NOT_FOUND", format!("flag `{key}` was not found")),
            _ => Failure::general(&problem),
        })?;
        evaluation(&flag, &context)
    });
    match answer {
        Ok(success) => Response::ok(&success),
        Err(failure) => failure.into_response(Some(&key)),
    }
}

/// `POST /ofrep/v1/evaluate/flags`: every flag for the body's context, as `{flags: [...]}`
/// (a flag that cannot be evaluated is its error item), with an `ETag` of the answer; a
/// matching `If-None-Match` answers 304.
pub(crate) fn evaluate_all(req: Request) -> Result<Response, Problem> {
    let answer = context(req.body()).and_then(|context| {
        targeting_key(&context)?;
        let flags = all(BULK_LIMIT).map_err(|problem| Failure::general(&problem))?;
        let items = flags.iter().map(|flag| {
            evaluation(flag, &context).unwrap_or_else(|f| f.body(Some(&flag.definition.key)))
        });
        Ok(json!({"flags": items.collect::<Vec<_>>()}))
    });
    let bulk = match answer {
        Ok(bulk) => bulk,
        Err(failure) => return failure.into_response(None),
    };
    let body = serde_json::to_vec(&bulk)
        .map_err(|_| Problem::internal("the answer could not be encoded"))?;
    let etag = format!("\"{}\"", crypto::sha256_hex(&body));
    if req.header("if-none-match").is_some_and(|tags| matches(tags, &etag)) {
        let not_modified = Response { status: 304, headers: Vec::new(), body: Vec::new() };
        return Ok(not_modified.with_header("etag", etag));
    }
    Ok(Response::raw(200, "application/json", body).with_header("etag", etag))
}

/// Whether an `If-None-Match` list (`*`, or tags, weak or strong, comma-separated) names
/// `etag` (weak comparison, as RFC 9110 has it for `If-None-Match`).
fn matches(tags: &str, etag: &str) -> bool {
    tags.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_give_a_context_or_the_ofrep_error() {
        assert!(context(b"").is_ok_and(|c| c.is_empty()));
        assert!(context(b"{}").is_ok_and(|c| c.is_empty()));
        let got = context(br#"{"context": {"targetingKey": "u"}}"#).ok();
        assert_eq!(got.and_then(|c| c.get("targetingKey").cloned()), Some(json!("u")));
        let code = |body: &[u8]| context(body).err().map(|f| f.code);
        assert_eq!(code(b"{nope"), Some("PARSE_ERROR"));
        assert_eq!(code(b"[1]"), Some("GENERAL"));
        assert_eq!(code(br#"{"context": 3}"#), Some("INVALID_CONTEXT"));
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        assert!(matches("\"a\"", "\"a\""));
        assert!(matches("\"b\", W/\"a\"", "\"a\""));
        assert!(matches("*", "\"a\""));
        assert!(!matches("\"b\"", "\"a\""));
    }
}
