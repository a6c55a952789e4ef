//! The README's "Writing a pack" example is a real pack (`plugins/fixtures/notes`): the code
//! block in the README is its source, byte for byte, and it serves what the README says, with
//! authentication on, on both engines.

use serde_json::json;

use crate::harness::{Engine, TestApp, TestDb, eventually, root, secured};
use crate::on_both_engines;

#[test]
fn the_readme_shows_the_example_packs_source() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let source =
        std::fs::read_to_string(root().join("plugins/fixtures/notes/src/lib.rs")).expect("notes");
    let block = format!("```rust\n{source}```");
    assert!(
        readme.contains(&block),
        "README.md must show plugins/fixtures/notes/src/lib.rs verbatim"
    );
}

async fn notes_pack(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let cfg = secured(&db, &["api_clients", "system_log", "notes"]);
    let app = TestApp::start(db, cfg).await;

    let note = app
        .as_admin()
        .post(
            "/notes",
            &json!({"title": "Deploy", "body": "Friday", "pinned": true}),
        )
        .expect(201)
        .await;
    assert_eq!(note["title"], "Deploy");
    assert_eq!(note["pinned"], true);
    let id = note["id"].as_str().expect("an id").to_string();
    app.as_admin()
        .post("/notes", &json!({"title": "Later", "body": ""}))
        .expect(201)
        .await;

    let read = app
        .as_admin()
        .get(&format!("/notes/{id}"))
        .expect(200)
        .await;
    assert_eq!(read, note);
    let pinned = app.as_admin().get("/notes?pinned=true").expect(200).await;
    assert_eq!(pinned["total"], 1);
    assert_eq!(pinned["items"][0]["id"], id.as_str());
    let all = app.as_admin().get("/notes?limit=1").expect(200).await;
    assert_eq!(
        (all["total"].as_i64(), all["items"].as_array().map(Vec::len)),
        (Some(2), Some(1))
    );
    assert_eq!(all["items"][0]["id"], id.as_str(), "pinned first");

    // every broken rule named in one 422; not JSON is a 400; a bad query value names itself
    let bad = app
        .as_admin()
        .post(
            "/notes",
            &json!({"title": "", "body": "x".repeat(16385), "extra": 1}),
        )
        .expect_problem(422)
        .await;
    assert_eq!(bad["errors"][0]["field"], "extra");
    let bad = app
        .as_admin()
        .post("/notes", &json!({"title": "", "body": "x".repeat(16385)}))
        .expect_problem(422)
        .await;
    let fields: Vec<_> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(fields, [json!("title"), json!("body")]);
    app.as_admin()
        .post_raw("/notes", "application/json", "{\"title\":")
        .expect_problem(400)
        .await;
    app.as_admin()
        .post_raw("/notes", "text/plain", "hello")
        .expect_problem(415)
        .await;
    let bad = app
        .as_admin()
        .get("/notes?pinned=perhaps")
        .expect_problem(422)
        .await;
    assert_eq!(bad["errors"][0]["field"], "pinned");

    // access: anonymous callers are refused, and the audit trail has the writes
    app.anon().get("/notes").expect_problem(401).await;
    app.as_admin()
        .delete(&format!("/notes/{id}"))
        .expect(204)
        .await;
    app.as_admin()
        .get(&format!("/notes/{id}"))
        .expect_problem(404)
        .await;
    app.as_admin()
        .delete(&format!("/notes/{id}"))
        .expect_problem(404)
        .await;
    let audit = eventually(&app, "/system/logs?category=audit&source=notes", |v| {
        v["total"] == 3
    })
    .await;
    let actions: Vec<_> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["context"]["action"].clone())
        .collect();
    assert!(actions.contains(&json!("note.delete")) && actions.contains(&json!("note.create")));
    app.finish().await;
}

on_both_engines!(the_example_pack_serves_what_the_readme_says, notes_pack);
