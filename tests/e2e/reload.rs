//! Reload without downtime (issue 17, item 4): `POST /admin/reload` and SIGHUP re-read
//! config.toml; packs newly enabled are loaded (migrations applied), disabled ones unmounted,
//! changed ones loaded anew; clients hammering the server meanwhile see no connection error
//! and no 5xx; a broken configuration is rejected with its reason and the old set serves on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use testkit::ConfigToml;

use crate::harness::{ADMIN_KEY, Engine, ServerProcess, TestApp, TestDb, config_toml, parse};

/// The secured test config of `packs`, as `ConfigToml` (to write and rewrite).
fn file_of(db: &TestDb, packs: &[&str]) -> ConfigToml {
    config_toml(db, packs).admin_key(ADMIN_KEY)
}

/// Write `text` where the running server's configuration came from.
fn rewrite(app: &TestApp, text: &str) {
    std::fs::write(&app.config.source, text).expect("write config.toml");
}

/// Start on `file`, written to disk first (a reload re-reads it from there).
async fn start(db: TestDb, file: &ConfigToml) -> TestApp {
    let config = parse(&db, file);
    std::fs::write(&config.source, file.to_toml()).expect("write config.toml");
    TestApp::start(db, config).await
}

/// What hammering clients saw: answers by class, and requests that got no answer.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    server_errors: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
}

