//! Adaptive limit overhead per call: `ready().await` + `call().await` over a ready `service_fn`,
//! bare, behind steadfast's adaptive limit, tower's (fixed) `ConcurrencyLimit` and
//! tower-resilience's adaptive limiter.
//!
//! Uncontended: one task on a current-thread runtime. Contended: 2 worker threads, 8 tasks
//! sharing one limiter (each runs its share of the iterations; the time is wall time for all).
//! Every limit is far above the calls in flight, so no call is shed or waits: this is the cost
//! of admission, timing and sampling on the healthy path.
//!
//! `cargo bench --all-features --bench limit -- --warm-up-time 1 --measurement-time 2`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::limit::{AdaptiveLimitLayer, Aimd, Vegas};
use tower::{Layer, service_fn};

mod support;
use support::{bare, run, run_contended};

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

/// Vegas fed every call: the algorithm runs on every call, not once per window.
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

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("limit/uncontended");

    let mut service = bare();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    // What timing a call costs by itself: the two reads of tokio's clock every latency-measuring
    // limiter makes, and nothing else.
    let mut service = service_fn(|x: u64| async move {
        let start = tokio::time::Instant::now();
        black_box(start);
        black_box(tokio::time::Instant::now());
        Ok::<_, Infallible>(x)
    });
    group.bench_function("reference: bare + two clock reads", |b| {
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
    group.bench_function("steadfast AdaptiveLimit (Vegas, every call)", |b| {
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
