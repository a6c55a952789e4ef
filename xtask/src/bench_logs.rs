//! `cargo xtask bench --only logs [--rows N]`: the system log at scale (issue 16, item 5).
//! Seeds N (default 1 000 000) system-log rows straight into a fresh SQLite file in one
//! transaction (the host stopped), starts the release host with system_log on it, and times
//! over HTTP: the newest page, a page by cursor deep in the log (90 % down), the same depth by
//! `offset` (the old way, for comparison), filtered pages (category, level + category, and
//! a deep filtered cursor page), then a purge of every seeded row through
//! `POST /system/logs/purge` in batches of 5 000 while a concurrent writer posts entries: its
//! longest write stall is the figure. Prints the figures; BENCHMARKS.md is left as it is.
//! `VALHALLA_BENCH_LOG_ROWS` (or `--rows`) makes a small smoke run.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::ConfigToml;

use super::{arg, start, tempfile_dir};
use crate::load::{self, Target};

const CATEGORIES: u64 = 20;
const LEVELS: [&str; 5] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
/// Seeded rows are one second apart, ending this long before now (older than any new entry).
const SEED_END_AGO_SECS: u64 = 86_400;
const PURGE_BATCH: u64 = 5_000;
const SAMPLES: usize = 20;

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let rows: u64 = arg(args, "--rows")
        .cloned()
        .or_else(|| std::env::var("VALHALLA_BENCH_LOG_ROWS").ok())
        .map(|s| {
            s.parse()
                .context("--rows / VALHALLA_BENCH_LOG_ROWS is a number")
        })
        .transpose()?
        .unwrap_or(1_000_000);
    if rows < 100 {
        bail!("--rows must be at least 100");
    }
    let dir = tempfile_dir()?;
    let db = dir.join("logs.db");
    let config = dir.join("logs.toml");
    ConfigToml::in_workspace(root)
        .database_url(&format!("sqlite://{}", db.display()))
        .cache_dir(&dir.join("compiled"))
        .auth_off()
        .pack("system_log", true)
        .pack("exports", true)
        .grant_packs("exports", &["system_log"])
        .grant_artefacts("exports")
        .write(&config)?;
    // the first start creates the table (migrations), then the host stops for the seeding
    drop(start(root, &config, &[])?);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let first = now - SEED_END_AGO_SECS - rows;
    let took = seed(&db, rows, first)?;
    eprintln!("bench logs: {rows} rows seeded in {took:.1?}");
    let (server, _) = start(root, &config, &[])?;
    let a = server.addr;

    let depth = rows * 9 / 10;
    // the cursor of the row `depth` rows below the newest (as the SDK encodes it)
    let at_depth = rows - 1 - depth;
    let cursor = hex(&format!(
        "{}\n{}",
        stamp(first + at_depth),
        id(first + at_depth, at_depth)
    ));
    let cat = 3;
    let cat_depth = at_depth - at_depth % CATEGORIES + cat;
    let cat_cursor = hex(&format!(
        "{}\n{}",
        stamp(first + cat_depth),
        id(first + cat_depth, cat_depth)
    ));
    let level = LEVELS[2];
    let scenarios: Vec<(String, String)> = vec![
        ("newest 50".into(), "/system/logs?limit=50".into()),
        (
            format!("cursor page at depth {depth}"),
            format!("/system/logs?limit=50&cursor={cursor}"),
        ),
        (
            format!("offset={depth} (old way)"),
            format!("/system/logs?limit=50&offset={depth}"),
        ),
        (
            "category filter".into(),
            format!("/system/logs?limit=50&category=cat{cat}"),
        ),
        (
            "level + category filter".into(),
            format!("/system/logs?limit=50&category=cat{cat}&level={level}"),
        ),
        (
            format!("category filter, cursor at depth {depth}"),
            format!("/system/logs?limit=50&category=cat{cat}&cursor={cat_cursor}"),
        ),
        (
            "total=exact, category".into(),
            format!("/system/logs?limit=50&category=cat{cat}&total=exact"),
        ),
    ];
    let mut out = format!(
        "system log, {rows} rows (SQLite, release, over HTTP; ms: median / max of {SAMPLES})\n"
    );
    for (name, path) in &scenarios {
        let samples = if name.contains("old way") || name.contains("exact") {
            3
        } else {
            SAMPLES
        };
        let (median, max, status) = time(a, &Target::get(path.as_str()), samples)?;
        out.push_str(&format!(
            "  {name:<44} {median:>9.2} / {max:>9.2}  (status {status})\n"
        ));
    }
    out.push_str(&export(&server)?);
    out.push_str(&purge(a, rows, first)?);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    println!("\n{out}");
    if rows == 1_000_000 {
        record(root, &out)?;
    } else {
        eprintln!("bench logs: not the 1 000 000-row run, BENCHMARKS.md left as it is");
    }
    Ok(())
}

