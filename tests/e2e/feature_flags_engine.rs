//! The feature-flag engine (issue 21) end to end on both engines, authentication on: every
//! constraint operator matching, not matching, inverted, and refused with the wrong type of
//! value (422 naming the field); weighted variants over 10 000 subjects, sticky across calls
//! and a restart, and how few subjects a change of weights moves.

use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, config_toml, parse};
use crate::on_both_engines;
use crate::requests::Caller;

/// The host with feature_flags, api_clients, admin_ops (granted feature_flags) and
/// system_log, auth on; answers it and a client key with the read role.
pub(crate) async fn start(engine: Engine) -> Option<(TestApp, String)> {
    let db = TestDb::new(engine).await?;
    let packs = ["feature_flags", "api_clients", "admin_ops", "system_log"];
    let toml = config_toml(&db, &packs)
        .admin_key(ADMIN_KEY)
        .grant_packs("admin_ops", &["feature_flags"]);
    let cfg = parse(&db, &toml);
    let app = TestApp::start(db, cfg).await;
    let reader = app.register_client("flag-reader", &["read"]).await;
    Some((app, reader.key))
}

/// Create or replace a flag as the admin (it must be accepted).
pub(crate) async fn put(app: &TestApp, flag: Value) -> Value {
    app.as_admin()
        .post("/system/features", &flag)
        .expect(200)
        .await
}

/// `POST /system/features/{key}/evaluate` with `{subject, context}`.
pub(crate) async fn evaluate(
    reader: Caller<'_>,
    key: &str,
    subject: &str,
    context: &Value,
) -> Value {
    let body = json!({"subject": subject, "context": context});
    reader
        .post(&format!("/system/features/{key}/evaluate"), &body)
        .expect(200)
        .await
}

/// A string flag whose one rule (after two that never match) holds `constraint`: `hit` when
/// it matches, the default `miss` otherwise.
fn probe(key: &str, constraint: Value) -> Value {
    let never = json!({"attribute": "never", "operator": "IN", "values": ["set"]});
    json!({"key": key, "type": "string", "default_variant": "miss",
        "variants": [{"name": "miss", "value": "no"}, {"name": "hit", "value": "yes"}],
        "rules": [{"constraints": [never], "variant": "hit"},
                  {"constraints": [never], "variant": "hit"},
                  {"id": "probe", "constraints": [constraint], "variant": "hit"}]})
}

/// (operator, values, an attribute that matches, one that does not, values of a wrong type)
fn operators() -> Vec<(&'static str, Value, Value, Value, Value)> {
    let day = |d: &str| json!(format!("2026-{d}T00:00:00Z"));
    vec![
        (
            "IN",
            json!(["pro", "team"]),
            json!("team"),
            json!("free"),
            json!([1]),
        ),
        (
            "NOT_IN",
            json!(["free"]),
            json!("pro"),
            json!("free"),
            json!([true]),
        ),
        (
            "STR_CONTAINS",
            json!(["@corp"]),
            json!("a@corp.example"),
            json!("a@b.c"),
            json!([5]),
        ),
        (
            "STR_STARTS_WITH",
            json!(["eu-"]),
            json!("eu-west-1"),
            json!("us-east-1"),
            json!([{}]),
        ),
        (
            "STR_ENDS_WITH",
            json!([".nl"]),
            json!("shop.nl"),
            json!("shop.de"),
            json!([]),
        ),
        ("NUM_EQ", json!([3]), json!(3), json!(4), json!(["3"])),
        ("NUM_GT", json!([18]), json!(30), json!(18), json!([1, 2])),
        (
            "NUM_GTE",
            json!([18]),
            json!(18),
            json!(17.5),
            json!(["many"]),
        ),
        ("NUM_LT", json!([1.5]), json!(1), json!(2), json!([null])),
        ("NUM_LTE", json!([10]), json!(10), json!(11), json!([])),
        (
            "SEMVER_EQ",
            json!(["1.2.3"]),
            json!("1.2.3"),
            json!("1.2.4"),
            json!(["1.2"]),
        ),
        (
            "SEMVER_GT",
            json!(["1.2.3"]),
            json!("1.10.0"),
            json!("1.2.3-rc.1"),
            json!([123]),
        ),
        (
            "SEMVER_LT",
            json!(["2.0.0"]),
            json!("2.0.0-beta.2"),
            json!("2.0.0"),
            json!(["two"]),
        ),
        (
            "DATE_AFTER",
            json!([day("06-01")]),
            day("06-02"),
            day("05-31"),
            json!(["June"]),
        ),
        (
            "DATE_BEFORE",
            json!([day("06-01")]),
            day("05-31"),
            day("06-01"),
            json!([1780000000]),
        ),
        (
            "REGEX",
            json!(["^[a-z]+-[0-9]+$"]),
            json!("user-42"),
            json!("User-42"),
            json!(["(a"]),
        ),
    ]
}

