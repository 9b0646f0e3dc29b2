//! `reconfigure` on a running layer: the new settings apply to the services it already made,
//! its state is kept, and a refused config changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steadfast::bulkhead::{self, BulkheadFull, BulkheadLayer};
use steadfast::circuit_breaker::{self, CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
use steadfast::config::{StackConfig, StackLayers};
use steadfast::retry::{self, RetryBudget, RetryLayer};
use steadfast::timeout::{self, Elapsed, TimeoutLayer};
use steadfast::{BoxError, ConfigError};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::files::{STACK_TOML, toml};

fn field(result: Result<(), ConfigError>) -> &'static str {
    result.expect_err("refused").field()
}

#[tokio::test(start_paused = true)]
async fn a_timeout_applies_to_the_services_it_already_made() {
    let layer = TimeoutLayer::from_config(&toml(r#"timeout = "100ms""#).unwrap()).unwrap();
    let slow = service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, BoxError>(1)
    });
    let mut service = layer.layer(slow);
    let error = service.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(error.is::<Elapsed>());

    layer
        .reconfigure(&toml(r#"timeout = "300ms""#).unwrap())
        .unwrap();
    assert_eq!(layer.timeout(), Duration::from_millis(300));
    assert_eq!(service.get_ref_timeout(), Duration::from_millis(300));
    assert_eq!(service.ready().await.unwrap().call(1).await.unwrap(), 1);

    // Refused: nothing changes.
    assert_eq!(
        field(layer.reconfigure(&toml(r#"timeout = "0s""#).unwrap())),
        "timeout"
    );
    assert_eq!(
        field(layer.reconfigure(&toml("name = \"other\"\ntimeout = \"1s\"").unwrap())),
        "name"
    );
    assert_eq!(layer.timeout(), Duration::from_millis(300));

    // A layer made by `new` has a fixed timeout.
    let fixed = TimeoutLayer::new(Duration::from_secs(1));
    assert!(!fixed.is_reconfigurable() && layer.is_reconfigurable());
    assert_eq!(
        field(fixed.reconfigure(&timeout::Config::default())),
        "timeout"
    );
    assert_eq!(fixed.timeout(), Duration::from_secs(1));
}

/// `Timeout::timeout` under a shorter name, for the assertion above.
trait TimeoutOf {
    fn get_ref_timeout(&self) -> Duration;
}

impl<S> TimeoutOf for steadfast::timeout::Timeout<S> {
    fn get_ref_timeout(&self) -> Duration {
        self.timeout()
    }
}

fn ok_service() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|x: u32| async move { Ok::<_, BoxError>(x) })
}

#[tokio::test(start_paused = true)]
async fn a_smaller_bulkhead_lets_calls_in_flight_finish() {
    let layer = BulkheadLayer::from_config(&toml("max_concurrent_calls = 2").unwrap()).unwrap();
    let mut first = layer.layer(ok_service());
    let mut second = first.clone();
    let mut third = first.clone();
    first.ready().await.unwrap();
    second.ready().await.unwrap();
    assert_eq!(layer.available_permits(), 0);

    layer
        .reconfigure(&toml("max_concurrent_calls = 1").unwrap())
        .unwrap();
    assert_eq!(layer.max_concurrent_calls(), 1);
    assert_eq!(layer.available_permits(), 0);
    // Both calls in flight finish; no new call gets in until only one would be.
    assert_eq!(first.call(1).await.unwrap(), 1);
    assert_eq!(layer.available_permits(), 0);
    let rejected = third.ready().await.unwrap().call(3).await.unwrap_err();
    assert!(rejected.is::<BulkheadFull>());
    assert_eq!(
        rejected
            .downcast_ref::<BulkheadFull>()
            .unwrap()
            .max_concurrent_calls(),
        1
    );
    assert_eq!(second.call(2).await.unwrap(), 2);
    assert_eq!(layer.available_permits(), 1);
    assert_eq!(third.ready().await.unwrap().call(3).await.unwrap(), 3);
    assert_eq!(layer.available_permits(), 1);

    // Refused: nothing changes.
    assert_eq!(
        field(layer.reconfigure(&toml("max_concurrent_calls = 0").unwrap())),
        "max_concurrent_calls"
    );
    assert_eq!(
        field(layer.reconfigure(&toml("name = \"other\"").unwrap())),
        "name"
    );
    assert_eq!(layer.max_concurrent_calls(), 1);
    assert_eq!(layer.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_larger_bulkhead_wakes_a_waiting_call_at_once() {
    let layer =
        BulkheadLayer::from_config(&toml("max_concurrent_calls = 1\nmax_wait = \"10s\"").unwrap())
            .unwrap();
    let mut holder = layer.layer(ok_service());
    holder.ready().await.unwrap();
    let mut waiter = layer.layer(ok_service());
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        waiter.ready().await.unwrap();
        waiter.call(2).await
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());

    let mut config: bulkhead::Config = toml("max_wait = \"10s\"").unwrap();
    config.max_concurrent_calls = 2;
    layer.reconfigure(&config).unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 2);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "woken by the grow, not by its timer"
    );
    assert_eq!(layer.available_permits(), 1);
    assert_eq!(holder.call(1).await.unwrap(), 1);
    assert_eq!(layer.available_permits(), 2);

    // `max_wait` applies to the waits that start afterwards.
    layer
        .reconfigure(&toml("max_concurrent_calls = 1\nmax_wait = \"0s\"").unwrap())
        .unwrap();
    assert_eq!(layer.max_wait(), Duration::ZERO);
    let mut holder = layer.layer(ok_service());
    holder.ready().await.unwrap();
    let started = Instant::now();
    let mut late = layer.layer(ok_service());
    assert!(
        late.ready()
            .await
            .unwrap()
            .call(3)
            .await
            .unwrap_err()
            .is::<BulkheadFull>()
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "fails fast");
}

fn failing() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) })
}

