//! End-to-end tests of the server side: a real axum server on loopback, with the crate's stack on
//! its routes, driven by a real HTTP client (hyper-util's legacy client) over TCP.
//!
//! Each test binds `127.0.0.1:0`, serves a router on a task of the test's runtime (it stops when
//! the runtime does) and sends a bounded number of requests. Real time passes only for socket
//! I/O and for the timeouts under test, which are tiny; no test asserts a wall-clock duration.
//! Every wait on the server is bounded by [`PATIENCE`], so a broken build fails instead of
//! hanging. The last test runs the same kind of server on paused time (the current-thread
//! runtime auto-advances the clock when every task waits), where deadlines, the moment a timeout
//! fires and `Retry-After` are exact, including the breaker's open-state boundary.
//!
//! The stack on each route, outermost first: [`RejectionsAsResponsesLayer`] (rejections become
//! 503 with `Retry-After`, 504, 429) → [`InboundDeadlineLayer`] (reads `grpc-timeout`) → a
//! [`ResilienceStack`] (circuit breaker → bulkhead → attempt timeout) → the handler. Retry and
//! fallback belong on the client side (see `examples/hyper_client.rs`): an axum request body
//! is not `Clone`, and a server should not retry its own handler.

#![cfg(all(
    feature = "http",
    feature = "circuit-breaker",
    feature = "bulkhead",
    feature = "timeout"
))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use steadfast::deadline::{Deadline, InboundDeadlineLayer};
use steadfast::http::{RejectionResponses, RejectionsAsResponsesLayer, handle_error};
use steadfast::stack::ResilienceStack;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tower::{Service, ServiceBuilder};
use tower_http::classify::ServerErrorsAsFailures;

/// The longest any test waits for the server; reached only when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);
/// The same on paused time, where waits cost nothing: far beyond every timer of a test, so
/// that auto-advance reaches it only when something is broken.
const PAUSED_PATIENCE: Duration = Duration::from_secs(24 * 60 * 60);
/// The breaker's wait in the open state: long enough that it cannot close during a test.
const WAIT_IN_OPEN: Duration = Duration::from_secs(600);
/// The attempt timeout of the routes that test timeouts: tiny, so the tests stay fast.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(50);
/// How long a slow handler would take if nobody cut it.
const SLOW_HANDLER: Duration = Duration::from_secs(5);

// ---- the server and the client ---------------------------------------------------------------

/// Serves `app` on an ephemeral loopback port, on a task of the current runtime (it stops when
/// the test's runtime does), and returns the address.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A real HTTP/1 client: hyper-util's pooled legacy client.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    patience: Duration,
}

/// What the client saw: the status, the headers and the body as text.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl HttpClient {
    /// A client that waits at most [`PATIENCE`] for each answer.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        let inner = Client::builder(TokioExecutor::new()).build_http();
        Self {
            inner,
            addr,
            patience: PATIENCE,
        }
    }

    /// A client for a test on paused time: it waits at most [`PAUSED_PATIENCE`].
    pub(crate) fn paused(addr: SocketAddr) -> Self {
        Self {
            patience: PAUSED_PATIENCE,
            ..Self::new(addr)
        }
    }

    /// `GET path`, with the extra headers given, read in full.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Seen {
        let mut request = axum::http::Request::builder().uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).unwrap();
        let exchange = async {
            let (parts, body) = self.inner.request(request).await.unwrap().into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Seen {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8(body.to_vec()).unwrap(),
            }
        };
        tokio::time::timeout(self.patience, exchange)
            .await
            .expect("the server answers")
    }
}

// ---- the stack on the routes -----------------------------------------------------------------

/// The breaker every route of a test shares: 5xx responses and errors are failures; it opens
/// once half of the last 4 calls (at least 4) failed, and stays open for [`WAIT_IN_OPEN`].
pub(crate) fn breaker() -> CircuitBreakerLayer<ServerErrorsAsFailures> {
    CircuitBreakerLayer::builder()
        .name("axum")
        .classify(ServerErrorsAsFailures::new())
        .sliding_window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .wait_in_open(WAIT_IN_OPEN)
        .build()
        .unwrap()
}

