use std::fmt;

use super::state::Core;
use crate::sync::Arc;

/// Switches a chaos layer at run time and reads its counters.
///
/// Get one from [`ChaosLayer::handle`](super::ChaosLayer::handle) or
/// [`Chaos::handle`](super::Chaos::handle). It is cheap to clone and shares the state of the
/// layer it came from: a switch flipped through any handle applies at once to every clone of
/// the layer and every service the layer made, on every thread.
#[derive(Clone)]
pub struct ChaosHandle {
    core: Arc<Core>,
}

impl ChaosHandle {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Switches fault injection on: configured faults and a manual outage apply again.
    pub fn enable(&self) {
        self.core.set_enabled(true);
    }

    /// Switches fault injection off: every call goes through untouched (one atomic load), even
    /// during an outage, until [`enable`](Self::enable). Counters keep their values.
    pub fn disable(&self) {
        self.core.set_enabled(false);
    }

    /// Whether fault injection is switched on.
    pub fn is_enabled(&self) -> bool {
        self.core.is_enabled()
    }

    /// Starts a manual outage: while the layer is enabled, every call fails with an injected
    /// [`FaultKind::Outage`](super::FaultKind::Outage) until [`stop_outage`](Self::stop_outage).
    /// Works on a layer with no fault configured.
    pub fn start_outage(&self) {
        self.core.set_outage(true);
    }

    /// Ends a manual outage. Scheduled outages ([`Builder::outage_at`](super::Builder::outage_at))
    /// are not affected.
    pub fn stop_outage(&self) {
        self.core.set_outage(false);
    }

    /// Whether an outage is in effect now: a manual one, or a scheduled window that covers the
    /// current instant. (A disabled layer injects nothing even then.)
    pub fn in_outage(&self) -> bool {
        self.core.in_outage()
    }

    /// The counters, each read on its own.
    pub fn counts(&self) -> Counts {
        self.core.counts()
    }

    /// The layer's name, as given to [`Builder::name`](super::Builder::name).
    pub fn name(&self) -> &str {
        self.core.name()
    }
}

impl fmt::Debug for ChaosHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("core", &self.core)
            .finish()
    }
}

/// What a chaos layer has done so far, read by [`ChaosHandle::counts`].
///
/// Calls that pass a disabled layer, or an enabled layer with nothing to inject, are not judged
/// and not counted: that path costs one atomic load and nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) outages: u64,
    pub(crate) delays: u64,
}

impl Counts {
    /// Calls judged: those made while the layer was enabled and had something to inject.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Calls failed by the error rate.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Calls failed by an outage, manual or scheduled.
    pub fn outages(&self) -> u64 {
        self.outages
    }

    /// Calls delayed by the added latency.
    pub fn delays(&self) -> u64 {
        self.delays
    }

    /// Calls failed on purpose: `errors() + outages()`.
    pub fn faults(&self) -> u64 {
        self.errors + self.outages
    }
}
