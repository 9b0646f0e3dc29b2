//! The pool over three real axum servers on loopback, one of them killed and restarted on the
//! same port.
//!
//! Each replica is an axum router on `127.0.0.1`, served on a task; killing it aborts that task,
//! which drops its listener, so new connections are refused. The clients keep no idle
//! connection (`pool_max_idle_per_host(0)`), so every call opens one and a killed replica is
//! really gone for the pool. The pool's endpoints are hyper-util clients, each pinned to its
//! replica's address.
//!
//! Real sockets take real time, so nothing here asserts a duration: every wait is a loop
//! bounded by [`PATIENCE`], which only a broken build reaches.

#![cfg(all(feature = "pool", feature = "http", feature = "retry"))]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::get;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::BoxError;
use steadfast::pool::{EndpointState, Pool, probe};
use steadfast::retry::{Backoff, RetryLayer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The longest any wait lasts; reached only when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);

// ---- the replicas ----------------------------------------------------------------------------

/// What one replica counts and how its health check answers; shared across its restarts.
#[derive(Debug, Default)]
struct Counters {
    items: AtomicUsize,
    /// While set, `/health` never answers.
    hang_health: AtomicBool,
}

/// A replica: an axum server on a fixed loopback address, which can be killed and restarted.
struct Replica {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: Option<JoinHandle<()>>,
}

