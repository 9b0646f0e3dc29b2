use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;

use super::config::LocalPolicy;
use super::state::Limiter;
use super::{Builder, RateLimit};

/// Applies a rate limit to a service; see the [module docs](super).
///
/// The limiter is made by [`Builder::build`] and lives in the layer: every clone of the layer
/// and every service that [`layer`](Layer::layer) makes share it, so a router that applies the
/// layer per route, or a server that makes a service per connection, still has one limit. Build
/// a second layer for a second limit.
#[derive(Clone)]
pub struct RateLimitLayer {
    policy: Arc<LocalPolicy>,
    limiter: Arc<Limiter>,
}

impl RateLimitLayer {
    /// A builder with every default; [`limit`](Builder::limit) must be set.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn new(policy: LocalPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            limiter: Arc::new(Limiter::new(Instant::now())),
        }
    }

    /// How long a call made now would wait for its turn: zero if it would go at once.
    pub fn wait_time(&self) -> Duration {
        wait_time(&self.policy, &self.limiter, Instant::now())
    }

    /// The limiter's name, as given to [`Builder::name`].
    pub fn name(&self) -> &str {
        self.policy.telemetry.name()
    }

    /// The live rate, for `reconfigure` to change.
    #[cfg(feature = "serde")]
    pub(super) fn policy(&self) -> &LocalPolicy {
        &self.policy
    }
}

/// How long a call at `now` would wait on `limiter`, at the current rate.
pub(crate) fn wait_time(policy: &LocalPolicy, limiter: &Limiter, now: Instant) -> Duration {
    policy
        .live
        .rate()
        .wait_at(limiter.tat_ns(), limiter.ns_since_epoch(now))
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policy", &self.policy)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.policy), Arc::clone(&self.limiter))
    }
}
