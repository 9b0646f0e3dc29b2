//! The clients: one HTTP client over hyper, wrapped three ways; and the same resilient stack
//! over a pool of replicas.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State, Transition};
use steadfast::fallback::FallbackLayer;
use steadfast::pool::{Endpoint, Pool};
use steadfast::retry::{Backoff, HttpPolicy, Jitter, RetryBudget, RetryLayer};
use steadfast::timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::classify::ServerErrorsAsFailures;

use crate::backend::CallLog;
use crate::scenario::{HEALTH_INTERVAL, MAX_IN_FLIGHT, OUTAGE_END, SEED};

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

/// The client of the pool's health check: hyper-util's client as it is (the probe reads the
/// body itself).
pub(crate) fn probe_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
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
    // 3 attempts = 2 retries, all to the one backend.
    resilient("backend", 3, start, attempt_timeout().layer(client))
}

/// How long one attempt at one backend (or replica) may take: 150 ms cuts a latency spike, so
/// that retry sends the request again.
fn attempt_timeout() -> TimeoutLayer {
    TimeoutLayer::new(Duration::from_millis(150))
}

/// The layers above the backend, or above the pool, outermost first: fallback → retry (budget,
/// `max_attempts`) → overall timeout → circuit breaker → bulkhead → `inner`. `name` labels their
/// telemetry.
fn resilient<S>(
    name: &'static str,
    max_attempts: u32,
    start: Instant,
    inner: S,
) -> Result<
    (
        impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + 'static,
        CircuitBreakerLayer<ServerErrorsAsFailures>,
        Transitions,
    ),
    BoxError,
>
where
    S: Service<Req, Response = Res> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let transitions = Transitions::default();
    let log = Arc::clone(&transitions);
    let breaker = CircuitBreakerLayer::builder()
        .name(name)
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
        .name(name)
        .policy(HttpPolicy::new()) // errors, 429, 502, 503, 504 on GET
        .max_attempts(max_attempts)
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
                .name(name)
                .max_concurrent_calls(32)
                .max_wait(Duration::from_millis(20))
                .build()?,
        )
        .service(inner);
    Ok((service, breaker, transitions))
}

/// What the pool's client saw of one replica: the calls it sent there, per bucket, and the
/// first success of a call sent after the outage.
#[derive(Debug)]
pub(crate) struct ReplicaLog {
    /// Calls the pool sent to the replica (refused and failed ones included), per bucket.
    pub(crate) sent: CallLog,
    /// When the first call sent at or after the end of the outage succeeded, in ms from the
    /// start of the run (`u64::MAX`: none yet).
    first_success_after_outage: AtomicU64,
    start: Instant,
}

impl ReplicaLog {
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            sent: CallLog::new(start),
            first_success_after_outage: AtomicU64::new(u64::MAX),
            start,
        }
    }

    fn succeeded(&self, sent: Duration) {
        if sent >= OUTAGE_END {
            let at = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.first_success_after_outage
                .fetch_min(at, Ordering::Relaxed);
        }
    }

    /// From the end of the outage to the first success of a call sent after it.
    pub(crate) fn back_after(&self) -> Option<Duration> {
        match self.first_success_after_outage.load(Ordering::Relaxed) {
            u64::MAX => None,
            at => Some(Duration::from_millis(at).saturating_sub(OUTAGE_END)),
        }
    }
}

/// A pool endpoint: `client` aimed at one replica (the request's path kept, its authority
/// replaced), its calls written down in `log`.
#[derive(Clone, Debug)]
pub(crate) struct Pinned<S> {
    client: S,
    authority: String,
    log: Arc<ReplicaLog>,
}

impl<S> Pinned<S> {
    pub(crate) fn new(client: S, port: u16, log: Arc<ReplicaLog>) -> Self {
        Self {
            client,
            authority: format!("127.0.0.1:{port}"),
            log,
        }
    }
}

