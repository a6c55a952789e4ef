//! honeypots (pack TS) end to end on both engines: honeypot CRUD and its checks (a decoy path
//! of its own: 422 for a path a route serves or under `/system/`, 409 for a taken name or
//! path), access by role; decoys served by the pack's fallback (a hit recorded with what the
//! request showed, no secret header, answered byte for byte as the host's own 404; a disabled
//! honeypot's path records nothing; every write takes effect on the next request); auto-block
//! through security_policy (the next request from that source is 403, from the socket address
//! or, behind a trusted proxy, from `X-Forwarded-For`); sensor reports and the telemetry lists
//! with their filters and keyset paging.
//!
//! The attacker's client binds 127.0.0.3 (all of 127/8 is loopback), so blocking it leaves the
//! operator's requests from 127.0.0.1 alone.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, secured};
use crate::on_both_engines;

const HONEYPOTS: &str = "/system/security/honeypots";
const TELEMETRY: &str = "/system/security/telemetry";
const BLOCKLIST: &str = "/system/security/blocklist";

/// The host with `packs`, authentication on, 127.0.0.1 a trusted proxy (and the one address
/// security_policy never blocks), honeypots granted security_policy and given `settings`.
async fn start(engine: Engine, packs: &[&str], settings: &[(&str, i64)]) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, packs);
    cfg.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    cfg.runtime.deadline_ms = 5_000;
    if let Some(policy) = cfg.packs.get_mut("security_policy") {
        // loopback is never blocked by default; the attacker's 127.0.0.3 must be blockable
        let operator = toml::Value::Array(vec![toml::Value::String("127.0.0.1".into())]);
        policy.settings.insert("never_block".into(), operator);
    }
    let honeypots = cfg.packs.get_mut("honeypots").expect("honeypots is loaded");
    honeypots.grants.packs = vec!["security_policy".into()];
    for (name, value) in settings {
        let value = toml::Value::Integer(*value);
        honeypots.settings.insert((*name).into(), value);
    }
    Some(TestApp::start(db, cfg).await)
}

/// A client whose requests come from 127.0.0.3.
fn attacker() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .build()
        .expect("client bound to 127.0.0.3")
}

async fn create(app: &TestApp, body: Value) -> Value {
    app.as_admin().post(HONEYPOTS, &body).expect(201).await
}

/// An API client with `roles`; answers its key.
async fn client_key(app: &TestApp, name: &str, roles: &[&str]) -> String {
    app.register_client(name, roles).await.key
}

/// The telemetry list at `query` (e.g. `?source_ip=…`), as the admin.
async fn telemetry(app: &TestApp, query: &str) -> Value {
    app.as_admin()
        .get(&format!("{TELEMETRY}{query}"))
        .expect(200)
        .await
}

fn field_of(problem: &Value) -> &str {
    problem["errors"][0]["field"].as_str().unwrap_or("")
}

