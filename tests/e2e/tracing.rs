//! Tracing across services (W3C Trace Context): a request's trace id is its correlation id
//! (response, system log), an invalid `traceparent` starts a new trace, outbound requests
//! carry the trace on, and with `[telemetry] otlp_endpoint` the real binary exports its spans
//! over OTLP/HTTP to a receiver here, decoded with the protocol's own messages.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::harness::{
    ADMIN_KEY, Engine, TestApp, TestDb, config, config_toml, eventually, grant, secured,
};
use crate::on_both_engines;
use crate::webhook_receiver::{Receiver, Reply};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{PARENT}-01")
}

/// (trace id, parent id) of a `traceparent`.
fn ids(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!((parts[0], parts[3].len()), ("00", 2), "{value}");
    (parts[1].to_string(), parts[2].to_string())
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// With a traceparent (and no X-Request-ID) the trace id is the request id: in the response,
/// in the audit record the system log keeps, and in the response's own traceparent.
async fn correlation(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let cfg = secured(&db, &["system_config", "system_log", "api_clients"]);
    let app = TestApp::start(db, cfg).await;
    let resp = app
        .client
        .post(app.url("/system/config"))
        .header("x-api-key", ADMIN_KEY)
        .header("traceparent", traceparent())
        .header("tracestate", "rojo=00f067aa0ba902b7")
        .json(&json!({"key": "traced.key", "value": "v"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-request-id"), TRACE);
    let (trace, span) = ids(&header(&resp, "traceparent"));
    assert_eq!(trace, TRACE);
    assert_ne!(
        span, PARENT,
        "the server span is a child, not the caller's span"
    );

    let found = eventually(
        &app,
        &format!("/system/logs?category=audit&correlation_id={TRACE}"),
        |v| v["total"] == 1,
    )
    .await;
    assert_eq!(found["items"][0]["source"], "system_config");

    // a client's X-Request-ID stays the request id; the trace goes on all the same
    let resp = app
        .client
        .get(app.url("/system/health/live"))
        .header("x-request-id", "mine-7")
        .header("traceparent", traceparent())
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-request-id"), "mine-7");
    assert_eq!(ids(&header(&resp, "traceparent")).0, TRACE);
    app.finish().await;
}
on_both_engines!(a_traceparent_is_the_correlation_id, correlation);

/// An invalid traceparent is ignored: the request is served, in a new trace whose id is the
/// generated request id's (as the pack's outbound request shows); the response carries no
/// traceparent (the caller is in no trace).
async fn invalid(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut cfg = config(&db, &["faulty"]);
    grant(&mut cfg, "faulty", "http://127.0.0.1:*");
    let app = TestApp::start(db, cfg).await;
    let receiver = Receiver::start(vec![], Reply::Status(200)).await;
    let zero = format!("00-{}-{PARENT}-01", "0".repeat(32));
    let bad = [
        "garbage".to_string(),
        traceparent().to_uppercase(),
        zero,
        format!("ff-{TRACE}-{PARENT}-01"),
    ];
    for (i, bad) in bad.iter().enumerate() {
        let resp = app
            .client
            .get(app.url(&format!("/faulty/outbound?url={}", receiver.url)))
            .header("traceparent", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{bad}");
        assert_eq!(header(&resp, "traceparent"), "", "{bad}");
        let id = uuid::Uuid::parse_str(&header(&resp, "x-request-id")).unwrap();
        let got = receiver.wait_for(i + 1, Duration::from_secs(5)).await;
        let (trace, _) = ids(got[i].header("traceparent"));
        assert_ne!(trace, TRACE, "{bad}");
        assert_eq!(format!("{:032x}", id.as_u128()), trace, "{bad}");
    }
    app.finish().await;
}
on_both_engines!(an_invalid_traceparent_starts_a_new_trace, invalid);

/// A pack's outbound request carries the request's trace (a new parent id) and tracestate.
async fn outbound(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut cfg = config(&db, &["faulty"]);
    grant(&mut cfg, "faulty", "http://127.0.0.1:*");
    let app = TestApp::start(db, cfg).await;
    let receiver = Receiver::start(vec![], Reply::Status(204)).await;
    let resp = app
        .client
        .get(app.url(&format!("/faulty/outbound?url={}", receiver.url)))
        .header("traceparent", traceparent())
        .header("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let server_span = ids(&header(&resp, "traceparent")).1;
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 204, "{body}");
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    let (trace, parent) = ids(got[0].header("traceparent"));
    assert_eq!(trace, TRACE);
    assert_ne!(parent, PARENT);
    assert_ne!(
        parent, server_span,
        "the outbound call is a span of its own"
    );
    assert_eq!(
        got[0].header("tracestate"),
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    app.finish().await;
}
on_both_engines!(outbound_requests_carry_the_trace, outbound);

/// The OTLP/HTTP receiver: every span of every `POST /v1/traces`, and the service names.
#[derive(Default)]
struct Collected {
    spans: Vec<Span>,
    services: Vec<String>,
}

async fn otlp_receiver() -> (String, Arc<Mutex<Collected>>) {
    let collected = Arc::new(Mutex::new(Collected::default()));
    let sink = Arc::clone(&collected);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                let mut c = sink.lock().unwrap();
                for rs in request.resource_spans {
                    for kv in rs.resource.iter().flat_map(|r| r.attributes.iter()) {
                        if kv.key == "service.name" {
                            c.services
                                .push(text(kv.value.as_ref().and_then(|v| v.value.as_ref())));
                        }
                    }
                    c.spans
                        .extend(rs.scope_spans.into_iter().flat_map(|s| s.spans));
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, collected)
}

fn text(v: Option<&Any>) -> String {
    match v {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn attribute(span: &Span, key: &str) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
        .unwrap_or_default()
}

/// The real binary with `[telemetry] otlp_endpoint`: one request exports its request span,
/// the guard chain and its guard, the pack calls and the store calls, linked parent to child
/// under the caller's trace, flushed at a graceful stop; its log lines carry the trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp() {
    let (endpoint, collected) = otlp_receiver().await;
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let text = format!(
        "{}\n[telemetry]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"valhalla-e2e\"\n",
        config_toml(&db, &["system_config", "api_clients"])
            .admin_key(ADMIN_KEY)
            .to_toml()
    );
    let path = db.dir.path().join("traced.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_valhalla"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("VALHALLA_LOG", "info,valhalla=debug")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let log = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(at) = line.find("addr=").filter(|_| line.contains("ready")) {
                let addr = line[at + 5..].split_whitespace().next().unwrap_or_default();
                let _ = tx.send(addr.to_string());
            }
            log.lock().unwrap().push(line);
        }
    });
    let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("never ready: {:?}", lines.lock().unwrap());
    };
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/system/config"))
        .header("x-api-key", ADMIN_KEY)
        .header("traceparent", traceparent())
        .json(&json!({"key": "exported.key", "value": "exported-value"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let server_id = ids(&header(&resp, "traceparent")).1;

    // a graceful stop flushes the batch (its 5 s delay has not passed)
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < until, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let c = collected.lock().unwrap();
    assert!(
        c.services.iter().all(|s| s == "valhalla-e2e"),
        "{:?}",
        c.services
    );
    let ours: Vec<&Span> = c
        .spans
        .iter()
        .filter(|s| hex::encode(&s.trace_id) == TRACE)
        .collect();
    let names: Vec<&str> = ours.iter().map(|s| s.name.as_str()).collect();
    let named = |name: &str| -> &Span {
        ours.iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span `{name}` in {names:?}"))
    };
    let id = |s: &Span| hex::encode(&s.span_id);
    let parent = |s: &Span| hex::encode(&s.parent_span_id);

    let server = named("POST /system/config");
    assert_eq!(id(server), server_id, "the response names the server span");
    assert_eq!(parent(server), PARENT, "a child of the caller's span");
    assert_eq!(server.kind, 2, "SERVER");
    assert_eq!(attribute(server, "http.route"), "/system/config");
    assert_eq!(attribute(server, "http.response.status_code"), "200");

    let chain = named("guard chain");
    assert_eq!(parent(chain), id(server));
    let guard = named("guard api_clients");
    assert_eq!(parent(guard), id(chain));
    assert_eq!(attribute(guard, "valhalla.guard.decision"), "proceed");
    assert_eq!(parent(named("pack api_clients guard")), id(guard));

    let handle = named("pack system_config handle");
    assert_eq!(parent(handle), id(server));
    assert_eq!(attribute(handle, "valhalla.pack.export"), "handle");
    let stores: Vec<&&Span> = ours
        .iter()
        .filter(|s| s.name.starts_with("store "))
        .collect();
    assert!(!stores.is_empty(), "no store span in {names:?}");
    for s in &stores {
        assert_eq!(parent(s), id(handle), "{}", s.name);
        assert_eq!(attribute(s, "valhalla.pack"), "system_config");
        assert!(
            !format!("{:?}", s.attributes).contains("exported-value"),
            "no SQL values in a span"
        );
    }
    for s in &ours {
        assert!(
            !format!("{:?}", s.attributes).contains(ADMIN_KEY),
            "no credential in {}",
            s.name
        );
    }
    let logged = lines.lock().unwrap();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("request done") && l.contains(TRACE)),
        "no log line of the request carries its trace id"
    );
}
