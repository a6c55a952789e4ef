//! security_actions (pack TR) end to end, on both engines, with authentication on: requesting,
//! listing and reading actions; their validation; approvals by other admins only, one each;
//! rejection; changes withdrawing approvals; execution exactly once (two admins pressing
//! execute together: one 200, one 409) in the owning pack (api_clients, maintenance,
//! security_policy), ending `executed` or `failed` with the pack's problem; expiry when read
//! and by the scheduled tick; the audit trail.
//!
//! The bootstrap admin requests; the approvers are admin API clients registered through
//! api_clients. `server.trusted_proxies` trusts 127.0.0.1, so a test request may say where it
//! comes from with `X-Forwarded-For`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Engine, TestApp, TestDb, config_toml, eventually, parse};
use crate::on_both_engines;

const ACTIONS: &str = "/system/security/actions";
const PACKS: &[&str] = &[
    "api_clients",
    "security_policy",
    "security_actions",
    "maintenance",
    "system_log",
];
/// The bootstrap admin's principal id: the requester of most actions here.
const BOOTSTRAP: &str = "bootstrap-admin";

/// The packs with authentication on, security_actions granted its targets and given
/// `settings`.
async fn app_with(engine: Engine, settings: &[(&str, i64)]) -> Option<TestApp> {
    let db = TestDb::new(engine).await?;
    let toml = config_toml(&db, PACKS)
        .admin_key(ADMIN_KEY)
        .guard_order(&["api_clients", "security_policy"])
        .grant_packs(
            "security_actions",
            &["security_policy", "api_clients", "maintenance"],
        )
        .grant_packs("security_policy", &["api_clients"]);
    let mut cfg = parse(&db, &toml);
    // an execute makes a few statements and a call into another pack
    cfg.runtime.deadline_ms = 5_000;
    cfg.server.trusted_proxies = vec!["127.0.0.1".into()];
    let pack = cfg
        .packs
        .get_mut("security_actions")
        .expect("in the config");
    for (name, value) in settings {
        pack.settings
            .insert((*name).into(), toml::Value::Integer(*value));
    }
    Some(TestApp::start(db, cfg).await)
}

async fn app(engine: Engine) -> Option<TestApp> {
    app_with(engine, &[]).await
}

/// Register an API client with `roles`; answers (its id, its key).
async fn client(app: &TestApp, name: &str, roles: &[&str]) -> (String, String) {
    let c = app.register_client(name, roles).await;
    (c.id, c.key)
}

/// Two more admins (their keys), to approve what the bootstrap admin requests.
async fn approvers(app: &TestApp) -> (String, String) {
    let (_, b) = client(app, "approver-b", &["admin"]).await;
    let (_, c) = client(app, "approver-c", &["admin"]).await;
    (b, c)
}

/// The bootstrap admin requests an action; answers it.
async fn request(app: &TestApp, body: Value) -> Value {
    app.as_admin().post(ACTIONS, &body).expect(201).await
}

fn id(action: &Value) -> String {
    action["id"].as_str().unwrap().to_string()
}

fn path(action: &Value, verb: &str) -> String {
    format!("{ACTIONS}/{}/{verb}", action["id"].as_str().unwrap())
}

fn detail(problem: &Value) -> &str {
    problem["detail"].as_str().unwrap_or_default()
}

/// `action` approved by `key` (and answered).
async fn approve(app: &TestApp, key: &str, action: &Value) -> Value {
    app.as_key(key)
        .post(&path(action, "approve"), &json!({}))
        .expect(200)
        .await
}

