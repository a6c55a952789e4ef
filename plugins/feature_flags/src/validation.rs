//! The checks a flag's variants and rules, and a segment's constraints, must pass before they
//! are stored: every broken one is a field error of one 422 naming its place
//! (`variants[1].value`, `rules[2].constraints[0].values`, `rules[0].rollout[1].weight`).

use valhalla_sdk::alloc_prelude::*;

use serde_json::Value;
use valhalla_sdk::Validator;
use valhalla_sdk::validate::is_identifier;

use crate::model::{Constraint, Definition, Operand, Split, tenths};
use crate::operators::{compile, version};

/// The most rules a flag has, constraints a rule or segment has, values a constraint has.
pub const MAX_RULES: usize = 100;
/// See [`MAX_RULES`].
pub const MAX_CONSTRAINTS: usize = 50;
/// See [`MAX_RULES`].
pub const MAX_VALUES: usize = 1000;
/// The most variants a flag has.
pub const MAX_VARIANTS: usize = 100;

/// Every check of `flag`'s variants, default and rules (the key, description and group are
/// the body's own field rules).
pub fn definition(flag: &Definition, v: &mut Validator) {
    let explicit = !flag.variants.is_empty();
    if explicit && flag.rollout_percent != 100 {
        v.error(
            "rollout_percent",
            "applies to a boolean flag without variants: weight the variants",
        );
    }
    if !explicit {
        if flag.flag_type != crate::model::FlagType::Boolean {
            v.error("variants", format!("a {} flag needs variants", flag.flag_type.name()));
        }
        if flag.default_variant.is_some() {
            v.error("default_variant", "needs variants (a boolean flag without them serves `off`)");
        }
    }
    v.check(flag.variants.len() <= MAX_VARIANTS, "variants", "at most 100 variants");
    let names = variant_names(flag);
    let known = |name: &str| names.iter().any(|n| n == name);
    for (i, variant) in flag.variants.iter().enumerate() {
        let at = format!("variants[{i}]");
        name(v, &format!("{at}.name"), &variant.name);
        if flag.variants[..i].iter().any(|other| other.name == variant.name) {
            v.error(&format!("{at}.name"), "is already a variant's name");
        }
        if !flag.flag_type.holds(&variant.value) {
            let want = flag.flag_type.name();
            v.error(&format!("{at}.value"), format!("must be a {want}, as the flag's type is"));
        }
    }
    let weighted = flag.variants.iter().filter(|x| x.weight.is_some()).count();
    if weighted > 0 && weighted < flag.variants.len() {
        v.error("variants", "either every variant has a weight or none does");
    } else if weighted > 0 {
        let weights = flag.variants.iter().map(|x| x.weight.unwrap_or(0.0));
        weights_sum(v, "variants", weights, |i| format!("variants[{i}].weight"));
    }
    match &flag.default_variant {
        Some(default) if !known(default) => {
            v.error("default_variant", "must name one of the variants");
        }
        None if explicit => {
            v.error("default_variant", "required: the variant served when no rule matches");
        }
        _ => {}
    }
    v.check(flag.rules.len() <= MAX_RULES, "rules", "at most 100 rules");
    for (i, rule) in flag.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        if let Some(id) = &rule.id {
            name(v, &format!("{at}.id"), id);
            if flag.rules[..i].iter().any(|other| other.id.as_ref() == Some(id)) {
                v.error(&format!("{at}.id"), "is already a rule's id");
            }
        }
        if rule.description.as_ref().is_some_and(|d| d.chars().count() > 1024) {
            v.error(&format!("{at}.description"), "must be at most 1024 characters");
        }
        for (j, segment) in rule.segments.iter().enumerate() {
            name(v, &format!("{at}.segments[{j}]"), segment);
        }
        constraints(v, &at, &rule.constraints);
        match (&rule.variant, &rule.rollout) {
            (Some(_), Some(_)) | (None, None) => {
                v.error(&at, "a rule serves either a `variant` or a `rollout`");
            }
            (Some(variant), None) if !known(variant) => {
                v.error(&format!("{at}.variant"), "must name one of the flag's variants");
            }
            (None, Some(rollout)) => split(v, &format!("{at}.rollout"), rollout, &known),
            _ => {}
        }
    }
}

