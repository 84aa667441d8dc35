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
    a.create(new_request(required))
}

fn new_request(required: u32) -> NewRequest {
    NewRequest {
        id: None,
        user: "alice".into(),
        target: "app-db".into(),
        protocol: "postgres",
        class: Class::Write,
        statement: "DELETE FROM t WHERE id = 1".into(),
        tables: vec!["public.t".into()],
        functions: Vec::new(),
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
    }
}

#[test]
fn requester_and_outsiders_cannot_decide() {
    let a = Approvals::new();
    let (r, _rx) = request(&a, 1);
    assert_eq!(
        a.approve(&r.id, &user("alice", &["sre"]), "", None, ScopeKind::Shape)
            .unwrap_err(),
        DecideError::OwnRequest
    );
    assert_eq!(
        a.approve(
            &r.id,
            &user("mallory", &["dev"]),
            "",
            None,
            ScopeKind::Shape
        )
        .unwrap_err(),
        DecideError::NotApprover
    );
    assert_eq!(
        a.deny(&r.id, &user("mallory", &["dev"]), "no").unwrap_err(),
        DecideError::NotApprover
    );
    assert_eq!(a.get(&r.id).unwrap().state, State::Pending);
    assert_eq!(
        a.approve("r-nope", &user("bob", &["sre"]), "", None, ScopeKind::Shape)
            .unwrap_err(),
        DecideError::NotFound
    );
}

#[tokio::test]
async fn one_approval_wakes_the_waiter() {
    let a = Approvals::new();
    let (r, rx) = request(&a, 1);
    let v = a
        .approve(&r.id, &user("carol", &[]), "ok", None, ScopeKind::Shape)
        .unwrap();
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
        a.approve(&r.id, &bob, "", None, ScopeKind::Shape)
            .unwrap()
            .state,
        State::Pending
    );
    assert_eq!(
        a.approve(&r.id, &bob, "", None, ScopeKind::Shape)
            .unwrap_err(),
        DecideError::AlreadyApproved
    );
    assert!(
        rx.try_recv().is_err(),
        "one approval of two must not release"
    );
    let v = a
        .approve(&r.id, &user("carol", &[]), "", None, ScopeKind::Shape)
        .unwrap();
    assert_eq!(v.state, State::Approved);
    assert!(matches!(rx.await.unwrap(), Outcome::Approved { by, .. } if by.len() == 2));
}

#[tokio::test]
async fn one_denial_ends_it() {
    let a = Approvals::new();
    let (r, rx) = request(&a, 2);
    a.approve(&r.id, &user("carol", &[]), "", None, ScopeKind::Shape)
        .unwrap();
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

/// A candidate statement by alice on app-db.
fn stmt<'a>(
    class: Class,
    tables: &'a [String],
    functions: &'a [String],
    statement: &'a str,
) -> Candidate<'a> {
    Candidate {
        user: "alice",
        target: "app-db",
        class,
        tables,
        functions,
        statement,
        runs_prepared: false,
    }
}

#[test]
fn grants_are_scoped_bounded_and_revocable() {
    let a = Approvals::new();
    let (r, _rx) = request(&a, 1);
    assert_eq!(
        a.approve(&r.id, &user("carol", &[]), "", Some(1801), ScopeKind::Shape)
            .unwrap_err(),
        DecideError::GrantTooLong(1801, 1800)
    );
    let v = a
        .approve(&r.id, &user("carol", &[]), "", Some(600), ScopeKind::Shape)
        .unwrap();
    let gid = v.grant.expect("a grant");
    let t = vec!["public.t".to_string()];
    let other = vec!["public.t".to_string(), "public.u".to_string()];
    let any = |_: &Grant| true;
    let find = |user: &str, target: &str, class, tables: &[String], runs_prepared| {
        a.find_grant(
            &Candidate {
                user,
                target,
                class,
                tables,
                functions: &[],
                statement: "DELETE FROM t WHERE id = 2",
                runs_prepared,
            },
            any,
        )
        .is_some()
    };
    assert!(find("alice", "app-db", Class::Write, &t, false));
    assert!(
        !find("alice", "app-db", Class::Write, &[], false),
        "other tables: not covered"
    );
    assert!(
        !find("alice", "app-db", Class::Write, &t, true),
        "EXECUTE: not covered"
    );
    assert!(!find("bob", "app-db", Class::Write, &t, false));
    assert!(!find("alice", "other", Class::Write, &t, false));
    assert!(!find("alice", "app-db", Class::Ddl, &t, false));
    assert!(!find("alice", "app-db", Class::Write, &other, false));
    assert!(
        a.find_grant(
            &stmt(Class::Write, &t, &[], "DELETE FROM t WHERE id = 2"),
            |_| false
        )
        .is_none(),
        "a grant the policy of now refuses covers nothing"
    );
    assert_eq!(a.grants().len(), 1);
    assert_eq!(a.grants()[0].scope.scope, ScopeKind::Shape);
    assert!(a.revoke(&gid).is_some());
    assert!(!find("alice", "app-db", Class::Write, &t, false));
    assert!(a.revoke(&gid).is_none());
}

