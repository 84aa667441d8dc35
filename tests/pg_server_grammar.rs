//! PostgreSQL's own grammar as the second judge, against a real server through jitgate
//! (reads pass, writes wait for an approval nobody gives, anything else is not allowed):
//! texts sqlparser alone read as plan-only `EXPLAIN`s that PostgreSQL runs (issue 12,
//! finding 1) must not run. Every check reads the database directly.

#[path = "support/api.rs"]
mod api;
mod support;

use api::Fixture;
use support::wire::{RawSession, first_error, summary};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};

fn login(fx: &Fixture) -> RawSession {
    RawSession::login(fx.env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[])
        .unwrap_or_else(|e| panic!("raw login as alice: {e:?}"))
}

fn rows(fx: &Fixture) -> String {
    fx.sql("SELECT count(*) FROM t;")
}

#[test]
fn explain_analyse_spelled_the_british_way_does_not_run() {
    let fx = Fixture::new("1s", 10);
    let mut s = login(&fx);
    for sql in [
        "EXPLAIN (ANALYSE) DELETE FROM t",
        "EXPLAIN (ANALYSE, COSTS off) INSERT INTO t VALUES (100)",
        "EXPLAIN (ANALYZE '0') DELETE FROM t",
    ] {
        let r = s.query(sql);
        assert!(
            first_error(&r).is_some(),
            "{sql} must not run unapproved: {}",
            summary(&r)
        );
        assert_eq!(rows(&fx), "10", "{sql} changed the table");
    }
    // A plan-only EXPLAIN still passes as a read and plans against the real table.
    let r = s.query("EXPLAIN (ANALYSE off, COSTS off) DELETE FROM t");
    assert_eq!(
        first_error(&r).map(|f| f.code().to_string()),
        None,
        "{}",
        summary(&r)
    );
    assert_eq!(rows(&fx), "10");
    s.close();
}