/// Applies, to one route, the stack described in the module docs, with the given breaker and
/// bulkhead (clones share their state) and an attempt timeout.
pub(crate) fn resilient(
    route: MethodRouter,
    breaker: &CircuitBreakerLayer<ServerErrorsAsFailures>,
    bulkhead: &BulkheadLayer,
    attempt_timeout: Duration,
    responses: RejectionResponses,
) -> MethodRouter {
    let stack = ResilienceStack::new()
        .circuit_breaker(breaker.clone())
        .bulkhead(bulkhead.clone())
        .attempt_timeout(attempt_timeout);
    route.layer(
        ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::with_responses(responses))
            .layer(InboundDeadlineLayer::new())
            .layer(stack),
    )
}

/// A bulkhead large enough never to reject in tests that are not about it.
pub(crate) fn roomy_bulkhead() -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent_calls(64)
        .build()
        .unwrap()
}

/// Tells, when dropped, whether the handler that held it ran to its end.
pub(crate) struct Finish {
    done: bool,
    report: mpsc::UnboundedSender<bool>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let _ = self.report.send(self.done);
    }
}

/// A handler that takes `takes` and reports (see [`Finish`]) whether it finished.
pub(crate) fn slow(report: mpsc::UnboundedSender<bool>, takes: Duration) -> MethodRouter {
    get(move || {
        let report = report.clone();
        async move {
            // Made inside the future, so that it lives exactly as long as the future does.
            let mut finish = Finish {
                done: false,
                report,
            };
            tokio::time::sleep(takes).await;
            finish.done = true;
            "too late"
        }
    })
}

/// Waits at most `patience` for a [`Finish`] report.
pub(crate) async fn finished(
    reports: &mut mpsc::UnboundedReceiver<bool>,
    patience: Duration,
) -> bool {
    tokio::time::timeout(patience, reports.recv())
        .await
        .expect("the handler reports")
        .expect("a handler holds a sender")
}

/// A handler that answers with the time left before its call's deadline, in milliseconds.
pub(crate) fn time_left() -> MethodRouter {
    get(|| async {
        match Deadline::current() {
            Some(deadline) => deadline.remaining().as_millis().to_string(),
            None => String::from("none"),
        }
    })
}

/// The `Retry-After` header, in seconds.
pub(crate) fn retry_after(seen: &Seen) -> u64 {
    seen.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

// ---- circuit breaker: 503 with Retry-After, one breaker for every route -----------------------

/// Two routes share one breaker: failures of `/flaky` open it, and `/healthy` is then answered
/// 503 with `Retry-After` without reaching its handler, until the breaker is reset by hand.
#[tokio::test]
async fn a_breaker_opened_through_one_route_answers_503_with_retry_after_on_the_other() {
    let breaker = breaker();
    let bulkhead = roomy_bulkhead();
    let healthy_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&healthy_calls);
    let healthy = get(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "healthy" }
    });
    let flaky = get(|| async { StatusCode::INTERNAL_SERVER_ERROR });
    let app = Router::new()
        .route(
            "/healthy",
            resilient(
                healthy,
                &breaker,
                &bulkhead,
                PATIENCE,
                RejectionResponses::new(),
            ),
        )
        .route(
            "/flaky",
            resilient(
                flaky,
                &breaker,
                &bulkhead,
                PATIENCE,
                RejectionResponses::new(),
            ),
        );
    let client = HttpClient::new(serve(app).await);

    let seen = client.get("/healthy", &[]).await;
    assert_eq!(
        (seen.status, seen.body.as_str()),
        (StatusCode::OK, "healthy")
    );

    // 1 success and 3 failures: the window is full and 75 % failed. The outcome is recorded
    // before the response leaves the server, so each state below is exact.
    for expected in [State::Closed, State::Closed, State::Open] {
        let seen = client.get("/flaky", &[]).await;
        assert_eq!(seen.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(breaker.state(), expected);
    }

    // The other route sees the same open breaker: 503, Retry-After, and no call to the handler.
    let seen = client.get("/healthy", &[]).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    let after = retry_after(&seen);
    // The time left in the open state, rounded up: at most `WAIT_IN_OPEN`; far above a test's
    // run time, so this holds on any machine.
    assert!(
        (WAIT_IN_OPEN.as_secs() - 60..=WAIT_IN_OPEN.as_secs()).contains(&after),
        "Retry-After: {after}"
    );
    assert_eq!(seen.body, "");
    assert_eq!(healthy_calls.load(Ordering::SeqCst), 1);

    let seen = client.get("/flaky", &[]).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(seen.headers.contains_key("retry-after"));

    // The layer the test kept controls the breaker on the server.
    breaker.reset();
    let seen = client.get("/healthy", &[]).await;
    assert_eq!(
        (seen.status, seen.body.as_str()),
        (StatusCode::OK, "healthy")
    );
    assert_eq!(healthy_calls.load(Ordering::SeqCst), 2);
}

