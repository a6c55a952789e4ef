//! Requests as raw HTTP/1.1 bytes, generated (the property of the `http_request` fuzz target,
//! `fuzz/src/http.rs`, on stable): whatever the method, path, query, headers, credential and
//! body, the host answers without a 5xx; every error it or a pack answers is problem+json
//! carrying its request id (hyper's own refusals of bytes that are no request have none, and no
//! body); and the server answers the next request. SQLite: the decoding does not depend on the
//! engine.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, secured};

const PACKS: &[&str] = &[
    "system_config",
    "feature_flags",
    "api_clients",
    "honeypots",
    "maintenance",
];
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE",
];
const SEGMENTS: &[&str] = &[
    "system",
    "config",
    "features",
    "clients",
    "health",
    "live",
    "maintenance",
    "state",
    "security",
    "honeypots",
    "evaluate",
    "ofrep",
    "v1",
    "flags",
    "admin",
    "openapi.json",
    "docs",
    "rotate",
    "site.name",
    "%2F",
    "..",
    "%00",
    "%ff",
    "wp-login.php",
];
const HEADERS: &[&str] = &[
    "x-request-id",
    "x-forwarded-for",
    "forwarded",
    "authorization",
    "cookie",
    "accept",
    "traceparent",
    "x-api-key",
    "content-encoding",
    "if-none-match",
];

/// One request's bytes, and its method.
fn request() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let segment = prop_oneof![
        prop::sample::select(SEGMENTS).prop_map(String::from),
        "[!-~&&[^/?#%]]{0,12}",
    ];
    (
        prop::sample::select(METHODS),
        prop::collection::vec(segment, 0..5),
        "([a-z_]{1,8}=[ -~&&[^ #&]]{0,12}&?){0,3}",
        prop::collection::vec((prop::sample::select(HEADERS), "[ -~]{0,24}"), 0..4),
        0u8..4,
        prop::sample::select(vec!["application/json", "text/plain", ""]),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..48),
            Just(br#"{"key":"k","value":"v"}"#.to_vec()),
            Just(br#"{"key":"","enabled":1.5}"#.to_vec()),
        ],
    )
        .prop_map(|(method, segments, query, headers, key, ct, body)| {
            let mut path = format!("/{}", segments.join("/"));
            if !query.is_empty() {
                path = format!("{path}?{query}");
            }
            let mut head = format!("{method} {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n");
            match key {
                0 => head.push_str(&format!("x-api-key: {ADMIN_KEY}\r\n")),
                1 => head.push_str(&format!("authorization: Bearer {ADMIN_KEY}\r\n")),
                2 => head.push_str("x-api-key: vk_not-a-key\r\n"),
                _ => {}
            }
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            if !ct.is_empty() {
                head.push_str(&format!("content-type: {ct}\r\n"));
            }
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&body);
            (method, bytes)
        })
}

/// One exchange on a fresh connection: status, headers (lower-cased names), body.
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("sent");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.as_bytes().to_vec())
}

fn check(addr: SocketAddr, method: &str, request: &[u8]) -> Result<(), TestCaseError> {
    let (status, headers, body) = exchange(addr, request);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let shown = format!(
        "{:?} -> {status} {:?}",
        String::from_utf8_lossy(request),
        String::from_utf8_lossy(&body)
    );
    prop_assert!(status < 500, "a server error: {}", shown);
    match header("x-request-id") {
        None => prop_assert!(
            matches!(status, 400 | 414 | 431) && body.is_empty(),
            "an answer without a request id: {}",
            shown
        ),
        Some(id) if status >= 400 => {
            let ct = header("content-type");
            prop_assert_eq!(ct.as_deref(), Some("application/problem+json"), "{}", shown);
            if method != "HEAD" {
                let problem: Value = serde_json::from_slice(&body).expect("a problem is JSON");
                prop_assert_eq!(&problem["status"], status, "{}", shown);
                prop_assert_eq!(
                    problem["request_id"].as_str(),
                    Some(id.as_str()),
                    "{}",
                    shown
                );
            }
        }
        Some(_) => {}
    }
    let live = b"GET /system/health/live HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";
    prop_assert_eq!(exchange(addr, live).0, 200, "no answer after {}", shown);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_request_is_decoded_or_refused_as_a_problem() {
    let Some(db) = TestDb::new(Engine::Sqlite).await else {
        return;
    };
    let cfg = secured(&db, PACKS);
    let app = TestApp::start(db, cfg).await;
    let addr: SocketAddr = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let outcome = tokio::task::spawn_blocking(move || {
        let config = Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        };
        TestRunner::new(config).run(&request(), |(method, bytes)| check(addr, method, &bytes))
    })
    .await
    .expect("join");
    if let Err(e) = outcome {
        panic!("{e}");
    }
    app.finish().await;
}
