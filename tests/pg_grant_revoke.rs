//! Who may revoke a grant: its grantee or an approver of its rule, nobody else (403). A
//! refused revoke leaves the grant working; checked on the database, not only in the API.

#[path = "support/api.rs"]
mod api;
mod support;

use api::{Fixture, affected, assert_error, finish, held_id};

#[tokio::test(flavor = "multi_thread")]
async fn only_the_grantee_or_an_approver_may_revoke_a_grant() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    let grant_for = |id: &str| {
        let approved = fx.bob.approve_ok(id, "window", Some(600));
        approved["grant"].as_str().expect("grant id").to_string()
    };

    let h = s.spawn_simple("DELETE FROM t WHERE id = 1");
    let id = held_id(&s.notice().await).expect("request id");
    let grant = grant_for(&id);
    assert_eq!(affected(&finish(h).await.expect("approved")), Some(1));

    // dave is neither the grantee nor an approver (group sre) of the rule: he may not even
    // see the grant, so it is answered as if it did not exist.
    let path = format!("/v1/grants/{grant}");
    assert_error("dave revokes alice's grant", &fx.dave.delete(&path), 404);
    assert_eq!(
        fx.bob.grants().len(),
        1,
        "the refused revoke left the grant"
    );
    let r = finish(s.spawn_simple("DELETE FROM t WHERE id = 2")).await;
    assert_eq!(affected(&r.expect("granted DELETE")), Some(1));
    assert_eq!(
        fx.row("t", 2),
        None,
        "the grant still covers alice's deletes"
    );

    // The grantee may give up her own grant; afterwards the next delete is held again.
    let (status, body) = fx.alice.delete(&path);
    assert_eq!(status, 200, "{body}");
    let h = s.spawn_simple("DELETE FROM t WHERE id = 3");
    let again = held_id(&s.notice().await).expect("held again after the revoke");
    assert!(fx.row("t", 3).is_some(), "nothing ran while held");

    // carol, an approver of the rule (group sre) who did not give the grant, may revoke it.
    let grant = grant_for(&again);
    assert_eq!(affected(&finish(h).await.expect("approved")), Some(1));
    let (status, body) = fx.carol.delete(&format!("/v1/grants/{grant}"));
    assert_eq!(status, 200, "{body}");
    assert!(fx.bob.grants().is_empty());
    let h = s.spawn_simple("DELETE FROM t WHERE id = 4");
    let last = held_id(&s.notice().await).expect("held after carol's revoke");
    fx.bob.deny_ok(&last, "no");
    assert!(finish(h).await.is_err(), "denied");
    assert!(fx.row("t", 4).is_some(), "the denied delete did not run");
}
