//! Governance end to end, on both engines: api_clients (hashed keys, roles, activate,
//! deactivate, rotate) behind the guard chain, the access matrix, maintenance mode with the
//! read-only shield, scheduled windows, and admin_ops composing packs in-process.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, config_toml, eventually, parse, secured};
use crate::on_both_engines;
use crate::requests::problem;

const ALL: &[&str] = &[
    "api_clients",
    "system_config",
    "feature_flags",
    "maintenance",
    "read_only_shield",
    "admin_ops",
    "system_log",
];

async fn app_with(engine: Engine, packs: &[&str]) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut toml = config_toml(&db, packs)
        .admin_key(ADMIN_KEY)
        .guard_order(&["api_clients"]);
    if packs.contains(&"read_only_shield") {
        toml = toml.grant_packs("read_only_shield", &["maintenance"]);
    }
    if packs.contains(&"admin_ops") {
        toml = toml.grant_packs(
            "admin_ops",
            &[
                "maintenance",
                "feature_flags",
                "system_config",
                "api_clients",
                "rate_limits",
            ],
        );
    }
    let cfg = parse(&db, &toml);
    Some(TestApp::start(db, cfg).await)
}

/// Register a client with `roles` as the bootstrap admin; answers (client, key).
async fn register(app: &TestApp, name: &str, roles: &[&str]) -> (Value, String) {
    let body = app
        .as_admin()
        .post("/system/clients", &json!({"name": name, "roles": roles}))
        .expect(201)
        .await;
    let key = body["api_key"].as_str().unwrap().to_string();
    (body["client"].clone(), key)
}

/// The status of `method path` with `key` (if any) and a JSON `body` (if any).
async fn status(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> u16 {
    let caller = key.map_or(app.anon(), |k| app.as_key(k));
    let call = caller.request(method, path);
    match body {
        Some(b) => call.json(b),
        None => call,
    }
    .status()
    .await
}

async fn clients_lifecycle(engine: Engine) {
    let Some(app) = app_with(engine, ALL).await else {
        return;
    };
    let (client, key) = register(&app, "ci-bot", &["read", "write"]).await;
    assert!(key.starts_with("vk_") && key.len() == 51, "{key}");
    assert_eq!(client["roles"], json!(["read", "write"]));
    assert_eq!(client["active"], true);
    assert_eq!(client["key_prefix"], &key[..11]);
    assert!(client.get("key_hash").is_none() && client.get("api_key").is_none());
    let id = client["id"].as_str().unwrap().to_string();

    // the key is never shown again
    let listed = app.as_admin().get("/system/clients").expect(200).await;
    assert_eq!(listed["total"], 1);
    assert!(
        !listed.to_string().contains(&key[11..]),
        "the secret part never appears"
    );
    let got = app
        .as_admin()
        .get(&format!("/system/clients/{id}"))
        .expect(200)
        .await;
    assert_eq!(got["name"], "ci-bot");
    assert!(!got.to_string().contains(&key[11..]));

    // the key works, as Bearer too
    assert_eq!(app.as_key(&key).get("/system/config").status().await, 200);
    let bearer = app.anon().get("/system/config").bearer(&key);
    assert_eq!(bearer.status().await, 200);

    // deactivation takes effect on the very next request
    app.as_admin()
        .post_empty(&format!("/system/clients/{id}/deactivate"))
        .expect(200)
        .await;
    app.as_key(&key)
        .get("/system/config")
        .expect_problem(401)
        .await;
    app.as_admin()
        .post_empty(&format!("/system/clients/{id}/activate"))
        .expect(200)
        .await;
    assert_eq!(app.as_key(&key).get("/system/config").status().await, 200);

    // rotation: the old key stops, the new one works
    let rotated = app
        .as_admin()
        .post_empty(&format!("/system/clients/{id}/rotate"))
        .expect(200)
        .await;
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    app.as_key(&key)
        .get("/system/config")
        .expect_problem(401)
        .await;
    assert_eq!(
        app.as_key(&new_key).get("/system/config").status().await,
        200
    );

    // a key of the caller's choosing
    let chosen = "my-own-key-that-is-long-enough-1234";
    app.as_admin()
        .post(
            "/system/clients",
            &json!({"name": "chosen", "roles": ["read"], "key": chosen}),
        )
        .expect(201)
        .await;
    assert_eq!(app.as_key(chosen).get("/system/config").status().await, 200);

    // errors
    for (body, field) in [
        (json!({"name": "x", "roles": ["root"]}), "roles"),
        (json!({"name": "x", "roles": []}), "roles"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "key": "short"}), "key"),
        (json!({"name": "x", "key": "has spaces in it"}), "key"),
        (json!({"roles": ["read"]}), "name"),
    ] {
        let p = app
            .as_admin()
            .post("/system/clients", &body)
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{body}");
    }
    app.as_admin()
        .get("/system/clients/nope")
        .expect_problem(404)
        .await;
    app.as_admin()
        .post_empty("/system/clients/nope/rotate")
        .expect_problem(404)
        .await;
    // the same chosen key twice is a conflict
    app.as_admin()
        .post("/system/clients", &json!({"name": "dup", "key": chosen}))
        .expect_problem(409)
        .await;
    app.finish().await;
}
on_both_engines!(clients_register_rotate_and_deactivate, clients_lifecycle);

