//! A small game day: a healthy backend behind a chaos layer that fails 10 % of calls, slows
//! 20 % of them and takes the backend down for a scheduled window, with retry and a circuit
//! breaker in front. Shows what each layer does through `tracing` events, then the counts.
//!
//! Run with `cargo run --example chaos --features chaos`.

use std::time::Duration;

use steadfast::chaos::{ChaosLayer, InjectedFault};
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow};
use steadfast::retry::{Backoff, Jitter, RetryLayer};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .init();

    let chaos = ChaosLayer::builder()
        .name("inventory")
        .error_rate(0.1)
        .latency_range(0.2, Duration::from_millis(5), Duration::from_millis(25))
        .outage_at(Duration::from_millis(400), Duration::from_millis(300))
        .seed(2024)
        .build()?;
    let breaker = CircuitBreakerLayer::builder()
        .name("inventory")
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(5)
        .wait_in_open(Duration::from_millis(200))
        .half_open_calls(2)
        .build()?;
    let retry = RetryLayer::builder()
        .name("inventory")
        .max_attempts(2) // 2 attempts = 1 retry
        .backoff(Backoff::constant(Duration::from_millis(5)).jitter(Jitter::None))
        .build()?;

    let service = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker.clone())
        .layer(chaos.clone())
        .service(service_fn(|item: u32| async move {
            Ok::<_, BoxError>(format!("item {item}: in stock"))
        }));

    let (mut ok, mut injected, mut rejected) = (0, 0, 0);
    for item in 0..100 {
        match service.clone().oneshot(item).await {
            Ok(_) => ok += 1,
            Err(error) if error.is::<InjectedFault>() => injected += 1,
            Err(error) if error.is::<CircuitOpen>() => rejected += 1,
            Err(error) => return Err(error),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let counts = chaos.handle().counts();
    println!("answered {ok}, failed by chaos {injected}, rejected by the breaker {rejected}");
    println!(
        "chaos judged {} attempts: {} errors, {} in the outage, {} delayed",
        counts.calls(),
        counts.errors(),
        counts.outages(),
        counts.delays()
    );
    println!("breaker: {}", breaker.state());
    Ok(())
}
