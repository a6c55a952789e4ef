//! rate_limits (pack UC) end to end on both engines: rule CRUD, filters and validation; the
//! guard letting exactly N of a concurrent burst through with `RateLimit-*` headers and 429s
//! with `Retry-After`; changes applying to the very next request; snapshots; per-subject keys
//! for IPs, users and API clients.
//!
//! Requests from `app.client` come from 127.0.0.1. The operator's client binds 127.0.0.2 (all of
//! 127/8 is loopback), so it is another subject: it can still change the rules while
//! 127.0.0.1 is being refused.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, config, eventually, secured};
use crate::on_both_engines;
use crate::requests::{Caller, problem};

const RULES: &str = "/system/ratelimits/rules";
const SNAPSHOTS: &str = "/system/ratelimits/snapshots";

/// The host with `packs`, room for a burst of concurrent requests.
async fn app_with(engine: Engine, packs: &[&str]) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = config(&db, packs);
    // A burst of 200 requests at once: an instance for each, and time to wait for the database.
    cfg.runtime.max_instances = 256;
    cfg.runtime.deadline_ms = 5_000;
    Some(TestApp::start(db, cfg).await)
}

async fn app(engine: Engine) -> Option<TestApp> {
    app_with(engine, &["rate_limits"]).await
}

/// A client whose requests come from 127.0.0.2.
fn operator() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .expect("client bound to 127.0.0.2")
}

async fn create(caller: Caller<'_>, rule: Value) -> Value {
    caller.post(RULES, &rule).expect(201).await
}

async fn patch(caller: Caller<'_>, id: &str, body: Value) -> Value {
    caller
        .patch(&format!("{RULES}/{id}"), &body)
        .expect(200)
        .await
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn int_header(resp: &reqwest::Response, name: &str) -> i64 {
    header(resp, name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", resp.headers()))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not an integer: {:?}", resp.headers()))
}

fn has_rate_headers(resp: &reqwest::Response) -> bool {
    ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]
        .iter()
        .any(|h| resp.headers().contains_key(*h))
}

/// Assert a 429 with `Retry-After` and the `RateLimit-*` headers of a rule of `limit`;
/// answers Retry-After.
async fn assert_limited(resp: reqwest::Response, limit: i64, window: i64) -> i64 {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = int_header(&resp, "retry-after");
    assert!((1..=window).contains(&retry), "Retry-After {retry}");
    assert_eq!(int_header(&resp, "ratelimit-limit"), limit);
    assert_eq!(int_header(&resp, "ratelimit-remaining"), 0);
    let reset = int_header(&resp, "ratelimit-reset");
    assert!((1..=window).contains(&reset), "RateLimit-Reset {reset}");
    let p = problem(resp, 429).await;
    assert_eq!(p["type"], "urn:valhalla:problem:rate-limited", "{p}");
    retry
}

/// Assert a 200 with the `RateLimit-*` headers of a rule of `limit`; answers the remaining.
fn assert_counted(resp: &reqwest::Response, limit: i64, window: i64) -> i64 {
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.headers());
    assert_eq!(int_header(resp, "ratelimit-limit"), limit);
    let reset = int_header(resp, "ratelimit-reset");
    assert!((1..=window).contains(&reset), "RateLimit-Reset {reset}");
    int_header(resp, "ratelimit-remaining")
}

