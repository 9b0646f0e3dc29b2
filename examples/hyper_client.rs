//! Client-side resilience on hyper-util's client: retry that replays a streaming request body,
//! a circuit breaker that counts 5xx responses, timeouts, and the time left written onto every
//! outbound request.
//!
//! The example starts a small axum server on loopback, then calls it three times over real HTTP:
//!
//! 1. `PUT /echo` with a body streamed in chunks (not `Clone`): the server fails the first two
//!    requests with 503; retry sends the body again from its replay buffer and the third attempt
//!    gets the server's echo of the body and of the deadline headers it received.
//! 2. `GET /slow`, a server that hangs: each attempt is cut by the attempt timeout, each is sent
//!    with less time left (see the `grpc-timeout` the server received), and the overall deadline
//!    ends the call.
//! 3. `GET /down`, a server that answers 503 to everything: the breaker opens after a few
//!    failures, and the next calls fail at once with `CircuitOpen`, never reaching the server.
//!
//! Run with `cargo run --example hyper_client --features http`; it prints the crate's `debug`
//! events (retries, timeouts, the breaker's transitions) as well. It ends by itself.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request as ServerRequest, State as ServerState};
use axum::http::header::HeaderName;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use axum::routing::{get, put};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::BoxError;
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow};
use steadfast::deadline::PropagateDeadlineLayer;
use steadfast::retry::{Backoff, HttpPolicy, Jitter, ReplayBody, RetryLayer};
use steadfast::timeout::{Elapsed, TimeoutLayer};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::classify::ServerErrorsAsFailures;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How many `PUT /echo` requests the server fails before it answers.
const FAIL_FIRST: usize = 2;
/// The replay buffer: a request body larger than this is sent once, never retried.
const REPLAY_BYTES: usize = 64 * 1024;
/// The time one whole call may take, every attempt and backoff included.
const OVERALL_TIMEOUT: Duration = Duration::from_millis(600);
/// The time one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);
/// A second deadline header, in whole milliseconds, for servers that do not read
/// `grpc-timeout` (the same idea as Envoy's `x-envoy-expected-rq-timeout-ms`).
const TIMEOUT_MS: HeaderName = HeaderName::from_static("x-request-timeout-ms");

// ---- a request body that streams, and cannot be cloned ---------------------------------------

/// A request body sent in chunks, as an upload or a proxied body would be. It is not `Clone`:
/// retry replays it from the buffer `replay_body` keeps.
#[derive(Debug)]
struct Chunks(VecDeque<Bytes>);

