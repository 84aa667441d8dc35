//! Failure, crashes and reopening.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use super::{TempDir, end_ev, fill, open, start_ev, started, stmt, verify_retry};
use crate::audit::*;

#[tokio::test]
async fn a_failed_store_refuses_events_and_says_so() {
    let d = TempDir::new("fail");
    let a = started(&d.0);
    fill(&a, 3).await;
    assert!(a.healthy());
    a.inject_failure();
    let e = a
        .record_durable("s1", stmt("UPDATE t SET x = 1"))
        .await
        .unwrap_err();
    assert!(matches!(e, AuditError::Failed(_)), "{e:?}");
    assert!(e.to_string().contains("I/O error"), "{e}");
    assert!(!a.healthy());
    assert!(matches!(
        a.record("s1", stmt("SELECT 1")),
        Err(AuditError::Failed(_))
    ));
    assert!(matches!(a.flush().await, Err(AuditError::Failed(_))));
    // on_failure (default refuse-sensitive): reads go on, sensitive actions are refused.
    assert!(a.refusal(false).is_none());
    assert!(a.refusal(true).is_some());
    // Nothing of the failed commit was written; what was before still verifies.
    assert_eq!(a.events("s1").len(), 3);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 3);
}

#[tokio::test]
async fn refuse_all_refuses_reads_too_once_failed() {
    let d = TempDir::new("refuse-all");
    let a = open(
        &d.0,
        AuditOptions {
            on_failure: crate::config::OnAuditFailure::RefuseAll,
            ..Default::default()
        },
    );
    a.start();
    assert!(a.refusal(false).is_none() && a.refusal(true).is_none());
    a.inject_failure();
    a.record("s1", stmt("SELECT 1")).unwrap(); // queued before the failing commit
    assert!(a.flush().await.is_err());
    assert!(a.refusal(false).is_some());
    assert!(matches!(
        a.record("s1", stmt("SELECT 2")),
        Err(AuditError::Failed(_))
    ));
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let d = TempDir::new("reopen");
    let a = started(&d.0);
    a.record("s1", start_ev("alice", "app-db")).unwrap();
    fill(&a, 4).await;
    drop(a);
    let a = started(&d.0);
    assert_eq!(
        a.record_durable("s1", stmt("SELECT again")).await.unwrap(),
        6
    );
    a.record("s1", end_ev()).unwrap();
    a.flush().await.unwrap();
    assert_eq!(a.events("s1").len(), 7);
    assert_eq!(
        a.session("s1").unwrap().end_reason.as_deref(),
        Some("client closed")
    );
    assert_eq!(a.verify().unwrap(), 7);
}

#[tokio::test]
async fn events_recorded_before_the_last_handle_drops_are_kept() {
    let d = TempDir::new("drop-drains");
    let a = started(&d.0);
    for i in 0..100 {
        a.record("s1", stmt(&format!("SELECT {i}"))).unwrap();
    }
    drop(a); // no flush: dropping drains and commits
    let b = open(&d.0, AuditOptions::default());
    assert_eq!(b.events("s1").len(), 100);
    // Never started: dropping still commits what was queued.
    b.record("s1", stmt("SELECT last")).unwrap();
    drop(b);
    let c = open(&d.0, AuditOptions::default());
    assert_eq!(c.verify().unwrap(), 101);
}