/// A breaker forced open by hand rejects every route that carries a clone of it; one route
/// without it is untouched.
#[tokio::test]
async fn a_forced_open_breaker_rejects_only_the_routes_that_carry_it() {
    let breaker = breaker();
    let bulkhead = roomy_bulkhead();
    let app = Router::new()
        .route(
            "/a",
            resilient(
                get(|| async { "a" }),
                &breaker,
                &bulkhead,
                PATIENCE,
                RejectionResponses::new(),
            ),
        )
        .route(
            "/b",
            resilient(
                get(|| async { "b" }),
                &breaker,
                &bulkhead,
                PATIENCE,
                RejectionResponses::new(),
            ),
        )
        .route("/plain", get(|| async { "plain" }));
    let client = HttpClient::new(serve(app).await);

    breaker.force_open();
    for path in ["/a", "/b"] {
        let seen = client.get(path, &[]).await;
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(retry_after(&seen) >= 1, "{path}");
    }
    let seen = client.get("/plain", &[]).await;
    assert_eq!((seen.status, seen.body.as_str()), (StatusCode::OK, "plain"));
    assert_eq!(breaker.state(), State::ForcedOpen);
}

/// axum's `HandleErrorLayer` with the crate's `handle_error`, instead of
/// `RejectionsAsResponsesLayer`: the same 503 and `Retry-After`, with a plain-text body.
#[tokio::test]
async fn handle_error_layer_with_handle_error_answers_503_with_a_message() {
    let breaker = breaker();
    let route = get(|| async { "hello" }).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(handle_error))
            .layer(breaker.clone()),
    );
    let app = Router::new().route("/", route);
    let client = HttpClient::new(serve(app).await);

    let seen = client.get("/", &[]).await;
    assert_eq!((seen.status, seen.body.as_str()), (StatusCode::OK, "hello"));

    breaker.force_open();
    let seen = client.get("/", &[]).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after(&seen) >= 1);
    assert_eq!(seen.body, "circuit breaker is forced open");
}

// ---- timeout: 504, the handler cancelled -----------------------------------------------------

/// A handler slower than the attempt timeout: the client gets a 504, and the handler's future
/// is dropped (cancelled), not left running.
#[tokio::test]
async fn a_handler_slower_than_the_timeout_is_cancelled_and_answered_504() {
    let (report, mut reports) = mpsc::unbounded_channel();
    let breaker = breaker();
    let bulkhead = roomy_bulkhead();
    let app = Router::new().route(
        "/slow",
        resilient(
            slow(report, SLOW_HANDLER),
            &breaker,
            &bulkhead,
            ATTEMPT_TIMEOUT,
            RejectionResponses::new(),
        ),
    );
    let client = HttpClient::new(serve(app).await);

    let seen = client.get("/slow", &[]).await;
    assert_eq!(seen.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(!seen.headers.contains_key("retry-after"));
    assert_eq!(seen.body, "");
    assert!(
        !finished(&mut reports, PATIENCE).await,
        "the handler was cancelled"
    );
    // A timeout is a failure for the breaker (it sits above the attempt timeout), but one is
    // below `minimum_calls`.
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().failed_calls(), 1);
}

