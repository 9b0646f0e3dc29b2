//! loom models of the breaker's state machine: every interleaving of a few threads.
//!
//! Run with `RUSTFLAGS="--cfg steadfast_loom" cargo test --release --lib loom`.

use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::breaker::{Admission, Breaker, Permission, PermissionKind};
use super::window::{ConsecutiveFailures, Sample, TimeWindow, Totals, WindowUpdate};
use super::{CircuitBreakerLayer, SlidingWindow, State};
use crate::classify::Outcome;
use crate::sync::Arc;

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

fn permit(admission: Admission) -> Option<Permission> {
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
        let mut probes: Vec<Permission> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        probes.extend(mine);
        assert_eq!(probes.len(), 1, "exactly one probe of three callers");
        assert_eq!(probes[0].kind, PermissionKind::Probe);
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
                        breaker.record_current(permit, Outcome::Failure, false, None);
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
            thread::spawn(move || breaker.record_current(probe, Outcome::Success, false, None))
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
                    breaker.record_current(permit, outcome, false, None);
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

#[test]
fn loom_a_reset_racing_a_record_leaves_the_count_window_exact() {
    loom::model(|| {
        let breaker = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(2))
            .minimum_calls(2)
            .failure_rate_threshold(1.0)
            .build()
            .unwrap()
            .breaker()
            .clone();
        let recorder = {
            let breaker = breaker.clone();
            thread::spawn(move || {
                let permit = permit(breaker.admit()).unwrap();
                breaker.record_current(permit, Outcome::Failure, false, None);
            })
        };
        breaker.reset();
        recorder.join().unwrap();
        // The failure counted in the new generation (admitted after the reset) or not at all.
        let snap = breaker.snapshot();
        assert!(snap.calls() <= 1, "{snap:?}");
        assert_eq!(snap.failed_calls(), snap.calls());
        // Whatever the failure left in its slot, two successes fill the window exactly: a stale
        // slot they evict is not subtracted, a current one is.
        for _ in 0..2 {
            let permit = permit(breaker.admit()).unwrap();
            breaker.record_current(permit, Outcome::Success, false, None);
        }
        let snap = breaker.snapshot();
        assert_eq!((snap.calls(), snap.failed_calls()), (2, 0));
        assert_eq!(snap.state(), State::Closed);
    });
}

const FAIL: Sample = Sample {
    failure: true,
    slow: false,
};

#[test]
fn loom_time_window_rotation_and_generations_race_without_loss() {
    loom::model(|| {
        // Two 1 s buckets. One thread counts a failure in bucket 0; the other, two buckets
        // later, in bucket 2, which reuses bucket 0's counters.
        let window = Arc::new(TimeWindow::new(1000, 2));
        let old = {
            let window = window.clone();
            thread::spawn(move || window.record(0, FAIL, 0))
        };
        let late = window.record(0, FAIL, 2_000);
        old.join().unwrap();
        // Bucket 2 holds exactly its own failure, whichever wrote first.
        assert!(matches!(late, WindowUpdate::Counted(t) if t.failures >= 1));
        let one = Totals {
            calls: 1,
            failures: 1,
            slow: 0,
        };
        assert_eq!(window.totals(0, 2_000), one);
        // `last_bad` stayed at the later bucket, so a success there is still judged.
        assert!(matches!(
            window.record(
                0,
                Sample {
                    failure: false,
                    slow: false
                },
                2_000
            ),
            WindowUpdate::Counted(_)
        ));
    });
}

#[test]
fn loom_time_window_new_generation_replaces_the_old_one() {
    loom::model(|| {
        let window = Arc::new(TimeWindow::new(1000, 2));
        let stale = {
            let window = window.clone();
            thread::spawn(move || {
                window.record(0, FAIL, 0);
            })
        };
        window.record(1, FAIL, 0);
        stale.join().unwrap();
        let one = Totals {
            calls: 1,
            failures: 1,
            slow: 0,
        };
        assert_eq!(
            window.totals(1, 0),
            one,
            "the new generation counts only its own"
        );
        assert_eq!(
            window.totals(0, 0),
            Totals::default(),
            "the old one is gone"
        );
    });
}