async fn calls<S>(service: &mut S, n: usize)
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    for _ in 0..n {
        let _ = service.ready().await.unwrap().call(1).await;
    }
}

fn breaker_config(text: &str) -> circuit_breaker::Config {
    let base = "sliding_window = { count = 10 }\nminimum_calls = 4\nfailure_rate_threshold = 1.0\n";
    toml(&format!("{base}{text}")).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_new_threshold_applies_to_the_current_window() {
    let breaker = CircuitBreakerLayer::from_config(&breaker_config("half_open_calls = 1")).unwrap();
    let mut failures = breaker.layer(failing());
    let mut successes = breaker.layer(ok_service());
    calls(&mut failures, 2).await;
    calls(&mut successes, 2).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls(), 4);

    let mut lower = breaker_config("half_open_calls = 1");
    lower.failure_rate_threshold = 0.5;
    breaker.reconfigure(&lower).unwrap();
    // The window is kept: 3 failures of 5 is over the new threshold.
    assert_eq!(breaker.snapshot().calls(), 4);
    calls(&mut failures, 1).await;
    assert_eq!(breaker.state(), State::Open);

    // The next open interval is the new `wait_in_open`; this one keeps its end (30 s).
    let mut quicker = lower.clone();
    quicker.wait_in_open = Duration::from_secs(5);
    breaker.reconfigure(&quicker).unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    calls(&mut failures, 1).await;
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn a_lower_probe_count_loses_no_probe_slot() {
    let breaker = CircuitBreakerLayer::from_config(&breaker_config(
        "half_open_calls = 3\nwait_in_open = \"1s\"",
    ))
    .unwrap();
    breaker.force_open();
    breaker.reset();
    let mut failures = breaker.layer(failing());
    calls(&mut failures, 4).await;
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), State::HalfOpen);

    // Two probes admitted (slots taken in `poll_ready`), then the cap drops to one.
    let mut a = breaker.layer(ok_service());
    let mut b = breaker.layer(ok_service());
    a.ready().await.unwrap();
    b.ready().await.unwrap();
    assert_eq!(breaker.snapshot().probes_in_flight(), 2);
    breaker
        .reconfigure(&breaker_config(
            "half_open_calls = 1\nwait_in_open = \"1s\"",
        ))
        .unwrap();
    let mut c = breaker.layer(ok_service());
    let rejected = c.ready().await.unwrap().call(3).await.unwrap_err();
    assert!(rejected.is::<CircuitOpen>());

    // The two admitted probes go away uncalled: their slots come back.
    drop(a);
    drop(b);
    assert_eq!(breaker.snapshot().probes_in_flight(), 0);
    assert_eq!(breaker.state(), State::HalfOpen);
    // One probe under the new cap judges the half-open.
    assert_eq!(c.ready().await.unwrap().call(3).await.unwrap(), 3);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cap_lowered_below_the_probes_in_judges_them_at_the_next_call() {
    let config = "half_open_calls = 3\nwait_in_open = \"1s\"";
    let breaker = CircuitBreakerLayer::from_config(&breaker_config(config)).unwrap();
    calls(&mut breaker.layer(failing()), 4).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    // One probe of three succeeds: not enough to judge under the cap of 3.
    calls(&mut breaker.layer(ok_service()), 1).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.snapshot().probes_in_flight(), 0);

    // Down to one probe: the one in is enough, and the next call judges it (a success).
    breaker
        .reconfigure(&breaker_config(
            "half_open_calls = 1\nwait_in_open = \"1s\"",
        ))
        .unwrap();
    let mut next = breaker.layer(ok_service());
    assert_eq!(next.ready().await.unwrap().call(7).await.unwrap(), 7);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_refuses_what_it_cannot_change_and_changes_nothing() {
    let breaker = CircuitBreakerLayer::from_config(&breaker_config("")).unwrap();
    let cases = [
        (
            "failure_rate_threshold",
            breaker_config("").failure_rate_threshold(2.0),
        ),
        (
            "sliding_window",
            breaker_config("").sliding_window(SlidingWindow::Count(0)),
        ),
        (
            "initial_state",
            breaker_config("initial_state = \"disabled\""),
        ),
        (
            "name",
            breaker_config("name = \"other\"").failure_rate_threshold(0.1),
        ),
    ];
    for (name, config) in cases {
        assert_eq!(field(breaker.reconfigure(&config)), name);
    }
    // Still the built threshold of 1.0: 3 failures of 4 keep it closed.
    let mut failures = breaker.layer(failing());
    let mut successes = breaker.layer(ok_service());
    calls(&mut successes, 1).await;
    calls(&mut failures, 3).await;
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_new_window_size_starts_a_new_window_in_the_same_state() {
    let breaker = CircuitBreakerLayer::from_config(&breaker_config("")).unwrap();
    let mut failures = breaker.layer(failing());
    let mut successes = breaker.layer(ok_service());
    calls(&mut failures, 3).await;
    assert_eq!(breaker.snapshot().calls(), 3);

    // A call admitted under the old window, still in flight.
    let mut held = breaker.layer(service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Err::<u32, BoxError>("late".into())
    }));
    let in_flight = tokio::spawn(held.ready().await.unwrap().call(1));
    tokio::task::yield_now().await;

    let wider = breaker_config("").sliding_window(SlidingWindow::Count(20));
    breaker.reconfigure(&wider).unwrap();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls(), 0, "a new, empty window");

    // The call admitted before finishes: dropped, not counted in the new window.
    assert!(in_flight.await.unwrap().is_err());
    assert_eq!(breaker.snapshot().calls(), 0);

    // The services made before the change count in the new window: 19 failures and a success
    // (a rate of 0.95, under the threshold of 1.0) fill it without tripping it; minimum_calls
    // of 4 in a window of 20.
    calls(&mut successes, 1).await;
    calls(&mut failures, 19).await;
    assert_eq!(breaker.snapshot().calls(), 20);
    assert_eq!(breaker.snapshot().failed_calls(), 19);
    assert_eq!(breaker.state(), State::Closed);
    // The success leaves the window of 20: every call in it failed.
    calls(&mut failures, 1).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_keeps_its_timer_and_counts_in_the_new_window_once_closed() {
    let config = "wait_in_open = \"10s\"\nhalf_open_calls = 1";
    let breaker = CircuitBreakerLayer::from_config(&breaker_config(config)).unwrap();
    let mut failures = breaker.layer(failing());
    let mut successes = breaker.layer(ok_service());
    calls(&mut failures, 4).await;
    assert_eq!(breaker.state(), State::Open);

    // To a time window of 60 s, with the failure run on: the breaker stays open, its interval
    // unchanged.
    let time = breaker_config(&format!("{config}\nconsecutive_failures = 2"))
        .sliding_window(SlidingWindow::Time(Duration::from_secs(60)));
    breaker.reconfigure(&time).unwrap();
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    calls(&mut successes, 1).await;
    assert_eq!(breaker.state(), State::Closed);

    // Closed in the time window: its calls count there, and two failures in a row (the run,
    // turned on) open it before minimum_calls.
    calls(&mut successes, 1).await;
    assert_eq!(breaker.snapshot().calls(), 1);
    calls(&mut failures, 2).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_call_detection_turned_on_times_the_calls_of_services_made_before() {
    let breaker = CircuitBreakerLayer::from_config(&breaker_config("")).unwrap();
    let mut slow = breaker.layer(service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok::<u32, BoxError>(1)
    }));
    calls(&mut slow, 4).await;
    assert_eq!(breaker.snapshot().slow_calls(), 0, "not timed");

    let timed = breaker_config("slow_call_duration = \"1s\"\nslow_call_rate_threshold = 0.5");
    breaker.reconfigure(&timed).unwrap();
    calls(&mut slow, 3).await;
    assert_eq!(breaker.snapshot().slow_calls(), 3);
    assert_eq!(breaker.state(), State::Closed);
    calls(&mut slow, 1).await;
    assert_eq!(breaker.state(), State::Open, "4 slow calls of 4");
}

