//! notifications (pack UG) end to end on both engines, authentication on: channels CRUD (a
//! URL outside the pack's outbound grant is a 422; the secret is write-only, answered once
//! when generated), enqueueing (202, dedupe_key), the tick delivering to a real HTTP
//! receiver that checks every delivery with the independent `standardwebhooks` crate:
//! retried after a 500 until delivered (same `webhook-id` each time), dead after the attempt
//! cap (and `Retry-After` honoured), a dead letter retried, a 410 turning the channel off, a
//! rotated secret signing beside the new one, bad input enqueueing nothing, the retention
//! purge; and a host SIGKILLed mid-delivery delivering the message once after its restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    ADMIN_KEY, Engine, ServerProcess, TestApp, TestDb, config_toml, grant, secured,
};
use crate::on_both_engines;
use crate::webhook_receiver::{Receiver, Reply};

const CHANNELS: &str = "/system/notify/channels";
const NOTIFY: &str = "/system/notify";
/// The Standard Webhooks specification's example secret (24 bytes).
const GIVEN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Settings of every test: two quick retries (three attempts), no jitter, short timeouts.
fn quick() -> Vec<(&'static str, toml::Value)> {
    let schedule = toml::Value::Array(vec![toml::Value::Float(0.2), toml::Value::Float(0.2)]);
    vec![
        ("retry_schedule_seconds", schedule),
        ("jitter", toml::Value::Float(0.0)),
        ("delivery_timeout_ms", toml::Value::Integer(2_000)),
    ]
}

/// api_clients and notifications, authentication on, the pack granted 127.0.0.1.
async fn start(engine: Engine, settings: &[(&str, toml::Value)]) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, &["api_clients", "notifications"]);
    cfg.runtime.deadline_ms = 5_000;
    grant(&mut cfg, "notifications", "http://127.0.0.1:*");
    let pack = cfg
        .packs
        .get_mut("notifications")
        .expect("notifications is loaded");
    for (name, value) in quick().iter().chain(settings) {
        pack.settings.insert((*name).into(), value.clone());
    }
    Some(TestApp::start(db, cfg).await)
}

/// A channel to `url`: its id and the secret the pack generated.
async fn channel(app: &TestApp, name: &str, url: &str) -> (String, String) {
    let body = json!({"name": name, "url": url});
    let created = app.as_admin().post(CHANNELS, &body).expect(201).await;
    let secret = created["secret"]
        .as_str()
        .expect("a generated secret is shown")
        .to_string();
    (created["id"].as_str().unwrap().to_string(), secret)
}

async fn enqueue(app: &TestApp, channel: &str, subject: &str) -> Value {
    let body = json!({"channel": channel, "subject": subject, "body": {"n": 1}});
    app.as_admin().post(NOTIFY, &body).expect(202).await
}