async fn crud(engine: Engine) {
    let Some(app) = app_with(engine, &["rate_limits", "system_log"]).await else {
        return;
    };
    // Limits high enough never to refuse this test's own requests.
    let ip = create(
        app.anon(),
        json!({"scope": "ip", "window_seconds": 60, "max_requests": 100000}),
    )
    .await;
    assert_eq!(ip["scope"], "ip");
    assert_eq!(ip["key"], "*", "the key defaults to every subject");
    assert_eq!(ip["enabled"], true, "rules default to enabled");
    assert_eq!(ip["description"], Value::Null);
    assert_eq!(ip["window_seconds"], 60);
    assert_eq!(ip["max_requests"], 100000);
    assert_eq!(ip["created_at"], ip["updated_at"]);
    let id = ip["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let user = create(
        app.anon(),
        json!({"scope": "user", "key": "alice", "window_seconds": 3600,
               "max_requests": 1000, "description": "alice's quota"}),
    )
    .await;
    assert_eq!(user["key"], "alice");
    assert_eq!(user["description"], "alice's quota");
    // an API client is resolved through api_clients, which this server does not run
    let p = app
        .anon()
        .post(
            RULES,
            &json!({"scope": "api_key", "key": "0195-abc", "window_seconds": 1,
                    "max_requests": 10}),
        )
        .expect_problem(503)
        .await;
    assert!(p["detail"].as_str().unwrap().contains("api_clients"), "{p}");
    let client = create(
        app.anon(),
        json!({"scope": "api_key", "key": "*", "window_seconds": 1, "max_requests": 10}),
    )
    .await;
    assert_eq!(client["key"], "*");
    let other_ip = create(
        app.anon(),
        json!({"scope": "ip", "key": "::ffff:10.0.0.9", "window_seconds": 86400,
               "max_requests": 1000000, "enabled": false}),
    )
    .await;
    assert_eq!(other_ip["key"], "10.0.0.9", "IPs are stored canonically");
    assert_eq!(other_ip["enabled"], false);

    let all = app.get(RULES).expect(200).await;
    assert_eq!(all["total"], 4);
    let items = all["items"].as_array().unwrap();
    let order: Vec<(&str, &str)> = items
        .iter()
        .map(|r| (r["created_at"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    assert!(
        order.is_sorted(),
        "in creation order (ties in the same millisecond by id): {all}"
    );
    let mut ids: Vec<_> = items.iter().map(|r| &r["id"]).collect();
    ids.sort_by_key(|id| id.as_str());
    let mut created = [&ip["id"], &user["id"], &client["id"], &other_ip["id"]];
    created.sort_by_key(|id| id.as_str());
    assert_eq!(ids, created);
    let ips = app.get(&format!("{RULES}?scope=ip")).expect(200).await;
    assert_eq!(ips["total"], 2);
    let off = app.get(&format!("{RULES}?enabled=false")).expect(200).await;
    assert_eq!(off["total"], 1);
    assert_eq!(off["items"][0]["id"], other_ip["id"]);
    let on_ips = app
        .get(&format!("{RULES}?scope=ip&enabled=true"))
        .expect(200)
        .await;
    assert_eq!(on_ips["total"], 1);
    assert_eq!(on_ips["items"][0]["id"], ip["id"]);
    let page = app
        .get(&format!("{RULES}?limit=2&offset=1"))
        .expect(200)
        .await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["items"].as_array().unwrap()[..], items[1..3]);
    assert_eq!(
        app.get(&format!("{RULES}?scope=api_key")).expect(200).await["total"],
        1
    );

    let got = app.get(&format!("{RULES}/{id}")).expect(200).await;
    assert_eq!(got, ip);

    // partial updates: only what is given changes; `description: null` clears it
    tokio::time::sleep(Duration::from_millis(5)).await;
    let changed = patch(
        app.anon(),
        &id,
        json!({"max_requests": 50000, "description": "everyone"}),
    )
    .await;
    assert_eq!(changed["max_requests"], 50000);
    assert_eq!(changed["description"], "everyone");
    assert_eq!(changed["window_seconds"], 60);
    assert_eq!(changed["key"], "*");
    assert_eq!(changed["created_at"], ip["created_at"]);
    assert_ne!(changed["updated_at"], ip["updated_at"]);
    let changed = patch(
        app.anon(),
        &id,
        json!({"description": null, "window_seconds": 120, "key": "192.0.2.1"}),
    )
    .await;
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["window_seconds"], 120);
    assert_eq!(changed["key"], "192.0.2.1");
    assert_eq!(changed["max_requests"], 50000);
    let changed = patch(app.anon(), &id, json!({"key": "*", "enabled": false})).await;
    assert_eq!(changed["enabled"], false);
    assert_eq!(app.get(&format!("{RULES}/{id}")).expect(200).await, changed);
    let unchanged = patch(app.anon(), &id, json!({})).await;
    assert_eq!(unchanged, changed, "an empty patch changes nothing");

    assert_eq!(
        app.delete(&format!("{RULES}/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    app.get(&format!("{RULES}/{id}")).expect_problem(404).await;
    app.delete(&format!("{RULES}/{id}"))
        .expect_problem(404)
        .await;
    app.anon()
        .patch(&format!("{RULES}/{id}"), &json!({"enabled": true}))
        .expect_problem(404)
        .await;
    app.get(&format!("{RULES}/no-such-rule"))
        .expect_problem(404)
        .await;
    assert_eq!(app.get(RULES).expect(200).await["total"], 3);

    // every write is audited with the state before and after
    let audit = eventually(
        &app,
        "/system/logs?category=audit&source=rate_limits&limit=100",
        |v| v["total"] == 8,
    )
    .await;
    let events = audit["items"].as_array().unwrap();
    let of = |action: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["context"]["action"] == action)
            .collect()
    };
    assert_eq!(of("ratelimit.create").len(), 4);
    assert_eq!(
        of("ratelimit.update").len(),
        3,
        "the empty patch is no write"
    );
    let deleted = of("ratelimit.delete");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["context"]["target"], format!("rate_limits/{id}"));
    assert_eq!(deleted[0]["context"]["before"]["id"], id.as_str());
    assert_eq!(deleted[0]["context"]["after"], Value::Null);
    let first_update = of("ratelimit.update")
        .into_iter()
        .find(|e| {
            e["context"]["after"]["max_requests"] == 50000
                && e["context"]["before"]["max_requests"] == 100000
        })
        .expect("the first update");
    assert_eq!(first_update["context"]["after"]["description"], "everyone");
    app.finish().await;
}
on_both_engines!(crud_with_filters_audit_and_404s, crud);

async fn validation(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let ok = json!({"scope": "ip", "window_seconds": 60, "max_requests": 100000});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("scope", json!("country")), "scope"),
        (with("scope", json!(null)), "scope"),
        (json!({"window_seconds": 60, "max_requests": 10}), "scope"),
        (with("window_seconds", json!(0)), "window_seconds"),
        (with("window_seconds", json!(86401)), "window_seconds"),
        (with("window_seconds", json!("60")), "window_seconds"),
        (json!({"scope": "ip", "window_seconds": 60}), "max_requests"),
        (with("max_requests", json!(0)), "max_requests"),
        (with("max_requests", json!(1000001)), "max_requests"),
        (with("max_requests", json!(1.5)), "max_requests"),
        (with("key", json!("not-an-ip")), "key"),
        (with("key", json!("")), "key"),
        (
            json!({"scope": "user", "key": "a b", "window_seconds": 1, "max_requests": 1}),
            "key",
        ),
        (
            json!({"scope": "api_key", "key": "client:", "window_seconds": 1,
                   "max_requests": 1}),
            "key",
        ),
        (with("enabled", json!("yes")), "enabled"),
        (with("description", json!("x".repeat(1025))), "description"),
        (with("burst", json!(5)), "burst"),
    ];
    for (body, field) in cases {
        let p = app.post(RULES, &body).expect_problem(422).await;
        assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
    }
    // every broken field is named at once
    let p = app
        .post(
            RULES,
            &json!({"scope": "planet", "window_seconds": 0, "max_requests": 0}),
        )
        .expect_problem(422)
        .await;
    let fields: Vec<_> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["scope", "window_seconds", "max_requests"], "{p}");
    app.post_raw(RULES, "application/json", "{nope")
        .expect_problem(400)
        .await;
    app.post_raw(RULES, "application/json", "")
        .expect_problem(400)
        .await;
    app.post_raw(RULES, "text/plain", "scope=ip")
        .expect_problem(415)
        .await;

    let rule = create(app.anon(), ok.clone()).await;
    let path = format!("{RULES}/{}", rule["id"].as_str().unwrap());
    let patch_cases = [
        (json!({"scope": "user"}), "scope"),
        (json!({"max_requests": 0}), "max_requests"),
        (json!({"window_seconds": 86401}), "window_seconds"),
        (json!({"key": "nope"}), "key"),
        (json!({"key": ""}), "key"),
        (json!({"enabled": "no"}), "enabled"),
        (json!({"description": "y".repeat(1025)}), "description"),
        (json!({"id": "x"}), "id"),
    ];
    for (body, field) in patch_cases {
        let p = app.anon().patch(&path, &body).expect_problem(422).await;
        assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
    }
    app.anon()
        .request(Method::PATCH, &path)
        .header("content-type", "application/json")
        .body("{\"enabled\": ")
        .expect_problem(400)
        .await;
    assert_eq!(
        app.get(&path).expect(200).await,
        rule,
        "refused patches change nothing"
    );

    for (query, field) in [
        ("scope=country", "scope"),
        ("enabled=maybe", "enabled"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
    ] {
        let p = app
            .get(&format!("{RULES}?{query}"))
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{query}");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("scope=planet", "scope"),
    ] {
        let p = app
            .get(&format!("{SNAPSHOTS}?{query}"))
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], field, "{query}");
    }
    assert_eq!(app.get(RULES).expect(200).await["total"], 1);
    app.finish().await;
}
on_both_engines!(
    bad_bodies_and_queries_are_refused_naming_the_field,
    validation
);