#[test]
fn grants_expire_by_themselves() {
    let mut g = grants::Grants::default();
    let t = vec!["public.t".to_string()];
    let scope = GrantScope::for_request(
        &stmt(Class::Write, &t, &[], "DELETE FROM t"),
        ScopeKind::Tables,
    )
    .unwrap();
    g.add(
        scope,
        Duration::from_secs(60),
        "r1",
        vec!["carol".into()],
        Vec::new(),
    );
    let c = stmt(Class::Write, &t, &[], "UPDATE t SET x = 1");
    let now = SystemTime::now();
    assert!(g.find(&c, now, |_| true).is_some());
    let later = now + Duration::from_secs(61);
    assert!(g.find(&c, later, |_| true).is_none());
    assert!(g.live(later).is_empty());
}

/// Finding 7: a grant covers what the approver saw: the same shape on the same tables by
/// default; `tables` widens it to the class on those tables, never to a sequence change.
#[test]
fn a_shape_grant_covers_the_approved_statement_with_other_values_only() {
    let t = vec!["public.accounts".to_string()];
    let setval = vec!["setval".to_string()];
    let approved = stmt(
        Class::Write,
        &t,
        &[],
        "UPDATE accounts SET balance = 1 WHERE id = 2",
    );
    let shape = GrantScope::for_request(&approved, ScopeKind::Shape).unwrap();
    assert_eq!(shape.scope, ScopeKind::Shape);
    assert!(shape.covers(&stmt(
        Class::Write,
        &t,
        &[],
        "UPDATE accounts SET balance = 7 WHERE id = 3"
    )));
    assert!(!shape.covers(&stmt(
        Class::Write,
        &t,
        &[],
        "DELETE FROM accounts WHERE id = 5"
    )));
    assert!(!shape.covers(&stmt(
        Class::Write,
        &t,
        &setval,
        "SELECT setval('s', 424242) FROM accounts"
    )));
    let secret = vec!["secret.accounts".to_string()];
    assert!(
        !shape.covers(&stmt(
            Class::Write,
            &secret,
            &[],
            "UPDATE accounts SET balance = 7 WHERE id = 3"
        )),
        "the same text resolved to another table is not covered"
    );

    let tables = GrantScope::for_request(&approved, ScopeKind::Tables).unwrap();
    assert_eq!(tables.scope, ScopeKind::Tables);
    assert!(tables.covers(&stmt(
        Class::Write,
        &t,
        &[],
        "DELETE FROM accounts WHERE id = 5"
    )));
    assert!(
        !tables.covers(&stmt(
            Class::Write,
            &t,
            &setval,
            "SELECT setval('s', 424242) FROM accounts"
        )),
        "a sequence named in a literal is never covered by a table grant"
    );
    assert!(!tables.covers(&stmt(Class::Write, &secret, &[], "DELETE FROM accounts")));
}

#[test]
fn narrow_grants_cover_only_the_same_text() {
    let setval = vec!["setval".to_string()];
    let seq = GrantScope::for_request(
        &stmt(Class::Write, &[], &setval, "SELECT setval('a', 1)"),
        ScopeKind::Shape,
    )
    .unwrap();
    assert_eq!(
        seq.scope,
        ScopeKind::Exact,
        "a literal names what it changes"
    );
    assert!(seq.covers(&stmt(Class::Write, &[], &setval, "SELECT setval('a', 1)")));
    assert!(!seq.covers(&stmt(Class::Write, &[], &setval, "SELECT setval('b', 1)")));
    assert!(
        GrantScope::for_request(
            &stmt(Class::Write, &[], &setval, "SELECT setval('a', 1)"),
            ScopeKind::Tables
        )
        .is_err()
    );
    let t = vec!["public.t".to_string()];
    let unknown = GrantScope::for_request(
        &stmt(Class::Unknown, &t, &[], "SELECT f(1) FROM t"),
        ScopeKind::Shape,
    )
    .unwrap();
    assert_eq!(unknown.scope, ScopeKind::Exact);
    assert!(!unknown.covers(&stmt(Class::Unknown, &t, &[], "SELECT f(2) FROM t")));
    let mut exec = stmt(Class::Write, &t, &[], "EXECUTE p");
    exec.runs_prepared = true;
    assert_eq!(
        GrantScope::for_request(&exec, ScopeKind::Shape)
            .unwrap()
            .scope,
        ScopeKind::Exact
    );
    assert!(GrantScope::for_request(&exec, ScopeKind::Tables).is_err());
}