/// Setters for the table above.
trait With {
    fn failure_rate_threshold(self, value: f64) -> Self;
    fn sliding_window(self, value: SlidingWindow) -> Self;
}

impl With for circuit_breaker::Config {
    fn failure_rate_threshold(mut self, value: f64) -> Self {
        self.failure_rate_threshold = value;
        self
    }

    fn sliding_window(mut self, value: SlidingWindow) -> Self {
        self.sliding_window = value;
        self
    }
}

#[tokio::test(start_paused = true)]
async fn retry_takes_its_new_attempts_and_keeps_its_budget() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let inner = service_fn(move |_: u32| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<u32, BoxError>("down".into()) }
    });
    let text = "max_attempts = 2\nbackoff = { constant = \"10ms\" }\nbudget = { unlimited = true }";
    let layer = RetryLayer::from_config(&toml(text).unwrap()).unwrap();
    let service = layer.layer(inner);
    assert!(service.clone().oneshot(1).await.is_err());
    assert_eq!(calls.swap(0, Ordering::SeqCst), 2);
    layer
        .reconfigure(&toml(&text.replace("max_attempts = 2", "max_attempts = 4")).unwrap())
        .unwrap();
    assert_eq!(layer.max_attempts(), 4);
    assert!(service.oneshot(1).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // A budget keeps what it holds across a new ratio and a new ttl.
    let budget = |ratio: f64, ttl: u64| {
        let mut config = retry::Config::default();
        config.budget = RetryBudget::new(ratio, 0, Duration::from_secs(ttl));
        config
    };
    let layer = RetryLayer::from_config(&budget(1.0, 10)).unwrap();
    let service = layer.layer(ok_service());
    for _ in 0..5 {
        service.clone().oneshot(1).await.unwrap();
    }
    assert_eq!(layer.budget_remaining(), 5);
    layer.reconfigure(&budget(0.5, 10)).unwrap();
    assert_eq!(layer.budget_remaining(), 5, "credited at the old ratio");
    service.clone().oneshot(1).await.unwrap();
    service.clone().oneshot(1).await.unwrap();
    assert_eq!(
        layer.budget_remaining(),
        6,
        "two requests at the new ratio of 0.5"
    );
    layer.reconfigure(&budget(0.5, 20)).unwrap();
    assert_eq!(layer.budget_remaining(), 6, "a new ttl keeps the balance");
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(
        layer.budget_remaining(),
        0,
        "which expires after the new ttl"
    );

    // Refused: nothing changes.
    let mut unlimited = budget(0.5, 20);
    unlimited.budget = RetryBudget::unlimited();
    assert_eq!(field(layer.reconfigure(&unlimited)), "budget");
    let mut zero = budget(0.5, 20);
    zero.max_attempts = 0;
    assert_eq!(field(layer.reconfigure(&zero)), "max_attempts");
    assert_eq!(field(layer.reconfigure(&budget(0.5, 90))), "budget");
    assert_eq!(layer.max_attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_stack_reconfigures_all_or_nothing() {
    let config: StackConfig = toml(STACK_TOML).unwrap();
    let layers = StackLayers::from_config(&config).unwrap();
    let bulkhead = layers.bulkhead.clone().unwrap();
    let attempt = layers.attempt_timeout.clone().unwrap();

    let mut bad = config.clone();
    bad.bulkhead.as_mut().unwrap().max_concurrent_calls = 32;
    bad.circuit_breaker.as_mut().unwrap().failure_rate_threshold = 2.0;
    assert_eq!(field(layers.reconfigure(&bad)), "failure_rate_threshold");
    assert_eq!(bulkhead.max_concurrent_calls(), 64, "nothing changed");

    let mut removed = config.clone();
    removed.bulkhead = None;
    assert_eq!(field(layers.reconfigure(&removed)), "bulkhead");
    let mut added = StackConfig::default();
    added.bulkhead = config.bulkhead.clone();
    let only_bulkhead = StackLayers::from_config(&added).unwrap();
    assert_eq!(field(only_bulkhead.reconfigure(&config)), "retry");

    let mut good = config.clone();
    good.bulkhead.as_mut().unwrap().max_concurrent_calls = 32;
    good.attempt_timeout.as_mut().unwrap().timeout = Duration::from_millis(250);
    layers.reconfigure(&good).unwrap();
    assert_eq!(bulkhead.max_concurrent_calls(), 32);
    assert_eq!(attempt.timeout(), Duration::from_millis(250));
    assert_eq!(attempt.name(), "attempt");
}

#[test]
fn unchanged_sections_reconfigure_to_themselves() {
    let config: StackConfig = toml(STACK_TOML).unwrap();
    let layers = StackLayers::from_config(&config).unwrap();
    layers.reconfigure(&config).unwrap();
    let timeout = layers.overall_timeout.as_ref().unwrap();
    assert_eq!(timeout.timeout(), Duration::from_secs(2));
}
