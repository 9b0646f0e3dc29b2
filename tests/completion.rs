//! Every response future of the crate, polled again after it completed, panics with a message
//! naming it (the crate docs, "Futures"): never `Pending` forever, never a second answer.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::bulkhead::BulkheadLayer;
use steadfast::chaos::ChaosLayer;
use steadfast::circuit_breaker::CircuitBreakerLayer;
use steadfast::retry::RetryLayer;
use steadfast::timeout::TimeoutLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

fn poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `future` to completion (it must complete at once), then once more, and returns the
/// panic message of that second poll.
fn poll_twice<F: Future>(mut future: Pin<&mut F>) -> String {
    assert!(poll(future.as_mut()).is_ready(), "the first poll completes");
    let Err(panic) = catch_unwind(AssertUnwindSafe(|| poll(future.as_mut()))) else {
        panic!("polled after completion: no panic");
    };
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic
            .downcast::<&str>()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    }
}

fn echo() -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone {
    service_fn(|x: u32| async move { Ok::<_, Infallible>(x) })
}

fn failing() -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone {
    service_fn(|_: u32| async move { Err::<u32, _>(std::io::Error::other("down")) })
}

const MESSAGE: &str = "polled after completion";

#[tokio::test(start_paused = true)]
async fn timeout() {
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(echo());
    svc.ready().await.unwrap();
    let message = poll_twice(pin!(svc.call(1)));
    assert_eq!(message, "`timeout::ResponseFuture` polled after completion");

    // The call whose deadline had passed before it was made.
    let mut svc = TimeoutLayer::new(Duration::ZERO).layer(echo());
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(1))).contains("`timeout::ResponseFuture`"));
}

#[tokio::test(start_paused = true)]
async fn retry() {
    let mut svc = RetryLayer::builder().build().unwrap().layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`retry::ResponseFuture` polled after completion"
    );
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_called_and_rejected() {
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap();
    let message = poll_twice(pin!(svc.call(1)));
    assert_eq!(
        message,
        "`circuit_breaker::ResponseFuture` polled after completion"
    );
    // The second poll neither counted a second call nor a second outcome.
    assert_eq!(layer.snapshot().calls(), 1);

    layer.force_open();
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(1))).contains(MESSAGE));
    assert_eq!(layer.snapshot().not_permitted_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_called_and_rejected() {
    let layer = BulkheadLayer::builder()
        .max_concurrent_calls(1)
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`bulkhead::ResponseFuture` polled after completion"
    );
    assert_eq!(layer.available_permits(), 1, "the permit came back once");

    // A rejected call: the only permit is held by another service.
    let mut holder = layer.layer(echo());
    holder.ready().await.unwrap();
    let mut rejected = layer.layer(echo());
    rejected.ready().await.unwrap();
    assert!(poll_twice(pin!(rejected.call(1))).contains("`bulkhead::ResponseFuture`"));
    drop(holder);
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn chaos_called_and_failing() {
    let mut svc = ChaosLayer::builder().build().unwrap().layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`chaos::ResponseFuture` polled after completion"
    );

    let mut svc = ChaosLayer::builder()
        .error_rate(1.0)
        .seed(1)
        .build()
        .unwrap()
        .layer(echo());
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(1))).contains("`chaos::ResponseFuture`"));
}

#[tokio::test(start_paused = true)]
async fn retry_that_gave_up() {
    // Three attempts, all failed, then the last error: the future is done.
    let mut svc = RetryLayer::builder()
        .max_attempts(3)
        .build()
        .unwrap()
        .layer(failing());
    let mut future = pin!(svc.ready().await.unwrap().call(1));
    let result = loop {
        match poll(future.as_mut()) {
            Poll::Ready(result) => break result,
            Poll::Pending => tokio::time::advance(Duration::from_secs(60)).await,
        }
    };
    assert!(result.is_err());
    let panic = catch_unwind(AssertUnwindSafe(|| poll(future.as_mut())))
        .expect_err("polled after completion: a panic");
    assert!(
        panic
            .downcast_ref::<String>()
            .is_some_and(|m| m.contains("`retry::ResponseFuture`"))
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_answered_by_the_service_and_by_the_function() {
    use steadfast::BoxError;
    use steadfast::fallback::FallbackLayer;

    let mut svc = FallbackLayer::new(|_: BoxError| Ok(0)).layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`fallback::ResponseFuture` polled after completion"
    );
    let mut svc = FallbackLayer::new(|_: BoxError| Ok(0)).layer(failing());
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(1))).contains(MESSAGE));
}

#[tokio::test(start_paused = true)]
async fn failover_answered_by_the_primary_and_by_the_backup() {
    use steadfast::fallback::FallbackLayer;

    let mut svc = FallbackLayer::with_backup(echo()).layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`fallback::FailoverFuture` polled after completion"
    );
    let mut svc = FallbackLayer::with_backup(echo()).layer(failing());
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(1))).contains("`fallback::FailoverFuture`"));
}

#[tokio::test(start_paused = true)]
async fn rejections_as_responses() {
    use steadfast::http::RejectionsAsResponsesLayer;

    let ok = service_fn(|_: u32| async { Ok::<_, Infallible>(http::Response::new(String::new())) });
    let mut svc = RejectionsAsResponsesLayer::new().layer(ok);
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`http::ResponseFuture` polled after completion"
    );
    let err = service_fn(|_: u32| async {
        Err::<http::Response<String>, _>(std::io::Error::other("down"))
    });
    let mut svc = RejectionsAsResponsesLayer::new().layer(err);
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(1))).contains("`http::ResponseFuture`"));
}

#[tokio::test(start_paused = true)]
async fn pool_answered_and_rejected() {
    use steadfast::pool::Pool;
    let mut pool = Pool::builder().build([("a", echo())]).unwrap();
    pool.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(pool.call(1))),
        "`pool::ResponseFuture` polled after completion"
    );

    // No endpoint: the rejection.
    pool.remove(&"a");
    pool.ready().await.unwrap();
    assert!(poll_twice(pin!(pool.call(1))).contains("`pool::ResponseFuture`"));
}

#[tokio::test(start_paused = true)]
async fn hedge_answered_first_and_failed() {
    use steadfast::hedge::HedgeLayer;
    let layer = HedgeLayer::builder()
        .delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`hedge::ResponseFuture` polled after completion"
    );

    // Every attempt failed: the last error.
    let mut svc = layer.layer(failing());
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(1))).contains("`hedge::ResponseFuture`"));
}

#[tokio::test(start_paused = true)]
async fn adaptive_limit_called_and_rejected() {
    use steadfast::limit::AdaptiveLimitLayer;
    let layer = AdaptiveLimitLayer::builder()
        .initial_limit(1)
        .min_limit(1)
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`limit::ResponseFuture` polled after completion"
    );

    // Over the limit: the one slot is held by a call still pending.
    let mut slow = layer.layer(service_fn(|x: u32| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(x)
    }));
    slow.ready().await.unwrap();
    let _holds_the_slot = slow.call(1);
    slow.ready().await.unwrap();
    assert!(poll_twice(pin!(slow.call(2))).contains("`limit::ResponseFuture`"));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_admitted_and_rejected() {
    use steadfast::rate_limit::RateLimitLayer;
    let layer = RateLimitLayer::builder()
        .limit(1, Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap();
    assert_eq!(
        poll_twice(pin!(svc.call(1))),
        "`rate_limit::ResponseFuture` polled after completion"
    );
    // The second call within the second: rejected.
    svc.ready().await.unwrap();
    assert!(poll_twice(pin!(svc.call(2))).contains("`rate_limit::ResponseFuture`"));
}
