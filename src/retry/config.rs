//! The builder of [`RetryLayer`], its defaults, and the state every service of a layer shares.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use super::backoff::{Backoff, Jitter};
use super::budget::{RetryBudget, SharedBudget};
use super::layer::RetryLayer;
use super::policy::RetryErrors;
use super::replay::CloneRequest;
use super::state::BudgetState;
use crate::ConfigError;
use crate::clock::nanos;
use crate::error::check_range;
use crate::random::{AtomicSplitMix64, random_seed};
use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// Attempts per call, the first included: 3 attempts = 2 retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most attempts `max_attempts` accepts.
pub const MAX_MAX_ATTEMPTS: u32 = 100;
/// The cap on any backoff delay or pushback: 10 s.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(10);
/// The default backoff: exponential from 100 ms, doubling, full jitter, at most 10 s.
pub const DEFAULT_BACKOFF: Backoff = Backoff::exponential(Duration::from_millis(100))
    .jitter(Jitter::Full)
    .max_delay(DEFAULT_MAX_DELAY);
/// The default budget: 0.2 retries per request plus 10 a second, over 10 s. A lone request
/// always has its retries.
pub const DEFAULT_BUDGET: RetryBudget = RetryBudget::new(0.2, 10, Duration::from_secs(10));
/// No retry is started with less time than this left before the deadline: 10 ms.
pub const DEFAULT_MIN_ATTEMPT_TIME: Duration = Duration::from_millis(10);
/// The `name` label of the layer's metrics.
pub const DEFAULT_NAME: &str = "default";

/// Builds a [`RetryLayer`]; made by [`RetryLayer::builder`].
///
/// `P` is the [`RetryPolicy`](super::RetryPolicy), `H` the [`OnRetry`](super::OnRetry) hook and
/// `M` how requests are kept to be sent again ([`Resend`](super::Resend)); the setters for
/// them change the builder's type, so closures are never boxed.
pub struct Builder<P = RetryErrors, H = (), M = CloneRequest> {
    max_attempts: u32,
    backoff: Backoff,
    budget: RetryBudget,
    shared_budget: Option<SharedBudget>,
    min_attempt_time: Duration,
    retry_rejections: bool,
    seed: Option<u64>,
    name: Cow<'static, str>,
    policy: P,
    on_retry: H,
    resend: M,
}

impl<P, H, M> fmt::Debug for Builder<P, H, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .field("shared_budget", &self.shared_budget)
            .field("min_attempt_time", &self.min_attempt_time)
            .field("retry_rejections", &self.retry_rejections)
            .field("seed", &self.seed)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            budget: DEFAULT_BUDGET,
            shared_budget: None,
            min_attempt_time: DEFAULT_MIN_ATTEMPT_TIME,
            retry_rejections: false,
            seed: None,
            name: Cow::Borrowed(DEFAULT_NAME),
            policy: RetryErrors::new(),
            on_retry: (),
            resend: CloneRequest::new(),
        }
    }
}

