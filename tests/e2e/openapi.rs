//! `/openapi.json` and `/docs` (issue 17 item 1), with authentication on: the document is
//! valid OpenAPI 3.1 (checked by `openapi-spec-validator`), lists every enabled route with
//! the schemas of its manifest, problem+json errors and its access level, and drops a
//! disabled pack's routes; `/docs` renders the operations in a real (headless) browser.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{Engine, TestApp, TestDb, chromium, secured, test_python};
use crate::on_both_engines;

const PACKS: &[&str] = &["route_index", "system_config", "feature_flags"];

/// `openapi-spec-validator` on `doc`: `None` when the test Python is missing.
fn validate(doc: &Value) -> Option<Result<(), String>> {
    let python = test_python()?;
    let code = "from openapi_spec_validator import validate; import json,sys; \
                validate(json.load(sys.stdin))";
    let mut child = Command::new(python)
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test Python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.to_string().as_bytes())
        .expect("write the document");
    let out = child.wait_with_output().expect("validator finishes");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} missing from the document");
    op
}

async fn document(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let cfg = secured(&db, PACKS);
    let app = TestApp::start(db, cfg).await;
    let doc = app.anon().get("/openapi.json").expect(200).await;
    assert_eq!(doc["openapi"], "3.1.0");
    if let Some(result) = validate(&doc) {
        result.unwrap_or_else(|e| panic!("openapi-spec-validator refused it:\n{e}"));
    }
    // every route of the live table is there
    let index = app.as_admin().get("/debug/routes").expect(200).await;
    for r in index["routes"].as_array().expect("routes") {
        let path = r["path"].as_str().expect("path");
        let method = r["methods"][0]
            .as_str()
            .expect("method")
            .to_ascii_lowercase();
        let op = operation(&doc, path, &method);
        assert_eq!(op["x-valhalla-access"], r["access"], "{method} {path}");
        assert_eq!(op["summary"], r["summary"], "{method} {path}");
        let problems = op["responses"]
            .as_object()
            .expect("responses")
            .iter()
            .filter(|(status, _)| status.starts_with(['4', '5']))
            .count();
        assert!(problems > 0, "{method} {path} lists no error responses");
        let public = r["access"] == "public";
        assert_eq!(
            op["security"] == serde_json::json!([]),
            public,
            "{method} {path}"
        );
    }
    // a path parameter, a request body schema, a response schema, problem+json
    let delete = operation(&doc, "/system/config/{key}", "delete");
    assert_eq!(delete["parameters"][0]["name"], "key");
    assert_eq!(delete["parameters"][0]["in"], "path");
    assert_eq!(delete["x-valhalla-access"], "write");
    assert!(delete["responses"]["401"].is_object() && delete["responses"]["403"].is_object());
    let create = operation(&doc, "/system/config", "post");
    let body = &create["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        body.is_object(),
        "POST /system/config has no request schema: {create}"
    );
    let with_response = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|m| m.values()))
        .filter(|op| op["responses"]["2XX"]["content"]["application/json"]["schema"].is_object())
        .count();
    assert!(with_response > 3, "few routes carry a response schema");
    assert_eq!(
        doc["components"]["responses"]["NotFound"]["content"]["application/problem+json"]["schema"]
            ["$ref"],
        "#/components/schemas/Problem"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKey"]["name"],
        "X-API-Key"
    );
    // the packs' `$defs` are components now, and every reference resolves
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(
        refs.iter()
            .any(|r| r.starts_with("#/components/schemas/system_config.")),
        "{refs:?}"
    );
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or(&r);
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    // the host's own routes
    assert_eq!(
        operation(&doc, "/system-health/live", "get")["deprecated"],
        true
    );
    assert!(operation(&doc, "/system/health/live", "get")["deprecated"].is_null());
    operation(&doc, "/openapi.json", "get");
    operation(&doc, "/docs", "get");
    app.finish().await;
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
            ("$ref", Value::String(r)) => out.push(r.clone()),
            (_, v) => collect_refs(v, out),
        }),
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

async fn disabled(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut cfg = secured(&db, PACKS);
    cfg.packs
        .get_mut("feature_flags")
        .expect("configured")
        .enabled = false;
    let app = TestApp::start(db, cfg).await;
    let doc = app.anon().get("/openapi.json").expect(200).await;
    let paths: Vec<&String> = doc["paths"].as_object().expect("paths").keys().collect();
    assert!(
        !paths.iter().any(|p| p.starts_with("/system/features")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.starts_with("/system/config")),
        "{paths:?}"
    );
    if let Some(result) = validate(&doc) {
        result.unwrap_or_else(|e| panic!("openapi-spec-validator refused it:\n{e}"));
    }
    app.finish().await;
}

on_both_engines!(the_document_is_valid_and_lists_every_route, document);
on_both_engines!(a_disabled_pack_leaves_the_document, disabled);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_render_the_operations_in_a_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let Some(db) = TestDb::new(Engine::Sqlite).await else {
        return;
    };
    let cfg = secured(&db, PACKS);
    let app = TestApp::start(db, cfg).await;
    let page = app.anon().get("/docs").send().await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("/docs/swagger-ui-bundle.js"), "{html}");
    let js = app.anon().get("/docs/swagger-ui-bundle.js").send().await;
    assert_eq!(js.status(), 200);
    app.anon().get("/docs/nope.js").expect_problem(404).await;
    let url = app.url("/docs");
    let profile = tempfile::tempdir().expect("profile dir");
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=15000",
                &profile_arg,
                "--dump-dom",
                &url,
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    for wanted in [
        "/system/config/{key}",
        "Liveness probe",
        "system_config",
        "Authorize",
    ] {
        assert!(
            dom.contains(wanted),
            "`{wanted}` not in the rendered page:\n{}\n{}",
            &dom[..dom.len().min(3000)],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    app.finish().await;
}

/// Every pack of the workspace at once: all their schemas in one valid document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pack_together_is_still_valid() {
    let packs = [
        "system_config",
        "route_index",
        "feature_flags",
        "system_log",
        "deployment_profile",
        "api_clients",
        "rate_limits",
        "maintenance",
        "read_only_shield",
        "security_policy",
        "security_actions",
        "honeypots",
        "security_dashboard",
        "admin_ops",
        "notifications",
        "retention",
        "exports",
    ];
    let Some(db) = TestDb::new(Engine::Sqlite).await else {
        return;
    };
    let cfg = secured(&db, &packs);
    let app = TestApp::start(db, cfg).await;
    let doc = app.anon().get("/openapi.json").expect(200).await;
    for pack in packs {
        let tagged = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .any(|item| {
                item.as_object()
                    .is_some_and(|m| m.values().any(|op| op["tags"][0] == pack))
            });
        assert!(
            tagged || pack == "read_only_shield",
            "no operation of {pack}"
        );
    }
    if let Some(result) = validate(&doc) {
        result.unwrap_or_else(|e| panic!("openapi-spec-validator refused it:\n{e}"));
    }
    app.finish().await;
}
