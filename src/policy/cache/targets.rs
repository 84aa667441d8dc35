//! [`TargetCaches`]: one [`ClassifierCache`] per target, each fixed to one snapshot of the
//! target's own objects (see the parent module's invariants).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::ClassifierCache;
use crate::policy::sql::{SqlAnalysis, TargetCatalog, TargetObjects};

/// One [`ClassifierCache`] per target name, made at the target's first statement, with what
/// is known of the target's own objects.
///
/// Invariant: an analysis is only ever served to statements on the target it was made for,
/// against the snapshot in force. The number of caches is bounded by the targets configured
/// ([`Self::retain`] drops those a reload removed).
pub struct TargetCaches {
    capacity: usize,
    trusted_functions: HashSet<String>,
    by_target: RwLock<HashMap<String, TargetEntry>>,
    /// Hits and misses of caches replaced or dropped, so the totals never go down.
    retired_hits: AtomicU64,
    retired_misses: AtomicU64,
}

struct TargetEntry {
    cache: Arc<ClassifierCache>,
    /// Schema changes permitted on the target whose transactions have not ended.
    changes_in_flight: usize,
    /// Counts every schema change ever permitted: a snapshot read that began before the
    /// latest one may have missed it.
    changes: u64,
    /// A snapshot read was put in force at least once (successfully or not).
    read_once: bool,
    /// Someone re-reads the snapshot periodically.
    watched: bool,
}

/// Taken when a snapshot read begins; [`TargetCaches::set_catalog`] uses it only if no
/// schema change began since, and none is in flight.
#[derive(Clone, Copy, Debug)]
pub struct CatalogTicket {
    changes: u64,
    usable: bool,
}

/// What the catalog of a target is before its first snapshot is read.
const NOT_READ_YET: &str = "not read yet";
/// ... and after a schema change, until it is read again.
const CHANGING: &str = "a schema change on this target has not been re-read yet";

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

    fn fresh_cache(&self, catalog: TargetCatalog) -> Arc<ClassifierCache> {
        Arc::new(ClassifierCache::with_catalog(
            self.capacity,
            self.trusted_functions.clone(),
            catalog,
        ))
    }

    /// The cache of `target`.
    pub fn for_target(&self, target: &str) -> Arc<ClassifierCache> {
        if let Some(e) = self
            .by_target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
        {
            return e.cache.clone();
        }
        self.with_entry(target, |e| e.cache.clone())
    }

    fn with_entry<T>(&self, target: &str, f: impl FnOnce(&mut TargetEntry) -> T) -> T {
        let mut map = self.by_target.write().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(target.to_string())
            .or_insert_with(|| TargetEntry {
                cache: self.fresh_cache(TargetCatalog::Unavailable(NOT_READ_YET.into())),
                changes_in_flight: 0,
                changes: 0,
                read_once: false,
                watched: false,
            });
        f(entry)
    }

    /// Replace `entry`'s cache with one for `catalog` (unless it already has that one).
    fn put_catalog(&self, entry: &mut TargetEntry, catalog: TargetCatalog) {
        if *entry.cache.catalog() == catalog {
            return;
        }
        self.retire(&entry.cache);
        entry.cache = self.fresh_cache(catalog);
    }

    fn retire(&self, cache: &ClassifierCache) {
        self.retired_hits.fetch_add(cache.hits(), Ordering::Relaxed);
        self.retired_misses
            .fetch_add(cache.misses(), Ordering::Relaxed);
    }

    /// The analysis of `text` on `target`, from that target's cache when possible.
    pub fn analyze(&self, target: &str, text: &str) -> Arc<SqlAnalysis> {
        self.for_target(target).analyze(text)
    }

    /// Whether a snapshot of `target`'s objects was ever put in force (or failed to be).
    pub fn catalog_read_once(&self, target: &str) -> bool {
        self.by_target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .is_some_and(|e| e.read_once)
    }

    /// True the first time only: the caller starts the periodic re-read of `target`.
    pub fn catalog_watch_starts(&self, target: &str) -> bool {
        self.with_entry(target, |e| !std::mem::replace(&mut e.watched, true))
    }

    /// Call before reading a snapshot of `target`'s objects.
    pub fn catalog_ticket(&self, target: &str) -> CatalogTicket {
        self.with_entry(target, |e| CatalogTicket {
            changes: e.changes,
            usable: e.changes_in_flight == 0,
        })
    }

    /// Put the snapshot read under `ticket` in force (`Err`: it could not be read, which
    /// leaves the target `Unavailable`). Returns false, changing nothing, when a schema
    /// change began since the ticket was taken or is still in flight.
    pub fn set_catalog(
        &self,
        target: &str,
        ticket: CatalogTicket,
        snapshot: Result<TargetObjects, String>,
    ) -> bool {
        self.with_entry(target, |e| {
            if !ticket.usable || e.changes != ticket.changes || e.changes_in_flight > 0 {
                return false;
            }
            let catalog = match snapshot {
                Ok(objects) => TargetCatalog::Known(Arc::new(objects)),
                Err(why) => TargetCatalog::Unavailable(why),
            };
            self.put_catalog(e, catalog);
            e.read_once = true;
            true
        })
    }

    /// A statement that may change `target`'s schema was permitted: until
    /// [`Self::schema_change_ends`] and a new snapshot, reads that resolve names on it are
    /// not proven.
    pub fn schema_change_begins(&self, target: &str) {
        self.with_entry(target, |e| {
            e.changes_in_flight += 1;
            e.changes += 1;
            self.put_catalog(e, TargetCatalog::Unavailable(CHANGING.into()));
        })
    }

    /// The transaction of a schema change ended (committed, rolled back or the session
    /// gone). Returns whether none is left in flight: then a snapshot read may begin.
    pub fn schema_change_ends(&self, target: &str) -> bool {
        self.with_entry(target, |e| {
            e.changes_in_flight = e.changes_in_flight.saturating_sub(1);
            e.changes_in_flight == 0
        })
    }

    /// Keep only the caches of targets `keep` says still exist.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.by_target
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, entry| {
                let kept = keep(name);
                if !kept {
                    self.retire(&entry.cache);
                }
                kept
            });
    }

    fn sum(&self, f: impl Fn(&ClassifierCache) -> u64) -> u64 {
        self.by_target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|e| f(&e.cache))
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