async fn burst(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let op = operator();
    let ops = app.anon().via(&op);
    let rule = create(
        ops,
        json!({"scope": "ip", "key": "*", "window_seconds": 60, "max_requests": 50}),
    )
    .await;
    let id = rule["id"].as_str().unwrap().to_string();
    // the operator's own requests are counted for 127.0.0.2, not 127.0.0.1
    let resp = ops.get(RULES).await;
    assert_eq!(assert_counted(&resp, 50, 60), 49);

    let mut tasks = Vec::new();
    for _ in 0..200 {
        let client = app.client.clone();
        let url = app.url(RULES);
        tasks.push(tokio::spawn(async move {
            client.get(url).send().await.expect("GET")
        }));
    }
    let mut remaining = Vec::new();
    let mut limited = 0;
    for task in tasks {
        let resp = task.await.unwrap();
        match resp.status() {
            StatusCode::OK => remaining.push(assert_counted(&resp, 50, 60)),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_limited(resp, 50, 60).await;
                limited += 1;
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert_eq!(remaining.len(), 50, "exactly the limit got through");
    assert_eq!(limited, 150);
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..50).collect::<Vec<i64>>(),
        "each request that got through saw one fewer remaining"
    );
    assert_limited(app.get(RULES).await, 50, 60).await;
    // health is never limited
    assert_eq!(
        app.get("/system/health/live").await.status(),
        StatusCode::OK
    );

    let snap = ops.get(SNAPSHOTS).expect(200).await;
    assert_eq!(snap["total"], 2, "{snap}");
    let of = |subject: &str| -> Value {
        snap["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["subject"] == subject)
            .unwrap_or_else(|| panic!("no snapshot for {subject}: {snap}"))
            .clone()
    };
    let local = of("127.0.0.1");
    assert_eq!(local["rule_id"], id.as_str());
    assert_eq!(local["scope"], "ip");
    assert_eq!(local["count"], 201);
    assert_eq!(local["limit"], 50);
    assert_eq!(local["remaining"], 0);
    let reset = local["reset_seconds"].as_i64().unwrap();
    assert!((1..=60).contains(&reset), "{local}");
    let operator_snap = of("127.0.0.2");
    assert_eq!(operator_snap["count"], 2, "the rule list and this snapshot");
    assert_eq!(operator_snap["remaining"], 48);
    let limited_only = ops.get(&format!("{SNAPSHOTS}?limit=1")).expect(200).await;
    assert_eq!(limited_only["total"], 2);
    assert_eq!(limited_only["items"].as_array().unwrap().len(), 1);
    let users = ops
        .get(&format!("{SNAPSHOTS}?scope=user"))
        .expect(200)
        .await;
    assert_eq!(users["total"], 0);

    // disabled: the very next request goes through, with no RateLimit headers
    let off = patch(ops, &id, json!({"enabled": false})).await;
    assert_eq!(off["enabled"], false);
    let resp = app.get(RULES).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!has_rate_headers(&resp), "{:?}", resp.headers());
    let snap = ops.get(SNAPSHOTS).expect(200).await;
    assert_eq!(snap["total"], 0, "a disabled rule counts nothing: {snap}");
    // enabled again: a fresh window
    patch(ops, &id, json!({"enabled": true})).await;
    let resp = app.get(RULES).await;
    assert_eq!(assert_counted(&resp, 50, 60), 49);
    app.finish().await;
}
on_both_engines!(exactly_the_limit_of_a_concurrent_burst_gets_through, burst);

