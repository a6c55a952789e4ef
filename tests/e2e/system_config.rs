//! system_config (pack TZ) end to end, on SQLite and PostgreSQL: every endpoint, its happy
//! path and its errors, the seed's curl examples, and data surviving a restart.

use serde_json::json;

use crate::harness::{Engine, TestApp};
use crate::on_both_engines;

async fn app(engine: Engine) -> Option<TestApp> {
    TestApp::spawn(engine, &["system_config"]).await
}

async fn seed_curl_examples(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    // curl -X POST /system/config/ -d '{"key": "test_key", "value": "test_value"}' → 200 + object
    let created = app
        .post(
            "/system/config/",
            &json!({"key": "test_key", "value": "test_value"}),
        )
        .expect(200)
        .await;
    assert_eq!(created["key"], "test_key");
    assert_eq!(created["value"], "test_value");
    assert_eq!(created["mutable"], true);
    assert_eq!(created["description"], serde_json::Value::Null);
    assert!(uuid::Uuid::parse_str(created["id"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).is_ok());
    // curl /system/config/test_key → the config just created
    let fetched = app.get("/system/config/test_key").expect(200).await;
    assert_eq!(fetched, created);
    // curl /system/config/ | jq .total
    let list = app.get("/system/config/").expect(200).await;
    assert_eq!(list["total"], 1);
    app.finish().await;
}
on_both_engines!(
    seed_curl_examples_give_the_promised_answers,
    seed_curl_examples
);

async fn upsert_updates_in_place(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let first = app
        .post(
            "/system/config",
            &json!({"key": "site.name", "value": "a", "description": "the name"}),
        )
        .expect(200)
        .await;
    let second = app
        .post(
            "/system/config",
            &json!({"key": "site.name", "value": "b", "mutable": true}),
        )
        .expect(200)
        .await;
    assert_eq!(second["id"], first["id"], "an upsert keeps the entry's id");
    assert_eq!(second["value"], "b");
    assert_eq!(
        second["description"],
        serde_json::Value::Null,
        "an upsert replaces the description"
    );
    assert_eq!(second["created_at"], first["created_at"]);
    assert!(second["updated_at"].as_str() >= first["updated_at"].as_str());
    let list = app.get("/system/config").expect(200).await;
    assert_eq!(list["total"], 1);
    app.finish().await;
}
on_both_engines!(upsert_updates_an_existing_entry, upsert_updates_in_place);

async fn list_pages(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    for key in ["c", "a", "e", "b", "d"] {
        app.post("/system/config", &json!({"key": key, "value": key}))
            .expect(200)
            .await;
    }
    let all = app.get("/system/config").expect(200).await;
    assert_eq!(all["total"], 5);
    let keys: Vec<_> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].clone())
        .collect();
    assert_eq!(keys, ["a", "b", "c", "d", "e"], "sorted by key");
    let page = app.get("/system/config?limit=2&offset=2").expect(200).await;
    assert_eq!(page["total"], 5, "total counts every entry, not the page");
    let keys: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].clone())
        .collect();
    assert_eq!(keys, ["c", "d"]);
    for bad in ["limit=0", "limit=100000", "limit=abc", "offset=-1"] {
        let p = app
            .get(&format!("/system/config?{bad}"))
            .expect_problem(422)
            .await;
        let field = bad.split('=').next().unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    app.finish().await;
}
on_both_engines!(list_is_sorted_paged_and_validated, list_pages);

async fn get_and_delete(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let p = app.get("/system/config/missing").expect_problem(404).await;
    assert_eq!(p["instance"], "/system/config/missing");
    app.delete("/system/config/missing")
        .expect_problem(404)
        .await;

    app.post("/system/config", &json!({"key": "gone.soon", "value": "x"}))
        .expect(200)
        .await;
    let resp = app.delete("/system/config/gone.soon/").await;
    assert_eq!(resp.status(), 204);
    app.get("/system/config/gone.soon")
        .expect_problem(404)
        .await;
    app.delete("/system/config/gone.soon")
        .expect_problem(404)
        .await;

    // keys with characters that need percent-encoding in a path still round-trip
    app.post("/system/config", &json!({"key": "a:b", "value": "x"}))
        .expect(200)
        .await;
    let got = app.get("/system/config/a%3Ab").expect(200).await;
    assert_eq!(got["key"], "a:b");
    app.finish().await;
}
on_both_engines!(get_and_delete_with_404s, get_and_delete);

