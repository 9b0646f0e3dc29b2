//! Retry with backoff, a shared budget and a deadline, with the retries shown as `tracing`
//! events.
//!
//! Run with `cargo run --example retry`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::deadline::Deadline;
use steadfast::retry::{Backoff, Jitter, RetryBudget, RetryLayer};
use tower::{Layer, ServiceExt, service_fn};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .init();

    let layer = RetryLayer::builder()
        .name("inventory")
        .max_attempts(4) // 4 attempts = 3 retries
        .backoff(
            Backoff::exponential(Duration::from_millis(20))
                .jitter(Jitter::Full)
                .max_delay(Duration::from_millis(200)),
        )
        .budget(RetryBudget::new(0.2, 5, Duration::from_secs(10)))
        .on_retry(
            |attempt: u32, delay: Duration, _cause: &Result<String, BoxError>| {
                println!("hook: attempt {attempt} in {delay:?}");
            },
        )
        .build()?;

    // Fails twice, then answers.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let flaky = service_fn(move |item: &'static str| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= 2 {
                Err::<String, BoxError>(format!("attempt {n}: connection reset").into())
            } else {
                Ok(format!("{item}: 42 in stock"))
            }
        }
    });

    let answer = layer.layer(flaky.clone()).oneshot("widgets").await?;
    println!("{answer} after {} attempts", calls.load(Ordering::SeqCst));
    println!("budget left: {} retries", layer.budget_remaining());

    // Under a 30 ms deadline, a retry that cannot finish in time is not attempted.
    calls.store(0, Ordering::SeqCst);
    let result = Deadline::after(Duration::from_millis(30))
        .scope(layer.layer(flaky).oneshot("gadgets"))
        .await;
    println!(
        "under a deadline: {:?} after {} attempts",
        result.map_err(|error| error.to_string()),
        calls.load(Ordering::SeqCst)
    );
    Ok(())
}
