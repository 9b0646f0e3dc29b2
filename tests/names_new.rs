//! The public names DESIGN.md fixes for the second wave (pool, hedge, limit, rate limit), used
//! exactly as it writes them, with the behaviour it promises for each.
#![cfg(all(
    feature = "pool",
    feature = "hedge",
    feature = "limit",
    feature = "rate-limit"
))]

use std::time::Duration;

use steadfast::hedge::HedgeLayer;
use steadfast::limit::{AdaptiveLimitLayer, LimitExceeded};
use steadfast::pool::{Endpoint, EndpointState, NoEndpointAvailable, Pool};
use steadfast::rate_limit::{RateLimitLayer, RateLimited};
use steadfast::retry::RetryBudget;
use steadfast::{BoxError, is_rejection};
use tower::{Layer, Service, ServiceExt, service_fn};

fn echo() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + Sync
{
    service_fn(|n: u32| async move { Ok::<_, BoxError>(n) })
}

#[tokio::test(start_paused = true)]
async fn pool_names() {
    let pool = Pool::builder()
        .consecutive_failures(5)
        .base_ejection_time(Duration::from_secs(30))
        .max_ejection_time(Duration::from_secs(300))
        .max_ejected_fraction(0.5)
        .panic_threshold(0.5)
        .health_check(Duration::from_secs(10), |_key: &'static str| async { true })
        .unhealthy_threshold(2)
        .healthy_threshold(2)
        .build([
            Endpoint::new("a", echo()),
            Endpoint::new("b", echo()).tier(1),
        ])
        .unwrap();
    pool.insert("c", echo());
    assert!(pool.remove(&"c"));
    let mut snapshots = pool.endpoints();
    snapshots.sort_by_key(|e| *e.key());
    assert_eq!(snapshots.len(), 2);
    for endpoint in &snapshots {
        assert_eq!(endpoint.state(), EndpointState::Healthy);
        assert_eq!(endpoint.in_flight(), 0);
        assert_eq!(endpoint.ejections(), 0);
    }
    assert_eq!(pool.clone().oneshot(7).await.unwrap(), 7);

    // An empty pool builds, and rejects at once.
    let empty = Pool::builder()
        .build(std::iter::once(("x", echo())).skip(1))
        .unwrap();
    let error = empty.oneshot(1).await.unwrap_err();
    assert!(error.is::<NoEndpointAvailable>());
    assert!(is_rejection(&*error));
}

#[tokio::test(start_paused = true)]
async fn hedge_names() {
    let layer = HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .max_hedged_attempts(1)
        .budget(RetryBudget::new(0.1, 10, Duration::from_secs(10)))
        .build()
        .unwrap();
    assert_eq!(layer.layer(echo()).oneshot(3).await.unwrap(), 3);
    assert!(
        HedgeLayer::builder()
            .max_hedged_attempts(0)
            .build()
            .is_err(),
        "at least 1"
    );
}

#[tokio::test(start_paused = true)]
async fn limit_names() {
    let layer = AdaptiveLimitLayer::builder()
        .initial_limit(1)
        .min_limit(1)
        .max_limit(1)
        .build()
        .unwrap();
    assert_eq!(layer.limit(), 1);
    assert_eq!(layer.in_flight(), 0);
    let pending = service_fn(|()| std::future::pending::<Result<(), BoxError>>());
    let mut held = layer.layer(pending);
    let first = held.ready().await.unwrap().call(());
    assert_eq!(layer.in_flight(), 1);
    let error = held.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(error.is::<LimitExceeded>());
    assert!(is_rejection(&*error));
    drop(first);
    assert_eq!(layer.in_flight(), 0, "a dropped call gives its slot back");
    assert_eq!(layer.limit(), 1, "and leaves the limit unchanged");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_names() {
    let layer = RateLimitLayer::builder()
        .limit(10, Duration::from_secs(1))
        .burst(2)
        .max_wait(Duration::ZERO)
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap().call(1).await.unwrap();
    svc.ready().await.unwrap().call(2).await.unwrap();
    let error = svc.ready().await.unwrap().call(3).await.unwrap_err();
    let limited = error.downcast_ref::<RateLimited>().expect("rate limited");
    assert_eq!(limited.retry_after(), Duration::from_millis(100));
    assert!(is_rejection(&*error));

    let keyed = RateLimitLayer::builder()
        .limit(1, Duration::from_secs(1))
        .build_keyed(|n: &u32| *n % 2)
        .unwrap();
    let mut svc = keyed.layer(echo());
    svc.ready().await.unwrap().call(0).await.unwrap();
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert!(svc.ready().await.unwrap().call(2).await.is_err());
}
