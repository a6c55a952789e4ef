//! Replicas on one PostgreSQL (issue 19, in part): three real `valhalla serve` processes
//! started together apply the migrations once, and a pack's tick runs once per interval
//! across them, moving to another replica when its holder is killed.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{ADMIN_KEY, Engine, ServerProcess, TestDb, config_toml};

const INTERVAL_MS: u64 = 300;

/// The shared config: auth on, the faulty fixture ticking every [`INTERVAL_MS`].
fn cluster_config(db: &TestDb) -> String {
    let file = config_toml(db, &["api_clients", "system_config", "faulty"]).admin_key(ADMIN_KEY);
    format!(
        "{}\n[packs.faulty.settings]\ntick = \"count\"\ntick_interval_ms = {INTERVAL_MS}\n",
        file.to_toml()
    )
}

/// Three replicas started at once.
pub(crate) fn start_three(db: &TestDb, config: &str) -> Vec<ServerProcess> {
    std::thread::scope(|s| {
        let starting: Vec<_> = (0..3)
            .map(|i| {
                s.spawn(move || ServerProcess::start_as(db, &format!("replica-{i}.toml"), config))
            })
            .collect();
        starting
            .into_iter()
            .map(|t| t.join().expect("a replica started"))
            .collect()
    })
}

async fn ticks(client: &reqwest::Client, replica: &ServerProcess) -> Value {
    client
        .get(replica.url("/faulty/ticks"))
        .send()
        .await
        .expect("ticks")
        .json()
        .await
        .expect("JSON")
}

