//! Unit tests of the evaluator: plain boolean flags as before, rules in order, segments,
//! sticky weighted splits and how few subjects a change of weights moves.

use super::*;
use serde_json::{Map, json};

fn flag(body: Value) -> Definition {
    let mut full = json!({"key": "f", "enabled": true, "rollout_percent": 100, "type": "boolean",
        "variants": [], "default_variant": null, "rules": []});
    for (k, v) in body.as_object().cloned().unwrap_or_default() {
        full[k] = v;
    }
    serde_json::from_value(full).unwrap()
}

fn context<'a>(subject: Option<&'a str>, attrs: &'a Map<String, Value>) -> Context<'a> {
    Context { targeting_key: subject, attributes: attrs, now_ms: 0 }
}

fn decide<'f>(f: &'f Definition, subject: Option<&str>, attrs: Value) -> Decision<'f> {
    let attrs = attrs.as_object().cloned().unwrap_or_default();
    evaluate(f, &Segments::new(), &context(subject, &attrs)).unwrap()
}

/// The 0..100 bucket of the rollout before variants existed.
fn old_bucket(key: &str, subject: &str) -> u32 {
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
    (h % 100) as u32
}

#[test]
fn a_plain_rollout_answers_as_it_always_has() {
    let f = flag(json!({"key": "checkout", "rollout_percent": 30}));
    for i in 0..2000 {
        let subject = format!("user-{i}");
        assert_eq!(bucket("checkout", &subject) / 10, old_bucket("checkout", &subject));
        let d = decide(&f, Some(&subject), json!({}));
        assert_eq!(d.value, json!(old_bucket("checkout", &subject) < 30), "{subject}");
        assert_eq!(d.variant, if d.value == json!(true) { "on" } else { "off" });
        assert_eq!(d.reason, Reason::Split);
    }
    let cases = [
        (json!({}), json!(true), "enabled", Reason::Static),
        (json!({"rollout_percent": 0}), json!(false), "rollout_zero", Reason::Static),
        (json!({"enabled": false}), json!(false), "disabled", Reason::Disabled),
    ];
    for (body, value, native, reason) in cases {
        let f = flag(body);
        let d = decide(&f, None, json!({}));
        assert_eq!((d.value, d.native, d.reason), (value, native, reason));
    }
    let partial = flag(json!({"rollout_percent": 50}));
    let none = Map::new();
    assert_eq!(evaluate(&partial, &Segments::new(), &context(None, &none)), Err(NeedsTargetingKey));
}

fn colours() -> Definition {
    flag(json!({"key": "colour", "type": "string", "default_variant": "grey",
    "variants": [{"name": "grey", "value": "#888"}, {"name": "red", "value": "#f00"},
                 {"name": "blue", "value": "#00f"}],
    "rules": [
        {"id": "staff", "constraints": [
            {"attribute": "email", "operator": "STR_ENDS_WITH", "values": ["@corp.example"]}],
         "variant": "red"},
        {"segments": ["pro"], "rollout": [{"variant": "red", "weight": 50},
                                          {"variant": "blue", "weight": 50}]}
    ]}))
}

#[test]
fn the_first_matching_rule_decides_and_no_match_is_the_default() {
    let f = colours();
    let segments: Segments = [(
        "pro".to_string(),
        serde_json::from_value(json!([{"attribute": "plan", "operator": "IN", "values": ["pro"]}]))
            .unwrap(),
    )]
    .into();
    let run = |attrs: Value| {
        let attrs = attrs.as_object().cloned().unwrap_or_default();
        let d = evaluate(&f, &segments, &context(Some("u-1"), &attrs)).unwrap();
        (d.variant.to_string(), d.reason, d.rule, d.native)
    };
    let staff = run(json!({"email": "a@corp.example", "plan": "pro"}));
    assert_eq!(
        staff,
        ("red".into(), Reason::TargetingMatch, Some("staff".into()), "targeting_match")
    );
    let pro = run(json!({"plan": "pro"}));
    assert_eq!(
        (pro.1, pro.2.as_deref(), pro.3),
        (Reason::Split, Some("rule-2"), "targeting_split")
    );
    assert_eq!(run(json!({"plan": "free"})), ("grey".into(), Reason::Default, None, "default"));
    // a segment the store does not have never holds
    let d = evaluate(&f, &Segments::new(), &context(Some("u-1"), &Map::new())).unwrap();
    assert_eq!((d.variant, d.value), ("grey", json!("#888")));
    let mut off = colours();
    off.enabled = false;
    let d = evaluate(&off, &segments, &context(Some("u-1"), &Map::new())).unwrap();
    assert_eq!((d.variant, d.reason), ("grey", Reason::Disabled));
}

fn weighted(weights: &[f64]) -> Definition {
    let names = ["a", "b", "c", "d"];
    let variants: Vec<Value> = weights
        .iter()
        .zip(names)
        .map(|(w, n)| json!({"name": n, "value": n, "weight": w}))
        .collect();
    flag(json!({"key": "exp", "type": "string", "variants": variants, "default_variant": "a"}))
}

fn assign(f: &Definition, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| decide(f, Some(&format!("subject-{i}")), json!({})).variant.to_string())
        .collect()
}

#[test]
fn ten_thousand_subjects_split_within_two_percent_of_the_weights() {
    let weights = [20.0, 30.5, 49.5];
    let f = weighted(&weights);
    let seen = assign(&f, 10_000);
    for (name, weight) in ["a", "b", "c"].iter().zip(weights) {
        let share = seen.iter().filter(|v| v == name).count() as f64 / 100.0;
        assert!((share - weight).abs() <= 2.0, "{name}: {share} % for {weight} %");
    }
    assert_eq!(seen, assign(&f, 10_000), "the same subject keeps its variant");
    assert_eq!(decide(&f, Some("subject-1"), json!({})).reason, Reason::Split);
}

#[test]
fn raising_a_weight_moves_only_the_subjects_in_the_changed_range() {
    let moved = |before: &[f64], after: &[f64]| {
        let (x, y) = (assign(&weighted(before), 10_000), assign(&weighted(after), 10_000));
        x.iter().zip(&y).filter(|(a, b)| a != b).count() as f64 / 100.0
    };
    // 10 points from the next variant: exactly the subjects of that range move
    let two = moved(&[50.0, 50.0], &[60.0, 40.0]);
    assert!((8.0..=12.0).contains(&two), "{two} %");
    let three = moved(&[30.0, 30.0, 40.0], &[30.0, 40.0, 30.0]);
    assert!((8.0..=12.0).contains(&three), "{three} %");
    assert_eq!(moved(&[30.0, 30.0, 40.0], &[30.0, 30.0, 40.0]), 0.0);
    // and a subject who moved went to the raised variant
    let (x, y) = (assign(&weighted(&[50.0, 50.0]), 2000), assign(&weighted(&[60.0, 40.0]), 2000));
    assert!(x.iter().zip(&y).filter(|(a, b)| a != b).all(|(a, b)| a == "b" && b == "a"));
}

#[test]
fn a_tenth_of_a_percent_is_one_bucket() {
    let f = weighted(&[0.1, 99.9]);
    let seen = assign(&f, 20_000);
    let a = seen.iter().filter(|v| *v == "a").count();
    assert!((5..=40).contains(&a), "{a} of 20000 for 0.1 %");
}
