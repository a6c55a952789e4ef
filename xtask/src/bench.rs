//! `cargo xtask bench`: build release, start the real host with every pack on a fresh SQLite
//! file, seed data, drive HTTP load from this (separate) process, run the native baseline
//! against the same database, measure start-up and memory, and write BENCHMARKS.md.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::ConfigToml;

use crate::load::{self, Target};

#[path = "bench_logs.rs"]
mod logs;
#[path = "bench_overload.rs"]
mod overload;
#[path = "bench_scale.rs"]
mod scale;

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";
/// Config rows seeded, as in issue 18 (`key_0` … `key_999`); the headline reads `key_500`.
const SEED_ROWS: usize = 1000;
const ALL_PACKS: [&str; 11] = [
    "system_config",
    "route_index",
    "feature_flags",
    "system_log",
    "deployment_profile",
    "api_clients",
    "rate_limits",
    "maintenance",
    "read_only_shield",
    "admin_ops",
    "faulty",
];

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Peak resident memory (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }
}

fn wait_ready(addr: SocketAddr, path: &str, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(mut s) = TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return Ok(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("{addr}{path} not ready after {limit:?}")
}

/// The start-up measurement's config: every pack of the workspace (`faulty` included), auth
/// off, written with `testkit`'s writer (the one the e2e harness uses; there every test parses
/// what it writes with the host's own config types). The load scenarios run the shipped
/// `config.toml` instead ([`Shipped`]).
fn write_startup_config(dir: &Path, root: &Path, cache: &Path) -> Result<PathBuf> {
    let mut config = ConfigToml::in_workspace(root)
        .guard_order(&["api_clients", "rate_limits", "read_only_shield"])
        .database_url(&format!("sqlite://{}", dir.join("startup.db").display()))
        .cache_dir(cache)
        .auth_off();
    for pack in ALL_PACKS {
        let on = !matches!(pack, "api_clients" | "rate_limits" | "read_only_shield");
        config = config.pack(pack, on);
    }
    config = config.grant_packs("read_only_shield", &["maintenance"]);
    let path = dir.join("startup.toml");
    config.write(&path)?;
    Ok(path)
}

/// The repository's `config.toml`, run as it is shipped: the server reads the file itself and
/// only the `VALHALLA_*` variables a bench must set override it (see [`Shipped::env`]), so the
/// measured configuration cannot drift from the shipped one.
struct Shipped {
    path: PathBuf,
    /// `server.guard_order`, as the file has it
    guards: Vec<String>,
    /// the file's `server.guard_order` and `auth.enabled` lines, quoted in BENCHMARKS.md
    guard_line: String,
    auth_line: String,
}

impl Shipped {
    fn read(root: &Path) -> Result<Self> {
        let path = root.join("config.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let (mut section, mut guard_line, mut auth_line) = ("", None, None);
        for line in text.lines() {
            let code = line.split('#').next().unwrap_or("").trim();
            if code.starts_with('[') {
                section = code;
                continue;
            }
            match (section, code.split('=').next().map(str::trim)) {
                ("[server]", Some("guard_order")) => guard_line = Some(code.to_string()),
                ("[auth]", Some("enabled")) => auth_line = Some(code.to_string()),
                _ => {}
            }
        }
        let guard_line = guard_line.context("config.toml has no server.guard_order")?;
        let guards = guard_line
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| {
                list.split(',')
                    .map(|g| g.trim().trim_matches('"').to_string())
                    .filter(|g| !g.is_empty())
                    .collect::<Vec<_>>()
            })
            .context("config.toml: server.guard_order is not a one-line list")?;
        Ok(Self {
            path,
            guards,
            guard_line,
            auth_line: auth_line.unwrap_or_else(|| "(no auth.enabled: the default)".into()),
        })
    }

    /// The overrides: the database (a temp SQLite file), the compiled-pack cache and, with the
    /// guards, the bootstrap admin key; without them, authentication off and every guard of
    /// `server.guard_order` disabled (the same file otherwise).
    fn env(&self, dir: &Path, cache: &Path, guards: bool) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "VALHALLA_DATABASE_URL".to_string(),
                format!("sqlite://{}", dir.join("bench.db").display()),
            ),
            ("VALHALLA_CACHE_DIR".into(), cache.display().to_string()),
        ];
        if guards {
            env.push(("VALHALLA_ADMIN_KEY".into(), ADMIN_KEY.into()));
        } else {
            env.push(("VALHALLA_AUTH_ENABLED".into(), "false".into()));
            for guard in &self.guards {
                env.push((
                    format!("VALHALLA_PACK_{}_ENABLED", guard.to_ascii_uppercase()),
                    "false".into(),
                ));
            }
        }
        env
    }
}