async fn immutable_entries(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    app.post(
        "/system/config",
        &json!({"key": "locked", "value": "v1", "mutable": false}),
    )
    .expect(200)
    .await;
    let p = app
        .post("/system/config", &json!({"key": "locked", "value": "v2"}))
        .expect_problem(409)
        .await;
    assert!(p["detail"].as_str().unwrap().contains("immutable"), "{p}");
    app.post(
        "/system/config",
        &json!({"key": "locked", "value": "v2", "mutable": true}),
    )
    .expect_problem(409)
    .await;
    app.delete("/system/config/locked")
        .expect_problem(409)
        .await;
    let still = app.get("/system/config/locked").expect(200).await;
    assert_eq!(
        still["value"], "v1",
        "a refused change leaves the entry as it was"
    );
    assert_eq!(still["mutable"], false);
    app.finish().await;
}
on_both_engines!(
    immutable_entries_refuse_change_and_delete,
    immutable_entries
);

async fn bad_bodies(engine: Engine) {
    let Some(app) = app(engine).await else { return };

    let cases = [
        (json!({"key": "k"}), "value"),
        (json!({"value": "v"}), "key"),
        (json!({"key": "k", "value": 5}), "value"),
        (
            json!({"key": "k", "value": "v", "mutable": "yes"}),
            "mutable",
        ),
        (json!({"key": "k", "value": "v", "colour": "red"}), "colour"),
        (json!({"key": "has space", "value": "v"}), "key"),
        (json!({"key": "", "value": "v"}), "key"),
        (json!({"key": "k".repeat(129), "value": "v"}), "key"),
        (
            json!({"key": "k", "value": "v", "description": "d".repeat(1025)}),
            "description",
        ),
    ];
    for (body, field) in cases {
        let p = app.post("/system/config", &body).expect_problem(422).await;
        assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
    }
    app.post("/system/config", &json!([1, 2, 3]))
        .expect_problem(422)
        .await;

    app.post_raw("/system/config", "application/json", "{\"key\":")
        .expect_problem(400)
        .await;
    app.post_raw("/system/config", "application/json", "")
        .expect_problem(400)
        .await;
    app.post_raw("/system/config", "application/json", "{} trailing")
        .expect_problem(400)
        .await;
    app.post_raw("/system/config", "text/plain", "key=value")
        .expect_problem(415)
        .await;

    let list = app.get("/system/config").expect(200).await;
    assert_eq!(list["total"], 0, "no bad body stored anything");
    app.finish().await;
}
on_both_engines!(bad_bodies_get_400_415_or_422_naming_the_field, bad_bodies);

async fn survives_restart(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    app.post("/system/config", &json!({"key": "persist", "value": "yes"}))
        .expect(200)
        .await;
    let (db, config) = app.stop().await;
    let app = TestApp::start(db, config).await;
    let got = app.get("/system/config/persist").expect(200).await;
    assert_eq!(got["value"], "yes");
    app.finish().await;
}
on_both_engines!(data_survives_a_restart, survives_restart);

/// POST each body to /system/config at once; every answer must be 200.
async fn post_all_at_once(app: &TestApp, bodies: Vec<serde_json::Value>) {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let request = app.client.post(app.url("/system/config")).json(&body);
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
}

async fn concurrent_writes(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    post_all_at_once(
        &app,
        (0..40)
            .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
            .collect(),
    )
    .await;
    // and the same key from many writers at once: one entry, no errors
    post_all_at_once(
        &app,
        (0..40)
            .map(|i| json!({"key": "hot", "value": format!("v{i}")}))
            .collect(),
    )
    .await;
    let list = app.get("/system/config?limit=1000").expect(200).await;
    assert_eq!(list["total"], 41);
    app.finish().await;
}
on_both_engines!(concurrent_writes_all_land, concurrent_writes);

/// Entries are read through the host cache: every answered write is visible to the next read,
/// even while other readers are filling the cache with what they read before the write.
async fn cached_reads_follow_writes(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let set = |value: String| {
        let request = app
            .client
            .post(app.url("/system/config"))
            .json(&json!({"key": "hot.read", "value": value}));
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    set("v0".into()).await;
    assert_eq!(
        app.get("/system/config/hot.read").expect(200).await["value"],
        "v0"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let request = app.client.get(app.url("/system/config/hot.read"));
            let stop = std::sync::Arc::clone(&stop);
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = request.try_clone().unwrap().send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for i in 1..=30 {
        set(format!("v{i}")).await;
        let got = app.get("/system/config/hot.read").expect(200).await;
        assert_eq!(got["value"], format!("v{i}"), "a read after write {i}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(app.delete("/system/config/hot.read").await.status(), 204);
    app.get("/system/config/hot.read").expect_problem(404).await;
    set("again".into()).await;
    assert_eq!(
        app.get("/system/config/hot.read").expect(200).await["value"],
        "again"
    );
    app.finish().await;
}
on_both_engines!(cached_reads_follow_every_write, cached_reads_follow_writes);
