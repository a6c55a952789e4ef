//! Constraint operators: how one constraint reads a context attribute and compares it with
//! its values (strings, numbers, semantic versions, RFC 3339 dates, regular expressions).
//! Pure functions; the same parsers check a constraint when it is written.

use valhalla_sdk::alloc_prelude::*;

use alloc::borrow::Cow;
use core::cmp::Ordering;

use regex_automata::nfa::thompson::{self, WhichCaptures, pikevm::PikeVM};
use regex_automata::util::syntax;
use serde_json::{Map, Value};

use crate::model::{Constraint, Operator};

/// The longest pattern a REGEX constraint may have, in bytes.
pub const MAX_PATTERN: usize = 256;
/// The most memory a REGEX constraint's compiled automaton may take, in bytes.
pub const MAX_COMPILED: usize = 64 * 1024;
/// How deeply a pattern may nest groups and repetitions.
const MAX_NESTING: u32 = 16;

/// What an evaluation reads: the subject (targeting key), its attributes, and the time.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// the subject the sticky hash reads (OFREP's `targetingKey`, the native `subject`)
    pub targeting_key: Option<&'a str>,
    /// the context attributes
    pub attributes: &'a Map<String, Value>,
    /// now in ms since the epoch: `currentTime` when the attributes have none
    pub now_ms: i64,
}

/// An attribute as a constraint sees it.
enum Seen<'a> {
    Json(&'a Value),
    Text(&'a str),
    Time(i64),
}

impl<'a> Context<'a> {
    fn attribute(&self, name: &str) -> Option<Seen<'a>> {
        if name == "targetingKey"
            && let Some(key) = self.targeting_key
        {
            return Some(Seen::Text(key));
        }
        match self.attributes.get(name) {
            None | Some(Value::Null) if name == "currentTime" => Some(Seen::Time(self.now_ms)),
            None | Some(Value::Null) => None,
            Some(value) => Some(Seen::Json(value)),
        }
    }
}

