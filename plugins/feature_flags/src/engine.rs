//! The evaluator: one pure function from a flag, the segments it names and a context to the
//! variant, its value, the reason and the rule that decided. The native route, OFREP and
//! admin_ops (through the native route) all answer from [`evaluate`].
//!
//! Sticky assignment: a stable hash of the flag's key and the targeting key puts every
//! subject in one of 1000 buckets (a tenth of a percent each); a split lays its variants'
//! weights end to end over the buckets in the variants' order, and a subject gets the
//! variant whose range holds its bucket. A change of weights moves only the subjects whose
//! bucket lies between a boundary's old and new place. The bucket's tens are the 0..100
//! bucket of the plain rollout, so `rollout_percent` p is the split `on` p, `off` 100 - p.

use valhalla_sdk::alloc_prelude::*;

use alloc::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Constraint, Definition, Operator, Split, tenths};
use crate::operators::{Context, holds};

/// Why a flag answered as it did (OpenFeature's resolution reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// a targeting rule chose the variant
    TargetingMatch,
    /// a sticky weighted split chose it (a rule's rollout, or the flag's weights)
    Split,
    /// the flag serves one value to everyone (no rules, no split)
    Static,
    /// the flag is disabled
    Disabled,
    /// no rule matched: the default variant
    Default,
}

impl Reason {
    /// The reason as OFREP spells it.
    pub fn ofrep(self) -> &'static str {
        match self {
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Static => "STATIC",
            Self::Disabled => "DISABLED",
            Self::Default => "DEFAULT",
        }
    }
}

/// A flag's answer for one context.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<'f> {
    /// the variant's name (`on` / `off` for a boolean flag without variants)
    pub variant: &'f str,
    /// its value
    pub value: Value,
    /// why
    pub reason: Reason,
    /// the id of the rule that matched, if one did
    pub rule: Option<String>,
    /// the native route's reason: `disabled`, `targeting_match`, `targeting_split`, `split`,
    /// `default`, `static`, and for a boolean flag without variants `enabled`,
    /// `rollout_zero`, `in_rollout`, `outside_rollout`
    pub native: &'static str,
}

/// A split had to place a subject, and the context has no targeting key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeedsTargetingKey;

/// The segments a flag's rules name, by key.
pub type Segments = BTreeMap<String, Vec<Constraint>>;

/// The variants of a boolean flag that has none of its own.
const ON_OFF: [(&str, bool); 2] = [("on", true), ("off", false)];

/// `flag`'s answer for `context`: a disabled flag serves its default; otherwise the first
/// rule whose segments and constraints all hold decides (its variant, or its rollout);
/// otherwise the flag's own split (its weights, or the `rollout_percent` of a plain boolean
/// flag), or its default variant.
pub fn evaluate<'f>(
    flag: &'f Definition,
    segments: &Segments,
    context: &Context,
) -> Result<Decision<'f>, NeedsTargetingKey> {
    let answer = |variant: &'f str, reason, rule, native| Decision {
        variant,
        value: value_of(flag, variant),
        reason,
        rule,
        native,
    };
    if !flag.enabled {
        return Ok(answer(default_of(flag), Reason::Disabled, None, "disabled"));
    }
    let bucket = || context.targeting_key.map(|subject| bucket(&flag.key, subject));
    for (i, rule) in flag.rules.iter().enumerate() {
        let in_segments = rule
            .segments
            .iter()
            .all(|key| segments.get(key).is_some_and(|cs| all_hold(cs, context)));
        if !in_segments || !all_hold(&rule.constraints, context) {
            continue;
        }
        let id = Some(rule.id_or(i));
        if let Some(variant) = &rule.variant {
            return Ok(answer(variant, Reason::TargetingMatch, id, "targeting_match"));
        }
        if let Some(rollout) = &rule.rollout {
            let at = bucket().ok_or(NeedsTargetingKey)?;
            let variant = pick(at, rollout.iter().map(Split::parts));
            return Ok(answer(variant, Reason::Split, id, "targeting_split"));
        }
    }
    let unmatched = if flag.rules.is_empty() { Reason::Static } else { Reason::Default };
    if flag.variants.is_empty() {
        // a plain boolean flag: `on` for `rollout_percent` of the subjects
        return Ok(match flag.rollout_percent {
            100.. => answer("on", unmatched, None, "enabled"),
            ..=0 => answer("off", unmatched, None, "rollout_zero"),
            percent => {
                let at = bucket().ok_or(NeedsTargetingKey)?;
                let inside = at < percent as u32 * 10;
                let (variant, native) =
                    if inside { ("on", "in_rollout") } else { ("off", "outside_rollout") };
                answer(variant, Reason::Split, None, native)
            }
        });
    }
    if flag.variants.iter().any(|v| v.weight.is_some()) {
        let at = bucket().ok_or(NeedsTargetingKey)?;
        let weights = flag.variants.iter().map(|v| (v.name.as_str(), v.weight.unwrap_or(0.0)));
        return Ok(answer(pick(at, weights), Reason::Split, None, "split"));
    }
    let native = if flag.rules.is_empty() { "static" } else { "default" };
    Ok(answer(default_of(flag), unmatched, None, native))
}

/// Whether every constraint holds: the cheap ones first, so a REGEX (whose pattern is
/// compiled when it is tried) is tried only when all the others hold.
fn all_hold(constraints: &[Constraint], context: &Context) -> bool {
    let regex = |c: &&Constraint| c.operator == Operator::Regex;
    constraints.iter().filter(|c| !regex(c)).all(|c| holds(c, context))
        && constraints.iter().filter(regex).all(|c| holds(c, context))
}

impl Split {
    fn parts(&self) -> (&str, f64) {
        (self.variant.as_str(), self.weight)
    }
}

/// The default variant: the flag's own, or `off` for a boolean flag without variants.
fn default_of(flag: &Definition) -> &str {
    match (&flag.default_variant, flag.variants.first()) {
        (Some(name), _) => name,
        (None, Some(first)) => &first.name,
        (None, None) => "off",
    }
}

/// The value of the variant `name` (`null` if the flag has none such: validation keeps
/// every name a rule or the default uses among the variants).
fn value_of(flag: &Definition, name: &str) -> Value {
    if flag.variants.is_empty() {
        let on = ON_OFF.iter().find(|(n, _)| *n == name).is_some_and(|(_, on)| *on);
        return Value::Bool(on);
    }
    flag.variants.iter().find(|v| v.name == name).map_or(Value::Null, |v| v.value.clone())
}

/// The variant whose range of buckets holds `bucket`, the weights laid end to end in order
/// (the last variant when rounding leaves the bucket past the end).
fn pick<'a>(bucket: u32, weights: impl Iterator<Item = (&'a str, f64)>) -> &'a str {
    let mut end = 0;
    let mut last = "";
    for (name, weight) in weights {
        end += tenths(weight).unwrap_or(0);
        last = name;
        if bucket < end {
            return name;
        }
    }
    last
}

/// The subject's bucket 0..1000 for the flag `key`: the same subject always lands in the
/// same bucket, and different flags split subjects independently. Its tens (`bucket / 10`)
/// are the 0..100 bucket the plain rollout has always used.
pub fn bucket(key: &str, subject: &str) -> u32 {
    // FNV-1a over key, a separator and subject, then a murmur3 finaliser to spread the bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(subject.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    ((h % 100) * 10 + (h / 100) % 10) as u32
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
