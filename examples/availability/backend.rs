//! The backend: an axum router whose `GET /item` sits behind the seeded chaos layer, with a
//! counter in front of the chaos layer so that every call that reaches the server is counted
//! (those the chaos layer fails included). `GET /health`, for the pool's health check, is down
//! when the backend is down, and otherwise always passes: a replica that fails some of its
//! calls still has its process up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use steadfast::BoxError;
use steadfast::chaos::ChaosLayer;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceBuilder;

use crate::scenario::{BUCKET, Faults, LATENCY, LATENCY_RATE, OUTAGE_END, OUTAGE_START, RUN_FOR};

/// Calls that reached one backend, counted per [`BUCKET`] since the start of the run.
#[derive(Debug)]
pub(crate) struct CallLog {
    start: Instant,
    buckets: Vec<AtomicU64>,
}

impl CallLog {
    pub(crate) fn new(start: Instant) -> Self {
        // One spare bucket for calls still arriving after the last request was sent.
        let len = usize::try_from(RUN_FOR.as_millis() / BUCKET.as_millis()).unwrap_or(0) + 8;
        Self {
            start,
            buckets: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn hit(&self) {
        let index = bucket_of(self.start.elapsed());
        if let Some(bucket) = self.buckets.get(index.min(self.buckets.len() - 1)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls per bucket.
    pub(crate) fn per_bucket(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect()
    }
}

/// The bucket an offset from the start of the run falls in.
pub(crate) fn bucket_of(offset: Duration) -> usize {
    usize::try_from(offset.as_millis() / BUCKET.as_millis()).unwrap_or(usize::MAX)
}

/// A backend on loopback that does what `faults` says: returns its port and its call log. The
/// chaos layer's clock (its scheduled outage) starts now; `start` is the instant the run is
/// measured from. `seed` makes the n-th call of each backend built with it decide the same.
pub(crate) async fn spawn(
    faults: Faults,
    seed: u64,
    start: Instant,
) -> Result<(u16, Arc<CallLog>), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let log = Arc::new(CallLog::new(start));

    // The whole scenario, seeded: every backend makes the same decisions for its n-th call.
    let mut chaos = ChaosLayer::builder()
        .name(faults.name)
        .error_rate(faults.error_rate)
        .latency(LATENCY_RATE, LATENCY)
        .seed(seed);
    // Its health check: down with the backend, never failed on purpose otherwise.
    let mut health = ChaosLayer::builder()
        .name(format!("{}-health", faults.name))
        .seed(seed);
    if faults.outage {
        chaos = chaos.outage_at(OUTAGE_START, OUTAGE_END - OUTAGE_START);
        health = health.outage_at(OUTAGE_START, OUTAGE_END - OUTAGE_START);
    }
    // Injected faults are HTTP 503s, as a real overloaded or restarting server answers.
    let unavailable = || StatusCode::SERVICE_UNAVAILABLE.into_response();
    let chaos = chaos.error_response(unavailable).build()?;
    let health = health.error_response(unavailable).build()?;

    let counter = Arc::clone(&log);
    let app = Router::new()
        .route(
            "/item",
            get(item).layer(
                ServiceBuilder::new()
                    .map_request(move |request: Request| {
                        counter.hit();
                        request
                    })
                    // Faults are responses, and the handler is infallible, so this never runs;
                    // axum needs it because the chaos layer's error type is `BoxError`.
                    .layer(HandleErrorLayer::new(|_: BoxError| async {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }))
                    .layer(chaos),
            ),
        )
        .route(
            "/health",
            get(|| async { StatusCode::OK }).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(|_: BoxError| async {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }))
                    .layer(health),
            ),
        );

    tokio::spawn(async move {
        // The server runs until the process ends.
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, log))
}

async fn item() -> Response {
    "item 42: in stock".into_response()
}
