use std::time::{Duration, SystemTime};

use super::*;
use crate::config::User;

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        password: None,
        ssh_keys: Vec::new(),
        api_token_sha256: None,
    }
}

fn request(a: &Approvals, required: u32) -> (RequestView, oneshot::Receiver<Outcome>) {
    a.create(NewRequest {
        id: None,
        user: "alice".into(),
        target: "app-db".into(),
        protocol: "postgres",
        class: Class::Write,
        statement: "DELETE FROM t WHERE id = 1".into(),
        tables: vec!["public.t".into()],
        rule: "writes".into(),
        source: "127.0.0.1".into(),
        session: "s1".into(),
        runs_prepared: false,
        approvers: vec![
            Approver::Group("sre".into()),
            Approver::User("carol".into()),
        ],
        approvals_required: required,
        hold_timeout: Duration::from_secs(60),
        max_grant: Duration::from_secs(1800),
    })
}

#[test]
fn requester_and_outsiders_cannot_decide() {
    let a = Approvals::new();
    let (r, _rx) = request(&a, 1);
    assert_eq!(
        a.approve(&r.id, &user("alice", &["sre"]), "", None)
            .unwrap_err(),
        DecideError::OwnRequest
    );
    assert_eq!(
        a.approve(&r.id, &user("mallory", &["dev"]), "", None)
            .unwrap_err(),
        DecideError::NotApprover
    );
    assert_eq!(
        a.deny(&r.id, &user("mallory", &["dev"]), "no").unwrap_err(),
        DecideError::NotApprover
    );
    assert_eq!(a.get(&r.id).unwrap().state, State::Pending);
    assert_eq!(
        a.approve("r-nope", &user("bob", &["sre"]), "", None)
            .unwrap_err(),
        DecideError::NotFound
    );
}

#[tokio::test]
async fn one_approval_wakes_the_waiter() {
    let a = Approvals::new();
    let (r, rx) = request(&a, 1);
    let v = a.approve(&r.id, &user("carol", &[]), "ok", None).unwrap();
    assert_eq!(v.state, State::Approved);
    assert_eq!(
        rx.await.unwrap(),
        Outcome::Approved {
            by: vec!["carol".into()],
            grant: None
        }
    );
    // A second decision is a conflict.
    assert_eq!(
        a.deny(&r.id, &user("bob", &["sre"]), "late").unwrap_err(),
        DecideError::NotPending("approved")
    );
}

#[tokio::test]
async fn two_of_two_needs_distinct_approvers() {
    let a = Approvals::new();
    let (r, mut rx) = request(&a, 2);
    let bob = user("bob", &["sre"]);
    assert_eq!(
        a.approve(&r.id, &bob, "", None).unwrap().state,
        State::Pending
    );
    assert_eq!(
        a.approve(&r.id, &bob, "", None).unwrap_err(),
        DecideError::AlreadyApproved
    );
    assert!(
        rx.try_recv().is_err(),
        "one approval of two must not release"
    );
    let v = a.approve(&r.id, &user("carol", &[]), "", None).unwrap();
    assert_eq!(v.state, State::Approved);
    assert!(matches!(rx.await.unwrap(), Outcome::Approved { by, .. } if by.len() == 2));
}

#[tokio::test]
async fn one_denial_ends_it() {
    let a = Approvals::new();
    let (r, rx) = request(&a, 2);
    a.approve(&r.id, &user("carol", &[]), "", None).unwrap();
    let v = a.deny(&r.id, &user("bob", &["sre"]), "not today").unwrap();
    assert_eq!(v.state, State::Denied);
    assert_eq!(
        rx.await.unwrap(),
        Outcome::Denied {
            by: "bob".into(),
            reason: "not today".into()
        }
    );
}