async fn changes(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let op = operator();
    let ops = app.anon().via(&op);
    let rule = create(
        ops,
        json!({"scope": "ip", "window_seconds": 60, "max_requests": 3}),
    )
    .await;
    let id = rule["id"].as_str().unwrap();
    let url = format!("{RULES}/{id}");
    for left in [2, 1, 0] {
        let resp = app.get(&url).await;
        assert_eq!(assert_counted(&resp, 3, 60), left);
    }
    assert_limited(app.get(&url).await, 3, 60).await;
    // the guard sees every route: writes too
    assert_limited(
        app.post(
            RULES,
            &json!({"scope": "ip", "window_seconds": 60, "max_requests": 3}),
        )
        .await,
        3,
        60,
    )
    .await;
    // a higher limit applies to the current count at once (5 so far, the 6th is allowed)
    patch(ops, id, json!({"max_requests": 10})).await;
    let resp = app.get(&url).await;
    assert_eq!(assert_counted(&resp, 10, 60), 4);
    // a lower one too
    patch(ops, id, json!({"max_requests": 6})).await;
    assert_limited(app.get(&url).await, 6, 60).await;
    // deleted: no limit, no headers
    assert_eq!(ops.delete(&url).await.status(), StatusCode::NO_CONTENT);
    let resp = app.get(RULES).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!has_rate_headers(&resp));

    // a window ends: the count starts again
    create(
        ops,
        json!({"scope": "ip", "key": "127.0.0.1", "window_seconds": 1, "max_requests": 1}),
    )
    .await;
    let resp = app.get(RULES).await;
    assert_eq!(assert_counted(&resp, 1, 1), 0);
    let retry = assert_limited(app.get(RULES).await, 1, 1).await;
    assert_eq!(retry, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = app.get(RULES).await;
    assert_eq!(assert_counted(&resp, 1, 1), 0, "a new window");
    app.finish().await;
}
on_both_engines!(rule_changes_apply_to_the_very_next_request, changes);

