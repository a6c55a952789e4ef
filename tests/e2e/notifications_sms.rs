//! notifications' SMS channels end to end on both engines, authentication on: a local HTTP
//! listener standing in for a Twilio-compatible provider receives the form (`To`, `From`,
//! `Body`) with HTTP Basic (account SID, auth token), after a 429 and a 503 were retried; a
//! 400 is dead at once; bad numbers and a missing token are 422 naming the field.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Engine;
use crate::notifications_mail::{CHANNELS, NOTIFY, start, status_is};
use crate::on_both_engines;
use crate::webhook_receiver::{Delivery, Receiver, Reply};

pub const ACCOUNT: &str = "AC0123456789abcdef";
pub const TOKEN: &str = "sms-token-5f3e8a91c2d7";

pub fn sms_channel(url: &str) -> Value {
    json!({"name": "pager", "kind": "sms", "url": url, "to": "+15551234567",
        "from": "+15557654321", "account_sid": ACCOUNT, "auth_token": TOKEN})
}

/// The `authorization` header HTTP Basic with the account and token makes (as reqwest
/// writes it, not as the pack does).
fn basic() -> String {
    let request = reqwest::Client::new()
        .get("http://127.0.0.1/")
        .basic_auth(ACCOUNT, Some(TOKEN))
        .build()
        .expect("a request");
    let value = request.headers().get("authorization").expect("basic auth");
    value.to_str().expect("ascii").to_string()
}

fn form(delivery: &Delivery) -> Vec<(String, String)> {
    form_urlencoded::parse(&delivery.body)
        .into_owned()
        .collect()
}

async fn retried_then_sent(engine: Engine) {
    let rx = Receiver::start(
        vec![Reply::Status(429), Reply::Status(503)],
        Reply::Status(201),
    )
    .await;
    let Some(app) = start(engine, "smtp://127.0.0.1:1").await else {
        return;
    };
    let created = app
        .as_admin()
        .post(CHANNELS, &sms_channel(&rx.url))
        .expect(201)
        .await;
    assert_eq!(created["account_sid"], ACCOUNT, "{created}");
    assert!(
        !created.to_string().contains(TOKEN),
        "write-only: {created}"
    );
    let id = created["id"].as_str().expect("an id");
    let shown = app
        .as_admin()
        .get(&format!("{CHANNELS}/{id}"))
        .expect(200)
        .await;
    let listed = app.as_admin().get(CHANNELS).expect(200).await;
    assert!(
        !format!("{shown}{listed}").contains(TOKEN),
        "never answered"
    );

    let body = json!({"channel": "pager", "subject": "Disk full", "body": "db-1 at 97 %"});
    let queued = app.as_admin().post(NOTIFY, &body).expect(202).await;
    let message = queued["id"].as_str().expect("an id").to_string();
    let done = status_is(&app, &message, "delivered").await;
    assert_eq!(
        (&done["attempts"], &done["last_status_code"]),
        (&json!(3), &json!(201)),
        "{done}"
    );
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    for delivery in &got {
        assert_eq!(delivery.header("authorization"), basic());
        assert_eq!(
            delivery.header("content-type"),
            "application/x-www-form-urlencoded"
        );
        let fields = form(delivery);
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("To", "+15551234567"),
                ("From", "+15557654321"),
                ("Body", "Disk full\ndb-1 at 97 %")
            ]
        );
    }
    // changing the token (write-only) is used from the next message on
    app.as_admin()
        .patch(&format!("{CHANNELS}/{id}"), &json!({"auth_token": "other"}))
        .expect(200)
        .await;
    app.finish().await;
}
on_both_engines!(
    an_sms_reaches_the_provider_as_a_form_with_basic_auth_after_429_and_503,
    retried_then_sent
);

async fn dead_on_400(engine: Engine) {
    let rx = Receiver::start(vec![Reply::Status(400)], Reply::Status(201)).await;
    let Some(app) = start(engine, "smtp://127.0.0.1:1").await else {
        return;
    };
    app.as_admin()
        .post(CHANNELS, &sms_channel(&rx.url))
        .expect(201)
        .await;
    let body = json!({"channel": "pager", "subject": "Disk full", "body": null});
    let queued = app.as_admin().post(NOTIFY, &body).expect(202).await;
    let id = queued["id"].as_str().expect("an id").to_string();
    let dead = status_is(&app, &id, "dead").await;
    assert_eq!(
        (&dead["attempts"], &dead["last_status_code"]),
        (&json!(1), &json!(400)),
        "{dead}"
    );
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 400"),
        "{dead}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rx.deliveries().len(), 1, "not retried");
    assert_eq!(
        form(&rx.deliveries()[0])[2].1,
        "Disk full",
        "the subject alone"
    );
    let p = app
        .as_admin()
        .post(
            CHANNELS,
            &json!({"name": "x", "kind": "sms", "url": rx.url, "to": "5551234",
            "from": "+15557654321", "account_sid": ACCOUNT, "auth_token": TOKEN}),
        )
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "to", "{p}");
    let p = app
        .as_admin()
        .post(
            CHANNELS,
            &json!({"name": "x", "kind": "sms", "url": rx.url, "to": "+15551234567",
            "from": "+15557654321", "account_sid": ACCOUNT}),
        )
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "auth_token", "{p}");
    app.finish().await;
}
on_both_engines!(an_sms_the_provider_answers_400_is_dead_at_once, dead_on_400);