async fn requests_and_reads(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (_, writer) = client(&app, "writer", &["read", "write"]).await;
    let (_, reader) = client(&app, "reader", &["read"]).await;

    let created = request(
        &app,
        json!({"action_type": "block_ip", "params": {"ip": "::ffff:198.51.100.7", "duration": "4h",
               "severity": "high"}, "reason": "credential stuffing"}),
    )
    .await;
    assert_eq!(created["action_type"], "block_ip");
    assert_eq!(
        created["params"],
        json!({"ip": "198.51.100.7", "duration": "4h", "severity": "high"}),
        "params are stored canonical"
    );
    assert_eq!(created["reason"], "credential stuffing");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["required_approvals"], 1, "the default");
    assert_eq!(created["approvals"], json!([]));
    assert_eq!(created["requested_by"], BOOTSTRAP);
    assert_eq!(created["requested_by_name"], "bootstrap admin");
    for empty in [
        "rejected_by",
        "rejection_reason",
        "executed_at",
        "executed_by",
        "result",
        "last_error",
    ] {
        assert_eq!(created[empty], Value::Null, "{empty}: {created}");
    }
    assert_eq!(id(&created).len(), 36, "a UUID");
    assert_eq!(created["created_at"], created["updated_at"]);
    assert!(created["expires_at"].as_str().unwrap() > created["created_at"].as_str().unwrap());

    // a write client requests; a read client reads and lists, but may not request
    let by_writer = app
        .as_key(&writer)
        .post(
            ACTIONS,
            &json!({"action_type": "set_maintenance", "params": {"mode": "read_only"},
                    "reason": "database failover", "required_approvals": 2}),
        )
        .expect(201)
        .await;
    assert_eq!(by_writer["required_approvals"], 2);
    assert!(
        by_writer["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("client:")
    );
    assert_eq!(by_writer["requested_by_name"], "writer");
    let third = request(
        &app,
        json!({"action_type": "deactivate_client", "params": {"client_id": "client:abc"},
               "reason": "leaked key"}),
    )
    .await;
    assert_eq!(third["params"], json!({"client_id": "abc"}));
    app.as_key(&reader)
        .post(
            ACTIONS,
            &json!({"action_type": "unblock_ip", "params": {"ip": "10.0.0.1"}, "reason": "x"}),
        )
        .expect_problem(403)
        .await;

    let got = app
        .as_key(&reader)
        .get(&format!("{ACTIONS}/{}", id(&created)))
        .expect(200)
        .await;
    assert_eq!(got, created);
    let all = app.as_key(&reader).get(ACTIONS).expect(200).await;
    assert_eq!(all["total"], 3);
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let newest_first = [
        third["id"].as_str(),
        by_writer["id"].as_str(),
        created["id"].as_str(),
    ];
    assert_eq!(ids, newest_first.map(Option::unwrap), "newest first");
    let filtered = app
        .as_admin()
        .get(&format!(
            "{ACTIONS}?action_type=set_maintenance&status=pending"
        ))
        .expect(200)
        .await;
    assert_eq!(filtered["total"], 1);
    assert_eq!(filtered["items"][0]["id"], by_writer["id"]);
    let none = app
        .as_admin()
        .get(&format!("{ACTIONS}?status=executed"))
        .expect(200)
        .await;
    assert_eq!(none, json!({"total": 0, "items": []}));
    let page = app
        .as_admin()
        .get(&format!("{ACTIONS}?limit=1&offset=1"))
        .expect(200)
        .await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"][0]["id"], by_writer["id"]);
    app.anon().get(ACTIONS).expect_problem(401).await;
    app.finish().await;
}
on_both_engines!(requests_and_reads_answer_actions, requests_and_reads);

