//! notifications' email and SMS channels on the real binary, both engines: the credentials'
//! promise, its stderr read at `VALHALLA_LOG=debug` — the SMTP password (from
//! `password_env`) and the SMS auth token appear in no log line, no system log entry and no
//! API answer while both are used; and SMTP's at-least-once: a host SIGKILLed while the relay
//! holds the message sends it again after its restart, with the same `Message-ID`, delivered
//! once in the outbox.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestDb, config_toml, test_python};
use crate::notifications_mail::{CHANNELS, NOTIFY, SMTP_PASSWORD, SMTP_USER, SmtpServer};
use crate::notifications_sms::{TOKEN, sms_channel};
use crate::on_both_engines;
use crate::webhook_receiver::{Receiver, Reply};

/// The real binary with `VALHALLA_LOG=debug`, its stderr kept.
struct Process {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn start(db: &TestDb, text: &str) -> Self {
        let path = db.dir.path().join("secrets.toml");
        std::fs::write(&path, text).expect("write the config");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_valhalla"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("VALHALLA_LOG", "debug")
            .env("NO_COLOR", "1")
            .env("VALHALLA_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the valhalla binary");
        let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("valhalla::app: ready")
                    && let Some(at) = line.find("addr=")
                {
                    let addr = line[at + 5..].split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                kept.lock().expect("log").push(line);
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!(
                "the server never logged `ready`: {:?}",
                log.lock().expect("log")
            );
        };
        Self {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.expect("an answer");
        answer.json().await.unwrap_or(Value::Null)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config of `packs`, with notifications granted 127.0.0.1 over HTTP and `smtp`'s relay
/// (logging in with the password from `VALHALLA_TEST_SMTP_PASSWORD`), quick retries and
/// `settings` (more lines of its settings table).
fn config(db: &TestDb, smtp: &SmtpServer, packs: &[&str], settings: &str) -> String {
    let text = config_toml(db, packs)
        .admin_key(ADMIN_KEY)
        .grant_outbound("notifications", &["http://127.0.0.1:*"])
        .deadline_ms(5_000)
        .to_toml();
    let grant = format!(
        "[packs.notifications.grants]\nsmtp = [{{ url = \"{}\", username = \"{SMTP_USER}\", \
         password_env = \"VALHALLA_TEST_SMTP_PASSWORD\" }}]\n",
        smtp.relay()
    );
    assert!(text.contains("[packs.notifications.grants]\n"), "{text}");
    let mut text = text.replace("[packs.notifications.grants]\n", &grant);
    text.push_str(&format!(
        "\n[packs.notifications.settings]\njitter = 0.0\nretry_schedule_seconds = [0.2, 0.2]\n\
         {settings}"
    ));
    text
}

async fn no_credential_leaks(engine: Engine) {
    let Some(python) = test_python() else { return };
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let smtp = SmtpServer::start(&python, &[451]);
    let rx = Receiver::start(vec![Reply::Status(500)], Reply::Status(201)).await;
    let text = config(
        &db,
        &smtp,
        &["api_clients", "notifications", "system_log"],
        "",
    );
    let server = Process::start(&db, &text);
    let post = reqwest::Method::POST;
    let mail = json!({"name": "mail", "kind": "email", "url": smtp.relay(),
        "to": "oncall@example.com", "from": "alerts@example.com"});
    let mut answers = vec![server.call(post.clone(), CHANNELS, Some(&mail)).await];
    answers.push(
        server
            .call(post.clone(), CHANNELS, Some(&sms_channel(&rx.url)))
            .await,
    );
    let mut ids = Vec::new();
    for channel in ["mail", "pager"] {
        let body = json!({"channel": channel, "subject": "s", "body": "b"});
        let queued = server.call(post.clone(), NOTIFY, Some(&body)).await;
        ids.push(queued["id"].as_str().expect("queued").to_string());
        answers.push(queued);
    }
    let until = Instant::now() + Duration::from_secs(20);
    for id in &ids {
        loop {
            let m = server
                .call(reqwest::Method::GET, &format!("{NOTIFY}/{id}"), None)
                .await;
            if m["status"] == "delivered" {
                assert_eq!(m["attempts"], 2, "a failure was logged first: {m}");
                answers.push(m);
                break;
            }
            assert!(Instant::now() < until, "never delivered: {m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        !smtp.events("auth").is_empty() && smtp.events("auth").iter().all(|a| a["ok"] == true),
        "password_env logged in"
    );
    assert_eq!(rx.deliveries().len(), 2);
    for path in [CHANNELS, NOTIFY, "/system/logs?limit=500"] {
        answers.push(server.call(reqwest::Method::GET, path, None).await);
    }
    let logged = answers.last().expect("the system log").to_string();
    assert!(
        logged.contains("attempt 1"),
        "the failures are in the system log: {logged}"
    );
    let log = server.log.lock().expect("log").join("\n");
    assert!(log.contains("notifications"), "the log was read");
    for secret in [SMTP_PASSWORD, TOKEN] {
        assert!(!log.contains(secret), "{secret} is in the server's log");
        for answer in &answers {
            assert!(
                !answer.to_string().contains(secret),
                "{secret} answered: {answer}"
            );
        }
    }
    drop(server);
    db.drop_database().await;
}
on_both_engines!(
    no_smtp_password_or_sms_token_appears_in_logs_the_system_log_or_answers,
    no_credential_leaks
);

/// SIGKILLed while the relay holds the message (after DATA, before its reply): after the
/// restart the lease lapses and the message goes again, same `Message-ID`, and is marked
/// delivered once.
async fn killed_mid_send(engine: Engine) {
    let Some(python) = test_python() else { return };
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let smtp = SmtpServer::start(&python, &[0]);
    // the lease (3 s) outlives the tick deadline (2.5 s) and the delivery timeout (2 s)
    let text = config(
        &db,
        &smtp,
        &["api_clients", "notifications"],
        "lease_ms = 3000\ndelivery_timeout_ms = 2000\n",
    );
    let text = text.replace("[runtime]\n", "[runtime]\ntick_deadline_ms = 2500\n");
    let server = Process::start(&db, &text);
    let mail = json!({"name": "mail", "kind": "email", "url": smtp.relay(),
        "to": "oncall@example.com", "from": "alerts@example.com"});
    server
        .call(reqwest::Method::POST, CHANNELS, Some(&mail))
        .await;
    let body = json!({"channel": "mail", "subject": "s", "body": "b"});
    let queued = server
        .call(reqwest::Method::POST, NOTIFY, Some(&body))
        .await;
    let id = queued["id"].as_str().expect("queued").to_string();
    let until = Instant::now() + Duration::from_secs(10);
    while smtp.events("data").is_empty() {
        assert!(Instant::now() < until, "the relay never got the message");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(server); // SIGKILL

    let server = Process::start(&db, &text);
    let until = Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = server
            .call(reqwest::Method::GET, &format!("{NOTIFY}/{id}"), None)
            .await;
        if m["status"] == "delivered" {
            break m;
        }
        assert!(Instant::now() < until, "never delivered: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(m["attempts"], 2, "the killed attempt counts: {m}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let offered = smtp.events("data");
    assert_eq!(offered.len(), 2, "sent again after the restart, once");
    assert_eq!(smtp.events("message").len(), 1);
    let expected = format!("{id}@example.com");
    for attempt in &offered {
        let raw = SmtpServer::file(attempt);
        let parsed = MessageParser::default()
            .parse(&raw)
            .expect("a MIME message");
        assert_eq!(
            parsed.message_id(),
            Some(expected.as_str()),
            "recognisable as a repeat"
        );
    }
    drop(server);
    db.drop_database().await;
}
on_both_engines!(
    a_host_killed_mid_smtp_send_sends_again_with_the_same_message_id,
    killed_mid_send
);
