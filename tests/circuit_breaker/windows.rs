//! When a closed breaker opens: thresholds, minimum calls, count and time windows, slow calls,
//! consecutive failures.

use steadfast::circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn opens_at_the_failure_rate_threshold_inclusive() {
    let layer = count_builder(10).minimum_calls(10).build().unwrap();
    let (mut svc, backend) = service(&layer);
    for _ in 0..5 {
        ok(&mut svc).await;
    }
    for _ in 0..4 {
        fail(&mut svc).await;
    }
    assert_eq!(layer.state(), State::Closed, "9 calls: below minimum_calls");
    let snap = layer.snapshot();
    assert_eq!((snap.calls(), snap.failed_calls()), (9, 4));
    fail(&mut svc).await;
    // 5 of 10 = 0.5, exactly the threshold.
    assert_eq!(layer.state(), State::Open);
    rejected(&mut svc).await;
    assert_eq!(
        backend.calls(),
        10,
        "the rejected call never reached the backend"
    );
}

#[tokio::test(start_paused = true)]
async fn stays_closed_just_below_the_threshold() {
    let layer = count_builder(10)
        .minimum_calls(10)
        .failure_rate_threshold(0.3)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    for _ in 0..8 {
        ok(&mut svc).await;
    }
    fail(&mut svc).await;
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Closed, "2 of 10 < 0.3");
    // The next failure evicts the oldest success: 3 of 10 = 0.3 opens (no rounding slip).
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_holds_the_breaker_closed() {
    let layer = count_builder(10).minimum_calls(5).build().unwrap();
    let (mut svc, _) = service(&layer);
    for _ in 0..4 {
        fail(&mut svc).await;
    }
    assert_eq!(
        layer.state(),
        State::Closed,
        "100 % failures, but only 4 calls"
    );
    // The fifth outcome is a success, yet 4 of 5 failed: it opens.
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_above_a_count_window_is_capped() {
    let layer = count_builder(4).minimum_calls(100).build().unwrap();
    let (mut svc, _) = service(&layer);
    for _ in 0..3 {
        fail(&mut svc).await;
    }
    assert_eq!(layer.state(), State::Closed);
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Open, "a full window of 4 is enough");
}

#[tokio::test(start_paused = true)]
async fn count_window_forgets_the_oldest_outcome() {
    let layer = count_builder(4)
        .minimum_calls(4)
        .failure_rate_threshold(0.75)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await; // [F]
    fail(&mut svc).await; // [F F]
    ok(&mut svc).await; // [F F S]
    ok(&mut svc).await; // [F F S S]: 0.5
    assert_eq!(layer.snapshot().failed_calls(), 2);
    ok(&mut svc).await; // [F S S S]: 0.25
    ok(&mut svc).await; // [S S S S]
    assert_eq!(layer.snapshot().failed_calls(), 0);
    assert_eq!(layer.snapshot().calls(), 4);
    fail(&mut svc).await; // [S S S F]
    fail(&mut svc).await; // [S S F F]
    assert_eq!(layer.state(), State::Closed);
    fail(&mut svc).await; // [S F F F]: 0.75
    assert_eq!(layer.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_buckets() {
    let layer = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Time(secs(10)))
        .bucket_width(secs(1))
        .minimum_calls(3)
        .wait_in_open(secs(5))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    fail(&mut svc).await;
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::Open, "2 of 3 within the window");

    layer.reset();
    fail(&mut svc).await;
    fail(&mut svc).await;
    assert_eq!(layer.snapshot().calls(), 2);
    // Ten buckets later the two failures have left the window.
    advance(secs(10)).await;
    assert_eq!(layer.snapshot().calls(), 0);
    ok(&mut svc).await;
    ok(&mut svc).await;
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Closed, "1 of 3 in the window");
    assert_eq!(
        (layer.snapshot().calls(), layer.snapshot().failed_calls()),
        (3, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_bucket_expires_exactly_at_the_window_length() {
    let build = || {
        CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Time(secs(3)))
            .minimum_calls(2)
            .build()
            .unwrap()
    };
    // The breaker's buckets start when it is built: a failure now is in bucket 0.
    let layer = build();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    advance(ms(2999)).await;
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::Open, "one tick before: 1 of 2 failed");

    let layer = build();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    advance(ms(3000)).await;
    ok(&mut svc).await;
    assert_eq!(
        layer.state(),
        State::Closed,
        "at 3 s bucket 0 has left the window"
    );
    assert_eq!(layer.snapshot().calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker() {
    let layer = count_builder(4)
        .minimum_calls(2)
        .slow_call_duration(secs(1))
        .slow_call_rate_threshold(0.5)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    send(&mut svc, Call::Slow(ms(999), false)).await.unwrap();
    send(&mut svc, Call::Slow(ms(999), false)).await.unwrap();
    assert_eq!(layer.snapshot().slow_calls(), 0, "999 ms is not slow");
    assert_eq!(layer.state(), State::Closed);
    // Exactly the slow-call duration counts as slow: 1 of 3.
    send(&mut svc, Call::Slow(secs(1), false)).await.unwrap();
    assert_eq!(layer.snapshot().slow_calls(), 1);
    assert_eq!(layer.state(), State::Closed);
    send(&mut svc, Call::Slow(secs(2), false)).await.unwrap();
    // 2 slow of the last 4: the slow-call rate reaches 0.5 while every call succeeded.
    assert_eq!(layer.state(), State::Open);
    assert_eq!(layer.snapshot().failed_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_are_not_timed_without_a_slow_call_duration() {
    let layer = count_builder(2).minimum_calls(2).build().unwrap();
    let (mut svc, _) = service(&layer);
    send(&mut svc, Call::Slow(secs(3600), false)).await.unwrap();
    send(&mut svc, Call::Slow(secs(3600), false)).await.unwrap();
    assert_eq!(layer.snapshot().slow_calls(), 0);
    assert_eq!(layer.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_the_breaker() {
    let layer = count_builder(100)
        .minimum_calls(100)
        .consecutive_failures(3)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    fail(&mut svc).await;
    ok(&mut svc).await; // ends the run
    fail(&mut svc).await;
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Closed);
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Open, "3 in a row");
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_start_over_after_a_reset() {
    let layer = count_builder(100)
        .minimum_calls(100)
        .consecutive_failures(2)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    layer.reset();
    fail(&mut svc).await;
    assert_eq!(
        layer.state(),
        State::Closed,
        "the run before the reset is gone"
    );
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Open);
}
