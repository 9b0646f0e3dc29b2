use std::fmt;

use tower_layer::Layer;

use super::AdaptiveLimit;
use super::config::Builder;
use super::limiter::Limiter;
use crate::classify::ErrorsAsFailures;
use crate::sync::Arc;

/// Sheds the calls above an adaptive concurrency limit; see the [module docs](super).
///
/// Cheap to clone: the limiter (the limit, the calls in flight, the algorithm's state) lives in
/// one `Arc` created by [`Builder::build`], shared by every clone of the layer and by every
/// service that [`layer`](Layer::layer) makes. Wrapping each axum route, or each tonic
/// connection, in the same layer therefore limits them *together*. Build a second layer for a
/// second limit.
pub struct AdaptiveLimitLayer<C = ErrorsAsFailures> {
    pub(crate) limiter: Arc<Limiter<C>>,
    pub(crate) min_limit: u32,
    pub(crate) max_limit: u32,
}

impl AdaptiveLimitLayer {
    /// A builder with every default: Gradient2, limits 20 / 20 / 200; see [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<C> AdaptiveLimitLayer<C> {
    /// The current limit: calls allowed in flight at once.
    pub fn limit(&self) -> usize {
        self.limiter.word.load().limit() as usize
    }

    /// Calls admitted and not finished (a snapshot: it changes as calls come and go).
    pub fn in_flight(&self) -> usize {
        self.limiter.word.load().in_flight() as usize
    }

    /// The configured lowest limit (as last reconfigured, with feature `serde`).
    pub fn min_limit(&self) -> usize {
        self.limiter.bounds().0 as usize
    }

    /// The configured highest limit (as last reconfigured, with feature `serde`).
    pub fn max_limit(&self) -> usize {
        self.limiter.bounds().1 as usize
    }
}

impl<C> Clone for AdaptiveLimitLayer<C> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
            min_limit: self.min_limit,
            max_limit: self.max_limit,
        }
    }
}

impl<C> fmt::Debug for AdaptiveLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimitLayer")
            .field("limiter", &self.limiter)
            .field("min_limit", &self.min_limit)
            .field("max_limit", &self.max_limit)
            .finish()
    }
}

impl<S, C> Layer<S> for AdaptiveLimitLayer<C> {
    type Service = AdaptiveLimit<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit::new(inner, Arc::clone(&self.limiter))
    }
}