/// A client's `grpc-timeout` shorter than the server's own timeout decides: the handler is cut
/// at the client's deadline and the client gets a 504.
#[tokio::test]
async fn an_inbound_grpc_timeout_narrows_the_server_timeout_to_a_504() {
    let (report, mut reports) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/slow",
        resilient(
            slow(report, SLOW_HANDLER),
            &breaker(),
            &roomy_bulkhead(),
            // The server alone would let the handler finish.
            SLOW_HANDLER * 2,
            RejectionResponses::new(),
        ),
    );
    let client = HttpClient::new(serve(app).await);

    let seen = client.get("/slow", &[("grpc-timeout", "50m")]).await;
    assert_eq!(seen.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        !finished(&mut reports, PATIENCE).await,
        "the handler was cancelled"
    );
}

/// The handler reads the deadline of its call: the client's `grpc-timeout` when it is the
/// earlier, the route's timeout otherwise.
#[tokio::test]
async fn the_handler_sees_the_inbound_deadline() {
    let app = Router::new().route(
        "/deadline",
        resilient(
            time_left(),
            &breaker(),
            &roomy_bulkhead(),
            Duration::from_secs(600),
            RejectionResponses::new(),
        ),
    );
    let client = HttpClient::new(serve(app).await);

    let with_header: u128 = client
        .get("/deadline", &[("grpc-timeout", "5S")])
        .await
        .body
        .parse()
        .unwrap();
    assert!(with_header <= 5_000, "{with_header} ms left");

    // Without a header: the route's 600 s. Far above 5 s on any machine.
    let without: u128 = client.get("/deadline", &[]).await.body.parse().unwrap();
    assert!((60_000..=600_000).contains(&without), "{without} ms left");

    // A malformed header is ignored, never an error.
    let malformed = client.get("/deadline", &[("grpc-timeout", "soon")]).await;
    assert_eq!(malformed.status, StatusCode::OK);
    assert!(malformed.body.parse::<u128>().unwrap() > 60_000);
}

// ---- bulkhead: 429 when full, the permit given back --------------------------------------------

/// A bulkhead of one shared by two routes, configured to answer 429: while `/hold` holds the
/// permit, `/other` is rejected; once it finishes, the permit is back.
#[tokio::test]
async fn a_full_bulkhead_shared_by_two_routes_answers_429() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered, mut entries) = mpsc::unbounded_channel::<()>();
    let hold = {
        let gate = Arc::clone(&gate);
        get(move || {
            let gate = Arc::clone(&gate);
            let entered = entered.clone();
            async move {
                let _ = entered.send(());
                let _permit = gate.acquire().await;
                "released"
            }
        })
    };
    let breaker = breaker();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(1)
        .max_wait(Duration::ZERO)
        .build()
        .unwrap();
    let responses = RejectionResponses::builder()
        .bulkhead_full_status(StatusCode::TOO_MANY_REQUESTS)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/hold",
            resilient(hold, &breaker, &bulkhead, PATIENCE, responses),
        )
        .route(
            "/other",
            resilient(
                get(|| async { "other" }),
                &breaker,
                &bulkhead,
                PATIENCE,
                responses,
            ),
        );
    let client = HttpClient::new(serve(app).await);

    let holder = tokio::spawn({
        let client = client.clone();
        async move { client.get("/hold", &[]).await }
    });
    tokio::time::timeout(PATIENCE, entries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bulkhead.available_permits(), 0);

    let seen = client.get("/other", &[]).await;
    assert_eq!(seen.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!seen.headers.contains_key("retry-after"));

    gate.add_permits(1);
    let seen = holder.await.unwrap();
    assert_eq!(
        (seen.status, seen.body.as_str()),
        (StatusCode::OK, "released")
    );
    let seen = client.get("/other", &[]).await;
    assert_eq!((seen.status, seen.body.as_str()), (StatusCode::OK, "other"));
    assert_eq!(bulkhead.available_permits(), 1);
    // Rejections are not failures of the service: the breaker saw two successes.
    assert_eq!(breaker.state(), State::Closed);
}

