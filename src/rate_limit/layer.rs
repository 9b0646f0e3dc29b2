use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;

use super::config::Policy;
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
    policy: Arc<Policy>,
    limiter: Arc<Limiter>,
}

impl RateLimitLayer {
    /// A builder with every default; [`limit`](Builder::limit) must be set.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn new(policy: Policy) -> Self {
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

    /// The rate and the allowed wait, for `reconfigure` to compare.
    #[cfg(feature = "serde")]
    pub(super) fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// How long a call at `now` would wait on `limiter`.
pub(crate) fn wait_time(policy: &Policy, limiter: &Limiter, now: Instant) -> Duration {
    limiter
        .tat()
        .checked_sub(Duration::from_nanos(policy.gcra.tolerance))
        .map_or(Duration::ZERO, |earliest| {
            earliest.saturating_duration_since(now)
        })
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
        RateLimit::new(inner, self.policy.clone(), self.limiter.clone())
    }
}
