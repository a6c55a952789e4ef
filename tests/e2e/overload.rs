//! Backpressure, not collapse: slow request heads are dropped at the header deadline, a
//! connection past the cap is refused (503, closed) while the liveness probe stays fast, and
//! a full instance pool or database pool makes a request wait a bounded time and then answer
//! 503 problem+json with `Retry-After`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Engine, TestApp, TestDb, secured};

/// The probe's promise, whatever else the server is doing.
const LIVE_WITHIN: Duration = Duration::from_millis(50);
const LIVE_WORST: Duration = Duration::from_millis(250);

/// `host:port` of the app.
pub fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// A raw HTTP/1.1 exchange: status, lower-cased headers, body, and whether the server closed
/// the connection after it (EOF within a second of the answer).
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub elapsed: Duration,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `GET path` on a new connection that asks to be closed; read the answer to EOF.
pub async fn raw_get(addr: &str, path: &str) -> Raw {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes within 10 s")
        .expect("read");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Raw {
        status,
        headers,
        body: body.to_string(),
        elapsed,
    }
}

/// The liveness probe on fresh connections, `n` times `every` apart: each answers 200, the
/// median within [`LIVE_WITHIN`] and none past [`LIVE_WORST`] (the machine running the tests is
/// shared, and one probe may meet another process's burst).
pub async fn live_stays_fast(addr: &str, n: usize, every: Duration) {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let live = raw_get(addr, "/system/health/live").await;
        assert_eq!(live.status, 200, "{}", live.body);
        took.push(live.elapsed);
        tokio::time::sleep(every).await;
    }
    took.sort();
    let (median, worst) = (took[n / 2], took[n - 1]);
    assert!(
        median < LIVE_WITHIN && worst < LIVE_WORST,
        "live took {took:?} (promise: {LIVE_WITHIN:?}, none past {LIVE_WORST:?})"
    );
}

/// A 503 problem+json saying when to come back.
pub fn assert_overloaded(raw: &Raw, kind: &str) {
    assert_eq!(raw.status, 503, "{}", raw.body);
    assert_eq!(raw.header("content-type"), Some("application/problem+json"));
    assert!(
        raw.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "Retry-After: {:?}",
        raw.header("retry-after")
    );
    let problem: serde_json::Value = serde_json::from_str(&raw.body).expect("a JSON problem");
    assert_eq!(problem["status"], 503);
    assert_eq!(
        problem["type"],
        format!("urn:valhalla:problem:{kind}"),
        "{problem}"
    );
}

