//! tonic end to end over loopback: deadline propagation through a gRPC service that calls
//! another, and the steadfast stack on the client side of a tonic `Channel`.
//!
//! A test client calls service A with a deadline; A's handler calls service B through a tonic
//! `Channel` wrapped in the steadfast client stack. A reads its deadline with
//! [`InboundDeadlineLayer`]; its client to B writes the time left with
//! [`PropagateDeadlineLayer`], under the retry, timeout and breaker layers so that each attempt
//! carries the deadline as the stack narrowed it. B records every `grpc-timeout` it receives.
//!
//! Everything is real tonic (a `tonic::transport::Server` per service on `127.0.0.1:0`, a
//! `Channel` per client) with no protobuf: [`Utf8`] is a hand-written `tonic::codec::Codec`
//! whose messages are UTF-8 strings, and the handlers are `tower::service_fn`s behind
//! `tonic::server::Grpc::unary`. Real sockets need real time, so the deadlines are generous
//! (5 s) and the assertions are inequalities; every test runs under an overall
//! [`BOUND`] and its servers shut down when it ends.

#![cfg(all(
    feature = "tonic",
    feature = "http",
    feature = "timeout",
    feature = "retry",
    feature = "circuit-breaker"
))]

#[path = "support/utf8_codec.rs"]
mod utf8_codec;
use utf8_codec::Utf8;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::PathAndQuery;
use steadfast::BoxError;
use steadfast::circuit_breaker::CircuitOpen;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use steadfast::deadline::{
    Deadline, InboundDeadlineLayer, PropagateDeadlineLayer, parse_grpc_timeout,
};
use steadfast::grpc::into_status;
use steadfast::retry::{Backoff, GrpcPolicy, RetryLayer};
use steadfast::stack::ResilienceStack;
use steadfast::timeout::{Elapsed, ElapsedKind};
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_http::classify::GrpcErrorsAsFailures;

/// The deadline the test client gives its call to A.
const CLIENT_DEADLINE: Duration = Duration::from_secs(5);

/// Every test finishes within this, or fails.
const BOUND: Duration = Duration::from_secs(30);

/// The one method each service has (the servers route every path to it).
const ECHO: &str = "/steadfast.test.Echo/Call";

// ---------------------------------------------------------------------------------------------
// The servers.

/// A gRPC client's view of a service: what `tonic::client::Grpc` drives. Errors are `Status`
/// (the stack's error mapped with `into_status`), so tonic hands them on unchanged.
pub(crate) type ClientService = BoxCloneService<http::Request<Body>, http::Response<Body>, Status>;

/// Stops a server when dropped.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

/// Serves `service` with tonic's server on `127.0.0.1:0` until the returned handle is dropped.
pub(crate) async fn serve<S>(service: S) -> Running
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(Server::builder().serve_with_incoming_shutdown(
        service,
        TcpIncoming::from(listener),
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        _shutdown: shutdown,
    }
}

/// A lazily connected channel to `addr`.
pub(crate) fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect_lazy()
}