/// Each access level × no key / bad key / read key / write key / admin key / deactivated key.
async fn access_matrix(engine: Engine) {
    let Some(app) = app_with(engine, ALL).await else {
        return;
    };
    let (_, read) = register(&app, "reader", &["read"]).await;
    let (_, write) = register(&app, "writer", &["write"]).await;
    let (_, admin) = register(&app, "admin", &["admin"]).await;
    let (gone, gone_key) = register(&app, "gone", &["admin"]).await;
    app.as_admin()
        .post_empty(&format!(
            "/system/clients/{}/deactivate",
            gone["id"].as_str().unwrap()
        ))
        .expect(200)
        .await;

    let public = (Method::GET, "/system/maintenance/state", None);
    let read_route = (Method::GET, "/system/config", None);
    let write_route = (
        Method::POST,
        "/system/config",
        Some(json!({"key": "k", "value": "v"})),
    );
    let admin_route = (Method::GET, "/system/clients", None);
    let keys: [(&str, Option<&str>); 7] = [
        ("none", None),
        ("bad", Some("vk_not-a-real-key-000000000000000000000")),
        ("read", Some(&read)),
        ("write", Some(&write)),
        ("admin", Some(&admin)),
        ("bootstrap", Some(ADMIN_KEY)),
        ("deactivated", Some(&gone_key)),
    ];
    // expected status per key for public, read, write, admin routes
    let expected = [
        ("none", [200, 401, 401, 401]),
        ("bad", [401, 401, 401, 401]),
        ("read", [200, 200, 403, 403]),
        ("write", [200, 200, 200, 403]),
        ("admin", [200, 200, 200, 200]),
        ("bootstrap", [200, 200, 200, 200]),
        ("deactivated", [401, 401, 401, 401]),
    ];
    for ((who, key), (who2, want)) in keys.iter().zip(expected) {
        assert_eq!(*who, who2);
        for (i, (method, path, body)) in [&public, &read_route, &write_route, &admin_route]
            .into_iter()
            .enumerate()
        {
            let got = status(&app, method.clone(), path, *key, body.as_ref()).await;
            assert_eq!(got, want[i], "{who} key on {method} {path}");
        }
    }
    // 401s say how to authenticate; nothing secret in the body
    let resp = app.get("/system/config").await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let p = problem(resp, 401).await;
    assert!(!p.to_string().contains(ADMIN_KEY));
    app.finish().await;
}
on_both_engines!(access_levels_by_role, access_matrix);

