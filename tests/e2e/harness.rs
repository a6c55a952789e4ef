//! The test harness: start the real host with the real built packs on port 0 and a fresh
//! database (a SQLite file in a temp dir, or a new database on the test PostgreSQL server),
//! and talk to it over HTTP (the request helpers are in `requests.rs`).
//!
//! A [`TestApp`] cleans up when dropped, so a failing assertion leaks nothing: the server task
//! is aborted and the PostgreSQL database dropped (the temp dir goes with it). `finish()` is the
//! graceful path: it stops the server, waits for it and checks that it stopped cleanly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use testkit::ConfigToml;
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

/// An external tool a test checks Valhalla with (a PyPI client, a browser): its path, or
/// `None` to skip the test — only outside CI: `.ci/run` sets `VALHALLA_TEST_STRICT`, and then
/// a missing tool fails the test, so CI never passes by skipping.
fn external_tool(what: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    if found.is_none() {
        assert!(
            std::env::var_os("VALHALLA_TEST_STRICT").is_none(),
            "{what} is missing (VALHALLA_TEST_STRICT is set): run .ci/run, which installs it"
        );
        eprintln!("skipped: {what} is missing (.ci/run installs it)");
    }
    found
}

/// The Python with the test clients of `.ci/requirements.txt` (`VALHALLA_TEST_PYTHON`, else
/// the venv `.ci/run` makes in `target/ci-venv`).
pub fn test_python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("VALHALLA_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(root().join("target/ci-venv/bin/python"));
    external_tool("the test Python (target/ci-venv)", &candidates)
}

/// A headless-capable Chromium (Debian's `chromium`).
pub fn chromium() -> Option<PathBuf> {
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from);
    external_tool("chromium", &candidates)
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
                let url = match admin.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("VALHALLA_TEST_POSTGRES_URL has no database part"),
                };
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("connect to test PostgreSQL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                Some(Self {
                    url,
                    pg: Some((admin, name)),
                    dir,
                })
            }
        }
    }

    /// Remove the PostgreSQL database now (the temp dir goes when `self` does).
    pub async fn drop_database(mut self) {
        self.drop_pg().await;
    }

    async fn drop_pg(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            report(
                &name,
                tokio::time::timeout(DROP_LIMIT, drop_pg(&admin, &name)).await,
            );
        }
    }
}

/// How long dropping a PostgreSQL test database may take before the test moves on.
const DROP_LIMIT: Duration = Duration::from_secs(10);

/// A test that failed (or never called `finish`) still removes its PostgreSQL database. Drop
/// cannot await, and the test's runtime may be the one unwinding, so the drop runs on a thread
/// of its own with a small runtime, and is given [`DROP_LIMIT`] at most.
impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_name = name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("drop {name}"))
            .spawn(move || {
                let done = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    // the timer is made inside the runtime, not before it
                    Ok(rt) => rt.block_on(async {
                        tokio::time::timeout(DROP_LIMIT, drop_pg(&admin, &thread_name)).await
                    }),
                    Err(e) => Ok(Err(sqlx::Error::Io(e))),
                };
                let _ = tx.send(done);
            });
        match spawned {
            Ok(_) => match rx.recv_timeout(DROP_LIMIT + Duration::from_secs(1)) {
                Ok(done) => report(&name, done),
                Err(_) => eprintln!("test database {name} left behind: its drop failed or hung"),
            },
            Err(e) => eprintln!("test database {name} left behind: {e}"),
        }
    }
}

/// Drop database `name` and the pack roles the host made for it (`vh_<hash of the name>_…`,
/// see `storage/pg_sandbox.rs`: roles belong to the cluster, not to the database).
async fn drop_pg(admin: &str, name: &str) -> Result<(), sqlx::Error> {
    use sha2::Digest;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    let prefix = format!(
        "vh\\_{}\\_",
        hex::encode(&sha2::Sha256::digest(name.as_bytes())[..4])
    );
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 || '%'")
            .bind(prefix)
            .fetch_all(&mut conn)
            .await?;
    for role in roles {
        sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await
}

fn report(name: &str, done: Result<Result<(), sqlx::Error>, tokio::time::error::Elapsed>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("test database {name} left behind: {e}"),
        Err(_) => eprintln!("test database {name} left behind: no answer within {DROP_LIMIT:?}"),
    }
}