/// A tonic service with one unary method, answered by `handler`.
pub(crate) fn grpc_service<F, Fut>(
    handler: F,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static
where
    F: Fn(tonic::Request<String>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<String>, Status>> + Send + 'static,
{
    service_fn(move |request: http::Request<Body>| {
        let handler = handler.clone();
        async move {
            let mut grpc = tonic::server::Grpc::new(Utf8);
            Ok::<_, Infallible>(grpc.unary(service_fn(handler), request).await)
        }
    })
}

/// Calls the echo method of `service` with `message`.
pub(crate) async fn call(service: ClientService, message: &str) -> Result<String, Status> {
    let mut client = tonic::client::Grpc::new(service);
    client.ready().await?;
    let response = client
        .unary(
            tonic::Request::new(message.to_owned()),
            PathAndQuery::from_static(ECHO),
            Utf8,
        )
        .await?;
    Ok(response.into_inner())
}

/// What B saw.
#[derive(Debug, Default)]
pub(crate) struct BState {
    /// The `grpc-timeout` of each call, as received.
    pub(crate) timeouts: Mutex<Vec<Option<String>>>,
    /// How many of the first calls to answer with `UNAVAILABLE`.
    pub(crate) fail_first: AtomicUsize,
}

impl BState {
    pub(crate) fn calls(&self) -> usize {
        self.timeouts.lock().unwrap().len()
    }

    /// The `grpc-timeout` of each call, parsed.
    pub(crate) fn received(&self) -> Vec<Option<Duration>> {
        let timeouts = self.timeouts.lock().unwrap();
        timeouts
            .iter()
            .map(|value| {
                value
                    .as_deref()
                    .map(|value| parse_grpc_timeout(value).expect("a valid grpc-timeout"))
            })
            .collect()
    }
}

/// Service B: records the `grpc-timeout` it receives and echoes the message (or fails with
/// `UNAVAILABLE` while `fail_first` lasts).
pub(crate) fn b_service(
    state: Arc<BState>,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    grpc_service(move |request: tonic::Request<String>| {
        let state = Arc::clone(&state);
        async move {
            let timeout = request
                .metadata()
                .get("grpc-timeout")
                .map(|value| value.to_str().expect("ASCII").to_owned());
            state.timeouts.lock().unwrap().push(timeout);
            let failing = state
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(Status::unavailable("B is shedding load"));
            }
            Ok(tonic::Response::new(format!("B({})", request.into_inner())))
        }
    })
}

/// Serves [`b_service`] on loopback.
pub(crate) async fn start_b(state: Arc<BState>) -> Running {
    serve(b_service(state)).await
}

/// What A saw.
#[derive(Debug, Default)]
pub(crate) struct AState {
    /// How long A's handler works before it calls B.
    pub(crate) work: Duration,
    /// The time A had left (`Deadline::current()`) as it called B, per call.
    pub(crate) left: Mutex<Vec<Option<Duration>>>,
    /// What each call to B gave A.
    pub(crate) from_b: Mutex<Vec<Result<String, Status>>>,
}

impl AState {
    /// A handler that works for `work` (a sleep) before it calls B.
    pub(crate) fn working(work: Duration) -> Self {
        Self {
            work,
            ..Self::default()
        }
    }

    /// The error of A's one call to B.
    pub(crate) fn error_from_b(&self) -> Status {
        let from_b = self.from_b.lock().unwrap();
        assert_eq!(from_b.len(), 1, "A called B once");
        from_b[0].clone().unwrap_err()
    }
}

/// Service A: reads its deadline from `grpc-timeout` (less `safety_margin`), works for
/// `state.work`, and calls B through `to_b` inside its handler.
pub(crate) fn a_service(
    state: Arc<AState>,
    to_b: ClientService,
    safety_margin: Duration,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    let handler = grpc_service(move |request: tonic::Request<String>| {
        let state = Arc::clone(&state);
        let to_b = to_b.clone();
        async move {
            if !state.work.is_zero() {
                tokio::time::sleep(state.work).await;
            }
            let left = Deadline::current().map(|deadline| deadline.remaining());
            state.left.lock().unwrap().push(left);
            let result = call(to_b, &request.into_inner()).await;
            state.from_b.lock().unwrap().push(result.clone());
            Ok(tonic::Response::new(format!("A({})", result?)))
        }
    });
    ServiceBuilder::new()
        .layer(InboundDeadlineLayer::new().safety_margin(safety_margin))
        .service(handler)
}

/// Serves [`a_service`] on loopback.
pub(crate) async fn start_a(
    state: Arc<AState>,
    to_b: ClientService,
    safety_margin: Duration,
) -> Running {
    serve(a_service(state, to_b, safety_margin)).await
}

// ---------------------------------------------------------------------------------------------
// The clients.

/// A channel (or an in-process service) with deadline propagation only: `into_status` ∘
/// `PropagateDeadline` ∘ the service.
pub(crate) fn propagating<S>(channel: S) -> ClientService
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneService::new(
        ServiceBuilder::new()
            .map_err(into_status)
            .layer(PropagateDeadlineLayer::new())
            .service(channel),
    )
}

