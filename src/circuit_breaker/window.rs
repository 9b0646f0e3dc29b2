//! The closed state's memory of recent outcomes: a count window (the last N outcomes), a time
//! window (the outcomes of the last D, in buckets), and a run of consecutive failures.
//!
//! Every window is tagged with the breaker [`Generation`] it belongs to. A breaker that closes
//! does not clear its window: it moves the tag to the new generation, and everything written
//! under an older tag reads as empty. A recorder from an older generation (a call admitted before
//! the breaker opened, finishing after it closed again) can therefore never count in the newer
//! window, and a reset is O(1).

use super::state::{Generation, is_newer};
use crate::field::Field;
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
pub(crate) enum WindowUpdate {
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

/// The fields of a slot (a `u32`, read through the 64-bit helpers).
const SLOT_PRESENT: Field = Field::new(0, 1);
const SLOT_FAILURE: Field = SLOT_PRESENT.next(1);
const SLOT_SLOW: Field = SLOT_FAILURE.next(1);
const SLOT_GENERATION: Field = Field::new(16, 16);
const _: () = assert!(SLOT_GENERATION.end() == u32::BITS);

fn slot_pack(generation: Generation, sample: Sample) -> u32 {
    let word = SLOT_GENERATION.put(u64::from(generation))
        | SLOT_PRESENT.put(1)
        | SLOT_FAILURE.put(u64::from(sample.failure))
        | SLOT_SLOW.put(u64::from(sample.slow));
    word as u32 // every field ends below bit 32 (asserted above)
}

/// The fields of the count window's totals word: three signed 16-bit counts and the generation.
const TOTAL_CALLS: Field = Field::new(0, 16);
const TOTAL_FAILURES: Field = TOTAL_CALLS.next(16);
const TOTAL_SLOW: Field = TOTAL_FAILURES.next(16);
const TOTAL_GENERATION: Field = TOTAL_SLOW.next(16);

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
        // `as u16 as i16`: the fields hold two's-complement 16-bit counts.
        Self {
            calls: TOTAL_CALLS.get(word) as u16 as i16,
            failures: TOTAL_FAILURES.get(word) as u16 as i16,
            slow: TOTAL_SLOW.get(word) as u16 as i16,
            generation: TOTAL_GENERATION.get(word) as Generation,
        }
    }

    fn encode(self) -> u64 {
        TOTAL_CALLS.put(u64::from(self.calls as u16))
            | TOTAL_FAILURES.put(u64::from(self.failures as u16))
            | TOTAL_SLOW.put(u64::from(self.slow as u16))
            | TOTAL_GENERATION.put(u64::from(self.generation))
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) one slot's contribution.
    fn apply(&mut self, slot: u32, sign: i16) {
        self.calls = self.calls.wrapping_add(sign);
        if SLOT_FAILURE.is_set(u64::from(slot)) {
            self.failures = self.failures.wrapping_add(sign);
        }
        if SLOT_SLOW.is_set(u64::from(slot)) {
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
    /// An empty window of the last `size` outcomes, current in generation 0: the pool's.
    #[cfg_attr(not(feature = "pool"), allow(dead_code))]
    pub(crate) fn new(size: u32) -> Self {
        Self::new_at(size, 0)
    }

    /// An empty window of the last `size` outcomes, current in `generation` (a breaker's
    /// replacement window starts in the breaker's generation, which `is_newer` may not place
    /// after 0).
    pub(crate) fn new_at(size: u32, generation: Generation) -> Self {
        let size = size.clamp(1, MAX_COUNT_WINDOW);
        Self {
            size,
            cursor: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
            totals: AtomicU64::new(CountTotals::empty(generation).encode()),
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

    pub(crate) fn record(&self, generation: Generation, sample: Sample) -> WindowUpdate {
        let mut word = self.totals.load(Ordering::Acquire);
        let mut totals = CountTotals::decode(word);
        if totals.generation != generation {
            if !is_newer(generation, totals.generation) {
                return WindowUpdate::Stale;
            }
            // First sample of a new generation: this recorder empties the window itself rather
            // than wait for the thread that closed the breaker to do it.
            self.adopt(generation);
            word = self.totals.load(Ordering::Acquire);
            totals = CountTotals::decode(word);
            if totals.generation != generation {
                return WindowUpdate::Stale;
            }
        }
        if sample.is_clean()
            && totals.calls >= self.size as i16
            && totals.failures == 0
            && totals.slow == 0
        {
            return WindowUpdate::NoChange;
        }

        let position = self.cursor.fetch_add(1, Ordering::Relaxed) % u64::from(self.size);
        let new_slot = slot_pack(generation, sample);
        let old_slot = self.slots[position as usize].swap(new_slot, Ordering::AcqRel);

        loop {
            let mut next = totals;
            if totals.generation == generation {
                next.apply(new_slot, 1);
            }
            let old = u64::from(old_slot);
            if SLOT_PRESENT.is_set(old)
                && SLOT_GENERATION.get(old) as Generation == totals.generation
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
            WindowUpdate::Counted(totals.totals())
        } else {
            WindowUpdate::Stale
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

/// A bucket's tag: `| generation:16 | bucket index:24 |`. Indexes are ms-since-epoch / width,
/// kept modulo 2^24, so they wrap after 2^24 buckets (46 hours at the smallest width, 10 ms): a
/// bucket untouched for exactly that long is the only way an old count could be read as current.
const TAG_INDEX: Field = Field::new(0, 24);
const TAG_GENERATION: Field = TAG_INDEX.next(16);
/// A counter: `| tag:40 | count:24 |`.
const COUNT: Field = Field::new(0, 24);
const TAG: Field = COUNT.next(TAG_GENERATION.end());

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
    TAG_GENERATION.put(u64::from(generation)) | TAG_INDEX.put(TAG_INDEX.wrap(index))
}

fn tag_generation(tag: u64) -> Generation {
    TAG_GENERATION.get(tag) as Generation
}

/// How many buckets `index` is past the bucket of `tag`, modulo 2^24.
fn buckets_since(index: u64, tag: u64) -> u64 {
    TAG_INDEX.wrap(index.wrapping_sub(TAG_INDEX.get(tag)))
}

/// Whether tag `a` belongs to a newer generation, or the same generation and a later bucket.
fn tag_is_newer(a: u64, b: u64) -> bool {
    let (gen_a, gen_b) = (tag_generation(a), tag_generation(b));
    if gen_a != gen_b {
        return is_newer(gen_a, gen_b);
    }
    let ahead = buckets_since(TAG_INDEX.get(a), b);
    ahead != 0 && ahead <= TAG_INDEX.max() / 2
}

impl TaggedCounter {
    fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    fn add(&self, tag: u64) {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            let (current, count) = (TAG.get(word), COUNT.get(word));
            let next = if current == tag {
                if count == COUNT.max() {
                    return;
                }
                COUNT.set(word, count + 1)
            } else if tag_is_newer(tag, current) || word == 0 {
                TAG.put(tag) | COUNT.put(1)
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
        let tag = TAG.get(word);
        if tag_generation(tag) != generation || word == 0 {
            return 0;
        }
        if buckets_since(index, tag) < buckets {
            COUNT.get(word)
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
    /// The tag of the latest bucket that counted a failure or a slow call:
    /// `| present:1 | 0:23 | tag:40 |`.
    last_bad: AtomicU64,
}

/// The tag in `last_bad`.
const BAD_TAG: Field = Field::new(0, TAG.bits());
/// Marks `last_bad` as set (a tag alone may be 0).
const BAD_PRESENT: Field = Field::new(63, 1);

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

    pub(crate) fn record(
        &self,
        generation: Generation,
        sample: Sample,
        now_ms: u64,
    ) -> WindowUpdate {
        let index = now_ms / self.bucket_ms;
        let tag = bucket_tag(generation, index);
        let bucket = &self.slots[(index % self.buckets()) as usize];
        bucket.calls.add(tag);
        if sample.is_clean() {
            // Successes can trip the breaker only by carrying the window over `minimum_calls`
            // while it holds failures; with none in the window, nothing can change.
            let last_bad = self.last_bad.load(Ordering::Acquire);
            let bad_tag = BAD_TAG.get(last_bad);
            if !BAD_PRESENT.is_set(last_bad)
                || tag_generation(bad_tag) != generation
                || buckets_since(index, bad_tag) >= self.buckets()
            {
                return WindowUpdate::NoChange;
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
        WindowUpdate::Counted(self.totals_at(generation, index))
    }

    /// Moves `last_bad` forward to `tag` (never back: two failures racing at a bucket boundary
    /// must leave the later tag).
    fn note_bad(&self, tag: u64) {
        let mut current = self.last_bad.load(Ordering::Acquire);
        while !BAD_PRESENT.is_set(current) || tag_is_newer(tag, BAD_TAG.get(current)) {
            match self.last_bad.compare_exchange_weak(
                current,
                BAD_PRESENT.put(1) | BAD_TAG.put(tag),
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

const RUN_COUNT: Field = Field::new(0, 48);
const RUN_GENERATION: Field = RUN_COUNT.next(16);

impl ConsecutiveFailures {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Whether the run of `generation` is zero: a success would change nothing.
    #[inline]
    pub(crate) fn is_clear(&self, generation: Generation) -> bool {
        let word = self.0.load(Ordering::Acquire);
        RUN_COUNT.get(word) == 0 || RUN_GENERATION.get(word) as Generation != generation
    }

    /// Counts a failure (`failure`) or ends the run; returns the run's length afterwards, or
    /// `None` for a stale generation.
    pub(crate) fn record(&self, generation: Generation, failure: bool) -> Option<u64> {
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            let current = RUN_GENERATION.get(word) as Generation;
            let count = RUN_COUNT.get(word);
            let same = current == generation;
            if !same && !is_newer(generation, current) {
                return None;
            }
            let next_count = match (failure, same) {
                (true, true) => (count + 1).min(RUN_COUNT.max()),
                (true, false) => 1,
                (false, true) if count == 0 => return Some(0),
                (false, _) => 0,
            };
            let next = RUN_GENERATION.put(u64::from(generation)) | RUN_COUNT.put(next_count);
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

    fn counted(r: WindowUpdate) -> Totals {
        match r {
            WindowUpdate::Counted(t) => t,
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
        assert_eq!(w.record(0, OK), WindowUpdate::NoChange);
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
        assert_eq!(w.record(0, FAIL), WindowUpdate::Stale);
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
        assert_eq!(w.record(0, OK, 0), WindowUpdate::NoChange);
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
        assert_eq!(w.record(0, OK, 3_001), WindowUpdate::NoChange);
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
            let full = TAG.put(bucket_tag(0, index)) | COUNT.put(COUNT.max());
            let bucket = &w.slots[index as usize];
            bucket.calls.0.store(full, Ordering::Relaxed);
            if index % 2 == 0 {
                bucket.failures.0.store(full, Ordering::Relaxed);
            }
        }
        let now_ms = (buckets - 1) * 10;
        let expected = buckets * COUNT.max();
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
