//! `steadfast::timeout::TimeoutLayer` against a bare `service_fn`, tower's `Timeout`, and
//! tower-resilience's `TimeLimiter`: `ready().await` + `call().await` on a current-thread tokio
//! runtime.
//!
//! - `ready`: the inner future is ready at its first poll (the healthy fast path).
//! - `pending_once`: the inner future yields once, so every timeout has to arm its timer.
//! - `nested`: two timeouts stacked (outer 2 s, inner 1 s), inner future ready at once.
//!
//! Before the timings, the bench counts heap allocations per call (through a counting global
//! allocator, which adds an atomic add to each allocation: it only slows the layers that
//! allocate) and prints them.
//!
//! Run with `cargo bench --all-features --bench timeout`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

const TIMEOUT: Duration = Duration::from_secs(1);

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Heap allocations per call, after a warm-up, over 10 000 calls.
fn allocations_per_call<S>(rt: &tokio::runtime::Runtime, mut svc: S) -> f64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    const CALLS: u64 = 10_000;
    rt.block_on(async move {
        for i in 0..CALLS {
            svc.ready()
                .await
                .expect("ready")
                .call(i)
                .await
                .expect("answer");
        }
        let region = stats_alloc::Region::new(GLOBAL);
        for i in 0..CALLS {
            let out = svc
                .ready()
                .await
                .expect("ready")
                .call(i)
                .await
                .expect("answer");
            black_box(out);
        }
        region.change().allocations as f64 / CALLS as f64
    })
}

fn report_allocations() {
    let rt = runtime();
    let steadfast = || steadfast::timeout::TimeoutLayer::new(TIMEOUT);
    let tower = || tower::timeout::TimeoutLayer::new(TIMEOUT);
    let rows = [
        ("bare, ready", allocations_per_call(&rt, ready_service())),
        (
            "steadfast, ready",
            allocations_per_call(&rt, steadfast().layer(ready_service())),
        ),
        (
            "tower, ready",
            allocations_per_call(&rt, tower().layer(ready_service())),
        ),
        (
            "tower_resilience, ready",
            allocations_per_call(&rt, tower_resilience_layer().layer(ready_service())),
        ),
        (
            "steadfast, pending once",
            allocations_per_call(&rt, steadfast().layer(pending_once_service())),
        ),
        (
            "tower, pending once",
            allocations_per_call(&rt, tower().layer(pending_once_service())),
        ),
    ];
    for (what, per_call) in rows {
        println!("allocations per call: {what}: {per_call}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

/// Times `iters` sequential `ready().await` + `call().await` on `svc`.
fn run<S>(rt: &tokio::runtime::Runtime, mut svc: S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async move {
        let start = std::time::Instant::now();
        for i in 0..iters {
            let ready = svc.ready().await.expect("ready");
            let out = ready.call(black_box(i)).await.expect("answer");
            black_box(out);
        }
        start.elapsed()
    })
}

fn ready_service() -> impl Service<u64, Response = u64, Error = Infallible, Future: Send> + Clone {
    service_fn(|x: u64| async move { Ok::<_, Infallible>(x) })
}

fn pending_once_service()
-> impl Service<u64, Response = u64, Error = Infallible, Future: Send> + Clone {
    service_fn(|x: u64| async move {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(x)
    })
}

fn tower_resilience_layer() -> tower_resilience::timelimiter::TimeLimiterLayer {
    tower_resilience::timelimiter::TimeLimiterLayer::builder()
        .timeout_duration(TIMEOUT)
        .build()
}

fn bench_ready(c: &mut Criterion) {
    report_allocations();
    let rt = runtime();
    let mut group = c.benchmark_group("timeout/ready");
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| run(&rt, ready_service(), iters))
    });
    group.bench_function("steadfast", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(steadfast::timeout::TimeoutLayer::new(TIMEOUT))
                .service(ready_service());
            run(&rt, svc, iters)
        })
    });
    group.bench_function("tower", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(tower::timeout::TimeoutLayer::new(TIMEOUT))
                .service(ready_service());
            run(&rt, svc, iters)
        })
    });
    group.bench_function("tower_resilience", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(tower_resilience_layer())
                .service(ready_service());
            run(&rt, svc, iters)
        })
    });
    group.finish();
}

fn bench_pending_once(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("timeout/pending_once");
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| run(&rt, pending_once_service(), iters))
    });
    group.bench_function("steadfast", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(steadfast::timeout::TimeoutLayer::new(TIMEOUT))
                .service(pending_once_service());
            run(&rt, svc, iters)
        })
    });
    group.bench_function("tower", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(tower::timeout::TimeoutLayer::new(TIMEOUT))
                .service(pending_once_service());
            run(&rt, svc, iters)
        })
    });
    group.bench_function("tower_resilience", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(tower_resilience_layer())
                .service(pending_once_service());
            run(&rt, svc, iters)
        })
    });
    group.finish();
}

fn bench_nested(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("timeout/nested");
    group.bench_function("steadfast", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(steadfast::timeout::TimeoutLayer::new(2 * TIMEOUT))
                .layer(steadfast::timeout::TimeoutLayer::new(TIMEOUT))
                .service(ready_service());
            run(&rt, svc, iters)
        })
    });
    group.bench_function("tower", |b| {
        b.iter_custom(|iters| {
            let svc = ServiceBuilder::new()
                .layer(tower::timeout::TimeoutLayer::new(2 * TIMEOUT))
                .layer(tower::timeout::TimeoutLayer::new(TIMEOUT))
                .service(ready_service());
            run(&rt, svc, iters)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ready, bench_pending_once, bench_nested);
criterion_main!(benches);
