//! A flaky backend behind a circuit breaker.
//!
//! The backend answers well, then goes down for ten seconds, then recovers. A client sends a
//! request every 50 ms. The breaker opens during the outage, probes while it lasts, and closes
//! once the backend is back; each transition is printed as it happens, and the end shows how
//! many calls the breaker kept away from the failing backend.
//!
//! Runs on tokio's paused clock, so the 30 simulated seconds take a moment and every run prints
//! the same thing.
//!
//! ```text
//! cargo run --example circuit_breaker
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, Transition};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const OUTAGE: std::ops::Range<Duration> = Duration::from_secs(10)..Duration::from_secs(20);
const RUN_FOR: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(50);

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), BoxError> {
    let start = Instant::now();
    let backend_calls = Arc::new(AtomicU64::new(0));

    let backend = {
        let calls = backend_calls.clone();
        service_fn(move |request: u64| {
            calls.fetch_add(1, Ordering::Relaxed);
            let down = OUTAGE.contains(&start.elapsed());
            async move {
                // A failing backend is also a slow one: it times out after 2 s.
                if down {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Err::<u64, BoxError>("backend timed out".into())
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(request)
                }
            }
        })
    };

    let breaker = CircuitBreakerLayer::builder()
        .name("inventory")
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .failure_rate_threshold(0.5)
        .wait_in_open(Duration::from_secs(3))
        .half_open_calls(3)
        .on_transition(move |t: &Transition| {
            println!(
                "{:>6.2}s  breaker {} -> {}",
                start.elapsed().as_secs_f64(),
                t.from(),
                t.to()
            );
        })
        .build()?;

    let service = ServiceBuilder::new()
        .layer(breaker.clone())
        .service(backend);

    println!("backend down from {:?} to {:?}\n", OUTAGE.start, OUTAGE.end);
    let (mut ok, mut failed, mut rejected) = (0u64, 0u64, 0u64);
    let mut requests = Vec::new();
    let mut n = 0;
    while start.elapsed() < RUN_FOR {
        let mut service = service.clone();
        requests.push(tokio::spawn(
            async move { service.ready().await?.call(n).await },
        ));
        n += 1;
        tokio::time::sleep(EVERY).await;
    }
    for request in requests {
        match request.await? {
            Ok(_) => ok += 1,
            Err(err) if err.is::<CircuitOpen>() => rejected += 1,
            Err(_) => failed += 1,
        }
    }

    let snapshot = breaker.snapshot();
    println!();
    println!("requests sent            {n}");
    println!("  answered               {ok}");
    println!("  failed at the backend  {failed}");
    println!("  rejected by breaker    {rejected}  (each one a 2 s timeout saved)");
    println!(
        "backend calls            {}",
        backend_calls.load(Ordering::Relaxed)
    );
    println!("breaker state at the end {}", snapshot.state());
    Ok(())
}
