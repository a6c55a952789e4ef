//! security_policy (pack TQ) end to end on both engines, with authentication on: policies and
//! blocklist rules (CRUD, validation, the api_key rule resolving a live key to its client),
//! and the guard — an ip, cidr (IPv4 and IPv6), user or api_key rule blocking exactly what it
//! names with a 403 naming the rule, expiry, monitor mode, a disabled policy, escalating bans,
//! `X-Forwarded-For` believed only from a trusted proxy, hits and the summary.
//!
//! The test client is 127.0.0.1, which `server.trusted_proxies` trusts here, so a request
//! says which client it forwards with `X-Forwarded-For`; the admin's own requests carry none
//! and come from loopback, which the pack's `never_block` default keeps unblockable.

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, secured};
use crate::on_both_engines;
use crate::requests::Caller;

const POLICIES: &str = "/system/security/policies";
const BLOCKLIST: &str = "/system/security/blocklist";
/// Any route that answers 200 to a read-role principal and to the admin.
const PROBE: &str = "/system/security/policies";

async fn app_trusting(engine: Engine, trusted: &[&str]) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, &["api_clients", "security_policy"]);
    cfg.server.trusted_proxies = trusted.iter().map(|s| s.to_string()).collect();
    cfg.server.guard_order = vec!["api_clients".into(), "security_policy".into()];
    let pack = cfg.packs.get_mut("security_policy").expect("in the config");
    pack.grants.packs = vec!["api_clients".into()];
    Some(TestApp::start(db, cfg).await)
}

async fn app(engine: Engine) -> Option<TestApp> {
    app_trusting(engine, &["127.0.0.1"]).await
}

/// A client with `roles`; answers its key and id.
async fn client(app: &TestApp, roles: &[&str]) -> (String, String) {
    let c = app.register_client("c", roles).await;
    (c.key, c.id)
}

async fn rule(app: &TestApp, body: Value) -> Value {
    app.as_admin().post(BLOCKLIST, &body).expect(201).await
}

/// The status of a probe by `caller` forwarded for `ip`.
async fn status_from(caller: Caller<'_>, ip: &str) -> u16 {
    caller
        .get(PROBE)
        .header("x-forwarded-for", ip)
        .status()
        .await
}

async fn policies_crud(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let admin = app.as_admin();
    let made = admin
        .post(
            POLICIES,
            &json!({"name": "edge", "description": "scanners"}),
        )
        .expect(201)
        .await;
    assert_eq!(
        (made["mode"].as_str(), made["enabled"].as_bool()),
        (Some("enforce"), Some(true))
    );
    let id = made["id"].as_str().unwrap();
    admin
        .post(POLICIES, &json!({"name": "edge"}))
        .expect_problem(409)
        .await;
    let bad = admin
        .post(POLICIES, &json!({"name": "x", "mode": "panic"}))
        .expect_problem(422)
        .await;
    assert_eq!(bad["errors"][0]["field"], "mode");
    admin
        .post(POLICIES, &json!({"name": "x", "colour": "red"}))
        .expect_problem(422)
        .await;
    let patched = admin
        .patch(
            &format!("{POLICIES}/{id}"),
            &json!({"mode": "monitor", "description": null}),
        )
        .expect(200)
        .await;
    assert_eq!(
        (patched["mode"].as_str(), &patched["description"]),
        (Some("monitor"), &Value::Null)
    );
    let listed = admin
        .get(&format!("{POLICIES}?mode=monitor"))
        .expect(200)
        .await;
    assert_eq!(listed["total"], 1);
    admin
        .get(&format!("{POLICIES}?mode=bogus"))
        .expect_problem(422)
        .await;
    admin
        .get(&format!("{POLICIES}/nope"))
        .expect_problem(404)
        .await;
    // a read-role client reads, cannot write
    let (reader, _) = client(&app, &["read"]).await;
    app.as_key(&reader).get(POLICIES).expect(200).await;
    app.as_key(&reader)
        .post(POLICIES, &json!({"name": "mine"}))
        .expect_problem(403)
        .await;
    app.anon().get(POLICIES).expect_problem(401).await;
    // deleting a policy deletes its rules
    rule(
        &app,
        json!({"rule_type": "ip", "value": "203.0.113.5", "policy_id": id}),
    )
    .await;
    admin.delete(&format!("{POLICIES}/{id}")).expect(204).await;
    admin
        .get(&format!("{POLICIES}/{id}"))
        .expect_problem(404)
        .await;
    assert_eq!(admin.get(BLOCKLIST).expect(200).await["total"], 0);
    admin
        .delete(&format!("{POLICIES}/{id}"))
        .expect_problem(404)
        .await;
    app.finish().await;
}
on_both_engines!(policies_crud, policies_crud);

