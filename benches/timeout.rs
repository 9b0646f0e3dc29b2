//! `steadfast::timeout::TimeoutLayer` against a bare `service_fn`, tower's `Timeout`, and
//! tower-resilience's `TimeLimiter`: `ready().await` + `call().await` on a current-thread tokio
//! runtime.
//!
//! - `ready`: the inner future is ready at its first poll (the healthy fast path).
//! - `pending_once`: the inner future yields once, so every timeout has to arm its timer.
//! - `nested`: two timeouts stacked (outer 2 s, inner 1 s), inner future ready at once.
//!
//! Before the criterion timings, the bench prints an interleaved A/B comparison with tower's
//! `Timeout` (alternating blocks of calls, median of per-block times, so that the load of a
//! shared machine hits both sides alike), and counts heap allocations per call (through a counting global
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

/// Median nanoseconds per call of `a` and `b`, measured in alternating blocks of calls.
fn interleaved<A, B>(rt: &tokio::runtime::Runtime, mut a: A, mut b: B) -> (f64, f64)
where
    A: Service<u64, Response = u64>,
    A::Error: std::fmt::Debug,
    B: Service<u64, Response = u64>,
    B::Error: std::fmt::Debug,
{
    const BLOCK: u64 = 20_000;
    const ROUNDS: usize = 101;
    rt.block_on(async move {
        async fn block<S>(svc: &mut S) -> f64
        where
            S: Service<u64, Response = u64>,
            S::Error: std::fmt::Debug,
        {
            let start = std::time::Instant::now();
            for i in 0..BLOCK {
                let out = svc.ready().await.expect("ready").call(i).await;
                black_box(out.expect("answer"));
            }
            start.elapsed().as_nanos() as f64 / BLOCK as f64
        }
        block(&mut a).await;
        block(&mut b).await;
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ta.push(block(&mut a).await);
            tb.push(block(&mut b).await);
        }
        ta.sort_by(f64::total_cmp);
        tb.sort_by(f64::total_cmp);
        (ta[ROUNDS / 2], tb[ROUNDS / 2])
    })
}

fn report_interleaved() {
    let rt = runtime();
    let steadfast = || steadfast::timeout::TimeoutLayer::new(TIMEOUT);
    let tower = || tower::timeout::TimeoutLayer::new(TIMEOUT);
    let (bare, _) = interleaved(&rt, ready_service(), ready_service());
    let rows = [
        (
            "ready",
            interleaved(
                &rt,
                steadfast().layer(ready_service()),
                tower().layer(ready_service()),
            ),
        ),
        (
            "pending once",
            interleaved(
                &rt,
                steadfast().layer(pending_once_service()),
                tower().layer(pending_once_service()),
            ),
        ),
        (
            "nested",
            interleaved(
                &rt,
                ServiceBuilder::new()
                    .layer(steadfast::timeout::TimeoutLayer::new(2 * TIMEOUT))
                    .layer(steadfast())
                    .service(ready_service()),
                ServiceBuilder::new()
                    .layer(tower::timeout::TimeoutLayer::new(2 * TIMEOUT))
                    .layer(tower())
                    .service(ready_service()),
            ),
        ),
    ];
    println!("interleaved A/B, median ns per call (bare, ready: {bare:.1}):");
    for (what, (ours, theirs)) in rows {
        println!(
            "  {what}: steadfast {ours:.1}, tower {theirs:.1}, ratio {:.2}",
            ours / theirs
        );
    }
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
    report_interleaved();
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
