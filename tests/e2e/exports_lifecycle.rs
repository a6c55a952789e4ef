//! exports (pack UH) end to end, the job's life: bad requests (unknown source, format or
//! filter, the source's own validation, who may ask) refused with nothing queued, and an
//! empty export; cancelling (admin only; a running job stops
//! and its file goes), the 409 of a download before done, purging finished jobs with their
//! files, the refusal of a pack without the `artefacts` grant, and a host killed with
//! SIGKILL mid-export: after a restart the job begins again from nothing, once its lease
//! lapses, and completes once with a whole, correct artefact.

use std::time::Duration;

use serde_json::{Value, json};

use crate::exports::{
    CONFIG_COLUMNS, EXPORTS, config_text, csv_records, finished, id, parse, seed_config,
};
use crate::harness::{ADMIN_KEY, Engine, ServerProcess, TestApp, TestDb};
use crate::on_both_engines;

fn artefact(app: &TestApp, id: &str, format: &str) -> std::path::PathBuf {
    app.db
        .dir
        .path()
        .join(format!(".valhalla/artefacts/exports/{id}.{format}"))
}

async fn start(engine: Engine, artefacts: bool, settings: &str) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let cfg = parse(&db, &config_text(&db, artefacts, settings));
    Some(TestApp::start(db, cfg).await)
}

/// A slow export (one row a page) is cancelled while it runs: it stops and its file goes.
async fn cancel(engine: Engine) {
    let Some(app) = start(engine, true, "page_size = 1").await else {
        return;
    };
    let writer = app.register_client("writer", &["read", "write"]).await;
    seed_config(&app, 2000).await;
    let body = json!({"source": "system_config", "format": "csv"});
    let job = app
        .as_key(&writer.key)
        .post(EXPORTS, &body)
        .expect(202)
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    let download = format!("{EXPORTS}/{id}/download");
    let p = app
        .as_key(&writer.key)
        .get(&download)
        .expect_problem(409)
        .await;
    assert!(
        p["detail"].as_str().unwrap().contains("only a done export"),
        "{p}"
    );
    // let it start writing
    for _ in 0..100 {
        let now = app
            .as_admin()
            .get(&format!("{EXPORTS}/{id}"))
            .expect(200)
            .await;
        if now["rows"].as_i64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = format!("{EXPORTS}/{id}/status");
    let cancelled = json!({"status": "cancelled"});
    app.as_key(&writer.key)
        .post(&status, &cancelled)
        .expect_problem(403)
        .await;
    let p = app
        .as_admin()
        .post(&status, &json!({"status": "done"}))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "status");
    let after = app.as_admin().post(&status, &cancelled).expect(200).await;
    assert_eq!(after["status"], "cancelled");
    assert!(after["finished_at"].is_string());
    let p = app
        .as_admin()
        .post(&status, &cancelled)
        .expect_problem(409)
        .await;
    assert!(p["detail"].as_str().unwrap().contains("cancelled"), "{p}");
    app.as_admin()
        .post(&format!("{EXPORTS}/nope/status"), &cancelled)
        .expect_problem(404)
        .await;
    // the tick notices at its next page, stops, and the file does not come back
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = app
        .as_admin()
        .get(&format!("{EXPORTS}/{id}"))
        .expect(200)
        .await;
    assert_eq!(later["status"], "cancelled");
    assert!(
        !artefact(&app, &id, "csv").exists(),
        "the partial file is removed"
    );
    app.as_key(&writer.key)
        .get(&download)
        .expect_problem(409)
        .await;
    app.finish().await;
}
on_both_engines!(a_running_export_is_cancelled, cancel);

async fn purge(engine: Engine) {
    let Some(app) = start(engine, true, "").await else {
        return;
    };
    let writer = app.register_client("writer", &["read", "write"]).await;
    seed_config(&app, 10).await;
    let body = json!({"source": "system_config", "format": "json"});
    let job = app
        .as_key(&writer.key)
        .post(EXPORTS, &body)
        .expect(202)
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        finished(&app, &id, Duration::from_secs(30)).await["status"],
        "done"
    );
    assert!(artefact(&app, &id, "json").is_file());
    let purge = format!("{EXPORTS}/purge");
    let past = json!({"before": "2000-01-01T00:00:00Z", "limit": 10});
    assert_eq!(
        app.as_admin().post(&purge, &past).expect(200).await["removed"],
        0
    );
    let future = json!({"before": "2999-01-01T00:00:00Z", "limit": 10});
    app.as_key(&writer.key)
        .post(&purge, &future)
        .expect_problem(403)
        .await;
    for (bad, field) in [
        (json!({"before": "soon"}), "before"),
        (
            json!({"before": "2999-01-01T00:00:00Z", "limit": 0}),
            "limit",
        ),
        (
            json!({"before": "2999-01-01T00:00:00Z", "limit": 5001}),
            "limit",
        ),
    ] {
        let p = app.as_admin().post(&purge, &bad).expect_problem(422).await;
        assert_eq!(p["errors"][0]["field"], field, "{bad}");
    }
    assert_eq!(
        app.as_admin().post(&purge, &future).expect(200).await["removed"],
        1
    );
    assert!(
        !artefact(&app, &id, "json").exists(),
        "the file goes with the job"
    );
    app.as_admin()
        .get(&format!("{EXPORTS}/{id}"))
        .expect_problem(404)
        .await;
    assert_eq!(
        app.as_admin().post(&purge, &future).expect(200).await["removed"],
        0
    );
    app.finish().await;
}
on_both_engines!(purge_removes_finished_jobs_and_their_files, purge);

