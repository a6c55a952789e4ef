//! Memoized guard decisions, with the shipped guard order (api_clients, rate_limits,
//! read_only_shield) and authentication on: once a key's principal is known and no rule
//! counts its requests, the chain answers them without instantiating a guard; a key's
//! deactivation or rotation, and a new rate-limit rule, take effect on the very next
//! request, and a counted request is counted exactly.

use std::sync::atomic::Ordering;

use serde_json::json;

use crate::harness::{Engine, TestApp, TestDb, secured};
use crate::on_both_engines;

const RULES: &str = "/system/ratelimits/rules";
const READ: &str = "/system/config/site.name";

/// (guard calls on an instance, decisions reused) so far.
fn stats(app: &TestApp) -> (u64, u64) {
    let s = &app.guard_stats;
    (
        s.called.load(Ordering::Relaxed),
        s.reused.load(Ordering::Relaxed),
    )
}

/// The shipped guards in the shipped order, a config entry to read and a read-role client:
/// the app, the client's id and its key.
async fn shipped(engine: Engine) -> Option<(TestApp, String, String)> {
    let db = TestDb::new(engine).await?;
    let packs = [
        "system_config",
        "api_clients",
        "rate_limits",
        "maintenance",
        "read_only_shield",
    ];
    let mut cfg = secured(&db, &packs);
    if let Some(shield) = cfg.packs.get_mut("read_only_shield") {
        shield.grants.packs = vec!["maintenance".into()];
    }
    if let Some(limits) = cfg.packs.get_mut("rate_limits") {
        limits.grants.packs = vec!["api_clients".into()];
    }
    cfg.server.guard_order = vec![
        "api_clients".into(),
        "rate_limits".into(),
        "read_only_shield".into(),
    ];
    // a burst of 200 at once: an instance for each counted one
    cfg.runtime.max_instances = 256;
    cfg.runtime.deadline_ms = 5_000;
    let app = TestApp::start(db, cfg).await;
    app.as_admin()
        .post("/system/config", &json!({"key": "site.name", "value": "v"}))
        .expect(200)
        .await;
    let client = app
        .as_admin()
        .post(
            "/system/clients",
            &json!({"name": "reader", "roles": ["read"]}),
        )
        .expect(201)
        .await;
    let id = client["client"]["id"].as_str().expect("id").to_string();
    let key = client["api_key"].as_str().expect("key").to_string();
    Some((app, id, key))
}

async fn memoized(engine: Engine) {
    let Some((app, id, key)) = shipped(engine).await else {
        return;
    };

    // the first request decides on instances; the next ones reuse both decisions
    app.as_key(&key).get(READ).expect(200).await;
    let before = stats(&app);
    for _ in 0..5 {
        app.as_key(&key).get(READ).expect(200).await;
    }
    let after = stats(&app);
    assert_eq!(
        after.0, before.0,
        "no guard instance for a known key without rules"
    );
    assert_eq!(
        after.1 - before.1,
        10,
        "api_clients and rate_limits answered from memos"
    );
    // the memo is the key's: another key, no key and a wrong key are decided afresh
    app.anon().get(READ).expect_problem(401).await;
    app.as_key("vk_not-a-key-0000000000")
        .get(READ)
        .expect_problem(401)
        .await;
    app.as_key("vk_not-a-key-0000000000")
        .get(READ)
        .expect_problem(401)
        .await;

    // deactivation and rotation take effect on the next request
    app.as_admin()
        .post_empty(&format!("/system/clients/{id}/deactivate"))
        .expect(200)
        .await;
    app.as_key(&key).get(READ).expect_problem(401).await;
    app.as_admin()
        .post_empty(&format!("/system/clients/{id}/activate"))
        .expect(200)
        .await;
    app.as_key(&key).get(READ).expect(200).await;
    let rotated = app
        .as_admin()
        .post_empty(&format!("/system/clients/{id}/rotate"))
        .expect(200)
        .await;
    app.as_key(&key).get(READ).expect_problem(401).await;
    let key = rotated["api_key"].as_str().expect("new key").to_string();
    app.as_key(&key).get(READ).expect(200).await;
    // the read-role key still cannot write: access is checked after the memo, every time
    app.as_key(&key)
        .post("/system/config", &json!({"key": "k", "value": "v"}))
        .expect_problem(403)
        .await;

    // a new rule counts from the next request, exactly, memo or not
    let rule = app
        .as_admin()
        .post(RULES, &json!({"scope": "api_key", "key": format!("client:{id}"), "window_seconds": 60, "max_requests": 3}))
        .expect(201)
        .await;
    for _ in 0..3 {
        app.as_key(&key).get(READ).expect(200).await;
    }
    app.as_key(&key).get(READ).expect_problem(429).await;
    // a rule for someone else leaves this key uncounted, and memoized again
    let rule_id = rule["id"].as_str().expect("rule id");
    app.as_admin()
        .delete(&format!("{RULES}/{rule_id}"))
        .expect(204)
        .await;
    app.as_admin()
        .post(
            RULES,
            &json!({"scope": "ip", "key": "10.9.8.7", "window_seconds": 60, "max_requests": 1}),
        )
        .expect(201)
        .await;
    app.as_key(&key).get(READ).expect(200).await;
    let before = stats(&app);
    for _ in 0..5 {
        app.as_key(&key).get(READ).expect(200).await;
    }
    assert_eq!(stats(&app).0, before.0, "no rule counts this key: memoized");
    app.finish().await;
}