async fn maintenance_flow(engine: Engine) {
    let Some(app) = app_with(engine, ALL).await else {
        return;
    };
    let (_, writer) = register(&app, "writer", &["write"]).await;
    let write = |key: &str| {
        app.as_key(key)
            .post("/system/config", &json!({"key": "k", "value": "v"}))
    };
    let state = app.get("/system/maintenance/state").expect(200).await;
    assert_eq!(state["mode"], "normal");
    assert_eq!(write(&writer).status().await, 200);

    // maintenance on: writes refused with Retry-After, reads pass
    let on = app
        .as_admin()
        .post_empty("/system/maintenance/state/maintenance?reason=db%20upgrade")
        .expect(200)
        .await;
    assert_eq!(on["mode"], "maintenance");
    assert_eq!(on["changed_by"], "bootstrap-admin");
    assert_eq!(on["reason"], "db upgrade");
    let refused = write(&writer).await;
    assert!(refused.headers().get("retry-after").is_some());
    let p = problem(refused, 503).await;
    assert!(p["detail"].as_str().unwrap().contains("db upgrade"), "{p}");
    assert_eq!(
        app.as_key(&writer).get("/system/config/k").status().await,
        200
    );
    assert_eq!(app.get("/system/health/ready").status().await, 200);
    // non-admins cannot touch the maintenance endpoints; admins can switch back
    assert_eq!(
        app.as_key(&writer)
            .post_empty("/system/maintenance/state/normal")
            .status()
            .await,
        503
    );
    let off = app
        .as_admin()
        .post_empty("/system/maintenance/state/normal")
        .expect(200)
        .await;
    assert_eq!(off["mode"], "normal");
    assert_eq!(write(&writer).status().await, 200);

    // read_only behaves the same for writes
    app.as_admin()
        .post_empty("/system/maintenance/state/read_only")
        .expect(200)
        .await;
    app.as_key(&writer)
        .delete("/system/config/k")
        .expect_problem(503)
        .await;
    app.as_admin()
        .post_empty("/system/maintenance/state/normal")
        .expect(200)
        .await;

    app.as_admin()
        .post_empty("/system/maintenance/state/party")
        .expect_problem(422)
        .await;
    // every change is audited
    let audit = eventually(
        &app,
        "/system/logs?category=audit&source=maintenance",
        |v| v["total"] == 4,
    )
    .await;
    assert_eq!(audit["items"][0]["context"]["action"], "maintenance.mode");
    app.finish().await;
}
on_both_engines!(
    maintenance_refuses_writes_until_switched_back,
    maintenance_flow
);

async fn windows_flip(engine: Engine) {
    let Some(app) = app_with(engine, ALL).await else {
        return;
    };
    let now = chrono::Utc::now();
    let starts = (now + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let ends = (now + chrono::Duration::milliseconds(4000)).to_rfc3339();
    let w = app
        .as_admin()
        .post(
            "/system/maintenance/windows",
            &json!({"starts_at": starts, "ends_at": ends, "reason": "planned"}),
        )
        .expect(201)
        .await;
    assert_eq!(w["status"], "scheduled");
    assert_eq!(w["mode"], "maintenance");
    let listed = app
        .as_admin()
        .get("/system/maintenance/windows")
        .expect(200)
        .await;
    assert_eq!(listed["total"], 1);

    let on = eventually(&app, "/system/maintenance/state", |s| {
        s["mode"] == "maintenance"
    })
    .await;
    assert_eq!(on["window_id"], w["id"]);
    assert!(on["until"].is_string());
    let refused = app
        .as_admin()
        .post("/system/config", &json!({"key": "a", "value": "b"}));
    // admins still write to the maintenance endpoints only; other writes wait
    assert_eq!(refused.status().await, 503);
    let back = eventually(&app, "/system/maintenance/state", |s| s["mode"] == "normal").await;
    assert!(back["window_id"].is_null());
    let done = app
        .as_admin()
        .get("/system/maintenance/windows?status=done")
        .expect(200)
        .await;
    assert_eq!(done["total"], 1);

    for (body, field) in [
        (json!({"starts_at": "soon", "ends_at": ends}), "starts_at"),
        (json!({"starts_at": ends, "ends_at": starts}), "ends_at"),
        (
            json!({"starts_at": starts, "ends_at": ends, "mode": "normal"}),
            "mode",
        ),
        (
            json!({"starts_at": "2000-01-01T00:00:00Z", "ends_at": "2000-01-02T00:00:00Z"}),
            "ends_at",
        ),
    ] {
        let p = app
            .as_admin()
            .post("/system/maintenance/windows", &body)
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{body}");
    }
    app.finish().await;
}
on_both_engines!(
    a_window_switches_the_mode_on_and_off_by_itself,
    windows_flip
);

/// Seed 002's windows had `description` (not `reason`): a client sending it is answered with
/// it, and an active window with no reason gives it as the mode's reason.
async fn windows_take_the_seeds_description(engine: Engine) {
    let Some(app) = app_with(engine, ALL).await else {
        return;
    };
    let now = chrono::Utc::now();
    let starts = (now + chrono::Duration::milliseconds(800)).to_rfc3339();
    let ends = (now + chrono::Duration::hours(1)).to_rfc3339();
    let w = app
        .as_admin()
        .post(
            "/system/maintenance/windows",
            &json!({"starts_at": starts, "ends_at": ends, "description": "database upgrade"}),
        )
        .expect(201)
        .await;
    assert_eq!(w["description"], "database upgrade");
    assert!(w["reason"].is_null());
    let listed = app
        .as_admin()
        .get("/system/maintenance/windows")
        .expect(200)
        .await;
    assert_eq!(listed["items"][0]["description"], "database upgrade");
    let on = eventually(&app, "/system/maintenance/state", |s| {
        s["mode"] == "maintenance"
    })
    .await;
    assert_eq!(on["reason"], "database upgrade");
    let long = "x".repeat(1025);
    let p = app
        .as_admin()
        .post(
            "/system/maintenance/windows",
            &json!({"starts_at": starts, "ends_at": ends, "description": long}),
        )
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "description");
    app.finish().await;
}
on_both_engines!(
    a_window_takes_the_seeds_description,
    windows_take_the_seeds_description
);

