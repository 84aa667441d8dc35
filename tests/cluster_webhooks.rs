//! Webhooks with several replicas: every replica has the same `[[webhooks]]` and sees every
//! request, yet each creation and decision is posted once. The replica holding the session
//! posts its request's changes, whichever replica's API made them; a request whose replica
//! was lost is posted as cancelled by the replica that closed it.

#[path = "support/api.rs"]
mod api;
#[path = "support/replicas.rs"]
mod replicas;
mod support;

use std::time::Duration;

use api::{failure, finish, held_id, poll, wait_for_pending};
use replicas::Replicas;
use support::ALICE;
use support::webhooks::{Bodies, webhook_receiver};

const A: usize = 0;
const B: usize = 1;

/// How many posts the receiver has for `(request, event)`.
fn posts(bodies: &Bodies, id: &str, event: &str) -> usize {
    let got = bodies.lock().unwrap_or_else(|p| p.into_inner());
    got.iter()
        .filter(|b| b["event"] == event && b["request"]["id"] == id)
        .count()
}

/// Waits until every `(request, event)` has been posted, then a while more for duplicates,
/// and asserts each was posted exactly once.
fn posted_once(bodies: &Bodies, expected: &[(&str, &str)]) {
    poll("the webhook posts", || {
        match expected.iter().all(|(id, ev)| posts(bodies, id, ev) > 0) {
            true => Ok(()),
            false => Err(format!("{:?}", bodies.lock().map(|b| b.clone()))),
        }
    });
    // The other replica hears of each change within milliseconds (NOTIFY); a duplicate
    // would be here well within this.
    std::thread::sleep(Duration::from_secs(2));
    for (id, ev) in expected {
        assert_eq!(
            posts(bodies, id, ev),
            1,
            "{ev} of {id}: {:?}",
            bodies.lock().map(|b| b.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_is_posted_once_by_the_replica_holding_the_session() {
    let (url, bodies) = webhook_receiver();
    let mut r =
        Replicas::start_with_toml(2, "60s", "3s", &format!("[[webhooks]]\nurl = \"{url}\""));
    // Held on A, approved through B.
    let mut on_a = r.node(A).alice_session().await;
    let h = on_a.spawn_simple("UPDATE t SET v = 11 WHERE id = 1");
    let approved = held_id(&on_a.notice().await).expect("held on A");
    wait_for_pending(&r.node(B).bob, ALICE);
    r.node(B).bob.approve_ok(&approved, "from b", None);
    finish(h).await.expect("the approved write runs on A");
    // Held on B, denied through A.
    let mut on_b = r.node(B).alice_session().await;
    let h = on_b.spawn_simple("UPDATE t SET v = 12 WHERE id = 2");
    let denied = held_id(&on_b.notice().await).expect("held on B");
    wait_for_pending(&r.node(A).bob, ALICE);
    r.node(A).bob.deny_ok(&denied, "not now");
    assert_eq!(failure(finish(h).await).0, "42501");
    posted_once(
        &bodies,
        &[
            (&approved, "request.created"),
            (&approved, "request.approved"),
            (&denied, "request.created"),
            (&denied, "request.denied"),
        ],
    );
    assert_eq!(r.node(A).row("t", 1), Some(11));
    assert_eq!(r.node(A).row("t", 2), Some(0));

    // Held on A, and A dies: B closes it, and posts that once.
    let mut on_a = r.node(A).alice_session().await;
    let h = on_a.spawn_simple("UPDATE t SET v = 13 WHERE id = 3");
    let lost = held_id(&on_a.notice().await).expect("held on A");
    wait_for_pending(&r.node(B).bob, ALICE);
    r.nodes[A].as_mut().expect("A runs").env.jg.kill("KILL");
    let _ = finish(h).await;
    r.node(B).bob.wait_state(&lost, "cancelled");
    posted_once(
        &bodies,
        &[(&lost, "request.created"), (&lost, "request.cancelled")],
    );
    let cancelled = bodies
        .lock()
        .map(|b| {
            b.iter()
                .find(|b| b["event"] == "request.cancelled")
                .cloned()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    assert_eq!(
        cancelled["request"]["reason"], "node jg-a lost",
        "{cancelled}"
    );
    assert_eq!(r.node(B).row("t", 3), Some(0), "the held write never ran");
}