async fn crud(engine: Engine) {
    let Some(app) = start(
        engine,
        &["api_clients", "honeypots", "route_index", "notes"],
        &[],
    )
    .await
    else {
        return;
    };
    let wp = create(&app, json!({"name": "wordpress", "path": "/wp-login.php/"})).await;
    assert_eq!(
        wp["path"], "/wp-login.php",
        "stored without the trailing slash"
    );
    assert_eq!(
        (&wp["enabled"], &wp["auto_block"], &wp["severity"]),
        (&json!(true), &json!(false), &json!("high")),
        "defaults: {wp}"
    );
    assert_eq!((&wp["hits"], &wp["last_hit_at"]), (&json!(0), &Value::Null));
    assert_eq!(wp["created_by"], "bootstrap-admin", "{wp}");
    assert_eq!(wp["created_at"], wp["updated_at"]);
    let id = wp["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let env = create(
        &app,
        json!({"name": "dotenv", "path": "/.env", "description": "secrets bait",
               "enabled": false, "auto_block": true, "severity": "critical"}),
    )
    .await;
    assert_eq!(env["description"], "secrets bait");

    // taken names and paths are conflicts
    for dup in [
        json!({"name": "wordpress", "path": "/other"}),
        json!({"name": "other", "path": "/wp-login.php"}),
        json!({"name": "other", "path": "/wp-login.php/"}),
    ] {
        app.as_admin()
            .post(HONEYPOTS, &dup)
            .expect_problem(409)
            .await;
    }
    // bad paths are 422 naming `path`: malformed, under /system/, or a route's
    for path in [
        "wp-login.php",
        "/a b",
        "/x?y=1",
        "/x#y",
        "/a//b",
        "/system",
        "/system/anything",
        "/debug/routes",
        "/notes/42",
        "/notes",
    ] {
        let p = app
            .as_admin()
            .post(HONEYPOTS, &json!({"name": "bad", "path": path}))
            .expect_problem(422)
            .await;
        assert_eq!(field_of(&p), "path", "{path}: {p}");
    }
    let long = format!("/{}", "a".repeat(256));
    let p = app
        .as_admin()
        .post(HONEYPOTS, &json!({"name": "long", "path": long}))
        .expect_problem(422)
        .await;
    assert_eq!(field_of(&p), "path");
    let p = app
        .as_admin()
        .post(
            HONEYPOTS,
            &json!({"name": "", "path": "/ok", "severity": "urgent", "extra": 1}),
        )
        .expect_problem(422)
        .await;
    assert!(p["errors"].as_array().is_some_and(|e| !e.is_empty()), "{p}");
    app.as_admin()
        .post(HONEYPOTS, &json!({"path": "/ok"}))
        .expect_problem(422)
        .await;

    // read, list, filter
    let one = app
        .as_admin()
        .get(&format!("{HONEYPOTS}/{id}"))
        .expect(200)
        .await;
    assert_eq!(one, wp);
    app.as_admin()
        .get(&format!("{HONEYPOTS}/no-such-id"))
        .expect_problem(404)
        .await;
    let all = app.as_admin().get(HONEYPOTS).expect(200).await;
    assert_eq!(all["total"], 2);
    assert_eq!(all["items"][0]["id"], wp["id"], "oldest first");
    let on = app
        .as_admin()
        .get(&format!("{HONEYPOTS}?enabled=true"))
        .expect(200)
        .await;
    assert_eq!(
        (on["total"].clone(), on["items"][0]["name"].clone()),
        (json!(1), json!("wordpress"))
    );
    let critical = app
        .as_admin()
        .get(&format!("{HONEYPOTS}?severity=critical"))
        .expect(200)
        .await;
    assert_eq!(critical["items"][0]["name"], "dotenv");
    app.as_admin()
        .get(&format!("{HONEYPOTS}?severity=urgent"))
        .expect_problem(422)
        .await;

    // patch
    let url = format!("{HONEYPOTS}/{id}");
    let patched = app
        .as_admin()
        .patch(
            &url,
            &json!({"name": "wp", "path": "/wp-admin", "description": "x", "severity": "low"}),
        )
        .expect(200)
        .await;
    assert_eq!(
        (&patched["name"], &patched["path"], &patched["severity"]),
        (&json!("wp"), &json!("/wp-admin"), &json!("low"))
    );
    assert_ne!(patched["updated_at"], wp["updated_at"]);
    let cleared = app
        .as_admin()
        .patch(&url, &json!({"description": null}))
        .expect(200)
        .await;
    assert_eq!(
        (&cleared["description"], &cleared["name"]),
        (&Value::Null, &json!("wp"))
    );
    app.as_admin()
        .patch(&url, &json!({"name": "dotenv"}))
        .expect_problem(409)
        .await;
    app.as_admin()
        .patch(&url, &json!({"path": "/.env"}))
        .expect_problem(409)
        .await;
    let p = app
        .as_admin()
        .patch(&url, &json!({"path": "/system/x"}))
        .expect_problem(422)
        .await;
    assert_eq!(field_of(&p), "path");
    app.as_admin()
        .patch(&format!("{HONEYPOTS}/nope"), &json!({"enabled": false}))
        .expect_problem(404)
        .await;
    // its own path again is no conflict
    app.as_admin()
        .patch(&url, &json!({"path": "/wp-admin/"}))
        .expect(200)
        .await;

    // roles: read lists and reads; writes need admin, reports need write
    let reader = client_key(&app, "reader", &["read"]).await;
    let as_reader = app.as_key(&reader);
    as_reader.get(HONEYPOTS).expect(200).await;
    as_reader.get(&url).expect(200).await;
    as_reader.get(TELEMETRY).expect(200).await;
    as_reader.get(&format!("{url}/telemetry")).expect(200).await;
    as_reader
        .post(HONEYPOTS, &json!({"name": "n", "path": "/n"}))
        .expect_problem(403)
        .await;
    as_reader
        .patch(&url, &json!({"enabled": false}))
        .expect_problem(403)
        .await;
    as_reader.delete(&url).expect_problem(403).await;
    as_reader
        .post(
            &format!("{url}/telemetry"),
            &json!({"source_ip": "203.0.113.1"}),
        )
        .expect_problem(403)
        .await;
    let writer = client_key(&app, "sensor", &["write"]).await;
    app.as_key(&writer)
        .post(HONEYPOTS, &json!({"name": "n", "path": "/n"}))
        .expect_problem(403)
        .await;
    app.get(HONEYPOTS).expect_problem(401).await;

    // delete
    app.as_admin().delete(&url).expect(204).await;
    app.as_admin().delete(&url).expect_problem(404).await;
    app.as_admin().get(&url).expect_problem(404).await;
    assert_eq!(app.as_admin().get(HONEYPOTS).expect(200).await["total"], 1);
    app.finish().await;
}
on_both_engines!(honeypot_crud_checks_and_roles, crud);