impl<P, H, M> Builder<P, H, M> {
    /// Attempts per call, the first included: 3 attempts = 2 retries. A hard cap, in
    /// `[1, 100]`; 1 turns retries off. Defaults to [`DEFAULT_MAX_ATTEMPTS`] (3).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The delay before each retry. Defaults to [`DEFAULT_BACKOFF`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The budget that caps retries across all calls of the layer; [`RetryBudget::unlimited`]
    /// turns it off. Defaults to [`DEFAULT_BUDGET`].
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self.shared_budget = None;
        self
    }

    /// Draws on a budget that other layers draw on too (a hedge, another retry), instead of
    /// one of the layer's own; replaces [`budget`](Self::budget). Defaults to none: the layer
    /// has its own.
    pub fn shared_budget(mut self, budget: SharedBudget) -> Self {
        self.shared_budget = Some(budget);
        self
    }

    /// A retry is made only if, after its backoff, at least this much time is left before the
    /// current [`Deadline`](crate::deadline::Deadline); checked when the retry is scheduled and
    /// again just before it is sent. Defaults to [`DEFAULT_MIN_ATTEMPT_TIME`] (10 ms).
    pub fn min_attempt_time(mut self, min_attempt_time: Duration) -> Self {
        self.min_attempt_time = min_attempt_time;
        self
    }

    /// Whether this crate's local rejections (an open breaker, a full bulkhead further in)
    /// are retried like other errors, drawing on the budget. Defaults to `false`: they are
    /// returned at once and cost no budget.
    pub fn retry_rejections(mut self, retry_rejections: bool) -> Self {
        self.retry_rejections = retry_rejections;
        self
    }

    /// Seeds the random generator of jitter, so that delays are reproducible (tests). Defaults
    /// to a seed drawn from the process's hash randomness.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The `name` label of the layer's metrics and tracing events. Defaults to
    /// [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// What is retried. Defaults to [`RetryErrors`]: every `Err`.
    pub fn policy<P2>(self, policy: P2) -> Builder<P2, H, M> {
        Builder {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            shared_budget: self.shared_budget,
            min_attempt_time: self.min_attempt_time,
            retry_rejections: self.retry_rejections,
            seed: self.seed,
            name: self.name,
            policy,
            on_retry: self.on_retry,
            resend: self.resend,
        }
    }

    /// A hook called before each retry with the attempt number, the delay and the cause (see
    /// [`OnRetry`](super::OnRetry)). Defaults to `()`: nothing.
    pub fn on_retry<H2>(self, on_retry: H2) -> Builder<P, H2, M> {
        Builder {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            shared_budget: self.shared_budget,
            min_attempt_time: self.min_attempt_time,
            retry_rejections: self.retry_rejections,
            seed: self.seed,
            name: self.name,
            policy: self.policy,
            on_retry,
            resend: self.resend,
        }
    }

    /// Sends `http::Request<B>` again through a replay buffer of at most `max_bytes`, so `B`
    /// need not be `Clone`; a request whose body outgrows it is not retried (see
    /// [`BufferBody`](super::BufferBody)). Defaults to [`CloneRequest`]: requests are cloned.
    #[cfg(feature = "http")]
    pub fn replay_body(self, max_bytes: usize) -> Builder<P, H, super::BufferBody> {
        Builder {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            shared_budget: self.shared_budget,
            min_attempt_time: self.min_attempt_time,
            retry_rejections: self.retry_rejections,
            seed: self.seed,
            name: self.name,
            policy: self.policy,
            on_retry: self.on_retry,
            resend: super::BufferBody::new(max_bytes),
        }
    }

    /// Checks the configuration and builds the layer, with its budget, shared by every clone
    /// and every service it makes.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setter: `max_attempts` outside `[1, 100]`; `backoff` with
    /// a multiplier that is NaN, infinite or below 1, or a jitter percent above 100; `budget`
    /// with a ratio outside `[0, 1000]` (or NaN) or a ttl outside `[1 s, 60 s]`.
    pub fn build(self) -> Result<RetryLayer<P, H, M>, ConfigError> {
        self.check()?;
        let budget = match &self.shared_budget {
            Some(shared) => Arc::clone(shared.state()),
            None => Arc::new(BudgetState::new(&self.budget)),
        };
        let seed = self
            .seed
            .unwrap_or_else(|| random_seed(&self.budget as *const RetryBudget as usize));
        #[cfg(feature = "metrics")]
        let metrics = super::telemetry::Metrics::register(&self.name);
        Ok(RetryLayer::from_shared(Arc::new(RetryCore {
            max_attempts: AtomicU32::new(self.max_attempts),
            min_attempt_time_nanos: AtomicU64::new(nanos(self.min_attempt_time)),
            retry_rejections: AtomicBool::new(self.retry_rejections),
            budget,
            backoff: Mutex::new(self.backoff),
            rng: AtomicSplitMix64::new(seed),
            name: self.name,
            policy: self.policy,
            on_retry: self.on_retry,
            resend: self.resend,
            #[cfg(feature = "serde")]
            reloads: crate::config::Reloads::default(),
            #[cfg(feature = "metrics")]
            metrics,
        })))
    }
}

