//! Open, half-open and back: the wait, the probes, their judgement, and outcomes that arrive
//! after the state moved on.

use std::sync::{Arc, Mutex};

use steadfast::circuit_breaker::{State, Transition};
use steadfast::classify::Outcome;
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn open_rejects_with_the_time_left() {
    let layer = count_builder(1).build().unwrap();
    let (mut svc, backend) = service(&layer);
    trip(&mut svc, &layer).await;
    assert_eq!(rejected(&mut svc).await.retry_after(), secs(10));
    advance(ms(2500)).await;
    let open = rejected(&mut svc).await;
    assert_eq!(open.retry_after(), ms(7500));
    assert_eq!(open.state(), State::Open);
    assert_eq!(backend.calls(), 1);
    assert_eq!(layer.snapshot().not_permitted_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn half_open_exactly_at_wait_in_open() {
    let layer = count_builder(1).build().unwrap();
    let (mut svc, backend) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(ms(9_999)).await;
    assert_eq!(rejected(&mut svc).await.retry_after(), ms(1));
    assert_eq!(layer.state(), State::Open, "one tick before");
    advance(ms(1)).await;
    // The call itself moves the breaker to half-open and is its first probe.
    ok(&mut svc).await;
    assert_eq!(backend.calls(), 2);
    assert_eq!(layer.state(), State::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn reading_the_state_makes_the_lazy_transition() {
    let layer = count_builder(1).build().unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;
    assert_eq!(layer.state(), State::HalfOpen);
    assert_eq!(layer.snapshot().probes_in_flight(), 0);
}

/// Starts a call that waits for `answer`; returns the running task.
fn start_probe(
    svc: &mut Breaker,
) -> (
    oneshot::Sender<bool>,
    tokio::task::JoinHandle<Result<&'static str, steadfast::BoxError>>,
) {
    let (answer, wait) = oneshot::channel();
    let mut svc = svc.clone();
    let task = tokio::spawn(async move { send(&mut svc, Call::Wait(wait)).await });
    (answer, task)
}

async fn settle() {
    // Let spawned tasks run up to their next await point.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_half_open_calls() {
    let layer = count_builder(1).half_open_calls(3).build().unwrap();
    let (mut svc, backend) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;

    let probes: Vec<_> = (0..3).map(|_| start_probe(&mut svc)).collect();
    settle().await;
    assert_eq!(layer.snapshot().probes_in_flight(), 3);
    let extra = rejected(&mut svc).await;
    assert_eq!(extra.state(), State::HalfOpen);
    assert_eq!(backend.calls(), 4, "1 trip + 3 probes");

    for (answer, task) in probes {
        answer.send(false).unwrap();
        task.await.unwrap().unwrap();
    }
    assert_eq!(layer.state(), State::Closed);
    assert_eq!(layer.snapshot().calls(), 0, "a fresh window");
}

#[tokio::test(start_paused = true)]
async fn probes_at_the_threshold_reopen() {
    let layer = count_builder(1)
        .half_open_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;
    ok(&mut svc).await;
    fail(&mut svc).await;
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::HalfOpen);
    assert_eq!(layer.snapshot().failed_calls(), 1);
    fail(&mut svc).await; // 2 of 4
    assert_eq!(layer.state(), State::Open);
    assert_eq!(rejected(&mut svc).await.retry_after(), secs(10));
}

#[tokio::test(start_paused = true)]
async fn probes_below_the_threshold_close() {
    let layer = count_builder(1)
        .half_open_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;
    ok(&mut svc).await;
    ok(&mut svc).await;
    fail(&mut svc).await;
    ok(&mut svc).await; // 1 of 4
    assert_eq!(layer.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_gives_its_slot_back() {
    let layer = count_builder(1).half_open_calls(1).build().unwrap();
    let (mut svc, backend) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;

    let (_answer, wait) = oneshot::channel();
    let probe = svc.ready().await.unwrap().call(Call::Wait(wait));
    assert_eq!(layer.snapshot().probes_in_flight(), 1);
    rejected(&mut svc).await;
    drop(probe);
    assert_eq!(layer.snapshot().probes_in_flight(), 0);
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::Closed);
    assert_eq!(
        backend.calls(),
        3,
        "trip, the dropped probe, the probe that closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_dropped_between_ready_and_call_gives_its_slot_back() {
    let layer = count_builder(1).half_open_calls(1).build().unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;

    let mut other = svc.clone();
    other.ready().await.unwrap();
    assert_eq!(layer.snapshot().probes_in_flight(), 1);
    drop(other);
    assert_eq!(layer.snapshot().probes_in_flight(), 0);
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::Closed);
}

/// Counts `Ok("ignored")` as neither success nor failure.
fn ignoring(result: &Result<&'static str, BackendError>) -> Outcome {
    match result {
        Ok("ignored") => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

#[tokio::test(start_paused = true)]
async fn an_ignored_probe_gives_its_slot_back() {
    let layer = count_builder(1)
        .half_open_calls(1)
        .classify(ignoring)
        .build()
        .unwrap();
    let backend = Backend::default();
    let mut svc = layer.layer(backend.clone());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Call::Fail)
        .await
        .unwrap_err();
    assert!(err.is::<BackendError>());
    assert_eq!(layer.state(), State::Open);
    advance(secs(10)).await;

    let answer = svc
        .ready()
        .await
        .unwrap()
        .call(Call::Answer("ignored"))
        .await;
    assert_eq!(answer.unwrap(), "ignored");
    assert_eq!(
        layer.state(),
        State::HalfOpen,
        "an ignored probe judges nothing"
    );
    let snap = layer.snapshot();
    assert_eq!((snap.probes_in_flight(), snap.calls()), (0, 0));
    // The slot is free for a real probe.
    svc.ready().await.unwrap().call(Call::Ok).await.unwrap();
    assert_eq!(layer.state(), State::Closed);
    assert_eq!(backend.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_are_not_counted_when_closed() {
    let layer = count_builder(2).classify(ignoring).build().unwrap();
    let backend = Backend::default();
    let mut svc = layer.layer(backend.clone());
    for _ in 0..3 {
        svc.ready()
            .await
            .unwrap()
            .call(Call::Answer("ignored"))
            .await
            .unwrap();
    }
    assert_eq!(layer.snapshot().calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn probes_that_never_finish_reopen_after_max_wait_in_half_open() {
    let layer = count_builder(1)
        .half_open_calls(1)
        .max_wait_in_half_open(secs(5))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;
    let (answer, probe) = start_probe(&mut svc);
    settle().await;
    assert_eq!(layer.snapshot().probes_in_flight(), 1);

    advance(ms(4_999)).await;
    assert_eq!(rejected(&mut svc).await.state(), State::HalfOpen);
    advance(ms(1)).await;
    let open = rejected(&mut svc).await;
    assert_eq!(open.state(), State::Open);
    assert_eq!(open.retry_after(), secs(10));

    // The hung probe finally succeeds: it belongs to the old half-open and closes nothing.
    answer.send(false).unwrap();
    probe.await.unwrap().unwrap();
    assert_eq!(layer.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_late_failure_does_not_extend_an_open() {
    let layer = count_builder(1).build().unwrap();
    let (mut svc, _) = service(&layer);
    // Admitted while closed, it fails after the breaker has opened.
    let (answer, late) = start_probe(&mut svc);
    settle().await;
    trip(&mut svc, &layer).await;
    advance(secs(4)).await;
    answer.send(true).unwrap();
    assert!(late.await.unwrap().unwrap_err().is::<BackendError>());
    assert_eq!(
        rejected(&mut svc).await.retry_after(),
        secs(6),
        "the open was not extended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_outcome_does_not_count_in_a_newer_window() {
    let layer = count_builder(10).minimum_calls(10).build().unwrap();
    let (mut svc, _) = service(&layer);
    let (answer, late) = start_probe(&mut svc);
    settle().await;
    layer.reset();
    answer.send(true).unwrap();
    late.await.unwrap().unwrap_err();
    assert_eq!(layer.snapshot().calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_late_probe_does_not_close_a_newer_half_open() {
    let layer = count_builder(1)
        .half_open_calls(2)
        .max_wait_in_half_open(secs(5))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    advance(secs(10)).await;
    let old: Vec<_> = (0..2).map(|_| start_probe(&mut svc)).collect();
    settle().await;
    advance(secs(5)).await;
    rejected(&mut svc).await; // overdue: open again
    advance(secs(10)).await;
    assert_eq!(layer.state(), State::HalfOpen);
    let (answer, newer) = start_probe(&mut svc);
    settle().await;

    for (answer, task) in old {
        answer.send(false).unwrap();
        task.await.unwrap().unwrap();
    }
    let snap = layer.snapshot();
    assert_eq!(
        snap.state(),
        State::HalfOpen,
        "two late successes closed nothing"
    );
    assert_eq!((snap.calls(), snap.probes_in_flight()), (0, 1));
    answer.send(false).unwrap();
    newer.await.unwrap().unwrap();
    assert_eq!(layer.snapshot().calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn open_interval_grows_on_consecutive_reopens() {
    let layer = count_builder(1)
        .half_open_calls(1)
        .open_backoff(2.0, secs(35))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    assert_eq!(rejected(&mut svc).await.retry_after(), secs(10));
    let mut waits = Vec::new();
    for _ in 0..3 {
        advance(rejected(&mut svc).await.retry_after()).await;
        fail(&mut svc).await; // the probe fails: open again
        waits.push(rejected(&mut svc).await.retry_after());
    }
    assert_eq!(waits, [secs(20), secs(35), secs(35)], "doubling, capped");
    // A close resets the growth.
    advance(secs(35)).await;
    ok(&mut svc).await;
    assert_eq!(layer.state(), State::Closed);
    fail(&mut svc).await;
    assert_eq!(rejected(&mut svc).await.retry_after(), secs(10));
}

#[tokio::test(start_paused = true)]
async fn open_jitter_stays_within_its_fraction_and_follows_the_seed() {
    let waits = |seed| async move {
        let layer = count_builder(1)
            .half_open_calls(1)
            .open_jitter(0.2)
            .seed(seed)
            .build()
            .unwrap();
        let (mut svc, _) = service(&layer);
        let mut waits = Vec::new();
        fail(&mut svc).await;
        for _ in 0..20 {
            let wait = rejected(&mut svc).await.retry_after();
            assert!(
                wait >= secs(8) && wait <= secs(12),
                "{wait:?} outside 10 s ± 20 %"
            );
            waits.push(wait);
            advance(wait).await;
            fail(&mut svc).await;
        }
        waits
    };
    let first = waits(7).await;
    assert_eq!(first, waits(7).await, "the same seed, the same intervals");
    assert_ne!(first, waits(8).await);
    assert!(first.iter().any(|w| *w != first[0]), "the intervals vary");
}

#[tokio::test(start_paused = true)]
async fn the_listener_sees_each_transition_once() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let layer = count_builder(1)
        .half_open_calls(1)
        .on_transition(move |t: &Transition| log.lock().unwrap().push((t.from(), t.to())))
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    trip(&mut svc, &layer).await;
    rejected(&mut svc).await;
    advance(secs(10)).await;
    ok(&mut svc).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_jittered_open_interval_never_drops_below_the_least_wait_in_open() {
    // 100 ms ± 90 % would reach 10 ms; the floor (which bounds how fast generations are reused)
    // keeps every interval at 100 ms or more.
    let layer = count_builder(1)
        .wait_in_open(ms(100))
        .half_open_calls(1)
        .open_jitter(0.9)
        .seed(3)
        .build()
        .unwrap();
    let (mut svc, _) = service(&layer);
    fail(&mut svc).await;
    let mut waits = Vec::new();
    for _ in 0..40 {
        let wait = rejected(&mut svc).await.retry_after();
        assert!(wait >= ms(100) && wait <= ms(190), "{wait:?}");
        waits.push(wait);
        advance(wait).await;
        fail(&mut svc).await;
    }
    assert!(waits.contains(&ms(100)), "the floor was reached: {waits:?}");
    assert!(waits.iter().any(|w| *w > ms(100)), "and jitter above it");
}
