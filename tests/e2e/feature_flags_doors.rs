//! The feature-flag engine's segments and its three doors (issue 21), end to end on both
//! engines with authentication on: segments CRUD, the 409 of a segment in use and the effect
//! of editing one, typed flags' bodies checked field by field, every write audited with
//! before and after; admin_ops' `evaluate_flag` and a real OpenFeature SDK over OFREP
//! (string, number and object flags through its typed getters) agreeing with the native route.

use serde_json::{Value, json};

use crate::feature_flags_engine::{evaluate, put, start};
use crate::harness::{Engine, eventually, test_python};
use crate::ofrep::run_client;
use crate::on_both_engines;

const SEGMENTS: &str = "/system/features/segments";

async fn segments(engine: Engine) {
    let Some((app, key)) = start(engine).await else {
        return;
    };
    let (admin, reader) = (app.as_admin(), app.as_key(&key));
    let pro = json!({"key": "pro", "description": "paying teams",
        "constraints": [{"attribute": "plan", "operator": "IN", "values": ["pro", "team"]}]});
    let created = admin.post(SEGMENTS, &pro).expect(200).await;
    assert_eq!(
        (&created["key"], &created["constraints"][0]["operator"]),
        (&json!("pro"), &json!("IN"))
    );
    assert_eq!(
        reader.get(&format!("{SEGMENTS}/pro")).expect(200).await["description"],
        "paying teams"
    );
    reader
        .get(&format!("{SEGMENTS}/nope"))
        .expect_problem(404)
        .await;
    reader.post(SEGMENTS, &pro).expect_problem(403).await;
    let bad = json!({"key": "x", "constraints": [{"attribute": "v", "operator": "SEMVER_GT",
        "values": ["new"]}]});
    let p = admin.post(SEGMENTS, &bad).expect_problem(422).await;
    assert_eq!(p["errors"][0]["field"], "constraints[0].values", "{p}");
    let p = admin
        .post(SEGMENTS, &json!({"key": "bad key", "constraints": []}))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "key", "{p}");

    // a rule may name only a stored segment
    let flag = |segment: &str| {
        json!({"key": "dark", "type": "string", "default_variant": "light",
        "variants": [{"name": "light", "value": "#fff"}, {"name": "dark", "value": "#000"}],
        "rules": [{"id": "paying", "segments": [segment], "variant": "dark"}]})
    };
    let p = admin
        .post("/system/features", &flag("ghost"))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "rules[0].segments[0]", "{p}");
    put(&app, flag("pro")).await;
    let team = evaluate(reader, "dark", "u1", &json!({"plan": "team"})).await;
    assert_eq!(
        (&team["variant"], &team["rule"]),
        (&json!("dark"), &json!("paying"))
    );
    assert_eq!(
        evaluate(reader, "dark", "u1", &json!({"plan": "free"})).await["variant"],
        "light"
    );

    // editing the segment changes the flag's next evaluation
    let narrower = json!({"key": "pro",
        "constraints": [{"attribute": "plan", "operator": "IN", "values": ["pro"]}]});
    admin.post(SEGMENTS, &narrower).expect(200).await;
    assert_eq!(
        evaluate(reader, "dark", "u1", &json!({"plan": "team"})).await["variant"],
        "light"
    );
    assert_eq!(
        evaluate(reader, "dark", "u1", &json!({"plan": "pro"})).await["variant"],
        "dark"
    );

    // in use: 409 naming the flags; free again once no rule names it
    put(
        &app,
        json!({"key": "also", "rules": [{"segments": ["pro"], "variant": "on"}]}),
    )
    .await;
    let p = admin
        .delete(&format!("{SEGMENTS}/pro"))
        .expect_problem(409)
        .await;
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("`also`") && detail.contains("`dark`"),
        "{p}"
    );
    assert_eq!(reader.get(SEGMENTS).expect(200).await["total"], 1);
    put(&app, json!({"key": "also"})).await;
    assert_eq!(admin.delete("/system/features/dark").await.status(), 204);
    assert_eq!(admin.delete(&format!("{SEGMENTS}/pro")).await.status(), 204);
    admin
        .delete(&format!("{SEGMENTS}/pro"))
        .expect_problem(404)
        .await;

    // every write audited, with before and after
    let audit = eventually(
        &app,
        "/system/logs?category=audit&source=feature_flags&limit=100",
        |v| v["total"].as_i64() >= Some(7),
    )
    .await;
    let events = audit["items"].as_array().cloned().unwrap_or_default();
    let of = |action: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["context"]["action"] == action)
            .cloned()
            .collect()
    };
    let update = of("segment.update");
    assert_eq!(update.len(), 1, "{audit}");
    assert_eq!(
        update[0]["context"]["before"]["constraints"][0]["values"],
        json!(["pro", "team"])
    );
    assert_eq!(
        update[0]["context"]["after"]["constraints"][0]["values"],
        json!(["pro"])
    );
    assert_eq!(of("segment.create").len(), 1);
    let deleted = of("segment.delete");
    assert_eq!(
        deleted[0]["context"]["target"],
        "feature_flags/segments/pro"
    );
    assert_eq!(deleted[0]["context"]["after"], Value::Null);
    let flag_update = of("flag.update");
    assert_eq!(
        flag_update[0]["context"]["before"]["rules"][0]["segments"],
        json!(["pro"])
    );
    assert_eq!(flag_update[0]["context"]["after"]["rules"], json!([]));
    assert_eq!(
        of("flag.delete")[0]["context"]["before"]["variants"][1]["value"],
        "#000"
    );
    app.finish().await;
}
on_both_engines!(segments_crud_409_in_use_and_edits_take_effect, segments);

