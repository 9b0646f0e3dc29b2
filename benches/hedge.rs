//! Hedge on the healthy path, where the answer comes before the delay: `ready().await` +
//! `call().await` over a ready `service_fn`, bare and behind steadfast's hedge (a fixed delay,
//! with the default budget and with none; a p95 delay), tower's `hedge::Hedge` (p95, which always follows a percentile) and
//! tower-resilience's hedge (a fixed delay).

use std::fmt;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::hedge::HedgeLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Debug, Clone)]
struct BenchError;

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bench error")
    }
}

impl std::error::Error for BenchError {}

fn bare()
-> impl Service<u64, Response = u64, Error = BenchError, Future = Ready<Result<u64, BenchError>>> + Clone
{
    service_fn(|request: u64| ready(Ok::<u64, BenchError>(request)))
}

/// tower's hedge policy: every request may be hedged, copied with `Clone`.
#[derive(Debug, Clone)]
struct CloneEvery;

impl tower::hedge::Policy<u64> for CloneEvery {
    fn clone_request(&self, request: &u64) -> Option<u64> {
        Some(*request)
    }

    fn can_retry(&self, _: &u64) -> bool {
        true
    }
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

fn answered_before_the_delay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();

    bench_service(c, &runtime, "hedge/bare", bare());

    let fixed = HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .build()
        .expect("valid");
    bench_service(c, &runtime, "hedge/steadfast_fixed", fixed.layer(bare()));

    let unbudgeted = HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .budget(steadfast::retry::RetryBudget::unlimited())
        .build()
        .expect("valid");
    bench_service(
        c,
        &runtime,
        "hedge/steadfast_fixed_no_budget",
        unbudgeted.layer(bare()),
    );

    let percentile = HedgeLayer::builder()
        .delay_percentile(0.95)
        .build()
        .expect("valid");
    bench_service(c, &runtime, "hedge/steadfast_p95", percentile.layer(bare()));

    let tower_hedge =
        tower::hedge::Hedge::new(bare(), CloneEvery, 100, 0.95, Duration::from_secs(10));
    bench_service(c, &runtime, "hedge/tower_p95", tower_hedge);

    let resilience = tower_resilience::hedge::HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .max_hedged_attempts(2)
        .build();
    bench_service(
        c,
        &runtime,
        "hedge/tower_resilience_fixed",
        resilience.layer(bare()),
    );
}

criterion_group!(benches, answered_before_the_delay);
criterion_main!(benches);
