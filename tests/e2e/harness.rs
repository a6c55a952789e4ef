//! The test harness: start the real host with the real built packs on port 0 and a fresh
//! database (a SQLite file in a temp dir, or a new database on the test PostgreSQL server),
//! and talk to it over HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use valhalla::{Application, Config, StartupError};

/// The database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn packs_dir() -> PathBuf {
    let dir = root().join("target/wasm32-wasip2/pack");
    assert!(
        dir.join("system_config.wasm").is_file(),
        "packs are not built: run `cargo xtask test` (or `cargo xtask packs` first)"
    );
    dir
}

fn init_logging() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("TEST_LOG").unwrap_or_default(),
            ))
            .with_test_writer()
            .try_init();
    }
}

/// A database for one test, removed with it.
pub struct TestDb {
    pub url: String,
    /// (admin URL, database name) of a PostgreSQL database to drop at the end
    pg: Option<(String, String)>,
    pub dir: Arc<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL is not available (the test then skips).
    pub async fn new(engine: Engine) -> Option<Self> {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        match engine {
            Engine::Sqlite => Some(Self {
                url: format!("sqlite://{}", dir.path().join("valhalla.db").display()),
                pg: None,
                dir,
            }),
            Engine::Postgres => {
                let Ok(admin) = std::env::var("VALHALLA_TEST_POSTGRES_URL") else {
                    eprintln!(
                        "skipped: VALHALLA_TEST_POSTGRES_URL is not set (cargo xtask test sets it)"
                    );
                    return None;
                };
                let name = format!("vt_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("connect to test PostgreSQL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let url = match admin.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("VALHALLA_TEST_POSTGRES_URL has no database part"),
                };
                Some(Self {
                    url,
                    pg: Some((admin, name)),
                    dir,
                })
            }
        }
    }

    pub async fn drop_database(&self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(pool) = sqlx::PgPool::connect(admin).await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }
}

/// A config for tests: the given packs enabled, the test database, port 0, short deadline.
pub fn config(db: &TestDb, packs: &[&str]) -> Config {
    let mut text = String::from(
        "[server]\nbind = \"127.0.0.1:0\"\nbody_limit_bytes = 65536\nshutdown_grace_seconds = 5\n",
    );
    text.push_str("[runtime]\ndeadline_ms = 500\nmax_instances = 64\n");
    // Most tests are about a pack, not about access: authentication is switched on (with an
    // admin key) by the tests of the guard chain.
    text.push_str("[auth]\nenabled = false\n");
    for p in packs {
        text.push_str(&format!("[packs.{p}]\nenabled = true\n"));
    }
    let path = db.dir.path().join("config.toml");
    let mut config = Config::parse(&text, &path).expect("test config parses");
    config.database.url = db.url.clone();
    config.runtime.packs_dir = packs_dir();
    config.runtime.migrations_dir = root().join("migrations");
    config.runtime.cache_dir = root().join("target/valhalla-test-cache");
    config
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StartupError>>>,
}

impl TestApp {
    /// Start the host with `config`.
    pub async fn start(db: TestDb, config: Config) -> Self {
        match Self::try_start(db, config).await {
            Ok(app) => app,
            Err((_, e)) => panic!("startup failed: {e}"),
        }
    }

    /// Start, or hand the database back with the startup error.
    pub async fn try_start(db: TestDb, config: Config) -> Result<Self, (TestDb, StartupError)> {
        init_logging();
        let app = match Application::build(config.clone()).await {
            Ok(app) => app,
            Err(e) => return Err((db, e)),
        };
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Ok(Self {
            base,
            client: reqwest::Client::new(),
            db,
            config,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// Start `packs` on a fresh database of `engine`; `None` skips a PostgreSQL test when no
    /// server is available.
    pub async fn spawn(engine: Engine, packs: &[&str]) -> Option<Self> {
        let db = TestDb::new(engine).await?;
        let config = config(&db, packs);
        Some(Self::start(db, config).await)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// Stop gracefully and wait until stopped; the database stays for a restart.
    pub async fn stop(mut self) -> (TestDb, Config) {
        self.shutdown().await;
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                pg: None,
                dir: Arc::new(tempfile::tempdir().expect("temp dir")),
            },
        );
        (db, self.config.clone())
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Stop and remove the database.
    pub async fn finish(mut self) {
        self.shutdown().await;
        self.db.drop_database().await;
    }
}

/// Read a JSON body, asserting the status.
pub async fn json(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Assert an RFC 9457 problem with `status`; answers its body.
pub async fn problem(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert_eq!(content_type, "application/problem+json", "body: {text}");
    let body: Value = serde_json::from_str(&text).expect("problem is JSON");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(body["detail"].as_str().is_some(), "{body}");
    assert!(!request_id.is_empty(), "no X-Request-ID");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    body
}

/// `test_on_both!(name, |engine| async { ... })`: one test per engine.
#[macro_export]
macro_rules! on_both_engines {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::harness::Engine::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::harness::Engine::Postgres).await;
            }
        }
    };
}

/// Allow `pack` to reach `pattern` (e.g. `http://localhost:*`).
pub fn grant(config: &mut Config, pack: &str, pattern: &str) {
    config
        .packs
        .get_mut(pack)
        .expect("pack is in the config")
        .grants
        .outbound
        .push(pattern.to_string());
}

/// Poll `path` (as the admin, when authentication is on) until `done` accepts its JSON (the
/// system log is written asynchronously).
pub async fn eventually(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let resp = app
            .client
            .get(app.url(path))
            .header("x-api-key", ADMIN_KEY)
            .send()
            .await
            .expect("GET");
        last = json(resp, 200).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never satisfied the condition; last answer: {last}");
}

/// The bootstrap admin key of [`secured`] configs.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

/// A config with authentication on, the bootstrap admin key set, and `packs` enabled.
pub fn secured(db: &TestDb, packs: &[&str]) -> Config {
    let mut cfg = config(db, packs);
    cfg.auth.enabled = true;
    cfg.auth.admin_key = Some(valhalla::config::Secret::new(ADMIN_KEY));
    cfg
}

impl TestApp {
    /// A request with `key` as `X-API-Key`.
    pub fn with_key(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("x-api-key", key)
    }

    /// A request as the bootstrap admin.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.with_key(method, path, ADMIN_KEY)
    }
}