/// The variants a rule or the default may name: the flag's, or `on` and `off`.
fn variant_names(flag: &Definition) -> Vec<String> {
    if flag.variants.is_empty() {
        return vec!["on".to_string(), "off".to_string()];
    }
    flag.variants.iter().map(|x| x.name.clone()).collect()
}

/// A rule's rollout: known variants, each once, weights summing to 100.
fn split(v: &mut Validator, at: &str, rollout: &[Split], known: &dyn Fn(&str) -> bool) {
    if rollout.is_empty() {
        v.error(at, "must have at least one item");
        return;
    }
    for (i, part) in rollout.iter().enumerate() {
        if !known(&part.variant) {
            v.error(&format!("{at}[{i}].variant"), "must name one of the flag's variants");
        } else if rollout[..i].iter().any(|p| p.variant == part.variant) {
            v.error(&format!("{at}[{i}].variant"), "is already in the rollout");
        }
    }
    weights_sum(v, at, rollout.iter().map(|p| p.weight), |i| format!("{at}[{i}].weight"));
}

/// Each weight 0–100 with at most one decimal, and all summing to 100.
fn weights_sum(
    v: &mut Validator,
    at: &str,
    weights: impl Iterator<Item = f64>,
    field: impl Fn(usize) -> String,
) {
    let mut total = 0;
    let mut all_valid = true;
    for (i, weight) in weights.enumerate() {
        match tenths(weight) {
            Some(t) => total += t,
            None => {
                all_valid = false;
                v.error(&field(i), "must be between 0 and 100, with at most one decimal");
            }
        }
    }
    if all_valid && total != 1000 {
        let sum = format!("{}.{}", total / 10, total % 10);
        v.error(at, format!("the weights must sum to 100 (they sum to {sum})"));
    }
}

/// An identifier of at most 64 characters.
fn name(v: &mut Validator, field: &str, value: &str) {
    if value.is_empty() || value.len() > 64 || !is_identifier(value) {
        v.error(field, "must be an identifier of 1 to 64 letters, digits, `_`, `-`, `.`, `:`");
    }
}

/// A list of constraints at `{at}.constraints[i]` (`at` empty for a segment's own list).
pub fn constraints(v: &mut Validator, at: &str, list: &[Constraint]) {
    let base = if at.is_empty() { "constraints".to_string() } else { format!("{at}.constraints") };
    if list.len() > MAX_CONSTRAINTS {
        v.error(&base, "at most 50 constraints");
    }
    for (i, c) in list.iter().enumerate() {
        constraint(v, &format!("{base}[{i}]"), c);
    }
}

