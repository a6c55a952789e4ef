//! security_dashboard (pack TT) end to end on both engines: with every source pack, the counts
//! of security_policy, security_actions and honeypots and their incidents merged newest first;
//! with each source pack disabled in turn (or not granted), still 200 with that section
//! `{"available": false, "error": …}` and the others whole; admins only.
//!
//! A client bound to 127.0.0.4 is refused by a blocklist rule (a blocked request); one bound to
//! 127.0.0.5 hits a decoy (a honeypot hit); an action blocking 198.51.100.20 is approved by a
//! second admin and executed (an executed action).

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, TestDb, secured};
use crate::on_both_engines;

const DASHBOARD: &str = "/system/security/dashboard";
const ACTIONS: &str = "/system/security/actions";
const SOURCES: [&str; 3] = ["security_policy", "security_actions", "honeypots"];
const PACKS: [&str; 5] = [
    "api_clients",
    "security_policy",
    "security_actions",
    "honeypots",
    "security_dashboard",
];

/// What to take away from the dashboard's setup.
#[derive(Clone, Copy, PartialEq)]
enum Without {
    Nothing,
    /// this source pack disabled
    Disabled(&'static str),
    /// this source pack loaded but not in the dashboard's grants
    Ungranted(&'static str),
}

/// The security packs, authentication on; the grants each needs.
async fn start(engine: Engine, without: Without) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let mut cfg = secured(&db, &PACKS);
    cfg.runtime.deadline_ms = 5_000;
    let mut grant = |pack: &str, targets: &[&str]| {
        let pack = cfg.packs.get_mut(pack).expect("pack is loaded");
        pack.grants.packs = targets.iter().map(|t| t.to_string()).collect();
    };
    grant("honeypots", &["security_policy"]);
    grant("security_actions", &["security_policy", "api_clients"]);
    let granted: Vec<&str> = SOURCES
        .into_iter()
        .filter(|s| without != Without::Ungranted(s))
        .collect();
    grant("security_dashboard", &granted);
    // loopback is never blocked by default: the test's other loopback addresses must be
    let operator = toml::Value::Array(vec![toml::Value::String("127.0.0.1".into())]);
    let policy = cfg
        .packs
        .get_mut("security_policy")
        .expect("security_policy");
    policy.settings.insert("never_block".into(), operator);
    if let Without::Disabled(pack) = without {
        cfg.packs.get_mut(pack).expect("pack is loaded").enabled = false;
    }
    Some(TestApp::start(db, cfg).await)
}

fn bound(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("a client bound to a loopback address")
}

async fn client_key(app: &TestApp, name: &str, roles: &[&str]) -> String {
    app.register_client(name, roles).await.key
}

/// One of each incident, and a pending action, through the source packs' own APIs.
async fn incidents(app: &TestApp) {
    let admin = app.as_admin();
    admin
        .post("/system/security/policies", &json!({"name": "scanners"}))
        .expect(201)
        .await;
    admin
        .post(
            "/system/security/blocklist",
            &json!({"rule_type": "ip", "value": "127.0.0.4", "reason": "scanner"}),
        )
        .expect(201)
        .await;
    app.anon()
        .via(&bound(4))
        .get("/anything")
        .expect_problem(403)
        .await;
    admin
        .post(
            "/system/security/honeypots",
            &json!({"name": "wp", "path": "/wp-login.php"}),
        )
        .expect(201)
        .await;
    app.anon()
        .via(&bound(5))
        .get("/wp-login.php")
        .expect_problem(404)
        .await;
    let approver = client_key(app, "second-admin", &["admin"]).await;
    let block = json!({"action_type": "block_ip", "reason": "port scan",
                       "params": {"ip": "198.51.100.20", "duration": "1h"}});
    let action = admin.post(ACTIONS, &block).expect(201).await;
    let id = action["id"].as_str().expect("an id");
    app.as_key(&approver)
        .post_empty(&format!("{ACTIONS}/{id}/approve"))
        .expect(200)
        .await;
    let done = admin
        .post_empty(&format!("{ACTIONS}/{id}/execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    let pending = json!({"action_type": "unblock_ip", "reason": "false positive",
                         "params": {"ip": "198.51.100.21"}});
    admin.post(ACTIONS, &pending).expect(201).await;
}

fn kinds(dashboard: &Value) -> Vec<&str> {
    dashboard["recent_incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect()
}

async fn everything(engine: Engine) {
    let Some(app) = start(engine, Without::Nothing).await else {
        return;
    };
    let empty = app.as_admin().get(DASHBOARD).expect(200).await;
    assert_eq!(empty["policies"]["available"], true, "{empty}");
    assert_eq!(empty["actions"]["pending"], 0, "{empty}");
    assert_eq!(empty["honeypots"]["hits_last_24h"], 0, "{empty}");
    assert_eq!(empty["recent_incidents"], json!([]));

    incidents(&app).await;
    let d = app.as_admin().get(DASHBOARD).expect(200).await;
    assert!(
        d["generated_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{d}"
    );
    let policies = &d["policies"];
    assert_eq!(policies["available"], true, "{d}");
    assert!(policies.get("error").is_none(), "{d}");
    assert_eq!(
        (&policies["policies"], &policies["policies_enabled"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(
        policies["rules_active"], 2,
        "127.0.0.4 and the action's rule: {d}"
    );
    assert_eq!(policies["blocked_last_24h"], 1, "{d}");
    let actions = &d["actions"];
    assert_eq!(actions["available"], true);
    assert_eq!(
        (
            &actions["pending"],
            &actions["approved"],
            &actions["executed"]
        ),
        (&json!(1), &json!(0), &json!(1)),
        "{d}"
    );
    let honeypots = &d["honeypots"];
    assert_eq!(honeypots["available"], true);
    assert_eq!(
        (&honeypots["hits_last_24h"], &honeypots["honeypots_enabled"]),
        (&json!(1), &json!(1))
    );

    // the incidents, newest first: the block, the decoy hit, the executed action
    assert_eq!(
        kinds(&d),
        ["action_executed", "honeypot_hit", "blocked_request"],
        "{d}"
    );
    let incidents = d["recent_incidents"].as_array().unwrap();
    let times: Vec<&str> = incidents.iter().filter_map(|i| i["at"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    assert_eq!(incidents[0]["source_ip"], "198.51.100.20");
    assert!(
        incidents[0]["summary"]
            .as_str()
            .unwrap()
            .contains("block_ip"),
        "{d}"
    );
    assert_eq!(incidents[1]["source_ip"], "127.0.0.5");
    assert!(
        incidents[1]["summary"]
            .as_str()
            .unwrap()
            .contains("/wp-login.php"),
        "{d}"
    );
    assert_eq!(incidents[2]["source_ip"], "127.0.0.4");
    assert!(incidents.iter().all(|i| i["id"].as_str().is_some()), "{d}");
    let one = app
        .as_admin()
        .get(&format!("{DASHBOARD}?limit=1"))
        .expect(200)
        .await;
    assert_eq!(kinds(&one), ["action_executed"]);
    for bad in ["?limit=0", "?limit=101", "?limit=x"] {
        app.as_admin()
            .get(&format!("{DASHBOARD}{bad}"))
            .expect_problem(422)
            .await;
    }

    // admins only
    let reader = client_key(&app, "reader", &["read"]).await;
    app.as_key(&reader).get(DASHBOARD).expect_problem(403).await;
    let writer = client_key(&app, "writer", &["write"]).await;
    app.as_key(&writer).get(DASHBOARD).expect_problem(403).await;
    app.get(DASHBOARD).expect_problem(401).await;
    app.finish().await;
}
on_both_engines!(dashboard_with_every_source, everything);

/// The dashboard's section of each source pack.
fn section_of(pack: &str) -> &'static str {
    match pack {
        "security_policy" => "policies",
        "security_actions" => "actions",
        _ => "honeypots",
    }
}

/// Each source taken away in turn (disabled, or not granted): still 200, that section
/// unavailable and why, the rest whole.
async fn each_source_missing(engine: Engine) {
    for source in SOURCES {
        for without in [Without::Disabled(source), Without::Ungranted(source)] {
            let Some(app) = start(engine, without).await else {
                return;
            };
            let d = app.as_admin().get(DASHBOARD).expect(200).await;
            let gone = &d[section_of(source)];
            assert_eq!(gone["available"], false, "{source}: {d}");
            let error = gone["error"].as_str().unwrap_or("");
            assert!(error.contains(source), "{source}: {d}");
            if let Without::Ungranted(_) = without {
                assert!(error.contains("grants.packs"), "{source}: {error}");
            } else {
                assert!(error.contains("not available"), "{source}: {error}");
            }
            let keys: Vec<&String> = gone.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["available", "error"], "{source}: {gone}");
            for other in SOURCES.into_iter().filter(|s| *s != source) {
                let section = &d[section_of(other)];
                assert_eq!(section["available"], true, "{other} without {source}: {d}");
                assert!(section.get("error").is_none(), "{other}: {d}");
            }
            assert!(d["recent_incidents"].is_array(), "{d}");
            app.finish().await;
        }
    }
}
on_both_engines!(
    dashboard_shows_a_missing_source_as_unavailable,
    each_source_missing
);
