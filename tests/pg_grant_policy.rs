//! A grant is valid only under the policy of now (issue 12, finding 12). After a SIGHUP that
//! makes writes need two DBA approvals with a 1-minute max grant, alice's 30-minute grant
//! from before no longer lets `UPDATE accounts SET balance = 0 WHERE id > 2` through in the
//! same session; after one that removes alice, her live session ends with 57P01 and her grant
//! is revoked. Checked on the database: the balances are as they were.

#[path = "support/api.rs"]
mod api;
mod support;

use api::{Api, Fixture, affected, failure, finish, held_id, poll};
use support::ALICE;

const ERIN_TOKEN: &str = "erin-dba-token";

/// The balances of accounts 1..=10, in id order.
fn balances(fx: &Fixture) -> String {
    fx.sql("SELECT string_agg(balance::text, ',' ORDER BY id) FROM accounts;")
}

/// Rewrites jitgate's config file with `edit`, sends SIGHUP and waits for the `n`th
/// "config reloaded" line.
fn reload(fx: &Fixture, n: usize, edit: impl Fn(String) -> String) {
    let jg = &fx.env.jg;
    let old = std::fs::read_to_string(jg.config_path()).expect("read the config");
    let new = edit(old.clone());
    assert_ne!(old, new, "the edit changed nothing");
    std::fs::write(jg.config_path(), new).expect("write the config");
    jg.kill("HUP");
    poll(&format!("reload #{n}"), || {
        let count = jg.log().matches("config reloaded").count();
        if count >= n {
            Ok(())
        } else if jg.log().contains("config reload failed") {
            panic!("reload rejected: {}", jg.log_tail(10))
        } else {
            Err(jg.log_tail(5))
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_ends_with_the_policy_that_made_it_and_a_removed_user_is_cut_off() {
    let erin = format!(
        "[[users]]\nname = \"erin\"\ngroups = [\"dba\"]\napi_token_sha256 = \"{}\"\n\n\
         [[users]]\nname = \"frank\"\ngroups = [\"dba\"]\n",
        sha256_hex(ERIN_TOKEN)
    );
    let fx = Fixture::with("20s", 10, |b| b.raw_toml(&erin));
    let erin = Api::new(fx.env.jg.api_addr(), ERIN_TOKEN);
    fx.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);\n\
         INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;\n\
         ALTER TABLE accounts OWNER TO app;",
    );
    let mut s = fx.alice_session().await;

    // A 30-minute grant from bob (sre) under today's rule.
    let h = s.spawn_simple("UPDATE accounts SET balance = 1 WHERE id > 5");
    let id = held_id(&s.notice().await).expect("request id");
    fx.bob.approve_ok(&id, "window", Some(1800));
    assert_eq!(affected(&finish(h).await.expect("approved")), Some(5));
    let r = finish(s.spawn_simple("UPDATE accounts SET balance = 5 WHERE id > 8")).await;
    assert_eq!(affected(&r.expect("covered by the grant")), Some(2));
    let before = balances(&fx);
    assert_eq!(before, "100,100,100,100,100,1,1,1,5,5");

    // Writes now need two DBA approvals, with grants of at most a minute.
    reload(&fx, 1, |c| {
        let old = "approvers = [\"group:sre\"]\nhold_timeout = \"20s\"\nmax_grant = \"30m\"";
        assert_eq!(c.matches(old).count(), 1, "{c}");
        c.replace(
            old,
            "approvers = [\"group:dba\"]\napprovals_required = 2\nhold_timeout = \"20s\"\n\
             max_grant = \"1m\"",
        )
    });
    let h = s.spawn_simple("UPDATE accounts SET balance = 0 WHERE id > 2");
    let held = poll("the UPDATE to be held or to finish", || {
        if let Some(r) = erin.pending(Some(ALICE)).first() {
            Ok(Some(r["id"].as_str().unwrap_or_default().to_string()))
        } else if h.is_finished() {
            Ok(None)
        } else {
            Err("neither held nor finished".into())
        }
    });
    let Some(id) = held else {
        panic!(
            "the old grant let the UPDATE through after the reload ({:?}); balances now {}",
            finish(h).await.map(|m| affected(&m)),
            balances(&fx)
        );
    };
    assert_eq!(held_id(&s.notice().await).as_deref(), Some(id.as_str()));
    erin.deny_ok(&id, "not under the new policy");
    assert_eq!(failure(finish(h).await).0, "42501");
    assert_eq!(balances(&fx), before, "nothing changed");

    // alice is removed: her live session ends with 57P01, her grant is revoked.
    assert_eq!(fx.bob.grants().len(), 1);
    reload(&fx, 2, |c| {
        let start = c
            .find("[[users]]\nname = \"alice\"")
            .expect("alice's table");
        let end = c[start + 1..]
            .find("\n[[")
            .map_or(c.len(), |i| start + 1 + i + 1);
        format!("{}{}", &c[..start], &c[end..])
    });
    let ended = tokio::time::timeout(api::POLL, async {
        loop {
            match s.messages.recv().await {
                Some(Err(e)) => return Some(e),
                Some(Ok(_)) => {}
                None => return None,
            }
        }
    })
    .await
    .expect("alice's session was not ended within the poll timeout")
    .expect("the connection closed without an error");
    assert_eq!(
        ended.code().map(|c| c.code()),
        Some("57P01"),
        "not ended by the administrator: {ended:?}"
    );
    let detail = ended
        .as_db_error()
        .and_then(|e| e.detail())
        .unwrap_or_default();
    assert!(detail.contains("user was removed"), "{ended:?}");
    assert!(
        s.client
            .simple_query("UPDATE accounts SET balance = 0 WHERE id > 2")
            .await
            .is_err(),
        "the ended session still runs statements"
    );
    assert!(
        erin.grants().is_empty(),
        "alice's grant outlived her: {:?}",
        erin.grants()
    );
    assert_eq!(balances(&fx), before, "nothing changed");
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
