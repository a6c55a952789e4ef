//! feature_flags (pack UA) end to end on both engines: CRUD, group filter, evaluation with a
//! stable rollout, and cache invalidation on write.

use serde_json::json;

use crate::harness::{Engine, TestApp};
use crate::on_both_engines;

async fn app(engine: Engine) -> Option<TestApp> {
    TestApp::spawn(engine, &["feature_flags"]).await
}

async fn seed_examples(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    // curl -X POST /system/features/ -d '{"key": "test_flag", "enabled": true, "group": "test"}'
    let flag = app
        .post(
            "/system/features/",
            &json!({"key": "test_flag", "enabled": true, "group": "test"}),
        )
        .expect(200)
        .await;
    assert_eq!(flag["key"], "test_flag");
    assert_eq!(flag["group"], "test");
    assert_eq!(flag["rollout_percent"], 100);
    // curl /system/features/test_flag → { "key": "test_flag", "enabled": true }
    let got = app.get("/system/features/test_flag").expect(200).await;
    assert_eq!(got["key"], "test_flag");
    assert_eq!(got["enabled"], true);
    // curl /system/features/ | jq .total
    assert_eq!(app.get("/system/features/").expect(200).await["total"], 1);
    app.finish().await;
}
on_both_engines!(seed_curl_examples_give_the_promised_answers, seed_examples);

async fn crud_and_groups(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let created = app
        .post("/system/features", &json!({"key": "a"}))
        .expect(200)
        .await;
    assert_eq!(created["enabled"], true, "new flags default to enabled");
    assert_eq!(created["group"], serde_json::Value::Null);
    for (key, group) in [("b", "ui"), ("c", "ui"), ("d", "security")] {
        app.post("/system/features", &json!({"key": key, "group": group}))
            .expect(200)
            .await;
    }
    let updated = app
        .post(
            "/system/features",
            &json!({"key": "a", "enabled": false, "group": "ui", "description": "off"}),
        )
        .expect(200)
        .await;
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["enabled"], false);

    let all = app.get("/system/features").expect(200).await;
    assert_eq!(all["total"], 4);
    let ui = app.get("/system/features?group=ui").expect(200).await;
    assert_eq!(ui["total"], 3);
    let keys: Vec<_> = ui["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].clone())
        .collect();
    assert_eq!(keys, ["a", "b", "c"]);
    let page = app
        .get("/system/features?group=ui&limit=1&offset=1")
        .expect(200)
        .await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"][0]["key"], "b");
    assert_eq!(
        app.get("/system/features?group=none").expect(200).await["total"],
        0
    );

    app.get("/system/features/nope").expect_problem(404).await;
    assert_eq!(app.delete("/system/features/d").await.status(), 204);
    app.get("/system/features/d").expect_problem(404).await;
    app.delete("/system/features/d").expect_problem(404).await;
    app.finish().await;
}
on_both_engines!(crud_with_group_filter_and_404s, crud_and_groups);

async fn validation(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let cases = [
        (
            json!({"key": "x", "rollout_percent": 101}),
            "rollout_percent",
        ),
        (
            json!({"key": "x", "rollout_percent": -1}),
            "rollout_percent",
        ),
        (json!({"key": "x", "enabled": "yes"}), "enabled"),
        (json!({"key": "bad key"}), "key"),
        (json!({"enabled": true}), "key"),
        (json!({"key": "x", "group": "no spaces please"}), "group"),
        (json!({"key": "x", "owner": "me"}), "owner"),
    ];
    for (body, field) in cases {
        let p = app
            .post("/system/features", &body)
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
    }
    app.post_raw("/system/features", "application/json", "{nope")
        .expect_problem(400)
        .await;
    assert_eq!(app.get("/system/features").expect(200).await["total"], 0);
    app.finish().await;
}
on_both_engines!(bad_bodies_are_refused_naming_the_field, validation);

