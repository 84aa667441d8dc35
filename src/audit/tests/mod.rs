//! Tests against the real store (sled and segment files) in a temporary directory, by idea:
//! [`record`] (recording and reading back), [`upkeep`] (requests, restarts), [`chain`]
//! (verification and tampering), [`segment`] (torn tails, recovery, rotation, older stores),
//! [`durability`] (failure and crashes), [`commit`] (statements joined to
//! their results, shared group commits) and [`texts`] (texts stored once per session). The helpers here serve them all
//! (and `super::bench`).

mod chain;
mod commit;
mod durability;
mod record;
mod segment;
mod shipped;
mod texts;
mod upkeep;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::policy::{Class, Decision};
use crate::request::{Impact, RequestView, State};

/// A directory removed when the test ends.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "jitgate-audit-{name}-{}-{}",
            std::process::id(),
            super::now_us()
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// sled may hold its lock for a moment after the last handle drops: retry.
/// A store in `dir` with `opts` and a 30-day retention, started; with the time now in seconds
/// and a time 40 days ago in µs (for events that retention removes).
pub(super) fn kept_30_days(dir: &Path, opts: AuditOptions) -> (Audit, u64, u64) {
    let a = open(
        dir,
        AuditOptions {
            retention_days: Some(30),
            ..opts
        },
    );
    a.start();
    let now = now_us() / 1_000_000;
    (a, now, (now - 40 * 86_400) * 1_000_000)
}

pub(super) fn open(dir: &Path, opts: AuditOptions) -> Audit {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match Audit::open(dir, opts.clone()) {
            Ok(a) => return a,
            Err(AuditError::Locked(_)) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

pub(super) fn started(dir: &Path) -> Audit {
    let a = open(dir, AuditOptions::default());
    a.start();
    a
}

pub(super) fn verify_retry(dir: &Path) -> Result<u64, VerifyError> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match verify(dir) {
            Err(VerifyError::Store(AuditError::Locked(_))) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r,
        }
    }
}

pub(super) fn stmt(text: &str) -> EventKind {
    EventKind::Statement {
        text: Text::from(text.to_string()),
        class: Class::Read,
        tables: Arc::from(vec!["public.t".to_string()]),
        decision: Decision::Allow,
        rule: Some(Text::from_static("reads pass")),
        request: None,
        grant: None,
        params: None,
    }
}

pub(super) fn result(tag: &'static str, rows: u64) -> EventKind {
    EventKind::Result {
        command_tag: Some(Text::from_static(tag)),
        rows: Some(rows),
        sqlstate: None,
        message: None,
        duration_us: 42,
    }
}

pub(super) fn start_ev(user: &'static str, target: &'static str) -> EventKind {
    EventKind::SessionStart {
        protocol: "postgres".into(),
        user: user.into(),
        target: target.into(),
        client: "127.0.0.1:5555".into(),
        application: Some("psql".into()),
        parameters: Arc::from(vec![("client_encoding".to_string(), "UTF8".to_string())]),
        node: None,
    }
}

pub(super) fn end_ev() -> EventKind {
    EventKind::SessionEnd {
        reason: "client closed".into(),
        bytes_in: 100,
        bytes_out: 2000,
    }
}

/// `n` statements in session "s1", one commit (so one block).
pub(super) async fn fill(a: &Audit, n: usize) {
    for i in 0..n {
        a.record("s1", stmt(&format!("SELECT {i}"))).unwrap();
    }
    a.flush().await.unwrap();
}

pub(super) fn request_view(id: &str, state: State) -> RequestView {
    RequestView {
        id: id.into(),
        state,
        user: "alice".into(),
        target: "app-db".into(),
        protocol: "postgres".into(),
        class: Class::Write,
        statement: "UPDATE t SET x = 1".into(),
        tables: vec!["public.t".into()],
        rule: "writes need one SRE".into(),
        source: "127.0.0.1".into(),
        node: None,
        session: "s9".into(),
        created_at: 1_700_000_000,
        expires_at: 1_700_000_300,
        approvals: vec![],
        approvals_required: 1,
        decided_by: None,
        reason: None,
        grant: None,
        impact: Impact::default(),
    }
}

/// Every session index entry of `session` removed from sled; returns the blocks they named,
/// in order (a test then writes the index it needs).
pub(super) fn take_index(store: &store::Store, session: &[u8]) -> Vec<u64> {
    let mut blocks = Vec::new();
    for kv in store.db.scan_prefix(keys::index_prefix(session)) {
        let (k, v) = kv.unwrap();
        blocks.extend(keys::index_blocks(&k, &v));
        store.db.remove(k).unwrap();
    }
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

/// The session index of `session` as one checkpoint leaves it when it takes all of the
/// session's blocks at once ([`index::grouped`]): every entry of the session in sled
/// replaced. Returns the blocks, in order. Call it when no index entry is pending (the
/// writer stopped, or [`regrouped`]).
pub(super) fn regroup(store: &store::Store, session: &[u8]) -> Vec<u64> {
    let blocks = take_index(store, session);
    let one_each: Vec<Vec<u8>> = blocks.iter().map(|&b| keys::index(session, b)).collect();
    for (k, v) in index::grouped(&one_each) {
        store.db.insert(k, v).unwrap();
    }
    blocks
}

/// [`regroup`] on a running store, once its checkpoint thread has stored the head: then no
/// index entry is pending or being put into sled, and none will be until the next commit.
/// (The checkpoint thread runs on its own clock, so a test that needs a grouped entry of
/// known blocks makes it here.)
pub(super) async fn regrouped(a: &Audit, session: &[u8]) -> Vec<u64> {
    let store = &a.inner.store;
    let head = a.head_seq().unwrap();
    let until = Instant::now() + 50 * index::CHECKPOINT_EVERY;
    while index::Checkpoint::load(&store.db).unwrap().map(|c| c.0.seq) != Some(head) {
        assert!(Instant::now() < until, "no checkpoint at the head");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.pending.blocks_of(session).is_empty());
    regroup(store, session)
}
