//! Bulkhead overhead per call: `ready().await` + `call().await` over a ready `service_fn`, bare,
//! behind steadfast's bulkhead, tower's `ConcurrencyLimit` and tower-resilience's bulkhead.
//!
//! Uncontended: one task on a current-thread runtime. Contended: 2 worker threads, 8 tasks
//! sharing one limiter (each runs its share of the iterations; the time is wall time for all).
//!
//! `cargo bench --all-features --bench bulkhead -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Layer, Service, ServiceExt, service_fn};

const LIMIT: usize = 64;
const TASKS: u64 = 8;

fn bare() -> impl Service<u64, Response = u64, Error = Infallible, Future: Send> + Clone + Send {
    service_fn(|x: u64| async move { Ok::<_, Infallible>(x) })
}

/// Times `iters` calls on a current-thread runtime.
fn run<S>(rt: &tokio::runtime::Runtime, service: &mut S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            let ready = service.ready().await.unwrap();
            black_box(ready.call(black_box(i)).await.unwrap());
        }
        start.elapsed()
    })
}

/// Times `iters` calls spread over `TASKS` tasks on a 2-thread runtime, each with its own clone.
fn run_contended<S>(rt: &tokio::runtime::Runtime, service: &S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mut service = service.clone();
                tokio::spawn(async move {
                    for i in 0..iters.div_ceil(TASKS) {
                        let ready = service.ready().await.unwrap();
                        black_box(ready.call(black_box(i)).await.unwrap());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        start.elapsed()
    })
}

fn steadfast_layer() -> steadfast::bulkhead::BulkheadLayer {
    steadfast_layer_of(LIMIT)
}

fn steadfast_layer_of(limit: usize) -> steadfast::bulkhead::BulkheadLayer {
    steadfast::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(limit)
        .build()
        .unwrap()
}

/// An error type of the service's own, as most services have (not `Infallible`, whose error
/// paths the compiler removes).
#[derive(Debug)]
struct OwnError;

impl std::fmt::Display for OwnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("own error")
    }
}

impl std::error::Error for OwnError {}

fn own_error() -> impl Service<u64, Response = u64, Error = OwnError, Future: Send> + Clone + Send {
    service_fn(|x: u64| async move { if x == u64::MAX { Err(OwnError) } else { Ok(x) } })
}

fn tower_resilience_layer() -> tower_resilience::bulkhead::BulkheadLayer {
    tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(LIMIT)
        .build()
        .unwrap()
}

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("bulkhead/uncontended");

    let mut service = bare();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = steadfast_layer().layer(bare());
    group.bench_function("steadfast BulkheadLayer", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = tower::limit::ConcurrencyLimitLayer::new(LIMIT).layer(bare());
    group.bench_function("tower ConcurrencyLimit", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    // The same, with the error boxed as steadfast's layers (and tower's `Timeout`) must.
    let mut service = tower::limit::ConcurrencyLimitLayer::new(LIMIT)
        .layer(bare())
        .map_err(Into::<steadfast::BoxError>::into);
    group.bench_function("tower ConcurrencyLimit, error boxed", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = tower_resilience_layer().layer(bare());
    group.bench_function("tower-resilience bulkhead", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    // Another shape: the service has its own error type, and the limit is 1,024.
    let mut service = own_error();
    group.bench_function("own error: bare service_fn", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });
    let mut service = steadfast_layer_of(1024).layer(own_error());
    group.bench_function("own error, 1024: steadfast BulkheadLayer", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });
    let mut service = tower::limit::ConcurrencyLimitLayer::new(1024).layer(own_error());
    group.bench_function("own error, 1024: tower ConcurrencyLimit", |b| {
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
    let mut group = c.benchmark_group("bulkhead/contended");

    let service = bare();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, iters))
    });

    let service = steadfast_layer().layer(bare());
    group.bench_function("steadfast BulkheadLayer", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, iters))
    });

    // The global variant, so that every task shares one semaphore as with the other two.
    let service = tower::limit::GlobalConcurrencyLimitLayer::new(LIMIT).layer(bare());
    group.bench_function("tower GlobalConcurrencyLimit", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, iters))
    });

    let service = tower_resilience_layer().layer(bare());
    group.bench_function("tower-resilience bulkhead", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, iters))
    });

    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