async fn evaluation(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    app.post("/system/features", &json!({"key": "on"}))
        .expect(200)
        .await;
    app.post("/system/features", &json!({"key": "off", "enabled": false}))
        .expect(200)
        .await;
    app.post(
        "/system/features",
        &json!({"key": "none", "rollout_percent": 0}),
    )
    .expect(200)
    .await;
    app.post(
        "/system/features",
        &json!({"key": "part", "rollout_percent": 30}),
    )
    .expect(200)
    .await;

    let e = app
        .get("/system/features/on/evaluate?subject=u1")
        .expect(200)
        .await;
    assert_eq!(
        (
            e["key"].as_str(),
            e["enabled"].as_bool(),
            e["reason"].as_str()
        ),
        (Some("on"), Some(true), Some("enabled"))
    );
    let e = app
        .get("/system/features/off/evaluate?subject=u1")
        .expect(200)
        .await;
    assert_eq!(
        (e["enabled"].as_bool(), e["reason"].as_str()),
        (Some(false), Some("disabled"))
    );
    let e = app.get("/system/features/none/evaluate").expect(200).await;
    assert_eq!(e["enabled"], false);
    let p = app
        .get("/system/features/part/evaluate")
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "subject");
    app.get("/system/features/missing/evaluate?subject=u1")
        .expect_problem(404)
        .await;

    // the same subject always gets the same answer
    let first = app
        .get("/system/features/part/evaluate?subject=alice")
        .expect(200)
        .await;
    for _ in 0..5 {
        let again = app
            .get("/system/features/part/evaluate?subject=alice")
            .expect(200)
            .await;
        assert_eq!(again["enabled"], first["enabled"]);
    }
    app.finish().await;
}
on_both_engines!(evaluate_answers_enabled_and_reason, evaluation);

/// 10 000 subjects at 30 % land within ±2 % of 30 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_share_matches_the_percentage() {
    let app = app(Engine::Sqlite).await.unwrap();
    app.post(
        "/system/features",
        &json!({"key": "checkout", "rollout_percent": 30}),
    )
    .expect(200)
    .await;
    let subjects = 10_000;
    let mut enabled = 0;
    let mut start = 0;
    while start < subjects {
        let mut batch = Vec::new();
        for i in start..(start + 50).min(subjects) {
            let client = app.client.clone();
            let url = app.url(&format!(
                "/system/features/checkout/evaluate?subject=user-{i}"
            ));
            batch.push(tokio::spawn(async move {
                let body: serde_json::Value =
                    client.get(url).send().await.unwrap().json().await.unwrap();
                body["enabled"].as_bool().unwrap()
            }));
        }
        for t in batch {
            enabled += usize::from(t.await.unwrap());
        }
        start += 50;
    }
    let share = enabled as f64 / subjects as f64;
    assert!((0.28..=0.32).contains(&share), "{share}");
    app.finish().await;
}

async fn write_then_read(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    for i in 0..20 {
        let enabled = i % 2 == 0;
        let percent = 10 + i;
        app.post(
            "/system/features",
            &json!({"key": "flip", "enabled": enabled, "rollout_percent": percent}),
        )
        .expect(200)
        .await;
        // read twice: the first read fills the cache, the second is served from it
        for _ in 0..2 {
            let got = app.get("/system/features/flip").expect(200).await;
            assert_eq!(
                got["enabled"], enabled,
                "write {i} is visible on the next read"
            );
            assert_eq!(got["rollout_percent"], percent);
        }
        let e = app
            .get("/system/features/flip/evaluate?subject=s")
            .expect(200)
            .await;
        if !enabled {
            assert_eq!(e["reason"], "disabled");
        }
    }
    assert_eq!(app.delete("/system/features/flip").await.status(), 204);
    app.get("/system/features/flip").expect_problem(404).await;
    app.finish().await;
}
on_both_engines!(a_write_is_visible_on_the_next_read, write_then_read);
