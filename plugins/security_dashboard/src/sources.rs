//! The source packs, asked in-process (`grants.packs`): what each answers, read leniently (a
//! count it does not give is `null`), and a source that is disabled, not granted or failing
//! as the reason its section is unavailable.

use serde_json::Value;
use valhalla_sdk::capability::{self, Error as CallError};
use valhalla_sdk::prelude::*;

/// What a source pack answered to a read, or why it did not.
pub(crate) type Answer = Result<Value, String>;

/// `GET path?query` of `pack`: its JSON body when it answered 2xx, else why not.
pub(crate) fn read(pack: &str, path: &str, query: &[(&str, &str)]) -> Answer {
    match packs::call::<()>(pack, Method::Get, path, query, None) {
        Ok(answer) if answer.ok() => Ok(answer.json()),
        Ok(answer) => Err(failed(pack, answer.status, &answer.json())),
        Err(e) => Err(unreachable(pack, &e)),
    }
}

fn failed(pack: &str, status: u16, body: &Value) -> String {
    match body["detail"].as_str() {
        Some(detail) => format!("{pack} answered {status}: {detail}"),
        None => format!("{pack} answered {status}"),
    }
}

fn unreachable(pack: &str, e: &CallError) -> String {
    match e {
        CallError::Unavailable(_) => format!("{pack} is not available (disabled or not loaded)"),
        CallError::AccessDenied(_) => format!("{pack} is not in this pack's grants.packs"),
        other => format!("{pack}: {}", capability::message(other)),
    }
}

/// A count in a JSON answer: the number at `key`, if it is one.
pub(crate) fn count(body: &Value, key: &str) -> Option<i64> {
    body.get(key).and_then(Value::as_i64)
}

/// The `items` of a list answer (none when it has none).
pub(crate) fn items(body: &Value) -> &[Value] {
    body["items"].as_array().map_or(&[], Vec::as_slice)
}

/// A text field of a JSON object, if it is text.
pub(crate) fn text<'a>(item: &'a Value, key: &str) -> Option<&'a str> {
    item.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failures_say_which_pack_and_why() {
        let body = json!({"detail": "no such thing"});
        assert_eq!(failed("honeypots", 404, &body), "honeypots answered 404: no such thing");
        assert_eq!(failed("honeypots", 500, &Value::Null), "honeypots answered 500");
        let off = unreachable("security_policy", &CallError::Unavailable("x".into()));
        assert!(off.contains("not available"), "{off}");
        let denied = unreachable("security_policy", &CallError::AccessDenied("x".into()));
        assert!(denied.contains("grants.packs"), "{denied}");
        let other = unreachable("a", &CallError::Internal("boom".into()));
        assert_eq!(other, "a: boom");
    }

    #[test]
    fn answers_are_read_leniently() {
        let body = json!({"total": 3, "items": [{"id": "a"}], "x": "3"});
        assert_eq!(
            (count(&body, "total"), count(&body, "x"), count(&body, "y")),
            (Some(3), None, None)
        );
        assert_eq!(items(&body).len(), 1);
        assert!(items(&json!({})).is_empty());
        assert_eq!(text(&items(&body)[0], "id"), Some("a"));
    }
}
