//! The table sandbox attacked from inside, on both engines: the `hostile` fixture pack (owner
//! of `probe_t` only) sends escape attempts through `store` (comment and quoting differentials,
//! multi-statement strings, CTE shadowing, catalog, file and superuser functions, session
//! state, schema changes). Each is refused or reads nothing foreign, nothing foreign changes,
//! no file appears, and the server keeps serving. Also: a runaway query stops at the deadline
//! and does not hold up shutdown, and route packs never see the caller's credentials.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, secured};
use crate::on_both_engines;
use crate::requests::json;

const CLIENT_NAME: &str = "victim-client-4d1e";
const CLIENT_KEY: &str = "victim-key-0123456789abcdef-9d2c41";
const CONFIG_VALUE: &str = "s3cr3t-value";
/// Names that only a read of another pack's table, of the catalog or of the file system would
/// answer (checked in rows and columns only: a refusal may well name the table).
const CATALOG: &[&str] = &[
    "api_clients",
    "system_config",
    "valhalla_migrations",
    "key_hash",
    "passwd",
];

/// What the attacks must not reach: a client (as api_clients registered it) and a config entry.
struct Victim {
    client: Value,
    entry: Value,
}

async fn app(engine: Engine) -> Option<(TestApp, Victim)> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, &["system_config", "api_clients", "hostile"]);
    cfg.server.guard_order = vec!["api_clients".into()];
    let app = TestApp::start(db, cfg).await;
    let registered = app
        .as_admin()
        .post(
            "/system/clients",
            &json!({"name": CLIENT_NAME, "roles": ["read"], "key": CLIENT_KEY}),
        )
        .expect(201)
        .await;
    let entry = app
        .as_admin()
        .post(
            "/system/config",
            &json!({"key": "secret.token", "value": CONFIG_VALUE}),
        )
        .expect(200)
        .await;
    let client = registered["client"].clone();
    Some((app, Victim { client, entry }))
}

/// Send `sql` through the hostile pack's `store` `via` query, execute or batch.
async fn attempt(app: &TestApp, sql: &str, params: &[&str], via: &str) -> Value {
    let body = json!({"sql": sql, "params": params, "via": via});
    let answer = app.post("/hostile/sql", &body).expect(200).await;
    assert!(answer["result"].is_string(), "{sql} via {via}: {answer}");
    answer
}

/// GET `path` as the bootstrap admin: its 200 JSON.
async fn admin_get(app: &TestApp, path: &str) -> Value {
    app.as_admin().get(path).expect(200).await
}

/// The status of a GET of `path` with `key` as `X-API-Key`.
async fn status_with(app: &TestApp, path: &str, key: &str) -> u16 {
    app.as_key(key).get(path).status().await
}

/// Does any string inside `v` satisfy `f`?
fn any_string(v: &Value, f: &impl Fn(&str) -> bool) -> bool {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().any(|i| any_string(i, f)),
        Value::Object(map) => map.values().any(|i| any_string(i, f)),
        _ => false,
    }
}

/// Does any string inside `v` contain one of `secrets`?
fn leaks(v: &Value, secrets: &[&str]) -> bool {
    any_string(v, &|s| secrets.iter().any(|x| s.contains(x)))
}

/// The first column of `sql`'s rows, read straight from the database (not through the host).
async fn direct(app: &TestApp, sql: &str) -> Vec<String> {
    if app.db.url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        let rows = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        rows
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(app.db.dir.path().join("valhalla.db"))
            .read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let rows = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        rows
    }
}

