use std::fmt;

use tower_layer::Layer;

use super::Chaos;
use super::config::Builder;
use super::handle::ChaosHandle;
use super::state::Core;
use crate::sync::Arc;

/// Injects errors, latency and outages into the services it wraps; see the
/// [module docs](super).
///
/// Built with [`ChaosLayer::builder`]. The layer is cheap to clone: its switches, counters and
/// generator live in one `Arc` created by `build()`, shared by every clone of the layer, every
/// service its [`layer`](Layer::layer) makes and every [`ChaosHandle`], so one handle switches
/// chaos for a whole axum router or every connection of a tonic server. Build a second layer for
/// independent faults.
pub struct ChaosLayer<R = ()> {
    core: Arc<Core>,
    response: R,
}

impl ChaosLayer {
    /// A builder with every default: a layer that injects nothing until configured.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<R> ChaosLayer<R> {
    pub(crate) fn from_parts(core: Arc<Core>, response: R) -> Self {
        Self { core, response }
    }

    /// A handle to switch this layer on and off, start and stop outages and read its counters.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle::new(self.core.clone())
    }
}

impl<R: Clone> Clone for ChaosLayer<R> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            response: self.response.clone(),
        }
    }
}

impl<R> fmt::Debug for ChaosLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl<S, R: Clone> Layer<S> for ChaosLayer<R> {
    type Service = Chaos<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos::new(inner, self.core.clone(), self.response.clone())
    }
}