#[test]
fn scope_tables_is_refused_when_it_cannot_hold_and_the_narrowest_asked_wins() {
    let a = Approvals::new();
    let mut n = new_request(2);
    n.statement = "SELECT setval('s', 1) FROM t".into();
    n.functions = vec!["setval".into()];
    let (r, _rx) = a.create(n);
    assert!(matches!(
        a.approve(&r.id, &user("carol", &[]), "", Some(60), ScopeKind::Tables),
        Err(DecideError::ScopeTooWide(_))
    ));
    let (r, _rx) = request(&a, 2);
    a.approve(&r.id, &user("carol", &[]), "", Some(60), ScopeKind::Tables)
        .unwrap();
    let v = a
        .approve(
            &r.id,
            &user("bob", &["sre"]),
            "",
            Some(60),
            ScopeKind::Shape,
        )
        .unwrap();
    assert_eq!(v.state, State::Approved);
    let g = a.grants();
    assert_eq!(g.len(), 1);
    assert_eq!(
        g[0].scope.scope,
        ScopeKind::Shape,
        "the narrowest scope asked"
    );
    assert_eq!(g[0].granted_by, ["carol", "bob"]);
}

/// Finding 12: a grant is valid only under the policy of now.
#[test]
fn a_grant_holds_only_under_the_policy_of_now() {
    let a = Approvals::new();
    let (r, _rx) = request(&a, 1);
    a.approve(
        &r.id,
        &user("carol", &["sre"]),
        "",
        Some(1800),
        ScopeKind::Shape,
    )
    .unwrap();
    let g = a.grants().remove(0);
    let users =
        |list: &[(&str, &[&str])]| -> std::collections::BTreeMap<String, std::sync::Arc<User>> {
            list.iter()
                .map(|(n, gs)| (n.to_string(), std::sync::Arc::new(user(n, gs))))
                .collect()
        };
    let today = users(&[("alice", &["dev"]), ("carol", &["sre"])]);
    let rule = |approvers: Vec<Approver>, required: u32, max_grant: u64| {
        (approvers, required, Duration::from_secs(max_grant))
    };
    let sre = || vec![Approver::Group("sre".into())];
    let holds = |g: &Grant,
                 (approvers, required, max_grant): (Vec<Approver>, u32, Duration),
                 users: &std::collections::BTreeMap<String, std::sync::Arc<User>>,
                 now| { g.holds(&approvers, required, max_grant, users, now) };
    let now = SystemTime::now();
    assert!(holds(&g, rule(sre(), 1, 1800), &today, now));
    assert!(
        !holds(
            &g,
            rule(vec![Approver::Group("dba".into())], 1, 1800),
            &today,
            now
        ),
        "carol is no longer an approver"
    );
    assert!(
        !holds(&g, rule(sre(), 2, 1800), &today, now),
        "two approvals needed now"
    );
    assert!(
        !holds(
            &g,
            rule(sre(), 1, 60),
            &today,
            now + Duration::from_secs(61)
        ),
        "today's max_grant has passed since the grant was made"
    );
    assert!(holds(&g, rule(sre(), 1, 60), &today, now));
    assert!(
        !holds(
            &g,
            rule(sre(), 1, 1800),
            &users(&[("carol", &["sre"])]),
            now
        ),
        "the grantee no longer exists"
    );
    assert!(
        !holds(
            &g,
            rule(sre(), 1, 1800),
            &users(&[("alice", &["dev"]), ("carol", &["dev"])]),
            now
        ),
        "the approver left the group"
    );
    assert_eq!(a.revoke_grants_of(|u| u == "alice"), 1);
    assert!(a.grants().is_empty());
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
