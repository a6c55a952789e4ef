//! OpenFeature Remote Evaluation Protocol (OFREP) in the feature_flags pack, end to end on
//! both engines with authentication on: the spec's shapes and errors over HTTP, the bulk
//! answer's ETag and 304, a 429's Retry-After, and a real OpenFeature SDK with its OFREP
//! provider (PyPI `openfeature-sdk` + `openfeature-provider-ofrep`) agreeing with the native
//! `/system/features/{key}/evaluate` for every subject.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, root, secured, test_python};
use crate::on_both_engines;
use crate::requests::{Caller, json as read_json};

const ONE: &str = "/ofrep/v1/evaluate/flags";

/// The host with auth on and the flags the tests read, and a client with the read role.
async fn start(engine: Engine) -> Option<(TestApp, String)> {
    let db = TestDb::new(engine).await?;
    let cfg = secured(&db, &["feature_flags", "api_clients", "rate_limits"]);
    let app = TestApp::start(db, cfg).await;
    for flag in [
        json!({"key": "ofrep_on"}),
        json!({"key": "ofrep_off", "enabled": false}),
        json!({"key": "ofrep_split", "rollout_percent": 30, "group": "beta"}),
        json!({"key": "ofrep_zero", "rollout_percent": 0}),
    ] {
        app.as_admin()
            .post("/system/features", &flag)
            .expect(200)
            .await;
    }
    let reader = app.register_client("ofrep-reader", &["read"]).await;
    Some((app, reader.key))
}

fn flag(key: &str) -> String {
    format!("{ONE}/{key}")
}

