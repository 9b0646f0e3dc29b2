//! The retry budget: a cap on retry load shared by every service a layer makes.
//!
//! Why a budget: `max_attempts` bounds the retries of one request, not of a fleet. When a
//! dependency goes down, every request fails and every request retries: with 3 attempts the
//! dependency receives three times its normal load exactly when it can least take it. A budget
//! caps retries to a fraction of recent traffic, so an outage costs at most `1 + ratio` times
//! the normal load, while a lone failing request still gets its retries from a small floor.

use std::time::Duration;

use super::state::BudgetState;
use crate::ConfigError;
use crate::sync::Arc;

/// How many retries a layer may send: a ratio of recent requests plus a floor per second, over
/// a time-to-live window (the semantics of Finagle's `RetryBudget` and tower's `TpsBudget`).
///
/// - Every request deposits `ratio` of a retry; every retry withdraws one. With `ratio` 0.1, ten
///   requests pay for one retry.
/// - On top, `min_per_sec` retries per second are always allowed, so that a service with little
///   traffic can still retry: with `ratio` 0 and `min_per_sec` 10, ten retries a second.
/// - Deposits and withdrawals count for `ttl`, then expire: the budget follows recent traffic.
///   Concretely, within any window of `ttl`, at most `min_per_sec × ttl + ratio × requests`
///   retries are sent (the window advances in steps of `ttl / 10`).
///
/// The budget is created when the layer is built and shared by every clone of the layer and by
/// every service its `layer()` makes.
///
/// [`RetryBudget::new`] never panics: its arguments are checked by the builder's `build()`,
/// which returns a [`ConfigError`] with field `budget` unless `ratio` is in `[0, 1000]` (not
/// NaN) and `ttl` in `[1 s, 60 s]`.
///
/// The default, [`DEFAULT_BUDGET`](super::DEFAULT_BUDGET), is `RetryBudget::new(0.2, 10,
/// 10 s)`: a lone request always has its retries, and in an outage retries add at most 20 % to
/// the load (plus 10 a second).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{RetryBudget, RetryLayer};
///
/// let layer = RetryLayer::builder()
///     // One retry per ten requests, plus one a second, over a 10 s window.
///     .budget(RetryBudget::new(0.1, 1, Duration::from_secs(10)))
///     .build()
///     .unwrap();
/// # let _ = layer;
///
/// let err = RetryLayer::builder()
///     .budget(RetryBudget::new(f64::NAN, 1, Duration::from_secs(10)))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "budget");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    pub(super) kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Unlimited,
    Tps {
        ratio: f64,
        min_per_sec: u32,
        ttl: Duration,
    },
}

/// The largest `ratio`: tower's bound for its `TpsBudget`, a thousand retries per request (far
/// above anything useful: `max_attempts` caps a request's retries first).
pub(super) const MAX_RATIO: f64 = 1000.0;
/// The shortest `ttl`.
pub(super) const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest `ttl`.
pub(super) const MAX_TTL: Duration = Duration::from_secs(60);

impl RetryBudget {
    /// A budget of `ratio` retries per request plus `min_per_sec` retries a second, over a
    /// window of `ttl`. Checked by `build()`: `ratio` in `[0, 1000]`, `ttl` in `[1 s, 60 s]`.
    pub const fn new(ratio: f64, min_per_sec: u32, ttl: Duration) -> Self {
        Self {
            kind: Kind::Tps {
                ratio,
                min_per_sec,
                ttl,
            },
        }
    }

    /// No budget: only `max_attempts` bounds retries. Beware retry storms.
    pub const fn unlimited() -> Self {
        Self {
            kind: Kind::Unlimited,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Kind::Tps { ratio, ttl, .. } = self.kind {
            if !(0.0..=MAX_RATIO).contains(&ratio) {
                return Err(ConfigError::new("budget", "a ratio in [0, 1000]", ratio));
            }
            if ttl < MIN_TTL || ttl > MAX_TTL {
                return Err(ConfigError::new("budget", "a ttl in [1s, 60s]", ttl));
            }
        }
        Ok(())
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        super::DEFAULT_BUDGET
    }
}

/// One retry budget drawn on by several layers: a retry and a hedge (or two retries) that must
/// not add up to more extra load than one budget allows.
///
/// A [`RetryBudget`] given to a builder's `budget` is a configuration: each `build()` makes its
/// own state from it. A `SharedBudget` is the state itself, made once here; every layer built
/// with it (`shared_budget` on [`RetryLayer`](super::RetryLayer)'s and
/// [`HedgeLayer`](crate::hedge::HedgeLayer)'s builders) deposits into it and withdraws from it.
/// Clones share it.
///
/// Every layer deposits for each of its calls, so two layers in one stack (a retry around a
/// hedge) both deposit for one request: halve the `ratio` to keep the same share.
///
/// The budget's values are checked by each builder's `build()`, as for `budget`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{RetryBudget, RetryLayer, SharedBudget};
///
/// let budget = SharedBudget::new(RetryBudget::new(0.1, 5, Duration::from_secs(10)));
/// let retry = RetryLayer::builder().shared_budget(budget.clone()).build().unwrap();
/// // Another layer built with `budget` draws on the same tokens.
/// assert_eq!(retry.budget_remaining(), budget.remaining());
/// ```
#[derive(Clone)]
pub struct SharedBudget {
    budget: RetryBudget,
    state: Arc<BudgetState>,
}

impl SharedBudget {
    /// The state of `budget`, to be shared; its window starts now.
    pub fn new(budget: RetryBudget) -> Self {
        Self {
            budget,
            state: Arc::new(BudgetState::new(&budget)),
        }
    }

    /// The budget's configuration.
    pub fn budget(&self) -> RetryBudget {
        self.budget
    }

    /// How many retries (or hedges) the budget allows right now (`u64::MAX` when unlimited).
    pub fn remaining(&self) -> u64 {
        self.state.remaining()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.budget.validate()
    }

    pub(crate) fn state(&self) -> &Arc<BudgetState> {
        &self.state
    }
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget")
            .field("budget", &self.budget)
            .field("state", &self.state)
            .finish()
    }
}