/// Open a connection, send the start of a request head and one more header line every
/// `every`; answers how long the server held the connection (until it closed it).
async fn slowloris(addr: String, every: Duration) -> Duration {
    let started = Instant::now();
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let trickle = async move {
        let _ = write
            .write_all(b"GET /system/health/live HTTP/1.1\r\nHost: test\r\n")
            .await;
        for i in 0.. {
            tokio::time::sleep(every).await;
            if write
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let mut sink = Vec::new();
    tokio::select! {
        _ = read.read_to_end(&mut sink) => {}
        _ = trickle => {}
        _ = tokio::time::sleep(Duration::from_secs(15)) => {}
    }
    started.elapsed()
}

/// A connection that never sends a byte; answers how long the server held it.
async fn silent(addr: String) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut sink)).await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_dropped_at_the_header_deadline() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut config = secured(&db, &["system_config", "faulty"]);
    config.server.header_read_timeout_ms = 1000;
    let app = TestApp::start(db, config).await;
    let addr = addr(&app);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::spawn(slowloris(
            addr.clone(),
            Duration::from_millis(300),
        )));
    }
    held.push(tokio::spawn(silent(addr.clone())));
    // the probe is fast while they trickle
    live_stays_fast(&addr, 7, Duration::from_millis(80)).await;
    for h in held {
        let held = h.await.unwrap();
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(3),
            "held {held:?} with a 1 s header deadline"
        );
    }
    // a prompt client on a kept-alive connection is served, then dropped once idle past it
    let ok = app.as_admin().get("/faulty/ok").expect(200).await;
    assert_eq!(ok["ok"], true);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_the_cap_is_refused_while_live_stays_fast() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut config = secured(&db, &["system_config", "faulty"]);
    config.server.max_connections = 8;
    config.server.header_read_timeout_ms = 30_000;
    let app = TestApp::start(db, config).await;
    let addr = addr(&app);
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = raw_get(&addr, "/faulty/ok").await;
    assert_overloaded(&refused, "overloaded");
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(
        refused.elapsed < Duration::from_secs(1),
        "{:?}",
        refused.elapsed
    );
    live_stays_fast(&addr, 7, Duration::ZERO).await;
    // the cap frees as connections close
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = raw_get(&addr, "/faulty/ok").await;
    assert_eq!(served.status, 200, "{}", served.body);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_answers_503_after_the_bounded_wait() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let mut config = secured(&db, &["system_config", "faulty"]);
    config.runtime.max_instances = 2;
    config.runtime.instance_wait_ms = 300;
    config.runtime.deadline_ms = 5_000;
    let app = TestApp::start(db, config).await;
    let addr = addr(&app);
    // two calls that busy-wait 2 s hold both instances
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move { raw_get(&addr, "/faulty/slow?ms=2000").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = raw_get(&addr, "/faulty/ok").await;
    assert_overloaded(&refused, "overloaded");
    assert!(
        refused.elapsed >= Duration::from_millis(300)
            && refused.elapsed < Duration::from_millis(1200),
        "answered after {:?} with a 300 ms wait",
        refused.elapsed
    );
    // the probe takes no instance, and the busy guests yield to it
    live_stays_fast(&addr, 7, Duration::from_millis(20)).await;
    for b in busy {
        let done = b.await.unwrap();
        assert_eq!(done.status, 200, "{}", done.body);
    }
    // a waiter gets the first instance freed within its wait
    let long: Vec<_> = (0..2)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move { raw_get(&addr, "/faulty/slow?ms=150").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waited = raw_get(&addr, "/faulty/ok").await;
    assert_eq!(waited.status, 200, "{}", waited.body);
    for l in long {
        assert_eq!(l.await.unwrap().status, 200);
    }
    app.finish().await;
}

/// Both engines: the pack's database connections are all busy (one slow read holds the only
/// one); another read waits `database.acquire_timeout_ms`, then answers 503.
async fn full_database_pool(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut config = secured(&db, &["system_config", "faulty"]);
    config.runtime.deadline_ms = 4_000;
    config.database.acquire_timeout_ms = 200;
    // PostgreSQL: the pack's own pool of one; SQLite: one reading lane (beside the writer)
    config.database.pack_max_connections = 1;
    if engine == Engine::Sqlite {
        config.database.max_connections = 2;
    }
    let app = TestApp::start(db, config).await;
    let addr = addr(&app);
    let holder = {
        let addr = addr.clone();
        tokio::spawn(async move { raw_get(&addr, "/faulty/slow-query?n=200000000").await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let refused = raw_get(&addr, "/faulty/slow-query?n=200000000").await;
    assert_overloaded(&refused, "unavailable");
    assert!(
        refused.elapsed < Duration::from_millis(1500),
        "answered after {:?} with a 200 ms acquire bound",
        refused.elapsed
    );
    live_stays_fast(&addr, 5, Duration::ZERO).await;
    // the holder ends at its deadline: a 503 too, never a 500
    let held = holder.await.unwrap();
    assert!(
        matches!(held.status, 200 | 503),
        "{} {}",
        held.status,
        held.body
    );
    let after = raw_get(&addr, "/faulty/slow-query?n=10").await;
    assert_eq!(after.status, 200, "{}", after.body);
    app.finish().await;
}
crate::on_both_engines!(
    a_full_database_pool_answers_503_after_the_bounded_wait,
    full_database_pool
);