// ---- the router stays infallible -------------------------------------------------------------

/// The stack on a route keeps axum's `Infallible` error, checked by the compiler: this is the
/// whole point of `RejectionsAsResponsesLayer` (no `HandleErrorLayer` needed).
#[test]
fn the_layered_route_is_infallible() {
    fn infallible<S: Service<Request, Response = Response, Error = Infallible>>(_: &S) {}
    let breaker = breaker();
    let service = ServiceBuilder::new()
        .layer(RejectionsAsResponsesLayer::new())
        .layer(InboundDeadlineLayer::new())
        .layer(
            ResilienceStack::new()
                .circuit_breaker(breaker)
                .attempt_timeout(ATTEMPT_TIMEOUT),
        )
        .service(tower::service_fn(|_: Request| async {
            Ok::<_, BoxError>("ok".into_response())
        }));
    infallible(&service);
}

// ---- on paused time ----------------------------------------------------------------------------

/// The same server on a paused clock (the test's current-thread runtime auto-advances it only
/// when every task waits): the clock stands still while requests travel over loopback and jumps
/// over the timers, so the deadline a handler sees, the moment a timeout fires and the
/// `Retry-After` of an open breaker are exact, and a 30 s timeout costs no real time.
#[tokio::test(start_paused = true)]
async fn on_paused_time_deadlines_timeouts_and_retry_after_are_exact() {
    const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
    let (report, mut reports) = mpsc::unbounded_channel();
    let breaker = breaker();
    let bulkhead = roomy_bulkhead();
    let route = |handler| {
        resilient(
            handler,
            &breaker,
            &bulkhead,
            ROUTE_TIMEOUT,
            RejectionResponses::new(),
        )
    };
    let app = Router::new()
        .route("/deadline", route(time_left()))
        .route("/slow", route(slow(report, Duration::from_secs(3600))))
        .route(
            "/flaky",
            route(get(|| async { StatusCode::INTERNAL_SERVER_ERROR })),
        );
    let client = HttpClient::paused(serve(app).await);

    // The deadline the handler sees: the route's timeout, or the caller's if it is earlier.
    assert_eq!(client.get("/deadline", &[]).await.body, "30000");
    let seen = client.get("/deadline", &[("grpc-timeout", "1500m")]).await;
    assert_eq!(seen.body, "1500");

    // The route's timeout fires exactly 30 s (of tokio's clock) after the request left.
    let sent = tokio::time::Instant::now();
    let seen = client.get("/slow", &[]).await;
    assert_eq!(seen.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(sent.elapsed(), ROUTE_TIMEOUT);
    assert!(!finished(&mut reports, PAUSED_PATIENCE).await);

    // 2 successes, the timeout and one 500: half of 4 calls failed, and the breaker opens.
    let seen = client.get("/flaky", &[]).await;
    assert_eq!(seen.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(breaker.state(), State::Open);

    let seen = client.get("/deadline", &[]).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&seen), WAIT_IN_OPEN.as_secs());

    // One tick before the end of the wait: still open, and `Retry-After` rounds up to 1 s.
    tokio::time::advance(WAIT_IN_OPEN - Duration::from_millis(1)).await;
    let seen = client.get("/deadline", &[]).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&seen), 1);

    // At the end of the wait: half-open, and the request goes through as a probe.
    tokio::time::advance(Duration::from_millis(1)).await;
    let seen = client.get("/deadline", &[]).await;
    assert_eq!((seen.status, seen.body.as_str()), (StatusCode::OK, "30000"));
    assert_eq!(breaker.state(), State::HalfOpen);
}