/// `clients` loops of `GET path` as the admin until `stop`.
fn hammer(
    app: &TestApp,
    path: &str,
    clients: usize,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Seen>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let (url, stop, seen) = (app.url(path), Arc::clone(stop), Arc::clone(seen));
            let client = reqwest::Client::new();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).header("x-api-key", ADMIN_KEY).send().await {
                        Ok(r) if r.status().is_success() => &seen.ok,
                        Ok(r) if r.status().is_server_error() => &seen.server_errors,
                        Ok(_) => &seen.other,
                        Err(_) => &seen.failed,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

/// `valhalla_config_reloads_total{result}` as `/metrics` shows it.
async fn reloads(app: &TestApp, result: &str) -> f64 {
    let scrape = crate::metrics::scrape(app).await;
    crate::metrics::value(
        &scrape,
        "valhalla_config_reloads_total",
        &[("result", result)],
    )
}

fn names(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` in {report}"))
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

async fn enables_and_disables_under_load(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let before = [
        "api_clients",
        "system_config",
        "route_index",
        "deployment_profile",
    ];
    let file = file_of(&db, &before);
    let app = start(db, &file).await;
    // the feature flags pack is not served yet; the route index is
    app.as_admin()
        .get("/system/features")
        .expect_problem(404)
        .await;
    app.as_admin().get("/debug/routes").expect(200).await;

    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Seen::default()));
    let mut clients = hammer(&app, "/system/config", 4, &stop, &seen);
    clients.extend(hammer(&app, "/system/deploy/profile", 2, &stop, &seen));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // enable feature_flags (its migrations run now), disable route_index, change
    // deployment_profile's settings
    let after = [
        "api_clients",
        "system_config",
        "feature_flags",
        "deployment_profile",
    ];
    let text = format!(
        "{}\n[packs.deployment_profile.settings]\nenvironment = \"staging\"\n",
        file_of(&app.db, &after)
            .pack("route_index", false)
            .to_toml()
    );
    rewrite(&app, &text);
    let report = app.as_admin().post_empty("/admin/reload").expect(200).await;
    assert_eq!(report["status"], "reloaded", "{report}");
    assert_eq!(names(&report, "loaded"), ["feature_flags"], "{report}");
    assert_eq!(names(&report, "unloaded"), ["route_index"], "{report}");
    assert_eq!(
        names(&report, "reloaded"),
        ["deployment_profile"],
        "{report}"
    );
    assert_eq!(
        names(&report, "unchanged"),
        ["api_clients", "system_config"],
        "{report}"
    );
    assert!(names(&report, "restart_required").is_empty(), "{report}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let ok = seen.ok.load(Ordering::Relaxed);
    assert!(ok > 20, "the clients got only {ok} answers");
    assert_eq!(seen.failed.load(Ordering::Relaxed), 0, "connection errors");
    assert_eq!(seen.server_errors.load(Ordering::Relaxed), 0, "5xx answers");
    assert_eq!(seen.other.load(Ordering::Relaxed), 0, "other answers");

    // the new set: feature flags work (their table exists), the route index is gone, the
    // changed settings are seen, and the OpenAPI document and the catalogue follow
    let flag = serde_json::json!({"key": "reloaded_flag", "enabled": true});
    app.as_admin()
        .post("/system/features", &flag)
        .expect(200)
        .await;
    app.as_admin()
        .get("/system/features/reloaded_flag")
        .expect(200)
        .await;
    app.as_admin()
        .get("/debug/routes")
        .expect_problem(404)
        .await;
    let profile = app
        .as_admin()
        .get("/system/deploy/profile")
        .expect(200)
        .await;
    assert_eq!(profile["environment"], "staging", "{profile}");
    let doc = app.get("/openapi.json").expect(200).await;
    assert!(doc["paths"].get("/system/features").is_some());
    assert!(doc["paths"].get("/debug/routes").is_none());
    assert!(reloads(&app, "applied").await >= 1.0);
    app.finish().await;
}
crate::on_both_engines!(
    a_reload_enables_and_disables_packs_under_load,
    enables_and_disables_under_load
);

async fn broken_reloads_keep_serving(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let file = file_of(&db, &["api_clients", "system_config"]);
    let app = start(db, &file).await;
    let entry = serde_json::json!({"key": "kept", "value": "v"});
    app.as_admin()
        .post("/system/config", &entry)
        .expect(200)
        .await;

    let rejected_before = reloads(&app, "rejected").await;
    // only an admin may reload
    app.anon()
        .post_empty("/admin/reload")
        .expect_problem(401)
        .await;

    // a file that does not parse
    rewrite(&app, "[server\nbind = ");
    let problem = app
        .as_admin()
        .post_empty("/admin/reload")
        .expect_problem(422)
        .await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("rejected") && detail.contains("config.toml"),
        "{problem}"
    );

    // a pack whose component does not exist
    let text = format!(
        "{}\n[packs.ghost]\nenabled = true\n",
        file.clone().to_toml()
    );
    rewrite(&app, &text);
    let problem = app
        .as_admin()
        .post_empty("/admin/reload")
        .expect_problem(422)
        .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ghost"),
        "{problem}"
    );

    // a component that says it is another pack
    let imposter = crate::harness::packs_dir().join("system_config.wasm");
    let text = format!(
        "{}\n[packs.imposter]\nenabled = true\ncomponent = {:?}\n",
        file.clone().to_toml(),
        imposter.display().to_string()
    );
    rewrite(&app, &text);
    let problem = app
        .as_admin()
        .post_empty("/admin/reload")
        .expect_problem(422)
        .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("imposter"),
        "{problem}"
    );

    // the old set serves on, with its data
    let got = app.as_admin().get("/system/config/kept").expect(200).await;
    assert_eq!(got["value"], "v", "{got}");
    app.as_admin()
        .get("/system/features")
        .expect_problem(404)
        .await;

    // and a good file afterwards is applied
    rewrite(&app, &file.clone().pack("feature_flags", true).to_toml());
    let report = app.as_admin().post_empty("/admin/reload").expect(200).await;
    assert_eq!(names(&report, "loaded"), ["feature_flags"], "{report}");
    // (the counter is the process's: other tests' reloads count too)
    assert!(reloads(&app, "rejected").await >= rejected_before + 3.0);
    app.finish().await;
}
crate::on_both_engines!(
    a_broken_reload_keeps_the_old_set_serving,
    broken_reloads_keep_serving
);

/// A scheduled pack enabled by a reload ticks; one disabled stops ticking.
async fn ticks_follow_the_reload(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let file = file_of(&db, &["api_clients", "system_config"]);
    let app = start(db, &file).await;
    let ticks = || async {
        let scrape = crate::metrics::scrape(&app).await;
        crate::metrics::value(
            &scrape,
            "valhalla_scheduler_ticks_total",
            &[("pack", "maintenance")],
        )
    };
    let at_start = ticks().await;
    rewrite(&app, &file.clone().pack("maintenance", true).to_toml());
    app.as_admin().post_empty("/admin/reload").expect(200).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let running = ticks().await;
    assert!(
        running >= at_start + 1.0,
        "maintenance never ticked: {running}"
    );
    rewrite(&app, &file.clone().pack("maintenance", false).to_toml());
    let report = app.as_admin().post_empty("/admin/reload").expect(200).await;
    assert_eq!(names(&report, "unloaded"), ["maintenance"], "{report}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = ticks().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ticks().await, stopped, "an unloaded pack ticked on");
    app.finish().await;
}
crate::on_both_engines!(a_reload_starts_and_stops_tickers, ticks_follow_the_reload);

/// SIGHUP on the real binary does what `POST /admin/reload` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_real_binary() {
    let Some(db) = TestDb::new(Engine::Sqlite).await else {
        return;
    };
    let file = file_of(&db, &["api_clients", "system_config"]);
    let server = ServerProcess::start(&db, &file.clone().to_toml());
    let client = reqwest::Client::new();
    let status = |path: &'static str| {
        let (client, url) = (client.clone(), server.url(path));
        async move {
            client
                .get(url)
                .header("x-api-key", ADMIN_KEY)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(status("/system/features").await, 404);
    let path = db.dir.path().join("process.toml");
    std::fs::write(&path, file.clone().pack("feature_flags", true).to_toml()).expect("rewrite");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let mut answered = 0;
    for _ in 0..100 {
        answered = status("/system/features").await;
        if answered == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, 200, "SIGHUP did not enable feature_flags");
    assert_eq!(status("/system/config").await, 200);
    server.kill();
}

/// A request in flight when its pack is unloaded finishes on the old set.
async fn in_flight_requests_finish(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let file = file_of(&db, &["api_clients", "faulty"]).deadline_ms(10_000);
    let app = start(db, &file).await;
    let slow = tokio::spawn(app.anon().get("/faulty/slow?ms=5000").send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    rewrite(&app, &file.clone().pack("faulty", false).to_toml());
    let report = app.as_admin().post_empty("/admin/reload").expect(200).await;
    assert_eq!(names(&report, "unloaded"), ["faulty"], "{report}");
    app.anon().get("/faulty/ok").expect_problem(404).await;
    let answered = slow.await.expect("the slow request");
    assert_eq!(answered.status(), 200, "the in-flight request was cut off");
    app.finish().await;
}
// More workers than the other tests: the slow request's pack call holds one worker thread
// for its whole busy-wait (a pack call does not yield), and a task queued behind it there
// would wait with it.
mod a_request_in_flight_finishes_on_the_old_set {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::in_flight_requests_finish(crate::harness::Engine::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::in_flight_requests_finish(crate::harness::Engine::Postgres).await;
    }
}

/// Enabling system_log by a reload starts its writer: the packs kept from before audit into
/// it; disabling it again stops it.
async fn the_system_log_follows_the_reload(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let file = file_of(&db, &["api_clients", "system_config"]);
    let app = start(db, &file).await;
    rewrite(&app, &file.clone().pack("system_log", true).to_toml());
    let report = app.as_admin().post_empty("/admin/reload").expect(200).await;
    assert_eq!(names(&report, "loaded"), ["system_log"], "{report}");
    assert!(names(&report, "unchanged").contains(&"system_config".to_string()));
    app.as_admin()
        .post(
            "/system/config",
            &serde_json::json!({"key": "after_reload", "value": "v"}),
        )
        .header("x-request-id", "reload-audit-1")
        .expect(200)
        .await;
    crate::harness::eventually(
        &app,
        "/system/logs?category=audit&correlation_id=reload-audit-1",
        |v| v["total"] == 1,
    )
    .await;
    rewrite(&app, &file.clone().pack("system_log", false).to_toml());
    let report = app.as_admin().post_empty("/admin/reload").expect(200).await;
    assert_eq!(names(&report, "unloaded"), ["system_log"], "{report}");
    app.as_admin().get("/system/logs").expect_problem(404).await;
    // writes go on without it
    app.as_admin()
        .post(
            "/system/config",
            &serde_json::json!({"key": "after_unload", "value": "v"}),
        )
        .expect(200)
        .await;
    app.finish().await;
}
crate::on_both_engines!(
    enabling_the_system_log_by_reload_starts_its_writer,
    the_system_log_follows_the_reload
);