/// Start `valhalla serve --config <config> --bind <a free port>` with `env` (and no other
/// `VALHALLA_*` variable of this process's environment); answers it once ready.
fn start(root: &Path, config: &Path, env: &[(String, String)]) -> Result<(Server, Duration)> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut cmd = Command::new(root.join("target/release/valhalla"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("VALHALLA_") {
            cmd.env_remove(var);
        }
    }
    cmd.args(["serve", "--config"])
        .arg(config)
        .args(["--bind", &addr.to_string()])
        .env("VALHALLA_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let child = cmd.spawn().context("start valhalla")?;
    let server = Server { child, addr };
    wait_ready(addr, "/system/health/ready", Duration::from_secs(120))?;
    Ok((server, started.elapsed()))
}

/// A setup request that must succeed; answers the body.
fn call(addr: SocketAddr, target: &Target) -> Result<String> {
    let (status, body) = load::once_with_body(addr, target)?;
    if !(200..300).contains(&status) {
        bail!(
            "setup request {} {} answered {status}: {body}",
            target.method,
            target.path
        );
    }
    Ok(body)
}

/// A setup request that must succeed.
fn send(addr: SocketAddr, target: &Target) -> Result<()> {
    call(addr, target).map(|_| ())
}

/// The first string field `field` of a JSON answer (ids and generated keys: no escapes).
fn json_str(body: &str, field: &str) -> Result<String> {
    body.split_once(&format!("\"{field}\":\""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_string())
        .with_context(|| format!("no `{field}` in {body}"))
}

/// An API client registered through `POST /system/clients` with the admin key: its id and
/// the key the server generated for it (shown once).
struct ApiClient {
    id: String,
    key: String,
}

fn register(addr: SocketAddr, name: &str, roles: &[&str]) -> Result<ApiClient> {
    let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
    let body = call(
        addr,
        &Target::post_json(
            "/system/clients",
            format!(r#"{{"name":"{name}","roles":[{}]}}"#, roles.join(",")),
        )
        .header("x-api-key", ADMIN_KEY),
    )?;
    Ok(ApiClient {
        id: json_str(&body, "id")?,
        key: json_str(&body, "api_key")?,
    })
}

/// The issue's data: `key_0` … `key_{n-1}` in system_config, and a feature flag.
fn seed(addr: SocketAddr) -> Result<()> {
    for i in 0..SEED_ROWS {
        send(
            addr,
            &Target::post_json(
                "/system/config",
                format!(r#"{{"key":"key_{i}","value":"value {i}, of some length"}}"#),
            )
            .header("x-api-key", ADMIN_KEY),
        )?;
    }
    send(
        addr,
        &Target::post_json("/system/features", r#"{"key":"bench_flag","enabled":true}"#)
            .header("x-api-key", ADMIN_KEY),
    )
}

/// A request that must answer exactly `status` (the servers' configuration, checked).
fn expect_status(addr: SocketAddr, target: &Target, status: u16, what: &str) -> Result<()> {
    let got = load::once(addr, target)?;
    if got != status {
        bail!("{what}: {} answered {got}, not {status}", target.path);
    }
    Ok(())
}

struct Row {
    scenario: String,
    concurrency: usize,
    report: load::Report,
}

/// Which scenarios to run: all, or those whose name contains `--only`'s text.
struct Plan {
    only: Option<String>,
    duration: Duration,
    rounds: usize,
}

impl Plan {
    fn wants(&self, scenario: &str) -> bool {
        self.only.as_deref().is_none_or(|o| scenario.contains(o))
    }
}

fn drive(rows: &mut Vec<Row>, addr: SocketAddr, scenario: &str, target: &Target, plan: &Plan) {
    if !plan.wants(scenario) {
        return;
    }
    let duration = plan.duration;
    for c in CONCURRENCY {
        let report = load::run(addr, target, c, duration);
        eprintln!(
            "bench: {scenario:<40} c={c:<3} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  errors {}",
            report.rps, report.p50_us, report.p99_us, report.errors
        );
        rows.push(Row {
            scenario: scenario.into(),
            concurrency: c,
            report,
        });
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let head = format!("`{}`", git(&["rev-parse", "--short", "HEAD"]).trim());
    // what was built and measured is the working tree: say when it is not the commit
    let changed = git(&["status", "--porcelain", "--untracked-files=no"]);
    let mut dirs: Vec<&str> = changed
        .lines()
        .filter_map(|l| l.get(3..))
        .map(|path| path.split('/').next().unwrap_or(path))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    if dirs.is_empty() {
        head
    } else {
        format!(
            "{head} + uncommitted changes to {} files (in {})",
            changed.lines().count(),
            dirs.join(", ")
        )
    }
}

/// The value after `--name` in `args`.
pub fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
}

pub fn bench(root: &Path, args: &[String]) -> Result<()> {
    if arg(args, "--only").is_some_and(|o| o == "logs") {
        return logs::run(root, args);
    }
    if arg(args, "--only").is_some_and(|o| o == "overload") {
        return overload::run(root, args);
    }
    if arg(args, "--only").is_some_and(|o| o == "scale") {
        return scale::run(root, args);
    }
    let seconds: u64 = arg(args, "--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let plan = Plan {
        only: arg(args, "--only").cloned(),
        duration: Duration::from_secs(seconds),
        rounds: arg(args, "--rounds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    };
    let dir = tempfile_dir()?;
    let cache = dir.join("compiled");

    // Start-up: cold (empty compiled-pack cache), then warm, with every pack of the workspace.
    let startup = write_startup_config(&dir, root, &cache)?;
    let (server, cold) = start(root, &startup, &[])?;
    drop(server);
    let (server, warm) = start(root, &startup, &[])?;
    drop(server);
    eprintln!("bench: start to ready: cold {cold:?}, warm {warm:?}");

    // The shipped config.toml, as it is (guards on), and the same file without its guards,
    // both on one database file, with the native baseline on it too; all three stay up.
    let shipped = Shipped::read(root)?;
    let (guarded, shipped_warm) = start(root, &shipped.path, &shipped.env(&dir, &cache, true))?;
    let g = guarded.addr;
    let reader = register(g, "bench-reader", &["read"])?;
    let writer = register(g, "bench-writer", &["read", "write"])?;
    let counted = register(g, "bench-counted", &["read"])?;
    seed(g)?;
    seed_blocklist(g)?;
    let (plain, _) = start(root, &shipped.path, &shipped.env(&dir, &cache, false))?;
    let u = plain.addr;
    let native = native_baseline(root, &dir)?;
    let n = native.addr;
    // what each server is, checked: the guarded one refuses a request without a key
    expect_status(
        g,
        &Target::get(HEADLINE_PATH),
        401,
        "shipped config, no key",
    )?;
    expect_status(
        g,
        &Target::get(HEADLINE_PATH).header("x-api-key", &reader.key),
        200,
        "shipped config, the read client's key",
    )?;
    expect_status(u, &Target::get(HEADLINE_PATH), 200, "guards off, no key")?;
    eprintln!(
        "bench: shipped config.toml ({}; {}) on {g}, without guards on {u}, native on {n}",
        shipped.guard_line, shipped.auth_line
    );

    let headline = if plan.wants(HEADLINE) {
        headline_rounds(g, u, n, &reader.key, &plan)
    } else {
        Vec::new()
    };

    let mut rows = Vec::new();
    drive(
        &mut rows,
        u,
        "GET /system/health/live (host only)",
        &Target::get("/system/health/live"),
        &plan,
    );
    drive(&mut rows, u, CACHED, &Target::get(HEADLINE_PATH), &plan);
    drive(
        &mut rows,
        u,
        UNCACHED,
        &Target::get(MISSING_PATH).expecting(404),
        &plan,
    );
    drive(
        &mut rows,
        u,
        "GET /system/features/{key} (pack + cache)",
        &Target::get("/system/features/bench_flag"),
        &plan,
    );
    drive(
        &mut rows,
        n,
        NATIVE,
        &Target::get(NATIVE_HEADLINE_PATH),
        &plan,
    );
    drive(
        &mut rows,
        n,
        NATIVE_UNCACHED,
        &Target::get(NATIVE_MISSING_PATH).expecting(404),
        &plan,
    );
    let paired = if plan.wants(PAIRED) {
        pairs(u, n, &plan)
    } else {
        Vec::new()
    };

    // The guarded server's own rows: the read client, a missing key.
    drive(
        &mut rows,
        g,
        GUARDED_GET,
        &Target::get(HEADLINE_PATH).header("x-api-key", &reader.key),
        &plan,
    );
    drive(
        &mut rows,
        g,
        GUARDED_MISSING,
        &Target::get(MISSING_PATH)
            .header("x-api-key", &reader.key)
            .expecting(404),
        &plan,
    );

    // (Before the counted client's rate-limit rule below, which all three would not share.)
    // The blocklist guard's cost with 10 000 rules against none, every request from a new
    // client address: the shipped file with 127.0.0.1 as a trusted proxy, on the seeded
    // database and on an empty one.
    let blocklist_rounds = if plan.wants(BLOCKLIST) {
        let trusting = |db_dir: &Path| -> Result<Server> {
            std::fs::create_dir_all(db_dir)?;
            let mut env = shipped.env(db_dir, &cache, true);
            env.push(("VALHALLA_TRUSTED_PROXIES".into(), "127.0.0.1".into()));
            Ok(start(root, &shipped.path, &env)?.0)
        };
        // each on a database of its own, the rules its only data
        let full = trusting(&dir.join("full"))?;
        let few = trusting(&dir.join("few"))?;
        let empty = trusting(&dir.join("empty"))?;
        seed_blocklist(full.addr)?;
        for i in 0..FEW_RULES {
            send(
                few.addr,
                &Target::post_json("/system/security/blocklist", few_rule(i))
                    .header("x-api-key", ADMIN_KEY),
            )?;
        }
        let blocked = Target::get(MISSING_PATH)
            .header("x-api-key", ADMIN_KEY)
            .header("x-forwarded-for", "10.0.0.5");
        expect_status(full.addr, &blocked, 403, "a seeded blocklist address")?;
        expect_status(few.addr, &blocked, 403, "a blocklist address")?;
        expect_status(empty.addr, &blocked, 404, "no blocklist rules")?;
        blocklist_rounds(&[empty.addr, few.addr, full.addr], &plan)
    } else {
        Vec::new()
    };

    // Not the shipped data (which has no rate-limit rule): a rule counting one client, so
    // that client's every request is counted (rate_limits' memo: by the host).
    let counted_rounds = if plan.wants(COUNTED) {
        send(
            g,
            &Target::post_json(
                "/system/ratelimits/rules",
                format!(
                    r#"{{"scope":"api_key","key":"client:{}","window_seconds":1,"max_requests":1000000}}"#,
                    counted.id
                ),
            )
            .header("x-api-key", ADMIN_KEY),
        )?;
        counted_pairs(g, u, &counted.key, &plan)
    } else {
        Vec::new()
    };

    // The writes last: every read above runs on the seeded data, not in what a write storm
    // leaves behind (the audit rows still being written, a grown WAL).
    drive(
        &mut rows,
        u,
        "POST /system/config (pack + write)",
        &Target::post_json("/system/config", r#"{"key":"bench.write","value":"v"}"#),
        &plan,
    );
    drive(
        &mut rows,
        g,
        GUARDED_POST,
        &Target::post_json("/system/config", r#"{"key":"bench.write","value":"v"}"#)
            .header("x-api-key", &writer.key),
        &plan,
    );
    let rss = plain.peak_rss_mib();
    let rss_guarded = guarded.peak_rss_mib();
    drop((guarded, plain, native));
    if plan.only.is_some() {
        eprintln!("bench: --only given: BENCHMARKS.md left as it is");
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    let micro = micro_benchmarks(root)?;
    let run = Run {
        command: std::iter::once("cargo xtask bench".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        seconds,
        rounds: plan.rounds,
        cold,
        warm,
        shipped_warm,
        rss,
        rss_guarded,
    };
    let mut md = render(
        root,
        &run,
        &shipped,
        &headline,
        &counted_rounds,
        &rows,
        &paired,
    );
    md.push_str(&render_blocklist(&blocklist_rounds));
    md.push_str(&micro);
    md.push_str(WHERE_THE_TIME_GOES);
    // the logs, overload and scale-out benches' sections (`--only logs|overload|scale`), and
    // the sections written by hand, stay as they are
    let before = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
    for (start, end) in [
        (logs::SECTION_START, logs::SECTION_END),
        // written by hand from `cargo bench -p feature_flags` and the fuzz runs
        ("<!-- flags bench: start -->", "<!-- flags bench: end -->"),
        ("<!-- fuzzing:start -->", "<!-- fuzzing:end -->"),
        (overload::SECTION_START, overload::SECTION_END),
        (scale::SECTION_START, scale::SECTION_END),
    ] {
        if let (Some(a), Some(b)) = (before.find(start), before.find(end))
            && b > a
        {
            md.push('\n');
            md.push_str(&before[a..b + end.len()]);
            md.push('\n');
        }
    }
    std::fs::write(root.join("BENCHMARKS.md"), md)?;
    eprintln!("bench: wrote BENCHMARKS.md");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// What one run was, for the report.
struct Run {
    command: String,
    seconds: u64,
    rounds: usize,
    cold: Duration,
    warm: Duration,
    shipped_warm: Duration,
    rss: Option<f64>,
    rss_guarded: Option<f64>,
}

/// The headline's request (issue 18): one of the 1 000 seeded rows.
const HEADLINE_PATH: &str = "/system/config/key_500";
const NATIVE_HEADLINE_PATH: &str = "/native/config/key_500";
const MISSING_PATH: &str = "/system/config/bench.missing";
const NATIVE_MISSING_PATH: &str = "/native/config/bench.missing";
/// `--only` text that selects the headline's rounds.
const HEADLINE: &str = "default";
/// `--only` text that selects the rounds with a counting rate-limit rule.
const COUNTED: &str = "counted";
const HEADLINE_CONNS: [usize; 2] = [64, 16];
const CACHED: &str = "GET /system/config/{key} (pack + read-through host cache)";
const NATIVE: &str = "native axum+sqlx GET config (baseline)";
/// A missing key is never cached: every request is a pack instance + one indexed read.
const UNCACHED: &str = "GET /system/config/{missing} (pack + indexed read, 404)";
const NATIVE_UNCACHED: &str = "native axum+sqlx GET config/{missing} (baseline, 404)";
const GUARDED_GET: &str = "GET /system/config/{key} + guards (shipped config, read client)";
const GUARDED_MISSING: &str = "GET /system/config/{missing} + guards (404)";
const GUARDED_POST: &str = "POST /system/config + guards (write client)";
/// `--only` text that selects the paired rounds.
const PAIRED: &str = "paired";

/// One headline round at one concurrency: the shipped config, the same without guards, and
/// native, one after the other.
struct Round {
    conns: usize,
    guarded: load::Report,
    plain: load::Report,
    native: load::Report,
}

/// The headline: in each round, at each of [`HEADLINE_CONNS`], the three servers one after
/// the other (which one goes first rotates from round to round), so the ratios compare
/// measurements seconds apart on a machine whose throughput drifts within minutes.
fn headline_rounds(
    g: SocketAddr,
    u: SocketAddr,
    n: SocketAddr,
    key: &str,
    plan: &Plan,
) -> Vec<Round> {
    let targets = [
        (g, Target::get(HEADLINE_PATH).header("x-api-key", key)),
        (u, Target::get(HEADLINE_PATH)),
        (n, Target::get(NATIVE_HEADLINE_PATH)),
    ];
    // the first requests (connections, caches, instance pool) stay out of the rounds
    for (addr, target) in &targets {
        load::run(*addr, target, 64, Duration::from_secs(1));
    }
    let mut rounds = Vec::new();
    for round in 0..plan.rounds {
        for conns in HEADLINE_CONNS {
            let mut reports: [load::Report; 3] = Default::default();
            for k in 0..targets.len() {
                let i = (round + k) % targets.len();
                let (addr, target) = &targets[i];
                reports[i] = load::run(*addr, target, conns, plan.duration);
            }
            let [guarded, plain, native] = reports;
            eprintln!(
                "bench: default config round {} c={conns}: {:.0} (p99 {} µs, errors {}) / \
                 guards off {:.0} / native {:.0} = {:.2}x / {:.2}x",
                round + 1,
                guarded.rps,
                guarded.p99_us,
                guarded.errors,
                plain.rps,
                native.rps,
                guarded.rps / plain.rps,
                guarded.rps / native.rps
            );
            rounds.push(Round {
                conns,
                guarded,
                plain,
                native,
            });
        }
    }
    rounds
}

/// A client counted by a rate-limit rule on every request against the server without guards,
/// alternating at 64 connections: (guarded, without guards).
fn counted_pairs(
    g: SocketAddr,
    u: SocketAddr,
    key: &str,
    plan: &Plan,
) -> Vec<(load::Report, load::Report)> {
    let counted = Target::get(HEADLINE_PATH).header("x-api-key", key);
    let plain = Target::get(HEADLINE_PATH);
    (0..plan.rounds)
        .map(|round| {
            let c = load::run(g, &counted, 64, plan.duration);
            let p = load::run(u, &plain, 64, plan.duration);
            eprintln!(
                "bench: counted client round {}: {:.0} (p99 {} µs, errors {}) / guards off {:.0} \
                 = {:.2}x",
                round + 1,
                c.rps,
                c.p99_us,
                c.errors,
                p.rps,
                c.rps / p.rps
            );
            (c, p)
        })
        .collect()
}

/// Active blocklist rules the shipped server carries (issue 15): addresses, networks of
/// /16 to /30, principals — none of them the bench's clients.
const BLOCKLIST_RULES: usize = 10_000;
/// The blocklist rounds' request: a route answered from the host cache, so the three servers'
/// databases (one large, shared with the other servers; two fresh) do not weigh in.
const BLOCKLIST_PATH: &str = "/system/maintenance/state";
/// `--only` text that selects the blocklist rounds.
const BLOCKLIST: &str = "blocklist";

/// The small rule set: a network of each prefix length the big one has (so a lookup reads
/// as many keys), four addresses, a principal.
const FEW_RULES: usize = 20;

fn few_rule(i: usize) -> String {
    match i {
        0..15 => format!(r#"{{"rule_type":"cidr","value":"172.16.0.0/{}"}}"#, 16 + i),
        15..19 => format!(r#"{{"rule_type":"ip","value":"10.0.0.{}"}}"#, i - 10),
        _ => r#"{"rule_type":"user","value":"bench-user"}"#.to_string(),
    }
}

/// The body of seeded rule `i`: 9 000 addresses in 10/8, 900 networks in 172.16/12, 100
/// principals.
fn blocklist_rule(i: usize) -> String {
    match i {
        0..9_000 => format!(
            r#"{{"rule_type":"ip","value":"10.{}.{}.{}","reason":"bench"}}"#,
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ),
        9_000..9_900 => format!(
            r#"{{"rule_type":"cidr","value":"172.{}.{}.0/{}","severity":"high"}}"#,
            16 + i % 16,
            (i / 16) % 256,
            16 + i % 15
        ),
        _ => format!(r#"{{"rule_type":"user","value":"bench-user-{i}"}}"#),
    }
}

/// [`BLOCKLIST_RULES`] rules through the API, from four connections.
fn seed_blocklist(addr: SocketAddr) -> Result<()> {
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || -> Result<()> {
                for i in (w..BLOCKLIST_RULES).step_by(4) {
                    send(
                        addr,
                        &Target::post_json("/system/security/blocklist", blocklist_rule(i))
                            .header("x-api-key", ADMIN_KEY),
                    )?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a seeding thread panicked"))??;
    }
    eprintln!(
        "bench: {BLOCKLIST_RULES} blocklist rules seeded in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

/// Every request from a new client address (so the blocklist guard runs on each), on
/// servers with no rules, [`FEW_RULES`] and [`BLOCKLIST_RULES`], one after the other at 64
/// connections (the first rotating per round): `[none, few, all]` per round.
fn blocklist_rounds(servers: &[SocketAddr; 3], plan: &Plan) -> Vec<[load::Report; 3]> {
    let target = Target::get(BLOCKLIST_PATH)
        .header("x-api-key", ADMIN_KEY)
        .each_from_a_new_client();
    for addr in servers {
        load::run(*addr, &target, 64, Duration::from_secs(1));
    }
    (0..plan.rounds)
        .map(|round| {
            let mut reports: [load::Report; 3] = Default::default();
            for k in 0..3 {
                let i = (round + k) % 3;
                reports[i] = load::run(servers[i], &target, 64, plan.duration);
            }
            let [e, f, a] = &reports;
            eprintln!(
                "bench: blocklist round {}: no rules {:.0} / {FEW_RULES} rules {:.0} / \
                 10 000 rules {:.0} (p99 {} µs, errors {}) = {:.2}x of {FEW_RULES}",
                round + 1,
                e.rps,
                f.rps,
                a.rps,
                a.p99_us,
                a.errors,
                a.rps / f.rps
            );
            reports
        })
        .collect()
}

fn render_blocklist(rounds: &[[load::Report; 3]]) -> String {
    if rounds.is_empty() {
        return String::new();
    }
    let med = |f: &dyn Fn(&[load::Report; 3]) -> f64| median(rounds.iter().map(f).collect());
    let flat = med(&|r| r[2].rps / r[1].rps);
    let whole = med(&|r| r[2].rps / r[0].rps);
    let row = |i: usize, name: String| {
        format!(
            "| {name} | {:.0} | {:.1} ms | {} |\n",
            med(&|r| r[i].rps),
            med(&|r| r[i].p99_us as f64) / 1000.0,
            rounds.iter().map(|r| r[i].errors).sum::<u64>()
        )
    };
    format!(
        "\n## The blocklist guard with {BLOCKLIST_RULES} rules (issue 15)\n\n\
         The shipped config.toml with 127.0.0.1 as a trusted proxy, `GET {BLOCKLIST_PATH}` (answered \
         from the host cache, so the databases do not weigh in) as the bootstrap admin, every request forwarded for a new client address (198.18.0.0/15), so \
         no guard decision is reused and the blocklist guard looks each one up. Three servers: \
         no rules; {FEW_RULES} rules (a network of each prefix length /16 to /30, four \
         addresses, a principal); {BLOCKLIST_RULES} rules (9 000 addresses, 900 networks of the \
         same 15 prefix lengths, 100 principals). {} rounds of the three at 64 connections, \
         one after the other.\n\n\
         | rules | req/s (median) | p99 (median) | errors |\n|---|---:|---:|---:|\n{}{}{}\n\
         **{BLOCKLIST_RULES} rules / {FEW_RULES} rules: {flat:.2}x** (flat in the number of \
         rules: {}); / no rules: {whole:.2}x, the price of the lookup itself. A lookup reads, \
         in one host call, the cache entries of the keys the address can have (its own, its \
         network at each prefix length in use, the principal's), never the rule list.\n",
        rounds.len(),
        row(0, "none".into()),
        row(1, FEW_RULES.to_string()),
        row(2, BLOCKLIST_RULES.to_string()),
        verdict_min(flat, 0.9)
    )
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The native baseline, serving from the same database file.
fn native_baseline(root: &Path, dir: &Path) -> Result<Server> {
    let native_port = free_port()?;
    let native_addr: SocketAddr = format!("127.0.0.1:{native_port}").parse()?;
    let native = Command::new(root.join("target/release/examples/native_baseline"))
        .arg(format!("sqlite://{}", dir.join("bench.db").display()))
        .arg(native_addr.to_string())
        .stdout(Stdio::null())
        .spawn()
        .context("start the native baseline")?;
    let native = Server {
        child: native,
        addr: native_addr,
    };
    wait_ready(native.addr, NATIVE_HEADLINE_PATH, Duration::from_secs(30))?;
    Ok(native)
}

/// A pack route and its native twin: the two ratios the targets are about.
struct Pair {
    /// the target, as BENCHMARKS.md states it
    target: &'static str,
    /// the rows of the main table for the same two routes
    pack_row: &'static str,
    native_row: &'static str,
    pack_path: &'static str,
    native_path: &'static str,
    status: u16,
}

const PAIRS: [Pair; 2] = [
    Pair {
        target: "pack route ≥ 0.7× native at 64 connections",
        pack_row: CACHED,
        native_row: NATIVE,
        pack_path: HEADLINE_PATH,
        native_path: NATIVE_HEADLINE_PATH,
        status: 200,
    },
    Pair {
        target: "the same at every request's read (missing key, 404 both sides) ≥ 0.7×",
        pack_row: UNCACHED,
        native_row: NATIVE_UNCACHED,
        pack_path: MISSING_PATH,
        native_path: NATIVE_MISSING_PATH,
        status: 404,
    },
];

/// One pair's rounds: (pack req/s, native req/s).
struct Paired {
    pair: &'static Pair,
    rounds: Vec<(f64, f64)>,
}

impl Paired {
    fn median_ratio(&self) -> Option<f64> {
        (!self.rounds.is_empty()).then(|| median(self.rounds.iter().map(|(p, n)| p / n).collect()))
    }
}

/// Each pair at 64 connections, pack and native alternating for `plan.rounds` rounds: on a
/// shared VM throughput drifts by ±25 % within minutes, so a ratio of two cells measured
/// minutes apart says more about the drift than about the code.
fn pairs(host: SocketAddr, native: SocketAddr, plan: &Plan) -> Vec<Paired> {
    PAIRS
        .iter()
        .map(|pair| {
            let pack = Target::get(pair.pack_path).expecting(pair.status);
            let twin = Target::get(pair.native_path).expecting(pair.status);
            let rounds = (0..plan.rounds)
                .map(|round| {
                    let p = load::run(host, &pack, 64, plan.duration).rps;
                    let n = load::run(native, &twin, 64, plan.duration).rps;
                    eprintln!(
                        "bench: paired {} / native, round {}: {p:.0} / {n:.0} = {:.2}x",
                        pair.pack_row,
                        round + 1,
                        p / n
                    );
                    (p, n)
                })
                .collect();
            Paired { pair, rounds }
        })
        .collect()
}

/// What the profiles showed (kept with the numbers, so a reader sees both).
const WHERE_THE_TIME_GOES: &str = "
## Where the time goes

Profiles: `perf record --call-graph dwarf -p <valhalla pid>` during a scenario (`--only`), and
`perf stat` / `perf record` of the criterion benchmarks.

- **The config route reads through the host cache**, as the flags route does: a fresh instance,
  one host-cache lookup, the JSON answer. A miss (first read, or the first after a write) reads
  SQLite and caches the entry; every write invalidates it with a write-generation check, so a
  reader that loaded the old value while a writer committed never leaves it cached
  (`valhalla_sdk::cache::read_through`). The native baseline reads SQLite on every request;
  the criterion table gives both paths of the pack in process (cache hit, cache miss).
- **The fresh instance is the main fixed cost**: in the server's profile under load (uncached
  scenario, 64 connections), instantiation (store, pool slot, data segments, import wiring) is
  about 12 % of the server's CPU and dropping the store about 10 % (of which the pool slot's
  `pagemap_scan` reset, the ioctl itself, 5 %). Packs are `no_std` and import nothing from
  WASI: the SDK brings its own allocator (dlmalloc over the module's initial 2 MiB memory, so
  a call rarely grows memory) and takes the clock and random bytes from the host. A std pack
  imported ~35 WASI functions and types that every fresh instance wired up and never called;
  dropping them took the near-empty call from 10.4 to 9.3 µs and the missing-key call from
  18.1 to 16.3 µs in process. A call looks up only the export it makes (types checked once,
  at load), and the imports that answer from memory (cache, log, host) are plain host
  functions, not async ones that box a future and poll it through the fiber on every call. A
  guard is one more instance unless the chain reuses a decision the guard memoized
  (`cache.memoize-decision`, keyed by the inputs the guard names: api_clients' principal for a
  key, valid while that key's cache entry stays the write it saw; rate_limits' pass when no
  rule counts the request): with the shipped config and data, a GET with a client key runs
  the route's pack alone once both decisions are memoized. A request a rule counts is counted
  by the host: rate_limits memoizes the counters it counted the request against
  (`cache.memoize-counting`), and each later request from the same address and principal adds
  1 to them with the cache's atomic windowed counters and gets the rate limit's own answer
  (429 with `Retry-After` and `RateLimit-*`, or the tightest counter's headers), exact under
  concurrency; a counted client went from 0.64× to 0.90× of the server without guards with
  it. Every write to a rule (or a key's client) moves the entry the memo holds against, so the
  next request calls the guard again. read_only_shield sees writes only. Measured and not kept: copy-on-write memory images
  (`memory_init_cow`: slower, in process and under load), a smaller stack and initial memory
  (512 KiB / 1 MiB, to shrink the scanned region: no difference beyond noise).
- **A SQLite read from a pack runs on the request's own thread**: the statement the table
  sandbox proves read-only takes a free `query_only` rusqlite connection (same libsqlite3 as
  sqlx) by `try_lock` and runs within a 1 ms budget (SQLite's progress handler interrupts it
  past that, and it is rerun on a sqlx reader lane, off-thread). Before, sqlx ran each
  connection on a thread of its own and every statement paid two cross-thread wake-ups: the
  criterion figures went from ~95 µs to ~26 µs for the pack's cache miss, and from ~35 µs to
  ~4 µs for the host's read alone. Under load the read is ~10 % of the server's CPU, and most
  of it is SQLite's own locking, not the query: each read transaction takes and drops a read
  mark in the WAL index and its shared lock (`unixShmLock`, `fcntl`: ~5 %), which the native
  baseline pays as well.
- **The uncached route against native**: both answer the same problem+json 404 after one
  indexed read (the native baseline answered an empty 404 before; it now writes the body the
  endpoint's contract asks for, as the pack does). The pack's extra work per request is the
  fresh instance (~9.3 µs in process; under load ~22 % of the server's CPU for instantiation
  and store drop), the guest's own routing and JSON with the host calls it makes (~3 µs in
  process: a cache lookup, the entry's write generation, the read) and the product's
  middleware (request id). The HTTP stack and the loopback TCP (writing the response alone is
  ~25 % of the server's CPU, with the load generator woken on every write) are the same for
  both.
- **Writes** serialise on SQLite's single writer; at 64 connections p99 is queueing (64 requests
  in flight / throughput), and each audited write also queues its system-log row.
- **The table sandbox (issue 13)** costs a pack's read about 0.25 µs on SQLite: the criterion
  pair `host store query alone` / `pack store query alone` is the same indexed read through
  the same inline reader, once as the host and once as the pack that owns the table (the SQL
  tagged with the pack's name, the authorizer's scope entered and left, the single-statement
  proof looked up); the authorizer itself runs only when a statement is prepared, which the
  per-pack tagged statement cache makes once per distinct statement. On PostgreSQL each pack
  logs in as its own role on a pool of its own, and a connection going back to the pool is
  rolled back and reset (one more round trip, run after the answer is sent). Measured by hand
  on this VM against a local PostgreSQL 15 (the same release server with
  only system_config, auth off, `database.pack_roles = true` then `false`, four alternating
  rounds of `cargo xtask load ADDR /system/config/missing.key --connections 64 --seconds 4
  --status 404`): 7.8–8.3k req/s with the roles against 10.0–10.8k without (0.78×), p99 about
  12.5 ms either way; with `pack_max_connections = 16` instead of 3 it was 7.3k, so the cost is
  the reset's round trip, not the smaller pool.
- **The machine**: a shared 2-core VM with the load generator on the same cores; absolute figures
  move by ±25 % between runs and within one, so the targets' ratios come from the paired
  rounds (pack and native alternating), not from two table cells minutes apart. The native
  baseline itself is bimodal at 64 connections on this VM (about 25k or about 33k req/s from
  one round to the next, its sqlx connection threads competing with the load generator for
  the two cores), which is most of the spread of the uncached ratio.
";

/// `cargo bench --bench pack_call` (criterion), summarised as a table of medians.
fn micro_benchmarks(root: &Path) -> Result<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "valhalla",
            "--bench",
            "pack_call",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "3",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("cargo bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut md = String::from(
        "\n## Per-request fixed cost (criterion, in process)\n\n\
         `cargo bench -p valhalla --bench pack_call`: a fresh store + instance from the `InstancePre` \
         + one call, on a 1-thread tokio runtime.\n\n| measurement | median |\n|---|---:|\n",
    );
    let mut name = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("time:") {
            // time:   [8.2263 µs 8.2690 µs 8.3186 µs]
            let parts: Vec<&str> = rest
                .trim()
                .trim_matches(['[', ']'])
                .split_whitespace()
                .collect();
            if parts.len() >= 4 {
                let _ = writeln!(md, "| {} | {} {} |", name.trim(), parts[2], parts[3]);
            }
        } else if !t.is_empty()
            && !t.contains(':')
            && !t.contains("%)")
            && !t.starts_with("Found")
            && !t.starts_with("Benchmarking")
        {
            name = t.to_string();
        } else if let Some((n, _)) = t.split_once("time:") {
            name = n.to_string();
        }
    }
    Ok(md)
}

/// Put `section` (from `start` to `end`, both included) into BENCHMARKS.md: in place of the
/// one there, or at the end.
fn write_section(root: &Path, start: &str, end: &str, section: &str) -> Result<()> {
    let path = root.join("BENCHMARKS.md");
    let md = std::fs::read_to_string(&path).unwrap_or_default();
    let md = match (md.find(start), md.find(end)) {
        (Some(a), Some(b)) if b > a => format!(
            "{}{section}{}",
            &md[..a],
            md[b + end.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n\n{section}", md.trim_end()),
    };
    std::fs::write(&path, md)?;
    eprintln!("bench: wrote its section of BENCHMARKS.md");
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("valhalla-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// "met", or how far the figure is from its target.
fn verdict_min(value: f64, target: f64) -> String {
    if value >= target {
        "met".into()
    } else {
        format!("**not met** ({value:.3}× against {target:.2}×)")
    }
}

fn verdict_max_ms(value_ms: f64, target_ms: f64) -> String {
    if value_ms <= target_ms {
        "met".into()
    } else {
        format!("**not met** by {:.1} ms", value_ms - target_ms)
    }
}

/// The headline section: the shipped configuration against the same server without guards
/// and against native, round by round, and issue 18's targets.
fn render_headline(
    md: &mut String,
    run: &Run,
    shipped: &Shipped,
    headline: &[Round],
    counted: &[(load::Report, load::Report)],
    paired: &[Paired],
) {
    let _ = writeln!(
        md,
        "## The default configuration: the shipped `config.toml`, guards on\n\n\
         - server: `valhalla serve --config config.toml` (the repository's file, read by the \
         server itself: `{}`, `[auth] {}`, every pack it enables), overridden only where a bench must: \
         `VALHALLA_DATABASE_URL` (a SQLite file in a temp dir), `--bind` (a free port), \
         `VALHALLA_CACHE_DIR` (compiled packs in the temp dir), `VALHALLA_ADMIN_KEY`.\n\
         - request: `GET {HEADLINE_PATH}` with `x-api-key` = the key the server generated for \
         a read-role client registered through `POST /system/clients` with the admin key; \
         {SEED_ROWS} config rows (`key_0` … `key_{}`); the shipped data has no rate-limit rule.\n\
         - guards off: the same file, the same database, with `VALHALLA_AUTH_ENABLED=false` \
         and `VALHALLA_PACK_<NAME>_ENABLED=false` for each of {}; the same request, no key.\n\
         - native: `host/examples/native_baseline.rs` (axum + sqlx, one indexed read per \
         request) on the same database file, `GET {NATIVE_HEADLINE_PATH}`.\n\
         - the three servers run side by side; each round measures them one after the other \
         at each concurrency ({} s each, the one that goes first rotating), after 1 s of \
         warm-up each. Ratios are of req/s within a round; the targets use the median of the \
         rounds.\n",
        shipped.guard_line,
        shipped.auth_line,
        SEED_ROWS - 1,
        shipped
            .guards
            .iter()
            .map(|g| format!("`{g}`"))
            .collect::<Vec<_>>()
            .join(", "),
        run.seconds,
    );
    let _ = writeln!(
        md,
        "| round | conns | default config req/s | p99 µs | errors | guards off req/s | p99 µs \
         | native req/s | p99 µs | default / guards off | default / native |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (i, r) in headline.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {:.0} | {} | {:.0} | {} | {:.2}× | {:.2}× |",
            i / HEADLINE_CONNS.len() + 1,
            r.conns,
            r.guarded.rps,
            r.guarded.p99_us,
            r.guarded.errors,
            r.plain.rps,
            r.plain.p99_us,
            r.native.rps,
            r.native.p99_us,
            r.guarded.rps / r.plain.rps,
            r.guarded.rps / r.native.rps
        );
    }
    let at = |c: usize| headline.iter().filter(move |r| r.conns == c);
    let _ = writeln!(md);
    for c in HEADLINE_CONNS {
        if at(c).next().is_none() {
            continue;
        }
        let _ = writeln!(
            md,
            "- **{c} connections** (median of {} rounds): default / guards off **{:.2}×**, \
             default / native **{:.2}×**, guards off / native {:.2}×; default config p99 \
             {:.1} ms (worst round {:.1} ms)",
            at(c).count(),
            median(at(c).map(|r| r.guarded.rps / r.plain.rps).collect()),
            median(at(c).map(|r| r.guarded.rps / r.native.rps).collect()),
            median(at(c).map(|r| r.plain.rps / r.native.rps).collect()),
            median(at(c).map(|r| r.guarded.p99_us as f64).collect()) / 1000.0,
            at(c).map(|r| r.guarded.p99_us).max().unwrap_or(0) as f64 / 1000.0,
        );
    }
    if !counted.is_empty() {
        let rounds: Vec<String> = counted
            .iter()
            .map(|(c, p)| format!("{:.0} / {:.0} = {:.2}×", c.rps, p.rps, c.rps / p.rps))
            .collect();
        let _ = writeln!(
            md,
            "- not the shipped data, for comparison: a rate-limit rule (`api_key` scope, 1 000 000 \
             requests a second) counting one read client, so that its every request is counted (by rate_limits \
             on the first, by the host from its memo after); that client / guards off at 64 connections, alternating: {}; \
             median **{:.2}×**, p99 {:.1} ms (median of the rounds)",
            rounds.join(", "),
            median(counted.iter().map(|(c, p)| c.rps / p.rps).collect()),
            median(counted.iter().map(|(c, _)| c.p99_us as f64).collect()) / 1000.0,
        );
    }
    let _ = writeln!(
        md,
        "\n### Targets (issue 18: median of paired rounds at 64 connections, this machine)\n"
    );
    if at(64).next().is_some() {
        let vs_plain = median(at(64).map(|r| r.guarded.rps / r.plain.rps).collect());
        let vs_native = median(at(64).map(|r| r.guarded.rps / r.native.rps).collect());
        let p99_ms = median(at(64).map(|r| r.guarded.p99_us as f64).collect()) / 1000.0;
        let _ = writeln!(
            md,
            "- default configuration ≥ 0.8× the same server without guards: {vs_plain:.2}× — {}",
            verdict_min(vs_plain, 0.8)
        );
        let _ = writeln!(
            md,
            "- default configuration ≥ 0.7× native: {vs_native:.2}× — {}",
            verdict_min(vs_native, 0.7)
        );
        let _ = writeln!(
            md,
            "- default configuration p99 ≤ 5 ms: {p99_ms:.1} ms (median of the rounds' p99) — {}",
            verdict_max_ms(p99_ms, 5.0)
        );
    }
    if let Some(ratio) = paired
        .iter()
        .find(|p| p.pair.pack_row == UNCACHED)
        .and_then(Paired::median_ratio)
    {
        let _ = writeln!(
            md,
            "- uncached read (missing key, 404 both sides), guards off, ≥ 0.85× native: \
             {ratio:.2}× (median of {} paired rounds, below) — {}",
            run.rounds,
            verdict_min(ratio, 0.85)
        );
    }
    let _ = writeln!(md);
}

fn render(
    root: &Path,
    run: &Run,
    shipped: &Shipped,
    headline: &[Round],
    counted: &[(load::Report, load::Report)],
    rows: &[Row],
    paired: &[Paired],
) -> String {
    let seconds = run.seconds;
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(md, "- command: `{}`", run.command);
    let _ = writeln!(md, "- commit: {}", commit(root));
    let _ = writeln!(md, "- machine: {}", machine());
    let _ = writeln!(
        md,
        "- setup: release build, SQLite (WAL) in a temp dir, load generator = `xtask/src/load.rs` \
         (closed loop, keep-alive, one request in flight per connection) in a separate process on \
         the same machine, {seconds} s per cell.\n"
    );
    render_headline(&mut md, run, shipped, headline, counted, paired);
    let _ = writeln!(
        md,
        "## Every scenario\n\n\
         The rows without guards are the server without guards above (the shipped file, \
         authentication and guards off); the rows `+ guards` are the shipped configuration \
         with the read client's key (the write client's for the POST).\n"
    );
    let _ = writeln!(
        md,
        "| scenario | conns | requests | req/s | p50 µs | p99 µs | errors |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            r.scenario,
            r.concurrency,
            r.report.requests,
            r.report.rps,
            r.report.p50_us,
            r.report.p99_us,
            r.report.errors
        );
    }
    let rps = |name: &str, c: usize| {
        rows.iter()
            .find(|r| r.scenario.starts_with(name) && r.concurrency == c)
            .map(|r| r.report.rps)
    };
    let _ = writeln!(md, "\n## Key figures\n");
    for c in CONCURRENCY {
        if let (Some(pack), Some(native)) = (rps(CACHED, c), rps(NATIVE, c)) {
            let _ = writeln!(
                md,
                "- pack route (guards off) / native baseline at {c} connections: **{:.2}×**",
                pack / native
            );
        }
    }
    for c in CONCURRENCY {
        if let (Some(pack), Some(native)) = (rps(UNCACHED, c), rps(NATIVE_UNCACHED, c)) {
            let _ = writeln!(
                md,
                "- uncached (a missing key: an indexed read every time), pack / native at {c} \
                 connections: {:.2}×",
                pack / native
            );
        }
    }
    let _ = writeln!(
        md,
        "- start to ready with every pack of the workspace: cold (no compiled-pack cache) {} ms, \
         warm {} ms; the shipped config.toml, warm: {} ms",
        run.cold.as_millis(),
        run.warm.as_millis(),
        run.shipped_warm.as_millis()
    );
    if let Some(r) = run.rss {
        let _ = writeln!(
            md,
            "- peak RSS after the load scenarios: {r:.1} MiB (guards on: {:.1} MiB)",
            run.rss_guarded.unwrap_or(0.0)
        );
    }
    let p99 = |name: &str, c: usize| {
        rows.iter()
            .find(|r| r.scenario.starts_with(name) && r.concurrency == c)
            .map(|r| r.report.p99_us)
    };
    if !paired.is_empty() {
        let _ = writeln!(
            md,
            "\n## Paired rounds at 64 connections, guards off\n\n\
             Each pack route and its native twin, alternating, {} s each, one after the other: \
             pack req/s / native req/s = ratio. The targets use the median. They run before \
             the write scenarios: in a run where they came after them, the pack's uncached read \
             was 0.90×, 0.71×, 0.56×, 0.58×, 0.75× of native (native unchanged at ~31.5k req/s) \
             in the minute after the writes, against 0.92–0.96× in a run without them; what \
             the write storm leaves behind is not investigated here.\n",
            seconds
        );
        for pair in paired {
            let rounds: Vec<String> = pair
                .rounds
                .iter()
                .map(|(p, n)| format!("{p:.0} / {n:.0} = {:.2}×", p / n))
                .collect();
            let _ = writeln!(
                md,
                "- {} / native: {}; median **{:.2}×**",
                pair.pair.pack_row,
                rounds.join(", "),
                pair.median_ratio().unwrap_or(0.0)
            );
        }
    }
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(md, "\n## Targets (issue 5, guards off)\n");
    for paired in paired {
        let pair = paired.pair;
        if let (Some(ratio), Some(pack), Some(native)) = (
            paired.median_ratio(),
            rps(pair.pack_row, 64),
            rps(pair.native_row, 64),
        ) {
            let _ = writeln!(
                md,
                "- {}: {ratio:.2}× (median of {} paired rounds; the table's cells: {:.2}×) — {}",
                pair.target,
                paired.rounds.len(),
                pack / native,
                verdict(ratio >= 0.7)
            );
        }
    }
    if let Some(p) = p99(CACHED, 64) {
        let _ = writeln!(
            md,
            "- pack route p99 ≤ 5 ms at 64 connections: {:.1} ms — {}",
            p as f64 / 1000.0,
            verdict(p <= 5000)
        );
    }
    let _ = writeln!(
        md,
        "- warm start to ready ≤ 500 ms: {} ms — {}",
        run.warm.as_millis(),
        verdict(run.warm <= Duration::from_millis(500))
    );
    let peak = run.rss.unwrap_or(0.0).max(run.rss_guarded.unwrap_or(0.0));
    let _ = writeln!(
        md,
        "- RSS ≤ 150 MB after the load: {peak:.1} MiB — {}",
        verdict(run.rss.is_some() && peak * 1.048_576 <= 150.0)
    );
    md
}
