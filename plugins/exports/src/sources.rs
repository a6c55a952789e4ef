//! What can be exported: a fixed table of sources, each a list route of another pack (called
//! in-process through `packs`, so it answers with its own rules and validation) with the CSV
//! columns of its items and the query parameters it filters by. A source is walked by keyset
//! (`cursor` in, `next_cursor` out); a list that answers no `next_cursor` is walked by
//! `offset` instead (correct while nothing is written to it meanwhile).

use alloc::collections::BTreeMap;

use serde_json::Value;
use valhalla_sdk::capability;
use valhalla_sdk::prelude::*;

/// One exportable list.
pub(crate) struct Source {
    pub name: &'static str,
    pub pack: &'static str,
    pub path: &'static str,
    /// the CSV header: the item fields, in order
    pub columns: &'static [&'static str],
    /// the query parameters `filter` may give
    pub filters: &'static [&'static str],
}

pub(crate) const SOURCES: [Source; 4] = [
    Source {
        name: "system_config",
        pack: "system_config",
        path: "/system/config",
        columns: &["id", "key", "value", "description", "mutable", "created_at", "updated_at"],
        filters: &[],
    },
    Source {
        name: "feature_flags",
        pack: "feature_flags",
        path: "/system/features",
        columns: &[
            "id",
            "key",
            "enabled",
            "description",
            "group",
            "rollout_percent",
            "created_at",
            "updated_at",
        ],
        filters: &["group"],
    },
    Source {
        name: "system_log",
        pack: "system_log",
        path: "/system/logs",
        columns: &[
            "id",
            "timestamp",
            "level",
            "category",
            "message",
            "correlation_id",
            "user_id",
            "source",
            "context",
        ],
        filters: &["level", "category", "correlation_id", "source", "since"],
    },
    Source {
        name: "honeypot_telemetry",
        pack: "honeypots",
        path: "/system/security/telemetry",
        columns: &[
            "id",
            "honeypot_id",
            "origin",
            "source_ip",
            "method",
            "path",
            "query",
            "user_agent",
            "headers",
            "severity",
            "blocked",
            "block_rule_id",
            "block_error",
            "reported_by",
            "at",
        ],
        filters: &["since", "source_ip", "severity", "origin", "honeypot_id"],
    },
];

/// The source names, for validation messages.
pub(crate) const SOURCE_NAMES: [&str; 4] =
    [SOURCES[0].name, SOURCES[1].name, SOURCES[2].name, SOURCES[3].name];

/// The longest filter value.
pub(crate) const MAX_FILTER_VALUE: usize = 1024;

pub(crate) fn find(name: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.name == name)
}

/// Where the next page of a walk starts (`page_cursor` in the job row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    Start,
    Cursor(String),
    Offset(u64),
}

impl Position {
    /// The stored form: none, `c:<cursor>` or `o:<offset>`.
    pub fn stored(&self) -> Option<String> {
        match self {
            Self::Start => None,
            Self::Cursor(c) => Some(format!("c:{c}")),
            Self::Offset(n) => Some(format!("o:{n}")),
        }
    }

    pub fn parse(stored: Option<&str>) -> Self {
        match stored {
            Some(s) if s.starts_with("c:") => Self::Cursor(s[2..].to_string()),
            Some(s) if s.starts_with("o:") => s[2..].parse().map_or(Self::Start, Self::Offset),
            _ => Self::Start,
        }
    }
}

/// One page of a source.
pub(crate) struct Fetched {
    pub items: Vec<Value>,
    /// where the page after starts; none at the end
    pub next: Option<Position>,
}

/// Why a source did not give a page.
pub(crate) enum SourceError {
    /// its answer: a 4xx with its problem (the filter is wrong for it)
    Refused { status: u16, problem: Value, text: String },
    /// it could not be called (its pack is disabled or not granted)
    Unreachable(String),
    /// it failed (a 5xx, an answer that is no list)
    Failed(String),
}