async fn typed_bodies(engine: Engine) {
    let Some((app, _)) = start(engine).await else {
        return;
    };
    let cases = [
        (json!({"key": "t", "type": "string"}), "variants"),
        (
            json!({"key": "t", "type": "number", "default_variant": "a",
            "variants": [{"name": "a", "value": "1"}]}),
            "variants[0].value",
        ),
        (
            json!({"key": "t", "type": "object", "variants": [{"name": "a", "value": {}}]}),
            "default_variant",
        ),
        (
            json!({"key": "t", "type": "string", "default_variant": "a",
            "variants": [{"name": "a", "value": "x", "weight": 60}, {"name": "b", "value": "y", "weight": 30}]}),
            "variants",
        ),
        (
            json!({"key": "t", "type": "string", "default_variant": "a",
            "variants": [{"name": "a", "value": "x", "weight": 60.05}, {"name": "b", "value": "y", "weight": 39.95}]}),
            "variants[0].weight",
        ),
        (
            json!({"key": "t", "rules": [{"variant": "maybe"}]}),
            "rules[0].variant",
        ),
        (
            json!({"key": "t", "rules": [{"rollout": [{"variant": "on", "weight": 50}]}]}),
            "rules[0].rollout",
        ),
        (json!({"key": "t", "type": "colour"}), "type"),
        (json!({"key": "segments"}), "key"),
        (
            json!({"key": "t", "rollout_percent": 50, "default_variant": "a", "type": "string",
            "variants": [{"name": "a", "value": "x"}]}),
            "rollout_percent",
        ),
    ];
    for (body, field) in cases {
        let p = app
            .as_admin()
            .post("/system/features", &body)
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
    }
    // a plain flag's answer keeps its old fields, and gains the variant and value
    put(&app, json!({"key": "plain", "rollout_percent": 100})).await;
    let got = app
        .as_admin()
        .get("/system/features/plain")
        .expect(200)
        .await;
    assert_eq!(
        (&got["type"], &got["variants"], &got["rules"]),
        (&json!("boolean"), &json!([]), &json!([]))
    );
    let e = app
        .as_admin()
        .get("/system/features/plain/evaluate?subject=u")
        .expect(200)
        .await;
    assert_eq!(
        (&e["enabled"], &e["reason"], &e["variant"], &e["value"]),
        (&json!(true), &json!("enabled"), &json!("on"), &json!(true))
    );
    app.finish().await;
}
on_both_engines!(typed_flag_bodies_are_checked_naming_the_field, typed_bodies);

/// The flags both doors read: a string flag with a rule, a rule rollout and weights; integer
/// and float number flags; an object flag; a plain boolean rollout with a rule.
fn flags() -> Vec<Value> {
    let v = |name: &str, value: Value| json!({"name": name, "value": value});
    let w = |name: &str, value: Value, weight: f64| json!({"name": name, "value": value, "weight": weight});
    let plan = |values: Value| json!({"attribute": "plan", "operator": "IN", "values": values});
    vec![
        json!({"key": "colour", "type": "string", "default_variant": "grey",
            "variants": [w("grey", json!("#888"), 50.0), w("green", json!("#0f0"), 50.0),
                         w("red", json!("#f00"), 0.0), w("blue", json!("#00f"), 0.0)],
            "rules": [{"id": "staff", "variant": "red", "constraints": [{"attribute": "email",
                        "operator": "STR_ENDS_WITH", "values": ["@corp.example"]}]},
                      {"id": "pro", "constraints": [plan(json!(["pro"]))],
                       "rollout": [{"variant": "red", "weight": 30}, {"variant": "blue", "weight": 70}]}]}),
        json!({"key": "limit", "type": "number", "default_variant": "small",
            "variants": [v("small", json!(10)), v("big", json!(100))],
            "rules": [{"id": "paying", "constraints": [plan(json!(["pro"]))], "variant": "big"}]}),
        json!({"key": "ratio", "type": "number", "default_variant": "low",
            "variants": [w("low", json!(0.25), 40.0), w("high", json!(0.75), 60.0)]}),
        json!({"key": "layout", "type": "object", "default_variant": "compact",
            "variants": [v("compact", json!({"columns": 1})), v("wide", json!({"columns": 3, "sidebar": true}))],
            "rules": [{"id": "new-app", "variant": "wide", "constraints": [{"attribute": "version",
                        "operator": "SEMVER_GT", "values": ["2.0.0"]}]}]}),
        json!({"key": "beta", "rollout_percent": 30,
            "rules": [{"id": "dutch", "variant": "on", "constraints": [{"attribute": "country",
                        "operator": "IN", "values": ["nl"]}]}]}),
    ]
}

