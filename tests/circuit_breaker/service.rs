//! The breaker as a tower service: readiness, sharing, errors, classification.

use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, State};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_ready_without_polling_the_inner_service() {
    let layer = count_builder(1).build().unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<&'static str, &'static str>();
    let mut svc = layer.layer(mock);
    handle.allow(0); // the inner service is never ready

    let waiting = tokio::time::timeout(Duration::from_secs(1), svc.ready()).await;
    assert!(waiting.is_err(), "closed: readiness is the inner service's");

    layer.force_open();
    let mut svc = svc.clone(); // a clone starts without the permission taken above
    let err = svc
        .ready()
        .await
        .unwrap()
        .call("request")
        .await
        .unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert!(handle.next_request().now_or_never_is_none());
}

/// `next_request` without awaiting it: there must be none.
trait NowOrNever {
    fn now_or_never_is_none(self) -> bool;
}

impl<F: std::future::Future> NowOrNever for F {
    fn now_or_never_is_none(self) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(self);
        future.as_mut().poll(&mut cx).is_pending()
    }
}

#[tokio::test(start_paused = true)]
async fn every_clone_and_every_layered_service_share_one_breaker() {
    let layer = count_builder(2).minimum_calls(2).build().unwrap();
    let (mut route_a, _) = service(&layer.clone());
    let (mut route_b, _) = service(&layer);
    let mut route_a_clone = route_a.clone();
    fail(&mut route_a).await;
    fail(&mut route_b).await;
    assert_eq!(layer.state(), State::Open);
    rejected(&mut route_a_clone).await;
    rejected(&mut route_b).await;
    assert_eq!(layer.clone().snapshot().not_permitted_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unwrapped() {
    let layer = count_builder(10).build().unwrap();
    let (mut svc, _) = service(&layer);
    let err = send(&mut svc, Call::Fail).await.unwrap_err();
    let backend_error = err
        .downcast::<BackendError>()
        .expect("the backend's own error");
    assert_eq!(*backend_error, BackendError);
}

#[tokio::test(start_paused = true)]
async fn rejections_of_an_inner_breaker_are_ignored_by_default() {
    let outer = count_builder(1).build().unwrap();
    let inner = count_builder(1).build().unwrap();
    inner.force_open();
    let mut svc = ServiceBuilder::new()
        .layer(outer.clone())
        .layer(inner.clone())
        .service(Backend::default());
    for _ in 0..3 {
        let err = svc.ready().await.unwrap().call(Call::Ok).await.unwrap_err();
        assert!(err.is::<CircuitOpen>());
    }
    assert_eq!(
        outer.state(),
        State::Closed,
        "a local rejection says nothing of the backend"
    );
    assert_eq!(outer.snapshot().calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn calling_without_poll_ready_still_asks_the_breaker() {
    let layer = count_builder(1).build().unwrap();
    let (mut svc, backend) = service(&layer);
    layer.force_open();
    let err = svc.call(Call::Ok).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(backend.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn works_with_closures_and_service_builder() {
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n * 2) }));
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
}

#[test]
fn futures_are_send_and_static_when_the_inner_ones_are() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let layer = count_builder(1).build().unwrap();
    let (mut svc, _) = service(&layer);
    let future = svc.call(Call::Ok);
    assert_send_static(&future);
    assert_send_static(&svc);
    assert_send_static(&layer);
}

#[cfg(feature = "http")]
mod http_classification {
    use super::*;
    use steadfast::circuit_breaker::SlidingWindow;
    use tower_http::classify::{
        GrpcErrorsAsFailures, ServerErrorsAsFailures, StatusInRangeAsFailures,
    };

    fn status_service(
        status: u16,
    ) -> impl Service<(), Response = http::Response<()>, Error = BoxError, Future: Send> + Clone
    {
        service_fn(move |()| async move {
            Ok::<_, BoxError>(http::Response::builder().status(status).body(()).unwrap())
        })
    }

    async fn outcome_of<C>(classifier: C, status: u16) -> (u32, u32)
    where
        C: steadfast::classify::Classify<http::Response<()>, BoxError> + Clone,
    {
        let layer = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(10))
            .minimum_calls(10)
            .classify(classifier)
            .build()
            .unwrap();
        let mut svc = layer.layer(status_service(status));
        let response = svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "responses pass through");
        let snap = layer.snapshot();
        (snap.calls(), snap.failed_calls())
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_are_failures() {
        assert_eq!(outcome_of(ServerErrorsAsFailures::new(), 503).await, (1, 1));
        assert_eq!(outcome_of(ServerErrorsAsFailures::new(), 500).await, (1, 1));
        assert_eq!(outcome_of(ServerErrorsAsFailures::new(), 404).await, (1, 0));
        assert_eq!(outcome_of(ServerErrorsAsFailures::new(), 200).await, (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn status_ranges_are_configurable() {
        let range = StatusInRangeAsFailures::new(429..=599);
        assert_eq!(outcome_of(range.clone(), 429).await, (1, 1));
        assert_eq!(outcome_of(range, 404).await, (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_status_in_headers_is_classified() {
        let grpc = |code: &'static str| {
            service_fn(move |()| async move {
                Ok::<_, BoxError>(
                    http::Response::builder()
                        .header("grpc-status", code)
                        .body(())
                        .unwrap(),
                )
            })
        };
        for (code, failed) in [("0", 0), ("14", 1), ("5", 1)] {
            let layer = CircuitBreakerLayer::builder()
                .classify(GrpcErrorsAsFailures::new())
                .build()
                .unwrap();
            let mut svc = layer.layer(grpc(code));
            svc.ready().await.unwrap().call(()).await.unwrap();
            assert_eq!(
                layer.snapshot().failed_calls(),
                failed,
                "grpc-status {code}"
            );
        }
    }
}