async fn rules_are_validated_for_their_type(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let admin = app.as_admin();
    for (rule_type, value, field) in [
        ("cidr", "10.0.0.0/33", "value"),
        ("cidr", "10.0.0.1", "value"),
        ("cidr", "2001:db8::/129", "value"),
        ("ip", "10.0.0.300", "value"),
        ("ip", "127.0.0.1", "value"),
        ("user", "has space", "value"),
        ("api_key", "vk_not_a_live_key_at_all_000000000000", "value"),
        ("api_key", "01938a7e-3b4c-7d2e-9f10-0123456789ab", "value"),
        ("country", "FR", "rule_type"),
    ] {
        let bad = admin
            .post(BLOCKLIST, &json!({"rule_type": rule_type, "value": value}))
            .expect_problem(422)
            .await;
        assert_eq!(
            bad["errors"][0]["field"], field,
            "{rule_type} {value}: {bad}"
        );
        assert!(
            !bad.to_string().contains("vk_not_a_live"),
            "the key is echoed: {bad}"
        );
    }
    for body in [
        json!({"rule_type": "ip", "value": "198.51.100.1", "severity": "apocalyptic"}),
        json!({"rule_type": "ip", "value": "198.51.100.1", "duration": "4 hours"}),
        json!({"rule_type": "ip", "value": "198.51.100.1", "expires_at": "tomorrow"}),
        json!({"rule_type": "ip", "value": "198.51.100.1", "duration": "4h", "duration_seconds": 60}),
        json!({"rule_type": "ip", "value": "198.51.100.1", "policy_id": "nope"}),
    ] {
        admin.post(BLOCKLIST, &body).expect_problem(422).await;
    }
    // values are stored canonical
    let net = rule(&app, json!({"rule_type": "cidr", "value": "10.1.2.3/16"})).await;
    assert_eq!(net["value"], "10.1.0.0/16");
    let v6 = rule(&app, json!({"rule_type": "ip", "value": "2001:DB8:0::1"})).await;
    assert_eq!(v6["value"], "2001:db8::1");
    let id = net["id"].as_str().unwrap();
    assert_eq!(
        admin.get(&format!("{BLOCKLIST}/{id}")).expect(200).await["value"],
        "10.1.0.0/16"
    );
    let found = admin
        .get(&format!("{BLOCKLIST}?rule_type=cidr&value=10.1.9.9/16"))
        .expect(200)
        .await;
    assert_eq!(found["total"], 1);
    admin.delete(&format!("{BLOCKLIST}/{id}")).expect(204).await;
    admin
        .delete(&format!("{BLOCKLIST}/{id}"))
        .expect_problem(404)
        .await;
    admin
        .get(&format!("{BLOCKLIST}/{id}"))
        .expect_problem(404)
        .await;
    let (reader, _) = client(&app, &["read"]).await;
    app.as_key(&reader)
        .post(
            BLOCKLIST,
            &json!({"rule_type": "ip", "value": "198.51.100.1"}),
        )
        .expect_problem(403)
        .await;
    app.finish().await;
}
on_both_engines!(
    rules_are_validated_for_their_type,
    rules_are_validated_for_their_type
);

