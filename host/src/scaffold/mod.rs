//! `valhalla new-pack NAME`: the scaffold of a new pack in a Valhalla checkout. It writes
//! `plugins/NAME/` (a crate with one GET and one POST route on the SDK: typed bodies, validation,
//! a table, an audit event), `migrations/NAME/0001_init.sql`, appends `[packs.NAME]` to the
//! config and the crate to the workspace `members`. Everything is checked and prepared first
//! ([`plan`]): a taken or invalid name writes nothing. The templates are the files in
//! `templates/`, with `{{name}}` for the pack's name.

use std::fmt;
use std::path::{Path, PathBuf};

mod edit;
#[cfg(test)]
mod tests;

/// The longest pack name: the PostgreSQL role `vh_<8 hex>_<pack>` and the table
/// `<pack>_items` stay well inside PostgreSQL's 63-byte identifiers, and the generated code
/// inside the 100 columns rustfmt keeps to.
pub const MAX_NAME_LEN: usize = 32;

/// Rust's keywords (strict, reserved and edition 2024's `gen`): a crate cannot be named so.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Crate names taken already: Rust's own crates, and the host's library.
const RESERVED: &[&str] = &["core", "std", "alloc", "proc_macro", "test", "valhalla"];

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const MIGRATION: &str = include_str!("templates/0001_init.sql.tmpl");
const CONFIG_BLOCK: &str = include_str!("templates/config.toml.tmpl");

