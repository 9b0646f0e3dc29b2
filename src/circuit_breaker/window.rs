//! The closed state's memory of recent outcomes: a count window (the last N outcomes), a time
//! window (the outcomes of the last D, in buckets), and a run of consecutive failures.
//!
//! Every window is tagged with the breaker [`Generation`] it belongs to. A breaker that closes
//! does not clear its window: it moves the tag to the new generation, and everything written
//! under an older tag reads as empty. A recorder from an older generation (a call admitted before
//! the breaker opened, finishing after it closed again) can therefore never count in the newer
//! window, and a reset is O(1).

use super::state::{Generation, is_newer};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// One finished call, as the window counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) failure: bool,
    pub(crate) slow: bool,
}

impl Sample {
    fn is_clean(self) -> bool {
        !self.failure && !self.slow
    }
}

/// What a window holds, for the trip decision and for snapshots. Counts may read below zero
/// for an instant while concurrent recorders reconcile; they are clamped here.
///
/// 64-bit: a time window of [`MAX_BUCKETS`] buckets, each counting up to 2^24 - 1 calls, holds
/// up to 1.7 × 10^11 calls, which a `u32` sum would overflow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

/// What recording a sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The sample was counted; the window now holds these totals.
    Counted(Totals),
    /// The sample was counted, and cannot have changed whether the breaker should trip.
    NoChange,
    /// The sample belongs to an older generation and was dropped.
    Stale,
}

// ---------------------------------------------------------------------------------------------
// Count window
// ---------------------------------------------------------------------------------------------

/// The largest count window. Its totals are 16-bit signed fields; this leaves room for the
/// transient overshoot of concurrent recorders.
pub(crate) const MAX_COUNT_WINDOW: u32 = 10_000;

/// The last `size` outcomes: a ring of slots and the running totals over it.
///
/// # Layout
///
/// ```text
/// slot (AtomicU32):    | generation:16 | unused:13 | slow:1 | failure:1 | present:1 |
/// totals (AtomicU64):  | generation:16 | slow:16 | failures:16 | calls:16 |   (i16 fields)
/// cursor (AtomicU64):  the number of samples ever placed; the next slot is cursor % size
/// ```
///
/// A slot counts in the totals only while its generation equals the totals' generation.
/// `calls` is the number of such slots, `failures` and `slow` those with the flag set.
///
/// # Recording
///
/// 1. Load the totals. If the window is full, holds no failure and no slow call, and the sample
///    is a clean success, stop: writing a success over a success changes nothing, and since every
///    slot holds the same value the ring's position does not matter either. This is the healthy
///    path, and it is one load of a line that nobody writes while the service is healthy.
/// 2. Take a slot (`cursor.fetch_add`) and swap the sample in, reading what it evicts.
/// 3. CAS the totals: add the sample if its generation is the totals' generation, and subtract
///    the evicted sample if *its* generation is. Both terms are judged against the generation the
///    totals hold at the CAS, so a recorder that lost a race with a reset still accounts for the
///    current-generation sample it evicted.
///
/// Between 2 and 3 another recorder may evict our sample and subtract it before we add it; the
/// fields are signed for that reason, and totals are clamped at zero when read.
///
/// # Memory ordering
///
/// The swap is `AcqRel` so that a recorder that evicts a sample sees the generation tag written
/// with it. The totals are `Acquire` on load and `AcqRel` on CAS; the trip decision reads only the
/// totals it stored itself. The cursor only picks a slot and is `Relaxed`.
pub(crate) struct CountWindow {
    size: u32,
    cursor: AtomicU64,
    slots: Box<[AtomicU32]>,
    totals: AtomicU64,
}

const SLOT_PRESENT: u32 = 1;
const SLOT_FAILURE: u32 = 1 << 1;
const SLOT_SLOW: u32 = 1 << 2;
const SLOT_GEN_SHIFT: u32 = 16;

fn slot_pack(generation: Generation, sample: Sample) -> u32 {
    let mut bits = SLOT_PRESENT;
    if sample.failure {
        bits |= SLOT_FAILURE;
    }
    if sample.slow {
        bits |= SLOT_SLOW;
    }
    (u32::from(generation) << SLOT_GEN_SHIFT) | bits
}

/// The signed counts of the count window's totals word, with its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CountTotals {
    generation: Generation,
    calls: i16,
    failures: i16,
    slow: i16,
}

