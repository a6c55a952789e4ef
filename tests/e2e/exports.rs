//! exports (pack UH) end to end on both engines with authentication on: 5 000 config entries
//! exported as csv and as json, downloaded (streamed by the host from the artefact file) and
//! checked complete and correct with independent readers (the `csv` crate, serde_json) and the
//! right content types; the jobs list; system_config's and feature_flags' keyset paging the
//! export walks. Bad requests, cancelling, purging, the grant and a host killed mid-export are
//! in `exports_lifecycle.rs`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, config_toml};
use crate::on_both_engines;
use crate::system_log_paging::exec;

pub const EXPORTS: &str = "/system/exports";
pub const PACKS: &[&str] = &[
    "api_clients",
    "system_config",
    "feature_flags",
    "system_log",
    "exports",
];
/// system_config's CSV columns, as the export writes its header.
pub const CONFIG_COLUMNS: [&str; 7] = [
    "id",
    "key",
    "value",
    "description",
    "mutable",
    "created_at",
    "updated_at",
];

/// The config text: [`PACKS`] with authentication on, exports granted its sources and (when
/// `artefacts`) its artefact directory, with `settings` (TOML lines) for it.
pub fn config_text(db: &TestDb, artefacts: bool, settings: &str) -> String {
    let mut text = config_toml(db, PACKS)
        .admin_key(ADMIN_KEY)
        .guard_order(&["api_clients"])
        .to_toml();
    text.push_str(&format!(
        "[packs.exports.grants]\npacks = [\"system_config\", \"feature_flags\", \"system_log\"]\n\
         artefacts = {artefacts}\n[packs.exports.settings]\n{settings}\n"
    ));
    text
}

pub fn parse(db: &TestDb, text: &str) -> valhalla::Config {
    let path = db.dir.path().join("config.toml");
    let mut cfg = valhalla::Config::parse(text, &path)
        .unwrap_or_else(|e| panic!("test config does not parse: {e}\n{text}"));
    cfg.runtime.deadline_ms = 5_000;
    cfg
}

async fn start(engine: Engine, artefacts: bool, settings: &str) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let cfg = parse(&db, &config_text(&db, artefacts, settings));
    Some(TestApp::start(db, cfg).await)
}

/// `n` config entries `bulk.NNNNN` written straight into the database (5 000 POSTs would be
/// most of the test's time), their values holding what CSV must quote: commas, quotes, line
/// breaks, non-ASCII.
pub async fn seed_config(app: &TestApp, n: usize) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                let value = match i % 4 {
                    0 => format!("plain {i}"),
                    1 => format!("a, b and \"{i}\""),
                    2 => format!("line one\r\nline 'two' {i}"),
                    _ => format!("Ünïcødé ✓ {i}"),
                };
                let description = if i % 2 == 0 {
                    "NULL".to_string()
                } else {
                    format!("'d{i}'")
                };
                format!(
                    "('{}', 'bulk.{i:05}', '{}', {description}, {}, '{now}', '{now}')",
                    uuid::Uuid::now_v7(),
                    value.replace('\'', "''"),
                    if i % 3 == 0 { "FALSE" } else { "TRUE" }
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO system_config (id, key, value, description, mutable, created_at, \
             updated_at) VALUES {}",
            rows.join(", ")
        );
        exec(app, &sql).await;
    }
}

/// Every config entry, walked by keyset as the export walks it.
async fn all_entries(app: &TestApp) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = "/system/config?limit=1000".to_string();
    loop {
        let page = app.as_admin().get(&path).expect(200).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/system/config?limit=1000&cursor={c}"),
            None => return items,
        }
    }
}