impl SourceError {
    pub fn text(&self) -> &str {
        match self {
            Self::Refused { text, .. } | Self::Unreachable(text) | Self::Failed(text) => text,
        }
    }
}

/// The page of `source` at `at`, `limit` items, filtered by `filter`.
pub(crate) fn fetch(
    source: &Source,
    filter: &BTreeMap<String, String>,
    at: &Position,
    limit: u32,
) -> Result<Fetched, SourceError> {
    let limit_text = limit.to_string();
    let (cursor, offset);
    let mut query: Vec<(&str, &str)> =
        filter.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    query.push(("limit", &limit_text));
    match at {
        Position::Start => {}
        Position::Cursor(c) => {
            cursor = c.clone();
            query.push(("cursor", &cursor));
        }
        Position::Offset(n) => {
            offset = n.to_string();
            query.push(("offset", &offset));
        }
    }
    let answer =
        packs::call::<()>(source.pack, Method::Get, source.path, &query, None).map_err(|e| {
            SourceError::Unreachable(format!(
                "source `{}` is not available: {}",
                source.name,
                capability::message(&e)
            ))
        })?;
    let body = answer.json();
    if !answer.ok() {
        let text = format!("source `{}`: {}", source.name, answer.failure());
        return Err(if (400..500).contains(&answer.status) {
            SourceError::Refused { status: answer.status, problem: body, text }
        } else {
            SourceError::Failed(text)
        });
    }
    read_page(source, body, at, limit)
}

/// A list answer's items and where the next page starts.
fn read_page(
    source: &Source,
    mut body: Value,
    at: &Position,
    limit: u32,
) -> Result<Fetched, SourceError> {
    let Some(Value::Array(items)) = body.get_mut("items").map(Value::take) else {
        return Err(SourceError::Failed(format!(
            "source `{}` answered no `items` list",
            source.name
        )));
    };
    let next = match body.get("next_cursor") {
        Some(Value::String(c)) if !c.is_empty() => Some(Position::Cursor(c.clone())),
        Some(_) => None,
        // no keyset: by offset, until a page comes back short
        None if items.len() < limit as usize => None,
        None => {
            let done = match at {
                Position::Offset(n) => *n,
                _ => 0,
            };
            Some(Position::Offset(done + items.len() as u64))
        }
    };
    Ok(Fetched { items, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_round_trip() {
        for p in [Position::Start, Position::Cursor("ab:c".into()), Position::Offset(500)] {
            assert_eq!(Position::parse(p.stored().as_deref()), p);
        }
        assert_eq!(Position::parse(Some("o:x")), Position::Start);
    }

    #[test]
    fn a_keyset_answer_gives_its_cursor_and_an_offset_one_counts() {
        let s = &SOURCES[0];
        let page = |body| read_page(s, body, &Position::Start, 2).ok().unwrap();
        let keyset = page(json!({"items": [{"a": 1}, {"a": 2}], "next_cursor": "k2"}));
        assert_eq!(keyset.next, Some(Position::Cursor("k2".into())));
        assert_eq!(page(json!({"items": [{"a": 1}], "next_cursor": null})).next, None);
        let offset = page(json!({"items": [{"a": 1}, {"a": 2}], "total": 9}));
        assert_eq!(offset.next, Some(Position::Offset(2)));
        let later = read_page(s, json!({"items": [{"a": 1}, {"a": 2}]}), &Position::Offset(4), 2);
        assert_eq!(later.ok().unwrap().next, Some(Position::Offset(6)));
        assert_eq!(page(json!({"items": [{"a": 1}]})).next, None, "a short page is the last");
        assert!(read_page(s, json!({"nope": 1}), &Position::Start, 2).is_err());
    }

    #[test]
    fn sources_are_unique_and_named() {
        for (i, s) in SOURCES.iter().enumerate() {
            assert_eq!(SOURCE_NAMES[i], s.name);
            assert_eq!(find(s.name).map(|f| f.path), Some(s.path));
            assert_eq!(s.columns[0], "id");
        }
        assert!(find("nope").is_none());
    }
}