/// Where BENCHMARKS.md holds this bench's figures; the full bench keeps the section as it is.
pub const SECTION_START: &str = "<!-- bench logs: start -->";
pub const SECTION_END: &str = "<!-- bench logs: end -->";

/// This run's figures as BENCHMARKS.md's system-log section (replaced, or added at the end).
fn record(root: &Path, figures: &str) -> Result<()> {
    let section = format!(
        "{SECTION_START}\n## The system log at scale (issue 16)\n\n\
         `cargo xtask bench --only logs` on the machine above: 1 000 000 rows seeded into a \
         fresh SQLite file, the release host with system_log and exports, auth off, one \
         request at a time over HTTP. Targets: any page by cursor under 20 ms, a filtered page \
         under 50 ms, an export of 1 000 000 rows under 60 s with flat memory; the purge's \
         longest write stall is the figure for \"not blocking requests for more than one \
         batch\".\n\n```\n{figures}```\n{SECTION_END}\n"
    );
    super::write_section(root, SECTION_START, SECTION_END, &section)
}

/// `secs` since the epoch as RFC 3339 UTC with microseconds (the stored format).
fn stamp(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Row `i`'s id: UUID-shaped, sorting in row order (as v7 ids sort in creation order).
fn id(secs: u64, i: u64) -> String {
    format!(
        "{:08x}-{:04x}-7000-8000-{:012x}",
        secs >> 16,
        secs & 0xffff,
        i
    )
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Insert `rows` rows one second apart from `first`, in one transaction.
fn seed(db: &Path, rows: u64, first: u64) -> Result<Duration> {
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO system_logs (id, logged_at, level, category, message, correlation_id, \
             user_id, source, context) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 'bench', '{}')",
        )?;
        for i in 0..rows {
            let secs = first + i;
            insert.execute(rusqlite::params![
                id(secs, i),
                stamp(secs),
                LEVELS[((i / CATEGORIES) % LEVELS.len() as u64) as usize],
                format!("cat{}", i % CATEGORIES),
                format!("seeded entry {i} with a message of some length"),
                format!("corr-{}", i / 10),
            ])?;
        }
    }
    tx.commit()?;
    Ok(started.elapsed())
}

/// Median and max latency (ms) of `samples` calls after one warm-up, and the last status.
fn time(a: SocketAddr, target: &Target, samples: usize) -> Result<(f64, f64, u16)> {
    load::once(a, target)?;
    let mut ms = Vec::with_capacity(samples);
    let mut status = 0;
    for _ in 0..samples {
        let t = Instant::now();
        status = load::once(a, target)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[ms.len() - 1], status))
}

