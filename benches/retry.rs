//! Retry on the healthy path: `ready().await` + `call().await` over a ready `service_fn`, bare
//! and behind steadfast's retry (default budget; no budget), tower's `Retry` with a
//! never-retrying policy and with a policy that keeps tower's own budget, and
//! tower-resilience's retry.

use std::fmt;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::retry::{RetryBudget, RetryLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

mod support;
use support::{BudgetedRetry, NeverRetry};

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

fn healthy_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();

    bench_service(c, &runtime, "retry/bare", bare());

    let layer = RetryLayer::builder().build().expect("valid");
    bench_service(c, &runtime, "retry/steadfast", layer.layer(bare()));

    let layer = RetryLayer::builder()
        .budget(RetryBudget::unlimited())
        .build()
        .expect("valid");
    bench_service(
        c,
        &runtime,
        "retry/steadfast_no_budget",
        layer.layer(bare()),
    );

    let tower_retry = tower::retry::RetryLayer::new(NeverRetry);
    bench_service(
        c,
        &runtime,
        "retry/tower_never_retry",
        tower_retry.layer(bare()),
    );

    let tower_budgeted = tower::retry::RetryLayer::new(BudgetedRetry::new());
    bench_service(
        c,
        &runtime,
        "retry/tower_with_budget",
        tower_budgeted.layer(bare()),
    );

    let resilience = tower_resilience::retry::RetryLayer::<u64, u64, BenchError>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(100))
        .build();
    bench_service(
        c,
        &runtime,
        "retry/tower_resilience",
        resilience.layer(bare()),
    );
}

criterion_group!(benches, healthy_path);
criterion_main!(benches);
