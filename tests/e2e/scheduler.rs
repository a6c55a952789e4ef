//! The host's scheduler and the SDK's job leases, with the faulty fixture pack: a tick runs at
//! its declared interval; one still running is not started again; the tick deadline
//! (`runtime.tick_deadline_ms`) is not the request deadline (`runtime.deadline_ms`); a tick
//! that traps or runs out of time is logged (the system log has it) and the next runs at the
//! next interval while the host keeps serving. Leases (`valhalla_sdk::jobs`) on both engines:
//! claimers racing never get one row twice, a lapsed lease is claimed again, renew and finish
//! only work for the claimer that still holds the lease, a job not yet due is left alone.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, config, eventually};
use crate::on_both_engines;

/// faulty (and `packs`) with `settings`, the request deadline and the tick deadline.
async fn start(
    engine: Engine,
    packs: &[&str],
    settings: &[(&str, toml::Value)],
    deadline_ms: u64,
    tick_deadline_ms: u64,
) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = config(&db, packs);
    cfg.runtime.deadline_ms = deadline_ms;
    cfg.runtime.tick_deadline_ms = tick_deadline_ms;
    let faulty = cfg.packs.get_mut("faulty").expect("faulty is loaded");
    for (name, value) in settings {
        faulty.settings.insert((*name).into(), value.clone());
    }
    Some(TestApp::start(db, cfg).await)
}

fn ticking(mode: &str, interval_ms: i64, busy_ms: i64) -> Vec<(&'static str, toml::Value)> {
    vec![
        ("tick", toml::Value::String(mode.into())),
        ("tick_interval_ms", toml::Value::Integer(interval_ms)),
        ("tick_busy_ms", toml::Value::Integer(busy_ms)),
    ]
}

async fn ticks(app: &TestApp) -> Value {
    app.get("/faulty/ticks").expect(200).await
}

