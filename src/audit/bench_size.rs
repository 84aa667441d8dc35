//! A measurement, not a test: the bytes the audit trail stores per statement, exactly (the
//! stored blocks, compressed, as the segment files hold them; not the frames or sled's index,
//! which `du` in `bench/audit.sh` includes), for the shapes pgbench sends through the relay:
//! `cargo test --lib audit::bench_size -- --ignored --nocapture`. Run it on two builds to
//! compare them; it asserts nothing.

use std::sync::Arc;

use bytes::Bytes;

use super::tests::{TempDir, started};
use super::*;
use crate::policy::{Class, Decision};

const STATEMENTS: u64 = 20_000;

fn statement(text: String) -> EventKind {
    EventKind::Statement {
        text: Text::from(text),
        class: Class::Read,
        tables: Arc::from(vec!["public.pgbench_accounts".to_string()]),
        decision: Decision::Allow,
        rule: Some(Text::from_static("reads pass")),
        request: None,
        grant: None,
        params: None,
    }
}

fn result() -> EventKind {
    EventKind::Result {
        command_tag: Some(Text::from_static("SELECT 1")),
        rows: Some(1),
        sqlstate: None,
        message: None,
        duration_us: 87,
    }
}

/// Stored (compressed) and raw (hashed) block bytes, and events, of the whole store.
fn stored(a: &Audit) -> (u64, u64, u64) {
    let (mut bytes, mut raw) = (0, 0);
    for (_, v) in a.inner.store.blocks().filter_map(|kv| kv.ok()) {
        bytes += v.len() as u64;
        raw += chain::unpack(&v).map_or(0, |r| r.len() as u64);
    }
    (bytes, raw, a.stats().events)
}

/// `STATEMENTS` statements as pgbench `-S` sends them, `extended` (Bind with one parameter,
/// the same text each time) or simple (the parameter in the text), each with its result:
/// joined to it (`joined`) or recorded on its own, as the relay did before.
async fn shape(extended: bool, joined: bool) {
    let d = TempDir::new("size");
    let a = started(&d.0);
    let session: Arc<str> = Arc::from("s-0123456789abcdef");
    let backlog = a.backlog();
    let mut aid: u64 = 12_345;
    for _ in 0..STATEMENTS {
        aid = (aid * 48_271) % 1_000_000 + 1;
        let text = if extended {
            a.record_in(
                &backlog,
                &session,
                EventKind::Bind {
                    portal: Text::from_static(""),
                    statement_name: Text::from_static(""),
                    params: vec![Some(Bytes::from(aid.to_string()))],
                },
            )
            .unwrap();
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".to_string()
        } else {
            format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};")
        };
        if joined {
            let h = a
                .record_statement_in(&backlog, &session, statement(text))
                .unwrap();
            a.record_result_in(&backlog, &session, &h, result())
                .unwrap();
        } else {
            a.record_in(&backlog, &session, statement(text)).unwrap();
            a.record_in(&backlog, &session, result()).unwrap();
        }
        if !a.has_room(&backlog) {
            a.room(&backlog).await;
        }
    }
    a.flush().await.unwrap();
    let (bytes, raw, events) = stored(&a);
    println!(
        "{} {}: {events} events, {:.2} events/statement, {:.1} stored bytes/statement ({:.1} raw), {:.1} stored bytes/event",
        if extended { "extended" } else { "simple" },
        if joined { "joined" } else { "separate results" },
        events as f64 / STATEMENTS as f64,
        bytes as f64 / STATEMENTS as f64,
        raw as f64 / STATEMENTS as f64,
        bytes as f64 / events as f64,
    );
}

#[tokio::test]
#[ignore]
async fn stored_bytes_per_statement() {
    for extended in [false, true] {
        for joined in [false, true] {
            shape(extended, joined).await;
        }
    }
}
