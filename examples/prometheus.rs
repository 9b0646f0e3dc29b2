//! Prometheus metrics on `/metrics` from an axum app with the steadfast stack.
//!
//! The app serves `GET /price/{id}` on 127.0.0.1; its handler calls a pricing dependency through
//! the full stack (fallback → retry → overall timeout → circuit breaker → bulkhead → attempt
//! timeout). The dependency goes down from 1.5 s to 3 s into the run, so the breaker opens,
//! probes, and closes again, and reports its MTBF, MTTR and availability. `GET /metrics` renders
//! every metric in Prometheus's text format.
//!
//! The example drives itself: it sends requests over loopback for 5 s, then scrapes its own
//! `/metrics` and prints what it got, and exits. Run it with:
//!
//! ```text
//! cargo run --example prometheus --features metrics
//! ```
//!
//! The order matters: the recorder is installed **before** the layers are built, because each
//! layer registers its metric handles once, when it is built. `docs/grafana-dashboard.json` is a
//! dashboard for these metrics; `docs/telemetry.md` lists them all.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use steadfast::BoxError;
use steadfast::bulkhead::BulkheadLayer;
use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use steadfast::fallback::FallbackLayer;
use steadfast::retry::RetryLayer;
use steadfast::stack::{ResilienceStack, ServiceBuilderExt};
use steadfast::timeout::TimeoutLayer;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

/// How long the example sends requests.
const RUN: Duration = Duration::from_secs(5);
/// One request every …
const PACE: Duration = Duration::from_millis(5);
/// The dependency's outage, from the start of the run.
const OUTAGE: (Duration, Duration) = (Duration::from_millis(1500), Duration::from_millis(3000));

/// The stack around the pricing dependency, as the handlers share it.
type Pricing = BoxCloneSyncService<u32, String, BoxError>;

#[derive(Clone)]
struct App {
    pricing: Pricing,
    breaker: CircuitBreakerLayer,
    metrics: PrometheusHandle,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // 1. The recorder, first: every handle registered from now on lands in it.
    let metrics = PrometheusBuilder::new().install_recorder()?;

    // 2. The layers, named: the name is the `name` label of their metrics.
    let breaker = CircuitBreakerLayer::builder()
        .name("pricing")
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(0.5)
        .wait_in_open(Duration::from_millis(300))
        .half_open_calls(3)
        .build()?;
    let stack = ResilienceStack::new()
        .fallback(
            FallbackLayer::new(|_: BoxError| Ok(String::from("price unavailable"))).name("pricing"),
        )
        .retry(
            RetryLayer::builder()
                .name("pricing")
                .max_attempts(2)
                .build()?,
        ) // 2 attempts = 1 retry
        .overall_timeout(Duration::from_millis(200))
        .circuit_breaker(breaker.clone())
        .bulkhead(
            BulkheadLayer::builder()
                .name("pricing")
                .max_concurrent_calls(16)
                .build()?,
        )
        .attempt_timeout(
            TimeoutLayer::builder()
                .name("pricing")
                .timeout(Duration::from_millis(50))
                .build()?,
        );

    // 3. The dependency: fast, except during its outage, when it fails at once.
    let start = Instant::now();
    let dependency = tower::service_fn(move |id: u32| async move {
        let since = start.elapsed();
        if since >= OUTAGE.0 && since < OUTAGE.1 {
            return Err::<String, BoxError>("pricing backend unavailable".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(format!("item {id}: {}.99", id % 50))
    });
    let pricing =
        BoxCloneSyncService::new(ServiceBuilder::new().resilience(stack).service(dependency));

    // 4. The app, on loopback.
    let app = Router::new()
        .route("/price/{id}", get(price))
        .route("/metrics", get(render))
        .with_state(App {
            pricing,
            breaker: breaker.clone(),
            metrics,
        });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        // The server runs until the process ends.
        let _ = axum::serve(listener, app).await;
    });

    // 5. Bounded load over loopback, then one scrape.
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let (mut sent, mut fallbacks) = (0u32, 0u32);
    let mut pace = tokio::time::interval(PACE);
    while start.elapsed() < RUN {
        pace.tick().await;
        let body = get_text(&client, &format!("http://{address}/price/{sent}")).await?;
        sent += 1;
        fallbacks += u32::from(body == "price unavailable");
    }
    println!("sent {sent} requests, {fallbacks} answered by the fallback");
    let snapshot = breaker.snapshot();
    println!(
        "breaker: {:?}, MTBF {:?}, MTTR {:?}, availability {:?}\n",
        snapshot.state(),
        snapshot.mtbf(),
        snapshot.mttr(),
        snapshot.availability()
    );
    let scraped = get_text(&client, &format!("http://{address}/metrics")).await?;
    println!("GET /metrics:\n{scraped}");
    Ok(())
}

async fn price(State(app): State<App>, Path(id): Path<u32>) -> Result<String, StatusCode> {
    // The fallback answers every failure, so an error here is a bug.
    let answer = app.pricing.oneshot(id).await;
    answer.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

async fn render(State(app): State<App>) -> String {
    // A snapshot refreshes the availability gauge, so the scrape sees an outage in progress.
    let _ = app.breaker.snapshot();
    app.metrics.render()
}

async fn get_text(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<String, BoxError> {
    let request = Request::get(url).body(Empty::new())?;
    let mut client = client.clone();
    let response = client.ready().await?.call(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}
