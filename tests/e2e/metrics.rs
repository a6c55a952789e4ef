//! `GET /metrics` (Prometheus text, public with authentication on) read with two independent
//! parsers: Rust's `prometheus-parse` for the values and Python's `prometheus_client` (when the
//! test Python is there) for the format. The recorder is process-wide and other tests run
//! servers beside these, so every check is a lower bound on how far a series moved.
//! `GET /system/health/metrics` keeps seed 004's JSON summary.

use std::time::Duration;

use prometheus_parse::{Scrape, Value as Sample};
use serde_json::Value;

use crate::harness::{Engine, TestApp, TestDb, secured, test_python};
use crate::on_both_engines;

async fn start(engine: Engine) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, &["system_config", "api_clients", "faulty"]);
    // /faulty/loop hits it soon
    cfg.runtime.deadline_ms = 1_500;
    let faulty = cfg.packs.get_mut("faulty").expect("faulty is loaded");
    for (name, value) in [
        ("tick", toml::Value::String("fail".into())),
        ("tick_interval_ms", toml::Value::Integer(150)),
    ] {
        faulty.settings.insert(name.into(), value);
    }
    Some(TestApp::start(db, cfg).await)
}

/// The exposition text, fetched without a key.
async fn text(app: &TestApp) -> String {
    let resp = app.anon().get("/metrics").send().await;
    assert_eq!(resp.status(), 200, "/metrics is public");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.text().await.unwrap()
}

pub async fn scrape(app: &TestApp) -> Scrape {
    let text = text(app).await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The sum of `metric`'s samples whose labels include all of `labels` (a histogram: its
/// count).
pub fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => 0.0,
        })
        .sum()
}

const REQUESTS: &str = "valhalla_http_requests_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_requests_traps_guards_and_ticks() {
    let app = start(Engine::Sqlite).await.expect("sqlite always runs");
    let before = scrape(&app).await;
    for _ in 0..3 {
        app.get("/faulty/ok").expect(200).await;
    }
    app.get("/faulty/trap").expect_problem(500).await;
    app.get("/faulty/guarded").expect_problem(503).await;
    app.get("/faulty/loop").expect_problem(503).await;
    app.as_admin().get("/system/config").expect(200).await;
    app.get("/faulty/jobs/x/y/z/metrics-nowhere").send().await;
    let ok = [("pack", "faulty"), ("route", "/faulty/ok")];
    // a few failing ticks (every 150 ms)
    let failing = [("pack", "faulty")];
    let ticks = "valhalla_scheduler_tick_failures_total";
    let mut after = scrape(&app).await;
    for _ in 0..100 {
        if value(&after, ticks, &failing) >= value(&before, ticks, &failing) + 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape(&app).await;
    }
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    let ok_2xx = [ok[0], ok[1], ("status", "2xx")];
    assert!(moved(REQUESTS, &ok_2xx) >= 3.0, "2xx of /faulty/ok");
    let trap_5xx = [("route", "/faulty/trap"), ("status", "5xx")];
    assert!(moved(REQUESTS, &trap_5xx) >= 1.0, "5xx of /faulty/trap");
    let unmatched = [("pack", "host"), ("route", "unmatched"), ("status", "4xx")];
    assert!(moved(REQUESTS, &unmatched) >= 1.0, "404s, under one series");
    assert!(
        after
            .samples
            .iter()
            .all(|s| s.labels.get("route") != Some("/faulty/jobs/x/y/z/metrics-nowhere")),
        "raw paths are no label"
    );
    let latency = "valhalla_http_request_duration_seconds";
    assert!(moved(latency, &ok) >= 3.0, "latency observations");
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == latency && matches!(&s.value, Sample::Histogram(b) if b.len() > 5)),
        "latency renders as a histogram with buckets"
    );
    let traps = [("pack", "faulty"), ("kind", "trap")];
    assert!(
        moved("valhalla_pack_call_failures_total", &traps) >= 2.0,
        "route and guard traps"
    );
    let deadline = [("pack", "faulty"), ("kind", "deadline")];
    assert!(
        moved("valhalla_pack_call_failures_total", &deadline) >= 1.0,
        "the loop's deadline"
    );
    assert!(moved("valhalla_pack_instantiations_total", &[("pack", "faulty")]) >= 6.0);
    let guard = [("pack", "api_clients")];
    assert!(
        moved("valhalla_guard_decisions_total", &guard) >= 1.0,
        "api_clients decided"
    );
    assert!(moved(ticks, &failing) >= 2.0, "failed ticks");
    assert!(
        moved("valhalla_scheduler_ticks_total", &failing) >= 2.0,
        "ticks"
    );
    // each tick reads its start times from the cache
    assert!(moved("valhalla_cache_lookups_total", &[("pack", "faulty")]) >= 2.0);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&after, "valhalla_build_info", &version), 1.0);
    for state in ["in_use", "idle"] {
        let db = "valhalla_db_connections";
        assert!(
            after
                .samples
                .iter()
                .any(|s| s.metric == db && s.labels.get("state") == Some(state))
        );
    }
    app.finish().await;
}

/// `prometheus_client`'s parser reads every family, with the types we mean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_parses_with_prometheus_client() {
    let Some(python) = test_python() else {
        return;
    };
    let app = start(Engine::Sqlite).await.expect("sqlite always runs");
    app.get("/faulty/ok").expect(200).await;
    let text = text(&app).await;
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        fams = {f.name: f.type for f in text_string_to_metric_families(sys.stdin.read())}\n\
        print(json.dumps(fams))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the test Python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write");
    }
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for (family, kind) in [
        ("valhalla_http_requests", "counter"),
        ("valhalla_http_request_duration_seconds", "histogram"),
        ("valhalla_pack_instantiations", "counter"),
        ("valhalla_db_connections", "gauge"),
        ("valhalla_build_info", "gauge"),
    ] {
        assert_eq!(families[family], kind, "{family} in {families}");
    }
    app.finish().await;
}

async fn summary(engine: Engine) {
    let Some(app) = start(engine).await else {
        return;
    };
    app.get("/faulty/ok").expect(200).await;
    for path in ["/system/health/metrics", "/system-health/metrics"] {
        let s = app.get(path).expect(200).await;
        assert_eq!(s["status"], "ok", "{s}");
        assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
        assert!(s["uptime_seconds"].is_u64(), "{s}");
        assert!(s["started_at"].is_string(), "{s}");
        assert!(s["requests"]["total"].as_u64().unwrap() >= 1, "{s}");
        assert!(
            s["requests"]["by_status_class"]["2xx"].as_u64().unwrap() >= 1,
            "{s}"
        );
        assert_eq!(s["packs"]["loaded"], 3);
        assert!(s["database"]["connections_idle"].is_u64(), "{s}");
    }
    // the pool's gauges come from this engine's pool
    let after = scrape(&app).await;
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "valhalla_db_connections")
    );
    app.finish().await;
}
on_both_engines!(the_json_summary_keeps_seed_004s_fields, summary);
