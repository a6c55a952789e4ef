//! `cargo xtask bench --only overload [--seconds N] [--connections N]`: backpressure
//! (issue 20, item 1). The release host with a small instance pool (`runtime.max_instances
//! = 16`, the default `instance_wait_ms = 1000`) takes a closed-loop load far above it (1 024
//! connections by default) on a pack route that computes a few milliseconds
//! (`/faulty/slow?ms=3`), while a prober opens a fresh connection to
//! `/system/health/live` every 20 ms. Figures: the share of answers that are 503 (and that
//! each carries `Retry-After`), the p50/p99 of the successful requests, and the probe's
//! p50/p99/max. Written to its own section of BENCHMARKS.md (kept by a full bench run).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use testkit::ConfigToml;

use super::{arg, start, tempfile_dir};

pub const SECTION_START: &str = "<!-- bench overload: start -->";
pub const SECTION_END: &str = "<!-- bench overload: end -->";
const POOL: u64 = 16;
const PATH: &str = "/faulty/slow?ms=3";

/// One answer: status, whether it said `Retry-After`, and its latency.
struct Answer {
    status: u16,
    retry_after: bool,
    micros: u64,
}

fn read_answer(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool, bool)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut retry_after, mut close) = (0usize, false, false);
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "retry-after" => retry_after = true,
                "connection" => close = value.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok((status, retry_after, close))
}

fn connect(addr: SocketAddr) -> std::io::Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok((stream, reader))
}

/// One closed-loop client until `stop`; answers what it got (and failed connections).
fn client(addr: SocketAddr, stop: Arc<AtomicBool>) -> (Vec<Answer>, u64) {
    let request = format!("GET {PATH} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let (mut answers, mut failed) = (Vec::new(), 0u64);
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = connect(addr).ok();
            if conn.is_none() {
                failed += 1;
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        let Some((stream, reader)) = conn.as_mut() else {
            continue;
        };
        let t = Instant::now();
        match stream
            .write_all(&request)
            .and_then(|()| read_answer(reader))
        {
            Ok((status, retry_after, close)) => {
                answers.push(Answer {
                    status,
                    retry_after,
                    micros: t.elapsed().as_micros() as u64,
                });
                if close {
                    conn = None;
                }
            }
            Err(_) => {
                failed += 1;
                conn = None;
            }
        }
    }
    (answers, failed)
}

/// `GET /system/health/live` on a fresh connection every 20 ms until `stop`: latencies (µs).
fn prober(addr: SocketAddr, stop: Arc<AtomicBool>) -> Vec<u64> {
    let request = format!("GET /system/health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let ok = connect(addr).and_then(|(mut s, mut r)| {
            s.write_all(&request)?;
            read_answer(&mut r)
        });
        // a failed probe counts as the longest wait there is
        out.push(match ok {
            Ok((200, _, _)) => t.elapsed().as_micros() as u64,
            _ => u64::MAX,
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

fn ms(us: u64) -> String {
    if us == u64::MAX {
        "failed".into()
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let seconds: u64 = arg(args, "--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let connections: usize = arg(args, "--connections")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile_dir()?;
    let config = dir.join("overload.toml");
    ConfigToml::in_workspace(root)
        .database_url(&format!("sqlite://{}", dir.join("overload.db").display()))
        .cache_dir(&dir.join("compiled"))
        .admin_key(super::ADMIN_KEY)
        .max_instances(POOL)
        .deadline_ms(2_000)
        .pack("system_config", true)
        .pack("faulty", true)
        .write(&config)?;
    let (server, _) = start(root, &config, &[])?;
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || prober(addr, stop))
    };
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || client(addr, stop))
        })
        .collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut answers, mut failed) = (Vec::new(), 0);
    for c in clients {
        if let Ok((a, f)) = c.join() {
            answers.extend(a);
            failed += f;
        }
    }
    let mut live = probe.join().unwrap_or_default();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let total = answers.len() as u64;
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    let without_retry = refused.iter().filter(|a| !a.retry_after).count();
    let other = answers
        .iter()
        .filter(|a| a.status != 200 && a.status != 503)
        .count();
    let mut ok: Vec<u64> = answers
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.micros)
        .collect();
    ok.sort_unstable();
    let mut refused_us: Vec<u64> = refused.iter().map(|a| a.micros).collect();
    refused_us.sort_unstable();
    live.sort_unstable();
    let figures = format!(
        "{connections} connections on GET {PATH} for {seconds} s, runtime.max_instances = {POOL}, \
         instance_wait_ms = 1000 (default)\n\
         answers: {total} ({:.0}/s); 200: {}; 503: {} ({:.1} %, {without_retry} without \
         Retry-After); other: {other}; failed connections: {failed}\n\
         successful requests: p50 {}, p99 {}\n\
         503 answers: p50 {}, p99 {}, max {}\n\
         /system/health/live (fresh connection every 20 ms, {} probes): p50 {}, p99 {}, max {}\n",
        total as f64 / seconds as f64,
        ok.len(),
        refused.len(),
        100.0 * refused.len() as f64 / total.max(1) as f64,
        ms(pct(&ok, 0.5)),
        ms(pct(&ok, 0.99)),
        ms(pct(&refused_us, 0.5)),
        ms(pct(&refused_us, 0.99)),
        ms(refused_us.last().copied().unwrap_or(0)),
        live.len(),
        ms(pct(&live, 0.5)),
        ms(pct(&live, 0.99)),
        ms(live.last().copied().unwrap_or(0)),
    );
    print!("{figures}");
    let section = format!(
        "{SECTION_START}\n## Overload: far more connections than instances (issue 20)\n\n\
         `cargo xtask bench --only overload --seconds {seconds} --connections {connections}` \
         (release host, SQLite, auth on; the load generator runs on the same machine). A call \
         that finds the pool full waits up to `runtime.instance_wait_ms` for an instance, then \
         is answered 503 problem+json with `Retry-After`; the probe takes no instance and the \
         busy guests yield to it every epoch tick (5 ms).\n\n```\n{figures}```\n{SECTION_END}\n"
    );
    let md_path = root.join("BENCHMARKS.md");
    let before = std::fs::read_to_string(&md_path).unwrap_or_default();
    let after = match (before.find(SECTION_START), before.find(SECTION_END)) {
        (Some(a), Some(b)) if b > a => format!(
            "{}{section}{}",
            &before[..a],
            &before[b + SECTION_END.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n{section}", before.trim_end()),
    };
    std::fs::write(&md_path, after)?;
    eprintln!("bench: wrote the overload section of BENCHMARKS.md");
    Ok(())
}