/// An OFREP error: the status, JSON (not problem+json), the code and its details.
async fn ofrep_error(resp: reqwest::Response, status: u16, key: Option<&str>, code: &str) {
    let content_type = resp.headers().get("content-type").cloned();
    let body = read_json(resp, status).await;
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(
        body["errorDetails"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(body.get("key").and_then(Value::as_str), key, "{body}");
}

/// The native evaluation's `enabled` for `subject`.
async fn native(reader: Caller<'_>, key: &str, subject: &str) -> bool {
    let path = format!("/system/features/{key}/evaluate?subject={subject}");
    reader.get(&path).expect(200).await["enabled"]
        .as_bool()
        .expect("enabled")
}

async fn shapes_and_errors(engine: Engine) {
    let Some((app, key)) = start(engine).await else {
        return;
    };
    let reader = app.as_key(&key);
    let someone = json!({"context": {"targetingKey": "user-1", "plan": "pro"}});

    let on = reader.post(&flag("ofrep_on"), &someone).expect(200).await;
    assert_eq!(on["key"], "ofrep_on");
    assert_eq!(on["value"], true);
    assert_eq!(
        (&on["reason"], &on["variant"]),
        (&json!("STATIC"), &json!("on")),
        "{on}"
    );
    assert!(on["metadata"].is_object(), "{on}");
    // an empty context, or none at all, is valid for a flag that needs no targeting key
    for body in [json!({"context": {}}), json!({})] {
        assert_eq!(
            reader.post(&flag("ofrep_on"), &body).expect(200).await["value"],
            true
        );
    }
    let off = reader
        .post(&flag("ofrep_off"), &json!({"context": {}}))
        .expect(200)
        .await;
    assert_eq!(
        (&off["value"], &off["reason"]),
        (&json!(false), &json!("DISABLED"))
    );
    assert_eq!(off["variant"], "off");
    let zero = reader
        .post(&flag("ofrep_zero"), &json!({"context": {}}))
        .expect(200)
        .await;
    assert_eq!(
        (&zero["value"], &zero["reason"]),
        (&json!(false), &json!("STATIC"))
    );

    let split = reader
        .post(&flag("ofrep_split"), &someone)
        .expect(200)
        .await;
    assert_eq!(split["reason"], "SPLIT");
    assert_eq!(
        split["value"],
        native(reader, "ofrep_split", "user-1").await
    );
    assert_eq!(split["metadata"]["group"], "beta", "{split}");

    let resp = reader
        .post(&flag("ofrep_split"), &json!({"context": {}}))
        .await;
    ofrep_error(resp, 400, Some("ofrep_split"), "TARGETING_KEY_MISSING").await;
    let resp = reader.post(&flag("no_such"), &someone).await;
    ofrep_error(resp, 404, Some("no_such"), "FLAG_NOT_FOUND").await;
    let resp = reader
        .post_raw(&flag("ofrep_on"), "application/json", "{nope")
        .await;
    ofrep_error(resp, 400, Some("ofrep_on"), "PARSE_ERROR").await;
    for context in [
        json!({"context": 3}),
        json!({"context": {"targetingKey": 5}}),
    ] {
        let resp = reader.post(&flag("ofrep_on"), &context).await;
        ofrep_error(resp, 400, Some("ofrep_on"), "INVALID_CONTEXT").await;
    }
    let resp = reader.post(&flag("ofrep_on"), &json!([1])).await;
    ofrep_error(resp, 400, Some("ofrep_on"), "GENERAL").await;
    // 401 as elsewhere: the host's access check, before the pack
    app.anon()
        .post(&flag("ofrep_on"), &someone)
        .expect_problem(401)
        .await;
    app.anon().post(ONE, &someone).expect_problem(401).await;
    app.finish().await;
}
on_both_engines!(ofrep_answers_the_specs_shapes_and_errors, shapes_and_errors);

async fn bulk(engine: Engine) {
    let Some((app, key)) = start(engine).await else {
        return;
    };
    let reader = app.as_key(&key);
    let someone = json!({"context": {"targetingKey": "user-1"}});

    let resp = reader.post(ONE, &someone).await;
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let etag = etag.expect("the bulk answer has an ETag");
    let body = read_json(resp, 200).await;
    let flags = body["flags"].as_array().expect("flags");
    let keys: Vec<_> = flags
        .iter()
        .map(|f| f["key"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(keys, ["ofrep_off", "ofrep_on", "ofrep_split", "ofrep_zero"]);
    assert_eq!(flags[2]["reason"], "SPLIT");
    assert_eq!(
        flags[2]["value"],
        native(reader, "ofrep_split", "user-1").await
    );

    let again = reader
        .post(ONE, &someone)
        .header("if-none-match", &etag)
        .await;
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(
        again.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert!(
        again.bytes().await.map(|b| b.is_empty()).unwrap_or(false),
        "a 304 has no body"
    );
    let other = reader
        .post(ONE, &someone)
        .header("if-none-match", "\"stale\"")
        .await;
    assert_eq!(other.status().as_u16(), 200);

    // without a targeting key the rollout is an error item; the rest evaluate
    let anonymous = reader.post(ONE, &json!({"context": {}})).await;
    assert_ne!(
        anonymous
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok()),
        Some(&*etag)
    );
    let anonymous = read_json(anonymous, 200).await;
    assert_eq!(
        anonymous["flags"][2]["errorCode"], "TARGETING_KEY_MISSING",
        "{anonymous}"
    );
    assert_eq!(anonymous["flags"][1]["value"], true);

    // a change of the flags changes the ETag: the old one no longer answers 304
    app.as_admin()
        .post(
            "/system/features",
            &json!({"key": "ofrep_on", "enabled": false}),
        )
        .expect(200)
        .await;
    let changed = reader
        .post(ONE, &someone)
        .header("if-none-match", &etag)
        .await;
    assert_eq!(changed.status().as_u16(), 200);
    assert_eq!(
        read_json(changed, 200).await["flags"][1]["reason"],
        "DISABLED"
    );

    let resp = reader.post_raw(ONE, "application/json", "{nope").await;
    ofrep_error(resp, 400, None, "PARSE_ERROR").await;
    let resp = reader.post(ONE, &json!({"context": "x"})).await;
    ofrep_error(resp, 400, None, "INVALID_CONTEXT").await;
    app.finish().await;
}
on_both_engines!(ofrep_bulk_has_an_etag_and_answers_304, bulk);

async fn rate_limited(engine: Engine) {
    let Some((app, key)) = start(engine).await else {
        return;
    };
    let rule = json!({"scope": "ip", "key": "127.0.0.3", "window_seconds": 60, "max_requests": 2});
    app.as_admin()
        .post("/system/ratelimits/rules", &rule)
        .expect(201)
        .await;
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .build()
        .expect("client bound to 127.0.0.3");
    let caller = app.as_key(&key).via(&client);
    let body = json!({"context": {"targetingKey": "user-1"}});
    for _ in 0..2 {
        caller.post(&flag("ofrep_on"), &body).expect(200).await;
    }
    let resp = caller.post(&flag("ofrep_on"), &body).await;
    assert_eq!(resp.status().as_u16(), 429);
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    let seconds: Option<u64> = retry.and_then(|s| s.parse().ok());
    assert!(
        seconds.is_some_and(|s| (1..=60).contains(&s)),
        "Retry-After {retry:?}"
    );
    app.finish().await;
}
on_both_engines!(ofrep_rate_limit_says_retry_after_in_seconds, rate_limited);

/// Run `tests/e2e/clients/ofrep_client.py` with `spec` on stdin; answers what it printed.
pub(crate) fn run_client(python: &std::path::Path, spec: &Value) -> Value {
    let script = root().join("tests/e2e/clients/ofrep_client.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the OFREP client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(spec.to_string().as_bytes())
        .expect("write the spec");
    drop(stdin);
    let out = child.wait_with_output().expect("the OFREP client ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the OFREP client failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"))
}

async fn openfeature_sdk(engine: Engine) {
    let Some(python) = test_python() else { return };
    let Some((app, key)) = start(engine).await else {
        return;
    };
    let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let spec = json!({"base_url": app.url("/"), "api_key": key, "rollout_flag": "ofrep_split",
        "keys": keys});
    let seen = tokio::task::spawn_blocking(move || run_client(&python, &spec))
        .await
        .expect("the client task");

    let details = |name: &str| seen[name].clone();
    let on = details("on");
    assert_eq!(
        (&on["value"], &on["variant"], &on["reason"]),
        (&json!(true), &json!("on"), &json!("STATIC")),
        "{on}"
    );
    assert_eq!(details("on_no_context")["value"], true, "{seen}");
    let off = details("off");
    assert_eq!(
        (&off["value"], &off["variant"], &off["reason"]),
        (&json!(false), &json!("off"), &json!("DISABLED")),
        "{off}"
    );
    assert_eq!(seen["rollout_reason"], "SPLIT");
    assert_eq!(
        details("no_targeting_key")["error_code"],
        "TARGETING_KEY_MISSING",
        "{seen}"
    );
    assert_eq!(details("unknown")["error_code"], "FLAG_NOT_FOUND", "{seen}");

    let reader = app.as_key(&key);
    let mut on_count = 0;
    for subject in &keys {
        let got = &seen["rollout"][subject];
        let want = native(reader, "ofrep_split", subject).await;
        assert_eq!(
            got,
            &json!(want),
            "{subject}: the SDK and the native evaluation disagree"
        );
        on_count += usize::from(want);
    }
    let share = on_count as f64 / keys.len() as f64;
    assert!(
        (0.25..=0.35).contains(&share),
        "a 30 % rollout reached {share}"
    );
    app.finish().await;
}
on_both_engines!(an_openfeature_sdk_reads_flags_over_ofrep, openfeature_sdk);
