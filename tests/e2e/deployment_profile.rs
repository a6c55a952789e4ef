//! deployment_profile (pack UB): the profile, and smoke tests through the outbound-http
//! capability, which reaches only granted URLs.

use std::net::TcpListener;

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, config, grant, secured};
use crate::on_both_engines;

/// route_index + deployment_profile, allowed to call `http://localhost:*`.
async fn app(engine: Engine, with_route_index: bool) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut packs = vec!["deployment_profile", "system_config"];
    if with_route_index {
        packs.push("route_index");
    }
    let mut cfg = config(&db, &packs);
    grant(&mut cfg, "deployment_profile", "http://localhost:*");
    cfg.packs.get_mut("deployment_profile").unwrap().deadline_ms = Some(10_000);
    cfg.packs
        .get_mut("deployment_profile")
        .unwrap()
        .settings
        .insert("environment".into(), toml::Value::String("staging".into()));
    Some(TestApp::start(db, cfg).await)
}

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

async fn profile(engine: Engine) {
    let Some(app) = app(engine, true).await else {
        return;
    };
    // seed: curl /system/deploy/profile?environment=dev → { "environment": "dev", "version": …, "timestamp": … }
    let p = app
        .get("/system/deploy/profile?environment=dev")
        .expect(200)
        .await;
    assert_eq!(p["environment"], "dev");
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
    assert!(chrono::DateTime::parse_from_rfc3339(p["timestamp"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(p["started_at"].as_str().unwrap()).is_ok());
    assert!(p["uptime_seconds"].as_i64().unwrap() >= 0);
    let packs: Vec<&str> = p["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        packs,
        ["deployment_profile", "route_index", "system_config"]
    );
    // no environment given: the pack's configured default
    let p = app.get("/system/deploy/profile").expect(200).await;
    assert_eq!(p["environment"], "staging");
    let e = app
        .get("/system/deploy/profile?environment=no%20spaces")
        .expect_problem(422)
        .await;
    assert_eq!(e["errors"][0]["field"], "environment");
    app.finish().await;
}
on_both_engines!(profile_says_what_is_deployed, profile);

async fn smoke_self(engine: Engine) {
    let Some(app) = app(engine, true).await else {
        return;
    };
    let base = format!("http://localhost:{}", port(&app));
    let report = app
        .get(&format!(
            "/system/deploy/smoke?base_url={base}/&environment=dev"
        ))
        .expect(200)
        .await;
    assert_eq!(report["all_ok"], true, "{report}");
    assert_eq!(report["environment"], "dev");
    let results = report["results"].as_array().unwrap();
    let endpoints: Vec<&str> = results
        .iter()
        .map(|r| r["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        endpoints,
        [
            "/system/health/live",
            "/system/health/ready",
            "/debug/routes"
        ]
    );
    for r in results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["status"], 200);
        assert_eq!(r["auth_required"], false);
        assert!(r["error"].is_null());
        assert!(r["duration_ms"].as_i64().unwrap() >= 0);
    }
    app.finish().await;
}
on_both_engines!(smoke_against_itself_is_all_ok, smoke_self);

/// With authentication on (the shipped default), the smoke run sends no credential: the
/// protected route index answers 401, which proves it is up and counts as reachable.
async fn smoke_self_secured(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut cfg = secured(&db, &["deployment_profile", "route_index"]);
    grant(&mut cfg, "deployment_profile", "http://localhost:*");
    cfg.packs.get_mut("deployment_profile").unwrap().deadline_ms = Some(10_000);
    let app = TestApp::start(db, cfg).await;
    let base = format!("http://localhost:{}", port(&app));
    let report = app
        .as_admin()
        .get(&format!("/system/deploy/smoke?base_url={base}"))
        .expect(200)
        .await;
    assert_eq!(report["all_ok"], true, "{report}");
    let routes = &report["results"][2];
    assert_eq!(routes["endpoint"], "/debug/routes");
    assert_eq!(routes["status"], 401, "{routes}");
    assert_eq!(routes["auth_required"], true);
    assert_eq!(report["results"][0]["auth_required"], false);
    // the caller's credential went nowhere
    assert!(!report.to_string().contains(ADMIN_KEY));
    app.finish().await;
}
on_both_engines!(smoke_with_authentication_on_is_all_ok, smoke_self_secured);

async fn smoke_failing(engine: Engine) {
    let Some(app) = app(engine, false).await else {
        return;
    }; // no route_index: /debug/routes is a 404
    let base = format!("http://localhost:{}", port(&app));
    let report = app
        .get(&format!("/system/deploy/smoke?base_url={base}"))
        .expect(200)
        .await;
    assert_eq!(report["all_ok"], false);
    let routes = &report["results"][2];
    assert_eq!(routes["endpoint"], "/debug/routes");
    assert_eq!(routes["ok"], false);
    assert_eq!(routes["status"], 404);
    assert!(routes["error"].as_str().unwrap().contains("404"));
    // a granted address where nothing listens: an error, not a failure of the request
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = app
        .get(&format!(
            "/system/deploy/smoke?base_url=http://localhost:{dead}"
        ))
        .expect(200)
        .await;
    assert_eq!(report["all_ok"], false);
    assert!(report["results"][0]["status"].is_null());
    assert!(report["results"][0]["error"].as_str().is_some());
    app.finish().await;
}
on_both_engines!(smoke_reports_a_failing_endpoint, smoke_failing);

async fn smoke_refused(engine: Engine) {
    let Some(app) = app(engine, true).await else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let p = app
        .get(&format!("/system/deploy/smoke?base_url={url}"))
        .expect_problem(403)
        .await;
    assert!(
        p["detail"].as_str().unwrap().contains("grants.outbound"),
        "{p}"
    );
    assert!(
        listener.accept().is_err(),
        "no connection reached the refused address"
    );
    app.finish().await;
}
on_both_engines!(
    smoke_to_an_ungranted_url_is_refused_without_connecting,
    smoke_refused
);

async fn smoke_base_url(engine: Engine) {
    let Some(app) = app(engine, true).await else {
        return;
    };
    for bad in [
        "",
        "?base_url=localhost:8000",
        "?base_url=http://localhost:1/path",
        "?base_url=ftp://x",
    ] {
        let p = app
            .get(&format!("/system/deploy/smoke{bad}"))
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], "base_url", "{bad}: {p}");
    }
    app.finish().await;
}
on_both_engines!(smoke_validates_base_url, smoke_base_url);

/// The host enforces the outbound timeout a pack asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_timeouts_are_enforced() {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let mut cfg = config(&db, &["faulty"]);
    grant(&mut cfg, "faulty", "http://127.0.0.1:*");
    cfg.packs.get_mut("faulty").unwrap().deadline_ms = Some(5_000);
    let app = TestApp::start(db, cfg).await;
    // accepts connections, never answers
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let body = app
        .get(&format!("/faulty/outbound?url={url}"))
        .expect(200)
        .await;
    assert_eq!(body["result"], "unavailable", "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    // a granted, answering URL goes through
    let live = format!("{}/system/health/live", app.base);
    let body = app
        .get(&format!("/faulty/outbound?url={live}"))
        .expect(200)
        .await;
    assert_eq!(body["result"], "sent");
    assert_eq!(body["status"], 200);
    drop(silent);
    app.finish().await;
}
