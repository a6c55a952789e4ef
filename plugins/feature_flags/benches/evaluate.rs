//! Criterion bench of the flag evaluator on the host: a flag with 20 rules of 5 constraints
//! each (every operator kind, REGEX included), for a context that matches only the last rule
//! and one that matches none (the default). Run with `cargo bench -p feature_flags`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use feature_flags::engine::{Segments, evaluate};
use feature_flags::model::Definition;
use feature_flags::operators::Context;
use serde_json::{Map, Value, json};

/// 20 rules × 5 constraints; rule `r` wants `plan` = `plan-r`, so a context decides which
/// rule (if any) matches after the other constraints of every earlier rule were tried.
fn flag() -> Definition {
    let rules: Vec<Value> = (0..20)
        .map(|r| {
            json!({"id": format!("r{r}"), "variant": if r % 2 == 0 { "blue" } else { "green" },
            "constraints": [
                {"attribute": "country", "operator": "IN", "values": ["de", "fr", "nl", "se"]},
                {"attribute": "email", "operator": "STR_ENDS_WITH", "values": ["@example.com"]},
                {"attribute": "age", "operator": "NUM_GTE", "values": [18]},
                {"attribute": "version", "operator": "SEMVER_GT", "values": ["1.2.0"]},
                {"attribute": "plan", "operator": "REGEX", "values": [format!("^plan-{r}$")]},
            ]})
        })
        .collect();
    serde_json::from_value(json!({"key": "bench", "enabled": true, "rollout_percent": 100,
        "type": "string", "default_variant": "grey", "rules": rules,
        "variants": [{"name": "grey", "value": "grey"}, {"name": "blue", "value": "blue"},
                     {"name": "green", "value": "green"}]}))
    .expect("the bench flag")
}

fn attributes(plan: &str) -> Map<String, Value> {
    let v = json!({"country": "nl", "email": "a@example.com", "age": 30, "version": "1.4.2",
        "plan": plan});
    v.as_object().cloned().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let flag = flag();
    let segments = Segments::new();
    for (name, plan) in [("20x5, last rule matches", "plan-19"), ("20x5, no rule matches", "none")]
    {
        let attrs = attributes(plan);
        let context = Context { targeting_key: Some("user-42"), attributes: &attrs, now_ms: 0 };
        let d = evaluate(&flag, &segments, &context).expect("decides");
        assert_eq!(d.rule.is_some(), plan != "none");
        c.bench_function(name, |b| {
            b.iter(|| evaluate(black_box(&flag), &segments, black_box(&context)))
        });
    }
    // the same 100 constraints with `plan IN [plan-r]` for the REGEX: what the patterns cost
    let mut plain = flag.clone();
    for (r, rule) in plain.rules.iter_mut().enumerate() {
        rule.constraints[4] = serde_json::from_value(
            json!({"attribute": "plan", "operator": "IN", "values": [format!("plan-{r}")]}),
        )
        .expect("a constraint");
    }
    let attrs = attributes("plan-19");
    let context = Context { targeting_key: Some("user-42"), attributes: &attrs, now_ms: 0 };
    c.bench_function("20x5 without REGEX, last rule matches", |b| {
        b.iter(|| evaluate(black_box(&plain), &segments, black_box(&context)))
    });
}

/// One pattern compiled and tried, as a REGEX constraint is on every evaluation.
fn pattern(c: &mut Criterion) {
    c.bench_function("compile and match ^plan-(1[0-9]|2[0-9])$", |b| {
        b.iter(|| {
            feature_flags::operators::compile(black_box("^plan-(1[0-9]|2[0-9])$"))
                .is_ok_and(|re| re.is_match(black_box("plan-19")))
        })
    });
}

criterion_group!(benches, bench, pattern);
criterion_main!(benches);