on_both_engines!(
    guard_decisions_are_reused_until_their_entry_changes,
    memoized
);

/// A rule that appears while the key's decisions are memoized counts a concurrent burst
/// exactly: 50 of 200 get through, most of them counted by the host from rate_limits' memo.
async fn burst(engine: Engine) {
    let Some((app, id, key)) = shipped(engine).await else {
        return;
    };
    for _ in 0..3 {
        app.as_key(&key).get(READ).expect(200).await;
    }
    let memo = stats(&app);
    app.as_key(&key).get(READ).expect(200).await;
    assert_eq!(stats(&app).0, memo.0, "memoized before the rule");
    app.as_admin()
        .post(RULES, &json!({"scope": "api_key", "key": format!("client:{id}"), "window_seconds": 60, "max_requests": 50}))
        .expect(201)
        .await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let request = app
            .client
            .get(app.url(READ))
            .header("x-api-key", key.as_str());
        tasks.push(tokio::spawn(async move {
            request.send().await.map(|r| r.status().as_u16())
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task").expect("GET"));
    }
    let through = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((through, limited), (50, 150), "{statuses:?}");
    // the burst raced the first memo (instances and host counted side by side, exactly); the
    // memo the last guard call left may be of a rule-set entry a concurrent call rewrote since,
    // so one more request may go to the guards, which memoize anew. From then on the host
    // counts alone: no guard instance at all
    app.as_key(&key).get(READ).expect_problem(429).await;
    let (called, reused) = stats(&app);
    for _ in 0..20 {
        app.as_key(&key).get(READ).expect_problem(429).await;
    }
    let after = stats(&app);
    assert_eq!(
        after.0, called,
        "rate_limits and api_clients answered by the host"
    );
    assert_eq!(after.1 - reused, 40);
    // and the host's 429 is the rate limit's own
    let refused = app.as_key(&key).get(READ).await;
    assert_eq!(refused.status(), 429);
    for header in [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(refused.headers().contains_key(header), "{header}");
    }
    assert_eq!(refused.headers()["ratelimit-limit"], "50");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let body: serde_json::Value = refused.json().await.expect("problem+json");
    assert_eq!(body["type"], "urn:valhalla:problem:rate-limited");
    assert_eq!(body["instance"], READ);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("rate limit of 50 requests exceeded"))
    );
    app.finish().await;
}

on_both_engines!(a_new_rule_counts_a_memoized_keys_burst_exactly, burst);
