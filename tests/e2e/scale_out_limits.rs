//! Replicas on one PostgreSQL count and block as one service (issue 19): a rate limit of 50
//! lets exactly 50 requests through however they are spread over three replicas, and a
//! blocklist rule added on one replica refuses the subject on the others at their next
//! request (and lets it through again once deleted there).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, ServerProcess, TestDb, config_toml};
use crate::scale_out::{As, start_three, within};

/// Register an API client with `roles` on `replica`: its id and key.
async fn register(admin: &As<'_>, replica: &ServerProcess, name: &str) -> (String, String) {
    let made = admin
        .client
        .post(replica.url("/system/clients"))
        .header("x-api-key", admin.key)
        .json(&json!({"name": name, "roles": ["read"]}))
        .send()
        .await
        .expect("register");
    let status = made.status();
    let made: Value = made.json().await.expect("JSON");
    assert_eq!(status, 201, "{made}");
    (
        made["client"]["id"].as_str().expect("id").to_string(),
        made["api_key"].as_str().expect("key").to_string(),
    )
}

/// `POST path` of `body` on `replica` as the admin, which must create it: the new id.
async fn create(
    client: &reqwest::Client,
    replica: &ServerProcess,
    path: &str,
    body: &Value,
) -> String {
    let made = client
        .post(replica.url(path))
        .header("x-api-key", ADMIN_KEY)
        .json(body)
        .send()
        .await
        .expect("create");
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.expect("JSON");
    made["id"].as_str().expect("id").to_string()
}

