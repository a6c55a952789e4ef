//! `cargo xtask bench --only scale [--seconds N] [--rounds N]`: scale-out on PostgreSQL
//! (issue 19). The shipped `config.toml` (guards on) on one PostgreSQL — the one named by
//! `VALHALLA_TEST_POSTGRES_URL`, or a throwaway cluster as the tests start — served by one
//! replica, then by three, the load generator's 64 connections spread over them round robin,
//! in paired rounds: the headline read (`GET /system/config/key_500` with a read key). Then
//! the price of a global rate limit: the same read by a client a rule counts (every request
//! one UPSERT of its counter row, by the host's counting memo) against the uncounted client,
//! on one replica and on three. On this 2-core machine three replicas share the cores the one
//! had, with the load generator and PostgreSQL: the figures are the overhead and the
//! correctness of sharing, not scaling. Written to its own section of BENCHMARKS.md (kept by a
//! full bench run).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::{
    ADMIN_KEY, HEADLINE_PATH, SEED_ROWS, Shipped, arg, expect_status, machine, register, send,
    start, tempfile_dir, write_section,
};
use crate::load::{self, Report, Target};

pub const SECTION_START: &str = "<!-- bench scale: start -->";
pub const SECTION_END: &str = "<!-- bench scale: end -->";
const CONNECTIONS: usize = 64;

fn line(what: &str, r: &Report) -> String {
    format!(
        "{what:<44} {:>8.0} req/s  p50 {:>6} µs  p99 {:>6} µs  errors {}",
        r.rps, r.p50_us, r.p99_us, r.errors
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let seconds: u64 = arg(args, "--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rounds: usize = arg(args, "--rounds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let pg = crate::postgres::for_tests()?
        .ok_or_else(|| anyhow::anyhow!("the scale bench needs PostgreSQL"))?;
    let dir = tempfile_dir()?;
    let cache = dir.join("compiled");
    let shipped = Shipped::read(root)?;
    let mut env = shipped.env(&dir, &cache, true);
    for (var, value) in &mut env {
        if var == "VALHALLA_DATABASE_URL" {
            *value = pg.url().to_string();
        }
    }
    // the replicas, started one after another (the first applies the migrations)
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(start(root, &shipped.path, &env)?.0);
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let a = addrs[0];
    let reader = register(a, "scale-reader", &["read"])?;
    let counted = register(a, "scale-counted", &["read"])?;
    for i in 0..SEED_ROWS {
        send(
            a,
            &Target::post_json(
                "/system/config",
                format!(r#"{{"key":"key_{i}","value":"value {i}, of some length"}}"#),
            )
            .header("x-api-key", ADMIN_KEY),
        )?;
    }
    let read = Target::get(HEADLINE_PATH).header("x-api-key", &reader.key);
    for addr in &addrs {
        expect_status(*addr, &read, 200, "a replica, the read key")?;
    }
    let mut out = String::new();
    let (mut one_rps, mut ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let one = load::run_spread(&addrs[..1], &read, CONNECTIONS, duration);
        let three = load::run_spread(&addrs, &read, CONNECTIONS, duration);
        let ratio = three.rps / one.rps.max(1.0);
        eprintln!(
            "bench scale: round {round}: 1 replica {:.0}, 3 replicas {:.0} = {ratio:.2}x",
            one.rps, three.rps
        );
        let _ = writeln!(out, "round {round}");
        let _ = writeln!(out, "  {}", line("1 replica, GET config (read key)", &one));
        let _ = writeln!(
            out,
            "  {}",
            line("3 replicas, GET config (read key)", &three)
        );
        one_rps.push(one.rps);
        ratios.push(ratio);
    }

    // a rule counting one client: each of its requests bumps one shared counter row
    send(
        a,
        &Target::post_json(
            "/system/ratelimits/rules",
            format!(
                r#"{{"scope":"api_key","key":"client:{}","window_seconds":1,"max_requests":1000000}}"#,
                counted.id
            ),
        )
        .header("x-api-key", ADMIN_KEY),
    )?;
    let limited = Target::get(HEADLINE_PATH).header("x-api-key", &counted.key);
    let (mut costs, mut limited_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let plain = load::run_spread(&addrs[..1], &read, CONNECTIONS, duration);
        let one = load::run_spread(&addrs[..1], &limited, CONNECTIONS, duration);
        let three = load::run_spread(&addrs, &limited, CONNECTIONS, duration);
        // the limited request's extra share of a saturated server, per request
        let cost_us = (1.0 / one.rps.max(1.0) - 1.0 / plain.rps.max(1.0)) * 1e6;
        eprintln!(
            "bench scale: counted round {round}: {:.0} / uncounted {:.0} ({cost_us:.1} µs each), \
             3 replicas {:.0}",
            one.rps, plain.rps, three.rps
        );
        let _ = writeln!(out, "counted round {round}");
        let _ = writeln!(out, "  {}", line("1 replica, uncounted client", &plain));
        let _ = writeln!(out, "  {}", line("1 replica, counted client", &one));
        let _ = writeln!(out, "  {}", line("3 replicas, counted client", &three));
        costs.push(cost_us);
        limited_ratios.push(one.rps / plain.rps.max(1.0));
    }
    drop(replicas);
    let summary = format!(
        "median of {rounds} rounds of {seconds} s, {CONNECTIONS} connections:\n\
         - 1 replica: {:.0} req/s; 3 replicas / 1 replica: {:.2}×\n\
         - a counted client / an uncounted one (1 replica): {:.2}×, {:.1} µs of server time \
         per counted request (one counter UPSERT on PostgreSQL)\n",
        median(one_rps),
        median(ratios),
        median(limited_ratios),
        median(costs),
    );
    eprint!("{summary}");
    let section = format!(
        "{SECTION_START}\n## Replicas on one PostgreSQL (issue 19)\n\n\
         `{}` on {}: the shipped `config.toml` (guards on) on one local PostgreSQL, one \
         replica, then three, with the load generator's connections spread over them round \
         robin; then a client that a rate-limit rule counts (each request one UPSERT of a \
         shared counter row: the limit holds across replicas) against one no rule counts. \
         On 2 cores, three replicas share the cores one had with PostgreSQL and the load \
         generator: the point is that sharing is correct and what it costs, not linear \
         scaling.\n\n{summary}\n```\n{out}```\n{SECTION_END}\n",
        std::iter::once("cargo xtask bench".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        machine(),
    );
    write_section(root, SECTION_START, SECTION_END, &section)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
