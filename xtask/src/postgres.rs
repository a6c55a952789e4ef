//! A PostgreSQL server for the test suite: the one named by `VALHALLA_TEST_POSTGRES_URL`, or a
//! throwaway cluster started from the machine's PostgreSQL binaries (Debian's
//! `postgresql` package) on a free loopback port, stopped and deleted afterwards.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A server the tests can use; a throwaway one stops when dropped.
/// The throwaway server's superuser password.
const PASSWORD: &str = "valhalla-test-password";

pub enum Server {
    External(String),
    Throwaway {
        url: String,
        bin: PathBuf,
        data: PathBuf,
        as_postgres: bool,
    },
}

impl Server {
    pub fn url(&self) -> &str {
        match self {
            Self::External(url) | Self::Throwaway { url, .. } => url,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Self::Throwaway {
            bin,
            data,
            as_postgres,
            ..
        } = self
        {
            let _ = pg_command(bin, "pg_ctl", *as_postgres)
                .args(["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"])
                .output();
            let _ = std::fs::remove_dir_all(&data);
        }
    }
}

/// Newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: run its tools as the `postgres` user then.
fn pg_command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    let exe = bin.join(tool);
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The server for this test run, or `None` when the caller opted out.
pub fn for_tests() -> Result<Option<Server>> {
    if let Ok(url) = std::env::var("VALHALLA_TEST_POSTGRES_URL") {
        eprintln!("xtask: PostgreSQL tests use VALHALLA_TEST_POSTGRES_URL");
        return Ok(Some(Server::External(url)));
    }
    let Some(bin) = find_bin() else {
        if std::env::var("VALHALLA_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!(
                "xtask: no PostgreSQL here; VALHALLA_TEST_SKIP_POSTGRES=1, so its tests are skipped"
            );
            return Ok(None);
        }
        bail!(
            "the PostgreSQL tests need a server: install Debian's `postgresql` package \
             (apt-get install postgresql), or set VALHALLA_TEST_POSTGRES_URL, \
             or set VALHALLA_TEST_SKIP_POSTGRES=1 to skip them"
        );
    };
    let as_postgres = is_root();
    let data = std::env::temp_dir().join(format!("valhalla-test-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    if as_postgres {
        let mut c = Command::new("chown");
        c.args(["postgres:postgres"]).arg(&data);
        run(c, "chown of the PostgreSQL data directory")?;
    }
    // Connections over TCP authenticate with a password (SCRAM), as in production, so the
    // per-pack roles' own logins are tested for real.
    let pwfile = std::env::temp_dir().join(format!("valhalla-test-pg-{}.pw", std::process::id()));
    std::fs::write(&pwfile, format!("{PASSWORD}\n"))?;
    let mut init = pg_command(&bin, "initdb", as_postgres);
    init.args([
        "-D",
        &data.to_string_lossy(),
        "-U",
        "valhalla",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        &format!("--pwfile={}", pwfile.display()),
        "-E",
        "UTF8",
        "--no-sync",
    ]);
    let initialised = run(init, "initdb");
    let _ = std::fs::remove_file(&pwfile);
    initialised?;
    let port = free_port()?;
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
        data.display()
    );
    let log = data.join("server.log");
    let mut start = pg_command(&bin, "pg_ctl", as_postgres);
    start.args([
        "-D",
        &data.to_string_lossy(),
        "-o",
        &options,
        "-l",
        &log.to_string_lossy(),
        "-w",
        "start",
    ]);
    let server = Server::Throwaway {
        url: format!("postgres://valhalla:{PASSWORD}@127.0.0.1:{port}/postgres"),
        bin: bin.clone(),
        data: data.clone(),
        as_postgres,
    };
    run(start, "pg_ctl start").with_context(|| format!("see {}", log.display()))?;
    eprintln!(
        "xtask: throwaway PostgreSQL on 127.0.0.1:{port} ({})",
        bin.display()
    );
    Ok(Some(server))
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
