//! Micro-benchmarks of the per-request fixed cost: a fresh store + instance + call of a
//! near-empty handler, of one guard, and of a handler with one indexed read (found, and
//! missing as in the bench's uncached scenario). Needs the packs
//! built (`cargo xtask packs`); run with `cargo bench -p valhalla --bench pack_call`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use valhalla::Config;
use valhalla::runtime::bindings::{Method, Request};
use valhalla::runtime::{EpochTicker, LoadedPack, RuntimeEngine};
use valhalla::services::Services;
use valhalla::storage::Access;

fn request(path: &str, route: &str, params: Vec<(String, String)>) -> Request {
    Request {
        method: Method::Get,
        path: path.into(),
        route: route.into(),
        params,
        query: vec![],
        headers: vec![("host".into(), "bench".into())],
        body: vec![],
        request_id: "bench".into(),
        principal: None,
        client_ip: "127.0.0.1".into(),
    }
}

fn packs(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
) -> (HashMap<String, Arc<LoadedPack>>, Arc<Services>, EpochTicker) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = format!(
        "[database]\nurl = \"sqlite://{}\"\n[runtime]\npacks_dir = \"{}\"\nmigrations_dir = \"{}\"\ncache_dir = \"{}\"\n\
         [packs.faulty]\n[packs.api_clients]\n[packs.system_config]\n[packs.feature_flags]\n",
        dir.join("b.db").display(),
        root.join("target/wasm32-wasip2/pack").display(),
        root.join("migrations").display(),
        root.join("target/valhalla-test-cache").display(),
    );
    let config = Config::parse(&text, &dir.join("c.toml")).unwrap();
    rt.block_on(async {
        let engine = RuntimeEngine::new(&config.runtime).unwrap();
        let ticker = EpochTicker::start(engine.engine.clone());
        let db = valhalla::app::connect(&config).await.unwrap();
        let owned = valhalla::app::migrate(&config, &db).await.unwrap();
        db.execute(
            &valhalla::storage::Caller::host(),
            "INSERT INTO system_config (id, key, value, description, mutable, created_at, updated_at) \
             VALUES ('1', 'bench.key', 'v', NULL, TRUE, 'now', 'now')",
            &[],
        )
        .await
        .unwrap();
        let names: Vec<String> = config.enabled_packs().map(|(n, _)| n.clone()).collect();
        let sandboxes = valhalla::app::sandbox_packs(&config, &db, &owned, &names)
            .await
            .unwrap();
        let services = Arc::new(Services::new(db, None));
        let grants = valhalla::capabilities::PackGrants::parse_all(&config).unwrap();
        let loaded =
            valhalla::app::load_packs(&config, &engine, &services, &grants, &sandboxes, &names)
                .await
                .unwrap();
        (loaded.into_iter().map(|p| (p.name().to_string(), p)).collect(), services, ticker)
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (packs, services, _ticker) = packs(&rt, dir.path());

    let ok = request("/faulty/ok", "/faulty/ok", vec![]);
    let faulty = Arc::clone(&packs["faulty"]);
    c.bench_function("fresh instance + near-empty handler", |b| {
        b.to_async(&rt)
            .iter(|| async { faulty.handle(&ok).await.unwrap() })
    });

    let db = services.db.clone();
    let sql = "SELECT id, key, value, description, mutable, created_at, updated_at FROM system_config WHERE key = $1";
    let params = vec![valhalla::storage::SqlValue::Text(Some("bench.key".into()))];
    let host = valhalla::storage::Caller::host();
    c.bench_function("host store query alone (the same indexed read)", |b| {
        b.to_async(&rt)
            .iter(|| async { db.query(&host, sql, &params, Access::Read).await.unwrap() })
    });
    // The same read as the pack that owns the table: tagged SQL, its authorizer scope.
    let pack = valhalla::storage::Caller::pack(
        Arc::clone(packs["system_config"].ctx.capabilities.store.sandbox()),
        std::time::Instant::now() + std::time::Duration::from_secs(3600),
    );
    c.bench_function("pack store query alone (authorizer, tagged SQL)", |b| {
        b.to_async(&rt)
            .iter(|| async { db.query(&pack, sql, &params, Access::Read).await.unwrap() })
    });

    let guarded = request("/system/config", "", vec![]);
    let clients = Arc::clone(&packs["api_clients"]);
    c.bench_function("fresh instance + guard (no credential)", |b| {
        b.to_async(&rt)
            .iter(|| async { clients.guard(&guarded).await.unwrap() })
    });

    let flags = Arc::clone(&packs["feature_flags"]);
    let flag = request(
        "/system/features/bench_flag",
        "/system/features/{key}",
        vec![("key".into(), "bench_flag".into())],
    );
    services.cache.set(
        "feature_flags\u{1f}flag:bench_flag".into(),
        br#"{"id":"1","key":"bench_flag","enabled":true,"description":null,"group":null,"rollout_percent":100,"created_at":"now","updated_at":"now"}"#.to_vec(),
        None,
    );
    c.bench_function("fresh instance + flag lookup (host cache hit)", |b| {
        b.to_async(&rt).iter(|| async {
            let r = flags.handle(&flag).await.unwrap();
            assert_eq!(r.status, 200);
            r
        })
    });

    let get = request(
        "/system/config/bench.key",
        "/system/config/{key}",
        vec![("key".into(), "bench.key".into())],
    );
    let config = Arc::clone(&packs["system_config"]);
    c.bench_function("fresh instance + config lookup (host cache hit)", |b| {
        b.to_async(&rt).iter(|| async {
            let r = config.handle(&get).await.unwrap();
            assert_eq!(r.status, 200);
            r
        })
    });
    let cache = &services.cache;
    c.bench_function(
        "fresh instance + config lookup, cache miss (one indexed read)",
        |b| {
            b.to_async(&rt).iter(|| async {
                cache.delete("system_config\u{1f}entry:bench.key");
                let r = config.handle(&get).await.unwrap();
                assert_eq!(r.status, 200);
                r
            })
        },
    );
    // The bench's uncached scenario: missing keys are never cached, so every call reads.
    let missing = request(
        "/system/config/bench.missing",
        "/system/config/{key}",
        vec![("key".into(), "bench.missing".into())],
    );
    c.bench_function(
        "fresh instance + missing key (one indexed read, 404)",
        |b| {
            b.to_async(&rt).iter(|| async {
                let r = config.handle(&missing).await.unwrap();
                assert_eq!(r.status, 404);
                r
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