impl Seen<'_> {
    /// A scalar as text: strings as they are, numbers and booleans as JSON writes them.
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Seen::Text(t) => Some(Cow::Borrowed(t)),
            Seen::Json(Value::String(s)) => Some(Cow::Borrowed(s)),
            Seen::Json(v @ (Value::Number(_) | Value::Bool(_))) => Some(Cow::Owned(v.to_string())),
            Seen::Json(_) => None,
            Seen::Time(ms) => Some(Cow::Owned(valhalla_sdk::clock::rfc3339(*ms))),
        }
    }

    /// A number, or a string that reads as one.
    fn number(&self) -> Option<f64> {
        match self {
            Seen::Json(Value::Number(n)) => n.as_f64(),
            Seen::Json(Value::String(s)) => s.trim().parse().ok(),
            Seen::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// An instant in ms since the epoch: an RFC 3339 string, or the evaluation's time.
    fn time_ms(&self) -> Option<i64> {
        match self {
            Seen::Time(ms) => Some(*ms),
            Seen::Json(Value::String(s)) => valhalla_sdk::clock::parse_rfc3339(s),
            Seen::Text(s) => valhalla_sdk::clock::parse_rfc3339(s),
            _ => None,
        }
    }
}

/// Whether `constraint` holds for `context`. An attribute the context lacks, or one that
/// does not read as the operator's type, does not compare (NOT_IN: it is in no list);
/// `inverted` then flips the answer.
pub fn holds(constraint: &Constraint, context: &Context) -> bool {
    compare(constraint, context) != constraint.inverted
}

fn compare(c: &Constraint, context: &Context) -> bool {
    use Operator::*;
    let seen = context.attribute(&c.attribute);
    let text = seen.as_ref().and_then(Seen::text);
    let strings = || c.values.iter().filter_map(Value::as_str);
    let any = |test: &dyn Fn(&str, &str) -> bool| {
        text.as_deref().is_some_and(|t| strings().any(|v| test(t, v)))
    };
    let first = c.values.first();
    match c.operator {
        In => any(&|t, v| t == v),
        NotIn => !any(&|t, v| t == v),
        StrContains => any(&|t, v| t.contains(v)),
        StrStartsWith => any(&|t, v| t.starts_with(v)),
        StrEndsWith => any(&|t, v| t.ends_with(v)),
        NumEq | NumGt | NumGte | NumLt | NumLte => {
            let (Some(have), Some(want)) =
                (seen.as_ref().and_then(Seen::number), first.and_then(Value::as_f64))
            else {
                return false;
            };
            have.partial_cmp(&want).is_some_and(|order| wanted(c.operator, order))
        }
        SemverEq | SemverGt | SemverLt => {
            let (Some(have), Some(want)) = (
                text.as_deref().and_then(version),
                first.and_then(Value::as_str).and_then(version),
            ) else {
                return false;
            };
            wanted(c.operator, have.cmp_precedence(&want))
        }
        DateAfter | DateBefore => {
            let have = seen.as_ref().and_then(Seen::time_ms);
            let want = first.and_then(Value::as_str).and_then(valhalla_sdk::clock::parse_rfc3339);
            match (have, want) {
                (Some(have), Some(want)) => wanted(c.operator, have.cmp(&want)),
                _ => false,
            }
        }
        Regex => {
            let (Some(text), Some(pattern)) = (text.as_deref(), first.and_then(Value::as_str))
            else {
                return false;
            };
            compile(pattern).is_ok_and(|re| re.is_match(text))
        }
    }
}

/// Whether `order` (the attribute against the value) is what `op` asks for.
fn wanted(op: Operator, order: Ordering) -> bool {
    use Operator::*;
    match op {
        NumEq | SemverEq => order == Ordering::Equal,
        NumGt | SemverGt | DateAfter => order == Ordering::Greater,
        NumGte => order != Ordering::Less,
        NumLt | SemverLt | DateBefore => order == Ordering::Less,
        NumLte => order != Ordering::Greater,
        _ => false,
    }
}

/// A semantic version (`1.2.3`, `1.2.3-beta.1`; a leading `v` is allowed).
pub fn version(text: &str) -> Option<semver::Version> {
    semver::Version::parse(text.strip_prefix('v').unwrap_or(text)).ok()
}

/// A compiled REGEX constraint: a Thompson NFA run by the PikeVM (no captures, no DFA), which
/// is cheap to build, and a pack builds it on every evaluation (an instance lives for one
/// request).
#[derive(Debug)]
pub struct Pattern(PikeVM);

impl Pattern {
    /// Whether the pattern matches anywhere in `text` (anchor it with `^…$` for the whole).
    pub fn is_match(&self, text: &str) -> bool {
        let mut cache = self.0.create_cache();
        self.0.is_match(&mut cache, text)
    }
}

/// A REGEX constraint's pattern, compiled within the limits: at most [`MAX_PATTERN`] bytes,
/// [`MAX_COMPILED`] bytes of automaton and [`MAX_NESTING`] levels; classes such as `\d` and
/// `\w` are ASCII. An `Err` says what is wrong with it.
pub fn compile(pattern: &str) -> Result<Pattern, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("a pattern is at most {MAX_PATTERN} bytes"));
    }
    let syntax = syntax::Config::new().unicode(false).utf8(false).nest_limit(MAX_NESTING);
    let nfa = thompson::Config::new()
        .nfa_size_limit(Some(MAX_COMPILED))
        .which_captures(WhichCaptures::None)
        .utf8(false);
    PikeVM::builder().syntax(syntax).thompson(nfa).build(pattern).map(Pattern).map_err(|e| match e
        .size_limit()
    {
        Some(_) => format!("the pattern compiles to more than {MAX_COMPILED} bytes"),
        None => format!("not a valid regular expression: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn constraint(attribute: &str, op: &str, values: Value, inverted: bool) -> Constraint {
        serde_json::from_value(json!({"attribute": attribute, "operator": op, "values": values,
            "inverted": inverted}))
        .unwrap()
    }

    /// (not inverted, inverted) for `op values` against the context `attrs`.
    fn both(op: &str, values: Value, attrs: Value) -> (bool, bool) {
        let attrs = attrs.as_object().cloned().unwrap();
        let cx = Context { targeting_key: Some("user-1"), attributes: &attrs, now_ms: 1_000 };
        let plain = holds(&constraint("a", op, values.clone(), false), &cx);
        let inverted = holds(&constraint("a", op, values, true), &cx);
        assert_ne!(plain, inverted, "inverting flips {op}");
        (plain, inverted)
    }

    #[test]
    fn every_operator_matches_and_does_not() {
        let cases = [
            ("IN", json!(["pro", "team"]), json!("pro"), json!("free")),
            ("NOT_IN", json!(["free"]), json!("pro"), json!("free")),
            ("STR_CONTAINS", json!(["@example"]), json!("a@example.com"), json!("a@b.c")),
            ("STR_STARTS_WITH", json!(["eu-"]), json!("eu-west"), json!("us-east")),
            ("STR_ENDS_WITH", json!([".com"]), json!("x.com"), json!("x.org")),
            ("NUM_EQ", json!([3]), json!(3.0), json!(4)),
            ("NUM_GT", json!([3]), json!(4), json!(3)),
            ("NUM_GTE", json!([3]), json!("3"), json!(2.5)),
            ("NUM_LT", json!([3]), json!(2), json!(3)),
            ("NUM_LTE", json!([3]), json!(3), json!(3.1)),
            ("SEMVER_EQ", json!(["1.2.3"]), json!("v1.2.3"), json!("1.2.4")),
            ("SEMVER_GT", json!(["1.2.3"]), json!("1.10.0"), json!("1.2.3-beta.1")),
            ("SEMVER_LT", json!(["2.0.0"]), json!("2.0.0-rc.1"), json!("2.0.0")),
            (
                "DATE_AFTER",
                json!(["2026-01-01T00:00:00Z"]),
                json!("2026-06-01T00:00:00+02:00"),
                json!("2025-12-31T23:59:59Z"),
            ),
            (
                "DATE_BEFORE",
                json!(["2026-01-01T00:00:00Z"]),
                json!("2025-12-31T23:59:59Z"),
                json!("2026-01-01T00:00:00Z"),
            ),
            ("REGEX", json!(["^[a-z]+-\\d+$"]), json!("user-42"), json!("User-42")),
        ];
        for (op, values, yes, no) in cases {
            assert_eq!(both(op, values.clone(), json!({"a": yes})), (true, false), "{op} {yes}");
            assert_eq!(both(op, values, json!({"a": no})), (false, true), "{op} {no}");
        }
    }

    #[test]
    fn a_missing_or_unreadable_attribute_does_not_compare() {
        assert_eq!(both("IN", json!(["x"]), json!({})), (false, true));
        assert_eq!(both("NOT_IN", json!(["x"]), json!({})), (true, false));
        assert_eq!(both("NUM_GT", json!([1]), json!({"a": "many"})), (false, true));
        assert_eq!(both("SEMVER_GT", json!(["1.0.0"]), json!({"a": "latest"})), (false, true));
        assert_eq!(
            both("DATE_AFTER", json!(["2026-01-01T00:00:00Z"]), json!({"a": 5})),
            (false, true)
        );
        assert_eq!(both("IN", json!(["x"]), json!({"a": {"nested": 1}})), (false, true));
    }

    #[test]
    fn scalars_compare_as_text_and_special_attributes_fill_in() {
        assert_eq!(both("IN", json!(["42"]), json!({"a": 42})), (true, false));
        assert_eq!(both("IN", json!(["true"]), json!({"a": true})), (true, false));
        let none = Map::new();
        let cx = Context { targeting_key: Some("user-7"), attributes: &none, now_ms: 1_000 };
        assert!(holds(&constraint("targetingKey", "IN", json!(["user-7"]), false), &cx));
        let before =
            constraint("currentTime", "DATE_BEFORE", json!(["1970-01-01T00:00:02Z"]), false);
        assert!(holds(&before, &cx), "currentTime is the evaluation's time");
    }

    #[test]
    fn patterns_are_limited() {
        assert!(compile("^a+$").is_ok());
        assert!(compile("(unclosed").unwrap_err().contains("not a valid"));
        assert!(compile(&"a".repeat(MAX_PATTERN + 1)).unwrap_err().contains("at most"));
        assert!(compile("(a{1,100}){1,100}").unwrap_err().contains("compiles to more"));
        assert!(compile(&format!("{}a{}", "(".repeat(20), ")".repeat(20))).is_err());
    }
}