/// One limited request: its status and whether the rule counted it (its headers say so).
async fn limited(client: &reqwest::Client, replica: &ServerProcess, key: &str) -> (u16, bool) {
    let resp = client
        .get(replica.url("/system/config"))
        .header("x-api-key", key)
        .send()
        .await
        .expect("request");
    let counted = resp.headers().contains_key("ratelimit-limit");
    (resp.status().as_u16(), counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_50_lets_exactly_50_through_across_three_replicas() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let packs = ["api_clients", "rate_limits", "system_config"];
    let file = config_toml(&db, &packs).admin_key(ADMIN_KEY).to_toml();
    let replicas = start_three(&db, &file);
    let client = reqwest::Client::new();
    let admin = As {
        client: &client,
        key: ADMIN_KEY,
    };
    let (_, key) = register(&admin, &replicas[0], "burst").await;
    // every replica has the (empty) rule set cached and a memo for this key
    for r in &replicas {
        assert_eq!(limited(&client, r, &key).await, (200, false));
    }

    // A adds the rule: 50 per 5 minutes per API key
    let rule = json!({"scope": "api_key", "max_requests": 50, "window_seconds": 300});
    let rule_id = create(&client, &replicas[0], "/system/ratelimits/rules", &rule).await;
    // each replica counts from its next request on (the rule set's invalidation reached it)
    let mut counted_ok = 0;
    for r in &replicas {
        let mut seen = false;
        for _ in 0..200 {
            let (status, counted) = limited(&client, r, &key).await;
            assert_eq!(status, 200);
            if counted {
                counted_ok += 1;
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(seen, "a replica never applied the rule");
    }

    // 150 concurrent requests, round robin over the three
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/system/config")).collect();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(30));
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..150 {
        let (client, url, key, gate) = (
            client.clone(),
            urls[i % 3].clone(),
            key.clone(),
            gate.clone(),
        );
        burst.spawn(async move {
            let _turn = gate.acquire_owned().await.expect("gate");
            let resp = client
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .expect("request");
            (
                resp.status().as_u16(),
                resp.headers().contains_key("ratelimit-limit"),
            )
        });
    }
    let answers: Vec<(u16, bool)> = burst.join_all().await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, counted) in &answers {
        *by_status.entry(*status).or_default() += 1;
        assert!(*counted || *status == 429, "an uncounted answer {status}");
    }
    let ok = by_status.get(&200).copied().unwrap_or(0);
    assert_eq!(
        counted_ok + ok,
        50,
        "exactly the limit passed: {by_status:?} after {counted_ok} probes"
    );
    assert_eq!(by_status.get(&429).copied().unwrap_or(0), 150 - ok);

    // every replica's snapshot shows the one shared count
    let snapshot = format!("/system/ratelimits/snapshots?rule_id={rule_id}");
    for r in &replicas {
        let (status, body) = admin.get(r, &snapshot).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["items"][0]["count"], 153, "{body}");
        assert_eq!(body["items"][0]["remaining"], 0, "{body}");
    }

    // deleted on A: B and C stop limiting (rules and counters go everywhere)
    let deleted = client
        .delete(replicas[0].url(&format!("/system/ratelimits/rules/{rule_id}")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    for r in &replicas[1..] {
        let free = within(|| async { limited(&client, r, &key).await == (200, false) }).await;
        assert!(free, "a replica still limited by a deleted rule");
        let (_, body) = admin.get(r, &snapshot).await;
        assert_eq!(body["total"], 0, "{body}");
    }
    for r in replicas {
        r.kill();
    }
    db.drop_database().await;
}

/// Wait until every replica ran `pack`'s tick (its own index build) at least once.
async fn ticked_everywhere(client: &reqwest::Client, replicas: &[ServerProcess], pack: &str) {
    let series = format!("valhalla_scheduler_ticks_total{{pack=\"{pack}\"}}");
    for r in replicas {
        let mut ran = false;
        for _ in 0..100 {
            let text = client
                .get(r.url("/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .unwrap_or_default();
            ran = text
                .lines()
                .filter_map(|l| l.strip_prefix(&series))
                .any(|n| n.trim().parse::<f64>().is_ok_and(|n| n > 0.0));
            if ran {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ran, "a replica never ran its own {pack} tick");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocklist_rule_added_on_one_replica_refuses_on_the_others_at_once() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let packs = ["api_clients", "security_policy", "system_config"];
    let file = config_toml(&db, &packs)
        .admin_key(ADMIN_KEY)
        .grant_packs("security_policy", &["api_clients"])
        .to_toml();
    let replicas = start_three(&db, &file);
    let client = reqwest::Client::new();
    let admin = As {
        client: &client,
        key: ADMIN_KEY,
    };
    let (id, key) = register(&admin, &replicas[0], "suspect").await;
    let (_, other) = register(&admin, &replicas[0], "bystander").await;
    let (suspect, bystander) = (
        As {
            client: &client,
            key: &key,
        },
        As {
            client: &client,
            key: &other,
        },
    );
    // the blocklist index is each replica's own: every one builds it (its tick runs on all)
    ticked_everywhere(&client, &replicas, "security_policy").await;
    for r in &replicas[1..] {
        assert_eq!(suspect.get(r, "/system/config").await.0, 200);
    }

    let rule = json!({"rule_type": "user", "value": format!("client:{id}"), "reason": "abuse"});
    let rule_id = create(&client, &replicas[0], "/system/security/blocklist", &rule).await;
    for r in &replicas[1..] {
        let refused = within(|| async { suspect.get(r, "/system/config").await.0 == 403 }).await;
        assert!(refused, "a replica let a blocked client through");
        assert_eq!(bystander.get(r, "/system/config").await.0, 200);
    }
    // and still after each replica rebuilt its index with the rule
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for r in &replicas {
        assert_eq!(suspect.get(r, "/system/config").await.0, 403);
    }

    let deleted = client
        .delete(replicas[0].url(&format!("/system/security/blocklist/{rule_id}")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    for r in &replicas[1..] {
        let free = within(|| async { suspect.get(r, "/system/config").await.0 == 200 }).await;
        assert!(free, "a replica still refused after the rule was deleted");
    }
    for r in replicas {
        r.kill();
    }
    db.drop_database().await;
}
