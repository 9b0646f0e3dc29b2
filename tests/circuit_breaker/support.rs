//! A backend the tests script call by call, and helpers to drive a breaker.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{
    Builder, CircuitBreaker, CircuitBreakerLayer, CircuitOpen, SlidingWindow, State,
};
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt};

/// What the backend does with one call.
#[derive(Debug)]
pub(crate) enum Call {
    Ok,
    Fail,
    /// Succeeds with this answer.
    Answer(&'static str),
    /// Sleeps, then succeeds or fails.
    Slow(Duration, bool),
    /// Waits for the test to answer through the channel: `true` is a failure.
    Wait(oneshot::Receiver<bool>),
}

/// The backend's own error, to check that it passes through unwrapped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BackendError;

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("backend failed")
    }
}

impl std::error::Error for BackendError {}

/// A backend that counts the calls that reach it.
#[derive(Clone, Default)]
pub(crate) struct Backend {
    pub(crate) calls: Arc<AtomicUsize>,
}

impl Backend {
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Call> for Backend {
    type Response = &'static str;
    type Error = BackendError;
    type Future = Pin<Box<dyn Future<Output = Result<&'static str, BackendError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let fail = match call {
                Call::Answer(answer) => return Ok(answer),
                Call::Ok => false,
                Call::Fail => true,
                Call::Slow(duration, fail) => {
                    tokio::time::sleep(duration).await;
                    fail
                }
                Call::Wait(answer) => answer.await.unwrap_or(true),
            };
            if fail { Err(BackendError) } else { Ok("ok") }
        })
    }
}

pub(crate) type Breaker = CircuitBreaker<Backend>;

/// A builder with a count window of `n` that may trip from the first call on.
pub(crate) fn count_builder(n: u32) -> Builder {
    CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(n))
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(10))
        .half_open_calls(2)
}

pub(crate) fn service(layer: &CircuitBreakerLayer) -> (Breaker, Backend) {
    let backend = Backend::default();
    (layer.layer(backend.clone()), backend)
}

/// Sends one call and waits for its answer.
pub(crate) async fn send(service: &mut Breaker, call: Call) -> Result<&'static str, BoxError> {
    service.ready().await?.call(call).await
}

pub(crate) async fn ok(service: &mut Breaker) {
    send(service, Call::Ok)
        .await
        .expect("the call should succeed");
}

pub(crate) async fn fail(service: &mut Breaker) {
    let err = send(service, Call::Fail).await.unwrap_err();
    assert!(
        err.is::<BackendError>(),
        "expected the backend's error, got {err}"
    );
}

/// Sends a call that must be rejected, and returns the rejection.
pub(crate) async fn rejected(service: &mut Breaker) -> CircuitOpen {
    let err = send(service, Call::Ok).await.unwrap_err();
    match err.downcast::<CircuitOpen>() {
        Ok(open) => *open,
        Err(other) => panic!("expected CircuitOpen, got {other}"),
    }
}

/// Trips a fresh `count_builder` breaker: one failure opens it.
pub(crate) async fn trip(service: &mut Breaker, layer: &CircuitBreakerLayer) {
    fail(service).await;
    assert_eq!(layer.state(), State::Open);
}

pub(crate) async fn advance(duration: Duration) {
    tokio::time::advance(duration).await;
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One metric of a `DebuggingRecorder` snapshot: the value of the series `name` whose labels are
/// exactly `labels`.
#[cfg(feature = "metrics")]
pub(crate) fn find<'a>(
    snapshot: &'a [(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        metrics_util::debugging::DebugValue,
    )],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a metrics_util::debugging::DebugValue> {
    snapshot.iter().find_map(|(key, _, _, value)| {
        let key_labels: Vec<(&str, &str)> =
            key.key().labels().map(|l| (l.key(), l.value())).collect();
        let matches = key.key().name() == name
            && labels.iter().all(|l| key_labels.contains(l))
            && key_labels.len() == labels.len();
        matches.then_some(value)
    })
}
