//! A measurement, not a test: run once in release mode with
//! `cargo test --release --lib audit::bench -- --ignored --nocapture`.
//! It prints the events/second the store sustains, the caller's cost of `record`, and the
//! latency of `record_durable` idle and under a pgbench-like load. It asserts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::tests::{TempDir, open, result, stmt};
use super::*;
use crate::policy::{Class, Decision};

fn pgbench_statement(text: &Arc<str>, tables: &Arc<[String]>, rule: &Arc<str>) -> EventKind {
    EventKind::Statement {
        text: text.into(),
        class: Class::Read,
        tables: tables.clone(),
        decision: Decision::Allow,
        rule: Some(rule.into()),
        request: None,
        grant: None,
        params: None,
    }
}

/// `evs` of `session` encoded, hashed and packed into one block after `head` (next seq, hash).
fn block_of(head: (u64, [u8; 32]), session: &[u8], evs: &[EventKind]) -> super::chain::BlockWriter {
    let mut b = super::chain::BlockWriter::new(head.0, head.1, Vec::new());
    for ev in evs {
        let c = super::encode::Canonical {
            ev,
            result: None,
            redact_parameters: false,
            text_ref: None,
        };
        b.push(1_764_000_000_000_000, session, |buf| {
            serde_json::to_writer(buf, &c)
        })
        .unwrap();
    }
    b
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn durable_latency(a: &Audit, n: usize) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        a.record_durable("held", stmt(&format!("UPDATE t SET n = {i}")))
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

fn report(label: &str, lat: &[Duration]) {
    println!(
        "{label}: p50 {:?}  p99 {:?}  max {:?}  (n = {})",
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat[lat.len() - 1],
        lat.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_and_durable_latency() {
    let d = TempDir::new("bench");
    // AUDIT_BENCH_INTERVAL_MS=N: another commit interval (fewer flushes, less sled CPU).
    let interval = std::env::var("AUDIT_BENCH_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(
            AuditOptions::default().commit_interval,
            Duration::from_millis,
        );
    let a = open(
        &d.0,
        AuditOptions {
            commit_interval: interval,
            ..Default::default()
        },
    );
    a.start();
    let text: Arc<str> = Arc::from("SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
    let tables: Arc<[String]> = Arc::from(vec!["public.pgbench_accounts".to_string()]);
    let rule: Arc<str> = Arc::from("reads pass");

    if std::env::var_os("AUDIT_BENCH_STEADY").is_some() {
        let joined = std::env::var_os("AUDIT_BENCH_JOINED").is_some();
        steady(&a, &d.0, 60_000, &text, &tables, &rule, joined).await;
        return;
    }
    // 1. Saturation: two producers as fast as they can, Statement + Result pairs.
    let secs = 3.0;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, full, call_ns) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let before = a.stats();
    let t0 = Instant::now();
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let (a, stop, ok, full, call_ns) = (
                a.clone(),
                stop.clone(),
                ok.clone(),
                full.clone(),
                call_ns.clone(),
            );
            let (text, tables, rule) = (text.clone(), tables.clone(), rule.clone());
            std::thread::spawn(move || {
                let session: Arc<str> = Arc::from(format!("bench{p}"));
                let backlog = a.backlog();
                let (mut n_ok, mut n_full, mut ns) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    // As a session does at a statement boundary: no room, no next statement.
                    if !a.has_room(&backlog) {
                        n_full += 1;
                        std::thread::yield_now();
                        continue;
                    }
                    let t = Instant::now();
                    let r1 =
                        a.record_in(&backlog, &session, pgbench_statement(&text, &tables, &rule));
                    let r2 = a.record_in(&backlog, &session, result("SELECT 1", 1));
                    ns += t.elapsed().as_nanos() as u64;
                    for r in [r1, r2] {
                        match r {
                            Ok(()) => n_ok += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                ok.fetch_add(n_ok, Ordering::Relaxed);
                full.fetch_add(n_full, Ordering::Relaxed);
                call_ns.fetch_add(ns, Ordering::Relaxed);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().unwrap();
    }
    a.flush().await.unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    let after = a.stats();
    let committed = after.events - before.events;
    let (ok, full) = (ok.load(Ordering::Relaxed), full.load(Ordering::Relaxed));
    println!(
        "saturation: {:.0} events/s committed ({committed} in {elapsed:.2} s, {} commits, \
         {:.0} events/commit, max commit {} µs); no room {full} times; \
         caller cost {:.0} ns per record()",
        committed as f64 / elapsed,
        after.commits - before.commits,
        committed as f64 / (after.commits - before.commits) as f64,
        after.max_commit_us,
        call_ns.load(Ordering::Relaxed) as f64 / ok as f64,
    );

    // 2. record_durable with nothing else going on.
    let lat = durable_latency(&a, 500).await;
    report("record_durable idle", &lat);

    // 2b. Durable writers at once (autocommit writes and COMMITs of many sessions): they
    // should share group commits, not queue for one each.
    for writers in [8usize, 32] {
        let s0 = a.stats();
        let t = Instant::now();
        let rounds = 200 / writers.min(200) * 10;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let a = a.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(rounds);
                    let session: Arc<str> = Arc::from(format!("w{w}"));
                    for r in 0..rounds {
                        let t = Instant::now();
                        a.record_durable(&session, stmt(&format!("UPDATE t SET n = {r}")))
                            .await
                            .unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        lat.sort();
        let s1 = a.stats();
        report(&format!("record_durable, {writers} writers at once"), &lat);
        println!(
            "  {:.0} durable writes/s, {:.1} per commit",
            lat.len() as f64 / t.elapsed().as_secs_f64(),
            lat.len() as f64 / (s1.commits - s0.commits) as f64
        );
    }

    // 3. record_durable under ~60k routine events/s (30k statements/s with results).
    let stop = Arc::new(AtomicBool::new(false));
    let bg = {
        let (a, stop, text, tables, rule) = (
            a.clone(),
            stop.clone(),
            text.clone(),
            tables.clone(),
            rule.clone(),
        );
        std::thread::spawn(move || {
            let session: Arc<str> = Arc::from("load");
            let start = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * 30_000.0) as u64;
                while sent < due {
                    let _ = a.record(&session, pgbench_statement(&text, &tables, &rule));
                    let _ = a.record(&session, result("SELECT 1", 1));
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            sent * 2
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let s0 = a.stats();
    let lat = durable_latency(&a, 2000).await;
    let s1 = a.stats();
    stop.store(true, Ordering::Relaxed);
    let _ = bg.join().unwrap();
    report("record_durable under 60k events/s", &lat);
    println!(
        "  (meanwhile {:.0} events/s committed, {} commits)",
        (s1.events - s0.events) as f64 / t.elapsed().as_secs_f64(),
        s1.commits - s0.commits
    );
    a.flush().await.unwrap();

    // 4. Steady pgbench-like load with nothing else: what it costs in CPU.
    for rate in [30_000u64, 60_000] {
        steady(&a, &d.0, rate, &text, &tables, &rule, false).await;
    }
    // The same with each result joined to its statement (record_statement_in/record_result_in).
    for rate in [30_000u64, 60_000] {
        steady(&a, &d.0, rate, &text, &tables, &rule, true).await;
    }

    let t = Instant::now();
    let n = a.verify().unwrap();
    println!(
        "verify: {n} events in {:.2} s; store size {} MiB",
        t.elapsed().as_secs_f64(),
        dir_size(&d.0) >> 20,
    );
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) of this process, or of its threads whose names start with one
/// of the `|`-separated prefixes in `name`.
fn cpu_secs(name: Option<&str>) -> f64 {
    let stat = |path: std::path::PathBuf| -> f64 {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    };
    match name {
        None => stat("/proc/self/stat".into()),
        Some(n) => std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| n.split('|').any(|p| c.trim().starts_with(p)))
            })
            .map(|t| stat(t.path().join("stat")))
            .sum(),
    }
}

/// `rate` statements/s (each a Statement and a Result event, or with `joined` one event when
/// the result joins its statement) for 4 s from one thread.
async fn steady(
    a: &Audit,
    dir: &std::path::Path,
    rate: u64,
    text: &Arc<str>,
    tables: &Arc<[String]>,
    rule: &Arc<str>,
    joined: bool,
) {
    const WRITER: &str = "jitgate-audit";
    const SLED: &str = "sled|log flusher";
    let (a2, text, tables, rule) = (a.clone(), text.clone(), tables.clone(), rule.clone());
    let s0 = a.stats();
    let b0 = dir_size(dir);
    let (p0, w0, l0) = (cpu_secs(None), cpu_secs(Some(WRITER)), cpu_secs(Some(SLED)));
    let t0 = Instant::now();
    let (sent, call_ns) = tokio::task::spawn_blocking(move || {
        let session: Arc<str> = Arc::from("steady");
        let backlog = a2.backlog();
        let start = Instant::now();
        let (mut sent, mut ns) = (0u64, 0u64);
        while start.elapsed() < Duration::from_secs(4) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            let t = Instant::now();
            while sent < due {
                let ev = pgbench_statement(&text, &tables, &rule);
                if joined {
                    let h = a2.record_statement_in(&backlog, &session, ev).unwrap();
                    let _ = a2.record_result_in(&backlog, &session, &h, result("SELECT 1", 1));
                } else {
                    let _ = a2.record_in(&backlog, &session, ev);
                    let _ = a2.record_in(&backlog, &session, result("SELECT 1", 1));
                }
                sent += 1;
            }
            ns += t.elapsed().as_nanos() as u64;
            std::thread::sleep(Duration::from_micros(200));
        }
        (sent, ns)
    })
    .await
    .unwrap();
    a.flush().await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let (p1, w1, l1) = (cpu_secs(None), cpu_secs(Some(WRITER)), cpu_secs(Some(SLED)));
    let s1 = a.stats();
    let grown = dir_size(dir).saturating_sub(b0) as f64;
    let events = (s1.events - s0.events) as f64;
    let statements = sent as f64;
    println!(
        "steady {rate} statements/s{}: {:.0} events/s committed, {} commits; caller {:.0} ns \
         per statement and result; writer thread {:.1} % of a core ({:.2} µs per statement); \
         sled's threads {:.1} % ({:.2} µs per statement); whole process (with the benchmark's \
         own producer) {:.1} %; store grew {:.0} bytes per statement",
        if joined { " joined" } else { "" },
        events / secs,
        s1.commits - s0.commits,
        call_ns as f64 / statements,
        (w1 - w0) / secs * 100.0,
        (w1 - w0) / statements * 1e6,
        (l1 - l0) / secs * 100.0,
        (l1 - l0) / statements * 1e6,
        (p1 - p0) / secs * 100.0,
        grown / statements,
    );
}

/// The writer's CPU per event without sled: JSON, hashing, compression.
#[test]
#[ignore]
fn encode_cost() {
    use super::chain::GENESIS;
    use super::encode::Canonical;
    let text: Arc<str> = Arc::from("SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
    let tables: Arc<[String]> = Arc::from(vec!["public.pgbench_accounts".to_string()]);
    let rule: Arc<str> = Arc::from("reads pass");
    let evs: Vec<EventKind> = (0..300)
        .flat_map(|_| {
            [
                pgbench_statement(&text, &tables, &rule),
                result("SELECT 1", 1),
            ]
        })
        .collect();
    let n = 500;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        let b = block_of((1, GENESIS), b"steady", &evs);
        bytes += b.finish().len();
    }
    let per = t.elapsed().as_nanos() as f64 / (n * evs.len()) as f64;
    println!(
        "encode + hash + compress: {per:.0} ns per event, {} bytes per event stored",
        bytes / (n * evs.len())
    );
    let t = Instant::now();
    let mut v = Vec::with_capacity(4096);
    for _ in 0..n {
        for ev in &evs {
            v.clear();
            let c = Canonical {
                ev,
                result: None,
                redact_parameters: false,
                text_ref: None,
            };
            serde_json::to_writer(&mut v, &c).unwrap();
        }
    }
    let per = t.elapsed().as_nanos() as f64 / (n * evs.len()) as f64;
    println!("json only: {per:.0} ns per event");
}

/// What one group commit of a few durable events costs, piece by piece: encoding, sled's
/// batch, sled's flush; and beside it one `write` + `fdatasync` of the same bytes to a plain
/// append-only file in the same directory (what a segment file of our own would cost).
#[test]
#[ignore]
fn commit_cost() {
    use super::chain::GENESIS;
    use std::io::Write as _;
    let d = TempDir::new("commit-cost");
    let store = super::store::Store::open(&d.0).unwrap();
    let text: Arc<str> =
        Arc::from("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;");
    let tables: Arc<[String]> = Arc::from(vec!["public.pgbench_accounts".to_string()]);
    let rule: Arc<str> = Arc::from("writes pass");
    let per_commit = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8usize);
    let evs: Vec<EventKind> = (0..per_commit)
        .map(|_| pgbench_statement(&text, &tables, &rule))
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.0.join("segment-probe"))
        .unwrap();
    let (mut encode, mut batch, mut flush, mut append) = (vec![], vec![], vec![], vec![]);
    let mut head = (1u64, GENESIS);
    let mut packed = Vec::new();
    let mut table = lz4_flex::block::CompressTable::large();
    for _ in 0..1000 {
        let t = Instant::now();
        let b = block_of(head, b"session-0123456789", &evs);
        let first = b.first_seq;
        head = (b.last_seq + 1, b.last_hash);
        let (n, _) = b.finish_into(&mut packed, &mut table);
        encode.push(t.elapsed());
        let t = Instant::now();
        let mut sb = sled::Batch::default();
        sb.insert(&super::keys::block(first), &packed[..n]);
        sb.insert(super::keys::index(b"session-0123456789", first), &[][..]);
        sb.insert(super::keys::HEAD, &[0u8; 40][..]);
        store.db.apply_batch(sb).unwrap();
        batch.push(t.elapsed());
        let t = Instant::now();
        store.db.flush().unwrap();
        flush.push(t.elapsed());
        let t = Instant::now();
        file.write_all(&packed[..n]).unwrap();
        file.sync_data().unwrap();
        append.push(t.elapsed());
    }
    for (label, v) in [
        ("encode + hash + compress", &mut encode),
        ("sled apply_batch", &mut batch),
        ("sled flush", &mut flush),
        ("plain write + fdatasync", &mut append),
    ] {
        v.sort();
        report(&format!("{per_commit} events per commit, {label}"), v);
    }
    let plain = std::fs::metadata(d.0.join("segment-probe")).map_or(0, |m| m.len());
    println!(
        "sled store {} KiB after 1000 commits of {per_commit} events; the plain file {} KiB",
        dir_size(&d.0).saturating_sub(plain) >> 10,
        plain >> 10
    );
}