impl CountTotals {
    fn empty(generation: Generation) -> Self {
        Self {
            generation,
            calls: 0,
            failures: 0,
            slow: 0,
        }
    }

    fn decode(word: u64) -> Self {
        Self {
            calls: word as u16 as i16,
            failures: (word >> 16) as u16 as i16,
            slow: (word >> 32) as u16 as i16,
            generation: (word >> 48) as u16,
        }
    }

    fn encode(self) -> u64 {
        u64::from(self.calls as u16)
            | (u64::from(self.failures as u16) << 16)
            | (u64::from(self.slow as u16) << 32)
            | (u64::from(self.generation) << 48)
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) one slot's contribution.
    fn apply(&mut self, slot: u32, sign: i16) {
        self.calls = self.calls.wrapping_add(sign);
        if slot & SLOT_FAILURE != 0 {
            self.failures = self.failures.wrapping_add(sign);
        }
        if slot & SLOT_SLOW != 0 {
            self.slow = self.slow.wrapping_add(sign);
        }
    }

    fn totals(self) -> Totals {
        let clamp = |n: i16| n.max(0) as u64;
        Totals {
            calls: clamp(self.calls),
            failures: clamp(self.failures),
            slow: clamp(self.slow),
        }
    }
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        let size = size.clamp(1, MAX_COUNT_WINDOW);
        Self {
            size,
            cursor: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
            totals: AtomicU64::new(CountTotals::empty(0).encode()),
        }
    }

    /// Moves the window to `generation`, emptying it, unless it is already there or newer.
    pub(crate) fn adopt(&self, generation: Generation) {
        let mut word = self.totals.load(Ordering::Acquire);
        loop {
            let current = CountTotals::decode(word).generation;
            if current == generation || is_newer(current, generation) {
                return;
            }
            let empty = CountTotals::empty(generation).encode();
            match self.totals.compare_exchange_weak(
                word,
                empty,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// Whether a clean success of `generation` would change nothing (step 1 above), so that
    /// the caller need not record it at all.
    #[inline]
    pub(crate) fn absorbs_success(&self, generation: Generation) -> bool {
        let totals = CountTotals::decode(self.totals.load(Ordering::Acquire));
        totals.generation == generation
            && totals.calls >= self.size as i16
            && totals.failures == 0
            && totals.slow == 0
    }

    pub(crate) fn record(&self, generation: Generation, sample: Sample) -> Recorded {
        let mut word = self.totals.load(Ordering::Acquire);
        let mut totals = CountTotals::decode(word);
        if totals.generation != generation {
            if !is_newer(generation, totals.generation) {
                return Recorded::Stale;
            }
            // First sample of a new generation: this recorder empties the window itself rather
            // than wait for the thread that closed the breaker to do it.
            self.adopt(generation);
            word = self.totals.load(Ordering::Acquire);
            totals = CountTotals::decode(word);
            if totals.generation != generation {
                return Recorded::Stale;
            }
        }
        if sample.is_clean()
            && totals.calls >= self.size as i16
            && totals.failures == 0
            && totals.slow == 0
        {
            return Recorded::NoChange;
        }

        let position = self.cursor.fetch_add(1, Ordering::Relaxed) % u64::from(self.size);
        let new_slot = slot_pack(generation, sample);
        let old_slot = self.slots[position as usize].swap(new_slot, Ordering::AcqRel);

        loop {
            let mut next = totals;
            if totals.generation == generation {
                next.apply(new_slot, 1);
            }
            if old_slot & SLOT_PRESENT != 0
                && (old_slot >> SLOT_GEN_SHIFT) as Generation == totals.generation
            {
                next.apply(old_slot, -1);
            }
            if next == totals {
                break;
            }
            match self.totals.compare_exchange_weak(
                word,
                next.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    totals = next;
                    break;
                }
                Err(actual) => {
                    word = actual;
                    totals = CountTotals::decode(actual);
                }
            }
        }
        if totals.generation == generation {
            Recorded::Counted(totals.totals())
        } else {
            Recorded::Stale
        }
    }

    pub(crate) fn totals(&self, generation: Generation) -> Totals {
        let totals = CountTotals::decode(self.totals.load(Ordering::Acquire));
        if totals.generation == generation {
            totals.totals()
        } else {
            Totals::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Time window
// ---------------------------------------------------------------------------------------------

/// The largest number of buckets in a time window.
pub(crate) const MAX_BUCKETS: u64 = 10_000;

/// Bits of a bucket index kept in a counter's tag. Indexes are ms-since-epoch / width, so they
/// wrap after 2^24 buckets (46 hours at the smallest width, 10 ms): a bucket untouched for exactly
/// that long is the only way an old count could be read as current.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// A counter that knows which bucket of which generation it counts for.
///
/// ```text
/// | generation:16 | bucket index:24 | count:24 |
/// ```
///
/// Adding to a counter whose tag is older replaces it (`count = 1`): rotation and reset need no
/// separate step and no lock, and no count is lost to a race between them. A count saturates at
/// 2^24 - 1 per bucket.
///
/// # Memory ordering
///
/// Each counter is self-contained (tag and count in one word), so `Relaxed` would suffice for
/// the counters themselves; `AcqRel` CASes keep them ordered after the state load that admitted
/// the call, which the loom models rely on.
struct TaggedCounter(AtomicU64);

fn bucket_tag(generation: Generation, index: u64) -> u64 {
    (u64::from(generation) << INDEX_BITS) | (index & INDEX_MASK)
}

/// Whether tag `a` belongs to a newer generation, or the same generation and a later bucket.
fn tag_is_newer(a: u64, b: u64) -> bool {
    let (gen_a, gen_b) = (
        (a >> INDEX_BITS) as Generation,
        (b >> INDEX_BITS) as Generation,
    );
    if gen_a != gen_b {
        return is_newer(gen_a, gen_b);
    }
    let ahead = (a.wrapping_sub(b)) & INDEX_MASK;
    ahead != 0 && ahead < (1 << (INDEX_BITS - 1))
}

impl TaggedCounter {
    fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    fn add(&self, tag: u64) {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            let (current, count) = (word >> COUNT_BITS, word & COUNT_MASK);
            let next = if current == tag {
                if count == COUNT_MASK {
                    return;
                }
                word + 1
            } else if tag_is_newer(tag, current) || word == 0 {
                (tag << COUNT_BITS) | 1
            } else {
                return;
            };
            match self
                .0
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// The count, if it is of `generation` and one of the `buckets` buckets up to `index`.
    fn read(&self, generation: Generation, index: u64, buckets: u64) -> u64 {
        let word = self.0.load(Ordering::Acquire);
        let tag = word >> COUNT_BITS;
        if (tag >> INDEX_BITS) as Generation != generation || word == 0 {
            return 0;
        }
        let age = index.wrapping_sub(tag) & INDEX_MASK;
        if age < buckets {
            word & COUNT_MASK
        } else {
            0
        }
    }
}

struct Bucket {
    calls: TaggedCounter,
    failures: TaggedCounter,
    slow: TaggedCounter,
}

/// The outcomes of the last `buckets * bucket_ms` milliseconds, in `buckets` buckets.
///
/// Bucket `i` counts the calls that finished in `[i * width, (i + 1) * width)` ms since the
/// epoch; the window is the current bucket and the `buckets - 1` before it, so it covers between
/// `(buckets - 1) * width` and `buckets * width` of history.
///
/// The trip decision sums every bucket, which costs a few hundred nanoseconds for a long window;
/// it is made only while the window holds a failure or slow call (`last_bad`), never on the
/// healthy path.
pub(crate) struct TimeWindow {
    bucket_ms: u64,
    slots: Box<[Bucket]>,
    /// The tag of the latest bucket that counted a failure or a slow call, with `BAD_PRESENT`.
    last_bad: AtomicU64,
}

/// Marks `last_bad` as set (a tag alone may be 0).
const BAD_PRESENT: u64 = 1 << 63;

impl TimeWindow {
    pub(crate) fn new(bucket_ms: u64, buckets: u64) -> Self {
        let buckets = buckets.clamp(1, MAX_BUCKETS);
        Self {
            bucket_ms: bucket_ms.max(1),
            slots: (0..buckets)
                .map(|_| Bucket {
                    calls: TaggedCounter::new(),
                    failures: TaggedCounter::new(),
                    slow: TaggedCounter::new(),
                })
                .collect(),
            last_bad: AtomicU64::new(0),
        }
    }

    fn buckets(&self) -> u64 {
        self.slots.len() as u64
    }

    pub(crate) fn record(&self, generation: Generation, sample: Sample, now_ms: u64) -> Recorded {
        let index = now_ms / self.bucket_ms;
        let tag = bucket_tag(generation, index);
        let bucket = &self.slots[(index % self.buckets()) as usize];
        bucket.calls.add(tag);
        if sample.is_clean() {
            // Successes can trip the breaker only by carrying the window over `minimum_calls`
            // while it holds failures; with none in the window, nothing can change.
            let last_bad = self.last_bad.load(Ordering::Acquire);
            let last_gen = ((last_bad & !BAD_PRESENT) >> INDEX_BITS) as Generation;
            let age = index.wrapping_sub(last_bad) & INDEX_MASK;
            if last_bad & BAD_PRESENT == 0 || last_gen != generation || age >= self.buckets() {
                return Recorded::NoChange;
            }
        } else {
            if sample.failure {
                bucket.failures.add(tag);
            }
            if sample.slow {
                bucket.slow.add(tag);
            }
            self.note_bad(tag);
        }
        Recorded::Counted(self.totals_at(generation, index))
    }

    /// Moves `last_bad` forward to `tag` (never back: two failures racing at a bucket boundary
    /// must leave the later tag).
    fn note_bad(&self, tag: u64) {
        let mut current = self.last_bad.load(Ordering::Acquire);
        while current & BAD_PRESENT == 0 || tag_is_newer(tag, current & !BAD_PRESENT) {
            match self.last_bad.compare_exchange_weak(
                current,
                tag | BAD_PRESENT,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn totals_at(&self, generation: Generation, index: u64) -> Totals {
        let buckets = self.buckets();
        let mut totals = Totals::default();
        for bucket in self.slots.iter() {
            totals.calls += bucket.calls.read(generation, index, buckets);
            totals.failures += bucket.failures.read(generation, index, buckets);
            totals.slow += bucket.slow.read(generation, index, buckets);
        }
        totals
    }

    pub(crate) fn totals(&self, generation: Generation, now_ms: u64) -> Totals {
        self.totals_at(generation, now_ms / self.bucket_ms)
    }
}

// ---------------------------------------------------------------------------------------------
// Consecutive failures
// ---------------------------------------------------------------------------------------------

/// The current run of failures in a row: `| generation:16 | count:48 |`.
///
/// A success resets the run with one load when the run is already zero, so the healthy path does
/// not write. Slow successes are successes here.
///
/// # Memory ordering
///
/// Self-contained word; `AcqRel` CAS, `Acquire` loads.
pub(crate) struct ConsecutiveFailures(AtomicU64);

const RUN_COUNT_BITS: u32 = 48;
const RUN_COUNT_MASK: u64 = (1 << RUN_COUNT_BITS) - 1;

impl ConsecutiveFailures {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Whether the run of `generation` is zero: a success would change nothing.
    #[inline]
    pub(crate) fn is_clear(&self, generation: Generation) -> bool {
        let word = self.0.load(Ordering::Acquire);
        word & RUN_COUNT_MASK == 0 || (word >> RUN_COUNT_BITS) as Generation != generation
    }

    /// Counts a failure (`failure`) or ends the run; returns the run's length afterwards, or
    /// `None` for a stale generation.
    pub(crate) fn record(&self, generation: Generation, failure: bool) -> Option<u64> {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            let current = (word >> RUN_COUNT_BITS) as Generation;
            let count = word & RUN_COUNT_MASK;
            let same = current == generation;
            if !same && !is_newer(generation, current) {
                return None;
            }
            let next_count = match (failure, same) {
                (true, true) => (count + 1).min(RUN_COUNT_MASK),
                (true, false) => 1,
                (false, true) if count == 0 => return Some(0),
                (false, _) => 0,
            };
            let next = (u64::from(generation) << RUN_COUNT_BITS) | next_count;
            match self
                .0
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(next_count),
                Err(actual) => word = actual,
            }
        }
    }
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;

    const OK: Sample = Sample {
        failure: false,
        slow: false,
    };
    const FAIL: Sample = Sample {
        failure: true,
        slow: false,
    };
    const SLOW: Sample = Sample {
        failure: false,
        slow: true,
    };

    fn counted(r: Recorded) -> Totals {
        match r {
            Recorded::Counted(t) => t,
            other => panic!("expected counted, got {other:?}"),
        }
    }

    #[test]
    fn count_window_evicts_oldest() {
        let w = CountWindow::new(3);
        assert_eq!(counted(w.record(0, FAIL)).failures, 1);
        counted(w.record(0, OK));
        let t = counted(w.record(0, SLOW));
        assert_eq!((t.calls, t.failures, t.slow), (3, 1, 1));
        // The failure is the oldest: a success evicts it.
        let t = counted(w.record(0, OK));
        assert_eq!((t.calls, t.failures, t.slow), (3, 0, 1));
        counted(w.record(0, OK));
        // Full of successes: a success changes nothing and is not written.
        let t = counted(w.record(0, OK));
        assert_eq!((t.calls, t.failures, t.slow), (3, 0, 0));
        assert_eq!(w.record(0, OK), Recorded::NoChange);
        assert_eq!(counted(w.record(0, FAIL)).failures, 1);
    }

    #[test]
    fn count_window_generations() {
        let w = CountWindow::new(2);
        counted(w.record(0, FAIL));
        counted(w.record(0, FAIL));
        // A newer generation empties it; the old generation is stale from then on.
        let t = counted(w.record(2, OK));
        assert_eq!((t.calls, t.failures), (1, 0));
        assert_eq!(w.record(0, FAIL), Recorded::Stale);
        assert_eq!(w.totals(2).failures, 0);
        // The stale failure left in a slot is not subtracted from the new generation.
        let t = counted(w.record(2, OK));
        assert_eq!((t.calls, t.failures), (2, 0));
        let t = counted(w.record(2, FAIL));
        assert_eq!((t.calls, t.failures), (2, 1));
    }

    #[test]
    fn time_window_buckets_expire() {
        let w = TimeWindow::new(1000, 3);
        assert_eq!(w.record(0, OK, 0), Recorded::NoChange);
        let t = counted(w.record(0, FAIL, 500));
        assert_eq!((t.calls, t.failures), (2, 1));
        let t = counted(w.record(0, OK, 2_999));
        assert_eq!((t.calls, t.failures), (3, 1));
        // Bucket 0 falls out at 3000 ms: only the last success remains.
        assert_eq!(
            w.totals(0, 3_000),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        // A success after the failure left the window needs no evaluation.
        assert_eq!(w.record(0, OK, 3_001), Recorded::NoChange);
        // Another generation sees nothing.
        assert_eq!(w.totals(1, 3_001), Totals::default());
    }

    #[test]
    fn time_window_sums_past_u32() {
        // 300 full buckets of 2^24 - 1 calls each: 5 × 10^9 calls, more than a u32 holds (a
        // u32 sum panicked here in debug builds and wrapped to a wrong rate in release).
        let buckets = 300;
        let w = TimeWindow::new(10, buckets);
        for index in 0..buckets {
            let full = (bucket_tag(0, index) << COUNT_BITS) | COUNT_MASK;
            let bucket = &w.slots[index as usize];
            bucket.calls.0.store(full, Ordering::Relaxed);
            if index % 2 == 0 {
                bucket.failures.0.store(full, Ordering::Relaxed);
            }
        }
        let now_ms = (buckets - 1) * 10;
        let expected = buckets * COUNT_MASK;
        assert!(expected > u64::from(u32::MAX));
        assert_eq!(
            w.totals(0, now_ms),
            Totals {
                calls: expected,
                failures: expected / 2,
                slow: 0
            }
        );
        // A failure in the last bucket (full of calls, none failed): its call count stays
        // saturated, its failure count becomes one.
        let t = counted(w.record(0, FAIL, now_ms));
        assert_eq!((t.calls, t.failures), (expected, expected / 2 + 1));
    }

    #[test]
    fn consecutive_failures_run() {
        let c = ConsecutiveFailures::new();
        assert_eq!(c.record(0, true), Some(1));
        assert_eq!(c.record(0, true), Some(2));
        assert_eq!(c.record(0, false), Some(0));
        assert_eq!(c.record(0, false), Some(0));
        assert_eq!(c.record(0, true), Some(1));
        assert_eq!(
            c.record(3, true),
            Some(1),
            "a new generation starts a new run"
        );
        assert_eq!(c.record(0, true), None);
    }
}
