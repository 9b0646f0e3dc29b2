//! Unit tests of the demo's pieces: the three clients' stacks on paused time, and the figures.
//! Run with `cargo test --all-features --example availability`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::Empty;
use steadfast::BoxError;
use steadfast::circuit_breaker::State;
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

use crate::client::{FALLBACK_HEADER, Req, Res, is_open, naive_stack, steadfast_stack};
use crate::load::{Answer, Record};
use crate::plot::periods;
use crate::report::Summary;
use crate::scenario::{OUTAGE_END, OUTAGE_START, RUN_FOR};

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
