//! `valhalla new-pack` end to end: the real binary scaffolds a pack into a scratch copy of the
//! repository, cargo builds it for wasm32-wasip2 as `cargo xtask packs` does (profile `pack`,
//! in a target dir of its own, `target/scaffold-e2e-target`: the copy's crates have the same
//! ids as the repository's, and built into the main one they would take the real SDK's place
//! in cargo's records, so the next build of the packs would use the copy's), clippy finds nothing in it, and the real host serves
//! both of its routes with authentication on, on SQLite and PostgreSQL (its unit test passes and
//! rustfmt leaves it as it is, too). Also: a taken or invalid name fails and writes nothing.
//!
//! The scratch copy lives at `target/scaffold-e2e/` (a fixed path under the repository, so the
//! repository's `.cargo/config.toml` applies and cargo reuses what it built last time; files are
//! rewritten only when they changed). It holds a reduced workspace (`wire`, `plugins/sdk`,
//! `plugins/sdk-macros`: the host is not needed to build a pack), `Cargo.lock`, `wit/`,
//! `migrations/`, `config.toml` and `plugins/rustfmt.toml`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::json;

use crate::harness::{Engine, TestApp, TestDb, eventually, root, secured};
use crate::on_both_engines;

/// The pack the test scaffolds.
const NAME: &str = "scaffold_probe";

/// Directories a pack's build needs, copied from the repository.
const COPIED: &[&str] = &[
    "wit",
    "wire",
    "plugins/sdk",
    "plugins/sdk-macros",
    "migrations",
];

/// The scaffolded and built pack, made once per test process.
struct Built {
    scratch: PathBuf,
    wasm: PathBuf,
    /// held for the process's life: two test processes never share the scratch copy at once
    _lock: std::fs::File,
}

fn valhalla(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_valhalla"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the valhalla binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Make `to` hold exactly the files of `from`, writing only those whose bytes differ (so their
/// modification times, which cargo's fingerprints read, stay put).
fn mirror(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut kept = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        kept.insert(name.clone());
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            mirror(&src, &dst);
        } else {
            sync_file(&std::fs::read(&src).unwrap(), &dst);
        }
    }
    for entry in std::fs::read_dir(to).unwrap() {
        let entry = entry.unwrap();
        if !kept.contains(&entry.file_name()) {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}

fn sync_file(bytes: &[u8], dst: &Path) {
    if std::fs::read(dst).ok().as_deref() != Some(bytes) {
        std::fs::write(dst, bytes).unwrap();
    }
}

/// The repository's `Cargo.toml` with only the members a pack's build needs.
fn reduced_workspace() -> String {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut manifest: toml::Table = text.parse().unwrap();
    let workspace = manifest["workspace"].as_table_mut().unwrap();
    let members = ["wire", "plugins/sdk", "plugins/sdk-macros"];
    workspace.insert(
        "members".into(),
        members.map(toml::Value::from).to_vec().into(),
    );
    workspace.remove("default-members");
    toml::to_string(&manifest).unwrap()
}

/// The scratch copy, freshly synced, without the test pack.
fn scratch_copy() -> PathBuf {
    let scratch = root().join("target/scaffold-e2e");
    for dir in COPIED {
        mirror(&root().join(dir), &scratch.join(dir));
    }
    let _ = std::fs::remove_dir_all(scratch.join("plugins").join(NAME));
    sync_file(reduced_workspace().as_bytes(), &scratch.join("Cargo.toml"));
    for file in ["Cargo.lock", "config.toml", "plugins/rustfmt.toml"] {
        sync_file(
            &std::fs::read(root().join(file)).unwrap(),
            &scratch.join(file),
        );
    }
    scratch
}

/// Where the copy builds: not the main target dir (see the module's comment).
fn target_dir() -> PathBuf {
    root().join("target/scaffold-e2e-target")
}

fn cargo(scratch: &Path, args: &[&str]) -> Output {
    let started = Instant::now();
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(scratch)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run cargo");
    eprintln!("cargo {} took {:?}", args.join(" "), started.elapsed());
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "cargo {args:?} failed:\n{stderr}");
    // the generated code warns of nothing (others' crates are not this test's business)
    assert!(
        !stderr.contains(&format!("`{NAME}` (lib")),
        "cargo {args:?} warned:\n{stderr}"
    );
    output
}

fn scaffold_and_build() -> Built {
    let started = Instant::now();
    let lock = std::fs::File::create(root().join("target/scaffold-e2e.lock")).unwrap();
    lock.lock().unwrap();
    let scratch = scratch_copy();

    let out = valhalla(&["new-pack", NAME], &scratch);
    assert!(
        out.status.success(),
        "new-pack failed: {}",
        text(&out.stderr)
    );
    let report = text(&out.stdout);
    assert!(report.contains(&format!("plugins/{NAME}")), "{report}");
    let manifest = std::fs::read_to_string(scratch.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("\"plugins/{NAME}\"")),
        "{manifest}"
    );
    let config = std::fs::read_to_string(scratch.join("config.toml")).unwrap();
    let original = std::fs::read_to_string(root().join("config.toml")).unwrap();
    assert!(
        config.starts_with(&original),
        "the config before the new block is kept"
    );
    assert!(config.contains(&format!("[packs.{NAME}]\nenabled = true")));
    let migration = scratch.join(format!("migrations/{NAME}/0001_init.sql"));
    assert!(migration.is_file());

    let build = [
        "build",
        "--offline",
        "--target",
        "wasm32-wasip2",
        "--profile",
        "pack",
        "-p",
        NAME,
    ];
    cargo(&scratch, &build);
    let clippy = [
        "clippy",
        "--offline",
        "--target",
        "wasm32-wasip2",
        "-p",
        NAME,
        "--",
        "-D",
        "warnings",
    ];
    cargo(&scratch, &clippy);
    // its unit test runs natively, and the code is as rustfmt (plugins/rustfmt.toml) writes it
    let tested = cargo(&scratch, &["test", "--offline", "-p", NAME]);
    assert!(
        text(&tested.stdout).contains("1 passed"),
        "{}",
        text(&tested.stdout)
    );
    let lib = scratch.join(format!("plugins/{NAME}/src/lib.rs"));
    let fmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2024"])
        .arg(&lib)
        .output()
        .expect("run rustfmt");
    assert!(fmt.status.success(), "{}", text(&fmt.stdout));
    let wasm = target_dir().join(format!("wasm32-wasip2/pack/{NAME}.wasm"));
    assert!(wasm.is_file(), "{} is not built", wasm.display());
    eprintln!("scaffolded and built {NAME} in {:?}", started.elapsed());
    Built {
        scratch,
        wasm,
        _lock: lock,
    }
}

async fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    tokio::task::spawn_blocking(|| BUILT.get_or_init(scaffold_and_build))
        .await
        .expect("build")
}

async fn serves_both_routes(engine: Engine) {
    let built = built().await;
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let mut config = secured(&db, &["api_clients", "system_log", NAME]);
    config.runtime.migrations_dir = built.scratch.join("migrations");
    config.packs.get_mut(NAME).expect("enabled").component = Some(built.wasm.clone());
    let app = TestApp::start(db, config).await;
    let items = format!("/{NAME}/items");

    // auth is on: no key is a 401, a read-only key may read but not write
    app.post(&items, &json!({"name": "x"}))
        .expect_problem(401)
        .await;
    let created = app
        .as_admin()
        .post(
            &items,
            &json!({"name": "first", "note": "from the e2e test"}),
        )
        .expect(201)
        .await;
    assert_eq!(created["name"], "first");
    assert_eq!(created["note"], "from the e2e test");
    let id = created["id"].as_str().expect("an id").to_string();
    assert!(
        created["created_by"]
            .as_str()
            .is_some_and(|a| !a.is_empty()),
        "{created}"
    );
    let read = app
        .as_admin()
        .get(&format!("{items}/{id}"))
        .expect(200)
        .await;
    assert_eq!(read, created);
    let reader = app.register_client("reader", &["read"]).await;
    assert_eq!(
        app.as_key(&reader.key)
            .get(&format!("{items}/{id}"))
            .expect(200)
            .await,
        created
    );
    app.as_key(&reader.key)
        .post(&items, &json!({"name": "y"}))
        .expect_problem(403)
        .await;
    app.as_admin()
        .get(&format!("{items}/nope"))
        .expect_problem(404)
        .await;

    // bad bodies: every broken rule named in one 422 problem+json
    let bad = app
        .as_admin()
        .post(&items, &json!({"name": ""}))
        .expect_problem(422)
        .await;
    assert_eq!(bad["errors"][0]["field"], "name", "{bad}");
    let bad = app
        .as_admin()
        .post(&items, &json!({"name": "x", "colour": 1}))
        .expect_problem(422)
        .await;
    assert_eq!(bad["errors"][0]["field"], "colour", "{bad}");
    let bad = app
        .as_admin()
        .post(&items, &json!({"note": "no name"}))
        .expect_problem(422)
        .await;
    assert_eq!(bad["errors"][0]["field"], "name", "{bad}");

    // the POST is audited, and both routes are in the OpenAPI document with their schemas
    let audit = format!("/system/logs?category=audit&source={NAME}");
    let logged = eventually(&app, &audit, |v| v["total"].as_i64() >= Some(1)).await;
    assert_eq!(
        logged["items"][0]["context"]["action"], "item.create",
        "{logged}"
    );
    let openapi = app.get("/openapi.json").expect(200).await;
    let post = &openapi["paths"][&items]["post"];
    assert!(post["requestBody"].is_object(), "{post}");
    assert!(openapi["paths"][format!("{items}/{{id}}")]["get"].is_object());
    app.finish().await;
}
on_both_engines!(
    a_scaffolded_pack_builds_and_serves_its_routes,
    serves_both_routes
);

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn a_taken_or_invalid_name_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path();
    for file in ["Cargo.toml", "config.toml", "plugins/sdk/Cargo.toml"] {
        std::fs::create_dir_all(checkout.join(file).parent().unwrap()).unwrap();
        std::fs::copy(root().join(file), checkout.join(file)).unwrap();
    }
    std::fs::create_dir_all(checkout.join("migrations/notes")).unwrap();
    let root_arg = checkout.to_str().unwrap();
    let first = valhalla(
        &["new-pack", "inventory", "--root", root_arg],
        Path::new("/"),
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    let before = snapshot(checkout);
    for (name, says) in [
        ("inventory", "exists already: "),
        ("system_config", "exists already: "),
        ("notes", "exists already: "),
        ("Inventory", "not a valid pack name"),
        ("my-pack", "not a valid pack name"),
        ("9lives", "not a valid pack name"),
        ("struct", "Rust keyword"),
    ] {
        let out = valhalla(&["new-pack", name, "--root", root_arg], Path::new("/"));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
        assert_eq!(snapshot(checkout), before, "{name} wrote something");
    }
    // not a checkout (the default root is the current directory)
    let out = valhalla(&["new-pack", "fresh"], &checkout.join("plugins"));
    assert!(
        text(&out.stderr).contains("is not a Valhalla checkout"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(snapshot(checkout), before);
    // --help describes it
    let help = text(&valhalla(&["new-pack", "--help"], checkout).stdout);
    assert!(
        help.contains("--root") && help.contains("plugins/NAME"),
        "{help}"
    );
}
