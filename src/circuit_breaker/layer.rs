use std::fmt;

use tower_layer::Layer;

use super::breaker::Breaker;
use super::{Builder, CircuitBreaker, Snapshot, State};
use crate::classify::ErrorsAsFailures;
use crate::sync::Arc;

/// Applies a circuit breaker to a service; see the [module docs](super).
///
/// The breaker is created by [`Builder::build`] and lives in the layer: every clone of the layer
/// and every service that [`layer`](Layer::layer) makes share it, so a router that applies the
/// layer to each route, or a server that makes a service per connection, still has one breaker.
/// Build a second layer for a second breaker.
///
/// The layer is also the breaker's handle: read its [`state`](Self::state) and
/// [`snapshot`](Self::snapshot), or [`force_open`](Self::force_open), [`disable`](Self::disable)
/// and [`reset`](Self::reset) it, from anywhere.
pub struct CircuitBreakerLayer<C = ErrorsAsFailures> {
    breaker: Arc<Breaker>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A builder with every default; see [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<C> CircuitBreakerLayer<C> {
    pub(crate) fn from_parts(breaker: Arc<Breaker>, classifier: C) -> Self {
        Self {
            breaker,
            classifier,
        }
    }

    #[cfg(any(test, feature = "serde"))]
    pub(crate) fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// The breaker's state.
    ///
    /// Reading it also makes the transitions that time alone makes: an open breaker whose
    /// `wait_in_open` is over reads (and becomes) [`State::HalfOpen`].
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// The state and the counts behind it, read at once.
    pub fn snapshot(&self) -> Snapshot {
        self.breaker.snapshot()
    }

    /// Opens the breaker until [`reset`](Self::reset) (or [`disable`](Self::disable)): every call
    /// is rejected with [`CircuitOpen`](super::CircuitOpen). For maintenance or a known outage.
    pub fn force_open(&self) {
        self.breaker.force_open();
    }

    /// Lets every call through and records nothing, until [`reset`](Self::reset) (or
    /// [`force_open`](Self::force_open)).
    pub fn disable(&self) {
        self.breaker.disable();
    }

    /// Closes the breaker with an empty window, from any state. Calls admitted before the reset
    /// no longer count.
    pub fn reset(&self) {
        self.breaker.reset();
    }

    /// Switches shadow mode on or off: a shadow breaker keeps its states and metrics but lets
    /// every call through. See [`Builder::shadow`].
    pub fn set_shadow(&self, shadow: bool) {
        self.breaker.set_shadow(shadow);
    }

    /// Whether the breaker is in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.breaker.is_shadow()
    }

    /// The breaker's name, as given to [`Builder::name`].
    pub fn name(&self) -> &str {
        self.breaker.telemetry().name()
    }
}

impl<C: Clone> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        Self {
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.breaker.clone(), self.classifier.clone())
    }
}