async fn address_rules_block_exactly_what_they_name(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let (reader, _) = client(&app, &["read"]).await;
    let r = app.as_key(&reader);
    assert_eq!(status_from(r, "198.51.100.7").await, 200);
    let ip_rule = rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.7", "severity": "high"}),
    )
    .await;
    // the very next request is refused, naming the rule, not its value
    let refused = r
        .get(PROBE)
        .header("x-forwarded-for", "198.51.100.7")
        .expect_problem(403)
        .await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains(ip_rule["id"].as_str().unwrap()),
        "{refused}"
    );
    assert!(!refused.to_string().contains("198.51.100.7"), "{refused}");
    assert_eq!(status_from(r, "198.51.100.8").await, 200);
    // anonymous requests are blocked too (before their 401)
    assert_eq!(status_from(app.anon(), "198.51.100.7").await, 403);
    // a network, IPv4 and IPv6
    rule(
        &app,
        json!({"rule_type": "cidr", "value": "203.0.113.0/24"}),
    )
    .await;
    rule(
        &app,
        json!({"rule_type": "cidr", "value": "2001:db8:bad::/48"}),
    )
    .await;
    for (ip, want) in [
        ("203.0.113.1", 403),
        ("203.0.113.254", 403),
        ("203.0.114.1", 200),
        ("2001:db8:bad:1::9", 403),
        ("2001:db8:bae::1", 200),
        ("::ffff:203.0.113.9", 403),
    ] {
        assert_eq!(status_from(r, ip).await, want, "{ip}");
    }
    // deleting the rule lets the address in on the next request
    let id = ip_rule["id"].as_str().unwrap();
    app.as_admin()
        .delete(&format!("{BLOCKLIST}/{id}"))
        .expect(204)
        .await;
    assert_eq!(status_from(r, "198.51.100.7").await, 200);
    // the hits and the summary saw it
    let hits = app
        .as_admin()
        .get("/system/security/blocklist/hits?blocked=true&limit=2")
        .expect(200)
        .await;
    assert!(hits["total"].as_i64().unwrap() >= 4, "{hits}");
    assert_eq!(hits["items"].as_array().unwrap().len(), 2);
    let next = hits["next_cursor"].as_str().expect("a next page");
    let page2 = app
        .as_admin()
        .get(&format!(
            "/system/security/blocklist/hits?blocked=true&limit=2&cursor={next}"
        ))
        .expect(200)
        .await;
    assert_ne!(page2["items"][0]["id"], hits["items"][0]["id"]);
    let hit = &hits["items"][0];
    assert_eq!(
        (hit["mode"].as_str(), hit["blocked"].as_bool()),
        (Some("enforce"), Some(true))
    );
    let summary = app
        .as_admin()
        .get("/system/security/summary")
        .expect(200)
        .await;
    assert_eq!(summary["rules_active"], 2, "{summary}");
    assert!(
        summary["blocked_last_24h"].as_i64().unwrap() >= 4,
        "{summary}"
    );
    app.finish().await;
}
on_both_engines!(
    address_rules_block_exactly_what_they_name,
    address_rules_block_exactly_what_they_name
);

async fn forwarded_addresses_count_only_from_trusted_proxies(engine: Engine) {
    let Some(app) = app_trusting(engine, &[]).await else {
        return;
    };
    let (reader, _) = client(&app, &["read"]).await;
    rule(&app, json!({"rule_type": "ip", "value": "198.51.100.7"})).await;
    // the peer (127.0.0.1, not trusted here) is the client, whatever it forwards
    assert_eq!(status_from(app.as_key(&reader), "198.51.100.7").await, 200);
    let forwarded = app
        .as_key(&reader)
        .get(PROBE)
        .header("forwarded", "for=198.51.100.7")
        .status()
        .await;
    assert_eq!(forwarded, 200);
    app.finish().await;
}
on_both_engines!(
    forwarded_addresses_count_only_from_trusted_proxies,
    forwarded_addresses_count_only_from_trusted_proxies
);

async fn principals_and_api_clients_are_blocked_by_name(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let (key, id) = client(&app, &["read"]).await;
    let (other, _) = client(&app, &["read"]).await;
    assert_eq!(app.as_key(&key).get(PROBE).status().await, 200);
    // a live key given as the value becomes its client; the key is never stored
    let by_key = rule(&app, json!({"rule_type": "api_key", "value": key})).await;
    assert_eq!(by_key["value"], id.as_str());
    let listed = app.as_admin().get(BLOCKLIST).expect(200).await;
    assert!(!listed.to_string().contains(&key), "{listed}");
    assert_eq!(app.as_key(&key).get(PROBE).status().await, 403);
    assert_eq!(app.as_key(&other).get(PROBE).status().await, 200);
    app.as_admin()
        .delete(&format!("{BLOCKLIST}/{}", by_key["id"].as_str().unwrap()))
        .expect(204)
        .await;
    assert_eq!(app.as_key(&key).get(PROBE).status().await, 200);
    // by client id, and by principal id (a user rule)
    let by_id = rule(
        &app,
        json!({"rule_type": "api_key", "value": format!("client:{id}")}),
    )
    .await;
    assert_eq!(by_id["value"], id.as_str());
    assert_eq!(app.as_key(&key).get(PROBE).status().await, 403);
    app.as_admin()
        .delete(&format!("{BLOCKLIST}/{}", by_id["id"].as_str().unwrap()))
        .expect(204)
        .await;
    rule(
        &app,
        json!({"rule_type": "user", "value": format!("client:{id}")}),
    )
    .await;
    assert_eq!(app.as_key(&key).get(PROBE).status().await, 403);
    assert_eq!(app.as_key(&other).get(PROBE).status().await, 200);
    app.finish().await;
}
on_both_engines!(
    principals_and_api_clients_are_blocked_by_name,
    principals_and_api_clients_are_blocked_by_name
);