/// A decoy's hit, and everything around it that must not be one.
async fn decoys(engine: Engine) {
    let cap = [("max_records_per_minute", 8)];
    let Some(app) = start(engine, &["api_clients", "honeypots"], &cap).await else {
        return;
    };
    // no decoys yet: any missing path is a plain 404
    app.get("/wp-login.php").expect_problem(404).await;
    let wp = create(
        &app,
        json!({"name": "wp", "path": "/wp-login.php", "severity": "medium"}),
    )
    .await;
    let id = wp["id"].as_str().unwrap();
    // the new decoy applies to the very next request (the cached set was dropped)
    let resp = app
        .get("/wp-login.php/?user=admin&next=%2Fa%26b")
        .header("user-agent", "sqlmap/1.7")
        .header("x-session-token", "s3cret")
        .header("x-client-key", "k")
        .header("cookie", "sid=1")
        .header("x-vendor-apikey", "not-a-real-key-but-a-secret")
        .header("referer", "http://evil.example/")
        .send()
        .await;
    assert_eq!(resp.status(), 404);
    let list = telemetry(&app, "").await;
    assert_eq!(
        (list["total"].clone(), list["next_cursor"].clone()),
        (json!(1), Value::Null)
    );
    let hit = &list["items"][0];
    assert_eq!(hit["honeypot_id"], id);
    assert_eq!(hit["origin"], "decoy");
    assert_eq!(hit["source_ip"], "127.0.0.1");
    assert_eq!(
        (&hit["method"], &hit["path"]),
        (&json!("GET"), &json!("/wp-login.php"))
    );
    assert_eq!(hit["query"], "user=admin&next=/a%26b", "{hit}");
    assert_eq!(hit["user_agent"], "sqlmap/1.7");
    assert_eq!(hit["severity"], "medium");
    assert_eq!(
        (&hit["blocked"], &hit["block_rule_id"]),
        (&json!(false), &Value::Null)
    );
    let headers = hit["headers"].as_object().expect("headers");
    assert_eq!(headers["referer"], "http://evil.example/");
    assert_eq!(headers["user-agent"], "sqlmap/1.7");
    let text = hit.to_string();
    for secret in ["s3cret", "sid=1", "not-a-real-key", "x-client-key"] {
        assert!(!text.contains(secret), "{secret} was recorded: {text}");
    }
    let counted = app
        .as_admin()
        .get(&format!("{HONEYPOTS}/{id}"))
        .expect(200)
        .await;
    assert_eq!(counted["hits"], 1);
    assert_eq!(counted["last_hit_at"], hit["at"]);
    // every method a route can have; a non-decoy path records nothing
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.anon()
            .request(m, "/wp-login.php")
            .expect_problem(404)
            .await;
    }
    app.get("/wp-login").expect_problem(404).await;
    app.get("/wp-login.php/x").expect_problem(404).await;
    let list = telemetry(&app, "").await;
    assert_eq!(list["total"], 5);
    let methods: HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["method"].as_str())
        .collect();
    assert_eq!(
        methods,
        HashSet::from(["GET", "POST", "PUT", "PATCH", "DELETE"])
    );

    // disabled: a plain 404, recorded nowhere; enabled again: a decoy again; deleted: gone
    let url = format!("{HONEYPOTS}/{id}");
    app.as_admin()
        .patch(&url, &json!({"enabled": false}))
        .expect(200)
        .await;
    app.get("/wp-login.php").expect_problem(404).await;
    assert_eq!(
        telemetry(&app, "").await["total"],
        5,
        "a disabled honeypot records nothing"
    );
    app.as_admin()
        .patch(&url, &json!({"enabled": true}))
        .expect(200)
        .await;
    app.get("/wp-login.php").expect_problem(404).await;
    assert_eq!(telemetry(&app, "").await["total"], 6);
    // a moved decoy: the old path is plain, the new one a decoy
    app.as_admin()
        .patch(&url, &json!({"path": "/xmlrpc.php"}))
        .expect(200)
        .await;
    app.get("/wp-login.php").expect_problem(404).await;
    app.get("/xmlrpc.php").expect_problem(404).await;
    let list = telemetry(&app, "").await;
    assert_eq!(
        (list["total"].clone(), list["items"][0]["path"].clone()),
        (json!(7), json!("/xmlrpc.php"))
    );
    app.as_admin().delete(&url).expect(204).await;
    app.get("/xmlrpc.php").expect_problem(404).await;
    assert_eq!(
        telemetry(&app, "").await["total"],
        7,
        "telemetry outlives its honeypot"
    );

    // auto_block without security_policy: recorded, not blocked, and why
    create(
        &app,
        json!({"name": "env", "path": "/.env", "auto_block": true}),
    )
    .await;
    app.anon()
        .via(&attacker())
        .get("/.env")
        .expect_problem(404)
        .await;
    let hit = &telemetry(&app, "?limit=1").await["items"][0];
    assert_eq!(
        (&hit["source_ip"], &hit["blocked"]),
        (&json!("127.0.0.3"), &json!(false))
    );
    assert!(
        hit["block_error"]
            .as_str()
            .is_some_and(|e| e.contains("security_policy")),
        "{hit}"
    );
    app.anon()
        .via(&attacker())
        .get("/.env")
        .expect_problem(404)
        .await;

    // a flood: one source's first 8 hits a minute on a decoy are recorded, all are answered
    let flood = create(&app, json!({"name": "flood", "path": "/flood"})).await;
    let before = telemetry(&app, "").await["total"].as_i64().unwrap();
    for _ in 0..12 {
        app.get("/flood").expect_problem(404).await;
    }
    assert_eq!(
        telemetry(&app, "").await["total"].as_i64().unwrap(),
        before + 8
    );
    let url = format!("{HONEYPOTS}/{}", flood["id"].as_str().unwrap());
    assert_eq!(app.as_admin().get(&url).expect(200).await["hits"], 8);
    app.anon()
        .via(&attacker())
        .get("/flood")
        .expect_problem(404)
        .await;
    assert_eq!(
        telemetry(&app, "?source_ip=127.0.0.3").await["total"],
        3,
        "another source's own"
    );
    app.finish().await;
}
on_both_engines!(decoy_hits_are_recorded_and_answered_404, decoys);

