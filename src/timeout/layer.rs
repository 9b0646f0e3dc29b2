use std::time::Duration;

use tower_layer::Layer;

use super::Timeout;
use super::config::{Builder, DEFAULT_NAME};
use super::state::Timing;
use super::telemetry::Telemetry;

/// Applies a [`Timeout`] to a service: each call fails with [`Elapsed`](super::Elapsed) once its
/// deadline passes, and runs with that deadline as [`Deadline::current`].
///
/// Cheap to clone (a `Duration` and an `Arc`). The layer's only shared state is its instance
/// name and metric handles (with the `metrics` feature), registered when the layer is built, by
/// [`new`](Self::new) (name `"default"`) or [`Builder::build`], and shared by every clone of the
/// layer and every service its [`layer`](Layer::layer) makes. Layers built separately register
/// separately, each with the metrics recorder installed at its build.
///
/// [`Deadline::current`]: crate::deadline::Deadline::current
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeout: Timing,
    telemetry: Telemetry,
}

impl TimeoutLayer {
    /// A layer that fails each call with [`Elapsed`](super::Elapsed) `timeout` after it was made.
    ///
    /// Unlike [`builder`](Self::builder), this does not reject a zero timeout: with one, every
    /// call fails at once without reaching the service.
    pub fn new(timeout: Duration) -> Self {
        Self::from_parts(timeout, false, DEFAULT_NAME)
    }

    /// A builder, to set the metrics `name` label as well as the timeout.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A layer of `timeout`, reconfigurable if `live`, registered as `name`.
    pub(crate) fn from_parts(timeout: Duration, live: bool, name: &str) -> Self {
        let telemetry = Telemetry::new(name);
        let timeout = if live {
            telemetry.set_live_timeout(timeout);
            Timing::Live
        } else {
            Timing::Fixed(timeout)
        };
        Self { timeout, telemetry }
    }

    /// The timeout each call gets (now: [`reconfigure`](Self::reconfigure) changes it).
    pub fn timeout(&self) -> Duration {
        self.timeout.get(&self.telemetry)
    }

    /// Whether [`reconfigure`](Self::reconfigure) can change this layer's timeout: true for a
    /// layer built by [`builder`](Self::builder) or `from_config`, false for one made by
    /// [`new`](Self::new), whose timeout is fixed.
    pub fn is_reconfigurable(&self) -> bool {
        matches!(self.timeout, Timing::Live)
    }

    /// Applies `timeout` to every service of this layer and every clone, for the calls made
    /// from now on; calls in flight keep the deadline they started with.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))] // used by `reconfigure`
    pub(crate) fn set_timeout(&self, timeout: Duration) -> bool {
        let live = self.is_reconfigurable();
        if live {
            self.telemetry.set_live_timeout(timeout);
        }
        live
    }

    /// The instance name: the `name` label of the metrics and the `timeout.name` event field.
    pub fn name(&self) -> &str {
        self.telemetry.name()
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::from_parts(inner, self.timeout, self.telemetry.clone())
    }
}