/// Without `artefacts = true` the pack has nowhere to write: refused at once, nothing queued.
async fn ungranted(engine: Engine) {
    let Some(app) = start(engine, false, "").await else {
        return;
    };
    let body = json!({"source": "system_config", "format": "csv"});
    let p = app
        .as_admin()
        .post(EXPORTS, &body)
        .expect_problem(503)
        .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("may not write artefacts"),
        "{p}"
    );
    assert_eq!(app.as_admin().get(EXPORTS).expect(200).await["total"], 0);
    assert!(!app.db.dir.path().join(".valhalla/artefacts").exists());
    app.finish().await;
}
on_both_engines!(a_pack_without_the_artefacts_grant_is_refused, ungranted);

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let resp = client
        .get(url)
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.unwrap()
}

async fn killed(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    // five rows a page: a thousand pages, so the kill lands mid-export; a short lease
    let text = config_text(&db, true, "page_size = 5\nlease_ms = 2000");
    let cfg = parse(&db, &text);
    let app = TestApp::start(db, cfg).await;
    seed_config(&app, 5000).await;
    let (db, cfg) = app.stop().await;

    let server = ServerProcess::start(&db, &text);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}{EXPORTS}"))
        .header("x-api-key", ADMIN_KEY)
        .json(&json!({"source": "system_config", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut seen = Value::Null;
    for _ in 0..400 {
        seen = get_json(&client, &format!("{base}{EXPORTS}/{id}")).await;
        if seen["rows"].as_i64() >= Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    assert_eq!(seen["status"], "running", "killed mid-export: {seen}");
    assert!(seen["rows"].as_i64() < Some(5000), "{seen}");

    let app = TestApp::start(db, cfg).await;
    let done = finished(&app, &id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "begun again once, after the lease lapsed: {done}"
    );
    assert_eq!(done["rows"], 5000);
    let resp = app
        .as_admin()
        .get(&format!("{EXPORTS}/{id}/download"))
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let records = csv_records(&resp.bytes().await.unwrap(), &CONFIG_COLUMNS);
    let keys: Vec<&str> = records.iter().map(|r| r[1].as_str()).collect();
    let want: Vec<String> = (0..5000).map(|i| format!("bulk.{i:05}")).collect();
    assert_eq!(keys, want, "every row once, in order");
    let files = std::fs::read_dir(app.db.dir.path().join(".valhalla/artefacts/exports")).unwrap();
    assert_eq!(files.count(), 1, "one artefact");
    app.finish().await;
}
on_both_engines!(
    a_host_killed_mid_export_completes_it_once_after_restart,
    killed
);

async fn bad_requests(engine: Engine) {
    let Some(app) = start(engine, true, "").await else {
        return;
    };
    let writer = app.register_client("writer", &["read", "write"]).await;
    let reader = app.register_client("reader", &["read"]).await;
    let cases = [
        (json!({"source": "nope", "format": "csv"}), "source"),
        (
            json!({"source": "system_config", "format": "xml"}),
            "format",
        ),
        (
            json!({"source": "system_config", "format": "csv", "filter": {"x": "1"}}),
            "filter.x",
        ),
        (
            json!({"source": "feature_flags", "format": "csv", "filter": {"group": 1}}),
            "filter.group",
        ),
        (
            json!({"source": "system_log", "format": "csv", "filter": {"limit": "5"}}),
            "filter.limit",
        ),
        // the source's own validation, asked before anything is queued
        (
            json!({"source": "system_log", "format": "json", "filter": {"level": "LOUD"}}),
            "filter.level",
        ),
        (
            json!({"source": "system_log", "format": "json", "filter": {"since": "soon"}}),
            "filter.since",
        ),
        (json!({"format": "csv"}), "source"),
        (
            json!({"source": "system_config", "format": "csv", "extra": 1}),
            "extra",
        ),
    ];
    for (body, field) in cases {
        let p = app
            .as_key(&writer.key)
            .post(EXPORTS, &body)
            .expect_problem(422)
            .await;
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body}: {p}");
    }
    app.as_key(&writer.key)
        .post_raw(EXPORTS, "application/json", "{")
        .expect_problem(400)
        .await;
    let ok = json!({"source": "feature_flags", "format": "csv", "filter": {"group": "ui"}});
    app.as_key(&reader.key)
        .post(EXPORTS, &ok)
        .expect_problem(403)
        .await;
    app.anon().post(EXPORTS, &ok).expect_problem(401).await;
    app.anon().get(EXPORTS).expect_problem(401).await;
    let list = app.as_admin().get(EXPORTS).expect(200).await;
    assert_eq!(list["total"], 0, "nothing was queued: {list}");
    // a filter the source takes: an empty export, json `[]` and csv with the header alone
    let job = app.as_key(&writer.key).post(EXPORTS, &ok).expect(202).await;
    let done = finished(&app, &id(&job), Duration::from_secs(30)).await;
    assert_eq!(
        (done["status"].as_str(), done["rows"].as_i64()),
        (Some("done"), Some(0))
    );
    let body = app
        .as_admin()
        .get(&format!("{EXPORTS}/{}/download", id(&job)))
        .send()
        .await;
    let text = body.text().await.unwrap();
    assert!(
        text.starts_with("id,key,enabled,description,group,") && text.ends_with("\r\n"),
        "{text}"
    );
    app.finish().await;
}
on_both_engines!(bad_requests_are_refused_and_nothing_is_queued, bad_requests);
