//! The availability demo: the same load, sent three ways to a backend that fails.
//!
//! An axum backend on loopback sits behind steadfast's seeded chaos layer: 20 % of its calls
//! fail with a 503, 5 % of the others are held 400 ms (latency spikes), and from 5 s to 10 s it
//! is down (every call a 503). Three clients send the same load, 200 GET requests per second
//! for 20 s, each to its own copy of that backend, at the same time:
//!
//! 1. **bare**: the HTTP client alone;
//! 2. **naive retry**: tower's `RetryLayer` with a policy that retries any error or 5xx at once,
//!    up to 5 attempts, with no backoff and no budget;
//! 3. **steadfast**: fallback → retry (HTTP policy, backoff, budget) → overall timeout →
//!    circuit breaker (5xx are failures) → bulkhead → attempt timeout → the client.
//!
//! It prints a table per client (useful answers, errors, latency, backend calls per request,
//! breaker transitions, time to recover after the outage) and writes `availability.svg`.
//! `docs/availability.md` explains how to read both.
//!
//! ```text
//! cargo run --release --example availability --features chaos,http
//! ```
//!
//! (the example needs the `chaos` and `http` features besides the default ones).
//!
//! Every decision is seeded (the chaos layer's by the position of each call at its backend),
//! but the run is in real time: the figures vary a little from run to run with scheduling.

mod backend;
mod client;
mod load;
mod plot;
mod report;
mod scenario;
#[cfg(test)]
mod tests;

use std::time::Duration;

use steadfast::BoxError;
use tokio::time::Instant;

use crate::client::HttpClient;
use crate::report::Summary;
use crate::scenario::{ERROR_RATE, LATENCY, LATENCY_RATE, OUTAGE_END, OUTAGE_START, RUN_FOR, SEED};

const SVG: &str = "availability.svg";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!(
        "backend: {:.0} % errors (503), {:.0} % of calls held {} ms, down from {} s to {} s; seed {SEED}",
        ERROR_RATE * 100.0,
        LATENCY_RATE * 100.0,
        LATENCY.as_millis(),
        OUTAGE_START.as_secs(),
        OUTAGE_END.as_secs(),
    );
    println!(
        "load: 200 requests/s per client for {} s; running the three clients at once ...\n",
        RUN_FOR.as_secs()
    );

    // The run, the backends' scheduled outages and every offset are measured from here.
    let start = Instant::now();
    let (bare_port, bare_log) = backend::spawn("bare", start).await?;
    let (naive_port, naive_log) = backend::spawn("naive-retry", start).await?;
    let (steadfast_port, steadfast_log) = backend::spawn("steadfast", start).await?;
    let url = |port: u16| format!("http://127.0.0.1:{port}/item");

    let bare = HttpClient::new();
    let naive = client::naive_stack(HttpClient::new());
    let (steadfast, breaker, transitions) = client::steadfast_stack(start, HttpClient::new())?;

    let (bare, naive, steadfast) = tokio::try_join!(
        tokio::spawn(load::drive(bare, url(bare_port), start)),
        tokio::spawn(load::drive(naive, url(naive_port), start)),
        tokio::spawn(load::drive(steadfast, url(steadfast_port), start)),
    )?;
    let (bare, naive, steadfast) = (bare?, naive?, steadfast?);
    // Let the last calls that were cut by a timeout reach their backend's log.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let elapsed = start.elapsed();

    let transitions = transitions.lock().map(|t| t.clone()).unwrap_or_default();
    let clients = [
        ("bare", bare, bare_log.per_bucket(), None),
        ("naive", naive, naive_log.per_bucket(), None),
        (
            "steadfast",
            steadfast,
            steadfast_log.per_bucket(),
            Some(transitions.len()),
        ),
    ];
    let summaries: Vec<Summary> = clients
        .iter()
        .map(|(name, records, calls, transitions)| Summary::new(name, records, calls, *transitions))
        .collect();
    report::print(&summaries);

    print!("\nsteadfast breaker:");
    for (at, transition) in &transitions {
        print!(" {:.2} s {}", at.as_secs_f64(), transition.to());
    }
    println!("; now {}", breaker.state());

    let series: Vec<(&str, Vec<report::Point>)> = clients
        .iter()
        .map(|(name, records, calls, _)| (*name, report::series(records, calls)))
        .collect();
    plot::draw(SVG, &series, &transitions)?;
    println!(
        "\nwrote {SVG}; ran {:.1} s. The figures vary a little between runs: the decisions are \
         seeded, the clock is real.",
        elapsed.as_secs_f64()
    );
    Ok(())
}
