//! The flag engine's vocabulary: flag types, variants and their weights, targeting rules,
//! constraints and their operators, segments. Pure data (serde + JSON Schema), shared by the
//! routes, the store, the cache and the evaluator.

use valhalla_sdk::alloc_prelude::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a flag's values are.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    /// `true` / `false` (the default; without variants, `on` and `off` by `rollout_percent`)
    #[default]
    Boolean,
    /// a JSON string
    String,
    /// a JSON number
    Number,
    /// a JSON object
    Object,
}

impl FlagType {
    /// The type's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::String => "string",
            Self::Number => "number",
            Self::Object => "object",
        }
    }

    /// Whether `value` is a value of this type.
    pub fn holds(self, value: &Value) -> bool {
        match self {
            Self::Boolean => value.is_boolean(),
            Self::String => value.is_string(),
            Self::Number => value.is_number(),
            Self::Object => value.is_object(),
        }
    }
}

/// A named value a flag serves, with its share of the fallthrough split.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// an identifier, unique in the flag
    pub name: String,
    /// a value of the flag's type
    pub value: Value,
    /// percent 0–100 with at most one decimal; either every variant has one (summing to
    /// 100: subjects who match no rule split by them) or none does (they get the default)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// One variant's share of a rule's rollout.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// a variant of the flag
    pub variant: String,
    /// percent 0–100, at most one decimal; a rollout's weights sum to 100
    pub weight: f64,
}

/// How a constraint compares a context attribute with its `values`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum Operator {
    In,
    NotIn,
    StrContains,
    StrStartsWith,
    StrEndsWith,
    NumEq,
    NumGt,
    NumGte,
    NumLt,
    NumLte,
    SemverEq,
    SemverGt,
    SemverLt,
    DateAfter,
    DateBefore,
    Regex,
}

/// The kind of value an operator's `values` hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// one or more strings, any of which may match
    Strings,
    /// exactly one number
    Number,
    /// exactly one semantic version
    Semver,
    /// exactly one RFC 3339 timestamp
    Date,
    /// exactly one regular expression
    Pattern,
}

impl Operator {
    /// What the operator's `values` must be.
    pub fn operand(self) -> Operand {
        use Operator::*;
        match self {
            In | NotIn | StrContains | StrStartsWith | StrEndsWith => Operand::Strings,
            NumEq | NumGt | NumGte | NumLt | NumLte => Operand::Number,
            SemverEq | SemverGt | SemverLt => Operand::Semver,
            DateAfter | DateBefore => Operand::Date,
            Regex => Operand::Pattern,
        }
    }
}

/// One test of a context attribute: `attribute operator values`, perhaps inverted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// the context attribute (`targetingKey` is the subject; `currentTime`, when the
    /// context has none, is the time of the evaluation)
    pub attribute: String,
    /// the comparison
    pub operator: Operator,
    /// strings for IN, NOT_IN and STR_*; one number for NUM_*; one version for SEMVER_*;
    /// one RFC 3339 timestamp for DATE_*; one pattern for REGEX
    pub values: Vec<Value>,
    /// the constraint holds when the comparison does not
    #[serde(default)]
    pub inverted: bool,
}

/// A targeting rule: when the subject's context satisfies every segment and every
/// constraint, it serves `variant`, or splits by `rollout`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// an identifier, unique in the flag (`rule-1`, `rule-2`… in order when not given)
    #[serde(default)]
    pub id: Option<String>,
    /// what the rule is for
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// segments (by key) the context must satisfy too
    #[serde(default)]
    pub segments: Vec<String>,
    /// all must hold (an empty list holds for everyone)
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// the variant served (or `rollout`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// a sticky split of the matching subjects (or `variant`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Vec<Split>>,
}

impl Rule {
    /// The rule's id (`rule-{n}` for the n-th rule when it has none).
    pub fn id_or(&self, index: usize) -> String {
        self.id.clone().unwrap_or_else(|| format!("rule-{}", index + 1))
    }
}

/// What the evaluator needs of a flag.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Definition {
    /// the flag's key (with the targeting key, what the sticky hash reads)
    pub key: String,
    /// a disabled flag serves its default (`off` for a boolean flag without variants)
    pub enabled: bool,
    /// the share of subjects a boolean flag without variants is on for, 0..=100
    pub rollout_percent: i64,
    /// the values' type
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    /// the named values (none for a plain boolean flag: then `on` and `off`)
    pub variants: Vec<Variant>,
    /// the variant served when no rule matches and the variants have no weights, and when
    /// the flag is disabled
    pub default_variant: Option<String>,
    /// tried in order; the first that matches decides
    pub rules: Vec<Rule>,
}

/// A named, reusable set of constraints (all must hold) that rules refer to by key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Segment {
    /// an identifier
    pub key: String,
    /// the constraints
    pub constraints: Vec<Constraint>,
}

/// A weight in tenths of a percent (`33.3` → 333), or `None` when it is outside 0–100 or
/// has more than one decimal.
pub fn tenths(weight: f64) -> Option<u32> {
    let scaled = weight * 10.0;
    let rounded = libm_round(scaled);
    let off = scaled - rounded;
    let exact = off < 1e-6 && off > -1e-6;
    (exact && (0.0..=1000.0).contains(&rounded)).then_some(rounded as u32)
}

/// `f64::round` without `std`.
fn libm_round(x: f64) -> f64 {
    let t = x as i64 as f64;
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_have_at_most_one_decimal() {
        assert_eq!(tenths(33.3), Some(333));
        assert_eq!(tenths(0.0), Some(0));
        assert_eq!(tenths(100.0), Some(1000));
        assert_eq!(tenths(12.5), Some(125));
        assert_eq!(tenths(12.25), None);
        assert_eq!(tenths(100.1), None);
        assert_eq!(tenths(-0.1), None);
    }

    #[test]
    fn operators_spell_as_the_api_does() {
        let op: Operator = serde_json::from_str("\"STR_STARTS_WITH\"").unwrap();
        assert_eq!(op, Operator::StrStartsWith);
        assert_eq!(serde_json::to_string(&Operator::SemverGt).unwrap(), "\"SEMVER_GT\"");
        assert_eq!(Operator::Regex.operand(), Operand::Pattern);
    }
}
