//! The full stack on the healthy path: `ready().await` + `call().await` over a ready
//! `service_fn`, on a current-thread runtime.
//!
//! - bare: the `service_fn` alone;
//! - steadfast: a [`ResilienceStack`] of retry (default budget), breaker (count window),
//!   bulkhead and one timeout; and the same with every layer (fallback and both timeouts);
//! - tower + failsafe: tower's `Retry` (a never-retrying policy), `Timeout` and
//!   `ConcurrencyLimit` around failsafe's breaker;
//! - tower + tower-resilience: the same with tower-resilience's breaker;
//! - clone per call: steadfast and tower + failsafe again, with a fresh clone of the stack for
//!   each call, called once (`oneshot`) and dropped, as axum calls a route's service.
//!
//! The layers are in the same places in every stack: retry, timeout, breaker, limit. Before the
//! criterion timings, the bench prints an interleaved comparison (blocks of calls through each
//! contender in turn, the median of each), which a shared, noisy machine skews far less than
//! criterion's one-after-the-other runs. Read the results as ratios.
//!
//! ```text
//! cargo bench --bench stack -- --warm-up-time 1 --measurement-time 3
//! ```

use std::fmt;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::RetryLayer;
use steadfast::stack::ResilienceStack;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

mod support;
use support::{FailsafeService, NeverRetry};

/// The backend's error: a concrete type, as failsafe's error needs one.
#[derive(Debug, Clone)]
struct BenchError;

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bench error")
    }
}

impl std::error::Error for BenchError {}

/// The backend: ready at once, answers at once.
fn bare()
-> impl Service<u64, Response = u64, Error = BenchError, Future = Ready<Result<u64, BenchError>>> + Clone
{
    service_fn(|request: u64| ready(Ok::<u64, BenchError>(request)))
}

fn failsafe_breaker() -> impl failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static {
    let backoff = failsafe::backoff::constant(Duration::from_secs(3600));
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(100, backoff))
        .build()
}

fn steadfast_breaker() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(100))
        .minimum_calls(100)
        .wait_in_open(Duration::from_secs(3600))
        .build()
        .expect("valid configuration")
}

fn bulkhead() -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent_calls(64)
        .build()
        .expect("valid configuration")
}

fn bench_service<S>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    mut service: S,
) where
    S: Service<u64, Response = u64>,
    S::Error: fmt::Debug,
{
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let ready = service.ready().await.expect("ready");
                    black_box(ready.call(black_box(i)).await.expect("ok"));
                }
                start.elapsed()
            })
        })
    });
}

/// The four-layer stack (retry, timeout, breaker, bulkhead) through a [`ResilienceStack`].
fn steadfast_stack() -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    ResilienceStack::new()
        .retry(RetryLayer::builder().build().expect("valid"))
        .overall_timeout(Duration::from_secs(30))
        .circuit_breaker(steadfast_breaker())
        .bulkhead(bulkhead())
        .layer(bare())
}

/// Every layer: fallback, retry, both timeouts, breaker, bulkhead.
fn steadfast_all_six() -> impl Service<u64, Response = u64, Error = BoxError> {
    ResilienceStack::new()
        .fallback(FallbackLayer::new(|_: BoxError| Ok(0_u64)))
        .retry(RetryLayer::builder().build().expect("valid"))
        .overall_timeout(Duration::from_secs(30))
        .circuit_breaker(steadfast_breaker())
        .bulkhead(bulkhead())
        .attempt_timeout(Duration::from_secs(10))
        .layer(bare())
}

/// tower's `Retry` (never retrying), `Timeout` and `ConcurrencyLimit` around failsafe's breaker.
fn tower_failsafe() -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(NeverRetry))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(30)))
        .service(FailsafeService::new(
            tower::limit::ConcurrencyLimitLayer::new(64).layer(bare()),
            failsafe_breaker(),
        ))
}

/// The same with tower-resilience's breaker.
fn tower_tower_resilience() -> impl Service<u64, Response = u64, Error = BoxError> {
    let breaker = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .expect("valid configuration");
    ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(NeverRetry))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(30)))
        .layer(breaker)
        .layer(tower::limit::ConcurrencyLimitLayer::new(64))
        .service(bare())
}

type Block<'a> = Box<dyn FnMut() -> f64 + 'a>;

/// Calls in one timed block.
const CALLS: u64 = 10_000;

/// Runs `calls` (a loop of [`CALLS`] calls) and returns the nanoseconds per call.
fn ns_per_call(runtime: &tokio::runtime::Runtime, calls: impl std::future::Future) -> f64 {
    let start = Instant::now();
    runtime.block_on(calls);
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

/// A block of calls through `service`, timed: nanoseconds per call.
fn block<'a, S>(runtime: &'a tokio::runtime::Runtime, mut service: S) -> Block<'a>
where
    S: Service<u64, Response = u64> + 'a,
    S::Error: fmt::Debug,
{
    Box::new(move || {
        ns_per_call(runtime, async {
            for i in 0..CALLS {
                let ready = service.ready().await.expect("ready");
                black_box(ready.call(black_box(i)).await.expect("ok"));
            }
        })
    })
}

