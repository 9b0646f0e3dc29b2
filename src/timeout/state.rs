//! The timeout each call gets: fixed when the layer was made, or live, in a word of the layer's
//! shared instance that the layer's [`reconfigure`](super::TimeoutLayer::reconfigure) can change
//! while calls run.
//!
//! The live word sits in the instance's telemetry (`telemetry.rs`), the one `Arc` every service
//! of the layer and every call's future already hold: a live timeout costs no reference count
//! of its own and nothing is leaked.

use std::time::Duration;

use super::telemetry::Telemetry;

/// Where a timeout's duration comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timing {
    /// Set when the layer was made (`TimeoutLayer::new`, a stack given a `Duration`).
    Fixed(Duration),
    /// Set by the builder, changed by `reconfigure`: the instance's live word.
    Live,
}

impl Timing {
    /// The timeout now.
    #[inline]
    pub(crate) fn get(self, instance: &Telemetry) -> Duration {
        match self {
            Self::Fixed(timeout) => timeout,
            Self::Live => instance.live_timeout(),
        }
    }
}