#[test]
fn grants_are_scoped_bounded_and_revocable() {
    let a = Approvals::new();
    let (r, _rx) = request(&a, 1);
    assert_eq!(
        a.approve(&r.id, &user("carol", &[]), "", Some(1801))
            .unwrap_err(),
        DecideError::GrantTooLong(1801, 1800)
    );
    let v = a
        .approve(&r.id, &user("carol", &[]), "", Some(600))
        .unwrap();
    let gid = v.grant.expect("a grant");
    let t = vec!["public.t".to_string()];
    let other = vec!["public.t".to_string(), "public.u".to_string()];
    let find = |user: &str, target: &str, class, tables: &[String], runs_prepared| {
        a.find_grant(&Candidate {
            user,
            target,
            class,
            tables,
            statement: "DELETE FROM t WHERE id = 2",
            runs_prepared,
        })
        .is_some()
    };
    assert!(find("alice", "app-db", Class::Write, &t, false));
    assert!(
        !find("alice", "app-db", Class::Write, &[], false),
        "no tables: not covered"
    );
    assert!(
        !find("alice", "app-db", Class::Write, &t, true),
        "EXECUTE: not covered"
    );
    assert!(!find("bob", "app-db", Class::Write, &t, false));
    assert!(!find("alice", "other", Class::Write, &t, false));
    assert!(!find("alice", "app-db", Class::Ddl, &t, false));
    assert!(!find("alice", "app-db", Class::Write, &other, false));
    assert_eq!(a.grants().len(), 1);
    assert!(a.revoke(&gid).is_some());
    assert!(!find("alice", "app-db", Class::Write, &t, false));
    assert!(a.revoke(&gid).is_none());
}

#[test]
fn grants_expire_by_themselves() {
    let mut g = grants::Grants::default();
    let t = vec!["public.t".to_string()];
    let scope = GrantScope::for_request("alice", "db", Class::Write, &t, "DELETE FROM t", false);
    g.add(
        scope,
        Duration::from_secs(60),
        "r1",
        "carol".into(),
        Vec::new(),
    );
    let c = Candidate {
        user: "alice",
        target: "db",
        class: Class::Write,
        tables: &t,
        statement: "UPDATE t SET x = 1",
        runs_prepared: false,
    };
    let now = SystemTime::now();
    assert!(g.find(&c, now).is_some());
    let later = now + Duration::from_secs(61);
    assert!(g.find(&c, later).is_none());
    assert!(g.live(later).is_empty());
}

#[test]
fn narrow_grants_cover_only_the_same_text() {
    let seq = GrantScope::for_request(
        "alice",
        "db",
        Class::Write,
        &[],
        "SELECT setval('a', 1)",
        false,
    );
    let c = |statement| Candidate {
        user: "alice",
        target: "db",
        class: Class::Write,
        tables: &[],
        statement,
        runs_prepared: false,
    };
    assert!(seq.covers(&c("SELECT setval('a', 1)")));
    assert!(!seq.covers(&c("SELECT setval('b', 1)")));
    let t = vec!["public.t".to_string()];
    let unknown = GrantScope::for_request(
        "alice",
        "db",
        Class::Unknown,
        &t,
        "SELECT f() FROM t",
        false,
    );
    assert!(unknown.exact.is_some());
    let exec = GrantScope::for_request("alice", "db", Class::Write, &t, "EXECUTE p", true);
    assert!(exec.exact.is_some());
}

#[tokio::test]
async fn close_expires_or_cancels_only_pending_requests() {
    let a = Approvals::new();
    let (r, rx) = request(&a, 1);
    assert!(a.close(&r.id, State::Expired, "timeout"));
    assert!(!a.close(&r.id, State::Cancelled, "again"));
    assert_eq!(rx.await.unwrap(), Outcome::Expired);
    let (r2, rx2) = request(&a, 1);
    assert_eq!(a.cancel_all("shutdown"), 1);
    assert_eq!(a.get(&r2.id).unwrap().state, State::Cancelled);
    assert!(matches!(rx2.await.unwrap(), Outcome::Cancelled { .. }));
}

#[test]
fn ids_are_distinct() {
    let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id("r")).collect();
    assert_eq!(ids.len(), 1000);
}
