//! Every bad value is a `ConfigError` naming its setter and the allowed range; none panics.

use std::time::Duration;

use steadfast::ConfigError;
use steadfast::circuit_breaker::{Builder, CircuitBreakerLayer, SlidingWindow, State};

fn error(builder: Builder) -> ConfigError {
    builder
        .build()
        .expect_err("the builder should refuse this value")
}

fn check(builder: Builder, field: &str, range: &str) {
    let err = error(builder);
    assert_eq!(err.field(), field);
    let message = err.to_string();
    assert!(message.contains(field), "{message}");
    assert!(
        message.contains(range),
        "{message} should state the range {range}"
    );
}

fn builder() -> Builder {
    CircuitBreakerLayer::builder()
}

#[test]
fn defaults_build() {
    let layer = builder().build().unwrap();
    assert_eq!(layer.state(), State::Closed);
    assert_eq!(layer.name(), "default");
}

#[test]
fn thresholds_must_be_fractions_in_zero_one() {
    for bad in [0.0, -0.1, 1.0001, f64::NAN, f64::INFINITY] {
        check(
            builder().failure_rate_threshold(bad),
            "failure_rate_threshold",
            "(0, 1]",
        );
        check(
            builder().slow_call_rate_threshold(bad),
            "slow_call_rate_threshold",
            "(0, 1]",
        );
    }
    builder().failure_rate_threshold(1.0).build().unwrap();
    builder()
        .failure_rate_threshold(f64::MIN_POSITIVE)
        .build()
        .unwrap();
}

#[test]
fn windows_must_hold_something() {
    check(
        builder().sliding_window(SlidingWindow::Count(0)),
        "sliding_window",
        "[1, 10000]",
    );
    check(
        builder().sliding_window(SlidingWindow::Count(10_001)),
        "sliding_window",
        "[1, 10000]",
    );
    check(
        builder().sliding_window(SlidingWindow::Time(Duration::ZERO)),
        "sliding_window",
        "at least one bucket",
    );
    check(
        builder().sliding_window(SlidingWindow::Time(Duration::from_secs(100_000))),
        "sliding_window",
        "at most 10000 buckets",
    );
    check(
        builder()
            .sliding_window(SlidingWindow::Time(Duration::from_secs(1)))
            .bucket_width(Duration::from_millis(1)),
        "bucket_width",
        "at least 10ms",
    );
}

#[test]
fn counts_must_be_positive() {
    check(builder().minimum_calls(0), "minimum_calls", "[1, ");
    check(builder().half_open_calls(0), "half_open_calls", "[1, 2047]");
    check(
        builder().half_open_calls(2048),
        "half_open_calls",
        "[1, 2047]",
    );
    check(
        builder().consecutive_failures(0),
        "consecutive_failures",
        "[1, ",
    );
}

#[test]
fn durations_must_be_positive() {
    check(
        builder().wait_in_open(Duration::ZERO),
        "wait_in_open",
        "at least 100ms",
    );
    // The floor that bounds how fast the 16-bit generation can wrap.
    check(
        builder().wait_in_open(Duration::from_millis(99)),
        "wait_in_open",
        "at least 100ms",
    );
    assert!(
        builder()
            .wait_in_open(Duration::from_millis(100))
            .build()
            .is_ok()
    );
    check(
        builder().wait_in_open(Duration::from_secs(400 * 24 * 3600)),
        "wait_in_open",
        "at most",
    );
    check(
        builder().slow_call_duration(Duration::ZERO),
        "slow_call_duration",
        "more than zero",
    );
    check(
        builder().max_wait_in_half_open(Duration::ZERO),
        "max_wait_in_half_open",
        "more than zero",
    );
}

#[test]
fn open_backoff_and_jitter_are_checked() {
    check(
        builder().open_backoff(0.5, Duration::from_secs(60)),
        "open_backoff",
        "[1, 1000]",
    );
    check(
        builder().open_backoff(f64::NAN, Duration::from_secs(60)),
        "open_backoff",
        "[1, 1000]",
    );
    check(
        builder().open_backoff(2.0, Duration::from_secs(1)),
        "open_backoff",
        "at least wait_in_open",
    );
    check(builder().open_jitter(1.0), "open_jitter", "[0, 1)");
    check(builder().open_jitter(-0.1), "open_jitter", "[0, 1)");
}

#[test]
fn a_breaker_cannot_start_open() {
    check(
        builder().initial_state(State::Open),
        "initial_state",
        "Closed, ForcedOpen or Disabled",
    );
    check(
        builder().initial_state(State::HalfOpen),
        "initial_state",
        "Closed, ForcedOpen or Disabled",
    );
}