/// The same with a fresh clone of `service` per call, called once and dropped: how axum calls
/// a route's service and how tower's `Oneshot` is used.
fn block_clone_per_call<'a, S>(runtime: &'a tokio::runtime::Runtime, service: S) -> Block<'a>
where
    S: Service<u64, Response = u64> + Clone + 'a,
    S::Error: fmt::Debug,
{
    Box::new(move || {
        ns_per_call(runtime, async {
            for i in 0..CALLS {
                black_box(service.clone().oneshot(black_box(i)).await.expect("ok"));
            }
        })
    })
}

/// Before criterion: blocks of each contender in turn, round after round, so that the load of
/// a shared machine falls on all alike; prints the median of each and the ratios.
fn report_interleaved(runtime: &tokio::runtime::Runtime) {
    const ROUNDS: usize = 61;
    let mut contenders: Vec<(&str, Block<'_>, Vec<f64>)> = vec![
        ("bare", block(runtime, bare()), Vec::new()),
        ("steadfast", block(runtime, steadfast_stack()), Vec::new()),
        (
            "steadfast_all_six",
            block(runtime, steadfast_all_six()),
            Vec::new(),
        ),
        (
            "steadfast_no_timeout",
            block(
                runtime,
                ResilienceStack::new()
                    .retry(RetryLayer::builder().build().expect("valid"))
                    .circuit_breaker(steadfast_breaker())
                    .bulkhead(bulkhead())
                    .layer(bare()),
            ),
            Vec::new(),
        ),
        (
            "steadfast_timeout_only",
            block(
                runtime,
                ResilienceStack::new()
                    .overall_timeout(Duration::from_secs(30))
                    .layer(bare()),
            ),
            Vec::new(),
        ),
        (
            "tower_timeout_only",
            block(
                runtime,
                tower::timeout::TimeoutLayer::new(Duration::from_secs(30)).layer(bare()),
            ),
            Vec::new(),
        ),
        (
            "tower_failsafe",
            block(runtime, tower_failsafe()),
            Vec::new(),
        ),
        (
            "tower_tower_resilience",
            block(runtime, tower_tower_resilience()),
            Vec::new(),
        ),
        (
            "steadfast_clone_per_call",
            block_clone_per_call(runtime, steadfast_stack()),
            Vec::new(),
        ),
        (
            "tower_failsafe_clone_per_call",
            block_clone_per_call(runtime, tower_failsafe()),
            Vec::new(),
        ),
    ];
    for (_, run, _) in &mut contenders {
        run();
    }
    for _ in 0..ROUNDS {
        for (_, run, samples) in &mut contenders {
            samples.push(run());
        }
    }
    let medians: Vec<(&str, f64)> = contenders
        .iter_mut()
        .map(|(name, _, samples)| {
            samples.sort_by(f64::total_cmp);
            (*name, samples[samples.len() / 2])
        })
        .collect();
    let bare = medians[0].1;
    let steadfast = medians[1].1;
    println!("stack, interleaved ({ROUNDS} rounds, median ns per call):");
    for (name, median) in &medians {
        println!(
            "  {name:<30} {median:>8.1} ns  {:>+8.1} ns over bare  {:>5.2}x steadfast",
            median - bare,
            median / steadfast
        );
    }
}

fn healthy_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();

    report_interleaved(&runtime);

    bench_service(c, &runtime, "stack/bare", bare());
    bench_service(c, &runtime, "stack/steadfast", steadfast_stack());
    bench_service(c, &runtime, "stack/steadfast_all_six", steadfast_all_six());

    // Each layer alone, through the stack, to see where the time goes.
    let retry = ResilienceStack::new().retry(RetryLayer::builder().build().expect("valid"));
    bench_service(
        c,
        &runtime,
        "stack/steadfast_retry_only",
        retry.layer(bare()),
    );
    let timeout = ResilienceStack::new().overall_timeout(Duration::from_secs(30));
    bench_service(
        c,
        &runtime,
        "stack/steadfast_timeout_only",
        timeout.layer(bare()),
    );
    let breaker = ResilienceStack::new().circuit_breaker(steadfast_breaker());
    bench_service(
        c,
        &runtime,
        "stack/steadfast_breaker_only",
        breaker.layer(bare()),
    );
    let limit = ResilienceStack::new().bulkhead(bulkhead());
    bench_service(
        c,
        &runtime,
        "stack/steadfast_bulkhead_only",
        limit.layer(bare()),
    );
    let timeout = tower::timeout::TimeoutLayer::new(Duration::from_secs(30));
    bench_service(
        c,
        &runtime,
        "stack/tower_timeout_only",
        timeout.layer(bare()),
    );

    bench_service(c, &runtime, "stack/tower_failsafe", tower_failsafe());
    bench_service(
        c,
        &runtime,
        "stack/tower_tower_resilience",
        tower_tower_resilience(),
    );
}

criterion_group!(benches, healthy_path);
criterion_main!(benches);