/// Poll the message until `done` holds (at most 20 s).
async fn until(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let m = app
            .as_admin()
            .get(&format!("{NOTIFY}/{id}"))
            .expect(200)
            .await;
        if done(&m) {
            return m;
        }
        assert!(Instant::now() < until, "never came to pass: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll message `id` until its status is `status` (at most 20 s).
pub async fn status_is(app: &TestApp, id: &str, status: &str) -> Value {
    until(app, id, |m| m["status"] == status).await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn delivered_after_retries(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    let rx = Receiver::start(
        vec![Reply::Status(500), Reply::Status(500)],
        Reply::Status(200),
    )
    .await;
    let (channel_id, secret) = channel(&app, "ops", &rx.url).await;
    let queued = enqueue(&app, "ops", "disk full").await;
    assert_eq!(
        (queued["status"].as_str(), queued["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    assert_eq!(queued["duplicate"], false);
    assert_eq!(queued["channel_id"], channel_id.as_str());
    let id = id_of(&queued);

    let m = status_is(&app, &id, "delivered").await;
    assert_eq!(m["attempts"], 3, "{m}");
    assert_eq!(m["last_status_code"], 200);
    assert!(
        m["delivered_at"].is_string() && m["next_attempt_at"].is_null(),
        "{m}"
    );
    let got = rx.deliveries();
    assert_eq!(got.len(), 3, "two 500s, then the 200");
    let now = chrono::Utc::now().timestamp();
    for d in &got {
        d.verify(&secret)
            .expect("Standard Webhooks verifies every attempt");
        assert_eq!(d.header("webhook-id"), id, "the same id on every attempt");
        assert_eq!(d.header("content-type"), "application/json");
        let at: i64 = d.header("webhook-timestamp").parse().unwrap();
        assert!((now - at).abs() < 60, "{at}");
        assert_eq!(d.body, got[0].body, "the same payload on every attempt");
        assert!(
            d.verify(GIVEN_SECRET).is_err(),
            "another secret does not verify"
        );
    }
    let payload = got[0].json();
    assert_eq!(payload["type"], "notification");
    assert_eq!(payload["data"]["id"], id.as_str());
    assert_eq!(payload["data"]["subject"], "disk full");
    assert_eq!(payload["data"]["body"], json!({"n": 1}));
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(190),
        "the schedule's wait"
    );

    let listed = app
        .as_admin()
        .get(&format!("{NOTIFY}?status=delivered"))
        .expect(200)
        .await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(&secret), "never the secret");
    let none = app
        .as_admin()
        .get(&format!("{NOTIFY}?status=failed"))
        .expect(200)
        .await;
    assert_eq!(none["total"], 0);
    let p = app
        .as_admin()
        .get(&format!("{NOTIFY}?status=lost"))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "status");
    app.as_admin()
        .get(&format!("{NOTIFY}/nope"))
        .expect_problem(404)
        .await;
    app.finish().await;
}
on_both_engines!(
    a_message_is_retried_after_500s_and_delivered,
    delivered_after_retries
);

async fn dead_then_retried(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    // the first answer asks for two seconds, the schedule says 0.2
    let first = Reply::With(503, vec![("retry-after", "2".into())]);
    let rx = Receiver::start(vec![first], Reply::Status(503)).await;
    let (_, secret) = channel(&app, "ops", &rx.url).await;
    let id = id_of(&enqueue(&app, "ops", "down").await);
    let waiting = until(&app, &id, |m| m["status"] == "failed").await;
    assert_eq!(waiting["attempts"], 1, "{waiting}");
    assert_eq!(waiting["last_status_code"], 503);
    assert!(
        waiting["last_error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 503"),
        "{waiting}"
    );
    assert!(waiting["next_attempt_at"].is_string());

    let dead = status_is(&app, &id, "dead").await;
    assert_eq!(dead["attempts"], 3, "the attempt cap: {dead}");
    assert!(dead["next_attempt_at"].is_null());
    let got = rx.deliveries();
    assert_eq!(got.len(), 3);
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1_900),
        "Retry-After honoured"
    );
    assert!(got.iter().all(|d| d.verify(&secret).is_ok()));
    let listed = app
        .as_admin()
        .get(&format!("{NOTIFY}?status=dead"))
        .expect(200)
        .await;
    assert_eq!(listed["total"], 1);

    // a dead letter is queued again by an admin, and delivered
    let writer = app.register_client("writer", &["write"]).await;
    let retry = format!("{NOTIFY}/{id}/retry");
    app.as_key(&writer.key)
        .post_empty(&retry)
        .expect_problem(403)
        .await;
    rx.answer_by_default(Reply::Status(204));
    let queued = app.as_admin().post_empty(&retry).expect(202).await;
    assert_eq!(
        (queued["status"].as_str(), queued["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    let delivered = status_is(&app, &id, "delivered").await;
    assert_eq!(delivered["attempts"], 1);
    assert_eq!(delivered["last_status_code"], 204);
    assert_eq!(rx.deliveries().len(), 4);
    assert_eq!(
        rx.deliveries()[3].header("webhook-id"),
        id,
        "the same id after a retry"
    );
    let p = app.as_admin().post_empty(&retry).expect_problem(409).await;
    assert!(p["detail"].as_str().unwrap().contains("delivered"), "{p}");
    app.as_admin()
        .post_empty(&format!("{NOTIFY}/nope/retry"))
        .expect_problem(404)
        .await;
    app.finish().await;
}
on_both_engines!(
    a_failing_receiver_makes_a_dead_letter_that_can_be_retried,
    dead_then_retried
);

async fn gone(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(410)).await;
    let (channel_id, _) = channel(&app, "ops", &rx.url).await;
    let id = id_of(&enqueue(&app, "ops", "bye").await);
    let dead = status_is(&app, &id, "dead").await;
    assert_eq!(
        (dead["attempts"].as_i64(), dead["last_status_code"].as_i64()),
        (Some(1), Some(410))
    );
    assert_eq!(rx.deliveries().len(), 1, "no retry after a 410");
    let path = format!("{CHANNELS}/{channel_id}");
    let off = app.as_admin().get(&path).expect(200).await;
    assert_eq!(off["enabled"], false);
    assert!(
        off["disabled_reason"].as_str().unwrap().contains("410"),
        "{off}"
    );
    let body = json!({"channel": channel_id, "subject": "again", "body": 1});
    let p = app.as_admin().post(NOTIFY, &body).expect_problem(409).await;
    assert!(p["detail"].as_str().unwrap().contains("disabled"), "{p}");
    app.as_admin()
        .post_empty(&format!("{NOTIFY}/{id}/retry"))
        .expect_problem(409)
        .await;
    let on = app
        .as_admin()
        .patch(&path, &json!({"enabled": true}))
        .expect(200)
        .await;
    assert!(
        on["enabled"] == true && on["disabled_reason"].is_null(),
        "{on}"
    );
    app.finish().await;
}
on_both_engines!(a_410_turns_the_channel_off, gone);

async fn rotation(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let body = json!({"name": "ops", "url": rx.url, "secret": GIVEN_SECRET});
    let created = app.as_admin().post(CHANNELS, &body).expect(201).await;
    assert!(
        created.get("secret").is_none(),
        "a given secret is not echoed: {created}"
    );
    let id = id_of(&created);
    let rotate = format!("{CHANNELS}/{id}/rotate-secret");
    let rotated = app.as_admin().post_empty(&rotate).expect(200).await;
    let new_secret = rotated["secret"]
        .as_str()
        .expect("the new secret, once")
        .to_string();
    assert!(new_secret.starts_with("whsec_") && new_secret != GIVEN_SECRET);
    assert!(
        rotated["previous_secret_expires_at"].is_string()
            && rotated["secret_rotated_at"].is_string()
    );
    let shown = app
        .as_admin()
        .get(&format!("{CHANNELS}/{id}"))
        .expect(200)
        .await;
    assert!(
        shown.get("secret").is_none() && !shown.to_string().contains("whsec_"),
        "{shown}"
    );

    let m = enqueue(&app, &id, "rotated").await;
    status_is(&app, &id_of(&m), "delivered").await;
    let d = &rx.deliveries()[0];
    let signatures: Vec<&str> = d.header("webhook-signature").split(' ').collect();
    assert_eq!(
        signatures.len(),
        2,
        "both secrets sign during the grace: {signatures:?}"
    );
    d.verify(&new_secret).expect("the new secret verifies");
    d.verify(GIVEN_SECRET).expect("the old secret verifies");
    d.with_signature(0)
        .verify(&new_secret)
        .expect("the first signature is the new secret's");
    d.with_signature(1)
        .verify(GIVEN_SECRET)
        .expect("the second is the old secret's");
    assert!(d.with_signature(0).verify(GIVEN_SECRET).is_err());

    let given = app
        .as_admin()
        .post(&rotate, &json!({"secret": GIVEN_SECRET}))
        .expect(200)
        .await;
    assert!(
        given.get("secret").is_none(),
        "a given secret is not echoed"
    );
    let p = app
        .as_admin()
        .post(&rotate, &json!({"secret": "whsec_short"}))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "secret");
    app.as_admin()
        .post_empty(&format!("{CHANNELS}/nope/rotate-secret"))
        .expect_problem(404)
        .await;
    app.finish().await;
}
on_both_engines!(a_rotated_secret_signs_beside_the_new_one, rotation);

async fn crud(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    let reader = app.register_client("reader", &["read"]).await;
    let writer = app.register_client("writer", &["write"]).await;
    let (id, secret) = channel(&app, "ops", "http://127.0.0.1:9/hooks").await;
    assert!(secret.starts_with("whsec_"));
    let path = format!("{CHANNELS}/{id}");
    let got = app.as_key(&reader.key).get(&path).expect(200).await;
    assert_eq!(
        (got["kind"].as_str(), got["enabled"].as_bool()),
        (Some("webhook"), Some(true))
    );
    let list = app.as_key(&reader.key).get(CHANNELS).expect(200).await;
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains("whsec_"), "never listed: {list}");
    let body = json!({"name": "x", "url": "http://127.0.0.1:9/"});
    app.as_key(&writer.key)
        .post(CHANNELS, &body)
        .expect_problem(403)
        .await;
    app.anon().get(CHANNELS).expect_problem(401).await;

    // the grant: 127.0.0.1 only
    let outside = json!({"name": "evil", "url": "https://example.com/hook"});
    let p = app
        .as_admin()
        .post(CHANNELS, &outside)
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "url", "{p}");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("grants.outbound"),
        "{p}"
    );
    let bad = json!({"name": " ", "kind": "fax", "url": "ftp://x", "secret": "nope"});
    let p = app
        .as_admin()
        .post(CHANNELS, &bad)
        .expect_problem(422)
        .await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "kind", "url", "secret"]);
    let taken = json!({"name": "ops", "url": "http://127.0.0.1:9/"});
    app.as_admin()
        .post(CHANNELS, &taken)
        .expect_problem(409)
        .await;

    let p = app
        .as_admin()
        .patch(&path, &json!({"url": "https://example.com/"}))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "url");
    let patched = app
        .as_admin()
        .patch(
            &path,
            &json!({"name": "ops2", "description": "pager", "enabled": false}),
        )
        .expect(200)
        .await;
    assert_eq!(
        (patched["name"].as_str(), patched["enabled"].as_bool()),
        (Some("ops2"), Some(false))
    );
    let filtered = app
        .as_admin()
        .get(&format!("{CHANNELS}?enabled=true"))
        .expect(200)
        .await;
    assert_eq!(filtered["total"], 0);
    app.as_key(&writer.key)
        .delete(&path)
        .expect_problem(403)
        .await;
    app.as_admin().delete(&path).expect(204).await;
    app.as_admin().get(&path).expect_problem(404).await;
    app.as_admin().delete(&path).expect_problem(404).await;
    app.finish().await;
}
on_both_engines!(channels_crud_checks_the_grant_and_hides_the_secret, crud);

