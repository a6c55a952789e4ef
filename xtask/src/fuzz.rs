//! The bounded fuzz run of `cargo xtask test`: each cargo-fuzz target of `fuzz/` for a few
//! seconds (`VALHALLA_FUZZ_SECONDS`, 30 by default; 0 skips), when the machine has a nightly
//! toolchain with cargo-fuzz. Without them it says so and skips: the same properties run on
//! stable as proptests in the unit tests. A crash fails the run, naming its input under
//! `fuzz/artifacts/`.

use std::process::Command;

use anyhow::{Result, bail};

/// The targets (`fuzz/Cargo.toml`'s bins).
pub const TARGETS: &[&str] = &[
    "http_request",
    "sdk_json_body",
    "config_parse",
    "sql_sandbox",
];

/// `cargo fuzz` on the nightly toolchain, without the variables of the stable cargo that
/// runs xtask (cargo-fuzz would call that cargo back).
fn nightly_cargo() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(super::root().join("fuzz"));
    for var in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "RUSTC_WRAPPER",
    ] {
        c.env_remove(var);
    }
    c
}

/// Why the fuzz run cannot happen here, if it cannot.
fn missing() -> Option<&'static str> {
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nightly"));
    if !nightly {
        return Some("no nightly toolchain (rustup toolchain install nightly)");
    }
    let fuzz = nightly_cargo()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (!fuzz).then_some("no cargo-fuzz (cargo install cargo-fuzz)")
}

/// Build the targets and run each for the configured seconds.
pub fn bounded() -> Result<()> {
    let seconds: u64 = std::env::var("VALHALLA_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    if seconds == 0 {
        println!("fuzz: skipped (VALHALLA_FUZZ_SECONDS=0)");
        return Ok(());
    }
    if let Some(why) = missing() {
        println!("fuzz: skipped: {why}; the proptests ran the same properties on stable");
        return Ok(());
    }
    let mut build = nightly_cargo();
    build.args(["build", "-O", "-s", "none"]);
    super::status(build, "building the fuzz targets")?;
    for target in TARGETS {
        println!("fuzz: {target} for {seconds} s");
        let mut run = nightly_cargo();
        run.args(["run", "-O", "-s", "none", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=20", "-rss_limit_mb=4096", "-print_final_stats=1"]);
        let status = run.status()?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}): its input is under fuzz/artifacts/{target}/"
            );
        }
    }
    Ok(())
}
