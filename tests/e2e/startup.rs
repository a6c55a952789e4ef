//! Startup: a broken config or an edited migration stops the server with a message naming
//! what is wrong and a non-zero exit; the `packs` and `migrate` commands.

use std::path::Path;
use std::process::Command;

use testkit::ConfigToml;

use crate::harness::{Engine, TestApp, TestDb, config, packs_dir, root};

/// Run `valhalla ARGS` and answer (exit code, stdout, stderr).
fn valhalla(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_valhalla"))
        .args(args)
        .env_remove("VALHALLA_DATABASE_URL")
        .env("VALHALLA_LOG", "warn")
        .output()
        .expect("run valhalla");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config file in `dir` with `body` appended to settings that point at the built packs.
fn write_config(dir: &Path, body: &str) -> String {
    let base = ConfigToml::in_workspace(&root())
        .packs_dir(&packs_dir())
        .cache_dir(&root().join("target/valhalla-test-cache"))
        .database_url(&format!("sqlite://{}", dir.join("v.db").display()));
    let text = format!("{}{body}", base.to_toml());
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn assert_refused(body: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), body);
    let (code, _, stderr) = valhalla(&["serve", "--config", &path, "--bind", "127.0.0.1:0"]);
    assert_eq!(code, 1, "stderr: {stderr}");
    assert!(stderr.contains(&path), "names the file: {stderr}");
    for e in expected {
        assert!(stderr.contains(e), "expected `{e}` in: {stderr}");
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn a_broken_config_stops_startup_with_a_message() {
    assert_refused("[server]\nbnd = \"127.0.0.1:1\"\n", &["bnd"]);
    assert_refused("[packs.system_config]\nenabled = \"yes\"\n", &["enabled"]);
    assert_refused(
        "[packs.nonexistent]\nenabled = true\n",
        &["packs.nonexistent", "not found"],
    );
    assert_refused(
        "[packs.system_config]\ncomponent = \"/nowhere/x.wasm\"\n",
        &["packs.system_config.component", "/nowhere/x.wasm"],
    );
    assert_refused("[database2]\nurl = \"x\"\n", &["database2"]);
    assert_refused(
        "[auth]\nenabled = false\n[server]\nbind = \"0.0.0.0:0\"\n",
        &["auth.enabled", "loopback"],
    );
    assert_refused(
        "[server]\nguard_order = [\"nope\"]\n",
        &["server.guard_order", "nope"],
    );
    assert_refused(
        "[packs.system_config]\n[packs.system_config.grants]\npacks = [\"Bad Name\"]\n",
        &["packs.system_config.grants.packs"],
    );
    assert_refused(
        "[packs.system_config]\n[packs.system_config.grants]\noutbound = [\"ftp://x\"]\n",
        &["packs.system_config.grants.outbound[0]"],
    );
    // a component whose manifest names another pack
    let wasm = packs_dir().join("faulty.wasm");
    assert_refused(
        &format!("[packs.pretender]\ncomponent = \"{}\"\n", wasm.display()),
        &["pretender", "faulty", "unknown pack"],
    );
}

#[test]
fn a_bad_database_url_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("sqlite://", "mysql://");
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = valhalla(&["serve", "--config", &path]);
    assert_eq!(code, 1);
    assert!(stderr.contains("database.url"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_named() {
    let (code, _, stderr) = valhalla(&["serve", "--config", "/nonexistent/valhalla.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/valhalla.toml"), "{stderr}");
}

#[test]
fn packs_lists_routes_and_migrate_applies() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[packs.system_config]\nenabled = true\n");
    let (code, stdout, stderr) = valhalla(&["packs", "--config", &path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("system_config"), "{stdout}");
    for line in ["POST", "/system/config/{key}", "DELETE", "write", "read"] {
        assert!(stdout.contains(line), "expected {line} in {stdout}");
    }
    assert!(
        !dir.path().join("v.db").exists(),
        "listing packs does not touch the database"
    );

    let (code, stdout, stderr) = valhalla(&["migrate", "--config", &path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("migrations applied"));
    assert!(dir.path().join("v.db").exists());
    // and again: nothing new, still fine
    let (code, _, stderr) = valhalla(&["migrate", "--config", &path]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn packs_shows_guards_ticks_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[server]\nguard_order = [\"api_clients\", \"rate_limits\"]\n\
                [packs.api_clients]\nenabled = true\n\
                [packs.rate_limits]\nenabled = true\n[packs.rate_limits.grants]\npacks = [\"api_clients\"]\n\
                [packs.maintenance]\nenabled = true\n";
    let path = write_config(dir.path(), body);
    let (code, stdout, stderr) = valhalla(&["packs", "--config", &path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("guard chain: api_clients → rate_limits"),
        "{stdout}"
    );
    assert!(stdout.contains("guard   #2 in the chain"), "{stdout}");
    assert!(stdout.contains("tick    every 1000 ms"), "{stdout}");
    assert!(stdout.contains("packs: api_clients"), "{stdout}");
}

#[test]
fn config_check_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[packs.system_config]\nenabled = true\n");
    let (code, stdout, stderr) = valhalla(&["config", "check", "--config", &path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid (1 packs enabled)"), "{stdout}");
    assert!(
        !dir.path().join("v.db").exists(),
        "a check touches no database"
    );

    // a pack whose component is missing, an unknown key: each named, exit 1
    let missing = write_config(
        dir.path(),
        "[packs.system_config]\nenabled = true\ncomponent = \"nowhere/none.wasm\"\n",
    );
    let (code, _, stderr) = valhalla(&["config", "check", "--config", &missing]);
    assert_eq!(code, 1);
    assert!(stderr.contains("none.wasm"), "{stderr}");
    let unknown = write_config(dir.path(), "[server]\nbindd = \"x\"\n");
    let (code, _, stderr) = valhalla(&["config", "check", "--config", &unknown]);
    assert_eq!(code, 1);
    assert!(stderr.contains("bindd"), "{stderr}");
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["packs", "--help"],
        &["migrate", "--help"],
        &["config", "--help"],
        &["config", "check", "--help"],
    ] {
        let (code, stdout, stderr) = valhalla(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
    }
}

async fn edited_migration(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let migrations = db.dir.path().join("migrations");
    std::fs::create_dir_all(migrations.join("system_config")).unwrap();
    let file = migrations.join("system_config/0001_init.sql");
    std::fs::copy(root().join("migrations/system_config/0001_init.sql"), &file).unwrap();
    let mut cfg = config(&db, &["system_config"]);
    cfg.runtime.migrations_dir = migrations.clone();

    let app = TestApp::start(db, cfg).await;
    let (db, cfg) = app.stop().await;

    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{original}\n-- edited after the fact\n")).unwrap();
    let (db, err) = match TestApp::try_start(db, cfg.clone()).await {
        Ok(_) => panic!("startup must refuse an edited migration"),
        Err((db, e)) => (db, e.to_string()),
    };
    assert!(
        err.contains("system_config") && err.contains("edited"),
        "{err}"
    );

    // restoring the file lets it start again; a new migration is applied on top
    std::fs::write(&file, &original).unwrap();
    std::fs::write(
        migrations.join("system_config/0002_index.sql"),
        "CREATE INDEX IF NOT EXISTS system_config_updated ON system_config (updated_at);\n",
    )
    .unwrap();
    let app = TestApp::start(db, cfg).await;
    app.finish().await;
}

crate::on_both_engines!(an_edited_migration_stops_startup, edited_migration);

/// A replica whose release lacks a migration the database has (a newer release applied it)
/// refuses to start, saying so.
async fn older_release(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let migrations = db.dir.path().join("migrations");
    std::fs::create_dir_all(migrations.join("system_config")).unwrap();
    std::fs::copy(
        root().join("migrations/system_config/0001_init.sql"),
        migrations.join("system_config/0001_init.sql"),
    )
    .unwrap();
    let newer = migrations.join("system_config/0002_newer.sql");
    std::fs::write(
        &newer,
        "CREATE INDEX system_config_newer ON system_config (updated_at);\n",
    )
    .unwrap();
    let mut cfg = config(&db, &["system_config"]);
    cfg.runtime.migrations_dir = migrations.clone();
    let app = TestApp::start(db, cfg).await;
    let (db, cfg) = app.stop().await;
    // the older release: without 0002
    std::fs::remove_file(&newer).unwrap();
    let err = match TestApp::try_start(db, cfg).await {
        Ok(_) => panic!("an older release must not start on a newer schema"),
        Err((_, e)) => e.to_string(),
    };
    assert!(err.contains("0002") || err.contains("migration 2"), "{err}");
    assert!(err.contains("newer release"), "{err}");
}

crate::on_both_engines!(an_older_release_refuses_a_newer_schema, older_release);

/// The real binary: serves, then stops cleanly on SIGTERM with exit code 0.
#[test]
fn the_binary_serves_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[packs.system_config]\nenabled = true\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_valhalla"))
        .args(["serve", "--config", &path, "--bind", "127.0.0.1:0"])
        .env("VALHALLA_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server logs `ready`").unwrap();
        if line.contains("valhalla::app: ready") {
            let at = line.find("addr=").expect("ready line names the address") + 5;
            break line[at..].split_whitespace().next().unwrap().to_string();
        }
    };
    let body = reqwest::blocking_get(&format!("http://{addr}/system/health/ready"));
    assert!(body.contains("\"ready\""), "{body}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "a stop signal is a clean exit");
}

mod reqwest {
    /// A GET on a throwaway runtime (this test is synchronous).
    pub fn blocking_get(url: &str) -> String {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}
