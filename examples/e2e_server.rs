//! The server of the end-to-end benchmark (`benches/e2e/run.sh`): one axum route on loopback,
//! bare or behind a server-side stack, so that `wrk` can measure what the stack costs a real
//! server.
//!
//! `cargo run --release --example e2e_server -- <stack> <port>`, where `<stack>` is
//! - `bare`: the route alone;
//! - `steadfast`: rejections as responses → circuit breaker → bulkhead → timeout;
//! - `tower`: axum's `HandleErrorLayer` → tower's `ConcurrencyLimit` (with `LoadShed`, so a full
//!   limit is a rejection as the bulkhead's is) → tower's `Timeout` (tower has no breaker);
//! - `tower-resilience`: `HandleErrorLayer` → its circuit breaker → its bulkhead → its time
//!   limiter.
//!
//! Every stack is applied the same way (`Router::layer`, on every route), sized so that nothing is
//! rejected at the benchmark's load: the figures are the healthy path. It serves until killed.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::CircuitBreakerLayer;
use steadfast::http::RejectionsAsResponsesLayer;
use steadfast::timeout::TimeoutLayer;
use tower::ServiceBuilder;

const CONCURRENCY: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

async fn hello() -> &'static str {
    "hello"
}

/// The answer of the tower stacks to an error: 503 (none happens at the benchmark's load).
async fn unavailable(_: BoxError) -> StatusCode {
    StatusCode::SERVICE_UNAVAILABLE
}

fn app(stack: &str) -> Result<Router, BoxError> {
    let route = Router::new().route("/", get(hello));
    Ok(match stack {
        "bare" => route,
        "steadfast" => route.layer(
            ServiceBuilder::new()
                .layer(RejectionsAsResponsesLayer::new())
                .layer(CircuitBreakerLayer::builder().build()?)
                .layer(
                    BulkheadLayer::builder()
                        .max_concurrent_calls(CONCURRENCY)
                        .build()?,
                )
                .layer(TimeoutLayer::new(TIMEOUT)),
        ),
        "tower" => route.layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(unavailable))
                .load_shed()
                .concurrency_limit(CONCURRENCY)
                .timeout(TIMEOUT),
        ),
        "tower-resilience" => route.layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_| async {
                    StatusCode::SERVICE_UNAVAILABLE
                }))
                .layer(
                    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
                        .build()
                        .map_err(|e| format!("{e:?}"))?,
                )
                .layer(
                    tower_resilience::bulkhead::BulkheadLayer::builder()
                        .max_concurrent_calls(CONCURRENCY)
                        .build()
                        .map_err(|e| format!("{e:?}"))?,
                )
                .layer(
                    tower_resilience::timelimiter::TimeLimiterLayer::builder()
                        .timeout_duration(TIMEOUT)
                        .build(),
                ),
        ),
        other => {
            return Err(format!(
                "unknown stack {other:?}: bare, steadfast, tower, tower-resilience"
            )
            .into());
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let stack = args.next().unwrap_or_else(|| "bare".to_owned());
    let port: u16 = args.next().as_deref().unwrap_or("3000").parse()?;
    let app = app(&stack)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("serving {stack} on http://{addr}/");
    axum::serve(listener, app).await?;
    Ok(())
}