/// The steadfast client stack on a channel: retry (gRPC policy, replayed body) → overall
/// timeout → breaker → attempt timeout → `PropagateDeadline` → the channel, errors mapped with
/// `into_status`.
///
/// `PropagateDeadline` is innermost so that each attempt writes the deadline as the timeouts
/// narrowed it, at the time it is sent. The retry layer's replay body is turned back into
/// tonic's `Body`, the only body a `Channel` takes.
pub(crate) fn stacked<S>(
    channel: S,
    breaker: CircuitBreakerLayer<GrpcErrorsAsFailures>,
    attempt_timeout: Duration,
    max_attempts: u32,
) -> ClientService
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let retry = RetryLayer::builder()
        .policy(GrpcPolicy::new())
        .replay_body(64 * 1024)
        .max_attempts(max_attempts)
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .expect("a valid retry layer");
    let stack = ResilienceStack::new()
        .retry(retry)
        .overall_timeout(Duration::from_secs(20))
        .circuit_breaker(breaker)
        .attempt_timeout(attempt_timeout);
    BoxCloneService::new(
        ServiceBuilder::new()
            .map_err(into_status)
            .layer(stack)
            .layer(PropagateDeadlineLayer::new())
            .map_request(|request: http::Request<_>| request.map(Body::new))
            .service(channel),
    )
}

/// A breaker that stays closed in these tests.
pub(crate) fn lenient_breaker() -> CircuitBreakerLayer<GrpcErrorsAsFailures> {
    CircuitBreakerLayer::builder()
        .classify(GrpcErrorsAsFailures::new())
        .build()
        .expect("a valid breaker")
}

/// Calls A on loopback from the test client with `deadline` (none: no deadline), through a
/// propagating channel.
pub(crate) async fn call_a(a: &Running, deadline: Option<Duration>) -> Result<String, Status> {
    call_with(propagating(channel(a.addr)), deadline).await
}

/// Calls `client` with `deadline` (none: no deadline).
pub(crate) async fn call_with(
    client: ClientService,
    deadline: Option<Duration>,
) -> Result<String, Status> {
    match deadline {
        Some(timeout) => Deadline::after(timeout).scope(call(client, "hi")).await,
        None => call(client, "hi").await,
    }
}

/// Runs `test` under [`BOUND`].
pub(crate) async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(BOUND, test)
        .await
        .expect("the test finished within its bound");
}

// ---------------------------------------------------------------------------------------------
// Deadline propagation

async fn b_receives_at_most_what_a_had_left(to_b: fn(Channel) -> ClientService) {
    let b_state = Arc::new(BState::default());
    let b = start_b(Arc::clone(&b_state)).await;
    let a_state = Arc::new(AState::default());
    let a = start_a(Arc::clone(&a_state), to_b(channel(b.addr)), Duration::ZERO).await;

    let answer = call_a(&a, Some(CLIENT_DEADLINE)).await.expect("an answer");
    assert_eq!(answer, "A(B(hi))");

    let left = a_state.left.lock().unwrap().clone();
    assert_eq!(left.len(), 1);
    let left = left[0].expect("A has a deadline");
    assert!(!left.is_zero() && left <= CLIENT_DEADLINE, "A had {left:?}");

    let received = b_state.received();
    assert_eq!(received.len(), 1, "B is called once");
    let received = received[0].expect("B receives a grpc-timeout");
    assert!(!received.is_zero());
    assert!(received <= left, "B received {received:?}, A had {left:?}");
}

#[tokio::test]
async fn b_receives_no_more_than_a_had_left_through_propagation_alone() {
    bounded(b_receives_at_most_what_a_had_left(propagating)).await;
}

#[tokio::test]
async fn b_receives_no_more_than_a_had_left_through_the_stack() {
    bounded(b_receives_at_most_what_a_had_left(|channel| {
        stacked(channel, lenient_breaker(), Duration::from_secs(30), 2)
    }))
    .await;
}

