//! Manual control: forced open, disabled, reset, shadow mode.

use std::sync::{Arc, Mutex};

use steadfast::circuit_breaker::{State, Transition};

use crate::support::*;

fn recording_builder(
    seen: &Arc<Mutex<Vec<(State, State)>>>,
) -> steadfast::circuit_breaker::Builder {
    let log = seen.clone();
    count_builder(1)
        .on_transition(move |t: &Transition| log.lock().unwrap().push((t.from(), t.to())))
}

#[tokio::test(start_paused = true)]
async fn force_open_rejects_until_reset() {
    let seen = Arc::default();
    let layer = recording_builder(&seen).build().unwrap();
    let (mut svc, backend) = service(&layer);
    layer.force_open();
    assert_eq!(layer.state(), State::ForcedOpen);
    let open = rejected(&mut svc).await;
    assert_eq!(open.state(), State::ForcedOpen);
    assert_eq!(open.retry_after(), secs(10), "a hint: wait_in_open");
    // Time does not end a forced open.
    advance(secs(3600)).await;
    rejected(&mut svc).await;
    assert_eq!(backend.calls(), 0);

    layer.force_open(); // same state: nothing happens, nothing is reported
    layer.reset();
    assert_eq!(layer.state(), State::Closed);
    ok(&mut svc).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn disabled_lets_everything_through_and_counts_nothing() {
    let seen = Arc::default();
    let layer = recording_builder(&seen).build().unwrap();
    let (mut svc, backend) = service(&layer);
    layer.disable();
    layer.disable();
    for _ in 0..5 {
        fail(&mut svc).await;
    }
    assert_eq!(layer.state(), State::Disabled);
    assert_eq!(backend.calls(), 5);
    assert_eq!(layer.snapshot().calls(), 0);
    layer.reset();
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Open, "counting again after reset");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::Disabled),
            (State::Disabled, State::Closed),
            (State::Closed, State::Open)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn reset_from_open_closes_with_an_empty_window() {
    let layer = count_builder(3).minimum_calls(3).build().unwrap();
    let (mut svc, _) = service(&layer);
    for _ in 0..3 {
        fail(&mut svc).await;
    }
    assert_eq!(layer.state(), State::Open);
    layer.reset();
    assert_eq!(layer.state(), State::Closed);
    fail(&mut svc).await;
    fail(&mut svc).await;
    assert_eq!(
        layer.state(),
        State::Closed,
        "2 calls: the old failures are gone"
    );
    assert_eq!(layer.snapshot().calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn reset_while_closed_empties_the_window_silently() {
    let seen = Arc::default();
    let layer = recording_builder(&seen)
        .sliding_window(steadfast::circuit_breaker::SlidingWindow::Count(5))
        .minimum_calls(5)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    layer.reset();
    assert_eq!(layer.snapshot().calls(), 0);
    assert!(
        seen.lock().unwrap().is_empty(),
        "closed to closed is no transition"
    );
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_changes_state_but_never_rejects() {
    let layer = count_builder(1).shadow(true).build().unwrap();
    let (mut svc, backend) = service(&layer);
    assert!(layer.is_shadow());
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Open);
    ok(&mut svc).await;
    ok(&mut svc).await;
    assert_eq!(backend.calls(), 3, "every call reached the backend");
    assert_eq!(
        layer.snapshot().not_permitted_calls(),
        2,
        "two would have been rejected"
    );
    assert_eq!(
        layer.state(),
        State::Open,
        "calls let through while open are not counted"
    );

    layer.set_shadow(false);
    rejected(&mut svc).await;
    assert_eq!(backend.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn initial_state_can_be_forced_open_or_disabled() {
    let layer = count_builder(1)
        .initial_state(State::ForcedOpen)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    assert_eq!(rejected(&mut svc).await.state(), State::ForcedOpen);

    let layer = count_builder(1)
        .initial_state(State::Disabled)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    assert_eq!(layer.state(), State::Disabled);
}
