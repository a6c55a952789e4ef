//! system_log at scale, on both engines with authentication on: keyset pages (`cursor` in,
//! `next_cursor` out) walk every entry exactly once while entries are being written, filtered
//! pages (category, level + category, since/until) page the same way, `limit`/`offset` pages
//! still work and answer a `next_cursor`, `total` is capped unless `total=exact`, and
//! `POST /system/logs/purge` removes the oldest entries in batches (admin only, checked input).
//! Rows with old timestamps are written straight into the database (the helpers here are
//! shared with the retention tests).

use std::collections::HashSet;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::harness::{Engine, TestApp, TestDb, secured};
use crate::on_both_engines;

/// Run `sql` straight on the test database (not through the host).
pub async fn exec(app: &TestApp, sql: &str) {
    if app.db.url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(app.db.dir.path().join("valhalla.db"))
            .busy_timeout(std::time::Duration::from_secs(10));
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

/// A count read straight from the test database.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    if app.db.url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(app.db.dir.path().join("valhalla.db"))
            .read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    }
}

/// `2026-…` `days` days and `seconds` seconds ago, in the stored format.
pub fn ago(days: i64, seconds: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days) - chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One `system_logs` row as SQL values, `id` being a fresh UUID v7.
pub fn log_row(at: &str, level: &str, category: &str, message: &str) -> (String, String) {
    let id = uuid::Uuid::now_v7().to_string();
    let sql = format!(
        "('{id}', '{at}', '{level}', '{category}', '{message}', NULL, NULL, 'seed', '{{}}')"
    );
    (id, sql)
}

/// Insert `rows` (from [`log_row`]) into `system_logs`; answers their ids.
pub async fn seed_logs(app: &TestApp, rows: Vec<(String, String)>) -> Vec<String> {
    let (ids, values): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    for chunk in values.chunks(500) {
        let sql = format!(
            "INSERT INTO system_logs (id, logged_at, level, category, message, correlation_id, \
             user_id, source, context) VALUES {}",
            chunk.join(", ")
        );
        exec(app, &sql).await;
    }
    ids
}

async fn start(engine: Engine) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, &["api_clients", "system_log"]);
    cfg.runtime.deadline_ms = 5_000;
    Some(TestApp::start(db, cfg).await)
}

/// Every id of the pages of `query` walked by cursor, `limit` at a time.
async fn walk(app: &TestApp, key: &str, query: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .as_key(key)
            .get(&format!(
                "/system/logs?{query}&limit={limit}&cursor={cursor}"
            ))
            .expect(200)
            .await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return seen,
        }
        assert!(!items.is_empty(), "a page with a next cursor has items");
    }
}

async fn cursor_walk(engine: Engine) {
    let Some(app) = start(engine).await else {
        return;
    };
    let reader = app.register_client("reader", &["read"]).await;
    let writer = app.register_client("writer", &["read", "write"]).await;
    // 150 entries, three at each timestamp: the id breaks the ties
    let times: Vec<String> = (0..150).map(|i| ago(1, i / 3)).collect();
    let rows: Vec<_> = times
        .iter()
        .map(|at| log_row(at, "INFO", "walk", "seeded"))
        .collect();
    // newest first: by time, then by id
    let mut order: Vec<(String, String)> = rows
        .iter()
        .zip(&times)
        .map(|((id, _), at)| (at.clone(), id.clone()))
        .collect();
    order.sort_by(|a, b| b.cmp(a));
    let seeded = seed_logs(&app, rows).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let (client, base, key, stop) = (
            app.client.clone(),
            app.base.clone(),
            writer.key.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let resp = client
                    .post(format!("{base}/system/logs"))
                    .header("x-api-key", &key)
                    .json(&json!({"message": format!("new {n}"), "category": "walk"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                n += 1;
            }
            n
        })
    };
    let all = walk(&app, &reader.key, "source=seed", 7).await;
    let everything = walk(&app, &reader.key, "x=1", 11).await;
    let filtered = walk(&app, &reader.key, "category=walk", 13).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writing.await.unwrap();
    assert!(written > 0, "entries were written during the walks");
    let expected: Vec<String> = order.into_iter().map(|(_, id)| id).collect();
    assert_eq!(all, expected, "newest first (ties by id), once each");
    for (name, walked) in [("everything", &everything), ("filtered", &filtered)] {
        let unique: HashSet<&String> = walked.iter().collect();
        assert_eq!(unique.len(), walked.len(), "{name}: no entry twice");
        assert!(
            seeded.iter().all(|id| unique.contains(id)),
            "{name}: every seeded entry"
        );
    }
    app.finish().await;
}
on_both_engines!(
    a_cursor_walk_sees_every_entry_once_while_entries_are_written,
    cursor_walk
);

