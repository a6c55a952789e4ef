//! A small closed-loop HTTP/1.1 load generator (std only): N connections, each a thread that
//! sends a request, reads the whole response, records its latency, and sends the next, for a
//! fixed time. Keep-alive, one request in flight per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::bench::arg;

/// One request to repeat.
#[derive(Clone)]
pub struct Target {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// the status that counts as success; any 2xx when `None`
    pub expect: Option<u16>,
    /// every request forwarded for another client address (`X-Forwarded-For` from
    /// 198.18.0.0/15, the benchmarking range), so no guard decision is ever reused
    pub new_client_each_request: bool,
}

impl Target {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body: None,
            expect: None,
            new_client_each_request: false,
        }
    }

    pub fn post_json(path: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            headers: Vec::new(),
            body: Some(body.into()),
            expect: None,
            new_client_each_request: false,
        }
    }

    /// Count `status` (and only it) as success.
    pub fn expecting(mut self, status: u16) -> Self {
        self.expect = Some(status);
        self
    }

    fn succeeded(&self, status: u16) -> bool {
        self.expect
            .map_or((200..300).contains(&status), |s| s == status)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Forward every request for another client address.
    pub fn each_from_a_new_client(mut self) -> Self {
        self.new_client_each_request = true;
        self
    }

    fn bytes(&self, host: &str) -> Vec<u8> {
        self.bytes_for(host, None)
    }

    /// The request, forwarded for `client` when given.
    fn bytes_for(&self, host: &str, client: Option<std::net::Ipv4Addr>) -> Vec<u8> {
        let mut req = format!("{} {} HTTP/1.1\r\nHost: {host}\r\n", self.method, self.path);
        if let Some(ip) = client {
            req.push_str(&format!("X-Forwarded-For: {ip}\r\n"));
        }
        for (n, v) in &self.headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(body) = &self.body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        req.into_bytes()
    }
}

/// What a run measured.
#[derive(Clone, Default)]
pub struct Report {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// Read one response; answers its status and body.
fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok((status, body))
}

fn connect(addr: SocketAddr) -> std::io::Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok((stream, reader))
}

/// Send `target` once on a new connection; answers the status.
pub fn once(addr: SocketAddr, target: &Target) -> std::io::Result<u16> {
    once_with_body(addr, target).map(|(status, _)| status)
}

/// Send `target` once on a new connection; answers the status and the body.
pub fn once_with_body(addr: SocketAddr, target: &Target) -> std::io::Result<(u16, String)> {
    let (mut stream, mut reader) = connect(addr)?;
    stream.write_all(&target.bytes(&addr.to_string()))?;
    let (status, body) = read_response(&mut reader)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Drive `target` on `addr` from `connections` connections for `duration`.
/// A response outside 2xx counts as an error (so do 429s: measure limits on purpose only).
pub fn run(addr: SocketAddr, target: &Target, connections: usize, duration: Duration) -> Report {
    run_spread(&[addr], target, connections, duration)
}

/// [`run`] with the connections spread round robin over `addrs` (replicas behind what would
/// be a load balancer).
pub fn run_spread(
    addrs: &[SocketAddr],
    target: &Target,
    connections: usize,
    duration: Duration,
) -> Report {
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..connections)
        .map(|thread| {
            let addr = addrs[thread % addrs.len().max(1)];
            let host = addr.to_string();
            let mut request = target.bytes(&host);
            let target = target.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(65_536);
                let mut errors = 0u64;
                let mut conn = connect(addr).ok();
                // each connection walks its own share of 198.18.0.0/15
                let share = (1u32 << 17) / connections.max(1) as u32;
                let mut next = 0u32;
                while Instant::now() < deadline {
                    if target.new_client_each_request {
                        let offset = thread as u32 * share + next % share.max(1);
                        next += 1;
                        let ip = std::net::Ipv4Addr::from(
                            u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + offset,
                        );
                        request = target.bytes_for(&host, Some(ip));
                    }
                    let Some((stream, reader)) = conn.as_mut() else {
                        errors += 1;
                        conn = connect(addr).ok();
                        continue;
                    };
                    let t = Instant::now();
                    let outcome = stream
                        .write_all(&request)
                        .and_then(|()| read_response(reader));
                    match outcome {
                        Ok((status, _)) if target.succeeded(status) => {
                            latencies.push(t.elapsed().as_micros() as u64)
                        }
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = connect(addr).ok();
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        if let Ok((l, e)) = h.join() {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Report {
        requests: all.len() as u64,
        errors,
        rps: all.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

/// `cargo xtask load ADDR PATH [--connections N] [--seconds N] [--status N]`.
pub fn command(args: &[String]) -> Result<()> {
    let (Some(addr), Some(path)) = (args.first(), args.get(1)) else {
        anyhow::bail!(
            "usage: cargo xtask load ADDR PATH [--connections N] [--seconds N] [--status N] [--header NAME:VALUE]... [--each-from-a-new-client]"
        );
    };
    let addr: SocketAddr = addr.parse().with_context(|| format!("address `{addr}`"))?;
    let number = |name: &str, default: u64| -> Result<u64> {
        arg(args, name).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("{name} `{v}`"))
        })
    };
    let mut target = Target::get(path.clone());
    if let Some(status) = arg(args, "--status") {
        target = target.expecting(
            status
                .parse()
                .with_context(|| format!("--status `{status}`"))?,
        );
    }
    for (i, a) in args.iter().enumerate() {
        if a == "--header" {
            let Some((name, value)) = args.get(i + 1).and_then(|h| h.split_once(':')) else {
                anyhow::bail!("--header takes NAME:VALUE");
            };
            target = target.header(name.trim(), value.trim());
        }
    }
    if args.iter().any(|a| a == "--each-from-a-new-client") {
        target = target.each_from_a_new_client();
    }
    let connections = number("--connections", 64)? as usize;
    let report = run(
        addr,
        &target,
        connections,
        Duration::from_secs(number("--seconds", 5)?),
    );
    println!(
        "{path} c={connections}: {:.0} req/s  p50 {} µs  p99 {} µs  errors {}",
        report.rps, report.p50_us, report.p99_us, report.errors
    );
    Ok(())
}
