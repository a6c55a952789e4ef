//! route_index (pack TY): the live route table over HTTP.

use crate::harness::{Engine, TestApp, TestDb, config};
use crate::on_both_engines;

async fn lists(engine: Engine) {
    let Some(app) =
        TestApp::spawn(engine, &["route_index", "system_config", "feature_flags"]).await
    else {
        return;
    };
    // seed: curl /debug/routes/ | jq .total → a number > 0
    let index = app.get("/debug/routes/").expect(200).await;
    let routes = index["routes"].as_array().unwrap();
    assert_eq!(index["total"], routes.len());
    assert!(!routes.is_empty());
    let keys: Vec<(String, String)> = routes
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["methods"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by path, then method");
    for r in routes {
        for field in ["path", "summary", "pack", "access"] {
            assert!(r[field].is_string(), "{field} in {r}");
        }
        let method = r["methods"][0].as_str().unwrap();
        assert!(!matches!(method, "HEAD" | "OPTIONS"), "{r}");
    }
    let find = |path: &str, method: &str| {
        routes
            .iter()
            .find(|r| r["path"] == path && r["methods"][0] == method)
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path} missing"))
    };
    let r = find("/system/config/{key}", "DELETE");
    assert_eq!(r["pack"], "system_config");
    assert_eq!(r["access"], "write");
    assert_eq!(
        find("/system/features/{key}/evaluate", "GET")["pack"],
        "feature_flags"
    );
    assert_eq!(find("/system/health/live", "GET")["pack"], "host");
    assert_eq!(find("/system/health/ready", "GET")["access"], "public");
    assert_eq!(find("/debug/routes", "GET")["pack"], "route_index");
    app.finish().await;
}

async fn disabled(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut cfg = config(&db, &["route_index", "system_config", "feature_flags"]);
    cfg.packs.get_mut("feature_flags").unwrap().enabled = false;
    let app = TestApp::start(db, cfg).await;
    let index = app.get("/debug/routes").expect(200).await;
    let packs: Vec<&str> = index["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pack"].as_str().unwrap())
        .collect();
    assert!(!packs.contains(&"feature_flags"), "{packs:?}");
    assert!(packs.contains(&"system_config"));
    app.finish().await;
}

on_both_engines!(lists_every_route_sorted_without_head_or_options, lists);
on_both_engines!(a_disabled_pack_disappears_from_the_index, disabled);