async fn bad_input(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    channel(&app, "ops", &rx.url).await;
    let writer = app.register_client("writer", &["write"]).await;
    let reader = app.register_client("reader", &["read"]).await;
    let w = app.as_key(&writer.key);
    let p = w
        .post(
            NOTIFY,
            &json!({"channel": "nope", "subject": "s", "body": 1}),
        )
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "channel", "{p}");
    let p = w
        .post(NOTIFY, &json!({"channel": "ops", "body": 1}))
        .expect_problem(422)
        .await;
    assert!(p.to_string().contains("subject"), "{p}");
    let unknown = json!({"channel": "ops", "subject": "s", "body": 1, "x": 2});
    w.post(NOTIFY, &unknown).expect_problem(422).await;
    let p = w
        .post(NOTIFY, &json!({"channel": "ops", "subject": "", "body": 1}))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "subject", "{p}");
    let big = json!({"channel": "ops", "subject": "s", "body": "x".repeat(70_000)});
    let p = w.post(NOTIFY, &big).expect_problem(413).await;
    assert_eq!(p["status"], 413, "past the test host's body limit");
    w.post_raw(NOTIFY, "application/json", "{not json")
        .expect_problem(400)
        .await;
    app.as_key(&reader.key)
        .post(
            NOTIFY,
            &json!({"channel": "ops", "subject": "s", "body": 1}),
        )
        .expect_problem(403)
        .await;
    let all = app.as_admin().get(NOTIFY).expect(200).await;
    assert_eq!(all["total"], 0, "nothing was enqueued: {all}");
    // a writer enqueues, and reads
    w.post(
        NOTIFY,
        &json!({"channel": "ops", "subject": "s", "body": null}),
    )
    .expect(202)
    .await;
    app.as_key(&reader.key).get(NOTIFY).expect(200).await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rx.deliveries().len(), 1, "only the good one");
    app.finish().await;
}
on_both_engines!(bad_input_is_refused_and_enqueues_nothing, bad_input);

