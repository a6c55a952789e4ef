//! Requests as raw HTTP/1.1 bytes to the real host: hyper parses them, dispatch decodes them
//! into the WIT request (method, path and its `{params}`, the query, headers with the
//! credentials taken out, the body), the guards and the route's pack answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use serde_json::Value;

/// The bootstrap admin key of the fuzzed server.
pub const ADMIN_KEY: &str = "fuzz-admin-key-0123456789abcdef";

const PACKS: &[&str] = &[
    "system_config",
    "feature_flags",
    "api_clients",
    "system_log",
    "honeypots",
    "maintenance",
    "route_index",
];

/// The server, started once per process (a thread with its own runtime) on a fresh SQLite
/// file; packs from the workspace's `target/wasm32-wasip2/pack` (`cargo xtask packs`).
pub fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace")
            .to_path_buf();
        let dir = Box::leak(Box::new(tempfile::tempdir().expect("a temp dir")));
        let mut text = testkit::ConfigToml::in_workspace(&root)
            .cache_dir(&root.join("target/valhalla-test-cache"))
            .database_url(&format!(
                "sqlite://{}",
                dir.path().join("fuzz.db").display()
            ))
            .bind("127.0.0.1:0")
            .body_limit_bytes(65536)
            .deadline_ms(2000)
            .admin_key(ADMIN_KEY);
        for p in PACKS {
            text = text.pack(p, true);
        }
        let path = dir.path().join("config.toml");
        let config = valhalla::Config::parse(&text.to_toml(), &path).expect("the config");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let app = valhalla::Application::build(config)
                    .await
                    .expect("the server starts");
                let _ = tx.send(app.local_addr());
                let _ = app.run_until_stopped(std::future::pending()).await;
            });
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("the server is ready")
    })
}

/// A request, made of pieces the routes use so dispatch gets past the route table.
#[derive(Debug, Arbitrary)]
pub struct Input {
    pub method: u8,
    pub segments: Vec<Segment>,
    pub trailing_slash: bool,
    pub query: Vec<(String, String)>,
    pub raw_query: Option<String>,
    pub headers: Vec<(u8, String)>,
    pub key: u8,
    pub content_type: u8,
    pub body: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
pub enum Segment {
    Known(u8),
    Text(String),
    Escaped(String),
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "BREW",
];
const SEGMENTS: &[&str] = &[
    "system",
    "config",
    "features",
    "clients",
    "logs",
    "health",
    "live",
    "ready",
    "metrics",
    "maintenance",
    "state",
    "windows",
    "security",
    "honeypots",
    "routes",
    "debug",
    "evaluate",
    "ofrep",
    "v1",
    "flags",
    "admin",
    "openapi.json",
    "docs",
    "rotate",
    "deactivate",
    "purge",
    "site.name",
    "%2F",
    "..",
    ".",
    "%00",
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
    "tracestate",
    "x-api-key",
    "content-encoding",
    "transfer-encoding",
    "expect",
    "if-none-match",
    "user-agent",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "text/plain",
    "",
    "application/json; charset=latin1",
];

/// Text as it may stand in a request line or a header (no line breaks: a request stays one).
fn flat(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect()
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Input {
    /// The method, and the request as bytes on the wire.
    pub fn bytes(&self) -> (&'static str, Vec<u8>) {
        let method = METHODS[self.method as usize % METHODS.len()];
        let mut path = String::new();
        for s in &self.segments {
            path.push('/');
            match s {
                Segment::Known(i) => path.push_str(SEGMENTS[*i as usize % SEGMENTS.len()]),
                Segment::Text(t) => path.push_str(&flat(t).replace([' ', '?', '#'], "")),
                Segment::Escaped(t) => path.push_str(&escape(t)),
            }
        }
        if path.is_empty() || self.trailing_slash {
            path.push('/');
        }
        let mut query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        if let Some(raw) = &self.raw_query {
            query.push(flat(raw).replace([' ', '#'], ""));
        }
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n");
        match self.key % 4 {
            0 => head.push_str(&format!("x-api-key: {ADMIN_KEY}\r\n")),
            1 => head.push_str(&format!("authorization: Bearer {ADMIN_KEY}\r\n")),
            2 => head.push_str("x-api-key: vk_not-a-key\r\n"),
            _ => {}
        }
        for (i, v) in self.headers.iter().take(16) {
            let name = HEADERS[*i as usize % HEADERS.len()];
            if !matches!(name, "transfer-encoding" | "expect") || v.is_empty() {
                head.push_str(&format!("{name}: {}\r\n", flat(v)));
            }
        }
        let ct = CONTENT_TYPES[self.content_type as usize % CONTENT_TYPES.len()];
        if !ct.is_empty() {
            head.push_str(&format!("content-type: {ct}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", self.body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        (method, bytes)
    }
}

/// One exchange on a fresh connection: (status, headers lower-cased, body).
pub fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("the request is sent");
    let mut raw = Vec::new();
    // the server closes after its answer (`connection: close`, or an error)
    let _ = stream.read_to_end(&mut raw);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(at)) = response.parse(&raw) else {
        panic!("no complete answer: {:?}", String::from_utf8_lossy(&raw));
    };
    let status = response.code.expect("a status");
    let headers = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    (status, headers, raw[at..].to_vec())
}

/// Send `request` (made with `method`) and check the answer; then the server still answers.
pub fn check(addr: SocketAddr, method: &str, request: &[u8]) {
    let (status, headers, body) = exchange(addr, request);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let shown = || {
        format!(
            "{:?} -> {status} {:?}",
            String::from_utf8_lossy(request),
            String::from_utf8_lossy(&body)
        )
    };
    assert!(status < 500, "a server error: {}", shown());
    match header("x-request-id") {
        // hyper refused the bytes before the host saw a request
        None => assert!(
            matches!(status, 400 | 414 | 431) && body.is_empty(),
            "an answer without a request id: {}",
            shown()
        ),
        Some(id) if status >= 400 => {
            assert_eq!(
                header("content-type"),
                Some("application/problem+json"),
                "{}",
                shown()
            );
            if method != "HEAD" {
                let problem: Value = serde_json::from_slice(&body).expect("a problem is JSON");
                assert_eq!(problem["status"], status, "{}", shown());
                assert_eq!(problem["request_id"], id, "{}", shown());
                assert!(
                    problem["type"].as_str().is_some_and(|t| !t.is_empty()),
                    "{}",
                    shown()
                );
            }
        }
        Some(_) => {}
    }
    let live = b"GET /system/health/live HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n\r\n";
    assert_eq!(
        exchange(addr, live).0,
        200,
        "the server stopped answering after {}",
        shown()
    );
}