/// Poll the export until it is finished; answers it.
pub async fn finished(app: &TestApp, id: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let job = app
            .as_admin()
            .get(&format!("{EXPORTS}/{id}"))
            .expect(200)
            .await;
        if ["done", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(
            started.elapsed() < within,
            "the export never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn id(job: &Value) -> String {
    job["id"].as_str().unwrap().to_string()
}

/// The CSV cell of a JSON value, as the export writes it.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The records of a CSV download, parsed by the `csv` crate; checks the header.
pub fn csv_records(body: &[u8], columns: &[&str]) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, columns);
    reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

async fn csv_and_json(engine: Engine) {
    let Some(app) = start(engine, true, "").await else {
        return;
    };
    let writer = app.register_client("writer", &["read", "write"]).await;
    let reader = app.register_client("reader", &["read"]).await;
    for (key, value) in [
        ("api.empty", ""),
        ("api.spaces", "  padded  "),
        ("api.quote", "\""),
    ] {
        let body = json!({"key": key, "value": value, "description": "a, \"b\"\nc"});
        app.as_admin()
            .post("/system/config", &body)
            .expect(200)
            .await;
    }
    seed_config(&app, 4997).await;
    let entries = all_entries(&app).await;
    assert_eq!(entries.len(), 5000);

    let body = json!({"source": "system_config", "format": "csv"});
    let csv_job = app
        .as_key(&writer.key)
        .post(EXPORTS, &body)
        .expect(202)
        .await;
    assert_eq!(
        (csv_job["status"].as_str(), csv_job["rows"].as_i64()),
        (Some("queued"), Some(0))
    );
    assert!(
        csv_job["page_cursor"].is_null(),
        "internal progress is not answered"
    );
    let body = json!({"source": "system_config", "format": "json", "filter": {}});
    let json_job = app
        .as_key(&writer.key)
        .post(EXPORTS, &body)
        .expect(202)
        .await;

    let done = finished(&app, &id(&csv_job), Duration::from_secs(60)).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        (done["rows"].as_i64(), done["attempts"].as_i64()),
        (Some(5000), Some(1))
    );
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    let resp = app
        .as_key(&reader.key)
        .get(&format!("{EXPORTS}/{}/download", id(&csv_job)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"system_config-"),
        "{disposition}"
    );
    assert!(resp.headers().get("x-valhalla-artefact").is_none());
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len() as i64, done["bytes"].as_i64().unwrap());
    let records = csv_records(&bytes, &CONFIG_COLUMNS);
    assert_eq!(records.len(), 5000);
    for (record, entry) in records.iter().zip(&entries) {
        let want: Vec<String> = CONFIG_COLUMNS.iter().map(|c| cell(&entry[*c])).collect();
        assert_eq!(record, &want);
    }

    let done = finished(&app, &id(&json_job), Duration::from_secs(60)).await;
    assert_eq!(done["status"], "done", "{done}");
    let resp = app
        .as_key(&reader.key)
        .get(&format!("{EXPORTS}/{}/download", id(&json_job)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let items: Vec<Value> = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        items, entries,
        "the whole list, in its order, as the source answers it"
    );

    // the jobs list, newest first, by keyset; filters
    let list = app
        .as_key(&reader.key)
        .get(&format!("{EXPORTS}?limit=1"))
        .expect(200)
        .await;
    assert_eq!(
        (list["total"].as_i64(), list["items"][0]["id"].clone()),
        (Some(2), json_job["id"].clone())
    );
    let next = list["next_cursor"].as_str().unwrap();
    let rest = app
        .as_key(&reader.key)
        .get(&format!("{EXPORTS}?limit=1&cursor={next}"))
        .expect(200)
        .await;
    assert_eq!(
        (rest["items"][0]["id"].clone(), rest["next_cursor"].clone()),
        (csv_job["id"].clone(), Value::Null)
    );
    let done_list = app
        .as_admin()
        .get(&format!("{EXPORTS}?status=done&source=system_config"))
        .expect(200)
        .await;
    assert_eq!(done_list["total"], 2);
    app.as_admin()
        .get(&format!("{EXPORTS}?status=nope"))
        .expect_problem(422)
        .await;
    app.as_admin()
        .get(&format!("{EXPORTS}/nope"))
        .expect_problem(404)
        .await;
    app.finish().await;
}
on_both_engines!(
    csv_and_json_exports_of_5000_entries_are_complete,
    csv_and_json
);

/// system_config's list pages by `limit`/`offset` as before, and by `cursor` (key order).
async fn config_keyset(engine: Engine) {
    let Some(app) = start(engine, true, "").await else {
        return;
    };
    for key in ["c", "a", "e", "b", "d"] {
        app.as_admin()
            .post("/system/config", &json!({"key": key, "value": key}))
            .expect(200)
            .await;
    }
    let keys = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect()
    };
    let first = app
        .as_admin()
        .get("/system/config?limit=2")
        .expect(200)
        .await;
    assert_eq!(
        (keys(&first), first["total"].as_i64()),
        (vec!["a".to_string(), "b".into()], Some(5))
    );
    let c = first["next_cursor"].as_str().unwrap().to_string();
    let second = app
        .as_admin()
        .get(&format!("/system/config?limit=2&cursor={c}"))
        .expect(200)
        .await;
    assert_eq!(keys(&second), ["c", "d"]);
    let c = second["next_cursor"].as_str().unwrap().to_string();
    let last = app
        .as_admin()
        .get(&format!("/system/config?limit=2&cursor={c}"))
        .expect(200)
        .await;
    assert_eq!(
        (keys(&last), last["next_cursor"].clone()),
        (vec!["e".to_string()], Value::Null)
    );
    let offset = app
        .as_admin()
        .get("/system/config?limit=2&offset=3")
        .expect(200)
        .await;
    assert_eq!(keys(&offset), ["d", "e"]);
    let p = app
        .as_admin()
        .get("/system/config?cursor=a&offset=1")
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "offset");
    app.as_admin()
        .get("/system/config?limit=0")
        .expect_problem(422)
        .await;
    // feature_flags likewise, its group filter kept across pages
    for (key, group) in [("f3", "ui"), ("f1", "ui"), ("f2", "api"), ("f4", "ui")] {
        let flag = json!({"key": key, "group": group});
        app.as_admin()
            .post("/system/features", &flag)
            .expect(200)
            .await;
    }
    let page = app
        .as_admin()
        .get("/system/features?group=ui&limit=2")
        .expect(200)
        .await;
    assert_eq!(
        (keys(&page), page["total"].as_i64()),
        (vec!["f1".to_string(), "f3".into()], Some(3))
    );
    let c = page["next_cursor"].as_str().unwrap().to_string();
    let path = format!("/system/features?group=ui&limit=2&cursor={c}");
    let rest = app.as_admin().get(&path).expect(200).await;
    assert_eq!(
        (keys(&rest), rest["next_cursor"].clone()),
        (vec!["f4".to_string()], Value::Null)
    );
    app.finish().await;
}
on_both_engines!(
    config_and_flag_lists_page_by_offset_or_cursor,
    config_keyset
);
