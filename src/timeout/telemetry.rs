//! What a timeout reports when it fails a call: a `debug` event naming the instance, and with
//! the `metrics` feature, a counter per kind of deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::deadline::ElapsedKind;

/// The metric name of the count of calls failed with [`Elapsed`](super::Elapsed).
#[cfg(feature = "metrics")]
pub(crate) const ELAPSED_TOTAL: &str = "steadfast_timeout_elapsed_total";

/// The instance's name and metric handles, registered when its layer is built (with the recorder
/// installed then) and shared by the layer's clones, the services it makes and their futures.
/// Two layers built with one name register twice: each reports to the recorder of its own build,
/// and a name made at run time is freed with the last layer that holds it.
///
/// A call clones it into its response future (one reference count), because only the future
/// knows when the deadline passed; the breaker's and retry's futures hold their shared state the
/// same way.
#[derive(Debug, Clone)]
pub(crate) struct Telemetry(Arc<Instance>);

#[derive(Debug)]
struct Instance {
    name: Box<str>,
    /// The live timeout of a reconfigurable layer, in ns (see `state.rs`). `Relaxed` both ways:
    /// it guards no other data, and a call that starts as a new timeout is stored may take the
    /// old one or the new one, either a timeout the operator asked for.
    live_nanos: AtomicU64,
    #[cfg(feature = "metrics")]
    timeout: metrics::Counter,
    #[cfg(feature = "metrics")]
    deadline: metrics::Counter,
}

impl Telemetry {
    /// The live timeout (see `state.rs`).
    #[inline]
    pub(crate) fn live_timeout(&self) -> Duration {
        Duration::from_nanos(self.0.live_nanos.load(Ordering::Relaxed))
    }

    /// Sets the live timeout, saturating at `u64::MAX` ns (584 years).
    pub(crate) fn set_live_timeout(&self, timeout: Duration) {
        let nanos = crate::clock::nanos(timeout);
        self.0.live_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Registers the instance `name`.
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(feature = "metrics")]
        describe();
        Self(Arc::new(Instance {
            name: name.into(),
            live_nanos: AtomicU64::new(0),
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
        }))
    }

    /// The instance name.
    pub(crate) fn name(&self) -> &str {
        &self.0.name
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
            ElapsedKind::Timeout => self.0.timeout.increment(1),
            ElapsedKind::InheritedDeadline => self.0.deadline.increment(1),
        }
    }
}

/// The `# HELP` text and unit of the timeout's metrics, given to the recorder installed now.
#[cfg(feature = "metrics")]
fn describe() {
    metrics::describe_counter!(
        ELAPSED_TOTAL,
        metrics::Unit::Count,
        "Calls a timeout failed with Elapsed, by kind: its own timeout, or an inherited deadline"
    );
}
