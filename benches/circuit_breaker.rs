//! Circuit breaker overhead against the bare service and the peer crates, in one run.
//!
//! Each case measures `ready().await` + `call().await` on one service, on a current-thread
//! runtime; `contended` runs 64 tasks that share one breaker on 2 worker threads and reports
//! wall-clock time per call. Read the results as ratios: the machine is shared and noisy.
//!
//! ```text
//! cargo bench --bench circuit_breaker
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use steadfast::BoxError;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_resilience::circuitbreaker::CircuitBreakerLayer as PeerBreakerLayer;

mod support;
use support::FailsafeService;

/// The backend: ready at once, answers at once; `true` fails.
fn backend() -> impl Service<bool, Response = u64, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(|fail: bool| async move {
        if fail {
            Err::<u64, BoxError>("down".into())
        } else {
            Ok(7)
        }
    })
}

fn steadfast_layer(slow_calls: bool, window: SlidingWindow) -> CircuitBreakerLayer {
    let mut builder = CircuitBreakerLayer::builder()
        .sliding_window(window)
        .minimum_calls(100)
        .wait_in_open(Duration::from_secs(3600));
    if slow_calls {
        builder = builder.slow_call_duration(Duration::from_secs(1));
    }
    builder.build().expect("valid configuration")
}

fn peer_layer() -> PeerBreakerLayer {
    PeerBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .expect("valid configuration")
}

fn failsafe_breaker() -> impl failsafe::futures::CircuitBreaker + Clone + Send + Sync + 'static {
    let backoff = failsafe::backoff::constant(Duration::from_secs(3600));
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(1, backoff))
        .build()
}

/// Time `iters` sequential calls of `request` through `svc`.
fn run<S>(rt: &tokio::runtime::Runtime, svc: &mut S, request: bool, iters: u64) -> Duration
where
    S: Service<bool>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let ready = svc.ready().await;
            let svc = match ready {
                Ok(svc) => svc,
                Err(_) => panic!("not ready"),
            };
            let _ = black_box(svc.call(black_box(request)).await);
        }
        start.elapsed()
    })
}

fn closed(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("circuit_breaker/closed");
    group.bench_function("bare", |b| {
        let mut svc = backend();
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    let cases = [
        ("steadfast count window", false, SlidingWindow::Count(100)),
        (
            "steadfast count window + slow calls",
            true,
            SlidingWindow::Count(100),
        ),
        (
            "steadfast time window",
            false,
            SlidingWindow::Time(Duration::from_secs(60)),
        ),
    ];
    for (name, slow, window) in cases {
        group.bench_function(name, |b| {
            let mut svc = steadfast_layer(slow, window).layer(backend());
            b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
        });
    }
    // One breaker per key, every call of one key (a route): what the map adds to a breaker.
    group.bench_function("steadfast keyed, one key, count window", |b| {
        let mut svc = CircuitBreakerLayer::builder()
            .minimum_calls(100)
            .wait_in_open(Duration::from_secs(3600))
            .build_keyed(|_: &bool| "route")
            .expect("valid configuration")
            .layer(backend());
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.bench_function("failsafe", |b| {
        let mut svc = FailsafeService::new(backend(), failsafe_breaker());
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.bench_function("tower-resilience", |b| {
        let mut svc = peer_layer().layer(backend());
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("circuit_breaker/open");
    group.bench_function("bare", |b| {
        let mut svc = backend();
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.bench_function("steadfast", |b| {
        let layer = steadfast_layer(false, SlidingWindow::Count(100));
        layer.force_open();
        assert_eq!(layer.state(), State::ForcedOpen);
        let mut svc = layer.layer(backend());
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.bench_function("steadfast (tripped)", |b| {
        let layer = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(1))
            .minimum_calls(1)
            .wait_in_open(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut svc = layer.layer(backend());
        run(&rt, &mut svc, true, 1);
        assert_eq!(layer.state(), State::Open);
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.bench_function("failsafe", |b| {
        let mut svc = FailsafeService::new(backend(), failsafe_breaker());
        run(&rt, &mut svc, true, 1);
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.bench_function("tower-resilience", |b| {
        let layer = PeerBreakerLayer::builder()
            .failure_rate_threshold(0.5)
            .sliding_window_size(1)
            .minimum_number_of_calls(1)
            .wait_duration_in_open(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut svc = layer.layer(backend());
        run(&rt, &mut svc, true, 1);
        b.iter_custom(|iters| run(&rt, &mut svc, false, iters));
    });
    group.finish();
}

const TASKS: u64 = 64;

/// 64 tasks on 2 worker threads, each with a clone of `svc`, `iters` calls in all.
fn run_contended<S>(rt: &tokio::runtime::Runtime, svc: &S, iters: u64) -> Duration
where
    S: Service<bool> + Clone + Send + 'static,
    S::Future: Send,
{
    let per_task = iters.div_ceil(TASKS);
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        let Ok(ready) = svc.ready().await else {
                            panic!("not ready")
                        };
                        let _ = black_box(ready.call(false).await);
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

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("circuit_breaker/contended");
    group.bench_function(BenchmarkId::from_parameter("bare"), |b| {
        let svc = backend();
        b.iter_custom(|iters| run_contended(&rt, &svc, iters));
    });
    group.bench_function(BenchmarkId::from_parameter("steadfast"), |b| {
        let svc = steadfast_layer(false, SlidingWindow::Count(100)).layer(backend());
        b.iter_custom(|iters| run_contended(&rt, &svc, iters));
    });
    group.bench_function(BenchmarkId::from_parameter("failsafe"), |b| {
        let svc = FailsafeService::new(backend(), failsafe_breaker());
        b.iter_custom(|iters| run_contended(&rt, &svc, iters));
    });
    group.bench_function(BenchmarkId::from_parameter("tower-resilience"), |b| {
        let svc = peer_layer().layer(backend());
        b.iter_custom(|iters| run_contended(&rt, &svc, iters));
    });
    group.finish();
}

criterion_group!(benches, closed, open, contended);
criterion_main!(benches);
