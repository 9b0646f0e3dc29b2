use std::fmt;
use std::time::Duration;

use tower_layer::Layer;

use super::Hedge;
use super::config::{Builder, HedgeCore};
use super::policy::CloneRequest;
use crate::sync::Arc;

/// Sends a copy of a slow request after a delay; the first success wins.
///
/// Built with [`HedgeLayer::builder`]. The layer is cheap to clone: its configuration, its
/// budget and (with a percentile delay) its latency window live in one `Arc` created by
/// `build()`, shared by every clone of the layer and by every service its
/// [`layer`](Layer::layer) makes.
pub struct HedgeLayer<P = CloneRequest> {
    config: Arc<HedgeCore<P>>,
}

impl HedgeLayer {
    /// A builder with the defaults (see the [module docs](super#defaults)).
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<P> HedgeLayer<P> {
    pub(crate) fn from_shared(config: Arc<HedgeCore<P>>) -> Self {
        Self { config }
    }

    /// What every clone and service of this layer shares, for `reconfigure`.
    #[cfg(feature = "serde")]
    pub(crate) fn shared(&self) -> &HedgeCore<P> {
        &self.config
    }

    /// How many hedges the budget allows right now (`u64::MAX` with
    /// [`RetryBudget::unlimited`](crate::retry::RetryBudget::unlimited)).
    pub fn budget_remaining(&self) -> u64 {
        self.config.budget.remaining()
    }

    /// The delay a call made now would wait before its first hedge: the fixed delay, or the
    /// percentile of the last full window (`None` until a window had `min_samples` calls).
    pub fn current_delay(&self) -> Option<Duration> {
        self.config.delay(self.config.live.load())
    }

    /// The configured hedges per call beyond the first attempt.
    pub fn max_hedged_attempts(&self) -> u32 {
        self.config.live.load().max_attempts() - 1
    }
}

impl<P> Clone for HedgeLayer<P> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
        }
    }
}

impl<P> fmt::Debug for HedgeLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<S: Clone, P> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_config(inner, Arc::clone(&self.config))
    }
}