/// Why a pack was not scaffolded. Nothing was written, except for [`ScaffoldError::Io`]
/// (which names the file that failed; what was written before it is removed again).
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{name}` is not a valid pack name: {why}")]
    InvalidName { name: String, why: String },
    #[error("{} is not a Valhalla checkout: {why} (give the repository root with --root)", root.display())]
    NotACheckout { root: PathBuf, why: String },
    #[error("a pack named `{name}` exists already: {what}")]
    Exists { name: String, what: String },
    #[error("{file} does not parse: {message}")]
    Parse { file: &'static str, message: String },
    #[error("cannot edit {file}: {why}")]
    Edit { file: &'static str, why: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Lower-case ASCII letters, digits and `_`, starting with a letter, at most
/// [`MAX_NAME_LEN`]; not a Rust keyword nor a crate name Rust or the host has.
pub fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |why: &str| ScaffoldError::InvalidName {
        name: name.to_string(),
        why: why.into(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(&format!(
            "it is longer than {MAX_NAME_LEN} characters"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid("it must start with a lower-case letter (a-z)"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(invalid(&format!(
            "`{c}` is not allowed (lower-case letters a-z, digits and `_` only)"
        )));
    }
    if KEYWORDS.contains(&name) {
        return Err(invalid("it is a Rust keyword"));
    }
    if RESERVED.contains(&name) {
        return Err(invalid(
            "it is the name of a crate Rust or Valhalla has already",
        ));
    }
    Ok(())
}

/// A file to write: its path and its text.
#[derive(Debug, Clone)]
pub struct File {
    pub path: PathBuf,
    pub text: String,
}

/// Everything `new-pack` will write, prepared and checked: new files, and the new text of the
/// workspace manifest and the config.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// `plugins/NAME/Cargo.toml`, `plugins/NAME/src/lib.rs`, `migrations/NAME/0001_init.sql`
    pub created: Vec<File>,
    /// the root `Cargo.toml` with the new member
    pub workspace: File,
    /// the config with the new `[packs.NAME]` block
    pub config: File,
}

/// A template with the pack's name filled in.
pub fn render(template: &str, name: &str) -> String {
    template.replace("{{name}}", name)
}

fn read(path: &Path) -> Result<String, ScaffoldError> {
    std::fs::read_to_string(path).map_err(|source| ScaffoldError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Check that `root` is a Valhalla checkout, `name` valid and free, and prepare the files.
/// `config` is relative to `root` unless absolute. Writes nothing.
pub fn plan(root: &Path, config: &Path, name: &str) -> Result<Plan, ScaffoldError> {
    validate_name(name)?;
    let not_checkout = |why: String| ScaffoldError::NotACheckout {
        root: root.to_path_buf(),
        why,
    };
    let manifest_path = root.join("Cargo.toml");
    if !manifest_path.is_file() {
        return Err(not_checkout("it has no Cargo.toml".into()));
    }
    let manifest_text = read(&manifest_path)?;
    let manifest = edit::parse(&manifest_text, "Cargo.toml")?;
    let members = edit::members(&manifest);
    if !members.iter().any(|m| m == "plugins/sdk") || !root.join("plugins/sdk/Cargo.toml").is_file()
    {
        return Err(not_checkout(
            "its Cargo.toml has no workspace member plugins/sdk".into(),
        ));
    }
    let config_path = root.join(config);
    if !config_path.is_file() {
        return Err(not_checkout(format!("it has no {}", config.display())));
    }
    let config_text = read(&config_path)?;
    let config_table = edit::parse(&config_text, "config.toml")?;
    let migrations = migrations_dir(&config_path, &config_table);

    let exists = |what: String| ScaffoldError::Exists {
        name: name.to_string(),
        what,
    };
    let plugin_dir = root.join("plugins").join(name);
    if plugin_dir.exists() {
        return Err(exists(format!("{} is there", plugin_dir.display())));
    }
    let migration_dir = migrations.join(name);
    if migration_dir.exists() {
        return Err(exists(format!("{} is there", migration_dir.display())));
    }
    if edit::has_pack(&config_table, name) {
        return Err(exists(format!("{} has [packs.{name}]", config.display())));
    }
    if let Some(member) = members.iter().find(|m| taken_by_member(root, m, name)) {
        return Err(exists(format!("workspace member {member} is named so")));
    }

    let member = format!("plugins/{name}");
    Ok(Plan {
        name: name.to_string(),
        created: vec![
            File {
                path: plugin_dir.join("Cargo.toml"),
                text: render(CARGO_TOML, name),
            },
            File {
                path: plugin_dir.join("src/lib.rs"),
                text: render(LIB_RS, name),
            },
            File {
                path: migration_dir.join("0001_init.sql"),
                text: render(MIGRATION, name),
            },
        ],
        workspace: File {
            path: manifest_path,
            text: edit::add_member(&manifest_text, &member)?,
        },
        config: File {
            text: edit::add_pack_block(&config_text, name, &render(CONFIG_BLOCK, name))?,
            path: config_path,
        },
    })
}

/// `runtime.migrations_dir` of the config (relative to its directory), `migrations` by default.
fn migrations_dir(config_path: &Path, config: &toml::Table) -> PathBuf {
    let dir = config
        .get("runtime")
        .and_then(|r| r.get("migrations_dir"))
        .and_then(|d| d.as_str())
        .unwrap_or("migrations");
    config_path.parent().unwrap_or(Path::new(".")).join(dir)
}

/// Is `name` the directory name or the crate name (`-` read as `_`) of workspace `member`?
fn taken_by_member(root: &Path, member: &str, name: &str) -> bool {
    let same = |other: &str| other.replace('-', "_") == name;
    if Path::new(member)
        .file_name()
        .and_then(|f| f.to_str())
        .is_some_and(same)
    {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(root.join(member).join("Cargo.toml")) else {
        return false;
    };
    let package = text.parse::<toml::Table>().ok();
    package
        .as_ref()
        .and_then(|t| t.get("package"))
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .is_some_and(same)
}

/// Write a [`Plan`]: the new files (never over an existing one), then the workspace manifest
/// and the config (each written whole to a temporary file beside it and renamed over it). On a
/// failure, what was written is removed again and the two edited files are restored.
pub fn apply(plan: &Plan) -> Result<(), ScaffoldError> {
    let mut made: Vec<PathBuf> = Vec::new();
    let result = write_all(plan, &mut made);
    if result.is_err() {
        for dir in made.iter().rev() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    result
}

fn write_all(plan: &Plan, made: &mut Vec<PathBuf>) -> Result<(), ScaffoldError> {
    for file in &plan.created {
        let io = |source| ScaffoldError::Io {
            path: file.path.clone(),
            source,
        };
        let dir = file.path.parent().unwrap_or(Path::new("."));
        // the top directory this plan creates (plugins/NAME, migrations/NAME), removed on failure
        let top = top_new_dir(dir);
        std::fs::create_dir_all(dir).map_err(io)?;
        if let Some(top) = top
            && !made.contains(&top)
        {
            made.push(top);
        }
        use std::io::Write;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file.path)
            .map_err(io)?;
        out.write_all(file.text.as_bytes()).map_err(io)?;
    }
    let old_manifest = read(&plan.workspace.path)?;
    replace(&plan.workspace)?;
    if let Err(e) = replace(&plan.config) {
        let _ = std::fs::write(&plan.workspace.path, old_manifest);
        return Err(e);
    }
    Ok(())
}

/// The outermost missing directory on the way to `dir`, if any.
fn top_new_dir(dir: &Path) -> Option<PathBuf> {
    let mut top = None;
    for ancestor in dir.ancestors() {
        if ancestor.as_os_str().is_empty() || ancestor.exists() {
            break;
        }
        top = Some(ancestor.to_path_buf());
    }
    top
}

/// Replace `file.path` with `file.text` by a rename, so a reader never sees half a file.
fn replace(file: &File) -> Result<(), ScaffoldError> {
    let io = |source| ScaffoldError::Io {
        path: file.path.clone(),
        source,
    };
    let mut tmp = file.path.clone().into_os_string();
    tmp.push(".new-pack.tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &file.text).map_err(io)?;
    std::fs::rename(&tmp, &file.path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Scaffold pack `name` into the checkout at `root` (config `config`, relative to `root`
/// unless absolute): [`plan`], then [`apply`].
pub fn new_pack(root: &Path, config: &Path, name: &str) -> Result<Plan, ScaffoldError> {
    let plan = plan(root, config, name)?;
    apply(&plan)?;
    Ok(plan)
}

/// What `new-pack` prints once done: the files and the next steps.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        writeln!(f, "new pack `{name}`:")?;
        for file in &self.created {
            writeln!(f, "  created {}", file.path.display())?;
        }
        writeln!(
            f,
            "  added   plugins/{name} to [workspace] members in {}",
            self.workspace.path.display()
        )?;
        writeln!(
            f,
            "  added   [packs.{name}] (enabled) to {}",
            self.config.path.display()
        )?;
        writeln!(f)?;
        writeln!(f, "next:")?;
        writeln!(
            f,
            "  cargo xtask packs                                   # builds target/wasm32-wasip2/pack/{name}.wasm"
        )?;
        writeln!(
            f,
            "  VALHALLA_ADMIN_KEY=$KEY cargo xtask run             # serves it with the others"
        )?;
        writeln!(
            f,
            "  curl -X POST localhost:8000/{name}/items -H \"X-API-Key: $KEY\" \\"
        )?;
        writeln!(
            f,
            "       -H 'Content-Type: application/json' -d '{{\"name\": \"first\"}}'"
        )?;
        writeln!(f, "see docs/writing-a-pack.md")
    }
}