/// The decoy's 404 is the host's 404, byte for byte (same request id sent to both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoy_answers_exactly_as_the_host_does() {
    let Some(plain) = start(Engine::Sqlite, &["api_clients", "honeypots"], &[]).await else {
        return;
    };
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let cfg = secured(&db, &["api_clients"]);
    let host_only = TestApp::start(db, cfg).await;
    create(&plain, json!({"name": "wp", "path": "/wp-login.php"})).await;
    let answer = |app: &TestApp, path: &str| {
        app.get(path)
            .header("x-request-id", "same-request-id")
            .send()
    };
    for path in ["/wp-login.php", "/wp-login.php/", "/nothing/here"] {
        let (decoy, host) = (answer(&plain, path).await, answer(&host_only, path).await);
        assert_eq!(decoy.status(), 404);
        assert_eq!(decoy.status(), host.status(), "{path}");
        let names = |r: &reqwest::Response| {
            let mut n: Vec<String> = r
                .headers()
                .iter()
                .filter(|(n, _)| *n != "date")
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("")))
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&decoy), names(&host), "{path}: headers");
        let (a, b) = (decoy.bytes().await.unwrap(), host.bytes().await.unwrap());
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "{path}: body"
        );
    }
    assert_eq!(
        telemetry(&plain, "").await["total"],
        2,
        "two of them were the decoy"
    );
    host_only.finish().await;
    plain.finish().await;
}

