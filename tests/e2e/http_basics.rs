//! The host's HTTP behaviour: request ids, 404/405/413 problems, health, disabled packs,
//! graceful shutdown.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::{Engine, TestApp, TestDb, config};
use crate::requests::problem;

async fn app() -> TestApp {
    TestApp::spawn(Engine::Sqlite, &["system_config", "faulty"])
        .await
        .expect("sqlite always runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_or_generated() {
    let app = app().await;
    let resp = app
        .get("/system/health/live")
        .header("x-request-id", "client-chosen-42")
        .await;
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-42");

    let resp = app.get("/system/health/live").await;
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    // an unusable id is replaced, not echoed
    let resp = app
        .get("/system/health/live")
        .header("x-request-id", "bad id with spaces")
        .await;
    let replaced = resp.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(replaced).is_ok());

    // a pack's problem carries the request id sent
    let p = app
        .get("/system/config/nothing")
        .header("x-request-id", "trace-me")
        .expect_problem(404)
        .await;
    assert_eq!(p["request_id"], "trace-me");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_problems() {
    let app = app().await;
    let p = app.get("/no/such/route").expect_problem(404).await;
    assert_eq!(p["instance"], "/no/such/route");
    let resp = app.anon().request(Method::PUT, "/system/config").await;
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    problem(resp, 405).await;
    app.anon()
        .request(Method::PATCH, "/system/health/live")
        .expect_problem(405)
        .await;
    let resp = app
        .anon()
        .request(Method::OPTIONS, "/system/config/x")
        .await;
    assert_eq!(resp.status(), 204);
    assert!(resp.headers()["allow"].to_str().unwrap().contains("DELETE"));
    let resp = app.anon().request(Method::HEAD, "/system/config").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_413() {
    let app = app().await;
    let big = json!({"key": "big", "value": "x".repeat(70_000)}).to_string();
    let p = app
        .post_raw("/system/config", "application/json", big.clone())
        .expect_problem(413)
        .await;
    assert!(p["detail"].as_str().unwrap().contains("65536"), "{p}");
    // the server reads the rest of a moderately oversize body before it answers, so a client
    // still sending gets the 413, not a reset connection (every time, concurrently too)
    let tries = (0..24).map(|_| {
        let (client, url, body) = (
            app.client.clone(),
            app.url("/system/config"),
            json!({"key": "big", "value": "x".repeat(600_000)}).to_string(),
        );
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("the 413 arrives instead of a reset");
            resp.status().as_u16()
        })
    });
    for t in tries {
        assert_eq!(t.await.unwrap(), 413);
    }
    // without a Content-Length (chunked), the limit still holds
    let stream = futures_stream(big.into_bytes());
    let sent = app
        .client
        .post(app.url("/system/config"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // The server answers 413 as soon as the limit is passed; a client still sending the rest
    // may see the connection close before it reads that answer. Either way nothing is stored.
    match sent {
        Ok(resp) => {
            problem(resp, 413).await;
        }
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    app.get("/system/config/big").expect_problem(404).await;
    app.finish().await;
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Chunks(Vec<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(if self.0.is_empty() {
                None
            } else {
                Some(Ok(self.0.remove(0)))
            })
        }
    }
    Chunks(bytes.chunks(8192).map(<[u8]>::to_vec).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_live_and_ready() {
    let app = app().await;
    let live = app.get("/system/health/live").expect(200).await;
    assert_eq!(live["status"], "ok");
    let ready = app.get("/system/health/ready/").expect(200).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"]["status"], "ok");
    assert_eq!(ready["checks"]["packs"]["system_config"], "loaded");
    assert_eq!(ready["checks"]["packs"]["faulty"], "loaded");
    app.finish().await;
}

/// Seed 004's probe paths answer as the current ones, and say they are deprecated aliases in
/// the route index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_health_paths_are_aliases() {
    let app = TestApp::spawn(Engine::Sqlite, &["route_index"])
        .await
        .expect("sqlite always runs");
    let live = app.get("/system-health/live").expect(200).await;
    assert_eq!(live["status"], "ok");
    let ready = app.get("/system-health/ready").expect(200).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["packs"]["route_index"], "loaded");
    let index = app.get("/debug/routes").expect(200).await;
    let alias = index["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/system-health/live")
        .cloned()
        .unwrap_or_default();
    assert_eq!(alias["pack"], "host", "{index}");
    assert!(
        alias["summary"]
            .as_str()
            .unwrap_or("")
            .contains("deprecated alias")
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_pack_has_no_routes() {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let mut cfg = config(&db, &["system_config", "faulty"]);
    cfg.packs.get_mut("system_config").unwrap().enabled = false;
    let app = TestApp::start(db, cfg).await;
    app.get("/system/config").expect_problem(404).await;
    app.post("/system/config", &json!({"key": "k", "value": "v"}))
        .expect_problem(404)
        .await;
    app.get("/faulty/ok").expect(200).await;
    let ready = app.get("/system/health/ready").expect(200).await;
    assert!(ready["checks"]["packs"].get("system_config").is_none());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let app = app().await;
    let client = app.client.clone();
    let url = app.url("/faulty/slow?ms=300");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = app.base.clone();
    let (_db, _cfg) = app.stop().await;
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request got its answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["slept_ms"],
        300
    );
    // and the listener is closed
    assert!(
        reqwest::get(format!("{base}/system/health/live"))
            .await
            .is_err()
    );
}
