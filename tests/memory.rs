//! The memory one layer costs: the inline size of each layer type and the heap bytes its
//! `build()` allocates (its shared state), counted by an instrumented global allocator.
//!
//! Every measurement holds one mutex, so that no other test in this binary allocates while a
//! case is being counted. Run with `--nocapture` to see the figures; the
//! table in `docs/robustness.md` was made that way.

use std::alloc::System;
use std::mem::size_of;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use steadfast::retry::{RetryBudget, RetryLayer};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Held while a test allocates or counts: measurements never overlap another test's work.
static MEASURING: Mutex<()> = Mutex::new(());

/// What building one layer cost.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    /// `size_of` the layer value itself (held inline by whoever keeps the layer).
    inline: usize,
    /// Heap bytes still allocated once `build()` returned: the shared state.
    heap: usize,
    /// Heap allocations still live.
    blocks: usize,
    /// Heap bytes allocated during `build()`, freed ones included (builder scratch).
    allocated_total: usize,
}

impl Footprint {
    fn total(&self) -> usize {
        self.inline + self.heap
    }
}

/// Builds a layer with `build` and counts what it keeps on the heap. The layer is kept alive
/// until the count is taken, then dropped.
fn footprint<L>(build: impl FnOnce() -> L) -> Footprint {
    let region = Region::new(GLOBAL);
    let layer = build();
    let change = region.change();
    drop(layer);
    Footprint {
        inline: size_of::<L>(),
        heap: change
            .bytes_allocated
            .saturating_sub(change.bytes_deallocated),
        blocks: change.allocations.saturating_sub(change.deallocations),
        allocated_total: change.bytes_allocated,
    }
}

fn report(name: &str, footprint: Footprint) {
    println!(
        "| {name} | {} | {} | {} | {} | {} |",
        footprint.inline,
        footprint.heap,
        footprint.blocks,
        footprint.total(),
        footprint.allocated_total,
    );
}

/// Warms up anything lazily initialised on first use (thread-locals, the tracing callsite
/// registry, the metrics facade's no-op recorder) outside the counted regions.
fn warm_up() {
    for _ in 0..2 {
        drop(CircuitBreakerLayer::builder().build());
        drop(
            CircuitBreakerLayer::builder()
                .sliding_window(SlidingWindow::Time(Duration::from_secs(60)))
                .build(),
        );
        drop(BulkheadLayer::builder().build());
        drop(RetryLayer::builder().build());
    }
}

fn count_window_100() -> Footprint {
    footprint(|| {
        CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(100))
            .build()
            .unwrap()
    })
}

#[test]
fn a_count_window_breaker_of_100_fits_in_1_kib() {
    let _guard = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    warm_up();
    let count_100 = count_window_100();
    assert!(
        count_100.total() <= 1024,
        "a count-window breaker of 100 fits in 1 KiB: {count_100:?}"
    );
}

#[test]
fn layer_footprints() {
    let _guard = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    warm_up();

    let count_100 = count_window_100();
    let count_100_named = footprint(|| {
        CircuitBreakerLayer::builder()
            .name("payments")
            .sliding_window(SlidingWindow::Count(100))
            .build()
            .unwrap()
    });
    let time_60 = footprint(|| {
        CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Time(Duration::from_secs(60)))
            .bucket_width(Duration::from_secs(1))
            .slow_call_duration(Duration::from_secs(1))
            .build()
            .unwrap()
    });
    let bulkhead = footprint(|| {
        BulkheadLayer::builder()
            .max_concurrent_calls(64)
            .build()
            .unwrap()
    });
    let retry_default = footprint(|| RetryLayer::builder().build().unwrap());
    let retry_unlimited = footprint(|| {
        RetryLayer::builder()
            .budget(RetryBudget::unlimited())
            .build()
            .unwrap()
    });

    println!(
        "| layer | inline bytes | heap bytes kept | heap blocks | total | allocated during build |"
    );
    println!("|---|---|---|---|---|---|");
    report("breaker, `Count(100)`", count_100);
    report("breaker, `Count(100)`, named", count_100_named);
    report("breaker, `Time(60 s)`, 1 s buckets, slow calls", time_60);
    report("bulkhead, 64 permits", bulkhead);
    report("retry, default budget", retry_default);
    report("retry, unlimited budget", retry_unlimited);

    // The 1 KiB target itself is `a_count_window_breaker_of_100_fits_in_1_kib`; a name must
    // not push it over either.
    assert!(
        count_100_named.total() <= 1024,
        "named, too: {count_100_named:?}"
    );
    // The time window holds 60 buckets: it must not be much more than its buckets' worth.
    assert!(
        time_60.total() <= 8 * 1024,
        "a 60-bucket time window stays small: {time_60:?}"
    );
    assert!(bulkhead.total() <= 1024, "{bulkhead:?}");
    assert!(retry_default.total() <= 1024, "{retry_default:?}");
}

/// What wrapping one service costs beyond the layer: the breaker's state for its futures, the
/// retry's replica of the inner service (here a zero-sized `service_fn`), nothing for the
/// bulkhead. Clones of the wrapped service allocate nothing (`tests/allocations.rs`).
#[test]
fn wrapping_a_service_costs_one_small_block_at_most() {
    use tower::Layer;

    let _guard = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
    warm_up();
    let backend = tower::service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    let bulkhead = BulkheadLayer::builder().build().unwrap();
    let retry = RetryLayer::builder().build().unwrap();

    let wrapped_breaker = footprint(|| breaker.layer(backend));
    let wrapped_bulkhead = footprint(|| bulkhead.layer(backend));
    let wrapped_retry = footprint(|| retry.layer(backend));

    println!(
        "| wrapping a service | inline bytes | heap bytes kept | heap blocks | total | allocated |"
    );
    println!("|---|---|---|---|---|---|");
    report("breaker", wrapped_breaker);
    report("bulkhead", wrapped_bulkhead);
    report("retry", wrapped_retry);

    assert_eq!(wrapped_breaker.blocks, 1, "{wrapped_breaker:?}");
    assert!(wrapped_breaker.heap <= 64, "{wrapped_breaker:?}");
    assert_eq!(wrapped_bulkhead.blocks, 0, "{wrapped_bulkhead:?}");
    assert_eq!(wrapped_retry.blocks, 1, "{wrapped_retry:?}");
    assert!(wrapped_retry.heap <= 64, "{wrapped_retry:?}");
}