async fn each_operator(engine: Engine) {
    let Some((app, key)) = start(engine).await else {
        return;
    };
    let reader = app.as_key(&key);
    for (op, values, yes, no, wrong) in operators() {
        let name = op.to_ascii_lowercase();
        let plain = json!({"attribute": "a", "operator": op, "values": values});
        let inverted =
            json!({"attribute": "a", "operator": op, "values": values, "inverted": true});
        put(&app, probe(&name, plain)).await;
        put(&app, probe(&format!("{name}_inverted"), inverted)).await;
        for (flag, attribute, want) in [
            (name.clone(), &yes, "hit"),
            (name.clone(), &no, "miss"),
            (format!("{name}_inverted"), &yes, "miss"),
            (format!("{name}_inverted"), &no, "hit"),
        ] {
            let got = evaluate(reader, &flag, "user-1", &json!({"a": attribute})).await;
            assert_eq!(got["variant"], want, "{flag} with a = {attribute}: {got}");
            let (reason, rule) = if want == "hit" {
                ("targeting_match", json!("probe"))
            } else {
                ("default", Value::Null)
            };
            assert_eq!(
                (&got["reason"], &got["rule"]),
                (&json!(reason), &rule),
                "{got}"
            );
            assert_eq!(got["value"], if want == "hit" { "yes" } else { "no" });
            // the query form reads `attr.a` as text: strings, numbers and dates read from it
            let text = match attribute {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let path = format!(
                "/system/features/{flag}/evaluate?subject=user-1&attr.a={}",
                urlencoding(&text)
            );
            let by_query = reader.get(&path).expect(200).await;
            assert_eq!(by_query["variant"], want, "{path}: {by_query}");
        }
        let bad = json!({"attribute": "a", "operator": op, "values": wrong});
        let p = app
            .as_admin()
            .post("/system/features", &probe(&format!("{name}_bad"), bad))
            .expect_problem(422)
            .await;
        assert_eq!(
            p["errors"][0]["field"], "rules[2].constraints[0].values",
            "{op}: {p}"
        );
        app.as_admin()
            .get(&format!("/system/features/{name}_bad"))
            .expect_problem(404)
            .await;
    }
    // an unknown operator is the body's own 422
    let bad = json!({"attribute": "a", "operator": "LIKE", "values": ["x"]});
    let p = app
        .as_admin()
        .post("/system/features", &probe("like", bad))
        .expect_problem(422)
        .await;
    assert_eq!(
        p["errors"][0]["field"], "rules[2].constraints[0].operator",
        "{p}"
    );
    let long = json!({"attribute": "a", "operator": "REGEX", "values": ["a".repeat(300)]});
    let p = app
        .as_admin()
        .post("/system/features", &probe("long", long))
        .expect_problem(422)
        .await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most"),
        "{p}"
    );
    app.finish().await;
}
on_both_engines!(
    every_operator_matches_inverts_and_refuses_wrong_values,
    each_operator
);

/// Percent-encode a query value.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The variant each of `subjects` gets from the native route (50 requests at a time).
async fn assign(app: &TestApp, key: &str, flag: &str, subjects: usize) -> Vec<String> {
    let mut seen = Vec::with_capacity(subjects);
    for start in (0..subjects).step_by(50) {
        let mut batch = Vec::new();
        for i in start..(start + 50).min(subjects) {
            let request = app
                .client
                .get(app.url(&format!(
                    "/system/features/{flag}/evaluate?subject=subject-{i}"
                )))
                .header("x-api-key", key);
            batch.push(tokio::spawn(async move {
                let body: Value = request
                    .send()
                    .await
                    .expect("sent")
                    .json()
                    .await
                    .expect("json");
                body["variant"].as_str().expect("a variant").to_string()
            }));
        }
        for task in batch {
            seen.push(task.await.expect("the request task"));
        }
    }
    seen
}

fn experiment(weights: [f64; 3]) -> Value {
    let variants: Vec<Value> = ["a", "b", "c"]
        .iter()
        .zip(weights)
        .map(|(name, weight)| json!({"name": name, "value": format!("value-{name}"), "weight": weight}))
        .collect();
    json!({"key": "exp", "type": "string", "variants": variants, "default_variant": "a"})
}

async fn weighted(engine: Engine) {
    let Some((app, key)) = start(engine).await else {
        return;
    };
    put(&app, experiment([20.0, 30.5, 49.5])).await;
    let n = 10_000;
    let first = assign(&app, &key, "exp", n).await;
    for (name, weight) in [("a", 20.0), ("b", 30.5), ("c", 49.5)] {
        let share = first.iter().filter(|v| *v == name).count() as f64 * 100.0 / n as f64;
        assert!(
            (share - weight).abs() <= 2.0,
            "{name}: {share} % of {n} for {weight} %"
        );
    }
    let got = evaluate(app.as_key(&key), "exp", "subject-7", &json!({})).await;
    assert_eq!(
        (&got["reason"], &got["variant"]),
        (&json!("split"), &json!(first[7]))
    );
    assert_eq!(got["value"], format!("value-{}", first[7]));
    assert_eq!(
        assign(&app, &key, "exp", 500).await,
        first[..500],
        "the same subject, the same variant"
    );

    // a restart (a new process would hash the same): every subject keeps its variant
    let (db, config) = app.stop().await;
    let app = TestApp::start(db, config).await;
    assert_eq!(
        assign(&app, &key, "exp", 2000).await,
        first[..2000],
        "after a restart"
    );

    // 10 points from c to b: only the subjects in that range move, and they move to b
    put(&app, experiment([20.0, 40.5, 39.5])).await;
    let after = assign(&app, &key, "exp", n).await;
    let moved: Vec<(&String, &String)> = first.iter().zip(&after).filter(|(x, y)| x != y).collect();
    let share = moved.len() as f64 * 100.0 / n as f64;
    assert!(
        (8.0..=11.0).contains(&share),
        "raising b by 10 points moved {share} %"
    );
    assert!(
        moved.iter().all(|(x, y)| *x == "c" && *y == "b"),
        "only c → b moves"
    );
    app.finish().await;
}
on_both_engines!(weighted_variants_split_stick_and_move_few, weighted);