/// Every schema object of the database (tables, indexes, views, triggers, functions, large
/// objects), to see that no attempt changed the schema.
async fn schema(app: &TestApp) -> Vec<String> {
    if app.db.url.starts_with("postgres") {
        direct(app, "SELECT c.relkind::text || ':' || n.nspname || '.' || c.relname FROM pg_class c \
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', \
            'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
            UNION ALL SELECT 'trigger:' || tgname::text FROM pg_trigger WHERE NOT tgisinternal \
            UNION ALL SELECT 'function:' || p.proname::text FROM pg_proc p JOIN pg_namespace n \
              ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
            UNION ALL SELECT 'schema:' || nspname::text FROM pg_namespace \
              WHERE nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%' \
            UNION ALL SELECT 'column:' || table_name::text || '.' || column_name::text \
              FROM information_schema.columns WHERE table_schema = 'public' \
            UNION ALL SELECT 'lo:' || oid::text FROM pg_largeobject_metadata ORDER BY 1").await
    } else {
        direct(
            app,
            "SELECT type || ':' || name || ':' || coalesce(sql, '') FROM sqlite_master ORDER BY 1",
        )
        .await
    }
}

/// A directory anyone may write to (the database server may run as another user), where an
/// escape would leave its files.
fn drop_dir(app: &TestApp) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = app.db.dir.path().join("drop");
    std::fs::create_dir_all(&dir).unwrap();
    let open = |mode| std::fs::Permissions::from_mode(mode);
    std::fs::set_permissions(app.db.dir.path(), open(0o711)).unwrap();
    std::fs::set_permissions(&dir, open(0o777)).unwrap();
    dir
}

/// Files in the test's temp dir and in its drop dir, besides the database's own.
fn files(app: &TestApp) -> BTreeSet<String> {
    let list = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .collect()
    };
    let mut all = list(app.db.dir.path());
    all.extend(list(&app.db.dir.path().join("drop")));
    all.into_iter()
        .filter(|n| !n.contains("valhalla.db"))
        .collect()
}

/// Session-state changes: the attacks run before and after them, so that a state one of them
/// leaves on a pooled connection meets every attack.
const SESSION: &[&str] = &[
    r#"SELECT "set_config"('search_path', 'pg_catalog', false)"#,
    "SET search_path = x",
    "SET ROLE postgres",
    "SET ROLE valhalla",
    "SET SESSION AUTHORIZATION valhalla",
    "RESET ROLE",
    "SELECT set_config('role', 'valhalla', false)",
    "SELECT set_config('statement_timeout', '0', false)",
    "BEGIN",
    "SAVEPOINT s",
    "PRAGMA writable_schema = 1",
    "PRAGMA query_only = 0",
    "PRAGMA table_info(api_clients)",
    "PRAGMA main.table_info('system_config')",
];

