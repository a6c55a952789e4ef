//! system_log (pack TV) on both engines: writing and searching entries, and the audit trail
//! the host writes for other packs (with the request id), kept across a graceful shutdown.

use serde_json::json;

use crate::harness::{Engine, TestApp, eventually};
use crate::on_both_engines;

async fn app(engine: Engine) -> Option<TestApp> {
    TestApp::spawn(engine, &["system_log", "system_config", "feature_flags"]).await
}

async fn write_and_search(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let e = app
        .post(
            "/system/logs/",
            &json!({"message": "deploy started", "category": "deploy", "context": {"v": 2}}),
        )
        .expect(201)
        .await;
    assert_eq!(e["level"], "INFO", "INFO by default");
    assert_eq!(e["category"], "deploy");
    assert_eq!(e["context"]["v"], 2);
    assert_eq!(e["source"], "api");
    assert!(
        e["correlation_id"].as_str().is_some_and(|c| !c.is_empty()),
        "the request id by default"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).is_ok());
    let e = app.post(
            "/system/logs",
            &json!({"level": "error", "message": "disk full", "category": "ops", "correlation_id": "corr-1", "user_id": "u-7"}),
        ).expect(201).await;
    assert_eq!(
        e["level"], "ERROR",
        "levels are case-insensitive, stored upper-case"
    );
    app.post(
        "/system/logs",
        &json!({"level": "WARNING", "message": "slow", "category": "ops"}),
    )
    .expect(201)
    .await;

    let ops = app.get("/system/logs?category=ops").expect(200).await;
    assert_eq!(ops["total"], 2);
    assert_eq!(ops["items"][0]["message"], "slow", "newest first");
    let errors = app.get("/system/logs?level=error").expect(200).await;
    assert_eq!(errors["total"], 1);
    assert_eq!(errors["items"][0]["user_id"], "u-7");
    let corr = app
        .get("/system/logs?correlation_id=corr-1")
        .expect(200)
        .await;
    assert_eq!(corr["total"], 1);
    let page = app
        .get("/system/logs?category=ops&limit=1&offset=1")
        .expect(200)
        .await;
    assert_eq!(page["items"][0]["message"], "disk full");
    let future = app
        .get("/system/logs?since=2999-01-01T00:00:00Z")
        .expect(200)
        .await;
    assert_eq!(future["total"], 0);
    let past = app
        .get("/system/logs?since=2000-01-01T00:00:00%2B02:00&category=ops")
        .expect(200)
        .await;
    assert_eq!(past["total"], 2);
    app.finish().await;
}
on_both_engines!(entries_are_written_and_filtered, write_and_search);

async fn validation(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    for (body, field) in [
        (json!({"message": "x", "level": "LOUD"}), "level"),
        (json!({"level": "INFO"}), "message"),
        (json!({"message": ""}), "message"),
        (json!({"message": "x", "context": [1]}), "context"),
        (json!({"message": "x", "category": "a b"}), "category"),
        (json!({"message": 5}), "message"),
    ] {
        let p = app.post("/system/logs", &body).expect_problem(422).await;
        assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
    }
    app.post_raw("/system/logs", "application/json", "{")
        .expect_problem(400)
        .await;
    for (query, field) in [
        ("level=LOUD", "level"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
    ] {
        let p = app
            .get(&format!("/system/logs?{query}"))
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{query}");
    }
    app.finish().await;
}
on_both_engines!(bad_entries_and_filters_get_422, validation);

async fn audit_trail(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let resp = app
        .client
        .post(app.url("/system/config"))
        .header("x-request-id", "audit-config-1")
        .json(&json!({"key": "site.name", "value": "Valhalla"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .client
        .post(app.url("/system/features"))
        .header("x-request-id", "audit-flag-1")
        .json(&json!({"key": "beta", "enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let found = eventually(
        &app,
        "/system/logs?category=audit&correlation_id=audit-config-1",
        |v| v["total"] == 1,
    )
    .await;
    let event = &found["items"][0];
    assert_eq!(event["source"], "system_config");
    assert_eq!(event["context"]["action"], "config.create");
    assert_eq!(event["context"]["target"], "system_config/site.name");
    assert_eq!(event["context"]["before"], serde_json::Value::Null);
    assert_eq!(event["context"]["after"]["value"], "Valhalla");

    let found = eventually(
        &app,
        "/system/logs?category=audit&correlation_id=audit-flag-1",
        |v| v["total"] == 1,
    )
    .await;
    assert_eq!(found["items"][0]["context"]["action"], "flag.create");
    assert_eq!(found["items"][0]["source"], "feature_flags");

    // an update records before and after
    app.post(
        "/system/config",
        &json!({"key": "site.name", "value": "Asgard"}),
    )
    .expect(200)
    .await;
    let found = eventually(
        &app,
        "/system/logs?category=audit&source=system_config",
        |v| v["total"] == 2,
    )
    .await;
    let update = &found["items"][0];
    assert_eq!(update["context"]["action"], "config.update");
    assert_eq!(update["context"]["before"]["value"], "Valhalla");
    assert_eq!(update["context"]["after"]["value"], "Asgard");
    app.finish().await;
}
on_both_engines!(
    config_and_flag_writes_are_audited_with_the_request_id,
    audit_trail
);

async fn shutdown_flushes(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    for i in 0..60 {
        app.post(
            "/system/config",
            &json!({"key": format!("k{i}"), "value": "v"}),
        )
        .expect(200)
        .await;
    }
    let (db, cfg) = app.stop().await;
    let app = TestApp::start(db, cfg).await;
    let audit = app
        .get("/system/logs?category=audit&source=system_config")
        .expect(200)
        .await;
    assert_eq!(
        audit["total"], 60,
        "every audit event queued before shutdown was written"
    );
    app.finish().await;
}
on_both_engines!(
    no_audit_event_is_lost_on_graceful_shutdown,
    shutdown_flushes
);

/// Without the system_log pack, audit events only go to the process log: nothing breaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_work_without_the_log_pack() {
    let app = TestApp::spawn(Engine::Sqlite, &["system_config"])
        .await
        .unwrap();
    app.post("/system/config", &json!({"key": "k", "value": "v"}))
        .expect(200)
        .await;
    app.get("/system/logs").expect_problem(404).await;
    app.finish().await;
}