/// The fields a 422 to this request names, in order.
async fn invalid_fields(app: &TestApp, body: Value) -> Vec<String> {
    let p = app
        .as_admin()
        .post(ACTIONS, &body)
        .expect_problem(422)
        .await;
    let errors = p["errors"].as_array().unwrap().iter();
    errors
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

async fn validation(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let invalid = |body: Value| invalid_fields(&app, body);
    let fields = invalid(json!({"action_type": "reboot", "params": {}, "reason": "r"})).await;
    assert_eq!(fields, ["action_type"]);
    let fields = invalid(
        json!({"action_type": "block_ip", "params": {"ip": "10.0.0.256"},
                                "reason": "r"}),
    )
    .await;
    assert_eq!(fields, ["params.ip"]);
    let fields = invalid(json!({"action_type": "block_ip", "params": {}, "reason": "r"})).await;
    assert_eq!(fields, ["params.ip"]);
    let fields = invalid(json!({"action_type": "block_ip",
                                "params": {"ip": "10.0.0.0/8", "duration": "soon"},
                                "reason": "", "required_approvals": 11}))
    .await;
    assert_eq!(fields, ["reason", "required_approvals", "params.duration"]);
    let fields = invalid(json!({"action_type": "deactivate_client",
                                "params": {"client_id": "a/../b"}, "reason": "r"}))
    .await;
    assert_eq!(fields, ["params.client_id"]);
    let fields = invalid(json!({"action_type": "set_maintenance",
                                "params": {"mode": "off", "extra": 1}, "reason": "r"}))
    .await;
    assert_eq!(fields, ["params.extra"]);
    let fields = invalid(json!({"action_type": "unblock_ip", "reason": "r"})).await;
    assert_eq!(fields, ["params"]);
    app.as_admin()
        .get(&format!("{ACTIONS}?status=done"))
        .expect_problem(422)
        .await;

    let unknown = format!("{ACTIONS}/0190aaaa-0000-7000-8000-000000000000");
    let p = app.as_admin().get(&unknown).expect_problem(404).await;
    assert!(detail(&p).contains("no security action"), "{p}");
    for verb in ["approve", "reject", "execute"] {
        app.as_admin()
            .post_empty(&format!("{unknown}/{verb}"))
            .expect_problem(404)
            .await;
    }
    app.as_admin()
        .patch(&unknown, &json!({"reason": "r"}))
        .expect_problem(404)
        .await;

    // approving, rejecting and executing are for admins
    let action = request(
        &app,
        json!({"action_type": "set_maintenance", "params": {"mode": "normal"}, "reason": "r"}),
    )
    .await;
    let (_, writer) = client(&app, "writer", &["write"]).await;
    let (_, reader) = client(&app, "reader", &["read"]).await;
    for key in [&writer, &reader] {
        for verb in ["approve", "reject", "execute"] {
            app.as_key(key)
                .post_empty(&path(&action, verb))
                .expect_problem(403)
                .await;
        }
    }
    let (b, _) = approvers(&app).await;
    app.as_key(&b)
        .post(&path(&action, "approve"), &json!({"comment": 7}))
        .expect_problem(422)
        .await;
    let still = app
        .as_admin()
        .get(&format!("{ACTIONS}/{}", id(&action)))
        .expect(200)
        .await;
    assert_eq!(still["status"], "pending");
    app.finish().await;
}
on_both_engines!(invalid_requests_name_their_field, validation);

async fn approvals(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, c) = approvers(&app).await;
    let action = request(
        &app,
        json!({"action_type": "unblock_ip", "params": {"ip": "192.0.2.1"}, "reason": "false positive",
               "required_approvals": 2}),
    )
    .await;
    let p = app
        .as_admin()
        .post_empty(&path(&action, "approve"))
        .expect_problem(403)
        .await;
    assert!(detail(&p).contains("requester cannot approve"), "{p}");

    let once = app
        .as_key(&b)
        .post(
            &path(&action, "approve"),
            &json!({"comment": "checked the logs"}),
        )
        .expect(200)
        .await;
    assert_eq!(once["status"], "pending", "one of two approvals");
    assert_eq!(once["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(once["approvals"][0]["name"], "approver-b");
    assert_eq!(once["approvals"][0]["comment"], "checked the logs");
    assert!(
        once["approvals"][0]["principal"]
            .as_str()
            .unwrap()
            .starts_with("client:")
    );
    assert!(once["approvals"][0]["at"].is_string());
    let p = app
        .as_key(&b)
        .post_empty(&path(&action, "approve"))
        .expect_problem(409)
        .await;
    assert!(detail(&p).contains("already approved"), "{p}");

    let twice = app
        .as_key(&c)
        .post_empty(&path(&action, "approve"))
        .expect(200)
        .await;
    assert_eq!(twice["status"], "approved");
    assert_eq!(twice["approvals"].as_array().unwrap().len(), 2);
    let (_, d) = client(&app, "approver-d", &["admin"]).await;
    let p = app
        .as_key(&d)
        .post_empty(&path(&action, "approve"))
        .expect_problem(409)
        .await;
    assert_eq!(
        detail(&p),
        "the action is approved; only a pending action can be approved"
    );
    app.finish().await;
}
on_both_engines!(approvals_come_from_other_admins_once_each, approvals);

async fn deactivate_client(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, _) = approvers(&app).await;
    let (leaked_id, leaked_key) = client(&app, "leaky", &["read"]).await;
    app.as_key(&leaked_key).get(ACTIONS).expect(200).await;
    let action = request(
        &app,
        json!({"action_type": "deactivate_client", "params": {"client_id": leaked_id},
               "reason": "its key was pasted in a ticket"}),
    )
    .await;
    let p = app
        .as_admin()
        .post_empty(&path(&action, "execute"))
        .expect_problem(409)
        .await;
    assert_eq!(
        detail(&p),
        "the action is pending; only an approved action can be executed"
    );
    assert_eq!(approve(&app, &b, &action).await["status"], "approved");

    // the requester may execute what others approved
    let done = app
        .as_admin()
        .post_empty(&path(&action, "execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    assert_eq!(done["executed_by"], BOOTSTRAP);
    assert!(done["executed_at"].is_string());
    assert_eq!(done["last_error"], Value::Null);
    assert_eq!(done["result_status"], 200);
    assert_eq!(
        done["result"]["id"],
        leaked_id.as_str(),
        "api_clients' answer"
    );
    assert_eq!(done["result"]["active"], false);
    app.as_key(&leaked_key)
        .get(ACTIONS)
        .expect_problem(401)
        .await;
    let p = app
        .as_admin()
        .post_empty(&path(&action, "execute"))
        .expect_problem(409)
        .await;
    assert_eq!(
        detail(&p),
        "the action is executed; only an approved action can be executed"
    );

    // and back: activate_client
    let back = request(
        &app,
        json!({"action_type": "activate_client", "params": {"client_id": leaked_id},
               "reason": "key rotated by its owner"}),
    )
    .await;
    approve(&app, &b, &back).await;
    let done = app
        .as_key(&b)
        .post_empty(&path(&back, "execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    assert!(done["executed_by"].as_str().unwrap().starts_with("client:"));
    app.as_key(&leaked_key).get(ACTIONS).expect(200).await;

    // every transition is in the audit trail, with before and after
    let target = format!("security_actions/{}", id(&action));
    let logs = "/system/logs?category=audit&source=security_actions&limit=100";
    let trail = eventually(&app, logs, |v| {
        let n = v["items"].as_array().unwrap().iter();
        n.filter(|e| e["context"]["target"] == target.as_str())
            .count()
            >= 4
    })
    .await;
    let mut steps: Vec<(String, Value, Value)> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["context"]["target"] == target.as_str())
        .map(|e| {
            let c = &e["context"];
            let status = |side: &str| c[side]["status"].clone();
            (
                c["action"].as_str().unwrap().to_string(),
                status("before"),
                status("after"),
            )
        })
        .collect();
    // in any order: events of one millisecond are not ordered by the log
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    let want = [
        ("security_action.create", Value::Null, json!("pending")),
        (
            "security_action.approve",
            json!("pending"),
            json!("approved"),
        ),
        (
            "security_action.execute",
            json!("approved"),
            json!("executing"),
        ),
        (
            "security_action.executed",
            json!("executing"),
            json!("executed"),
        ),
    ];
    let mut want: Vec<(String, Value, Value)> = want
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b, c))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(steps, want);
    app.finish().await;
}
on_both_engines!(deactivate_client_runs_in_api_clients, deactivate_client);

async fn set_maintenance(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, _) = approvers(&app).await;
    let action = request(
        &app,
        json!({"action_type": "set_maintenance",
               "params": {"mode": "read_only", "reason": "storage migration"},
               "reason": "planned change CHG-42"}),
    )
    .await;
    approve(&app, &b, &action).await;
    let done = app
        .as_admin()
        .post_empty(&path(&action, "execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    assert_eq!(done["result"]["mode"], "read_only");
    let state = app.get("/system/maintenance/state").expect(200).await;
    assert_eq!(state["mode"], "read_only");
    assert_eq!(state["reason"], "storage migration");
    assert_eq!(state["changed_by"], BOOTSTRAP, "the executing admin");
    app.finish().await;
}
on_both_engines!(set_maintenance_runs_in_maintenance, set_maintenance);

async fn failing(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, _) = approvers(&app).await;
    let action = request(
        &app,
        json!({"action_type": "deactivate_client", "params": {"client_id": "no-such-client"},
               "reason": "typo"}),
    )
    .await;
    approve(&app, &b, &action).await;
    let failed = app
        .as_admin()
        .post_empty(&path(&action, "execute"))
        .expect(200)
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["last_error"], "no client `no-such-client`");
    assert_eq!(failed["result_status"], 404);
    assert_eq!(failed["result"]["status"], 404, "api_clients' problem");
    assert_eq!(failed["executed_at"], Value::Null);
    assert_eq!(failed["executed_by"], BOOTSTRAP);
    let got = app
        .as_admin()
        .get(&format!("{ACTIONS}/{}", id(&action)))
        .expect(200)
        .await;
    assert_eq!(got, failed);
    let p = app
        .as_admin()
        .post_empty(&path(&action, "execute"))
        .expect_problem(409)
        .await;
    assert_eq!(
        detail(&p),
        "the action is failed; only an approved action can be executed"
    );
    app.finish().await;
}
on_both_engines!(a_failing_execution_ends_failed, failing);

async fn concurrent_execute(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, c) = approvers(&app).await;
    for round in 0..5 {
        let mode = ["maintenance", "normal"][round % 2];
        let action = request(
            &app,
            json!({"action_type": "set_maintenance", "params": {"mode": mode},
                   "reason": format!("round {round}"), "required_approvals": 2}),
        )
        .await;
        // two approvals at once: both count, and the action is approved
        let approve = path(&action, "approve");
        let (one, two) = tokio::join!(
            app.as_key(&b).post_empty(&approve).status(),
            app.as_key(&c).post_empty(&approve).status(),
        );
        assert_eq!((one, two), (200, 200), "round {round}");
        let execute = path(&action, "execute");
        let (one, two) = tokio::join!(
            app.as_key(&b).post_empty(&execute).send(),
            app.as_key(&c).post_empty(&execute).send(),
        );
        let mut statuses = [one.status().as_u16(), two.status().as_u16()];
        let bodies: Vec<Value> = [one.json().await.unwrap(), two.json().await.unwrap()].into();
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: {bodies:?}");
        let lost = bodies.iter().find(|b| b["status"] == 409).unwrap();
        assert!(
            detail(lost).starts_with("the action is execut"),
            "the loser is told the state: {lost}"
        );
        let got = app
            .as_admin()
            .get(&format!("{ACTIONS}/{}", id(&action)))
            .expect(200)
            .await;
        assert_eq!(got["status"], "executed", "{got}");
        assert_eq!(got["approvals"].as_array().unwrap().len(), 2, "{got}");
    }
    // five executions, each once: five maintenance.mode audit events
    let logs = "/system/logs?category=audit&source=maintenance&limit=100";
    let trail = eventually(&app, logs, |v| v["total"].as_i64() >= Some(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trail_again = app.as_admin().get(logs).expect(200).await;
    assert_eq!(trail_again["total"], 5, "{trail}");
    app.finish().await;
}
on_both_engines!(
    two_approvals_at_once_count_and_two_executes_run_once,
    concurrent_execute
);

async fn change(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, c) = approvers(&app).await;
    let action = request(
        &app,
        json!({"action_type": "block_ip", "params": {"ip": "203.0.113.9"}, "reason": "scanner",
               "required_approvals": 2}),
    )
    .await;
    let approved_once = approve(&app, &b, &action).await;
    assert_eq!(approved_once["approvals"].as_array().unwrap().len(), 1);
    let item = format!("{ACTIONS}/{}", id(&action));

    // someone else may not change it; bad params name their field
    let p = app
        .as_key(&b)
        .patch(&item, &json!({"reason": "mine now"}))
        .expect_problem(403)
        .await;
    assert!(detail(&p).contains("only the requester"), "{p}");
    let p = app
        .as_admin()
        .patch(&item, &json!({"params": {"ip": "bad"}}))
        .expect_problem(422)
        .await;
    assert_eq!(p["errors"][0]["field"], "params.ip");
    // the same values change nothing
    let same = app
        .as_admin()
        .patch(&item, &json!({"params": {"ip": "203.0.113.9"}}))
        .expect(200)
        .await;
    assert_eq!(same, approved_once);

    let changed = app
        .as_admin()
        .patch(&item, &json!({"params": {"ip": "203.0.113.0/24"}}))
        .expect(200)
        .await;
    assert_eq!(changed["params"], json!({"ip": "203.0.113.0/24"}));
    assert_eq!(changed["status"], "pending");
    assert_eq!(changed["approvals"], json!([]), "the approval is withdrawn");
    assert_eq!(changed["revision"], 2);
    assert!(
        changed["expires_at"].as_str() > action["expires_at"].as_str(),
        "the time to approve starts again: {changed}"
    );
    // b approves again (the new params), c completes it
    assert_eq!(
        approve(&app, &b, &changed).await["approvals"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let approved = approve(&app, &c, &changed).await;
    assert_eq!(approved["status"], "approved");

    // a change to an approved action returns it to pending
    let reasoned = app
        .as_admin()
        .patch(&item, &json!({"reason": "scanner, whole range"}))
        .expect(200)
        .await;
    assert_eq!(reasoned["status"], "pending");
    assert_eq!(reasoned["approvals"], json!([]));
    assert_eq!(reasoned["reason"], "scanner, whole range");
    let p = app
        .as_admin()
        .post_empty(&path(&action, "execute"))
        .expect_problem(409)
        .await;
    assert!(detail(&p).starts_with("the action is pending"), "{p}");

    // the withdrawal is audited: before approved with two approvals, after pending with none
    let logs = "/system/logs?category=audit&source=security_actions&limit=100";
    let trail = eventually(&app, logs, |v| {
        let mut items = v["items"].as_array().unwrap().iter();
        items.any(|e| {
            e["context"]["before"]["status"] == "approved"
                && e["context"]["action"] == "security_action.update"
        })
    })
    .await;
    let update = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["context"]["before"]["status"] == "approved")
        .unwrap();
    assert_eq!(
        update["context"]["before"]["approvals"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(update["context"]["after"]["approvals"], json!([]));

    // finished actions cannot change
    let p = app
        .as_admin()
        .post(&path(&action, "reject"), &json!({"reason": "superseded"}))
        .expect(200)
        .await;
    assert_eq!(p["status"], "rejected");
    let p = app
        .as_admin()
        .patch(&item, &json!({"reason": "again"}))
        .expect_problem(409)
        .await;
    assert_eq!(
        detail(&p),
        "the action is rejected; only a pending or approved action can be changed"
    );
    app.finish().await;
}
on_both_engines!(a_change_withdraws_the_approvals, change);

async fn reject(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, c) = approvers(&app).await;
    let action = request(
        &app,
        json!({"action_type": "set_maintenance", "params": {"mode": "maintenance"},
               "reason": "friday deploy", "required_approvals": 2}),
    )
    .await;
    approve(&app, &b, &action).await;
    let rejected = app
        .as_key(&c)
        .post(
            &path(&action, "reject"),
            &json!({"reason": "not on a friday"}),
        )
        .expect(200)
        .await;
    assert_eq!(rejected["status"], "rejected");
    assert!(
        rejected["rejected_by"]
            .as_str()
            .unwrap()
            .starts_with("client:")
    );
    assert_eq!(rejected["rejection_reason"], "not on a friday");
    for verb in ["approve", "reject", "execute"] {
        let p = app
            .as_key(&c)
            .post_empty(&path(&action, verb))
            .expect_problem(409)
            .await;
        assert!(
            detail(&p).starts_with("the action is rejected; only"),
            "{verb}: {p}"
        );
    }
    // a body is optional
    let other = request(
        &app,
        json!({"action_type": "unblock_ip", "params": {"ip": "10.1.1.1"}, "reason": "r"}),
    )
    .await;
    let rejected = app
        .as_key(&b)
        .post_empty(&path(&other, "reject"))
        .expect(200)
        .await;
    assert_eq!(rejected["rejection_reason"], Value::Null);
    app.finish().await;
}
on_both_engines!(one_rejection_rejects, reject);

async fn expiry(engine: Engine) {
    let Some(app) = app_with(
        engine,
        &[("expire_after_seconds", 1), ("required_approvals", 2)],
    )
    .await
    else {
        return;
    };
    let (b, _) = approvers(&app).await;
    let body = json!({"action_type": "unblock_ip", "params": {"ip": "10.2.2.2"}, "reason": "r"});
    let read = request(&app, body.clone()).await;
    let acted = request(&app, body.clone()).await;
    let ticked = request(&app, body).await;
    assert_eq!(read["required_approvals"], 2, "the pack's setting");
    let (created, expires) = (&read["created_at"], &read["expires_at"]);
    let seconds = |t: &Value| {
        let t = t.as_str().unwrap();
        t[17..19].parse::<u32>().unwrap() + 60 * t[14..16].parse::<u32>().unwrap()
    };
    assert_eq!(
        (seconds(expires) + 3600 - seconds(created)) % 3600,
        1,
        "{read}"
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    // when read
    let got = app
        .as_admin()
        .get(&format!("{ACTIONS}/{}", id(&read)))
        .expect(200)
        .await;
    assert_eq!(got["status"], "expired", "{got}");
    // when acted on
    let p = app
        .as_key(&b)
        .post_empty(&path(&acted, "approve"))
        .expect_problem(409)
        .await;
    assert_eq!(
        detail(&p),
        "the action is expired; only a pending action can be approved"
    );
    // by the tick, unread: its expiry is audited without a request reading it
    let target = format!("security_actions/{}", id(&ticked));
    let logs = "/system/logs?category=audit&source=security_actions&limit=100";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let trail = app.as_admin().get(logs).expect(200).await;
        let expired = trail["items"].as_array().unwrap().iter().any(|e| {
            e["context"]["target"] == target.as_str()
                && e["context"]["action"] == "security_action.expire"
        });
        if expired {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tick never expired it: {trail}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let listed = app
        .as_admin()
        .get(&format!("{ACTIONS}?status=expired"))
        .expect(200)
        .await;
    assert_eq!(listed["total"], 3);
    app.finish().await;
}
on_both_engines!(unapproved_actions_expire, expiry);

/// The status of a read by `key` that a trusted proxy forwards for `ip`.
async fn status_from(app: &TestApp, key: &str, ip: &str) -> u16 {
    app.as_key(key)
        .get(ACTIONS)
        .header("x-forwarded-for", ip)
        .status()
        .await
}

async fn block_ip(engine: Engine) {
    let Some(app) = app(engine).await else {
        return;
    };
    let (b, c) = approvers(&app).await;
    assert_eq!(status_from(&app, &b, "203.0.113.7").await, 200);
    let action = request(
        &app,
        json!({"action_type": "block_ip",
               "params": {"ip": "203.0.113.7", "duration": "1h", "severity": "high"},
               "reason": "brute force on /login", "required_approvals": 2}),
    )
    .await;
    assert_eq!(approve(&app, &b, &action).await["status"], "pending");
    assert_eq!(approve(&app, &c, &action).await["status"], "approved");
    let done = app
        .as_key(&c)
        .post_empty(&path(&action, "execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    assert_eq!(done["result_status"], 201);
    let rule = &done["result"];
    assert_eq!(rule["rule_type"], "ip");
    assert_eq!(rule["value"], "203.0.113.7");
    assert_eq!(rule["severity"], "high");
    assert_eq!(rule["active"], true);
    assert!(rule["expires_at"].is_string(), "a 1h block: {rule}");
    assert_eq!(rule["created_by"], done["executed_by"]);
    let reason = rule["reason"].as_str().unwrap();
    assert!(
        reason.contains(&id(&action)) && reason.contains("brute force"),
        "{reason}"
    );

    // the address is blocked by the guard, its neighbour is not
    let p = app
        .as_key(&b)
        .get(ACTIONS)
        .header("x-forwarded-for", "203.0.113.7")
        .expect_problem(403)
        .await;
    assert!(detail(&p).contains(rule["id"].as_str().unwrap()), "{p}");
    assert_eq!(status_from(&app, &b, "203.0.113.8").await, 200);

    // a network becomes a cidr rule
    let net = request(
        &app,
        json!({"action_type": "block_ip", "params": {"ip": "198.51.100.99/24"},
               "reason": "botnet range"}),
    )
    .await;
    approve(&app, &b, &net).await;
    let done = app
        .as_admin()
        .post_empty(&path(&net, "execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    assert_eq!(done["result"]["rule_type"], "cidr");
    assert_eq!(done["result"]["value"], "198.51.100.0/24");
    assert_eq!(status_from(&app, &b, "198.51.100.42").await, 403);

    // security_policy refusing the rule is a failed action with its problem
    let mine = request(
        &app,
        json!({"action_type": "block_ip", "params": {"ip": "127.0.0.1"}, "reason": "oops"}),
    )
    .await;
    approve(&app, &b, &mine).await;
    let failed = app
        .as_admin()
        .post_empty(&path(&mine, "execute"))
        .expect(200)
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["result_status"], 422);
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("never_block"),
        "{failed}"
    );

    // unblock_ip removes the address's active rules, and only those
    let unblock = request(
        &app,
        json!({"action_type": "unblock_ip", "params": {"ip": "203.0.113.7"},
               "reason": "the customer's office"}),
    )
    .await;
    approve(&app, &b, &unblock).await;
    let done = app
        .as_admin()
        .post_empty(&path(&unblock, "execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    assert_eq!(done["result"]["removed"], json!([rule["id"]]));
    assert_eq!(status_from(&app, &b, "203.0.113.7").await, 200);
    assert_eq!(status_from(&app, &b, "198.51.100.42").await, 403);
    // nothing left to remove is still done
    let again = request(
        &app,
        json!({"action_type": "unblock_ip", "params": {"ip": "203.0.113.7"}, "reason": "again"}),
    )
    .await;
    approve(&app, &b, &again).await;
    let done = app
        .as_admin()
        .post_empty(&path(&again, "execute"))
        .expect(200)
        .await;
    assert_eq!(done["status"], "executed", "{done}");
    assert_eq!(done["result"]["removed"], json!([]));
    app.finish().await;
}
on_both_engines!(block_ip_runs_in_security_policy, block_ip);