async fn dedupe(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    channel(&app, "ops", &rx.url).await;
    channel(&app, "audit", &rx.url).await;
    let body = |channel: &str| json!({"channel": channel, "subject": "s", "body": 1, "dedupe_key": "evt-1"});
    let first = app.as_admin().post(NOTIFY, &body("ops")).expect(202).await;
    let again = app.as_admin().post(NOTIFY, &body("ops")).expect(202).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        (first["duplicate"].as_bool(), again["duplicate"].as_bool()),
        (Some(false), Some(true))
    );
    let other = app
        .as_admin()
        .post(NOTIFY, &body("audit"))
        .expect(202)
        .await;
    assert_ne!(other["id"], first["id"], "a key is per channel");
    status_is(&app, &id_of(&first), "delivered").await;
    status_is(&app, &id_of(&other), "delivered").await;
    let late = app.as_admin().post(NOTIFY, &body("ops")).expect(202).await;
    assert_eq!(
        (late["id"].clone(), late["status"].as_str()),
        (first["id"].clone(), Some("delivered"))
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rx.deliveries().len(), 2, "each message once");
    let all = app.as_admin().get(NOTIFY).expect(200).await;
    assert_eq!(all["total"], 2);
    app.finish().await;
}
on_both_engines!(a_dedupe_key_is_enqueued_once, dedupe);

