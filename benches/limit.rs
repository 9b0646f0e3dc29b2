//! Adaptive limit overhead per call: `ready().await` + `call().await` over a ready `service_fn`,
//! bare, behind steadfast's adaptive limit, tower's (fixed) `ConcurrencyLimit` and
//! tower-resilience's adaptive limiter.
//!
//! Uncontended: one task on a current-thread runtime. Contended: 2 worker threads, 8 tasks
//! sharing one limiter (each runs its share of the iterations; the time is wall time for all).
//! Every limit is far above the calls in flight, so no call is shed or waits: this is the cost
//! of admission, timing and sampling on the healthy path.
//!
//! Before the criterion timings, the bench prints an interleaved comparison of the uncontended
//! cases (alternating blocks of calls, the median of per-block times), so that the load of a
//! shared machine hits every contender alike: read the ratios from that table. The references
//! "one clock read" and "two clock reads" are what timing a call costs by itself (one read at
//! its start, one at its end), which steadfast's limit does for one call in its sampling
//! period only.
//!
//! `cargo bench --all-features --bench limit -- --warm-up-time 1 --measurement-time 2`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::limit::{AdaptiveLimitLayer, Aimd, Vegas};
use tower::{Layer, Service, service_fn};

mod support;
use support::{bare, contender, run, run_contended};

const LIMIT: usize = 64;
const TASKS: u64 = 8;
/// The default algorithm (Gradient2, 100 ms windows), limits wide enough never to shed.
fn steadfast_gradient2() -> AdaptiveLimitLayer {
    AdaptiveLimitLayer::builder()
        .initial_limit(LIMIT)
        .min_limit(LIMIT)
        .max_limit(LIMIT * 4)
        .build()
        .unwrap()
}

/// Vegas fed every call (a window of one sample and no minimum time): every call is timed and
/// runs the algorithm, the worst case.
fn steadfast_vegas_every_call() -> AdaptiveLimitLayer {
    AdaptiveLimitLayer::builder()
        .initial_limit(LIMIT)
        .min_limit(LIMIT)
        .max_limit(LIMIT * 4)
        .algorithm(Vegas::new())
        .window(Duration::ZERO)
        .window_samples(1)
        .build()
        .unwrap()
}

fn steadfast_aimd() -> AdaptiveLimitLayer {
    AdaptiveLimitLayer::builder()
        .initial_limit(LIMIT)
        .min_limit(LIMIT)
        .max_limit(LIMIT * 4)
        .algorithm(Aimd::new())
        .build()
        .unwrap()
}

fn tower_resilience_aimd()
-> tower_resilience::adaptive::AdaptiveLimiterLayer<tower_resilience::adaptive::Aimd> {
    tower_resilience::adaptive::AdaptiveLimiterLayer::new(
        tower_resilience::adaptive::Aimd::builder()
            .initial_limit(LIMIT)
            .min_limit(LIMIT)
            .max_limit(LIMIT * 4)
            .latency_threshold(Duration::from_secs(1))
            .build()
            .unwrap(),
    )
}

fn tower_resilience_vegas()
-> tower_resilience::adaptive::AdaptiveLimiterLayer<tower_resilience::adaptive::Vegas> {
    tower_resilience::adaptive::AdaptiveLimiterLayer::new(
        tower_resilience::adaptive::Vegas::builder()
            .initial_limit(LIMIT)
            .min_limit(LIMIT)
            .max_limit(LIMIT * 4)
            .build()
            .unwrap(),
    )
}

/// A bare call that also reads tokio's clock `reads` times.
fn bare_with_clock_reads(reads: usize) -> impl Service<u64, Response = u64, Error = Infallible> {
    service_fn(move |x: u64| {
        for _ in 0..reads {
            black_box(tokio::time::Instant::now());
        }
        async move { Ok::<_, Infallible>(x) }
    })
}

/// Times every contender in alternating blocks and prints the medians, and each one's
/// overhead over the bare service's.
fn report_interleaved() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let timeout = steadfast::timeout::TimeoutLayer::new(Duration::from_secs(1));
    let mut contenders = [
        contender("bare service_fn", bare()),
        contender("reference: one clock read", bare_with_clock_reads(1)),
        contender("reference: two clock reads", bare_with_clock_reads(2)),
        contender(
            "steadfast AdaptiveLimit (Gradient2, default)",
            steadfast_gradient2().layer(bare()),
        ),
        contender(
            "steadfast AdaptiveLimit (AIMD)",
            steadfast_aimd().layer(bare()),
        ),
        contender(
            "steadfast AdaptiveLimit (Vegas, every call timed)",
            steadfast_vegas_every_call().layer(bare()),
        ),
        contender("reference: steadfast TimeoutLayer", timeout.layer(bare())),
        contender(
            "steadfast Timeout + AdaptiveLimit (Gradient2)",
            timeout.layer(steadfast_gradient2().layer(bare())),
        ),
        contender(
            "tower ConcurrencyLimit (fixed)",
            tower::limit::ConcurrencyLimitLayer::new(LIMIT).layer(bare()),
        ),
        contender(
            "tower-resilience adaptive (AIMD)",
            tower_resilience_aimd().layer(bare()),
        ),
        contender(
            "tower-resilience adaptive (Vegas)",
            tower_resilience_vegas().layer(bare()),
        ),
    ];
    support::interleaved(&rt, &mut contenders);
}

fn uncontended(c: &mut Criterion) {
    report_interleaved();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("limit/uncontended");

    let mut service = bare();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    // What timing a call costs by itself: one read of tokio's clock, and the two a limiter
    // that times every call makes (one at its start, one at its end).
    let mut service = bare_with_clock_reads(1);
    group.bench_function("reference: one clock read", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });
    let mut service = bare_with_clock_reads(2);
    group.bench_function("reference: two clock reads", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = steadfast_gradient2().layer(bare());
    group.bench_function("steadfast AdaptiveLimit (Gradient2, default)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    // Below a timeout, the limit reuses the instant the timeout read: one clock read of its own.
    let timeout = steadfast::timeout::TimeoutLayer::new(Duration::from_secs(1));
    let mut service = timeout.layer(bare());
    group.bench_function("reference: steadfast TimeoutLayer alone", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });
    let mut service = timeout.layer(steadfast_gradient2().layer(bare()));
    group.bench_function("steadfast TimeoutLayer + AdaptiveLimit (Gradient2)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = steadfast_aimd().layer(bare());
    group.bench_function("steadfast AdaptiveLimit (AIMD)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = steadfast_vegas_every_call().layer(bare());
    group.bench_function("steadfast AdaptiveLimit (Vegas, every call timed)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = tower::limit::ConcurrencyLimitLayer::new(LIMIT).layer(bare());
    group.bench_function("tower ConcurrencyLimit (fixed)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = tower_resilience_aimd().layer(bare());
    group.bench_function("tower-resilience adaptive (AIMD)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = tower_resilience_vegas().layer(bare());
    group.bench_function("tower-resilience adaptive (Vegas)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    group.finish();
}

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("limit/contended");

    let service = bare();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = steadfast_gradient2().layer(bare());
    group.bench_function("steadfast AdaptiveLimit (Gradient2, default)", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    // The global variant, so that every task shares one semaphore as with the others.
    let service = tower::limit::GlobalConcurrencyLimitLayer::new(LIMIT).layer(bare());
    group.bench_function("tower GlobalConcurrencyLimit (fixed)", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = tower_resilience_aimd().layer(bare());
    group.bench_function("tower-resilience adaptive (AIMD)", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