/// Export the whole log as CSV through the exports pack (keyset pages through the `packs`
/// import, appended to an artefact); print the time, the rows and bytes, and the host's peak
/// resident memory before and after (flat memory: the export does not raise it with the
/// rows).
fn export(server: &super::Server) -> Result<String> {
    let a = server.addr;
    let peak_before = peak_rss_kib(server.child.id());
    let create = Target::post_json(
        "/system/exports",
        r#"{"source":"system_log","format":"csv"}"#,
    );
    let (status, answer) = load::once_with_body(a, &create)?;
    if status != 202 {
        bail!("the export answered {status}: {answer}");
    }
    let id = json_field(&answer, "id").with_context(|| format!("no id in {answer}"))?;
    let started = Instant::now();
    let job = loop {
        std::thread::sleep(Duration::from_millis(200));
        let (_, job) = load::once_with_body(a, &Target::get(format!("/system/exports/{id}")))?;
        match json_field(&job, "status").as_deref() {
            Some("done") => break job,
            Some("failed" | "cancelled") => bail!("the export ended: {job}"),
            _ if started.elapsed() > Duration::from_secs(900) => bail!("the export hangs: {job}"),
            _ => {}
        }
    };
    let took = started.elapsed();
    let peak_after = peak_rss_kib(server.child.id());
    Ok(format!(
        "  export (csv) of {} rows, {} bytes, in {took:.1?}; host peak RSS {} MiB before, {} MiB \
         after\n",
        json_field(&job, "rows").unwrap_or_default(),
        json_field(&job, "bytes").unwrap_or_default(),
        peak_before / 1024,
        peak_after / 1024
    ))
}

/// The process's peak resident set (VmHWM), KiB; 0 when unknown.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A top-level string or number field of a JSON object (the bench has no JSON parser).
fn json_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":");
    let rest = json[json.find(&key)? + key.len()..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        return s.split_once('"').map(|(v, _)| v.to_string());
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

/// Purge every seeded row in batches while a writer posts entries; print the figures.
fn purge(a: SocketAddr, rows: u64, first: u64) -> Result<String> {
    load::once(
        a,
        &Target::post_json("/system/logs", r#"{"message":"warm-up"}"#),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let post = Target::post_json("/system/logs", r#"{"message":"during purge"}"#);
            let (mut ms, mut failed) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match load::once(a, &post) {
                    Ok(201) => {}
                    _ => failed += 1,
                }
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(f64::total_cmp);
            let at = |q: f64| {
                ms.get(((ms.len() as f64 - 1.0) * q) as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            (at(1.0), at(0.99), at(0.5), ms.len(), failed)
        })
    };
    let before = stamp(first + rows + 1);
    let body = format!(r#"{{"before":"{before}","limit":{PURGE_BATCH}}}"#);
    let purge = Target::post_json("/system/logs/purge", body);
    let started = Instant::now();
    let (mut removed, mut batches, mut slowest) = (0u64, 0u64, 0f64);
    loop {
        let t = Instant::now();
        let (status, answer) = load::once_with_body(a, &purge)?;
        slowest = slowest.max(t.elapsed().as_secs_f64() * 1e3);
        if status != 200 {
            stop.store(true, Ordering::Relaxed);
            bail!("purge answered {status}: {answer}");
        }
        let n: u64 = answer
            .split_once("\"removed\":")
            .and_then(|(_, rest)| rest.trim_end_matches('}').trim().parse().ok())
            .with_context(|| format!("no `removed` in {answer}"))?;
        removed += n;
        batches += 1;
        if n < PURGE_BATCH {
            break;
        }
    }
    let total = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (worst, p99, p50, writes, failed) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    if removed != rows {
        bail!("the purge removed {removed} rows, not the {rows} seeded");
    }
    Ok(format!(
        "  purge: {removed} rows in {batches} batches of {PURGE_BATCH} in {total:.2?} \
         (slowest batch {slowest:.1} ms)\n  concurrent writer: {writes} entries written, \
         {failed} failed, longest write stall {worst:.1} ms (p99 {p99:.1} ms, p50 {p50:.2} ms)\n"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_the_stored_format() {
        assert_eq!(super::stamp(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(super::stamp(1_795_427_251), "2026-11-23T09:47:31.000000Z");
    }
}
