//! Bulkhead overhead per call: `ready().await` + `call().await` over a ready `service_fn`, bare,
//! behind steadfast's bulkhead, tower's `ConcurrencyLimit` and tower-resilience's bulkhead.
//!
//! Uncontended: one task on a current-thread runtime. Contended: 2 worker threads, 8 tasks
//! sharing one limiter (each runs its share of the iterations; the time is wall time for all).
//!
//! `cargo bench --all-features --bench bulkhead -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Layer, Service, ServiceExt, service_fn};

mod support;
use support::{bare, run, run_contended};

const LIMIT: usize = 64;
const TASKS: u64 = 8;
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
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = steadfast_layer().layer(bare());
    group.bench_function("steadfast BulkheadLayer", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    // The global variant, so that every task shares one semaphore as with the other two.
    let service = tower::limit::GlobalConcurrencyLimitLayer::new(LIMIT).layer(bare());
    group.bench_function("tower GlobalConcurrencyLimit", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    let service = tower_resilience_layer().layer(bare());
    group.bench_function("tower-resilience bulkhead", |b| {
        b.iter_custom(|iters| run_contended(&rt, &service, TASKS, iters))
    });

    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
