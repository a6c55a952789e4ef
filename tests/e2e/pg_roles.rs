//! PostgreSQL: each pack's SQL runs as a login role of its own, made by the host; a host user
//! that cannot make roles stops startup with what to grant, unless the operator opts out.

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, config};

/// The test database as the superuser of the test server.
async fn admin(db: &TestDb) -> sqlx::PgPool {
    sqlx::PgPool::connect(&db.url)
        .await
        .expect("connect as admin")
}

/// `sql` through the hostile fixture pack.
async fn as_pack(app: &TestApp, sql: &str) -> Value {
    app.post("/hostile/sql", &json!({ "sql": sql }))
        .expect(200)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pack_runs_as_its_own_role_with_its_own_tables_only() {
    let Some(app) = TestApp::spawn(Engine::Postgres, &["system_config", "hostile"]).await else {
        return;
    };
    let me = as_pack(&app, "SELECT CAST(current_user AS TEXT) AS u").await;
    let role = me["rows"][0][0].as_str().expect("a role name").to_string();
    assert!(
        role.starts_with("vh_") && role.ends_with("_hostile"),
        "{me}"
    );
    let pool = admin(&app.db).await;
    let grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, privilege_type::text FROM information_schema.role_table_grants \
         WHERE grantee = $1 ORDER BY 1, 2",
    )
    .bind(&role)
    .fetch_all(&pool)
    .await
    .unwrap();
    let tables: Vec<&str> = grants.iter().map(|(t, _)| t.as_str()).collect();
    assert!(tables.iter().all(|t| *t == "probe_t"), "{grants:?}");
    assert_eq!(
        grants.len(),
        4,
        "SELECT, INSERT, UPDATE, DELETE: {grants:?}"
    );
    let (superuser, createrole): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = $1")
            .bind(&role)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!superuser && !createrole);
    pool.close().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_user_that_cannot_create_roles_stops_startup_unless_opted_out() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let user = format!("vt_plain_{}", uuid::Uuid::new_v4().simple());
    let pool = admin(&db).await;
    for sql in [
        format!("CREATE ROLE {user} LOGIN PASSWORD 'plain-password' NOCREATEROLE"),
        format!("GRANT ALL ON SCHEMA public TO {user}"),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let plain_url = {
        let (scheme, rest) = db.url.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        format!("{scheme}://{user}:plain-password@{host}")
    };
    let mut cfg = config(&db, &["system_config"]);
    cfg.database.url = plain_url.clone();
    let (db, err) = match TestApp::try_start(db, cfg.clone()).await {
        Ok(_) => panic!("started without the right to create pack roles"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(message.contains("CREATEROLE"), "{message}");
    assert!(message.contains("database.pack_roles = false"), "{message}");
    assert!(!message.contains("plain-password"), "no secret: {message}");
    cfg.database.pack_roles = false;
    let app = TestApp::start(db, cfg).await;
    app.get("/system/config").expect(200).await;
    app.finish().await;
}
