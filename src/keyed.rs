//! A bounded map of shared state per key: one breaker per host, one rate limiter per tenant.
//!
//! Keyed breakers and keyed rate limiters both need the same thing: a value per key computed
//! from the request, made on first use, shared by every call with that key, and bounded in
//! number so that a stream of new keys (client addresses, tenants) cannot grow memory without
//! end. This module is that map, written once.
//!
//! # Shape
//!
//! [`SHARDS`] shards, each a `Mutex<HashMap>`; a key's shard is picked by its hash. A hit locks
//! one shard, stamps the entry with the time of use and runs the caller's closure on the value
//! (so a caller that needs no `Arc` of its own takes no reference count): no allocation, and a
//! lock held for a lookup and the closure only. Hashing is std's `RandomState` (keyed SipHash):
//! keys often come from clients, and a predictable hash would let one client force collisions.
//! A key is hashed once: the shard's table stores the hash next to the key and re-hashes
//! nothing.
//! No crate was taken for this (dashmap, moka): the map needs an exact global cap, eviction in a
//! documented order and a busy test per value, which a few dozen lines over std give without a
//! dependency.
//!
//! # Bounds and eviction
//!
//! - At most `max_keys` entries, globally (not per shard): a slot is reserved with a CAS on the
//!   count before an insert, so concurrent inserts never overshoot.
//! - An entry unused for at least `idle_timeout` (on tokio's clock) is *idle*. Idle entries are
//!   swept when a new key is inserted and a sweep is due (at most one sweep per `idle_timeout`),
//!   or whenever the map is full. An idle entry therefore goes within `2 × idle_timeout` of its
//!   last use if new keys keep arriving, and at once when the map is full; while no new key
//!   arrives nothing is swept (there is no background task), which costs memory only.
//! - When the map is still full after the sweep, the least recently used entry goes (ties: the
//!   one inserted first).
//! - A value may say it is **busy** ([`Evict::is_busy`]): an open breaker, a limiter still in
//!   debt. Forgetting it would lose a decision (the breaker would close, the debt be forgiven),
//!   so a busy entry is never swept as idle, and at the cap a busy entry goes only when every
//!   entry is busy. The cap is a hard bound on memory; it wins over busyness.
//! - Sweeping and evicting read every entry (an `O(max_keys)` scan, and a sort for eviction)
//!   under each shard's lock in turn. They run only when a new key arrives and a sweep is due
//!   or the map is full: choose `max_keys` above the working set, so that a full map is the
//!   exception (a flood of new keys) rather than the steady state.
//! - The busy test runs with no shard lock held (it may read the clock and make a breaker's
//!   time-driven transition, whose listener is user code): candidates are collected under the
//!   locks, judged outside them, and removed only if they were not used in between.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::ConfigError;

/// How many shards a map has: enough that 2–8 threads rarely meet on one lock.
pub(crate) const SHARDS: usize = 16;

/// The most keys a map may be asked to hold: 16 M.
pub(crate) const MAX_MAX_KEYS: usize = 1 << 24;

/// The longest `idle_timeout`: one year.
const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A value kept per key, and whether it may be evicted now.
pub(crate) trait Evict {
    /// Whether forgetting this value now would lose a decision (see the module docs).
    fn is_busy(&self, now: Instant) -> bool;
}

/// The bounds of a keyed map, as given to a builder's `max_keys` and `idle_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) max_keys: usize,
    pub(crate) idle_timeout: Duration,
}

impl Bounds {
    /// Checks both bounds; the errors name the builder methods.
    pub(crate) fn validate(self) -> Result<Self, ConfigError> {
        crate::error::check_range("max_keys", self.max_keys, 1, MAX_MAX_KEYS)?;
        if self.idle_timeout.is_zero() || self.idle_timeout > MAX_IDLE_TIMEOUT {
            return Err(ConfigError::new(
                "idle_timeout",
                &format!("more than zero and at most {MAX_IDLE_TIMEOUT:?}"),
                self.idle_timeout,
            ));
        }
        Ok(self)
    }
}

/// A key with its SipHash, which the shard's table uses as is.
#[derive(Clone)]
struct Hashed<K> {
    hash: u64,
    key: K,
}

