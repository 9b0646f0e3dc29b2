//! Unit tests that need crate-private items: local rejections (their constructors are
//! crate-private), and property tests of the backoff and budget arithmetic.

use std::future::Future;
use std::sync::Arc as StdArc;
use std::sync::atomic::{AtomicU32, Ordering as StdOrdering};
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;
use tower_layer::Layer;
use tower_service::Service;

use super::budget::RetryBudget;
use super::state::{BudgetState, Withdraw};
use super::{Backoff, Jitter, RetryLayer};
use crate::BoxError;
use crate::random::AtomicSplitMix64;
use crate::sync::Arc;

/// A service failing every call with the error `make` builds.
#[derive(Clone)]
struct Failing<F> {
    make: F,
    calls: StdArc<AtomicU32>,
}

impl<F: Fn() -> BoxError + Clone> Service<()> for Failing<F> {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: ()) -> Self::Future {
        self.calls.fetch_add(1, StdOrdering::SeqCst);
        std::future::ready(Err((self.make)()))
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
        .block_on(future)
}

async fn call<S: Service<(), Error = BoxError>>(service: &mut S) -> Result<S::Response, BoxError> {
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(()).await
}

/// Builds one kind of local rejection.
type Reject = fn() -> BoxError;

fn rejections() -> Vec<(&'static str, Reject)> {
    #[allow(unused_mut)]
    let mut makers: Vec<(&'static str, Reject)> = Vec::new();
    #[cfg(feature = "circuit-breaker")]
    makers.push(("circuit open", || {
        Box::new(crate::circuit_breaker::CircuitOpen::new(
            crate::circuit_breaker::State::Open,
            Duration::from_secs(1),
        ))
    }));
    #[cfg(feature = "bulkhead")]
    makers.push(("bulkhead full", || {
        Box::new(crate::bulkhead::BulkheadFull::new(4, Duration::ZERO))
    }));
    makers
}

#[test]
fn local_rejections_are_not_retried_and_cost_no_budget() {
    for (what, make) in rejections() {
        block_on(async {
            let calls = StdArc::new(AtomicU32::new(0));
            let layer = RetryLayer::builder()
                .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
                .build()
                .expect("valid");
            let mut service = layer.layer(Failing {
                make,
                calls: StdArc::clone(&calls),
            });
            let error = call(&mut service).await.expect_err("rejected");
            assert!(
                crate::is_rejection(&*error),
                "{what}: the rejection itself comes back"
            );
            assert_eq!(calls.load(StdOrdering::SeqCst), 1, "{what}");
            assert_eq!(layer.budget_remaining(), 1, "{what}: no budget spent");
        });
    }
}

#[test]
fn local_rejections_are_retried_when_asked() {
    for (what, make) in rejections() {
        block_on(async {
            let calls = StdArc::new(AtomicU32::new(0));
            let layer = RetryLayer::builder()
                .retry_rejections(true)
                .max_attempts(3)
                .budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)))
                .build()
                .expect("valid");
            let mut service = layer.layer(Failing {
                make,
                calls: StdArc::clone(&calls),
            });
            call(&mut service).await.expect_err("rejected");
            assert_eq!(
                calls.load(StdOrdering::SeqCst),
                2,
                "{what}: one retry, from the budget"
            );
            assert_eq!(layer.budget_remaining(), 0, "{what}");
        });
    }
}

#[test]
fn other_errors_are_retried() {
    block_on(async {
        let calls = StdArc::new(AtomicU32::new(0));
        let layer = RetryLayer::builder().build().expect("valid");
        let mut service = layer.layer(Failing {
            make: || BoxError::from("boom"),
            calls: StdArc::clone(&calls),
        });
        call(&mut service).await.expect_err("fails");
        assert_eq!(calls.load(StdOrdering::SeqCst), 3);
    });
}

// ---- backoff bounds -------------------------------------------------------------------------

fn jitter_strategy() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        (0u8..=100).prop_map(Jitter::Percent),
    ]
}

fn nanos(duration: Duration) -> u128 {
    duration.as_nanos()
}