async fn subjects(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let op = operator();
    let ops = app.anon().via(&op);
    // a rule for another IP leaves 127.0.0.1 alone
    create(
        ops,
        json!({"scope": "ip", "key": "10.1.2.3", "window_seconds": 60, "max_requests": 1}),
    )
    .await;
    for _ in 0..5 {
        let resp = app.get(RULES).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(!has_rate_headers(&resp), "{:?}", resp.headers());
    }
    // one for 127.0.0.1 limits it, and only it
    create(
        ops,
        json!({"scope": "ip", "key": "127.0.0.1", "window_seconds": 60, "max_requests": 2}),
    )
    .await;
    let resp = app.get(RULES).await;
    assert_eq!(assert_counted(&resp, 2, 60), 1);
    let resp = ops.get(RULES).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!has_rate_headers(&resp), "127.0.0.2 is not 127.0.0.1");
    // with a looser rule for everyone, the headers are those of the tightest rule
    create(
        ops,
        json!({"scope": "ip", "window_seconds": 60, "max_requests": 100}),
    )
    .await;
    let resp = app.get(RULES).await;
    assert_eq!(assert_counted(&resp, 2, 60), 0);
    let resp = ops.get(RULES).await;
    assert_eq!(assert_counted(&resp, 100, 60), 99);
    assert_limited(app.get(RULES).await, 2, 60).await;

    // with authentication off every caller acts as the principal `local`: a rule for another
    // user leaves it alone, one for `local` counts it whatever its IP
    create(
        ops,
        json!({"scope": "user", "key": "alice", "window_seconds": 60, "max_requests": 1}),
    )
    .await;
    let resp = ops.get(RULES).await;
    assert_eq!(assert_counted(&resp, 100, 60), 97);
    create(
        ops,
        json!({"scope": "user", "key": "local", "window_seconds": 1, "max_requests": 1}),
    )
    .await;
    let resp = ops.get(RULES).await;
    assert_eq!(assert_counted(&resp, 1, 1), 0, "tighter than the IP rule");
    assert_limited(ops.get(RULES).await, 1, 1).await;
    let p = app
        .get(&format!("{SNAPSHOTS}?scope=user"))
        .expect_problem(429)
        .await;
    assert!(p["detail"].as_str().unwrap().contains("exceeded"), "{p}");
    // the window of `local` ends
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = ops.get(RULES).await;
    assert_eq!(assert_counted(&resp, 1, 1), 0, "a new window for `local`");
    app.finish().await;
}
on_both_engines!(rules_count_each_subject_on_its_own, subjects);