impl<K> Hash for Hashed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<K: PartialEq> PartialEq for Hashed<K> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl<K: Eq> Eq for Hashed<K> {}

/// The shard tables' hasher: the hash a [`Hashed`] carries, already keyed and uniform.
#[derive(Debug, Clone, Copy, Default)]
struct KnownHash;

impl BuildHasher for KnownHash {
    type Hasher = KnownHasher;

    fn build_hasher(&self) -> KnownHasher {
        KnownHasher(0)
    }
}

#[derive(Debug)]
struct KnownHasher(u64);

impl Hasher for KnownHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Hashed` is hashed with this hasher, and it writes one u64; fold anything else
        // rather than panic.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
}

struct Entry<V> {
    value: Arc<V>,
    /// Nanoseconds since the map's epoch of the latest use.
    last_used: u64,
    /// The insert's sequence number: unique, so it names the entry, and breaks recency ties.
    seq: u64,
}

/// One shard: its keys with their entries.
type Shard<K, V> = HashMap<Hashed<K>, Entry<V>, KnownHash>;

/// A bounded map from keys to shared values; see the [module docs](self).
pub(crate) struct KeyedMap<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    hasher: RandomState,
    /// Entries in the map plus slots reserved by inserts in progress; at most `max_keys`.
    len: AtomicUsize,
    /// The next insert sequence number.
    next_seq: AtomicU64,
    /// Nanoseconds since the epoch from which an idle sweep is due.
    next_sweep: AtomicU64,
    /// The bounds, changed only by [`set_bounds`](Self::set_bounds): `Relaxed`, as they guard
    /// no other data, and an insert or a sweep that reads the old bound while a reload stores a
    /// new one acts as it would have a moment earlier.
    max_keys: AtomicUsize,
    idle_ns: AtomicU64,
    epoch: Instant,
}

impl<K, V> fmt::Debug for KeyedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMap")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("max_keys", &self.max_keys.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A candidate for eviction, collected under its shard's lock and judged outside it.
struct Candidate<V> {
    shard: usize,
    seq: u64,
    last_used: u64,
    value: Arc<V>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map's invariants hold between statements, so a panic elsewhere leaves it usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq, V: Evict> KeyedMap<K, V> {
    /// An empty map with validated `bounds`.
    pub(crate) fn new(bounds: Bounds) -> Self {
        let hasher = RandomState::new();
        let per_shard = bounds.max_keys.div_ceil(SHARDS).min(1024);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_capacity_and_hasher(per_shard, KnownHash)))
                .collect(),
            hasher,
            len: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
            next_sweep: AtomicU64::new(0),
            max_keys: AtomicUsize::new(bounds.max_keys),
            idle_ns: AtomicU64::new(crate::clock::nanos(bounds.idle_timeout)),
            epoch: Instant::now(),
        }
    }

    /// The bounds in force.
    #[cfg(feature = "serde")]
    pub(crate) fn bounds(&self) -> Bounds {
        Bounds {
            max_keys: self.max_keys.load(Ordering::Relaxed),
            idle_timeout: Duration::from_nanos(self.idle_ns.load(Ordering::Relaxed)),
        }
    }

    /// New validated bounds, live: a lower `max_keys` evicts down to it as keys come (each
    /// insert evicts until a slot is free), never at once; a new `idle_timeout` applies from
    /// the next sweep, which is due at once.
    #[cfg(feature = "serde")]
    pub(crate) fn set_bounds(&self, bounds: Bounds) {
        self.max_keys.store(bounds.max_keys, Ordering::Relaxed);
        self.idle_ns
            .store(crate::clock::nanos(bounds.idle_timeout), Ordering::Relaxed);
        self.next_sweep.store(0, Ordering::Relaxed);
    }

    fn ns(&self, now: Instant) -> u64 {
        crate::clock::nanos(now.saturating_duration_since(self.epoch))
    }

    fn hashed(&self, key: K) -> (Hashed<K>, usize) {
        let hash = self.hasher.hash_one(&key);
        // The high bits: the shard's own table indexes by the low ones, and tags by the top 7.
        let shard = (hash >> 40) as usize % SHARDS;
        (Hashed { hash, key }, shard)
    }

    /// The value for `key`, made by `make` if the key is new; marks it used at `now`.
    #[inline]
    #[allow(dead_code)] // keyed breakers use it; keyed limiters decide inside `with`
    pub(crate) fn get_or_insert_with(
        &self,
        key: K,
        now: Instant,
        make: impl FnOnce() -> V,
    ) -> Arc<V> {
        self.with(key, now, make, Arc::clone)
    }

    /// Runs `f` on the value for `key`, made by `make` if the key is new; marks it used at
    /// `now`. On a hit `f` runs under the shard's lock: keep it short, and never call back
    /// into the map from it.
    #[inline]
    pub(crate) fn with<R>(
        &self,
        key: K,
        now: Instant,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&Arc<V>) -> R,
    ) -> R {
        let now_ns = self.ns(now);
        let (key, shard) = self.hashed(key);
        {
            let mut entries = lock(&self.shards[shard]);
            if let Some(entry) = entries.get_mut(&key) {
                entry.last_used = entry.last_used.max(now_ns);
                return f(&entry.value);
            }
        }
        f(&self.insert(key, shard, now, now_ns, make))
    }

    #[cold]
    #[inline(never)]
    fn insert(
        &self,
        key: Hashed<K>,
        shard: usize,
        now: Instant,
        now_ns: u64,
        make: impl FnOnce() -> V,
    ) -> Arc<V> {
        let max_keys = self.max_keys.load(Ordering::Relaxed);
        let idle_ns = self.idle_ns.load(Ordering::Relaxed);
        let full = self.len.load(Ordering::Relaxed) >= max_keys;
        if full || now_ns >= self.next_sweep.load(Ordering::Relaxed) {
            self.next_sweep
                .store(now_ns.saturating_add(idle_ns), Ordering::Relaxed);
            self.sweep_idle(now, now_ns);
        }
        // Reserve a slot, evicting until one is free. Each round either reserves or removes an
        // entry (or finds that another thread did), so the loop ends.
        let mut reserved = self.len.load(Ordering::Relaxed);
        loop {
            if reserved < max_keys {
                match self.len.compare_exchange_weak(
                    reserved,
                    reserved + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => reserved = actual,
                }
            } else {
                if !self.evict_one(now) {
                    // Every slot is reserved by inserts still in progress: let them finish.
                    std::thread::yield_now();
                }
                reserved = self.len.load(Ordering::Relaxed);
            }
        }
        let mut entries = lock(&self.shards[shard]);
        if let Some(entry) = entries.get_mut(&key) {
            // Another thread inserted it meanwhile: use that one, give the slot back.
            self.len.fetch_sub(1, Ordering::Relaxed);
            entry.last_used = entry.last_used.max(now_ns);
            return Arc::clone(&entry.value);
        }
        let value = Arc::new(make());
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        entries.insert(
            key,
            Entry {
                value: Arc::clone(&value),
                last_used: now_ns,
                seq,
            },
        );
        value
    }

    /// Removes every idle entry that is not busy.
    fn sweep_idle(&self, now: Instant, now_ns: u64) {
        let idle_ns = self.idle_ns.load(Ordering::Relaxed);
        let idle: Vec<Candidate<V>> =
            self.collect(|entry| now_ns.saturating_sub(entry.last_used) >= idle_ns);
        let victims: Vec<(usize, u64, u64)> = idle
            .into_iter()
            .filter(|candidate| !candidate.value.is_busy(now))
            .map(|candidate| (candidate.shard, candidate.seq, candidate.last_used))
            .collect();
        self.remove_unchanged(&victims);
    }

    /// Removes the least recently used entry, preferring those that are not busy; whether it
    /// removed one.
    fn evict_one(&self, now: Instant) -> bool {
        let mut all = self.collect(|_| true);
        all.sort_unstable_by_key(|candidate| (candidate.last_used, candidate.seq));
        let victim = all
            .iter()
            .find(|candidate| !candidate.value.is_busy(now))
            .or_else(|| all.first());
        match victim {
            Some(victim) => {
                self.remove_unchanged(&[(victim.shard, victim.seq, victim.last_used)]) > 0
            }
            None => false,
        }
    }

    fn collect(&self, mut keep: impl FnMut(&Entry<V>) -> bool) -> Vec<Candidate<V>> {
        let mut out = Vec::new();
        for (shard, entries) in self.shards.iter().enumerate() {
            for entry in lock(entries).values() {
                if keep(entry) {
                    out.push(Candidate {
                        shard,
                        seq: entry.seq,
                        last_used: entry.last_used,
                        value: Arc::clone(&entry.value),
                    });
                }
            }
        }
        out
    }

    /// Removes each `(shard, seq, last_used)` whose entry is still there and unused since; how
    /// many it removed.
    fn remove_unchanged(&self, victims: &[(usize, u64, u64)]) -> usize {
        let mut total = 0;
        for (shard, entries) in self.shards.iter().enumerate() {
            let mut mine: Vec<(u64, u64)> = victims
                .iter()
                .filter(|victim| victim.0 == shard)
                .map(|victim| (victim.1, victim.2))
                .collect();
            if mine.is_empty() {
                continue;
            }
            mine.sort_unstable();
            let mut entries = lock(entries);
            let before = entries.len();
            entries.retain(|_, entry| mine.binary_search(&(entry.seq, entry.last_used)).is_err());
            let removed = before - entries.len();
            self.len.fetch_sub(removed, Ordering::Relaxed);
            total += removed;
        }
        total
    }

    /// The value for `key`, if it is in the map; does not count as a use.
    pub(crate) fn get(&self, key: &K) -> Option<Arc<V>>
    where
        K: Clone,
    {
        let (key, shard) = self.hashed(key.clone());
        lock(&self.shards[shard])
            .get(&key)
            .map(|entry| Arc::clone(&entry.value))
    }

    /// Removes `key`; whether it was there.
    #[allow(dead_code)] // keyed breakers use it, keyed limiters do not
    pub(crate) fn remove(&self, key: &K) -> bool
    where
        K: Clone,
    {
        let (key, shard) = self.hashed(key.clone());
        let removed = lock(&self.shards[shard]).remove(&key).is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// How many keys the map holds (inserts in progress included).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Replaces every value for which `replace` gives a new one, one shard at a time under its
    /// lock (so `replace` must be short and never call back into the map); each entry keeps its
    /// time of use and its place in the eviction order. Calls that took the old value before
    /// keep it.
    #[cfg(feature = "serde")]
    #[allow(dead_code)] // keyed breakers' reload uses it; keyed limiters replace no value
    pub(crate) fn replace_values(&self, mut replace: impl FnMut(&V) -> Option<V>) {
        for entries in self.shards.iter() {
            for entry in lock(entries).values_mut() {
                if let Some(value) = replace(&entry.value) {
                    entry.value = Arc::new(value);
                }
            }
        }
    }

    /// Every key with its value, one shard at a time (not one atomic picture of the map).
    pub(crate) fn entries(&self) -> Vec<(K, Arc<V>)>
    where
        K: Clone,
    {
        let mut out = Vec::with_capacity(self.len());
        for entries in self.shards.iter() {
            out.extend(
                lock(entries)
                    .iter()
                    .map(|(key, entry)| (key.key.clone(), Arc::clone(&entry.value))),
            );
        }
        out
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicBool;

    #[derive(Debug)]
    struct Value {
        id: u64,
        busy: AtomicBool,
    }

    impl Evict for Value {
        fn is_busy(&self, _: Instant) -> bool {
            self.busy.load(Ordering::Relaxed)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Busy(u8, bool),
        Advance(u64),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..8).prop_map(Op::Get),
            2 => (0u8..8, any::<bool>()).prop_map(|(k, b)| Op::Busy(k, b)),
            3 => (0u64..4).prop_map(Op::Advance),
            1 => (0u8..8).prop_map(Op::Remove),
        ]
    }

    /// The sequential model: the rules of the module docs, on a plain list.
    #[derive(Debug, Default)]
    struct Model {
        /// (key, id, last_used, seq, busy)
        entries: Vec<(u8, u64, u64, u64, bool)>,
        next_seq: u64,
        next_id: u64,
        next_sweep: u64,
    }

    impl Model {
        fn get(&mut self, key: u8, now: u64, max: usize, idle: u64) -> u64 {
            if let Some(entry) = self.entries.iter_mut().find(|e| e.0 == key) {
                entry.2 = now;
                return entry.1;
            }
            if self.entries.len() >= max || now >= self.next_sweep {
                self.next_sweep = now + idle;
                self.entries.retain(|e| now - e.2 < idle || e.4);
            }
            while self.entries.len() >= max {
                let oldest = |e: &&(u8, u64, u64, u64, bool)| (e.2, e.3);
                let victim = self
                    .entries
                    .iter()
                    .filter(|e| !e.4)
                    .min_by_key(oldest)
                    .or_else(|| self.entries.iter().min_by_key(oldest))
                    .map(|e| e.3)
                    .unwrap();
                self.entries.retain(|e| e.3 != victim);
            }
            let id = self.next_id;
            self.next_id += 1;
            self.entries.push((key, id, now, self.next_seq, false));
            self.next_seq += 1;
            id
        }
    }

    proptest! {
        #[test]
        fn matches_a_sequential_model(
            max in 1usize..6,
            idle in 1u64..6,
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let epoch = Instant::now();
            let map: KeyedMap<u8, Value> = KeyedMap::new(Bounds {
                max_keys: max,
                idle_timeout: Duration::from_nanos(idle),
            });
            let map = KeyedMap { epoch, ..map };
            let mut model = Model::default();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Get(key) => {
                        let expected = model.get(key, now, max, idle);
                        let value = map.get_or_insert_with(
                            key,
                            epoch + Duration::from_nanos(now),
                            || Value { id: expected, busy: AtomicBool::new(false) },
                        );
                        prop_assert_eq!(value.id, expected, "key {}", key);
                    }
                    Op::Busy(key, busy) => {
                        if let Some(entry) = model.entries.iter_mut().find(|e| e.0 == key) {
                            entry.4 = busy;
                        }
                        if let Some(value) = map.get(&key) {
                            value.busy.store(busy, Ordering::Relaxed);
                        }
                    }
                    Op::Advance(ns) => now += ns,
                    Op::Remove(key) => {
                        let had = model.entries.iter().any(|e| e.0 == key);
                        model.entries.retain(|e| e.0 != key);
                        prop_assert_eq!(map.remove(&key), had);
                    }
                }
                let mut keys: Vec<(u8, u64)> =
                    map.entries().iter().map(|(k, v)| (*k, v.id)).collect();
                keys.sort_unstable();
                let mut expected: Vec<(u8, u64)> =
                    model.entries.iter().map(|e| (e.0, e.1)).collect();
                expected.sort_unstable();
                prop_assert_eq!(keys, expected);
                prop_assert_eq!(map.len(), model.entries.len());
                prop_assert!(map.len() <= max);
            }
        }
    }

    #[test]
    fn bounds_name_their_builder_method() {
        let bounds = Bounds {
            max_keys: 0,
            idle_timeout: Duration::from_secs(1),
        };
        assert_eq!(bounds.validate().unwrap_err().field(), "max_keys");
        let bounds = Bounds {
            max_keys: 1,
            idle_timeout: Duration::ZERO,
        };
        assert_eq!(bounds.validate().unwrap_err().field(), "idle_timeout");
    }

    #[test]
    fn concurrent_inserts_never_overshoot_the_cap() {
        let map = Arc::new(KeyedMap::<u32, Value>::new(Bounds {
            max_keys: 8,
            idle_timeout: Duration::from_secs(60),
        }));
        let now = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let map = Arc::clone(&map);
                std::thread::spawn(move || {
                    for k in 0..500 {
                        let _ = map.get_or_insert_with(t * 1000 + k % 37, now, || Value {
                            id: 0,
                            busy: AtomicBool::new(false),
                        });
                        assert!(map.len() <= 8);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(map.len(), map.entries().len());
        assert!(map.len() <= 8);
    }
}