/// Sensor reports, the filters and keyset paging of both lists.
async fn reports_and_lists(engine: Engine) {
    let Some(app) = start(engine, &["api_clients", "honeypots"], &[]).await else {
        return;
    };
    let ssh = create(
        &app,
        json!({"name": "ssh", "path": "/ssh", "severity": "low"}),
    )
    .await;
    let rdp = create(
        &app,
        json!({"name": "rdp", "path": "/rdp", "auto_block": true}),
    )
    .await;
    let (ssh_id, rdp_id) = (ssh["id"].as_str().unwrap(), rdp["id"].as_str().unwrap());
    let sensor = client_key(&app, "sensor", &["write"]).await;
    let report = |id: &str, body: Value| {
        let path = format!("{HONEYPOTS}/{id}/telemetry");
        app.as_key(&sensor).post(&path, &body)
    };
    let first = report(
        ssh_id,
        json!({"source_ip": "::ffff:198.51.100.7", "method": "get", "path": "/etc/passwd",
               "user_agent": "masscan", "headers": {"accept": "*/*", "x-auth-token": "t"}}),
    )
    .expect(201)
    .await;
    assert_eq!(
        first["source_ip"], "198.51.100.7",
        "stored canonical: {first}"
    );
    assert_eq!(
        (&first["method"], &first["origin"]),
        (&json!("GET"), &json!("sensor"))
    );
    assert_eq!(
        first["severity"], "low",
        "the honeypot's severity by default"
    );
    assert_eq!(
        first["headers"],
        json!({"accept": "*/*"}),
        "no secret-looking header"
    );
    assert!(
        first["reported_by"]
            .as_str()
            .is_some_and(|p| p.starts_with("client:")),
        "{first}"
    );
    // a report never blocks (the address is a client's claim)
    let on_rdp = report(
        rdp_id,
        json!({"source_ip": "198.51.100.8", "severity": "critical"}),
    )
    .expect(201)
    .await;
    assert_eq!(
        (&on_rdp["blocked"], &on_rdp["severity"]),
        (&json!(false), &json!("critical"))
    );
    for _ in 0..3 {
        report(ssh_id, json!({"source_ip": "198.51.100.9"}))
            .expect(201)
            .await;
    }
    // checks
    for (body, field) in [
        (json!({}), "source_ip"),
        (json!({"source_ip": "not-an-ip"}), "source_ip"),
        (
            json!({"source_ip": "10.0.0.1", "severity": "meh"}),
            "severity",
        ),
        (
            json!({"source_ip": "10.0.0.1", "method": "GET /x"}),
            "method",
        ),
        (
            json!({"source_ip": "10.0.0.1", "headers": {"a": 1}}),
            "headers.a",
        ),
        (json!({"source_ip": "10.0.0.1", "at": "now"}), "at"),
    ] {
        let p = report(ssh_id, body.clone()).expect_problem(422).await;
        assert_eq!(field_of(&p), field, "{body}: {p}");
    }
    report("no-such-honeypot", json!({"source_ip": "10.0.0.1"}))
        .expect_problem(404)
        .await;
    let url = format!("{HONEYPOTS}/{ssh_id}");
    app.as_admin()
        .patch(&url, &json!({"enabled": false}))
        .expect(200)
        .await;
    report(ssh_id, json!({"source_ip": "10.0.0.1"}))
        .expect_problem(409)
        .await;
    app.as_admin()
        .patch(&url, &json!({"enabled": true}))
        .expect(200)
        .await;
    assert_eq!(app.as_admin().get(&url).expect(200).await["hits"], 4);

    // filters
    let all = telemetry(&app, "").await;
    assert_eq!(
        (all["total"].clone(), all["next_cursor"].clone()),
        (json!(5), Value::Null)
    );
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first, "newest first");
    assert_eq!(telemetry(&app, "?source_ip=198.51.100.9").await["total"], 3);
    assert_eq!(
        telemetry(&app, "?source_ip=::ffff:198.51.100.7").await["total"],
        1
    );
    assert_eq!(telemetry(&app, "?severity=critical").await["total"], 1);
    assert_eq!(telemetry(&app, "?origin=decoy").await["total"], 0);
    assert_eq!(
        telemetry(&app, &format!("?honeypot_id={rdp_id}")).await["total"],
        1
    );
    let oldest = all["items"][4]["at"].as_str().unwrap();
    let since = telemetry(&app, &format!("?since={oldest}")).await;
    assert_eq!(since["total"], 5, "since is inclusive");
    assert_eq!(
        telemetry(&app, "?since=2999-01-01T00:00:00Z").await["total"],
        0
    );
    assert_eq!(
        telemetry(&app, "?since=2000-01-01T01:00:00%2B01:00").await["total"],
        5
    );
    for bad in [
        "?since=yesterday",
        "?severity=meh",
        "?limit=0",
        "?limit=1001",
        "?origin=x",
    ] {
        app.as_admin()
            .get(&format!("{TELEMETRY}{bad}"))
            .expect_problem(422)
            .await;
    }
    let one = app
        .as_admin()
        .get(&format!("{url}/telemetry"))
        .expect(200)
        .await;
    assert_eq!(one["total"], 4);
    app.as_admin()
        .get(&format!("{HONEYPOTS}/nope/telemetry"))
        .expect_problem(404)
        .await;

    // keyset paging: pages of 2 walk all 5 once, the total stays, the last page says so
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        let body = telemetry(&app, &format!("?limit=2&cursor={cursor}")).await;
        assert_eq!(body["total"], 5);
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => {
                assert_eq!(page, 2, "three pages");
                break;
            }
        }
    }
    assert_eq!(seen, ids);
    let per = app
        .as_admin()
        .get(&format!("{url}/telemetry?limit=3&source_ip=198.51.100.9"))
        .expect(200)
        .await;
    assert_eq!(
        (per["total"].clone(), per["items"].as_array().unwrap().len()),
        (json!(3), 3)
    );
    assert_eq!(
        per["next_cursor"],
        Value::Null,
        "exactly full is the last page"
    );
    app.finish().await;
}
on_both_engines!(sensor_reports_filters_and_keyset_paging, reports_and_lists);

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2026-11-23T08:47:31.123456Z`).
fn epoch_seconds(text: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().expect("a timestamp");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + d - 719_469;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Auto-block: the hit's source gets a blocklist rule for `block_duration_seconds`, and its
/// next request is 403, from the socket address or through a trusted proxy.
async fn auto_block(engine: Engine) {
    let packs = ["api_clients", "security_policy", "honeypots"];
    let Some(app) = start(engine, &packs, &[("block_duration_seconds", 600)]).await else {
        return;
    };
    create(
        &app,
        json!({"name": "env", "path": "/.env", "auto_block": true, "severity": "critical"}),
    )
    .await;
    create(&app, json!({"name": "git", "path": "/.git/config"})).await;
    let attacker = attacker();
    // a honeypot without auto_block records, and blocks no one
    app.anon()
        .via(&attacker)
        .get("/.git/config")
        .expect_problem(404)
        .await;
    app.anon()
        .via(&attacker)
        .get("/.git/config")
        .expect_problem(404)
        .await;
    assert_eq!(telemetry(&app, "?source_ip=127.0.0.3").await["total"], 2);

    app.anon()
        .via(&attacker)
        .get("/.env")
        .expect_problem(404)
        .await;
    let hit = telemetry(&app, "?limit=1").await["items"][0].clone();
    assert_eq!(
        (&hit["blocked"], &hit["block_error"]),
        (&json!(true), &Value::Null),
        "{hit}"
    );
    let rule_id = hit["block_rule_id"].as_str().expect("the rule").to_string();
    let rule = app
        .as_admin()
        .get(&format!("{BLOCKLIST}/{rule_id}"))
        .expect(200)
        .await;
    assert_eq!(
        (&rule["rule_type"], &rule["value"]),
        (&json!("ip"), &json!("127.0.0.3"))
    );
    assert_eq!(rule["severity"], "critical", "the honeypot's severity");
    let lasts = epoch_seconds(rule["expires_at"].as_str().expect("expires"))
        - epoch_seconds(rule["created_at"].as_str().unwrap());
    assert!(
        (599..=601).contains(&lasts),
        "block_duration_seconds: {lasts} s: {rule}"
    );
    // the source's next request is refused, anywhere; others go on
    let p = app
        .anon()
        .via(&attacker)
        .get("/.git/config")
        .expect_problem(403)
        .await;
    assert!(p["detail"].as_str().unwrap_or("").contains(&rule_id), "{p}");
    app.as_admin()
        .via(&attacker)
        .get(HONEYPOTS)
        .expect_problem(403)
        .await;
    app.as_admin().get(HONEYPOTS).expect(200).await;
    assert_eq!(
        telemetry(&app, "?source_ip=127.0.0.3").await["total"],
        3,
        "the refused one is no hit"
    );

    // behind a trusted proxy (127.0.0.1) the source is the forwarded address
    let forwarded = |ip: &'static str, path: &str| app.get(path).header("x-forwarded-for", ip);
    forwarded("203.0.113.50", "/.env").expect_problem(404).await;
    let hit = telemetry(&app, "?limit=1").await["items"][0].clone();
    assert_eq!(
        (&hit["source_ip"], &hit["blocked"]),
        (&json!("203.0.113.50"), &json!(true))
    );
    forwarded("203.0.113.50", "/anything")
        .expect_problem(403)
        .await;
    forwarded("203.0.113.51", "/anything")
        .expect_problem(404)
        .await;
    app.get("/anything").expect_problem(404).await;
    let rules = app
        .as_admin()
        .get(&format!(
            "{BLOCKLIST}?rule_type=ip&value=203.0.113.50&active=true"
        ))
        .expect(200)
        .await;
    assert_eq!(rules["total"], 1, "{rules}");
    app.finish().await;
}
on_both_engines!(auto_block_refuses_the_source_next, auto_block);