/// A context per subject: plans, staff emails, app versions and countries that vary.
fn contexts(n: usize) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| {
            let plan = ["free", "pro", "team"][i % 3];
            let domain = if i % 7 == 0 {
                "corp.example"
            } else {
                "mail.example"
            };
            let version = ["1.9.0", "2.0.0", "2.1.0"][i % 4 % 3];
            let country = ["nl", "de", "fr"][i % 5 % 3];
            let attrs = json!({"plan": plan, "email": format!("u{i}@{domain}"),
                "version": version, "country": country});
            (format!("user-{i}"), attrs)
        })
        .collect()
}

/// The OFREP reason a native answer stands for (`plain`: the flag's own static answer).
fn ofrep_reason(native: &str, has_rules: bool) -> &'static str {
    match native {
        "targeting_match" => "TARGETING_MATCH",
        "targeting_split" | "split" | "in_rollout" | "outside_rollout" => "SPLIT",
        "disabled" => "DISABLED",
        _ if has_rules => "DEFAULT",
        _ => "STATIC",
    }
}

async fn three_doors(engine: Engine) {
    let Some(python) = test_python() else { return };
    let Some((app, key)) = start(engine).await else {
        return;
    };
    let flags = flags();
    for flag in &flags {
        put(&app, flag.clone()).await;
    }
    let people = contexts(150);
    let kinds = [
        ("colour", "string", json!("none")),
        ("limit", "integer", json!(-1)),
        ("ratio", "float", json!(-1.0)),
        ("layout", "object", json!({})),
        ("beta", "boolean", json!(false)),
    ];
    let typed: Vec<Value> = kinds
        .iter()
        .map(|(flag, kind, default)| {
            let contexts: Vec<Value> = people
                .iter()
                .map(|(subject, attrs)| json!({"targeting_key": subject, "attributes": attrs}))
                .collect();
            json!({"flag": flag, "kind": kind, "default": default, "contexts": contexts})
        })
        .collect();
    let spec = json!({"base_url": app.url("/"), "api_key": key, "typed": typed});
    let seen = tokio::task::spawn_blocking(move || run_client(&python, &spec))
        .await
        .expect("the client task");

    let reader = app.as_key(&key);
    let mut reasons = std::collections::BTreeSet::new();
    for (f, (flag, kind, _)) in kinds.iter().enumerate() {
        let has_rules = flags[f]["rules"].as_array().is_some_and(|r| !r.is_empty());
        for (c, (subject, attrs)) in people.iter().enumerate() {
            let sdk = &seen["typed"][f][c];
            let native = evaluate(reader, flag, subject, attrs).await;
            assert_eq!(
                sdk["error_code"],
                Value::Null,
                "{flag} {kind} for {subject}: {sdk}"
            );
            assert_eq!(
                (&sdk["value"], &sdk["variant"]),
                (&native["value"], &native["variant"]),
                "{flag} for {subject}: the SDK saw {sdk}, the native route {native}"
            );
            let reason = native["reason"].as_str().unwrap_or_default();
            assert_eq!(
                sdk["reason"],
                ofrep_reason(reason, has_rules),
                "{flag} {subject}: {sdk} {native}"
            );
            assert_eq!(
                sdk["metadata"].get("rule_id").unwrap_or(&Value::Null),
                &native["rule"],
                "{sdk}"
            );
            reasons.insert(sdk["reason"].as_str().unwrap_or_default().to_string());

            // admin_ops calls the same evaluation
            if c % 10 == 0 {
                let op = json!({"action": "evaluate_flag",
                    "params": {"key": flag, "subject": subject, "context": attrs}});
                let r = app.as_admin().post("/admin/ops", &op).expect(200).await;
                assert_eq!((&r["ok"], &r["data"]), (&json!(true), &native), "{r}");
            }
        }
    }
    let want: std::collections::BTreeSet<String> = ["TARGETING_MATCH", "SPLIT", "DEFAULT"]
        .map(String::from)
        .into();
    assert_eq!(reasons, want, "the contexts reach every kind of answer");
    let r = app
        .as_admin()
        .post(
            "/admin/ops",
            &json!({"action": "evaluate_flag",
        "params": {"key": "nope", "subject": "u"}}),
        )
        .expect(200)
        .await;
    assert_eq!(r["ok"], false, "{r}");
    app.finish().await;
}
on_both_engines!(
    native_ofrep_sdk_and_admin_ops_agree_for_typed_flags,
    three_doors
);
