//! A pack that traps, loops or allocates without bound fails only its own request; the
//! sandbox keeps packs out of other tables, the network and each other's memory.

use crate::harness::{Engine, TestApp, json, problem};

async fn app() -> TestApp {
    TestApp::spawn(Engine::Sqlite, &["system_config", "faulty"])
        .await
        .expect("sqlite always runs")
}

async fn then_all_is_well(app: &TestApp) {
    let ok = json(app.get("/faulty/ok").await, 200).await;
    assert_eq!(ok["ok"], true);
    json(app.get("/system/config").await, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_a_500_for_that_request_only() {
    let app = app().await;
    for _ in 0..3 {
        let p = problem(app.get("/faulty/trap").await, 500).await;
        assert_eq!(p["type"], "urn:valhalla:problem:pack-failed");
        assert!(
            !p["detail"].as_str().unwrap().contains("panicked"),
            "no internals: {p}"
        );
        then_all_is_well(&app).await;
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_hits_the_deadline() {
    let app = app().await;
    let started = std::time::Instant::now();
    let resp = app.get("/faulty/loop").await;
    assert_eq!(resp.headers()["retry-after"], "1");
    let p = problem(resp, 503).await;
    assert_eq!(p["type"], "urn:valhalla:problem:pack-timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "stopped by the deadline"
    );
    then_all_is_well(&app).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let app = app().await;
    for _ in 0..2 {
        let p = problem(app.get("/faulty/oom").await, 500).await;
        assert_eq!(p["type"], "urn:valhalla:problem:pack-out-of-memory");
        then_all_is_well(&app).await;
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_in_parallel_leave_normal_requests_alone() {
    let app = app().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = app.client.clone();
        let path = [
            "/faulty/trap",
            "/faulty/oom",
            "/faulty/ok",
            "/system/config",
        ][i % 4];
        let url = app.url(path);
        tasks.push(tokio::spawn(async move {
            (
                path,
                client.get(url).send().await.unwrap().status().as_u16(),
            )
        }));
    }
    for t in tasks {
        let (path, status) = t.await.unwrap();
        let expected = if path.starts_with("/faulty/trap") || path.starts_with("/faulty/oom") {
            500
        } else {
            200
        };
        assert_eq!(status, expected, "{path}");
    }
    then_all_is_well(&app).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_a_fresh_instance() {
    let app = app().await;
    for _ in 0..5 {
        let body = json(app.get("/faulty/static").await, 200).await;
        assert_eq!(
            body["calls"], 1,
            "a static written by one request is not seen by the next"
        );
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_reach_only_their_own_tables() {
    let app = app().await;
    let results = json(app.get("/faulty/snoop").await, 200).await;
    for r in results.as_array().unwrap() {
        assert_eq!(r["result"], "access-denied", "{r}");
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_is_denied_without_a_grant() {
    let app = app().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let body = json(app.get(&format!("/faulty/outbound?url={url}")).await, 200).await;
    assert_eq!(body["result"], "access-denied");
    assert!(listener.accept().is_err(), "no connection was attempted");
    app.finish().await;
}

/// A guard that fails refuses the request (fails closed); requests it does not see pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_guard_fails_closed() {
    let app = app().await;
    let resp = app.get("/faulty/guarded").await;
    assert_eq!(resp.headers()["retry-after"], "1");
    let p = problem(resp, 503).await;
    assert_eq!(p["type"], "urn:valhalla:problem:guard-failed");
    then_all_is_well(&app).await;
    app.finish().await;
}