async fn paging_and_purge(engine: Engine) {
    let Some(app) = start(engine, &[]).await else {
        return;
    };
    let rx = Receiver::start(vec![], Reply::Status(200)).await;
    let (channel_id, _) = channel(&app, "ops", &rx.url).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(id_of(&enqueue(&app, "ops", &format!("m{n}")).await));
    }
    for id in &ids {
        status_is(&app, id, "delivered").await;
    }
    let page = app
        .as_admin()
        .get(&format!("{NOTIFY}?channel={channel_id}&limit=2"))
        .expect(200)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], ids[2].as_str(), "newest first");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let rest = app
        .as_admin()
        .get(&format!("{NOTIFY}?limit=2&cursor={cursor}"))
        .expect(200)
        .await;
    assert_eq!(rest["items"][0]["id"], ids[0].as_str());
    assert!(rest["next_cursor"].is_null());

    let purge = format!("{NOTIFY}/purge");
    let past = json!({"before": "2000-01-01T00:00:00Z", "limit": 10});
    let none = app.as_admin().post(&purge, &past).expect(200).await;
    assert_eq!(none["removed"], 0, "none delivered before 2000");
    let future = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let one = app
        .as_admin()
        .post(&purge, &json!({"before": future, "limit": 1}))
        .expect(200)
        .await;
    assert_eq!(one["removed"], 1);
    app.as_admin()
        .get(&format!("{NOTIFY}/{}", ids[0]))
        .expect_problem(404)
        .await;
    let rest = app
        .as_admin()
        .post(&purge, &json!({"before": future, "limit": 10}))
        .expect(200)
        .await;
    assert_eq!(rest["removed"], 2);
    let p = app
        .as_admin()
        .post(&purge, &json!({"before": "soon", "limit": 0}))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 2, "{p}");
    let writer = app.register_client("writer", &["write"]).await;
    app.as_key(&writer.key)
        .post(&purge, &past)
        .expect_problem(403)
        .await;
    app.finish().await;
}
on_both_engines!(
    lists_page_by_cursor_and_purge_removes_delivered,
    paging_and_purge
);

/// The real binary, killed with SIGKILL while the receiver holds the delivery: after a
/// restart the lease lapses, the message is delivered (same `webhook-id`) and marked once.
async fn killed_mid_delivery(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let rx = Receiver::start(vec![Reply::Hold], Reply::Status(200)).await;
    let mut text = config_toml(&db, &["api_clients", "notifications"])
        .admin_key(ADMIN_KEY)
        .grant_outbound("notifications", &["http://127.0.0.1:*"])
        .deadline_ms(5_000)
        .to_toml();
    // the lease (3 s) outlives the tick deadline (2.5 s) and the delivery timeout (2 s)
    text.push_str(
        "\n[packs.notifications.settings]\nlease_ms = 3000\ndelivery_timeout_ms = 2000\n\
         jitter = 0.0\nretry_schedule_seconds = [0.2, 0.2]\n",
    );
    let text = text.replace("[runtime]\n", "[runtime]\ntick_deadline_ms = 2500\n");
    let client = reqwest::Client::new();
    let server = ServerProcess::start(&db, &text);
    let created: Value = client
        .post(server.url(CHANNELS))
        .header("x-api-key", ADMIN_KEY)
        .json(&json!({"name": "ops", "url": rx.url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().expect("a secret").to_string();
    let body = json!({"channel": "ops", "subject": "s", "body": 1});
    let enqueued = client
        .post(server.url(NOTIFY))
        .header("x-api-key", ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(enqueued.status(), 202);
    let id = id_of(&enqueued.json::<Value>().await.unwrap());
    let held = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(held[0].header("webhook-id"), id);
    server.kill();

    let server = ServerProcess::start(&db, &text);
    let got = rx.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        got[1].header("webhook-id"),
        id,
        "the same message, the same id"
    );
    got[1].verify(&secret).expect("verifies");
    let url = server.url(&format!("{NOTIFY}/{id}"));
    let until = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m: Value = client
            .get(&url)
            .header("x-api-key", ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if m["status"] == "delivered" || Instant::now() > until {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["attempts"], 2, "the killed attempt counts: {m}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(rx.deliveries().len(), 2, "delivered once after the restart");
    server.kill();
    db.drop_database().await;
}
on_both_engines!(
    a_host_killed_mid_delivery_delivers_once_after_restart,
    killed_mid_delivery
);
