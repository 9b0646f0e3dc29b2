//! The gRPC health probe (`pool::probe::grpc_health`) against `tonic-health`'s server on
//! loopback: each replica is a real tonic server serving `grpc.health.v1.Health`, reached over
//! a tonic `Channel` per replica; its status is switched with the health reporter's
//! `set_serving` / `set_not_serving`.
//!
//! Real sockets take real time, so nothing here asserts a duration: every wait is bounded by
//! [`PATIENCE`], which only a broken build reaches.

#![cfg(all(feature = "pool", feature = "tonic"))]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use steadfast::pool::probe::{self, ProbeFuture};
use steadfast::pool::{EndpointState, Pool};
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;
use tower::service_fn;

/// The longest any wait lasts; reached only when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);

/// The service whose health the probes ask about.
struct Echo;

impl NamedService for Echo {
    const NAME: &'static str = "steadfast.test.Echo";
}

/// A server that stops when dropped.
struct Running {
    addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

/// Serves `service` with tonic's server on `127.0.0.1:0` until the handle is dropped.
async fn serve<S>(service: S) -> Running
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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

/// A replica serving only `grpc.health.v1.Health`, with `Echo` serving.
async fn health_server() -> (Running, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_serving::<Echo>().await;
    (serve(service).await, reporter)
}

fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

/// The probe of `service` over one kept `Channel` per address.
fn probe_of(
    channels: HashMap<SocketAddr, Channel>,
    service: &'static str,
    timeout: Duration,
) -> impl Fn(SocketAddr) -> ProbeFuture + Clone + Send + Sync + 'static {
    let channels = Arc::new(channels);
    probe::grpc_health(
        move |addr: &SocketAddr| {
            channels
                .get(addr)
                .cloned()
                .unwrap_or_else(|| channel(*addr))
        },
        service,
    )
    .timeout(timeout)
    .build()
    .unwrap()
}

async fn bounded(future: ProbeFuture) -> bool {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("the probe ends by its own timeout")
}

/// Waits, bounded by [`PATIENCE`], until `done` holds, checking every 10 ms.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting until {what}");
}

#[tokio::test]
async fn the_probe_passes_on_serving_and_fails_on_not_serving() {
    let (server, reporter) = health_server().await;
    let channels = HashMap::from([(server.addr, channel(server.addr))]);
    let probe = probe_of(channels.clone(), Echo::NAME, Duration::from_secs(1));
    assert!(bounded(probe(server.addr)).await);

    reporter.set_not_serving::<Echo>().await;
    assert!(!bounded(probe(server.addr)).await);

    reporter.set_serving::<Echo>().await;
    assert!(bounded(probe(server.addr)).await);

    // The server as a whole ("") is serving; a service it does not know is not healthy
    // (`NOT_FOUND`).
    assert!(
        bounded(probe_of(channels.clone(), "", Duration::from_secs(1))(
            server.addr
        ))
        .await
    );
    let unknown = probe_of(channels, "steadfast.test.Unknown", Duration::from_secs(1));
    assert!(!bounded(unknown(server.addr)).await);
}

#[tokio::test]
async fn the_probe_fails_without_a_health_service_or_a_server() {
    // A gRPC server without the health service: `UNIMPLEMENTED`.
    let bare = serve(service_fn(|_: http::Request<Body>| async {
        Ok::<_, Infallible>(tonic::Status::unimplemented("no health service").into_http())
    }))
    .await;
    let probe = probe_of(HashMap::new(), Echo::NAME, Duration::from_secs(1));
    assert!(!bounded(probe(bare.addr)).await);

    // A gRPC server that never answers: the probe fails at its timeout.
    let hanging = serve(service_fn(|_: http::Request<Body>| async {
        std::future::pending::<Result<http::Response<Body>, Infallible>>().await
    }))
    .await;
    let probe = probe_of(HashMap::new(), Echo::NAME, Duration::from_millis(100));
    assert!(!bounded(probe(hanging.addr)).await);

    // A port where nothing listens: the connection is refused.
    let gone = {
        let server = serve(service_fn(|_: http::Request<Body>| async {
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }))
        .await;
        server.addr
    };
    // Give the dropped server's task its shutdown signal.
    tokio::task::yield_now().await;
    let probe = probe_of(HashMap::new(), Echo::NAME, Duration::from_millis(500));
    eventually_false(&probe, gone).await;
}

/// The server of `addr` may take a moment to close its listener: probe until one fails.
async fn eventually_false(probe: &impl Fn(SocketAddr) -> ProbeFuture, addr: SocketAddr) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while bounded(probe(addr)).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "a probe of a stopped server failed");
}

/// The pool's health check with the gRPC probe over a pool of `Channel`s: a replica reported
/// `NOT_SERVING` is marked unhealthy and takes no call of a tonic client through the pool;
/// reported `SERVING` again, it comes back.
#[tokio::test]
async fn the_pool_follows_the_health_reporter() {
    let mut servers = Vec::new();
    let mut reporters = Vec::new();
    for _ in 0..3 {
        let (server, reporter) = health_server().await;
        servers.push(server);
        reporters.push(reporter);
    }
    let channels: HashMap<SocketAddr, Channel> =
        servers.iter().map(|s| (s.addr, channel(s.addr))).collect();
    let probe = probe_of(channels.clone(), Echo::NAME, Duration::from_millis(500));
    // Probes 200 ms apart: a healthy server's probe must answer within the interval, which a
    // loaded CI machine running debug builds may miss twice in a row at 50 ms.
    let pool = Pool::builder()
        .health_check(Duration::from_millis(200), probe)
        .unhealthy_threshold(2)
        .healthy_threshold(2)
        .build(channels.clone())
        .unwrap();
    let state = |addr: SocketAddr| {
        pool.endpoints()
            .into_iter()
            .find(|e| *e.key() == addr)
            .map(|e| e.state())
            .unwrap()
    };

    let sick = servers[1].addr;
    reporters[1].set_not_serving::<Echo>().await;
    eventually("the probe marks B unhealthy", || {
        state(sick) == EndpointState::Unhealthy
    })
    .await;
    assert!(
        servers
            .iter()
            .filter(|s| s.addr != sick)
            .all(|s| state(s.addr) == EndpointState::Healthy)
    );
    assert!(pool.endpoints().iter().all(|e| e.ejections() == 0));

    // A tonic client through the pool: every call goes to A or C, which answer SERVING (B
    // would answer NOT_SERVING).
    for _ in 0..30 {
        let mut client = HealthClient::new(pool.clone());
        let request = HealthCheckRequest {
            service: Echo::NAME.to_owned(),
        };
        let answer = tokio::time::timeout(PATIENCE, client.check(request))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);
    }

    reporters[1].set_serving::<Echo>().await;
    eventually("the probe brings B back", || {
        state(sick) == EndpointState::Healthy
    })
    .await;
}
