//! The steadfast stack on the client side of a tonic `Channel`, with the deadline carried from
//! edge to edge: a client calls service A with a deadline, and A calls service B inside its
//! handler through a `Channel` wrapped in retry, timeouts, a circuit breaker and deadline
//! propagation. B is sent no more time than A has left, and never a deadline already gone.
//!
//! No protobuf: the messages are UTF-8 strings and the codec is a dozen lines, so nothing is
//! generated and no `protoc` is needed. Both servers run on loopback and stop when `main` ends.
//!
//! Run with `cargo run --example tonic_client --features tonic,http`; it prints the crate's
//! `debug` events too.

#[path = "../tests/support/utf8_codec.rs"]
mod utf8_codec;
use utf8_codec::Utf8;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::uri::PathAndQuery;
use steadfast::BoxError;
use steadfast::circuit_breaker::CircuitBreakerLayer;
use steadfast::deadline::{Deadline, InboundDeadlineLayer, PropagateDeadlineLayer};
use steadfast::grpc::into_status;
use steadfast::retry::{Backoff, GrpcPolicy, RetryLayer};
use steadfast::stack::ResilienceStack;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, service_fn};
use tower_http::classify::GrpcErrorsAsFailures;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What a gRPC client drives: errors are already `Status`, which tonic passes on unchanged.
type Client = BoxCloneService<http::Request<Body>, http::Response<Body>, Status>;

/// Calls the one method of the service behind `client`.
async fn call(client: Client, message: String) -> Result<String, Status> {
    let mut grpc = tonic::client::Grpc::new(client);
    grpc.ready().await?;
    let path = PathAndQuery::from_static("/example.Echo/Call");
    Ok(grpc
        .unary(Request::new(message), path, Utf8)
        .await?
        .into_inner())
}

/// Serves a one-method gRPC service answered by `handler` on `127.0.0.1:0`; returns its address.
async fn serve<F, Fut>(handler: F, around: InboundDeadlineLayer) -> std::io::Result<String>
where
    F: Fn(Request<String>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<String>, Status>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("http://{}", listener.local_addr()?);
    let service = ServiceBuilder::new().layer(around).service(service_fn(
        move |request: http::Request<Body>| {
            let handler = handler.clone();
            async move {
                let mut grpc = tonic::server::Grpc::new(Utf8);
                Ok::<_, Infallible>(grpc.unary(service_fn(handler), request).await)
            }
        },
    ));
    tokio::spawn(Server::builder().serve_with_incoming(service, TcpIncoming::from(listener)));
    Ok(addr)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // steadfast's events only: h2 and tower's are noisy at `debug`.
    let only_steadfast = Targets::new().with_target("steadfast", tracing::Level::DEBUG);
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .finish()
        .with(only_steadfast)
        .init();

    // B: answers with the grpc-timeout it received; sheds its first call with UNAVAILABLE.
    let shed = Arc::new(AtomicBool::new(true));
    let b = serve(
        move |request: Request<String>| {
            let shed = Arc::clone(&shed);
            async move {
                let sent = request
                    .metadata()
                    .get("grpc-timeout")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                if shed.swap(false, Ordering::SeqCst) {
                    println!("    B: shedding a call sent grpc-timeout {sent}");
                    return Err(Status::unavailable("B is shedding load"));
                }
                println!("    B: answering a call sent grpc-timeout {sent}");
                Ok(Response::new(format!("B got {:?}", request.into_inner())))
            }
        },
        InboundDeadlineLayer::new(),
    )
    .await?;

    // A's client to B: the steadfast stack on a Channel. `PropagateDeadline` is innermost, so
    // each attempt carries the deadline as the timeouts narrowed it; the retry layer replays the
    // request body, turned back into tonic's `Body` for the Channel.
    let breaker = CircuitBreakerLayer::builder()
        .classify(GrpcErrorsAsFailures::new())
        .wait_in_open(Duration::from_secs(30))
        .build()?;
    let retry = RetryLayer::builder()
        .policy(GrpcPolicy::new())
        .replay_body(64 * 1024)
        .max_attempts(3) // 3 attempts = 2 retries
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .build()?;
    let stack = ResilienceStack::new()
        .retry(retry)
        .circuit_breaker(breaker.clone())
        .attempt_timeout(Duration::from_millis(500));
    let to_b: Client = BoxCloneService::new(
        ServiceBuilder::new()
            .map_err(into_status)
            .layer(stack)
            .layer(PropagateDeadlineLayer::new())
            .map_request(|request: http::Request<_>| request.map(Body::new))
            .service(Endpoint::from_shared(b)?.connect_lazy()),
    );

    // A: keeps 100 ms of the caller's deadline for the way back, and calls B.
    let a = serve(
        move |request: Request<String>| {
            let to_b = to_b.clone();
            async move {
                let left = Deadline::current().map(|deadline| deadline.remaining());
                println!("  A: {left:?} left, calling B");
                let answer = call(to_b, request.into_inner()).await?;
                Ok(Response::new(format!("A relays: {answer}")))
            }
        },
        InboundDeadlineLayer::new().safety_margin(Duration::from_millis(100)),
    )
    .await?;

    // The client: writes its deadline onto its call to A.
    let to_a: Client = BoxCloneService::new(
        ServiceBuilder::new()
            .map_err(into_status)
            .layer(PropagateDeadlineLayer::new())
            .service(Endpoint::from_shared(a)?.connect_lazy()),
    );

    for (what, deadline) in [
        ("a 2 s deadline (B sheds the first attempt; retried)", 2000),
        ("a 50 ms deadline, less than A's margin", 50),
    ] {
        println!("client: calling A with {what}");
        let answer = Deadline::after(Duration::from_millis(deadline))
            .scope(call(to_a.clone(), "hello".to_owned()))
            .await;
        match answer {
            Ok(answer) => println!("client: {answer}"),
            Err(status) => println!("client: {:?}: {}", status.code(), status.message()),
        }
    }

    println!("client: calling A with the breaker to B forced open");
    breaker.force_open();
    let answer = Deadline::after(Duration::from_secs(2))
        .scope(call(to_a, "hello".to_owned()))
        .await;
    if let Err(status) = answer {
        let pushback = status.metadata().get("grpc-retry-pushback-ms");
        println!(
            "client: {:?}: {} (grpc-retry-pushback-ms: {pushback:?})",
            status.code(),
            status.message()
        );
    }
    Ok(())
}