/// Not a test on its own: the child process of `a_crash_keeps_every_acknowledged_event`.
#[test]
#[ignore]
fn crash_child() {
    let Ok(dir) = std::env::var("JITGATE_AUDIT_CRASH_DIR") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = open(Path::new(&dir), AuditOptions::default());
        a.start();
        let flood = a.clone();
        std::thread::spawn(move || {
            for i in 0u64.. {
                let _ = flood.record("flood", stmt(&format!("SELECT {i}")));
                // ~10k events/s: a steady stream the debug-build writer keeps up with.
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut out = std::io::stdout();
        for i in 0u64.. {
            let seq = a
                .record_durable("held", stmt(&format!("UPDATE t SET n = {i}")))
                .await
                .unwrap();
            use std::io::Write;
            writeln!(out, "acked {seq} {i}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn a_crash_keeps_every_acknowledged_event() {
    let d = TempDir::new("crash");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "audit::tests::durability::crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("JITGATE_AUDIT_CRASH_DIR", &d.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Past the first checkpoints (about one a second), so recovery starts from one the
    // writer stored mid-flood, not only the one stored at open.
    let checkpointed = std::time::Instant::now() + 2 * crate::audit::index::CHECKPOINT_EVERY;
    while acked.len() < 100 || std::time::Instant::now() < checkpointed {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(rest) = line.strip_prefix("acked ") {
            let (seq, i) = rest.split_once(' ').unwrap();
            acked.push((seq.parse().unwrap(), i.parse().unwrap()));
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no final flush
    child.wait().unwrap();
    for line in lines {
        if let Some(rest) = line.unwrap().strip_prefix("acked ") {
            let (seq, i) = rest.split_once(' ').unwrap();
            acked.push((seq.parse().unwrap(), i.parse().unwrap()));
        }
    }

    let n = verify_retry(&d.0).unwrap();
    let (last_acked, _) = *acked.last().unwrap();
    assert!(
        n >= last_acked,
        "{n} events verified, {last_acked} acknowledged"
    );
    let a = open(&d.0, AuditOptions::default());
    let held = a.events("held");
    for (seq, i) in &acked {
        let e = held
            .iter()
            .find(|e| e.seq == *seq)
            .unwrap_or_else(|| panic!("event {seq} lost"));
        assert_eq!(
            e.str("text"),
            Some(format!("UPDATE t SET n = {i}").as_str())
        );
    }
    // The chain continues where the crash left it.
    a.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let next = rt
        .block_on(a.record_durable("after", stmt("SELECT 1")))
        .unwrap();
    assert_eq!(next, n + 1);
    assert_eq!(a.verify().unwrap(), n + 1);
}

#[tokio::test]
async fn the_index_is_checkpointed_while_the_writer_runs() {
    use crate::audit::index::{CHECKPOINT_EVERY, Checkpoint};
    let d = TempDir::new("checkpoint");
    let a = started(&d.0);
    fill(&a, 5).await;
    assert_eq!(a.head_seq().unwrap(), 5);
    let until = std::time::Instant::now() + 5 * CHECKPOINT_EVERY;
    let at_head = |c: Option<Checkpoint>| c.is_some_and(|Checkpoint(l)| l.seq == 5);
    while !at_head(Checkpoint::load(&a.inner.store.db).unwrap()) {
        assert!(
            std::time::Instant::now() < until,
            "no checkpoint at the head"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // With it, the head record and the session index are in sled.
    let checkpoint = Checkpoint::load(&a.inner.store.db).unwrap().unwrap();
    assert_eq!(a.inner.store.head().unwrap(), checkpoint.0);
    assert!(
        a.inner
            .store
            .db
            .scan_prefix(crate::audit::keys::index_prefix(b"s1"))
            .next()
            .is_some(),
        "the session's index entry is in sled"
    );
    assert!(a.inner.store.pending.blocks_of(b"s1").is_empty());
}

#[test]
fn pending_index_entries_are_read_until_they_are_in_sled() {
    use crate::audit::keys;
    let d = TempDir::new("pending-index");
    let store = store::Store::open(&d.0).unwrap();
    store
        .pending
        .add(vec![keys::index(b"s1", 3), keys::index(b"s10", 4)]);
    store.pending.add(vec![keys::index(b"s1", 9)]);
    assert_eq!(store.pending.blocks_of(b"s1"), vec![3, 9]);
    assert_eq!(store.pending.blocks_of(b"s10"), vec![4]);
    assert!(
        store.pending.blocks_of(b"s").is_empty(),
        "not a prefix match"
    );
    store.pending.apply(&store.db).unwrap();
    assert!(store.pending.blocks_of(b"s1").is_empty());
    let entries: Vec<(sled::IVec, sled::IVec)> = store
        .db
        .scan_prefix(keys::index_prefix(b"s1"))
        .map(Result::unwrap)
        .collect();
    assert_eq!(entries.len(), 1, "one entry for the session's two blocks");
    assert_eq!(
        keys::index_block_seq(&entries[0].0),
        Some(9),
        "keyed by its last"
    );
    let in_sled: Vec<u64> = keys::index_blocks(&entries[0].0, &entries[0].1).collect();
    assert_eq!(in_sled, vec![3, 9]);
}

#[test]
fn a_checkpoint_groups_each_sessions_blocks_in_runs_keyed_by_their_last() {
    use crate::audit::index::{BLOCKS_PER_ENTRY, grouped};
    use crate::audit::keys;
    // 300 blocks of s1, every third also holding s10, added out of order and twice.
    let mut entries: Vec<Vec<u8>> = (1..=300u64).rev().map(|b| keys::index(b"s1", b)).collect();
    entries.extend((1..=300u64).step_by(3).map(|b| keys::index(b"s10", b)));
    entries.push(keys::index(b"s1", 7));
    let runs = grouped(&entries);
    let of = |session: &[u8]| -> Vec<Vec<u64>> {
        runs.iter()
            .filter(|(k, _)| {
                k.len() == session.len() + 11 && k.starts_with(&keys::index_prefix(session))
            })
            .map(|(k, v)| keys::index_blocks(k, v).collect())
            .collect()
    };
    let s1 = of(b"s1");
    assert_eq!(s1.len(), 2);
    assert_eq!(s1[0], (1..=BLOCKS_PER_ENTRY as u64).collect::<Vec<_>>());
    assert_eq!(
        s1[1],
        (BLOCKS_PER_ENTRY as u64 + 1..=300).collect::<Vec<_>>()
    );
    assert_eq!(
        of(b"s10"),
        vec![(1..=300u64).step_by(3).collect::<Vec<_>>()]
    );
    for (k, v) in &runs {
        let blocks: Vec<u64> = keys::index_blocks(k, v).collect();
        assert_eq!(keys::index_block_seq(k), blocks.last().copied());
        assert!(v.len() <= 8 * (BLOCKS_PER_ENTRY - 1));
    }
}

/// A session of more blocks than one grouped entry holds, with one-block entries (what
/// recovery and older stores write) beside the grouped ones, is read back whole and in order.
#[tokio::test]
async fn a_session_is_read_back_whole_from_grouped_and_one_block_entries() {
    use crate::audit::index::BLOCKS_PER_ENTRY;
    use crate::audit::keys;
    let d = TempDir::new("grouped-index");
    let a = started(&d.0);
    let n = BLOCKS_PER_ENTRY + 20;
    for i in 0..n {
        // One commit, so one block, per event.
        a.record_durable("s1", stmt(&format!("SELECT {i}")))
            .await
            .unwrap();
    }
    let blocks = super::regrouped(&a, b"s1").await;
    assert_eq!(blocks.len(), n);
    let store = &a.inner.store;
    assert_eq!(
        store.db.scan_prefix(keys::index_prefix(b"s1")).count(),
        2,
        "{n} blocks in two grouped entries"
    );
    // One block's entry written again on its own, as recovery would.
    store
        .db
        .insert(keys::index(b"s1", blocks[0]), &[][..])
        .unwrap();
    let texts: Vec<String> = a
        .events("s1")
        .iter()
        .map(|e| e.str("text").unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        texts,
        (0..n).map(|i| format!("SELECT {i}")).collect::<Vec<_>>()
    );
}

/// The session index reaches sled only at checkpoints; in between, and while a checkpoint
/// moves it there, every event that was flushed is read back (the pending entries are read
/// before sled's, and leave only once they are in it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_events_stay_readable_while_checkpoints_move_the_index_into_sled() {
    use crate::audit::index::{CHECKPOINT_EVERY, Checkpoint};
    let d = TempDir::new("pending-reads");
    let a = started(&d.0);
    let start = std::time::Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    let mut n = 0;
    while seen.len() < 4 {
        assert!(
            start.elapsed() < 50 * CHECKPOINT_EVERY,
            "fewer than 4 checkpoints in {:?}",
            start.elapsed()
        );
        a.record("s1", stmt(&format!("SELECT {n}"))).unwrap();
        n += 1;
        a.flush().await.unwrap();
        assert_eq!(a.events("s1").len(), n, "after {n} flushed events");
        if let Some(Checkpoint(at)) = Checkpoint::load(&a.inner.store.db).unwrap() {
            seen.insert(at.seq);
        }
    }
    assert!(a.inner.store.pending.blocks_of(b"s1").len() < n);
}
