//! Secrets never leak (issue 20 item 6), on the real binary at `VALHALLA_LOG=debug`, both
//! engines: the bootstrap admin key, API keys (one created, one rotated in, the one rotated
//! out), a webhook channel's `whsec_` secret and an SMS channel's auth token are each used —
//! successes and failures alike (a wrong key, a revoked one, a receiver that fails, one that
//! cannot be reached) — and then none of them, nor their obvious encodings (the key without its
//! prefix, base64 and hex of it, the whsec key's decoded bytes as hex and base64url, the SMS
//! provider's Basic credentials), appears in the server's stderr, any answer received (problems
//! included), every page of `/system/logs`, an export of the system log in JSON and in CSV, or
//! `/metrics`. (The SMTP password's own run is `notifications_mail_process.rs`.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestDb, config_toml};
use crate::notifications_sms::{ACCOUNT, TOKEN, sms_channel};
use crate::on_both_engines;
use crate::webhook_receiver::{Receiver, Reply};

/// The real binary with `VALHALLA_LOG=debug`, its stderr kept line by line.
struct Process {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    /// every body answered so far, as text
    seen: Mutex<Vec<String>>,
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
            panic!("the server never logged `ready`: {:?}", log.lock());
        };
        Self {
            child,
            base: format!("http://{addr}"),
            log,
            client: reqwest::Client::new(),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// `method path` with `key` as `X-API-Key` (none when `None`): the status and the body
    /// (kept for the search), asserting a problem's content type on every error.
    async fn call(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, String) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.expect("an answer");
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = answer.text().await.expect("a body");
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "{path}: {text}");
        }
        self.seen.lock().expect("seen").push(text.clone());
        (status, text)
    }

    /// As the admin, expecting `status`: the JSON answered.
    async fn admin(&self, method: Method, path: &str, body: Option<&Value>, status: u16) -> Value {
        let (got, text) = self.call(Some(ADMIN_KEY), method, path, body).await;
        assert_eq!(got, status, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Poll `path` as the admin until `done` holds.
    async fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let limit = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.admin(Method::GET, path, None, 200).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < limit, "{path} never got there: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A secret and the forms it could leak in.
fn forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut out = vec![
        secret.to_string(),
        STANDARD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        hex::encode(bytes),
    ];
    // what follows a visible prefix (`vk_`, `whsec_`) is the secret part on its own
    if let Some((_, rest)) = secret.split_once('_') {
        out.push(rest.to_string());
    }
    // a whsec key's bytes, as the signer holds them
    if let Some(b64) = secret.strip_prefix("whsec_") {
        let key = STANDARD.decode(b64).expect("whsec_ is base64");
        out.extend([
            hex::encode(&key),
            URL_SAFE.encode(&key),
            STANDARD_NO_PAD.encode(&key),
        ]);
    }
    out
}

/// Export `source`'s list as `format` and answer the downloaded file.
async fn export(server: &Process, source: &str, format: &str) -> String {
    let job = server
        .admin(
            Method::POST,
            "/system/exports",
            Some(&json!({"source": source, "format": format})),
            202,
        )
        .await;
    let id = job["id"].as_str().expect("a job id").to_string();
    let path = format!("/system/exports/{id}");
    let done = server
        .until(&path, |j| {
            j["status"] != "queued" && j["status"] != "running"
        })
        .await;
    assert_eq!(done["status"], "done", "{done}");
    let (status, file) = server
        .call(
            Some(ADMIN_KEY),
            Method::GET,
            &format!("{path}/download"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{file}");
    assert!(file.len() > 50, "an export with content: {file}");
    file
}

async fn no_secret_leaks(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let rx = Receiver::start(vec![Reply::Status(500)], Reply::Status(204)).await;
    let packs = [
        "api_clients",
        "notifications",
        "system_log",
        "system_config",
        "exports",
    ];
    let mut text = config_toml(&db, &packs)
        .admin_key(ADMIN_KEY)
        .deadline_ms(5_000)
        .grant_outbound("notifications", &["http://127.0.0.1:*"])
        .grant_packs("exports", &["system_log", "system_config"])
        .grant_artefacts("exports")
        .to_toml();
    text.push_str(
        "\n[packs.notifications.settings]\njitter = 0.0\nretry_schedule_seconds = [0.2, 0.2]\n",
    );
    let server = Process::start(&db, &text);
    let (get, post) = (Method::GET, Method::POST);

    // an API key: created, used, presented wrong, rotated out (then refused), rotated in
    let made = server
        .admin(
            post.clone(),
            "/system/clients",
            Some(&json!({"name": "ci", "roles": ["read", "write"]})),
            201,
        )
        .await;
    let first = made["api_key"].as_str().expect("a key").to_string();
    let id = made["client"]["id"].as_str().expect("an id").to_string();
    let entry = json!({"key": "site.name", "value": "v"});
    let (status, _) = server
        .call(Some(&first), post.clone(), "/system/config", Some(&entry))
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .call(Some(&first), get.clone(), "/system/config", None)
        .await;
    assert_eq!(status, 200);
    let wrong = format!("{first}0");
    let (status, _) = server
        .call(Some(&wrong), get.clone(), "/system/config", None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .call(Some(&first), get.clone(), "/system/clients", None)
        .await;
    assert_eq!(status, 403, "a write key is not an admin's");
    let rotated = server
        .admin(
            post.clone(),
            &format!("/system/clients/{id}/rotate"),
            None,
            200,
        )
        .await;
    let second = rotated["api_key"].as_str().expect("a new key").to_string();
    let (status, _) = server
        .call(Some(&first), get.clone(), "/system/config", None)
        .await;
    assert_eq!(status, 401, "the rotated-out key is refused");
    let (status, _) = server
        .call(Some(&second), get.clone(), "/system/config", None)
        .await;
    assert_eq!(status, 200);
    let wrong_admin = format!("{ADMIN_KEY}x");
    let (status, _) = server
        .call(Some(&wrong_admin), get.clone(), "/system/clients", None)
        .await;
    assert_eq!(status, 401);

    // a webhook whose receiver fails once, one that cannot be reached, an SMS channel
    let hook = server
        .admin(
            post.clone(),
            "/system/notify/channels",
            Some(&json!({"name": "ops", "url": rx.url})),
            201,
        )
        .await;
    let whsec = hook["secret"].as_str().expect("a whsec").to_string();
    assert!(whsec.starts_with("whsec_"), "{hook}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let nowhere = format!("http://{}/hook", closed.local_addr().expect("addr"));
    drop(closed);
    let gone = server
        .admin(
            post.clone(),
            "/system/notify/channels",
            Some(&json!({"name": "gone", "url": nowhere})),
            201,
        )
        .await;
    let gone_secret = gone["secret"].as_str().expect("a whsec").to_string();
    server
        .admin(
            post.clone(),
            "/system/notify/channels",
            Some(&sms_channel(&rx.url)),
            201,
        )
        .await;
    let mut messages = Vec::new();
    for channel in ["ops", "gone", "pager"] {
        let body = json!({"channel": channel, "subject": "disk", "body": {"host": "db1"}});
        let queued = server
            .admin(post.clone(), "/system/notify", Some(&body), 202)
            .await;
        messages.push(queued["id"].as_str().expect("queued").to_string());
    }
    for (id, wanted) in messages.iter().zip(["delivered", "dead", "delivered"]) {
        let path = format!("/system/notify/{id}");
        server.until(&path, |m| m["status"] == wanted).await;
    }
    let deliveries = rx.deliveries();
    assert!(deliveries.len() >= 3, "the receiver was called");
    assert!(
        deliveries.iter().any(|d| d.verify(&whsec).is_ok()),
        "the webhook was signed with its secret"
    );

    // everything the secrets could have reached
    let mut haystacks = vec![
        export(&server, "system_log", "json").await,
        export(&server, "system_log", "csv").await,
        export(&server, "system_config", "csv").await,
    ];
    let mut cursor: Option<String> = None;
    let mut entries = 0;
    loop {
        let path = match &cursor {
            Some(c) => {
                let c =
                    percent_encoding::utf8_percent_encode(c, percent_encoding::NON_ALPHANUMERIC);
                format!("/system/logs?limit=50&cursor={c}")
            }
            None => "/system/logs?limit=50".to_string(),
        };
        let page = server.admin(get.clone(), &path, None, 200).await;
        entries += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert!(
        entries > 10,
        "the system log has the run in it ({entries} entries)"
    );
    let (status, metrics) = server
        .call(Some(ADMIN_KEY), get.clone(), "/metrics", None)
        .await;
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("valhalla_"), "{metrics}");
    let log = server.log.lock().expect("log").join("\n");
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert!(log.contains("notifications"), "the log saw the deliveries");
    haystacks.push(log);
    haystacks.extend(server.seen.lock().expect("seen").iter().cloned());
    let basic = format!("{ACCOUNT}:{TOKEN}");
    let secrets = [
        ADMIN_KEY,
        &first,
        &second,
        &whsec,
        &gone_secret,
        TOKEN,
        &basic,
    ];
    for secret in secrets {
        for form in forms(secret) {
            for (i, hay) in haystacks.iter().enumerate() {
                // the answers that hand a secret out once are the ones allowed to hold it
                let handed_out = [&made, &rotated, &hook, &gone]
                    .iter()
                    .any(|a| serde_json::from_str::<Value>(hay).is_ok_and(|h| &h == *a));
                assert!(
                    handed_out || !hay.contains(&form),
                    "`{form}` (a form of a secret) is in haystack {i}: {}",
                    around(hay, &form)
                );
            }
        }
    }
    drop(server);
    db.drop_database().await;
}
on_both_engines!(
    no_secret_appears_in_logs_answers_exports_or_metrics,
    no_secret_leaks
);

/// The text around `needle` in `hay`, for the message.
fn around(hay: &str, needle: &str) -> String {
    let at = hay.find(needle).unwrap_or(0);
    hay.chars()
        .skip(hay[..at].chars().count().saturating_sub(200))
        .take(400 + needle.len())
        .collect()
}