async fn expiry_monitor_mode_and_disabled_policies(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let (reader, _) = client(&app, &["read"]).await;
    let r = app.as_key(&reader);
    let admin = app.as_admin();
    // a one-second ban lapses
    rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.20", "duration": "1s"}),
    )
    .await;
    assert_eq!(status_from(r, "198.51.100.20").await, 403);
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(status_from(r, "198.51.100.20").await, 200);
    let expired = admin
        .get(&format!("{BLOCKLIST}?active=false"))
        .expect(200)
        .await;
    assert_eq!(expired["total"], 1);
    // a monitoring policy never blocks, and records the hit
    let monitor = admin
        .post(POLICIES, &json!({"name": "watch", "mode": "monitor"}))
        .expect(201)
        .await;
    let pid = monitor["id"].as_str().unwrap();
    let watched = rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.21", "policy_id": pid}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(status_from(r, "198.51.100.21").await, 200);
    }
    let hits = admin
        .get(&format!(
            "/system/security/blocklist/hits?rule_id={}",
            watched["id"].as_str().unwrap()
        ))
        .expect(200)
        .await;
    assert_eq!(
        hits["total"], 1,
        "one hit per rule, source and minute: {hits}"
    );
    assert_eq!(
        (
            hits["items"][0]["mode"].as_str(),
            hits["items"][0]["blocked"].as_bool()
        ),
        (Some("monitor"), Some(false))
    );
    // switching it to enforce blocks at once; disabling it stops that at once
    admin
        .patch(&format!("{POLICIES}/{pid}"), &json!({"mode": "enforce"}))
        .expect(200)
        .await;
    assert_eq!(status_from(r, "198.51.100.21").await, 403);
    admin
        .patch(&format!("{POLICIES}/{pid}"), &json!({"enabled": false}))
        .expect(200)
        .await;
    assert_eq!(status_from(r, "198.51.100.21").await, 200);
    // an inactive rule blocks nothing
    rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.22", "active": false}),
    )
    .await;
    assert_eq!(status_from(r, "198.51.100.22").await, 200);
    app.finish().await;
}
on_both_engines!(
    expiry_monitor_mode_and_disabled_policies,
    expiry_monitor_mode_and_disabled_policies
);

async fn repeat_offenders_get_longer_bans(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let first = rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.30", "duration": "1h"}),
    )
    .await;
    assert_eq!(
        (
            first["offense"].as_i64(),
            first["duration_seconds"].as_i64()
        ),
        (Some(1), Some(3_600))
    );
    let second = rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.30", "duration_seconds": 3600}),
    )
    .await;
    assert_eq!(
        (
            second["offense"].as_i64(),
            second["duration_seconds"].as_i64()
        ),
        (Some(2), Some(7_200))
    );
    let third = rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.30", "duration": "1h"}),
    )
    .await;
    assert_eq!(third["duration_seconds"], 14_400);
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).unwrap()
    };
    let created =
        chrono::DateTime::parse_from_rfc3339(third["created_at"].as_str().unwrap()).unwrap();
    assert_eq!((at(&third) - created).num_seconds(), 14_400);
    // another address starts at its first offence
    let other = rule(
        &app,
        json!({"rule_type": "ip", "value": "198.51.100.31", "duration": "1h"}),
    )
    .await;
    assert_eq!(other["offense"], 1);
    app.finish().await;
}
on_both_engines!(
    repeat_offenders_get_longer_bans,
    repeat_offenders_get_longer_bans
);

/// Rules added one after another are read from the database until the index is rebuilt
/// with them (every 64); each blocks from the next request, through the rebuilds, and a
/// network of a new prefix length too.
async fn every_added_rule_blocks_through_index_rebuilds(engine: Engine) {
    let Some(app) = app(engine).await else { return };
    let (reader, _) = client(&app, &["read"]).await;
    let r = app.as_key(&reader);
    // a first lookup builds the (empty) index
    assert_eq!(status_from(r, "192.0.2.1").await, 200);
    for i in 1..=150 {
        let ip = format!("192.0.2.{i}");
        rule(&app, json!({"rule_type": "ip", "value": ip})).await;
        assert_eq!(status_from(r, &ip).await, 403, "{ip} right after its rule");
        if i % 25 == 0 {
            for j in [1, i / 2, i] {
                assert_eq!(
                    status_from(r, &format!("192.0.2.{j}")).await,
                    403,
                    "192.0.2.{j}"
                );
            }
            assert_eq!(status_from(r, "192.0.3.1").await, 200);
        }
    }
    for (cidr, inside) in [
        ("198.18.0.0/15", "198.19.1.1"),
        ("198.51.0.0/17", "198.51.1.1"),
    ] {
        rule(&app, json!({"rule_type": "cidr", "value": cidr})).await;
        assert_eq!(status_from(r, inside).await, 403, "{inside} in {cidr}");
    }
    app.finish().await;
}
on_both_engines!(
    every_added_rule_blocks_through_index_rebuilds,
    every_added_rule_blocks_through_index_rebuilds
);
