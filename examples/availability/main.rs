//! The availability demo: the same load, sent four ways to backends that fail.
//!
//! **One backend.** An axum backend on loopback sits behind steadfast's seeded chaos layer: 20 %
//! of its calls fail with a 503, 5 % of the others are held 400 ms (latency spikes), and from
//! 5 s to 10 s it is down (every call a 503). Three clients send the same load, 200 GET
//! requests per second for 20 s, each to its own copy of that backend, at the same time:
//!
//! 1. **bare**: the HTTP client alone;
//! 2. **naive retry**: tower's `RetryLayer` with a policy that retries any error or 5xx at once,
//!    up to 5 attempts, with no backoff and no budget;
//! 3. **steadfast**: fallback → retry (HTTP policy, backoff, budget) → overall timeout →
//!    circuit breaker (5xx are failures) → bulkhead → attempt timeout → the client.
//!
//! **Three replicas.** At the same time a fourth client, **pool**, sends the same load to three
//! replicas of the backend, each with its latency spikes: `a` is down from 5 s to 10 s (its
//! health check too), `b` fails 20 % of its calls throughout, `c` is healthy. Its stack is
//! steadfast's with a pool: fallback → retry → overall timeout → breaker → bulkhead → **pool**
//! (P2C, passive ejection, a `GET /health` probe every 250 ms) → attempt timeout → each replica.
//!
//! It prints a table per client (useful and fresh answers, errors, latency, backend calls per
//! request, breaker transitions, time to recover after the outage), a table per replica (calls
//! the pool sent it, during the outage too; ejections; when the dead one carried traffic again)
//! and writes `availability.svg`. `docs/availability.md` explains how to read them.
//!
//! ```text
//! cargo run --release --example availability
//! ```
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

use std::sync::Arc;
use std::time::Duration;

use steadfast::BoxError;
use steadfast::pool::probe;
use tokio::time::Instant;

use crate::client::{HttpClient, Pinned, Replica, ReplicaLog};
use crate::report::{ReplicaRow, Summary};
use crate::scenario::{
    BACKEND, DOWN, ERROR_RATE, HEALTH_INTERVAL, LATENCY, LATENCY_RATE, OUTAGE_END, OUTAGE_START,
    PROBE_TIMEOUT, REPLICAS, RUN_FOR, SEED,
};

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
    print!("replicas:");
    for faults in REPLICAS {
        print!(" {} ({}, spikes too)", faults.name, faults.role);
    }
    println!("; a health check every {} ms", HEALTH_INTERVAL.as_millis());
    println!(
        "load: 200 requests/s per client for {} s; running the four clients at once ...\n",
        RUN_FOR.as_secs()
    );

    // The run, the backends' scheduled outages and every offset are measured from here.
    let start = Instant::now();
    let (bare_port, bare_log) = backend::spawn(BACKEND, SEED, start).await?;
    let (naive_port, naive_log) = backend::spawn(BACKEND, SEED, start).await?;
    let (steadfast_port, steadfast_log) = backend::spawn(BACKEND, SEED, start).await?;
    let mut replica_ports = Vec::new();
    let mut replica_logs = Vec::new();
    for (index, faults) in (0u64..).zip(REPLICAS) {
        // Each replica its own sequence of faults.
        let (port, log) = backend::spawn(faults, SEED + 1 + index, start).await?;
        replica_ports.push(port);
        replica_logs.push(log);
    }
    let url = |port: u16| format!("http://127.0.0.1:{port}/item");

    let bare = HttpClient::new();
    let naive = client::naive_stack(HttpClient::new());
    let (steadfast, breaker, transitions) = client::steadfast_stack(start, HttpClient::new())?;

    let http = HttpClient::new();
    let sent: Vec<Arc<ReplicaLog>> = REPLICAS
        .iter()
        .map(|_| Arc::new(ReplicaLog::new(start)))
        .collect();
    let ports: Arc<[(&str, u16)]> = REPLICAS
        .iter()
        .map(|faults| faults.name)
        .zip(replica_ports.iter().copied())
        .collect();
    let health = probe::http_get(client::probe_client(), move |name: &&'static str| {
        let port = ports
            .iter()
            .find(|(key, _)| key == name)
            .map_or(0, |(_, port)| *port);
        format!("http://127.0.0.1:{port}/health")
    })
    .timeout(PROBE_TIMEOUT)
    .build()?;
    let replicas = REPLICAS
        .iter()
        .zip(&replica_ports)
        .zip(&sent)
        .map(|((faults, port), log)| Replica {
            name: faults.name,
            service: Pinned::new(http.clone(), *port, Arc::clone(log)),
        })
        .collect();
    let pool = client::pool(replicas, health)?;
    let (pooled, pool_breaker, pool_transitions) = client::pool_stack(start, pool.clone())?;

    let (bare, naive, steadfast, pooled) = tokio::try_join!(
        tokio::spawn(load::drive(bare, url(bare_port), start)),
        tokio::spawn(load::drive(naive, url(naive_port), start)),
        tokio::spawn(load::drive(steadfast, url(steadfast_port), start)),
        tokio::spawn(load::drive(
            pooled,
            "http://replicas/item".to_owned(),
            start
        )),
    )?;
    let (bare, naive, steadfast, pooled) = (bare?, naive?, steadfast?, pooled?);
    // Let the last calls that were cut by a timeout reach their backend's log.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let elapsed = start.elapsed();

    let transitions = transitions.lock().map(|t| t.clone()).unwrap_or_default();
    let pool_transitions = pool_transitions.lock().map(|t| t.len()).unwrap_or(0);
    let replica_calls = report::add(replica_logs.iter().map(|log| log.per_bucket()));
    let clients = [
        ("bare", bare, bare_log.per_bucket(), None),
        ("naive", naive, naive_log.per_bucket(), None),
        (
            "steadfast",
            steadfast,
            steadfast_log.per_bucket(),
            Some(transitions.len()),
        ),
        ("pool", pooled, replica_calls, Some(pool_transitions)),
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
    println!(
        "pool breaker: {pool_transitions} transitions; now {}",
        pool_breaker.state()
    );

    let endpoints = pool.endpoints();
    let rows: Vec<ReplicaRow> = REPLICAS
        .iter()
        .zip(&sent)
        .map(|(faults, log)| {
            let endpoint = endpoints.iter().find(|e| *e.key() == faults.name);
            ReplicaRow::new(
                *faults,
                &log.sent.per_bucket(),
                endpoint.map_or(0, |e| e.ejections()),
                endpoint.map(|e| e.state()),
                log.back_after(),
            )
        })
        .collect();
    println!();
    report::print_replicas(&rows);
    if let Some(pooled) = summaries.last() {
        report::print_claims(pooled, &rows[DOWN]);
    }

    let series: Vec<(&str, Vec<report::Point>)> = clients
        .iter()
        .map(|(name, records, calls, _)| (*name, report::series(records, calls)))
        .collect();
    let replica_series: Vec<(&str, Vec<(f64, f64)>)> = REPLICAS
        .iter()
        .zip(&sent)
        .map(|(faults, log)| (faults.name, report::load_series(&log.sent.per_bucket())))
        .collect();
    plot::draw(SVG, &series, &transitions, &replica_series, &rows[DOWN])?;
    println!(
        "\nwrote {SVG}; ran {:.1} s. The figures vary a little between runs: the decisions are \
         seeded, the clock is real.",
        elapsed.as_secs_f64()
    );
    Ok(())
}
