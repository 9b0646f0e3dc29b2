use std::time::Duration;

use tower_layer::Layer;

use super::Bulkhead;
use super::config::Builder;
use super::state::Semaphore;
use crate::sync::Arc;

/// Caps the concurrent calls of the services it wraps; see the [module docs](super).
///
/// Cheap to clone: the permits live in one `Arc` created by [`Builder::build`], shared by every
/// clone of the layer and by every service that [`layer`](Layer::layer) makes. Wrapping each axum
/// route, or each tonic connection, in the same layer therefore caps them *together*.
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    pub(crate) shared: Arc<Semaphore>,
}

impl BulkheadLayer {
    /// A builder with the defaults: [`max_concurrent_calls`](Builder::max_concurrent_calls) 25,
    /// [`max_wait`](Builder::max_wait) zero (fail fast).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Permits free right now: `max_concurrent_calls` minus the calls in flight (including
    /// services that took a permit in `poll_ready` and have not called yet).
    ///
    /// Zero while more calls are in flight than a lowered limit allows (see
    /// [`reconfigure`](Self::reconfigure)).
    pub fn available_permits(&self) -> usize {
        usize::try_from(self.shared.permits.load().available()).unwrap_or(0)
    }

    /// The limit of concurrent calls, as built or last reconfigured.
    pub fn max_concurrent_calls(&self) -> usize {
        self.shared.max_concurrent_calls() as usize
    }

    /// How long a call may wait for a permit, as built or last reconfigured.
    pub fn max_wait(&self) -> Duration {
        self.shared.max_wait()
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(inner, Arc::clone(&self.shared))
    }
}
