//! retention (pack UI) end to end on both engines with authentication on: policies (upsert,
//! list, one with its last run; checked input; admin to write, read to look), and the tick
//! that purges through the owning packs: exactly the rows older than the cut-off go, in
//! batches, the run is recorded (count, batches, duration) in the policy's `last_run` and in
//! the system log, and a category whose owning pack is not enabled gets an `error`, not a
//! crash. Also honeypots' telemetry purge route, which retention calls.

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, eventually, secured};
use crate::on_both_engines;
use crate::system_log_paging::{ago, count, exec, log_row, seed_logs};

const RETENTION: &str = "/system/retention";
const TELEMETRY_PURGE: &str = "/system/security/honeypots/telemetry/purge";

/// The host with retention ticking every second, purging 10 rows a call.
async fn start(engine: Engine) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let packs = [
        "api_clients",
        "system_log",
        "honeypots",
        "security_policy",
        "retention",
    ];
    let mut cfg = secured(&db, &packs);
    cfg.runtime.deadline_ms = 5_000;
    let retention = cfg.packs.get_mut("retention").expect("retention is loaded");
    retention.grants.packs = ["system_log", "honeypots", "notifications", "exports"]
        .map(String::from)
        .to_vec();
    for (name, value) in [("interval_seconds", 1), ("batch_size", 10)] {
        retention
            .settings
            .insert(name.into(), toml::Value::Integer(value));
    }
    Some(TestApp::start(db, cfg).await)
}

