//! Unit tests of the demo's pieces: the three clients' stacks on paused time, and the figures.
//! Run with `cargo test --all-features --example availability`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::Empty;
use steadfast::BoxError;
use steadfast::chaos::ChaosLayer;
use steadfast::circuit_breaker::State;
use steadfast::pool::EndpointState;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::client::{
    FALLBACK_HEADER, Pinned, Replica, ReplicaLog, Req, Res, is_open, naive_stack, pool, pool_stack,
    steadfast_stack,
};
use crate::load::{Answer, Record, drive};
use crate::plot::periods;
use crate::report::{CLAIMED, ReplicaRow, Summary, add};
use crate::scenario::{
    DOWN, Faults, HEALTH_INTERVAL, LATENCY, LATENCY_RATE, OUTAGE_END, OUTAGE_START, REPLICAS,
    RUN_FOR, SEED,
};

fn request() -> Req {
    Request::get("http://127.0.0.1/item")
        .body(Empty::new())
        .unwrap()
}

/// A backend that counts its calls and answers 200 while `healthy`, 503 otherwise.
fn backend(
    healthy: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + 'static {
    service_fn(move |_: Req| {
        calls.fetch_add(1, Ordering::SeqCst);
        let status = if healthy.load(Ordering::SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        async move {
            let mut response = Response::new(Bytes::from_static(b"item"));
            *response.status_mut() = status;
            Ok::<_, BoxError>(response)
        }
    })
}

fn switchable(healthy: bool) -> (Arc<AtomicBool>, Arc<AtomicU32>) {
    (
        Arc::new(AtomicBool::new(healthy)),
        Arc::new(AtomicU32::new(0)),
    )
}

#[tokio::test(start_paused = true)]
async fn naive_retry_sends_a_503_five_times_and_returns_it() {
    let (healthy, calls) = switchable(false);
    let response = naive_stack(backend(healthy, calls.clone()))
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn naive_retry_sends_a_success_once() {
    let (healthy, calls) = switchable(true);
    let response = naive_stack(backend(healthy, calls.clone()))
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn steadfast_answers_a_healthy_backend_itself() {
    let (healthy, calls) = switchable(true);
    let (service, breaker, transitions) =
        steadfast_stack(Instant::now(), backend(healthy, calls.clone())).unwrap();
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key(FALLBACK_HEADER));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(breaker.state(), State::Closed);
    assert!(transitions.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn steadfast_falls_back_opens_on_an_outage_and_closes_after_it() {
    let (healthy, calls) = switchable(false);
    let (service, breaker, transitions) =
        steadfast_stack(Instant::now(), backend(healthy.clone(), calls.clone())).unwrap();

    // Down: every request is answered by the fallback; the breaker opens at its 20th failed
    // attempt (minimum_calls), and no attempt reaches the backend after that.
    for _ in 0..50 {
        let response = service.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key(FALLBACK_HEADER));
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 20);

    // Back up: after wait_in_open, 5 probes succeed and close the breaker.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..5 {
        let response = service.clone().oneshot(request()).await.unwrap();
        assert!(!response.headers().contains_key(FALLBACK_HEADER));
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(calls.load(Ordering::SeqCst), 25);
    let entered: Vec<State> = transitions
        .lock()
        .unwrap()
        .iter()
        .map(|(_, transition)| transition.to())
        .collect();
    assert_eq!(entered, [State::Open, State::HalfOpen, State::Closed]);
}

fn record(sent_ms: u64, latency_ms: u64, answer: Answer) -> Record {
    Record {
        sent: Duration::from_millis(sent_ms),
        latency: Duration::from_millis(latency_ms),
        answer,
    }
}

#[test]
fn summary_counts_answers_and_ranks_latencies() {
    let records: Vec<Record> = (1..=100)
        .map(|n| {
            let answer = match n % 10 {
                0 => Answer::Error,
                1 => Answer::Fallback,
                _ => Answer::Success,
            };
            record(n, n, answer)
        })
        .collect();
    let summary = Summary::new("test", &records, &[30, 40, 80], None);
    assert_eq!(summary.requests, 100);
    assert_eq!(
        (summary.successes, summary.fallbacks, summary.errors),
        (80, 10, 10)
    );
    assert_eq!(summary.p50, Duration::from_millis(50));
    assert_eq!(summary.p99, Duration::from_millis(99));
    assert_eq!(summary.max, Duration::from_millis(100));
    assert_eq!(summary.backend_calls, 150);
    // Every request was sent, and every backend call arrived (buckets 0 to 2: before 1.5 s),
    // in the healthy phase.
    assert_eq!(summary.phases[0].requests, 100);
    assert_eq!(summary.phases[0].useful, 90);
    assert_eq!(summary.phases[0].backend_calls, 150);
    assert_eq!(summary.phases[1].requests, 0);
}

/// A request every 5 ms for the whole run: successes, except errors from the start of the
/// outage until `errors_until`.
fn run_with_errors_until(errors_until: Duration) -> Vec<Record> {
    let every = 5;
    (0..RUN_FOR.as_millis() as u64 / every)
        .map(|n| {
            let sent = Duration::from_millis(n * every);
            let answer = if (OUTAGE_START..errors_until).contains(&sent) {
                Answer::Error
            } else {
                Answer::Success
            };
            record(n * every, 1, answer)
        })
        .collect()
}

#[test]
fn recovery_is_the_end_of_the_first_good_bucket_after_the_outage() {
    // Errors until 600 ms after the outage: the 250 ms bucket from 500 ms is 60 % good (not
    // enough); the next one is all good and ends 1 s after the outage.
    let records = run_with_errors_until(OUTAGE_END + Duration::from_millis(600));
    let summary = Summary::new("test", &records, &[], None);
    assert_eq!(summary.recovery, Some(Duration::from_secs(1)));

    // Errors exactly until the end of the outage: the first bucket is good.
    let records = run_with_errors_until(OUTAGE_END);
    let summary = Summary::new("test", &records, &[], None);
    assert_eq!(summary.recovery, Some(Duration::from_millis(250)));

    // Errors to the end: never.
    let records = run_with_errors_until(RUN_FOR);
    let summary = Summary::new("test", &records, &[], None);
    assert_eq!(summary.recovery, None);
    assert_eq!(summary.phases[1].useful, 0);
    assert_eq!(summary.phases[2].useful, 0);
}

#[test]
fn breaker_periods_follow_its_transitions() {
    let s = Duration::from_millis;
    let changes = [
        (s(5_000), State::Open),
        (s(6_000), State::HalfOpen),
        (s(6_010), State::Open),
        (s(7_000), State::HalfOpen),
        (s(7_020), State::Closed),
        (s(15_000), State::ForcedOpen),
    ];
    assert_eq!(
        periods(&changes, is_open),
        [(5.0, 6.0), (6.01, 7.0), (15.0, RUN_FOR.as_secs_f64())]
    );
    assert_eq!(
        periods(&changes, |state| state == State::HalfOpen),
        [(6.0, 6.01), (7.0, 7.02)]
    );
    assert!(periods(&[], is_open).is_empty());
}

// ---- the pool scenario -----------------------------------------------------------------------

/// A replica on paused time: a handler that answers 200 at once, behind the chaos layer with
/// the replica's faults (its seed, its latency spikes, its outage on tokio's clock).
fn chaos_replica(
    faults: Faults,
    seed: u64,
) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    let mut chaos = ChaosLayer::builder()
        .name(faults.name)
        .error_rate(faults.error_rate)
        .latency(LATENCY_RATE, LATENCY)
        .seed(seed);
    if faults.outage {
        chaos = chaos.outage_at(OUTAGE_START, OUTAGE_END - OUTAGE_START);
    }
    let chaos = chaos
        .error_response(|| {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        })
        .build()
        .unwrap();
    chaos.layer(service_fn(|_: Req| async {
        Ok::<_, BoxError>(Response::new(Bytes::from_static(b"item")))
    }))
}

/// The whole pool scenario on paused time: the four clients' load through the pool stack over
/// three replicas with the scenario's faults, and a health check that fails while a replica is
/// down. Returns the pool client's summary and the replicas' rows.
async fn run_pool_scenario() -> (Summary, Vec<ReplicaRow>, usize) {
    let start = Instant::now();
    let logs: Vec<Arc<ReplicaLog>> = REPLICAS
        .iter()
        .map(|_| Arc::new(ReplicaLog::new(start)))
        .collect();
    let replicas = (0u64..)
        .zip(REPLICAS)
        .zip(&logs)
        .map(|((index, faults), log)| Replica {
            name: faults.name,
            service: Pinned::new(
                chaos_replica(faults, SEED + 1 + index),
                8000,
                Arc::clone(log),
            ),
        })
        .collect();
    let probe = move |name: &'static str| {
        let down = REPLICAS.iter().any(|f| f.name == name && f.outage)
            && (OUTAGE_START..OUTAGE_END).contains(&start.elapsed());
        async move { !down }
    };
    let pool = pool(replicas, probe).unwrap();
    let (service, _, transitions) = pool_stack(start, pool.clone()).unwrap();
    let records = drive(service, "http://replicas/item".to_owned(), start)
        .await
        .unwrap();

    let sent: Vec<Vec<u64>> = logs.iter().map(|log| log.sent.per_bucket()).collect();
    let summary = Summary::new("pool", &records, &add(sent.clone()), Some(0));
    let endpoints = pool.endpoints();
    let rows = REPLICAS
        .iter()
        .zip(&sent)
        .zip(&logs)
        .map(|((faults, sent), log)| {
            let endpoint = endpoints.iter().find(|e| *e.key() == faults.name).unwrap();
            ReplicaRow::new(
                *faults,
                sent,
                endpoint.ejections(),
                Some(endpoint.state()),
                log.back_after(),
            )
        })
        .collect();
    let transitions = transitions.lock().unwrap().len();
    (summary, rows, transitions)
}

/// The claims of the README and `docs/availability.md`, on paused time: useful and fresh
/// answers of at least 99.9 %, few calls sent to the dead replica, and back within a second
/// after it healed.
#[tokio::test(start_paused = true)]
async fn the_pool_answers_fresh_while_a_replica_is_down() {
    let (summary, rows, transitions) = run_pool_scenario().await;
    println!("{summary:?}\n{rows:?}");
    assert_eq!(summary.requests, 4000);
    let useful = (summary.successes + summary.fallbacks) as f64 / summary.requests as f64;
    let fresh = summary.successes as f64 / summary.requests as f64;
    assert!(useful >= CLAIMED, "useful {useful}");
    assert!(
        fresh >= CLAIMED,
        "fresh {fresh} ({} fallbacks)",
        summary.fallbacks
    );
    assert_eq!(summary.errors, 0);
    // The breaker above the pool never opens: the pool hides the replicas' failures from it.
    assert_eq!(transitions, 0);

    let down = &rows[DOWN];
    // Passive ejection after 5 failures in a row (a timed-out latency spike just before the
    // outage counts in the run), then the health check: a handful of calls reach the dead
    // replica, against about 330 it would have had.
    let in_outage = down.sent_in_outage.unwrap();
    assert!(
        (1..=20).contains(&in_outage),
        "{in_outage} calls in the outage"
    );
    assert!(down.ejections >= 1);
    // Back after two passed probes (`healthy_threshold`) at most 250 ms apart, plus the time
    // to the first one.
    let back = down
        .back_after
        .expect("the dead replica carried traffic again");
    assert!(back <= HEALTH_INTERVAL * 3, "back after {back:?}");
    assert_eq!(down.state, Some(EndpointState::Healthy));
    // The erring replica is ejected on its failure rate, again and again (each time for longer),
    // and takes far less than a third of the calls; its failures are retried elsewhere.
    let erring = &rows[1];
    assert!(erring.ejections >= 2, "{erring:?}");
    assert!(erring.sent < rows[2].sent / 2, "{rows:?}");
}

#[test]
fn a_replica_row_counts_the_calls_sent_during_the_outage() {
    // 500 ms buckets: 5 s to 10 s are buckets 10 to 19.
    let mut sent = vec![10u64; 40];
    sent[10] = 7;
    sent[19] = 1;
    for bucket in &mut sent[11..19] {
        *bucket = 0;
    }
    let row = ReplicaRow::new(
        REPLICAS[DOWN],
        &sent,
        1,
        Some(EndpointState::Healthy),
        Some(Duration::from_millis(300)),
    );
    assert_eq!(row.sent_in_outage, Some(8));
    assert_eq!(row.sent, 10 * 30 + 8);
    assert_eq!(row.back_after, Some(Duration::from_millis(300)));

    // A replica that never goes down has neither figure.
    let row = ReplicaRow::new(REPLICAS[1], &sent, 0, None, Some(Duration::ZERO));
    assert_eq!((row.sent_in_outage, row.back_after), (None, None));
}

#[test]
fn calls_of_replicas_add_up_per_bucket() {
    assert_eq!(add([vec![1, 2, 3], vec![10, 20], vec![]]), [11, 22, 3]);
    assert!(add(Vec::<Vec<u64>>::new()).is_empty());
}