async fn filtered_pages(engine: Engine) {
    let Some(app) = start(engine).await else {
        return;
    };
    let reader = app.register_client("reader", &["read"]).await;
    let mut rows = Vec::new();
    for i in 0..40 {
        let level = if i % 4 == 0 { "ERROR" } else { "INFO" };
        let category = if i % 2 == 0 { "deploy" } else { "ops" };
        rows.push(log_row(&ago(2, i), level, category, &format!("f{i}")));
    }
    seed_logs(&app, rows).await;
    let get = |q: String| {
        let app = &app;
        let key = reader.key.clone();
        async move {
            app.as_key(&key)
                .get(&format!("/system/logs?{q}"))
                .expect(200)
                .await
        }
    };
    let deploy = get("category=deploy&limit=5".into()).await;
    assert_eq!(
        (deploy["total"].clone(), deploy["total_capped"].clone()),
        (json!(20), json!(false))
    );
    assert_eq!(deploy["items"].as_array().unwrap().len(), 5);
    let next = deploy["next_cursor"].as_str().unwrap();
    let second = get(format!("category=deploy&limit=5&cursor={next}")).await;
    assert_eq!(second["items"][0]["message"], "f10", "continues after f8");
    let errors = walk(&app, &reader.key, "category=deploy&level=error", 3).await;
    assert_eq!(
        errors.len(),
        10,
        "every fourth entry is an ERROR, all of them in deploy"
    );
    // since/until: f5..f14 lie in [ago(2,14), ago(2,4))
    let window = format!(
        "since={}&until={}&limit=100",
        urlencode(&ago(2, 14).replace('Z', "+00:00")),
        urlencode(&ago(2, 4))
    );
    let w = get(window).await;
    let n = w["items"].as_array().unwrap().len();
    assert!(
        (9..=11).contains(&n),
        "about ten entries in the window: {n}"
    );
    // limit/offset still pages, and hands over to the cursor
    let by_offset = get("category=ops&limit=4&offset=4".into()).await;
    assert_eq!(by_offset["items"][0]["message"], "f9");
    let next = by_offset["next_cursor"].as_str().unwrap();
    let on = get(format!("category=ops&limit=4&cursor={next}")).await;
    assert_eq!(on["items"][0]["message"], "f17");
    let last = get("category=ops&limit=4&offset=16".into()).await;
    assert_eq!(
        last["next_cursor"],
        Value::Null,
        "the last page has no next cursor"
    );
    // a capped total past 10 000 rows, exact when asked
    seed_logs(
        &app,
        (0..10_005)
            .map(|i| log_row(&ago(3, 0), "DEBUG", "bulk", &format!("b{i}")))
            .collect(),
    )
    .await;
    let capped = get("category=bulk&limit=1".into()).await;
    assert_eq!(
        (capped["total"].clone(), capped["total_capped"].clone()),
        (json!(10_000), json!(true))
    );
    let exact = get("category=bulk&limit=1&total=exact".into()).await;
    assert_eq!(
        (exact["total"].clone(), exact["total_capped"].clone()),
        (json!(10_005), json!(false))
    );
    for (query, field) in [
        ("cursor=nothex", "cursor"),
        (
            &format!(
                "cursor={}&offset=3",
                hex::encode("2026-01-01T00:00:00Z\nid")
            ),
            "offset",
        ),
        ("until=tomorrow", "until"),
        ("total=all", "total"),
        ("category=", "category"),
    ] {
        let p = app
            .as_key(&reader.key)
            .get(&format!("/system/logs?{query}"))
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{query}: {p}");
    }
    app.anon().get("/system/logs").expect_problem(401).await;
    app.finish().await;
}
on_both_engines!(filtered_pages_offsets_and_capped_totals, filtered_pages);

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn purge_route(engine: Engine) {
    let Some(app) = start(engine).await else {
        return;
    };
    let writer = app.register_client("writer", &["read", "write"]).await;
    let old: Vec<_> = (0..12)
        .map(|i| log_row(&ago(40, i), "INFO", "old", "o"))
        .collect();
    let young: Vec<_> = (0..3)
        .map(|i| log_row(&ago(10, i), "INFO", "young", "y"))
        .collect();
    seed_logs(&app, old).await;
    seed_logs(&app, young).await;
    let before = ago(30, 0);
    let purge = |limit: i64| {
        let body = json!({"before": before, "limit": limit});
        let app = &app;
        async move {
            app.as_admin()
                .post("/system/logs/purge", &body)
                .expect(200)
                .await
        }
    };
    assert_eq!(purge(5).await["removed"], 5);
    assert_eq!(purge(5).await["removed"], 5);
    assert_eq!(
        purge(5).await["removed"],
        2,
        "fewer than the limit: nothing older is left"
    );
    assert_eq!(purge(5).await["removed"], 0);
    let sql = |c: &str| format!("SELECT COUNT(*) FROM system_logs WHERE category = '{c}'");
    assert_eq!(
        (
            count(&app, &sql("old")).await,
            count(&app, &sql("young")).await
        ),
        (0, 3)
    );
    for (body, field) in [
        (json!({"before": "last month", "limit": 5}), "before"),
        (json!({"before": before, "limit": 0}), "limit"),
        (json!({"before": before, "limit": 5001}), "limit"),
        (json!({"limit": 5}), "before"),
        (json!({"before": before, "everything": true}), "everything"),
    ] {
        let p = app
            .as_admin()
            .post("/system/logs/purge", &body)
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    let body = json!({"before": before, "limit": 5});
    app.as_key(&writer.key)
        .post("/system/logs/purge", &body)
        .expect_problem(403)
        .await;
    app.anon()
        .post("/system/logs/purge", &body)
        .expect_problem(401)
        .await;
    app.finish().await;
}
on_both_engines!(
    the_purge_route_removes_the_oldest_in_batches_and_checks_its_input,
    purge_route
);
