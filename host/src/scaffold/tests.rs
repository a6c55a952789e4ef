//! Unit tests of the scaffold: name rules, the two textual edits, and `plan`/`apply` on a
//! small fake checkout (what is written, and that every refusal writes nothing).

use std::path::Path;

use super::*;

const MANIFEST: &str = r#"[workspace]
resolver = "3"
members = [
    "host",
    # the guest SDK
    "plugins/sdk",
    "plugins/fixtures/notes",
    "plugins/fixtures/hostile",
]
default-members = ["host"]

[workspace.dependencies]
serde = "1" # comment kept
"#;

const CONFIG: &str = "# Valhalla configuration.\n[server]\nbind = \"127.0.0.1:8000\"   # kept\n\n[packs.notes]\nenabled = true\n";

/// A checkout with just what `plan` looks at.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("Cargo.toml", MANIFEST);
    write("config.toml", CONFIG);
    write(
        "plugins/sdk/Cargo.toml",
        "[package]\nname = \"valhalla-sdk\"\n",
    );
    write(
        "plugins/fixtures/notes/Cargo.toml",
        "[package]\nname = \"notes\"\n",
    );
    write("host/Cargo.toml", "[package]\nname = \"valhalla\"\n");
    write(
        "migrations/notes/0001_init.sql",
        "CREATE TABLE notes (id TEXT);\n",
    );
    dir
}