/// `n` telemetry rows hit `days` days ago, written straight into the database.
async fn seed_telemetry(app: &TestApp, n: i64, days: i64) {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let id = uuid::Uuid::now_v7();
            let at = ago(days, i);
            format!("('{id}', 'hp', 'sensor', '203.0.113.9', '{{}}', 'low', '{at}')")
        })
        .collect();
    exec(
        app,
        &format!(
            "INSERT INTO honeypot_telemetry (id, honeypot_id, origin, source_ip, headers, \
             severity, at) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
}

async fn policies(engine: Engine) {
    let Some(app) = start(engine).await else {
        return;
    };
    let reader = app.register_client("reader", &["read"]).await;
    let writer = app.register_client("writer", &["read", "write"]).await;
    let body = json!({"category": "exports", "retain_days": 30, "enabled": false});
    let p = app.as_admin().post(RETENTION, &body).expect(200).await;
    assert_eq!(
        (p["category"].clone(), p["retain_days"].clone()),
        (json!("exports"), json!(30))
    );
    assert_eq!(
        (p["enabled"].clone(), p["status"].clone()),
        (json!(false), json!("off"))
    );
    assert_eq!(p["last_run"], Value::Null, "a disabled policy never runs");
    let changed = json!({"category": "exports", "retain_days": 7, "enabled": false});
    let p = app.as_admin().post(RETENTION, &changed).expect(200).await;
    assert_eq!(p["retain_days"], 7, "an upsert changes the policy");
    app.as_admin()
        .post(
            RETENTION,
            &json!({"category": "system_log", "retain_days": 3650}),
        )
        .expect(200)
        .await;
    let all = app.as_key(&reader.key).get(RETENTION).expect(200).await;
    assert_eq!(all["total"], 2);
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["category"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exports", "system_log"]);
    let one = app
        .as_key(&reader.key)
        .get(&format!("{RETENTION}/exports"))
        .expect(200)
        .await;
    assert_eq!(one["retain_days"], 7);
    for (body, field) in [
        (json!({"category": "logs", "retain_days": 30}), "category"),
        (
            json!({"category": "exports", "retain_days": 0}),
            "retain_days",
        ),
        (
            json!({"category": "exports", "retain_days": 3651}),
            "retain_days",
        ),
        (json!({"category": "exports"}), "retain_days"),
        (
            json!({"category": "exports", "retain_days": 1, "keep": true}),
            "keep",
        ),
        (
            json!({"category": "exports", "retain_days": "30"}),
            "retain_days",
        ),
    ] {
        let p = app
            .as_admin()
            .post(RETENTION, &body)
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    app.as_admin()
        .get(&format!("{RETENTION}/logs"))
        .expect_problem(404)
        .await;
    let p = app
        .as_admin()
        .get(&format!("{RETENTION}/honeypot_telemetry"))
        .expect_problem(404)
        .await;
    assert!(
        p["detail"].as_str().unwrap().contains("honeypot_telemetry"),
        "{p}"
    );
    app.as_key(&writer.key)
        .post(RETENTION, &body)
        .expect_problem(403)
        .await;
    app.as_key(&reader.key)
        .post(RETENTION, &body)
        .expect_problem(403)
        .await;
    app.anon().get(RETENTION).expect_problem(401).await;
    app.finish().await;
}
on_both_engines!(policies_are_upserted_listed_and_checked, policies);

/// The category's policy once its first run is recorded.
async fn after_a_run(app: &TestApp, category: &str) -> Value {
    let path = format!("{RETENTION}/{category}");
    eventually(app, &path, |p| !p["last_run"].is_null()).await
}

async fn purges(engine: Engine) {
    let Some(app) = start(engine).await else {
        return;
    };
    let old: Vec<_> = (0..25)
        .map(|i| log_row(&ago(40, i), "INFO", "old", "o"))
        .collect();
    let young: Vec<_> = (0..5)
        .map(|i| log_row(&ago(20, i), "INFO", "young", "y"))
        .collect();
    // one just past the cut-off: 30 days and a minute ago
    let edge = vec![log_row(&ago(30, 60), "INFO", "old", "edge")];
    seed_logs(&app, old).await;
    seed_logs(&app, young).await;
    seed_logs(&app, edge).await;
    seed_telemetry(&app, 12, 10).await;
    seed_telemetry(&app, 4, 1).await;
    for (category, days) in [
        ("system_log", 30),
        ("honeypot_telemetry", 5),
        ("notifications_delivered", 3),
    ] {
        let body = json!({"category": category, "retain_days": days});
        app.as_admin().post(RETENTION, &body).expect(200).await;
    }
    let logs = after_a_run(&app, "system_log").await;
    let run = &logs["last_run"];
    assert_eq!(run["error"], Value::Null, "{logs}");
    assert_eq!(
        (run["removed"].clone(), run["batches"].clone()),
        (json!(26), json!(3)),
        "{run}"
    );
    assert_eq!(run["complete"], true);
    assert!(run["duration_ms"].as_i64().is_some_and(|ms| ms >= 0));
    let sql = |c: &str| format!("SELECT COUNT(*) FROM system_logs WHERE category = '{c}'");
    assert_eq!(
        (
            count(&app, &sql("old")).await,
            count(&app, &sql("young")).await
        ),
        (0, 5)
    );

    let telemetry = after_a_run(&app, "honeypot_telemetry").await;
    assert_eq!(telemetry["last_run"]["removed"], 12, "{telemetry}");
    assert_eq!(telemetry["last_run"]["batches"], 2);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM honeypot_telemetry").await,
        4
    );

    // notifications is not enabled here: the run says so, and nothing breaks
    let missing = after_a_run(&app, "notifications_delivered").await;
    let error = missing["last_run"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("notifications") && error.contains("not enabled"),
        "{missing}"
    );
    assert_eq!(
        missing["status"], "idle",
        "it is tried again at the next interval"
    );

    // each run is in the system log, with its count
    let found = eventually(&app, "/system/logs?category=retention&limit=100", |v| {
        v["items"].as_array().is_some_and(|items| {
            items.iter().any(|e| {
                e["context"]["category"] == "system_log" && e["context"]["removed"] == "26"
            })
        })
    })
    .await;
    let logged = found["items"].as_array().unwrap();
    assert!(
        logged
            .iter()
            .any(|e| e["level"] == "WARNING"
                && e["context"]["category"] == "notifications_delivered")
    );

    // the next runs find nothing more to remove
    let again = eventually(&app, &format!("{RETENTION}/system_log"), |p| {
        p["last_run"]["id"] != run["id"]
    })
    .await;
    assert_eq!(
        (
            again["last_run"]["removed"].clone(),
            again["last_run"]["batches"].clone()
        ),
        (json!(0), json!(1))
    );
    app.finish().await;
}
on_both_engines!(
    runs_remove_exactly_what_is_past_retention_and_report_it,
    purges
);

async fn telemetry_purge(engine: Engine) {
    let Some(app) = start(engine).await else {
        return;
    };
    let writer = app.register_client("writer", &["read", "write"]).await;
    seed_telemetry(&app, 7, 10).await;
    seed_telemetry(&app, 2, 1).await;
    let before = ago(5, 0);
    let purge = |limit: i64| {
        let body = json!({"before": before, "limit": limit});
        let app = &app;
        async move {
            app.as_admin()
                .post(TELEMETRY_PURGE, &body)
                .expect(200)
                .await
        }
    };
    assert_eq!(purge(4).await["removed"], 4);
    assert_eq!(purge(4).await["removed"], 3);
    assert_eq!(purge(4).await["removed"], 0);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM honeypot_telemetry").await,
        2
    );
    for (body, field) in [
        (json!({"before": "2026-13-01T00:00:00Z"}), "before"),
        (json!({"before": before, "limit": -1}), "limit"),
        (json!({"before": before, "limit": 5001}), "limit"),
    ] {
        let p = app
            .as_admin()
            .post(TELEMETRY_PURGE, &body)
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    let body = json!({"before": before});
    app.as_key(&writer.key)
        .post(TELEMETRY_PURGE, &body)
        .expect_problem(403)
        .await;
    app.finish().await;
}
on_both_engines!(
    the_telemetry_purge_route_removes_the_oldest_and_checks_its_input,
    telemetry_purge
);
