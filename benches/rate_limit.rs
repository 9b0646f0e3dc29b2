//! Rate limit overhead per call: `ready().await` + `call().await` over a ready `service_fn`,
//! bare, behind steadfast's limiter (whole-service and keyed), tower's `RateLimit` and
//! tower-resilience's rate limiter. Every limit is far above the call rate, so every call is
//! admitted: this measures the cost of asking.
//!
//! Uncontended: one task on a current-thread runtime. Contended: 2 worker threads, 8 tasks
//! sharing one limiter (tower's `RateLimit` is not `Clone`, so it is left out there).
//!
//! Before the criterion timings, the bench prints an interleaved comparison of the uncontended
//! cases (alternating blocks of calls, the median of per-block times), so that the load of a
//! shared machine hits every contender alike: read the ratios from that table.
//!
//! `cargo bench --all-features --bench rate_limit -- --warm-up-time 1 --measurement-time 2`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Layer, service_fn};

mod support;
use support::{bare, contender, run, run_contended};

const TASKS: u64 = 8;
/// A billion calls per second with a burst of a billion: never limits a benchmark.
fn steadfast_builder() -> steadfast::rate_limit::Builder {
    steadfast::rate_limit::RateLimitLayer::builder()
        .limit(1_000_000_000, Duration::from_secs(1))
        .burst(1_000_000_000)
}

fn tower_resilience_layer() -> tower_resilience::ratelimiter::RateLimiterLayer {
    tower_resilience::ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(1_000_000_000)
        .refresh_period(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Times every contender in alternating blocks and prints the medians, and each one's
/// overhead over the bare service's.
fn report_interleaved() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _runtime = rt.enter(); // tower's `RateLimit` arms a timer when it is made
    let mut contenders = [
        contender("bare service_fn", bare()),
        // The floor of any rate limiter: one clock read per call.
        contender(
            "bare service_fn + one tokio Instant::now()",
            service_fn(|x: u64| {
                black_box(tokio::time::Instant::now());
                async move { Ok::<_, Infallible>(x) }
            }),
        ),
        contender(
            "steadfast RateLimitLayer",
            steadfast_builder().build().unwrap().layer(bare()),
        ),
        contender(
            "steadfast RateLimitLayer, keyed (16 keys)",
            steadfast_builder()
                .build_keyed(|n: &u64| n % 16)
                .unwrap()
                .layer(bare()),
        ),
        contender(
            "tower RateLimit",
            tower::limit::RateLimitLayer::new(1_000_000_000, Duration::from_secs(1)).layer(bare()),
        ),
        contender(
            "tower-resilience rate limiter",
            tower_resilience_layer().layer(bare()),
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
    let _runtime = rt.enter(); // tower's `RateLimit` arms a timer when it is made
    let mut group = c.benchmark_group("rate_limit/uncontended");

    let mut service = bare();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = steadfast_builder().build().unwrap().layer(bare());
    group.bench_function("steadfast RateLimitLayer", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    // 16 keys, all in the map after the first calls: the hit path of a keyed limiter.
    let mut service = steadfast_builder()
        .build_keyed(|n: &u64| n % 16)
        .unwrap()
        .layer(bare());
    group.bench_function("steadfast RateLimitLayer, keyed (16 keys)", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service =
        tower::limit::RateLimitLayer::new(1_000_000_000, Duration::from_secs(1)).layer(bare());
    group.bench_function("tower RateLimit", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = tower_resilience_layer().layer(bare());
    group.bench_function("tower-resilience rate limiter", |b| {
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
    let mut group = c.benchmark_group("rate_limit/contended");

    let service = bare();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = steadfast_builder().build().unwrap().layer(bare());
    group.bench_function("steadfast RateLimitLayer", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = steadfast_builder()
        .build_keyed(|n: &u64| n % 16)
        .unwrap()
        .layer(bare());
    group.bench_function("steadfast RateLimitLayer, keyed (16 keys)", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = tower_resilience_layer().layer(bare());
    group.bench_function("tower-resilience rate limiter", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