fn starts(report: &Value) -> Vec<i64> {
    report["starts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_migrate_once_and_tick_once_per_interval() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let config = cluster_config(&db);
    let mut replicas = start_three(&db, &config);
    let client = reqwest::Client::new();

    // the migrations ran once: one row per migration file
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("connect");
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (pack, version)) FROM valhalla_migrations")
            .fetch_one(&mut conn)
            .await
            .expect("count migrations");
    assert!(
        rows > 0 && rows == distinct,
        "{rows} rows, {distinct} distinct"
    );

    // over ~3 s, one replica ticks about once per interval; the starts never crowd
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let mut reports = Vec::new();
    for r in &replicas {
        reports.push(ticks(&client, r).await);
    }
    let total: i64 = reports.iter().filter_map(|r| r["started"].as_i64()).sum();
    let expected = 3_000 / INTERVAL_MS as i64;
    assert!(
        total >= expected / 2 && total <= expected + 2,
        "{total} ticks across the replicas in 3 s at {INTERVAL_MS} ms: {reports:?}"
    );
    let mut all: Vec<i64> = reports.iter().flat_map(starts).collect();
    all.sort_unstable();
    let closest = all
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(i64::MAX);
    assert!(
        closest >= INTERVAL_MS as i64 * 8 / 10,
        "two ticks {closest} ms apart: {all:?}"
    );
    let holder = reports
        .iter()
        .enumerate()
        .max_by_key(|(_, r)| r["started"].as_i64().unwrap_or(0))
        .map(|(i, _)| i)
        .expect("a holder");

    // kill the holder: another replica takes over within a few intervals
    let before: Vec<i64> = reports
        .iter()
        .map(|r| r["started"].as_i64().unwrap_or(0))
        .collect();
    replicas.remove(holder).kill();
    let killed_at = Instant::now();
    let took_over = loop {
        let mut moved = None;
        for (i, r) in replicas.iter().enumerate() {
            let was = before[if i >= holder { i + 1 } else { i }];
            if ticks(&client, r).await["started"].as_i64().unwrap_or(0) > was {
                moved = Some(killed_at.elapsed());
            }
        }
        if let Some(after) = moved {
            break after;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "no replica took the tick over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // the lease runs two intervals past the holder's last tick, then the next attempt takes it
    assert!(
        took_over <= Duration::from_millis(INTERVAL_MS * 4),
        "took {took_over:?} to take over"
    );
    for r in replicas {
        r.kill();
    }
    db.drop_database().await;
}

/// Whether `check` holds within the time a notification takes between replicas (polled; a
/// cached value would hold for the TTL: 30 s for flags, 60 s for keys).
pub(crate) async fn within<F: std::future::Future<Output = bool>>(check: impl Fn() -> F) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// Requests to the replicas with one API key.
pub(crate) struct As<'a> {
    pub client: &'a reqwest::Client,
    pub key: &'a str,
}

impl As<'_> {
    /// `GET path` on `replica`: status and JSON body.
    pub async fn get(&self, replica: &ServerProcess, path: &str) -> (u16, Value) {
        let req = self.client.get(replica.url(path));
        Self::answer(req.header("x-api-key", self.key)).await
    }

    /// `POST path` on `replica` with `body` (none: empty).
    pub async fn post(&self, replica: &ServerProcess, path: &str, body: Option<Value>) -> u16 {
        let mut req = self
            .client
            .post(replica.url(path))
            .header("x-api-key", self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::answer(req).await.0
    }

    async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_is_seen_by_the_others_on_their_next_request() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let packs = [
        "api_clients",
        "system_config",
        "feature_flags",
        "maintenance",
        "read_only_shield",
    ];
    let file = config_toml(&db, &packs)
        .admin_key(ADMIN_KEY)
        .grant_packs("read_only_shield", &["maintenance"])
        .to_toml();
    let replicas = start_three(&db, &file);
    let (a, others) = (&replicas[0], &replicas[1..]);
    let client = reqwest::Client::new();
    let admin = As {
        client: &client,
        key: ADMIN_KEY,
    };

    // each replica caches the entry and the flag, then A changes both
    let entry = |v: &str| Some(serde_json::json!({"key": "shared", "value": v}));
    let flag = |on: bool| Some(serde_json::json!({"key": "shared_flag", "enabled": on}));
    admin.post(a, "/system/config", entry("v1")).await;
    admin.post(a, "/system/features", flag(true)).await;
    for r in others {
        let (_, got) = admin.get(r, "/system/config/shared").await;
        assert_eq!(got["value"], "v1", "{got}");
        let (_, got) = admin.get(r, "/system/features/shared_flag").await;
        assert_eq!(got["enabled"], true, "{got}");
    }
    admin.post(a, "/system/config", entry("v2")).await;
    admin.post(a, "/system/features", flag(false)).await;
    let written = Instant::now();
    for r in others {
        let seen =
            within(|| async { admin.get(r, "/system/config/shared").await.1["value"] == "v2" })
                .await;
        assert!(seen, "a replica served its cached entry");
        let seen = within(|| async {
            admin.get(r, "/system/features/shared_flag").await.1["enabled"] == false
        })
        .await;
        assert!(seen, "a replica served its cached flag");
    }
    eprintln!("writes on A seen on B and C after {:?}", written.elapsed());

    // an API key authenticated (and cached) on B and C stops working there once A
    // deactivates its client
    let client_body = serde_json::json!({"name": "roaming", "roles": ["read"]});
    let made = client
        .post(a.url("/system/clients"))
        .header("x-api-key", ADMIN_KEY)
        .json(&client_body)
        .send()
        .await
        .expect("register");
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.expect("JSON");
    let (id, key) = (
        made["client"]["id"].as_str().expect("id"),
        made["api_key"].as_str().expect("key"),
    );
    let roaming = As {
        client: &client,
        key,
    };
    for r in others {
        assert_eq!(roaming.get(r, "/system/config/shared").await.0, 200);
    }
    let path = format!("/system/clients/{id}/deactivate");
    assert_eq!(admin.post(a, &path, None).await, 200);
    for r in others {
        let refused =
            within(|| async { roaming.get(r, "/system/config/shared").await.0 == 401 }).await;
        assert!(refused, "a replica still accepted a deactivated key");
    }

    // read-only mode switched on A refuses writes on B and C (whose shield saw `normal`)
    for r in others {
        assert_eq!(admin.post(r, "/system/config", entry("v3")).await, 200);
    }
    let path = "/system/maintenance/state/read_only";
    assert_eq!(admin.post(a, path, None).await, 200);
    for r in others {
        let refused =
            within(|| async { admin.post(r, "/system/config", entry("v4")).await == 503 }).await;
        assert!(refused, "a replica still took writes in read-only mode");
    }

    // readiness says the replica listens for invalidations
    let (_, ready) = admin.get(&replicas[1], "/system/health/ready").await;
    assert_eq!(
        ready["checks"]["cache_invalidations"]["status"], "listening",
        "{ready}"
    );
    for r in replicas {
        r.kill();
    }
    db.drop_database().await;
}

/// A replica whose invalidation listener loses its connection may have missed invalidations:
/// it reconnects, clears its cache (an entry changed behind its back is read afresh), and
/// counts the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_listener_reconnects_and_clears_its_cache() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let url = db.url.clone();
    let config = crate::harness::secured(&db, &["api_clients", "system_config"]);
    let app = crate::harness::TestApp::start(db, config).await;
    let entry = serde_json::json!({"key": "behind", "value": "cached"});
    app.as_admin()
        .post("/system/config", &entry)
        .expect(200)
        .await;
    let got = app
        .as_admin()
        .get("/system/config/behind")
        .expect(200)
        .await;
    assert_eq!(got["value"], "cached");
    // a change no replica announced (as if its notification were lost)
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::query("UPDATE system_config SET value = 'changed' WHERE key = 'behind'")
        .execute(&mut conn)
        .await
        .expect("update");
    let got = app
        .as_admin()
        .get("/system/config/behind")
        .expect(200)
        .await;
    assert_eq!(got["value"], "cached", "served from the cache until told");
    let before = {
        let s = crate::metrics::scrape(&app).await;
        crate::metrics::value(
            &s,
            "valhalla_cache_bus_events_total",
            &[("event", "disconnected")],
        )
    };
    let killed: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("find the listener");
    assert_eq!(killed.len(), 1, "one listening connection: {killed:?}");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(killed[0])
        .execute(&mut conn)
        .await
        .expect("terminate");
    let cleared = within(|| async {
        app.as_admin()
            .get("/system/config/behind")
            .expect(200)
            .await["value"]
            == "changed"
    })
    .await;
    assert!(
        cleared,
        "the cache was not cleared after the listener came back"
    );
    // (503 while reconnecting, then ready again)
    let ready = within(|| async {
        let resp = app.anon().get("/system/health/ready").send().await;
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        body["status"] == "ready" && body["checks"]["cache_invalidations"]["status"] == "listening"
    })
    .await;
    assert!(ready, "readiness never showed the listener back");
    let after = {
        let s = crate::metrics::scrape(&app).await;
        crate::metrics::value(
            &s,
            "valhalla_cache_bus_events_total",
            &[("event", "disconnected")],
        )
    };
    assert!(after >= before + 1.0, "{before} → {after}");
    app.finish().await;
}
