//! notifications' email channels end to end on both engines, authentication on, against a
//! real SMTP server (PyPI `aiosmtpd`, `tests/e2e/clients/smtp_server.py`) that requires AUTH:
//! a message the server first answers 451 is delivered on the second attempt with the same
//! `Message-ID` (`<{id}@{From's domain}>`), and the one it accepts, read with the independent
//! `mail-parser` crate, has its From, To, Reply-To, Subject, Message-ID, Date and both
//! parts (text/plain, text/html); a 550 ends `dead` at once with the reason, a dedupe key
//! enqueues once, and a manual retry delivers it; a relay outside `grants.smtp` is refused (422 naming `url`) before any
//! connection, and bad channels are refused naming their field.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, grant, root, secured, test_python};
use crate::on_both_engines;

pub const CHANNELS: &str = "/system/notify/channels";
pub const NOTIFY: &str = "/system/notify";
pub const SMTP_USER: &str = "valhalla-mailer";
pub const SMTP_PASSWORD: &str = "smtp-pw-7c1d9e0f2a4b";

/// The SMTP server script, running: its port and the events it printed.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    events: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Start it; `replies` answer the first DATA commands (then 250); AUTH is required.
    pub fn start(python: &Path, replies: &[u16]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut command = Command::new(python);
        command
            .arg(root().join("tests/e2e/clients/smtp_server.py"))
            .arg(dir.path())
            .args(["--user", SMTP_USER, "--password", SMTP_PASSWORD]);
        for reply in replies {
            command.args(["--reply", &reply.to_string()]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP server");
        let lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["event"] == "listening" {
                    let _ = tx.send(event["port"].as_u64().unwrap_or_default());
                } else {
                    seen.lock().expect("events").push(event);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the SMTP server listens");
        Self {
            child,
            port: u16::try_from(port).expect("a port"),
            events,
            _dir: dir,
        }
    }

    pub fn relay(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The events named `kind` so far (`connect`, `auth`, `data`, `message`).
    pub fn events(&self, kind: &str) -> Vec<Value> {
        let all = self.events.lock().expect("events");
        all.iter().filter(|e| e["event"] == kind).cloned().collect()
    }

    /// The raw bytes of the message an event names.
    pub fn file(event: &Value) -> Vec<u8> {
        std::fs::read(event["file"].as_str().expect("a file")).expect("the message file")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `grants.smtp` entry for `relay` that logs in as the test user.
pub fn smtp_grant(relay: &str) -> toml::Value {
    let mut entry = toml::Table::new();
    entry.insert("url".into(), toml::Value::String(relay.into()));
    entry.insert("username".into(), toml::Value::String(SMTP_USER.into()));
    entry.insert("password".into(), toml::Value::String(SMTP_PASSWORD.into()));
    toml::Value::Table(entry)
}

/// api_clients and notifications with auth on, quick retries, `relay` granted (with the
/// test login) and 127.0.0.1 granted for HTTP.
pub async fn start(engine: Engine, relay: &str) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, &["api_clients", "notifications"]);
    cfg.runtime.deadline_ms = 5_000;
    grant(&mut cfg, "notifications", "http://127.0.0.1:*");
    let pack = cfg.packs.get_mut("notifications").expect("notifications");
    pack.grants.smtp.push(smtp_grant(relay));
    let schedule = toml::Value::Array(vec![toml::Value::Float(0.2), toml::Value::Float(0.2)]);
    pack.settings
        .insert("retry_schedule_seconds".into(), schedule);
    pack.settings
        .insert("jitter".into(), toml::Value::Float(0.0));
    pack.settings
        .insert("delivery_timeout_ms".into(), toml::Value::Integer(3_000));
    Some(TestApp::start(db, cfg).await)
}

pub use crate::notifications::status_is;

async fn email_channel(app: &TestApp, name: &str, relay: &str) -> Value {
    let body = json!({"name": name, "kind": "email", "url": relay,
        "to": "On Call <oncall@example.com>", "from": "Valhalla <alerts@example.com>",
        "reply_to": "desk@example.com"});
    app.as_admin().post(CHANNELS, &body).expect(201).await
}

async fn delivered_after_a_451(engine: Engine) {
    let Some(python) = test_python() else { return };
    let smtp = SmtpServer::start(&python, &[451]);
    let Some(app) = start(engine, &smtp.relay()).await else {
        return;
    };
    let channel = email_channel(&app, "ops-mail", &smtp.relay()).await;
    assert_eq!(
        (&channel["kind"], &channel["to"], &channel["reply_to"]),
        (
            &json!("email"),
            &json!("On Call <oncall@example.com>"),
            &json!("desk@example.com")
        ),
        "{channel}"
    );
    assert!(channel.get("secret").is_none(), "{channel}");
    let body = json!({"channel": "ops-mail", "subject": "Disk full on db-1",
        "body": {"text": "db-1 is at 97 %.", "html": "<p>db-1 is at <b>97 %</b>.</p>"}});
    let queued = app.as_admin().post(NOTIFY, &body).expect(202).await;
    let id = queued["id"].as_str().expect("an id").to_string();
    let done = status_is(&app, &id, "delivered").await;
    assert_eq!(
        (&done["attempts"], &done["last_status_code"]),
        (&json!(2), &json!(250)),
        "{done}"
    );

    let offered = smtp.events("data");
    let codes: Vec<&Value> = offered.iter().map(|e| &e["code"]).collect();
    assert_eq!(codes, [&json!(451), &json!(250)], "two attempts");
    assert_eq!(smtp.events("message").len(), 1, "one delivered message");
    let logins = smtp.events("auth");
    assert!(
        !logins.is_empty()
            && logins
                .iter()
                .all(|a| a["ok"] == true && a["login"] == SMTP_USER),
        "every attempt logged in: {logins:?}"
    );
    let expected_id = format!("{id}@example.com");
    for attempt in &offered {
        let raw = SmtpServer::file(attempt);
        let m = MessageParser::default()
            .parse(&raw)
            .expect("a MIME message");
        assert_eq!(
            m.message_id(),
            Some(expected_id.as_str()),
            "the same id each time"
        );
    }
    assert_eq!(offered[1]["rcpt_tos"], json!(["oncall@example.com"]));
    assert_eq!(offered[1]["mail_from"], "alerts@example.com");

    let raw = SmtpServer::file(&smtp.events("message")[0]);
    let m = MessageParser::default()
        .parse(&raw)
        .expect("a MIME message");
    let from = m.from().and_then(|a| a.first()).expect("From");
    assert_eq!(
        (from.name(), from.address()),
        (Some("Valhalla"), Some("alerts@example.com"))
    );
    let to = m.to().and_then(|a| a.first()).expect("To");
    assert_eq!(
        (to.name(), to.address()),
        (Some("On Call"), Some("oncall@example.com"))
    );
    let reply_to = m.reply_to().and_then(|a| a.first()).expect("Reply-To");
    assert_eq!(reply_to.address(), Some("desk@example.com"));
    assert_eq!(m.subject(), Some("Disk full on db-1"));
    let date = m.date().expect("a Date");
    assert!(date.year >= 2024, "{date:?}");
    let root_type = m.root_part().content_type().expect("a content type");
    assert_eq!(
        (root_type.ctype(), root_type.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(
        m.body_text(0).as_deref().map(str::trim),
        Some("db-1 is at 97 %.")
    );
    assert_eq!(
        m.body_html(0).as_deref().map(str::trim),
        Some("<p>db-1 is at <b>97 %</b>.</p>")
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        !text.contains(SMTP_PASSWORD),
        "the message holds no credential"
    );
    let answered = app
        .as_admin()
        .get(&format!("{NOTIFY}/{id}"))
        .expect(200)
        .await;
    assert!(!answered.to_string().contains(SMTP_PASSWORD), "{answered}");
    app.finish().await;
}
on_both_engines!(
    an_email_answered_451_is_delivered_on_the_second_attempt_with_the_same_message_id,
    delivered_after_a_451
);

async fn dead_on_a_550(engine: Engine) {
    let Some(python) = test_python() else { return };
    let smtp = SmtpServer::start(&python, &[550]);
    let Some(app) = start(engine, &smtp.relay()).await else {
        return;
    };
    email_channel(&app, "ops-mail", &smtp.relay()).await;
    let body = json!({"channel": "ops-mail", "subject": "Backup failed", "body": "see the log",
        "dedupe_key": "backup-2026-12-01"});
    let queued = app.as_admin().post(NOTIFY, &body).expect(202).await;
    let id = queued["id"].as_str().expect("an id").to_string();
    let again = app.as_admin().post(NOTIFY, &body).expect(202).await;
    assert_eq!(
        (&again["id"], &again["duplicate"]),
        (&json!(id), &json!(true)),
        "{again}"
    );
    let dead = status_is(&app, &id, "dead").await;
    assert_eq!(
        (&dead["attempts"], &dead["last_status_code"]),
        (&json!(1), &json!(550)),
        "not retried: {dead}"
    );
    let reason = dead["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("550") && reason.contains("Mailbox unavailable"),
        "{dead}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(smtp.events("data").len(), 1, "one attempt only");
    assert!(smtp.events("message").is_empty());

    // a plain-text message (no HTML part); the server now accepts it
    app.as_admin()
        .post_empty(&format!("{NOTIFY}/{id}/retry"))
        .expect(202)
        .await;
    let done = status_is(&app, &id, "delivered").await;
    assert_eq!(done["attempts"], 1, "{done}");
    let raw = SmtpServer::file(&smtp.events("message")[0]);
    let m = MessageParser::default()
        .parse(&raw)
        .expect("a MIME message");
    assert_eq!(
        m.body_text(0).as_deref().map(str::trim),
        Some("see the log")
    );
    let root_type = m.root_part().content_type().expect("a content type");
    assert_eq!(
        (root_type.ctype(), root_type.subtype()),
        ("text", Some("plain"))
    );
    app.finish().await;
}
on_both_engines!(
    an_email_answered_550_is_dead_at_once_and_a_manual_retry_sends_it,
    dead_on_a_550
);

async fn refused(engine: Engine) {
    let Some(python) = test_python() else { return };
    let smtp = SmtpServer::start(&python, &[]);
    // the grant names another relay: this server's port is not in it
    let Some(app) = start(engine, "smtp://127.0.0.1:1").await else {
        return;
    };
    let admin = app.as_admin();
    let field = |p: &Value| {
        p["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let good = json!({"name": "m", "kind": "email", "url": smtp.relay(),
        "to": "oncall@example.com", "from": "alerts@example.com"});
    let p = admin.post(CHANNELS, &good).expect_problem(422).await;
    assert_eq!(field(&p), "url", "{p}");
    assert!(p.to_string().contains("grants.smtp"), "{p}");
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body["url"] = json!("smtp://127.0.0.1:1");
        body[key] = value;
        body
    };
    for (key, value, named) in [
        ("kind", json!("fax"), "kind"),
        ("to", json!("not-an-address"), "to"),
        ("from", json!("Ops <ops@example.com"), "from"),
        ("reply_to", json!("nobody"), "reply_to"),
        (
            "secret",
            json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "secret",
        ),
        ("url", json!("ftp://mail.example.com"), "url"),
        ("url", json!("https://mail.example.com"), "url"),
    ] {
        let p = admin
            .post(CHANNELS, &with(key, value))
            .expect_problem(422)
            .await;
        assert_eq!(field(&p), named, "{key}: {p}");
    }
    let mut no_from = with("to", json!("oncall@example.com"));
    no_from.as_object_mut().expect("an object").remove("from");
    let p = admin.post(CHANNELS, &no_from).expect_problem(422).await;
    assert_eq!(field(&p), "from", "{p}");
    // the granted relay is accepted (its server is not there: nothing is sent at creation)
    admin
        .post(CHANNELS, &with("name", json!("ok")))
        .expect(201)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        smtp.events("connect").is_empty(),
        "no connection to an ungranted relay"
    );
    let all = admin.get(CHANNELS).expect(200).await;
    assert_eq!(all["total"], 1, "{all}");
    app.finish().await;
}
on_both_engines!(
    an_ungranted_relay_and_bad_email_channels_are_refused_before_any_connection,
    refused
);
