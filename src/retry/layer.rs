use std::fmt;

use tower_layer::Layer;

use super::Retry;
use super::config::{Builder, RetryCore};
use super::policy::RetryErrors;
use super::replay::CloneRequest;
use crate::sync::Arc;

/// Retries failed requests, within `max_attempts`, a shared budget and the deadline.
///
/// Built with [`RetryLayer::builder`]. The layer is cheap to clone: its configuration and its
/// [`RetryBudget`](super::RetryBudget) live in one `Arc` created by `build()`, shared by every
/// clone of the layer and by every service its [`layer`](Layer::layer) makes, so an axum router
/// that applies the layer per route, or tonic's per-connection services, draw on one budget.
pub struct RetryLayer<P = RetryErrors, H = (), M = CloneRequest> {
    shared: Arc<RetryCore<P, H, M>>,
}

impl RetryLayer {
    /// A builder with the defaults (see the [module docs](super#defaults)).
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<P, H, M> RetryLayer<P, H, M> {
    pub(crate) fn from_shared(shared: Arc<RetryCore<P, H, M>>) -> Self {
        Self { shared }
    }

    #[cfg(feature = "serde")]
    pub(crate) fn shared(&self) -> &RetryCore<P, H, M> {
        &self.shared
    }

    /// How many retries the shared budget allows right now (`u64::MAX` with
    /// [`RetryBudget::unlimited`](super::RetryBudget::unlimited)).
    pub fn budget_remaining(&self) -> u64 {
        self.shared.budget.remaining()
    }

    /// The attempts per call, the first included, as built or last reconfigured.
    pub fn max_attempts(&self) -> u32 {
        self.shared.max_attempts()
    }
}

impl<P, H, M> Clone for RetryLayer<P, H, M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P, H, M> fmt::Debug for RetryLayer<P, H, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S: Clone, P, H, M> Layer<S> for RetryLayer<P, H, M> {
    type Service = Retry<S, P, H, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_shared(inner, Arc::clone(&self.shared))
    }
}
