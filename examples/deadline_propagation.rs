//! A deadline from edge to edge: a server reads `grpc-timeout` from the incoming request, keeps a
//! safety margin, bounds its own work with a timeout, and calls a backend through a client that
//! writes the time left as `grpc-timeout`. A request whose deadline is already gone never reaches
//! the backend.
//!
//! Run with `cargo run --example deadline_propagation --features http,timeout`; it prints the
//! crate's `debug` events too.

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use steadfast::BoxError;
use steadfast::deadline::{Deadline, InboundDeadlineLayer, PropagateDeadlineLayer};
use steadfast::timeout::{Elapsed, TimeoutLayer};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// The backend: answers with the `grpc-timeout` it was sent, after `work`.
fn backend(
    work: Duration,
) -> impl Service<Request<()>, Response = String, Error = Infallible, Future: Send> + Clone {
    service_fn(move |req: Request<()>| async move {
        let sent = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        tokio::time::sleep(work).await;
        Ok(sent)
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .init();

    // The client side: write the time left onto every backend request.
    let client = ServiceBuilder::new()
        .layer(PropagateDeadlineLayer::new())
        .service(backend(Duration::from_millis(20)));

    // The server side: read the caller's deadline, keep 10 ms for the way back, and never spend
    // more than 200 ms on one request whatever the caller allows.
    let server = ServiceBuilder::new()
        .layer(InboundDeadlineLayer::new().safety_margin(Duration::from_millis(10)))
        .layer(TimeoutLayer::new(Duration::from_millis(200)))
        .service(service_fn(move |_req: Request<()>| {
            let client = client.clone();
            async move {
                let left = Deadline::current().map(|d| d.remaining());
                println!("  handler: {left:?} left");
                let sent = client.oneshot(Request::new(())).await?;
                Ok::<_, BoxError>(Response::new(format!(
                    "backend was sent grpc-timeout: {sent}"
                )))
            }
        }));

    for grpc_timeout in [None, Some("1S"), Some("100m"), Some("25m"), Some("5m")] {
        println!("request with grpc-timeout {grpc_timeout:?}");
        let mut req = Request::builder();
        if let Some(value) = grpc_timeout {
            req = req.header("grpc-timeout", value);
        }
        let req = req.body(()).expect("a valid request");
        match server.clone().oneshot(req).await {
            Ok(response) => println!("  ok: {}", response.into_body()),
            Err(err) => match err.downcast_ref::<Elapsed>() {
                Some(elapsed) => println!("  failed: {elapsed} ({:?})", elapsed.kind()),
                None => println!("  failed: {err}"),
            },
        }
    }
}
