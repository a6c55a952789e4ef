//! Database faults: PostgreSQL restarted under load (a private cluster the test stops and
//! starts) gives 503 problem+json during the outage, never a 500 or a hang; the pools
//! reconnect and every acknowledged write is there afterwards. SQLite's `SQLITE_BUSY` under
//! concurrent writers (another process on the file) is retried with a bounded backoff;
//! a lock held past the bound is a 503, never a 500.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, secured};

/// A PostgreSQL cluster of the test's own, on a free port, that it may stop and start; its
/// data directory goes with it. Run as the `postgres` user when the test runs as root.
struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

const PASSWORD: &str = "faults-test-password";

impl PrivatePg {
    /// A running cluster, or `None` (the test skips) when no PostgreSQL binaries are here,
    /// unless `VALHALLA_TEST_STRICT` is set (then they must be).
    fn start() -> Option<Self> {
        let Some(bin) = find_bin() else {
            assert!(
                std::env::var_os("VALHALLA_TEST_STRICT").is_none(),
                "PostgreSQL binaries (/usr/lib/postgresql/*/bin) are missing and \
                 VALHALLA_TEST_STRICT is set"
            );
            eprintln!("skipped: no PostgreSQL binaries in /usr/lib/postgresql/*/bin");
            return None;
        };
        let as_postgres = is_root();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let data = std::env::temp_dir().join(format!("valhalla-faults-pg-{id}"));
        std::fs::create_dir_all(&data).expect("data dir");
        let pwfile = std::env::temp_dir().join(format!("valhalla-faults-pg-{id}.pw"));
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).expect("password file");
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&data));
            run(Command::new("chown").arg("postgres:postgres").arg(&pwfile));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = Self {
            bin,
            data,
            port,
            as_postgres,
        };
        let initdb = pg
            .tool("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args([
                "-U",
                "valhalla",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--no-sync"])
            .output();
        let _ = std::fs::remove_file(&pwfile);
        assert!(
            initdb.as_ref().is_ok_and(|o| o.status.success()),
            "initdb: {initdb:?}"
        );
        pg.up();
        Some(pg)
    }

    fn tool(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn url(&self) -> String {
        format!(
            "postgres://valhalla:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Start the server and wait until it accepts connections.
    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.data.display()
        );
        run(self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(self.data.join("server.log"))
            .args(["-w", "start"]));
    }

    /// Stop at once, as a crash would (`immediate`: no checkpoint; recovery replays the WAL).
    fn crash(&self) {
        run(self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]));
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What one write got.
struct Answer {
    key: String,
    status: u16,
    elapsed: Duration,
    retry_after: bool,
    problem: bool,
}

