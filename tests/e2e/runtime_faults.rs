//! A pack that traps, loops or allocates without bound fails only its own request; the
//! sandbox keeps packs out of other tables, the network and each other's memory.

use crate::harness::{Engine, TestApp, eventually};
use crate::requests::problem;

async fn app() -> TestApp {
    TestApp::spawn(Engine::Sqlite, &["system_config", "faulty"])
        .await
        .expect("sqlite always runs")
}

async fn then_all_is_well(app: &TestApp) {
    let ok = app.get("/faulty/ok").expect(200).await;
    assert_eq!(ok["ok"], true);
    app.get("/system/config").expect(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_a_500_for_that_request_only() {
    let app = app().await;
    for _ in 0..3 {
        let p = app.get("/faulty/trap").expect_problem(500).await;
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
async fn a_panic_message_and_place_reach_the_log_not_the_client() {
    let app = TestApp::spawn(Engine::Sqlite, &["system_config", "system_log", "faulty"])
        .await
        .expect("sqlite always runs");
    let p = app.get("/faulty/trap").expect_problem(500).await;
    assert!(!p.to_string().contains("on purpose"), "no internals: {p}");
    let found = eventually(&app, "/system/logs?category=faulty&level=error", |v| {
        v["total"] == 1
    })
    .await;
    let message = found["items"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("faulty pack traps on purpose"),
        "{message}"
    );
    assert!(message.contains("src/lib.rs"), "where: {message}");
    then_all_is_well(&app).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_random_bytes_and_the_clock_come_from_the_host() {
    let app = app().await;
    // more than one host call's worth (4096 bytes): the SDK asks again
    let a = app.get("/faulty/random?bytes=10000").expect(200).await;
    let b = app.get("/faulty/random?bytes=10000").expect(200).await;
    let hex = a["hex"].as_str().unwrap();
    assert_eq!(hex.len(), 20_000);
    assert_ne!(hex, b["hex"].as_str().unwrap());
    // no run of 64 zero bytes anywhere: every chunk was filled
    assert!(!hex.contains(&"0".repeat(128)), "{hex}");
    let none = app.get("/faulty/random?bytes=0").expect(200).await;
    assert_eq!(none["hex"], "");
    let (us, ms) = (a["now_us"].as_i64().unwrap(), a["now_ms"].as_i64().unwrap());
    assert!((us / 1000 - ms).abs() < 1000, "one clock: {us} µs, {ms} ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now - ms).abs() < 60_000,
        "the wall clock: {ms} against {now}"
    );
    app.finish().await;
}

/// Packs are `no_std` and take the clock and randomness from the host: a built pack imports
/// nothing from WASI (every import is wiring the host repeats on each fresh instance).
#[test]
fn built_packs_import_nothing_from_wasi() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/wasm32-wasip2/pack");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("packs are built before the tests") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut imports = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            if let wasmparser::Payload::ComponentImportSection(section) = payload.unwrap() {
                for import in section {
                    imports.push(import.unwrap().name.name.to_string());
                }
            }
        }
        assert!(
            imports.iter().any(|i| i.starts_with("valhalla:pack/")),
            "{}: {imports:?}",
            path.display()
        );
        let wasi: Vec<_> = imports.iter().filter(|i| i.starts_with("wasi:")).collect();
        assert!(wasi.is_empty(), "{} imports {wasi:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} packs in {}", dir.display());
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
        let p = app.get("/faulty/oom").expect_problem(500).await;
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
        let body = app.get("/faulty/static").expect(200).await;
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
    let results = app.get("/faulty/snoop").expect(200).await;
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
    let body = app
        .get(&format!("/faulty/outbound?url={url}"))
        .expect(200)
        .await;
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
