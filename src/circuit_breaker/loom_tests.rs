//! loom models of the breaker's state machine: every interleaving of a few threads.
//!
//! Run with `RUSTFLAGS="--cfg steadfast_loom" cargo test --release --lib loom`.

use std::sync::Arc;
use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::breaker::{Admission, Breaker, Permit, PermitKind};
use super::{CircuitBreakerLayer, SlidingWindow, State};
use crate::classify::Outcome;

fn breaker(half_open_calls: u32, transitions: Option<Arc<AtomicUsize>>) -> Arc<Breaker> {
    let mut builder = CircuitBreakerLayer::builder()
        .sliding_window(SlidingWindow::Count(1))
        .minimum_calls(1)
        .wait_in_open(Duration::from_secs(3600))
        .half_open_calls(half_open_calls);
    if let Some(count) = transitions {
        builder = builder.on_transition(move |t| {
            if t.to() == State::Open {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    builder.build().unwrap().breaker().clone()
}

fn permit(admission: Admission) -> Option<Permit> {
    match admission {
        Admission::Permitted(permit) => Some(permit),
        Admission::Rejected(_) => None,
    }
}

#[test]
fn loom_probe_cap_holds() {
    loom::model(|| {
        let breaker = breaker(1, None);
        breaker.enter_half_open_for_test();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let breaker = breaker.clone();
                thread::spawn(move || permit(breaker.admit()))
            })
            .collect();
        let mine = permit(breaker.admit());
        let mut probes: Vec<Permit> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        probes.extend(mine);
        assert_eq!(probes.len(), 1, "exactly one probe of three callers");
        assert_eq!(probes[0].kind, PermitKind::Probe);
        assert_eq!(breaker.snapshot().probes_in_flight(), 1);
    });
}

#[test]
fn loom_one_trip_per_generation() {
    loom::model(|| {
        let opened = Arc::new(AtomicUsize::new(0));
        let breaker = breaker(1, Some(opened.clone()));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    if let Some(permit) = permit(breaker.admit()) {
                        breaker.record(permit, Outcome::Failure, false, None);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            opened.load(Ordering::SeqCst),
            1,
            "two failures, one transition"
        );
        assert_eq!(breaker.state(), State::Open);
    });
}

#[test]
fn loom_stale_probe_never_closes() {
    loom::model(|| {
        let breaker = breaker(1, None);
        breaker.enter_half_open_for_test();
        let probe = permit(breaker.admit()).expect("the first caller probes");
        let late = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.record(probe, Outcome::Success, false, None))
        };
        // Meanwhile the breaker is forced open by hand.
        breaker.force_open();
        late.join().unwrap();
        assert_eq!(breaker.state(), State::ForcedOpen);
    });
}

#[test]
fn loom_dropped_probe_releases_its_slot() {
    loom::model(|| {
        let breaker = breaker(1, None);
        breaker.enter_half_open_for_test();
        let probe = permit(breaker.admit()).expect("the first caller probes");
        let dropper = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.release(probe))
        };
        let second = permit(breaker.admit());
        dropper.join().unwrap();
        let in_flight = breaker.snapshot().probes_in_flight();
        match second {
            // The slot was free again before the second caller asked.
            Some(_) => assert_eq!(in_flight, 1),
            None => assert_eq!(in_flight, 0),
        }
        assert_eq!(breaker.state(), State::HalfOpen);
    });
}

#[test]
fn loom_concurrent_outcomes_keep_the_window_exact() {
    loom::model(|| {
        let breaker = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(2))
            .minimum_calls(2)
            .failure_rate_threshold(1.0)
            .build()
            .unwrap()
            .breaker()
            .clone();
        let threads: Vec<_> = [Outcome::Success, Outcome::Failure]
            .into_iter()
            .map(|outcome| {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    let permit = permit(breaker.admit()).unwrap();
                    breaker.record(permit, outcome, false, None);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = breaker.snapshot();
        assert_eq!((snap.calls(), snap.failed_calls()), (2, 1));
        assert_eq!(snap.state(), State::Closed);
    });
}

/// A reload that lowers `half_open_calls` while probes are admitted and finish: never more
/// probes than the larger cap, every slot comes back, and the half-open is judged or still
/// open to a probe, never stuck.
#[cfg(feature = "serde")]
#[test]
fn loom_reload_of_the_probe_cap_loses_no_slot() {
    // A reload stores every live word, each a scheduling point: bound the preemptions so that
    // the model stays small (the races it is about need two).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let breaker = breaker(2, None);
        breaker.enter_half_open_for_test();
        let lower = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(1))
            .minimum_calls(1)
            .wait_in_open(Duration::from_secs(3600))
            .half_open_calls(1)
            .settings()
            .unwrap();
        let reloader = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.live().store(&lower))
        };
        let prober = {
            let breaker = breaker.clone();
            thread::spawn(move || {
                let probe = permit(breaker.admit());
                if let Some(probe) = probe {
                    breaker.record(probe, Outcome::Success, false, None);
                }
                probe.is_some()
            })
        };
        let mine = permit(breaker.admit());
        if let Some(probe) = mine {
            breaker.record(probe, Outcome::Success, false, None);
        }
        reloader.join().unwrap();
        let theirs = prober.join().unwrap();
        assert!(
            mine.is_some() || theirs,
            "a probe slot was free to one of them"
        );
        assert_eq!(breaker.snapshot().probes_in_flight(), 0);
        match breaker.state() {
            State::Closed => {}
            State::HalfOpen => {
                // Not judged yet: a probe finished under the old cap of 2, and the cap of 1
                // makes it enough. The next caller judges it (a success: closed) and goes
                // through.
                let snapshot = breaker.snapshot();
                assert_eq!(snapshot.probes_in_flight(), 0);
                let next = permit(breaker.admit()).expect("the half-open is judged, not stuck");
                assert_eq!(next.kind, PermitKind::Normal);
                assert_eq!(breaker.state(), State::Closed);
            }
            other => panic!("{other:?}"),
        }
    });
}
