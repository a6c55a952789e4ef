//! Scheduled and approved work happens once across three replicas on one PostgreSQL (issue 19):
//! 30 notifications enqueued across the replicas reach the receiver once each (one
//! `webhook-id` each, every one verified), and an approved security action that every replica
//! is asked to execute at the same moment executes once (one 200, the rest 409).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestDb, config_toml};
use crate::scale_out::start_three;
use crate::webhook_receiver::{Receiver, Reply};

/// `POST path` with `key` and `body` on `url`'s replica: status and JSON body.
async fn post(client: &reqwest::Client, url: String, key: &str, body: &Value) -> (u16, Value) {
    let resp = client
        .post(url)
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_enqueued_on_three_replicas_are_delivered_once_each() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let mut text = config_toml(&db, &["api_clients", "notifications"])
        .admin_key(ADMIN_KEY)
        .grant_outbound("notifications", &["http://127.0.0.1:*"])
        .to_toml();
    text.push_str("\n[packs.notifications.settings]\njitter = 0.0\n");
    let replicas = start_three(&db, &text);
    let client = reqwest::Client::new();
    let channel = json!({"name": "ops", "url": rx.url});
    let (status, created) = post(
        &client,
        replicas[0].url("/system/notify/channels"),
        ADMIN_KEY,
        &channel,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().expect("a secret").to_string();
    let mut ids = Vec::new();
    for i in 0..30 {
        let body = json!({"channel": "ops", "subject": format!("s{i}"), "body": {"n": i}});
        let url = replicas[i % 3].url("/system/notify");
        let (status, made) = post(&client, url, ADMIN_KEY, &body).await;
        assert_eq!(status, 202, "{made}");
        ids.push(made["id"].as_str().expect("id").to_string());
    }
    let got = rx.wait_for(30, Duration::from_secs(30)).await;
    // a second delivery of any of them would come within a few ticks
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = if rx.deliveries().len() > got.len() {
        rx.deliveries()
    } else {
        got
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for d in &got {
        d.verify(&secret).expect("a delivery verifies");
        *seen.entry(d.header("webhook-id").to_string()).or_default() += 1;
    }
    assert_eq!(got.len(), 30, "each delivered once: {seen:?}");
    for id in &ids {
        assert_eq!(seen.get(id), Some(&1), "{id} delivered once");
    }
    for r in replicas {
        r.kill();
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_action_executed_on_every_replica_at_once_executes_once() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let packs = [
        "api_clients",
        "security_policy",
        "security_actions",
        "maintenance",
    ];
    let text = config_toml(&db, &packs)
        .admin_key(ADMIN_KEY)
        .guard_order(&["api_clients", "security_policy"])
        .grant_packs(
            "security_actions",
            &["security_policy", "api_clients", "maintenance"],
        )
        .grant_packs("security_policy", &["api_clients"])
        .deadline_ms(5_000)
        .to_toml();
    let replicas = start_three(&db, &text);
    let client = reqwest::Client::new();
    let register = |name: &'static str, role: &'static str| {
        let (client, url) = (client.clone(), replicas[0].url("/system/clients"));
        async move {
            let body = json!({"name": name, "roles": [role]});
            let (status, made) = post(&client, url, ADMIN_KEY, &body).await;
            assert_eq!(status, 201, "{made}");
            (
                made["client"]["id"].as_str().expect("id").to_string(),
                made["api_key"].as_str().expect("key").to_string(),
            )
        }
    };
    let (_, approver) = register("approver", "admin").await;
    let (target, _) = register("leaky", "read").await;
    let body = json!({"action_type": "deactivate_client", "params": {"client_id": target},
                      "reason": "its key was pasted in a ticket"});
    let (status, action) = post(
        &client,
        replicas[0].url("/system/security/actions"),
        ADMIN_KEY,
        &body,
    )
    .await;
    assert_eq!(status, 201, "{action}");
    let path = |verb: &str| {
        format!(
            "/system/security/actions/{}/{verb}",
            action["id"].as_str().expect("id")
        )
    };
    let (status, approved) = post(
        &client,
        replicas[1].url(&path("approve")),
        &approver,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{approved}");

    // four execute calls on each replica, all at once
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (client, url) = (client.clone(), replicas[i % 3].url(&path("execute")));
        calls.spawn(async move { post(&client, url, ADMIN_KEY, &json!({})).await });
    }
    let answers = calls.join_all().await;
    let executed: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(executed.len(), 1, "{answers:?}");
    assert_eq!(executed[0]["status"], "executed", "{}", executed[0]);
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 409),
        "{answers:?}"
    );
    for r in replicas {
        r.kill();
    }
    db.drop_database().await;
}