proptest! {
    #[test]
    fn exponential_delays_stay_within_their_bounds(
        base_ms in 0u64..=100_000,
        multiplier in 1.0f64..=10.0,
        retry in 1u32..=u32::MAX,
        jitter in jitter_strategy(),
        max_ms in 0u64..=1_000_000,
        seed: u64,
    ) {
        let max = Duration::from_millis(max_ms);
        let backoff = Backoff::exponential(Duration::from_millis(base_ms))
            .multiplier(multiplier)
            .jitter(jitter)
            .max_delay(max);
        prop_assert!(backoff.validate().is_ok());
        let rng = AtomicSplitMix64::new(seed);
        let delay = backoff.delay(retry, Duration::ZERO, Some(&rng));
        prop_assert!(delay <= max);

        // The un-jittered delay, computed independently in f64 (saturating like the code).
        let exact = (base_ms as f64 * 1e6) * multiplier.powi(i32::try_from(retry - 1).unwrap_or(i32::MAX));
        let d = if exact >= u64::MAX as f64 { u128::from(u64::MAX) } else { exact as u128 };
        let (low, high) = match jitter {
            Jitter::None => (d, d),
            Jitter::Full => (0, d),
            Jitter::Equal => (d - d / 2, d),
            Jitter::Percent(p) => {
                let spread = d * u128::from(p) / 100;
                (d - spread, d + spread)
            }
        };
        let cap = nanos(max);
        let tolerance = (d / 1_000_000_000).max(1); // f64 rounding of huge products
        prop_assert!(nanos(delay) + tolerance >= low.min(cap), "{delay:?} below {low}");
        prop_assert!(nanos(delay) <= (high + tolerance).min(cap), "{delay:?} above {high}");
    }

    #[test]
    fn constant_and_decorrelated_delays_stay_within_their_bounds(
        base_ms in 0u64..=100_000,
        previous_ms in 0u64..=1_000_000,
        retry in 1u32..=u32::MAX,
        jitter in jitter_strategy(),
        max_ms in 0u64..=1_000_000,
        seed: u64,
    ) {
        let max = Duration::from_millis(max_ms);
        let base = Duration::from_millis(base_ms);
        let rng = AtomicSplitMix64::new(seed);

        let constant = Backoff::constant(base).jitter(jitter).max_delay(max);
        let delay = constant.delay(retry, Duration::ZERO, Some(&rng));
        prop_assert!(delay <= max.min(base * 2));
        if jitter == Jitter::None {
            prop_assert_eq!(delay, base.min(max));
        }

        let decorrelated = Backoff::decorrelated(base).jitter(jitter).max_delay(max);
        let previous = Duration::from_millis(previous_ms);
        let delay = decorrelated.delay(retry, previous, Some(&rng));
        prop_assert!(delay >= base.min(max));
        prop_assert!(delay <= (previous.max(base) * 3).min(max));
    }

    #[test]
    fn no_duration_overflows_or_panics(
        base_nanos: u64,
        base_secs: u64,
        multiplier in prop_oneof![Just(1.0f64), Just(2.0), Just(1e308), 1.0f64..1e10],
        retry: u32,
        jitter in jitter_strategy(),
        seed: u64,
    ) {
        let base = Duration::new(base_secs, (base_nanos % 1_000_000_000) as u32);
        let rng = AtomicSplitMix64::new(seed);
        for backoff in [
            Backoff::exponential(base).multiplier(multiplier),
            Backoff::constant(base),
            Backoff::decorrelated(base),
        ] {
            let backoff = backoff.jitter(jitter).max_delay(Duration::MAX);
            let delay = backoff.delay(retry, Duration::MAX, Some(&rng));
            prop_assert!(delay <= Duration::from_nanos(u64::MAX));
        }
    }

    /// At one instant, the budget allows exactly `min_per_sec × ttl + ratio × requests`
    /// retries (rounded down), with ratios in thousandths so the model is exact.
    #[test]
    fn budget_allows_floor_plus_ratio_of_requests(
        thousandths in 0u32..=10_000,
        min_per_sec in 0u32..=50,
        ttl_secs in 1u64..=60,
        requests in 0u64..=2_000,
    ) {
        let ratio = f64::from(thousandths) / 1000.0;
        let budget = RetryBudget::new(ratio, min_per_sec, Duration::from_secs(ttl_secs));
        prop_assert!(budget.validate().is_ok());
        let expected = u64::from(min_per_sec) * ttl_secs + requests * u64::from(thousandths) / 1000;
        block_on(async {
            let state = Arc::new(BudgetState::new(&budget));
            for _ in 0..requests {
                state.deposit();
            }
            assert_eq!(state.remaining(), expected);
            let mut paid = Vec::new();
            loop {
                match BudgetState::withdraw(&state) {
                    Withdraw::Paid(withdrawal) => paid.push(withdrawal),
                    Withdraw::Exhausted => break,
                    Withdraw::Unlimited => unreachable!("a tps budget"),
                }
            }
            assert_eq!(paid.len() as u64, expected);
            assert_eq!(state.remaining(), 0);
            // Abandoned retries are given back, spent ones are not.
            let half = paid.len() / 2;
            for withdrawal in paid.drain(..half) {
                withdrawal.spend();
            }
            drop(paid);
            assert_eq!(state.remaining(), expected - half as u64);
            // After the ttl, only the floor is left.
            tokio::time::advance(Duration::from_secs(ttl_secs)).await;
            assert_eq!(state.remaining(), u64::from(min_per_sec) * ttl_secs);
        });
    }
}

#[test]
fn a_long_quiet_spell_banks_only_the_last_ttl_of_deposits() {
    block_on(async {
        // 0.5 a request, no floor, 10 s window: 1000 requests, folded only 100 s later.
        let state = Arc::new(BudgetState::new(&RetryBudget::new(
            0.5,
            0,
            Duration::from_secs(10),
        )));
        for _ in 0..1000 {
            state.deposit();
        }
        tokio::time::advance(Duration::from_secs(100)).await;
        // Spread over 100 s, only the last 10 s count: 100 requests, 50 retries.
        assert_eq!(state.remaining(), 50);
    });
}
