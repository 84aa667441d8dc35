//! The cache's invariants: bounded, counted, per target, per snapshot.

use super::*;
use crate::policy::Class;
use crate::policy::sql::TargetObjects;

#[test]
fn counts_hits_and_misses() {
    let c = ClassifierCache::new(100, HashSet::new());
    let a = c.analyze("SELECT 1");
    let b = c.analyze("SELECT 1");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!((c.hits(), c.misses()), (1, 1));
    assert_eq!(
        c.analyze("DELETE FROM t").classification.class,
        Class::Write
    );
    assert_eq!((c.hits(), c.misses()), (1, 2));
    assert_eq!(c.len(), 2);
}

#[test]
fn is_bounded() {
    let c = ClassifierCache::new(16, HashSet::new());
    for i in 0..1000 {
        c.analyze(&format!("SELECT c{i} FROM t"));
    }
    assert!(c.len() <= 16, "{} entries", c.len());
    assert_eq!(c.misses(), 1000);
}

#[test]
fn statements_differing_only_in_literals_share_an_analysis() {
    let c = ClassifierCache::new(16, HashSet::new());
    for i in 0..100 {
        let a = c.analyze(&format!("UPDATE t SET v = {i} WHERE k = 'k{i}'"));
        assert_eq!(a.classification.class, Class::Write);
    }
    assert_eq!((c.hits(), c.misses()), (99, 1));
    // A different statement is not a hit, even with the same literals.
    c.analyze("UPDATE u SET v = 1 WHERE k = 'k1'");
    assert_eq!(c.misses(), 2);
}

#[test]
fn long_texts_are_not_stored() {
    let c = ClassifierCache::new(16, HashSet::new());
    let long = format!("SELECT 1 -- {}", "x".repeat(MAX_KEY_BYTES));
    assert_eq!(c.analyze(&long).classification.class, Class::Read);
    assert_eq!(c.analyze(&long).classification.class, Class::Read);
    assert_eq!((c.hits(), c.misses(), c.len()), (0, 2, 0));
}

#[test]
fn trusted_functions_apply() {
    let trusted: HashSet<String> = ["my_func".to_string()].into();
    let c = ClassifierCache::new(16, trusted);
    assert_eq!(
        c.analyze("SELECT my_func(1)").classification.class,
        Class::Read
    );
    assert_eq!(
        c.analyze("SELECT other(1)").classification.class,
        Class::Unknown
    );
}

#[test]
fn each_target_has_its_own_cache() {
    let caches = TargetCaches::new(16, HashSet::new());
    let a = caches.analyze("db-a", "SELECT 1");
    let b = caches.analyze("db-b", "SELECT 1");
    assert!(
        !Arc::ptr_eq(&a, &b),
        "one target's analysis served to another"
    );
    assert!(Arc::ptr_eq(&a, &caches.analyze("db-a", "SELECT 1")));
    assert_eq!((caches.hits(), caches.misses()), (1, 2));
    caches.retain(|t| t == "db-b");
    assert_eq!(
        (caches.hits(), caches.misses()),
        (1, 2),
        "the totals never go down"
    );
    caches.analyze("db-a", "SELECT 1");
    assert_eq!(
        (caches.hits(), caches.misses()),
        (1, 3),
        "db-a starts afresh"
    );
}

#[test]
fn a_new_snapshot_replaces_the_targets_cache() {
    let caches = TargetCaches::new(16, HashSet::new());
    let class = |text: &str| caches.analyze("db", text).classification.class;
    assert_eq!(class("SELECT lower('x')"), Class::Unknown, "not read yet");
    assert_eq!(class("SELECT 1"), Class::Read);
    let ticket = caches.catalog_ticket("db");
    assert!(caches.set_catalog("db", ticket, Ok(TargetObjects::default())));
    assert_eq!(class("SELECT lower('x')"), Class::Read);
    assert_eq!(class("SELECT lower('x')"), Class::Read);
    let (hits, misses) = (caches.hits(), caches.misses());

    // A read that began before a schema change is not put in force.
    let before = caches.catalog_ticket("db");
    caches.schema_change_begins("db");
    assert_eq!(class("SELECT lower('x')"), Class::Unknown, "changing");
    assert!(!caches.set_catalog("db", before, Ok(TargetObjects::default())));
    let during = caches.catalog_ticket("db");
    assert!(!caches.set_catalog("db", during, Ok(TargetObjects::default())));
    assert!(caches.schema_change_ends("db"));
    assert_eq!(
        class("SELECT lower('x')"),
        Class::Unknown,
        "not re-read yet"
    );

    let after = caches.catalog_ticket("db");
    let lower = TargetObjects {
        functions: ["lower".to_string()].into(),
        ..TargetObjects::default()
    };
    assert!(caches.set_catalog("db", after, Ok(lower)));
    assert_eq!(class("SELECT lower('x')"), Class::Unknown, "defined on db");
    assert_eq!(class("SELECT upper('x')"), Class::Read);
    assert!(caches.hits() >= hits && caches.misses() > misses);

    let failed = caches.catalog_ticket("db");
    assert!(caches.set_catalog("db", failed, Err("refused".into())));
    assert_eq!(class("SELECT upper('x')"), Class::Unknown, "fail closed");
}

#[test]
fn shared_across_threads() {
    let c = Arc::new(ClassifierCache::new(64, HashSet::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    c.analyze(&format!("SELECT c{} FROM t", i % 10));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().ok();
    }
    assert_eq!(c.hits() + c.misses(), 200);
    assert_eq!(c.len(), 10);
}
