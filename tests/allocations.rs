//! Zero heap allocations on the healthy path, counted by an instrumented global allocator.
//!
//! The allocator counts every thread of the process, so this test runs without libtest's harness
//! (`harness = false`): no other thread exists to allocate while a case is being counted.

use std::alloc::System;
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::RetryLayer;
use steadfast::timeout::TimeoutLayer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARM_UP: usize = 200;
const CALLS: usize = 1_000;

fn backend() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|n: u32| async move { Ok::<_, BoxError>(n + 1) })
}

/// Allocations made by `CALLS` calls through `service`, after a warm-up.
fn allocations<S>(runtime: &tokio::runtime::Runtime, mut service: S) -> usize
where
    S: Service<u32, Response = u32>,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        for n in 0..WARM_UP {
            service.ready().await.unwrap().call(n as u32).await.unwrap();
        }
        let region = Region::new(GLOBAL);
        for n in 0..CALLS {
            let answer = service.ready().await.unwrap().call(n as u32).await.unwrap();
            assert_eq!(answer, n as u32 + 1);
        }
        region.change().allocations
    })
}

/// The same, with a fresh clone of `service` for each call, called once and dropped: how axum
/// calls a route's service, and how tower's `Oneshot` and a retry's clone use one.
fn allocations_clone_per_call<S>(runtime: &tokio::runtime::Runtime, service: S) -> usize
where
    S: Service<u32, Response = u32> + Clone,
    S::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        for n in 0..WARM_UP {
            service.clone().oneshot(n as u32).await.unwrap();
        }
        let region = Region::new(GLOBAL);
        for n in 0..CALLS {
            let answer = service.clone().oneshot(n as u32).await.unwrap();
            assert_eq!(answer, n as u32 + 1);
        }
        region.change().allocations
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    assert_eq!(
        allocations(&runtime, backend()),
        0,
        "the bare service itself"
    );

    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    assert_eq!(
        allocations(&runtime, breaker.layer(backend())),
        0,
        "breaker, count window"
    );

    let timed = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Time(Duration::from_secs(10)))
        .slow_call_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(
        allocations(&runtime, timed.layer(backend())),
        0,
        "breaker, time window, slow calls"
    );

    let timeout = TimeoutLayer::new(Duration::from_secs(1));
    assert_eq!(
        allocations(&runtime, timeout.layer(backend())),
        0,
        "timeout"
    );

    let retry = RetryLayer::builder().build().unwrap();
    assert_eq!(
        allocations(&runtime, retry.layer(backend())),
        0,
        "retry, no retry needed"
    );

    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(8)
        .build()
        .unwrap();
    assert_eq!(
        allocations(&runtime, bulkhead.layer(backend())),
        0,
        "bulkhead"
    );

    let fallback = FallbackLayer::new(|_: BoxError| Ok(0u32));
    assert_eq!(
        allocations(&runtime, fallback.layer(backend())),
        0,
        "fallback"
    );

    let stack = ServiceBuilder::new()
        .layer(FallbackLayer::new(|_: BoxError| Ok(0u32)))
        .layer(RetryLayer::builder().build().unwrap())
        .layer(TimeoutLayer::new(Duration::from_secs(2)))
        .layer(CircuitBreakerLayer::builder().build().unwrap())
        .layer(
            BulkheadLayer::builder()
                .max_concurrent_calls(8)
                .build()
                .unwrap(),
        )
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(backend());
    assert_eq!(allocations(&runtime, stack.clone()), 0, "the full stack");

    assert_eq!(
        allocations_clone_per_call(&runtime, breaker.layer(backend())),
        0,
        "breaker, a clone per call"
    );
    assert_eq!(
        allocations_clone_per_call(&runtime, bulkhead.layer(backend())),
        0,
        "bulkhead, a clone per call"
    );
    assert_eq!(
        allocations_clone_per_call(&runtime, stack),
        0,
        "the full stack, a clone per call"
    );
    #[cfg(feature = "pool")]
    {
        let pool = steadfast::pool::Pool::builder()
            .build((0..8).map(|i| (i, backend())))
            .unwrap();
        assert_eq!(allocations(&runtime, pool.clone()), 0, "pool, 8 endpoints");
        assert_eq!(
            allocations_clone_per_call(&runtime, pool.clone()),
            0,
            "pool, a clone per call"
        );
        // A parent whose view went out of date (axum's route service after an endpoint
        // changed): each clone fetches the current view.
        let parent = pool.clone();
        pool.insert(8, backend());
        pool.remove(&8);
        assert_eq!(
            allocations_clone_per_call(&runtime, parent),
            0,
            "pool, a clone per call of an out-of-date parent"
        );
        let retried = RetryLayer::builder().build().unwrap().layer(pool);
        assert_eq!(
            allocations(&runtime, retried),
            0,
            "retry over a pool, no retry needed"
        );
    }
    #[cfg(feature = "hedge")]
    {
        let hedge = steadfast::hedge::HedgeLayer::builder()
            .delay(Duration::from_millis(50))
            .build()
            .unwrap();
        assert_eq!(
            allocations(&runtime, hedge.layer(backend())),
            0,
            "hedge, answered before the delay"
        );
        assert_eq!(
            allocations_clone_per_call(&runtime, hedge.layer(backend())),
            0,
            "hedge, a clone per call"
        );
        let percentile = steadfast::hedge::HedgeLayer::builder()
            .delay_percentile(0.95)
            .build()
            .unwrap();
        assert_eq!(
            allocations(&runtime, percentile.layer(backend())),
            0,
            "hedge, percentile delay"
        );
    }
    #[cfg(feature = "limit")]
    {
        use steadfast::limit::{AdaptiveLimitLayer, Vegas};
        let limit = AdaptiveLimitLayer::builder().build().unwrap();
        assert_eq!(
            allocations(&runtime, limit.layer(backend())),
            0,
            "adaptive limit"
        );
        assert_eq!(
            allocations_clone_per_call(&runtime, limit.layer(backend())),
            0,
            "adaptive limit, a clone per call"
        );
        // The algorithm on every call, not once per window.
        let every_call = AdaptiveLimitLayer::builder()
            .algorithm(Vegas::new())
            .window(Duration::ZERO)
            .window_samples(1)
            .build()
            .unwrap();
        assert_eq!(
            allocations(&runtime, every_call.layer(backend())),
            0,
            "adaptive limit, Vegas on every call"
        );
    }
    // Keyed breakers: the hit path (8 keys, all made during the warm-up).
    let keyed = CircuitBreakerLayer::builder()
        .build_keyed(|n: &u32| n % 8)
        .unwrap();
    assert_eq!(
        allocations(&runtime, keyed.layer(backend())),
        0,
        "keyed breakers, 8 keys"
    );

    #[cfg(feature = "rate-limit")]
    rate_limit(&runtime);

    // Each feature's block adds its three cases to the twelve of the default features.
    let features = [
        cfg!(feature = "pool"),
        cfg!(feature = "hedge"),
        cfg!(feature = "limit"),
        cfg!(feature = "rate-limit"),
    ];
    let cases = 12 + 3 * features.iter().filter(|&&on| on).count();
    println!("allocations: {cases} passed, 0 failed");
}

#[cfg(feature = "rate-limit")]
fn rate_limit(runtime: &tokio::runtime::Runtime) {
    use steadfast::rate_limit::RateLimitLayer;

    let builder = RateLimitLayer::builder()
        .limit(1_000_000_000, Duration::from_secs(1))
        .burst(1_000_000_000);
    let limit = builder.clone().build().unwrap();
    assert_eq!(
        allocations(runtime, limit.layer(backend())),
        0,
        "rate limit, admitted"
    );
    assert_eq!(
        allocations_clone_per_call(runtime, limit.layer(backend())),
        0,
        "rate limit, a clone per call"
    );
    let keyed = builder.build_keyed(|n: &u32| n % 8).unwrap();
    assert_eq!(
        allocations(runtime, keyed.layer(backend())),
        0,
        "rate limit, keyed, 8 keys"
    );
}