/// The escape attempts, `{tmp}` being the drop dir (where no file may appear).
fn attacks(tmp: &str) -> Vec<String> {
    let mut list: Vec<String> = [
        // the plain attempts
        "SELECT name, key_hash FROM api_clients",
        "SELECT key, value FROM system_config",
        "SELECT * FROM valhalla_migrations",
        "SELECT id, note FROM probe_t UNION SELECT name, key_hash FROM api_clients",
        // comment differentials
        "SELECT id, note FROM probe_t /* /* */ UNION SELECT name, key_hash FROM api_clients -- */",
        "SELECT id, note FROM probe_t /* /* */ UNION SELECT key, value FROM system_config -- */",
        "SELECT id, note FROM probe_t /* /* */ UNION SELECT name, key_hash FROM \"api_clients\" -- */",
        "SELECT id, note FROM probe_t /* /* */ UNION SELECT name, key_hash FROM main.api_clients -- */",
        "SELECT id, note FROM probe_t /* /* */ UNION SELECT name, key_hash FROM public.api_clients -- */",
        "SELECT id, note FROM probe_t /* /* */ UNION SELECT name, key_hash FROM [api_clients] -- */",
        "SELECT id, note FROM probe_t /* /* */ UNION SELECT name, key_hash FROM `api_clients` -- */",
        "SELECT id, note FROM probe_t /* /* /* */ */ UNION SELECT key, value FROM system_config -- */",
        "SELECT id, note FROM probe_t --\rUNION SELECT name, key_hash FROM api_clients",
        "SELECT id, note FROM probe_t /* \0 */ UNION SELECT name, key_hash FROM api_clients",
        r"SELECT id, note FROM probe_t WHERE note = '\' UNION SELECT name, key_hash FROM api_clients -- '",
        "SELECT id, note FROM probe_t WHERE note = $$ ' $$ UNION SELECT name, key_hash FROM api_clients --'",
        "UPDATE probe_t SET note = 'x' /* /* */ ; DELETE FROM api_clients; -- */",
        "UPDATE probe_t SET note = 'x' /* /* */ ; UPDATE system_config SET value = 'pwned'; -- */",
        "UPDATE probe_t SET note = 'x' /* /* */ ; DROP TABLE valhalla_migrations; -- */",
        // quoted and qualified names
        "SELECT name, key_hash FROM \"api_clients\"",
        "SELECT name, key_hash FROM API_Clients",
        "SELECT name, key_hash FROM main.api_clients",
        "SELECT name, key_hash FROM \"main\".\"api_clients\"",
        "SELECT name, key_hash FROM public.api_clients",
        "SELECT name, key_hash FROM [api_clients]",
        "SELECT name, key_hash FROM `api_clients`",
        "SELECT name, key_hash FROM 'api_clients'",
        "SELECT name, key_hash FROM U&\"api\\005fclients\"",
        "SELECT name, key_hash FROM temp.api_clients",
        // multi-statement strings
        "SELECT 1 FROM probe_t; DELETE FROM api_clients",
        "SELECT 1 FROM probe_t; DELETE FROM api_clients;",
        "SELECT 1 FROM probe_t; DELETE FROM api_clients; --",
        "SELECT 1 FROM probe_t; DELETE FROM api_clients /* trailing */",
        "SELECT 1 FROM probe_t;\nDELETE FROM system_config -- x",
        "SELECT 1 FROM probe_t;; DELETE FROM api_clients",
        "UPDATE probe_t SET note = 'y'; DROP TABLE api_clients",
        // CTE and subquery shadowing
        "WITH api_clients AS (SELECT * FROM api_clients) SELECT name FROM api_clients",
        "WITH api_clients AS (SELECT * FROM api_clients) SELECT name, key_hash FROM api_clients",
        "WITH probe_t AS (SELECT name AS id, key_hash AS note FROM api_clients) SELECT * FROM probe_t",
        "WITH x AS (SELECT key, value FROM system_config) SELECT * FROM x",
        "WITH system_config AS (SELECT id, note FROM probe_t) SELECT * FROM system_config \
         UNION ALL SELECT key, value FROM main.system_config",
        "WITH system_config AS (SELECT id, note FROM probe_t) SELECT * FROM system_config \
         UNION ALL SELECT key, value FROM public.system_config",
        "WITH RECURSIVE api_clients(name) AS (SELECT name FROM api_clients) SELECT * FROM api_clients",
        "SELECT id FROM probe_t WHERE id IN (SELECT name FROM api_clients)",
        "SELECT id, (SELECT group_concat(key_hash) FROM api_clients) FROM probe_t",
        "SELECT id, (SELECT string_agg(key_hash, ',') FROM api_clients) FROM probe_t",
        "INSERT INTO probe_t SELECT name, key_hash FROM api_clients",
        "INSERT INTO probe_t (id, note) SELECT key, value FROM system_config",
        "UPDATE probe_t SET note = (SELECT key_hash FROM api_clients LIMIT 1) RETURNING note",
        "INSERT INTO probe_t (id, note) VALUES ('p1', 'x') ON CONFLICT (id) DO UPDATE \
         SET note = (SELECT value FROM system_config LIMIT 1) RETURNING note",
        // catalog and table functions
        "SELECT name FROM sqlite_master",
        "SELECT sql FROM sqlite_schema",
        "SELECT * FROM sqlite_temp_master",
        "SELECT * FROM pragma_table_info('api_clients')",
        "SELECT name FROM pragma_table_list",
        "SELECT * FROM json_each((SELECT group_concat(key_hash) FROM api_clients))",
        "SELECT * FROM dbstat",
        "SELECT CAST(table_to_xml('api_clients', true, false, '') AS TEXT)",
        "SELECT CAST(table_to_xml('public.system_config', true, false, '') AS TEXT)",
        "SELECT CAST(database_to_xml(true, false, '') AS TEXT)",
        "SELECT CAST(schema_to_xml('public', true, false, '') AS TEXT)",
        "SELECT CAST(query_to_xml('select * from api_clients', true, false, '') AS TEXT)",
        "SELECT row_to_json(a)::text FROM api_clients a",
        "SELECT json_agg(s)::text FROM system_config s",
        "SELECT tablename FROM pg_tables",
        "SELECT table_name FROM information_schema.tables",
        "SELECT relname FROM pg_class",
        "SELECT query FROM pg_stat_activity WHERE usename IS DISTINCT FROM current_user",
        // file, network and superuser functions
        r#"SELECT "pg_read_file"('/etc/hostname')"#,
        "SELECT pg_catalog.pg_read_file('/etc/hostname')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('/etc')",
        "SELECT lo_import('/etc/hostname')",
        "COPY probe_t FROM '/etc/passwd'",
        "SELECT load_extension('x')",
        "SELECT readfile('/etc/hostname')",
        "SELECT readfile('/etc/passwd')",
        "CREATE EXTENSION dblink",
        "SELECT dblink_connect('host=127.0.0.1')",
        // schema and privilege changes
        "DROP TABLE api_clients",
        "DROP TABLE IF EXISTS system_config",
        "DROP TABLE probe_t",
        "DELETE FROM api_clients",
        "UPDATE system_config SET value = 'pwned'",
        "DELETE FROM valhalla_migrations",
        "ALTER TABLE probe_t RENAME TO x",
        "ALTER TABLE probe_t ADD COLUMN y TEXT",
        "CREATE TABLE t2 (x INT)",
        "CREATE TABLE t3 AS SELECT * FROM api_clients",
        "CREATE VIEW v AS SELECT * FROM api_clients",
        "CREATE INDEX probe_note ON probe_t (note)",
        "CREATE TRIGGER tr AFTER INSERT ON probe_t BEGIN DELETE FROM api_clients; END",
        "CREATE TRIGGER tr AFTER INSERT ON probe_t FOR EACH ROW \
         EXECUTE FUNCTION suppress_redundant_updates_trigger()",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "GRANT ALL ON api_clients TO PUBLIC",
        "ALTER ROLE CURRENT_USER SUPERUSER",
        "DETACH DATABASE main",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    list.extend([
        format!("ATTACH DATABASE '{tmp}/evil.db' AS evil"),
        format!("ATTACH DATABASE 'file:{tmp}/evil-uri.db?mode=rwc' AS evil"),
        format!("UPDATE probe_t SET note = 'x' /* /* */ ; ATTACH DATABASE '{tmp}/evil.db' AS evil; -- */"),
        format!("SELECT id FROM probe_t /* /* */ ; ATTACH DATABASE '{tmp}/evil.db' AS evil; -- */"),
        format!("SELECT 1 FROM probe_t; ATTACH DATABASE '{tmp}/evil.db' AS evil"),
        format!("VACUUM INTO '{tmp}/vacuum.db'"),
        format!("COPY probe_t TO PROGRAM 'touch {tmp}/pwned'"),
        format!("COPY (SELECT * FROM api_clients) TO '{tmp}/pwned.csv'"),
        format!("SELECT lo_export(lo_import('/etc/passwd'), '{tmp}/pwned.lo')"),
    ]);
    list
}

async fn hostile_sql(engine: Engine) {
    let Some((app, victim)) = app(engine).await else {
        return;
    };
    let tmp = drop_dir(&app).display().to_string();
    let key_hash = hex::encode(Sha256::digest(CLIENT_KEY));
    let secrets = [
        CLIENT_NAME,
        CLIENT_KEY,
        key_hash.as_str(),
        CONFIG_VALUE,
        "root:x:0:0",
    ];
    // a host name may be too short to search for: a row that is the whole file gives it away
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let hostname = hostname.trim();
    let is_hostname = |s: &str| !hostname.is_empty() && s.trim() == hostname;

    // the pack works at all, and a malformed body gets the usual problems
    let own = attempt(&app, "SELECT id, note FROM probe_t", &[], "query").await;
    assert_eq!(own["rows"], json!([["p1", "probe"]]), "{own}");
    let (schema_before, files_before) = (schema(&app).await, files(&app));
    let bodies = [
        ("{not json", 400),
        (r#"{"via": "query"}"#, 422),
        (r#"{"sql": "", "via": "x"}"#, 422),
    ];
    for (body, status) in bodies {
        app.post_raw("/hostile/sql", "application/json", body)
            .expect_problem(status)
            .await;
    }

    let mut allowed = Vec::new();
    let attacks = attacks(&tmp);
    let session = SESSION.iter().map(|s| s.to_string());
    for sql in attacks
        .iter()
        .cloned()
        .chain(session)
        .chain(attacks.iter().cloned())
    {
        for via in ["query", "execute", "batch"] {
            let answer = attempt(&app, &sql, &[], via).await;
            assert!(
                !leaks(&answer, &secrets),
                "{sql:?} via {via} leaked: {answer}"
            );
            let data = json!([answer["rows"], answer["columns"]]);
            assert!(
                !leaks(&data, CATALOG),
                "{sql:?} via {via} read the catalog: {answer}"
            );
            assert!(
                !any_string(&data, &is_hostname),
                "{sql:?} via {via} read a file: {answer}"
            );
            if answer["result"] == "allowed" {
                allowed.push(format!("{via}: {sql}"));
            }
        }
    }
    // an oracle with no text to leak: api_clients has a row, so an answer other than a refusal
    // or no rows tells the pack something about it
    let oracle = "SELECT id FROM probe_t WHERE EXISTS (SELECT 1 FROM api_clients)";
    let answer = attempt(&app, oracle, &[], "query").await;
    assert!(
        answer["result"] != "allowed" || answer["rows"] == json!([]),
        "{answer}"
    );
    eprintln!("allowed (so harmless) attempts: {allowed:#?}");

    // nothing foreign changed: the client (its key still works) and the config entry
    let id = victim.client["id"].as_str().unwrap();
    assert_eq!(
        admin_get(&app, &format!("/system/clients/{id}")).await,
        victim.client
    );
    assert_eq!(
        admin_get(&app, "/system/config/secret.token").await,
        victim.entry
    );
    assert_eq!(admin_get(&app, "/system/config").await["total"], 1);
    assert_eq!(
        status_with(&app, "/system/config", CLIENT_KEY).await,
        200,
        "the key works"
    );
    // probe_t keeps its row (its note may have been rewritten: that table is the pack's)
    let own = attempt(&app, "SELECT id, note FROM probe_t", &[], "query").await;
    assert_eq!(own["result"], "allowed", "{own}");
    assert_eq!(own["rows"].as_array().unwrap().len(), 1, "{own}");
    assert_eq!(own["rows"][0][0], "p1", "{own}");
    assert!(
        !leaks(&own, &secrets) && !any_string(&own, &is_hostname),
        "{own}"
    );
    assert_eq!(schema(&app).await, schema_before, "the schema is unchanged");
    assert_eq!(files(&app), files_before, "no file appeared in {tmp}");
    app.get("/hostile/headers").expect(200).await;
    app.finish().await;
}
on_both_engines!(hostile_sql_is_refused_or_reads_nothing_foreign, hostile_sql);

/// Session state a pack sets does not outlive its call: other packs and the pack's own next
/// calls see a clean connection, and its writes commit.
async fn session_state(engine: Engine) {
    let Some((app, victim)) = app(engine).await else {
        return;
    };
    let attempts = [
        r#"SELECT "set_config"('search_path', 'pg_catalog', false)"#,
        "SET search_path = x",
        "SELECT set_config('role', 'valhalla', false)",
        "SELECT set_config('default_transaction_read_only', 'on', false)",
        "BEGIN",
        "PRAGMA query_only = 1",
    ];
    let mut n = 0;
    for sql in attempts {
        // several rounds, so that the pooled connection the attempt ran on comes round again
        for round in 0..4 {
            for via in ["query", "execute"] {
                attempt(&app, sql, &[], via).await;
            }
            let after = format!("after {sql:?} (round {round})");
            assert_eq!(
                admin_get(&app, "/system/config/secret.token").await,
                victim.entry,
                "{after}"
            );
            let list = admin_get(&app, "/system/config").await;
            assert_eq!(list["items"][0]["value"], CONFIG_VALUE, "{after}: {list}");
            let own = attempt(
                &app,
                "SELECT id FROM probe_t WHERE id = $1",
                &["p1"],
                "query",
            )
            .await;
            assert_eq!(
                own,
                json!({"result": "allowed", "rows": [["p1"]], "columns": ["id"]}),
                "{after}"
            );
            n += 1;
            let note = format!("n{n}");
            let write = "UPDATE probe_t SET note = $1 WHERE id = 'p1'";
            let written = attempt(&app, write, &[&note], "execute").await;
            assert_eq!(
                written,
                json!({"result": "allowed", "affected": 1}),
                "{after}"
            );
            let committed = direct(&app, "SELECT note FROM probe_t WHERE id = 'p1'").await;
            assert_eq!(committed, [note], "{after}: the write is committed");
        }
    }
    if engine == Engine::Postgres {
        let open = "SELECT pid::text FROM pg_stat_activity WHERE datname = current_database() \
                    AND state LIKE 'idle in transaction%'";
        assert_eq!(
            direct(&app, open).await,
            Vec::<String>::new(),
            "no transaction left open"
        );
    }
    app.finish().await;
}
on_both_engines!(session_state_does_not_leak_between_calls, session_state);

async fn runaway(engine: Engine) {
    let Some(app) = TestApp::spawn(engine, &["system_config", "hostile"]).await else {
        return;
    };
    // a pack cannot switch the database's own deadline off for its later calls
    attempt(
        &app,
        "SELECT set_config('statement_timeout', '0', false)",
        &[],
        "query",
    )
    .await;
    let started = Instant::now();
    app.get("/hostile/runaway").expect_problem(503).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    // right after, reads and writes answer promptly, on this pack and on another
    let second = Duration::from_secs(1);
    let read = attempt(&app, "SELECT id FROM probe_t", &[], "query");
    let read = tokio::time::timeout(second, read)
        .await
        .expect("a read within 1 s");
    assert_eq!(read["rows"], json!([["p1"]]), "{read}");
    let write = attempt(&app, "UPDATE probe_t SET note = 'after'", &[], "execute");
    let write = tokio::time::timeout(second, write)
        .await
        .expect("a write within 1 s");
    assert_eq!(write["affected"], 1, "{write}");
    let config = tokio::time::timeout(second, app.get("/system/config")).await;
    assert_eq!(config.expect("GET /system/config within 1 s").status(), 200);

    if engine == Engine::Postgres {
        // the database is idle again: the query was cancelled, not left running
        let running = "SELECT pid::text FROM pg_stat_activity WHERE datname = current_database() \
            AND state = 'active' AND query LIKE '%RECURS' || 'IVE%' AND pid <> pg_backend_pid()";
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = direct(&app, running).await;
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still running after 2 s: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // one more runaway in flight, then stop: within shutdown_grace_seconds (5) + 3 s
    let (client, url) = (app.client.clone(), app.url("/hostile/runaway"));
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(8), app.stop()).await;
    let (db, _) = stopped.expect("the server stops within the grace period + 3 s");
    if let Ok(resp) = in_flight.await.unwrap() {
        assert_eq!(resp.status(), 503, "the in-flight runaway got its deadline");
    }
    db.drop_database().await;
}
on_both_engines!(a_runaway_query_is_stopped_at_the_deadline, runaway);

/// The credential headers are the guard's business: the route's pack never sees them.
async fn credentials(engine: Engine) {
    let Some((app, _)) = app(engine).await else {
        return;
    };
    let seen = |rb: reqwest::RequestBuilder| async move {
        let body = json(rb.header("x-other", "1").send().await.unwrap(), 200).await;
        serde_json::from_value::<Vec<String>>(body["headers"].clone()).unwrap()
    };
    let url = app.url("/hostile/headers");
    let names = seen(
        app.client
            .get(&url)
            .header("x-api-key", ADMIN_KEY)
            .header("authorization", format!("Bearer {CLIENT_KEY}"))
            .header("cookie", "a=b"),
    )
    .await;
    assert!(names.iter().any(|n| n == "x-other"), "{names:?}");
    for secret in ["x-api-key", "authorization", "cookie"] {
        assert!(
            !names.iter().any(|n| n == secret),
            "the pack saw {secret}: {names:?}"
        );
    }
    let names = seen(app.client.get(&url).bearer_auth(CLIENT_KEY)).await;
    assert!(!names.iter().any(|n| n == "authorization"), "{names:?}");

    // the api_clients guard still sees the credential: the key authenticates, a bad one does not
    assert_eq!(status_with(&app, "/system/config", CLIENT_KEY).await, 200);
    let bearer = app
        .client
        .get(app.url("/system/config"))
        .bearer_auth(CLIENT_KEY);
    assert_eq!(bearer.send().await.unwrap().status(), 200);
    assert_eq!(app.get("/system/config").await.status(), 401);
    let bad = "victim-key-but-not-the-right-one-000000";
    for path in ["/system/config", "/hostile/headers"] {
        app.as_key(bad).get(path).expect_problem(401).await;
    }
    app.finish().await;
}
on_both_engines!(route_packs_do_not_see_credentials, credentials);