/// Every file under `root`, with its text.
fn snapshot(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn names_follow_the_rules() {
    for ok in [
        "inventory",
        "a",
        "pack_2",
        "b2b_orders",
        &"x".repeat(MAX_NAME_LEN),
    ] {
        assert!(validate_name(ok).is_ok(), "{ok}");
    }
    let too_long = "x".repeat(MAX_NAME_LEN + 1);
    for (bad, why) in [
        ("", "empty"),
        ("Inventory", "start with a lower-case letter"),
        ("2fast", "start with a lower-case letter"),
        ("_x", "start with a lower-case letter"),
        ("my-pack", "`-` is not allowed"),
        ("café", "`é` is not allowed"),
        ("fn", "Rust keyword"),
        ("self", "Rust keyword"),
        ("gen", "Rust keyword"),
        ("std", "crate Rust or Valhalla has"),
        ("valhalla", "crate Rust or Valhalla has"),
        (too_long.as_str(), "longer than 32"),
    ] {
        let message = validate_name(bad).expect_err(bad).to_string();
        assert!(message.contains(why), "{bad}: {message}");
        assert!(message.contains("is not a valid pack name"), "{message}");
    }
}

#[test]
fn a_member_is_added_in_the_lists_own_layout_and_nothing_else_changes() {
    let edited = edit::add_member(MANIFEST, "plugins/inventory").unwrap();
    assert_eq!(
        edited,
        MANIFEST.replace(
            "    \"plugins/fixtures/hostile\",\n]",
            "    \"plugins/fixtures/hostile\",\n    \"plugins/inventory\",\n]"
        )
    );
    // a last member without its comma gets one
    let bare = "[workspace]\nmembers = [\n  \"a\",\n  \"b\"\n]\n";
    assert_eq!(
        edit::add_member(bare, "c").unwrap(),
        "[workspace]\nmembers = [\n  \"a\",\n  \"b\",\n  \"c\",\n]\n"
    );
    // one-line lists, empty or not
    assert_eq!(
        edit::add_member("[workspace]\nmembers = [\"a\"]\n", "b").unwrap(),
        "[workspace]\nmembers = [\"a\", \"b\"]\n"
    );
    assert_eq!(
        edit::add_member("[workspace]\nmembers = []\n", "b").unwrap(),
        "[workspace]\nmembers = [\"b\"]\n"
    );
    // no list to add to: refused, naming what to do by hand
    let none = edit::add_member("[package]\nname = \"x\"\n", "b")
        .unwrap_err()
        .to_string();
    assert!(none.contains("by hand"), "{none}");
}

#[test]
fn the_pack_block_is_appended_after_the_rest() {
    let block = render(CONFIG_BLOCK, "inventory");
    let edited = edit::add_pack_block(CONFIG, "inventory", &block).unwrap();
    assert!(
        edited.starts_with(CONFIG),
        "the file before the block is unchanged"
    );
    assert!(
        edited.contains("\n[packs.inventory]\nenabled = true"),
        "{edited}"
    );
    let unterminated = edit::add_pack_block("[server]\nbind = \"x\"", "inventory", &block).unwrap();
    assert!(unterminated.starts_with("[server]\nbind = \"x\"\n\n[packs.inventory]"));
}

#[test]
fn rendered_templates_carry_the_name_and_no_placeholder() {
    for template in [CARGO_TOML, LIB_RS, MIGRATION, CONFIG_BLOCK] {
        let text = render(template, "inventory");
        assert!(text.contains("inventory"), "{text}");
        assert!(!text.contains("{{"), "{text}");
    }
    let lib = render(LIB_RS, "inventory");
    assert!(lib.contains("Pack::new(\"inventory\""));
    assert!(lib.contains("\"/inventory/items\""));
    assert!(lib.contains("const TABLE: &'static str = \"inventory_items\""));
    assert!(render(MIGRATION, "inventory").contains("CREATE TABLE inventory_items ("));
    assert!(render(CARGO_TOML, "inventory").contains("name = \"inventory\""));
    // the longest name keeps the code inside rustfmt's 100 columns
    let longest = render(LIB_RS, &"x".repeat(MAX_NAME_LEN));
    let wide: Vec<&str> = longest
        .lines()
        .filter(|l| l.chars().count() > 100)
        .collect();
    assert!(wide.is_empty(), "{wide:#?}");
}

#[test]
fn a_new_pack_writes_its_files_and_both_edits() {
    let dir = checkout();
    let root = dir.path();
    let plan = new_pack(root, Path::new("config.toml"), "inventory").unwrap();
    let lib = std::fs::read_to_string(root.join("plugins/inventory/src/lib.rs")).unwrap();
    assert_eq!(lib, render(LIB_RS, "inventory"));
    let cargo = std::fs::read_to_string(root.join("plugins/inventory/Cargo.toml")).unwrap();
    assert!(cargo.contains("name = \"inventory\""));
    let sql = std::fs::read_to_string(root.join("migrations/inventory/0001_init.sql")).unwrap();
    assert!(sql.contains("CREATE TABLE inventory_items"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("    \"plugins/inventory\",\n]"));
    assert!(manifest.contains("# the guest SDK") && manifest.contains("# comment kept"));
    let config = std::fs::read_to_string(root.join("config.toml")).unwrap();
    assert!(config.starts_with(CONFIG));
    assert!(config.contains("[packs.inventory]\nenabled = true"));
    let report = plan.to_string();
    assert!(
        report.contains("created") && report.contains("cargo xtask packs"),
        "{report}"
    );
    // no temporary file is left beside the edited ones
    assert!(snapshot(root).iter().all(|(p, _)| !p.ends_with(".tmp")));
}

#[test]
fn every_refusal_writes_nothing() {
    let dir = checkout();
    let root = dir.path();
    let config = Path::new("config.toml");
    let mkdir = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    mkdir("plugins/taken_dir");
    mkdir("migrations/taken_migrations");
    std::fs::write(
        root.join("config.toml"),
        format!("{CONFIG}\n[packs.taken_config]\nenabled = false\n"),
    )
    .unwrap();
    let before = snapshot(root);
    for (name, says) in [
        ("taken_dir", "plugins/taken_dir is there"),
        ("taken_migrations", "migrations/taken_migrations is there"),
        ("taken_config", "has [packs.taken_config]"),
        ("notes", "migrations/notes is there"),
        (
            "hostile",
            "workspace member plugins/fixtures/hostile is named so",
        ),
        ("sdk", "plugins/sdk is there"),
        ("valhalla_sdk", "workspace member plugins/sdk"),
        ("Bad", "not a valid pack name"),
        ("match", "Rust keyword"),
    ] {
        let message = new_pack(root, config, name).expect_err(name).to_string();
        assert!(message.contains(says), "{name}: {message}");
        assert_eq!(snapshot(root), before, "{name} wrote something");
    }
}

#[test]
fn a_directory_that_is_not_a_checkout_is_refused() {
    let empty = tempfile::tempdir().unwrap();
    let message = new_pack(empty.path(), Path::new("config.toml"), "inventory")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("is not a Valhalla checkout") && message.contains("--root"),
        "{message}"
    );
    let dir = checkout();
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();
    let message = new_pack(dir.path(), Path::new("config.toml"), "inventory")
        .unwrap_err()
        .to_string();
    assert!(message.contains("no config.toml"), "{message}");
    assert!(!dir.path().join("plugins/inventory").exists());
}

#[test]
fn the_config_may_live_elsewhere_with_its_own_migrations_dir() {
    let dir = checkout();
    let root = dir.path();
    std::fs::create_dir_all(root.join("deploy")).unwrap();
    std::fs::write(
        root.join("deploy/prod.toml"),
        "[runtime]\nmigrations_dir = \"../db\"\n",
    )
    .unwrap();
    new_pack(root, Path::new("deploy/prod.toml"), "inventory").unwrap();
    assert!(root.join("db/inventory/0001_init.sql").is_file());
    let prod = std::fs::read_to_string(root.join("deploy/prod.toml")).unwrap();
    assert!(prod.contains("[packs.inventory]"));
    assert_eq!(
        std::fs::read_to_string(root.join("config.toml")).unwrap(),
        CONFIG
    );
}