impl<P, H, M> Builder<P, H, M> {
    /// The validation of [`build`](Self::build), shared with `reconfigure`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        check_range("max_attempts", self.max_attempts, 1, MAX_MAX_ATTEMPTS)?;
        self.backoff.validate()?;
        match &self.shared_budget {
            Some(shared) => shared.validate(),
            None => self.budget.validate(),
        }
    }
}

/// What every clone of a layer and every service it makes share.
///
/// The settings `reconfigure` changes are atomics (`Relaxed`: each is a setting on its own, and
/// a call that races a change may see either value) or, for the backoff, behind a mutex that
/// only the retry path takes (the healthy path never reads the backoff).
pub(crate) struct RetryCore<P, H, M> {
    max_attempts: AtomicU32,
    min_attempt_time_nanos: AtomicU64,
    retry_rejections: AtomicBool,
    pub(crate) budget: Arc<BudgetState>,
    backoff: Mutex<Backoff>,
    /// The jitter's generator: one `fetch_add` per draw, no lock.
    rng: AtomicSplitMix64,
    pub(crate) name: Cow<'static, str>,
    pub(crate) policy: P,
    pub(crate) on_retry: H,
    pub(crate) resend: M,
    /// Held by `reconfigure`, which stores several of the settings above.
    #[cfg(feature = "serde")]
    pub(crate) reloads: crate::config::Reloads,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: super::telemetry::Metrics,
}

impl<P, H, M> RetryCore<P, H, M> {
    fn lock_backoff(&self) -> MutexGuard<'_, Backoff> {
        // A `Backoff` is replaced whole, so a panicking holder leaves no half-written one.
        self.backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The delay before retry number `retry` (1 for the first).
    pub(crate) fn backoff_delay(&self, retry: u32, previous: Duration) -> Duration {
        let backoff = self.backoff();
        let rng = backoff.is_random().then_some(&self.rng);
        backoff.delay(retry, previous, rng)
    }

    /// The backoff now.
    pub(crate) fn backoff(&self) -> Backoff {
        *self.lock_backoff()
    }

    /// Attempts per call now, the first included.
    #[inline]
    pub(crate) fn max_attempts(&self) -> u32 {
        self.max_attempts.load(Ordering::Relaxed)
    }

    /// The least time a retry needs before the deadline, now.
    pub(crate) fn min_attempt_time(&self) -> Duration {
        Duration::from_nanos(self.min_attempt_time_nanos.load(Ordering::Relaxed))
    }

    /// Whether local rejections are retried, now.
    pub(crate) fn retry_rejections(&self) -> bool {
        self.retry_rejections.load(Ordering::Relaxed)
    }

    /// Applies settings already checked by [`Builder::check`]; the budget's are applied by the
    /// caller, first, since only they can still be refused.
    #[cfg(feature = "serde")]
    pub(crate) fn store(
        &self,
        max_attempts: u32,
        backoff: Backoff,
        min_attempt_time: Duration,
        retry_rejections: bool,
    ) {
        self.max_attempts.store(max_attempts, Ordering::Relaxed);
        *self.lock_backoff() = backoff;
        self.min_attempt_time_nanos
            .store(nanos(min_attempt_time), Ordering::Relaxed);
        self.retry_rejections
            .store(retry_rejections, Ordering::Relaxed);
    }
}

impl<P, H, M> fmt::Debug for RetryCore<P, H, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryCore")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts())
            .field("backoff", &self.backoff())
            .field("min_attempt_time", &self.min_attempt_time())
            .field("retry_rejections", &self.retry_rejections())
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}