impl Replica {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut replica = Self {
            addr: listener.local_addr().unwrap(),
            counters: Arc::default(),
            task: None,
        };
        replica.serve(listener);
        replica
    }

    fn serve(&mut self, listener: TcpListener) {
        let items = Arc::clone(&self.counters);
        let health = Arc::clone(&self.counters);
        let port = self.addr.port();
        let app = Router::new()
            .route(
                "/item",
                get(move || {
                    items.items.fetch_add(1, Ordering::SeqCst);
                    async move { format!("item from {port}") }
                }),
            )
            .route(
                "/health",
                get(move || {
                    let hang = health.hang_health.load(Ordering::SeqCst);
                    async move {
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        StatusCode::OK
                    }
                }),
            );
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Aborts the server's task and waits until it is gone, listener and all.
    async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Serves again on the same port.
    async fn restart(&mut self) {
        let listener = tokio::time::timeout(PATIENCE, async {
            loop {
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => return listener,
                    // The port may take a moment to be free again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .expect("the port came free again");
        self.serve(listener);
    }

    fn items(&self) -> usize {
        self.counters.items.load(Ordering::SeqCst)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

// ---- the clients -----------------------------------------------------------------------------

type Req = Request<Empty<Bytes>>;
type Res = Response<Bytes>;

/// hyper-util's client with no idle connection kept: every call connects anew.
fn hyper_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// A pool endpoint: the client, pinned to one replica (the request's path is kept, its
/// authority replaced), the body read in full.
#[derive(Clone, Debug)]
struct Pinned {
    client: Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
}

impl Service<Req> for Pinned {
    type Response = Res;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri: Result<Uri, _> = format!("http://{}{path}", self.addr).parse();
        let client = self.client.clone();
        Box::pin(async move {
            *request.uri_mut() = uri?;
            let (parts, body) = client.request(request).await?.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}

fn request() -> Req {
    Request::get("http://replicas/item")
        .body(Empty::new())
        .unwrap()
}

fn state_of<S, C>(pool: &Pool<SocketAddr, S, C>, addr: SocketAddr) -> EndpointState {
    pool.endpoints()
        .into_iter()
        .find(|e| *e.key() == addr)
        .map(|e| e.state())
        .expect("the endpoint is in the pool")
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

async fn replicas() -> [Replica; 3] {
    [
        Replica::start().await,
        Replica::start().await,
        Replica::start().await,
    ]
}

// ---- the tests -------------------------------------------------------------------------------

/// Passive ejection: the killed replica fails a call, is ejected at once, and the retry above the
/// pool sends that call to another replica, so every call succeeds. The ejection is short; once
/// over, the restarted replica takes calls again.
#[tokio::test]
async fn a_killed_replica_is_ejected_and_carries_traffic_again_after_its_restart() {
    let mut replicas = replicas().await;
    let client = hyper_client();
    let pool = Pool::builder()
        .consecutive_failures(1)
        .base_ejection_time(Duration::from_millis(200))
        .max_ejected_fraction(0.34)
        .build(replicas.iter().map(|r| {
            (
                r.addr,
                Pinned {
                    client: client.clone(),
                    addr: r.addr,
                },
            )
        }))
        .unwrap();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .build()
        .unwrap();
    let service = ServiceBuilder::new().layer(retry).service(pool.clone());
    let call = |service| async move {
        tokio::time::timeout(PATIENCE, ServiceExt::<Req>::oneshot(service, request()))
            .await
            .expect("an answer in time")
    };

    // All three take calls.
    for _ in 0..60 {
        let response = call(service.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(replicas.iter().all(|r| r.items() > 0));

    // B dies: every call still succeeds (a call that lands on B is retried on another
    // replica), and B is ejected.
    let dead = replicas[1].addr;
    replicas[1].kill().await;
    let before = [replicas[0].items(), replicas[2].items()];
    for _ in 0..60 {
        let response = call(service.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let ejections = pool
        .endpoints()
        .into_iter()
        .find(|e| *e.key() == dead)
        .unwrap()
        .ejections();
    assert!(ejections >= 1, "B was ejected ({ejections} ejections)");
    let after = [replicas[0].items(), replicas[2].items()];
    assert_eq!(
        (after[0] - before[0]) + (after[1] - before[1]),
        60,
        "A and C answered every call"
    );

    // B comes back on the same port: once its ejection is over, calls reach it again.
    replicas[1].restart().await;
    let served = replicas[1].items();
    let counters = Arc::clone(&replicas[1].counters);
    let result = tokio::time::timeout(PATIENCE, async {
        while counters.items.load(Ordering::SeqCst) == served {
            let response = call(service.clone()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(result.is_ok(), "B carried traffic again after its restart");
    assert_eq!(state_of(&pool, dead), EndpointState::Healthy);
}

/// Active health checks with the ready-made HTTP probe: with no traffic at all, the probe marks
/// the killed replica unhealthy and, after its restart, healthy again; calls then reach it.
#[tokio::test]
async fn the_http_probe_marks_a_killed_replica_unhealthy_and_a_restarted_one_healthy() {
    let mut replicas = replicas().await;
    let client = hyper_client();
    let probe = probe::http_get(client.clone(), |addr: &SocketAddr| {
        format!("http://{addr}/health")
    })
    .timeout(Duration::from_millis(500))
    .build()
    .unwrap();
    // Probes 200 ms apart: a healthy replica's probe must answer within the interval, which a
    // loaded CI machine running debug builds may miss twice in a row at 50 ms.
    let pool = Pool::builder()
        .health_check(Duration::from_millis(200), probe)
        .unhealthy_threshold(2)
        .healthy_threshold(2)
        .build(replicas.iter().map(|r| {
            (
                r.addr,
                Pinned {
                    client: client.clone(),
                    addr: r.addr,
                },
            )
        }))
        .unwrap();

    let dead = replicas[2].addr;
    replicas[2].kill().await;
    eventually("the probe marks C unhealthy", || {
        state_of(&pool, dead) == EndpointState::Unhealthy
    })
    .await;
    // No call was made: the health check alone took it out, and no ejection was counted.
    let snapshot = pool.endpoints();
    assert!(snapshot.iter().all(|e| e.ejections() == 0));
    assert_eq!(
        snapshot
            .iter()
            .filter(|e| e.state() == EndpointState::Healthy)
            .count(),
        2
    );

    // Unhealthy, C takes no call.
    let served = replicas[2].items();
    for _ in 0..30 {
        let response = tokio::time::timeout(PATIENCE, pool.clone().oneshot(request()))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(replicas[2].items(), served);

    replicas[2].restart().await;
    eventually("the probe brings C back", || {
        state_of(&pool, dead) == EndpointState::Healthy
    })
    .await;
    let counters = Arc::clone(&replicas[2].counters);
    let result = tokio::time::timeout(PATIENCE, async {
        while counters.items.load(Ordering::SeqCst) == served {
            pool.clone().oneshot(request()).await.unwrap();
        }
    })
    .await;
    assert!(result.is_ok(), "C carried traffic again");
}

/// A replica whose health check hangs (its `/item` still answers) is marked unhealthy by the
/// probe's timeout: the checker is not stalled, and the other replicas stay healthy.
#[tokio::test]
async fn a_health_check_that_hangs_fails_the_probe() {
    let replicas = replicas().await;
    let client = hyper_client();
    let probe = probe::http_get(client.clone(), |addr: &SocketAddr| {
        format!("http://{addr}/health")
    })
    // Room for a healthy replica's probe on a loaded machine; the hanging one never answers.
    .timeout(Duration::from_millis(100))
    .build()
    .unwrap();
    let pool = Pool::builder()
        .health_check(Duration::from_millis(200), probe)
        .unhealthy_threshold(2)
        .healthy_threshold(1)
        .build(replicas.iter().map(|r| {
            (
                r.addr,
                Pinned {
                    client: client.clone(),
                    addr: r.addr,
                },
            )
        }))
        .unwrap();

    let stuck = replicas[0].addr;
    replicas[0]
        .counters
        .hang_health
        .store(true, Ordering::SeqCst);
    eventually("the hanging probe marks A unhealthy", || {
        state_of(&pool, stuck) == EndpointState::Unhealthy
    })
    .await;
    assert!(
        pool.endpoints()
            .iter()
            .filter(|e| *e.key() != stuck)
            .all(|e| e.state() == EndpointState::Healthy)
    );

    replicas[0]
        .counters
        .hang_health
        .store(false, Ordering::SeqCst);
    eventually("A answers its probe again and is back", || {
        state_of(&pool, stuck) == EndpointState::Healthy
    })
    .await;
}