/// Gaps between the recorded tick starts, in milliseconds.
fn gaps(report: &Value) -> Vec<i64> {
    let starts: Vec<i64> = report["starts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_runs_at_its_declared_interval() {
    let app = start(
        Engine::Sqlite,
        &["faulty"],
        &ticking("count", 200, 0),
        500,
        5_000,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let report = ticks(&app).await;
    let started = report["started"].as_i64().unwrap();
    assert!(
        (5..=12).contains(&started),
        "about one tick per 200 ms: {report}"
    );
    let gaps = gaps(&report);
    assert!(
        gaps.iter().all(|g| *g >= 190),
        "never sooner than the interval: {gaps:?}"
    );
    let mut sorted = gaps.clone();
    sorted.sort_unstable();
    assert!(
        sorted[sorted.len() / 2] < 600,
        "at the interval, not later: {gaps:?}"
    );
    assert_eq!(report["overlaps"], 0);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_still_running_is_not_started_again() {
    // every 100 ms, but each tick is busy for 500 ms
    let app = start(
        Engine::Sqlite,
        &["faulty"],
        &ticking("count", 100, 500),
        500,
        5_000,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let report = ticks(&app).await;
    assert_eq!(report["overlaps"], 0, "{report}");
    let started = report["started"].as_i64().unwrap();
    assert!((2..=6).contains(&started), "one at a time: {report}");
    let gaps = gaps(&report);
    assert!(
        gaps.iter().all(|g| *g >= 590),
        "a tick starts an interval after the last ended: {gaps:?}"
    );
    app.get("/faulty/ok").expect(200).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tick_deadline_is_not_the_request_deadline() {
    // 800 ms of work: past the request deadline (300 ms), within the tick's (5 s)
    let app = start(
        Engine::Sqlite,
        &["faulty"],
        &ticking("count", 100, 800),
        300,
        5_000,
    )
    .await
    .unwrap();
    let p = app.get("/faulty/slow?ms=800").expect_problem(503).await;
    assert_eq!(p["type"], "urn:valhalla:problem:pack-timeout", "{p}");
    for _ in 0..50 {
        if ticks(&app).await["finished"].as_i64().unwrap() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = ticks(&app).await;
    assert!(
        report["finished"].as_i64().unwrap() >= 2,
        "ticks finish: {report}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_past_its_deadline_is_stopped_logged_and_run_again() {
    // 800 ms of work against a tick deadline of 300 ms (and a request deadline of 2 s)
    let settings = ticking("count", 100, 800);
    let app = start(
        Engine::Sqlite,
        &["system_log", "faulty"],
        &settings,
        2_000,
        300,
    )
    .await
    .unwrap();
    let logs = "/system/logs?category=faulty&level=error";
    let found = eventually(&app, logs, |v| v["total"].as_i64().unwrap_or(0) >= 2).await;
    let message = found["items"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("tick failed") && message.contains("deadline"),
        "{message}"
    );
    let report = ticks(&app).await;
    assert!(
        report["started"].as_i64().unwrap() >= 2,
        "run again: {report}"
    );
    assert_eq!(
        report["finished"], 0,
        "none outlives the tick deadline: {report}"
    );
    // a request may take what the tick may not
    app.get("/faulty/slow?ms=800").expect(200).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_tick_is_logged_and_retried_at_the_next_interval() {
    // odd ticks trap, even ones finish
    let settings = ticking("trap", 150, 0);
    let app = start(
        Engine::Sqlite,
        &["system_log", "faulty"],
        &settings,
        500,
        5_000,
    )
    .await
    .unwrap();
    let logs = "/system/logs?category=faulty&level=error&limit=100";
    let found = eventually(&app, logs, |v| v["total"].as_i64().unwrap_or(0) >= 6).await;
    let messages: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("traps on purpose")),
        "the panic: {messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("tick failed")),
        "the scheduler: {messages:?}"
    );
    let report = ticks(&app).await;
    let (started, finished) = (
        report["started"].as_i64().unwrap(),
        report["finished"].as_i64().unwrap(),
    );
    assert!(
        started >= 5 && finished >= 2,
        "every trap is followed by a tick: {report}"
    );
    assert!(
        finished >= started / 2 - 1,
        "the even ones finish: {report}"
    );
    let gaps = gaps(&report);
    assert!(
        gaps.iter().all(|g| *g >= 140),
        "at the interval, after a trap too: {gaps:?}"
    );
    // the host keeps serving
    app.get("/faulty/ok").expect(200).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_reporting_a_failure_is_logged() {
    let settings = ticking("fail", 150, 0);
    let app = start(
        Engine::Sqlite,
        &["system_log", "faulty"],
        &settings,
        500,
        5_000,
    )
    .await
    .unwrap();
    let logs = "/system/logs?category=faulty&level=error";
    let found = eventually(&app, logs, |v| v["total"].as_i64().unwrap_or(0) >= 2).await;
    let message = found["items"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("reported a failure") && message.contains("on purpose"),
        "{message}"
    );
    app.finish().await;
}

// ---- leases ----

async fn seed(app: &TestApp, count: usize) -> HashSet<String> {
    let ids = app
        .post("/faulty/jobs", &json!({"count": count}))
        .expect(201)
        .await;
    ids.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

async fn claim(app: &TestApp, limit: u32, lease_ms: u64) -> Vec<String> {
    let body = json!({"limit": limit, "lease_ms": lease_ms});
    let claimed = app.post("/faulty/jobs/claim", &body).expect(200).await;
    claimed["claimed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

async fn jobs_app(engine: Engine) -> Option<TestApp> {
    start(engine, &["faulty"], &[], 10_000, 5_000).await
}

async fn racing_claims(engine: Engine) {
    let Some(app) = jobs_app(engine).await else {
        return;
    };
    let seeded = seed(&app, 300).await;
    let mut seen: Vec<String> = Vec::new();
    loop {
        // sixteen claimers at once, each asking for up to 25
        let claimers: Vec<_> = (0..16)
            .map(|_| {
                let (client, url) = (app.client.clone(), app.url("/faulty/jobs/claim"));
                tokio::spawn(async move {
                    let body = json!({"limit": 25, "lease_ms": 600_000});
                    let resp = client.post(url).json(&body).send().await.expect("claim");
                    assert_eq!(resp.status(), 200);
                    let claimed: Value = resp.json().await.expect("JSON");
                    let ids = claimed["claimed"].as_array().cloned().unwrap_or_default();
                    ids.iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut round = Vec::new();
        for claimer in claimers {
            round.push(claimer.await.expect("claimer"));
        }
        let got: usize = round.iter().map(Vec::len).sum();
        seen.extend(round.into_iter().flatten());
        if got == 0 {
            break;
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a job was claimed twice");
    assert_eq!(unique, seeded, "every job was claimed");
    let jobs = app.get("/faulty/jobs").expect(200).await;
    let by: HashSet<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["claimed_by"].as_str().unwrap())
        .collect();
    assert_eq!(by.len(), 1, "one process claimed them all: {by:?}");
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "running")
    );
    app.finish().await;
}
on_both_engines!(claimers_racing_never_get_one_job_twice, racing_claims);

async fn lapsed_leases(engine: Engine) {
    let Some(app) = jobs_app(engine).await else {
        return;
    };
    let seeded = seed(&app, 3).await;
    let first: HashSet<String> = claim(&app, 10, 400).await.into_iter().collect();
    assert_eq!(first, seeded);
    assert!(claim(&app, 10, 400).await.is_empty(), "a live lease holds");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again: HashSet<String> = claim(&app, 10, 60_000).await.into_iter().collect();
    assert_eq!(again, seeded, "lapsed leases are claimed again");

    let mut ids = again.into_iter();
    let (mine, stolen) = (ids.next().unwrap(), ids.next().unwrap());
    let renewed = app
        .post(&format!("/faulty/jobs/{mine}/renew"), &json!({}))
        .expect(200)
        .await;
    assert_eq!(renewed["renewed"], true);
    let stole = app
        .post(&format!("/faulty/jobs/{stolen}/steal"), &json!({}))
        .expect(200)
        .await;
    assert_eq!(stole["stolen"], true);
    let renew = app
        .post(&format!("/faulty/jobs/{stolen}/renew"), &json!({}))
        .expect(200)
        .await;
    assert_eq!(renew["renewed"], false, "not ours any more");
    let finish = app
        .post(&format!("/faulty/jobs/{stolen}/finish"), &json!({}))
        .expect(200)
        .await;
    assert_eq!(finish["finished"], false, "not ours any more");
    let finish = app
        .post(&format!("/faulty/jobs/{mine}/finish"), &json!({}))
        .expect(200)
        .await;
    assert_eq!(finish["finished"], true);
    let again = app
        .post(&format!("/faulty/jobs/{mine}/finish"), &json!({}))
        .expect(200)
        .await;
    assert_eq!(again["finished"], false, "finished once");

    let jobs = app.get("/faulty/jobs").expect(200).await;
    let job = |id: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .unwrap()
            .clone()
    };
    let done = job(&mine);
    assert_eq!(done["status"], "done");
    assert!(
        done["claimed_by"].is_null() && done["lease_until"].is_null(),
        "{done}"
    );
    assert!(
        uuid::Uuid::parse_str(done["done_by"].as_str().unwrap()).is_ok(),
        "{done}"
    );
    assert_eq!(job(&stolen)["claimed_by"], "another-process");
    app.finish().await;
}
on_both_engines!(a_lapsed_lease_is_claimed_again, lapsed_leases);

async fn not_yet_due(engine: Engine) {
    let Some(app) = jobs_app(engine).await else {
        return;
    };
    app.post("/faulty/jobs", &json!({"count": 2, "due_in_ms": 60_000}))
        .expect(201)
        .await;
    let now = seed(&app, 1).await;
    let claimed: HashSet<String> = claim(&app, 10, 60_000).await.into_iter().collect();
    assert_eq!(claimed, now, "only the job due now");
    let bad = app
        .post("/faulty/jobs/claim", &json!({"limit": 1, "lease_ms": 0}))
        .await;
    assert_eq!(bad.status(), 422);
    app.finish().await;
}
on_both_engines!(a_job_not_yet_due_is_left_alone, not_yet_due);