#[test]
fn loom_consecutive_failures_race_a_success_and_a_new_generation() {
    loom::model(|| {
        let run = Arc::new(ConsecutiveFailures::new());
        let failure = {
            let run = run.clone();
            thread::spawn(move || run.record(0, true))
        };
        let success = {
            let run = run.clone();
            thread::spawn(move || run.record(0, false))
        };
        // Meanwhile the breaker moved on: the first outcome of generation 1.
        assert_eq!(run.record(1, true), Some(1));
        let failure = failure.join().unwrap();
        let success = success.join().unwrap();
        // Generation 0's outcomes count in their own run or are dropped as stale.
        assert!(matches!(failure, Some(1) | None), "{failure:?}");
        assert!(matches!(success, Some(0) | None), "{success:?}");
        // Generation 1's run is exactly its one failure.
        assert!(!run.is_clear(1));
        assert_eq!(run.record(1, true), Some(2));
    });
}

#[test]
fn loom_consecutive_failures_trip_once() {
    loom::model(|| {
        let opened = Arc::new(AtomicUsize::new(0));
        let count = opened.clone();
        let breaker = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(100))
            .minimum_calls(100)
            .consecutive_failures(2)
            .wait_in_open(Duration::from_secs(3600))
            .on_transition(move |t| {
                if t.to() == State::Open {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap()
            .breaker()
            .clone();
        let first = permit(breaker.admit()).unwrap();
        let second = permit(breaker.admit()).unwrap();
        let other = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.record_current(first, Outcome::Failure, false, None))
        };
        breaker.record_current(second, Outcome::Failure, false, None);
        other.join().unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 1, "two in a row, one trip");
        assert_eq!(breaker.state(), State::Open);
    });
}

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
                    breaker.record_current(probe, Outcome::Success, false, None);
                }
                probe.is_some()
            })
        };
        let mine = permit(breaker.admit());
        if let Some(probe) = mine {
            breaker.record_current(probe, Outcome::Success, false, None);
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
                assert_eq!(next.kind, PermissionKind::Normal);
                assert_eq!(breaker.state(), State::Closed);
            }
            other => panic!("{other:?}"),
        }
    });
}

/// `reconfigure` replacing the window (a count window of 2 for one of 3) while a call that the
/// old window may hold finishes with a failure. The old window already holds a failure, and
/// `minimum_calls` is 2: the call's failure trips the breaker only if it was recorded in the old
/// window before the replacement. Whatever the interleaving: a call admitted in the generation
/// that ends current counts in the new window; any other is dropped, never counted in the new
/// window and never tripping the breaker after the replacement.
#[test]
fn loom_window_replacement_racing_a_record() {
    use super::shape::Shape;

    loom::model(|| {
        let breaker = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(2))
            .minimum_calls(2)
            .failure_rate_threshold(0.5)
            .wait_in_open(Duration::from_secs(3600))
            .build()
            .unwrap()
            .breaker()
            .clone();
        let before = permit(breaker.admit()).expect("closed");
        breaker.record_current(before, Outcome::Failure, false, None);
        // The service's `Judge`, made before the replacement.
        let judged = breaker.window().load();
        let caller = {
            let breaker = breaker.clone();
            thread::spawn(move || {
                let permit = permit(breaker.admit())?;
                // `call`: one version read; a new window only when it moved.
                let window = if breaker.window().version() == judged.0 {
                    judged.1
                } else {
                    breaker.window().load().1
                };
                breaker.record(&window, permit, Outcome::Failure, false, None);
                Some(permit)
            })
        };
        let shape = Shape {
            window: SlidingWindow::Count(3),
            bucket_width: Duration::from_secs(1),
            slow_calls: false,
            consecutive_failures: false,
        };
        breaker.replace_window(shape);
        let call = caller.join().unwrap();

        let (version, window) = breaker.window().load();
        assert_eq!(version, 1);
        assert_eq!(window.shape(), &shape);
        let snapshot = breaker.snapshot();
        match snapshot.state() {
            State::Open => {
                // Tripped by the old window, before the replacement: admitted in the first
                // generation, and the new window was never counted in.
                assert_eq!(call.map(|p| p.generation), Some(before.generation));
            }
            State::Closed => {
                let current = breaker.state_generation_for_test();
                let counted = call.is_some_and(|p| p.generation == current);
                let expected = Totals {
                    calls: u64::from(counted),
                    failures: u64::from(counted),
                    slow: 0,
                };
                assert_eq!(window.totals(current, 0), expected);
                assert_ne!(current, before.generation, "a new generation");
            }
            other => panic!("{other:?}"),
        }
    });
}