async fn admin_ops(engine: Engine) {
    let Some(app) = app_with(engine, ALL).await else {
        return;
    };
    let op = |action: &str, params: Value| {
        app.as_admin()
            .post("/admin/ops", &json!({"action": action, "params": params}))
    };
    let r = op("set_config", json!({"key": "site", "value": "v1"}))
        .expect(200)
        .await;
    assert_eq!(
        (r["ok"].as_bool(), r["action"].as_str()),
        (Some(true), Some("set_config"))
    );
    assert_eq!(r["data"]["value"], "v1");
    let r = op("get_config", json!({"key": "site"})).expect(200).await;
    assert_eq!(r["data"]["value"], "v1");
    let r = op("get_config", json!({"key": "missing"}))
        .expect(200)
        .await;
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("missing"));
    let r = op("set_flag", json!({"key": "beta", "enabled": false}))
        .expect(200)
        .await;
    assert_eq!(r["data"]["enabled"], false);
    let r = op(
        "set_maintenance_state",
        json!({"mode": "read_only", "reason": "ops"}),
    )
    .expect(200)
    .await;
    assert_eq!(r["data"]["mode"], "read_only");
    let r = op("get_maintenance_state", json!({})).expect(200).await;
    assert_eq!(r["data"]["mode"], "read_only");
    op("set_maintenance_state", json!({"mode": "normal"}))
        .expect(200)
        .await;
    let (client, _) = register(&app, "victim", &["read"]).await;
    let r = op("deactivate_client", json!({"id": client["id"]}))
        .expect(200)
        .await;
    assert_eq!(r["data"]["active"], false);
    let r = op("list_clients", json!({})).expect(200).await;
    assert_eq!(r["data"]["total"], 1);
    // rate_limits is not enabled here: ok false with the reason, never a 500
    let r = op("list_rate_limit_rules", json!({})).expect(200).await;
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("not enabled"), "{r}");

    let p = op("reboot.universe", json!({})).expect_problem(400).await;
    assert!(
        p["detail"].as_str().unwrap().contains("set_config"),
        "lists the known actions: {p}"
    );
    let p = op("get_config", json!({})).expect_problem(422).await;
    assert_eq!(p["errors"][0]["field"], "params.key");
    app.as_admin()
        .post("/admin/ops", &json!({"params": {}}))
        .expect_problem(422)
        .await;
    // admin only
    let (_, writer) = register(&app, "writer", &["write"]).await;
    app.as_key(&writer)
        .post("/admin/ops", &json!({"action": "get_maintenance_state"}))
        .expect_problem(403)
        .await;
    // every action audited
    eventually(&app, "/system/logs?category=audit&source=admin_ops", |v| {
        v["total"].as_i64() >= Some(9)
    })
    .await;
    app.finish().await;
}
on_both_engines!(admin_ops_compose_packs_in_process, admin_ops);