#[tokio::test]
async fn the_attempt_timeout_narrows_what_b_receives() {
    bounded(async {
        let attempt = Duration::from_secs(1);
        let b_state = Arc::new(BState::default());
        let b = start_b(Arc::clone(&b_state)).await;
        let a_state = Arc::new(AState::default());
        let to_b = stacked(channel(b.addr), lenient_breaker(), attempt, 2);
        let a = start_a(Arc::clone(&a_state), to_b, Duration::ZERO).await;

        call_a(&a, Some(CLIENT_DEADLINE)).await.expect("an answer");

        let left = a_state.left.lock().unwrap()[0].expect("A has a deadline");
        assert!(left > attempt, "A had {left:?}");
        let received = b_state.received()[0].expect("B receives a grpc-timeout");
        assert!(
            !received.is_zero() && received <= attempt,
            "B received {received:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn without_a_deadline_none_is_sent_on() {
    bounded(async {
        let b_state = Arc::new(BState::default());
        let b = start_b(Arc::clone(&b_state)).await;
        let a_state = Arc::new(AState::default());
        let a = start_a(
            Arc::clone(&a_state),
            propagating(channel(b.addr)),
            Duration::ZERO,
        )
        .await;

        assert_eq!(call_a(&a, None).await.expect("an answer"), "A(B(hi))");

        assert_eq!(*a_state.left.lock().unwrap(), [None]);
        assert_eq!(*b_state.timeouts.lock().unwrap(), [None]);
    })
    .await;
}

async fn a_passed_deadline_is_never_sent_on(to_b: fn(Channel) -> ClientService) {
    let b_state = Arc::new(BState::default());
    let b = start_b(Arc::clone(&b_state)).await;
    let a_state = Arc::new(AState::default());
    // A safety margin longer than the client's deadline: A's deadline has passed on arrival.
    let margin = CLIENT_DEADLINE + Duration::from_secs(1);
    let a = start_a(Arc::clone(&a_state), to_b(channel(b.addr)), margin).await;

    let status = call_a(&a, Some(CLIENT_DEADLINE)).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    assert_eq!(*a_state.left.lock().unwrap(), [Some(Duration::ZERO)]);
    assert_eq!(b_state.calls(), 0, "B is never called");
    assert_inherited_deadline(&a_state.error_from_b());
}

/// `status` is `DEADLINE_EXCEEDED`, made by `into_status` from an `Elapsed` of kind
/// `InheritedDeadline`.
#[track_caller]
pub(crate) fn assert_inherited_deadline(status: &Status) {
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let elapsed = std::error::Error::source(status)
        .and_then(|source| source.downcast_ref::<Elapsed>())
        .expect("the status keeps the Elapsed as its source");
    assert_eq!(elapsed.kind(), ElapsedKind::InheritedDeadline);
}

#[tokio::test]
async fn a_passed_deadline_is_never_sent_on_through_propagation_alone() {
    bounded(a_passed_deadline_is_never_sent_on(propagating)).await;
}

#[tokio::test]
async fn a_passed_deadline_is_never_sent_on_through_the_stack() {
    bounded(a_passed_deadline_is_never_sent_on(|channel| {
        stacked(channel, lenient_breaker(), Duration::from_secs(30), 2)
    }))
    .await;
}

// ---------------------------------------------------------------------------------------------
// The stack on a Channel

#[tokio::test]
async fn retry_on_a_channel_resends_an_unavailable_call_with_a_fresh_grpc_timeout() {
    bounded(async {
        let b_state = Arc::new(BState::default());
        b_state.fail_first.store(1, Ordering::SeqCst);
        let b = start_b(Arc::clone(&b_state)).await;
        let a_state = Arc::new(AState::default());
        let to_b = stacked(
            channel(b.addr),
            lenient_breaker(),
            Duration::from_secs(30),
            2,
        );
        let a = start_a(Arc::clone(&a_state), to_b, Duration::ZERO).await;

        let answer = call_a(&a, Some(CLIENT_DEADLINE)).await.expect("an answer");
        assert_eq!(answer, "A(B(hi))", "the replayed body reached B");

        let left = a_state.left.lock().unwrap()[0].expect("A has a deadline");
        let received = b_state.received();
        assert_eq!(received.len(), 2, "one call and one retry");
        let first = received[0].expect("the first attempt carries grpc-timeout");
        let second = received[1].expect("the retry carries grpc-timeout");
        assert!(first <= left, "B first received {first:?}, A had {left:?}");
        assert!(second <= first, "the retry's {second:?} after {first:?}");
    })
    .await;
}

#[tokio::test]
async fn a_breaker_on_a_channel_opens_on_unavailable_and_stops_calling_b() {
    bounded(async {
        let b_state = Arc::new(BState::default());
        b_state.fail_first.store(usize::MAX, Ordering::SeqCst);
        let b = start_b(Arc::clone(&b_state)).await;
        let breaker = CircuitBreakerLayer::builder()
            .classify(GrpcErrorsAsFailures::new())
            .sliding_window(SlidingWindow::Count(4))
            .minimum_calls(4)
            .failure_rate_threshold(0.5)
            .wait_in_open(Duration::from_secs(60))
            .build()
            .expect("a valid breaker");
        // One attempt per call, so that each call is one outcome for the breaker.
        let to_b = stacked(channel(b.addr), breaker.clone(), Duration::from_secs(30), 1);
        let a_state = Arc::new(AState::default());
        let a = start_a(Arc::clone(&a_state), to_b, Duration::ZERO).await;

        for n in 1..=4 {
            let status = call_a(&a, Some(CLIENT_DEADLINE)).await.unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "call {n}: {status:?}");
            assert_eq!(status.message(), "B is shedding load", "call {n}");
        }
        assert_eq!(b_state.calls(), 4);
        assert_eq!(breaker.state(), State::Open);

        let status = call_a(&a, Some(CLIENT_DEADLINE)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let pushback = status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .expect("an open breaker tells when to come back")
            .to_str()
            .expect("ASCII")
            .parse::<u64>()
            .expect("milliseconds");
        assert!(pushback > 0 && pushback <= 60_000, "pushback {pushback} ms");
        assert_eq!(b_state.calls(), 4, "an open breaker does not call B");
        let from_b = a_state.from_b.lock().unwrap();
        assert_eq!(from_b.len(), 5);
        let status = from_b[4].as_ref().unwrap_err();
        assert!(
            std::error::Error::source(status)
                .is_some_and(|source| source.downcast_ref::<CircuitOpen>().is_some()),
            "A's fifth call was rejected by the breaker: {status:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_connection_on_the_channel_reaches_a_as_unavailable() {
    bounded(async {
        // A port that is bound but not listening: connecting to it is refused, and no other
        // test can be given it while the socket lives.
        let reserved = tokio::net::TcpSocket::new_v4().expect("a socket");
        reserved
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bind a loopback port");
        let b_addr = reserved.local_addr().expect("a bound address");
        let to_b = stacked(
            channel(b_addr),
            lenient_breaker(),
            Duration::from_secs(30),
            1,
        );
        let a_state = Arc::new(AState::default());
        let a = start_a(Arc::clone(&a_state), to_b, Duration::ZERO).await;

        let status = call_a(&a, Some(CLIENT_DEADLINE)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        // The channel's own error, passed through the stack boxed and mapped by tonic's rules.
        let status = a_state.error_from_b();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            std::error::Error::source(&status)
                .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some()),
            "{status:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The same chain in process, on paused time: exact values and the deadline's boundaries.
//
// The test client, A and B are the same tonic services as above, called without sockets (each
// client drives the next service directly), so tokio's paused clock is the only clock and the
// `grpc-timeout` values are exact.

/// Calls A in process with the client deadline; A works for `work`, then calls B through
/// `to_b(B)`. Returns the answer, A's state and B's state.
async fn in_process(
    work: Duration,
    to_b: fn(ClientService) -> ClientService,
) -> (Result<String, Status>, Arc<AState>, Arc<BState>) {
    let b_state = Arc::new(BState::default());
    let b = BoxCloneService::new(b_service(Arc::clone(&b_state)).map_err(|never| match never {}));
    let a_state = Arc::new(AState::working(work));
    let a = a_service(Arc::clone(&a_state), to_b(b), Duration::ZERO);
    let answer = call_with(propagating(a), Some(CLIENT_DEADLINE)).await;
    (answer, a_state, b_state)
}

fn bare(b: ClientService) -> ClientService {
    propagating(b)
}

fn full_stack(b: ClientService) -> ClientService {
    stacked(b, lenient_breaker(), Duration::from_secs(30), 2)
}

#[tokio::test(start_paused = true)]
async fn in_process_b_receives_exactly_what_a_has_left() {
    const MS: Duration = Duration::from_millis(1);
    for to_b in [bare as fn(_) -> _, full_stack] {
        for work in [Duration::ZERO, Duration::from_secs(1), CLIENT_DEADLINE - MS] {
            let (answer, a_state, b_state) = in_process(work, to_b).await;
            assert_eq!(answer.expect("an answer"), "A(B(hi))");
            let left = CLIENT_DEADLINE - work;
            assert_eq!(*a_state.left.lock().unwrap(), [Some(left)], "work {work:?}");
            assert_eq!(b_state.received(), [Some(left)], "work {work:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn in_process_the_client_sends_the_deadline_in_the_finest_unit() {
    let (_, _, b_state) = in_process(Duration::from_millis(1), bare).await;
    // 4.999 s: 4 999 000 000 ns does not fit 8 digits; 4 999 000 µs does.
    assert_eq!(
        *b_state.timeouts.lock().unwrap(),
        [Some("4999000u".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn in_process_at_and_after_the_deadline_b_is_never_called() {
    const TICK: Duration = Duration::from_millis(1);
    for to_b in [bare as fn(_) -> _, full_stack] {
        for work in [CLIENT_DEADLINE, CLIENT_DEADLINE + TICK] {
            let (answer, a_state, b_state) = in_process(work, to_b).await;
            assert_eq!(answer.unwrap_err().code(), Code::DeadlineExceeded);
            assert_eq!(*a_state.left.lock().unwrap(), [Some(Duration::ZERO)]);
            assert_eq!(b_state.calls(), 0, "work {work:?}: B is never called");
            assert_inherited_deadline(&a_state.error_from_b());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn in_process_the_attempt_timeout_narrows_what_b_receives() {
    let (answer, a_state, b_state) = in_process(Duration::ZERO, |b| {
        stacked(b, lenient_breaker(), Duration::from_secs(1), 2)
    })
    .await;
    assert_eq!(answer.expect("an answer"), "A(B(hi))");
    assert_eq!(*a_state.left.lock().unwrap(), [Some(CLIENT_DEADLINE)]);
    assert_eq!(b_state.received(), [Some(Duration::from_secs(1))]);
}

#[tokio::test(start_paused = true)]
async fn in_process_expired_callers_do_not_open_the_breaker_to_a_healthy_b() {
    let breaker = CircuitBreakerLayer::builder()
        .classify(GrpcErrorsAsFailures::new())
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .expect("a valid breaker");
    let b_state = Arc::new(BState::default());
    let b = BoxCloneService::new(b_service(Arc::clone(&b_state)).map_err(|never| match never {}));
    // The breaker over an attempt timeout, without an overall timeout above it (which would
    // fail the call before it reaches the breaker).
    let to_b = BoxCloneService::new(
        ServiceBuilder::new()
            .map_err(into_status)
            .layer(breaker.clone())
            .layer(steadfast::timeout::TimeoutLayer::new(Duration::from_secs(
                30,
            )))
            .layer(PropagateDeadlineLayer::new())
            .service(b),
    );
    // A's work takes its whole deadline: each call to B is failed before it is sent.
    let a_state = Arc::new(AState::working(CLIENT_DEADLINE));
    let a = a_service(Arc::clone(&a_state), to_b, Duration::ZERO);
    for _ in 0..4 {
        let status = call_with(propagating(a.clone()), Some(CLIENT_DEADLINE))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
    }
    assert_eq!(b_state.calls(), 0, "B is never called");
    assert_eq!(breaker.state(), State::Closed, "B never failed");
}
