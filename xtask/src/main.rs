//! `cargo xtask`: build the packs and the host, run the server, run the whole test suite
//! (starting a throwaway PostgreSQL when the machine has one).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod bench;
mod fuzz;
mod load;
mod postgres;

const USAGE: &str = "\
usage: cargo xtask <command>

  build          add the wasm32-wasip2 target, build every pack and the host (release)
  run [ARGS]     build, then `valhalla serve --config config.toml [ARGS]` on 127.0.0.1:8000
  test [ARGS]    build the packs, start PostgreSQL if needed, run every test of the workspace,
                 then each fuzz target for VALHALLA_FUZZ_SECONDS (30; 0 skips) if the machine
                 has a nightly toolchain with cargo-fuzz
  packs          build only the packs
  bench [--seconds N] [--rounds N] [--only TEXT]
                 build release, load the real host (and a native axum+sqlx baseline) from
                 this process, then alternate each pack route with its native twin for
                 N rounds (default 5); the headline runs the shipped config.toml (guards
                 on, a read client's key) against it without guards and native, round by
                 round (--only default / paired / counted select rounds); write BENCHMARKS.md;
                 --only logs [--rows N]: only the system-log scale bench (1 000 000 rows by
                 default, or VALHALLA_BENCH_LOG_ROWS): deep cursor, filtered pages, a batched
                 purge with a concurrent writer's longest stall; prints, writes nothing
  load ADDR PATH [--connections N] [--seconds N] [--status N] [--header NAME:VALUE]...
       [--each-from-a-new-client]
                 drive GET PATH on a running server (e.g. while profiling it) and print
                 req/s, p50, p99 and errors; success is 2xx, or exactly --status; each
                 request forwarded for a new address from 198.18.0.0/15 if asked
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build_all(),
        Some("run") => build_all().and_then(|()| run(&args[1..])),
        Some("test") => test(&args[1..]),
        Some("packs") => build_packs(),
        Some("load") => load::command(&args[1..]),
        Some("bench") => build_all()
            .and_then(|()| {
                let mut c = cargo();
                c.args([
                    "build",
                    "--release",
                    "-p",
                    "valhalla",
                    "--example",
                    "native_baseline",
                ]);
                status(c, "building the native baseline")
            })
            .and_then(|()| bench::bench(&root(), &args[1..])),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut cmd: Command, what: &str) -> Result<()> {
    let s = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

/// `rustup target add wasm32-wasip2` unless it is already there.
fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
        .unwrap_or(false);
    if !installed {
        let mut c = Command::new("rustup");
        c.args(["target", "add", "wasm32-wasip2"]);
        status(c, "rustup target add wasm32-wasip2")?;
    }
    Ok(())
}

/// Crates under `plugins/` that build a component (crate-type cdylib), by package name.
fn pack_crates() -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut dirs = vec![root().join("plugins")];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            let manifest = path.join("Cargo.toml");
            if !manifest.is_file() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&manifest)?;
            if text.contains("cdylib")
                && let Some(name) = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("name = \""))
                    .and_then(|rest| rest.split('"').next())
            {
                found.push(name.to_string());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Every pack in one `cargo build --target wasm32-wasip2`.
fn build_packs() -> Result<()> {
    ensure_wasm_target()?;
    let mut c = cargo();
    c.args(["build", "--target", "wasm32-wasip2", "--profile", "pack"]);
    for name in pack_crates()? {
        c.args(["-p", &name]);
    }
    status(c, "building the packs")
}

fn build_all() -> Result<()> {
    build_packs()?;
    let mut c = cargo();
    c.args(["build", "--release", "-p", "valhalla"]);
    status(c, "building the host")
}

fn run(args: &[String]) -> Result<()> {
    let mut c = Command::new(root().join("target/release/valhalla"));
    c.current_dir(root())
        .args(["serve", "--config", "config.toml"])
        .args(args);
    status(c, "valhalla serve")
}

fn test(args: &[String]) -> Result<()> {
    build_packs()?;
    let server = postgres::for_tests()?;
    let mut c = cargo();
    // Every workspace member: host (unit + end-to-end), SDK, packs (their unit tests run
    // natively), xtask.
    c.args(["test", "--release", "--workspace"]).args(args);
    if let Some(server) = &server {
        c.env("VALHALLA_TEST_POSTGRES_URL", server.url());
    }
    let result = status(c, "cargo test");
    drop(server);
    result?;
    // a bounded fuzz run after the whole suite (not a filtered one), where the machine has
    // nightly and cargo-fuzz (else it says so)
    if args.is_empty() {
        fuzz::bounded()
    } else {
        Ok(())
    }
}