/// `POST /system/config` of `key`, as the admin.
async fn write(client: &reqwest::Client, base: &str, key: String) -> Answer {
    let started = Instant::now();
    let sent = client
        .post(format!("{base}/system/config"))
        .header("X-API-Key", ADMIN_KEY)
        .json(&json!({"key": key, "value": "v"}))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    let elapsed = started.elapsed();
    match sent {
        Ok(resp) => Answer {
            key,
            status: resp.status().as_u16(),
            elapsed,
            retry_after: resp.headers().contains_key("retry-after"),
            problem: resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v == "application/problem+json"),
        },
        Err(e) => panic!("POST /system/config {key}: no answer after {elapsed:?}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_no_acknowledged_write() {
    let Some(pg) = PrivatePg::start() else {
        return;
    };
    let mut db = TestDb::new(Engine::Sqlite).await.expect("a temp dir");
    db.url = pg.url();
    let mut config = secured(&db, &["system_config"]);
    config.runtime.deadline_ms = 2_000;
    config.database.acquire_timeout_ms = 500;
    let app = TestApp::start(db, config).await;
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    // 8 writers, each its own keys, one after another, until told to stop
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, base, stop) = (client.clone(), app.base.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    answers.push(write(&client, &base, format!("w{w}-{i}")).await);
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let crash = tokio::task::spawn_blocking(move || {
        pg.crash();
        std::thread::sleep(Duration::from_secs(2));
        pg.up();
        pg
    });
    let pg = crash.await.unwrap();
    // writes go on after the restart: the pools reconnect
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for w in writers {
        answers.extend(w.await.unwrap());
    }
    let acknowledged: BTreeSet<&str> = answers
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.key.as_str())
        .collect();
    let unavailable = answers.iter().filter(|a| a.status == 503).count();
    for a in &answers {
        assert!(
            matches!(a.status, 200 | 503),
            "{}: {} (a write during the outage is a 503, never a 500)",
            a.key,
            a.status
        );
        if a.status == 503 {
            assert!(
                a.problem && a.retry_after,
                "{}: a 503 problem with Retry-After",
                a.key
            );
        }
        assert!(
            a.elapsed < Duration::from_secs(5),
            "{}: answered after {:?} (deadline 2 s)",
            a.key,
            a.elapsed
        );
    }
    assert!(
        unavailable > 0,
        "the outage was seen: {} answers",
        answers.len()
    );
    // the last answers of every writer came after the restart: 200 again
    assert!(
        answers.iter().rev().take(8).any(|a| a.status == 200),
        "writes succeed again after the restart"
    );
    let listed = app
        .as_admin()
        .get("/system/config?limit=1000")
        .expect(200)
        .await;
    let mut present = BTreeSet::new();
    let mut page = listed;
    loop {
        for item in page["items"].as_array().expect("items") {
            present.insert(item["key"].as_str().unwrap_or_default().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) if !cursor.is_empty() => {
                page = app
                    .as_admin()
                    .get(&format!("/system/config?limit=1000&cursor={cursor}"))
                    .expect(200)
                    .await;
            }
            _ => break,
        }
    }
    let missing: Vec<&&str> = acknowledged
        .iter()
        .filter(|k| !present.contains(**k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
    eprintln!(
        "postgres restart: {} writes, {} acknowledged (all present), {unavailable} answered 503",
        answers.len(),
        acknowledged.len()
    );
    app.finish().await;
    drop(pg);
}

/// The SQLite file behind `db`.
fn sqlite_path(db: &TestDb) -> PathBuf {
    PathBuf::from(db.url.trim_start_matches("sqlite://"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_busy_under_concurrent_writers_is_retried_not_a_500() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let path = sqlite_path(&db);
    let mut config = secured(&db, &["system_config"]);
    config.runtime.deadline_ms = 2_000;
    let app = TestApp::start(db, config).await;
    // another process's writer on the same file: short write transactions, back to back
    let stop = Arc::new(AtomicBool::new(false));
    let (first_tx, first) = std::sync::mpsc::channel();
    let outside = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).expect("open the file");
            conn.busy_timeout(Duration::from_secs(5))
                .expect("busy timeout");
            conn.execute_batch("CREATE TABLE IF NOT EXISTS outside (n INTEGER)")
                .expect("table");
            let mut commits = 0u32;
            while !stop.load(Ordering::Relaxed) {
                conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO outside VALUES (1);")
                    .expect("outside write");
                std::thread::sleep(Duration::from_millis(5));
                conn.execute_batch("COMMIT").expect("outside commit");
                commits += 1;
                let _ = first_tx.send(());
                std::thread::sleep(Duration::from_millis(10));
            }
            commits
        })
    };
    first.recv().expect("the outside writer commits");
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    // three waves of 64 concurrent writes while the outside writer goes on
    for wave in 0..3 {
        let writes: Vec<_> = (0..64)
            .map(|i| {
                let (client, base) = (client.clone(), app.base.clone());
                tokio::spawn(async move { write(&client, &base, format!("c{wave}-{i}")).await })
            })
            .collect();
        for w in writes {
            answers.push(w.await.unwrap());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let commits = outside.join().unwrap();
    assert!(
        commits > 1,
        "the outside writer wrote meanwhile: {commits} commits"
    );
    for a in &answers {
        assert_eq!(a.status, 200, "{}: the busy database is retried", a.key);
    }
    for a in &answers {
        app.as_admin()
            .get(&format!("/system/config/{}", a.key))
            .expect(200)
            .await;
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_write_lock_held_past_the_bound_is_a_503_not_a_500() {
    let db = TestDb::new(Engine::Sqlite).await.expect("sqlite");
    let path = sqlite_path(&db);
    let mut config = secured(&db, &["system_config"]);
    config.database.busy_timeout_ms = 300;
    config.runtime.deadline_ms = 2_000;
    let app = TestApp::start(db, config).await;
    app.as_admin()
        .post("/system/config", &json!({"key": "before", "value": "v"}))
        .expect(200)
        .await;
    // another process holds the write lock for 2 s
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).expect("open the file");
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        let _ = locked_tx.send(());
        std::thread::sleep(Duration::from_secs(2));
        conn.execute_batch("COMMIT").expect("release");
    });
    locked.recv().expect("locked");
    let client = reqwest::Client::new();
    let refused = write(&client, &app.base, "during".into()).await;
    assert_eq!(
        refused.status, 503,
        "a locked database is unavailable, not an error"
    );
    assert!(
        refused.problem && refused.retry_after,
        "problem+json with Retry-After"
    );
    assert!(
        refused.elapsed >= Duration::from_millis(250)
            && refused.elapsed < Duration::from_millis(1500),
        "answered after {:?} with a 300 ms busy bound",
        refused.elapsed
    );
    holder.join().unwrap();
    let after = write(&client, &app.base, "after".into()).await;
    assert_eq!(after.status, 200);
    app.finish().await;
}