async fn api_clients(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut cfg = secured(&db, &["api_clients", "rate_limits"]);
    cfg.server.guard_order = vec!["api_clients".into(), "rate_limits".into()];
    if let Some(pack) = cfg.packs.get_mut("rate_limits") {
        pack.grants.packs.push("api_clients".into());
    }
    let app = TestApp::start(db, cfg).await;
    let register = async |name: &str| -> (String, String) {
        let body = app
            .as_admin()
            .post("/system/clients", &json!({"name": name, "roles": ["read"]}))
            .expect(201)
            .await;
        (
            body["client"]["id"].as_str().unwrap().to_string(),
            body["api_key"].as_str().unwrap().to_string(),
        )
    };
    let (_, key_a) = register("a").await;
    let (id_b, key_b) = register("b").await;
    app.as_admin()
        .post(
            RULES,
            &json!({"scope": "api_key", "window_seconds": 60, "max_requests": 3}),
        )
        .expect(201)
        .await;
    let get = |key: &str| app.as_key(key).get(RULES);
    for left in [2, 1, 0] {
        assert_eq!(assert_counted(&get(&key_a).await, 3, 60), left);
    }
    assert_limited(get(&key_a).await, 3, 60).await;
    // another client has its own count; the bootstrap admin is no API client
    assert_eq!(assert_counted(&get(&key_b).await, 3, 60), 2);
    let resp = get(ADMIN_KEY).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!has_rate_headers(&resp));
    // a rule for client b alone, given by its bare id
    let only_b = app
        .as_admin()
        .post(
            RULES,
            &json!({"scope": "api_key", "key": id_b, "window_seconds": 60,
                          "max_requests": 1}),
        )
        .expect(201)
        .await;
    assert_eq!(only_b["key"], format!("client:{id_b}"));
    // a live key names its client, and is not stored: the rule holds the client's id
    let by_key = app
        .as_admin()
        .post(
            RULES,
            &json!({"scope": "api_key", "key": key_b, "window_seconds": 3600,
                    "max_requests": 1000, "enabled": false}),
        )
        .expect(201)
        .await;
    assert_eq!(by_key["key"], format!("client:{id_b}"));
    assert!(!by_key.to_string().contains(&key_b), "{by_key}");
    let listed = app.as_admin().get(RULES).expect(200).await;
    assert!(!listed.to_string().contains(&key_b), "{listed}");
    // neither a client id nor a live key; an unknown id
    for key in [
        "vk_not_a_live_key_at_all_000000000000".to_string(),
        "client:01938a7e-3b4c-7d2e-9f10-0123456789ab".to_string(),
    ] {
        let p = app
            .as_admin()
            .post(
                RULES,
                &json!({"scope": "api_key", "key": key, "window_seconds": 60, "max_requests": 1}),
            )
            .expect_problem(422)
            .await;
        assert_eq!(p["errors"][0]["field"], "key", "{p}");
    }
    // a changed key is resolved too
    let patched = patch(
        app.as_admin(),
        by_key["id"].as_str().unwrap(),
        json!({"key": key_a}),
    )
    .await;
    assert!(patched["key"].as_str().unwrap().starts_with("client:"));
    assert!(!patched.to_string().contains(&key_a), "{patched}");
    // b: 1 of 1 on its own rule, 2 of 3 on everyone's: the tighter one shows, then refuses
    assert_eq!(assert_counted(&get(&key_b).await, 1, 60), 0);
    assert_limited(get(&key_b).await, 1, 60).await;
    let snap = app
        .as_admin()
        .get(&format!("{SNAPSHOTS}?scope=api_key"))
        .expect(200)
        .await;
    assert_eq!(snap["total"], 3, "{snap}");
    assert!(
        snap["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["subject"].as_str().unwrap().starts_with("client:")),
        "{snap}"
    );
    // the guard counts before the route's access check: a read client trying to write is
    // counted and then refused with 403, still with the RateLimit headers
    let (_, key_c) = register("c").await;
    let resp = app
        .as_key(&key_c)
        .post(
            RULES,
            &json!({"scope": "ip", "window_seconds": 1, "max_requests": 1}),
        )
        .await;
    assert_eq!(int_header(&resp, "ratelimit-remaining"), 2);
    problem(resp, 403).await;
    app.finish().await;
}
on_both_engines!(api_key_rules_count_each_client, api_clients);
