//! Fallback overhead per call: `ready().await` + `call().await` on a current-thread runtime,
//! bare, behind steadfast's fallback (a function, or failover to a backup) and
//! tower-resilience's fallback (tower has none), on the healthy path and when the fallback
//! answers every call.
//!
//! `cargo bench --all-features --bench fallback -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::BoxError;
use steadfast::fallback::FallbackLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

/// The primary's error.
#[derive(Debug, Clone)]
struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

fn ok() -> impl Service<u64, Response = u64, Error = Fail, Future: Send> + Clone + Send + 'static {
    service_fn(|x: u64| async move { Ok::<_, Fail>(x) })
}

fn failing()
-> impl Service<u64, Response = u64, Error = Fail, Future: Send> + Clone + Send + 'static {
    service_fn(|_: u64| async move { Err::<u64, _>(Fail) })
}

fn backup() -> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(|x: u64| async move { Ok::<_, BoxError>(x + 1) })
}

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

fn steadfast_function()
-> FallbackLayer<steadfast::fallback::Function<impl Fn(BoxError) -> Result<u64, BoxError> + Clone>>
{
    FallbackLayer::new(|_: BoxError| Ok(0))
}

fn resilience_function() -> tower_resilience::fallback::FallbackLayer<u64, u64, Fail> {
    tower_resilience::fallback::FallbackLayer::<u64, u64, Fail>::from_error(|_: &Fail| 0)
}

fn healthy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("fallback/healthy");

    let mut service = ok();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = steadfast_function().layer(ok());
    group.bench_function("steadfast FallbackLayer::new", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = FallbackLayer::with_backup(backup()).layer(ok());
    group.bench_function("steadfast FallbackLayer::with_backup", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = resilience_function().layer(ok());
    group.bench_function("tower-resilience from_error", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    group.finish();
}

fn answering(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("fallback/answering");

    let mut service = steadfast_function().layer(failing());
    group.bench_function("steadfast FallbackLayer::new", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = FallbackLayer::with_backup(backup()).layer(failing());
    group.bench_function("steadfast FallbackLayer::with_backup", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    let mut service = resilience_function().layer(failing());
    group.bench_function("tower-resilience from_error", |b| {
        b.iter_custom(|iters| run(&rt, &mut service, iters))
    });

    group.finish();
}

criterion_group!(benches, healthy, answering);
criterion_main!(benches);
