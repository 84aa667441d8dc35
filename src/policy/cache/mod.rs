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
//! - A cache analyses against one [`TargetCatalog`] for its whole life: a new snapshot of
//!   the target's own objects (or the loss of one) replaces that target's cache, so no
//!   analysis made against another snapshot is ever served. A schema change permitted on a
//!   target makes its catalog `Unavailable` at once, and only a snapshot whose read began
//!   after every such change ended (its transaction over) is put in force.
//!
//! Files: this one ([`ClassifierCache`]), `targets.rs` ([`TargetCaches`] and the snapshot
//! each target's cache is fixed to), `tests.rs`.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

mod targets;
pub use targets::{CatalogTicket, TargetCaches};

use super::sql::{SqlAnalysis, SqlOptions, TargetCatalog, analyze_sql_on, analyze_tokens_on};

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
    catalog: TargetCatalog,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ClassifierCache {
    /// `capacity` entries in total (at least one per shard), for no target: names are judged
    /// by the catalogue alone (the `jitgate classify` dry run).
    pub fn new(capacity: usize, trusted_functions: HashSet<String>) -> Self {
        Self::with_catalog(capacity, trusted_functions, TargetCatalog::NotConsulted)
    }

    /// A cache for a target whose own objects are `catalog`.
    pub fn with_catalog(
        capacity: usize,
        trusted_functions: HashSet<String>,
        catalog: TargetCatalog,
    ) -> Self {
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
            catalog,
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
        // One tokenization for the shape and, on a miss, the analysis.
        let tokens = super::sql::tokenize(text);
        let shape = tokens
            .as_ref()
            .ok()
            .and_then(|t| super::sql::shape::shape_of_tokens(text, t));
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
        let fresh = Arc::new(analyze_tokens_on(
            text,
            tokens,
            &SqlOptions {
                trusted_functions: &self.trusted_functions,
            },
            &self.catalog,
        ));
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
        analyze_sql_on(
            text,
            &SqlOptions {
                trusted_functions: &self.trusted_functions,
            },
            &self.catalog,
        )
    }

    /// The target catalog this cache's analyses were made against.
    pub fn catalog(&self) -> &TargetCatalog {
        &self.catalog
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

#[cfg(test)]
mod tests;