/// One constraint: an attribute, and values of the kind its operator compares.
fn constraint(v: &mut Validator, at: &str, c: &Constraint) {
    let n = c.attribute.chars().count();
    if n == 0 || n > 128 {
        v.error(&format!("{at}.attribute"), "must be 1 to 128 characters");
    }
    let field = format!("{at}.values");
    let operator = serde_json::to_value(c.operator).unwrap_or(Value::Null);
    let op = operator.as_str().unwrap_or("the operator");
    let operand = c.operator.operand();
    if operand == Operand::Strings {
        if c.values.is_empty() || c.values.len() > MAX_VALUES {
            v.error(&field, format!("{op} takes 1 to {MAX_VALUES} strings"));
        } else if !c.values.iter().all(Value::is_string) {
            v.error(&field, format!("{op} compares strings: every value must be a string"));
        }
        return;
    }
    let [value] = c.values.as_slice() else {
        v.error(&field, format!("{op} takes exactly one value"));
        return;
    };
    let problem = match operand {
        Operand::Number => (!value.is_number()).then(|| format!("{op} takes a number")),
        Operand::Semver => match value.as_str().map(version) {
            Some(Some(_)) => None,
            _ => Some(format!("{op} takes a semantic version like `1.2.3`")),
        },
        Operand::Date => match value.as_str().map(valhalla_sdk::clock::parse_rfc3339) {
            Some(Some(_)) => None,
            _ => Some(format!("{op} takes an RFC 3339 timestamp like 2026-11-23T08:00:00Z")),
        },
        Operand::Pattern => match value.as_str() {
            Some(pattern) => compile(pattern).err(),
            None => Some(format!("{op} takes a pattern (a string)")),
        },
        Operand::Strings => None,
    };
    if let Some(message) = problem {
        v.error(&field, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(body: Value) -> Vec<String> {
        let mut full = json!({"key": "f", "enabled": true, "rollout_percent": 100,
            "type": "boolean", "variants": [], "default_variant": null, "rules": []});
        for (k, x) in body.as_object().cloned().unwrap_or_default() {
            full[k] = x;
        }
        let flag: Definition = serde_json::from_value(full).unwrap();
        let mut v = Validator::default();
        definition(&flag, &mut v);
        v.finish()
            .err()
            .map(|p| p.errors.into_iter().map(|e| e.field).collect())
            .unwrap_or_default()
    }

    fn rule(constraint: Value) -> Value {
        json!({"rules": [{"variant": "on"}, {"variant": "on"},
            {"constraints": [constraint], "variant": "on"}]})
    }

    #[test]
    fn wrong_values_for_an_operator_name_the_field() {
        let at = "rules[2].constraints[0].values";
        for (op, values) in [
            ("IN", json!([1])),
            ("IN", json!([])),
            ("NUM_GT", json!(["3"])),
            ("NUM_GT", json!([1, 2])),
            ("SEMVER_EQ", json!(["one"])),
            ("DATE_AFTER", json!(["tomorrow"])),
            ("REGEX", json!(["(open"])),
            ("REGEX", json!([7])),
        ] {
            let c = json!({"attribute": "a", "operator": op, "values": values});
            assert_eq!(fields(rule(c)), [at], "{op}");
        }
        let fine = json!({"attribute": "a", "operator": "REGEX", "values": ["^x"]});
        assert!(fields(rule(fine)).is_empty());
    }

    #[test]
    fn variants_weights_and_defaults() {
        let typed = |variants: Value, default: Value| {
            fields(json!({"type": "number", "variants": variants, "default_variant": default}))
        };
        let ok = json!([{"name": "a", "value": 1, "weight": 33.3}, {"name": "b", "value": 2,
            "weight": 66.7}]);
        assert!(typed(ok, json!("a")).is_empty());
        assert_eq!(typed(json!([{"name": "a", "value": "1"}]), json!("a")), ["variants[0].value"]);
        let sum = json!([{"name": "a", "value": 1, "weight": 50}, {"name": "b", "value": 2, "weight": 40}]);
        assert_eq!(typed(sum, json!("a")), ["variants"]);
        let fine = json!([{"name": "a", "value": 1, "weight": 50.25}, {"name": "b", "value": 2, "weight": 49.75}]);
        assert_eq!(typed(fine, json!("a")), ["variants[0].weight", "variants[1].weight"]);
        assert_eq!(typed(json!([{"name": "a", "value": 1}]), json!("z")), ["default_variant"]);
        assert_eq!(typed(json!([{"name": "a", "value": 1}]), Value::Null), ["default_variant"]);
        assert_eq!(fields(json!({"type": "string"})), ["variants"]);
        let dup = json!([{"name": "a", "value": 1}, {"name": "a", "value": 2}]);
        assert_eq!(typed(dup, json!("a")), ["variants[1].name"]);
    }

    #[test]
    fn rules_name_known_variants_and_split_to_100() {
        assert_eq!(fields(json!({"rules": [{"variant": "maybe"}]})), ["rules[0].variant"]);
        assert_eq!(fields(json!({"rules": [{}]})), ["rules[0]"]);
        let rollout = json!({"rules": [{"rollout": [{"variant": "on", "weight": 70},
            {"variant": "off", "weight": 20}]}]});
        assert_eq!(fields(rollout), ["rules[0].rollout"]);
        let dup = json!({"rules": [{"id": "x", "variant": "on"}, {"id": "x", "variant": "off"}]});
        assert_eq!(fields(dup), ["rules[1].id"]);
        assert_eq!(
            fields(json!({"rules": [{"segments": ["no way"], "variant": "on"}]})),
            ["rules[0].segments[0]"]
        );
    }
}