/// admin_ops with each target pack disabled answers ok:false, never 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_ops_with_every_target_disabled() {
    let app = app_with(Engine::Sqlite, &["admin_ops"]).await.unwrap();
    for (action, params) in [
        ("get_maintenance_state", json!({})),
        ("set_maintenance_state", json!({"mode": "normal"})),
        ("get_flag", json!({"key": "x"})),
        ("set_flag", json!({"key": "x"})),
        ("get_config", json!({"key": "x"})),
        ("set_config", json!({"key": "x", "value": "y"})),
        ("list_clients", json!({})),
        ("deactivate_client", json!({"id": "x"})),
        ("list_rate_limit_rules", json!({})),
    ] {
        let r = app
            .as_admin()
            .post("/admin/ops", &json!({"action": action, "params": params}))
            .expect(200)
            .await;
        assert_eq!(r["ok"], false, "{action}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains("not enabled"),
            "{action}: {r}"
        );
    }
    app.finish().await;
}

/// Without the maintenance pack the shield lets writes through; a pack cannot call packs it
/// was not granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shield_without_maintenance_and_ungranted_calls() {
    let app = app_with(
        Engine::Sqlite,
        &["api_clients", "system_config", "read_only_shield"],
    )
    .await
    .unwrap();
    let resp = app
        .as_admin()
        .post("/system/config", &json!({"key": "a", "value": "b"}));
    assert_eq!(resp.status().await, 200);
    app.finish().await;

    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let mut cfg = secured(&db, &["admin_ops", "maintenance"]);
    cfg.packs.get_mut("admin_ops").unwrap().grants.packs.clear();
    let app = TestApp::start(db, cfg).await;
    let r = app
        .as_admin()
        .post("/admin/ops", &json!({"action": "get_maintenance_state"}))
        .expect(200)
        .await;
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("grants.packs"), "{r}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.finish().await;
}

/// Seed 002's integration steps, with the admin key our server requires.
async fn seed_002(engine: Engine) {
    let Some(app) = app_with(engine, ALL).await else {
        return;
    };
    // curl /system/clients/ -d '{"name": "TestClient", "client_type": "test", "api_key": "sk_test_123"}'
    let created = app
        .as_admin()
        .post(
            "/system/clients/",
            &json!({"name": "TestClient", "client_type": "test", "api_key": "sk_test_123"}),
        )
        .expect(201)
        .await;
    assert_eq!(created["client"]["name"], "TestClient");
    assert_eq!(created["client"]["client_type"], "test");
    assert_eq!(created["api_key"], "sk_test_123");
    assert_eq!(
        app.as_key("sk_test_123")
            .get("/system/config")
            .status()
            .await,
        200
    );
    // curl /system/clients/ → the list
    let list = app.as_admin().get("/system/clients/").expect(200).await;
    assert_eq!(list["total"], 1);
    // curl /system/maintenance/state → mode, reason, updated_at
    let state = app.get("/system/maintenance/state").expect(200).await;
    assert_eq!(state["mode"], "normal");
    assert!(state.get("reason").is_some() && state.get("updated_at").is_some());
    // curl -X POST /admin/ops/ -d '{"action": "get_maintenance_state"}' → ok=true, data has mode
    let op = app
        .as_admin()
        .post("/admin/ops/", &json!({"action": "get_maintenance_state"}))
        .expect(200)
        .await;
    assert_eq!(op["ok"], true);
    assert_eq!(op["data"]["mode"], "normal");
    app.finish().await;

    // curl -X POST /system/ratelimits/rules -d '{"scope": "ip", "key": "192.168.1.1", "max_requests": 100}'
    let Some(app) = app_with(engine, &["api_clients", "rate_limits"]).await else {
        return;
    };
    let rule = app
        .as_admin()
        .post(
            "/system/ratelimits/rules",
            &json!({"scope": "ip", "key": "192.168.1.1", "max_requests": 100}),
        )
        .expect(201)
        .await;
    assert_eq!(rule["scope"], "ip");
    assert_eq!(rule["max_requests"], 100);
    assert_eq!(rule["window_seconds"], 60);
    // curl /system/ratelimits/rules → the list
    let rules = app
        .as_admin()
        .get("/system/ratelimits/rules")
        .expect(200)
        .await;
    assert_eq!(rules["total"], 1);
    app.finish().await;
}
on_both_engines!(seed_002_integration_steps, seed_002);
