use std::time::Duration;

use tower_layer::Layer;

use super::Timeout;
use super::config::{Builder, DEFAULT_NAME};
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
    timeout: Duration,
    telemetry: Telemetry,
}

impl TimeoutLayer {
    /// A layer that fails each call with [`Elapsed`](super::Elapsed) `timeout` after it was made.
    ///
    /// Unlike [`builder`](Self::builder), this does not reject a zero timeout: with one, every
    /// call fails at once without reaching the service.
    pub fn new(timeout: Duration) -> Self {
        Self::from_parts(timeout, DEFAULT_NAME)
    }

    /// A builder, to set the metrics `name` label as well as the timeout.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn from_parts(timeout: Duration, name: &str) -> Self {
        Self {
            timeout,
            telemetry: Telemetry::new(name),
        }
    }

    /// The timeout each call gets.
    pub fn timeout(&self) -> Duration {
        self.timeout
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
