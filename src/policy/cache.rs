//! A bounded, thread-safe LRU of [`SqlAnalysis`] keyed by statement text.
//!
//! Invariants:
//! - At most `capacity` entries (split evenly over [`SHARDS`] independently locked shards,
//!   so concurrent sessions rarely contend); the least recently used entry of a shard goes
//!   first.
//! - Texts longer than [`MAX_KEY_BYTES`] are analysed every time and never stored, so the
//!   cache's memory stays bounded by `capacity × MAX_KEY_BYTES` plus the analyses.
//! - A hit costs one hash, one uncontended lock and an `Arc` clone. Every call counts as
//!   exactly one hit or one miss.
//! - The analysis is context-free (see [`super::sql`]); the trusted-function list is fixed
//!   for the cache's lifetime, so a config reload that changes it needs a new cache.
//! - A second level is keyed by the statement's [`shape`](super::sql::shape) (value literals
//!   blanked), in maps of its own so a shape can never collide with an exact text. A shape
//!   hit is not copied into the exact level: statements that differ only in literals would
//!   otherwise churn it. The cache never changes a verdict: a shape hit gives what a cold
//!   analysis of the text gives (the shape's invariant; proved over the SQL test corpus with
//!   mutated literals in `sql/tests/shape.rs`).
//! - [`TargetCaches`] keeps one cache per target, so nothing learnt on one target (its
//!   catalog, its trusted functions) is ever served to another.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use lru::LruCache;

use super::sql::{SqlAnalysis, SqlOptions, analyze_sql};

/// Number of independently locked shards.
pub const SHARDS: usize = 8;
/// Longest text that is cached (longer ones are analysed on every call).
pub const MAX_KEY_BYTES: usize = 16 * 1024;

type Shard = Mutex<LruCache<String, Arc<SqlAnalysis>>>;

pub struct ClassifierCache {
    shards: Vec<Shard>,
    shapes: Vec<Shard>,
    hasher: RandomState,
    trusted_functions: HashSet<String>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ClassifierCache {
    /// `capacity` entries in total (at least one per shard).
    pub fn new(capacity: usize, trusted_functions: HashSet<String>) -> Self {
        let per_shard = NonZeroUsize::new(capacity.div_ceil(SHARDS)).unwrap_or(NonZeroUsize::MIN);
        ClassifierCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            shapes: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            hasher: RandomState::new(),
            trusted_functions,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The analysis of `text`, from the cache when possible.
    pub fn analyze(&self, text: &str) -> Arc<SqlAnalysis> {
        if text.len() > MAX_KEY_BYTES {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Arc::new(self.run(text));
        }
        let shard = &self.shards[self.hasher.hash_one(text) as usize % SHARDS];
        if let Some(hit) = shard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(text)
            .cloned()
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return hit;
        }
        let shape = super::sql::shape::shape(text);
        let shape_shard = shape
            .as_ref()
            .map(|k| &self.shapes[self.hasher.hash_one(k) as usize % SHARDS]);
        if let (Some(k), Some(sh)) = (&shape, shape_shard)
            && let Some(hit) = sh.lock().unwrap_or_else(|p| p.into_inner()).get(k).cloned()
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return hit;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Analysed outside the lock: a slow parse never blocks other sessions' hits.
        let fresh = Arc::new(self.run(text));
        shard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(text.to_string(), fresh.clone());
        if let (Some(k), Some(sh)) = (shape, shape_shard) {
            sh.lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(k, fresh.clone());
        }
        fresh
    }

    fn run(&self, text: &str) -> SqlAnalysis {
        analyze_sql(
            text,
            &SqlOptions {
                trusted_functions: &self.trusted_functions,
            },
        )
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One [`ClassifierCache`] per target name, made at the target's first statement.
///
/// Invariant: an analysis is only ever served to statements on the target it was made for.
/// The number of caches is bounded by the targets configured ([`Self::retain`] drops those a
/// reload removed).
pub struct TargetCaches {
    capacity: usize,
    trusted_functions: HashSet<String>,
    by_target: RwLock<HashMap<String, Arc<ClassifierCache>>>,
    /// Hits and misses of caches dropped by [`Self::retain`], so the totals never go down.
    retired_hits: AtomicU64,
    retired_misses: AtomicU64,
}

impl TargetCaches {
    /// `capacity` entries per target.
    pub fn new(capacity: usize, trusted_functions: HashSet<String>) -> TargetCaches {
        TargetCaches {
            capacity,
            trusted_functions,
            by_target: RwLock::new(HashMap::new()),
            retired_hits: AtomicU64::new(0),
            retired_misses: AtomicU64::new(0),
        }
    }

    /// The cache of `target`.
    pub fn for_target(&self, target: &str) -> Arc<ClassifierCache> {
        if let Some(c) = self
            .by_target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
        {
            return c.clone();
        }
        self.by_target
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(target.to_string())
            .or_insert_with(|| {
                Arc::new(ClassifierCache::new(
                    self.capacity,
                    self.trusted_functions.clone(),
                ))
            })
            .clone()
    }

    /// The analysis of `text` on `target`, from that target's cache when possible.
    pub fn analyze(&self, target: &str, text: &str) -> Arc<SqlAnalysis> {
        self.for_target(target).analyze(text)
    }

    /// Keep only the caches of targets `keep` says still exist.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.by_target
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, cache| {
                let kept = keep(name);
                if !kept {
                    self.retired_hits.fetch_add(cache.hits(), Ordering::Relaxed);
                    self.retired_misses
                        .fetch_add(cache.misses(), Ordering::Relaxed);
                }
                kept
            });
    }

    fn sum(&self, f: impl Fn(&ClassifierCache) -> u64) -> u64 {
        self.by_target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| f(c))
            .sum()
    }

    /// Hits over every target's cache, ever.
    pub fn hits(&self) -> u64 {
        self.sum(ClassifierCache::hits) + self.retired_hits.load(Ordering::Relaxed)
    }

    /// Misses over every target's cache, ever.
    pub fn misses(&self) -> u64 {
        self.sum(ClassifierCache::misses) + self.retired_misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Class;

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
}