impl<S> Service<Req> for Pinned<S>
where
    S: Service<Req, Response = Res, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Res;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        match Uri::builder()
            .scheme("http")
            .authority(self.authority.as_str())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => *request.uri_mut() = uri,
            Err(error) => return Box::pin(std::future::ready(Err(error.into()))),
        }
        self.log.sent.hit();
        let sent = self.log.start.elapsed();
        let log = Arc::clone(&self.log);
        let response = self.client.call(request);
        Box::pin(async move {
            let response = response.await?;
            if response.status().is_success() {
                log.succeeded(sent);
            }
            Ok(response)
        })
    }
}

/// A replica of the pool: its name (the pool's key) and the service that reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Replica<S> {
    pub(crate) name: &'static str,
    pub(crate) service: S,
}

/// The pool: P2C over the replicas, passive ejection after 5 failures (5xx or errors) in a row
/// or a fifth of the last 50, an active health check with `probe`, each endpoint under the
/// attempt timeout.
pub(crate) fn pool<S, P, F>(
    replicas: Vec<Replica<S>>,
    probe: P,
) -> Result<Pool<&'static str, steadfast::timeout::Timeout<S>, ServerErrorsAsFailures>, BoxError>
where
    S: Service<Req, Response = Res, Error = BoxError> + Clone + Send + Sync + 'static,
    S::Future: Send,
    P: Fn(&'static str) -> F + Send + Sync + 'static,
    F: Future<Output = bool> + Send + 'static,
{
    let pool = Pool::builder()
        .name("replicas")
        .classify(ServerErrorsAsFailures::new())
        // Envoy's default: 5 failures in a row (the 20 % replica rarely has that many) ...
        .consecutive_failures(5)
        // ... and Envoy's failure-percentage ejection, which catches the 20 % replica: a fifth
        // of its last 50 calls failed (a healthy one with its 5 % of latency spikes almost
        // never has that many).
        .failure_rate(0.2, 50)
        // Short, because the health check keeps a dead replica out for as long as it is dead;
        // the ejection only covers the time until the health check has seen it.
        .base_ejection_time(Duration::from_secs(1))
        .max_ejection_time(Duration::from_secs(10))
        // Two of three at most: one replica can carry the whole load. With one of three, the
        // dead replica could not be ejected while `b` was (only the health check took it out,
        // half a second later, with tens of calls sent to it meanwhile).
        .max_ejected_fraction(0.67)
        // One replica of three can carry the whole load: no panic routing unless none can.
        .panic_threshold(0.3)
        .health_check(HEALTH_INTERVAL, probe)
        .unhealthy_threshold(2)
        .healthy_threshold(2)
        // Its draws seeded too, so that a run on paused time repeats exactly.
        .seed(SEED)
        .build(replicas.into_iter().map(|replica| {
            Endpoint::new(replica.name, attempt_timeout().layer(replica.service))
        }))?;
    Ok(pool)
}

/// The steadfast stack over a pool: fallback → retry (budget) → overall timeout → circuit
/// breaker → bulkhead → **pool** → attempt timeout → each replica.
pub(crate) fn pool_stack<S, C>(
    start: Instant,
    pool: Pool<&'static str, S, C>,
) -> Result<
    (
        impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + 'static,
        CircuitBreakerLayer<ServerErrorsAsFailures>,
        Transitions,
    ),
    BoxError,
>
where
    Pool<&'static str, S, C>:
        Service<Req, Response = Res, Error = BoxError> + Clone + Send + 'static,
    <Pool<&'static str, S, C> as Service<Req>>::Future: Send,
{
    // 4 attempts = 3 retries: one at each replica (each retry goes to a replica the request has
    // not tried), and one more for the rare request that meets a latency spike or an error at
    // all three.
    resilient("replicas", 4, start, pool)
}

/// Whether the breaker rejects calls in `state`.
pub(crate) fn is_open(state: State) -> bool {
    matches!(state, State::Open | State::ForcedOpen)
}
