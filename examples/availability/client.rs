//! The clients: one HTTP client over hyper, wrapped three ways.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State, Transition};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::{Backoff, HttpPolicy, Jitter, RetryBudget, RetryLayer};
use steadfast::timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};
use tower_http::classify::ServerErrorsAsFailures;

use crate::scenario::{MAX_IN_FLIGHT, SEED};

/// The request every client sends: a GET with no body (so it is `Clone`, and retry can resend it).
pub(crate) type Req = Request<Empty<Bytes>>;
/// The response every client returns: the body read in full.
pub(crate) type Res = Response<Bytes>;

/// The header on the steadfast client's fallback answers.
pub(crate) const FALLBACK_HEADER: &str = "x-fallback";

/// A plain HTTP/1 client: hyper-util's pooled client, with the body read in full so that the
/// connection goes back to the pool.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpClient {
    pub(crate) fn new() -> Self {
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build_http();
        Self { inner }
    }
}

impl Service<Req> for HttpClient {
    type Response = Res;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let response = self.inner.request(request);
        Box::pin(async move {
            let (parts, body) = response.await?.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// tower's retry with a naive policy: any error or 5xx is retried at once, up to 5 attempts,
/// with no backoff and no budget.
#[derive(Clone, Debug)]
pub(crate) struct NaivePolicy {
    retries_left: u32,
}

impl NaivePolicy {
    /// 5 attempts = 4 retries.
    pub(crate) fn new() -> Self {
        Self { retries_left: 4 }
    }
}

impl tower::retry::Policy<Req, Res, BoxError> for NaivePolicy {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _request: &mut Req,
        result: &mut Result<Res, BoxError>,
    ) -> Option<Self::Future> {
        let failed = match result {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        if failed && self.retries_left > 0 {
            self.retries_left -= 1;
            Some(std::future::ready(()))
        } else {
            None
        }
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// A 5xx response that retry gave up on, as an error, so that the fallback answers it.
#[derive(Debug)]
pub(crate) struct ServerError(pub(crate) StatusCode);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server error: {}", self.0)
    }
}

impl std::error::Error for ServerError {}

/// The breaker's transitions, with their offsets from the start of the run.
pub(crate) type Transitions = Arc<Mutex<Vec<(Duration, Transition)>>>;

/// tower's retry with [`NaivePolicy`] around `client`.
pub(crate) fn naive_stack<S>(client: S) -> tower::retry::Retry<NaivePolicy, S>
where
    S: Service<Req, Response = Res, Error = BoxError> + Clone,
{
    ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(NaivePolicy::new()))
        .service(client)
}

/// The steadfast stack around `client`, outermost first: fallback → retry (budget) → overall
/// timeout → circuit breaker → bulkhead → attempt timeout → `client`. Returns the breaker's
/// layer too, and where its transitions are written down.
pub(crate) fn steadfast_stack<S>(
    start: Instant,
    client: S,
) -> Result<
    (
        impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + 'static,
        CircuitBreakerLayer<ServerErrorsAsFailures>,
        Transitions,
    ),
    BoxError,
>
where
    S: Service<Req, Response = Res, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let transitions = Transitions::default();
    let log = Arc::clone(&transitions);
    let breaker = CircuitBreakerLayer::builder()
        .name("backend")
        // 5xx responses are failures, in tower-http's words.
        .classify(ServerErrorsAsFailures::new())
        // Opens when half of the last 100 attempts failed (the backend's usual 20 % does not
        // open it) ...
        .sliding_window(SlidingWindow::Count(100))
        .minimum_calls(20)
        .failure_rate_threshold(0.5)
        // ... fails fast for a second, then lets 5 probes judge the backend.
        .wait_in_open(Duration::from_secs(1))
        .half_open_calls(5)
        .seed(SEED)
        .on_transition(move |transition: &Transition| {
            if let Ok(mut log) = log.lock() {
                log.push((start.elapsed(), *transition));
            }
        })
        .build()?;

    let retry = RetryLayer::builder()
        .name("backend")
        .policy(HttpPolicy::new()) // errors, 429, 502, 503, 504 on GET
        .max_attempts(3) // 3 attempts = 2 retries
        .backoff(
            Backoff::exponential(Duration::from_millis(10))
                .jitter(Jitter::Full)
                .max_delay(Duration::from_millis(100)),
        )
        // At most 0.3 retries per request, plus 10 per second, over the last 10 s: room for the
        // backend's usual failures (about 0.3 retries per request here), and a cap of about
        // 1.35 attempts per request in an outage, until the breaker stops them.
        .budget(RetryBudget::new(0.3, 10, Duration::from_secs(10)))
        .seed(SEED)
        .build()?;

    let service = ServiceBuilder::new()
        // A stale answer from a cache, marked so that the driver can count it.
        .layer(FallbackLayer::new(|_: BoxError| {
            let mut response = Response::new(Bytes::from_static(b"item 42: in stock (cached)"));
            response
                .headers_mut()
                .insert(FALLBACK_HEADER, HeaderValue::from_static("1"));
            Ok::<_, BoxError>(response)
        }))
        // A 5xx that retry gave up on is a failure for the fallback too.
        .map_result(|result: Result<Res, BoxError>| match result {
            Ok(response) if response.status().is_server_error() => {
                Err(ServerError(response.status()).into())
            }
            other => other,
        })
        .layer(retry)
        .layer(TimeoutLayer::new(Duration::from_millis(300)))
        .layer(breaker.clone())
        .layer(
            BulkheadLayer::builder()
                .name("backend")
                .max_concurrent_calls(32)
                .max_wait(Duration::from_millis(20))
                .build()?,
        )
        .layer(TimeoutLayer::new(Duration::from_millis(150)))
        .service(client);
    Ok((service, breaker, transitions))
}

/// Whether the breaker rejects calls in `state`.
pub(crate) fn is_open(state: State) -> bool {
    matches!(state, State::Open | State::ForcedOpen)
}