/// The config text of a test: the given packs enabled, the test database, port 0, a short
/// deadline, authentication off (most tests are about a pack, not about access; the tests of
/// the guard chain use [`secured`]). Add to it and [`parse`] it to start a variant.
pub fn config_toml(db: &TestDb, packs: &[&str]) -> ConfigToml {
    let mut config = ConfigToml::in_workspace(&root())
        .packs_dir(&packs_dir())
        .cache_dir(&root().join("target/valhalla-test-cache"))
        .database_url(&db.url)
        .bind("127.0.0.1:0")
        .body_limit_bytes(65536)
        .shutdown_grace_seconds(5)
        .deadline_ms(500)
        .max_instances(64)
        .auth_off();
    for p in packs {
        config = config.pack(p, true);
    }
    config
}

/// `config` parsed by the host, as if read from `config.toml` in the test's temp dir.
pub fn parse(db: &TestDb, config: &ConfigToml) -> Config {
    let text = config.to_toml();
    let path = db.dir.path().join("config.toml");
    Config::parse(&text, &path)
        .unwrap_or_else(|e| panic!("test config does not parse: {e}\n{text}"))
}

/// A config for tests: [`config_toml`], parsed.
pub fn config(db: &TestDb, packs: &[&str]) -> Config {
    parse(db, &config_toml(db, packs))
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub config: Config,
    /// the guard chain's calls and reused decisions so far
    pub guard_stats: Arc<valhalla::http::guard_chain::GuardStats>,
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
        let guard_stats = app.guard_stats();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Ok(Self {
            base,
            client: reqwest::Client::new(),
            db,
            config,
            guard_stats,
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

    /// Stop gracefully (asserting a clean stop) and remove the database.
    pub async fn finish(mut self) {
        self.shutdown().await;
        self.db.drop_pg().await;
    }
}

/// Not finished (a failed assertion, an early return): abort the server; the database goes
/// with the `db` field right after. After `finish` or `stop` there is nothing left to do.
impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
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
        last = app.as_admin().get(path).expect(200).await;
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
    parse(db, &config_toml(db, packs).admin_key(ADMIN_KEY))
}

/// The harness's own promise: a test that stops half-way (an assertion failed) and drops its
/// [`TestApp`] without `finish` leaves no database, temp dir or pack role behind.
async fn dropped_without_finish(engine: Engine) {
    let Some(app) = TestApp::spawn(engine, &["system_config"]).await else {
        return;
    };
    app.post(
        "/system/config",
        &serde_json::json!({"key": "k", "value": "v"}),
    )
    .expect(200)
    .await;
    let dir = app.db.dir.path().to_path_buf();
    let pg = app.db.pg.clone();
    drop(app);
    assert!(!dir.exists(), "{} is left", dir.display());
    if let Some((admin, name)) = pg {
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + \
             (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'vh\\_' || $2 || '\\_%')",
        )
        .bind(&name)
        .bind(hex::encode(
            &<sha2::Sha256 as sha2::Digest>::digest(name.as_bytes())[..4],
        ))
        .fetch_one(&mut conn)
        .await
        .expect("count");
        assert_eq!(left, 0, "database {name} or its pack roles are left");
    }
}
crate::on_both_engines!(a_dropped_app_leaves_nothing_behind, dropped_without_finish);

/// The real `valhalla` binary as a child process, serving `config_text` (written beside the
/// test's database), for what an in-process server cannot show: a SIGKILL, after which
/// nothing of the process runs on (no graceful shutdown, no task finishing its work).
pub struct ServerProcess {
    child: std::process::Child,
    pub base: String,
}

impl ServerProcess {
    /// Start the binary and wait until it logs `ready` (at most a minute).
    pub fn start(db: &TestDb, config_text: &str) -> Self {
        Self::start_as(db, "process.toml", config_text)
    }

    /// [`Self::start`] with the config written to `file_name` beside the database (replicas
    /// started at once each need a file of their own: one being rewritten reads as empty).
    pub fn start_as(db: &TestDb, file_name: &str, config_text: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let path = db.dir.path().join(file_name);
        std::fs::write(&path, config_text).expect("write the config");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_valhalla"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("VALHALLA_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the valhalla binary");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        // The reader drains the log for the process's life (a full pipe would stop it).
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in lines.by_ref().map_while(Result::ok) {
                if std::env::var("TEST_LOG").is_ok() {
                    eprintln!("[valhalla] {line}");
                }
                if line.contains("valhalla::app: ready")
                    && let Some(at) = line.find("addr=")
                    && let Some(tx) = tx.take()
                {
                    let addr = line[at + 5..].split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Self {
                child,
                base: format!("http://{addr}"),
            },
            Err(_) => {
                let _ = child.kill();
                panic!("the server never logged `ready`");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_now();
    }
}
