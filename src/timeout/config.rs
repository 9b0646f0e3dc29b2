//! The builder of [`TimeoutLayer`], its defaults, and the metric handles it registers.

use std::borrow::Cow;
use std::time::Duration;

use super::TimeoutLayer;
use super::error::ElapsedKind;
use super::state::Timing;
use crate::error::ConfigError;

/// The timeout of [`Builder::timeout`] when none is set: 30 seconds (Polly's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `name` metric label of [`Builder::name`] when none is set.
pub const DEFAULT_NAME: &str = "default";

/// Builds a [`TimeoutLayer`]; see [`TimeoutLayer::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    timeout: Duration,
    name: Cow<'static, str>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            name: Cow::Borrowed(DEFAULT_NAME),
        }
    }
}

impl Builder {
    /// How long a call may take, from the moment it is made. Must be more than zero.
    ///
    /// Defaults to [`DEFAULT_TIMEOUT`] (30 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The instance name: the `name` label of this layer's metrics.
    ///
    /// Defaults to [`DEFAULT_NAME`] (`"default"`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks the configuration and builds the layer, registering its metric handles (with the
    /// `metrics` feature) once.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `timeout` if the timeout is zero (every call would fail without
    /// reaching the service).
    pub fn build(self) -> Result<TimeoutLayer, ConfigError> {
        self.check()?;
        Ok(TimeoutLayer::from_parts(
            Timing::live(self.timeout),
            &self.name,
        ))
    }

    /// The validation of [`build`](Self::build), shared with `reconfigure`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "timeout",
                "more than zero, in (0, Duration::MAX]",
                self.timeout,
            ));
        }
        Ok(())
    }
}

/// What a timeout reports when it fails a call: a `debug` event naming the instance, and with
/// the `metrics` feature, a counter.
///
/// The instance's name and metric handles are registered once per name, the first time a layer
/// with that name is built, and kept for the life of the process (names are few by design: they
/// are a metric label). The layer, its services and every response future then hold a plain
/// `&'static` reference: a call costs no reference-count traffic, and a future can report the
/// timeout it fails with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Telemetry {
    instance: &'static Instance,
}

#[derive(Debug)]
struct Instance {
    name: String,
    #[cfg(feature = "metrics")]
    timeout: metrics::Counter,
    #[cfg(feature = "metrics")]
    deadline: metrics::Counter,
}

/// The metric name of the count of calls failed with [`Elapsed`](super::Elapsed).
#[cfg(feature = "metrics")]
pub(crate) const ELAPSED_TOTAL: &str = "steadfast_timeout_elapsed_total";

impl Telemetry {
    /// The telemetry of the instance `name`, registered on first use.
    pub(crate) fn new(name: &str) -> Self {
        use std::sync::{Mutex, PoisonError};

        static REGISTERED: Mutex<Vec<&'static Instance>> = Mutex::new(Vec::new());

        let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&instance) = registered.iter().find(|i| i.name == name) {
            return Self { instance };
        }
        let instance: &'static Instance = Box::leak(Box::new(Instance {
            name: name.to_owned(),
            #[cfg(feature = "metrics")]
            timeout: metrics::counter!(
                ELAPSED_TOTAL,
                "name" => name.to_owned(),
                "kind" => ElapsedKind::Timeout.as_str()
            ),
            #[cfg(feature = "metrics")]
            deadline: metrics::counter!(
                ELAPSED_TOTAL,
                "name" => name.to_owned(),
                "kind" => ElapsedKind::InheritedDeadline.as_str()
            ),
        }));
        registered.push(instance);
        Self { instance }
    }

    /// The instance name.
    pub(crate) fn name(&self) -> &'static str {
        &self.instance.name
    }

    /// Reports a call failed with `kind`; `before_call` when the inner service was not called.
    pub(crate) fn elapsed(&self, kind: ElapsedKind, before_call: bool) {
        tracing::debug!(
            target: "steadfast::timeout",
            {
                timeout.name = self.name(),
                timeout.kind = kind.as_str(),
                timeout.before_call = before_call
            },
            "call failed: deadline passed"
        );
        #[cfg(feature = "metrics")]
        match kind {
            ElapsedKind::Timeout => self.instance.timeout.increment(1),
            ElapsedKind::InheritedDeadline => self.instance.deadline.increment(1),
        }
    }
}