impl Chunks {
    fn new(chunks: &[&'static str]) -> Self {
        Self(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        )
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

// ---- hyper-util's client as a tower service --------------------------------------------------

/// hyper-util's pooled HTTP/1 client, as a `tower::Service` that reads the response body in full
/// (so the timeouts bound the whole exchange and the connection goes back to the pool).
#[derive(Debug)]
struct HyperClient<B> {
    inner: Client<HttpConnector, B>,
}

// By hand: a clone shares the connection pool, and `B` need not be `Clone`.
impl<B> Clone for HyperClient<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<B> HyperClient<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl<B> Service<Request<B>> for HyperClient<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::<Request<B>>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.inner.request(request);
        Box::pin(async move {
            let (parts, body) = response.await?.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// The breaker for the echo server: 5xx responses (and errors, timeouts included) are
/// failures; it opens once half of the last 10 calls (at least 4) failed.
fn echo_breaker() -> Result<CircuitBreakerLayer<ServerErrorsAsFailures>, BoxError> {
    let breaker = CircuitBreakerLayer::builder()
        .name("echo-server")
        .classify(ServerErrorsAsFailures::new())
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(4)
        .failure_rate_threshold(0.5)
        .wait_in_open(Duration::from_secs(5))
        .build()?;
    Ok(breaker)
}

/// The client stack around `breaker` (pass a clone and keep the layer to read the breaker's
/// state: clones share one breaker), outermost first: overall timeout → retry (HTTP policy, replay buffer) → circuit
/// breaker → attempt timeout → deadline headers → hyper.
///
/// The overall timeout sets the call's deadline; retry reads it and never starts an attempt or
/// a backoff that cannot finish in time; the attempt timeout narrows it for each attempt; and
/// the innermost layer writes what is left of it onto the request, so each attempt tells the
/// server how long it has.
fn client_stack(
    breaker: CircuitBreakerLayer<ServerErrorsAsFailures>,
) -> Result<
    impl Service<Request<Chunks>, Response = Response<Bytes>, Error = BoxError> + Clone,
    BoxError,
> {
    let retry = RetryLayer::builder()
        .name("echo-server")
        // Errors (timeouts included), 429, 502, 503 and 504 on idempotent methods (PUT is one).
        .policy(HttpPolicy::new())
        .max_attempts(3) // 3 attempts = 2 retries
        .backoff(
            Backoff::exponential(Duration::from_millis(20))
                .jitter(Jitter::Full)
                .max_delay(Duration::from_millis(200)),
        )
        .seed(7) // the same jittered delays on every run
        .replay_body(REPLAY_BYTES)
        .build()?;
    // Named, so that their events say which one fired.
    let overall = TimeoutLayer::builder()
        .timeout(OVERALL_TIMEOUT)
        .name("overall")
        .build()?;
    let attempt = TimeoutLayer::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .name("attempt")
        .build()?;
    let service = ServiceBuilder::new()
        .layer(overall)
        .layer(retry)
        .layer(breaker)
        .layer(attempt)
        .layer(PropagateDeadlineLayer::new().header(TIMEOUT_MS))
        .service(HyperClient::<ReplayBody<Chunks>>::new());
    Ok(service)
}

// ---- the server --------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Backend {
    echo_calls: Arc<AtomicUsize>,
    down_calls: Arc<AtomicUsize>,
    /// The `grpc-timeout` of each `/slow` request, in arrival order.
    slow_deadlines: Arc<Mutex<Vec<String>>>,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned()
}

/// Fails the first [`FAIL_FIRST`] requests with 503, then echoes the deadline headers and the
/// body it received.
async fn echo(
    ServerState(backend): ServerState<Backend>,
    request: ServerRequest,
) -> Response<String> {
    let n = backend.echo_calls.fetch_add(1, Ordering::SeqCst) + 1;
    let grpc_timeout = header(request.headers(), "grpc-timeout");
    let timeout_ms = header(request.headers(), TIMEOUT_MS.as_str());
    let body = to_bytes(request.into_body(), REPLAY_BYTES)
        .await
        .unwrap_or_default();
    println!(
        "  server: PUT /echo #{n}, grpc-timeout {grpc_timeout}, {TIMEOUT_MS} {timeout_ms}, {} body bytes",
        body.len()
    );
    let mut response = Response::new(String::new());
    if n <= FAIL_FIRST {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    } else {
        *response.body_mut() = format!(
            "attempt {n} got body {:?} with grpc-timeout {grpc_timeout} and {TIMEOUT_MS} {timeout_ms}",
            String::from_utf8_lossy(&body)
        );
    }
    response
}

/// Hangs (until the client gives up and the connection closes).
async fn slow(ServerState(backend): ServerState<Backend>, headers: HeaderMap) -> &'static str {
    let grpc_timeout = header(&headers, "grpc-timeout");
    if let Ok(mut seen) = backend.slow_deadlines.lock() {
        seen.push(grpc_timeout);
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

/// Answers 503 to everything.
async fn down(ServerState(backend): ServerState<Backend>) -> StatusCode {
    backend.down_calls.fetch_add(1, Ordering::SeqCst);
    StatusCode::SERVICE_UNAVAILABLE
}

/// Serves the backend on an ephemeral loopback port; the server stops when `main` returns.
async fn start_server(backend: Backend) -> Result<std::net::SocketAddr, BoxError> {
    let app = Router::new()
        .route("/echo", put(echo))
        .route("/slow", get(slow))
        .route("/down", get(down))
        .with_state(backend);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

// ---- the calls ---------------------------------------------------------------------------------

fn describe(error: &BoxError) -> String {
    if let Some(open) = error.downcast_ref::<CircuitOpen>() {
        format!("rejected by the breaker: {open}")
    } else if let Some(elapsed) = error.downcast_ref::<Elapsed>() {
        format!("{elapsed} ({:?})", elapsed.kind())
    } else {
        format!("failed: {error}")
    }
}

fn request(
    method: Method,
    addr: std::net::SocketAddr,
    path: &str,
    body: Chunks,
) -> Request<Chunks> {
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(body)
        .expect("a valid request")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // The crate's events only (hyper-util's own `debug` events would drown them).
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(Targets::new().with_target("steadfast", tracing::Level::DEBUG))
        .init();

    let backend = Backend::default();
    let addr = start_server(backend.clone()).await?;
    println!("server on http://{addr}\n");

    // 1. Retry replays a streaming body; the deadline travels with each attempt.
    // Each scenario builds its own stack and breaker, so that one's failures do not open the
    // breaker for the next.
    println!("1. PUT /echo, a streamed body; the server fails the first {FAIL_FIRST} requests");
    let breaker = echo_breaker()?;
    let client = client_stack(breaker.clone())?;
    let body = Chunks::new(&["hello, ", "streaming ", "world"]);
    match client
        .oneshot(request(Method::PUT, addr, "/echo", body))
        .await
    {
        Ok(response) => println!(
            "  client: {} {:?}",
            response.status(),
            String::from_utf8_lossy(response.body())
        ),
        Err(error) => println!("  client: {}", describe(&error)),
    }
    println!(
        "  server calls: {}, breaker: {:?} ({} failed of {})\n",
        backend.echo_calls.load(Ordering::SeqCst),
        breaker.state(),
        breaker.snapshot().failed_calls(),
        breaker.snapshot().calls(),
    );

    // 2. A hanging server: attempts cut one by one, the overall deadline ends the call.
    println!(
        "2. GET /slow, a server that hangs: attempt timeout {ATTEMPT_TIMEOUT:?}, overall {OVERALL_TIMEOUT:?}"
    );
    let client = client_stack(echo_breaker()?)?;
    let empty = Chunks::new(&[]);
    match client
        .oneshot(request(Method::GET, addr, "/slow", empty))
        .await
    {
        Ok(response) => println!("  client: {}", response.status()),
        Err(error) => println!("  client: {}", describe(&error)),
    }
    if let Ok(seen) = backend.slow_deadlines.lock() {
        println!("  grpc-timeout of each attempt, as the server got it: {seen:?}\n");
    }

    // 3. A server that is down: the breaker opens and stops the calls.
    println!("3. GET /down, a server that answers 503 to everything");
    let breaker = echo_breaker()?;
    let mut client = client_stack(breaker.clone())?;
    for call in 1..=5 {
        let request = request(Method::GET, addr, "/down", Chunks::new(&[]));
        let outcome = match client.ready().await?.call(request).await {
            Ok(response) => format!("{}", response.status()),
            Err(error) => describe(&error),
        };
        println!(
            "  call {call}: {outcome}; breaker {:?}; server reached {} times",
            breaker.state(),
            backend.down_calls.load(Ordering::SeqCst)
        );
    }
    Ok(())
}
