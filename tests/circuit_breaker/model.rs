//! The breaker against a plain sequential model, driven by the same random sequence of
//! outcomes, pauses and manual commands: after every step the two must agree.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use steadfast::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, SlidingWindow, State};
use tower::{Layer, Service, ServiceExt};

use crate::support::{Backend, Call};

#[derive(Debug, Clone)]
enum Step {
    Call { fail: bool },
    Advance(u64),
    Reset,
    ForceOpen,
    Disable,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => any::<bool>().prop_map(|fail| Step::Call { fail }),
        4 => (0u64..12_000).prop_map(Step::Advance),
        1 => Just(Step::Reset),
        1 => Just(Step::ForceOpen),
        1 => Just(Step::Disable),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    window: usize,
    minimum: usize,
    threshold: f64,
    half_open: usize,
}

const WAIT_MS: u64 = 10_000;

/// The breaker as a textbook would write it: one call at a time, a queue for the window.
struct Model {
    settings: Settings,
    state: State,
    window: VecDeque<bool>,
    probes: Vec<bool>,
    now: u64,
    open_until: u64,
}

impl Model {
    fn new(settings: Settings) -> Self {
        Self {
            settings,
            state: State::Closed,
            window: VecDeque::new(),
            probes: Vec::new(),
            now: 0,
            open_until: 0,
        }
    }

    fn trips(&self, outcomes: &[bool], minimum: usize) -> bool {
        let failures = outcomes.iter().filter(|f| **f).count();
        outcomes.len() >= minimum
            && failures as f64 / outcomes.len() as f64 >= self.settings.threshold
    }

    fn open(&mut self) {
        self.state = State::Open;
        self.open_until = self.now + WAIT_MS;
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.window.clear();
    }

    fn state(&mut self) -> State {
        if self.state == State::Open && self.now >= self.open_until {
            self.state = State::HalfOpen;
            self.probes.clear();
        }
        self.state
    }

    /// `Err(retry_after_ms)` when rejected.
    fn call(&mut self, fail: bool) -> Result<(), Option<u64>> {
        match self.state() {
            State::Closed => {
                if self.window.len() == self.settings.window {
                    self.window.pop_front();
                }
                self.window.push_back(fail);
                let minimum = self.settings.minimum.min(self.settings.window);
                let window: Vec<bool> = self.window.iter().copied().collect();
                if self.trips(&window, minimum) {
                    self.open();
                }
                Ok(())
            }
            State::HalfOpen => {
                self.probes.push(fail);
                if self.probes.len() == self.settings.half_open {
                    if self.trips(&self.probes.clone(), 1) {
                        self.open();
                    } else {
                        self.close();
                    }
                }
                Ok(())
            }
            State::Open => Err(Some(self.open_until - self.now)),
            State::ForcedOpen => Err(None),
            State::Disabled => Ok(()),
        }
    }
}

fn run(settings: Settings, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let layer = CircuitBreakerLayer::builder()
            .sliding_window(SlidingWindow::Count(settings.window as u32))
            .minimum_calls(settings.minimum as u32)
            .failure_rate_threshold(settings.threshold)
            .wait_in_open(Duration::from_millis(WAIT_MS))
            .half_open_calls(settings.half_open as u32)
            .max_wait_in_half_open(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut svc = layer.layer(Backend::default());
        let mut model = Model::new(settings);
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Call { fail } => {
                    let call = if fail { Call::Fail } else { Call::Ok };
                    let real = svc.ready().await.unwrap().call(call).await;
                    let expected = model.call(fail);
                    match (real, expected) {
                        (Ok(_), Ok(())) => prop_assert!(!fail, "step {i}"),
                        (Err(e), Ok(())) => {
                            prop_assert!(fail && !e.is::<CircuitOpen>(), "step {i}: {e}")
                        }
                        (Err(e), Err(retry_after)) => {
                            let open = e.downcast_ref::<CircuitOpen>();
                            prop_assert!(open.is_some(), "step {i}: expected a rejection, got {e}");
                            if let Some(ms) = retry_after {
                                prop_assert_eq!(
                                    open.unwrap().retry_after(),
                                    Duration::from_millis(ms)
                                );
                            }
                        }
                        (Ok(_), Err(_)) => prop_assert!(false, "step {i}: the model rejects"),
                    }
                }
                Step::Advance(ms) => {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    model.now += ms;
                }
                Step::Reset => {
                    layer.reset();
                    model.close();
                }
                Step::ForceOpen => {
                    layer.force_open();
                    model.state = State::ForcedOpen;
                }
                Step::Disable => {
                    layer.disable();
                    model.state = State::Disabled;
                }
            }
            prop_assert_eq!(layer.state(), model.state(), "after step {}", i);
            if model.state == State::Closed {
                let snap = layer.snapshot();
                prop_assert_eq!(snap.calls() as usize, model.window.len());
                prop_assert_eq!(
                    snap.failed_calls() as usize,
                    model.window.iter().filter(|f| **f).count()
                );
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn breaker_matches_the_sequential_model(
        window in 1usize..12,
        minimum in 1usize..14,
        threshold in prop_oneof![Just(0.25), Just(0.3), Just(0.5), Just(0.75), Just(1.0)],
        half_open in 1usize..5,
        steps in prop::collection::vec(step(), 1..120),
    ) {
        run(Settings { window, minimum, threshold, half_open }, steps)?;
    }
}
